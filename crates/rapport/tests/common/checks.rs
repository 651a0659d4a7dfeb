//! What a crash or fault test checks after each cycle, on any engine: every acknowledged event
//! where it was acknowledged and nowhere else, positions gap-free, every chain intact, and the
//! served projection equal to a fresh rebuild.

use std::collections::{BTreeMap, HashMap};

use rapport_proto::v1 as pb;
use tonic::transport::{Channel, Endpoint};

use super::Server;

/// Where an acknowledged event is.
pub type Acknowledged = HashMap<String, (String, u64, u64)>;

pub async fn channel(server: &Server) -> Channel {
    Endpoint::from_shared(server.url.clone()).expect("a URL").connect().await.expect("the server accepts connections")
}

pub fn record(acknowledged: &mut Acknowledged, request: &pb::AppendRequest, reply: &pb::AppendResponse) {
    for (offset, event) in request.events.iter().enumerate() {
        let at =
            (request.account_id.clone(), reply.first_version + offset as u64, reply.first_position + offset as u64);
        if let Some(before) = acknowledged.insert(event.event_id.clone(), at.clone()) {
            assert_eq!(before, at, "event {} was acknowledged twice at different places", event.event_id);
        }
    }
}

/// A small xorshift for the test's own choices (kill delays, batch sizes), seeded per cycle.
pub fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

pub async fn check(server: &Server, acknowledged: &Acknowledged, cycle: u64) {
    let channel = channel(server).await;
    let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut log = Vec::new();
    let mut stream = ledger.read_all(pb::ReadAllRequest::default()).await.unwrap().into_inner();
    while let Some(event) = stream.message().await.unwrap() {
        log.push(event);
    }
    let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=log.len() as u64).collect::<Vec<_>>(), "cycle {cycle}: positions are gap-free");
    let mut seen: HashMap<String, (String, u64, u64)> = HashMap::new();
    for event in &log {
        let id = event.event.as_ref().unwrap().event_id.clone();
        let at = (event.account_id.clone(), event.version, event.position);
        assert!(seen.insert(id.clone(), at).is_none(), "cycle {cycle}: event {id} is in the log twice");
    }
    for (id, at) in acknowledged {
        assert_eq!(seen.get(id), Some(at), "cycle {cycle}: acknowledged event {id} is not where it was acknowledged");
    }
    let verified = ledger.verify(pb::VerifyRequest::default()).await.unwrap().into_inner();
    assert!(verified.intact, "cycle {cycle}: {:?}", verified.first_break);
    assert_eq!(verified.events_checked, log.len() as u64);
    // Progress for long soaks (shown with --nocapture).
    println!(
        "cycle {}: {} events in the log, {} acknowledged, all where acknowledged",
        cycle + 1,
        log.len(),
        acknowledged.len()
    );

    // The served projection equals a fresh rebuild of the same log.
    let mut projections = pb::projections_client::ProjectionsClient::new(channel.clone());
    let rules = rapport_projection_rules(cycle);
    let mut rebuild = projections
        .rebuild(pb::RebuildRequest { rule_set: rules.clone(), from_scratch: true })
        .await
        .unwrap()
        .into_inner();
    let mut rebuilt_id = String::new();
    while let Some(step) = rebuild.message().await.unwrap() {
        rebuilt_id = step.rule_set;
    }
    let mut accounts = pb::accounts_client::AccountsClient::new(channel);
    let mut heads: BTreeMap<String, u64> = BTreeMap::new();
    for event in &log {
        heads.insert(event.account_id.clone(), event.version);
    }
    for (account_id, version) in heads {
        let get = |rule_set: &str| pb::GetAccountRequest {
            account_id: account_id.clone(),
            rule_set: rule_set.into(),
            ..Default::default()
        };
        let served = accounts.get_account(get("")).await.unwrap().into_inner();
        let fresh = accounts.get_account(get(&rebuilt_id)).await.unwrap().into_inner();
        assert_eq!(served.version, version, "cycle {cycle}: {account_id}");
        assert_eq!(
            (&served.contacts, &served.owner_history, &served.team_members, served.position, served.version),
            (&fresh.contacts, &fresh.owner_history, &fresh.team_members, fresh.position, fresh.version),
            "cycle {cycle}: {account_id} as served and as rebuilt"
        );
    }
}

/// The shipped rule set under another version, so that a fresh build sits beside the served one.
pub fn rapport_projection_rules(cycle: u64) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/default.toml")).unwrap();
    text.replacen("version = 1", &format!("version = {}", 100 + cycle), 1)
}
