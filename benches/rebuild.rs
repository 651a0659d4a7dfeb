//! Projection rebuild rate and start-up time, on the real server over a data directory (the
//! segment log, projections on sled).
//!
//! `cargo bench --bench rebuild` generates `RAPPORT_BENCH_EVENTS` events (default 1,000,000)
//! with the demo generator (1,000 accounts, 100-event appends from 8 clients), then measures:
//! - start-up time with a quarter of the events in the log and with all of them, split into
//!   opening the stores and, from `serve` to a health check answering, resuming the
//!   projection: the second resumes from the checkpoint, so it should not grow with the log;
//! - the peer: a raw scan of the whole log through the storage trait (`read_all` in chunks),
//!   the floor any rebuild has to read;
//! - a rebuild under a second rule set through `Projections.Rebuild`, beside the active one,
//!   in events per second, and its ratio to the raw scan.

// A benchmark: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The allocator the `rapport` binary runs with, so that what is measured is what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rapport_proto::v1 as pb;
use rapport_segments::SegmentLog;
use rapport_server::ServerConfig;
use rapport_sled::SledProjections;
use rapport_store::EventLog;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Business "now" for the generated events: 2026-01-01.
const NOW: i64 = 1_767_225_600;
const CLIENTS: usize = 8;

struct Running {
    channel: tonic::transport::Channel,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    /// Opening the stores.
    opened_in: Duration,
    /// From `serve` to a health check answering: resuming the projection.
    served_in: Duration,
}

async fn start(dir: &std::path::Path) -> Result<Running, Box<dyn std::error::Error>> {
    let began = Instant::now();
    let log = Arc::new(SegmentLog::open(&dir.join("log"))?);
    let projections = Arc::new(SledProjections::open(&dir.join("projections"))?);
    let opened_in = began.elapsed();
    let began = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serving = rapport_server::serve(listener, log, projections, ServerConfig::default(), async {
            let _ = stopped.await;
        });
        if let Err(error) = serving.await {
            panic!("the server failed: {error}");
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(address)?.connect().await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
    Ok(Running { channel, stop, task, opened_in, served_in: began.elapsed() })
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        drop(self.channel);
        let _ = self.task.await;
    }
}

async fn generate(channel: &tonic::transport::Channel, workloads: &mut [rapport_demo::Workload], events: u64) {
    let per_client = events / CLIENTS as u64;
    let mut tasks = Vec::new();
    for (client, workload) in workloads.iter_mut().enumerate() {
        let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
        let mut workload = workload.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per_client {
                let request = workload.next_request(100);
                sent += request.events.len() as u64;
                if let Err(status) = ledger.append(request).await {
                    panic!("client {client}: append failed: {status:?}");
                }
            }
            workload
        }));
    }
    for (slot, task) in workloads.iter_mut().zip(tasks) {
        *slot = task.await.expect("a generator joins");
    }
}

fn variant() -> String {
    rapport_projection::DEFAULT_RULES.replacen("version = 1", "version = 2", 1).replacen(
        "support_weight = 0.6",
        "support_weight = 0.9",
        1,
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo test --benches` runs bench binaries without `--bench`: keep that quick.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let total: u64 = if benchmarking {
        std::env::var("RAPPORT_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000)
    } else {
        4_000
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().join("data");
        let mut workloads: Vec<rapport_demo::Workload> = (0..CLIENTS)
            .map(|c| rapport_demo::Workload::new(c as u64 + 1, 1_000 / CLIENTS, NOW, &format!("w{c}")))
            .collect();

        let server = start(&dir).await?;
        let began = Instant::now();
        generate(&server.channel, &mut workloads, total / 4).await;
        let quarter_load = began.elapsed();
        server.stop().await;
        let quarter = start(&dir).await?;
        let startup_quarter = (quarter.opened_in, quarter.served_in);
        let began = Instant::now();
        generate(&quarter.channel, &mut workloads, total - total / 4).await;
        let rest_load = began.elapsed();
        quarter.stop().await;
        let full = start(&dir).await?;
        let startup_full = (full.opened_in, full.served_in);
        full.stop().await;

        // The peer: a raw scan of the log, decoding envelopes but folding nothing.
        let log = SegmentLog::open(&dir.join("log"))?;
        let last = log.last_position()?;
        let began = Instant::now();
        let mut next = 1;
        while next <= last {
            let chunk = log.read_all(next, 4_096)?;
            let Some(end) = chunk.last() else { break };
            next = end.position + 1;
        }
        let scan = began.elapsed();
        drop(log);

        let server = start(&dir).await?;
        let mut projections = pb::projections_client::ProjectionsClient::new(server.channel.clone());
        let began = Instant::now();
        let mut stream =
            projections.rebuild(pb::RebuildRequest { rule_set: variant(), from_scratch: true }).await?.into_inner();
        let mut last_step = None;
        while let Some(step) = stream.next().await {
            last_step = Some(step?);
        }
        let rebuild = began.elapsed();
        let last_step = last_step.ok_or("the rebuild sent nothing")?;
        server.stop().await;

        let per_second = |events: u64, d: Duration| events as f64 / d.as_secs_f64();
        println!("events in the log:           {last}");
        println!(
            "load (100-event appends, {CLIENTS} clients): {:.0} events/s",
            per_second(total, quarter_load + rest_load)
        );
        for (events, (opened, served)) in [(total / 4, startup_quarter), (last, startup_full)] {
            println!(
                "start-up with {events:>9} events: the stores open in {:>8.1} ms, serving {:>6.1} ms later",
                opened.as_secs_f64() * 1e3,
                served.as_secs_f64() * 1e3
            );
        }
        println!(
            "raw scan of the log (peer):  {:>10.0} events/s ({:.2} s)",
            per_second(last, scan),
            scan.as_secs_f64()
        );
        println!(
            "rebuild under default@2:     {:>10.0} events/s ({:.2} s), {:.2}x the raw scan's time",
            per_second(last_step.events_done, rebuild),
            rebuild.as_secs_f64(),
            rebuild.as_secs_f64() / scan.as_secs_f64()
        );
        println!("digest {}", last_step.digest);
        Ok(())
    })
}
