//! `Ledger.Append`: versions and positions, expected versions, idempotency, atomicity.

use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

#[tokio::test]
async fn versions_count_per_account_and_positions_across_the_log() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();

    let acme = open_account(&mut ledger, "acme", "li.wei").await;
    assert_eq!((acme.first_version, acme.last_version, acme.first_position, acme.last_position), (1, 3, 1, 3));
    assert!(!acme.duplicate);

    let globex = open_account(&mut ledger, "globex", "anna.berg").await;
    assert_eq!((globex.first_version, globex.last_version, globex.first_position, globex.last_position), (1, 3, 4, 6));

    let more = ledger
        .append(request("acme", Expected::Exact(3), vec![signal("c1", 1, 2), meeting(&["li.wei"], &["c1", "c2"])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((more.first_version, more.last_version, more.first_position, more.last_position), (4, 5, 7, 8));

    let all = read_all(&mut ledger).await;
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>());
    let stream_of = |account: &str| -> Vec<(u64, u64)> {
        all.iter().filter(|e| e.account_id == account).map(|e| (e.version, e.position)).collect()
    };
    assert_eq!(stream_of("acme"), vec![(1, 1), (2, 2), (3, 3), (4, 7), (5, 8)]);
    assert_eq!(stream_of("globex"), vec![(1, 4), (2, 5), (3, 6)]);
}

#[tokio::test]
async fn recorded_events_carry_the_event_and_a_hash_chain_per_stream() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let events = vec![opened("Acme", "li.wei"), contact("c1", "IT", true)];
    ledger.append(request("acme", Expected::NoStream, events.clone())).await.unwrap();
    open_account(&mut ledger, "globex", "anna.berg").await;
    let third = signal("c1", 2, 3);
    ledger.append(request("acme", Expected::Any, vec![third.clone()])).await.unwrap();

    let stream = read_stream(&mut ledger, "acme").await;
    assert_eq!(stream.len(), 3);
    let sent = [&events[0], &events[1], &third];
    for (recorded, sent) in stream.iter().zip(sent) {
        assert_eq!(recorded.account_id, "acme");
        assert_eq!(recorded.event.as_ref(), Some(sent), "the stored event is the one sent");
        assert_eq!(recorded.hash.len(), 32);
        assert_eq!(recorded.recorded_at.map(|t| t.seconds), Some(NOW_SECONDS), "recorded at the server's clock");
    }
    assert_eq!(stream[0].prev_hash, vec![0; 32], "the first event chains to the genesis hash");
    assert_eq!(stream[1].prev_hash, stream[0].hash);
    assert_eq!(stream[2].prev_hash, stream[1].hash, "globex's events in between do not break acme's chain");
    let hashes: std::collections::HashSet<_> = read_all(&mut ledger).await.into_iter().map(|e| e.hash).collect();
    assert_eq!(hashes.len(), 6, "every event has its own hash");
}

/// Each mode of `expected`: when it lets the append through and when it refuses it.
#[tokio::test]
async fn expected_version_modes() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await; // acme is at version 3.

    // (expected, account, passes?)
    let cases = [
        (Expected::Any, "acme", true),
        (Expected::StreamExists, "acme", true),
        (Expected::Exact(5), "acme", true),
        (Expected::NoStream, "acme", false),
        (Expected::Exact(5), "acme", false),
        (Expected::Exact(99), "acme", false),
        (Expected::StreamExists, "nobody", false),
        (Expected::Exact(1), "nobody", false),
    ];
    let mut version = 3;
    for (expected, account, passes) in cases {
        let result = ledger.append(request(account, expected, vec![signal("c1", 1, 1)])).await;
        if passes {
            let response = result.unwrap_or_else(|s| panic!("{expected:?} on {account}: {s:?}")).into_inner();
            version += 1;
            assert_eq!(response.last_version, version, "{expected:?}");
        } else {
            let status = result.expect_err(&format!("{expected:?} on {account} must fail"));
            assert_eq!(status.code(), Code::FailedPrecondition, "{expected:?}: {status:?}");
            let current = if account == "acme" { version } else { 0 };
            assert!(status.message().contains(&format!("is at version {current}")), "{}", status.message());
            let info = status.get_details_error_info().expect("ErrorInfo details");
            assert_eq!(info.reason, "WRONG_EXPECTED_VERSION");
            assert_eq!(info.metadata.get("current_version"), Some(&current.to_string()));
        }
    }
    // Any and NoStream on a new stream open it.
    for (account, expected) in [("new-any", Expected::Any), ("new-none", Expected::NoStream)] {
        let response =
            ledger.append(request(account, expected, vec![opened(account, "li.wei")])).await.unwrap().into_inner();
        assert_eq!(response.first_version, 1);
    }
    assert_eq!(read_stream(&mut ledger, "acme").await.len(), 6, "refused appends wrote nothing");
    assert_eq!(read_all(&mut ledger).await.len(), 8);
}

