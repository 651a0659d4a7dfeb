//! Rapport's own log: append-only segment files of checksummed frames, the store the service
//! runs on by default.
//!
//! # Layout
//!
//! A directory of segment files, `segment-000000000001`, `segment-000000000002`, …, each
//! holding the events of a run of positions, and a `LOCK` file that one process at a time
//! holds. A segment is a header (its sequence number and first position) and frames; a frame
//! is what one write put there (the batches of one [`EventLog::append_all`]) and holds one
//! record per event: the event's envelope (`rapport.storage.v1.StoredEvent`, see
//! `rapport-envelope`) with its length and a crc32c. The byte layout is in `format.rs`.
//! A segment is closed once the next frame would take it past its size (64 MiB by default;
//! a frame larger than that gets a segment of its own).
//!
//! # Durability and atomicity
//!
//! Appends write frames into the page cache; [`EventLog::sync`] makes them durable with
//! `fdatasync` (and syncs the directory when a segment was created). Files are extended with
//! zeros a mebibyte ahead of the writes, so that a sync writes data blocks only, not the
//! file's size and extents as well (measured on the benchmark machine: 0.30 ms against
//! 0.45 ms per 16 KiB write and sync, 0.39 ms against 0.74 ms at 64 KiB). A frame is kept or
//! lost whole: its checksum covers all of it. Each frame also records how far the log was
//! durable when it was written, which lets recovery tell a torn tail from lost acknowledged
//! events (`recovery.rs`).
//!
//! If a write or a sync fails in a way that may have left the files different from what this
//! process believes (an I/O error once data is being written, any failed sync: after one, the
//! kernel may have dropped the dirty pages and a later sync would succeed without them), the
//! log refuses every further append and sync, and the process must reopen it: recovery then
//! reads what the disk really holds. Running out of space while extending a file is not such
//! a failure: nothing was written, and appends succeed again once there is room.
//!
//! # Opening
//!
//! Once a segment is closed, a background thread syncs it, reads it back and writes its index
//! file (`seal.rs`): where each record is, the sorted run of its ids' keys, the part of each
//! stream it holds. Opening reads those files and reads only the last segment whole (and any
//! closed one whose index is missing or damaged, writing it). In memory, each event costs 4
//! bytes of record offset, 8 of stream position and 16 of id key and position (`ids.rs`);
//! the ids of the segment being written sit in a hash map.

mod format;
mod ids;
mod index;
mod recovery;
mod seal;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

use rapport_domain::{AccountId, EventId};
use rapport_envelope::encode_envelope_into;
pub(crate) use rapport_store::io_error;
use rapport_store::{
    AppendBatch, Appended, Direction, EventLog, PublishedLog, StagedEnd, Staging, StoreError, StoredEvent, StreamHead,
};
use tracing::{error, warn};

use crate::format::{FRAME_ALIGN, FRAME_HEADER_LEN, FrameWriter, HEADER_LEN, RECORD_HEADER_LEN, SegmentHeader};
use crate::ids::Run;
use crate::index::{Index, Segment, Stream};
use crate::recovery::{LOCK_FILE, recover, segment_name, sync_directory};

/// How a [`SegmentLog`] lays out its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The size past which a segment is closed and the next one begun. At least 4 KiB and
    /// below 4 GiB; a frame larger than this gets a segment of its own.
    pub segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { segment_bytes: 64 << 20 }
    }
}

/// Files are extended with zeros in steps of this many bytes, ahead of the writes.
const EXTEND_BYTES: u64 = 1 << 20;
static ZEROS: [u8; EXTEND_BYTES as usize] = [0; EXTEND_BYTES as usize];

/// The log, in a directory of segment files.
pub struct SegmentLog {
    dir: PathBuf,
    options: Options,
    /// What readers see: only whole, written batches.
    index: RwLock<Index>,
    /// The writing side; also serialises appends and syncs.
    tail: Mutex<Tail>,
    /// Held (locked) while the log is open.
    _lock: File,
}

