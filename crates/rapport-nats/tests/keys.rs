//! Nodes sharing their data keys through the key stream, on a real three-node cluster: each
//! node a `KeyStore` in a directory of its own, all given the same master key file, each
//! following the key stream beside one event stream. A key made through one node is the key
//! on the other; nodes racing to make a subject's key end with one; an erasure through one
//! node reaches the other, erases the key from the stream and can never be undone; a node
//! started later gets every live key and none of the forgotten ones; keys a node had before
//! it shared them are given to the stream, or refused when another node's differ.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::DirectGetErrorKind, stream::LastRawMessageErrorKind};
use rapport_domain::{AccountId, ContactId, Limits};
use rapport_keys::{
    DataKey, KeyCluster, KeyError, KeyState, KeyStore, MasterKey, MasterKeySource, SubjectId, WrappedKey,
};
use rapport_nats::cluster::Cluster;
use rapport_nats::{KeyStream, NatsOptions, OpenError, keys};
use tempfile::TempDir;

/// One node of a test: its key store and the key stream it follows.
struct Node {
    store: Arc<KeyStore>,
    keys: Arc<KeyStream>,
    _dir: TempDir,
}

/// A master key file, which every node of a test is given.
fn master_file(dir: &Path) -> PathBuf {
    let path = dir.join("master.key");
    MasterKey::generate().unwrap().write(&path).unwrap();
    path
}

/// A key store of its own in a new directory, under `master`.
fn store(master: &Path) -> (Arc<KeyStore>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open(dir.path(), MasterKeySource::File(master.to_owned())).unwrap().store;
    (Arc::new(store), dir)
}

fn options(cluster: &Cluster, stream: &str) -> NatsOptions {
    let mut options = NatsOptions::new(&cluster.urls());
    options.stream = stream.to_owned();
    options
}

/// Follows the key stream beside `stream` into `store`. A cluster that has just started may
/// still be placing replicas: it is asked again for a while.
fn follow(cluster: &Cluster, stream: &str, store: &Arc<KeyStore>) -> Result<Arc<KeyStream>, OpenError> {
    let began = Instant::now();
    loop {
        match KeyStream::open(&options(cluster, stream), Arc::clone(store)) {
            Err(OpenError::Unreachable { .. }) if began.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            opened => return opened,
        }
    }
}

/// A new node, with an empty key store under `master`, on the key stream beside `stream`.
fn node(cluster: &Cluster, stream: &str, master: &Path) -> Node {
    let (store, dir) = store(master);
    let keys = follow(cluster, stream, &store).unwrap();
    Node { store, keys, _dir: dir }
}

fn subject(contact: &str) -> SubjectId {
    let limits = Limits::default();
    SubjectId::of(&AccountId::parse("acme", &limits).unwrap(), &ContactId::parse(contact, &limits).unwrap())
}

fn live(store: &KeyStore, subject: &SubjectId) -> Arc<DataKey> {
    match store.key(subject) {
        KeyState::Live(key) => key,
        other => panic!("{subject:?} should be live, is {other:?}"),
    }
}

