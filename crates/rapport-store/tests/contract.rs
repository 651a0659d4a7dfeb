//! The in-memory log passes the storage contract.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rapport_store::MemoryLog;
use rapport_store::contract::Harness;

struct Memory;

impl Harness for Memory {
    type Log = MemoryLog;

    fn fresh(&mut self) -> MemoryLog {
        MemoryLog::new()
    }

    /// Nothing outlives the process: "reopening" keeps the same log.
    fn reopen(&mut self, log: MemoryLog) -> MemoryLog {
        log
    }
}

rapport_store::contract_tests!(Memory);

#[test]
fn memory_projections_keep_the_projection_contract() {
    rapport_store::contract::projection_store(rapport_store::MemoryProjections::new(), |store| store);
}