impl std::fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The segment being written.
#[derive(Debug)]
pub(crate) struct Active {
    pub sequence: u64,
    pub first_position: u64,
    pub file: Arc<File>,
    /// Where the next frame goes.
    pub offset: u64,
    /// The file's length: everything from `offset` to here is zeros.
    pub zeroed: u64,
}

struct Tail {
    /// `None` until the first append of an empty log.
    active: Option<Active>,
    /// Segments closed since the last sync, to sync with the next one.
    unsynced: Vec<Arc<File>>,
    /// A segment file was created since the last sync, so the directory needs one too.
    directory_changed: bool,
    /// Everything through this position is durable.
    durable_position: u64,
    /// Why the log takes no more writes, if it does not.
    failed: Option<String>,
    /// Reused for every write.
    buffer: Vec<u8>,
    /// The closed segment being indexed in the background, if one is.
    sealing: Option<Sealing>,
}

/// Sealed runs are merged into one once this many wait beside it.
const MERGE_RUNS: usize = 8;

/// A closed segment being indexed: its index file written, its ids sorted into a run (and,
/// every [`MERGE_RUNS`] segments, merged with the runs before).
struct Sealing {
    sequence: u64,
    thread: JoinHandle<Result<Sealed, StoreError>>,
}

struct Sealed {
    run: Arc<Run>,
    /// The merged run that replaces the merged one and the first `usize` runs.
    merged: Option<(Arc<Run>, usize)>,
}

impl SegmentLog {
    /// Opens the log in `dir` with the default [`Options`], creating the directory and an
    /// empty log if there is none.
    pub fn open(dir: &Path) -> Result<SegmentLog, StoreError> {
        SegmentLog::open_with(dir, Options::default())
    }

    /// Opens the log in `dir`, laid out by `options`.
    ///
    /// Fails with [`StoreError::Corrupt`] if the directory holds other files than a log's, or
    /// if acknowledged events are damaged or missing; a torn tail (what a crash leaves of
    /// writes that were never synced) is cut off.
    pub fn open_with(dir: &Path, options: Options) -> Result<SegmentLog, StoreError> {
        if !(4096..u64::from(u32::MAX)).contains(&options.segment_bytes) {
            return Err(StoreError::InvalidBatch(format!(
                "a segment of {} bytes is not between 4 KiB and 4 GiB",
                options.segment_bytes
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(&e, &format!("creating {}", dir.display())))?;
        let lock = lock(dir)?;
        let recovered = recover(dir)?;
        let durable_position = recovered.index.last_position;
        Ok(SegmentLog {
            dir: dir.to_owned(),
            options,
            index: RwLock::new(recovered.index),
            tail: Mutex::new(Tail {
                active: recovered.active,
                unsynced: Vec::new(),
                directory_changed: false,
                durable_position,
                failed: None,
                buffer: Vec::new(),
                sealing: None,
            }),
            _lock: lock,
        })
    }

    // A panic cannot leave either lock's state half-changed: appends check and write
    // everything before they change the tail or publish to the index, each in one step.
    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The events at `positions`, read with the index's lock released.
    fn read(&self, positions: impl IntoIterator<Item = u64>) -> Result<Vec<StoredEvent>, StoreError> {
        let runs = self.index().runs(positions)?;
        let mut events = Vec::new();
        for run in runs {
            run.read(&mut events)?;
        }
        Ok(events)
    }
}

/// Takes the directory's lock, or says who holds it.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&e, &format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Io(format!(
            "{} is in use: another Rapport server or another open log holds its lock; stop it or use another data \
             directory",
            dir.display()
        ))),
        Err(TryLockError::Error(e)) => Err(io_error(&e, &format!("locking {}", path.display()))),
    }
}

/// A write the batches of one append make: bytes for one segment, from an offset.
struct Write {
    /// The segment's sequence number.
    sequence: u64,
    /// Whether the segment is new (its header is part of the write).
    new: bool,
    first_position: u64,
    offset: u64,
    /// Where in the tail's buffer the bytes are.
    bytes: std::ops::Range<usize>,
    /// For each event written, its record's offset in the file.
    records: Vec<u32>,
}

/// The log as readers see it, for the staging of an append.
impl PublishedLog for &Index {
    fn stream_head(&mut self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        Ok(self.streams.get(account_id).and_then(Stream::head))
    }

