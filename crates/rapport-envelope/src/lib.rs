//! The stored form of one recorded event: its envelope, the protobuf message
//! `rapport.storage.v1.StoredEvent` (`proto/rapport/storage/v1/record.proto`).
//!
//! Every backend that writes files keeps events in this form, so that any protobuf tool can
//! read a data directory in ten years, and so that the form has one definition and one set of
//! fixtures (`tests/fixtures/envelopes-v1`). Schema rules: fields are only added, never
//! renumbered or retyped; a reader treats a missing field as its default.

use bytes::Bytes;
use prost::encoding::{self, WireType};
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_store::{Hash, HashScheme, StoreError, StoredEvent};

/// The envelope format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The envelope of a recorded event, in the format this build writes.
pub fn encode_envelope(event: &StoredEvent) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(encoded_len(event));
    encode_envelope_into(event, &mut bytes);
    bytes
}

/// Appends the envelope of a recorded event to `buffer`: the bytes prost makes of the
/// `rapport.storage.v1.StoredEvent` message (fields in number order, proto3 defaults left
/// out), written from the borrowed fields without building the message, which would copy
/// every string and hash. The fixtures and a test pin the two to the same bytes.
pub fn encode_envelope_into(event: &StoredEvent, buffer: &mut Vec<u8>) {
    buffer.reserve(encoded_len(event));
    varint_field(1, u64::from(FORMAT), buffer);
    bytes_field(2, event.account_id.as_str().as_bytes(), buffer);
    varint_field(3, event.version, buffer);
    varint_field(4, event.position, buffer);
    // int64 is encoded as the two's complement u64 varint.
    varint_field(5, event.recorded_at.unix_nanos() as u64, buffer);
    bytes_field(6, event.event_id.as_bytes(), buffer);
    bytes_field(7, &event.payload, buffer);
    bytes_field(8, &event.hash, buffer);
    bytes_field(9, &event.prev_hash, buffer);
    bytes_field(10, event.recorded_by.as_bytes(), buffer);
    varint_field(11, scheme_field(event.scheme), buffer);
}

/// The `hash_scheme` field: left out for the first scheme, so that envelopes written before
/// there were two keep their bytes.
fn scheme_field(scheme: HashScheme) -> u64 {
    match scheme {
        HashScheme::Positioned => 0,
        other => u64::from(other.number()),
    }
}

/// The length of [`encode_envelope`]'s bytes for `event`.
pub fn encoded_len(event: &StoredEvent) -> usize {
    varint_len(1, u64::from(FORMAT))
        + bytes_len(2, event.account_id.as_str().len())
        + varint_len(3, event.version)
        + varint_len(4, event.position)
        + varint_len(5, event.recorded_at.unix_nanos() as u64)
        + bytes_len(6, event.event_id.as_bytes().len())
        + bytes_len(7, event.payload.len())
        + bytes_len(8, event.hash.len())
        + bytes_len(9, event.prev_hash.len())
        + bytes_len(10, event.recorded_by.len())
        + varint_len(11, scheme_field(event.scheme))
}

fn varint_field(tag: u32, value: u64, buffer: &mut Vec<u8>) {
    if value != 0 {
        encoding::encode_key(tag, WireType::Varint, buffer);
        encoding::encode_varint(value, buffer);
    }
}

fn bytes_field(tag: u32, value: &[u8], buffer: &mut Vec<u8>) {
    if !value.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buffer);
        encoding::encode_varint(value.len() as u64, buffer);
        buffer.extend_from_slice(value);
    }
}

fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { encoding::key_len(tag) + encoding::encoded_len_varint(value) }
}

fn bytes_len(tag: u32, len: usize) -> usize {
    if len == 0 { 0 } else { encoding::key_len(tag) + encoding::encoded_len_varint(len as u64) + len }
}

