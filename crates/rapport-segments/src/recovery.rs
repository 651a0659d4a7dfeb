//! Opening a log directory: reading every segment back into the [`Index`] (a closed segment
//! through its index file, when it has one that holds), and repairing a torn tail, or
//! refusing a log whose acknowledged events are damaged.
//!
//! The log is the longest run of intact frames from the first segment on, each segment
//! starting where the one before ended. Whatever follows that run (a frame cut short by a
//! crash, frames that reached the disk out of order, a segment whose header never did) was
//! written after the last sync, so no one was told it is there: recovery zeroes it (or removes
//! its files) so that later writes can never be followed by stale frames. Unless a frame
//! past the break says that, when it was written, the log was durable beyond the break: then
//! acknowledged events are missing or damaged, and the log is refused as corrupt rather than
//! cut.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rapport_domain::{AccountId, Limits};
use rapport_store::{GENESIS_HASH, StoreError};

use crate::format::{FRAME_ALIGN, FrameRead, HEADER_LEN, SegmentHeader, read_frame};
use crate::ids::{Run, id_key};
use crate::index::{Index, Segment};
use crate::seal::{INDEX_SUFFIX, PARTIAL_SUFFIX, Scan, SegmentIndex, read_index, scan};
use crate::{Active, io_error};

/// The prefix of every segment file's name; the sequence number follows, in 12 digits.
pub(crate) const SEGMENT_PREFIX: &str = "segment-";
/// The file whose lock says a process has the log open.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The name of segment `sequence`'s file.
pub(crate) fn segment_name(sequence: u64) -> String {
    format!("{SEGMENT_PREFIX}{sequence:012}")
}

/// What opening a directory found.
pub(crate) struct Recovered {
    pub index: Index,
    /// The last segment, to append to; `None` if the log is empty.
    pub active: Option<Active>,
}

/// A segment file of the directory.
struct SegmentFile {
    sequence: u64,
    path: PathBuf,
}

impl SegmentFile {
    fn read(&self) -> Result<Vec<u8>, StoreError> {
        fs::read(&self.path).map_err(|e| io_error(&e, &format!("reading {}", self.path.display())))
    }

    fn header(&self) -> Result<Result<Option<SegmentHeader>, String>, StoreError> {
        let mut bytes = Vec::with_capacity(HEADER_LEN);
        File::open(&self.path)
            .and_then(|file| file.take(HEADER_LEN as u64).read_to_end(&mut bytes))
            .map_err(|e| io_error(&e, &format!("reading {}", self.path.display())))?;
        Ok(SegmentHeader::decode(&bytes))
    }
}

