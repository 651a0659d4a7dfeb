//! Rapport against a PostgreSQL peer, side by side: `cargo bench --bench peers` (or
//! `benches/peers.sh`, which installs PostgreSQL first if it is missing).
//!
//! Prints the results table in Markdown (medians of `RAPPORT_BENCH_RUNS` runs, default 3) and
//! writes it to `target/peers.md`. `RAPPORT_BENCH_SECONDS` sets each throughput measurement's
//! length (default 5); `RAPPORT_BENCH_SIZES` the rebuild log sizes (default
//! `1000000,10000000`; the last one is also the start-up and disk scenario's);
//! `RAPPORT_BENCH_SCENARIOS` which scenarios run (default `1,2,3,4,5,6,7,8,9,10`),
//! `RAPPORT_BENCH_CLIENTS` the client counts of scenario 1 (default `1,8,32,128`),
//! `RAPPORT_BENCH_STREAM_CLIENTS` those of scenario 8 (default `1,32,128`),
//! `RAPPORT_BENCH_LISTING_SIZES` the portfolio sizes of scenario 9 (default `10000,100000`)
//! and `RAPPORT_BENCH_SUBSCRIBERS` the live subscribers of scenario 10 (default `0,10,50`).

// A benchmark: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

// The allocator the `rapport` binary runs with, so that the server measured is the one users
// run. The load generator and the peer's client share it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut options = rapport_bench::Options::full();
    if let Some(seconds) = std::env::var("RAPPORT_BENCH_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()) {
        options.duration = Duration::from_secs_f64(seconds);
    }
    if let Some(runs) = std::env::var("RAPPORT_BENCH_RUNS").ok().and_then(|s| s.parse().ok()) {
        options.runs = runs;
    }
    if let Ok(scenarios) = std::env::var("RAPPORT_BENCH_SCENARIOS") {
        options.scenarios = scenarios.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if let Ok(clients) = std::env::var("RAPPORT_BENCH_CLIENTS") {
        options.single_clients = clients.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if let Ok(clients) = std::env::var("RAPPORT_BENCH_STREAM_CLIENTS") {
        options.stream_clients = clients.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if let Ok(counts) = std::env::var("RAPPORT_BENCH_SUBSCRIBERS") {
        options.subscriber_counts = counts.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if let Ok(sizes) = std::env::var("RAPPORT_BENCH_LISTING_SIZES") {
        options.listing_sizes = sizes.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if let Ok(sizes) = std::env::var("RAPPORT_BENCH_SIZES") {
        options.rebuild_sizes = sizes.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let began = std::time::Instant::now();
    let report = runtime.block_on(rapport_bench::run(&options, &|step| {
        eprintln!("[{:>6.1} s] {step}", began.elapsed().as_secs_f64());
    }))?;
    let table = report.markdown();
    println!("{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers.md");
    std::fs::write(&out, &table)?;
    eprintln!("written to {}", out.display());
    Ok(())
}
