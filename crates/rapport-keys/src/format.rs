//! The byte layout of the keyring's header and slots (the crate docs draw it): pure, no I/O.

use crate::SubjectId;
use crate::master::WRAPPED_LEN;

/// The header's length; slot 0 starts here.
pub(crate) const HEADER_LEN: u64 = 64;
/// A slot's length: a divisor of 512, so that no slot straddles a sector and an in-place
/// overwrite is one sector's write.
pub(crate) const SLOT_LEN: u64 = 128;

const MAGIC: &[u8; 16] = b"rapport keyring\0";
/// The one format this code writes and reads.
const FORMAT: u32 = 1;

const SUBJECT: std::ops::Range<usize> = 8..40;
const WRAPPED: std::ops::Range<usize> = 40..40 + WRAPPED_LEN;
const SLOT_CRC: usize = 124;
const HEADER_CRC: usize = 60;

/// Where slot `index` starts.
pub(crate) fn slot_offset(index: u64) -> u64 {
    HEADER_LEN + SLOT_LEN * index
}

/// What a slot records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SlotKind {
    /// The subject's data key, wrapped.
    Live = 1,
    /// The subject's key is deleted (a tombstone), and it never gets another.
    Forgotten = 2,
    /// An erasure of the subject has begun.
    ForgetIntent = 3,
    /// The erasure begun was abandoned.
    IntentSettled = 4,
}

impl SlotKind {
    fn from_byte(byte: u8) -> Option<SlotKind> {
        match byte {
            1 => Some(SlotKind::Live),
            2 => Some(SlotKind::Forgotten),
            3 => Some(SlotKind::ForgetIntent),
            4 => Some(SlotKind::IntentSettled),
            _ => None,
        }
    }
}

/// A slot whose checksum holds.
#[derive(Debug)]
pub(crate) struct Slot {
    pub kind: SlotKind,
    pub subject: SubjectId,
    /// Zero unless `kind` is Live.
    pub wrapped: [u8; WRAPPED_LEN],
}

/// What 128 bytes of the keyring turned out to be.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A slot whose checksum holds.
    Slot(Slot),
    /// All zeros: a slot whose write never reached the disk.
    Unwritten,
    /// The checksum fails: a write that reached the disk in part. The subject is what its
    /// bytes say, which is right when the write was an in-place `forget` (the subject is the
    /// same before and after it).
    Torn { subject: SubjectId },
    /// The checksum holds but the kind is none of format 1's.
    UnknownKind(u8),
}

/// The header of a keyring whose slots are wrapped under the master key with this check.
pub(crate) fn encode_header(master_check: &[u8; 16]) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..16].copy_from_slice(MAGIC);
    header[16..20].copy_from_slice(&FORMAT.to_be_bytes());
    header[24..40].copy_from_slice(master_check);
    let crc = crc32c::crc32c(&header[..HEADER_CRC]);
    header[HEADER_CRC..].copy_from_slice(&crc.to_be_bytes());
    header
}

/// The master check of a header, or why the bytes are not a format-1 header.
pub(crate) fn decode_header(header: &[u8; HEADER_LEN as usize]) -> Result<[u8; 16], String> {
    if &header[..16] != MAGIC {
        return Err("it does not start as a keyring does".into());
    }
    let crc = u32::from_be_bytes([header[60], header[61], header[62], header[63]]);
    if crc != crc32c::crc32c(&header[..HEADER_CRC]) {
        return Err("the header's checksum does not match".into());
    }
    let format = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
    if format != FORMAT {
        return Err(format!("the keyring is in format {format}, and this build reads format {FORMAT} only"));
    }
    let mut check = [0u8; 16];
    check.copy_from_slice(&header[24..40]);
    Ok(check)
}

/// A slot's bytes; `wrapped` only for a Live slot (the others hold zeros there).
pub(crate) fn encode_slot(
    kind: SlotKind,
    subject: &SubjectId,
    wrapped: Option<&[u8; WRAPPED_LEN]>,
) -> [u8; SLOT_LEN as usize] {
    debug_assert_eq!(kind == SlotKind::Live, wrapped.is_some(), "exactly a Live slot holds a wrapped key");
    let mut slot = [0u8; SLOT_LEN as usize];
    slot[0] = kind as u8;
    slot[SUBJECT].copy_from_slice(subject.as_bytes());
    if let Some(wrapped) = wrapped {
        slot[WRAPPED].copy_from_slice(wrapped);
    }
    let crc = crc32c::crc32c(&slot[..SLOT_CRC]);
    slot[SLOT_CRC..].copy_from_slice(&crc.to_be_bytes());
    slot
}

