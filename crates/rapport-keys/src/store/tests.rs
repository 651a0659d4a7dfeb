//! The key store on real files in a temporary directory: durability across reopening,
//! concurrency, erasure, torn and damaged files, wrong master keys, rotation and its crashes.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Barrier, Mutex};

use super::*;
use crate::master::WRAPPED_LEN;
use crate::{KeyCluster, SharedKey, WrappedKey};

fn subject(n: u8) -> SubjectId {
    SubjectId::from_bytes([n; 32])
}

fn open(dir: &Path) -> KeyStore {
    KeyStore::open(dir, MasterKeySource::Default).unwrap().store
}

fn bytes_of(key: &DataKey) -> [u8; 32] {
    *key.as_bytes()
}

fn live(store: &KeyStore, subject: &SubjectId) -> [u8; 32] {
    match store.key(subject) {
        KeyState::Live(key) => bytes_of(&key),
        other => panic!("{subject:?} should be live, is {other:?}"),
    }
}

fn is_forgotten(store: &KeyStore, subject: &SubjectId) -> bool {
    matches!(store.key(subject), KeyState::Forgotten)
}

fn keyring(dir: &Path) -> Vec<u8> {
    fs::read(dir.join(KEYRING_FILE)).unwrap()
}

/// The keyring's slots, each as decoded.
fn slots(dir: &Path) -> Vec<Decoded> {
    keyring(dir)[HEADER_LEN as usize..].chunks_exact(SLOT_LEN as usize).map(format::decode_slot).collect()
}

fn append_bytes(dir: &Path, bytes: &[u8]) {
    let mut content = keyring(dir);
    content.extend_from_slice(bytes);
    fs::write(dir.join(KEYRING_FILE), content).unwrap();
}

fn master(dir: &Path) -> MasterKey {
    MasterKey::read(&dir.join(MASTER_FILE)).unwrap()
}

#[test]
fn the_store_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<KeyStore>();
    shared::<Arc<DataKey>>();
}

#[test]
fn a_new_store_makes_its_master_key_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let opened = KeyStore::open(dir.path(), MasterKeySource::Default).unwrap();
    let path = dir.path().join(MASTER_FILE);
    assert_eq!(opened.created_master.as_deref(), Some(path.as_path()));
    assert_eq!(opened.store.master_key_path(), path);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(keyring(dir.path()), format::encode_header(&master(dir.path()).check()), "an empty keyring");
    drop(opened);
    let again = KeyStore::open(dir.path(), MasterKeySource::Default).unwrap();
    assert_eq!(again.created_master, None, "the second open uses the key the first made");
}

#[test]
fn keys_made_are_durable_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (subject(1), subject(2));
    assert!(matches!(store.key(&a), KeyState::Unknown));
    let keys = store.keys_or_create(&[a, b, a]).unwrap();
    assert_eq!(keys.len(), 3);
    assert!(Arc::ptr_eq(&keys[0], &keys[2]), "a subject asked for twice gets one key");
    assert_ne!(bytes_of(&keys[0]), bytes_of(&keys[1]));
    assert_eq!(slots(dir.path()).len(), 2, "one slot per new subject");
    assert_eq!(store.counts(), KeyCounts { live: 2, forgotten: 0 });
    let (key_a, key_b) = (bytes_of(&keys[0]), bytes_of(&keys[1]));
    drop(store);

    let store = open(dir.path());
    assert_eq!(live(&store, &a), key_a);
    assert_eq!(live(&store, &b), key_b);
    let before = keyring(dir.path());
    let again = store.keys_or_create(&[b, a]).unwrap();
    assert_eq!((bytes_of(&again[0]), bytes_of(&again[1])), (key_b, key_a));
    assert_eq!(keyring(dir.path()), before, "keys that exist are not written again");
}

#[test]
fn concurrent_callers_get_the_same_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let shared = subject(1);
    let threads = 8;
    let barrier = Barrier::new(threads);
    let keys: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (store, barrier) = (&store, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    store.keys_or_create(&[shared, subject(10 + i as u8)]).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for got in &keys {
        assert_eq!(bytes_of(&got[0]), bytes_of(&keys[0][0]), "every caller got the one key of the shared subject");
    }
    assert_eq!(slots(dir.path()).len(), 1 + threads, "the shared subject was written once");
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(live(&reopened, &shared), bytes_of(&keys[0][0]));
    for (i, got) in keys.iter().enumerate() {
        assert_eq!(
            live(&reopened, &subject(10 + i as u8)),
            bytes_of(&got[1]),
            "each new key was durable when returned"
        );
    }
}

