//! The benchmark harness: Rapport, a PostgreSQL peer and a null Ledger service (the transport's
//! ceiling, [`null`]) under the same workload, in one run, reported side by side as medians and
//! ratios.
//!
//! Both systems run on this machine, on its disk, with durable acknowledgements: Rapport is the
//! real gRPC server ([`rapport_server::serve`] over sled in a temporary directory) driven over
//! loopback; the peer is what a team that "just puts events in Postgres" would build
//! ([`peer`]): an append-only table with a unique `(account_id, version)` constraint, one
//! statement per request, `synchronous_commit = on`, in a throwaway cluster the harness starts
//! and removes itself ([`postgres`]). Both receive the same requests from the demo generator.
//!
//! The scenarios are in [`scenarios`]; [`run`] runs every one of them `runs` times and returns
//! the table ([`report`]).

pub mod disk;
pub mod load;
pub mod null;
pub mod peer;
pub mod postgres;
pub mod rapport;
pub mod report;
pub mod scenarios;

use std::time::Duration;

pub use report::{Report, Row};

/// Business "now" of the generated events: 2026-01-01T00:00:00Z (the servers' clocks are real;
/// only the events' business times use this).
pub const NOW: i64 = 1_767_225_600;

/// How big and how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Length of each throughput measurement.
    pub duration: Duration,
    /// Times each scenario is run; the table shows medians.
    pub runs: usize,
    /// Concurrent clients of the single-event scenario.
    pub single_clients: Vec<usize>,
    /// Concurrent clients of the `AppendStream` scenario.
    pub stream_clients: Vec<usize>,
    /// Requests each `AppendStream` client keeps unanswered.
    pub stream_depth: usize,
    /// Concurrent clients of the 100-event batch scenario.
    pub batch_clients: usize,
    /// Events per batch.
    pub batch_size: usize,
    /// Clients and hot accounts of the contended scenario.
    pub contended: (usize, usize),
    /// Log sizes the rebuild is measured at; the last one is also the start-up and disk size.
    pub rebuild_sizes: Vec<u64>,
    /// Runs of the rebuild at each size beyond the first (large logs take long to load).
    pub large_runs: usize,
    /// Live subscribers scenario 10 appends under, one measurement each.
    pub subscriber_counts: Vec<usize>,
    /// Portfolio sizes, in accounts, `ListAccounts` is measured at (scenario 9).
    pub listing_sizes: Vec<usize>,
    /// The scenarios to run, by number (1 to 10; 5, 6 and 7 share one load of the log).
    pub scenarios: Vec<u8>,
}

impl Options {
    fn runs_scenario(&self, number: u8) -> bool {
        self.scenarios.contains(&number)
    }
}

impl Options {
    /// The full benchmark: the scenarios at their stated sizes.
    pub fn full() -> Options {
        Options {
            duration: Duration::from_secs(5),
            runs: 3,
            single_clients: vec![1, 8, 32, 128],
            stream_clients: vec![1, 32, 128],
            stream_depth: 64,
            batch_clients: 8,
            batch_size: 100,
            contended: (32, 10),
            rebuild_sizes: vec![1_000_000, 10_000_000],
            large_runs: 1,
            subscriber_counts: vec![0, 10, 50],
            listing_sizes: vec![10_000, 100_000],
            scenarios: (1..=10).collect(),
        }
    }

    /// A run small enough for the test suite, to keep the harness from rotting.
    pub fn smoke() -> Options {
        Options {
            duration: Duration::from_millis(300),
            runs: 1,
            single_clients: vec![1, 4],
            stream_clients: vec![1, 4],
            stream_depth: 8,
            batch_clients: 2,
            batch_size: 20,
            contended: (4, 2),
            rebuild_sizes: vec![3_000],
            large_runs: 1,
            subscriber_counts: vec![0, 2],
            listing_sizes: vec![50, 200],
            scenarios: (1..=10).collect(),
        }
    }
}

/// Runs every scenario against both systems and returns the table.
pub async fn run(options: &Options, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<Report> {
    scenarios::run_all(options, progress).await
}
