//! Reading append requests written by people: JSON in the proto3 JSON mapping.

use anyhow::{Context, bail};
use rapport_proto::{v1 as pb, wkt};

/// Parses `text` as append requests: one JSON object, an array of them, or objects one after
/// another (JSON lines). `origin` names the input in errors.
pub(crate) fn parse_requests(text: &str, origin: &str) -> anyhow::Result<Vec<pb::AppendRequest>> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        bail!("{origin} is empty; give AppendRequest objects as JSON (see README.md)");
    }
    if trimmed.starts_with('[') {
        return serde_json::from_str(text)
            .map_err(|e| describe(e, origin, text))
            .context("expected an array of AppendRequest objects");
    }
    let mut requests = Vec::new();
    for request in serde_json::Deserializer::from_str(text).into_iter::<pb::AppendRequest>() {
        requests.push(request.map_err(|e| describe(e, origin, text))?);
    }
    Ok(requests)
}

fn describe(error: serde_json::Error, origin: &str, text: &str) -> anyhow::Error {
    let line = text.lines().nth(error.line().saturating_sub(1)).unwrap_or_default();
    let excerpt: String = line.chars().take(120).collect();
    anyhow::anyhow!(
        "{origin}, line {} column {}: {error}\n  | {excerpt}\nEach request is an AppendRequest in the proto3 JSON mapping: \
         {{\"account_id\": \"...\", \"expected\": {{\"no_stream\": {{}}}}, \"events\": [...]}}",
        error.line(),
        error.column()
    )
}

/// What the command fills in for events that leave it out.
pub(crate) struct Defaults<'a> {
    /// Actor for events without one.
    pub actor: Option<&'a str>,
    /// Whether the server takes the actor from the token when an event names none.
    pub server_fills_actor: bool,
    /// Source for events without one.
    pub source: &'a str,
    /// The current time, for events without `occurred_at`.
    pub now: wkt::Timestamp,
}

/// Fills in missing event ids, times, actors and sources; returns a note per filled field so
/// the person sees what was assumed. Generated ids make a rerun of the same file append the
/// events again, and the note says so.
pub(crate) fn fill_defaults(
    requests: &mut [pb::AppendRequest],
    defaults: &Defaults<'_>,
) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    for (r, request) in requests.iter_mut().enumerate() {
        for (e, event) in request.events.iter_mut().enumerate() {
            let at = format!("request {} events[{e}]", r + 1);
            if event.event_id.is_empty() {
                event.event_id = uuid::Uuid::new_v4().to_string();
                notes.push(format!(
                    "{at}: no event_id, generated {} (running this file again will append it again)",
                    event.event_id
                ));
            }
            if event.occurred_at.is_none() {
                event.occurred_at = Some(defaults.now);
                notes.push(format!("{at}: no occurred_at, using now"));
            }
            if event.actor.is_empty() {
                match defaults.actor {
                    Some(actor) => event.actor = actor.to_owned(),
                    // The server records the token's identity.
                    None if defaults.server_fills_actor => {}
                    None => bail!(
                        "{at} has no actor; set \"actor\" in the event, pass --actor or RAPPORT_ACTOR, or \
                         authenticate with --token (the token's identity becomes the actor)"
                    ),
                }
            }
            if event.source.is_empty() {
                event.source = defaults.source.to_owned();
            }
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = r#"{"account_id": "acme", "expected": {"no_stream": {}}, "events": [
        {"event_id": "6f1c1b2e-8a4b-4c1d-9f1e-2a3b4c5d6e7f", "occurred_at": "2025-01-02T03:04:05Z",
         "actor": "li.wei", "source": "crm",
         "account_opened": {"name": "Acme", "industry": "Steel", "owner": "li.wei"}}]}"#;

    #[test]
    fn reads_one_object_an_array_and_json_lines() {
        assert_eq!(parse_requests(OPEN, "input").unwrap().len(), 1);
        assert_eq!(parse_requests(&format!("[{OPEN}, {OPEN}]"), "input").unwrap().len(), 2);
        let lines = format!("{}\n{}\n", OPEN.replace('\n', " "), OPEN.replace('\n', " "));
        let requests = parse_requests(&lines, "input").unwrap();
        assert_eq!(requests.len(), 2);
        let event = &requests[1].events[0];
        assert_eq!(event.occurred_at, Some(wkt::Timestamp { seconds: 1_735_787_045, nanos: 0 }));
        assert!(matches!(event.body, Some(pb::event::Body::AccountOpened(ref o)) if o.owner == "li.wei"));
    }

    #[test]
    fn errors_name_the_place() {
        let error = parse_requests("{\"account_id\": 5}", "events.json").unwrap_err().to_string();
        assert!(error.starts_with("events.json, line 1 column"), "{error}");
        assert!(parse_requests("  \n", "stdin").unwrap_err().to_string().contains("stdin is empty"));
    }

    #[test]
    fn fills_what_is_missing_and_says_so() {
        let mut requests =
            parse_requests(r#"{"account_id": "acme", "events": [{"account_opened": {"name": "Acme"}}]}"#, "x").unwrap();
        let now = wkt::Timestamp { seconds: 100, nanos: 0 };
        let missing_actor = fill_defaults(
            &mut requests.clone(),
            &Defaults { actor: None, server_fills_actor: false, source: "cli", now },
        );
        assert!(missing_actor.unwrap_err().to_string().contains("--actor"));
        let notes = fill_defaults(
            &mut requests,
            &Defaults { actor: Some("anna.berg"), server_fills_actor: false, source: "cli", now },
        )
        .unwrap();
        let event = &requests[0].events[0];
        assert_eq!(uuid::Uuid::parse_str(&event.event_id).map(|u| u.get_version_num()).ok(), Some(4));
        assert_eq!((event.actor.as_str(), event.source.as_str(), event.occurred_at), ("anna.berg", "cli", Some(now)));
        assert_eq!(notes.len(), 2, "{notes:?}");
    }
}
