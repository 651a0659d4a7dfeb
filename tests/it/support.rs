//! The test server and event builders the end-to-end tests share.
//!
//! [`TestServer`] runs the real service (`rapport_server::serve`) on the real stores (the
//! segment log, projections on sled) in a temporary directory, on a loopback port the OS
//! picks, and talks to it with the generated tonic clients. Builders make valid wire events
//! with fresh ids, so each test states only what it is about. [`SharedLog`] starts several
//! servers over one log, as the nodes of a replicated log are.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rapport_domain::Timestamp;
use rapport_proto::{v1 as pb, wkt};
use rapport_segments::SegmentLog;
use rapport_server::{Clock, ServeError, ServerConfig};
use rapport_sled::SledProjections;
use rapport_store::{AppendBatch, Appended, Direction, EventLog, MemoryLog, StoreError, StoredEvent, StreamHead};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub type Ledger = pb::ledger_client::LedgerClient<Channel>;
pub type Accounts = pb::accounts_client::AccountsClient<Channel>;
pub type Projections = pb::projections_client::ProjectionsClient<Channel>;

/// 2026-01-01T00:00:00Z: the test servers' "now", so time checks are deterministic.
pub const NOW_SECONDS: i64 = 1_767_225_600;

/// A fixed clock at [`NOW_SECONDS`].
pub fn fixed_clock() -> Clock {
    Arc::new(|| Timestamp::from_unix_nanos(NOW_SECONDS * 1_000_000_000))
}

/// The stores of a data directory, laid out as `rapport serve` lays them out: the log in
/// `log/`, the projections in `projections/`.
pub fn open_store(dir: &std::path::Path) -> (Arc<SegmentLog>, Arc<SledProjections>) {
    let log = SegmentLog::open(&dir.join("log")).expect("the segment log opens");
    let projections = SledProjections::open(&dir.join("projections")).expect("the projection store opens");
    (Arc::new(log), Arc::new(projections))
}

/// The key store of a data directory, where `rapport serve` keeps it (`keys/`, with its own
/// master key).
pub fn open_keys(dir: &std::path::Path) -> Arc<rapport_keys::KeyStore> {
    let opened = rapport_keys::KeyStore::open(&dir.join("keys"), rapport_keys::MasterKeySource::Default)
        .expect("the key store opens");
    Arc::new(opened.store)
}

/// `config` sealing with the data directory's key store, unless it names one.
fn sealing(dir: &std::path::Path, config: ServerConfig) -> ServerConfig {
    match config.keys {
        Some(_) => config,
        None => ServerConfig { keys: Some(open_keys(dir)), ..config },
    }
}

/// A running server over a temporary data directory.
pub struct TestServer {
    dir: TempDir,
    address: std::net::SocketAddr,
    channel: Channel,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    /// A server on a fresh, empty data directory, with the fixed clock.
    pub async fn start() -> TestServer {
        Self::start_in(tempfile::tempdir().expect("a temporary directory"), test_config()).await
    }