#[test]
fn keys_made_at_once_share_syncs_and_all_are_durable_and_visible_when_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let threads = 16;
    let rounds = 20;
    let made: Vec<Vec<(SubjectId, [u8; 32])>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = &store;
                scope.spawn(move || {
                    (0..rounds)
                        .map(|r| {
                            let mut bytes = [7u8; 32];
                            (bytes[0], bytes[1]) = (t as u8, r as u8);
                            let subject = SubjectId::from_bytes(bytes);
                            let key = store.keys_or_create(&[subject]).unwrap();
                            // Visible to readers as soon as it is returned: it is durable.
                            assert!(matches!(store.key(&subject), KeyState::Live(_)));
                            (subject, bytes_of(&key[0]))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // An erasure and a rotation right after see every key made.
    let (first, first_key) = made[0][0];
    store.forget(&first).unwrap();
    store.rotate().unwrap();
    drop(store);
    let reopened = open(dir.path());
    assert!(is_forgotten(&reopened, &first));
    for (subject, key) in made.iter().flatten().skip(1) {
        assert_eq!(&live(&reopened, subject), key);
    }
    assert_ne!(first_key, [0; 32]);
}

#[test]
fn a_forgotten_key_is_zeroed_on_disk_and_never_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, unknown) = (subject(1), subject(2), subject(3));
    store.keys_or_create(&[a, b]).unwrap();
    let Decoded::Slot(slot_a) = &slots(dir.path())[0] else { panic!("slot 0 is a's") };
    assert_eq!(slot_a.subject, a);
    let wrapped_a = slot_a.wrapped;

    store.forget(&a).unwrap();
    assert!(is_forgotten(&store, &a));
    let before = keyring(dir.path());
    assert!(matches!(store.keys_or_create(&[b, a]), Err(KeyError::Forgotten { index: 1 })));
    assert_eq!(keyring(dir.path()), before, "a refused request writes nothing");
    store.forget(&a).unwrap();
    assert_eq!(keyring(dir.path()), before, "forgetting again writes nothing");
    store.forget(&unknown).unwrap();
    assert!(is_forgotten(&store, &unknown), "an unknown subject gets a tombstone");
    assert!(matches!(store.keys_or_create(&[unknown]), Err(KeyError::Forgotten { index: 0 })));
    let key_b = live(&store, &b);
    drop(store);

    let store = open(dir.path());
    assert!(is_forgotten(&store, &a) && is_forgotten(&store, &unknown));
    assert_eq!(live(&store, &b), key_b);
    assert_eq!(store.counts(), KeyCounts { live: 1, forgotten: 2 });
    assert!(matches!(store.keys_or_create(&[a]), Err(KeyError::Forgotten { index: 0 })));
    let file = keyring(dir.path());
    let mut slots_of_a = 0;
    for decoded in slots(dir.path()) {
        let Decoded::Slot(slot) = decoded else { panic!("every slot is whole: {decoded:?}") };
        if slot.subject == a {
            slots_of_a += 1;
            assert_eq!(slot.kind, SlotKind::Forgotten);
            assert_eq!(slot.wrapped, [0; WRAPPED_LEN], "a's key bytes are zero");
        }
    }
    assert_eq!(slots_of_a, 2, "a's Live slot overwritten, and its tombstone");
    assert!(!file.windows(48).any(|w| w == &wrapped_a[12..]), "a's sealed key is nowhere in the file");
}

#[test]
fn a_forgotten_key_leaves_the_store_and_a_holder_keeps_it_until_it_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = subject(1);
    let held = store.keys_or_create(&[a]).unwrap().remove(0);
    store.forget(&a).unwrap();
    assert_eq!(Arc::strong_count(&held), 1, "the store let go of the forgotten key");
    assert_ne!(bytes_of(&held), [0; 32], "a holder keeps it until it lets go");
}

#[test]
fn intents_survive_reopening_until_forget_or_abandon_settles_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, c) = (subject(1), subject(2), subject(3));
    store.keys_or_create(&[a, b]).unwrap();
    store.begin_forget(&a).unwrap();
    store.begin_forget(&b).unwrap();
    let len = keyring(dir.path()).len();
    store.begin_forget(&a).unwrap();
    assert_eq!(keyring(dir.path()).len(), len, "beginning again writes nothing");
    store.begin_forget(&c).unwrap();
    assert!(matches!(store.key(&a), KeyState::Live(_)), "the key stays live while the erasure is pending");
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.pending_forgets(), [a, b, c]);
    store.forget(&a).unwrap();
    store.abandon_forget(&b).unwrap();
    assert_eq!(store.pending_forgets(), [c]);
    let len = keyring(dir.path()).len();
    store.abandon_forget(&b).unwrap();
    store.begin_forget(&a).unwrap();
    assert_eq!(keyring(dir.path()).len(), len, "abandoning nothing and beginning a done erasure write nothing");
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.pending_forgets(), [c]);
    assert!(is_forgotten(&store, &a));
    assert!(matches!(store.key(&b), KeyState::Live(_)), "an abandoned erasure leaves the key");
    store.abandon_forget(&c).unwrap();
    drop(store);
    assert!(open(dir.path()).pending_forgets().is_empty());
}

#[test]
fn a_torn_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, c) = (subject(1), subject(2), subject(3));
    store.keys_or_create(&[a, b]).unwrap();
    let (key_a, key_b) = (live(&store, &a), live(&store, &b));
    drop(store);
    let whole = keyring(dir.path());
    let master = master(dir.path());
    let wrapped_c = master.wrap(&c, &DataKey::from_bytes([3; 32])).unwrap();
    let valid_c = format::encode_slot(SlotKind::Live, &c, Some(&wrapped_c));
    let mut torn_c = valid_c;
    torn_c[60] ^= 0xff;

    let tails: [(&str, Vec<u8>); 4] = [
        ("a short slot", valid_c[..50].to_vec()),
        ("a slot failing its checksum", torn_c.to_vec()),
        ("two slots failing their checksums", [torn_c, torn_c].concat()),
        ("a slot of zeros before a whole one", [[0u8; 128], valid_c].concat()),
    ];
    for (what, tail) in tails {
        append_bytes(dir.path(), &tail);
        let store = open(dir.path());
        assert_eq!(keyring(dir.path()), whole, "{what} is cut off");
        assert_eq!((live(&store, &a), live(&store, &b)), (key_a, key_b), "{what}");
        assert!(matches!(store.key(&c), KeyState::Unknown), "{what}: c's append was never acknowledged");
        store.keys_or_create(&[c]).unwrap();
        drop(store);
        let store = open(dir.path());
        assert!(matches!(store.key(&c), KeyState::Live(_)), "{what}: an append after the cut is read back");
        store.forget(&c).unwrap();
        drop(store);
        // Back to the two keys, for the next case.
        fs::write(dir.path().join(KEYRING_FILE), &whole).unwrap();
    }
}