/// True when `one` opens what `other` sealed: the same key.
fn same_key(one: &DataKey, other: &DataKey) -> bool {
    let sealed = rapport_keys::seal(&[one], b"event 1 / note", b"acme / note", b"met at the fair");
    rapport_keys::open(&[other], b"acme / note", &sealed).is_ok_and(|text| text == b"met at the fair")
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// The key stream beside `stream`, as a client of the cluster sees it.
async fn key_stream(cluster: &Cluster, stream: &str) -> jetstream::stream::Stream {
    let servers: Vec<async_nats::ServerAddr> = cluster.urls().split(',').map(|url| url.parse().unwrap()).collect();
    let js = jetstream::new(async_nats::connect(servers).await.unwrap());
    js.get_stream(keys::stream_name(stream)).await.unwrap()
}

/// A message of the key stream: its sequence, its kind (the `Rapport-Key` header) and payload.
type Message = (u64, String, Vec<u8>);

/// Every message of `subject` in the key stream beside `stream`, as its leader holds them.
fn messages_of(cluster: &Cluster, stream: &str, subject: &SubjectId) -> Vec<Message> {
    block_on(async {
        let key_stream = key_stream(cluster, stream).await;
        let nats_subject = keys::key_subject(&keys::stream_name(stream), subject);
        let mut found = Vec::new();
        let mut from = 1;
        loop {
            match key_stream.get_first_raw_message_by_subject(&nats_subject, from).await {
                Ok(message) => {
                    let kind = message.headers.get(keys::KIND).map(|v| v.as_str().to_owned()).unwrap_or_default();
                    found.push((message.sequence, kind, message.payload.to_vec()));
                    from = message.sequence + 1;
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return found,
                Err(e) => panic!("reading the key stream: {e}"),
            }
        }
    })
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut holding = Vec::new();
    let mut left = vec![dir.to_owned()];
    while let Some(path) = left.pop() {
        if path.is_dir() {
            left.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)) {
            holding.push(path);
        }
    }
    holding
}

#[test]
fn a_key_made_through_one_node_is_the_key_on_the_other() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let (a, b) = (node(&cluster, "KEYS_SHARED", &master), node(&cluster, "KEYS_SHARED", &master));
    let alice = subject("alice@acme.com");
    let through_a = a.store.keys_or_create(&[alice]).unwrap().remove(0);

    b.keys.catch_up().unwrap();
    let on_b = live(&b.store, &alice);
    assert!(same_key(&through_a, &on_b), "B opens what A sealed");
    assert!(same_key(&b.store.keys_or_create(&[alice]).unwrap()[0], &through_a), "and makes no other");

    // The stream holds the key once, wrapped, exactly as both keyrings hold it.
    let wrapped = a.store.wrapped(&alice).unwrap().unwrap();
    assert_eq!(b.store.wrapped(&alice).unwrap(), Some(wrapped));
    let messages = messages_of(&cluster, "KEYS_SHARED", &alice);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0].1.as_str(), messages[0].2.as_slice()), ("wrapped", wrapped.as_bytes().as_slice()));

    assert!(matches!(a.store.rotate(), Err(KeyError::SharedMasterKey)), "no rotation while keys are shared");
}

/// A `KeyCluster` that counts the keys a node offered and was given another node's instead.
struct Counting {
    keys: Arc<KeyStream>,
    lost: AtomicUsize,
}

impl KeyCluster for Counting {
    fn agree(&self, made: &[(SubjectId, WrappedKey)]) -> Result<Vec<WrappedKey>, KeyError> {
        let agreed = self.keys.agree(made)?;
        let lost = made.iter().zip(&agreed).filter(|((_, offered), agreed)| offered != *agreed).count();
        self.lost.fetch_add(lost, Ordering::SeqCst);
        Ok(agreed)
    }

    fn forget(&self, subject: &SubjectId) -> Result<(), KeyError> {
        self.keys.forget(subject)
    }
}

#[test]
fn nodes_making_a_key_for_one_new_subject_at_once_end_with_one_key() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let nodes = [node(&cluster, "KEYS_RACE", &master), node(&cluster, "KEYS_RACE", &master)];
    let counters: Vec<Arc<Counting>> = nodes
        .iter()
        .map(|node| {
            let counting = Arc::new(Counting { keys: Arc::clone(&node.keys), lost: AtomicUsize::new(0) });
            node.store.share_with(Arc::clone(&counting) as Arc<dyn KeyCluster>);
            counting
        })
        .collect();
    let rounds = 40;
    for round in 0..rounds {
        let contested = subject(&format!("contact-{round}@acme.com"));
        let barrier = Barrier::new(2);
        let keys: Vec<Arc<DataKey>> = std::thread::scope(|scope| {
            let racers: Vec<_> = nodes
                .iter()
                .map(|node| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        node.store.keys_or_create(&[contested]).unwrap().remove(0)
                    })
                })
                .collect();
            racers.into_iter().map(|racer| racer.join().unwrap()).collect()
        });
        assert!(same_key(&keys[0], &keys[1]), "round {round}: each node opens what the other sealed");
        let messages = messages_of(&cluster, "KEYS_RACE", &contested);
        assert_eq!(messages.len(), 1, "round {round}: one key in the stream: {messages:?}");
        for node in &nodes {
            let wrapped = node.store.wrapped(&contested).unwrap().unwrap();
            assert_eq!(wrapped.as_bytes().as_slice(), messages[0].2, "round {round}: the stream's bytes on each node");
        }
    }
    let lost: usize = counters.iter().map(|c| c.lost.load(Ordering::SeqCst)).sum();
    assert!(lost > 0, "the race happened: some node offered a key and was given the other's");
}

