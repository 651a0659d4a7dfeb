//! The web console and the operations endpoints without a browser: a real server with its
//! console on a loopback port, read with a plain HTTP client.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_proto::v1 as pb;
use rapport_server::{ServerConfig, Tokens, token_hash};
use rapport_store::{AppendBatch, EventLog, NewEvent};

use crate::support::*;

/// What came back: status, headers as (name, value) in lower case, and the body.
struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// GETs (or, with a form, POSTs) `url` with a cookie, following no redirect.
async fn fetch(url: String, cookie: Option<String>, form: Option<Vec<(String, String)>>) -> Fetched {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let mut response = match form {
            Some(form) => {
                let mut request = agent.post(&url);
                if let Some(cookie) = &cookie {
                    request = request.header("Cookie", cookie);
                }
                request.send_form(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }
            None => {
                let mut request = agent.get(&url);
                if let Some(cookie) = &cookie {
                    request = request.header("Cookie", cookie);
                }
                request.call()
            }
        }
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_lowercase(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Fetched { status: response.status().as_u16(), headers, body }
    })
    .await
    .unwrap()
}

async fn get(url: &str) -> Fetched {
    fetch(url.to_owned(), None, None).await
}

/// The samples of a scrape, by metric name and labels.
fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the Prometheus text format")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// `/metrics` parses as the Prometheus text format, and its counters move with appends by
/// exactly the demo's numbers: requests, events by type, the durable position; a refused
/// append counts as an error with its code. `/healthz` and `/readyz` answer while serving.
#[tokio::test]
async fn metrics_parse_and_count_appends_healthz_and_readyz_answer() {
    let (server, url) = TestServer::start_with_console(test_config()).await;
    assert_eq!(get(&format!("{url}/healthz")).await.status, 200);
    // Ready once the server serves, which may come a moment after its listeners accept.
    let mut ready = get(&format!("{url}/readyz")).await;
    for _ in 0..100 {
        if ready.status == 200 {
            break;
        }
        assert!(ready.body.starts_with("not ready: starting"), "{}", ready.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        ready = get(&format!("{url}/readyz")).await;
    }
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let before = scrape(&get(&format!("{url}/metrics")).await.body);
    assert_eq!(value(&before, "rapport_append_requests_total", &[]), Some(0.0));

    let requests = rapport_demo::sample(7, NOW_SECONDS);
    let events: usize = requests.iter().map(|r| r.events.len()).sum();
    let meetings = requests
        .iter()
        .flat_map(|r| &r.events)
        .filter(|e| matches!(e.body, Some(pb::event::Body::MeetingHeld(_))))
        .count();
    let mut ledger = server.ledger();
    let count = requests.len();
    for request in requests {
        ledger.append(request).await.unwrap();
    }
    let refused = ledger.append(request("", Expected::Any, vec![opened("Nobody", "x")])).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);

    let metrics = get(&format!("{url}/metrics")).await;
    assert!(metrics.header("content-type").unwrap_or("").starts_with("text/plain; version=0.0.4"));
    let after = scrape(&metrics.body);
    assert_eq!(value(&after, "rapport_append_requests_total", &[]), Some(count as f64));
    assert_eq!(value(&after, "rapport_events_appended_total", &[("type", "meeting_held")]), Some(meetings as f64));
    assert_eq!(value(&after, "rapport_durable_position", &[]), Some(events as f64));
    assert_eq!(value(&after, "rapport_projection_lag_events", &[("rule_set", "default@1")]), Some(0.0));
    let errors = [("method", "rapport.v1.Ledger/Append"), ("code", "InvalidArgument")];
    assert_eq!(value(&after, "rapport_rpc_errors_total", &errors), Some(1.0));
    assert_eq!(value(&after, "rapport_ready", &[]), Some(1.0));
    assert!(value(&after, "rapport_sync_seconds_count", &[]).is_some_and(|n| n >= 1.0), "{}", metrics.body);
    server.stop().await;
}

