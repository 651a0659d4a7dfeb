//! Graceful shutdown on SIGTERM: the server finishes or fails in-flight appends cleanly, ends
//! live subscriptions with a reason, flushes the store and exits 0; what it acknowledged is
//! there after a restart.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{RAPPORT, Server};

on_each_engine!(sigterm_ends_subscriptions_with_a_reason_and_keeps_everything_acknowledged);

fn sigterm_ends_subscriptions_with_a_reason_and_keeps_everything_acknowledged(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_on(&data, engine);
    assert!(server.run(&["demo"]).status.success());
    let before = String::from_utf8_lossy(&server.run(&["digest"]).stdout).into_owned();

    // A live follower, waiting for new events.
    let tail = Command::new(RAPPORT)
        .args(["tail", "--server", &server.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rapport tail starts");
    std::thread::sleep(Duration::from_millis(300));

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the server did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the server exits cleanly: {status:?}");
    let tail = tail.wait_with_output().unwrap();
    assert!(!tail.status.success());
    let said = String::from_utf8_lossy(&tail.stderr);
    assert!(said.contains("shutting down") && said.contains("--from"), "{said}");

    // Everything acknowledged is there after a restart, byte for byte (same digest).
    let restarted = Server::start_on(&data, engine);
    let after = String::from_utf8_lossy(&restarted.run(&["digest"]).stdout).into_owned();
    assert_eq!(after, before);
    let layout = std::fs::read_to_string(data.join("layout.toml")).unwrap();
    assert!(layout.contains(&format!("engine = \"{engine}\"")), "the log ran on {engine}: {layout}");
}

#[test]
fn a_damaged_store_is_refused_at_start_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = Server::start(&data);
        assert!(server.run(&["demo"]).status.success());
    }
    // Flip a byte of the first event's envelope, as a bad sector would: the frames after it
    // were written once it was durable, so this is damage, not a torn tail to cut off.
    {
        let segment = data.join("log").join("segment-000000000001");
        let mut bytes = std::fs::read(&segment).unwrap();
        // The segment header (64 bytes), the frame header (24), the record header (8).
        bytes[64 + 24 + 8 + 5] ^= 0x04;
        std::fs::write(&segment, bytes).unwrap();
    }
    let refused = Command::new(RAPPORT)
        .args(["serve", "--addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .expect("rapport serve runs");
    assert!(!refused.status.success(), "a damaged store is never served");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("corrupt") && said.contains("rapport import"), "{said}");
}

#[test]
fn limits_are_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(&dir.path().join("data"), &["--max-events-per-append", "2"]);
    let acme = r#"{"account_id": "acme", "events": [
      {"actor": "li.wei", "account_opened": {"name": "Acme", "owner": "li.wei"}},
      {"actor": "li.wei", "tier_assigned": {"tier": "TIER_A"}},
      {"actor": "li.wei", "tier_assigned": {"tier": "TIER_S"}}]}"#;
    let file = dir.path().join("acme.json");
    std::fs::write(&file, acme).unwrap();
    let refused = server.run(&["append", file.to_str().unwrap()]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("3 events in one request; at most 2"), "{said}");
    let _ = server.child.kill();
}
