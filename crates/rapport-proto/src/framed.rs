//! gRPC messages framed once and sent as they are: a server that sends one message to many
//! streams (a subscription's events) frames it once ([`frame_into`]) and shares the bytes, and
//! [`server_streaming`] answers a server-streaming call with streams of such bytes, handed to
//! HTTP/2 without being copied or encoded again. Requests are read, and refused, as the
//! generated services' codec reads and refuses them.

use std::future::Future;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::{BodyExt, LengthLimitError, Limited, StreamBody};
use prost::Message;
use tonic::Status;
use tonic::body::Body;

use crate::codec::refusal;

/// Appends `message` to `buf` as gRPC frames it on the wire: a byte saying it is not
/// compressed, its length (4 bytes, big-endian), its protobuf encoding. A server that sends
/// one message to many streams frames it once and shares the bytes.
pub fn frame_into(message: &impl Message, buf: &mut BytesMut) {
    let len = message.encoded_len();
    buf.reserve(5 + len);
    buf.put_u8(0);
    // A message longer than 4 GiB cannot be sent at all; `encoded_len` of what a server
    // builds is far below.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(buf);
}

/// `message` framed as [`frame_into`] frames it.
pub fn framed(message: &impl Message) -> Bytes {
    let mut buf = BytesMut::new();
    frame_into(message, &mut buf);
    buf.freeze()
}

/// The messages of the gRPC frames in `bytes`, as [`frame_into`] frames them; `INTERNAL` for
/// bytes that are not such frames of `U`s, since a server reads back only what it framed.
pub fn decode_frames<U: Message + Default>(mut bytes: Bytes) -> Result<Vec<U>, Status> {
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        let len = match bytes.get(..5) {
            Some(&[0, a, b, c, d]) => u32::from_be_bytes([a, b, c, d]) as usize,
            _ => return Err(Status::internal("a framed message is truncated or compressed")),
        };
        if bytes.len() < 5 + len {
            return Err(Status::internal("a framed message is truncated"));
        }
        bytes.advance(5);
        let message = U::decode(bytes.split_to(len))
            .map_err(|error| Status::internal(format!("a framed message does not decode: {error}")))?;
        messages.push(message);
    }
    Ok(messages)
}

/// The one message of a unary request body (its gRPC frame, as [`frame_into`] writes it),
/// refused as [`Codec`](crate::codec::Codec) refuses it: `INVALID_ARGUMENT` for bytes that are
/// not a `U`, `OUT_OF_RANGE` above `max_bytes` (as tonic refuses a message too large),
/// `UNIMPLEMENTED` if compressed.
pub fn decode_request<U: Message + Default>(body: &[u8], max_bytes: usize) -> Result<U, Status> {
    let Some((&flag, rest)) = body.split_first() else {
        return Err(Status::invalid_argument("the request has no message; send one"));
    };
    if flag != 0 {
        return Err(Status::unimplemented("compressed requests are not accepted; send the message uncompressed"));
    }
    let (len, message) =
        rest.split_at_checked(4).ok_or_else(|| Status::invalid_argument("the request is truncated"))?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > max_bytes {
        return Err(too_large(len, max_bytes));
    }
    if message.len() != len {
        return Err(Status::invalid_argument(format!(
            "the request's frame says {len} bytes and {} follow; send exactly one message",
            message.len()
        )));
    }
    U::decode(message).map_err(refusal::<U>)
}

/// Answers the server-streaming call `request` (a `U`, at most `max_request_bytes`) with the
/// stream `answer` returns: each item one or more framed messages, sent as they are; an error
/// item ends the call with that status, as does an error from `answer` before any message.
pub async fn server_streaming<U, S, F>(
    request: http::Request<Body>,
    max_request_bytes: usize,
    answer: impl FnOnce(tonic::Request<U>) -> F,
) -> http::Response<Body>
where
    U: Message + Default,
    S: Stream<Item = Result<Bytes, Status>> + Send + 'static,
    F: Future<Output = Result<S, Status>>,
{
    let (parts, body) = request.into_parts();
    // The frame's 5 bytes beyond the largest message.
    let read = Limited::new(body, max_request_bytes.saturating_add(5)).collect().await;
    let message = match read {
        Ok(body) => decode_request::<U>(&body.to_bytes(), max_request_bytes),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large(max_request_bytes + 1, max_request_bytes)),
        Err(error) => Err(Status::from_error(error)),
    };
    let answered = match message {
        Ok(message) => answer(tonic::Request::from_http(http::Request::from_parts(parts, message))).await,
        Err(status) => Err(status),
    };
    let stream = match answered {
        Ok(stream) => stream,
        Err(status) => return status.into_http(),
    };
    let frames = futures::stream::unfold(Some(Box::pin(stream)), |stream| async move {
        let mut stream = stream?;
        let frame = match stream.next().await {
            Some(Ok(bytes)) => return Some((Ok::<_, Status>(Frame::data(bytes)), Some(stream))),
            Some(Err(status)) => Frame::trailers(trailers(&status)),
            None => Frame::trailers(trailers(&Status::ok(""))),
        };
        Some((Ok(frame), None))
    });
    let mut response = http::Response::new(Body::new(StreamBody::new(frames)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}

/// `OUT_OF_RANGE` for a request of `len` bytes, above `max_bytes`.
fn too_large(len: usize, max_bytes: usize) -> Status {
    Status::out_of_range(format!(
        "the request is {len} bytes or more, above the {max_bytes} this server accepts; send a smaller one"
    ))
}

/// The trailers that end a call with `status`.
fn trailers(status: &Status) -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        // A message or detail that cannot be a header: the code alone still ends the call.
        trailers.clear();
        trailers.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
    }
    trailers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{SubscribeRequest, SubscriptionCheckpoint};

    #[test]
    fn framed_messages_decode_back() {
        let first = SubscriptionCheckpoint { position: 7, head: 9, at: None };
        let second = SubscriptionCheckpoint { position: 300, head: 301, at: None };
        let mut buf = BytesMut::new();
        frame_into(&first, &mut buf);
        frame_into(&second, &mut buf);
        // Each frame: a zero byte, the length, then the message (two tags, two varints).
        assert_eq!(&buf[..5], &[0, 0, 0, 0, 4]);
        let decoded = decode_frames::<SubscriptionCheckpoint>(buf.freeze()).expect("whole frames");
        assert_eq!(decoded, [first, second]);
        assert!(decode_frames::<SubscriptionCheckpoint>(Bytes::from_static(&[0, 0, 0, 0, 9, 1])).is_err(), "truncated");
    }

    #[test]
    fn a_request_body_is_one_framed_message() {
        let request = SubscribeRequest { from_position: 42, ..Default::default() };
        let body = framed(&request);
        assert_eq!(decode_request::<SubscribeRequest>(&body, 1_024).ok(), Some(request));
        let refused = |body: &[u8], max| decode_request::<SubscribeRequest>(body, max).map(|_| ()).unwrap_err().code();
        assert_eq!(refused(&body, 1), tonic::Code::OutOfRange);
        assert_eq!(refused(&[], 1_024), tonic::Code::InvalidArgument);
        assert_eq!(refused(&[1, 0, 0, 0, 0], 1_024), tonic::Code::Unimplemented);
        assert_eq!(refused(&[0, 0, 0, 0, 2, 0xff, 0xff], 1_024), tonic::Code::InvalidArgument);
    }
}