#[test]
fn a_torn_slot_before_the_end_is_a_deletion_rewritten_as_a_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, c) = (subject(1), subject(2), subject(3));
    store.keys_or_create(&[a, b, c]).unwrap();
    let (key_a, key_c) = (live(&store, &a), live(&store, &c));
    drop(store);
    let mut file = keyring(dir.path());
    let at = slot_offset(1) as usize;
    file[at + 50] ^= 0x01; // in b's wrapped key
    fs::write(dir.path().join(KEYRING_FILE), &file).unwrap();

    let store = open(dir.path());
    assert!(is_forgotten(&store, &b));
    assert_eq!((live(&store, &a), live(&store, &c)), (key_a, key_c));
    let Decoded::Slot(slot) = &slots(dir.path())[1] else { panic!("the torn slot is rewritten whole") };
    assert_eq!((slot.kind, slot.subject, slot.wrapped), (SlotKind::Forgotten, b, [0; WRAPPED_LEN]));
    drop(store);
    assert!(is_forgotten(&open(dir.path()), &b));
}

#[test]
fn opening_finishes_a_forget_a_crash_interrupted() {
    // The tombstone was appended and synced, the in-place overwrite never happened.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (subject(1), subject(2));
    store.keys_or_create(&[a, b]).unwrap();
    store.begin_forget(&a).unwrap();
    drop(store);
    append_bytes(dir.path(), &format::encode_slot(SlotKind::Forgotten, &a, None));

    let store = open(dir.path());
    assert!(is_forgotten(&store, &a));
    assert!(store.pending_forgets().is_empty(), "the tombstone settles the intent");
    let Decoded::Slot(slot) = &slots(dir.path())[0] else { panic!("a's slot is whole") };
    assert_eq!((slot.kind, slot.wrapped), (SlotKind::Forgotten, [0; WRAPPED_LEN]), "a's key bytes zeroed");
    assert!(matches!(store.key(&b), KeyState::Live(_)));
}

#[test]
fn a_damaged_header_or_slot_content_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (subject(1), subject(2));
    store.keys_or_create(&[a, b]).unwrap();
    drop(store);
    let whole = keyring(dir.path());
    let path = dir.path().join(KEYRING_FILE);
    let refused = |content: &[u8], says: &str| {
        fs::write(&path, content).unwrap();
        let error = KeyStore::open(dir.path(), MasterKeySource::Default).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, KeyError::Corrupt { .. }), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(says), "{message} should say {says}");
    };
    let mut header = whole.clone();
    header[30] ^= 1;
    refused(&header, "checksum");
    refused(&whole[..40], "shorter than");
    refused(b"", "shorter than");

    // A slot whose checksum holds but whose key was wrapped for another subject.
    let mut moved = whole.clone();
    let at = slot_offset(1) as usize;
    moved[at + 8..at + 40].copy_from_slice(&[9; 32]);
    let crc = crc32c::crc32c(&moved[at..at + 124]);
    moved[at + 124..at + 128].copy_from_slice(&crc.to_be_bytes());
    refused(&moved, "does not open with the master key");

    let mut unknown = whole.clone();
    unknown[at] = 7;
    let crc = crc32c::crc32c(&unknown[at..at + 124]);
    unknown[at + 124..at + 128].copy_from_slice(&crc.to_be_bytes());
    refused(&unknown, "kind 7");

    fs::write(&path, &whole).unwrap();
    open(dir.path());
}

#[test]
fn a_wrong_or_missing_master_key_is_refused_naming_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.keys_or_create(&[subject(1)]).unwrap();
    drop(store);

    let other = dir.path().join("other.key");
    MasterKey::generate().unwrap().write(&other).unwrap();
    let message = KeyStore::open(dir.path(), MasterKeySource::File(other.clone())).unwrap_err().to_string();
    assert!(message.contains(&other.display().to_string()), "{message}");
    assert!(message.contains("is not the one the keyring"), "{message}");

    let missing = dir.path().join("missing.key");
    let message = KeyStore::open(dir.path(), MasterKeySource::File(missing.clone())).unwrap_err().to_string();
    assert!(message.contains(&missing.display().to_string()) && message.contains("no such file"), "{message}");

    let default = dir.path().join(MASTER_FILE);
    fs::rename(&default, dir.path().join("moved.key")).unwrap();
    let message = KeyStore::open(dir.path(), MasterKeySource::Default).unwrap_err().to_string();
    assert!(message.contains(&default.display().to_string()), "{message}");
    assert!(message.contains("sealed under a master key that is not there"), "{message}");
    assert!(message.contains("--master-key-file"), "{message}");
    assert!(!default.exists(), "no new master key is made beside a keyring");

    let store = KeyStore::open(dir.path(), MasterKeySource::File(dir.path().join("moved.key"))).unwrap().store;
    assert!(matches!(store.key(&subject(1)), KeyState::Live(_)), "the operator's file opens it");
}

