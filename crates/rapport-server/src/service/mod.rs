//! The gRPC services: thin handlers that parse the request (`rapport-wire`), ask the writer or
//! the projections, and render the answer. Errors become statuses in `status.rs`. What every
//! handler shares is here: the wait for a read's `min_position`, the hop to the blocking pool
//! and the paged streaming.

mod accounts;
mod append_stream;
mod ledger;
mod privacy;
mod projections;
mod subscribe_route;

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use rapport_proto::v1 as pb;
use rapport_store::StoredEvent;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::error::ReadError;
use crate::state::AppState;

pub(crate) use accounts::AccountsService;
pub use append_stream::AppendStreamAnswers;
pub(crate) use ledger::LedgerService;
pub(crate) use privacy::PrivacyService;
pub(crate) use projections::ProjectionsService;
pub use projections::RebuildProgressStream;
pub(crate) use subscribe_route::SubscribeRoute;

/// Events read from the log per step of a streamed read.
const PAGE: u64 = 512;

/// A stream of recorded events, as the read RPCs return it.
pub type RecordedEventStream = Pin<Box<dyn Stream<Item = Result<pb::RecordedEvent, Status>> + Send>>;

/// Of a request's deadline, the most left for the answer after a wait for `min_position`:
/// tonic ends a call at its deadline with a bare `CANCELLED`, and the client should get the
/// `UNAVAILABLE` that says how far this node has read instead.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);

/// Waits until this node has read the log up to a read request's `min_position` (0 does not
/// wait): until its durable position, which every read is capped at, reaches it. Waits at most
/// until shortly before the request's deadline (`grpc-timeout`), and never longer than
/// `max_read_wait`; then `NotReadUpTo`. A node with one writer has read every event as soon as
/// it is acknowledged, so only a position beyond its log waits there.
async fn read_up_to(state: &AppState, metadata: &MetadataMap, min_position: u64) -> Result<(), ReadError> {
    if state.projections.durable_position() >= min_position {
        return Ok(());
    }
    let wait = match deadline(metadata) {
        // A tenth of a short deadline, so that it still leaves time to wait.
        Some(deadline) => state.max_read_wait.min(deadline - (deadline / 10).min(ANSWER_MARGIN)),
        None => state.max_read_wait,
    };
    let mut durable = state.projections.durable_watch();
    match tokio::time::timeout(wait, durable.wait_for(|&read| read >= min_position)).await {
        Ok(Ok(_)) => Ok(()),
        // Timed out (or the projections closed, which ends the server).
        _ => Err(ReadError::NotReadUpTo {
            min_position,
            read: state.projections.durable_position(),
            waited_ms: wait.as_millis(),
        }),
    }
}

/// The time the client gives the call (its `grpc-timeout`: at most 8 digits and a unit, as
/// the gRPC protocol defines it), if it gives one and it reads.
fn deadline(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3_600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Runs blocking work (store reads, scoring a portfolio) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(error) => Err(Status::from(ReadError::from(error))),
    }
}

/// Streams `total` events, fetched page by page on the blocking pool by `fetch` (which is given
/// the page size and keeps its own cursor) and rendered there by `render`. Pages are only
/// fetched as the client reads, so a slow reader holds no more than a page in memory.
fn paged<F, R>(total: u64, fetch: F, render: R) -> RecordedEventStream
where
    F: FnMut(usize) -> Result<Vec<StoredEvent>, ReadError> + Send + 'static,
    R: Fn(&[StoredEvent]) -> Result<Vec<pb::RecordedEvent>, ReadError> + Send + Sync + 'static,
{
    let render = std::sync::Arc::new(render);
    let pages = stream::unfold(Some((fetch, total)), move |state| {
        let render = std::sync::Arc::clone(&render);
        async move {
            let (mut fetch, remaining) = state?;
            if remaining == 0 {
                return None;
            }
            let size = remaining.min(PAGE);
            let fetched = tokio::task::spawn_blocking(move || {
                let page = fetch(size as usize).and_then(|page| Ok((page.len() as u64, render(&page)?)));
                (fetch, page)
            })
            .await;
            match fetched {
                Err(error) => Some((vec![Err(Status::from(ReadError::from(error)))], None)),
                Ok((_, Err(error))) => Some((vec![Err(Status::from(error))], None)),
                Ok((fetch, Ok((read, events)))) => {
                    // A short page means the range ended early; nothing more to fetch.
                    let next = (read == size).then_some((fetch, remaining - read));
                    Some((events.into_iter().map(Ok).collect(), next))
                }
            }
        }
    });
    Box::pin(pages.flat_map(stream::iter))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::metadata::MetadataMap;

    use super::deadline;

    fn with_timeout(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().unwrap());
        metadata
    }

    #[test]
    fn a_deadline_reads_in_every_unit_of_the_protocol() {
        let cases = [
            ("2H", Some(Duration::from_secs(7_200))),
            ("3M", Some(Duration::from_secs(180))),
            ("4S", Some(Duration::from_secs(4))),
            ("250m", Some(Duration::from_millis(250))),
            ("99999999u", Some(Duration::from_micros(99_999_999))),
            ("7n", Some(Duration::from_nanos(7))),
            // More than 8 digits, no digits, no unit, another unit: not a deadline.
            ("100000000m", None),
            ("m", None),
            ("250", None),
            ("5s", None),
            ("-5S", None),
        ];
        for (value, expected) in cases {
            assert_eq!(deadline(&with_timeout(value)), expected, "grpc-timeout: {value}");
        }
        assert_eq!(deadline(&MetadataMap::new()), None, "no grpc-timeout");
    }
}
