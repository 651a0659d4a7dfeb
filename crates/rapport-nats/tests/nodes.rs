//! Two nodes on one stream, as two Rapport servers on one cluster: what one appends the other
//! reads, with the same hashes; racing appends to one account never fork it (one wins, the
//! other is refused with the current version, whichever node's view was stale); an event id
//! taken through one node is refused through the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_nats::NatsLog;
use rapport_nats::cluster::Cluster;
use rapport_store::{AppendBatch, ChainCheck, EventLog, HashScheme, NewEvent, StoreError, StoredEvent};

fn account(name: &str) -> AccountId {
    AccountId::parse(name, &Limits::default()).unwrap()
}

fn event(node: u8, n: u64) -> NewEvent {
    let mut id = [0u8; 16];
    id[0] = node;
    id[8..].copy_from_slice(&n.to_be_bytes());
    id[6] = 0x40;
    NewEvent { event_id: EventId::from_bytes(id), payload: Bytes::from(format!("event {n} through node {node}")) }
}

fn append(log: &NatsLog, account_id: &AccountId, expected: u64, events: &[NewEvent]) -> Result<u64, StoreError> {
    let batch = AppendBatch {
        account_id,
        expected_version: expected,
        recorded_at: Timestamp::from_unix_nanos(1_000),
        recorded_by: "",
        events,
    };
    log.append(batch).map(|appended| appended.first_version + events.len() as u64 - 1)
}

/// Waits until `log` has read the stream up to `position`.
fn read_to(log: &NatsLog, position: u64) {
    let began = Instant::now();
    while log.last_position().unwrap() < position {
        assert!(began.elapsed() < Duration::from_secs(10), "the node did not read up to {position}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn whole_log(log: &NatsLog) -> Vec<StoredEvent> {
    let events = log.read_all(0, usize::MAX).unwrap();
    let mut check = ChainCheck::whole_log();
    for event in &events {
        check.check(event).unwrap();
    }
    events
}

#[test]
fn what_one_node_appends_the_other_reads_with_the_same_hashes() {
    let cluster = Cluster::shared().unwrap();
    let (a, b) = (cluster.open_log("NODES_READ").unwrap(), cluster.open_log("NODES_READ").unwrap());
    let acme = account("acme");
    append(&a, &acme, 0, &[event(1, 1), event(1, 2)]).unwrap();
    read_to(&b, 2);
    append(&b, &acme, 2, &[event(2, 3)]).unwrap();
    read_to(&a, 3);
    let (through_a, through_b) = (whole_log(&a), whole_log(&b));
    assert_eq!(through_a, through_b);
    assert!(through_a.iter().all(|e| e.scheme == HashScheme::Unpositioned));
    let versions: Vec<(u64, u64)> = through_a.iter().map(|e| (e.version, e.position)).collect();
    assert_eq!(versions, [(1, 1), (2, 2), (3, 3)]);
    // A third node, started later, reads the same log from the stream.
    assert_eq!(whole_log(&cluster.open_log("NODES_READ").unwrap()), through_a);
}

#[test]
fn racing_appends_to_one_account_never_fork_it() {
    let cluster = Cluster::shared().unwrap();
    let nodes = [cluster.open_log("NODES_RACE").unwrap(), cluster.open_log("NODES_RACE").unwrap()];
    let acme = account("acme");
    let won: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let racers: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(index, log)| {
                let acme = &acme;
                scope.spawn(move || {
                    let mut won = Vec::new();
                    for n in 0..40u64 {
                        // Each node decides against its own view of the head, which the other
                        // node may have moved since.
                        let expected = log.stream_head(acme).unwrap().map_or(0, |h| h.version);
                        let size = 1 + (n % 3) as usize;
                        let events: Vec<NewEvent> =
                            (0..size as u64).map(|i| event(index as u8 + 1, n * 10 + i)).collect();
                        match append(log, acme, expected, &events) {
                            Ok(last) => won.push(last),
                            Err(StoreError::WrongVersion { expected: e, current, .. }) => {
                                assert_eq!(e, expected);
                                assert!(current > expected, "refused only by a later version, not {current}");
                            }
                            Err(other) => panic!("node {index}: {other}"),
                        }
                    }
                    won
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().unwrap()).collect()
    });
    // Each node has read its own appends; the other's last ones may still be on their way.
    let end = nodes.iter().map(|log| log.last_position().unwrap()).max().unwrap();
    nodes.iter().for_each(|log| read_to(log, end));
    let (first, second) = (whole_log(&nodes[0]), whole_log(&nodes[1]));
    assert_eq!(first, second);
    // One stream, versions 1..n without a gap: every event of every batch that won, in order.
    let versions: Vec<u64> = first.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=first.len() as u64).collect::<Vec<_>>());
    assert!(won.iter().all(|w| !w.is_empty()), "both nodes won some: {won:?}");
    assert!(won.iter().map(Vec::len).sum::<usize>() < 80, "and lost some: the race happened");
    let mut lasts: Vec<u64> = won.concat();
    lasts.sort_unstable();
    assert_eq!(lasts.last(), first.last().map(|e| e.version).as_ref());
}

#[test]
fn an_id_taken_through_one_node_is_refused_through_the_other() {
    let cluster = Cluster::shared().unwrap();
    let (a, b) = (cluster.open_log("NODES_IDS").unwrap(), cluster.open_log("NODES_IDS").unwrap());
    let taken = event(1, 1);
    append(&a, &account("acme"), 0, std::slice::from_ref(&taken)).unwrap();
    // At once, before B may have read it: the servers' duplicate window or B's own index
    // refuses it, and B names where it is.
    match append(&b, &account("globex"), 0, &[event(2, 2), taken.clone()]) {
        Err(StoreError::DuplicateEventId { event_id, position: 1 }) => assert_eq!(event_id, taken.event_id),
        other => panic!("expected the id refused at position 1, got {other:?}"),
    }
    assert_eq!(b.stream_head(&account("globex")).unwrap(), None, "nothing of the batch was written");
    assert_eq!(whole_log(&b).len(), 1);
}
