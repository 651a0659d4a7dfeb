//! A closed segment's index file (`segment-NNNNNNNNNNNN.index`): what a scan of the segment
//! gives (where each record is, the sorted run of its ids, the part of each stream it holds),
//! so that opening the log reads a few bytes per event instead of the segment, and builds no
//! hash map of ids. It is made from the segment itself, by the same scan recovery does, once
//! the segment is closed, and it is only a cache: a missing or damaged one is made again from
//! the segment.
//!
//! ```text
//! index   = magic "rapport index\0\0\0" (16) | format u32 | reserved u32 | sequence u64
//!           | first position u64 | records u64 | end u64 | last recorded at i64 | streams u64
//!           | record offset u32 × records | (id key u64, position u64) × records, by key
//!           | stream × streams | crc32c of everything before u32
//! stream  = account length u32 | account | first version u64 | events u64 | last hash (32)
//!           | position u64 × events
//! ```

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use rapport_domain::{AccountId, Limits, Timestamp};
use rapport_envelope::{Summary, decode_summary};
use rapport_store::{Hash, StoreError};

use crate::format::{FrameRead, HEADER_LEN, SegmentHeader, read_frame};
use crate::ids::{Run, id_key};
use crate::io_error;
use crate::recovery::sync_directory;

const MAGIC: &[u8; 16] = b"rapport index\0\0\0";
const INDEX_FORMAT: u32 = 1;
/// The suffix of an index file's name, after its segment's.
pub(crate) const INDEX_SUFFIX: &str = ".index";
/// The suffix of an index file being written.
pub(crate) const PARTIAL_SUFFIX: &str = ".partial";

/// What a scan of one segment found.
pub(crate) struct Scan<'a> {
    /// Each record's offset.
    pub records: Vec<u32>,
    /// Each event's summary, in position order.
    pub events: Vec<Summary<'a>>,
    /// Where the intact frames end.
    pub end: usize,
    /// What follows them, if not zeros.
    pub torn: Option<String>,
}

/// Reads the frames of the segment in `bytes`, whose first event is at `first_position`.
pub(crate) fn scan<'a>(bytes: &'a [u8], first_position: u64) -> Result<Scan<'a>, StoreError> {
    let mut scan = Scan { records: Vec::new(), events: Vec::new(), end: HEADER_LEN, torn: None };
    loop {
        let frame = match read_frame(bytes, scan.end) {
            FrameRead::Frame(frame) => frame,
            FrameRead::End => return Ok(scan),
            FrameRead::Broken(why) => {
                scan.torn = Some(why);
                return Ok(scan);
            }
        };
        for (offset, envelope) in frame.records {
            let position = first_position + scan.events.len() as u64;
            // The frame's checksums held, so these bytes were written as they are: an envelope
            // that does not fit is damage the checksums could not see, or another program's.
            scan.events.push(decode_summary(position, &bytes[envelope])?);
            scan.records.push(offset as u32);
        }
        scan.end = frame.next;
    }
}

/// The part of one stream a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamPart {
    pub account_id: AccountId,
    pub first_version: u64,
    pub positions: Vec<u64>,
    /// The hash of the last of them.
    pub hash: Hash,
}

/// A closed segment's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    pub header: SegmentHeader,
    /// Where its frames end.
    pub end: u64,
    pub last_recorded_at: Timestamp,
    pub records: Vec<u32>,
    pub ids: Run,
    /// In the order of each stream's first event in the segment.
    pub streams: Vec<StreamPart>,
}

