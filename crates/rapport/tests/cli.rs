//! The `rapport` binary as a person uses it: a real `rapport serve` child process on a free
//! loopback port and a temporary data directory, and the client subcommands against it; each
//! test that starts a server runs once per log engine.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;

use common::{RAPPORT, Server};

on_each_engine!(
    append_history_and_account_against_a_running_server,
    the_demo_shows_accounts_with_owner_history_and_contacts,
    an_analyst_changes_a_weight_rebuilds_compares_and_activates,
    an_auditor_verifies_and_keeps_a_digest,
    tail_prints_the_log_from_a_position_filtered_by_type,
    an_export_verifies_offline_catches_an_altered_line_and_restores,
    tokens_roles_and_tls_from_the_command_line,
);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const ACME: &str = r#"{"account_id": "acme", "expected": {"no_stream": {}}, "events": [
  {"event_id": "0b7e8d36-3c1e-4f55-9a4e-6f1f0f6f2a01", "occurred_at": "2026-03-02T10:00:00Z",
   "actor": "li.wei", "source": "crm",
   "account_opened": {"name": "Acme Steel", "industry": "Steel", "owner": "li.wei"}},
  {"event_id": "0b7e8d36-3c1e-4f55-9a4e-6f1f0f6f2a02", "occurred_at": "2026-03-02T10:05:00Z",
   "actor": "li.wei", "source": "crm",
   "contact_added": {"contact_id": "k.hartmann", "name": "Katrin Hartmann", "title": "CIO",
                     "department": "IT", "role": "CONTACT_ROLE_DECISION_MAKER", "key": true}}]}"#;

fn append_history_and_account_against_a_running_server(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&dir.path().join("data"), engine);
    let file = dir.path().join("acme.json");
    std::fs::write(&file, ACME).unwrap();
    let path = file.to_str().unwrap();

    let first = server.run(&["append", path]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout).trim(), "acme: 2 event(s) appended at versions 1..2, positions 1..2");
    let retry = server.run(&["append", path]);
    assert_eq!(text(&retry.stdout).trim(), "acme: 2 event(s) already recorded at versions 1..2, positions 1..2");

    let account = server.run(&["account", "acme"]);
    let report = text(&account.stdout);
    assert!(report.starts_with("Acme Steel (acme)  Steel, not tiered"), "{report}");
    assert!(report.contains("k.hartmann Katrin Hartmann (CIO, IT)"), "{report}");

    let history = server.run(&["history", "acme", "--json"]);
    let lines: Vec<serde_json::Value> =
        text(&history.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["event"]["contact_added"]["contact_id"], "k.hartmann");
    assert_eq!(lines[1]["version"], "2", "uint64 is a string in the proto3 JSON mapping");

    // A rejected append says which request, which field and why; nothing is written.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, ACME.replace("no_stream", "stream_exists").replace("2a01", "2a03").replace("2a02", "2a04"))
        .unwrap();
    let refused = server.run(&["append", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(
        message.contains("request 1 of 1 to account \"acme\" was refused: InvalidArgument: events[0].account_opened"),
        "{message}"
    );

    // Many requests go over one stream: a refused one in the middle is named, the others are
    // appended, and the command fails.
    let tier = |id: &str, tier: &str| {
        format!(
            r#"{{"account_id": "acme", "events": [{{"event_id": "{id}", "occurred_at": "2026-03-03T10:00:00Z",
               "actor": "li.wei", "source": "crm", "tier_assigned": {{"tier": "{tier}"}}}}]}}"#
        )
    };
    let many = dir.path().join("many.jsonl");
    let lines = [
        tier("0b7e8d36-3c1e-4f55-9a4e-6f1f0f6f2b01", "TIER_A"),
        tier("0b7e8d36-3c1e-4f55-9a4e-6f1f0f6f2b02", "TIER_UNSPECIFIED"),
        tier("0b7e8d36-3c1e-4f55-9a4e-6f1f0f6f2b03", "TIER_S"),
    ];
    std::fs::write(&many, lines.join("\n")).unwrap();
    let partly = server.run(&["append", many.to_str().unwrap()]);
    assert!(!partly.status.success());
    let (out, said) = (text(&partly.stdout), text(&partly.stderr));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "acme: 1 event(s) appended at versions 3..3, positions 3..3",
            "acme: 1 event(s) appended at versions 4..4, positions 4..4"
        ],
        "{said}"
    );
    assert!(said.contains("request 2 of 3 to account \"acme\" was refused: InvalidArgument"), "{said}");
    assert!(said.contains("1 of 3 requests were refused (requests 2); the others were appended"), "{said}");
}