/// While start-up folds the events recorded after the checkpoint, `/readyz` says so (503) and
/// pages say the server is starting; once it has caught up, both serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_false_while_start_up_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Events no projection has seen: start-up must fold them.
        let (log, _) = open_store(dir.path());
        let account_id = AccountId::parse("acme", &Limits::default()).unwrap();
        let opened = opened("Acme", "alice");
        let events = [NewEvent {
            event_id: EventId::parse(&opened.event_id).unwrap(),
            payload: prost::Message::encode_to_vec(&opened).into(),
        }];
        log.append(AppendBatch {
            account_id: &account_id,
            expected_version: 0,
            recorded_at: Timestamp::from_unix_nanos(NOW_SECONDS * 1_000_000_000),
            recorded_by: "",
            events: &events,
        })
        .unwrap();
        log.sync().unwrap();
    }
    let hooked = Arc::new(Hooked::new(open_store(dir.path()).0));
    hooked.fault.store(fault::HELD_READ, Ordering::SeqCst);
    let (door, url) = console().await;
    let starting = {
        let (dir, hooked) = (dir.path().to_owned(), Arc::clone(&hooked));
        tokio::spawn(async move { HookedServer::start_hooked(&dir, test_config(), hooked, vec![door]).await })
    };
    let ready = loop {
        // The console opens before the catch-up; until it answers, the listener is not up yet.
        match tokio::task::spawn_blocking({
            let url = url.clone();
            move || ureq::get(&format!("{url}/readyz")).config().http_status_as_error(false).build().call()
        })
        .await
        .unwrap()
        {
            Ok(mut response) => break (response.status().as_u16(), response.body_mut().read_to_string().unwrap()),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1.contains("starting"), "{}", ready.1);
    let page = get(&format!("{url}/")).await;
    assert_eq!(page.status, 503);
    assert!(page.body.contains("catching up with its log"), "{}", page.body);

    hooked.release();
    let server = starting.await.unwrap();
    // The catch-up finishes on its own time after the release: wait for it, as an orchestrator
    // would, for at most 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ready = loop {
        let ready = get(&format!("{url}/readyz")).await;
        if ready.status == 200 || std::time::Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(get(&format!("{url}/")).await.status, 200, "and the pages serve");
    server.stop().await;
}

