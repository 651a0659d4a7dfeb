//! The JetStream stream that holds Rapport's log: the settings Rapport creates it with, and the
//! check every node makes of the stream it finds before it writes to it.
//!
//! Every setting checked here is one under which the stream could lose or reorder an event, or
//! drop it silently: a stream in memory, with fewer than three replicas, that allows deletes or
//! purges, that removes messages by age, size, count, consumption or rollup, that is a mirror
//! (it cannot be written) or that has no atomic batches (a multi-event append would not be all
//! or nothing). The check names the first setting at fault, what it is and what it must be.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use rapport_domain::{AccountId, Limits};

/// The stream's name unless `--nats-stream` names another.
pub const DEFAULT_STREAM: &str = "RAPPORT";

/// Replicas a stream needs at least: a quorum of three survives one node's loss.
pub const MIN_REPLICAS: usize = 3;

/// How long the servers remember a message id to drop a duplicate publish. Rapport does not
/// rely on it for idempotency (it keeps its own id index, for ever); it only narrows the window
/// in which a retried publish could reach the stream twice.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The subjects of the stream named `name`: one subject per account under `<name>.a.`.
pub fn subjects(name: &str) -> String {
    format!("{name}.a.>")
}

/// The subject of an account's events in the stream `name`: `<name>.a.<account>`, a `.` of the
/// account id (which separates subject tokens) written `~` (which no account id holds), so
/// that every account has one subject of one token and no two share it.
pub fn account_subject(name: &str, account: &AccountId) -> String {
    format!("{name}.a.{}", account.as_str().replace('.', "~"))
}

/// The account whose subject this is in the stream `name`, or `None` for a subject that is no
/// account's.
pub fn account_of_subject(name: &str, subject: &str, limits: &Limits) -> Option<AccountId> {
    let token = subject.strip_prefix(name)?.strip_prefix(".a.")?;
    if token.contains('.') {
        return None;
    }
    AccountId::parse(token.replace('~', "."), limits).ok()
}

/// The configuration Rapport creates its stream with: file storage, `replicas` copies (at least
/// [`MIN_REPLICAS`]), no limits, no deletes, no purges, atomic batches.
pub fn config(name: &str, replicas: usize) -> Config {
    Config {
        name: name.to_owned(),
        subjects: vec![subjects(name)],
        storage: StorageType::File,
        num_replicas: replicas.max(MIN_REPLICAS),
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_bytes: -1,
        max_messages: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        allow_direct: true,
        allow_atomic_publish: true,
        duplicate_window: DUPLICATE_WINDOW,
        description: Some("Rapport's event log: one subject per account; never delete, purge or limit it".into()),
        ..Default::default()
    }
}

/// A stream whose settings could lose, reorder or drop events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream {stream}: `{setting}` is {found}, but Rapport needs {needed}: {why}; fix the stream's configuration (nats \
     stream edit {stream}) or give Rapport another stream with --nats-stream"
)]
pub struct UnsafeStream {
    /// The stream.
    pub stream: String,
    /// The setting at fault, as the NATS configuration names it.
    pub setting: &'static str,
    /// What it is.
    pub found: String,
    /// What Rapport needs.
    pub needed: String,
    /// What would go wrong.
    pub why: &'static str,
}

/// Checks a stream's configuration (as the server reports it) before Rapport writes to it.
pub fn check(config: &Config) -> Result<(), UnsafeStream> {
    check_kept(config)?;
    if !config.deny_delete {
        return Err(unsafe_setting(config, "deny_delete", "false", "true", "a deleted message would be a lost event"));
    }
    if !config.deny_purge {
        return Err(unsafe_setting(config, "deny_purge", "false", "true", "a purge would remove events"));
    }
    if !config.allow_atomic_publish {
        return Err(unsafe_setting(
            config,
            "allow_atomic",
            "false",
            "true",
            "a multi-event append would not be all or nothing",
        ));
    }
    check_subjects(config, &subjects(&config.name), "Rapport's appends would not land in it")
}

