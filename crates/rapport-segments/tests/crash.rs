//! What a crash can leave of a segment log, and what opening it makes of that.
//!
//! A crash keeps what was synced and any part of what was written since: the disk may have
//! written some of the later sectors and not others, in any order, or half a sector. These
//! tests build such images sector by sector from the files as they were at the last sync and
//! as they were at the crash, open them, and check that the log is a whole-batch prefix of
//! what was appended that holds everything synced, that it takes appends after that without
//! stale frames reappearing, and that damage to synced events is refused, not cut off.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_segments::{Options, SegmentLog};
use rapport_store::{AppendBatch, ChainCheck, EventLog, NewEvent, StoreError, StoredEvent};

/// A small seeded generator, so that a failing trial replays exactly.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn account(n: u64) -> AccountId {
    AccountId::parse(format!("account-{n}"), &Limits::default()).expect("a valid account id")
}

/// Event `n`: its id encodes `n`; its payload, of a length that varies with `n`, names it.
fn event(n: u64) -> NewEvent {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id[6] = 0x40;
    let payload = format!("event {n} ").repeat(1 + (n % 23) as usize);
    NewEvent { event_id: EventId::from_bytes(id), payload: Bytes::from(payload) }
}

/// What was appended: each event's (account, number) by position, and where batches end.
#[derive(Default, Clone)]
struct Model {
    events: Vec<(u64, u64)>,
    batch_ends: Vec<u64>,
    versions: BTreeMap<u64, u64>,
}

impl Model {
    /// Appends `batches` random batches (some in groups, as the server's writer does).
    fn append(&mut self, log: &SegmentLog, random: &mut Lcg, next: &mut u64, batches: usize) {
        let mut left = batches;
        while left > 0 {
            let group = (1 + random.below(4) as usize).min(left);
            left -= group;
            let mut planned = Vec::new();
            for _ in 0..group {
                let account_n = random.below(5);
                let count = 1 + random.below(6);
                let events: Vec<NewEvent> = (*next..*next + count).map(event).collect();
                *next += count;
                planned.push((account_n, account(account_n), events));
            }
            let batches: Vec<AppendBatch<'_>> = planned
                .iter()
                .map(|(account_n, account_id, events)| {
                    let expected = *self.versions.get(account_n).unwrap_or(&0);
                    self.versions.insert(*account_n, expected + events.len() as u64);
                    AppendBatch {
                        account_id,
                        expected_version: expected,
                        recorded_at: Timestamp::from_unix_nanos(1_000),
                        recorded_by: "",
                        events,
                    }
                })
                .collect();
            for result in log.append_all(&batches) {
                result.expect("the append succeeds");
            }
            for (account_n, _, events) in &planned {
                for new in events {
                    self.events.push((*account_n, number(&new.event_id)));
                }
                self.batch_ends.push(self.events.len() as u64);
            }
        }
    }

    /// The model cut to what a reopened log kept.
    fn truncate(&mut self, kept: u64) {
        self.events.truncate(kept as usize);
        self.batch_ends.retain(|&end| end <= kept);
        self.versions.clear();
        for &(account_n, _) in &self.events {
            *self.versions.entry(account_n).or_default() += 1;
        }
    }
}

fn number(id: &EventId) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&id.as_bytes()[8..]);
    u64::from_be_bytes(bytes)
}

/// Checks that `log` holds exactly the model's events, chained.
fn assert_holds(log: &SegmentLog, model: &Model, context: &str) {
    let events: Vec<StoredEvent> = log.read_all(0, usize::MAX).expect("the log reads");
    assert_eq!(events.len(), model.events.len(), "{context}: the number of events");
    let mut check = ChainCheck::whole_log();
    for (event, &(account_n, n)) in events.iter().zip(&model.events) {
        let want = crate::event(n);
        assert_eq!(
            (&event.account_id, event.event_id, &event.payload),
            (&account(account_n), want.event_id, &want.payload),
            "{context}: the event at position {}",
            event.position
        );
        check.check(event).unwrap_or_else(|b| panic!("{context}: the chain breaks: {b:?}"));
    }
}

/// Every file of a directory, by name. (A file the log's background indexing renames away
/// while the directory is read is left out: it is there under its new name, or soon will be.)
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.unwrap();
            let bytes = std::fs::read(entry.path()).ok()?;
            Some((entry.file_name().to_string_lossy().into_owned(), bytes))
        })
        .collect()
}

