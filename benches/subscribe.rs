//! Subscription catch-up rate and live lag, on the real server over a data directory (the
//! segment log, projections on sled).
//!
//! `cargo bench --bench subscribe` generates `RAPPORT_BENCH_EVENTS` events (default 200,000)
//! through the server, then measures:
//! - catch-up: a subscriber from position 0 reading to the end of the log, in events per
//!   second, next to the peer `ReadAll` of the same range (the same pages, without the live
//!   machinery);
//! - live lag: while 8 clients append 100-event batches for `RAPPORT_BENCH_SECONDS` (default
//!   5), a subscriber at the end of the log measures, for every event, the time from its
//!   recording (server clock, before the fsync) to its arrival; p50, p99 and the worst.

// A benchmark: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The allocator the `rapport` binary runs with, so that what is measured is what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rapport_proto::v1 as pb;
use rapport_segments::SegmentLog;
use rapport_server::ServerConfig;
use rapport_sled::SledProjections;
use tokio::net::TcpListener;

const NOW: i64 = 1_767_225_600;

async fn connect(address: &str) -> Result<tonic::transport::Channel, Box<dyn std::error::Error>> {
    Ok(tonic::transport::Endpoint::from_shared(address.to_owned())?.connect().await?)
}

/// Appends from `clients` clients, `total` events in all or for `run_for`; `seed` keeps the
/// event ids of separate loads apart.
async fn load(address: &str, seed: u64, clients: usize, total: Option<u64>, run_for: Duration) -> u64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let Ok(channel) = connect(address).await else { panic!("cannot connect") };
        let mut ledger = pb::ledger_client::LedgerClient::new(channel);
        let mut workload = rapport_demo::Workload::new(seed + c as u64, 100, NOW, &format!("s{seed}-{c}"));
        let per_client = total.map(|t| t / clients as u64);
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while per_client.map_or(started.elapsed() < run_for, |n| sent < n) {
                let request = workload.next_request(100);
                sent += request.events.len() as u64;
                if let Err(status) = ledger.append(request).await {
                    panic!("append failed: {status:?}");
                }
            }
            sent
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await.expect("a load client fails only by panicking, with the status");
    }
    sent
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let total: u64 = if benchmarking {
        std::env::var("RAPPORT_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000)
    } else {
        3_000
    };
    let seconds: u64 = std::env::var("RAPPORT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let run_for = if benchmarking { Duration::from_secs(seconds) } else { Duration::from_millis(500) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let log = Arc::new(SegmentLog::open(&dir.path().join("log"))?);
        let projections = Arc::new(SledProjections::open(&dir.path().join("projections"))?);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(rapport_server::serve(listener, log, projections, ServerConfig::default(), async {
            let _ = stopped.await;
        }));

        let generated = load(&address, 1_000, 8, Some(total), run_for).await;
        let mut ledger = pb::ledger_client::LedgerClient::new(connect(&address).await?);
        let end = ledger.digest(pb::DigestRequest { position: 0, min_position: 0 }).await?.into_inner().position;

        // The peer: ReadAll of the same range.
        let began = Instant::now();
        let mut read = 0u64;
        let mut all =
            ledger.read_all(pb::ReadAllRequest { from_position: 1, limit: 0, min_position: 0 }).await?.into_inner();
        while let Some(event) = all.next().await {
            event?;
            read += 1;
        }
        let read_all = began.elapsed();

        // Catch-up from 0 to the end.
        let mut subscriber = pb::ledger_client::LedgerClient::new(connect(&address).await?);
        let began = Instant::now();
        let mut stream =
            subscriber.subscribe(pb::SubscribeRequest { from_position: 1, ..Default::default() }).await?.into_inner();
        let mut caught = 0u64;
        while let Some(message) = stream.next().await {
            if let Some(pb::subscribe_response::Kind::Event(event)) = message?.kind {
                caught += 1;
                if event.position >= end {
                    break;
                }
            }
        }
        let catch_up = began.elapsed();
        drop(stream);

        // Live lag under load.
        let mut subscriber = pb::ledger_client::LedgerClient::new(connect(&address).await?);
        let mut stream = subscriber
            .subscribe(pb::SubscribeRequest { from_position: end + 1, ..Default::default() })
            .await?
            .into_inner();
        let watcher = tokio::spawn(async move {
            let mut lags = Vec::new();
            while let Some(Ok(message)) = stream.next().await {
                if let Some(pb::subscribe_response::Kind::Event(event)) = message.kind {
                    let recorded = event.recorded_at.map_or(0, |t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128);
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
                    lags.push(Duration::from_nanos((now - recorded).max(0) as u64));
                }
            }
            lags
        });
        let live_events = load(&address, 2_000, 8, None, run_for).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop.send(());
        let _ = server.await;
        let mut lags = watcher.await?;
        lags.sort();

        let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
        println!("log: {end} events ({generated} generated by 8 clients)");
        println!("ReadAll of the log (peer):   {:>10.0} events/s", rate(read, read_all));
        println!(
            "Subscribe catch-up from 0:   {:>10.0} events/s ({:.2}x the ReadAll time)",
            rate(caught, catch_up),
            catch_up.as_secs_f64() / read_all.as_secs_f64()
        );
        println!(
            "live: {} of {live_events} events received during {} s of 8 clients x 100-event appends",
            lags.len(),
            run_for.as_secs_f64()
        );
        println!(
            "live lag (recorded -> received): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&lags, 0.5).as_secs_f64() * 1e3,
            percentile(&lags, 0.99).as_secs_f64() * 1e3,
            lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        Ok(())
    })
}
