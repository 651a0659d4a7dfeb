//! Tamper evidence for real: a stored event's bytes altered in the data directory (in the
//! segment file, checksums and all, not through the API) is found by `Verify` exactly where
//! it is, and the log's digest at a position stays the same while nothing before it changes,
//! and not after.

use prost::Message;
use rapport_proto::storage::v1 as record;
use rapport_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

async fn verify(ledger: &mut Ledger, account_id: &str) -> pb::VerifyResponse {
    ledger
        .verify(pb::VerifyRequest { account_id: account_id.into(), ..Default::default() })
        .await
        .expect("verify answers")
        .into_inner()
}

async fn digest(ledger: &mut Ledger, position: u64) -> Result<pb::DigestResponse, tonic::Status> {
    ledger.digest(pb::DigestRequest { position, ..Default::default() }).await.map(|r| r.into_inner())
}

/// Changes the note of the meeting stored at `position`, keeping its stored hashes and
/// making every checksum hold again: what a person editing the files behind the service's
/// back would do. The segment layout is the one `rapport-segments` documents (`format.rs`):
/// a 64-byte header, then frames of `crc | body length | records | reserved | durable`
/// (24 bytes) and records of `length | crc | envelope`, integers little-endian.
fn tamper(dir: &std::path::Path, position: u64) {
    let le32 = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let path = dir.join("log").join("segment-000000000001");
    let mut bytes = std::fs::read(&path).expect("the first segment");
    let mut frame = 64;
    loop {
        let (body_len, count) = (le32(&bytes, frame + 4), le32(&bytes, frame + 8));
        assert!(body_len > 0, "position {position} is in the first segment");
        let mut record = frame + 24;
        for _ in 0..count {
            let len = le32(&bytes, record);
            let envelope_at = record + 8;
            let mut envelope = record::StoredEvent::decode(&bytes[envelope_at..envelope_at + len]).unwrap();
            if envelope.position == position {
                let mut event = pb::Event::decode(envelope.event.as_ref()).unwrap();
                let Some(pb::event::Body::MeetingHeld(_)) = event.body.as_ref() else {
                    panic!("a meeting at {position}")
                };
                // Its notes are sealed: one bit of their ciphertext flipped, so that the file
                // keeps its shape.
                let sealed = event.sealed.as_mut().expect("the meeting's notes are sealed");
                let notes = sealed.fields.iter_mut().find(|f| f.field == 5).expect("sealed notes");
                let last = notes.ciphertext.len() - 1;
                notes.ciphertext[last] ^= 1;
                envelope.event = event.encode_to_vec().into();
                let altered = envelope.encode_to_vec();
                assert_eq!(altered.len(), len, "the altered envelope keeps its length");
                bytes[envelope_at..envelope_at + len].copy_from_slice(&altered);
                let crc = crc32c::crc32c(&altered);
                bytes[record + 4..record + 8].copy_from_slice(&crc.to_le_bytes());
                let frame_crc = crc32c::crc32c(&bytes[frame + 4..frame + 24 + body_len]);
                bytes[frame..frame + 4].copy_from_slice(&frame_crc.to_le_bytes());
                std::fs::write(&path, bytes).unwrap();
                return;
            }
            record = envelope_at + len;
        }
        frame = (frame + 24 + body_len).div_ceil(8) * 8;
    }
}

#[tokio::test]
async fn verify_finds_a_tampered_event_and_the_digest_exposes_it() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "alice").await;
    open_account(&mut ledger, "globex", "bob").await;
    let meeting =
        ledger.append(request("acme", Expected::Any, vec![meeting(&["alice"], &["c1"])])).await.unwrap().into_inner();
    ledger.append(request("acme", Expected::Any, vec![signal("c1", 1, 2)])).await.unwrap();

    let intact = verify(&mut ledger, "").await;
    assert!(intact.intact && intact.first_break.is_none());
    assert_eq!((intact.events_checked, intact.streams_checked, intact.last_position), (8, 2, 8));
    let kept = digest(&mut ledger, 0).await.unwrap();
    assert_eq!((kept.position, kept.streams), (8, 2));
    // More history after the kept position leaves the digest at that position unchanged.
    ledger.append(request("globex", Expected::Any, vec![signal("c2", -1, 1)])).await.unwrap();
    assert_eq!(digest(&mut ledger, 8).await.unwrap().digest, kept.digest);
    assert_ne!(digest(&mut ledger, 0).await.unwrap().digest, kept.digest);
    let beyond = digest(&mut ledger, 99).await.unwrap_err();
    assert_eq!(beyond.code(), Code::OutOfRange);

    let dir = server.stop().await;
    tamper(dir.path(), meeting.first_position);
    let server = TestServer::start_in(dir, test_config()).await;
    let mut ledger = server.ledger();

    let whole = verify(&mut ledger, "").await;
    assert!(!whole.intact);
    let found = whole.first_break.expect("the break is reported");
    assert_eq!(
        (found.account_id.as_str(), found.version, found.position, found.check.as_str()),
        ("acme", 4, meeting.first_position, "hash")
    );
    assert_ne!(found.expected, found.found);
    assert!(found.message.contains("acme") && found.message.contains("version 4"), "{}", found.message);
    assert_eq!(whole.events_checked, meeting.first_position - 1, "everything before it checked out");
    let acme = verify(&mut ledger, "acme").await;
    assert_eq!(acme.first_break.map(|b| (b.version, b.check)), Some((4, "hash".to_owned())));
    assert!(verify(&mut ledger, "globex").await.intact, "other streams are untouched");
    let refused = digest(&mut ledger, 8).await.unwrap_err();
    assert_eq!(refused.code(), Code::DataLoss);
    assert!(refused.message().contains("version 4"), "{}", refused.message());
    server.stop().await;
}

#[tokio::test]
async fn a_retracted_event_stays_in_the_history_marked_by_its_retraction() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "alice").await;
    let wrong = signal("c1", -2, 0);
    let wrong_id = wrong.event_id.clone();
    ledger.append(request("acme", Expected::Any, vec![wrong])).await.unwrap();
    ledger.append(request("acme", Expected::Any, vec![retracted(&wrong_id)])).await.unwrap();
    let history = read_stream(&mut ledger, "acme").await;
    let marks: Vec<(u64, u64)> = history.iter().map(|e| (e.version, e.retracted_by)).collect();
    assert_eq!(marks, vec![(1, 0), (2, 0), (3, 0), (4, 5), (5, 0)]);
    // The log and a subscription show the same mark as the stream.
    let log: Vec<(u64, u64)> = read_all(&mut ledger).await.iter().map(|e| (e.version, e.retracted_by)).collect();
    assert_eq!(log, marks, "ReadAll marks the retracted event");
    let mut subscription = server
        .ledger_on_own_connection()
        .await
        .subscribe(rapport_proto::v1::SubscribeRequest { from_position: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut subscribed = Vec::new();
    while subscribed.len() < marks.len() {
        let message = subscription.message().await.unwrap().expect("the subscription stays open");
        if let Some(rapport_proto::v1::subscribe_response::Kind::Event(e)) = message.kind {
            subscribed.push((e.version, e.retracted_by));
        }
    }
    assert_eq!(subscribed, marks, "Subscribe marks the retracted event");
    drop(subscription);
    assert!(verify(&mut ledger, "acme").await.intact, "a correction is history, not an edit");
    server.stop().await;
}
