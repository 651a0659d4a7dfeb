//! The web console in a real browser: Debian's `chromium`, headless, driven over WebDriver
//! (`chromedriver`, on a loopback port of its own) by fantoccini, against the real server and
//! its console on loopback ports, with the demo data and tokens.
//!
//! The browser and its driver are found on `PATH`, or where `RAPPORT_CHROMIUM` and
//! `RAPPORT_CHROMEDRIVER` say (`.ci/run` installs Debian's `chromium` and `chromium-driver`).
//! Screenshots of the main pages are saved as PNG under `target/console-screenshots/`; two of
//! them are kept in `docs/` for the README.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use rapport_projection::{DEFAULT_RULES, RuleSet};
use rapport_proto::v1 as pb;
use rapport_proto::v1::event::Body;
use rapport_server::{ServerConfig, Tokens, token_hash};
use serde_json::json;

use crate::support::*;

const ADMIN: &str = "admin-browser-secret";
/// The demo account the account pages are read on.
const ACCOUNT: &str = "nordwind-logistics";

/// A program on `PATH`, or where `variable` says.
fn program(variable: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser tests need {} on PATH (or {variable} naming it): install Debian's chromium and \
                 chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
                names.join(" or ")
            )
        })
}

/// chromedriver on a loopback port, stopped (and its browser with it) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(program("RAPPORT_CHROMEDRIVER", &["chromedriver"]))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Owned by the guard from here, so that it is stopped should it never listen.
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not listen on port {port} within 10 s");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless chromium session with a profile of its own, at 1,280 × 900.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = program("RAPPORT_CHROMIUM", &["chromium", "chromium-browser"]);
    let args = [
        "--headless=new",
        // The tests run as root in CI containers, where chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-GB",
        "--window-size=1280,900",
    ];
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({ "binary": chromium, "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session over WebDriver")
}

/// The elements matching `css`, once there is at least one (within 10 s).
async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    match browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
        Ok(element) => element,
        Err(error) => {
            let page = match browser.find(Locator::Css("main")).await {
                Ok(main) => main.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("{css} did not appear at {} ({error}); the page reads:\n{page}", at(browser).await)
        }
    }
}

async fn attr(element: &fantoccini::elements::Element, name: &str) -> String {
    element.attr(name).await.unwrap().unwrap_or_default()
}