/// Reads the log in `dir` (which exists), repairs its tail and syncs what it kept.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, StoreError> {
    let files = segment_files(dir)?;
    let mut index = Index::default();
    // The id runs of closed segments, merged into one once all are read.
    let mut loaded: Vec<Run> = Vec::new();
    // The last segment that holds part of the log, its bytes (when it was read whole) and
    // where its part ends.
    let mut last: Option<(usize, SegmentHeader, Option<Vec<u8>>, usize)> = None;
    let mut broken: Option<String> = None;
    let mut index_files = IndexFiles::new(dir, &files);
    for (file_index, file) in files.iter().enumerate() {
        let expected_sequence = last.as_ref().map_or(1, |(_, header, _, _)| header.sequence + 1);
        let name = file.path.display();
        let header = match file.header()? {
            Ok(Some(header))
                if header.sequence == file.sequence
                    && header.sequence == expected_sequence
                    && header.first_position == index.last_position + 1 =>
            {
                header
            }
            Ok(Some(header)) => {
                broken = Some(format!(
                    "{name}: it says it is segment {} from position {}, where segment {expected_sequence} from \
                     position {} should follow",
                    header.sequence,
                    header.first_position,
                    index.last_position + 1
                ));
                break;
            }
            Ok(None) => {
                broken = Some(format!("{name}: its header was never written"));
                break;
            }
            Err(why) => {
                broken = Some(format!("{name}: {why}"));
                break;
            }
        };
        let handle = Arc::new(open_file(&file.path)?);
        let closed = file_index + 1 < files.len();
        if closed
            && let Some(segment_index) = index_files.take(file_index).filter(|i| i.header == header && fits(&handle, i))
        {
            let end = segment_index.end as usize;
            add_index(&mut index, &mut loaded, handle, segment_index)?;
            last = Some((file_index, header, None, end));
            continue;
        }
        let bytes = file.read()?;
        let name = name.to_string();
        let scanned = scan(&bytes, header.first_position)?;
        add_scan(&mut index, header, handle, &scanned, &name)?;
        let (end, torn) = (scanned.end, scanned.torn.clone());
        if closed && torn.is_none() {
            // Its ids join the closed segments' runs.
            if let Some(pos) = index.ids.open.iter().position(|(sequence, _)| *sequence == header.sequence) {
                let (_, map) = index.ids.open.remove(pos);
                loaded.push(Run::sorted(map.into_iter().map(|(id, position)| (id_key(&id), position)).collect()));
            }
            // Next time, this closed segment is read through its index; which must describe
            // only what is on the disk (what was read may be a dead process's unsynced writes).
            if let Some(segment_index) = SegmentIndex::from_scan(header, &scanned)? {
                #[allow(clippy::expect_used, reason = "the segment just scanned was pushed to the index")]
                let segment = index.segments.last().expect("the segment just read");
                segment.file.sync_data().map_err(|e| io_error(&e, &format!("syncing {name}")))?;
                segment_index.write(dir)?;
            }
        }
        drop(scanned);
        last = Some((file_index, header, Some(bytes), end));
        if let Some(why) = torn {
            broken = Some(format!("{name} at offset {end}: {why}"));
            break;
        }
    }
    drop(index_files);
    let runs: Vec<&Run> = loaded.iter().collect();
    index.ids.merged = Arc::new(Run::merge(&runs, threads()));
    drop(runs);
    drop(loaded);
    check_unique_ids(&index)?;

    // The log ends in the last segment that holds part of it: the rest of that segment and
    // every later file are cleared, once nothing there turns out to have been acknowledged.
    let why = broken.as_deref().unwrap_or("the end of the log");
    let kept = last.as_ref().map_or(0, |(file_index, ..)| file_index + 1);
    if let Some((file_index, _, bytes, end)) = &mut last {
        let bytes = match bytes.take() {
            Some(bytes) => bytes,
            None => files[*file_index].read()?,
        };
        check_nothing_durable_after(&files[*file_index].path, &bytes, *end, index.last_position, why)?;
        zero_from(&files[*file_index].path, &bytes, *end)?;
        // It is the segment written next: an index of it from when it was closed in an earlier
        // life would not describe what it will hold.
        remove_if_present(&crate::seal::index_path(dir, files[*file_index].sequence))?;
    }
    for file in &files[kept..] {
        check_nothing_durable_after(&file.path, &file.read()?, 0, index.last_position, why)?;
    }
    for file in &files[kept..] {
        remove_if_present(&file.path)?;
        remove_if_present(&crate::seal::index_path(dir, file.sequence))?;
    }

    // What was read may be unsynced writes of a process that died: make it durable before
    // anything is served from it.
    for segment in &index.segments {
        segment.file.sync_data().map_err(|e| io_error(&e, &format!("syncing segment {}", segment.sequence)))?;
    }
    sync_directory(dir)?;

    let active = match &last {
        Some((_, header, _, end)) => {
            #[allow(clippy::expect_used, reason = "`last` is set only after its segment is indexed")]
            let file = Arc::clone(&index.segments.last().expect("a segment for the last file").file);
            let zeroed = file.metadata().map_err(|e| io_error(&e, "reading the size of the last segment"))?.len();
            Some(Active {
                sequence: header.sequence,
                first_position: header.first_position,
                file,
                offset: *end as u64,
                zeroed,
            })
        }
        None => None,
    };
    Ok(Recovered { index, active })
}

/// The index files of a log's closed segments (all but the last file), read and decoded a
/// few at a time on several threads ahead of their turn: at ten million events they are a
/// few hundred megabytes, and copying them out is most of the work of opening.
struct IndexFiles<'a> {
    dir: &'a Path,
    files: &'a [SegmentFile],
    /// Decoded indexes of the files from `next - ready.len()` on (`None`: none that decodes).
    ready: std::collections::VecDeque<Option<SegmentIndex>>,
    next: usize,
    /// One read buffer a thread, reused from file to file.
    buffers: Vec<Vec<u8>>,
}

