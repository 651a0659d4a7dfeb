//! Rapport under test: the real server (`rapport_server::serve`) on its stores (the segment
//! log, or a NATS cluster's stream; projections on sled) in a temporary directory, listening on
//! a loopback port; clients are the generated tonic clients, one connection each.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use rapport_nats::{KeyStream, NatsLog, NatsOptions};
use rapport_proto::v1 as pb;
use rapport_segments::SegmentLog;
use rapport_server::ServerConfig;
use rapport_sled::SledProjections;
use rapport_store::EventLog;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::load::{Ledger, Refused, Served, System};

/// The log a benchmarked server writes to.
#[derive(Debug, Clone)]
pub enum Log {
    /// The segment log, in the server's directory.
    Segments,
    /// A stream of a NATS cluster.
    Nats(NatsOptions),
}

/// A running server.
pub struct Rapport {
    address: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), rapport_server::ServeError>>>,
}

impl Rapport {
    /// Opens the stores in `dir` (as `rapport serve` lays them out, its key store too) and
    /// serves them, personal data sealed; returns once a health check answers, with the time
    /// that took.
    pub async fn start(dir: &Path) -> anyhow::Result<(Rapport, Duration)> {
        Self::start_sealing(dir, true).await
    }

    /// [`Rapport::start`], with personal data sealed or (`sealed: false`, only to measure what
    /// sealing costs) kept in clear.
    pub async fn start_sealing(dir: &Path, sealed: bool) -> anyhow::Result<(Rapport, Duration)> {
        Self::start_on(dir, Log::Segments, sealed).await
    }

    /// [`Rapport::start_sealing`] on the log `log`: the segment log in `dir`, or a stream of a
    /// NATS cluster (the projections and the key store are in `dir` either way).
    pub async fn start_on(dir: &Path, log: Log, sealed: bool) -> anyhow::Result<(Rapport, Duration)> {
        let began = Instant::now();
        let path = dir.to_owned();
        let (log, projections, keys) = tokio::task::spawn_blocking(move || {
            let keys = if sealed {
                let opened = rapport_keys::KeyStore::open(&path.join("keys"), rapport_keys::MasterKeySource::Default)?;
                Some(Arc::new(opened.store))
            } else {
                None
            };
            let log: Arc<dyn EventLog> = match log {
                Log::Segments => Arc::new(SegmentLog::open(&path.join("log"))?),
                Log::Nats(options) => {
                    // As `rapport serve` runs on a cluster: the data keys shared through the
                    // key stream, so a new contact's key is agreed with the cluster.
                    if let Some(keys) = &keys {
                        KeyStream::open(&options, Arc::clone(keys))?;
                    }
                    Arc::new(NatsLog::open(&options)?)
                }
            };
            anyhow::Ok((log, Arc::new(SledProjections::open(&path.join("projections"))?), keys))
        })
        .await??;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let config = ServerConfig { keys, ..ServerConfig::default() };
        let task = tokio::spawn(rapport_server::serve(listener, log, projections, config, async {
            let _ = stopped.await;
        }));
        let channel = connect(address).await?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
        Ok((Rapport { address, stop: Some(stop), task: Some(task) }, began.elapsed()))
    }

    /// Stops the server gracefully (it syncs the log and checkpoints the projections).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await?.context("the server stopped with an error")?;
        }
        Ok(())
    }

    /// Rebuilds the projection under `rules` (TOML) and returns the events per second the
    /// server reported for the whole rebuild.
    pub async fn rebuild(&self, rules: &str) -> anyhow::Result<f64> {
        let channel = connect(self.address).await?;
        let mut projections = pb::projections_client::ProjectionsClient::new(channel);
        let began = Instant::now();
        let mut progress = projections
            .rebuild(pb::RebuildRequest { rule_set: rules.to_owned(), from_scratch: true })
            .await?
            .into_inner();
        let mut done = 0;
        while let Some(step) = progress.next().await {
            done = step?.events_done;
        }
        Ok(done as f64 / began.elapsed().as_secs_f64())
    }
}