#[test]
fn an_erasure_through_one_node_reaches_the_other_and_erases_the_key_from_the_stream() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let (a, b) = (node(&cluster, "KEYS_FORGET", &master), node(&cluster, "KEYS_FORGET", &master));
    let (alice, bob) = (subject("alice@acme.com"), subject("bob@acme.com"));
    a.store.keys_or_create(&[alice, bob]).unwrap();
    b.keys.catch_up().unwrap();
    assert!(matches!(b.store.key(&alice), KeyState::Live(_)));
    let [(key_at, _, wrapped)] = messages_of(&cluster, "KEYS_FORGET", &alice).try_into().unwrap();
    // The files of the replicas' stores of the stream that hold the key's bytes.
    let stream_store = format!("/streams/{}/", keys::stream_name("KEYS_FORGET"));
    let in_the_stream = || -> Vec<PathBuf> {
        let holding = files_holding(cluster.dir(), &wrapped);
        holding.into_iter().filter(|path| path.to_string_lossy().contains(&stream_store)).collect()
    };
    assert!(!in_the_stream().is_empty(), "the stream's leader, at least, holds the key, wrapped");

    a.store.begin_forget(&alice).unwrap();
    a.store.forget(&alice).unwrap();
    assert!(matches!(a.store.key(&alice), KeyState::Forgotten));
    b.keys.catch_up().unwrap();
    assert!(matches!(b.store.key(&alice), KeyState::Forgotten), "B forgot alice");
    assert!(matches!(b.store.keys_or_create(&[alice]), Err(KeyError::Forgotten { index: 0 })));
    assert!(same_key(&live(&a.store, &bob), &live(&b.store, &bob)), "bob is untouched");

    // The stream holds the tombstone alone: the key's message is gone, by sequence too.
    let messages = messages_of(&cluster, "KEYS_FORGET", &alice);
    assert!(
        matches!(messages.as_slice(), [(at, kind, payload)] if *at > key_at && kind == "forgotten" && payload.is_empty()),
        "{messages:?}"
    );
    block_on(async {
        let key_stream = key_stream(&cluster, "KEYS_FORGET").await;
        let direct = key_stream.direct_get(key_at).await.map(|_| ()).map_err(|e| e.kind());
        assert_eq!(direct, Err(DirectGetErrorKind::NotFound), "a direct get of the key's sequence finds nothing");
        assert!(key_stream.get_raw_message(key_at).await.is_err(), "nor does the leader");
    });
    // Erased, not just marked deleted: no replica's store of the stream holds the key's bytes.
    // Each replica applies the erasure in its own time: looked at until it has.
    let began = Instant::now();
    while !in_the_stream().is_empty() {
        assert!(began.elapsed() < Duration::from_secs(10), "the key's bytes are still in {:?}", in_the_stream());
        std::thread::sleep(Duration::from_millis(20));
    }

    // No node gets a key for alice again, not even one that asks the stream directly.
    let offered = [(alice, WrappedKey::from_bytes([7; WrappedKey::LEN]))];
    assert!(matches!(b.keys.agree(&offered), Err(KeyError::Forgotten { index: 0 })));
    // Forgetting again changes nothing.
    a.store.forget(&alice).unwrap();
    b.store.forget(&alice).unwrap();
    assert_eq!(messages_of(&cluster, "KEYS_FORGET", &alice), messages);
}

#[test]
fn an_erasure_racing_a_new_key_ends_forgotten_on_both_nodes() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let (a, b) = (node(&cluster, "KEYS_FORGET_RACE", &master), node(&cluster, "KEYS_FORGET_RACE", &master));
    for round in 0..20 {
        let contested = subject(&format!("contact-{round}@acme.com"));
        let barrier = Barrier::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                barrier.wait();
                a.store.forget(&contested).unwrap();
            });
            scope.spawn(|| {
                barrier.wait();
                match b.store.keys_or_create(&[contested]) {
                    Ok(_) | Err(KeyError::Forgotten { index: 0 }) => {}
                    Err(other) => panic!("round {round}: {other}"),
                }
            });
        });
        a.keys.catch_up().unwrap();
        b.keys.catch_up().unwrap();
        for node in [&a, &b] {
            assert!(matches!(node.store.key(&contested), KeyState::Forgotten), "round {round}");
        }
        let messages = messages_of(&cluster, "KEYS_FORGET_RACE", &contested);
        assert!(messages.iter().all(|(_, kind, _)| kind == "forgotten"), "round {round}: no key left: {messages:?}");
    }
}