impl<'a> IndexFiles<'a> {
    fn new(dir: &'a Path, files: &'a [SegmentFile]) -> IndexFiles<'a> {
        IndexFiles { dir, files, ready: Default::default(), next: 0, buffers: vec![Vec::new(); threads()] }
    }

    /// The decoded index of `files[file_index]`, a closed segment; called for each in order.
    fn take(&mut self, file_index: usize) -> Option<SegmentIndex> {
        if self.ready.is_empty() {
            // Four files a thread at a time: enough to keep them busy, few held in memory.
            let closed = self.files.len().saturating_sub(1);
            let batch = &self.files[file_index..(file_index + 4 * self.buffers.len()).min(closed).max(file_index)];
            let threads = self.buffers.len();
            let mut decoded: Vec<Vec<Option<SegmentIndex>>> = Vec::new();
            std::thread::scope(|scope| {
                let workers: Vec<_> = self
                    .buffers
                    .iter_mut()
                    .enumerate()
                    .map(|(thread, buffer)| {
                        let dir = self.dir;
                        scope.spawn(move || {
                            let mine = batch.iter().skip(thread).step_by(threads);
                            mine.map(|file| read_index(dir, file.sequence, buffer)).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                // A thread that panicked leaves its files to be read whole.
                decoded = workers.into_iter().map(|w| w.join().unwrap_or_default()).collect();
            });
            let mut decoded: Vec<_> = decoded.into_iter().map(Vec::into_iter).collect();
            for at in 0..batch.len() {
                self.ready.push_back(decoded[at % threads].next().flatten());
            }
            self.next = file_index + batch.len();
        }
        debug_assert_eq!(self.next - self.ready.len(), file_index);
        self.ready.pop_front().flatten()
    }
}

/// How many threads opening a log reads and merges on: nothing else runs until it is open
/// (past eight, memory bandwidth, not threads, is what is short).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// Whether the segment file is long enough for what its index says it holds.
fn fits(file: &File, index: &SegmentIndex) -> bool {
    file.metadata().is_ok_and(|m| m.len() >= index.end)
}

/// The segment files in `dir`, in sequence order. Partial index files (a crash while one was
/// written) are removed; anything else but index files and the lock file means the directory
/// is not (only) a Rapport log.
fn segment_files(dir: &Path) -> Result<Vec<SegmentFile>, StoreError> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| io_error(&e, &format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&e, &format!("listing {}", dir.display())))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == LOCK_FILE {
            continue;
        }
        let (stem, suffix) = match name.find('.') {
            Some(dot) => name.split_at(dot),
            None => (name.as_ref(), ""),
        };
        let sequence = stem
            .strip_prefix(SEGMENT_PREFIX)
            .filter(|digits| digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok());
        match (sequence, suffix) {
            (Some(sequence), "") => files.push(SegmentFile { sequence, path: entry.path() }),
            (Some(_), INDEX_SUFFIX) => {}
            (Some(_), suffix) if suffix == format!("{INDEX_SUFFIX}{PARTIAL_SUFFIX}") => {
                fs::remove_file(entry.path())
                    .map_err(|e| io_error(&e, &format!("removing {}", entry.path().display())))?;
            }
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "{} holds {name}, which is not part of a Rapport log; give the log a directory of its own",
                    dir.display()
                )));
            }
        }
    }
    files.sort_by_key(|f| f.sequence);
    Ok(files)
}

/// Adds a closed segment read through its index file; its ids go to `loaded`.
fn add_index(
    index: &mut Index,
    loaded: &mut Vec<Run>,
    file: Arc<File>,
    segment: SegmentIndex,
) -> Result<(), StoreError> {
    let SegmentIndex { header, end, last_recorded_at, records, ids, streams } = segment;
    let count = records.len() as u64;
    let inconsistent = |what: String| {
        StoreError::Corrupt(format!(
            "the index of segment {} {what}; remove it (segment-{:012}.index) to have it made again from the segment",
            header.sequence, header.sequence
        ))
    };
    if ids.len() as u64 != count || streams.iter().map(|s| s.positions.len() as u64).sum::<u64>() != count {
        return Err(inconsistent("does not account for every record".into()));
    }
    for part in streams {
        let stream = index.streams.entry(part.account_id.clone()).or_default();
        if part.first_version != stream.positions.len() as u64 + 1 {
            return Err(inconsistent(format!(
                "starts \"{}\" at version {}, which is at version {}",
                part.account_id,
                part.first_version,
                stream.positions.len()
            )));
        }
        stream.positions.extend_from_slice(&part.positions);
        stream.hash = part.hash;
    }
    index.segments.push(Segment {
        sequence: header.sequence,
        first_position: header.first_position,
        file,
        records,
        end,
    });
    loaded.push(ids);
    index.last_position = header.first_position + count - 1;
    index.last_recorded_at = Some(last_recorded_at);
    Ok(())
}