/// What scenario 9 times: the first listing (which scores every account), then default pages
/// and at-risk pages, one after another.
#[derive(Debug, Clone)]
pub struct Listings {
    /// The first listing, in milliseconds.
    pub first_ms: f64,
    /// Each default page after it, sorted.
    pub pages: Vec<Duration>,
    /// Each page of at-risk accounts, sorted.
    pub at_risk: Vec<Duration>,
}

impl Rapport {
    /// Times `pages` default pages of `ListAccounts` and `at_risk` pages of at-risk accounts,
    /// after timing the first listing.
    pub async fn listings(&self, pages: usize, at_risk: usize) -> anyhow::Result<Listings> {
        let mut accounts = pb::accounts_client::AccountsClient::new(connect(self.address).await?);
        let began = Instant::now();
        accounts.list_accounts(pb::ListAccountsRequest::default()).await?;
        let first_ms = began.elapsed().as_secs_f64() * 1_000.0;
        let mut time = async |request: pb::ListAccountsRequest, times: usize| -> anyhow::Result<Vec<Duration>> {
            let mut taken = Vec::with_capacity(times);
            for _ in 0..times {
                let began = Instant::now();
                accounts.list_accounts(request.clone()).await?;
                taken.push(began.elapsed());
            }
            taken.sort();
            Ok(taken)
        };
        let pages = time(pb::ListAccountsRequest::default(), pages).await?;
        let at_risk = time(pb::ListAccountsRequest { at_risk: true, ..Default::default() }, at_risk).await?;
        Ok(Listings { first_ms, pages, at_risk })
    }
}

/// What a subscriber of scenario 10 reads of each `SubscribeResponse`: an event's position,
/// every other field skipped undecoded. The subscribers share the machine (and its 2 cores)
/// with the server; decoding every event in full, 50 of them spent about half the CPU of a run
/// (`perf`, 2026-12-04), which measured the clients more than the server. A consumer doing
/// anything with the events would do it on its own machine.
#[derive(Clone, PartialEq, prost::Message)]
struct Arrival {
    /// `SubscribeResponse.event`.
    #[prost(message, optional, tag = "1")]
    event: Option<Arrived>,
}

/// `RecordedEvent.position`, and nothing else of it.
#[derive(Clone, PartialEq, prost::Message)]
struct Arrived {
    #[prost(uint64, tag = "3")]
    position: u64,
}

/// Live subscribers reading everything, each on a connection of its own, as a consumer of the
/// log would (scenario 10); they read only each event's position ([`Arrival`]).
pub struct Watching {
    /// The position of the last event each subscriber received.
    received: Vec<Arc<AtomicU64>>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// How far behind the subscribers were when the load stopped, and how long the slowest took
/// to catch up.
#[derive(Debug, Clone, Copy)]
pub struct Lag {
    /// Events the slowest subscriber had still to receive when the load stopped.
    pub behind: u64,
    /// From the load's end until every subscriber had received the last event.
    pub caught_up_in: Duration,
}

impl Rapport {
    /// Starts `subscribers` subscriptions from the start of the log, each reading every event.
    pub async fn watch(&self, subscribers: usize) -> anyhow::Result<Watching> {
        let mut watching = Watching { received: Vec::new(), tasks: Vec::new() };
        for _ in 0..subscribers {
            let mut grpc = tonic::client::Grpc::new(connect(self.address).await?);
            grpc.ready().await?;
            let request = tonic::Request::new(pb::SubscribeRequest { from_position: 1, ..Default::default() });
            let path = tonic::codegen::http::uri::PathAndQuery::from_static("/rapport.v1.Ledger/Subscribe");
            let codec = rapport_proto::codec::Codec::<pb::SubscribeRequest, Arrival>::default();
            let mut stream = grpc.server_streaming(request, path, codec).await?.into_inner();
            let received = Arc::new(AtomicU64::new(0));
            let last = Arc::clone(&received);
            watching.tasks.push(tokio::spawn(async move {
                while let Some(message) = stream.next().await {
                    if let Some(event) = message?.event {
                        last.store(event.position, Ordering::Release);
                    }
                }
                anyhow::Ok(())
            }));
            watching.received.push(received);
        }
        Ok(watching)
    }

