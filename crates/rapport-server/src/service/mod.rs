//! The gRPC services: thin handlers that parse the request (`rapport-wire`), ask the writer or
//! the projections, and render the answer. Errors become statuses in `status.rs`.

mod accounts;
mod ledger;
mod privacy;
mod projections;

use std::pin::Pin;

use futures::{Stream, StreamExt, stream};
use rapport_proto::v1 as pb;
use rapport_store::StoredEvent;
use tonic::Status;

pub(crate) use accounts::AccountsService;
pub(crate) use ledger::LedgerService;
pub(crate) use privacy::PrivacyService;
pub(crate) use projections::ProjectionsService;
pub use projections::RebuildProgressStream;

/// Events read from the log per step of a streamed read.
const PAGE: u64 = 512;

/// A stream of recorded events, as the read RPCs return it.
pub type RecordedEventStream = Pin<Box<dyn Stream<Item = Result<pb::RecordedEvent, Status>> + Send>>;

/// Runs blocking work (store reads, scoring a portfolio) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::error::ReadError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(error) => Err(Status::from(crate::error::ReadError::from(error))),
    }
}

/// Streams `total` events, fetched page by page on the blocking pool by `fetch` (which is given
/// the page size and keeps its own cursor) and rendered there by `render`. Pages are only
/// fetched as the client reads, so a slow reader holds no more than a page in memory.
fn paged<F, R>(total: u64, fetch: F, render: R) -> RecordedEventStream
where
    F: FnMut(usize) -> Result<Vec<StoredEvent>, crate::error::ReadError> + Send + 'static,
    R: Fn(&[StoredEvent]) -> Result<Vec<pb::RecordedEvent>, crate::error::ReadError> + Send + Sync + 'static,
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
                Err(error) => Some((vec![Err(Status::from(crate::error::ReadError::from(error)))], None)),
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