#[test]
fn a_second_opener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path());
    let error = KeyStore::open(dir.path(), MasterKeySource::Default).unwrap_err();
    assert!(matches!(error, KeyError::InUse { .. }), "{error}");
    assert!(error.to_string().contains("another Rapport server"), "{error}");
}

/// Every 32-byte window of a file's bytes, and of the bytes any run of 64 hexadecimal digits
/// in it spells: every way the file could hold a master key.
fn windows(content: &[u8]) -> Vec<[u8; 32]> {
    let mut found: Vec<[u8; 32]> = content.windows(32).map(|w| w.try_into().unwrap()).collect();
    for digits in content.windows(64).filter(|w| w.iter().all(u8::is_ascii_hexdigit)) {
        let text = std::str::from_utf8(digits).unwrap();
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        found.push(key);
    }
    found
}

#[test]
fn rotation_leaves_no_key_in_the_directory_that_opens_a_remnant() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, c) = (subject(1), subject(2), subject(3));
    store.keys_or_create(&[a, b]).unwrap();
    store.forget(&subject(4)).unwrap();
    store.begin_forget(&c).unwrap();
    let old = master(dir.path());
    // What lingers on the disk after the forget: the keyring as it was before.
    let remnant = keyring(dir.path());
    let Decoded::Slot(remnant_a) = format::decode_slot(&remnant[64..192]) else { panic!("a's slot") };
    assert_eq!(remnant_a.subject, a);
    assert!(old.unwrap_key(&a, &remnant_a.wrapped).is_some(), "the old master key opens the remnant");
    let key_b = live(&store, &b);

    store.forget(&a).unwrap();
    let path = store.rotate().unwrap();
    assert_eq!(path, dir.path().join(MASTER_FILE));
    let new = master(dir.path());
    assert_ne!(new.check(), old.check());
    assert_eq!(live(&store, &b), key_b, "live keys are unchanged");
    assert!(!dir.path().join(NEXT_FILE).exists());

    let mut kinds = HashMap::new();
    for decoded in slots(dir.path()) {
        let Decoded::Slot(slot) = decoded else { panic!("every slot is whole") };
        *kinds.entry((slot.kind, slot.subject)).or_insert(0) += 1;
        if slot.kind == SlotKind::Live {
            assert!(old.unwrap_key(&slot.subject, &slot.wrapped).is_none(), "the old master key opens nothing");
            let key = new.unwrap_key(&slot.subject, &slot.wrapped).expect("the new master key opens it");
            assert_eq!(bytes_of(&key), live(&store, &slot.subject));
        }
    }
    let expected = HashMap::from([
        ((SlotKind::Live, b), 1),
        ((SlotKind::Forgotten, a), 1),
        ((SlotKind::Forgotten, subject(4)), 1),
        ((SlotKind::ForgetIntent, c), 1),
    ]);
    assert_eq!(kinds, expected, "live keys, tombstones and the pending intent, once each");

    for entry in fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let content = fs::read(entry.path()).unwrap();
        for window in windows(&content) {
            let candidate = MasterKey::from_bytes(window);
            assert!(
                candidate.unwrap_key(&a, &remnant_a.wrapped).is_none(),
                "bytes in {} open the forgotten key's remnant",
                entry.path().display()
            );
        }
    }

    // The store goes on after a rotation, and reopens under the new key.
    let d = subject(5);
    store.keys_or_create(&[d]).unwrap();
    store.forget(&b).unwrap();
    let key_d = live(&store, &d);
    drop(store);
    let store = open(dir.path());
    assert_eq!(live(&store, &d), key_d);
    assert!(is_forgotten(&store, &a) && is_forgotten(&store, &b));
    assert_eq!(store.pending_forgets(), [c]);
    assert!(slots(dir.path()).iter().all(|d| match d {
        Decoded::Slot(slot) => slot.kind == SlotKind::Live || slot.wrapped == [0; WRAPPED_LEN],
        _ => false,
    }));
}

#[test]
fn rotation_writes_the_operators_master_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let path = dir.path().join("operator.key");
    MasterKey::generate().unwrap().write(&path).unwrap();
    let opened = KeyStore::open(&keys_dir, MasterKeySource::File(path.clone())).unwrap();
    assert_eq!(opened.created_master, None);
    assert!(!keys_dir.join(MASTER_FILE).exists(), "no default key beside the operator's");
    let store = opened.store;
    store.keys_or_create(&[subject(1)]).unwrap();
    let key = live(&store, &subject(1));
    let old = MasterKey::read(&path).unwrap().check();
    assert_eq!(store.rotate().unwrap(), path);
    assert_ne!(MasterKey::read(&path).unwrap().check(), old);
    drop(store);
    let store = KeyStore::open(&keys_dir, MasterKeySource::File(path)).unwrap().store;
    assert_eq!(live(&store, &subject(1)), key);
}

