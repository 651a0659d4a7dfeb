//! What the log keeps in memory to find its events: where each record lies in which segment
//! file, each stream's positions and head hash, each event id's position (`ids.rs`).
//! Everything here is rebuilt at open from the segment files and their index files; the
//! segment files are the truth.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Timestamp};

use crate::ids::Ids;
use rapport_envelope::decode_envelope;
use rapport_store::{Hash, StoreError, StoredEvent, StreamHead};

use crate::format::read_record;

/// Reads of consecutive records are split so that no single read is larger than this.
const MAX_READ_BYTES: u64 = 4 << 20;

/// The log as readers see it: every published event, and nothing of a write in progress.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// The position of the last event (0: empty).
    pub last_position: u64,
    /// The recording time of the last event (`None`: empty).
    pub last_recorded_at: Option<Timestamp>,
    /// The segments in order, the last one being written.
    pub segments: Vec<Segment>,
    /// Every stream, by account.
    pub streams: HashMap<AccountId, Stream>,
    /// Every event id, with its position.
    pub ids: Ids,
}

/// One segment file's records.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Its number, as in its file name.
    pub sequence: u64,
    /// The position of its first event.
    pub first_position: u64,
    /// The file, for positional reads.
    pub file: Arc<File>,
    /// The offset of each record in the file: the event at `first_position + i` is at
    /// `records[i]`. Segments are smaller than 4 GiB.
    pub records: Vec<u32>,
    /// Where its frames end: the last record, and at most its frame's padding.
    pub end: u64,
}

/// One account's stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stream {
    /// The position of each version: version v is at `positions[v - 1]`.
    pub positions: Vec<u64>,
    /// The hash of the last event.
    pub hash: Hash,
}

impl Stream {
    pub(crate) fn head(&self) -> Option<StreamHead> {
        let position = *self.positions.last()?;
        Some(StreamHead { version: self.positions.len() as u64, position, hash: self.hash })
    }
}

/// Consecutive records of one file, read with one positional read.
pub(crate) struct Run {
    file: Arc<File>,
    sequence: u64,
    first_position: u64,
    /// The offset of each record.
    offsets: Vec<u64>,
    /// Bytes to read: from the first record to the end of the last (or a little past it).
    span: Range<u64>,
}

impl Index {
    /// The event with this id, if the log holds it.
    pub(crate) fn find(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        for position in self.ids.candidates(event_id) {
            if let Some(event) = self.read([position])?.pop().filter(|e| &e.event_id == event_id) {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// The events at `positions` (each held by the log), in that order.
    pub(crate) fn read(&self, positions: impl IntoIterator<Item = u64>) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::new();
        for run in self.runs(positions)? {
            run.read(&mut events)?;
        }
        Ok(events)
    }

    /// The segment holding `position`, if the log holds it.
    fn segment_of(&self, position: u64) -> Option<&Segment> {
        if position == 0 || position > self.last_position {
            return None;
        }
        let after = self.segments.partition_point(|s| s.first_position <= position);
        self.segments.get(after.checked_sub(1)?)
    }

    /// Plans the reads of the events at `positions` (each held by the log): consecutive ones
    /// in the same segment share a read.
    pub(crate) fn runs(&self, positions: impl IntoIterator<Item = u64>) -> Result<Vec<Run>, StoreError> {
        let mut runs: Vec<Run> = Vec::new();
        for position in positions {
            let segment = self
                .segment_of(position)
                .ok_or_else(|| StoreError::Corrupt(format!("position {position} is indexed but not in a segment")))?;
            let index = (position - segment.first_position) as usize;
            let offset = u64::from(segment.records[index]);
            let end = segment.records.get(index + 1).map_or(segment.end, |&next| u64::from(next));
            // Records lie inside their segment's frames, in position order.
            debug_assert!(crate::format::HEADER_LEN as u64 <= offset && offset < end && end <= segment.end);
            match runs.last_mut() {
                Some(run)
                    if run.sequence == segment.sequence
                        && run.first_position + run.offsets.len() as u64 == position
                        && end - run.span.start <= MAX_READ_BYTES =>
                {
                    debug_assert!(run.offsets.last().is_some_and(|&last| last < offset));
                    run.offsets.push(offset);
                    run.span.end = end;
                }
                _ => runs.push(Run {
                    file: Arc::clone(&segment.file),
                    sequence: segment.sequence,
                    first_position: position,
                    offsets: vec![offset],
                    span: offset..end,
                }),
            }
        }
        Ok(runs)
    }
}

impl Run {
    /// Reads the run's events from its file, checking each record's checksum and envelope.
    pub(crate) fn read(self, events: &mut Vec<StoredEvent>) -> Result<(), StoreError> {
        let mut buffer = vec![0u8; (self.span.end - self.span.start) as usize];
        self.file.read_exact_at(&mut buffer, self.span.start).map_err(|e| {
            let what = format!("reading segment {} at offset {}", self.sequence, self.span.start);
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt(format!("{what}: the file is shorter than its records; restore the data directory"))
            } else {
                crate::io_error(&e, &what)
            }
        })?;
        let bytes = Bytes::from(buffer);
        for (index, &offset) in self.offsets.iter().enumerate() {
            let position = self.first_position + index as u64;
            let at = (offset - self.span.start) as usize;
            let (envelope, _) = read_record(&bytes, at).map_err(|why| {
                StoreError::Corrupt(format!(
                    "the record of position {position} (segment {}, offset {offset}) {why}",
                    self.sequence
                ))
            })?;
            events.push(decode_envelope(position, bytes.slice(envelope))?);
        }
        Ok(())
    }
}