    fn event_position(&mut self, event_id: &EventId) -> Result<Option<u64>, StoreError> {
        Ok(self.find(event_id)?.map(|recorded| recorded.position))
    }
}

/// The frames of one append being laid out in the tail's buffer: the batches' records go into
/// the write under way, or into a new segment's once the segment being written is full.
struct Layout<'a> {
    buffer: &'a mut Vec<u8>,
    writes: Vec<Write>,
    frame: Option<FrameWriter>,
    /// The segment the last write goes to (0: none yet).
    sequence: u64,
    /// Where the active segment's next frame goes.
    offset: u64,
    /// What every frame records as durable.
    durable: u64,
    segment_bytes: u64,
}

impl Layout<'_> {
    /// Adds the records of one stamped batch, or refuses a batch too large for any segment
    /// (having added nothing).
    fn add(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let size: u64 =
            events.iter().map(|e| (RECORD_HEADER_LEN + rapport_envelope::encoded_len(e)) as u64).sum::<u64>()
                + FRAME_HEADER_LEN as u64;
        if HEADER_LEN as u64 + size + 8 >= u64::from(u32::MAX) {
            return Err(StoreError::InvalidBatch(format!("a batch of {size} bytes is larger than a segment")));
        }
        let first_position = events.first().map_or(0, |e| e.position);
        // Where the batch goes: the write under way, unless it would take its segment past the
        // size (and the segment holds something).
        let write_end =
            self.writes.last().map_or(self.offset, |w| w.offset + (self.buffer.len() - w.bytes.start) as u64);
        let fits = write_end + size <= self.segment_bytes;
        let segment_empty = self.sequence == 0 || write_end == HEADER_LEN as u64;
        if self.writes.is_empty() || !(fits || segment_empty) {
            self.finish_frame();
            let new = self.sequence == 0 || !(fits || segment_empty);
            self.sequence += u64::from(new);
            self.writes.push(Write {
                sequence: self.sequence,
                new,
                first_position,
                offset: if new { 0 } else { self.offset },
                bytes: self.buffer.len()..self.buffer.len(),
                records: Vec::new(),
            });
            if new {
                self.buffer.extend_from_slice(&SegmentHeader { sequence: self.sequence, first_position }.encode());
            }
        }
        let (buffer, frame) = (&mut *self.buffer, &mut self.frame);
        let Some(write) = self.writes.last_mut() else {
            // Not reached: a write was pushed above when there was none.
            return Err(StoreError::InvalidBatch("no segment write to add the batch to".into()));
        };
        let open = frame.get_or_insert_with(|| FrameWriter::begin(buffer));
        for event in events {
            // Positions follow each other within a write, as its records do.
            debug_assert_eq!(event.position, write.first_position + write.records.len() as u64);
            let at = open.record(buffer, |b| encode_envelope_into(event, b));
            let record_offset = write.offset + (at - write.bytes.start) as u64;
            debug_assert!(record_offset >= HEADER_LEN as u64 && record_offset < u64::from(u32::MAX));
            debug_assert!(write.records.last().is_none_or(|&last| u64::from(last) < record_offset));
            write.records.push(record_offset as u32);
        }
        Ok(())
    }

    /// Closes the frame under way, if there is one, and marks the bytes since its write
    /// began as that write's.
    fn finish_frame(&mut self) {
        if let Some(open) = self.frame.take() {
            open.finish(self.buffer, self.durable);
            if let Some(write) = self.writes.last_mut() {
                write.bytes.end = self.buffer.len();
                // Frames (and a new segment's header) are whole multiples of the alignment.
                debug_assert_eq!(write.bytes.len() % FRAME_ALIGN, 0);
                debug_assert_eq!(write.offset % FRAME_ALIGN as u64, 0);
            }
        }
    }
}

