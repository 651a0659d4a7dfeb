//! The key store: the keyring file and the master key, the only place that does key I/O.
//!
//! Readers look keys up in memory under a read lock; every change goes through one writer
//! (a mutex) that writes and syncs the keyring and then publishes the change under a short
//! write lock, so that no reader waits for a disk.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tracing::{info, warn};

use crate::error::io_error;
use crate::format::{self, Decoded, HEADER_LEN, SLOT_LEN, Slot, SlotKind, slot_offset};
use crate::master::{WRAPPED_LEN, sync_directory};
use crate::{DataKey, KeyCluster, KeyError, MasterKey, SubjectId};

const LOCK_FILE: &str = "LOCK";
const KEYRING_FILE: &str = "keyring";
const NEXT_FILE: &str = "keyring.next";
const MASTER_FILE: &str = "master.key";

/// Slots read or written per call when a whole keyring is read or written.
const CHUNK_SLOTS: usize = 512;

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// A file the operator gave (`--master-key-file`); it must exist.
    File(PathBuf),
    /// The default place, `<keys dir>/master.key`; made on first start if neither it nor a
    /// keyring exists yet. If a keyring exists but the master key file does not, opening
    /// fails: the keyring is sealed under a master key that is not there, and the operator
    /// must give it with `--master-key-file`.
    Default,
}

/// What the store knows of one subject's key.
#[derive(Debug, Clone)]
pub enum KeyState {
    /// The subject has a key.
    Live(Arc<DataKey>),
    /// The subject's key was deleted, and it never gets another.
    Forgotten,
    /// The subject never had a key.
    Unknown,
}

/// Counts for logs and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCounts {
    /// Subjects with a key.
    pub live: u64,
    /// Subjects forgotten (tombstones).
    pub forgotten: u64,
}

/// A key store just opened.
#[derive(Debug)]
pub struct Opened {
    /// The store.
    pub store: KeyStore,
    /// Set when opening made a new master key: where it is (the server logs it, since the
    /// operator must back it up with the data).
    pub created_master: Option<PathBuf>,
}

/// What [`KeyStore::make_durable`] must cover for the keys [`KeyStore::keys_or_create_unsynced`]
/// returned: how far into the keyring they were written. Marks compare: the later covers the
/// earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct KeysWritten(u64);

/// Where [`KeyStore::rotate_until`] stops, as a crash would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    /// After step 1: `keyring.next` written and synced, the master key still the old one.
    NextWritten,
    /// After step 2: the new master key written, `keyring` still the old file.
    MasterWritten,
    /// The whole rotation.
    Done,
}

/// The key store of one data directory: per-subject data keys, wrapped under the master key in
/// `keyring`. `Send + Sync`: share it in an `Arc`.
pub struct KeyStore {
    dir: PathBuf,
    keyring_path: PathBuf,
    master_path: PathBuf,
    /// What readers see: only durable changes.
    keys: RwLock<Keys>,
    /// The writing side; serialises every change.
    writer: Mutex<Writer>,
    /// New keys' syncs, shared by the callers waiting at once (group commit); taken after
    /// `writer` when both are held, never before it.
    syncs: Mutex<Syncs>,
    /// Slots written to the keyring so far (synced or not): what a sync started now covers.
    written: AtomicU64,
    /// The cluster the keys are shared with, if any ([`KeyStore::share_with`]).
    cluster: RwLock<Option<Arc<dyn KeyCluster>>>,
    /// Held (locked) while the store is open.
    _lock: File,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .field("shared", &self.cluster().is_some())
            .finish_non_exhaustive()
    }
}

/// Every subject the keyring names, as loaded and changed since.
#[derive(Default)]
struct Keys {
    subjects: HashMap<SubjectId, Entry>,
    /// Subjects with a ForgetIntent and no settlement; never a forgotten one.
    pending: BTreeSet<SubjectId>,
}

enum Entry {
    /// The key and the slot that holds it wrapped.
    Live {
        key: Arc<DataKey>,
        slot: u64,
    },
    Forgotten,
}

/// The sync side of key creation: the keyring (a second handle on the writer's file) and how
/// many of its slots are known durable.
struct Syncs {
    file: File,
    durable: u64,
    /// A sync failed: what it was to cover may be lost, whatever a later sync reports.
    failed: Option<String>,
}

struct Writer {
    /// `keyring`, open for reading and writing.
    file: File,
    /// How many slots the file holds; the next append goes after them.
    slots: u64,
    master: MasterKey,
    /// Live slots a later Live slot of the same subject replaced. This code never writes one,
    /// but `forget` zeroes them too if a file has any, since they hold key bytes.
    superseded: Vec<(SubjectId, u64)>,
    /// Why the store takes no more changes, if it does not.
    failed: Option<String>,
    /// Keys written and not yet known durable, with their slots: invisible to readers, and
    /// handed to any caller asking for the same subject meanwhile (who then waits for the sync).
    unsynced: HashMap<SubjectId, (Arc<DataKey>, u64)>,
}

