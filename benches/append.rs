//! Append throughput of the real server over loopback, on sled in a temporary directory.
//!
//! `cargo bench --bench append` runs two scenarios with the demo generator's realistic events:
//! 32 concurrent clients appending one event per request, and 8 clients appending 100-event
//! batches, every append acknowledged only once durable. Next to them it measures the disk's
//! own rate of small synchronous writes (write 4 KiB + fdatasync), the physical limit a
//! one-fsync-per-event store would hit. `RAPPORT_BENCH_SECONDS` sets each scenario's length
//! (default 5).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_proto::v1 as pb;
use rapport_server::ServerConfig;
use rapport_sled::SledLog;
use tokio::net::TcpListener;

/// Business "now" for the generated events: 2026-01-01.
const NOW: i64 = 1_767_225_600;

struct Outcome {
    events: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

async fn drive(channel: tonic::transport::Channel, clients: usize, batch: usize, run_for: Duration) -> Outcome {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut workload =
                rapport_demo::Workload::new((batch * 1_000 + client) as u64, 50, NOW, &format!("b{batch}-c{client}"));
            let mut latencies = Vec::new();
            let mut events = 0u64;
            while started.elapsed() < run_for {
                let request = workload.next_request(batch);
                let count = request.events.len() as u64;
                let sent = Instant::now();
                if let Err(status) = ledger.append(request).await {
                    panic!("append failed: {status:?}");
                }
                latencies.push(sent.elapsed());
                events += count;
            }
            (events, latencies)
        }));
    }
    let mut outcome = Outcome { events: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for task in tasks {
        let (events, latencies) = task.await.expect("a client task");
        outcome.events += events;
        outcome.latencies.extend(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies.sort();
    outcome
}

/// Small synchronous writes per second on the disk holding `dir`.
fn raw_syncs_per_second(dir: &std::path::Path, run_for: Duration) -> std::io::Result<f64> {
    let mut file = std::fs::File::create(dir.join("fsync-probe"))?;
    let block = [0x5a_u8; 4096];
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < run_for {
        file.write_all(&block)?;
        file.sync_data()?;
        syncs += 1;
    }
    Ok(syncs as f64 / started.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = std::env::var("RAPPORT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let run_for = if benchmarking { Duration::from_secs(seconds) } else { Duration::from_millis(300) };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let syncs = raw_syncs_per_second(dir.path(), run_for.min(Duration::from_secs(3)))?;
        let log = Arc::new(SledLog::open(&dir.path().join("data"))?);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(rapport_server::serve(listener, log.clone(), log, ServerConfig::default(), async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?.connect().await?;

        println!("disk: {syncs:.0} synchronous 4 KiB writes/s (write + fdatasync)");
        println!(
            "{:<36} {:>12} {:>10} {:>10} {:>10} {:>12}",
            "scenario", "events/s", "p50 ms", "p99 ms", "p99.9 ms", "x disk syncs"
        );
        for (name, clients, batch) in [("single events, 32 clients", 32, 1), ("100-event batches, 8 clients", 8, 100)] {
            let outcome = drive(channel.clone(), clients, batch, run_for).await;
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!(
                "{name:<36} {:>12.0} {:>10.2} {:>10.2} {:>10.2} {:>12.1}",
                outcome.rate(),
                ms(outcome.percentile(0.5)),
                ms(outcome.percentile(0.99)),
                ms(outcome.percentile(0.999)),
                outcome.rate() / syncs
            );
        }
        let _ = stop.send(());
        server.await??;
        Ok(())
    })
}
