//! The protobuf codec of the generated services and clients.
//!
//! It is tonic-prost's codec with one change: bytes that do not decode as the expected message
//! (garbage, a truncated message, a string field that is not UTF-8) fail with
//! `INVALID_ARGUMENT`, naming the message, instead of `INTERNAL`. On a server the bytes come from
//! the client, so the fault is the client's, and `INTERNAL` would send operators looking for a
//! bug in the server.
//!
//! [`EncodedCodec`] sends messages encoded beforehand ([`Encoded`]): a server that sends one
//! message to many streams encodes it once and shares the bytes.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// A protobuf codec that encodes `T` and decodes `U`.
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self { _types: PhantomData }
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _type: PhantomData }
    }
}

/// Decodes `U`; refuses bytes that are not one with `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            let name = std::any::type_name::<U>().rsplit("::").next().unwrap_or("message");
            Status::invalid_argument(format!(
                "the message is not a valid protobuf encoding of {name}: {error}; send the message the method \
                 documents (strings must be UTF-8)"
            ))
        })
    }
}

/// A message's protobuf encoding, made once and sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(pub Bytes);

impl Encoded {
    /// The encoding of `message`.
    pub fn of(message: &impl Message) -> Encoded {
        Encoded(Bytes::from(message.encode_to_vec()))
    }
}

/// A codec that sends [`Encoded`] messages and decodes `U` as [`Codec`] does.
#[derive(Debug, Clone)]
pub struct EncodedCodec<U> {
    _type: PhantomData<U>,
}

impl<U> Default for EncodedCodec<U> {
    fn default() -> Self {
        Self { _type: PhantomData }
    }
}

impl<U: Message + Default + Send + 'static> tonic::codec::Codec for EncodedCodec<U> {
    type Encode = Encoded;
    type Decode = U;
    type Encoder = EncodedEncoder;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _type: PhantomData }
    }
}

/// Writes an [`Encoded`] message's bytes.
#[derive(Debug, Clone, Copy)]
pub struct EncodedEncoder;

impl Encoder for EncodedEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_message_is_its_protobuf_bytes() {
        let message = crate::v1::SubscriptionCheckpoint { position: 7, head: 9, at: None };
        let encoded = Encoded::of(&message);
        assert_eq!(crate::v1::SubscriptionCheckpoint::decode(encoded.0.clone()).ok(), Some(message));
        assert_eq!(encoded.0.len(), 4, "two one-byte tags and two one-byte varints");
    }
}
