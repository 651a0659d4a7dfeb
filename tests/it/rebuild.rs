//! Rebuilds of a generated log of 100k events: equal digests for equal rule sets, different
//! ones for different rule sets, the same digest after a restart in the middle of a rebuild;
//! and start-up that resumes from the checkpoint instead of folding the whole log.

use std::sync::atomic::Ordering;

use futures::StreamExt;
use rapport_demo::Workload;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_proto::v1 as pb;
use rapport_store::{AppendBatch, EventLog, NewEvent};

use crate::support::*;

/// Rebuilds under `rules` and returns the caught-up message.
async fn rebuilt(projections: &mut Projections, rules: &str, from_scratch: bool) -> pb::RebuildProgress {
    rebuild(projections, rules, from_scratch).await.pop().expect("a final message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilds_of_100k_events_are_deterministic_and_survive_a_restart() {
    let server = TestServer::start().await;
    generate(&server, "gen", 4, 50, 100_000, 100).await;
    let mut projections = server.projections();

    let first = rebuilt(&mut projections, &rules_variant(2, 0.9), false).await;
    assert!(first.events_done >= 100_000, "{first:?}");
    let again = rebuilt(&mut projections, &rules_variant(2, 0.9), true).await;
    assert_eq!((again.events_done, &again.digest), (first.events_done, &first.digest), "same log, same rules");
    let other = rebuilt(&mut projections, &rules_variant(3, 0.9), false).await;
    assert_ne!(other.digest, first.digest, "another rule set, another digest");

    // Start a build and stop the server part of the way through: reads beyond position
    // 40,000 fail, so the build stops after its first step of 32,768 events, however fast the
    // machine (a build folds and publishes a step at a time).
    drop(projections);
    let dir = server.stop().await;
    let hooked = HookedServer::start(dir.path()).await;
    hooked.hooked.reads_fail_from.store(40_000, Ordering::SeqCst);
    let mut projections = pb::projections_client::ProjectionsClient::new(hooked.channel.clone());
    let mut stream = projections
        .rebuild(pb::RebuildRequest { rule_set: rules_variant(4, 0.3), from_scratch: false })
        .await
        .expect("the rebuild starts")
        .into_inner();
    while let Some(step) = stream.next().await {
        let step = step.expect("progress arrives");
        assert!(!step.caught_up, "the build cannot catch up past the failing reads: {step:?}");
        if step.events_done * 4 >= step.events_total {
            break;
        }
    }
    drop((stream, projections));
    hooked.stop().await;
    // Restarted with the reads still failing, so that the build cannot catch up in the
    // background before it is looked at; then with them working again.
    let hooked = HookedServer::start_failing_reads_from(dir.path(), test_config(), 40_000).await;
    let mut projections = pb::projections_client::ProjectionsClient::new(hooked.channel.clone());
    let infos = projections.list_rule_sets(pb::ListRuleSetsRequest {}).await.unwrap().into_inner().rule_sets;
    let resumed = infos.iter().find(|i| i.id == "default@4").expect("the interrupted build survives the restart");
    assert!(resumed.position < first.events_done, "it resumes from its checkpoint: {resumed:?}");
    drop(projections);
    hooked.stop().await;
    let server = TestServer::start_in(dir, test_config()).await;
    let mut projections = server.projections();
    let interrupted = rebuilt(&mut projections, &rules_variant(4, 0.3), false).await;
    let uninterrupted = rebuilt(&mut projections, &rules_variant(4, 0.3), true).await;
    assert_eq!(interrupted.digest, uninterrupted.digest);
    assert_eq!(interrupted.events_done, uninterrupted.events_done);
    server.stop().await;
}

/// Starts the server on `dir` over a counting log; returns it once it serves, with the count
/// of events start-up read.
async fn start_counting(dir: &std::path::Path) -> (HookedServer, u64) {
    let server = HookedServer::start(dir).await;
    // Serving means start-up is over.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("serving");
    let read = server.hooked.events_read.load(Ordering::Relaxed);
    (server, read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_resumes_from_the_checkpoint_and_repairs_what_a_crash_left() {
    let server = TestServer::start().await;
    generate(&server, "gen", 4, 50, 20_000, 100).await;
    let dir = server.stop().await;

    // A clean stop checkpoints everything: start-up reads nothing of the log.
    let (server, read) = start_counting(dir.path()).await;
    assert_eq!(read, 0, "start-up after a clean stop folds no event");
    server.stop().await;

    // A crash after the log write and before the projection caught up: events in the log that
    // no checkpoint covers. Start-up folds exactly those.
    let (log, projections) = open_store(dir.path());
    drop(projections);
    let limits = Limits::default();
    let mut workload = Workload::new(1234, 1, NOW_SECONDS, "crash");
    let requests: Vec<pb::AppendRequest> = (0..3).map(|_| workload.next_request(10)).collect();
    let mut appended = 0;
    for request in &requests {
        let account_id = AccountId::parse(&request.account_id, &limits).unwrap();
        let expected = log.stream_head(&account_id).unwrap().map_or(0, |h| h.version);
        let events: Vec<NewEvent> = request
            .events
            .iter()
            .map(|e| NewEvent {
                event_id: EventId::parse(&e.event_id).unwrap(),
                payload: prost::Message::encode_to_vec(e).into(),
            })
            .collect();
        appended += events.len() as u64;
        log.append(AppendBatch {
            account_id: &account_id,
            expected_version: expected,
            recorded_at: Timestamp::from_unix_nanos(NOW_SECONDS * 1_000_000_000),
            recorded_by: "",
            events: &events,
        })
        .unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let (server, read) = start_counting(dir.path()).await;
    assert_eq!(read, appended, "start-up folds only the events after the checkpoint");
    let mut accounts = pb::accounts_client::AccountsClient::new(server.channel.clone());
    let view = get_account(&mut accounts, "crash-0").await;
    assert_eq!(view.version, appended, "the events the crash left unprojected are projected now");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_projection_equals_a_rebuild_of_the_same_log() {
    let server = TestServer::start().await;
    generate(&server, "gen", 4, 50, 20_000, 100).await;
    // Corrections too: the writer replays a stream on a retraction, as a rebuild does.
    let mut ledger = server.ledger();
    open_account(&mut ledger, "fixed", "alice").await;
    let wrong = signal("c1", -2, 0);
    let wrong_id = wrong.event_id.clone();
    ledger.append(request("fixed", Expected::Any, vec![wrong, meeting(&["bob"], &["c1", "c2"])])).await.unwrap();
    ledger.append(request("fixed", Expected::Any, vec![retracted(&wrong_id)])).await.unwrap();
    let live = server.projections().list_rule_sets(pb::ListRuleSetsRequest {}).await.unwrap().into_inner().rule_sets;
    let dir = server.stop().await;

    // Throw the stored projection away: start-up rebuilds it from the log.
    let (log, projections) = open_store(dir.path());
    rapport_store::ProjectionStore::drop_namespace(projections.as_ref(), "default@1").unwrap();
    drop((log, projections));
    let server = TestServer::start_in(dir, test_config()).await;
    let rebuilt = server.projections().list_rule_sets(pb::ListRuleSetsRequest {}).await.unwrap().into_inner().rule_sets;
    assert_eq!(live.len(), 1);
    assert_eq!(
        (&rebuilt[0].id, rebuilt[0].position, &rebuilt[0].digest),
        (&live[0].id, live[0].position, &live[0].digest),
        "the writer's fold and the rebuild's fold agree bit for bit"
    );
    server.stop().await;
}
