//! Personal data: a contact marked with a unique string in their name, title, a signal's
//! evidence, a meeting's notes and a gift's description is readable through every read path
//! and in no file of the data directory; once forgotten, the marker is in no read, no export,
//! no file, after a restart and after a rebuild, while the hash chain and the digest hold and
//! the other contact of the same meeting keeps what was theirs alone. Also: the subject report,
//! refusals, retention, and rotation against remnants on disk.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use rapport_proto::v1 as pb;
use rapport_server::ServerConfig;
use tonic::Code;

use crate::support::*;

/// The marked contact's string: in their name, title, the evidence, the notes, the gift.
const MARKER: &str = "Qvzx-Marker-7781";
/// What only the other contact's meeting says.
const OTHERS_NOTES: &str = "Olga alone: pricing for the second plant";

fn marked_history() -> Vec<pb::Event> {
    use pb::event::Body;
    let mut marked = contact("m-1", "Procurement", true);
    if let Some(Body::ContactAdded(added)) = marked.body.as_mut() {
        added.name = format!("Amara {MARKER}");
        added.title = format!("CIO {MARKER}");
    }
    let mut other = contact("o-1", "Operations", false);
    if let Some(Body::ContactAdded(added)) = other.body.as_mut() {
        added.name = "Olga Other".into();
    }
    let mut evidence = signal("m-1", -2, 4);
    if let Some(Body::SupportSignal(s)) = evidence.body.as_mut() {
        s.evidence = format!("told us {MARKER} at the fair");
    }
    let mut together = meeting(&["li.wei"], &["m-1", "o-1"]);
    if let Some(Body::MeetingHeld(m)) = together.body.as_mut() {
        m.notes = format!("Both there; {MARKER} objected to the price");
    }
    let mut alone = meeting(&["li.wei"], &["o-1"]);
    if let Some(Body::MeetingHeld(m)) = alone.body.as_mut() {
        m.notes = OTHERS_NOTES.into();
    }
    let mut present = gift("li.wei", "m-1", 12_000, "EUR");
    if let Some(Body::GiftGiven(g)) = present.body.as_mut() {
        g.description = format!("Dinner for {MARKER}");
    }
    vec![opened("Helios", "li.wei"), marked, other, evidence, together, alone, present, signal("o-1", 1, 2)]
}