/// A store with live keys, a tombstone and a pending intent; its keys.
fn populated(dir: &Path) -> (KeyStore, Vec<(SubjectId, [u8; 32])>) {
    let store = open(dir);
    let subjects: Vec<_> = (1..=20).map(subject).collect();
    store.keys_or_create(&subjects).unwrap();
    store.forget(&subjects[3]).unwrap();
    store.begin_forget(&subjects[4]).unwrap();
    let keys = subjects.iter().filter(|s| **s != subjects[3]).map(|s| (*s, live(&store, s))).collect();
    (store, keys)
}

fn assert_recovered(dir: &Path, keys: &[(SubjectId, [u8; 32])]) -> KeyStore {
    let store = open(dir);
    for (subject, key) in keys {
        assert_eq!(live(&store, subject), *key, "{subject:?} readable after the crash");
    }
    assert!(is_forgotten(&store, &subject(4)));
    assert_eq!(store.pending_forgets(), [subject(5)]);
    assert!(!dir.join(NEXT_FILE).exists(), "keyring.next is settled");
    let header: [u8; 64] = keyring(dir)[..64].try_into().unwrap();
    assert_eq!(format::decode_header(&header), Ok(master(dir).check()), "the keyring is sealed under the master key");
    store
}

#[test]
fn a_crash_after_writing_keyring_next_keeps_the_old_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keys) = populated(dir.path());
    let old = master(dir.path()).check();
    store.rotate_until(RotationStep::NextWritten).unwrap();
    assert!(dir.path().join(NEXT_FILE).exists());
    assert!(matches!(store.keys_or_create(&[subject(99)]), Err(KeyError::Failed { .. })), "stopped: reopen");
    drop(store);

    let store = assert_recovered(dir.path(), &keys);
    assert_eq!(master(dir.path()).check(), old, "the rotation never committed");
    store.rotate().unwrap();
    drop(store);
    assert_recovered(dir.path(), &keys);
}

#[test]
fn a_crash_after_writing_the_new_master_key_finishes_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keys) = populated(dir.path());
    let old = master(dir.path()).check();
    store.rotate_until(RotationStep::MasterWritten).unwrap();
    assert_ne!(master(dir.path()).check(), old, "the commit point is past");
    drop(store);

    let store = assert_recovered(dir.path(), &keys);
    assert_ne!(master(dir.path()).check(), old);
    drop(store);
    assert_recovered(dir.path(), &keys);
}

#[test]
fn a_crash_while_making_the_keyring_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    fs::rename(dir.path().join(KEYRING_FILE), dir.path().join(NEXT_FILE)).unwrap();
    let store = open(dir.path());
    assert!(dir.path().join(KEYRING_FILE).exists() && !dir.path().join(NEXT_FILE).exists());
    store.keys_or_create(&[subject(1)]).unwrap();
}

/// A small deterministic generator (xorshift64*), so that a failure repeats.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modelled {
    Live([u8; 32]),
    Forgotten,
}

#[test]
fn random_operations_with_reopens_match_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut model: HashMap<SubjectId, Modelled> = HashMap::new();
    let mut pending: BTreeSet<SubjectId> = BTreeSet::new();
    let mut random = Random(0x5eed_1234_abcd_0001);
    for step in 0..300 {
        let s = subject(random.below(12) as u8);
        let operation = random.below(100);
        match operation {
            0..=39 => {
                let asked: Vec<_> = (0..1 + random.below(4)).map(|_| subject(random.below(12) as u8)).collect();
                let got = store.keys_or_create(&asked);
                match asked.iter().position(|s| model.get(s) == Some(&Modelled::Forgotten)) {
                    Some(index) => {
                        assert!(matches!(got, Err(KeyError::Forgotten { index: i }) if i == index), "step {step}")
                    }
                    None => {
                        for (subject, key) in asked.iter().zip(got.unwrap()) {
                            let known = *model.entry(*subject).or_insert(Modelled::Live(bytes_of(&key)));
                            assert_eq!(known, Modelled::Live(bytes_of(&key)), "step {step}: {subject:?}");
                        }
                    }
                }
            }
            40..=54 => {
                store.begin_forget(&s).unwrap();
                if model.get(&s) != Some(&Modelled::Forgotten) {
                    pending.insert(s);
                }
            }
            55..=69 => {
                store.forget(&s).unwrap();
                model.insert(s, Modelled::Forgotten);
                pending.remove(&s);
            }
            70..=79 => {
                store.abandon_forget(&s).unwrap();
                pending.remove(&s);
            }
            80..=84 => {
                store.rotate().unwrap();
            }
            _ => {
                drop(store);
                store = open(dir.path());
            }
        }
        for n in 0..12 {
            let s = subject(n);
            match (model.get(&s), store.key(&s)) {
                (None, KeyState::Unknown) | (Some(Modelled::Forgotten), KeyState::Forgotten) => {}
                (Some(Modelled::Live(expected)), KeyState::Live(key)) => assert_eq!(bytes_of(&key), *expected),
                (expected, got) => panic!("step {step}: {s:?} should be {expected:?}, is {got:?}"),
            }
        }
        assert_eq!(store.pending_forgets(), pending.iter().copied().collect::<Vec<_>>(), "step {step}");
        let live = model.values().filter(|m| matches!(m, Modelled::Live(_))).count() as u64;
        assert_eq!(store.counts(), KeyCounts { live, forgotten: model.len() as u64 - live }, "step {step}");
    }
}

