//! The scenarios, each run against Rapport, then the peer, then (for appends) the null service,
//! on fresh state, `runs` times:
//!
//! 1. single-event appends at each client count;
//! 2. batches;
//! 3. contended appends on a few hot accounts with expected versions;
//! 4. GetAccount latency while 32 clients append single events;
//! 5. a projection rebuild of a large log (the peer: a full scan folding the same events);
//! 6. start-up to serving with that log;
//! 7. disk bytes per event against the raw encoded size;
//! 8. single events over `AppendStream` at each client count, each client keeping
//!    `stream_depth` requests unanswered (Rapport and the null service: the peer has no such
//!    call);
//! 9. a page of `ListAccounts` at each portfolio size, accounts of 5 events each (Rapport
//!    alone: the peer keeps no scores to list by);
//! 10. batches as in scenario 2 while live subscribers each read every event, with how far
//!     behind the slowest was when the load stopped and how long it took to catch up
//!     (Rapport alone: the peer has no subscriptions).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_domain::{AccountId, Limits, Timestamp};
use rapport_projection::RuleSet;
use rapport_segments::SegmentLog;
use rapport_store::{AppendBatch, EventLog, NewEvent};

use crate::load::{self, Outcome};
use crate::null::Null;
use crate::peer::Peer;
use crate::postgres::Cluster;
use crate::rapport::Rapport;
use crate::report::{Report, Row, listing_scenario, single_scenario, streamed_scenario, watched_scenario};
use crate::{NOW, Options, disk};

/// Clients of the write load GetAccount is measured under.
const READ_UNDER_CLIENTS: usize = 32;
/// Accounts GetAccount reads, each opened with 20 events.
const READ_ACCOUNTS: usize = 200;

/// Events each account of scenario 9 is opened with.
const LISTED_EVENTS: usize = 5;
/// Default pages of scenario 9 timed at each size, after the first listing.
const LISTING_PAGES: usize = 200;
/// Pages of at-risk accounts timed at each size.
const AT_RISK_PAGES: usize = 50;

/// The longest scenario 10 waits for its subscribers to catch up before it fails.
const SUBSCRIBER_PATIENCE: Duration = Duration::from_secs(120);

