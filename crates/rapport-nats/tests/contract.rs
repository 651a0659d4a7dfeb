//! The NATS log passes the storage contract on a real three-node cluster: each case on streams
//! of its own, reopening being a new node on the same stream.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rapport_nats::NatsLog;
use rapport_nats::cluster::Cluster;
use rapport_store::contract::Harness;

/// Streams of the shared cluster, a new one for every fresh log.
struct Nats {
    cluster: Arc<Cluster>,
    last: Option<String>,
}

impl Nats {
    fn new() -> Nats {
        Nats { cluster: Cluster::shared().expect("the test cluster starts"), last: None }
    }
}

impl Harness for Nats {
    type Log = NatsLog;

    fn fresh(&mut self) -> NatsLog {
        static STREAMS: AtomicU32 = AtomicU32::new(0);
        let stream = format!("CONTRACT{}", STREAMS.fetch_add(1, Ordering::Relaxed));
        let log = self.cluster.open_log(&stream).expect("a log on a new stream");
        self.last = Some(stream);
        log
    }

    fn reopen(&mut self, log: NatsLog) -> NatsLog {
        drop(log);
        let stream = self.last.as_deref().expect("reopen follows fresh");
        self.cluster.open_log(stream).expect("a new node on the same stream")
    }
}

rapport_store::contract_tests!(Nats::new());