impl EventLog for SegmentLog {
    /// Writes every batch that passes its checks in one write per segment touched (one,
    /// unless the group closes a segment).
    fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>> {
        let mut tail = self.tail();
        if let Some(why) = &tail.failed {
            let error = StoreError::Io(format!("the log takes no more writes since {why}; restart to recover"));
            return batches.iter().map(|_| Err(error.clone())).collect();
        }
        self.finish_sealing(&mut tail, false);
        let index = self.index();
        debug_assert!(tail.durable_position <= index.last_position);
        let mut staging = Staging::new(index.last_position, index.last_recorded_at);
        let mut buffer = std::mem::take(&mut tail.buffer);
        buffer.clear();
        let (sequence, offset) = tail.active.as_ref().map_or((0, 0), |active| (active.sequence, active.offset));
        let mut layout = Layout {
            buffer: &mut buffer,
            writes: Vec::new(),
            frame: None,
            sequence,
            offset,
            durable: tail.durable_position,
            segment_bytes: self.options.segment_bytes,
        };
        let mut published: &Index = &index;
        let results: Vec<Result<Appended, StoreError>> =
            batches.iter().map(|batch| staging.stage(batch, &mut published, |events| layout.add(events))).collect();
        layout.finish_frame();
        let writes = layout.writes;
        // The first write continues the log where readers see it end.
        debug_assert!(writes.first().is_none_or(|w| w.first_position == index.last_position + 1));
        drop(index);
        if writes.is_empty() {
            tail.buffer = buffer;
            return results;
        }
        let written = self.write(&mut tail, &writes, &buffer);
        tail.buffer = buffer;
        match written {
            Ok(files) => {
                self.publish(&writes, &files, &staging.finish(), batches, &results);
                results
            }
            Err(error) => results.into_iter().map(|result| result.and(Err(error.clone()))).collect(),
        }
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut tail = self.tail();
        if let Some(why) = &tail.failed {
            return Err(StoreError::Io(format!("the log cannot be synced since {why}; restart to recover")));
        }
        // Everything published is written, and only the writer publishes.
        let target = self.index().last_position;
        // The durable position follows the published one and never passes it.
        debug_assert!(tail.durable_position <= target);
        if target == tail.durable_position {
            return Ok(());
        }
        let mut synced = tail.unsynced.iter().chain(tail.active.as_ref().map(|a| &a.file)).map(|file| file.sync_data());
        let mut outcome = synced.try_for_each(|r| r).map_err(|e| io_error(&e, "syncing the log"));
        if outcome.is_ok() && tail.directory_changed {
            outcome = sync_directory(&self.dir);
        }
        match outcome {
            Ok(()) => {
                tail.unsynced.clear();
                tail.directory_changed = false;
                tail.durable_position = target;
                Ok(())
            }
            Err(error) => {
                // After a failed fsync the kernel may have dropped the pages it could not
                // write; a later fsync could succeed without them. Only a reopen can tell.
                tail.failed = Some(format!("a sync failed ({error})"));
                Err(error)
            }
        }
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.index().last_position)
    }

    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        Ok(self.index().streams.get(account_id).and_then(Stream::head))
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.index().find(event_id)
    }

    fn read_positions(&self, positions: Range<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(positions)
    }

    fn read_versions(
        &self,
        account_id: &AccountId,
        versions: Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let runs = {
            let index = self.index();
            let (first, end) = (versions.start, versions.end);
            let positions = index
                .streams
                .get(account_id)
                .and_then(|stream| stream.positions.get(first.checked_sub(1)? as usize..end.checked_sub(1)? as usize))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "versions {first} to {} of \"{account_id}\" are not all in the log",
                        end - 1
                    ))
                })?;
            match direction {
                Direction::Forwards => index.runs(positions.iter().copied())?,
                Direction::Backwards => index.runs(positions.iter().rev().copied())?,
            }
        };
        let mut events = Vec::new();
        for run in runs {
            run.read(&mut events)?;
        }
        Ok(events)
    }
}

