//! Replies built from the server's own state: where an append landed, a chain check, a
//! digest, the builds of rule sets and a rebuild's progress, a subscription's messages.

use rapport_domain::Timestamp;
use rapport_projection::{Movement, RuleSet};
use rapport_proto::v1 as pb;
use rapport_store::{ChainBreak, ChainCheck, Hash, hex};

use crate::timestamp_to_wire;
use crate::views::{chain_break_to_wire, movement_to_wire};

/// Where an append's `events` events are: the first one's version and position, the others
/// following; `duplicate` when an earlier try of the same request recorded them.
pub fn append_response(first_version: u64, first_position: u64, events: u64, duplicate: bool) -> pb::AppendResponse {
    let last = events.saturating_sub(1);
    pb::AppendResponse {
        first_version,
        last_version: first_version + last,
        first_position,
        last_position: first_position + last,
        duplicate,
    }
}

/// The outcome of checking hash chains.
pub fn verify_response(check: &ChainCheck, found: Option<&ChainBreak>) -> pb::VerifyResponse {
    pb::VerifyResponse {
        intact: found.is_none(),
        events_checked: check.events(),
        streams_checked: check.streams_seen() as u64,
        last_position: check.position(),
        first_break: found.map(chain_break_to_wire),
    }
}

/// The log's digest at a position.
pub fn digest_response(position: u64, digest: &Hash, streams: u64) -> pb::DigestResponse {
    pb::DigestResponse { position, digest: hex(digest), streams }
}

/// What one build of a rule set holds.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo<'a> {
    /// The rule set.
    pub rules: &'a RuleSet,
    /// Whether it is served.
    pub active: bool,
    /// The log position it reflects.
    pub position: u64,
    /// The log's durable position.
    pub log_position: u64,
    /// Its digest at `position`.
    pub digest: &'a str,
    /// How many accounts it holds.
    pub accounts: u64,
}

/// One built rule set on the wire.
pub fn rule_set_info(build: BuildInfo<'_>) -> pb::RuleSetInfo {
    pb::RuleSetInfo {
        id: build.rules.id(),
        name: build.rules.name.clone(),
        version: build.rules.version,
        active: build.active,
        position: build.position,
        log_position: build.log_position,
        digest: build.digest.to_owned(),
        accounts: build.accounts,
        rules: build.rules.to_toml(),
    }
}

/// Every built rule set.
pub fn rule_sets_response(rule_sets: Vec<pb::RuleSetInfo>) -> pb::ListRuleSetsResponse {
    pb::ListRuleSetsResponse { rule_sets }
}

/// The build now served, the one served before, and the position of the switch.
pub fn activate_response(rule_set: &str, previous: String, position: u64) -> pb::ActivateResponse {
    pb::ActivateResponse { rule_set: rule_set.to_owned(), previous, position }
}

/// A rebuild's progress: `done` of `total` events at `per_second`; the digest once caught up.
pub fn rebuild_progress(
    rule_set: &str,
    done: u64,
    total: u64,
    per_second: f64,
    digest: Option<String>,
) -> pb::RebuildProgress {
    let caught_up = digest.is_some();
    let eta_seconds = if caught_up || per_second <= 0.0 { 0.0 } else { total.saturating_sub(done) as f64 / per_second };
    pb::RebuildProgress {
        rule_set: rule_set.to_owned(),
        events_done: done,
        events_total: total,
        events_per_second: per_second,
        eta_seconds,
        caught_up,
        digest: digest.unwrap_or_default(),
    }
}

/// The accounts that move most between two rule sets, as of an instant.
pub fn compare_response(movements: &[Movement], as_of: Timestamp) -> pb::CompareResponse {
    pb::CompareResponse {
        accounts: movements.iter().map(movement_to_wire).collect(),
        as_of: Some(timestamp_to_wire(as_of)),
    }
}

/// A recorded event as a subscription sends it.
pub fn subscribed_event(event: pb::RecordedEvent) -> pb::SubscribeResponse {
    pb::SubscribeResponse { kind: Some(pb::subscribe_response::Kind::Event(event)) }
}

/// A subscription's checkpoint: every position up to `position` has been considered; `head`
/// is the log's durable end, for lag.
pub fn subscription_checkpoint(position: u64, head: u64, at: Timestamp) -> pb::SubscribeResponse {
    let checkpoint = pb::SubscriptionCheckpoint { position, at: Some(timestamp_to_wire(at)), head };
    pb::SubscribeResponse { kind: Some(pb::subscribe_response::Kind::Checkpoint(checkpoint)) }
}

/// A subscription's heartbeat while the log is idle.
pub fn subscription_heartbeat(head: u64, at: Timestamp) -> pb::SubscribeResponse {
    let heartbeat = pb::Heartbeat { at: Some(timestamp_to_wire(at)), head };
    pb::SubscribeResponse { kind: Some(pb::subscribe_response::Kind::Heartbeat(heartbeat)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_response_spans_its_events() {
        let response = append_response(4, 17, 3, true);
        assert_eq!(
            (response.first_version, response.last_version, response.first_position, response.last_position),
            (4, 6, 17, 19)
        );
        assert!(response.duplicate);
    }

    #[test]
    fn a_rebuild_estimates_what_is_left_until_it_is_caught_up() {
        let running = rebuild_progress("default@2", 250, 1_250, 500.0, None);
        assert_eq!((running.eta_seconds, running.caught_up), (2.0, false));
        let done = rebuild_progress("default@2", 1_250, 1_250, 500.0, Some("ab".into()));
        assert_eq!((done.eta_seconds, done.caught_up, done.digest.as_str()), (0.0, true, "ab"));
    }
}