#[test]
#[ignore = "a timing to read by hand: cargo test --release -p rapport-keys -- --ignored --nocapture"]
fn timing_of_a_large_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let subjects: Vec<_> = (0u32..200_000)
        .map(|n| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&n.to_be_bytes());
            SubjectId::from_bytes(bytes)
        })
        .collect();
    let start = std::time::Instant::now();
    for chunk in subjects.chunks(1000) {
        store.keys_or_create(chunk).unwrap();
    }
    eprintln!("made 200,000 keys in 200 calls: {:?}", start.elapsed());
    let start = std::time::Instant::now();
    store.rotate().unwrap();
    eprintln!("rotated: {:?}", start.elapsed());
    drop(store);
    let start = std::time::Instant::now();
    let store = open(dir.path());
    eprintln!("opened: {:?}, {:?}", start.elapsed(), store.counts());
}

#[test]
fn keys_made_unsynced_are_invisible_until_made_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (keys, written) = store.keys_or_create_unsynced(&[subject(1), subject(2)]).unwrap();
    assert!(matches!(store.key(&subject(1)), KeyState::Unknown), "not durable, so not shown");
    let (again, _) = store.keys_or_create_unsynced(&[subject(1)]).unwrap();
    assert_eq!(bytes_of(&again[0]), bytes_of(&keys[0]), "a second caller meanwhile gets the same key");
    store.make_durable(written).unwrap();
    assert_eq!(live(&store, &subject(2)), bytes_of(&keys[1]));
    let (_, nothing) = store.keys_or_create_unsynced(&[subject(1)]).unwrap();
    assert_eq!(nothing, KeysWritten::default(), "keys that are durable need no sync");
    drop(store);
    assert_eq!(live(&open(dir.path()), &subject(1)), bytes_of(&keys[0]));
}

/// A master key file two stores share, as the nodes of a cluster do.
fn shared_master(dir: &Path) -> PathBuf {
    let path = dir.join("cluster.key");
    MasterKey::generate().unwrap().write(&path).unwrap();
    path
}

fn node(dir: &Path, master: &Path) -> KeyStore {
    KeyStore::open(dir, MasterKeySource::File(master.to_owned())).unwrap().store
}

/// Two stores, `a` and `b`, with one master key file, sharing their keys through one cluster.
struct SharingPair {
    _dir: tempfile::TempDir,
    a_dir: PathBuf,
    b_dir: PathBuf,
    a: KeyStore,
    b: KeyStore,
    cluster: Arc<MemoryCluster>,
}

fn sharing_pair() -> SharingPair {
    let dir = tempfile::tempdir().unwrap();
    let master = shared_master(dir.path());
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (node(&a_dir, &master), node(&b_dir, &master));
    let cluster = Arc::new(MemoryCluster::default());
    a.share_with(cluster.clone());
    b.share_with(cluster.clone());
    SharingPair { _dir: dir, a_dir, b_dir, a, b, cluster }
}

/// The wrapped key in the one Live slot of `subject`.
fn live_slot(dir: &Path, subject: &SubjectId) -> [u8; WRAPPED_LEN] {
    let live: Vec<[u8; WRAPPED_LEN]> = slots(dir)
        .into_iter()
        .filter_map(|decoded| match decoded {
            Decoded::Slot(slot) if slot.kind == SlotKind::Live && slot.subject == *subject => Some(slot.wrapped),
            _ => None,
        })
        .collect();
    assert_eq!(live.len(), 1, "{subject:?} has one Live slot");
    live[0]
}

/// A cluster in memory, as the key stream behaves: the first key offered for a subject is the
/// one every node gets, a forgotten subject is refused, and it can be made to fail.
#[derive(Default)]
struct MemoryCluster {
    held: Mutex<HashMap<SubjectId, SharedKey>>,
    offered: std::sync::atomic::AtomicUsize,
    forgets: std::sync::atomic::AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl MemoryCluster {
    fn refuse_if_down(&self) -> Result<(), KeyError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(KeyError::Cluster { why: "the test cluster is down".into() }),
            false => Ok(()),
        }
    }

    fn offered(&self) -> usize {
        self.offered.load(Ordering::SeqCst)
    }
}

impl KeyCluster for MemoryCluster {
    fn agree(&self, made: &[(SubjectId, WrappedKey)]) -> Result<Vec<WrappedKey>, KeyError> {
        self.refuse_if_down()?;
        self.offered.fetch_add(made.len(), Ordering::SeqCst);
        let mut held = self.held.lock().unwrap();
        made.iter()
            .enumerate()
            .map(|(index, (subject, wrapped))| match held.entry(*subject).or_insert(SharedKey::Wrapped(*wrapped)) {
                SharedKey::Wrapped(agreed) => Ok(*agreed),
                SharedKey::Forgotten => Err(KeyError::Forgotten { index }),
            })
            .collect()
    }

    fn forget(&self, subject: &SubjectId) -> Result<(), KeyError> {
        self.refuse_if_down()?;
        self.forgets.fetch_add(1, Ordering::SeqCst);
        self.held.lock().unwrap().insert(*subject, SharedKey::Forgotten);
        Ok(())
    }
}