const SECTOR: usize = 512;

/// A crash image: for every sector written since `synced`, the new bytes, the old ones (zeros
/// past the old end, or the file cut there), or now and then garbage where there were zeros.
/// A file created since is sometimes missing. (Sectors are taken to be written atomically,
/// as disks promise for their logical sectors: a sector holding synced bytes and new ones is
/// either as synced or as written, never garbage.) An index file is written only once its
/// segment is synced, and renamed into place whole: a new one is there whole or not at all,
/// and if it is, so is its segment.
fn crash_image(
    synced: &BTreeMap<String, Vec<u8>>,
    crashed: &BTreeMap<String, Vec<u8>>,
    random: &mut Lcg,
) -> BTreeMap<String, Vec<u8>> {
    let mut image = BTreeMap::new();
    let mut durable_segments = Vec::new();
    for (name, bytes) in crashed {
        if let Some(segment) = name.strip_suffix(".index")
            && (synced.get(name) == Some(bytes) || random.below(2) == 0)
        {
            image.insert(name.clone(), bytes.clone());
            durable_segments.push(segment.to_owned());
        }
    }
    for (name, new) in crashed {
        if name.ends_with(".index") {
            continue;
        }
        if durable_segments.contains(name) {
            image.insert(name.clone(), new.clone());
            continue;
        }
        let old = synced.get(name).cloned().unwrap_or_default();
        if !synced.contains_key(name) && random.below(4) == 0 {
            continue;
        }
        let mut bytes = new.clone();
        let mut cut = None;
        for start in (0..new.len()).step_by(SECTOR) {
            let end = (start + SECTOR).min(new.len());
            let before = old.get(start..end.min(old.len())).unwrap_or(&[]);
            if before == &new[start..end] {
                continue;
            }
            match random.below(10) {
                0..=4 => {}
                5..=8 => {
                    for (offset, byte) in bytes[start..end].iter_mut().enumerate() {
                        *byte = old.get(start + offset).copied().unwrap_or(0);
                    }
                    if start >= old.len() && cut.is_none() && random.below(3) == 0 {
                        cut = Some(start);
                    }
                }
                // Garbage only where nothing was written before: a sector is written whole or
                // not at all, so a sector that holds synced bytes keeps them either way.
                _ if before.iter().all(|&b| b == 0) => {
                    for byte in &mut bytes[start..end] {
                        *byte = random.below(256) as u8;
                    }
                }
                _ => {}
            }
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.max(old.len()));
        }
        image.insert(name.clone(), bytes);
    }
    image
}

fn write_image(dir: &Path, image: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in image {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A scratch directory under the test's temporary one.
fn scratch(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_crash_keeps_a_whole_batch_prefix_of_at_least_what_was_synced_and_nothing_stale_comes_back() {
    let root = tempfile::tempdir().unwrap();
    let trials: u64 = std::env::var("RAPPORT_SEGMENT_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    let mut cut_short = 0;
    for trial in 0..trials {
        let mut random = Lcg(trial);
        // Small segments in most trials, so that crashes fall across segment boundaries too.
        let options = if trial % 4 == 0 { Options::default() } else { Options { segment_bytes: 4096 } };
        let dir = scratch(root.path(), "log");
        let log = SegmentLog::open_with(&dir, options).unwrap();
        let (mut model, mut next) = (Model::default(), 1);
        let batches = 1 + random.below(30) as usize;
        model.append(&log, &mut random, &mut next, batches);
        log.sync().unwrap();
        let synced_files = files(&dir);
        let synced = model.events.len() as u64;
        let batches = 1 + random.below(30) as usize;
        model.append(&log, &mut random, &mut next, batches);
        drop(log);
        let crashed_files = files(&dir);

        let context = format!("trial {trial}");
        let crashed = scratch(root.path(), "crashed");
        write_image(&crashed, &crash_image(&synced_files, &crashed_files, &mut random));
        let log = SegmentLog::open_with(&crashed, options).unwrap_or_else(|e| panic!("{context}: {e}"));
        let kept = log.last_position().unwrap();
        assert!(kept >= synced, "{context}: {kept} events kept, {synced} were synced");
        assert!(kept == 0 || model.batch_ends.contains(&kept), "{context}: {kept} cuts a batch");
        if kept < model.events.len() as u64 {
            cut_short += 1;
        }
        model.truncate(kept);
        assert_holds(&log, &model, &context);

        // Appends go on from there; after a clean reopen exactly they follow, nothing stale.
        let batches = 1 + random.below(10) as usize;
        model.append(&log, &mut random, &mut next, batches);
        log.sync().unwrap();
        drop(log);
        let log = SegmentLog::open_with(&crashed, options).unwrap_or_else(|e| panic!("{context}, reopened: {e}"));
        assert_holds(&log, &model, &format!("{context}, after more appends and a reopen"));
    }
    // The images are random, but not so kind that no crash ever lost anything.
    assert!(cut_short > trials / 4, "only {cut_short} of {trials} crashes lost unsynced batches");
}

/// A log of several synced groups in small segments, and the model of it.
fn synced_log(dir: &Path) -> Model {
    let log = SegmentLog::open_with(dir, Options { segment_bytes: 4096 }).unwrap();
    let (mut model, mut next, mut random) = (Model::default(), 1, Lcg(7));
    for _ in 0..20 {
        model.append(&log, &mut random, &mut next, 3);
        log.sync().unwrap();
    }
    model
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("segment-") && !name.contains('.')
        })
        .collect();
    paths.sort();
    paths
}

fn assert_refused(dir: &Path, what: &str) {
    match SegmentLog::open_with(dir, Options { segment_bytes: 4096 }) {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("acknowledged events are missing or damaged"), "{what}: {message}")
        }
        Err(other) => panic!("{what}: refused, but not as corrupt: {other:?}"),
        Ok(log) => panic!("{what}: opened with {} events", log.last_position().unwrap()),
    }
}

