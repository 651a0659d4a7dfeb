//! The crate map of ARCHITECTURE.md, enforced: each crate depends only on what it may.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each crate, the workspace crates and the notable external crates it must not use.
const RULES: &[(&str, &[&str])] = &[
    // The domain is pure: no wire types, no storage, no runtime, no I/O libraries.
    (
        "rapport-domain",
        &[
            "rapport-proto",
            "rapport-store",
            "rapport-sled",
            "rapport-server",
            "rapport-demo",
            "rapport",
            "tokio",
            "tonic",
            "prost",
            "sled",
        ],
    ),
    // Projections are pure too: rules, folds and scores, no I/O.
    (
        "rapport-projection",
        &["rapport-proto", "rapport-store", "rapport-sled", "rapport-server", "rapport", "tokio", "tonic", "sled"],
    ),
    // The storage contract knows no engine, no wire format, no server.
    (
        "rapport-store",
        &["rapport-proto", "rapport-sled", "rapport-server", "rapport", "tokio", "tonic", "prost", "sled"],
    ),
    // The backends are backends: nothing of the service, and none knows another.
    ("rapport-sled", &["rapport-server", "rapport", "tokio", "tonic", "rapport-segments"]),
    ("rapport-segments", &["rapport-server", "rapport", "tokio", "tonic", "rapport-sled", "sled"]),
    // The stored form of an event is shared by the backends and knows none of them.
    ("rapport-envelope", &["rapport-server", "rapport", "rapport-sled", "rapport-segments", "tokio", "tonic", "sled"]),
    // The service is a library over the storage trait, never over an engine.
    ("rapport-server", &["rapport-sled", "rapport-segments", "rapport-demo", "rapport", "sled"]),
    // Generated code depends on nothing of ours.
    ("rapport-proto", &["rapport-domain", "rapport-store", "rapport-sled", "rapport-server", "rapport"]),
    // The demo generator speaks the wire contract only.
    ("rapport-demo", &["rapport-store", "rapport-sled", "rapport-server", "rapport", "tokio", "tonic", "sled"]),
    // Nothing of the product depends on the benchmark harness or on PostgreSQL.
    ("rapport-server", &["rapport-bench", "tokio-postgres"]),
    ("rapport", &["rapport-bench", "tokio-postgres"]),
];

#[test]
fn crates_depend_only_on_what_the_architecture_allows() {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");

    // Declared normal (non-dev, non-build) dependencies of every workspace member.
    let dependencies: BTreeMap<String, BTreeSet<String>> = metadata["packages"]
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
        .collect();

    let mut broken = Vec::new();
    for (krate, forbidden) in RULES {
        let deps = dependencies.get(*krate).unwrap_or_else(|| panic!("{krate} is a workspace crate"));
        for dep in *forbidden {
            if deps.contains(*dep) {
                broken.push(format!("{krate} depends on {dep}"));
            }
        }
    }
    assert!(broken.is_empty(), "dependencies ARCHITECTURE.md forbids: {broken:?}");
}