#[test]
fn a_wrapped_key_is_its_slots_bytes_and_adopted_elsewhere_it_is_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let master = shared_master(dir.path());
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (node(&a_dir, &master), node(&b_dir, &master));
    let (s, t, unknown) = (subject(1), subject(2), subject(3));
    a.keys_or_create(&[s, t]).unwrap();
    let wrapped = a.wrapped(&s).unwrap().unwrap();
    assert_eq!(wrapped.as_bytes(), &live_slot(&a_dir, &s), "the slot's bytes, exactly");
    assert_eq!(format!("{wrapped:?}"), "WrappedKey(..)");
    assert_eq!(a.wrapped(&unknown).unwrap(), None);
    a.forget(&t).unwrap();
    assert_eq!(a.wrapped(&t).unwrap(), None, "a forgotten subject has no key to give");
    assert_eq!(a.subjects(), [s, t], "keys and tombstones");

    assert_eq!(b.adopt(&[(s, SharedKey::Wrapped(wrapped))]).unwrap(), []);
    assert_eq!(live(&b, &s), live(&a, &s), "the same key on both");
    assert_eq!(live_slot(&b_dir, &s), *wrapped.as_bytes(), "written byte for byte");
    let before = keyring(&b_dir);
    assert_eq!(b.adopt(&[(s, SharedKey::Wrapped(wrapped))]).unwrap(), []);
    assert_eq!(keyring(&b_dir), before, "a key held already is not written again");
    drop(b);
    assert_eq!(live(&node(&b_dir, &master), &s), live(&a, &s), "durable");
}

#[test]
fn an_adopted_tombstone_forgets_and_a_forgotten_subject_takes_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let master = shared_master(dir.path());
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (node(&a_dir, &master), node(&b_dir, &master));
    let (s, t, u) = (subject(1), subject(2), subject(3));
    a.keys_or_create(&[s, t]).unwrap();
    let (wrapped_s, wrapped_t) = (a.wrapped(&s).unwrap().unwrap(), a.wrapped(&t).unwrap().unwrap());
    b.adopt(&[(s, SharedKey::Wrapped(wrapped_s))]).unwrap();
    b.begin_forget(&s).unwrap();

    // In the cluster's order: s forgotten; t's key, then its tombstone; u, never known here.
    let read = [
        (s, SharedKey::Forgotten),
        (t, SharedKey::Wrapped(wrapped_t)),
        (t, SharedKey::Forgotten),
        (u, SharedKey::Forgotten),
    ];
    assert_eq!(b.adopt(&read).unwrap(), []);
    assert!(is_forgotten(&b, &s) && is_forgotten(&b, &t) && is_forgotten(&b, &u));
    assert!(b.pending_forgets().is_empty(), "the tombstone settles the intent");
    let file = keyring(&b_dir);
    for wrapped in [wrapped_s, wrapped_t] {
        assert!(!file.windows(48).any(|w| w == &wrapped.as_bytes()[12..]), "no key bytes are left in the keyring");
    }
    for decoded in slots(&b_dir) {
        let Decoded::Slot(slot) = decoded else { panic!("every slot is whole: {decoded:?}") };
        assert!(slot.kind != SlotKind::Live, "{:?} has a Live slot", slot.subject);
    }

    let before = keyring(&b_dir);
    assert_eq!(b.adopt(&[(s, SharedKey::Wrapped(wrapped_s))]).unwrap(), []);
    assert_eq!(keyring(&b_dir), before, "a forgotten subject takes no key, and nothing is written");
    assert!(matches!(b.keys_or_create(&[t]), Err(KeyError::Forgotten { index: 0 })));
    drop(b);
    let b = node(&b_dir, &master);
    assert!(is_forgotten(&b, &s) && is_forgotten(&b, &t) && is_forgotten(&b, &u));
}

#[test]
fn a_key_that_differs_from_the_clusters_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let master = shared_master(dir.path());
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (node(&a_dir, &master), node(&b_dir, &master));
    let s = subject(1);
    // Each made its own before they shared keys.
    a.keys_or_create(&[s]).unwrap();
    b.keys_or_create(&[s]).unwrap();
    let own = live(&b, &s);
    let before = keyring(&b_dir);
    assert_eq!(b.adopt(&[(s, SharedKey::Wrapped(a.wrapped(&s).unwrap().unwrap()))]).unwrap(), [s]);
    assert_eq!(live(&b, &s), own, "what was sealed under it stays readable");
    assert_eq!(keyring(&b_dir), before);
}

#[test]
fn a_key_wrapped_under_another_master_key_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let master = shared_master(dir.path());
    let a = node(&dir.path().join("a"), &master);
    let other_dir = dir.path().join("other");
    let other = open(&other_dir);
    let s = subject(1);
    a.keys_or_create(&[s]).unwrap();
    let before = keyring(&other_dir);
    let error =
        other.adopt(&[(subject(2), SharedKey::Forgotten), (s, SharedKey::Wrapped(a.wrapped(&s).unwrap().unwrap()))]);
    let message = error.unwrap_err().to_string();
    assert!(message.contains(&other_dir.join(MASTER_FILE).display().to_string()), "{message}");
    assert!(message.contains("same master key file") && message.contains(&s.to_string()), "{message}");
    assert_eq!(keyring(&other_dir), before, "nothing of the call is written");
}