/// Reads one slot's bytes.
pub(crate) fn decode_slot(bytes: &[u8]) -> Decoded {
    debug_assert_eq!(bytes.len(), SLOT_LEN as usize);
    let mut subject = [0u8; 32];
    subject.copy_from_slice(&bytes[SUBJECT]);
    let subject = SubjectId::from_bytes(subject);
    let crc = u32::from_be_bytes([bytes[124], bytes[125], bytes[126], bytes[127]]);
    if crc != crc32c::crc32c(&bytes[..SLOT_CRC]) {
        return if bytes.iter().all(|&b| b == 0) { Decoded::Unwritten } else { Decoded::Torn { subject } };
    }
    let Some(kind) = SlotKind::from_byte(bytes[0]) else {
        return Decoded::UnknownKind(bytes[0]);
    };
    let mut wrapped = [0u8; WRAPPED_LEN];
    wrapped.copy_from_slice(&bytes[WRAPPED]);
    Decoded::Slot(Slot { kind, subject, wrapped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_laid_out_as_documented() {
        let header = encode_header(&[0xcc; 16]);
        assert_eq!(&header[..16], b"rapport keyring\0");
        assert_eq!(header[16..24], [0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(header[24..40], [0xcc; 16]);
        assert_eq!(header[40..60], [0; 20]);
        assert_eq!(header[60..], crc32c::crc32c(&header[..60]).to_be_bytes());
        assert_eq!(decode_header(&header), Ok([0xcc; 16]));
    }

    #[test]
    fn a_damaged_or_foreign_header_says_what_is_wrong() {
        let header = encode_header(&[1; 16]);
        let mut flipped = header;
        flipped[30] ^= 1;
        assert!(decode_header(&flipped).unwrap_err().contains("checksum"));
        let mut foreign = header;
        foreign[0] = b'R';
        assert!(decode_header(&foreign).unwrap_err().contains("does not start as a keyring"));
        let mut later = header;
        later[19] = 2;
        let crc = crc32c::crc32c(&later[..60]);
        later[60..].copy_from_slice(&crc.to_be_bytes());
        assert!(decode_header(&later).unwrap_err().contains("format 2"));
    }

    #[test]
    fn slots_are_laid_out_as_documented() {
        let subject = SubjectId::from_bytes([0x55; 32]);
        let live = encode_slot(SlotKind::Live, &subject, Some(&[0xee; WRAPPED_LEN]));
        assert_eq!(WRAPPED_LEN, 12 + 48, "a nonce, and the key sealed with its tag");
        assert_eq!(live[..8], [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(live[8..40], [0x55; 32]);
        assert_eq!(live[40..100], [0xee; 60]);
        assert_eq!(live[100..124], [0; 24]);
        assert_eq!(live[124..], crc32c::crc32c(&live[..124]).to_be_bytes());
        let Decoded::Slot(slot) = decode_slot(&live) else { panic!("a valid slot") };
        assert_eq!((slot.kind, slot.subject, slot.wrapped), (SlotKind::Live, subject, [0xee; 60]));
        for kind in [SlotKind::Forgotten, SlotKind::ForgetIntent, SlotKind::IntentSettled] {
            let bytes = encode_slot(kind, &subject, None);
            assert_eq!(bytes[40..], encode_slot(kind, &subject, None)[40..], "{kind:?}");
            assert_eq!(bytes[40..124], [0; 84], "{kind:?} holds no key");
            let Decoded::Slot(slot) = decode_slot(&bytes) else { panic!("a valid {kind:?} slot") };
            assert_eq!(slot.kind, kind);
        }
        assert_eq!(slot_offset(0), 64);
        assert_eq!(slot_offset(3), 64 + 3 * 128);
        assert_eq!(512 % SLOT_LEN, 0, "a slot never straddles a sector");
    }

    #[test]
    fn zeros_torn_and_unknown_slots_are_told_apart() {
        assert!(matches!(decode_slot(&[0; 128]), Decoded::Unwritten));
        let subject = SubjectId::from_bytes([0x55; 32]);
        let mut torn = encode_slot(SlotKind::Forgotten, &subject, None);
        torn[100] = 1;
        assert!(matches!(decode_slot(&torn), Decoded::Torn { subject: s } if s == subject));
        let mut unknown = encode_slot(SlotKind::Forgotten, &subject, None);
        unknown[0] = 9;
        let crc = crc32c::crc32c(&unknown[..124]);
        unknown[124..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(decode_slot(&unknown), Decoded::UnknownKind(9)));
    }
}