/// Decodes the envelope of the event stored at position `at`, checking its format, that it is
/// whole and that it says it is where it was found. The payload shares `bytes`' buffer.
///
/// An event hashed without its position ([`HashScheme::Unpositioned`]) is stored without one
/// (a replicated stream gives it), and takes `at`.
pub fn decode_envelope(at: u64, bytes: Bytes) -> Result<StoredEvent, StoreError> {
    let fields = Fields::read(at, &bytes)?;
    let account_id = AccountId::parse(fields.account_id, &Limits::for_recorded_events())
        .map_err(|e| corrupt(at, format!("has an invalid account id: {e}")))?;
    let recorded_by = std::str::from_utf8(fields.recorded_by)
        .map_err(|_| corrupt(at, "has a recorded_by that is not UTF-8".into()))?
        .to_owned();
    Ok(StoredEvent {
        account_id,
        version: fields.version,
        position: fields.position,
        recorded_at: fields.recorded_at,
        event_id: fields.event_id,
        recorded_by,
        prev_hash: fields.prev_hash,
        hash: fields.hash,
        scheme: fields.scheme,
        payload: bytes.slice_ref(fields.payload),
    })
}

/// What a log needs to know of a stored event to index it, read from its envelope without
/// copying anything: [`decode_summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary<'a> {
    /// The stream, as stored (checked to be a valid account id).
    pub account_id: &'a str,
    /// Place in the stream.
    pub version: u64,
    /// Place in the log.
    pub position: u64,
    /// Server time of recording.
    pub recorded_at: Timestamp,
    /// The event's id.
    pub event_id: EventId,
    /// Its chain hash.
    pub hash: Hash,
    /// The hash of the previous event of the stream.
    pub prev_hash: Hash,
}

/// Reads the indexing fields of the envelope stored at position `at`, with the checks of
/// [`decode_envelope`] (format, position, field sizes, a valid account id) but without
/// building the event: no allocation, the payload skipped.
pub fn decode_summary(at: u64, bytes: &[u8]) -> Result<Summary<'_>, StoreError> {
    let fields = Fields::read(at, bytes)?;
    if AccountId::parse(fields.account_id, &Limits::for_recorded_events()).is_err() {
        return Err(corrupt(at, "has an invalid account id".into()));
    }
    Ok(Summary {
        account_id: fields.account_id,
        version: fields.version,
        position: fields.position,
        recorded_at: fields.recorded_at,
        event_id: fields.event_id,
        hash: fields.hash,
        prev_hash: fields.prev_hash,
    })
}

fn corrupt(at: u64, what: String) -> StoreError {
    StoreError::Corrupt(format!("the event at position {at} {what}"))
}

/// An envelope's fields, borrowed from its bytes: the one reading of the message that both
/// decodings share, with the checks they share (format, position, the sizes of the id and the
/// hashes, an account id that is text).
struct Fields<'a> {
    account_id: &'a str,
    version: u64,
    position: u64,
    recorded_at: Timestamp,
    event_id: EventId,
    payload: &'a [u8],
    hash: Hash,
    prev_hash: Hash,
    recorded_by: &'a [u8],
    scheme: HashScheme,
}

