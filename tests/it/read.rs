//! `Ledger.ReadStream` and `Ledger.ReadAll`: ranges, directions, limits, paging; and the wait
//! of every read for its `min_position`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rapport_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

/// `acme` with 3 + 1200 events (more than two read pages), `globex` with 3 events in between.
async fn long_account(ledger: &mut Ledger) {
    open_account(ledger, "acme", "li.wei").await;
    open_account(ledger, "globex", "anna.berg").await;
    for _ in 0..6 {
        let batch = (0..200).map(|i| signal(if i % 2 == 0 { "c1" } else { "c2" }, 1, 1)).collect();
        ledger.append(request("acme", Expected::Any, batch)).await.unwrap();
    }
}

#[tokio::test]
async fn read_stream_forwards_and_backwards_with_from_and_limit() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    long_account(&mut ledger).await;
    let head = 1_203;

    // (from_version, backwards, limit) -> the versions expected, worked out by hand.
    let cases: Vec<(u64, bool, u32, Vec<u64>)> = vec![
        (0, false, 0, (1..=head).collect()),
        (1, false, 3, vec![1, 2, 3]),
        (600, false, 2, vec![600, 601]),
        (1_200, false, 0, vec![1_200, 1_201, 1_202, 1_203]),
        (head, false, 10, vec![head]),
        (head + 1, false, 0, vec![]),
        (0, true, 0, (1..=head).rev().collect()),
        (0, true, 2, vec![head, head - 1]),
        (5, true, 0, vec![5, 4, 3, 2, 1]),
        (5, true, 2, vec![5, 4]),
        (1, true, 0, vec![1]),
        (head + 50, true, 1, vec![head]),
        (700, false, 600, (700..1_300).collect()),
    ];
    for (from_version, backwards, limit, expected) in cases {
        let request =
            pb::ReadStreamRequest { account_id: "acme".into(), from_version, backwards, limit, ..Default::default() };
        let events = read_stream_with(&mut ledger, request).await.unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        let expected: Vec<u64> = expected.into_iter().filter(|v| *v <= head).collect();
        assert_eq!(versions, expected, "from {from_version}, backwards {backwards}, limit {limit}");
        assert!(events.iter().all(|e| e.account_id == "acme"));
    }
}

#[tokio::test]
async fn read_all_from_position_with_limit() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    long_account(&mut ledger).await;
    let last = 1_206;
    let cases: Vec<(u64, u32, Vec<u64>)> = vec![
        (0, 0, (1..=last).collect()),
        (1, 5, (1..=5).collect()),
        (4, 3, vec![4, 5, 6]),
        (1_000, 0, (1_000..=last).collect()),
        (last, 0, vec![last]),
        (last + 1, 0, vec![]),
        (10, 1_000, (10..1_010).collect()),
    ];
    for (from_position, limit, expected) in cases {
        let positions: Vec<u64> =
            read_all_with(&mut ledger, from_position, limit).await.iter().map(|e| e.position).collect();
        assert_eq!(positions, expected, "from {from_position}, limit {limit}");
    }
    let globex: Vec<u64> = read_all_with(&mut ledger, 4, 3).await.iter().map(|e| e.version).collect();
    assert_eq!(globex, vec![1, 2, 3], "positions 4..6 are globex's first events");
}

#[tokio::test]
async fn reading_an_unknown_or_malformed_account() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let unknown = pb::ReadStreamRequest { account_id: "nobody".into(), ..Default::default() };
    let status = read_stream_with(&mut ledger, unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("\"nobody\""), "{}", status.message());
    let malformed = pb::ReadStreamRequest { account_id: "no body".into(), ..Default::default() };
    let status = read_stream_with(&mut ledger, malformed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("account_id"), "{}", status.message());
    assert!(read_all(&mut ledger).await.is_empty(), "an empty log reads as nothing");
}

/// A read with a `min_position` answers once the node has read the log that far: at once for a
/// position it has read, and for one beyond its log after its longest wait (or shortly before
/// the request's deadline, when that is sooner) with `UNAVAILABLE` saying how far it has read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_for_its_min_position_at_most_until_its_deadline() {
    let read_wait = Duration::from_millis(300);
    let server =
        TestServer::start_with(rapport_server::ServerConfig { max_read_wait: read_wait, ..test_config() }).await;
    let last = open_account(&mut server.ledger(), "acme", "li.wei").await.last_position;
    assert_eq!(last, 3);
    let mut accounts = server.accounts();
    let at = |min_position| pb::GetAccountRequest { account_id: "acme".into(), min_position, ..Default::default() };
    assert_eq!(accounts.get_account(at(last)).await.unwrap().into_inner().version, 3);

    let started = Instant::now();
    let status = accounts.get_account(at(last + 10)).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    for part in ["min_position", "up to position 3", "10 short of position 13", "within 300 ms", "retry"] {
        assert!(status.message().contains(part), "{part:?} is not in: {}", status.message());
    }
    assert!(waited >= read_wait && waited < read_wait * 10, "answered after {waited:?}");
    let info = status.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.reason, "MIN_POSITION_NOT_REACHED");
    let metadata: BTreeMap<&str, &str> = info.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expected = [("behind", "10"), ("min_position", "13"), ("read_position", "3"), ("waited_ms", "300")];
    assert_eq!(metadata, BTreeMap::from(expected));

    // A deadline of 200 ms, sooner than the longest wait: the answer comes a tenth of it early,
    // with the same status rather than a cancelled call.
    let mut request = tonic::Request::new(pb::DigestRequest { min_position: last + 1, ..Default::default() });
    request.set_timeout(Duration::from_millis(200));
    let status = server.ledger().digest(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("within 180 ms"), "{}", status.message());
    server.stop().await;
}