impl KeyStore {
    /// Opens the key store in `dir` (created if missing), taking an exclusive lock
    /// (`dir/LOCK`), reading the master key, finishing or discarding an interrupted rotation,
    /// and loading every slot: a torn tail is cut off, a torn slot before it is taken as a
    /// deletion, and a `forget` a crash interrupted is finished.
    ///
    /// Fails with [`KeyError::InUse`] when another process has the store open,
    /// [`KeyError::MasterKey`] when the master key is missing or is not the one the keyring is
    /// sealed under, and [`KeyError::Corrupt`] when the keyring's header or a slot's content
    /// is damaged.
    pub fn open(dir: &Path, master: MasterKeySource) -> Result<Opened, KeyError> {
        fs::create_dir_all(dir).map_err(io_error(dir, "creating the key store directory"))?;
        let lock = lock(dir)?;
        let keyring_path = dir.join(KEYRING_FILE);
        let next_path = dir.join(NEXT_FILE);
        let (master_path, master, created_master) = match master {
            MasterKeySource::File(path) => {
                let master = MasterKey::read(&path)?;
                (path, master, None)
            }
            MasterKeySource::Default => {
                let path = dir.join(MASTER_FILE);
                if exists(&path)? {
                    let master = MasterKey::read(&path)?;
                    (path, master, None)
                } else if exists(&keyring_path)? || exists(&next_path)? {
                    return Err(KeyError::MasterKey {
                        path,
                        why: format!(
                            "is missing, and the keyring {} is sealed under a master key that is not there; give the \
                             file that holds it with --master-key-file",
                            keyring_path.display()
                        ),
                    });
                } else {
                    let master = MasterKey::generate()?;
                    master.write(&path)?;
                    info!(path = %path.display(), "made a new master key for the key store");
                    let created = path.clone();
                    (path, master, Some(created))
                }
            }
        };
        settle_rotation(dir, &keyring_path, &next_path, &master_path, &master)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&keyring_path)
            .map_err(io_error(&keyring_path, "opening the keyring"))?;
        let loaded = load(&keyring_path, &file, &master)?;
        let sync_file = file.try_clone().map_err(io_error(&keyring_path, "opening the keyring"))?;
        let store = KeyStore {
            dir: dir.to_owned(),
            keyring_path,
            master_path,
            keys: RwLock::new(loaded.keys),
            syncs: Mutex::new(Syncs { file: sync_file, durable: loaded.slots, failed: None }),
            written: AtomicU64::new(loaded.slots),
            writer: Mutex::new(Writer {
                file,
                slots: loaded.slots,
                master,
                superseded: loaded.superseded,
                failed: None,
                unsynced: HashMap::new(),
            }),
            cluster: RwLock::new(None),
            _lock: lock,
        };
        let counts = store.counts();
        info!(
            dir = %store.dir.display(),
            live = counts.live,
            forgotten = counts.forgotten,
            pending_forgets = store.keys().pending.len(),
            "opened the key store"
        );
        Ok(Opened { store, created_master })
    }

    /// The key of one subject (a read lock only; no I/O).
    pub fn key(&self, subject: &SubjectId) -> KeyState {
        match self.keys().subjects.get(subject) {
            Some(Entry::Live { key, .. }) => KeyState::Live(Arc::clone(key)),
            Some(Entry::Forgotten) => KeyState::Forgotten,
            None => KeyState::Unknown,
        }
    }

    /// The keys of `subjects` (same order), making the missing ones: all new keys are written
    /// in one append to the keyring and are durable, and visible to [`KeyStore::key`], before
    /// this returns. Callers making keys at the same time share their syncs (group commit:
    /// one `fdatasync` covers every slot written before it began). A forgotten subject is
    /// `Err(KeyError::Forgotten { index })` (the first one's index) and nothing is written.
    /// Concurrent callers asking for the same new subject get the same key. Readers are not
    /// blocked while a sync runs.
    pub fn keys_or_create(&self, subjects: &[SubjectId]) -> Result<Vec<Arc<DataKey>>, KeyError> {
        let (keys, written) = self.keys_or_create_unsynced(subjects)?;
        self.make_durable(written)?;
        Ok(keys)
    }

    /// [`KeyStore::keys_or_create`] without waiting for the new keys to be durable: they are
    /// written, and durable (and visible to [`KeyStore::key`]) once [`KeyStore::make_durable`]
    /// of the returned mark has returned. Nothing sealed under them may be made durable before
    /// that: a log writer calls it before it writes the events, so that one sync covers the
    /// keys of a whole group of appends.
    ///
    /// With a cluster installed ([`KeyStore::share_with`]), the keys of subjects new to this
    /// store are agreed with it first ([`KeyCluster::agree`]), without holding the store's
    /// locks while it answers, and the key written is the one it answered, which may be
    /// another node's. A key is written here, or handed out, only once the cluster holds it, so
    /// no node ever seals under a key another node does not get, and a crash at any point
    /// leaves nothing to reconcile. A subject the cluster has forgotten is refused as a
    /// forgotten one is here.
    pub fn keys_or_create_unsynced(
        &self,
        subjects: &[SubjectId],
    ) -> Result<(Vec<Arc<DataKey>>, KeysWritten), KeyError> {
        if let Lookup::Found(keys) = self.lookup(subjects)? {
            return Ok((keys, KeysWritten(0)));
        }
        match self.cluster() {
            None => self.create(subjects, |writer, subject| {
                let key = Arc::new(DataKey::generate()?);
                let wrapped = writer.master.wrap(subject, &key)?;
                Ok((key, wrapped))
            }),
            Some(cluster) => {
                let mut agreed = self.agree(cluster.as_ref(), subjects)?;
                self.create(subjects, |writer, subject| agreed.take(&writer.master, &self.master_path, subject))
            }
        }
    }

    /// Writes a key for each of `subjects` that has none yet, `make` giving it (the key and its
    /// wrapped bytes), in one write to the keyring; returns every subject's key.
    fn create(
        &self,
        subjects: &[SubjectId],
        mut make: impl FnMut(&Writer, &SubjectId) -> Result<(Arc<DataKey>, [u8; WRAPPED_LEN]), KeyError>,
    ) -> Result<(Vec<Arc<DataKey>>, KeysWritten), KeyError> {
        let mut writer = self.writer();
        writer.refuse_if_failed(&self.dir)?;
        let Resolved { found, mut durable_at, missing } = self.resolve(&writer, subjects)?;
        let mut made = Vec::with_capacity(missing.len());
        let mut bytes = Vec::with_capacity(missing.len() * SLOT_LEN as usize);
        for subject in missing {
            let (key, wrapped) = make(&writer, &subject)?;
            bytes.extend_from_slice(&format::encode_slot(SlotKind::Live, &subject, Some(&wrapped)));
            made.push((subject, key));
        }
        if !made.is_empty() {
            let first = writer.write(&self.keyring_path, &bytes)?;
            self.written.store(writer.slots, Ordering::Release);
            durable_at = writer.slots;
            for (slot, (subject, key)) in (first..).zip(made) {
                writer.unsynced.insert(subject, (key, slot));
            }
        }
        let keys: Vec<Arc<DataKey>> = subjects
            .iter()
            .zip(found)
            .filter_map(|(subject, key)| key.or_else(|| writer.unsynced.get(subject).map(|(k, _)| Arc::clone(k))))
            .collect();
        Ok((keys, KeysWritten(durable_at)))
    }

    /// Looks `subjects` up again under the writer, with the keys written and not yet synced: a
    /// caller before this one may have made some of these keys while this one waited, and they
    /// must not get a second key. A forgotten subject is `Err(KeyError::Forgotten { index })`.
    fn resolve(&self, writer: &Writer, subjects: &[SubjectId]) -> Result<Resolved, KeyError> {
        let mut found: Vec<Option<Arc<DataKey>>> = Vec::with_capacity(subjects.len());
        let mut durable_at = 0;
        let mut missing = Vec::new();
        let keys = self.keys();
        for (index, subject) in subjects.iter().enumerate() {
            match (keys.subjects.get(subject), writer.unsynced.get(subject)) {
                (Some(Entry::Live { key, .. }), _) => found.push(Some(Arc::clone(key))),
                (Some(Entry::Forgotten), _) => return Err(KeyError::Forgotten { index }),
                (None, Some((key, slot))) => {
                    durable_at = durable_at.max(slot + 1);
                    found.push(Some(Arc::clone(key)));
                }
                (None, None) => {
                    if !missing.contains(subject) {
                        missing.push(*subject);
                    }
                    found.push(None);
                }
            }
        }
        Ok(Resolved { found, durable_at, missing })
    }

    /// Makes the keys behind `written` durable, and visible to readers. Callers that wrote
    /// while a sync ran share the next one: one `fdatasync` covers every slot written before
    /// it began.
    pub fn make_durable(&self, written: KeysWritten) -> Result<(), KeyError> {
        let durable_at = written.0;
        let covered = {
            let mut syncs = self.syncs.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(why) = &syncs.failed {
                return Err(KeyError::Failed { dir: self.dir.clone(), why: why.clone() });
            }
            if syncs.durable < durable_at {
                let covered = self.written.load(Ordering::Acquire);
                if let Err(e) = syncs.file.sync_data().map_err(io_error(&self.keyring_path, "syncing")) {
                    syncs.failed = Some(e.to_string());
                    drop(syncs);
                    self.writer().failed = Some(e.to_string());
                    return Err(e);
                }
                syncs.durable = syncs.durable.max(covered);
            }
            syncs.durable
        };
        // Published here too when another caller's sync covered these keys, since that caller
        // may not have published them yet: a key is visible to readers once it is returned.
        let mut writer = self.writer();
        self.publish_unsynced(&mut writer, covered);
        Ok(())
    }

    /// Moves the unsynced keys of slots below `covered` to what readers see.
    fn publish_unsynced(&self, writer: &mut Writer, covered: u64) {
        let durable: Vec<SubjectId> =
            writer.unsynced.iter().filter(|(_, (_, slot))| *slot < covered).map(|(subject, _)| *subject).collect();
        if durable.is_empty() {
            return;
        }
        let mut keys = self.keys_mut();
        for subject in durable {
            if let Some((key, slot)) = writer.unsynced.remove(&subject) {
                keys.subjects.insert(subject, Entry::Live { key, slot });
            }
        }
    }

    /// Makes every key written so far durable and visible, before a change that reads or
    /// rewrites the keyring (an erasure, a rotation).
    fn settle_unsynced(&self, writer: &mut Writer) -> Result<(), KeyError> {
        if writer.unsynced.is_empty() {
            return Ok(());
        }
        if let Err(e) = writer.file.sync_data().map_err(io_error(&self.keyring_path, "syncing")) {
            writer.failed = Some(e.to_string());
            return Err(e);
        }
        let covered = writer.slots;
        {
            let mut syncs = self.syncs.lock().unwrap_or_else(PoisonError::into_inner);
            syncs.durable = syncs.durable.max(covered);
        }
        self.publish_unsynced(writer, covered);
        Ok(())
    }

    /// Records, durably, that an erasure of `subject` has begun (a ForgetIntent slot appended
    /// and synced); the key stays live. Idempotent: nothing is written when an erasure is
    /// already pending or the subject is forgotten.
    pub fn begin_forget(&self, subject: &SubjectId) -> Result<(), KeyError> {
        let mut writer = self.writer();
        self.settle_unsynced(&mut writer)?;
        {
            let keys = self.keys();
            if keys.pending.contains(subject) || matches!(keys.subjects.get(subject), Some(Entry::Forgotten)) {
                return Ok(());
            }
        }
        writer.refuse_if_failed(&self.dir)?;
        writer.append(&self.keyring_path, &format::encode_slot(SlotKind::ForgetIntent, subject, None))?;
        self.keys_mut().pending.insert(*subject);
        Ok(())
    }

    /// Deletes the subject's key. A tombstone is appended and synced first (from then on the
    /// subject is forgotten, even if what follows is torn by a crash); then the Live slot is
    /// overwritten in place (kind Forgotten, key bytes zero) and synced. The in-memory key is
    /// dropped (and zeroed when the last `Arc` goes); [`KeyStore::key`] says Forgotten and
    /// [`KeyStore::keys_or_create`] refuses the subject from then on. Any intent for the
    /// subject is settled. Idempotent; an Unknown subject gets a tombstone, so it can never
    /// get a key later.
    ///
    /// With a cluster installed, the subject is forgotten on every node first
    /// ([`KeyCluster::forget`]), and only then here: if the cluster fails, nothing here has
    /// changed, an intent [`KeyStore::begin_forget`] recorded stays pending, and a retry (or
    /// the settling of pending erasures at the next start) runs both again. The other way
    /// round, the retry would find the subject forgotten here and stop, and the other nodes
    /// would keep the key.
    pub fn forget(&self, subject: &SubjectId) -> Result<(), KeyError> {
        if let Some(cluster) = self.cluster() {
            cluster.forget(subject)?;
        }
        let mut writer = self.writer();
        self.settle_unsynced(&mut writer)?;
        if matches!(self.keys().subjects.get(subject), Some(Entry::Forgotten)) {
            return Ok(());
        }
        writer.refuse_if_failed(&self.dir)?;
        self.record(&mut writer, Vec::new(), &[*subject])
    }

    /// Records new keys (`live`: each subject, its key and its wrapped bytes) and deletes the
    /// keys of `forgotten` subjects, as [`KeyStore::forget`] does: the new Live slots and the
    /// tombstones appended in one write and synced, published to readers, and then the old Live
    /// slots of the forgotten subjects overwritten in place and synced. No subject is in both.
    fn record(
        &self,
        writer: &mut Writer,
        live: Vec<(SubjectId, Arc<DataKey>, [u8; WRAPPED_LEN])>,
        forgotten: &[SubjectId],
    ) -> Result<(), KeyError> {
        let tombstones: Vec<[u8; SLOT_LEN as usize]> =
            forgotten.iter().map(|subject| format::encode_slot(SlotKind::Forgotten, subject, None)).collect();
        let mut bytes = Vec::with_capacity((live.len() + forgotten.len()) * SLOT_LEN as usize);
        for (subject, _, wrapped) in &live {
            bytes.extend_from_slice(&format::encode_slot(SlotKind::Live, subject, Some(wrapped)));
        }
        for tombstone in &tombstones {
            bytes.extend_from_slice(tombstone);
        }
        let first = writer.append(&self.keyring_path, &bytes)?;
        let mut stale: Vec<(u64, [u8; SLOT_LEN as usize])> = Vec::new();
        let mut previous = Vec::new();
        {
            let mut keys = self.keys_mut();
            for (slot, (subject, key, _)) in (first..).zip(live) {
                keys.subjects.insert(subject, Entry::Live { key, slot });
            }
            for (subject, tombstone) in forgotten.iter().zip(&tombstones) {
                keys.pending.remove(subject);
                if let Some(Entry::Live { key, slot }) = keys.subjects.insert(*subject, Entry::Forgotten) {
                    stale.push((slot, *tombstone));
                    previous.push(key);
                }
            }
        }
        for (subject, tombstone) in forgotten.iter().zip(&tombstones) {
            stale.extend(writer.superseded.iter().filter(|(s, _)| s == subject).map(|&(_, slot)| (slot, *tombstone)));
            writer.superseded.retain(|(s, _)| s != subject);
        }
        // `previous` holds the keys: dropped here, each zeroed unless a caller still holds it.
        drop(previous);
        writer.overwrite(&self.keyring_path, &stale)
    }

    /// Drops an intent without forgetting (the erasure was never recorded): an IntentSettled
    /// slot appended and synced. Nothing is written when no erasure is pending.
    pub fn abandon_forget(&self, subject: &SubjectId) -> Result<(), KeyError> {
        let mut writer = self.writer();
        self.settle_unsynced(&mut writer)?;
        if !self.keys().pending.contains(subject) {
            return Ok(());
        }
        writer.refuse_if_failed(&self.dir)?;
        writer.append(&self.keyring_path, &format::encode_slot(SlotKind::IntentSettled, subject, None))?;
        self.keys_mut().pending.remove(subject);
        Ok(())
    }

    /// Subjects with an intent and no settlement, in the order of their bytes: erasures a
    /// crash interrupted. The server checks its log for each and calls [`KeyStore::forget`] or
    /// [`KeyStore::abandon_forget`].
    pub fn pending_forgets(&self) -> Vec<SubjectId> {
        self.keys().pending.iter().copied().collect()
    }

    /// Rotates the master key (see the crate docs): every live key re-wrapped under a new
    /// master key, which replaces the old one's file; tombstones and pending intents are kept.
    /// Returns the path the new master key was written to: the file the master key came from,
    /// the operator's `--master-key-file` included, which must be backed up again. Key
    /// creation and erasure wait meanwhile; readers do not. Refused with
    /// [`KeyError::SharedMasterKey`] while the store shares its keys with a cluster
    /// ([`KeyStore::share_with`]), whose nodes all unwrap them with the same master key.
    pub fn rotate(&self) -> Result<PathBuf, KeyError> {
        self.rotate_until(RotationStep::Done)
    }

    /// [`KeyStore::rotate`], stopped after `stop` as a crash there would stop it, for crash
    /// tests; a store stopped early takes no more changes and must be reopened.
    #[doc(hidden)]
    pub fn rotate_until(&self, stop: RotationStep) -> Result<PathBuf, KeyError> {
        if self.cluster().is_some() {
            return Err(KeyError::SharedMasterKey);
        }
        let mut writer = self.writer();
        self.settle_unsynced(&mut writer)?;
        writer.refuse_if_failed(&self.dir)?;
        let next_path = self.dir.join(NEXT_FILE);
        let master = MasterKey::generate()?;

        // Step 1: keyring.next, complete and durable, under the new master key. A failure here
        // changes nothing the store relies on: keyring.next is removed, and a later open would
        // remove it anyway.
        let NextKeyring { file, slots, live_slots } = match self.write_next(&next_path, &master) {
            Ok(written) => written,
            Err(e) => {
                let _ = fs::remove_file(&next_path);
                return Err(e);
            }
        };
        if stop == RotationStep::NextWritten {
            writer.failed = Some("a rotation was stopped after writing keyring.next".into());
            return Ok(self.master_path.clone());
        }

        // Step 2, the commit point: from here on, which master key is on disk is not known
        // after a failure, so one fails the store and leaves the rest to the next open.
        if let Err(e) = master.write(&self.master_path) {
            writer.failed = Some(e.to_string());
            return Err(e);
        }
        if stop == RotationStep::MasterWritten {
            writer.failed = Some("a rotation was stopped after writing the new master key".into());
            return Ok(self.master_path.clone());
        }

        // Step 3.
        let renamed = fs::rename(&next_path, &self.keyring_path)
            .map_err(io_error(&self.keyring_path, "renaming keyring.next over"))
            .and_then(|()| sync_directory(&self.dir));
        if let Err(e) = renamed {
            writer.failed = Some(e.to_string());
            return Err(e);
        }
        let sync_file = file.try_clone().map_err(io_error(&self.keyring_path, "opening the keyring"));
        let sync_file = match sync_file {
            Ok(sync_file) => sync_file,
            Err(e) => {
                writer.failed = Some(e.to_string());
                return Err(e);
            }
        };
        *self.syncs.lock().unwrap_or_else(PoisonError::into_inner) =
            Syncs { file: sync_file, durable: slots, failed: None };
        self.written.store(slots, Ordering::Release);
        writer.file = file;
        writer.slots = slots;
        writer.master = master;
        writer.superseded.clear();
        {
            let mut keys = self.keys_mut();
            for (subject, slot) in live_slots {
                if let Some(Entry::Live { slot: at, .. }) = keys.subjects.get_mut(&subject) {
                    *at = slot;
                }
            }
        }
        let counts = self.counts();
        info!(
            path = %self.master_path.display(),
            live = counts.live,
            forgotten = counts.forgotten,
            "rotated the key store's master key"
        );
        Ok(self.master_path.clone())
    }

    /// Counts for logs and the CLI: live keys, tombstones.
    pub fn counts(&self) -> KeyCounts {
        let keys = self.keys();
        let live = keys.subjects.values().filter(|entry| matches!(entry, Entry::Live { .. })).count();
        KeyCounts { live: live as u64, forgotten: (keys.subjects.len() - live) as u64 }
    }

    /// Where the master key is (the operator's file, or `master.key` in the store's directory).
    pub fn master_key_path(&self) -> &Path {
        &self.master_path
    }

    /// Where the keyring is.
    pub fn keyring_path(&self) -> &Path {
        &self.keyring_path
    }

    /// The durable keys of `subjects`, or `Missing` when some have none yet; a forgotten one is an error.
    fn lookup(&self, subjects: &[SubjectId]) -> Result<Lookup, KeyError> {
        let keys = self.keys();
        let mut found = Vec::with_capacity(subjects.len());
        let mut missing = false;
        for (index, subject) in subjects.iter().enumerate() {
            match keys.subjects.get(subject) {
                Some(Entry::Live { key, .. }) => found.push(Arc::clone(key)),
                Some(Entry::Forgotten) => return Err(KeyError::Forgotten { index }),
                None => missing = true,
            }
        }
        Ok(if missing { Lookup::Missing } else { Lookup::Found(found) })
    }

    /// Writes `keyring.next` under `master` from the keys in memory (the caller holds the
    /// writer, so they do not change meanwhile), and syncs it and the directory.
    fn write_next(&self, path: &Path, master: &MasterKey) -> Result<NextKeyring, KeyError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_error(path, "creating"))?;
        let mut live_slots = Vec::new();
        let mut bytes = Vec::with_capacity(HEADER_LEN as usize + CHUNK_SLOTS * SLOT_LEN as usize);
        bytes.extend_from_slice(&format::encode_header(&master.check()));
        let mut offset = 0u64;
        let mut slots = 0u64;
        {
            let keys = self.keys();
            for (subject, entry) in &keys.subjects {
                let slot = match entry {
                    Entry::Live { key, .. } => {
                        live_slots.push((*subject, slots));
                        format::encode_slot(SlotKind::Live, subject, Some(&master.wrap(subject, key)?))
                    }
                    Entry::Forgotten => format::encode_slot(SlotKind::Forgotten, subject, None),
                };
                bytes.extend_from_slice(&slot);
                slots += 1;
                flush_full(&file, path, &mut bytes, &mut offset)?;
            }
            // Pending intents are kept, settled ones dropped: an erasure a crash interrupted
            // must still be resolved after the rotation.
            for subject in &keys.pending {
                bytes.extend_from_slice(&format::encode_slot(SlotKind::ForgetIntent, subject, None));
                slots += 1;
                flush_full(&file, path, &mut bytes, &mut offset)?;
            }
        }
        file.write_all_at(&bytes, offset).map_err(io_error(path, "writing"))?;
        file.sync_all().map_err(io_error(path, "syncing"))?;
        sync_directory(&self.dir)?;
        Ok(NextKeyring { file, slots, live_slots })
    }

    // A panic cannot leave either lock's state half-changed: every change writes and syncs
    // first, then publishes in one step, so the state behind a poisoned lock is still whole.
    fn keys(&self) -> RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn keys_mut(&self) -> RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A keyring written by a rotation's step 1.
