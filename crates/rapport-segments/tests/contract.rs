//! The segment log passes the storage contract, with real reopening of the directory: once
//! with the default segment size, and once with segments so small that most appends close
//! one, so that every case also runs across segment boundaries.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rapport_segments::{Options, SegmentLog};
use rapport_store::contract::Harness;
use tempfile::TempDir;

/// Keeps every directory it made until the test ends.
struct Segments {
    options: Options,
    dirs: Vec<TempDir>,
}

impl Harness for Segments {
    type Log = SegmentLog;

    fn fresh(&mut self) -> SegmentLog {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = SegmentLog::open_with(dir.path(), self.options).expect("a fresh segment log opens");
        self.dirs.push(dir);
        log
    }

    fn reopen(&mut self, log: SegmentLog) -> SegmentLog {
        drop(log); // Releases the directory's lock.
        let dir = self.dirs.last().expect("reopen follows fresh");
        SegmentLog::open_with(dir.path(), self.options).expect("the segment log reopens")
    }
}

mod default_segments {
    use super::*;
    rapport_store::contract_tests!(Segments { options: Options::default(), dirs: Vec::new() });
}

mod small_segments {
    use super::*;
    rapport_store::contract_tests!(Segments { options: Options { segment_bytes: 4096 }, dirs: Vec::new() });
}
