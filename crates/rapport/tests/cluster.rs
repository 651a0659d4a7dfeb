//! The `nats` engine under faults: real `rapport serve` nodes on a real three-node NATS
//! JetStream cluster (`nats-server` from PyPI, started by the test on loopback ports), clients
//! appending through both nodes and retrying with the same event ids wherever they can.
//!
//! Each cycle kills one thing with SIGKILL while the clients append, and starts it again:
//! a NATS node that does not lead the stream, the stream's leader, or a Rapport node. After
//! every cycle, through both Rapport nodes, the checks of `crash.rs`: every acknowledged event
//! is present exactly once where it was acknowledged, positions are gap-free, `Verify` is
//! intact, and the served projection equals a fresh rebuild.
//!
//! And the quorum: with two of the three NATS nodes down, appends fail with `UNAVAILABLE`
//! (nothing is acknowledged without a quorum) while reads of projected state keep working.
//!
//! CI runs `RAPPORT_CLUSTER_CYCLES` cycles (default 3: one of each fault); a soak runs more:
//! `RAPPORT_CLUSTER_CYCLES=60 cargo test --release -p rapport --test cluster -- --nocapture`.
//! With `--nocapture` the tests print their figures (cycles, events, requests in flight at the
//! kills, stalls), which README.md's "Cluster" section reports.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::Server;
use common::checks::{Acknowledged, check, next, record};
use rapport_nats::cluster::Cluster;
use rapport_proto::v1 as pb;
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

const STREAM: &str = "RAPPORT";
const NOW: i64 = 1_767_225_600;
/// How long a client keeps retrying one request before the test fails.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// A cluster, Rapport nodes on it (each with its own data directory, one master key), and the
/// nodes' current URLs, which the clients read before every try.
struct Deployment {
    cluster: Cluster,
    dir: tempfile::TempDir,
    nodes: Vec<Option<Server>>,
    urls: Arc<RwLock<Vec<String>>>,
}

impl Deployment {
    fn start(rapport_nodes: usize) -> Deployment {
        let cluster = Cluster::start(3).expect("the NATS cluster starts");
        // Made here, where a young cluster is asked again until it can: the nodes then find it.
        drop(cluster.open_log(STREAM).expect("the stream is made"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("master.key"), "ab".repeat(32)).unwrap();
        let mut deployment = Deployment {
            cluster,
            dir,
            nodes: (0..rapport_nodes).map(|_| None).collect(),
            urls: Arc::new(RwLock::new(vec![String::new(); rapport_nodes])),
        };
        for node in 0..rapport_nodes {
            deployment.start_node(node);
        }
        deployment
    }

    fn data_dir(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("node{node}"))
    }

    fn start_node(&mut self, node: usize) {
        let (urls, master) = (self.cluster.urls(), self.dir.path().join("master.key"));
        let options = ["--log-engine", "nats", "--nats-url", &urls, "--nats-stream", STREAM, "--master-key-file"];
        let mut options: Vec<&str> = options.to_vec();
        let master = master.to_string_lossy().into_owned();
        options.push(&master);
        let server = Server::start_with(&self.data_dir(node), &options);
        self.urls.write().unwrap()[node].clone_from(&server.url);
        self.nodes[node] = Some(server);
    }

    fn kill_node(&mut self, node: usize) {
        self.urls.write().unwrap()[node].clear();
        if let Some(mut server) = self.nodes[node].take() {
            server.child.kill().expect("SIGKILL");
            server.child.wait().expect("the killed node is reaped");
        }
    }

    fn node(&self, node: usize) -> &Server {
        self.nodes[node].as_ref().expect("the node runs")
    }
}

/// A client of every node, trying them in turn.
struct Client {
    urls: Arc<RwLock<Vec<String>>>,
    channels: HashMap<String, Channel>,
    preferred: usize,
}

/// What one request took.
struct Sent {
    reply: pb::AppendResponse,
    /// Tries it took; more than one means a fault caught it in flight.
    tries: u32,
}

impl Client {
    fn new(urls: &Arc<RwLock<Vec<String>>>, preferred: usize) -> Client {
        Client { urls: Arc::clone(urls), channels: HashMap::new(), preferred }
    }