fn the_demo_shows_accounts_with_owner_history_and_contacts(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&dir.path().join("data"), engine);
    let demo = server.run(&["demo"]);
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    assert!(text(&demo.stdout).contains("into 5 accounts"), "{}", text(&demo.stdout));
    let report = text(&server.run(&["account", "nordwind-logistics"]).stdout);
    assert!(report.contains("Owner history\n  li.wei"), "{report}");
    assert!(report.contains("anna.berg") && report.contains("rotation to the APAC region"), "{report}");
    let again = server.run(&["demo"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists on this server"), "{}", text(&again.stderr));
}

/// The practice on the demo data, as an account manager, an executive and an analyst read it:
/// `rapport demo` names each turn of the story; `cadence` and `plans` with `--owner me`; the
/// contributions of a period; the playbook, whole and for one tier; and plain refusals of a
/// period that is none and of `me` when nobody said who they are. (One engine: the commands
/// read projections, which do not depend on it.)
#[test]
fn an_account_managers_week_an_executives_credit_and_an_analysts_playbook() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let demo = server.run(&["demo"]);
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    let told = text(&demo.stdout);
    for turn in [
        "plan cio-coach (li.wei for k.hartmann), achieved on ",
        "plan cto-supporter (tom.keller for h.solberg), overdue: ",
        "raj.patel (Cloud Services, not on the team) touched o.brown",
        "helios-energy        the team has no delivery",
        "g.meyer stands closer to Vantage Systems",
    ] {
        assert!(told.contains(turn), "{turn:?} in\n{told}");
    }

    let cadence = text(&server.run_as(Some("yuki.mori"), &["cadence", "--owner", "me"]).stdout);
    let rows: Vec<&str> = cadence.lines().filter(|l| l.starts_with("tianhe-motors") || l.contains(" days")).collect();
    assert!(rows.iter().all(|row| row.starts_with("tianhe-motors ")), "only Yuki's account:\n{cadence}");
    assert!(cadence.contains("m.zhang      Mei Zhang"), "{cadence}");

    let plans = text(&server.run_as(Some("tom.keller"), &["plans", "--owner", "me"]).stdout);
    assert!(plans.starts_with("1 plan(s) under default@1"), "{plans}");
    assert!(plans.contains("cto-supporter    h.solberg    tom.keller     overdue"), "{plans}");
    let achieved = server.run(&["plans", "--status", "achieved", "--json"]);
    let achieved: serde_json::Value = serde_json::from_slice(&achieved.stdout).unwrap();
    assert_eq!(achieved["plans"].as_array().map(Vec::len), Some(1), "{achieved}");
    assert_eq!(achieved["plans"][0]["plan_id"], "cio-coach");

    // Over the whole history: Raj Patel touched Kappa once; Li Wei owned the plan achieved.
    let all_time = server.run(&["contributions", "--period", "2000-01-01..2100-12-31", "--json"]);
    assert!(all_time.status.success(), "{}", text(&all_time.stderr));
    let credit: serde_json::Value = serde_json::from_slice(&all_time.stdout).unwrap();
    let person = |staff: &str| {
        credit["people"].as_array().unwrap().iter().find(|p| p["staff"] == staff).cloned().unwrap_or_default()
    };
    assert_eq!(person("raj.patel")["touches"], 1, "{credit}");
    assert_eq!(person("li.wei")["plans_achieved"], 1, "{credit}");
    let people = credit["people"].as_array().unwrap();
    let shares: f64 = people.iter().map(|p| p["share"].as_f64().unwrap_or(0.0)).sum();
    // Each share is rounded to 4 places, so together they are off by at most half of 1e-4 each.
    assert!((shares - 1.0).abs() <= 0.5e-4 * people.len() as f64, "the shares make the whole: {shares}");
    let table = text(&server.run(&["contributions", "--period", "2000-01-01..2100-12-31", "--explain"]).stdout);
    assert!(table.contains("plans achieved as owner × 5.00"), "{table}");

    let playbook = server.run(&["playbook", "--json"]);
    let playbook: serde_json::Value = serde_json::from_slice(&playbook.stdout).unwrap();
    let rows = playbook["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let (touches, improved) = (row["touches"].as_f64().unwrap(), row["improved"].as_f64().unwrap_or(0.0));
        // Rounded to 4 places.
        assert!((row["rate"].as_f64().unwrap_or(0.0) - improved / touches).abs() <= 0.5e-4, "{row}");
    }
    let tier_s = text(&server.run(&["playbook", "--tier", "S"]).stdout);
    let lines: Vec<&str> = tier_s.lines().skip(2).collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l.starts_with("S ")), "{tier_s}");

    let no_period = server.run(&["contributions", "--period", "2026-Q5"]);
    assert!(!no_period.status.success());
    assert!(text(&no_period.stderr).contains("--period \"2026-Q5\" is not a period"), "{}", text(&no_period.stderr));
    let nobody = server.run_as(None, &["plans", "--owner", "me"]);
    assert!(!nobody.status.success());
    assert!(text(&nobody.stderr).contains("set RAPPORT_ACTOR"), "{}", text(&nobody.stderr));
}

