//! The data directory's log engine: a directory keeps the engine it was made with and is
//! refused under the other, with a message naming its own; directories made before they
//! recorded their engine open as they always did; an import that did not finish is never
//! opened; a directory from before personal data was sealed opens, reads, and has its contacts
//! forgotten once migrated.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{RAPPORT, Server, other_engine};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `rapport serve` on `data_dir`, expecting it to refuse the directory and exit; returns
/// what it said. A server that starts serving instead is killed and the test fails.
fn serve_refused(data_dir: &Path, options: &[&str], env: Option<(&str, &str)>) -> String {
    let mut command = Command::new(RAPPORT);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(options)
        .arg("--data-dir")
        .arg(data_dir);
    command.env("NO_COLOR", "1").env_remove("RAPPORT_LOG_ENGINE").stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some((name, value)) = env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("rapport serve starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("rapport serve {options:?} served {} instead of refusing it", data_dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "rapport serve {options:?} exits with a failure");
    text(&output.stderr)
}

fn import(file: &Path, data_dir: &Path, options: &[&str]) -> std::process::Output {
    Command::new(RAPPORT)
        .arg("import")
        .arg(file)
        .args(options)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RAPPORT_LOG_ENGINE")
        .output()
        .expect("rapport import runs")
}

/// What a refusal calls a directory of `engine`.
fn kind(engine: &str) -> &'static str {
    match engine {
        "sled" => "is a sled data directory",
        _ => "is a segment-log data directory",
    }
}

on_each_engine!(a_directory_keeps_its_engine_and_refuses_the_other);

fn a_directory_keeps_its_engine_and_refuses_the_other(engine: &str) {
    let other = other_engine(engine);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let export = dir.path().join("all.jsonl");
    let before = {
        let server = Server::start_on(&data, engine);
        assert!(server.run(&["demo"]).status.success());
        assert!(server.run(&["export", "--out", export.to_str().unwrap()]).status.success());
        text(&server.run(&["digest"]).stdout)
    };
    let layout = std::fs::read_to_string(data.join("layout.toml")).unwrap();
    assert!(layout.contains("layout = 1") && layout.contains(&format!("engine = \"{engine}\"")), "{layout}");
    // The engine's own stores are there, and none of the other's.
    let (own, others): (&[&str], &[&str]) =
        if engine == "sled" { (&["sled"], &["log", "projections"]) } else { (&["log", "projections"], &["sled"]) };
    let exist = |names: &[&str]| names.iter().map(|name| data.join(name).exists()).collect::<Vec<_>>();
    assert_eq!(exist(own), vec![true; own.len()], "{own:?} in {}", data.display());
    assert_eq!(exist(others), vec![false; others.len()], "{others:?} in {}", data.display());

    // Asked for the other engine, by option or by environment, it is refused with its own named.
    let by_option = serve_refused(&data, &["--log-engine", other], None);
    let by_env = serve_refused(&data, &[], Some(("RAPPORT_LOG_ENGINE", other)));
    for said in [&by_option, &by_env] {
        assert!(said.contains(kind(engine)) && said.contains("as its layout.toml records"), "{said}");
        assert!(said.contains(&format!("rapport serve --log-engine {engine}")) && said.contains("export it"), "{said}");
    }
    let imported = import(&export, &data, &["--log-engine", other]);
    assert!(!imported.status.success());
    assert!(text(&imported.stderr).contains(kind(engine)), "{}", text(&imported.stderr));
    assert_eq!(exist(others), vec![false; others.len()], "a refusal makes nothing of the other engine");

    // Without the option the directory opens with its own engine, everything in it.
    let server = Server::start(&data);
    assert_eq!(text(&server.run(&["digest"]).stdout), before);
}

/// A segment-log directory made before data directories recorded their engine holds the same
/// `log/` and `projections/` a new one does, without `layout.toml`.
#[test]
fn a_segment_log_directory_without_a_layout_file_opens_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let before = {
        // A new directory, without --log-engine, is made for the segment log.
        let server = Server::start(&data);
        assert!(server.run(&["demo"]).status.success());
        text(&server.run(&["digest"]).stdout)
    };
    let layout = std::fs::read_to_string(data.join("layout.toml")).unwrap();
    assert!(layout.contains("engine = \"segments\""), "{layout}");
    std::fs::remove_file(data.join("layout.toml")).unwrap();

    let said = serve_refused(&data, &["--log-engine", "sled"], None);
    assert!(said.contains(kind("segments")) && said.contains("made before data directories recorded"), "{said}");
    for options in [&[][..], &["--log-engine", "segments"][..]] {
        let server = Server::start_with(&data, options);
        assert_eq!(text(&server.run(&["digest"]).stdout), before, "served with {options:?}");
    }
    assert!(!data.join("layout.toml").exists(), "nothing is written into an older directory");
    assert!(!data.join("sled").exists());
}