#[test]
fn a_node_started_later_gets_every_live_key_and_none_of_the_forgotten() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let a = node(&cluster, "KEYS_LATER", &master);
    let subjects: Vec<SubjectId> = (0..30).map(|n| subject(&format!("contact-{n}@acme.com"))).collect();
    a.store.keys_or_create(&subjects).unwrap();
    let forgotten: Vec<SubjectId> = subjects.iter().step_by(4).copied().collect();
    for subject in &forgotten {
        a.store.forget(subject).unwrap();
    }

    let later = node(&cluster, "KEYS_LATER", &master);
    for subject in &subjects {
        if forgotten.contains(subject) {
            assert!(matches!(later.store.key(subject), KeyState::Forgotten), "{subject:?}");
            assert!(matches!(later.store.keys_or_create(&[*subject]), Err(KeyError::Forgotten { .. })));
        } else {
            assert!(same_key(&live(&later.store, subject), &live(&a.store, subject)), "{subject:?}");
        }
    }
    assert_eq!(later.store.counts(), a.store.counts());
}

#[test]
fn keys_a_node_had_before_it_shared_them_are_given_to_the_stream_or_refused_when_they_differ() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let a = node(&cluster, "KEYS_BEFORE", &master);
    let (early, erased, shared, contested) =
        (subject("early@acme.com"), subject("erased@acme.com"), subject("shared@acme.com"), subject("c@acme.com"));
    a.store.keys_or_create(&[shared, erased]).unwrap();

    // A node that made keys, and forgot a contact, before keys were shared.
    let (before, _before_dir) = store(&master);
    let early_key = before.keys_or_create(&[early]).unwrap().remove(0);
    before.forget(&erased).unwrap();
    let joined = follow(&cluster, "KEYS_BEFORE", &before).unwrap();
    assert!(same_key(&live(&before, &shared), &live(&a.store, &shared)), "it took the stream's keys");
    a.keys.catch_up().unwrap();
    assert!(same_key(&live(&a.store, &early), &early_key), "and gave it its own");
    assert!(matches!(a.store.key(&erased), KeyState::Forgotten), "and its erasure, which wins");
    assert!(messages_of(&cluster, "KEYS_BEFORE", &erased).iter().all(|(_, kind, _)| kind == "forgotten"));
    drop(joined);

    // A node whose own key for a contact differs from the stream's cannot join.
    a.store.keys_or_create(&[contested]).unwrap();
    let (other, _other_dir) = store(&master);
    let own = other.keys_or_create(&[contested]).unwrap().remove(0);
    match follow(&cluster, "KEYS_BEFORE", &other) {
        Err(OpenError::KeyConflict { count: 1, first, .. }) => assert_eq!(first, contested),
        refused => panic!("expected a key conflict, got {refused:?}"),
    }
    assert!(same_key(&live(&other, &contested), &own), "its own key is kept");
    assert!(!same_key(&own, &live(&a.store, &contested)));
    assert!(format!("{other:?}").contains("shared: false"), "and the store is not shared");
}

#[test]
fn a_node_with_another_master_key_is_refused() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = node(&cluster, "KEYS_MASTER", &master_file(dir.path()));
    a.store.keys_or_create(&[subject("alice@acme.com")]).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other_master = master_file(other_dir.path());
    let (other, _store_dir) = store(&other_master);
    let refused = follow(&cluster, "KEYS_MASTER", &other).unwrap_err().to_string();
    assert!(refused.contains("KEYS_MASTER_KEYS") && refused.contains("same master key file"), "{refused}");
    assert!(refused.contains(&other_master.display().to_string()), "{refused}");
}

#[test]
#[ignore = "about three minutes, the servers' raft compaction: cargo test -p rapport-nats --test keys -- --ignored"]
fn a_forgotten_key_leaves_the_servers_disks_once_their_raft_logs_compact() {
    let cluster = Cluster::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let a = node(&cluster, "KEYS_DISKS", &master);
    let alice = subject("alice@acme.com");
    a.store.keys_or_create(&[alice]).unwrap();
    let wrapped = a.store.wrapped(&alice).unwrap().unwrap();
    a.store.forget(&alice).unwrap();
    // The servers compact a stream's raft log on a timer of their own (two minutes in the
    // release tested): nothing to hook into, so the files are looked at until then.
    let began = Instant::now();
    loop {
        let holding = files_holding(cluster.dir(), wrapped.as_bytes());
        if holding.is_empty() {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "after {:?} the key is still in {holding:?}",
            began.elapsed()
        );
        std::thread::sleep(Duration::from_secs(5));
    }
}
