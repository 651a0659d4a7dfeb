//! The sled log passes the storage contract, with real reopening of the directory.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rapport_sled::SledLog;
use rapport_store::contract::Harness;
use tempfile::TempDir;

/// Keeps every directory it made until the test ends.
struct Sled(Vec<TempDir>);

impl Harness for Sled {
    type Log = SledLog;

    fn fresh(&mut self) -> SledLog {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = SledLog::open(dir.path()).expect("a fresh sled log opens");
        self.0.push(dir);
        log
    }

    fn reopen(&mut self, log: SledLog) -> SledLog {
        drop(log); // Releases sled's lock on the directory.
        let dir = self.0.last().expect("reopen follows fresh");
        SledLog::open(dir.path()).expect("the sled log reopens")
    }
}

rapport_store::contract_tests!(Sled(Vec::new()));

#[test]
fn sled_projections_keep_the_projection_contract() {
    let mut harness = Sled(Vec::new());
    let log = harness.fresh();
    rapport_store::contract::projection_store(log.projections(), |projections| {
        drop(projections);
        let log = harness.reopen(log);
        log.projections()
    });
}

#[test]
fn sled_projections_of_their_own_keep_the_projection_contract() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = rapport_sled::SledProjections::open(dir.path()).expect("a fresh projection store opens");
    rapport_store::contract::projection_store(store, |store| {
        drop(store); // Releases sled's lock on the directory.
        rapport_sled::SledProjections::open(dir.path()).expect("the projection store reopens")
    });
}