#[tokio::test]
async fn a_retry_returns_the_original_outcome_in_every_mode_and_writes_nothing() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let open = request("acme", Expected::NoStream, vec![opened("Acme", "li.wei"), contact("c1", "IT", true)]);
    let first = ledger.append(open.clone()).await.unwrap().into_inner();
    let exact = request("acme", Expected::Exact(2), vec![signal("c1", 1, 1), signal("c1", 2, 2)]);
    let second = ledger.append(exact.clone()).await.unwrap().into_inner();
    let exists = request("acme", Expected::StreamExists, vec![signal("c1", 0, 3)]);
    let third = ledger.append(exists.clone()).await.unwrap().into_inner();
    let any = request("acme", Expected::Any, vec![meeting(&["li.wei"], &["c1"])]);
    let fourth = ledger.append(any.clone()).await.unwrap().into_inner();
    // Another account's events in between do not matter.
    open_account(&mut ledger, "globex", "anna.berg").await;

    for (original, retry) in [(first, open), (second, exact), (third, exists), (fourth, any)] {
        let again = ledger.append(retry.clone()).await.unwrap().into_inner();
        assert!(again.duplicate, "{retry:?}");
        assert_eq!(
            (again.first_version, again.last_version, again.first_position, again.last_position),
            (original.first_version, original.last_version, original.first_position, original.last_position)
        );
    }
    assert_eq!(read_stream(&mut ledger, "acme").await.len(), 6, "no duplicate in the stream");
    let all = read_all(&mut ledger).await;
    assert_eq!(all.len(), 9, "no duplicate in the log");
    let ids: std::collections::HashSet<_> = all.iter().map(|e| e.event.as_ref().unwrap().event_id.clone()).collect();
    assert_eq!(ids.len(), 9);
}

#[tokio::test]
async fn a_reused_event_id_with_other_content_or_place_is_already_exists() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    open_account(&mut ledger, "globex", "anna.berg").await;
    let original = signal("c1", 1, 2);
    ledger.append(request("acme", Expected::Any, vec![original.clone()])).await.unwrap();

    let mut changed = original.clone();
    changed.body = signal("c1", -1, 2).body;
    let mut later = original.clone();
    later.occurred_at = Some(day(400));
    let cases = [
        ("other content", request("acme", Expected::Any, vec![changed]), 0),
        ("other time", request("acme", Expected::Any, vec![later]), 0),
        ("other account", request("globex", Expected::Any, vec![original.clone()]), 0),
        ("part of a new batch", request("acme", Expected::Any, vec![signal("c2", 1, 1), original.clone()]), 1),
        ("with new events after it", request("acme", Expected::Any, vec![original.clone(), signal("c2", 1, 1)]), 0),
    ];
    for (name, request, index) in cases {
        let status = ledger.append(request).await.expect_err(name);
        assert_eq!(status.code(), Code::AlreadyExists, "{name}: {status:?}");
        assert!(status.message().contains(&original.event_id), "{name}: {}", status.message());
        let info = status.get_details_error_info().expect("ErrorInfo details");
        assert_eq!(info.reason, "EVENT_ID_TAKEN", "{name}");
        assert_eq!(info.metadata.get("index"), Some(&index.to_string()), "{name}");
    }
    assert_eq!(read_all(&mut ledger).await.len(), 7, "nothing was written");
}

#[tokio::test]
async fn a_batch_with_one_invalid_event_stores_nothing() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    let batch = vec![
        signal("c1", 1, 1),
        meeting(&["li.wei"], &["c1"]),
        signal("ghost", 1, 1), // Never added.
        signal("c2", 2, 2),
    ];
    let status = ledger.append(request("acme", Expected::Exact(3), batch)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("events[2].support_signal.contact_id"), "{}", status.message());
    assert_eq!(read_all(&mut ledger).await.len(), 3);
    assert_eq!(get_account(&mut server.accounts(), "acme").await.version, 3);

    // The same batch without the bad event goes in whole, at the version it expected.
    let batch = vec![signal("c1", 1, 1), meeting(&["li.wei"], &["c1"]), signal("c2", 2, 2)];
    let response = ledger.append(request("acme", Expected::Exact(3), batch)).await.unwrap().into_inner();
    assert_eq!((response.first_version, response.last_version), (4, 6));
}

#[tokio::test]
async fn a_retraction_keeps_the_event_in_history_and_undoes_its_effect() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    let believed = on(10, signal("c1", 1, 2));
    let mistaken = on(20, signal("c1", -2, 0));
    ledger.append(request("acme", Expected::Any, vec![believed, mistaken.clone()])).await.unwrap();
    let mut accounts = server.accounts();
    assert_eq!(get_account(&mut accounts, "acme").await.contacts[0].support, -2);

    ledger.append(request("acme", Expected::Exact(5), vec![retracted(&mistaken.event_id)])).await.unwrap();
    let view = get_account(&mut accounts, "acme").await;
    let c1 = view.contacts.iter().find(|c| c.contact_id == "c1").unwrap();
    assert_eq!((c1.support, c1.intimacy), (1, 2), "the earlier signal counts again");
    assert_eq!((view.version, view.retracted_events), (6, 1));
    let history = read_stream(&mut ledger, "acme").await;
    assert_eq!(history[4].event.as_ref().unwrap().event_id, mistaken.event_id, "the retracted event stays");

    // The retraction itself survives a restart of the projection.
    let server = server.restart().await;
    let view = get_account(&mut server.accounts(), "acme").await;
    assert_eq!((view.contacts[0].support, view.retracted_events), (1, 1));
}

#[tokio::test]
async fn errors_carry_a_bad_request_detail_naming_the_field() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    let status = ledger.append(request("acme", Expected::Any, vec![signal("c1", 3, 1)])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad_request = status.get_details_bad_request().expect("BadRequest details");
    assert_eq!(bad_request.field_violations.len(), 1);
    assert_eq!(bad_request.field_violations[0].field, "events[0].support_signal.support");
    assert!(bad_request.field_violations[0].description.contains('3'), "{:?}", bad_request.field_violations[0]);
}
