//! The load generator: N concurrent clients, each with its own connection, sending the demo
//! generator's requests to a [`System`] for a set time, timing every request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rapport_proto::{v1 as pb, wkt};

use crate::NOW;

/// Why an append was not acknowledged.
#[derive(Debug)]
pub enum Refused {
    /// The stream was not at the expected version; it is at `current`.
    Conflict {
        /// The stream's version.
        current: u64,
    },
    /// Anything else: the benchmark stops.
    Failed(anyhow::Error),
}

/// One client's connection to a system under test.
pub trait Ledger: Send + 'static {
    /// Appends a request; returns once it is durable.
    fn append(&mut self, request: pb::AppendRequest) -> impl Future<Output = Result<(), Refused>> + Send;
    /// Reads an account's current state and scores.
    fn get_account(&mut self, account_id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A running system under test.
pub trait System: Send + Sync + 'static {
    /// Its clients.
    type Client: Ledger;
    /// A new client with a connection of its own.
    fn connect(&self) -> impl Future<Output = anyhow::Result<Self::Client>> + Send;
}

/// A system that serves the Rapport contract on a loopback address (Rapport, the null
/// service): what [`streamed_appends`] drives.
pub trait Served: System {
    /// Where it listens.
    fn address(&self) -> std::net::SocketAddr;
}

/// What a measurement saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Events acknowledged.
    pub events: u64,
    /// Requests refused for a version conflict (and retried).
    pub conflicts: u64,
    /// Wall time of the measurement.
    pub elapsed: Duration,
    /// Every acknowledged request's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl Outcome {
    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0.5, 0.99, 0.999), in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies, q)
    }

    fn merge(&mut self, other: Outcome) {
        self.events += other.events;
        self.conflicts += other.conflicts;
        self.latencies.extend(other.latencies);
    }
}

/// The latency at quantile `q` of sorted latencies, in milliseconds (nearest rank).
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1_000.0
}

/// `clients` clients append `batch`-event requests to accounts of their own for `duration`.
/// `prefix` keeps the accounts of different measurements on one system apart.
pub async fn appends<S: System>(
    system: &Arc<S>,
    clients: usize,
    batch: usize,
    duration: Duration,
    prefix: &str,
) -> anyhow::Result<Outcome> {
    let connected = connect_all(system, clients).await?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (n, mut client) in connected.into_iter().enumerate() {
        let seed = (batch * 10_000 + n) as u64;
        let prefix = format!("{prefix}-{n}");
        tasks.push(tokio::spawn(async move {
            let mut workload = rapport_demo::Workload::new(seed, 50, NOW, &prefix);
            let mut outcome = Outcome::default();
            while started.elapsed() < duration {
                let request = workload.next_request(batch);
                let count = request.events.len() as u64;
                let sent = Instant::now();
                match client.append(request).await {
                    Ok(()) => {}
                    Err(Refused::Conflict { current }) => {
                        anyhow::bail!("a client's own account was at version {current}: another writer?")
                    }
                    Err(Refused::Failed(error)) => return Err(error),
                }
                outcome.latencies.push(sent.elapsed());
                outcome.events += count;
            }
            Ok(outcome)
        }));
    }
    gather(tasks, started).await
}

/// `clients` clients, each over one `AppendStream` of its own connection, append single
/// events to accounts of their own for `duration`, each keeping `depth` requests unanswered.
/// A request's latency runs from its sending to its answer.
pub async fn streamed_appends<S: Served>(
    system: &Arc<S>,
    clients: usize,
    depth: usize,
    duration: Duration,
    prefix: &str,
) -> anyhow::Result<Outcome> {
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(pb::ledger_client::LedgerClient::new(crate::rapport::connect(system.address()).await?));
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (n, mut ledger) in connected.into_iter().enumerate() {
        let prefix = format!("{prefix}-{n}");
        tasks.push(tokio::spawn(async move {
            let mut workload = rapport_demo::Workload::new(20_000 + n as u64, 50, NOW, &prefix);
            let (requests, outgoing) = tokio::sync::mpsc::channel(depth);
            let mut answers =
                ledger.append_stream(tokio_stream::wrappers::ReceiverStream::new(outgoing)).await?.into_inner();
            let mut sent_at = std::collections::HashMap::with_capacity(depth);
            let mut outcome = Outcome::default();
            let mut next_id = 0u64;
            loop {
                while sent_at.len() < depth && started.elapsed() < duration {
                    next_id += 1;
                    let request = Some(workload.next_request(1));
                    sent_at.insert(next_id, Instant::now());
                    requests
                        .send(pb::AppendStreamRequest { correlation_id: next_id, request })
                        .await
                        .map_err(|_| anyhow::anyhow!("the append stream closed"))?;
                }
                if sent_at.is_empty() {
                    return Ok(outcome);
                }
                let answer =
                    answers.message().await?.ok_or_else(|| anyhow::anyhow!("the append stream ended early"))?;
                if let Some(pb::append_stream_response::Outcome::Error(status)) = answer.outcome {
                    anyhow::bail!("a streamed append was refused: {} {}", status.code, status.message);
                }
                let sent = sent_at.remove(&answer.correlation_id).ok_or_else(|| {
                    anyhow::anyhow!("an answer to correlation id {}, not sent", answer.correlation_id)
                })?;
                outcome.latencies.push(sent.elapsed());
                outcome.events += 1;
            }
        }));
    }
    gather(tasks, started).await
}