/// `rapport rules --explain` reads a rule file offline: today's default file from before
/// formats existed resolves to the whole rule set in the current format; a typo is refused,
/// naming the key, the line and the file.
#[test]
fn rules_explain_prints_what_a_rule_file_resolves_to() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/fixtures/format-1.toml");
    let explained = Command::new(RAPPORT).args(["rules", "--explain", fixture]).output().unwrap();
    assert!(explained.status.success(), "{}", text(&explained.stderr));
    let out = text(&explained.stdout);
    assert!(out.contains("(default@1), written in rule format 1"), "{out}");
    assert!(out.contains("\nformat = 2\nname = \"default\"\nversion = 1\n"), "{out}");
    assert!(
        out.contains("# health.coordination = 0.1: added in format 2")
            && out.contains("[cadence.key_contact_days]\nS = 14.0"),
        "{out}"
    );
    assert!(out.contains("[key_relationship]\nhalf_life_days = 180.0"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.toml");
    let original = std::fs::read_to_string(fixture).unwrap();
    std::fs::write(&typo, original.replacen("half_life_days", "half_life_dayz", 1)).unwrap();
    let refused = Command::new(RAPPORT).args(["rules", "--explain", typo.to_str().unwrap()]).output().unwrap();
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(
        message.contains("typo.toml") && message.contains("half_life_dayz") && message.contains("line"),
        "{message}"
    );
}

#[test]
fn clear_errors_for_a_missing_server_and_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 (tcpmux): nothing listens there, and no other test's server can take it.
    let nobody = Command::new(RAPPORT).args(["account", "acme", "--server", "http://127.0.0.1:1"]).output().unwrap();
    assert!(!nobody.status.success());
    let message = text(&nobody.stderr);
    assert!(message.contains("cannot reach the Rapport server") && message.contains("rapport serve"), "{message}");

    let file = dir.path().join("broken.json");
    std::fs::write(&file, "{\"account_id\": \"acme\", \"events\": [oops]}").unwrap();
    let broken = Command::new(RAPPORT).args(["append", file.to_str().unwrap()]).output().unwrap();
    assert!(!broken.status.success());
    let message = text(&broken.stderr);
    assert!(message.contains("broken.json, line 1 column"), "{message}");

    let missing = Command::new(RAPPORT).args(["append", "/nonexistent/events.json"]).output().unwrap();
    assert!(text(&missing.stderr).contains("could not read /nonexistent/events.json"), "{}", text(&missing.stderr));
}

