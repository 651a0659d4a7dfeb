//! The crate map of ARCHITECTURE.md, enforced: each crate depends on exactly the workspace
//! crates its row in the map's table names (an allow-list: a new edge fails until the map
//! names it, and an edge the map names but the crate dropped fails too, so the map stays
//! true), and the pure crates use no I/O, runtime or wire library.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// External crates the pure and the lower crates must never use, with the reason.
const FORBIDDEN: &[(&str, &[&str], &str)] = &[
    ("rapport-domain", &["tokio", "tonic", "prost", "sled", "toml"], "the domain is pure: no I/O, wire or runtime"),
    ("rapport-projection", &["tokio", "tonic", "prost", "sled"], "projections are pure: rules, folds and scores"),
    ("rapport-store", &["tokio", "tonic", "prost", "sled"], "the storage contract knows no engine and no wire"),
    ("rapport-keys", &["tokio", "async-nats", "tonic"], "the key store uses no network: its cluster is a trait"),
    ("rapport-wire", &["tokio", "tonic", "sled"], "conversion does no I/O and knows no transport"),
    ("rapport-server", &["sled", "tokio-postgres"], "the service is a library over the storage traits"),
    ("rapport", &["tokio-postgres"], "nothing of the product depends on the benchmark's peer"),
];

/// Every workspace crate's normal (non-dev, non-build) dependencies.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let normal = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), normal)
        })
        .collect()
}

/// The map's table of crates: for each row, the crate and the workspace crates it names in
/// its "workspace dependencies" column (backticked names, or `—` for none).
fn map() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is at the root");
    let header = "| crate | owns | workspace dependencies |";
    let table = text.split_once(header).unwrap_or_else(|| panic!("ARCHITECTURE.md has a table `{header}`")).1;
    let backticked =
        |cell: &str| -> BTreeSet<String> { cell.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    table
        .lines()
        .skip(2) // the header's rule, then the first row
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            // A `\|` inside a cell is part of its text, not a column.
            let row = row.replace("\\|", "/");
            let cells: Vec<&str> = row.split('|').collect();
            let krate = backticked(cells[1]).into_iter().next().unwrap_or_else(|| panic!("a crate name in {row}"));
            let dependencies = backticked(cells[3]);
            (krate, dependencies)
        })
        .collect()
}

#[test]
fn each_crate_depends_on_exactly_the_workspace_crates_the_map_names() {
    let dependencies = dependencies();
    let map = map();
    let workspace: BTreeSet<&String> = dependencies.keys().collect();
    assert_eq!(map.keys().collect::<BTreeSet<_>>(), workspace, "the map has one row per workspace crate");
    let mut wrong = Vec::new();
    for (krate, deps) in &dependencies {
        let actual: BTreeSet<String> = deps.iter().filter(|d| workspace.contains(d)).cloned().collect();
        let allowed = &map[krate];
        for new in actual.difference(allowed) {
            wrong.push(format!("{krate} depends on {new}, which its row in ARCHITECTURE.md does not name"));
        }
        for gone in allowed.difference(&actual) {
            wrong.push(format!("{krate}'s row in ARCHITECTURE.md names {gone}, which it does not depend on"));
        }
    }
    assert!(wrong.is_empty(), "the crate graph and the map disagree:\n{}", wrong.join("\n"));
}

#[test]
fn the_pure_and_lower_crates_use_no_io_runtime_or_wire_library() {
    let dependencies = dependencies();
    let mut broken = Vec::new();
    for (krate, forbidden, why) in FORBIDDEN {
        let deps = dependencies.get(*krate).unwrap_or_else(|| panic!("{krate} is a workspace crate"));
        for dep in *forbidden {
            if deps.contains(*dep) {
                broken.push(format!("{krate} depends on {dep}: {why}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:?}");
}