/// Everything a person typed is escaped: an account named like a script shows as that text.
#[tokio::test]
async fn the_portfolio_lists_accounts_and_escapes_what_people_typed() {
    let (server, url) = TestServer::start_with_console(test_config()).await;
    let mut ledger = server.ledger();
    let hostile = "<script>alert(1)</script>";
    ledger.append(request("acme", Expected::NoStream, vec![opened(hostile, "alice")])).await.unwrap();
    ledger.append(request("beta", Expected::NoStream, vec![opened("Beta & Co", "bob")])).await.unwrap();
    let page = get(&format!("{url}/")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);
    assert!(!page.body.contains(hostile));
    assert!(page.body.contains("Beta &amp; Co"));
    assert!(page.body.contains("Access is open."), "no tokens: every page says so");
    assert!(page.body.contains("2 accounts under"), "{}", page.body);
    // Two accounts, both with health in one band: the distribution says 2 there.
    assert!(page.body.contains(r#"data-count="2""#), "{}", page.body);
    // Sorted by a field of the account: alice owns acme, bob owns beta.
    let rows = |body: &str| -> Vec<String> {
        body.split(r#"<tr data-account=""#).skip(1).map(|row| row.split('"').next().unwrap().to_owned()).collect()
    };
    let by_owner = get(&format!("{url}/?sort=owner&order=asc")).await;
    assert_eq!(rows(&by_owner.body), ["acme", "beta"]);
    assert!(by_owner.body.contains("Sorted by Owner, ascending"), "{}", by_owner.body);
    assert!(by_owner.body.contains(r#"href="/?sort=owner&amp;order=desc""#), "{}", by_owner.body);
    assert_eq!(rows(&get(&format!("{url}/?sort=owner&order=desc")).await.body), ["beta", "acme"]);
    server.stop().await;
}

const AUDITOR: &str = "auditor-console-secret";
const WRITER: &str = "writer-console-secret";

/// With tokens: a request without a session gets the login page; a wrong token is refused; a
/// right one gives an HttpOnly, SameSite=Strict cookie and the page; a writer's session sees
/// nothing; signing out ends the session.
#[tokio::test]
async fn with_tokens_the_console_asks_for_one_and_applies_the_role_table() {
    let file = format!(
        "[[token]]\nidentity = \"ada\"\nrole = \"auditor\"\nsha256 = \"{}\"\n[[token]]\nidentity = \"crm\"\nrole = \"writer\"\nsha256 = \"{}\"\n",
        token_hash(AUDITOR),
        token_hash(WRITER)
    );
    let tokens = Arc::new(Tokens::parse(&file).unwrap());
    let (server, url) = TestServer::start_with_console(ServerConfig { tokens: Some(tokens), ..test_config() }).await;

    let anonymous = get(&format!("{url}/?sort=risk")).await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/login?next=/%3Fsort%3Drisk"));
    let login = get(&format!("{url}/login?next=/")).await;
    assert!(login.body.contains("Sign in") && login.body.contains(r#"type="password""#), "{}", login.body);
    assert!(!login.body.contains("Access is open."));

    let sign_in = |token: &str| {
        fetch(format!("{url}/login"), None, Some(vec![("token".into(), token.into()), ("next".into(), "/".into())]))
    };
    let wrong = sign_in("not-a-token").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not known to this server"));

    let signed = sign_in(AUDITOR).await;
    assert_eq!((signed.status, signed.header("location")), (303, Some("/")));
    let cookie = signed.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age="),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = fetch(format!("{url}/"), Some(session.clone()), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("ada (auditor)"));
    // The role table is the server's: an auditor reads the analyst's page but may not rebuild.
    let analyst = fetch(format!("{url}/analyst"), Some(session.clone()), None).await;
    assert_eq!(analyst.status, 200, "{}", analyst.body);
    let rebuild = vec![("rule_set".to_owned(), rules_variant(2, 0.9))];
    let refused = fetch(format!("{url}/analyst/rebuild"), Some(session.clone()), Some(rebuild)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Not for your role"));
    let builds = server.projections().list_rule_sets(pb::ListRuleSetsRequest {}).await;
    assert!(builds.is_err() || builds.unwrap().into_inner().rule_sets.len() == 1, "nothing was built");

    let writer = sign_in(WRITER).await;
    let writer_session = writer.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let refused = fetch(format!("{url}/"), Some(writer_session), None).await;
    assert_eq!(refused.status, 403, "a writer sees nothing");
    assert!(refused.body.contains("Not for your role"), "{}", refused.body);

    let out = fetch(format!("{url}/logout"), Some(session.clone()), Some(Vec::new())).await;
    assert_eq!(out.status, 303);
    assert_eq!(fetch(format!("{url}/"), Some(session), None).await.status, 303, "the session ended");
    server.stop().await;
}

/// The hand-built account every page is read against, its events on days after 2025-01-01
/// (the server's clock reads 2026-01-01, day 365):
///
/// | version | day | event |
/// |---|---|---|
/// | 1 | 190 (2025-07-10) | opened, owned by alice |
/// | 2, 3 | 191, 192 | key contacts c1 (IT, named like a script) and c2 (Finance) |
/// | 4 | 200 | alice and bob meet c1 |
/// | 5 | 210 | bob meets c2 |
/// | 6 | 220 | alice gives c2 EUR 500.00 (the threshold is EUR 100.00) |
/// | 7 | 250 | alice and bob meet c1 |
/// | 8, 9 | 255, 256 | alice meets c2, retracted by version 9 |
/// | 10, 11 | 270, 280 | c1 turns coach (+2, closeness 3); c2 opposes (−1, closeness 1) |
const HOSTILE: &str = "<script>alert(1)</script>";

async fn hand_built(ledger: &mut Ledger) {
    let mut c1 = contact("c1", "IT", true);
    if let Some(pb::event::Body::ContactAdded(added)) = &mut c1.body {
        added.name = HOSTILE.into();
    }
    let retracted_meeting = on(255, meeting(&["alice"], &["c2"]));
    let retraction = on(256, retracted(&retracted_meeting.event_id));
    let events = vec![
        on(190, opened("Acme", "alice")),
        on(191, c1),
        on(192, contact("c2", "Finance", true)),
        on(200, meeting(&["alice", "bob"], &["c1"])),
        on(210, meeting(&["bob"], &["c2"])),
        on(220, gift("alice", "c2", 50_000, "EUR")),
        on(250, meeting(&["alice", "bob"], &["c1"])),
        retracted_meeting,
    ];
    ledger.append(request("acme", Expected::NoStream, events)).await.unwrap();
    // A retraction goes in a request of its own.
    ledger.append(request("acme", Expected::Any, vec![retraction])).await.unwrap();
    let signals = vec![on(270, signal("c1", 2, 3)), on(280, signal("c2", -1, 1))];
    ledger.append(request("acme", Expected::Any, signals)).await.unwrap();
}

fn count(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

/// Every page of the console answers with the right content for a hand-built account: the
/// relationship map's people, contacts and lines, the score history's months, the account as
/// it was, the timeline with its retraction, verification, handover, the gift register's
/// flags, the auditor's digest and export, and the analyst's rebuild and comparison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_shows_the_account_as_the_ledger_knows_it() {
    let (server, url) = TestServer::start_with_console(test_config()).await;
    let mut ledger = server.ledger();
    hand_built(&mut ledger).await;

    let account = get(&format!("{url}/accounts/acme")).await;
    assert_eq!(account.status, 200, "{}", account.body);
    let body = &account.body;
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !body.contains(HOSTILE), "escaped");
    // Lines within the 180-day risk window (from day 185): alice–c1 and bob–c1 two meetings
    // each; bob–c2 one meeting; alice–c2 the gift only, the retracted meeting not counted.
    for (staff, contact, touches) in [("alice", "c1", 2), ("bob", "c1", 2), ("bob", "c2", 1), ("alice", "c2", 1)] {
        let line = format!(r#"data-staff="{staff}" data-contact="{contact}" data-touches="{touches}""#);
        assert_eq!(count(body, &line), 1, "{line} in {body}");
    }
    assert_eq!(count(body, r#"<line class="held""#), 4);
    assert!(
        body.contains(r#"data-contact="c1" data-department="IT" data-support="2" data-intimacy="3" data-key="true""#)
    );
    assert!(body.contains(r#"data-contact="c2" data-department="Finance" data-support="-1" data-intimacy="1""#));
    assert!(body.contains(r#"<g class="person" data-staff="alice">"#) && body.contains(r#"data-staff="bob">"#));
    // Monthly points back from 2026-01-01 while the account existed (opened 2025-07-10):
    // 2025-08-01 to 2026-01-01.
    assert_eq!(count(body, "data-month="), 6, "{body}");
    assert!(body.contains(r#"data-month="2025-08""#) && body.contains(r#"data-month="2026-01""#));
    assert!(!body.contains(r#"data-month="2025-07""#));

    // As it was true on 2025-09-15 (day 257): no signal yet, so c1 stands at 0.
    let then = get(&format!("{url}/accounts/acme?as_of=2025-09-15&kind=occurred")).await;
    assert_eq!(then.status, 200, "{}", then.body);
    assert!(then.body.contains(r#"data-contact="c1" data-department="IT" data-support="0" data-intimacy="0""#));
    assert!(then.body.contains("2025-09-15 23:59 UTC"), "the page says which instant it shows");
    // What the ledger knew then: nothing, as every event was recorded on 2026-01-01.
    assert_eq!(get(&format!("{url}/accounts/acme?as_of=2025-09-15&kind=known")).await.status, 404);
    assert_eq!(get(&format!("{url}/accounts/acme?as_of=15.09.2025")).await.status, 400);
    assert_eq!(get(&format!("{url}/accounts/nobody")).await.status, 404);

    let timeline = get(&format!("{url}/accounts/acme/timeline")).await;
    assert_eq!(timeline.status, 200);
    assert_eq!(count(&timeline.body, "data-version="), 11);
    assert!(timeline.body.find(r#"data-version="11""#) < timeline.body.find(r#"data-version="1""#), "newest first");
    assert!(timeline.body.contains(r#"<tr class="retracted" data-version="8""#), "{}", timeline.body);
    assert!(timeline.body.contains("Retracted by version 9"));
    let meetings = get(&format!("{url}/accounts/acme/timeline?type=meeting_held")).await;
    assert_eq!(count(&meetings.body, r#"data-type="meeting_held""#), 4);
    assert_eq!(count(&meetings.body, "data-version="), 4);
    let verified = fetch(format!("{url}/accounts/acme/verify"), None, Some(Vec::new())).await;
    assert_eq!(verified.status, 200);
    assert!(verified.body.contains(r#"data-verified="intact""#) && verified.body.contains("11 events in 1 streams"));

    let handover = get(&format!("{url}/accounts/acme/handover")).await;
    assert_eq!(handover.status, 200);
    assert!(handover.body.contains("Person c2") && handover.body.contains("EUR 500.00"), "{}", handover.body);

    let gifts = get(&format!("{url}/gifts?account=acme")).await;
    assert_eq!(gifts.status, 200);
    assert!(gifts.body.contains(r#"data-flag="above-threshold""#) && gifts.body.contains("EUR 100.00"));
    let flagged = get(&format!("{url}/gifts")).await;
    assert!(flagged.body.contains("1 flagged gifts across 1 accounts"), "{}", flagged.body);

    let auditor = get(&format!("{url}/auditor")).await;
    assert_eq!(auditor.status, 200);
    let digest = server.ledger().digest(pb::DigestRequest::default()).await.unwrap().into_inner();
    assert!(auditor.body.contains(&digest.digest) && auditor.body.contains(r#"data-position="11""#));
    let whole = fetch(format!("{url}/auditor/verify"), None, Some(Vec::new())).await;
    assert!(whole.body.contains(r#"data-verified="intact""#));
    let export = get(&format!("{url}/auditor/export")).await;
    assert_eq!(export.status, 200);
    assert!(export.header("content-disposition").unwrap_or("").contains("rapport-log.jsonl"));
    let lines: Vec<serde_json::Value> = export.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 11);
    assert!(
        lines.iter().enumerate().all(|(i, l)| l["position"] == i as u64 + 1 && l["hash"].as_str().unwrap().len() == 64)
    );

    // A rebuild started from the page, then the two builds compared: the stance weight moved
    // health, factor by factor.
    let analyst = get(&format!("{url}/analyst")).await;
    assert!(analyst.body.contains(r#"data-rule-set="default@1""#));
    let started =
        fetch(format!("{url}/analyst/rebuild"), None, Some(vec![("rule_set".into(), rules_variant(2, 0.9))])).await;
    assert_eq!((started.status, started.header("location")), (303, Some("/analyst?started=default%402#builds")));
    let mut projections = server.projections();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while projections
        .list_rule_sets(pb::ListRuleSetsRequest {})
        .await
        .unwrap()
        .into_inner()
        .rule_sets
        .iter()
        .any(|b| b.position < 11)
    {
        assert!(std::time::Instant::now() < deadline, "the build catches up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let compared = get(&format!("{url}/analyst?a=default@1&b=default@2")).await;
    assert_eq!(compared.status, 200, "{}", compared.body);
    assert!(compared.body.contains(r#"<tr data-account="acme">"#), "{}", compared.body);
    assert!(compared.body.contains("key relationship · <code>contact:c1</code>"), "{}", compared.body);
    server.stop().await;
}