/// A data directory made before the segment log (one sled database holding log and
/// projections) is still served, with everything in it, and is refused under the segment log.
#[test]
fn a_data_directory_of_the_sled_format_is_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The server as earlier builds ran it: the sled log for both the log and the projections.
    let (url, stop, served) = runtime.block_on(async {
        let log = std::sync::Arc::new(rapport_sled::SledLog::open(&data).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let projections = std::sync::Arc::new(log.projections());
        let served = tokio::spawn(rapport_server::serve(listener, log, projections, Default::default(), async {
            let _ = stopped.await;
        }));
        (url, stop, served)
    });
    let client = |args: &[&str]| {
        let output = Command::new(RAPPORT).args(args).args(["--server", &url]).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    client(&["demo"]);
    let before = client(&["digest"]);
    let _ = stop.send(());
    runtime.block_on(served).unwrap().unwrap();
    drop(runtime);

    let said = serve_refused(&data, &["--log-engine", "segments"], None);
    assert!(said.contains(kind("sled")) && said.contains("one sled database at its top"), "{said}");
    assert!(said.contains("rapport serve --log-engine sled"), "{said}");
    for options in [&[][..], &["--log-engine", "sled"][..]] {
        let server = Server::start_with(&data, options);
        let after = String::from_utf8_lossy(&server.run(&["digest"]).stdout).into_owned();
        assert_eq!(after, before, "the same history, served from the sled directory with {options:?}");
    }
    assert!(!data.join("log").exists(), "the sled directory is served as it is, not beside a new log");
    assert!(!data.join("layout.toml").exists(), "nothing is written into an older directory");
}

#[test]
fn an_import_that_did_not_finish_is_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("all.jsonl");
    {
        let server = Server::start(&dir.path().join("data"));
        assert!(server.run(&["demo"]).status.success());
        assert!(server.run(&["export", "--out", export.to_str().unwrap()]).status.success());
    }
    // The export cut short in the middle of its last line, as a copy that ran out of space.
    let whole = std::fs::read_to_string(&export).unwrap();
    let lines = whole.lines().count();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &whole[..whole.trim_end().len() - 40]).unwrap();

    let restored = dir.path().join("restored");
    let imported = import(&cut, &restored, &["--log-engine", "sled"]);
    assert!(!imported.status.success());
    let said = text(&imported.stderr);
    assert!(said.contains(&format!("line {lines} is not an exported event")), "{said}");
    assert!(said.contains("marked as an unfinished import") && said.contains("delete it"), "{said}");
    assert!(restored.join("IMPORT-UNFINISHED").exists());

    let said = serve_refused(&restored, &[], None);
    assert!(said.contains("holds an import that did not finish") && said.contains("rapport import again"), "{said}");
    let again = import(&export, &restored, &[]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("did not finish"), "{}", text(&again.stderr));

    // An empty file is nothing to import, and leaves no directory behind.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let imported = import(&empty, &dir.path().join("other"), &[]);
    assert!(text(&imported.stderr).contains("holds no events"), "{}", text(&imported.stderr));
    assert!(!dir.path().join("other").exists());
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            any_file_holds(&path, needle)
        } else {
            std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle)
        }
    })
}

/// `tests/fixtures/data-dir-v1/` (see its `.md`): written by the build before sealing, its
/// personal fields in clear. It opens and reads as it was; its contacts cannot be forgotten
/// where their text is in clear; export then import seals everything, and there they can.
#[test]
fn a_data_directory_from_before_sealing_reads_and_is_forgotten_after_migration() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/data-dir-v1");
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    copy_tree(&fixture, &old);
    let marker = b"Legacymark";

    let server = Server::start(&old);
    let history = server.run(&["history", "legacy-co"]);
    let shown = text(&history.stdout);
    assert!(history.status.success(), "{}", text(&history.stderr));
    assert_eq!(shown.lines().count(), 7, "{shown}");
    assert!(shown.contains("Lena Legacymark") && shown.contains("Otto Oldfield"), "{shown}");
    let refused = server.run(&["forget", "legacy-co", "c-1", "--reason", "DSR-9", "--requested-by", "dpo"]);
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(said.contains("stored in clear") && said.contains("rapport export"), "{said}");
    let file = dir.path().join("all.jsonl");
    assert!(server.run(&["export", "--out", file.to_str().unwrap()]).status.success());
    drop(server);

    let new = dir.path().join("new");
    let imported = import(&file, &new, &[]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let said = text(&imported.stdout);
    assert!(said.contains("sealed 6 events anew"), "two contacts, two meetings, a signal, a gift: {said}");
    assert!(!any_file_holds(&new, marker), "the migrated directory holds no personal text in clear");

    let server = Server::start(&new);
    assert!(text(&server.run(&["history", "legacy-co"]).stdout).contains("Lena Legacymark"), "still readable");
    let forgotten = server.run(&["forget", "legacy-co", "c-1", "--reason", "DSR-9", "--requested-by", "dpo"]);
    assert!(forgotten.status.success(), "{}", text(&forgotten.stderr));
    let after = text(&server.run(&["history", "legacy-co"]).stdout);
    assert!(!after.contains("Legacymark"), "{after}");
    assert!(after.contains("Otto Oldfield") && after.contains("\"Plant visit\""), "c-2 keeps what was theirs: {after}");
    let verify = text(&server.run(&["verify"]).stdout);
    assert!(verify.contains("intact"), "{verify}");
    let after_export = dir.path().join("after.jsonl");
    assert!(server.run(&["export", "--out", after_export.to_str().unwrap()]).status.success());
    let exported = std::fs::read_to_string(&after_export).unwrap();
    assert!(!exported.contains("Legacymark") && exported.contains("\"forgotten\":true"), "a fresh export");
    let checked = Command::new(RAPPORT).args(["verify", "--file", after_export.to_str().unwrap()]).output().unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let report = text(&server.run(&["subject-report", "legacy-co", "c-1"]).stdout);
    assert!(report.contains("FORGOTTEN") && !report.contains("Legacymark"), "{report}");
    drop(server);
    assert!(!any_file_holds(&new, marker));
}