impl<'a> Fields<'a> {
    fn read(at: u64, bytes: &'a [u8]) -> Result<Fields<'a>, StoreError> {
        let undecodable = |e: prost::DecodeError| corrupt(at, format!("does not decode: {e}"));
        let mut buf = bytes;
        let (mut format, mut version, mut position, mut recorded_at, mut scheme) = (0u64, 0, 0, 0u64, 0u64);
        let (mut account, mut event_id, mut payload) = (&[][..], &[][..], &[][..]);
        let (mut hash, mut prev_hash, mut recorded_by) = (&[][..], &[][..], &[][..]);
        while !buf.is_empty() {
            let (tag, wire_type) = encoding::decode_key(&mut buf).map_err(undecodable)?;
            let expected = match tag {
                1 | 3 | 4 | 5 | 11 => Some(WireType::Varint),
                2 | 6..=10 => Some(WireType::LengthDelimited),
                _ => None,
            };
            if expected.is_some_and(|e| e != wire_type) {
                return Err(corrupt(at, format!("has field {tag} with the wrong wire type")));
            }
            match tag {
                1 => format = encoding::decode_varint(&mut buf).map_err(undecodable)?,
                3 => version = encoding::decode_varint(&mut buf).map_err(undecodable)?,
                4 => position = encoding::decode_varint(&mut buf).map_err(undecodable)?,
                5 => recorded_at = encoding::decode_varint(&mut buf).map_err(undecodable)?,
                11 => scheme = encoding::decode_varint(&mut buf).map_err(undecodable)?,
                2 | 6..=10 => {
                    let len = encoding::decode_varint(&mut buf).map_err(undecodable)?;
                    let len = usize::try_from(len).map_err(|_| corrupt(at, "is cut short".into()))?;
                    let (value, rest) = buf.split_at_checked(len).ok_or_else(|| corrupt(at, "is cut short".into()))?;
                    buf = rest;
                    *match tag {
                        2 => &mut account,
                        6 => &mut event_id,
                        7 => &mut payload,
                        8 => &mut hash,
                        9 => &mut prev_hash,
                        _ => &mut recorded_by,
                    } = value;
                }
                _ => encoding::skip_field(wire_type, tag, &mut buf, encoding::DecodeContext::default())
                    .map_err(undecodable)?,
            }
        }
        if format != u64::from(FORMAT) {
            return Err(corrupt(at, format!("is in format {format}, this build reads {FORMAT}")));
        }
        let scheme = u32::try_from(scheme)
            .ok()
            .and_then(HashScheme::from_number)
            .ok_or_else(|| corrupt(at, format!("is hashed by scheme {scheme}, which this build does not know")))?;
        // Where the stream gives the position, the envelope holds none.
        let position = match (scheme, position) {
            (HashScheme::Unpositioned, 0) => at,
            _ => position,
        };
        if position != at {
            return Err(corrupt(at, format!("says it is at position {position}")));
        }
        let hash_of = |bytes: &[u8], name: &str| {
            Hash::try_from(bytes).map_err(|_| corrupt(at, format!("has a {name} of {} bytes, not 32", bytes.len())))
        };
        Ok(Fields {
            account_id: std::str::from_utf8(account).map_err(|_| corrupt(at, "has an invalid account id".into()))?,
            version,
            position,
            recorded_at: Timestamp::from_unix_nanos(recorded_at as i64),
            event_id: <[u8; 16]>::try_from(event_id)
                .map(EventId::from_bytes)
                .map_err(|_| corrupt(at, "has an event id that is not 16 bytes".into()))?,
            payload,
            hash: hash_of(hash, "hash")?,
            prev_hash: hash_of(prev_hash, "previous hash")?,
            recorded_by,
            scheme,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use rapport_proto::storage::v1 as record;
    use rapport_store::GENESIS_HASH;

    fn stored(recorded_by: &str, recorded_at: i64, version: u64) -> StoredEvent {
        let mut event = StoredEvent {
            account_id: AccountId::parse("acme", &Limits::default()).unwrap(),
            version,
            position: version + 300,
            recorded_at: Timestamp::from_unix_nanos(recorded_at),
            event_id: EventId::from_bytes([7; 16]),
            recorded_by: recorded_by.to_owned(),
            payload: Bytes::from_static(b"an encoded event"),
            prev_hash: GENESIS_HASH,
            hash: GENESIS_HASH,
            scheme: HashScheme::Positioned,
        };
        event.hash = event.computed_hash();
        event
    }

    /// `event` as the replicated log stamps it: hashed without its position.
    fn unpositioned(mut event: StoredEvent) -> StoredEvent {
        event.scheme = HashScheme::Unpositioned;
        event.hash = event.computed_hash();
        event
    }

    /// A replicated stream's envelope holds no position: the event takes the one it is found
    /// at, and keeps its hash, which does not cover it.
    #[test]
    fn an_unpositioned_envelope_takes_the_position_it_is_found_at() {
        let event = unpositioned(stored("", 1, 1));
        let bytes = encode_envelope(&StoredEvent { position: 0, ..event.clone() });
        let decoded = decode_envelope(42, Bytes::from(bytes.clone())).unwrap();
        assert_eq!(decoded, StoredEvent { position: 42, ..event.clone() });
        assert_eq!(decoded.computed_hash(), event.hash);
        assert_eq!(decode_summary(42, &bytes).unwrap().position, 42);
        // One that holds a position must be found there, like any other.
        let placed = encode_envelope(&event);
        assert!(decode_envelope(42, Bytes::from(placed)).is_err());
        // A scheme this build does not know is refused by its number.
        let mut later = envelope_message(&event);
        later.hash_scheme = 9;
        let error = decode_envelope(event.position, Bytes::from(later.encode_to_vec())).unwrap_err().to_string();
        assert!(error.contains("scheme 9"), "{error}");
    }

    /// The hand-written encoding is the message's, byte for byte, defaults and negative times
    /// included; and it decodes back to the same event.
    #[test]
    fn the_envelope_is_the_messages_encoding_and_decodes_back() {
        let cases = [
            stored("", 1_735_776_000_123_456_789, 1),
            stored("crm-sync", 1_735_776_000_123_456_789, 2),
            stored("", 0, 3),
            stored("", -5_000_000_000, 200),
            unpositioned(stored("crm-sync", 7, 4)),
        ];
        for event in cases {
            let message = envelope_message(&event).encode_to_vec();
            let bytes = encode_envelope(&event);
            assert_eq!(bytes, message, "{event:?}");
            assert_eq!(encoded_len(&event), bytes.len(), "{event:?}");
            let summary = decode_summary(event.position, &bytes).unwrap();
            let want = Summary {
                account_id: event.account_id.as_str(),
                version: event.version,
                position: event.position,
                recorded_at: event.recorded_at,
                event_id: event.event_id,
                hash: event.hash,
                prev_hash: event.prev_hash,
            };
            assert_eq!(summary, want, "{event:?}");
            let decoded = decode_envelope(event.position, Bytes::from(bytes)).unwrap();
            assert_eq!(decoded, event);
        }
    }

    /// The envelope as the generated message: what any protobuf tool writes.
    fn envelope_message(event: &StoredEvent) -> record::StoredEvent {
        record::StoredEvent {
            format: FORMAT,
            account_id: event.account_id.to_string(),
            version: event.version,
            position: event.position,
            recorded_at_unix_nanos: event.recorded_at.unix_nanos(),
            event_id: event.event_id.as_bytes().to_vec(),
            event: event.payload.clone(),
            hash: event.hash.to_vec(),
            prev_hash: event.prev_hash.to_vec(),
            recorded_by: event.recorded_by.clone(),
            hash_scheme: scheme_field(event.scheme) as u32,
        }
    }

    #[test]
    fn an_envelope_out_of_place_or_of_another_format_is_corrupt() {
        let event = stored("", 1, 1);
        let bytes = Bytes::from(encode_envelope(&event));
        let error = decode_envelope(event.position + 1, bytes).unwrap_err().to_string();
        assert!(error.contains("says it is at position 301"), "{error}");
        let mut other = envelope_message(&event);
        other.format = 2;
        let error = decode_envelope(event.position, Bytes::from(other.encode_to_vec())).unwrap_err().to_string();
        assert!(error.contains("format 2"), "{error}");
        let error = decode_envelope(1, Bytes::from_static(b"\xff\xff")).unwrap_err().to_string();
        assert!(error.contains("does not decode"), "{error}");
        // The summary refuses what the full decoding refuses.
        let bytes = encode_envelope(&event);
        let error = decode_summary(event.position + 1, &bytes).unwrap_err().to_string();
        assert!(error.contains("says it is at position 301"), "{error}");
        let error = decode_summary(event.position, &other.encode_to_vec()).unwrap_err().to_string();
        assert!(error.contains("format 2"), "{error}");
        for cut in 0..bytes.len() {
            assert!(decode_summary(event.position, &bytes[..cut]).is_err(), "cut at {cut}");
            assert!(decode_envelope(event.position, Bytes::copy_from_slice(&bytes[..cut])).is_err(), "cut at {cut}");
        }
        // A field this build does not know (a later one, added as the schema rules allow) is
        // skipped by both.
        let mut later = bytes.clone();
        encoding::encode_key(12, WireType::LengthDelimited, &mut later);
        encoding::encode_varint(3, &mut later);
        later.extend_from_slice(b"new");
        assert_eq!(decode_envelope(event.position, Bytes::from(later.clone())).unwrap(), event);
        assert_eq!(decode_summary(event.position, &later).unwrap(), decode_summary(event.position, &bytes).unwrap());
    }
}