struct NextKeyring {
    /// Open for reading and writing: after the rename, it is the keyring.
    file: File,
    slots: u64,
    /// The slot of each live key in it.
    live_slots: Vec<(SubjectId, u64)>,
}

enum Lookup {
    Found(Vec<Arc<DataKey>>),
    Missing,
}

/// `subjects` looked up under the writer ([`KeyStore::resolve`]).
struct Resolved {
    /// Each subject's key, if it has one (durable or not).
    found: Vec<Option<Arc<DataKey>>>,
    /// How far the keyring must be durable for the keys found unsynced.
    durable_at: u64,
    /// The subjects that have no key, each once.
    missing: Vec<SubjectId>,
}

impl Writer {
    fn refuse_if_failed(&self, dir: &Path) -> Result<(), KeyError> {
        match &self.failed {
            Some(why) => Err(KeyError::Failed { dir: dir.to_owned(), why: why.clone() }),
            None => Ok(()),
        }
    }

    /// Appends whole slots in one write and one `fdatasync`; returns the first one's index.
    /// A failure fails the store: what reached the disk is not known.
    /// Writes whole slots at the end of the keyring without syncing them, and returns the
    /// first one's number. A failure fails the store.
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<u64, KeyError> {
        debug_assert_eq!(bytes.len() % SLOT_LEN as usize, 0, "appends are whole slots");
        let first = self.slots;
        if let Err(e) = self.file.write_all_at(bytes, slot_offset(first)).map_err(io_error(path, "appending to")) {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.slots += (bytes.len() / SLOT_LEN as usize) as u64;
        Ok(first)
    }

    fn append(&mut self, path: &Path, bytes: &[u8]) -> Result<u64, KeyError> {
        debug_assert_eq!(bytes.len() % SLOT_LEN as usize, 0, "appends are whole slots");
        let first = self.slots;
        let written = self
            .file
            .write_all_at(bytes, slot_offset(first))
            .map_err(io_error(path, "appending to"))
            .and_then(|()| self.file.sync_data().map_err(io_error(path, "syncing")));
        if let Err(e) = written {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.slots += (bytes.len() / SLOT_LEN as usize) as u64;
        Ok(first)
    }

    /// Overwrites each of `slots` in place with its new bytes and syncs them (nothing when
    /// there are none). A failure fails the store.
    fn overwrite(&mut self, path: &Path, slots: &[(u64, [u8; SLOT_LEN as usize])]) -> Result<(), KeyError> {
        if slots.is_empty() {
            return Ok(());
        }
        let written = overwrite_slots(&self.file, path, slots);
        if let Err(e) = written {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        Ok(())
    }
}

fn overwrite_slots(file: &File, path: &Path, slots: &[(u64, [u8; SLOT_LEN as usize])]) -> Result<(), KeyError> {
    for (index, slot) in slots {
        file.write_all_at(slot, slot_offset(*index)).map_err(io_error(path, "overwriting a slot of"))?;
    }
    file.sync_data().map_err(io_error(path, "syncing"))
}

/// Writes `bytes` at `offset` once they hold a chunk's worth, and moves `offset` past them.
fn flush_full(file: &File, path: &Path, bytes: &mut Vec<u8>, offset: &mut u64) -> Result<(), KeyError> {
    if bytes.len() >= CHUNK_SLOTS * SLOT_LEN as usize {
        file.write_all_at(bytes, *offset).map_err(io_error(path, "writing"))?;
        *offset += bytes.len() as u64;
        bytes.clear();
    }
    Ok(())
}

fn lock(dir: &Path) -> Result<File, KeyError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path, "opening the lock file"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(KeyError::InUse { dir: dir.to_owned() }),
        Err(TryLockError::Error(e)) => Err(io_error(&path, "locking")(e)),
    }
}

fn exists(path: &Path) -> Result<bool, KeyError> {
    path.try_exists().map_err(io_error(path, "looking for"))
}

/// The master check in a keyring's header; `None` when there is no such file.
fn read_header(path: &Path) -> Result<Option<[u8; 16]>, KeyError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "opening")(e)),
    };
    let mut header = [0u8; HEADER_LEN as usize];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
            return Err(KeyError::Corrupt {
                path: path.to_owned(),
                offset: 0,
                why: format!("the file is shorter than a keyring's {HEADER_LEN}-byte header"),
            });
        }
        Err(e) => return Err(io_error(path, "reading")(e)),
    }
    format::decode_header(&header).map(Some).map_err(|why| KeyError::Corrupt { path: path.to_owned(), offset: 0, why })
}