/// `clients` clients append one event at a time to `accounts` shared accounts, each request
/// expecting the version the client last saw, retrying on conflict with the version the
/// refusal names. The accounts are opened first (4 events each).
pub async fn contended<S: System>(
    system: &Arc<S>,
    clients: usize,
    accounts: usize,
    duration: Duration,
    prefix: &str,
) -> anyhow::Result<Outcome> {
    open_accounts(system, prefix, accounts, 4).await?;
    let connected = connect_all(system, clients).await?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (n, mut client) in connected.into_iter().enumerate() {
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut workload = rapport_demo::Workload::new(1_000 + n as u64, accounts, NOW, &prefix);
            // The version each account was at when this client last heard of it.
            let mut known = vec![4u64; accounts];
            let mut outcome = Outcome::default();
            let mut turn = n;
            while started.elapsed() < duration {
                turn += 1;
                let account = turn % accounts;
                let events = workload.touches(1);
                let sent = Instant::now();
                loop {
                    let request = pb::AppendRequest {
                        account_id: format!("{prefix}-{account}"),
                        expected: Some(exact(known[account])),
                        events: events.clone(),
                    };
                    match client.append(request).await {
                        Ok(()) => {
                            known[account] += 1;
                            break;
                        }
                        Err(Refused::Conflict { current }) => {
                            outcome.conflicts += 1;
                            known[account] = current;
                        }
                        Err(Refused::Failed(error)) => return Err(error),
                    }
                }
                outcome.latencies.push(sent.elapsed());
                outcome.events += 1;
            }
            Ok(outcome)
        }));
    }
    gather(tasks, started).await
}

/// GetAccount latencies of one reader, reading accounts `{prefix}-0..accounts` (opened first
/// with 20 events each) round-robin while `load` runs.
pub async fn reads_during<S: System, F: Future<Output = anyhow::Result<Outcome>>>(
    system: &Arc<S>,
    accounts: usize,
    prefix: &str,
    load: impl FnOnce() -> F,
) -> anyhow::Result<(Outcome, Outcome)> {
    open_accounts(system, prefix, accounts, 20).await?;
    let mut reader = system.connect().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let prefix = prefix.to_owned();
    let reads = tokio::spawn(async move {
        let mut outcome = Outcome::default();
        let started = Instant::now();
        let mut n = 0;
        while !stopping.load(Ordering::Relaxed) {
            let account_id = format!("{prefix}-{}", n % accounts);
            n += 1;
            let sent = Instant::now();
            reader.get_account(&account_id).await?;
            outcome.latencies.push(sent.elapsed());
            outcome.events += 1;
        }
        outcome.elapsed = started.elapsed();
        outcome.latencies.sort();
        anyhow::Ok(outcome)
    });
    let writes = load().await;
    stop.store(true, Ordering::Relaxed);
    let reads = reads.await??;
    Ok((writes?, reads))
}

/// `clients` clients, each with a connection of its own.
async fn connect_all<S: System>(system: &Arc<S>, clients: usize) -> anyhow::Result<Vec<S::Client>> {
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(system.connect().await?);
    }
    Ok(connected)
}

/// Opens accounts `{prefix}-0..accounts`, each with `events` events (the opening and its
/// first three contacts among them).
async fn open_accounts<S: System>(system: &Arc<S>, prefix: &str, accounts: usize, events: usize) -> anyhow::Result<()> {
    let mut opener = system.connect().await?;
    let mut workload = rapport_demo::Workload::new(7, accounts, NOW, prefix);
    for account in 0..accounts {
        append_or_fail(&mut opener, workload.next_request_for(account, events)).await?;
    }
    Ok(())
}

async fn append_or_fail(client: &mut impl Ledger, request: pb::AppendRequest) -> anyhow::Result<()> {
    match client.append(request).await {
        Ok(()) => Ok(()),
        Err(Refused::Conflict { current }) => anyhow::bail!("setup conflicted at version {current}"),
        Err(Refused::Failed(error)) => Err(error),
    }
}

fn exact(version: u64) -> pb::ExpectedVersion {
    use pb::expected_version::Kind;
    pb::ExpectedVersion { kind: Some(if version == 0 { Kind::NoStream(wkt::Empty {}) } else { Kind::Exact(version) }) }
}

async fn gather(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Outcome>>>,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let mut total = Outcome::default();
    for task in tasks {
        total.merge(task.await??);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    Ok(total)
}