#[test]
fn damage_to_synced_events_is_refused_not_cut_off() {
    let root = tempfile::tempdir().unwrap();
    let original = scratch(root.path(), "original");
    let model = synced_log(&original);
    let segments = segment_paths(&original);
    assert!(segments.len() >= 5, "the log spans several segments: {}", segments.len());
    assert_holds(&SegmentLog::open_with(&original, Options { segment_bytes: 4096 }).unwrap(), &model, "intact");

    let copy = |name: &str, index_files: bool| {
        let dir = scratch(root.path(), name);
        for entry in std::fs::read_dir(&original).unwrap() {
            let path = entry.unwrap().path();
            if index_files || !path.to_string_lossy().ends_with(".index") {
                std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
            }
        }
        dir
    };
    let damage = |dir: &Path, segment: usize| {
        let path = dir.join(segments[segment].file_name().unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[64 + 24 + 8 + 3] ^= 0x20; // Inside the first record's envelope.
        std::fs::write(&path, bytes).unwrap();
    };

    // A byte changed in a closed segment: opening reads its index file, not the segment, so
    // the damage shows where the event is read (and in Verify, which reads every event).
    let dir = copy("indexed", true);
    damage(&dir, 1);
    let log = SegmentLog::open_with(&dir, Options { segment_bytes: 4096 }).unwrap();
    match log.read_all(0, usize::MAX) {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("checksum"), "{message}"),
        other => panic!("a damaged record read as {other:?}"),
    }
    drop(log);
    // Read whole (its index gone), the same segment is refused at open; so is the last
    // segment, always read whole, damaged in the middle.
    let last = segments.len() - 1;
    for (segment, what) in [(1, "an early segment without its index"), (last, "the last segment")] {
        let dir = copy("damaged", false);
        damage(&dir, segment);
        assert_refused(&dir, what);
    }

    // A segment missing in the middle (its neighbours read through their index files).
    let dir = copy("missing", true);
    std::fs::remove_file(dir.join(segments[2].file_name().unwrap())).unwrap();
    assert_refused(&dir, "a missing segment");
}

#[test]
fn a_record_damaged_under_an_open_log_fails_its_read() {
    let dir = tempfile::tempdir().unwrap();
    synced_log(dir.path());
    let log = SegmentLog::open_with(dir.path(), Options { segment_bytes: 4096 }).unwrap();
    let path = segment_paths(dir.path())[0].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[64 + 24 + 8 + 3] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    match log.read_all(1, 1) {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("position 1") && message.contains("checksum"), "{message}")
        }
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