    /// A server with this configuration on a fresh data directory.
    pub async fn start_with(config: ServerConfig) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("a temporary directory"), config).await
    }

    /// A server on an existing data directory.
    pub async fn start_in(dir: TempDir, config: ServerConfig) -> TestServer {
        let (log, projections) = open_store(dir.path());
        let config = sealing(dir.path(), config);
        Self::serve(dir, log, projections, config).await
    }

    /// A server over `log`, which others may write too, with projections of its own in a fresh
    /// directory; it seals with the key store `config` names, if any. Not for `restart`, which
    /// opens the data directory's own log.
    pub async fn start_over(log: Arc<dyn EventLog>, config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let projections = SledProjections::open(&dir.path().join("projections")).expect("the projection store opens");
        Self::serve(dir, log, Arc::new(projections), config).await
    }

    /// A server with this configuration on a fresh data directory, and its web console, at the
    /// URL returned.
    pub async fn start_with_console(config: ServerConfig) -> (TestServer, String) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (log, projections) = open_store(dir.path());
        let config = sealing(dir.path(), config);
        let (door, url) = console().await;
        (Self::serve_with(dir, log, projections, config, vec![door]).await, url)
    }

    async fn serve(
        dir: TempDir,
        log: Arc<dyn EventLog>,
        projections: Arc<SledProjections>,
        config: ServerConfig,
    ) -> TestServer {
        Self::serve_with(dir, log, projections, config, Vec::new()).await
    }

    async fn serve_with(
        dir: TempDir,
        log: Arc<dyn EventLog>,
        projections: Arc<SledProjections>,
        config: ServerConfig,
        doors: Vec<Box<dyn rapport_server::FrontDoor>>,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("the bound address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(rapport_server::serve_with(
            listener,
            log,
            projections,
            config,
            async {
                let _ = stop.await;
            },
            doors,
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("a valid URL")
            .connect()
            .await
            .expect("the server accepts connections");
        TestServer { dir, address, channel, shutdown, task }
    }

    /// Stops the server gracefully and returns its data directory.
    pub async fn stop(self) -> TempDir {
        let _ = self.shutdown.send(());
        drop(self.channel);
        self.task.await.expect("the server task joins").expect("the server stops cleanly");
        self.dir
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(self) -> TestServer {
        let dir = self.stop().await;
        Self::start_in(dir, test_config()).await
    }

    /// A `Ledger` client.
    pub fn ledger(&self) -> Ledger {
        pb::ledger_client::LedgerClient::new(self.channel.clone()).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// An `Accounts` client.
    pub fn accounts(&self) -> Accounts {
        pb::accounts_client::AccountsClient::new(self.channel.clone())
    }

    /// A `Ledger` client on a connection of its own. HTTP/2 flow control is per connection as
    /// well as per stream: a subscription its client does not read holds up every other stream
    /// of the same connection, so each subscriber gets its own, as a real one would.
    pub async fn ledger_on_own_connection(&self) -> Ledger {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .expect("a valid URL")
            .connect()
            .await
            .expect("the server accepts connections");
        pb::ledger_client::LedgerClient::new(channel).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// A `Ledger` client on a connection of its own, whose HTTP/2 receive windows (of each
    /// stream and of the connection) are `window` bytes: answers it leaves unread soon hold
    /// the server back.
    pub async fn ledger_with_receive_window(&self, window: u32) -> Ledger {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .expect("a valid URL")
            .initial_stream_window_size(window)
            .initial_connection_window_size(window)
            .connect()
            .await
            .expect("the server accepts connections");
        pb::ledger_client::LedgerClient::new(channel)
    }

    /// A `Privacy` client.
    pub fn privacy(&self) -> pb::privacy_client::PrivacyClient<Channel> {
        pb::privacy_client::PrivacyClient::new(self.channel.clone())
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A `Projections` client.
    pub fn projections(&self) -> Projections {
        pb::projections_client::ProjectionsClient::new(self.channel.clone())
    }

    /// The connection, for other services (health, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// The default configuration with the fixed clock.
pub fn test_config() -> ServerConfig {
    ServerConfig { clock: fixed_clock(), ..ServerConfig::default() }
}

/// One log that several servers write, as the nodes of a replicated log do: a [`MemoryLog`]
/// (which checks and stamps each write against the log as it stands, and tells every server
/// of every write), and one key store for every server, so that each opens what another sealed
/// and a retry through another server seals to the same bytes.
pub struct SharedLog {
    log: Arc<MemoryLog>,
    keys: Arc<rapport_keys::KeyStore>,
    _keys_dir: TempDir,
}

impl SharedLog {
    /// An empty log and a new key store.
    pub fn new() -> SharedLog {
        let keys_dir = tempfile::tempdir().expect("a temporary directory");
        SharedLog { log: Arc::new(MemoryLog::new()), keys: open_keys(keys_dir.path()), _keys_dir: keys_dir }
    }

    /// The test configuration, sealing with the shared key store.
    pub fn config(&self) -> ServerConfig {
        ServerConfig { keys: Some(Arc::clone(&self.keys)), ..test_config() }
    }

    /// A server over the shared log.
    pub async fn node(&self) -> TestServer {
        self.node_with(self.config()).await
    }

    /// A server over the shared log with this configuration (make it from [`SharedLog::config`]).
    pub async fn node_with(&self, config: ServerConfig) -> TestServer {
        TestServer::start_over(self.log.clone(), config).await
    }

    /// A server over the shared log seen through [`Hooked`], which holds its appends on demand.
    pub async fn hooked_node(&self) -> (TestServer, Arc<Hooked>) {
        let hooked = Arc::new(Hooked::new(self.log.clone()));
        (TestServer::start_over(hooked.clone(), self.config()).await, hooked)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading back.

/// Every event of a stream, oldest first.
pub async fn read_stream(ledger: &mut Ledger, account_id: &str) -> Vec<pb::RecordedEvent> {
    read_stream_with(ledger, pb::ReadStreamRequest { account_id: account_id.into(), ..Default::default() })
        .await
        .expect("the stream reads")
}

/// The events a `ReadStream` request returns, or its status.
pub async fn read_stream_with(
    ledger: &mut Ledger,
    request: pb::ReadStreamRequest,
) -> Result<Vec<pb::RecordedEvent>, tonic::Status> {
    collect(ledger.read_stream(request).await?.into_inner()).await
}

/// Every event of the log, in position order.
pub async fn read_all(ledger: &mut Ledger) -> Vec<pb::RecordedEvent> {
    read_all_with(ledger, 0, 0).await
}

/// The events a `ReadAll` request returns.
pub async fn read_all_with(ledger: &mut Ledger, from_position: u64, limit: u32) -> Vec<pb::RecordedEvent> {
    let stream = ledger
        .read_all(pb::ReadAllRequest { from_position, limit, ..Default::default() })
        .await
        .expect("ReadAll starts");
    collect(stream.into_inner()).await.expect("ReadAll streams")
}

async fn collect(mut stream: tonic::Streaming<pb::RecordedEvent>) -> Result<Vec<pb::RecordedEvent>, tonic::Status> {
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push(event);
    }
    Ok(events)
}

/// The account's view.
pub async fn get_account(accounts: &mut Accounts, account_id: &str) -> pb::AccountView {
    accounts
        .get_account(pb::GetAccountRequest { account_id: account_id.into(), ..Default::default() })
        .await
        .expect("the account exists")
        .into_inner()
}

// ---------------------------------------------------------------------------------------------
// Building requests.

/// An append request.
pub fn request(account_id: &str, expected: Expected, events: Vec<pb::Event>) -> pb::AppendRequest {
    pb::AppendRequest { account_id: account_id.into(), expected: Some(expected.into_wire()), events }
}

/// The expected-version clause, spelled for tests.
#[derive(Debug, Clone, Copy)]
pub enum Expected {
    Any,
    NoStream,
    StreamExists,
    Exact(u64),
}

impl Expected {
    fn into_wire(self) -> pb::ExpectedVersion {
        use pb::expected_version::Kind;
        let kind = match self {
            Expected::Any => Kind::Any(wkt::Empty {}),
            Expected::NoStream => Kind::NoStream(wkt::Empty {}),
            Expected::StreamExists => Kind::StreamExists(wkt::Empty {}),
            Expected::Exact(version) => Kind::Exact(version),
        };
        pb::ExpectedVersion { kind: Some(kind) }
    }
}

/// Days after 2025-01-01T00:00:00Z, as a wire timestamp: business times in tests.
pub fn day(n: i64) -> wkt::Timestamp {
    wkt::Timestamp { seconds: 1_735_689_600 + n * 86_400, nanos: 0 }
}

static NEXT_DAY: AtomicI64 = AtomicI64::new(0);

/// An event with a fresh id, recorded by `li.wei` from the CRM, on a later day than the
/// previous one built (so folds by time are unambiguous).
pub fn event(body: pb::event::Body) -> pb::Event {
    let day_number = NEXT_DAY.fetch_add(1, Ordering::Relaxed) % 300;
    pb::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: Some(day(day_number)),
        actor: "li.wei".into(),
        source: "crm".into(),
        body: Some(body),
        sealed: None,
    }
}

/// The same event at a given day.
pub fn on(day_number: i64, mut event: pb::Event) -> pb::Event {
    event.occurred_at = Some(day(day_number));
    event
}

use pb::event::Body;

pub fn opened(name: &str, owner: &str) -> pb::Event {
    event(Body::AccountOpened(pb::AccountOpened {
        name: name.into(),
        industry: "Manufacturing".into(),
        owner: owner.into(),
    }))
}

pub fn contact(contact_id: &str, department: &str, key: bool) -> pb::Event {
    event(Body::ContactAdded(pb::ContactAdded {
        contact_id: contact_id.into(),
        name: format!("Person {contact_id}"),
        title: "Director".into(),
        department: department.into(),
        role: pb::ContactRole::DecisionMaker as i32,
        key,
    }))
}

pub fn contact_left(contact_id: &str) -> pb::Event {
    event(Body::ContactLeft(pb::ContactLeft { contact_id: contact_id.into(), reason: "moved to a competitor".into() }))
}

pub fn signal(contact_id: &str, support: i32, intimacy: u32) -> pb::Event {
    event(Body::SupportSignal(pb::SupportSignal {
        contact_id: contact_id.into(),
        support,
        intimacy,
        evidence: "said so in the steering committee".into(),
    }))
}

pub fn meeting(staff: &[&str], contact_ids: &[&str]) -> pb::Event {
    event(Body::MeetingHeld(pb::MeetingHeld {
        staff: staff.iter().map(|s| s.to_string()).collect(),
        contact_ids: contact_ids.iter().map(|s| s.to_string()).collect(),
        kind: pb::MeetingKind::Visit as i32,
        topic: "Quarterly review".into(),
        notes: "Walked through the roadmap; they asked about delivery dates.".into(),
    }))
}

pub fn gift(giver: &str, contact_id: &str, value_minor: i64, currency: &str) -> pb::Event {
    event(Body::GiftGiven(pb::GiftGiven {
        giver: giver.into(),
        recipient_contact_id: contact_id.into(),
        description: "Book on supply chains".into(),
        value_minor,
        currency: currency.into(),
        approval_ref: "APR-1".into(),
    }))
}

pub fn owner_changed(from: &str, to: &str) -> pb::Event {
    event(Body::OwnerChanged(pb::OwnerChanged {
        from_owner: from.into(),
        to_owner: to.into(),
        reason: "rotation".into(),
        handover_note: "Key contacts introduced in person".into(),
    }))
}

pub fn tier(tier: pb::Tier) -> pb::Event {
    event(Body::TierAssigned(pb::TierAssigned { tier: tier as i32, reason: "strategic for 2026".into() }))
}

pub fn joined(member: &str, role: pb::TeamRole) -> pb::Event {
    event(Body::TeamMemberJoined(pb::TeamMemberJoined {
        member: member.into(),
        role: role as i32,
        business_unit: String::new(),
    }))
}

pub fn left_team(member: &str) -> pb::Event {
    event(Body::TeamMemberLeft(pb::TeamMemberLeft { member: member.into(), reason: "reassigned".into() }))
}

pub fn retracted(event_id: &str) -> pb::Event {
    event(Body::EventRetracted(pb::EventRetracted { event_id: event_id.into(), reason: "entered twice".into() }))
}

/// Opens `account_id` owned by `owner`, with key contacts `c1` (IT) and `c2` (Finance).
pub async fn open_account(ledger: &mut Ledger, account_id: &str, owner: &str) -> pb::AppendResponse {
    let events = vec![opened(account_id, owner), contact("c1", "IT", true), contact("c2", "Finance", true)];
    ledger.append(request(account_id, Expected::NoStream, events)).await.expect("the account opens").into_inner()
}

// ---------------------------------------------------------------------------------------------
// Projections and generated load.

/// The default rule set under another version, with the stance weight changed.
pub fn rules_variant(version: u32, support_weight: f64) -> String {
    let text = rapport_projection::DEFAULT_RULES.replacen("version = 1", &format!("version = {version}"), 1).replacen(
        "support_weight = 0.6",
        &format!("support_weight = {support_weight:?}"),
        1,
    );
    assert!(text.contains(&format!("version = {version}")), "the default rules changed shape");
    text
}

/// Rebuilds under `rules` and returns every progress message; the last one is the caught-up
/// one, with the digest.
pub async fn rebuild(projections: &mut Projections, rules: &str, from_scratch: bool) -> Vec<pb::RebuildProgress> {
    use futures::StreamExt;
    let mut stream = projections
        .rebuild(pb::RebuildRequest { rule_set: rules.into(), from_scratch })
        .await
        .expect("the rebuild starts")
        .into_inner();
    let mut steps = Vec::new();
    while let Some(step) = stream.next().await {
        steps.push(step.expect("progress arrives"));
    }
    let last = steps.last().expect("at least the final message");
    assert!(last.caught_up && !last.digest.is_empty(), "{last:?}");
    steps
}

/// Appends at least `total` generated events: `clients` concurrent clients, each with its own
/// workload of `accounts` accounts named `{prefix}{client}-{n}`, `per_request` events a request.
pub async fn generate(
    server: &TestServer,
    prefix: &str,
    clients: usize,
    accounts: usize,
    total: usize,
    per_request: usize,
) {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let mut ledger = server.ledger();
        let mut workload =
            rapport_demo::Workload::new(client as u64 + 7, accounts, NOW_SECONDS, &format!("{prefix}{client}"));
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < total / clients {
                let request = workload.next_request(per_request);
                sent += request.events.len();
                ledger.append(request).await.expect("generated events are accepted");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a generator joins");
    }
}

// ---------------------------------------------------------------------------------------------
// A log wrapper for tests that count or fail what the server asks of its store.

/// What [`Hooked`] does to the next calls.
pub mod fault {
    /// Pass everything through.
    pub const NONE: u8 = 0;
    /// `sync` fails: the disk is full.
    pub const SYNC_FULL: u8 = 1;
    /// `append` fails: the disk is full.
    pub const APPEND_FULL: u8 = 2;
    /// `sync` fails with an I/O error.
    pub const SYNC_IO: u8 = 3;
    /// `sync` waits until [`super::Hooked::release`] (saying it started on
    /// [`super::Hooked::syncs_held`]), so that the requests sent meanwhile form one group.
    pub const HELD_SYNC: u8 = 4;
    /// `append_all` waits until [`super::Hooked::release`] (saying it started on
    /// [`super::Hooked::appends_held`]) before it writes: the writer has decided its group
    /// against the log as it stood, and another writer may append meanwhile.
    pub const HELD_APPEND: u8 = 5;
    /// Reads of positions wait until [`super::Hooked::release`]: a start-up catch-up stays
    /// under way.
    pub const HELD_READ: u8 = 6;
}

/// A log behind the `EventLog` trait, counting the events read from it and failing or holding
/// on demand (see [`fault`]).
pub struct Hooked {
    pub log: Arc<dyn EventLog>,
    pub events_read: std::sync::atomic::AtomicU64,
    pub fault: std::sync::atomic::AtomicU8,
    /// Reads of the log that reach this position fail (0: none do), so that a rebuild stops
    /// short of it, wherever the clock is.
    pub reads_fail_from: std::sync::atomic::AtomicU64,
    /// The number of batches of each `append_all` call, in order.
    pub writes: std::sync::Mutex<Vec<usize>>,
    /// How many syncs have started waiting under [`fault::HELD_SYNC`].
    pub syncs_held: tokio::sync::watch::Sender<usize>,
    /// How many appends have started waiting under [`fault::HELD_APPEND`].
    pub appends_held: tokio::sync::watch::Sender<usize>,
    /// Set to let held calls go on.
    released: (std::sync::Mutex<bool>, std::sync::Condvar),
}

impl Hooked {
    pub fn new(log: Arc<dyn EventLog>) -> Hooked {
        Hooked {
            log,
            events_read: Default::default(),
            fault: Default::default(),
            reads_fail_from: Default::default(),
            writes: Default::default(),
            syncs_held: tokio::sync::watch::channel(0).0,
            appends_held: tokio::sync::watch::channel(0).0,
            released: Default::default(),
        }
    }

    /// Lets every held call, and every later one, go on.
    pub fn release(&self) {
        *self.released.0.lock().unwrap() = true;
        self.released.1.notify_all();
    }

    /// Counts the call on `held` and waits (on the writer thread) until the test releases it.
    fn hold(&self, held: &tokio::sync::watch::Sender<usize>) {
        held.send_modify(|held| *held += 1);
        let mut released = self.released.0.lock().unwrap();
        while !*released {
            released = self.released.1.wait(released).unwrap();
        }
    }

    fn count(&self, events: Vec<StoredEvent>) -> Vec<StoredEvent> {
        self.events_read.fetch_add(events.len() as u64, Ordering::Relaxed);
        events
    }
}

impl EventLog for Hooked {
    fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>> {
        self.writes.lock().unwrap().push(batches.len());
        match self.fault.load(Ordering::SeqCst) {
            fault::APPEND_FULL => {
                return batches
                    .iter()
                    .map(|_| Err(StoreError::Full("no space left on device (injected)".into())))
                    .collect();
            }
            fault::HELD_APPEND => self.hold(&self.appends_held),
            _ => {}
        }
        self.log.append_all(batches)
    }
    fn sync(&self) -> Result<(), StoreError> {
        match self.fault.load(Ordering::SeqCst) {
            fault::SYNC_FULL => Err(StoreError::Full("no space left on device (injected)".into())),
            fault::SYNC_IO => Err(StoreError::Io("input/output error (injected)".into())),
            fault::HELD_SYNC => {
                self.hold(&self.syncs_held);
                self.log.sync()
            }
            _ => self.log.sync(),
        }
    }
    fn last_position(&self) -> Result<u64, StoreError> {
        self.log.last_position()
    }
    fn stream_head(&self, account_id: &rapport_domain::AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.log.stream_head(account_id)
    }
    fn find_event(&self, event_id: &rapport_domain::EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.log.find_event(event_id)
    }
    // `read_all` and `read_stream` are the trait's: they select what to read and come here.
    fn read_positions(&self, positions: std::ops::Range<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        if self.fault.load(Ordering::SeqCst) == fault::HELD_READ {
            let mut released = self.released.0.lock().unwrap();
            while !*released {
                released = self.released.1.wait(released).unwrap();
            }
        }
        let fail_from = self.reads_fail_from.load(Ordering::SeqCst);
        if fail_from > 0 && positions.end > fail_from {
            return Err(StoreError::Io(format!("reading up to position {} failed (injected)", positions.end - 1)));
        }
        self.log.read_positions(positions).map(|e| self.count(e))
    }
    fn read_versions(
        &self,
        account_id: &rapport_domain::AccountId,
        versions: std::ops::Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.log.read_versions(account_id, versions, direction).map(|e| self.count(e))
    }
    fn on_foreign_appends(&self, notify: Box<dyn Fn() + Send + Sync>) {
        self.log.on_foreign_appends(notify)
    }
}

/// A server over the stores in a directory, the log seen through [`Hooked`]: for tests that count
/// what it reads or make its storage fail.
pub struct HookedServer {
    pub hooked: Arc<Hooked>,
    pub channel: Channel,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl HookedServer {
    /// Serves the stores in `dir` (the projections unhooked).
    pub async fn start(dir: &std::path::Path) -> HookedServer {
        Self::start_with(dir, test_config()).await
    }

    /// Like [`HookedServer::start`], with this configuration.
    pub async fn start_with(dir: &std::path::Path, config: ServerConfig) -> HookedServer {
        Self::start_failing_reads_from(dir, config, u64::MAX).await
    }

    /// Like [`HookedServer::start_with`], with reads failing from `position` on before the
    /// server reads anything.
    pub async fn start_failing_reads_from(dir: &std::path::Path, config: ServerConfig, position: u64) -> HookedServer {
        let hooked = Arc::new(Hooked::new(open_store(dir).0));
        hooked.reads_fail_from.store(position, Ordering::SeqCst);
        Self::start_hooked(dir, config, hooked, Vec::new()).await
    }

    /// A server over `hooked` (a hooked log of the stores in `dir`), with front doors.
    pub async fn start_hooked(
        dir: &std::path::Path,
        config: ServerConfig,
        hooked: Arc<Hooked>,
        doors: Vec<Box<dyn rapport_server::FrontDoor>>,
    ) -> HookedServer {
        let projections =
            SledProjections::open(&dir.join("projections")).map(Arc::new).expect("the projection store opens");
        let config = sealing(dir, config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = format!("http://{}", listener.local_addr().expect("the bound address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let log: Arc<dyn EventLog> = hooked.clone();
        let task = tokio::spawn(rapport_server::serve_with(
            listener,
            log,
            projections,
            config,
            async {
                let _ = stopped.await;
            },
            doors,
        ));
        let channel = tonic::transport::Endpoint::from_shared(address)
            .expect("a valid URL")
            .connect()
            .await
            .expect("the server accepts connections");
        HookedServer { hooked, channel, stop, task }
    }

    /// Stops the server gracefully.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        drop(self.channel);
        self.task.await.expect("the server task joins").expect("the server stops cleanly");
    }
}

// ---------------------------------------------------------------------------------------------
// Raw calls: any method, any bytes, any token.

/// A codec that sends and receives bytes as they are, so that tests can call any method by
/// its path with any payload, garbage included.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let remaining = bytes::Buf::remaining(buf);
        Ok(Some(bytes::Buf::copy_to_bytes(buf, remaining).to_vec()))
    }
}

/// Calls `path` (`/rapport.v1.Ledger/Append`) with `body` as the request message, with
/// `authorization: Bearer <token>` when a token is given. For a server-streaming method,
/// returns once the response headers arrive (with nothing, or with the status the call was
/// refused with).
pub async fn raw_call(
    channel: Channel,
    path: &str,
    server_streaming: bool,
    body: Vec<u8>,
    token: Option<&str>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path.to_owned()).expect("a method path");
    let mut request = tonic::Request::new(body);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("an ASCII token"));
    }
    if server_streaming {
        grpc.server_streaming(request, path, RawCodec).await?;
        Ok(Vec::new())
    } else {
        Ok(grpc.unary(request, path, RawCodec).await?.into_inner())
    }
}

/// Adds `authorization: Bearer <token>` to every request of a generated client.
pub fn bearer(token: &str) -> impl tonic::service::Interceptor + Clone {
    let value: tonic::metadata::AsciiMetadataValue = format!("Bearer {token}").parse().expect("an ASCII token");
    move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", value.clone());
        Ok(request)
    }
}

/// A web console on a loopback port the OS picks, and its URL.
pub async fn console() -> (Box<dyn rapport_server::FrontDoor>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("the bound address"));
    (Box::new(rapport_console::Console::new(listener)), url)
}