fn an_analyst_changes_a_weight_rebuilds_compares_and_activates(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&dir.path().join("data"), engine);
    let demo = server.run(&["demo"]);
    assert!(demo.status.success(), "{}", text(&demo.stderr));

    // A copy of the default rule set with one weight changed, under a new version.
    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/default.toml")).unwrap();
    let mine =
        rules.replacen("version = 1", "version = 2", 1).replacen("support_weight = 0.6", "support_weight = 0.9", 1);
    let file = dir.path().join("mine.toml");
    std::fs::write(&file, mine).unwrap();

    let rebuilt = server.run(&["rebuild", "--rules", file.to_str().unwrap()]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt.stderr));
    let out = text(&rebuilt.stdout);
    assert!(out.contains("default@2 caught up") && out.contains("digest "), "{out}");

    let listed = text(&server.run(&["rules"]).stdout);
    assert!(listed.contains("*   default@1") && listed.contains("default@2"), "{listed}");

    let compared = server.run(&["compare", "default@1", "default@2", "--limit", "3"]);
    let out = text(&compared.stdout);
    assert!(compared.status.success() && out.contains("key_relationship"), "{out}{}", text(&compared.stderr));

    let activated = text(&server.run(&["activate", "default@2"]).stdout);
    assert!(activated.contains("serving default@2 (was default@1)"), "{activated}");

    let accounts = server.run(&["accounts", "--sort", "risk"]);
    let out = text(&accounts.stdout);
    assert!(accounts.status.success() && out.contains("under default@2") && out.contains("health"), "{out}");
    let first = out.lines().nth(2).and_then(|l| l.split_whitespace().next()).expect("a row").to_owned();
    let handover = server.run(&["handover", &first]);
    let out = text(&handover.stdout);
    assert!(handover.status.success() && out.contains("Key contacts") && out.contains("personalisation risk"), "{out}");

    // A broken rule file is refused with the key named, and nothing is built.
    std::fs::write(&file, rules.replacen("breadth_target = 5", "breadth_target = 0", 1)).unwrap();
    let refused = server.run(&["rebuild", "--rules", file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("general_relationship.breadth_target"), "{}", text(&refused.stderr));
}

fn an_auditor_verifies_and_keeps_a_digest(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&dir.path().join("data"), engine);
    let demo = server.run(&["demo"]);
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    let verified = server.run(&["verify"]);
    let out = text(&verified.stdout);
    assert!(verified.status.success() && out.contains("the whole log: intact"), "{out}{}", text(&verified.stderr));
    let one = text(&server.run(&["verify", "nordwind-logistics"]).stdout);
    assert!(one.contains("account \"nordwind-logistics\": intact"), "{one}");

    // The account as of its first event, and before it existed.
    let first = text(&server.run(&["account", "nordwind-logistics", "--version", "1"]).stdout);
    assert!(first.contains("version 1 ") && first.contains("owner li.wei"), "{first}");
    let before = server.run(&["account", "nordwind-logistics", "--as-of", "2000-01-01", "--occurred"]);
    assert!(!before.status.success());
    assert!(text(&before.stderr).contains("not opened yet"), "{}", text(&before.stderr));
    let bad = server.run(&["account", "nordwind-logistics", "--as-of", "last june"]);
    assert!(text(&bad.stderr).contains("neither a date"), "{}", text(&bad.stderr));

    let taken = text(&server.run(&["digest"]).stdout);
    let digest = taken.split_whitespace().last().expect("a digest").to_owned();
    let position = taken.split_whitespace().nth(1).expect("a position").to_owned();
    let same = server.run(&["digest", "--at", &position, "--expect", &digest]);
    assert!(same.status.success() && text(&same.stdout).contains("unchanged"), "{}", text(&same.stderr));
    let other = server.run(&["digest", "--at", &position, "--expect", &"0".repeat(64)]);
    assert!(!other.status.success());
    assert!(text(&other.stderr).contains("has changed"), "{}", text(&other.stderr));
}

fn tail_prints_the_log_from_a_position_filtered_by_type(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&dir.path().join("data"), engine);
    assert!(server.run(&["demo"]).status.success());
    let tail = server.run(&["tail", "--from", "1", "--type", "gift_given", "--limit", "2"]);
    let out = text(&tail.stdout);
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().all(|l| l.contains("gift")), "{out}");
    let json = server.run(&["tail", "--from", "1", "--limit", "3", "--json"]);
    let positions: Vec<u64> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["position"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(positions, vec![1, 2, 3]);
}