#[test]
fn segments_stay_within_their_size_unless_one_frame_needs_more() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open_with(dir.path(), Options { segment_bytes: 4096 }).unwrap();
    let (mut model, mut next, mut random) = (Model::default(), 1, Lcg(3));
    model.append(&log, &mut random, &mut next, 40);
    // One batch far larger than a segment.
    let big: Vec<NewEvent> = (0..40).map(|offset| event(next + offset)).collect();
    log.append(AppendBatch {
        account_id: &account(9),
        expected_version: 0,
        recorded_at: Timestamp::from_unix_nanos(2_000),
        recorded_by: "",
        events: &big,
    })
    .unwrap();
    log.sync().unwrap();
    let sizes: Vec<u64> = segment_paths(dir.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).collect();
    let over: Vec<&u64> = sizes.iter().filter(|&&size| size > 4096).collect();
    assert_eq!(over.len(), 1, "only the big batch's segment is larger: {sizes:?}");
    drop(log);
    let log = SegmentLog::open_with(dir.path(), Options { segment_bytes: 4096 }).unwrap();
    assert_eq!(log.last_position().unwrap(), model.events.len() as u64 + 40);
}

#[test]
fn a_directory_with_other_files_or_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("conf"), b"a sled database, say").unwrap();
    match SegmentLog::open(dir.path()) {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("conf") && message.contains("not part of a Rapport log"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let _open = SegmentLog::open(dir.path()).unwrap();
    match SegmentLog::open(dir.path()) {
        Err(StoreError::Io(message)) => assert!(message.contains("in use"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// Writes a segment file by hand, in the documented layout, holding `events` in one frame.
fn write_segment(dir: &Path, sequence: u64, events: &[StoredEvent]) {
    let mut bytes = vec![0u8; 64];
    bytes[..16].copy_from_slice(b"rapport segment\0");
    bytes[16..20].copy_from_slice(&1u32.to_le_bytes());
    bytes[24..32].copy_from_slice(&sequence.to_le_bytes());
    bytes[32..40].copy_from_slice(&events[0].position.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..40]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    let mut body = Vec::new();
    for event in events {
        let envelope = rapport_envelope::encode_envelope(event);
        body.extend_from_slice(&(envelope.len() as u32).to_le_bytes());
        body.extend_from_slice(&crc32c::crc32c(&envelope).to_le_bytes());
        body.extend_from_slice(&envelope);
    }
    let mut frame = Vec::new();
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&(events.len() as u32).to_le_bytes());
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.extend_from_slice(&body);
    bytes.extend_from_slice(&crc32c::crc32c(&frame).to_le_bytes());
    bytes.extend_from_slice(&frame);
    bytes.resize(bytes.len().div_ceil(8) * 8 + 4096, 0);
    std::fs::write(dir.join(format!("segment-{sequence:012}")), bytes).unwrap();
}

/// Two events in different segments with one id: what no append can make, so damage or
/// another program's doing, refused at open.
#[test]
fn two_events_with_one_id_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stored = |position: u64, version: u64, n: u64, prev_hash| {
        let mut event = StoredEvent {
            account_id: account(1),
            version,
            position,
            recorded_at: Timestamp::from_unix_nanos(1_000),
            event_id: event(n).event_id,
            recorded_by: String::new(),
            payload: event(n).payload,
            prev_hash,
            hash: rapport_store::GENESIS_HASH,
            scheme: rapport_store::HashScheme::Positioned,
        };
        event.hash = event.computed_hash();
        event
    };
    let first = stored(1, 1, 1, rapport_store::GENESIS_HASH);
    let second = stored(2, 2, 2, first.hash);
    let again = stored(3, 3, 1, second.hash);
    write_segment(dir.path(), 1, &[first.clone(), second.clone()]);
    write_segment(dir.path(), 2, std::slice::from_ref(&again));
    match SegmentLog::open(dir.path()) {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("positions 1 and 3 share the id"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // The same between two closed segments (read whole at open, as neither has an index),
    // with a sound one after them.
    let dir = tempfile::tempdir().unwrap();
    let fourth = stored(4, 4, 4, again.hash);
    write_segment(dir.path(), 1, &[first.clone(), second.clone()]);
    write_segment(dir.path(), 2, std::slice::from_ref(&again));
    write_segment(dir.path(), 3, &[fourth]);
    match SegmentLog::open(dir.path()) {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("positions 1 and 3 share the id"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // The hand-made segments are otherwise sound: without the repeated id they open.
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, &[first, second.clone()]);
    write_segment(dir.path(), 2, &[stored(3, 3, 3, second.hash)]);
    assert_eq!(SegmentLog::open(dir.path()).unwrap().last_position().unwrap(), 3);
}
