//! The protobuf codec of the generated services and clients.
//!
//! It is tonic-prost's codec with one change: bytes that do not decode as the expected message
//! (garbage, a truncated message, a string field that is not UTF-8) fail with
//! `INVALID_ARGUMENT`, naming the message, instead of `INTERNAL`. On a server the bytes come from
//! the client, so the fault is the client's, and `INTERNAL` would send operators looking for a
//! bug in the server.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
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
        U::decode(buf).map(Some).map_err(refusal::<U>)
    }
}

/// `INVALID_ARGUMENT` for bytes that do not decode as a `U`.
pub(crate) fn refusal<U>(error: prost::DecodeError) -> Status {
    let name = std::any::type_name::<U>().rsplit("::").next().unwrap_or("message");
    Status::invalid_argument(format!(
        "the message is not a valid protobuf encoding of {name}: {error}; send the message the method documents \
         (strings must be UTF-8)"
    ))
}
