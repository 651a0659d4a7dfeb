//! Disk full and I/O errors, injected by a storage wrapper behind the `EventLog` trait: the
//! client gets `RESOURCE_EXHAUSTED` or `UNAVAILABLE`, nothing is acknowledged that is not
//! durable, nothing unsynced is shown, and the service recovers when the fault clears.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rapport_domain::{AccountId, EventId};
use rapport_proto::v1 as pb;
use rapport_sled::SledLog;
use rapport_store::{AppendBatch, Appended, Direction, EventLog, StoreError, StoredEvent, StreamHead};
use tokio::net::TcpListener;
use tonic::Code;

use crate::support::*;

const HEALTHY: u8 = 0;
const SYNC_FULL: u8 = 1;
const APPEND_FULL: u8 = 2;
const SYNC_IO: u8 = 3;

/// The sled log, failing on demand.
struct Faulty {
    log: Arc<SledLog>,
    fault: AtomicU8,
}

impl EventLog for Faulty {
    fn append(&self, batch: AppendBatch<'_>) -> Result<Appended, StoreError> {
        if self.fault.load(Ordering::SeqCst) == APPEND_FULL {
            return Err(StoreError::Full("no space left on device (injected)".into()));
        }
        self.log.append(batch)
    }
    fn sync(&self) -> Result<(), StoreError> {
        match self.fault.load(Ordering::SeqCst) {
            SYNC_FULL => Err(StoreError::Full("no space left on device (injected)".into())),
            SYNC_IO => Err(StoreError::Io("input/output error (injected)".into())),
            _ => self.log.sync(),
        }
    }
    fn last_position(&self) -> Result<u64, StoreError> {
        self.log.last_position()
    }
    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.log.stream_head(account_id)
    }
    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.log.find_event(event_id)
    }
    fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.log.read_all(from_position, limit)
    }
    fn read_stream(
        &self,
        account_id: &AccountId,
        from_version: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.log.read_stream(account_id, from_version, direction, limit)
    }
}

#[tokio::test]
async fn a_full_or_failing_disk_acknowledges_nothing_and_the_service_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let sled = Arc::new(SledLog::open(dir.path()).unwrap());
    let faulty = Arc::new(Faulty { log: Arc::clone(&sled), fault: AtomicU8::new(HEALTHY) });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let log: Arc<dyn EventLog> = faulty.clone();
    let server = tokio::spawn(rapport_server::serve(listener, log, sled, test_config(), async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(address).unwrap().connect().await.unwrap();
    let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
    let mut accounts = pb::accounts_client::AccountsClient::new(channel);
    open_account(&mut ledger, "acme", "alice").await;

    // The disk fills up at the sync: the append is not acknowledged, and not shown.
    faulty.fault.store(SYNC_FULL, Ordering::SeqCst);
    let retry = request("acme", Expected::Exact(3), vec![signal("c1", 2, 3)]);
    let full = ledger.append(retry.clone()).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    assert!(full.message().contains("retry with the same event ids"), "{}", full.message());
    assert_eq!(get_account(&mut accounts, "acme").await.version, 3, "nothing unsynced is shown");
    assert_eq!(read_stream(&mut ledger, "acme").await.len(), 3);
    // Other appends fail the same way while the disk is full.
    let other = ledger.append(request("globex", Expected::NoStream, vec![opened("Globex", "bob")])).await;
    assert_eq!(other.unwrap_err().code(), Code::ResourceExhausted);

    // An I/O error is UNAVAILABLE.
    faulty.fault.store(SYNC_IO, Ordering::SeqCst);
    let io = ledger.append(request("acme", Expected::Any, vec![signal("c2", 1, 1)])).await.unwrap_err();
    assert_eq!(io.code(), Code::Unavailable);

    // A full disk at the append itself: nothing is written.
    faulty.fault.store(APPEND_FULL, Ordering::SeqCst);
    let refused = ledger.append(request("initech", Expected::NoStream, vec![opened("Initech", "carol")])).await;
    assert_eq!(refused.unwrap_err().code(), Code::ResourceExhausted);

    // Space returns: the retry with the same ids is acknowledged where the event already was,
    // and new appends go on after it.
    faulty.fault.store(HEALTHY, Ordering::SeqCst);
    let reply = ledger.append(retry).await.expect("the retry is accepted once space returns").into_inner();
    assert_eq!((reply.first_version, reply.duplicate), (4, true));
    let after = ledger
        .append(request("initech", Expected::NoStream, vec![opened("Initech", "carol")]))
        .await
        .expect("new appends are accepted")
        .into_inner();
    assert_eq!(after.first_version, 1);
    let all = read_all(&mut ledger).await;
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=all.len() as u64).collect::<Vec<_>>());
    assert!(ledger.verify(pb::VerifyRequest::default()).await.unwrap().into_inner().intact);
    assert_eq!(get_account(&mut accounts, "acme").await.contacts[0].support, 2, "the retried signal counts");

    let _ = stop.send(());
    drop((ledger, accounts));
    server.await.unwrap().expect("the server stops cleanly");
}