    /// Appends `request`, retrying it with the same event ids on the next node after any
    /// failure (a node down, no quorum, a leader being elected), as a client of a cluster does.
    async fn append(&mut self, request: &pb::AppendRequest) -> Sent {
        let began = Instant::now();
        let mut tries = 0;
        loop {
            assert!(began.elapsed() < RETRY_FOR, "a request found no node to take it within {RETRY_FOR:?}");
            let urls = self.urls.read().unwrap().clone();
            let url = urls[(self.preferred + tries as usize) % urls.len()].clone();
            tries += 1;
            if url.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let channel = match self.channels.get(&url) {
                Some(channel) => channel.clone(),
                None => match Endpoint::from_shared(url.clone())
                    .unwrap()
                    .connect_timeout(Duration::from_secs(1))
                    .connect()
                    .await
                {
                    Ok(channel) => {
                        self.channels.insert(url.clone(), channel.clone());
                        channel
                    }
                    Err(_) => continue,
                },
            };
            let mut ledger = pb::ledger_client::LedgerClient::new(channel);
            match tokio::time::timeout(Duration::from_secs(15), ledger.append(request.clone())).await {
                Ok(Ok(reply)) => return Sent { reply: reply.into_inner(), tries },
                Ok(Err(status)) => {
                    let retryable = matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                    );
                    assert!(retryable, "a request was refused for good: {status}");
                    self.channels.remove(&url);
                }
                Err(_) => {
                    self.channels.remove(&url);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Counters the clients share.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    /// Requests a fault caught in flight: they took more than one try.
    retried: AtomicU64,
    /// Retries the ledger answered `duplicate: true`: the first try had landed.
    duplicates: AtomicU64,
    /// Milliseconds since the test began of the latest acknowledgement.
    last_ack_ms: AtomicU64,
    /// When each acknowledgement came, in milliseconds since the test began.
    acks_ms: std::sync::Mutex<Vec<u64>>,
}

impl Tally {
    /// The longest time without an acknowledgement from `from_ms` until `to_ms`: how long
    /// appends stalled.
    fn longest_stall(&self, from_ms: u64, to_ms: u64) -> u64 {
        let mut acks: Vec<u64> =
            self.acks_ms.lock().unwrap().iter().copied().filter(|&t| (from_ms..=to_ms).contains(&t)).collect();
        acks.sort_unstable();
        acks.windows(2).map(|w| w[1] - w[0]).chain(acks.first().map(|first| first - from_ms)).max().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_under_load_lose_nothing_acknowledged_and_write_nothing_twice() {
    let cycles: u64 = std::env::var("RAPPORT_CLUSTER_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut deployment = tokio::task::spawn_blocking(|| Deployment::start(2)).await.unwrap();
    let acknowledged = Arc::new(Mutex::new(Acknowledged::new()));
    let tally = Arc::new(Tally::default());
    let began = Instant::now();
    // Four clients, two preferring each node, each with its own accounts and a workload that
    // lives across cycles; singles and batches.
    let workloads: Vec<Arc<Mutex<rapport_demo::Workload>>> = (0..4u64)
        .map(|c| Arc::new(Mutex::new(rapport_demo::Workload::new(c + 1, 8, NOW, &format!("fault{c}")))))
        .collect();
    let mut random = 0x2545_F491_4F6C_DD1D_u64;
    let mut stalls = Vec::new();
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = workloads
            .iter()
            .enumerate()
            .map(|(c, workload)| {
                let mut client = Client::new(&deployment.urls, c % 2);
                let (workload, acknowledged, tally, stop) =
                    (Arc::clone(workload), Arc::clone(&acknowledged), Arc::clone(&tally), Arc::clone(&stop));
                let batch = if c < 2 { 1 } else { 20 };
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let request = workload.lock().await.next_request(batch);
                        let sent = client.append(&request).await;
                        record(&mut *acknowledged.lock().await, &request, &sent.reply);
                        tally.requests.fetch_add(1, Ordering::Relaxed);
                        if sent.tries > 1 {
                            tally.retried.fetch_add(1, Ordering::Relaxed);
                        }
                        if sent.reply.duplicate {
                            tally.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        let now_ms = began.elapsed().as_millis() as u64;
                        tally.last_ack_ms.fetch_max(now_ms, Ordering::Relaxed);
                        tally.acks_ms.lock().unwrap().push(now_ms);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500 + next(&mut random) % 500)).await;
        let fault = match cycle % 3 {
            0 => {
                let leader = deployment.cluster.leader_of(STREAM).await.unwrap_or(0);
                let victim = (leader + 1 + (next(&mut random) % 2) as usize) % 3;
                deployment.cluster.kill(victim);
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                deployment.cluster.restart(victim).unwrap();
                format!("NATS node {} (a follower)", victim + 1)
            }
            1 => {
                let leader = deployment.cluster.leader_of(STREAM).await.expect("the stream has a leader");
                let killed_ms = began.elapsed().as_millis() as u64;
                deployment.cluster.kill(leader);
                // Appends resume on the new leader; then a while longer, to see them flow again.
                let waited = Instant::now();
                while tally.last_ack_ms.load(Ordering::Relaxed) <= killed_ms + 100 {
                    assert!(waited.elapsed() < Duration::from_secs(30), "appends did not resume within 30 s");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let stall = tally.longest_stall(killed_ms, began.elapsed().as_millis() as u64);
                stalls.push(stall);
                deployment.cluster.restart(leader).unwrap();
                format!(
                    "NATS node {} (the stream's leader; the longest wait for an acknowledgement: {stall} ms)",
                    leader + 1
                )
            }
            _ => {
                let node = ((cycle / 3) % 2) as usize;
                deployment.kill_node(node);
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                tokio::task::block_in_place(|| deployment.start_node(node));
                format!("Rapport node {}", node + 1)
            }
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.expect("a client joins");
        }
        let acknowledged = acknowledged.lock().await.clone();
        let end = acknowledged.values().map(|(_, _, position)| *position).max().unwrap_or(0);
        for node in 0..2 {
            read_up_to(deployment.node(node), end).await;
            check(deployment.node(node), &acknowledged, cycle).await;
        }
        assert_same_accounts(&deployment).await;
        println!(
            "cycle {}: killed {fault}; {} events acknowledged, {} requests so far, {} caught in flight and retried \
             ({} answered duplicate), lost 0",
            cycle + 1,
            acknowledged.len(),
            tally.requests.load(Ordering::Relaxed),
            tally.retried.load(Ordering::Relaxed),
            tally.duplicates.load(Ordering::Relaxed),
        );
    }
    println!(
        "{cycles} fault cycles: {} events, {} requests, {} in flight at the kills and retried, {} of them \
         duplicates, lost 0; longest waits for an acknowledgement after killing the leader: {stalls:?} ms",
        acknowledged.lock().await.len(),
        tally.requests.load(Ordering::Relaxed),
        tally.retried.load(Ordering::Relaxed),
        tally.duplicates.load(Ordering::Relaxed),
    );
}

/// Waits until `server` has read the log up to `position`: a read with that `min_position`,
/// which the node answers once it has (or with `UNAVAILABLE` after its wait, when it is asked
/// again).
async fn read_up_to(server: &Server, position: u64) {
    let mut ledger = pb::ledger_client::LedgerClient::new(common::checks::channel(server).await);
    let began = Instant::now();
    loop {
        let request = pb::ReadAllRequest { from_position: position, limit: 1, min_position: position };
        match ledger.read_all(request).await {
            Ok(read) => {
                let mut read = read.into_inner();
                assert!(read.message().await.unwrap().is_some(), "{} has read position {position}", server.url);
                return;
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {}
            Err(status) => panic!("{}: {status}", server.url),
        }
        assert!(began.elapsed() < Duration::from_secs(30), "{} did not read up to position {position}", server.url);
    }
}

/// Both nodes show every account at the same version, with the same contacts.
async fn assert_same_accounts(deployment: &Deployment) {
    let mut views: Vec<BTreeMap<String, (u64, usize)>> = Vec::new();
    for node in 0..2 {
        let channel = common::checks::channel(deployment.node(node)).await;
        let mut accounts = pb::accounts_client::AccountsClient::new(channel);
        let page = accounts
            .list_accounts(pb::ListAccountsRequest { page_size: 1_000, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let mut view = BTreeMap::new();
        for summary in page.accounts {
            let account = accounts
                .get_account(pb::GetAccountRequest { account_id: summary.account_id.clone(), ..Default::default() })
                .await
                .unwrap()
                .into_inner();
            view.insert(summary.account_id, (account.version, account.contacts.len()));
        }
        views.push(view);
    }
    assert_eq!(views[0], views[1], "both nodes show the same accounts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_appends_are_unavailable_and_reads_keep_working() {
    let mut deployment = tokio::task::spawn_blocking(|| Deployment::start(1)).await.unwrap();
    let mut workload = rapport_demo::Workload::new(9, 2, NOW, "quorum");
    let mut client = Client::new(&deployment.urls, 0);
    let opened = workload.next_request_for(0, 5);
    client.append(&opened).await;
    let channel = common::checks::channel(deployment.node(0)).await;
    let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
    let mut accounts = pb::accounts_client::AccountsClient::new(channel);

    let leader = deployment.cluster.leader_of(STREAM).await.expect("the stream has a leader");
    deployment.cluster.kill(leader);
    deployment.cluster.kill((leader + 1) % 3);
    let request = workload.next_request_for(0, 3);
    let asked = Instant::now();
    let refused = ledger.append(request.clone()).await.expect_err("no quorum, no acknowledgement");
    let refused_after = asked.elapsed();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    // Reads of what the node has projected keep working.
    let account = accounts
        .get_account(pb::GetAccountRequest { account_id: opened.account_id.clone(), ..Default::default() })
        .await
        .expect("a read without a quorum")
        .into_inner();
    assert_eq!(account.version, 5);
    let listed = accounts.list_accounts(pb::ListAccountsRequest::default()).await.expect("a listing").into_inner();
    assert_eq!(listed.accounts.len(), 1);

    // One node back is a quorum again: the same request, retried, lands once.
    deployment.cluster.restart(leader).unwrap();
    let back = Instant::now();
    let sent = client.append(&request).await;
    let recovered_after = back.elapsed();
    assert_eq!(sent.reply.first_version, 6);
    let mut read = ledger
        .read_stream(pb::ReadStreamRequest { account_id: opened.account_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut versions = Vec::new();
    while let Some(event) = read.message().await.unwrap() {
        versions.push(event.version);
    }
    assert_eq!(versions, (1..=8).collect::<Vec<_>>(), "the retried request is in the log once");
    println!(
        "two of three NATS nodes down: an append answered UNAVAILABLE after {} ms, reads kept working; with one \
         back, the retried append landed {} ms later ({} tries)",
        refused_after.as_millis(),
        recovered_after.as_millis(),
        sent.tries
    );
}

/// Two nodes taking appends at once, to accounts each client has to itself and to accounts
/// clients of both nodes share: positions gap-free, each account's versions 1..n, every
/// acknowledged event once, the same through either node; a contact added through one node
/// shows by name through the other (the nodes share their data keys); and of two appends with
/// the same exact expected version through the two nodes, one lands and the other is refused
/// with the current version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_take_concurrent_appends_to_shared_and_own_accounts() {
    let deployment = tokio::task::spawn_blocking(|| Deployment::start(2)).await.unwrap();
    let acknowledged = Arc::new(Mutex::new(Acknowledged::new()));
    // The shared accounts, opened through node 1.
    let mut opener = rapport_demo::Workload::new(77, 3, NOW, "shared");
    let mut client = Client::new(&deployment.urls, 0);
    let mut opened = Vec::new();
    for account in 0..3 {
        let request = opener.next_request_for(account, 4);
        let sent = client.append(&request).await;
        record(&mut *acknowledged.lock().await, &request, &sent.reply);
        opened.push(request);
    }
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let mut client = Client::new(&deployment.urls, (c % 2) as usize);
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                let mut own = rapport_demo::Workload::new(c + 10, 3, NOW, &format!("own{c}"));
                let mut touches = rapport_demo::Workload::new(c + 20, 1, NOW, "touches");
                for n in 0..40u64 {
                    let request = if n % 2 == 0 {
                        own.next_request(1 + (n % 5) as usize)
                    } else {
                        pb::AppendRequest {
                            account_id: format!("shared-{}", n % 3),
                            expected: None,
                            events: touches.touches(1 + (n % 3) as usize),
                        }
                    };
                    let sent = client.append(&request).await;
                    record(&mut *acknowledged.lock().await, &request, &sent.reply);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    let end = acknowledged.values().map(|(_, _, position)| *position).max().unwrap();
    for node in 0..2 {
        read_up_to(deployment.node(node), end).await;
        check(deployment.node(node), &acknowledged, 0).await;
    }
    assert_same_accounts(&deployment).await;
    // Versions 1..n per account, through the node that did not open the shared ones.
    let mut ledger = pb::ledger_client::LedgerClient::new(common::checks::channel(deployment.node(1)).await);
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut read = ledger.read_all(pb::ReadAllRequest::default()).await.unwrap().into_inner();
    while let Some(event) = read.message().await.unwrap() {
        versions.entry(event.account_id.clone()).or_default().push(event.version);
    }
    for (account, versions) in &versions {
        assert_eq!(versions, &(1..=versions.len() as u64).collect::<Vec<_>>(), "{account}");
    }
    assert_eq!(versions.len(), 3 + 4 * 3, "three shared accounts and three of each client's own");

    // Names sealed through node 1 open through node 2.
    let mut accounts = pb::accounts_client::AccountsClient::new(common::checks::channel(deployment.node(1)).await);
    let shared = accounts
        .get_account(pb::GetAccountRequest { account_id: "shared-0".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let added: Vec<String> = opened[0]
        .events
        .iter()
        .filter_map(|event| match &event.body {
            Some(pb::event::Body::ContactAdded(added)) => Some(added.name.clone()),
            _ => None,
        })
        .collect();
    let shown: Vec<String> = shared.contacts.iter().map(|contact| contact.name.clone()).collect();
    assert!(!added.is_empty() && added.iter().all(|name| shown.contains(name)), "{added:?} shown as {shown:?}");

    // The same exact expected version through both nodes at once: one lands, one is refused.
    let head = *versions["shared-1"].last().unwrap();
    let race = |node: usize, seed: u64| {
        let url = deployment.node(node).url.clone();
        let events = rapport_demo::Workload::new(seed, 1, NOW, "race").touches(2);
        async move {
            let mut ledger =
                pb::ledger_client::LedgerClient::new(Endpoint::from_shared(url).unwrap().connect().await.unwrap());
            let expected = pb::ExpectedVersion { kind: Some(pb::expected_version::Kind::Exact(head)) };
            ledger.append(pb::AppendRequest { account_id: "shared-1".into(), expected: Some(expected), events }).await
        }
    };
    let (first, second) = tokio::join!(race(0, 101), race(1, 102));
    let (landed, refused) = match (first, second) {
        (Ok(landed), Err(refused)) | (Err(refused), Ok(landed)) => (landed.into_inner(), refused),
        other => panic!("exactly one of two racing appends lands: {other:?}"),
    };
    assert_eq!(landed.first_version, head + 1);
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains(&format!("version {}", head + 2)), "names the current version: {refused}");

    // A contact forgotten through node 1 is forgotten through node 2: its key is gone there too.
    let contact_id = opened[0]
        .events
        .iter()
        .find_map(|event| match &event.body {
            Some(pb::event::Body::ContactAdded(added)) => Some(added.contact_id.clone()),
            _ => None,
        })
        .unwrap();
    let mut privacy = pb::privacy_client::PrivacyClient::new(common::checks::channel(deployment.node(0)).await);
    let erasure = privacy
        .forget_contact(pb::ForgetContactRequest {
            account_id: "shared-0".into(),
            contact_id: contact_id.clone(),
            reason: "DSR-2026-0142".into(),
            requested_by: "dpo@example.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let through_other = accounts
        .get_account(pb::GetAccountRequest {
            account_id: "shared-0".into(),
            min_position: erasure.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let contact = through_other.contacts.iter().find(|c| c.contact_id == contact_id).unwrap();
    assert!(contact.forgotten && !added.contains(&contact.name), "forgotten through the other node: {contact:?}");
}
