//! The bytes of a segment file: its header, frames (one per write, the unit a crash keeps or
//! loses whole) and records (one per event). Pure functions over byte slices; no I/O.
//!
//! ```text
//! segment   = header (64 bytes) frame* zeros*
//! header    = magic "rapport segment\0" (16) | format u32 | reserved u32 | sequence u64
//!             | first position u64 | crc32c of the 40 bytes before u32 | zeros (20)
//! frame     = crc32c u32 | body length u32 | records u32 | reserved u32 | durable u64
//!             | body | zeros to a multiple of 8
//! body      = record*
//! record    = envelope length u32 | crc32c of the envelope u32 | envelope
//! ```
//!
//! Integers are little-endian. A frame's crc covers the rest of its header and its body; a
//! record's covers its envelope (`rapport.storage.v1.StoredEvent`), so that a single event read
//! on its own is checked too. `durable` is the log position through which everything was
//! synced when the frame was written: recovery uses it to tell a torn tail (frames nobody was
//! promised) from damage to acknowledged events. An all-zero header (segment or frame) marks
//! the end of what was written: files are extended with zeros ahead of the writes.

/// The first bytes of every segment file.
pub(crate) const MAGIC: &[u8; 16] = b"rapport segment\0";
/// The segment format this build writes and reads.
pub(crate) const SEGMENT_FORMAT: u32 = 1;
/// Bytes of a segment header; the first frame follows it.
pub(crate) const HEADER_LEN: usize = 64;
/// Bytes of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 24;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = 8;
/// Frames start at multiples of this, so that recovery can look for frames past a tear
/// without trying every byte.
pub(crate) const FRAME_ALIGN: usize = 8;

/// What a segment's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// The segment's number: 1, 2, 3, … in the order written, as in its file name.
    pub sequence: u64,
    /// The position of its first event.
    pub first_position: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..16].copy_from_slice(MAGIC);
        bytes[16..20].copy_from_slice(&SEGMENT_FORMAT.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.first_position.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..40]);
        bytes[40..44].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// The header in `bytes`; `Ok(None)` if it is all zeros (a segment nothing was written to
    /// for sure), `Err` saying what is wrong otherwise.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Option<SegmentHeader>, String> {
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return if bytes.iter().all(|&b| b == 0) {
                Ok(None)
            } else {
                Err(format!("its header is cut short ({} bytes)", bytes.len()))
            };
        };
        if bytes.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if &bytes[..16] != MAGIC {
            return Err("it does not start like a Rapport segment".into());
        }
        if u32_at(bytes, 40) != crc32c::crc32c(&bytes[..40]) {
            return Err("its header fails its checksum".into());
        }
        let format = u32_at(bytes, 16);
        if format != SEGMENT_FORMAT {
            return Err(format!("it is in segment format {format}; this build reads format {SEGMENT_FORMAT}"));
        }
        Ok(Some(SegmentHeader { sequence: u64_at(bytes, 24), first_position: u64_at(bytes, 32) }))
    }
}

/// Builds frames in a buffer: [`FrameWriter::begin`], any number of
/// [`FrameWriter::record`], [`FrameWriter::finish`].
pub(crate) struct FrameWriter {
    start: usize,
    records: u32,
}

impl FrameWriter {
    /// Starts a frame at the end of `buffer`, which must be at a frame boundary.
    pub(crate) fn begin(buffer: &mut Vec<u8>) -> FrameWriter {
        debug_assert_eq!(buffer.len() % FRAME_ALIGN, 0);
        let start = buffer.len();
        buffer.resize(start + FRAME_HEADER_LEN, 0);
        FrameWriter { start, records: 0 }
    }

    /// Adds a record whose envelope `encode` appends to the buffer; returns the record's
    /// offset from the start of the buffer.
    pub(crate) fn record(&mut self, buffer: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) -> usize {
        let at = buffer.len();
        buffer.resize(at + RECORD_HEADER_LEN, 0);
        encode(buffer);
        let envelope = &buffer[at + RECORD_HEADER_LEN..];
        let (len, crc) = (envelope.len() as u32, crc32c::crc32c(envelope));
        buffer[at..at + 4].copy_from_slice(&len.to_le_bytes());
        buffer[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        self.records += 1;
        at
    }

    /// Closes the frame: fills its header, pads it to the alignment.
    pub(crate) fn finish(self, buffer: &mut Vec<u8>, durable: u64) {
        let body_len = (buffer.len() - self.start - FRAME_HEADER_LEN) as u32;
        let header = &mut buffer[self.start..self.start + FRAME_HEADER_LEN];
        header[4..8].copy_from_slice(&body_len.to_le_bytes());
        header[8..12].copy_from_slice(&self.records.to_le_bytes());
        header[16..24].copy_from_slice(&durable.to_le_bytes());
        let crc = crc32c::crc32c(&buffer[self.start + 4..]);
        buffer[self.start..self.start + 4].copy_from_slice(&crc.to_le_bytes());
        buffer.resize(align(buffer.len()), 0);
    }
}

/// `len` rounded up to the frame alignment.
pub(crate) fn align(len: usize) -> usize {
    len.div_ceil(FRAME_ALIGN) * FRAME_ALIGN
}

/// A frame read back: where its records are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Each record's offset in the bytes the frame was read from, in order, and where its
    /// envelope lies (checked against the record's checksum).
    pub records: Vec<(usize, std::ops::Range<usize>)>,
    /// Through which position the log was durable when the frame was written.
    pub durable: u64,
    /// Where the next frame would start.
    pub next: usize,
}

/// What is at a frame boundary.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameRead {
    /// A whole frame whose checksums hold.
    Frame(Frame),
    /// Zeros, or the end of the bytes: nothing more was written here.
    End,
    /// Something that is not a whole, intact frame (a torn write, or damage), and why.
    Broken(String),
}