/// Brings `keyring` to the master key: finishes or discards an interrupted rotation, makes an
/// empty keyring for a new store, and refuses a master key the keyring was not sealed under.
fn settle_rotation(
    dir: &Path,
    keyring: &Path,
    next: &Path,
    master_path: &Path,
    master: &MasterKey,
) -> Result<(), KeyError> {
    let check = master.check();
    let next_matches = || -> Result<bool, KeyError> {
        match read_header(next) {
            Ok(Some(sealed)) => Ok(sealed == check),
            // A keyring.next that does not even read as a keyring cannot be what a rotation
            // committed to: step 1 synced it whole before step 2 began.
            Ok(None) | Err(KeyError::Corrupt { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    };
    match read_header(keyring)? {
        Some(sealed) if sealed == check => {
            if exists(next)? {
                fs::remove_file(next).map_err(io_error(next, "removing the unfinished rotation's"))?;
                sync_directory(dir)?;
                info!(path = %next.display(), "removed what a rotation that never committed left behind");
            }
            Ok(())
        }
        Some(_) if next_matches()? => {
            fs::rename(next, keyring).map_err(io_error(keyring, "renaming keyring.next over"))?;
            sync_directory(dir)?;
            info!(path = %keyring.display(), "finished a rotation of the master key that a crash interrupted");
            Ok(())
        }
        Some(_) => Err(KeyError::MasterKey {
            path: master_path.to_owned(),
            why: format!(
                "is not the one the keyring {} was sealed under; give the key store's own master key with \
                 --master-key-file",
                keyring.display()
            ),
        }),
        None if exists(next)? => {
            // Only making a new keyring leaves keyring.next without a keyring: a rotation
            // renames over an existing one.
            if next_matches()? {
                fs::rename(next, keyring).map_err(io_error(keyring, "renaming keyring.next to"))?;
                sync_directory(dir)
            } else {
                Err(KeyError::MasterKey {
                    path: master_path.to_owned(),
                    why: format!(
                        "is not the one {} was sealed under, and there is no keyring beside it; give the key store's \
                         own master key with --master-key-file",
                        next.display()
                    ),
                })
            }
        }
        None => {
            // A new store: the empty keyring is made whole under another name and renamed, so
            // that a crash never leaves a keyring without its header.
            let header = format::encode_header(&check);
            File::create(next)
                .and_then(|file| {
                    file.write_all_at(&header, 0)?;
                    file.sync_all()
                })
                .map_err(io_error(next, "writing a new keyring as"))?;
            fs::rename(next, keyring).map_err(io_error(keyring, "renaming the new keyring to"))?;
            sync_directory(dir)?;
            info!(path = %keyring.display(), "made an empty keyring");
            Ok(())
        }
    }
}

/// What opening read of a keyring.
struct Loaded {
    keys: Keys,
    slots: u64,
    superseded: Vec<(SubjectId, u64)>,
}

/// Reads every slot of the keyring, whose header `settle_rotation` checked against `master`;
/// cuts a torn tail, takes a torn slot before it as a deletion, and zeroes the Live slots of
/// forgotten subjects (a `forget` a crash interrupted), rewriting torn slots as tombstones.
fn load(path: &Path, file: &File, master: &MasterKey) -> Result<Loaded, KeyError> {
    let len = file.metadata().map_err(io_error(path, "reading"))?.len();
    let whole_slots = len.saturating_sub(HEADER_LEN) / SLOT_LEN;
    let mut scan = Scan::default();
    let mut end = whole_slots;
    let mut chunk = vec![0u8; CHUNK_SLOTS * SLOT_LEN as usize];
    let mut index = 0u64;
    'scan: while index < whole_slots {
        let count = (whole_slots - index).min(CHUNK_SLOTS as u64) as usize;
        let bytes = &mut chunk[..count * SLOT_LEN as usize];
        file.read_exact_at(bytes, slot_offset(index)).map_err(io_error(path, "reading"))?;
        for slot in bytes.chunks_exact(SLOT_LEN as usize) {
            match format::decode_slot(slot) {
                // This slot never reached the disk, so no sync has completed since the append
                // that wrote it, and every slot from here on is of that unacknowledged append.
                Decoded::Unwritten => {
                    end = index;
                    break 'scan;
                }
                Decoded::Torn { subject } => scan.torn.push((index, subject)),
                Decoded::UnknownKind(kind) => {
                    return Err(KeyError::Corrupt {
                        path: path.to_owned(),
                        offset: slot_offset(index),
                        why: format!("slot {index} is of kind {kind}, which keyring format 1 does not have"),
                    });
                }
                Decoded::Slot(slot) => scan.apply(index, slot, master, path)?,
            }
            index += 1;
        }
    }
    // Torn slots at the very end are an append torn by a crash, never acknowledged.
    while scan.torn.last().is_some_and(|&(at, _)| at + 1 == end) {
        scan.torn.pop();
        end -= 1;
    }
    let kept = slot_offset(end);
    if kept != len {
        warn!(
            path = %path.display(),
            offset = kept,
            bytes = len - kept,
            "cut off the end of the keyring: an append that a crash tore, never acknowledged"
        );
        file.set_len(kept).map_err(io_error(path, "cutting the torn end off"))?;
    }
    let mut rewrite = Vec::new();
    for (at, subject) in std::mem::take(&mut scan.torn) {
        warn!(
            path = %path.display(),
            offset = slot_offset(at),
            subject = %subject,
            "a slot of the keyring fails its checksum: an erasure a crash tore; its subject is forgotten"
        );
        scan.forgotten(subject);
        rewrite.push((at, subject));
    }
    let Scan { mut keys, superseded, stale, .. } = scan;
    let (stale_superseded, superseded): (Vec<_>, Vec<_>) =
        superseded.into_iter().partition(|(subject, _)| matches!(keys.subjects.get(subject), Some(Entry::Forgotten)));
    if !superseded.is_empty() {
        warn!(path = %path.display(), slots = superseded.len(), "the keyring has subjects with more than one live slot; the last one of each is used");
    }
    let finished = stale.len() + stale_superseded.len();
    if finished > 0 {
        info!(path = %path.display(), slots = finished, "zeroed the keys of erasures a crash interrupted");
    }
    rewrite.extend(stale);
    rewrite.extend(stale_superseded.into_iter().map(|(subject, at)| (at, subject)));
    for &(at, subject) in &rewrite {
        file.write_all_at(&format::encode_slot(SlotKind::Forgotten, &subject, None), slot_offset(at))
            .map_err(io_error(path, "overwriting a slot of"))?;
    }
    if kept != len || !rewrite.is_empty() {
        file.sync_data().map_err(io_error(path, "syncing"))?;
    }
    let Keys { subjects, pending } = &mut keys;
    pending.retain(|subject| !matches!(subjects.get(subject), Some(Entry::Forgotten)));
    Ok(Loaded { keys, slots: end, superseded })
}

/// The state of a keyring read so far, slot by slot.
#[derive(Default)]
struct Scan {
    keys: Keys,
    /// Slots whose checksum fails, with the subject their bytes name.
    torn: Vec<(u64, SubjectId)>,
    /// Live slots of forgotten subjects: to be zeroed.
    stale: Vec<(u64, SubjectId)>,
    /// Live slots a later Live slot of the same subject replaced.
    superseded: Vec<(SubjectId, u64)>,
}

impl Scan {
    fn apply(&mut self, index: u64, slot: Slot, master: &MasterKey, path: &Path) -> Result<(), KeyError> {
        let subject = slot.subject;
        match slot.kind {
            SlotKind::Live => {
                let Some(key) = master.unwrap_key(&subject, &slot.wrapped) else {
                    return Err(KeyError::Corrupt {
                        path: path.to_owned(),
                        offset: slot_offset(index),
                        why: format!(
                            "the key of subject {subject} in slot {index} does not open with the master key the \
                             header names"
                        ),
                    });
                };
                match self.keys.subjects.get(&subject) {
                    // A Forgotten slot wins wherever it is.
                    Some(Entry::Forgotten) => self.stale.push((index, subject)),
                    Some(Entry::Live { slot: earlier, .. }) => {
                        self.superseded.push((subject, *earlier));
                        self.keys.subjects.insert(subject, Entry::Live { key: Arc::new(key), slot: index });
                    }
                    None => {
                        self.keys.subjects.insert(subject, Entry::Live { key: Arc::new(key), slot: index });
                    }
                }
            }
            SlotKind::Forgotten => self.forgotten(subject),
            SlotKind::ForgetIntent => {
                self.keys.pending.insert(subject);
            }
            SlotKind::IntentSettled => {
                self.keys.pending.remove(&subject);
            }
        }
        Ok(())
    }

    /// The subject is forgotten; a Live slot it had is stale.
    fn forgotten(&mut self, subject: SubjectId) {
        if let Some(Entry::Live { slot, .. }) = self.keys.subjects.insert(subject, Entry::Forgotten) {
            self.stale.push((slot, subject));
        }
    }
}

mod shared;
#[cfg(test)]
mod tests;