impl SegmentIndex {
    /// The index of a segment from its scan; `None` if it holds no event.
    pub(crate) fn from_scan(header: SegmentHeader, scan: &Scan<'_>) -> Result<Option<SegmentIndex>, StoreError> {
        let Some(last) = scan.events.last() else { return Ok(None) };
        let mut streams: Vec<StreamPart> = Vec::new();
        let mut by_account: HashMap<&str, usize> = HashMap::new();
        for event in &scan.events {
            match by_account.get(event.account_id) {
                Some(&index) => {
                    let part = &mut streams[index];
                    part.positions.push(event.position);
                    part.hash = event.hash;
                }
                None => {
                    let account_id = AccountId::parse(event.account_id, &Limits::for_recorded_events())
                        .map_err(|e| StoreError::Corrupt(format!("the event at {}: {e}", event.position)))?;
                    by_account.insert(event.account_id, streams.len());
                    streams.push(StreamPart {
                        account_id,
                        first_version: event.version,
                        positions: vec![event.position],
                        hash: event.hash,
                    });
                }
            }
        }
        let ids = Run::sorted(scan.events.iter().map(|e| (id_key(&e.event_id), e.position)).collect());
        Ok(Some(SegmentIndex {
            header,
            end: scan.end as u64,
            last_recorded_at: last.recorded_at,
            records: scan.records.clone(),
            ids,
            streams,
        }))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let count = self.records.len();
        let mut bytes = Vec::with_capacity(80 + count * 28 + self.streams.len() * 64 + 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&INDEX_FORMAT.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        for word in [self.header.sequence, self.header.first_position, count as u64, self.end] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(&self.last_recorded_at.unix_nanos().to_le_bytes());
        bytes.extend_from_slice(&(self.streams.len() as u64).to_le_bytes());
        for offset in &self.records {
            bytes.extend_from_slice(&offset.to_le_bytes());
        }
        for (key, position) in &self.ids.pairs {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&position.to_le_bytes());
        }
        for stream in &self.streams {
            let account = stream.account_id.as_str().as_bytes();
            bytes.extend_from_slice(&(account.len() as u32).to_le_bytes());
            bytes.extend_from_slice(account);
            bytes.extend_from_slice(&stream.first_version.to_le_bytes());
            bytes.extend_from_slice(&(stream.positions.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&stream.hash);
            for position in &stream.positions {
                bytes.extend_from_slice(&position.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// The index in `bytes`, or what is wrong with them.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentIndex, String> {
        let (body, crc) = bytes.split_at_checked(bytes.len().saturating_sub(4)).ok_or("it is empty")?;
        if bytes.len() < 4 || crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().map_err(|_| "no checksum")?) {
            return Err("it fails its checksum".into());
        }
        let mut reader = Reader { bytes: body, at: 0 };
        if reader.take(16)? != MAGIC {
            return Err("it does not start like a Rapport segment index".into());
        }
        let format = reader.u32()?;
        if format != INDEX_FORMAT {
            return Err(format!("it is in index format {format}; this build reads format {INDEX_FORMAT}"));
        }
        reader.u32()?;
        let header = SegmentHeader { sequence: reader.u64()?, first_position: reader.u64()? };
        let count = usize::try_from(reader.u64()?).map_err(|_| "too many records")?;
        let end = reader.u64()?;
        let last_recorded_at = Timestamp::from_unix_nanos(reader.u64()? as i64);
        let n_streams = reader.u64()?;
        let records = reader.u32s(count)?;
        let pairs = reader.pairs(count)?;
        // Each part holds at least one of the records read.
        let mut streams = Vec::with_capacity(n_streams.min(count as u64) as usize);
        for _ in 0..n_streams {
            let len = reader.u32()? as usize;
            let account = std::str::from_utf8(reader.take(len)?).map_err(|_| "an account id is not UTF-8")?;
            let account_id = AccountId::parse(account, &Limits::for_recorded_events()).map_err(|e| e.to_string())?;
            let first_version = reader.u64()?;
            let events = usize::try_from(reader.u64()?).map_err(|_| "too many events")?;
            let hash: Hash = reader.take(32)?.try_into().map_err(|_| "a hash is cut short")?;
            let positions = reader.u64s(events)?;
            streams.push(StreamPart { account_id, first_version, positions, hash });
        }
        if reader.at != body.len() {
            return Err(format!("{} bytes follow its last stream", body.len() - reader.at));
        }
        Ok(SegmentIndex { header, end, last_recorded_at, records, ids: Run { pairs }, streams })
    }

    /// Writes the index beside its segment in `dir`, durably: a partial file, synced, renamed.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let path = index_path(dir, self.header.sequence);
        let partial = path.with_extension(&PARTIAL_SUFFIX[1..]);
        let doing = |what: &str| format!("{what} {}", partial.display());
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| io_error(&e, &doing("creating")))?;
        file.write_all(&self.encode()).map_err(|e| io_error(&e, &doing("writing")))?;
        file.sync_data().map_err(|e| io_error(&e, &doing("syncing")))?;
        fs::rename(&partial, &path).map_err(|e| io_error(&e, &doing("renaming")))?;
        sync_directory(dir)
    }
}

/// The path of segment `sequence`'s index file in `dir`.
pub(crate) fn index_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{}{INDEX_SUFFIX}", crate::recovery::segment_name(sequence)))
}

/// Reads the index file of segment `sequence` in `dir` into `buffer` and decodes it, if
/// there is one that decodes (whether it is the segment's is the caller's to check).
pub(crate) fn read_index(dir: &Path, sequence: u64, buffer: &mut Vec<u8>) -> Option<SegmentIndex> {
    buffer.clear();
    File::open(index_path(dir, sequence)).and_then(|mut file| file.read_to_end(buffer)).ok()?;
    SegmentIndex::decode(buffer).ok()
}

/// Makes the closed segment `header` names in `dir` durable, reads it and writes its index
/// file. (Durable first: an index must describe only what the disk holds.)
pub(crate) fn seal(dir: &Path, header: SegmentHeader, file: &File) -> Result<Option<SegmentIndex>, StoreError> {
    let path = dir.join(crate::recovery::segment_name(header.sequence));
    file.sync_data().map_err(|e| io_error(&e, &format!("syncing {}", path.display())))?;
    let bytes = fs::read(&path).map_err(|e| io_error(&e, &format!("reading {}", path.display())))?;
    let name = path.display().to_string();
    let scanned = scan(&bytes, header.first_position)?;
    if let Some(why) = &scanned.torn {
        return Err(StoreError::Corrupt(format!("{name}, closed, does not read back whole: {why}")));
    }
    let index = SegmentIndex::from_scan(header, &scanned)?;
    if let Some(index) = &index {
        index.write(dir)?;
    }
    Ok(index)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let taken = self.bytes.get(self.at..self.at + len).ok_or("it is cut short")?;
        self.at += len;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "cut short")?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "cut short")?))
    }

    fn u32s(&mut self, count: usize) -> Result<Vec<u32>, String> {
        let bytes = self.take(count.checked_mul(4).ok_or("too many")?)?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn pairs(&mut self, count: usize) -> Result<Vec<(u64, u64)>, String> {
        let bytes = self.take(count.checked_mul(16).ok_or("too many")?)?;
        let word = |c: &[u8]| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        Ok(bytes.chunks_exact(16).map(|c| (word(&c[..8]), word(&c[8..]))).collect())
    }

    fn u64s(&mut self, count: usize) -> Result<Vec<u64>, String> {
        let bytes = self.take(count.checked_mul(8).ok_or("too many")?)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
}