impl SegmentLog {
    /// Puts the writes in their files. Extending files and creating segments comes first, so
    /// that running out of space leaves the log as it was; a failure while writing data
    /// stops the log. Returns each write's file.
    fn write(&self, tail: &mut Tail, writes: &[Write], buffer: &[u8]) -> Result<Vec<Arc<File>>, StoreError> {
        let mut files: Vec<(Arc<File>, u64)> = Vec::with_capacity(writes.len());
        for write in writes {
            let needed = write.offset + write.bytes.len() as u64;
            if write.new {
                let path = self.dir.join(segment_name(write.sequence));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| io_error(&e, &format!("creating {}", path.display())))?;
                let mut zeroed = 0;
                if let Err(error) = extend(&file, &mut zeroed, needed, self.options.segment_bytes) {
                    // An empty file is no part of the log (recovery removes it), but clean up.
                    let _ = std::fs::remove_file(&path);
                    return Err(io_error(&error, &format!("extending {}", path.display())));
                }
                files.push((Arc::new(file), zeroed));
            } else {
                #[allow(
                    clippy::expect_used,
                    reason = "a write to an existing segment is only planned while one is active"
                )]
                let active = tail.active.as_mut().expect("an existing segment is the active one");
                extend(&active.file, &mut active.zeroed, needed, self.options.segment_bytes)
                    .map_err(|e| io_error(&e, &format!("extending segment {}", active.sequence)))?;
                files.push((Arc::clone(&active.file), active.zeroed));
            }
        }
        for (write, (file, _)) in writes.iter().zip(&files) {
            if let Err(error) = file.write_all_at(&buffer[write.bytes.clone()], write.offset) {
                let error = io_error(&error, &format!("writing segment {}", write.sequence));
                tail.failed = Some(format!("a write failed ({error})"));
                return Err(error);
            }
        }
        for (write, (file, zeroed)) in writes.iter().zip(&files) {
            let offset = write.offset + write.bytes.len() as u64;
            if write.new {
                if let Some(closed) = tail.active.take() {
                    tail.unsynced.push(Arc::clone(&closed.file));
                    self.start_sealing(tail, closed);
                }
                tail.directory_changed = true;
                tail.active = Some(Active {
                    sequence: write.sequence,
                    first_position: write.first_position,
                    file: Arc::clone(file),
                    offset,
                    zeroed: *zeroed,
                });
            } else if let Some(active) = tail.active.as_mut() {
                active.offset = offset;
            }
        }
        Ok(files.into_iter().map(|(file, _)| file).collect())
    }

    /// Makes written batches visible to readers, all at once.
    fn publish(
        &self,
        writes: &[Write],
        files: &[Arc<File>],
        staged: &StagedEnd,
        batches: &[AppendBatch<'_>],
        results: &[Result<Appended, StoreError>],
    ) {
        let mut index = self.index_mut();
        for (write, file) in writes.iter().zip(files) {
            if write.new {
                index.segments.push(Segment {
                    sequence: write.sequence,
                    first_position: write.first_position,
                    file: Arc::clone(file),
                    records: Vec::new(),
                    end: HEADER_LEN as u64,
                });
            }
            #[allow(
                clippy::expect_used,
                reason = "a new segment was pushed just above, or the write continues the last one"
            )]
            let segment = index.segments.last_mut().expect("a segment for the write");
            // Each write's positions follow the segment's last (so the event at
            // `first_position + i` stays at `records[i]`), and its frames follow the segment's.
            debug_assert_eq!(segment.first_position + segment.records.len() as u64, write.first_position);
            debug_assert!(write.new || segment.end <= write.offset);
            debug_assert_eq!(segment.sequence, write.sequence);
            segment.records.extend_from_slice(&write.records);
            segment.end = write.offset + write.bytes.len() as u64;
        }
        // The segment of each position written: the writes cover them in order.
        let mut spans =
            writes.iter().map(|w| (w.sequence, w.first_position, w.first_position + w.records.len() as u64)).peekable();
        for (batch, result) in batches.iter().zip(results) {
            let Ok(appended) = result else { continue };
            let stream = index.streams.entry(batch.account_id.clone()).or_default();
            // The batch was stamped right after the stream's head as readers see it.
            debug_assert_eq!(stream.positions.len() as u64 + 1, appended.first_version);
            stream.positions.extend(appended.first_position..appended.first_position + batch.events.len() as u64);
            stream.hash = staged.heads.get(batch.account_id).map_or(stream.hash, |h| h.hash);
            for (offset, new) in batch.events.iter().enumerate() {
                let position = appended.first_position + offset as u64;
                while spans.peek().is_some_and(|&(_, _, end)| position >= end) {
                    spans.next();
                }
                let span = spans.peek().copied();
                // Each id goes in at the position its record was written at, in that write's
                // segment, once.
                debug_assert!(span.is_some_and(|(_, first, end)| (first..end).contains(&position)));
                let sequence = span.map_or(0, |(sequence, _, _)| sequence);
                let previous = index.ids.insert(sequence, new.event_id, position);
                debug_assert_eq!(previous, None, "an id written twice to segment {sequence}");
            }
        }
        debug_assert_eq!(
            staged.last_position,
            writes.last().map_or(index.last_position, |w| w.first_position + w.records.len() as u64 - 1)
        );
        index.last_position = staged.last_position;
        index.last_recorded_at = staged.last_recorded_at;
    }

    /// Starts indexing the segment just closed, in the background, once the one closed before
    /// is done.
    fn start_sealing(&self, tail: &mut Tail, closed: Active) {
        self.finish_sealing(tail, true);
        let (merged, runs) = {
            let index = self.index();
            (Arc::clone(&index.ids.merged), index.ids.runs.clone())
        };
        let dir = self.dir.clone();
        let header = SegmentHeader { sequence: closed.sequence, first_position: closed.first_position };
        let spawned = std::thread::Builder::new().name("rapport-sealer".into()).spawn(move || {
            let index = seal::seal(&dir, header, &closed.file)?;
            let run = Arc::new(index.map(|i| i.ids).unwrap_or_default());
            let merged = (runs.len() + 1 >= MERGE_RUNS).then(|| {
                let mut all: Vec<&Run> = vec![&merged];
                all.extend(runs.iter().map(|r| r.as_ref()));
                all.push(&run);
                // One thread: appends are being served meanwhile.
                (Arc::new(Run::merge(&all, 1)), runs.len())
            });
            Ok(Sealed { run, merged })
        });
        match spawned {
            Ok(thread) => tail.sealing = Some(Sealing { sequence: closed.sequence, thread }),
            // Without its index the segment is read whole at the next open; its ids stay in
            // their map meanwhile.
            Err(error) => warn!(%error, sequence = closed.sequence, "could not start indexing a closed segment"),
        }
    }

    /// Puts the result of the segment being indexed in place, if it is done (or waits for it).
    fn finish_sealing(&self, tail: &mut Tail, wait: bool) {
        if !wait && !tail.sealing.as_ref().is_some_and(|s| s.thread.is_finished()) {
            return;
        }
        let Some(Sealing { sequence, thread }) = tail.sealing.take() else { return };
        match thread.join() {
            Ok(Ok(Sealed { run, merged })) => {
                let mut index = self.index_mut();
                index.ids.close(sequence, run);
                if let Some((merged, replaced)) = merged {
                    index.ids.merged = merged;
                    // The merged run holds the runs before and the new one.
                    index.ids.runs.drain(..=replaced);
                }
            }
            Ok(Err(error)) => {
                warn!(%error, sequence, "indexing a closed segment failed; it is read whole at the next open")
            }
            Err(_) => error!(sequence, "indexing a closed segment panicked"),
        }
    }
}

impl Drop for SegmentLog {
    /// Lets the segment being indexed finish, so that the next open reads its index.
    fn drop(&mut self) {
        let mut tail = self.tail();
        self.finish_sealing(&mut tail, true);
    }
}

/// Extends `file` with zeros so that its first `needed` bytes exist, in steps of
/// [`EXTEND_BYTES`] but not past `segment_bytes` unless `needed` is; `zeroed` is its length,
/// kept up to date.
fn extend(file: &File, zeroed: &mut u64, needed: u64, segment_bytes: u64) -> io::Result<()> {
    let target = (needed.div_ceil(EXTEND_BYTES) * EXTEND_BYTES).min(segment_bytes.max(needed));
    while *zeroed < target {
        let step = (target - *zeroed).min(EXTEND_BYTES);
        file.write_all_at(&ZEROS[..step as usize], *zeroed)?;
        *zeroed += step;
    }
    Ok(())
}