/// Adds a segment read whole, checking that each event is the next of the log and of its
/// stream, chained to its stream's head, with an id not seen before in the segment (ids of
/// different segments are checked once all are read: [`check_unique_ids`]).
fn add_scan(
    index: &mut Index,
    header: SegmentHeader,
    file: Arc<File>,
    scanned: &Scan<'_>,
    name: &str,
) -> Result<(), StoreError> {
    index.segments.push(Segment {
        sequence: header.sequence,
        first_position: header.first_position,
        file,
        records: Vec::with_capacity(scanned.records.len()),
        end: HEADER_LEN as u64,
    });
    for (event, &offset) in scanned.events.iter().zip(&scanned.records) {
        let position = event.position;
        let inconsistent =
            |what: String| StoreError::Corrupt(format!("the event at position {position} in {name} {what}"));
        let account_id = AccountId::parse(event.account_id, &Limits::for_recorded_events())
            .map_err(|e| inconsistent(format!("has an invalid account id: {e}")))?;
        let stream = index.streams.entry(account_id).or_default();
        let expected_version = stream.positions.len() as u64 + 1;
        let prev_hash = if stream.positions.is_empty() { GENESIS_HASH } else { stream.hash };
        if event.version != expected_version {
            return Err(inconsistent(format!(
                "is version {} of \"{}\", which is at version {}",
                event.version,
                event.account_id,
                expected_version - 1
            )));
        }
        if event.prev_hash != prev_hash {
            return Err(inconsistent(format!(
                "does not chain to version {} of \"{}\"",
                expected_version - 1,
                event.account_id
            )));
        }
        stream.positions.push(position);
        stream.hash = event.hash;
        if let Some(earlier) = index.ids.insert(header.sequence, event.event_id, position) {
            return Err(inconsistent(format!("has the id {} of the event at position {earlier}", event.event_id)));
        }
        #[allow(clippy::expect_used, reason = "a segment is indexed before its records are read")]
        let segment = index.segments.last_mut().expect("the segment being read is indexed");
        segment.records.push(offset);
        segment.end = scanned.end as u64;
        index.last_position = position;
        index.last_recorded_at = Some(event.recorded_at);
    }
    Ok(())
}

/// Fails if two events of the log share an id: within the segment being written its map
/// would have said so already (see [`add_scan`]); across closed segments equal keys sit side
/// by side in the merged run; the segment being written is looked up in it.
fn check_unique_ids(index: &Index) -> Result<(), StoreError> {
    let pairs = &index.ids.merged.pairs;
    let mut suspects: Vec<(u64, u64)> = Vec::new();
    for window in pairs.windows(2) {
        if window[0].0 == window[1].0 {
            suspects.push((window[0].1, window[1].1));
        }
    }
    for (_, map) in &index.ids.open {
        for (id, &position) in map {
            let mut found = Vec::new();
            index.ids.merged.find(id_key(id), &mut found);
            suspects.extend(found.into_iter().map(|other| (other, position)));
        }
    }
    for (a, b) in suspects {
        let events = index.read([a, b])?;
        if let [first, second] = events.as_slice()
            && first.event_id == second.event_id
        {
            return Err(StoreError::Corrupt(format!(
                "the events at positions {a} and {b} share the id {}; restore the data directory",
                first.event_id
            )));
        }
    }
    Ok(())
}

/// Fails if any intact frame at or after `from` in `bytes` (the file at `path`) was written
/// when the log was durable beyond `last_position`: then the break before it lost
/// acknowledged events.
fn check_nothing_durable_after(
    path: &Path,
    bytes: &[u8],
    from: usize,
    last_position: u64,
    why: &str,
) -> Result<(), StoreError> {
    let start = from.div_ceil(FRAME_ALIGN) * FRAME_ALIGN;
    for at in (start..bytes.len()).step_by(FRAME_ALIGN) {
        if let FrameRead::Frame(frame) = read_frame(bytes, at)
            && frame.durable > last_position
        {
            return Err(StoreError::Corrupt(format!(
                "the log breaks after position {last_position} ({why}), but a frame at offset {at} of {} was \
                 written when the log was durable through position {}: acknowledged events are missing or \
                 damaged; keep the directory for investigation and restore it from a backup",
                path.display(),
                frame.durable
            )));
        }
    }
    Ok(())
}

/// Overwrites with zeros whatever is not zero in `bytes` (the file at `path`) from `from` to
/// the end, and syncs the file.
fn zero_from(path: &Path, bytes: &[u8], from: usize) -> Result<(), StoreError> {
    const CHUNK: usize = 1 << 20;
    let handle = open_file(path)?;
    let mut at = from;
    while at < bytes.len() {
        let end = (at + CHUNK).min(bytes.len());
        if bytes[at..end].iter().any(|&b| b != 0) {
            handle
                .write_all_at(&vec![0u8; end - at], at as u64)
                .map_err(|e| io_error(&e, &format!("clearing the torn tail of {}", path.display())))?;
        }
        at = end;
    }
    handle.sync_data().map_err(|e| io_error(&e, &format!("syncing {}", path.display())))
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error(&e, &format!("removing {}", path.display())))
        }
        _ => Ok(()),
    }
}

pub(crate) fn open_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(&e, &format!("opening {}", path.display())))
}

pub(crate) fn sync_directory(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(&e, &format!("syncing the directory {}", dir.display())))
}