/// Rows being filled: (scenario, measure) → row.
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn row(&mut self, scenario: &str, measure: &str, higher_is_better: bool) -> &mut Row {
        let found = self.rows.iter().position(|r| r.scenario == scenario && r.measure == measure);
        let index = found.unwrap_or_else(|| {
            self.rows.push(Row {
                scenario: scenario.to_owned(),
                measure: measure.to_owned(),
                higher_is_better,
                rapport: Vec::new(),
                peer: Vec::new(),
                null: Vec::new(),
            });
            self.rows.len() - 1
        });
        &mut self.rows[index]
    }

    /// Records one run of a throughput measurement: its rate and latency percentiles.
    fn throughput(&mut self, scenario: &str, system: System, outcome: &Outcome) {
        self.add(scenario, "events/s", true, system, outcome.rate());
        for (name, q) in [("p50 ms", 0.5), ("p99 ms", 0.99), ("p99.9 ms", 0.999)] {
            self.add(scenario, name, false, system, outcome.percentile_ms(q));
        }
    }

    fn add(&mut self, scenario: &str, measure: &str, higher_is_better: bool, system: System, value: f64) {
        let row = self.row(scenario, measure, higher_is_better);
        match system {
            System::Rapport => row.rapport.push(value),
            System::Peer => row.peer.push(value),
            System::Null => row.null.push(value),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum System {
    Rapport,
    Peer,
    Null,
}

/// Runs every scenario; `progress` hears what is running.
pub async fn run_all(options: &Options, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<Report> {
    let scratch = tempfile::Builder::new().prefix("rapport-bench").tempdir()?;
    progress("measuring the disk");
    let disk_syncs_per_second = disk::syncs_per_second(scratch.path(), Duration::from_secs(2))?;
    let disk_write_mb_per_second = disk::write_megabytes_per_second(scratch.path(), 256)?;
    progress("starting PostgreSQL");
    let mut cluster = Cluster::start().await?;
    let peer = Arc::new(Peer::create(&cluster.url()).await?);
    let mut table = Table { rows: Vec::new() };

    for run in 1..=options.runs {
        for &clients in options.single_clients.iter().filter(|_| options.runs_scenario(1)) {
            let scenario = single_scenario(clients);
            progress(&format!("run {run}: {scenario}"));
            let (rapport, stop) = fresh_rapport(scratch.path()).await?;
            let outcome = load::appends(&rapport, clients, 1, options.duration, "single").await?;
            stop(rapport).await?;
            table.throughput(&scenario, System::Rapport, &outcome);
            peer.clear().await?;
            table.throughput(
                &scenario,
                System::Peer,
                &load::appends(&peer, clients, 1, options.duration, "single").await?,
            );
            let null = Arc::new(Null::start().await?);
            let outcome = load::appends(&null, clients, 1, options.duration, "single").await?;
            stop_null(null).await?;
            table.throughput(&scenario, System::Null, &outcome);
        }

        if options.runs_scenario(2) {
            let scenario = format!("2. {}-event batches, {} clients", options.batch_size, options.batch_clients);
            progress(&format!("run {run}: {scenario}"));
            let (batch, clients) = (options.batch_size, options.batch_clients);
            let (rapport, stop) = fresh_rapport(scratch.path()).await?;
            let outcome = load::appends(&rapport, clients, batch, options.duration, "batch").await?;
            stop(rapport).await?;
            table.throughput(&scenario, System::Rapport, &outcome);
            peer.clear().await?;
            let outcome = load::appends(&peer, clients, batch, options.duration, "batch").await?;
            table.throughput(&scenario, System::Peer, &outcome);
            let null = Arc::new(Null::start().await?);
            let outcome = load::appends(&null, clients, batch, options.duration, "batch").await?;
            stop_null(null).await?;
            table.throughput(&scenario, System::Null, &outcome);
        }
        if options.runs_scenario(3) {
            contended(options, &mut table, &peer, scratch.path(), run, progress).await?;
        }
        if options.runs_scenario(4) {
            reads(options, &mut table, &peer, scratch.path(), run, progress).await?;
        }
        for &clients in options.stream_clients.iter().filter(|_| options.runs_scenario(8)) {
            let scenario = streamed_scenario(clients);
            progress(&format!("run {run}: {scenario}"));
            let (duration, depth) = (options.duration, options.stream_depth);
            let (rapport, stop) = fresh_rapport(scratch.path()).await?;
            let outcome = load::streamed_appends(&rapport, clients, depth, duration, "streamed").await?;
            stop(rapport).await?;
            table.throughput(&scenario, System::Rapport, &outcome);
            let null = Arc::new(Null::start().await?);
            let outcome = load::streamed_appends(&null, clients, depth, duration, "streamed").await?;
            stop_null(null).await?;
            table.throughput(&scenario, System::Null, &outcome);
        }
    }

    for run in (1..=options.runs).filter(|_| options.runs_scenario(9)) {
        listings(options, &mut table, scratch.path(), run, progress).await?;
    }
    for &subscribers in options.subscriber_counts.iter().filter(|_| options.runs_scenario(10)) {
        for run in 1..=options.runs {
            let scenario = watched_scenario(options.batch_size, options.batch_clients, subscribers);
            progress(&format!("run {run}: {scenario}"));
            let (batch, clients) = (options.batch_size, options.batch_clients);
            let (rapport, stop) = fresh_rapport(scratch.path()).await?;
            let watching = rapport.watch(subscribers).await?;
            let outcome = load::appends(&rapport, clients, batch, options.duration, "watched").await?;
            let lag = watching.lag(&rapport, SUBSCRIBER_PATIENCE).await?;
            stop(rapport).await?;
            table.throughput(&scenario, System::Rapport, &outcome);
            if subscribers > 0 {
                let behind = "slowest subscriber behind at the load's end, events";
                table.add(&scenario, behind, false, System::Rapport, lag.behind as f64);
                let caught_up = "slowest subscriber caught up after, ms";
                table.add(&scenario, caught_up, false, System::Rapport, lag.caught_up_in.as_secs_f64() * 1_000.0);
            }
        }
    }

    let large = [5, 6, 7].iter().any(|n| options.runs_scenario(*n));
    for (index, &size) in options.rebuild_sizes.iter().enumerate().filter(|_| large) {
        let runs = if index == 0 { options.runs } else { options.large_runs };
        let last = index + 1 == options.rebuild_sizes.len();
        for run in 1..=runs {
            progress(&format!("run {run}: a log of {size} events: loading both systems"));
            let dir = tempfile::Builder::new().prefix("rapport-large").tempdir_in(scratch.path())?;
            peer.clear().await?;
            let raw_bytes = load_both(dir.path(), &peer, size).await?;

            progress(&format!("run {run}: {size} events: first start (builds the projection), rebuild"));
            let (rapport, _) = Rapport::start(dir.path()).await?;
            let rebuilt = rapport.rebuild(&rules_variant()).await?;
            let scenario = format!("5. projection rebuild, {} events", millions(size));
            table.add(&scenario, "events/s", true, System::Rapport, rebuilt);
            let began = Instant::now();
            let (folded, _) = peer.fold_all(&RuleSet::default_rules()).await?;
            table.add(&scenario, "events/s", true, System::Peer, folded as f64 / began.elapsed().as_secs_f64());
            if !last {
                rapport.stop().await?;
                continue;
            }
            let log_bytes = disk::bytes_under(dir.path());
            rapport.stop().await?;

            progress(&format!("run {run}: {size} events: start-up"));
            let scenario = format!("6. start-up to serving, {} events", millions(size));
            let (rapport, started_in) = Rapport::start(dir.path()).await?;
            rapport.stop().await?;
            table.add(&scenario, "seconds", false, System::Rapport, started_in.as_secs_f64());
            let restarted_in = cluster.restart().await?;
            table.add(&scenario, "seconds", false, System::Peer, restarted_in.as_secs_f64());

            let scenario = format!("7. disk use, {} events", millions(size));
            table.add(&scenario, "bytes/event on disk", false, System::Rapport, log_bytes as f64 / size as f64);
            let peer_bytes = peer.table_bytes().await?;
            table.add(&scenario, "bytes/event on disk", false, System::Peer, peer_bytes as f64 / size as f64);
            let raw = raw_bytes as f64 / size as f64;
            table.add(&scenario, "encoded event bytes/event (same input)", false, System::Rapport, raw);
            table.add(&scenario, "encoded event bytes/event (same input)", false, System::Peer, raw);
        }
    }
    Ok(Report { rows: table.rows, disk_syncs_per_second, disk_write_mb_per_second })
}

/// Scenario 3: contended appends with expected versions.
async fn contended(
    options: &Options,
    table: &mut Table,
    peer: &Arc<Peer>,
    scratch: &std::path::Path,
    run: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let (clients, accounts) = options.contended;
    let scenario = format!("3. contended appends, {clients} clients on {accounts} accounts");
    progress(&format!("run {run}: {scenario}"));
    let (rapport, stop) = fresh_rapport(scratch).await?;
    let outcome = load::contended(&rapport, clients, accounts, options.duration, "hot").await?;
    stop(rapport).await?;
    table.throughput(&scenario, System::Rapport, &outcome);
    table.add(&scenario, "conflicts per event", false, System::Rapport, conflicts(&outcome));
    peer.clear().await?;
    let outcome = load::contended(peer, clients, accounts, options.duration, "hot").await?;
    table.throughput(&scenario, System::Peer, &outcome);
    table.add(&scenario, "conflicts per event", false, System::Peer, conflicts(&outcome));
    // The null service never refuses: its rate is the transport's for the same requests.
    let null = Arc::new(Null::start().await?);
    let outcome = load::contended(&null, clients, accounts, options.duration, "hot").await?;
    stop_null(null).await?;
    table.throughput(&scenario, System::Null, &outcome);
    Ok(())
}

/// Scenario 4: GetAccount latency while clients append single events.
async fn reads(
    options: &Options,
    table: &mut Table,
    peer: &Arc<Peer>,
    scratch: &std::path::Path,
    run: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let clients = READ_UNDER_CLIENTS.min(options.single_clients.iter().copied().max().unwrap_or(1));
    let scenario = format!("4. GetAccount while {clients} clients append");
    progress(&format!("run {run}: {scenario}"));
    let duration = options.duration;
    let (rapport, stop) = fresh_rapport(scratch).await?;
    let (writes, reads) =
        load::reads_during(&rapport, READ_ACCOUNTS, "read", || load::appends(&rapport, clients, 1, duration, "single"))
            .await?;
    stop(rapport).await?;
    reads_rows(table, &scenario, System::Rapport, &writes, &reads);
    peer.clear().await?;
    let (writes, reads) =
        load::reads_during(peer, READ_ACCOUNTS, "read", || load::appends(peer, clients, 1, duration, "single")).await?;
    reads_rows(table, &scenario, System::Peer, &writes, &reads);
    Ok(())
}

/// Scenario 9: ListAccounts pages at each portfolio size, on a server started over a log of
/// that many accounts.
async fn listings(
    options: &Options,
    table: &mut Table,
    scratch: &std::path::Path,
    run: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    for &accounts in &options.listing_sizes {
        let scenario = listing_scenario(accounts);
        progress(&format!("run {run}: {scenario}: loading"));
        let dir = tempfile::Builder::new().prefix("rapport-listing").tempdir_in(scratch)?;
        let path = dir.path().to_owned();
        let log = Arc::new(tokio::task::spawn_blocking(move || SegmentLog::open(&path.join("log"))).await??);
        let mut workload = rapport_demo::Workload::new(7, accounts, NOW, "listed");
        let mut versions = HashMap::new();
        let requests: Vec<_> = (0..accounts).map(|a| workload.next_request_for(a, LISTED_EVENTS)).collect();
        for chunk in requests.chunks(1_000) {
            write_log(&log, chunk, &mut versions).await?;
        }
        drop(log);
        progress(&format!("run {run}: {scenario}: listing"));
        let (rapport, _) = Rapport::start(dir.path()).await?;
        let listed = rapport.listings(LISTING_PAGES, AT_RISK_PAGES).await?;
        rapport.stop().await?;
        table.add(&scenario, "first listing ms (scores every account)", false, System::Rapport, listed.first_ms);
        table.add(&scenario, "page p50 ms", false, System::Rapport, load::percentile_ms(&listed.pages, 0.5));
        table.add(&scenario, "page p99 ms", false, System::Rapport, load::percentile_ms(&listed.pages, 0.99));
        table.add(&scenario, "at-risk page p50 ms", false, System::Rapport, load::percentile_ms(&listed.at_risk, 0.5));
    }
    Ok(())
}

fn conflicts(outcome: &Outcome) -> f64 {
    outcome.conflicts as f64 / outcome.events.max(1) as f64
}

fn reads_rows(table: &mut Table, scenario: &str, system: System, writes: &Outcome, reads: &Outcome) {
    for (name, q) in [("read p50 ms", 0.5), ("read p99 ms", 0.99), ("read p99.9 ms", 0.999)] {
        table.add(scenario, name, false, system, reads.percentile_ms(q));
    }
    table.add(scenario, "reads/s", true, system, reads.rate());
    table.add(scenario, "appended events/s meanwhile", true, system, writes.rate());
}

fn millions(size: u64) -> String {
    if size >= 1_000_000 { format!("{}M", size / 1_000_000) } else { format!("{size}") }
}

/// The default rule set under another version and weight: a second build to rebuild.
fn rules_variant() -> String {
    rapport_projection::DEFAULT_RULES.replacen("version = 1", "version = 2", 1).replacen(
        "support_weight = 0.6",
        "support_weight = 0.5",
        1,
    )
}

/// Stops a null service once its clients are gone.
async fn stop_null(null: Arc<Null>) -> anyhow::Result<()> {
    let null = Arc::try_unwrap(null).map_err(|_| anyhow::anyhow!("a client still holds the null service"))?;
    null.stop().await
}

type Stop = Box<dyn FnOnce(Arc<Rapport>) -> futures::future::BoxFuture<'static, anyhow::Result<()>>>;

/// A server on a fresh data directory under `scratch`, and how to stop it (and remove the
/// directory).
async fn fresh_rapport(scratch: &std::path::Path) -> anyhow::Result<(Arc<Rapport>, Stop)> {
    let dir = tempfile::Builder::new().prefix("rapport-run").tempdir_in(scratch)?;
    let (rapport, _) = Rapport::start(dir.path()).await?;
    let stop: Stop = Box::new(move |rapport| {
        Box::pin(async move {
            let rapport = Arc::try_unwrap(rapport).map_err(|_| anyhow::anyhow!("a client still holds the server"))?;
            rapport.stop().await?;
            drop(dir);
            Ok(())
        })
    });
    Ok((Arc::new(rapport), stop))
}

/// Loads `size` generated events (100-event requests over `size / 1000` accounts) into the
/// segment log in `dir`, written the way the server writes them, and into the peer. Returns
/// the total of the events' encoded sizes.
async fn load_both(dir: &std::path::Path, peer: &Peer, size: u64) -> anyhow::Result<u64> {
    let accounts = (size / 1_000).clamp(10, 10_000) as usize;
    let mut workload = rapport_demo::Workload::new(99, accounts, NOW, "large");
    let path = dir.to_owned();
    let log = Arc::new(tokio::task::spawn_blocking(move || SegmentLog::open(&path.join("log"))).await??);
    let mut versions: HashMap<String, u64> = HashMap::new();
    let (mut loaded, mut raw) = (0u64, 0u64);
    while loaded < size {
        let mut chunk = Vec::new();
        while loaded < size && chunk.len() < 1_000 {
            let request = workload.next_request(100);
            loaded += request.events.len() as u64;
            chunk.push(request);
        }
        // The log is written on a blocking thread meanwhile the peer loads the same chunk.
        let (written, loaded) = tokio::join!(write_log(&log, &chunk, &mut versions), peer.load(&chunk));
        raw += written?;
        loaded?;
    }
    drop(log);
    Ok(raw)
}

/// Writes `requests` to `log` as the server's writer writes a group (one log write, one sync),
/// each at the version after the ones before it in `versions`. Returns the total of the
/// events' encoded sizes.
async fn write_log(
    log: &Arc<SegmentLog>,
    requests: &[rapport_proto::v1::AppendRequest],
    versions: &mut HashMap<String, u64>,
) -> anyhow::Result<u64> {
    let mut raw = 0;
    let mut batches = Vec::with_capacity(requests.len());
    for request in requests {
        let account = AccountId::parse(&request.account_id, &Limits::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let events: Vec<NewEvent> = request
            .events
            .iter()
            .map(|wire| {
                let event = rapport_wire::event_from_wire(wire.clone(), "event", &Limits::default())
                    .map_err(|v| anyhow::anyhow!("a generated event is invalid: {v}"))?;
                anyhow::Ok(NewEvent { event_id: event.id, payload: rapport_wire::encode_event(&event) })
            })
            .collect::<Result<_, _>>()?;
        raw += events.iter().map(|e| e.payload.len() as u64).sum::<u64>();
        let version = versions.entry(request.account_id.clone()).or_default();
        let expected = *version;
        *version += events.len() as u64;
        batches.push((account, expected, events));
    }
    let writer = Arc::clone(log);
    tokio::task::spawn_blocking(move || {
        let now = Timestamp::from_unix_nanos(NOW * 1_000_000_000);
        let batches: Vec<AppendBatch<'_>> = batches
            .iter()
            .map(|(account_id, expected_version, events)| AppendBatch {
                account_id,
                expected_version: *expected_version,
                recorded_at: now,
                recorded_by: "",
                events,
            })
            .collect();
        writer.append_all(&batches).into_iter().collect::<Result<Vec<_>, _>>()?;
        writer.sync()
    })
    .await??;
    Ok(raw)
}
