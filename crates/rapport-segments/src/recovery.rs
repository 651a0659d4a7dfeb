//! Opening a log directory: reading every segment back into the [`Index`], and repairing a
//! torn tail, or refusing a log whose acknowledged events are damaged.
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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rapport_envelope::decode_envelope;
use rapport_store::{GENESIS_HASH, StoreError};

use crate::format::{FRAME_ALIGN, FrameRead, HEADER_LEN, SegmentHeader, read_frame, read_record};
use crate::index::{Index, Segment};
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

/// A segment file read whole.
struct SegmentFile {
    sequence: u64,
    path: PathBuf,
    bytes: Bytes,
}

/// Why the log stops where it does, when it is not at zeros.
struct Break {
    why: String,
}

/// Reads the log in `dir` (which exists), repairs its tail and syncs what it kept.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, StoreError> {
    let files = segment_files(dir)?;
    let mut index = Index::default();
    // The last file that holds part of the log, and where its part ends.
    let mut last: Option<(usize, SegmentHeader, usize)> = None;
    let mut broken: Option<Break> = None;
    for (file_index, file) in files.iter().enumerate() {
        let expected_sequence = last.map_or(1, |(_, header, _)| header.sequence + 1);
        let header = match SegmentHeader::decode(&file.bytes) {
            Ok(Some(header))
                if header.sequence == file.sequence
                    && header.sequence == expected_sequence
                    && header.first_position == index.last_position + 1 =>
            {
                header
            }
            Ok(Some(header)) => {
                let why = format!(
                    "it says it is segment {} from position {}, where segment {expected_sequence} from position {} \
                     should follow",
                    header.sequence,
                    header.first_position,
                    index.last_position + 1
                );
                broken = Some(Break { why: format!("{}: {why}", file.path.display()) });
                break;
            }
            Ok(None) => {
                broken = Some(Break { why: format!("{}: its header was never written", file.path.display()) });
                break;
            }
            Err(why) => {
                broken = Some(Break { why: format!("{}: {why}", file.path.display()) });
                break;
            }
        };
        let segment = Segment {
            sequence: header.sequence,
            first_position: header.first_position,
            file: Arc::new(open_file(&file.path)?),
            records: Vec::new(),
            end: HEADER_LEN as u64,
        };
        index.segments.push(segment);
        let (end, torn) = read_segment(file, &mut index)?;
        last = Some((file_index, header, end));
        if let Some(why) = torn {
            broken = Some(Break { why: format!("{} at offset {end}: {why}", file.path.display()) });
            break;
        }
    }

    // The log ends in the last file that holds part of it: the rest of that file and every
    // later file are cleared, once nothing there turns out to have been acknowledged.
    let why = broken.as_ref().map_or("the end of the log", |b| b.why.as_str());
    let (kept, end) = last.map_or((0, 0), |(file, _, end)| (file + 1, end));
    let cleared = files.iter().enumerate().skip(kept.saturating_sub(1));
    for (file_index, file) in cleared.clone() {
        let from = if file_index + 1 == kept { end } else { 0 };
        check_nothing_durable_after(file, from, index.last_position, why)?;
    }
    for (file_index, file) in cleared {
        if file_index + 1 == kept {
            zero_from(file, end)?;
        } else {
            fs::remove_file(&file.path).map_err(|e| io_error(&e, &format!("removing {}", file.path.display())))?;
        }
    }

    // What was read may be unsynced writes of a process that died: make it durable before
    // anything is served from it.
    for segment in &index.segments {
        segment.file.sync_data().map_err(|e| io_error(&e, &format!("syncing segment {}", segment.sequence)))?;
    }
    sync_directory(dir)?;

    let active = match last {
        Some((file_index, header, end)) => {
            let file = Arc::clone(&index.segments.last().expect("a segment for the last file").file);
            let zeroed = file
                .metadata()
                .map_err(|e| io_error(&e, &format!("reading the size of {}", files[file_index].path.display())))?
                .len();
            Some(Active { sequence: header.sequence, file, offset: end as u64, zeroed })
        }
        None => None,
    };
    Ok(Recovered { index, active })
}