/// Reads the frame starting at `at` in `bytes`.
pub(crate) fn read_frame(bytes: &[u8], at: usize) -> FrameRead {
    let Some(header) = bytes.get(at..at + FRAME_HEADER_LEN) else {
        return if bytes[at.min(bytes.len())..].iter().all(|&b| b == 0) {
            FrameRead::End
        } else {
            FrameRead::Broken("a frame header is cut short".into())
        };
    };
    if header.iter().all(|&b| b == 0) {
        return FrameRead::End;
    }
    let (crc, body_len, count, durable) = (u32_at(header, 0), u32_at(header, 4), u32_at(header, 8), u64_at(header, 16));
    let body_start = at + FRAME_HEADER_LEN;
    let Some(end) = body_start.checked_add(body_len as usize).filter(|&end| end <= bytes.len()) else {
        return FrameRead::Broken(format!("a frame says it holds {body_len} bytes, past the end of the segment"));
    };
    if count == 0 {
        return FrameRead::Broken("a frame holds no records".into());
    }
    if crc32c::crc32c(&bytes[at + 4..end]) != crc {
        return FrameRead::Broken("a frame fails its checksum".into());
    }
    let mut records = Vec::with_capacity(count as usize);
    let mut offset = body_start;
    for index in 0..count {
        match read_record(&bytes[..end], offset) {
            Ok((envelope, next)) => {
                records.push((offset, envelope));
                offset = next;
            }
            Err(why) => return FrameRead::Broken(format!("record {index} of a frame {why}")),
        }
    }
    if offset != end {
        return FrameRead::Broken(format!("a frame's records end {} bytes before its body", end - offset));
    }
    FrameRead::Frame(Frame { records, durable, next: align(end) })
}

/// The envelope of the record at `at` in `bytes`, checked against its checksum, and where the
/// record ends.
pub(crate) fn read_record(bytes: &[u8], at: usize) -> Result<(std::ops::Range<usize>, usize), String> {
    let header = bytes.get(at..at + RECORD_HEADER_LEN).ok_or("is cut short")?;
    let (len, crc) = (u32_at(header, 0) as usize, u32_at(header, 4));
    let envelope = at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + len;
    let bytes = bytes.get(envelope.clone()).ok_or_else(|| format!("says it holds {len} bytes, past its end"))?;
    if crc32c::crc32c(bytes) != crc {
        return Err("fails its checksum".into());
    }
    let end = envelope.end;
    Ok((envelope, end))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(envelopes: &[&[u8]], durable: u64) -> Vec<u8> {
        let mut buffer = Vec::new();
        let mut frame = FrameWriter::begin(&mut buffer);
        for envelope in envelopes {
            frame.record(&mut buffer, |b| b.extend_from_slice(envelope));
        }
        frame.finish(&mut buffer, durable);
        buffer
    }

    #[test]
    fn a_header_round_trips_and_zeros_are_no_header() {
        let header = SegmentHeader { sequence: 7, first_position: 1_000_001 };
        assert_eq!(SegmentHeader::decode(&header.encode()), Ok(Some(header)));
        assert_eq!(SegmentHeader::decode(&[0; HEADER_LEN]), Ok(None));
        assert_eq!(SegmentHeader::decode(&[]), Ok(None));
        let mut damaged = header.encode();
        damaged[33] ^= 1;
        assert_eq!(SegmentHeader::decode(&damaged), Err("its header fails its checksum".into()));
        let mut foreign = header.encode();
        foreign[0] = b'R';
        assert!(SegmentHeader::decode(&foreign).unwrap_err().contains("does not start like"));
    }

    #[test]
    fn frames_read_back_record_by_record_and_end_at_zeros() {
        let mut bytes = frame(&[b"first", b"second event"], 0);
        let second_at = bytes.len();
        bytes.extend(frame(&[b"third"], 2));
        bytes.extend([0; 64]);
        let FrameRead::Frame(first) = read_frame(&bytes, 0) else { panic!("a frame at 0") };
        assert_eq!((first.records.len(), first.durable, first.next), (2, 0, second_at));
        let (at, envelope) = first.records[1].clone();
        assert_eq!(&bytes[envelope.clone()], b"second event");
        assert_eq!(read_record(&bytes, at).unwrap().0, envelope);
        let FrameRead::Frame(second) = read_frame(&bytes, second_at) else { panic!("a frame") };
        assert_eq!(second.durable, 2);
        assert_eq!(second.next % FRAME_ALIGN, 0);
        assert_eq!(read_frame(&bytes, second.next), FrameRead::End);
        assert_eq!(read_frame(&bytes, bytes.len()), FrameRead::End);
    }

    /// Every single flipped bit of a frame, and every cut, makes it broken: never a frame with
    /// other content.
    #[test]
    fn any_damage_to_a_frame_is_seen() {
        let whole = frame(&[b"an event", b"another"], 1);
        let unpadded = FRAME_HEADER_LEN + (RECORD_HEADER_LEN + 8) + (RECORD_HEADER_LEN + 7);
        assert!(whole.len() > unpadded, "the frame is padded");
        for bit in 0..whole.len() * 8 {
            let mut bytes = whole.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            match read_frame(&bytes, 0) {
                FrameRead::Broken(_) => {}
                // Flips in the padding after the body change nothing that is read.
                FrameRead::Frame(_) if bit / 8 >= unpadded => {}
                other => panic!("bit {bit}: {other:?}"),
            }
        }
        for cut in 1..unpadded {
            assert!(matches!(read_frame(&whole[..cut], 0), FrameRead::Broken(_)), "cut at {cut}");
        }
    }
}
