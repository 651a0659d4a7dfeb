//! The gRPC services: thin handlers that parse the request (`convert`), ask the writer or the
//! projection, and render the answer. Errors become statuses in `status.rs`.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use rapport_domain::Limits;
use rapport_proto::v1 as pb;
use rapport_store::{Direction, EventLog, StoredEvent};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::convert::{account_id_from_wire, account_to_wire, append_from_wire, outcome_to_wire, recorded_to_wire};
use crate::error::{AppendError, ReadError};
use crate::projection::Projection;
use crate::writer::Writer;

/// Events read from the log per step of a streamed read.
const PAGE: u64 = 512;

/// A stream of recorded events, as the read RPCs return it.
pub type RecordedEventStream = Pin<Box<dyn Stream<Item = Result<pb::RecordedEvent, Status>> + Send>>;

/// What every handler shares.
pub(crate) struct Shared {
    pub log: Arc<dyn EventLog>,
    pub projection: Arc<Projection>,
    pub writer: Writer,
    pub limits: Limits,
}

/// `rapport.v1.Ledger`.
pub(crate) struct LedgerService(pub Arc<Shared>);

/// `rapport.v1.Accounts`.
pub(crate) struct AccountsService(pub Arc<Shared>);

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id, events = request.get_ref().events.len()))]
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let append = append_from_wire(request.get_ref(), &self.0.limits).map_err(AppendError::Invalid)?;
        let outcome = self.0.writer.append(append).await?;
        Ok(Response::new(outcome_to_wire(outcome)))
    }

    type ReadStreamStream = RecordedEventStream;

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn read_stream(
        &self,
        request: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<RecordedEventStream>, Status> {
        let request = request.into_inner();
        let account_id =
            account_id_from_wire(&request.account_id, "account_id", &self.0.limits).map_err(ReadError::Invalid)?;
        let projected = self.0.projection.get(&account_id).ok_or(ReadError::AccountNotFound(account_id.clone()))?;
        // Only durable events are shown: the projection's version is the durable head.
        let head = projected.account.version;
        let limit = limit_from_wire(request.limit);
        let log = Arc::clone(&self.0.log);
        let stream = if request.backwards {
            let mut next =
                if request.from_version == 0 || request.from_version > head { head } else { request.from_version };
            paged(limit.min(next), move |n| {
                let page = log.read_stream(&account_id, next, Direction::Backwards, n)?;
                next = page.last().map_or(0, |e| e.version.saturating_sub(1));
                Ok(page)
            })
        } else {
            let mut next = request.from_version.max(1);
            let available = (head + 1).saturating_sub(next);
            paged(limit.min(available), move |n| {
                let page = log.read_stream(&account_id, next, Direction::Forwards, n)?;
                next = page.last().map_or(next, |e| e.version + 1);
                Ok(page)
            })
        };
        Ok(Response::new(stream))
    }

    type ReadAllStream = RecordedEventStream;

    #[instrument(skip_all, fields(from_position = request.get_ref().from_position))]
    async fn read_all(&self, request: Request<pb::ReadAllRequest>) -> Result<Response<RecordedEventStream>, Status> {
        let request = request.into_inner();
        let durable = self.0.projection.durable_position();
        let mut next = request.from_position.max(1);
        let available = (durable + 1).saturating_sub(next);
        let log = Arc::clone(&self.0.log);
        let stream = paged(limit_from_wire(request.limit).min(available), move |n| {
            let page = log.read_all(next, n)?;
            next = page.last().map_or(next, |e| e.position + 1);
            Ok(page)
        });
        Ok(Response::new(stream))
    }
}

#[tonic::async_trait]
impl pb::accounts_server::Accounts for AccountsService {
    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Result<Response<pb::AccountView>, Status> {
        let account_id = account_id_from_wire(&request.get_ref().account_id, "account_id", &self.0.limits)
            .map_err(ReadError::Invalid)?;
        let projected = self.0.projection.get(&account_id).ok_or(ReadError::AccountNotFound(account_id))?;
        Ok(Response::new(account_to_wire(&projected.account, projected.position)))
    }
}

/// A read request's limit: 0 means no limit.
fn limit_from_wire(limit: u32) -> u64 {
    if limit == 0 { u64::MAX } else { u64::from(limit) }
}

/// Streams `total` events, fetched page by page on the blocking pool by `fetch` (which is
/// given the page size and keeps its own cursor). Pages are only fetched as the client reads,
/// so a slow reader holds no more than a page in memory.
fn paged<F>(total: u64, fetch: F) -> RecordedEventStream
where
    F: FnMut(usize) -> Result<Vec<StoredEvent>, ReadError> + Send + 'static,
{
    let pages = stream::unfold(Some((fetch, total)), |state| async move {
        let (mut fetch, remaining) = state?;
        if remaining == 0 {
            return None;
        }
        let size = remaining.min(PAGE);
        let fetched = tokio::task::spawn_blocking(move || {
            let page = fetch(size as usize);
            (fetch, page)
        })
        .await;
        match fetched {
            Err(error) => Some((vec![Err(Status::internal(format!("a read task failed: {error}")))], None)),
            Ok((_, Err(error))) => Some((vec![Err(Status::from(error))], None)),
            Ok((fetch, Ok(page))) => {
                let read = page.len() as u64;
                let events = page.iter().map(|r| recorded_to_wire(r).map_err(Status::from)).collect();
                // A short page means the range ended early; nothing more to fetch.
                let next = (read == size).then_some((fetch, remaining - read));
                Some((events, next))
            }
        }
    });
    Box::pin(pages.flat_map(stream::iter))
}