/// Every byte of every file under `dir`, and whether `needle` is among them (and where).
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// What every read path shows of the account, as one text to search.
async fn every_read(server: &TestServer) -> String {
    let (mut ledger, mut accounts, mut projections) = (server.ledger(), server.accounts(), server.projections());
    let mut seen = String::new();
    seen += &format!("{:?}", read_stream(&mut ledger, "helios").await);
    let all = read_all(&mut ledger).await;
    seen += &format!("{all:?}");
    let mut subscription = ledger
        .subscribe(pb::SubscribeRequest { from_position: 1, checkpoint_interval_ms: 50, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut events = 0;
    while events < all.len() {
        let Some(message) = tokio::time::timeout(Duration::from_secs(10), subscription.next()).await.unwrap() else {
            break;
        };
        if let Some(pb::subscribe_response::Kind::Event(event)) = message.unwrap().kind {
            seen += &format!("{event:?}");
            events += 1;
        }
    }
    seen += &format!("{:?}", get_account(&mut accounts, "helios").await);
    let past = pb::GetAccountRequest { account_id: "helios".into(), as_of_version: 7, ..Default::default() };
    seen += &format!("{:?}", accounts.get_account(past).await.unwrap().into_inner());
    let portfolio = accounts.list_accounts(pb::ListAccountsRequest::default()).await.unwrap().into_inner();
    seen += &format!("{portfolio:?}");
    let handover = pb::HandoverRequest { account_id: "helios".into(), ..Default::default() };
    seen += &format!("{:?}", accounts.handover(handover).await.unwrap().into_inner());
    let register = pb::GiftRegisterRequest { account_id: "helios".into(), ..Default::default() };
    seen += &format!("{:?}", accounts.gift_register(register).await.unwrap().into_inner());
    let compare = pb::CompareRequest::default();
    if let Ok(compared) = projections.compare(compare).await {
        seen += &format!("{:?}", compared.into_inner());
    }
    seen
}

async fn forget(server: &TestServer, contact_id: &str) -> Result<pb::ForgetContactResponse, tonic::Status> {
    let request = pb::ForgetContactRequest {
        account_id: "helios".into(),
        contact_id: contact_id.into(),
        reason: "DSR-2026-0142".into(),
        requested_by: "dpo@example.com".into(),
    };
    server.privacy().forget_contact(request).await.map(tonic::Response::into_inner)
}

async fn subject_report(server: &TestServer, contact_id: &str) -> pb::SubjectReportResponse {
    let request =
        pb::SubjectReportRequest { account_id: "helios".into(), contact_id: contact_id.into(), ..Default::default() };
    server.privacy().subject_report(request).await.unwrap().into_inner()
}

async fn digest_at(ledger: &mut Ledger, position: u64) -> String {
    ledger.digest(pb::DigestRequest { position, ..Default::default() }).await.unwrap().into_inner().digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_contact_is_gone_from_every_read_every_file_and_every_rebuild() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    ledger.append(request("helios", Expected::NoStream, marked_history())).await.unwrap();

    // Before: readable everywhere it is read, stored nowhere in clear.
    let before = every_read(&server).await;
    assert!(before.matches(MARKER).count() >= 8, "the marker reads back through every path");
    assert!(before.contains(OTHERS_NOTES));
    assert_eq!(files_holding(server.data_dir(), MARKER.as_bytes()), Vec::<String>::new(), "no file holds it");
    let report = subject_report(&server, "m-1").await;
    assert!(!report.forgotten && format!("{report:?}").contains(MARKER));
    assert_eq!(report.events.len(), 4, "added, signal, meeting, gift, and none of o-1's alone: {report:?}");
    let end = read_all(&mut ledger).await.len() as u64;
    let digest_before = digest_at(&mut ledger, end).await;

    // The erasure: recorded, then idempotent.
    let erased = forget(&server, "m-1").await.unwrap();
    assert!(!erased.already_forgotten);
    assert_eq!(erased.position, end + 1);
    let again = forget(&server, "m-1").await.unwrap();
    assert!(again.already_forgotten);
    assert_eq!((again.position, again.forgotten_at), (erased.position, erased.forgotten_at));

    // After: gone from every read path, the chain intact, the old digest the same.
    let after = every_read(&server).await;
    assert!(!after.contains(MARKER), "no read shows the marker");
    assert!(after.contains(OTHERS_NOTES) && after.contains("Olga Other"), "the other contact keeps theirs");
    assert!(after.contains("[forgotten]"));
    let view = get_account(&mut server.accounts(), "helios").await;
    let forgotten = view.contacts.iter().find(|c| c.contact_id == "m-1").unwrap();
    assert!(forgotten.forgotten && forgotten.name == "[forgotten]" && forgotten.title.is_empty());
    assert_eq!((forgotten.support, forgotten.intimacy), (-2, 4), "the stance still counts");
    let stream = read_stream(&mut ledger, "helios").await;
    let meeting = stream.iter().find(|e| e.version == 5).unwrap();
    assert!(meeting.forgotten && !meeting.stored_event.is_empty());
    let Some(pb::event::Body::MeetingHeld(notes)) = meeting.event.as_ref().and_then(|e| e.body.as_ref()) else {
        panic!("the meeting")
    };
    assert!(notes.notes.is_empty(), "notes about several people go with any one of them");
    let erasure = stream.last().unwrap();
    let Some(pb::event::Body::ContactForgotten(recorded)) = erasure.event.as_ref().and_then(|e| e.body.as_ref()) else {
        panic!("the erasure is the last event")
    };
    assert_eq!((recorded.contact_id.as_str(), recorded.reason.as_str()), ("m-1", "DSR-2026-0142"));
    let register = server
        .accounts()
        .gift_register(pb::GiftRegisterRequest { account_id: "helios".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let kept = register.gifts[0].gift.as_ref().unwrap();
    assert!(kept.recipient_forgotten && kept.description.is_empty());
    assert_eq!((kept.value.as_ref().unwrap().minor, kept.approval_ref.as_str()), (12_000, "APR-1"));
    let verified = ledger.verify(pb::VerifyRequest::default()).await.unwrap().into_inner();
    assert!(verified.intact, "{verified:?}");
    assert_eq!(digest_at(&mut ledger, end).await, digest_before, "the history up to the erasure is unchanged");
    let report = subject_report(&server, "m-1").await;
    assert!(report.forgotten && report.erasure.is_some() && !format!("{report:?}").contains(MARKER));

    // An event naming them is refused; so is a ContactForgotten sent to Append.
    let refused = ledger.append(request("helios", Expected::Any, vec![signal("m-1", 1, 1)])).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("was forgotten"), "{}", refused.message());
    let smuggled = event(pb::event::Body::ContactForgotten(pb::ContactForgotten {
        contact_id: "o-1".into(),
        reason: "x".into(),
        requested_by: "li.wei".into(),
    }));
    let refused = ledger.append(request("helios", Expected::Any, vec![smuggled])).await.unwrap_err();
    assert!(refused.message().contains("Privacy.ForgetContact"), "{}", refused.message());

    // Across a restart, and a rebuild from the log, the same; the rebuild's digest is the live one's.
    let server = server.restart().await;
    assert!(!every_read(&server).await.contains(MARKER));
    let mut projections = server.projections();
    let infos = projections.list_rule_sets(pb::ListRuleSetsRequest {}).await.unwrap().into_inner().rule_sets;
    let live = infos.iter().find(|i| i.active).unwrap().clone();
    let rebuilt = rebuild(&mut projections, &live.rules, true).await.pop().unwrap();
    assert_eq!(rebuilt.digest, live.digest, "a rebuild from the log gives the live projection's digest");
    assert!(!every_read(&server).await.contains(MARKER));
    assert_eq!(files_holding(server.data_dir(), MARKER.as_bytes()), Vec::<String>::new());
}

#[tokio::test]
async fn erasure_and_reports_refuse_what_they_cannot_do() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    ledger.append(request("helios", Expected::NoStream, marked_history())).await.unwrap();
    let unknown = forget(&server, "nobody").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("no contact \"nobody\""), "{}", unknown.message());
    let report =
        pb::SubjectReportRequest { account_id: "helios".into(), contact_id: "nobody".into(), ..Default::default() };
    assert_eq!(server.privacy().subject_report(report).await.unwrap_err().code(), Code::NotFound);
    let no_account =
        pb::SubjectReportRequest { account_id: "nowhere".into(), contact_id: "m-1".into(), ..Default::default() };
    assert_eq!(server.privacy().subject_report(no_account).await.unwrap_err().code(), Code::NotFound);
    let mut no_reason = pb::ForgetContactRequest {
        account_id: "helios".into(),
        contact_id: "m-1".into(),
        reason: String::new(),
        requested_by: "dpo".into(),
    };
    let refused = server.privacy().forget_contact(no_reason.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("reason"), "{}", refused.message());
    no_reason.reason = "DSR-1".into();
    no_reason.requested_by = String::new();
    assert_eq!(server.privacy().forget_contact(no_reason).await.unwrap_err().code(), Code::InvalidArgument);
    // Nothing was written by any of them.
    assert_eq!(read_all(&mut ledger).await.len(), marked_history().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_contacts_the_set_time_after_they_left() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let mut history = marked_history();
    // m-1 left long before the fixed clock's now; o-1 is still there.
    history.push(on(100, contact_left("m-1")));
    ledger.append(request("helios", Expected::NoStream, history)).await.unwrap();
    let dir = server.stop().await;
    let config = ServerConfig { forget_after_left: Some(Duration::from_secs(30 * 86_400)), ..test_config() };
    let server = TestServer::start_in(dir, config).await;
    let mut found = None;
    for _ in 0..100 {
        let stream = read_stream(&mut server.ledger(), "helios").await;
        if let Some(last) = stream.last().filter(|e| {
            matches!(e.event.as_ref().and_then(|e| e.body.as_ref()), Some(pb::event::Body::ContactForgotten(_)))
        }) {
            found = Some(last.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let erasure = found.expect("retention recorded the erasure");
    let Some(pb::event::Body::ContactForgotten(f)) = erasure.event.unwrap().body else { unreachable!() };
    assert_eq!((f.contact_id.as_str(), f.requested_by.as_str()), ("m-1", "rapport-retention"));
    assert!(f.reason.contains("30 days"), "{}", f.reason);
    let view = get_account(&mut server.accounts(), "helios").await;
    assert!(view.former_contacts.iter().any(|c| c.contact_id == "m-1" && c.forgotten));
    assert!(view.contacts.iter().any(|c| c.contact_id == "o-1" && !c.forgotten), "o-1 has not left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_erasure_and_a_rotation_no_key_material_on_disk_opens_the_forgotten_fields() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    ledger.append(request("helios", Expected::NoStream, marked_history())).await.unwrap();
    let keys = server.data_dir().join("keys");
    // What a disk may keep after the key's deletion: the keyring and master key as they were.
    let remnants: Vec<Vec<u8>> =
        ["keyring", "master.key"].iter().map(|name| std::fs::read(keys.join(name)).unwrap()).collect();
    let sealed = read_stream(&mut ledger, "helios").await[1].stored_event.clone();
    forget(&server, "m-1").await.unwrap();
    let dir = server.stop().await;
    let store = open_keys(dir.path());
    store.rotate().unwrap();
    drop(store);

    // Every 32-byte window of every file now in the data directory, tried as a master key
    // against the remnant keyring's slots and as the contact's data key against their name.
    let event = <pb::Event as prost::Message>::decode(sealed.as_slice()).unwrap();
    let name = &event.sealed.as_ref().unwrap().fields[0];
    let account = rapport_domain::AccountId::parse("helios", &Default::default()).unwrap();
    let m1 = rapport_domain::ContactId::parse("m-1", &Default::default()).unwrap();
    let mut aad = b"rapport personal v1\0helios".to_vec();
    aad.push(0);
    aad.extend_from_slice(b"m-1");
    let subject = rapport_keys::SubjectId::of(&account, &m1);
    let mut windows = std::collections::HashSet::new();
    let mut pending = vec![dir.path().to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                // The master key file is hex; its bytes are the key too.
                let decoded: Vec<u8> = std::str::from_utf8(&bytes)
                    .ok()
                    .map(|t| t.trim())
                    .filter(|t| t.len() == 64)
                    .map(|t| (0..32).filter_map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()).collect())
                    .unwrap_or_default();
                for source in [&bytes, &decoded] {
                    for window in source.windows(32).filter(|w| w.iter().any(|&b| b != 0)) {
                        windows.insert(<[u8; 32]>::try_from(window).unwrap());
                    }
                }
            }
        }
    }
    assert!(!windows.is_empty());
    let slots: Vec<&[u8]> =
        remnants[0][64..].chunks(128).filter(|slot| slot[8..40] == subject.as_bytes()[..]).collect();
    assert!(!slots.is_empty(), "the remnant keyring holds the contact's slot");
    for window in &windows {
        let key = rapport_keys::DataKey::from_bytes(*window);
        assert!(rapport_keys::open(&[&key], &aad, &name.ciphertext).is_err(), "a window opened the name");
        for slot in &slots {
            assert!(unwrap_slot(window, slot).is_none(), "a window unwrapped the remnant key");
        }
    }
    // The remnant master key itself is no longer on disk in any form.
    let old_master = std::str::from_utf8(&remnants[1]).unwrap().trim().to_owned();
    assert!(files_holding(dir.path(), old_master.as_bytes()).is_empty());
}

/// The data key in a keyring slot, unwrapped with `master`, if it unwraps.
fn unwrap_slot(master: &[u8; 32], slot: &[u8]) -> Option<Vec<u8>> {
    use aes_gcm_siv::aead::{Aead, Payload};
    use aes_gcm_siv::{Aes256GcmSiv, KeyInit};
    let cipher = Aes256GcmSiv::new_from_slice(master).ok()?;
    let nonce = aes_gcm_siv::Nonce::try_from(&slot[40..52]).ok()?;
    cipher.decrypt(&nonce, Payload { msg: &slot[52..100], aad: &slot[8..40] }).ok()
}