/// The checks every stream Rapport keeps something in must pass (its log, its keys): on
/// files, replicated, kept whatever is consumed, without limits or rollups, and writable.
pub(crate) fn check_kept(config: &Config) -> Result<(), UnsafeStream> {
    // A limit the server reports as -1 (or 0, before it normalises it) is no limit.
    let limited = |value: i64| value > 0;
    if config.storage != StorageType::File {
        return Err(unsafe_setting(config, "storage", "memory", "file", "a restart of the servers loses all it holds"));
    }
    if config.num_replicas < MIN_REPLICAS {
        return Err(unsafe_setting(
            config,
            "num_replicas",
            &config.num_replicas.to_string(),
            "3 or more",
            "the loss of one server's disk can lose acknowledged writes",
        ));
    }
    if config.retention != RetentionPolicy::Limits {
        return Err(unsafe_setting(
            config,
            "retention",
            &format!("{:?}", config.retention).to_lowercase(),
            "limits",
            "the server would remove messages once consumed",
        ));
    }
    let limits = [
        ("max_age", if config.max_age.is_zero() { 0 } else { 1 }, format!("{:?}", config.max_age)),
        ("max_bytes", config.max_bytes, config.max_bytes.to_string()),
        ("max_msgs", config.max_messages, config.max_messages.to_string()),
        ("max_msgs_per_subject", config.max_messages_per_subject, config.max_messages_per_subject.to_string()),
    ];
    for (setting, value, found) in limits {
        if limited(value) {
            return Err(unsafe_setting(
                config,
                setting,
                &found,
                "no limit",
                "the server would remove the oldest messages",
            ));
        }
    }
    if config.allow_rollup {
        return Err(unsafe_setting(config, "allow_rollup", "true", "false", "a rollup purges a subject's messages"));
    }
    if config.sealed {
        return Err(unsafe_setting(config, "sealed", "true", "false", "a sealed stream takes no writes"));
    }
    if config.mirror.is_some() {
        return Err(unsafe_setting(config, "mirror", "set", "none", "a mirror cannot be written to"));
    }
    Ok(())
}

/// Refuses a stream whose subjects do not hold `subjects`, the ones Rapport writes to.
pub(crate) fn check_subjects(config: &Config, subjects: &str, why: &'static str) -> Result<(), UnsafeStream> {
    if config.subjects.iter().any(|s| s == subjects) {
        return Ok(());
    }
    Err(unsafe_setting(config, "subjects", &format!("{:?}", config.subjects), &format!("to hold \"{subjects}\""), why))
}

/// The stream's `setting` is `found`, and Rapport needs `needed`, since otherwise `why`.
pub(crate) fn unsafe_setting(
    config: &Config,
    setting: &'static str,
    found: &str,
    needed: &str,
    why: &'static str,
) -> UnsafeStream {
    UnsafeStream { stream: config.name.clone(), setting, found: found.to_owned(), needed: needed.to_owned(), why }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_has_one_subject_of_one_token_and_back() {
        let limits = Limits::default();
        let subject = |id: &str| account_subject("RAPPORT", &AccountId::parse(id, &limits).unwrap());
        assert_eq!(subject("acme"), "RAPPORT.a.acme");
        assert_eq!(subject("acme.de"), "RAPPORT.a.acme~de", "a dot would split the token");
        assert_ne!(subject("a.b"), subject("a_b"));
        for id in ["acme", "acme.de", "x:y@z+1", "A-1_b.c.d"] {
            let back = account_of_subject("RAPPORT", &subject(id), &limits).unwrap();
            assert_eq!(back.as_str(), id);
        }
        assert_eq!(account_of_subject("RAPPORT", "RAPPORT.a.x.y", &limits), None, "two tokens are no account");
        assert_eq!(account_of_subject("RAPPORT", "OTHER.a.acme", &limits), None);
        assert_eq!(account_of_subject("RAPPORT", "RAPPORT.b.acme", &limits), None);
    }

    #[test]
    fn the_stream_rapport_makes_passes_its_own_check() {
        let made = config(DEFAULT_STREAM, 3);
        assert_eq!(check(&made), Ok(()));
        assert_eq!(made.subjects, ["RAPPORT.a.>"]);
        assert_eq!(config("LOG", 1).num_replicas, 3, "never fewer than three replicas");
    }

    /// A setting, and a change that makes it unsafe.
    type Spoiled = (&'static str, fn(&mut Config));

    #[test]
    fn every_unsafe_setting_is_refused_by_name() {
        let cases: [Spoiled; 13] = [
            ("storage", |c| c.storage = StorageType::Memory),
            ("num_replicas", |c| c.num_replicas = 1),
            ("deny_delete", |c| c.deny_delete = false),
            ("deny_purge", |c| c.deny_purge = false),
            ("retention", |c| c.retention = RetentionPolicy::WorkQueue),
            ("max_age", |c| c.max_age = Duration::from_secs(3_600)),
            ("max_bytes", |c| c.max_bytes = 1 << 30),
            ("max_msgs", |c| c.max_messages = 1_000),
            ("max_msgs_per_subject", |c| c.max_messages_per_subject = 10),
            ("allow_rollup", |c| c.allow_rollup = true),
            ("sealed", |c| c.sealed = true),
            ("allow_atomic", |c| c.allow_atomic_publish = false),
            ("subjects", |c| c.subjects = vec!["other.>".into()]),
        ];
        for (setting, spoil) in cases {
            let mut spoiled = config("RAPPORT", 3);
            spoil(&mut spoiled);
            let refused = check(&spoiled).expect_err(setting);
            assert_eq!(refused.setting, setting);
            let message = refused.to_string();
            assert!(message.contains(&format!("`{setting}`")) && message.contains("--nats-stream"), "{message}");
        }
        // Limits the server reports as -1, or 0 before it normalises them, are no limits.
        let mut unlimited = config("RAPPORT", 5);
        (unlimited.max_bytes, unlimited.max_messages) = (0, -1);
        assert_eq!(check(&unlimited), Ok(()));
    }
}