/// The segment files in `dir`, read whole, in sequence order. Anything else in the directory
/// but the lock file means it is not (only) a Rapport log.
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
        let sequence = name
            .strip_prefix(SEGMENT_PREFIX)
            .filter(|digits| digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "{} holds {name}, which is not part of a Rapport log; give the log a directory of its own",
                    dir.display()
                ))
            })?;
        let path = entry.path();
        let bytes = fs::read(&path).map_err(|e| io_error(&e, &format!("reading {}", path.display())))?;
        files.push(SegmentFile { sequence, path, bytes: Bytes::from(bytes) });
    }
    files.sort_by_key(|f| f.sequence);
    Ok(files)
}

/// Reads the frames of a segment whose header holds, adding its events to `index`. Returns
/// where its intact frames end and, if they end at something other than zeros, what.
fn read_segment(file: &SegmentFile, index: &mut Index) -> Result<(usize, Option<String>), StoreError> {
    let mut at = HEADER_LEN;
    loop {
        let frame = match read_frame(&file.bytes, at) {
            FrameRead::Frame(frame) => frame,
            FrameRead::End => return Ok((at, None)),
            FrameRead::Broken(why) => return Ok((at, Some(why))),
        };
        for &offset in &frame.records {
            add_record(file, offset, index)?;
        }
        at = frame.next;
    }
}

/// Adds the record at `offset` (in an intact frame) to the index, checking that it is the
/// next event of the log and of its stream.
fn add_record(file: &SegmentFile, offset: usize, index: &mut Index) -> Result<(), StoreError> {
    let position = index.last_position + 1;
    let (envelope, end) = read_record(&file.bytes, offset).map_err(|why| {
        StoreError::Corrupt(format!("the record of position {position} in {} {why}", file.path.display()))
    })?;
    // The frame's checksum held, so these bytes were written as they are: an envelope that
    // does not fit is damage the checksum could not see, or another program's doing.
    let event = decode_envelope(position, file.bytes.slice(envelope))?;
    let stream = index.streams.entry(event.account_id.clone()).or_default();
    let expected_version = stream.positions.len() as u64 + 1;
    let prev_hash = if stream.positions.is_empty() { GENESIS_HASH } else { stream.hash };
    let inconsistent = |what: String| {
        StoreError::Corrupt(format!("the event at position {position} in {} {what}", file.path.display()))
    };
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
    if let Some(earlier) = index.ids.insert(event.event_id, position) {
        return Err(inconsistent(format!("has the id {} of the event at position {earlier}", event.event_id)));
    }
    stream.positions.push(position);
    stream.hash = event.hash;
    let segment = index.segments.last_mut().expect("the segment being read is indexed");
    segment.records.push(offset as u32);
    segment.end = end as u64;
    index.last_position = position;
    index.last_recorded_at = Some(event.recorded_at);
    Ok(())
}

/// Fails if any intact frame at or after `from` in `file` was written when the log was
/// durable beyond `last_position`: then the break before it lost acknowledged events.
fn check_nothing_durable_after(
    file: &SegmentFile,
    from: usize,
    last_position: u64,
    why: &str,
) -> Result<(), StoreError> {
    let start = from.div_ceil(FRAME_ALIGN) * FRAME_ALIGN;
    for at in (start..file.bytes.len()).step_by(FRAME_ALIGN) {
        if let FrameRead::Frame(frame) = read_frame(&file.bytes, at)
            && frame.durable > last_position
        {
            return Err(StoreError::Corrupt(format!(
                "the log breaks after position {last_position} ({why}), but a frame at offset {at} of {} was \
                 written when the log was durable through position {}: acknowledged events are missing or \
                 damaged; keep the directory for investigation and restore it from a backup",
                file.path.display(),
                frame.durable
            )));
        }
    }
    Ok(())
}

/// Overwrites with zeros whatever is not zero from `from` to the end of `file`, and syncs it.
fn zero_from(file: &SegmentFile, from: usize) -> Result<(), StoreError> {
    const CHUNK: usize = 1 << 20;
    let handle = open_file(&file.path)?;
    let mut at = from;
    while at < file.bytes.len() {
        let end = (at + CHUNK).min(file.bytes.len());
        if file.bytes[at..end].iter().any(|&b| b != 0) {
            handle
                .write_all_at(&vec![0u8; end - at], at as u64)
                .map_err(|e| io_error(&e, &format!("clearing the torn tail of {}", file.path.display())))?;
        }
        at = end;
    }
    handle.sync_data().map_err(|e| io_error(&e, &format!("syncing {}", file.path.display())))
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