    /// The position of the log's last event: one read from `from`, through the end.
    pub async fn head(&self, from: u64) -> anyhow::Result<u64> {
        let mut ledger = pb::ledger_client::LedgerClient::new(connect(self.address).await?)
            .max_decoding_message_size(64 * 1024 * 1024);
        let mut events =
            ledger.read_all(pb::ReadAllRequest { from_position: from, ..Default::default() }).await?.into_inner();
        let mut head = from.saturating_sub(1);
        while let Some(event) = events.next().await {
            head = event?.position;
        }
        Ok(head)
    }
}

impl Watching {
    /// Called as the load stops: how far behind the slowest subscriber is, and how long until
    /// every one has received the log's last event (at most `patience`); then ends them.
    pub async fn lag(self, rapport: &Rapport, patience: Duration) -> anyhow::Result<Lag> {
        let stopped = Instant::now();
        if self.received.is_empty() {
            return Ok(Lag { behind: 0, caught_up_in: Duration::ZERO });
        }
        let slowest = || self.received.iter().map(|r| r.load(Ordering::Acquire)).min().unwrap_or(0);
        let at_stop = slowest();
        let fastest = self.received.iter().map(|r| r.load(Ordering::Acquire)).max().unwrap_or(0);
        let head = rapport.head(fastest + 1).await?;
        while slowest() < head {
            if let Some(ended) = self.tasks.iter().position(|task| task.is_finished()) {
                let task = self.tasks.into_iter().nth(ended).ok_or_else(|| anyhow::anyhow!("a subscriber ended"))?;
                task.await??;
                anyhow::bail!("a subscription ended at {} of {head}", slowest());
            }
            anyhow::ensure!(
                stopped.elapsed() < patience,
                "a subscriber is still at {} of {head} after {patience:?}",
                slowest()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let caught_up_in = stopped.elapsed();
        for task in &self.tasks {
            task.abort();
        }
        Ok(Lag { behind: head - at_stop, caught_up_in })
    }
}

impl Drop for Rapport {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A connection to the server at `address`.
pub(crate) async fn connect(address: std::net::SocketAddr) -> anyhow::Result<Channel> {
    Ok(tonic::transport::Endpoint::from_shared(format!("http://{address}"))?.connect().await?)
}

/// One client: its own connection.
pub struct RapportClient {
    ledger: pb::ledger_client::LedgerClient<Channel>,
    accounts: pb::accounts_client::AccountsClient<Channel>,
}

impl RapportClient {
    /// A client of the server at `address`, on a connection of its own.
    pub async fn connect(address: std::net::SocketAddr) -> anyhow::Result<RapportClient> {
        let channel = connect(address).await?;
        Ok(RapportClient {
            ledger: pb::ledger_client::LedgerClient::new(channel.clone()),
            accounts: pb::accounts_client::AccountsClient::new(channel),
        })
    }
}

impl System for Rapport {
    type Client = RapportClient;

    async fn connect(&self) -> anyhow::Result<RapportClient> {
        RapportClient::connect(self.address).await
    }
}

impl Served for Rapport {
    fn address(&self) -> std::net::SocketAddr {
        self.address
    }
}

impl Ledger for RapportClient {
    async fn append(&mut self, request: pb::AppendRequest) -> Result<(), Refused> {
        match self.ledger.append(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                let current = status
                    .get_details_error_info()
                    .and_then(|info| info.metadata.get("current_version").and_then(|v| v.parse().ok()));
                match current {
                    Some(current) => Err(Refused::Conflict { current }),
                    None => Err(Refused::Failed(anyhow::anyhow!("a conflict without the current version: {status:?}"))),
                }
            }
            Err(status) => Err(Refused::Failed(anyhow::anyhow!("append failed: {status:?}"))),
        }
    }

    async fn get_account(&mut self, account_id: &str) -> anyhow::Result<()> {
        let request = pb::GetAccountRequest { account_id: account_id.to_owned(), ..Default::default() };
        self.accounts.get_account(request).await?;
        Ok(())
    }
}