fn an_export_verifies_offline_catches_an_altered_line_and_restores(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&dir.path().join("data"), engine);
    assert!(server.run(&["demo"]).status.success());
    let taken = text(&server.run(&["digest"]).stdout);
    let digest = taken.split_whitespace().last().expect("a digest").to_owned();
    let file = dir.path().join("all.jsonl");
    let exported = server.run(&["export", "--out", file.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));

    // Offline: no server involved, and the file's digest is the log's.
    let offline =
        Command::new(RAPPORT).args(["verify", "--file", file.to_str().unwrap(), "--expect", &digest]).output();
    let offline = offline.unwrap();
    assert!(offline.status.success(), "{}", text(&offline.stderr));
    assert!(text(&offline.stdout).contains("intact, a whole-log export"), "{}", text(&offline.stdout));

    // One changed name in one line: in the event as readers see it (whose fields in clear the
    // stored form, which the hash covers, holds too), and in the stored form itself.
    let original = std::fs::read_to_string(&file).unwrap();
    let (number, _) = original.lines().enumerate().find(|(_, l)| l.contains("\"meeting_held\"")).expect("a meeting");
    let alter = |from: &str, to: &str| -> Vec<String> {
        original
            .lines()
            .enumerate()
            .map(|(i, l)| if i == number { l.replacen(from, to, 1) } else { l.to_owned() })
            .collect()
    };
    let in_stored = alter("\"stored\":{\"event_id\":\"", "\"stored\":{\"event_id\":\"0");
    let altered = alter("\"staff\":[\"", "\"staff\":[\"not.");
    assert_ne!(altered.join("\n"), original.trim_end());
    let bad = dir.path().join("altered.jsonl");
    std::fs::write(&bad, altered.join("\n")).unwrap();
    let refused = Command::new(RAPPORT).args(["verify", "--file", bad.to_str().unwrap()]).output().unwrap();
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(
        message.contains(&format!("line {} breaks the chain", number + 1)) && message.contains("hash"),
        "{message}"
    );
    std::fs::write(&bad, in_stored.join("\n")).unwrap();
    let refused = Command::new(RAPPORT).args(["verify", "--file", bad.to_str().unwrap()]).output().unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains(&format!("line {} ", number + 1)), "{}", text(&refused.stderr));

    // Restored into an empty directory of this engine, with the key store restored first (as a
    // backup restores it), it serves the same history: the same digest, and an export of it is
    // the same file, recording times and all.
    let restored = dir.path().join("restored");
    copy_dir(&dir.path().join("data").join("keys"), &restored.join("keys"));
    let import = Command::new(RAPPORT)
        .args(["import", file.to_str().unwrap(), "--log-engine", engine, "--data-dir"])
        .arg(&restored)
        .output();
    let import = import.unwrap();
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert!(text(&import.stdout).contains(&format!("({engine} log)")), "{}", text(&import.stdout));
    let layout = std::fs::read_to_string(restored.join("layout.toml")).unwrap();
    assert!(layout.contains(&format!("engine = \"{engine}\"")), "{layout}");
    let again = Command::new(RAPPORT).args(["import", file.to_str().unwrap(), "--data-dir"]).arg(&restored).output();
    assert!(text(&again.unwrap().stderr).contains("empty data directory only"));
    // Without --log-engine the server opens the directory with the engine it records.
    let copy = Server::start(&restored);
    let restored_digest = text(&copy.run(&["digest"]).stdout);
    assert!(restored_digest.contains(&digest), "{restored_digest} vs {digest}");
    let verified = text(&copy.run(&["verify"]).stdout);
    assert!(verified.contains("intact"), "{verified}");
    let reexported = dir.path().join("again.jsonl");
    assert!(copy.run(&["export", "--out", reexported.to_str().unwrap()]).status.success());
    assert!(std::fs::read(&reexported).unwrap() == original.as_bytes(), "the restored log exports the same file");

    // Without the key store, the import seals every personal field anew under the new
    // directory's keys: the same events as readers see them, in new stored bytes and hashes.
    let resealed = dir.path().join("resealed");
    let import = Command::new(RAPPORT).args(["import", file.to_str().unwrap(), "--data-dir"]).arg(&resealed).output();
    let import = import.unwrap();
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert!(
        text(&import.stdout).contains("sealed") && text(&import.stdout).contains("anew"),
        "{}",
        text(&import.stdout)
    );
    drop(copy);
    let copy = Server::start(&resealed);
    let digest_now = text(&copy.run(&["digest"]).stdout);
    assert!(!digest_now.contains(&digest), "new keys make new stored bytes: {digest_now}");
    assert!(text(&copy.run(&["verify"]).stdout).contains("intact"));
    let resealed_export = dir.path().join("resealed.jsonl");
    assert!(copy.run(&["export", "--out", resealed_export.to_str().unwrap()]).status.success());
    let shown = |path: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
            .collect()
    };
    assert_eq!(shown(&resealed_export), shown(&file), "readers see the same events");

    // A one-account export verifies on its own, but cannot be restored with its positions.
    let one = dir.path().join("one.jsonl");
    assert!(server.run(&["export", "--account", "helios-energy", "--out", one.to_str().unwrap()]).status.success());
    let partial = Command::new(RAPPORT).args(["verify", "--file", one.to_str().unwrap()]).output().unwrap();
    assert!(text(&partial.stdout).contains("intact, a partial export"), "{}", text(&partial.stdout));
    let refused = Command::new(RAPPORT)
        .args(["import", one.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(text(&refused.stderr).contains("partial export"), "{}", text(&refused.stderr));
}

fn tokens_roles_and_tls_from_the_command_line(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let new_token = |identity: &str, role: &str| {
        let made =
            Command::new(RAPPORT).args(["token", "new", "--identity", identity, "--role", role]).output().unwrap();
        assert!(made.status.success(), "{}", text(&made.stderr));
        let entry = text(&made.stderr);
        let entry = entry[entry.find("[[token]]").expect("the tokens-file entry")..].to_owned();
        (text(&made.stdout).trim().to_owned(), entry)
    };
    let (writer, writer_entry) = new_token("crm-sync", "writer");
    let (auditor, auditor_entry) = new_token("ada.audit", "auditor");
    assert!(writer.starts_with("rapport_") && writer.len() == 8 + 64, "{writer}");
    assert_ne!(writer, auditor, "tokens are random");
    assert!(!writer_entry.contains(&writer), "the file holds no token in clear");
    // `token hash` gives what the entry holds.
    let mut hashing = Command::new(RAPPORT)
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut hashing.stdin.take().unwrap(), writer.as_bytes()).unwrap();
    let hash = text(&hashing.wait_with_output().unwrap().stdout).trim().to_owned();
    assert!(writer_entry.contains(&format!("sha256 = \"{hash}\"")), "{writer_entry}");

    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, format!("{writer_entry}\n{auditor_entry}")).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--log-engine", engine, "--tokens", &path(&tokens), "--tls-cert", &path(&cert), "--tls-key", &path(&key)],
    );
    let url = server.url.replace("http://127.0.0.1", "https://localhost");
    let client = |token: Option<&str>, args: &[&str]| {
        let mut command = Command::new(RAPPORT);
        command.args(args).env("RAPPORT_SERVER", &url).env("RAPPORT_TLS_CA", &cert).env_remove("RAPPORT_TOKEN");
        if let Some(token) = token {
            command.env("RAPPORT_TOKEN", token);
        }
        command.output().unwrap()
    };

    // Events without an actor are recorded as the token's identity.
    let file = dir.path().join("acme.json");
    std::fs::write(&file, ACME.replace(r#""actor": "li.wei", "#, "")).unwrap();
    let appended = client(Some(&writer), &["append", &path(&file)]);
    assert!(appended.status.success(), "{}", text(&appended.stderr));
    let history = client(Some(&auditor), &["history", "acme"]);
    assert!(history.status.success(), "{}", text(&history.stderr));
    assert_eq!(text(&history.stdout).matches("(by crm-sync via crm;").count(), 2, "{}", text(&history.stdout));

    // The identity travels with the export and is part of what `verify --file` recomputes.
    let export = dir.path().join("export.jsonl");
    let exported = client(Some(&auditor), &["export", "--out", &path(&export)]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let lines = std::fs::read_to_string(&export).unwrap();
    assert_eq!(lines.matches(r#""recorded_by":"crm-sync""#).count(), 2, "{lines}");
    let verified = client(None, &["verify", "--file", &path(&export)]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    std::fs::write(&export, lines.replacen(r#""recorded_by":"crm-sync""#, r#""recorded_by":"someone""#, 1)).unwrap();
    let altered = client(None, &["verify", "--file", &path(&export)]);
    assert!(!altered.status.success(), "a changed identity breaks the chain: {}", text(&altered.stdout));

    let denied = client(Some(&writer), &["history", "acme"]);
    assert!(
        text(&denied.stderr).contains("PermissionDenied: token \"crm-sync\" has role writer"),
        "{}",
        text(&denied.stderr)
    );
    let anonymous = client(None, &["history", "acme"]);
    assert!(text(&anonymous.stderr).contains("Unauthenticated"), "{}", text(&anonymous.stderr));
    // Plain HTTP to the TLS port is no way in.
    let plain = Command::new(RAPPORT)
        .args(["history", "acme"])
        .env("RAPPORT_SERVER", &server.url)
        .env("RAPPORT_TOKEN", &auditor)
        .output()
        .unwrap();
    assert!(!plain.status.success());
}

/// Copies a directory's files (not its subdirectories) into a new one.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