#[test]
fn with_a_cluster_new_keys_are_agreed_first_and_the_clusters_key_is_written() {
    let SharingPair { _dir, a_dir, b_dir, a, b, cluster } = sharing_pair();
    let (s, t, u) = (subject(1), subject(2), subject(3));

    let through_a = a.keys_or_create(&[s, t, s]).unwrap();
    assert_eq!(cluster.offered(), 2, "each new subject offered once");
    assert!(Arc::ptr_eq(&through_a[0], &through_a[2]));
    let through_b = b.keys_or_create(&[s]).unwrap();
    assert_eq!(bytes_of(&through_b[0]), bytes_of(&through_a[0]), "B offered its own and was given A's");
    assert_eq!(live_slot(&b_dir, &s), live_slot(&a_dir, &s), "B wrote the cluster's bytes, and only them");
    assert_eq!(slots(&b_dir).len(), 1);

    b.keys_or_create(&[s]).unwrap();
    a.keys_or_create(&[t, s]).unwrap();
    assert_eq!(cluster.offered(), 3, "a key held here is not offered again");

    let (keys, written) = b.keys_or_create_unsynced(&[u]).unwrap();
    assert!(matches!(b.key(&u), KeyState::Unknown), "agreed, written, and invisible until durable");
    b.make_durable(written).unwrap();
    assert_eq!(live(&b, &u), bytes_of(&keys[0]));
    assert_eq!(a.keys_or_create(&[u]).unwrap()[0].as_bytes(), keys[0].as_bytes());
}

#[test]
fn a_subject_the_cluster_forgot_is_refused_with_its_index_and_nothing_is_written() {
    let SharingPair { _dir, b_dir, a, b, .. } = sharing_pair();
    let (s, t) = (subject(1), subject(2));
    a.keys_or_create(&[s]).unwrap();
    a.forget(&s).unwrap();
    // B has not heard of the erasure: the cluster refuses it.
    assert!(matches!(b.key(&s), KeyState::Unknown));
    let before = keyring(&b_dir);
    assert!(matches!(b.keys_or_create(&[t, s]), Err(KeyError::Forgotten { index: 1 })));
    assert_eq!(keyring(&b_dir), before);
    assert!(matches!(b.key(&t), KeyState::Unknown));
}

#[test]
fn forget_asks_the_cluster_first_and_its_failure_changes_nothing_here() {
    let dir = tempfile::tempdir().unwrap();
    let master = shared_master(dir.path());
    let a_dir = dir.path().join("a");
    let a = node(&a_dir, &master);
    let cluster = Arc::new(MemoryCluster::default());
    a.share_with(cluster.clone());
    let (s, t) = (subject(1), subject(2));
    a.keys_or_create(&[s]).unwrap();
    a.begin_forget(&s).unwrap();
    let before = keyring(&a_dir);

    cluster.down.store(true, Ordering::SeqCst);
    let error = a.forget(&s).unwrap_err();
    assert!(matches!(error, KeyError::Cluster { .. }), "{error}");
    assert!(matches!(a.key(&s), KeyState::Live(_)), "not forgotten here while the cluster still has it");
    assert_eq!(a.pending_forgets(), [s], "the erasure stays pending, for a retry or the next start");
    assert!(matches!(a.keys_or_create(&[t]), Err(KeyError::Cluster { .. })), "no key without the cluster");
    assert_eq!(keyring(&a_dir), before, "nothing was written");
    assert!(matches!(a.key(&t), KeyState::Unknown));

    cluster.down.store(false, Ordering::SeqCst);
    a.forget(&s).unwrap();
    assert_eq!(cluster.held.lock().unwrap().get(&s), Some(&SharedKey::Forgotten));
    assert!(is_forgotten(&a, &s) && a.pending_forgets().is_empty());
    let after = keyring(&a_dir);
    a.forget(&s).unwrap();
    assert_eq!(cluster.forgets.load(Ordering::SeqCst), 2, "forgetting again asks the cluster again, to finish it");
    assert_eq!(keyring(&a_dir), after, "and writes nothing here");
}

#[test]
fn the_master_key_is_not_rotated_while_keys_are_shared() {
    let dir = tempfile::tempdir().unwrap();
    let master = shared_master(dir.path());
    let a_dir = dir.path().join("a");
    let a = node(&a_dir, &master);
    a.keys_or_create(&[subject(1)]).unwrap();
    a.share_with(Arc::new(MemoryCluster::default()));
    let (check, before) = (MasterKey::read(&master).unwrap().check(), keyring(&a_dir));
    let error = a.rotate().unwrap_err();
    assert!(matches!(error, KeyError::SharedMasterKey), "{error}");
    let message = error.to_string();
    assert!(message.contains("cannot be rotated") && message.contains("not supported yet"), "{message}");
    assert_eq!(MasterKey::read(&master).unwrap().check(), check);
    assert_eq!(keyring(&a_dir), before);
    assert!(format!("{a:?}").contains("shared: true"));
}

#[test]
fn callers_racing_for_a_new_subject_through_a_cluster_get_one_key_written_once() {
    let SharingPair { _dir, a_dir, b_dir, a, b, .. } = sharing_pair();
    let rounds = 20u8;
    let threads = 4;
    for round in 0..rounds {
        let shared = subject(100 + round);
        let barrier = Barrier::new(threads);
        let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let (store, barrier) = (if i % 2 == 0 { &a } else { &b }, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        bytes_of(&store.keys_or_create(&[shared]).unwrap()[0])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| *key == keys[0]), "round {round}: one key for every caller on both nodes");
        assert_eq!(live_slot(&a_dir, &shared), live_slot(&b_dir, &shared), "round {round}: the cluster's bytes");
    }
    assert_eq!(slots(&a_dir).len(), usize::from(rounds), "each subject written once however many offered it");
    assert_eq!(slots(&b_dir).len(), usize::from(rounds));
}
