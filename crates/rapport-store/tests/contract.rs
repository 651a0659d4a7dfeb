//! The in-memory log passes the storage contract.

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
