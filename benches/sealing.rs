//! What sealing personal data costs on the append path: the same build, the same requests
//! (the demo workload, whose contacts, meetings, signals and gifts carry personal text), with
//! personal data sealed and kept in clear, alternating in one run. `cargo bench --bench
//! sealing`; `SEALING_SECONDS` (default 5) per case, `SEALING_RUNS` (default 3) rounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rapport_bench::load;
use rapport_bench::rapport::Rapport;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = Duration::from_secs(env("SEALING_SECONDS", 5));
    let runs = env("SEALING_RUNS", 3);
    let cases: [(&str, usize, usize); 3] =
        [("1 client x 1 event", 1, 1), ("32 clients x 1 event", 32, 1), ("8 clients x 100 events", 8, 100)];
    println!("| case | run | sealed, events/s | in clear, events/s | sealed / clear |");
    println!("|---|---:|---:|---:|---:|");
    for (name, clients, batch) in cases {
        let mut ratios = Vec::new();
        for run in 1..=runs {
            let mut rates = [0.0; 2];
            // Alternate which goes first, so that neither always has the warmer machine.
            let order = if run % 2 == 1 { [true, false] } else { [false, true] };
            for sealed in order {
                let dir = tempfile::tempdir()?;
                let (rapport, _) = Rapport::start_sealing(dir.path(), sealed).await?;
                let rapport = Arc::new(rapport);
                let outcome = load::appends(&rapport, clients, batch, duration, "sealing").await?;
                Arc::try_unwrap(rapport).map_err(|_| anyhow::anyhow!("a client outlived the load"))?.stop().await?;
                rates[usize::from(!sealed)] = outcome.rate();
            }
            ratios.push(rates[0] / rates[1]);
            println!("| {name} | {run} | {:.0} | {:.0} | {:.3} |", rates[0], rates[1], rates[0] / rates[1]);
        }
        ratios.sort_by(f64::total_cmp);
        println!("| {name} | median | | | {:.3} |", ratios[ratios.len() / 2]);
    }
    Ok(())
}