/// The path and query the browser is at.
async fn at(browser: &Client) -> String {
    let url = browser.current_url().await.unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Whether the page fits a phone's width (390 px) without scrolling sideways (wide tables
/// scroll in their own box, and the rest wraps): the elements that stick out, if any.
async fn sticking_out_on_a_phone(browser: &Client) -> Vec<String> {
    browser.set_window_size(390, 844).await.unwrap();
    let script = r#"
        if (document.documentElement.scrollWidth <= window.innerWidth) { return []; }
        return Array.from(document.querySelectorAll("body *"))
            .filter(e => e.getBoundingClientRect().right > window.innerWidth && !e.closest(".table-wrap"))
            .map(e => e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined ? "." + e.className : ""))
            .slice(0, 10);
    "#;
    let out = browser.execute(script, Vec::new()).await.unwrap();
    browser.set_window_size(1280, 900).await.unwrap();
    out.as_array().map(|a| a.iter().map(|e| e.as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

/// Saves what the browser shows as `target/console-screenshots/{name}.png`, the window first
/// grown to the page's height so that the whole page is in it.
async fn screenshot(browser: &Client, name: &str) {
    // The window's size counts the browser's frame, the page's height only what is inside it.
    let script = "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight";
    let height = browser.execute(script, Vec::new()).await.unwrap();
    let height = height.as_u64().unwrap_or(900).clamp(900, 4000) as u32;
    browser.set_window_size(1280, height).await.unwrap();
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    browser.set_window_size(1280, 900).await.unwrap();
}

fn seconds(t: &Option<rapport_proto::wkt::Timestamp>) -> i64 {
    t.as_ref().map_or(0, |t| t.seconds)
}

/// What the demo says of [`ACCOUNT`], worked out from its requests.
struct Demo {
    events: Vec<pb::Event>,
    /// The relationship window of the default rules, in seconds.
    window: i64,
}

impl Demo {
    fn of(requests: &[pb::AppendRequest]) -> Demo {
        let events = requests.iter().filter(|r| r.account_id == ACCOUNT).flat_map(|r| r.events.clone()).collect();
        let window = RuleSet::parse(DEFAULT_RULES).unwrap().personalisation_risk.window_days;
        Demo { events, window: (window * 86_400.0) as i64 }
    }

    fn opened(&self) -> i64 {
        self.events
            .iter()
            .find(|e| matches!(e.body, Some(Body::AccountOpened(_))))
            .map(|e| seconds(&e.occurred_at))
            .unwrap()
    }

    /// Its contacts at `at` (Unix seconds): added by then and not left by then.
    fn contacts_at(&self, at: i64) -> BTreeSet<String> {
        let mut contacts = BTreeSet::new();
        for event in self.events.iter().filter(|e| seconds(&e.occurred_at) <= at) {
            match &event.body {
                Some(Body::ContactAdded(c)) => contacts.insert(c.contact_id.clone()),
                Some(Body::ContactLeft(c)) => contacts.remove(&c.contact_id),
                _ => false,
            };
        }
        contacts
    }

    /// (staff, contact, touches) of each relationship held at `at`: meetings attended together
    /// and gifts given in the window up to it, with a contact current then.
    fn relationships_at(&self, at: i64) -> BTreeSet<(String, String, u32)> {
        let current = self.contacts_at(at);
        let mut touches: BTreeMap<(String, String), u32> = BTreeMap::new();
        for event in self.events.iter().filter(|e| (at - self.window..=at).contains(&seconds(&e.occurred_at))) {
            let pairs: Vec<(String, String)> = match &event.body {
                Some(Body::MeetingHeld(m)) => {
                    m.staff.iter().flat_map(|s| m.contact_ids.iter().map(move |c| (s.clone(), c.clone()))).collect()
                }
                Some(Body::GiftGiven(g)) => vec![(g.giver.clone(), g.recipient_contact_id.clone())],
                _ => Vec::new(),
            };
            for pair in pairs {
                *touches.entry(pair).or_default() += 1;
            }
        }
        touches.into_iter().filter(|((_, c), _)| current.contains(c)).map(|((s, c), n)| (s, c, n)).collect()
    }

    /// How many of the 24 monthly points back from now fall after the account was opened.
    fn months(&self) -> usize {
        let now = jiff::Timestamp::from_second(NOW_SECONDS).unwrap().to_zoned(jiff::tz::TimeZone::UTC);
        let back = |months| now.checked_sub(jiff::Span::new().months(months)).unwrap().timestamp().as_second();
        (0..24).filter(|&months| back(months) >= self.opened()).count()
    }
}

/// The contacts and lines the relationship map on the page draws.
async fn map(browser: &Client) -> (BTreeSet<String>, BTreeSet<(String, String, u32)>) {
    let mut contacts = BTreeSet::new();
    for contact in browser.find_all(Locator::Css("svg.map g.contact")).await.unwrap() {
        contacts.insert(attr(&contact, "data-contact").await);
    }
    let mut lines = BTreeSet::new();
    for line in browser.find_all(Locator::Css("svg.map line.held")).await.unwrap() {
        let touches = attr(&line, "data-touches").await.parse().unwrap();
        lines.insert((attr(&line, "data-staff").await, attr(&line, "data-contact").await, touches));
    }
    (contacts, lines)
}

/// The risk column of the portfolio's rows, top to bottom.
async fn risks(browser: &Client) -> Vec<f64> {
    let mut values = Vec::new();
    for cell in browser.find_all(Locator::Css(r#"tr[data-account] td[data-score="risk"]"#)).await.unwrap() {
        values.push(cell.text().await.unwrap().parse().unwrap());
    }
    values
}

/// The walk every kind of user takes: sign in; the portfolio sorted by risk; an account's map;
/// the account as it was; its timeline and its verification; two rule sets compared while a
/// rebuild's progress moves live; the auditor's page.
async fn walk(browser: Client, server: &TestServer, url: &str, demo: &[pb::AppendRequest]) {
    let expected = Demo::of(demo);

    // Signing in: a page without a session sends the browser to the login form.
    browser.goto(&format!("{url}/")).await.unwrap();
    wait_for(&browser, "input#token").await.send_keys(ADMIN).await.unwrap();
    browser.find(Locator::Css("form.login button[type=submit]")).await.unwrap().click().await.unwrap();
    let who = wait_for(&browser, "form.who span").await.text().await.unwrap();
    assert!(who.contains("ada (admin)"), "{who}");
    assert_eq!(at(&browser).await, "/");
    screenshot(&browser, "portfolio").await;
    assert_eq!(sticking_out_on_a_phone(&browser).await, Vec::<String>::new(), "the portfolio fits a phone");

    // Risk sorts lowest first on the first click, highest first on the second.
    browser.find(Locator::Css(r#"thead a[href^="/?sort=risk&"]"#)).await.unwrap().click().await.unwrap();
    wait_for(&browser, r#"th[aria-sort="ascending"] a[href^="/?sort=risk&"]"#).await;
    let ascending = risks(&browser).await;
    assert_eq!(ascending.len(), 5, "the demo's five accounts on one page");
    assert!(ascending.windows(2).all(|w| w[0] <= w[1]), "lowest risk first: {ascending:?}");
    browser.find(Locator::Css(r#"thead a[href^="/?sort=risk&"]"#)).await.unwrap().click().await.unwrap();
    wait_for(&browser, r#"th[aria-sort="descending"] a[href^="/?sort=risk&"]"#).await;
    let descending = risks(&browser).await;
    let mut reversed = ascending.clone();
    reversed.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(descending, reversed);
    assert!(descending.first() > descending.last(), "the demo's accounts differ in risk: {descending:?}");

    // The account's relationship map: its current contacts, and a line for each relationship
    // held in the rule set's window, weighted by its touches.
    browser.find(Locator::Css(&format!(r#"a[href="/accounts/{ACCOUNT}"]"#))).await.unwrap().click().await.unwrap();
    wait_for(&browser, "svg.map").await;
    let (contacts, lines) = map(&browser).await;
    assert_eq!(contacts, expected.contacts_at(NOW_SECONDS));
    assert!(!lines.is_empty(), "the demo holds relationships in the window");
    assert_eq!(lines, expected.relationships_at(NOW_SECONDS));
    let keys = browser.find_all(Locator::Css(r#"svg.map g.contact[data-key="true"] circle.key"#)).await.unwrap();
    assert!(!keys.is_empty(), "key contacts are ringed");
    let months = browser.find_all(Locator::Css("tr[data-month]")).await.unwrap().len();
    assert_eq!(months, expected.months(), "a point for each month back from now the account was open");
    screenshot(&browser, "account").await;
    assert_eq!(sticking_out_on_a_phone(&browser).await, Vec::<String>::new(), "the account fits a phone");

    // Back in time: halfway through the account's life, as things occurred.
    let halfway = jiff::Timestamp::from_second((expected.opened() + NOW_SECONDS) / 2).unwrap();
    let day = halfway.to_zoned(jiff::tz::TimeZone::UTC).date();
    let end_of_day = day.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp().as_second() + 86_399;
    let then = (expected.contacts_at(end_of_day), expected.relationships_at(end_of_day));
    assert_ne!((&then.0, &then.1), (&contacts, &lines), "the account was another then");
    browser
        .execute(r#"document.querySelector('input[name="as_of"]').value = arguments[0]"#, vec![json!(day.to_string())])
        .await
        .unwrap();
    browser.find(Locator::Css(r#"input[name="kind"][value="occurred"]"#)).await.unwrap().click().await.unwrap();
    browser.find(Locator::Css("form.as-of button[type=submit]")).await.unwrap().click().await.unwrap();
    let note = wait_for(&browser, "p.as-of-note").await.text().await.unwrap();
    assert!(note.contains(&format!("{day} 23:59 UTC")), "{note}");
    assert!(at(&browser).await.contains(&format!("as_of={day}&kind=occurred")), "{}", at(&browser).await);
    assert_eq!(map(&browser).await, then);

    // The timeline, newest first, and the account's verification.
    browser.goto(&format!("{url}/accounts/{ACCOUNT}")).await.unwrap();
    browser
        .find(Locator::Css(&format!(r#"a[href="/accounts/{ACCOUNT}/timeline"]"#)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let newest = wait_for(&browser, "tr[data-version]").await;
    assert_eq!(attr(&newest, "data-version").await, expected.events.len().to_string());
    let rows = browser.find_all(Locator::Css("tr[data-version]")).await.unwrap();
    assert_eq!(rows.len(), expected.events.len().min(50));
    screenshot(&browser, "timeline").await;
    assert_eq!(sticking_out_on_a_phone(&browser).await, Vec::<String>::new(), "the timeline page fits a phone");
    browser.find(Locator::Css(r#"form[action$="/verify"] button"#)).await.unwrap().click().await.unwrap();
    let verified = wait_for(&browser, "p[data-verified]").await;
    assert_eq!(attr(&verified, "data-verified").await, "intact");
    let text = verified.text().await.unwrap();
    assert!(text.contains(&format!("{} events in 1 streams", expected.events.len())), "{text}");

    // The analyst: a rebuild under a second rule set, its progress moving on the open page as
    // the log grows, then the two compared.
    browser.goto(&format!("{url}/analyst")).await.unwrap();
    let rules = rules_variant(2, 0.9);
    browser.execute("document.getElementById('rule_set').value = arguments[0]", vec![json!(rules)]).await.unwrap();
    browser.find(Locator::Css("form.rebuild button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&browser, r#"tr[data-rule-set="default@2"]"#).await;
    assert!(at(&browser).await.starts_with("/analyst?started=default%402"), "{}", at(&browser).await);
    let total: usize = demo.iter().map(|r| r.events.len()).sum();
    let mut ledger = pb::ledger_client::LedgerClient::with_interceptor(server.channel(), bearer(ADMIN));
    let someone = contacts.first().unwrap();
    ledger.append(request(ACCOUNT, Expected::Any, vec![meeting(&["jonas.berg"], &[someone])])).await.unwrap();
    let progress = format!("{0} of {0}", total + 1);
    let mut live = String::new();
    for _ in 0..100 {
        live = browser.find(Locator::Css(r#"[data-progress-text="default@2"]"#)).await.unwrap().text().await.unwrap();
        if live == progress {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(live, progress, "the page's progress follows the build without a reload");
    screenshot(&browser, "analyst").await;
    assert_eq!(sticking_out_on_a_phone(&browser).await, Vec::<String>::new(), "the analyst page fits a phone");

    browser.find(Locator::Css(r#"select[name="a"]"#)).await.unwrap().select_by_value("default@1").await.unwrap();
    browser.find(Locator::Css(r#"select[name="b"]"#)).await.unwrap().select_by_value("default@2").await.unwrap();
    browser.find(Locator::Css(r#"form[action^="/analyst"] button[type=submit]"#)).await.unwrap().click().await.unwrap();
    wait_for(&browser, "#comparison tr[data-account]").await;
    let compared = pb::projections_client::ProjectionsClient::with_interceptor(server.channel(), bearer(ADMIN))
        .compare(pb::CompareRequest { rule_set_a: "default@1".into(), rule_set_b: "default@2".into(), limit: 20 })
        .await
        .unwrap()
        .into_inner();
    let mut shown = Vec::new();
    for row in browser.find_all(Locator::Css("#comparison tr[data-account]")).await.unwrap() {
        let factors = row.find_all(Locator::Css("li code")).await.unwrap();
        assert!(!factors.is_empty(), "each account with the factors that moved it");
        shown.push(attr(&row, "data-account").await);
    }
    let listed: Vec<String> = compared.accounts.iter().map(|m| m.account_id.clone()).collect();
    assert!(!shown.is_empty());
    assert_eq!(shown, listed, "the accounts that move most, in the service's order");

    // The auditor: the whole log verified.
    browser.goto(&format!("{url}/auditor")).await.unwrap();
    browser.find(Locator::Css(r#"form[action="/auditor/verify"] button"#)).await.unwrap().click().await.unwrap();
    let verified = wait_for(&browser, "p[data-verified]").await;
    assert_eq!(attr(&verified, "data-verified").await, "intact");
    screenshot(&browser, "auditor").await;
    assert_eq!(sticking_out_on_a_phone(&browser).await, Vec::<String>::new(), "the auditor page fits a phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_each_user_finds_what_the_ledger_knows() {
    let file = format!(
        "[[token]]\nidentity = \"ada\"\nrole = \"admin\"\nrecords_for_others = true\nsha256 = \"{}\"\n",
        token_hash(ADMIN)
    );
    let tokens = Arc::new(Tokens::parse(&file).unwrap());
    let (server, url) = TestServer::start_with_console(ServerConfig { tokens: Some(tokens), ..test_config() }).await;
    let demo = rapport_demo::sample(7, NOW_SECONDS);
    let mut ledger = pb::ledger_client::LedgerClient::with_interceptor(server.channel(), bearer(ADMIN));
    for request in demo.clone() {
        ledger.append(request).await.unwrap();
    }

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    // Should the walk fail, the session still ends, and the browser with it, before the
    // failure is reported.
    let walked = walk(client.clone(), &server, &url, &demo);
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(walked)).await;
    let _ = client.close().await;
    drop(driver);
    server.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
