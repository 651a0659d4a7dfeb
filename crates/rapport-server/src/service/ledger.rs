//! `rapport.v1.Ledger`: appends, reads of a stream and of the log, subscriptions, chain checks
//! and the log's digest.

use std::sync::Arc;

use futures::StreamExt;
use rapport_domain::AccountId;
use rapport_proto::framed::decode_frames;
use rapport_proto::v1 as pb;
use rapport_store::{ChainBreak, ChainCheck, Direction, EventLog};
use rapport_wire::replies::{digest_response, verify_response};
use rapport_wire::requests::read_limit;
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use super::append_stream::{self, AppendStreamAnswers};
use super::{RecordedEventStream, blocking, paged, read_up_to};
use crate::access::Caller;
use crate::append::Append;
use crate::error::ReadError;
use crate::state::AppState;
use crate::subscribe::{SubscriptionStream, subscribe};

/// A subscription's messages, decoded.
pub(crate) type DecodedSubscription =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

/// The subscription `request` asks for, counted against its client: its token's identity, or
/// else where it connects from.
#[instrument(skip_all, fields(from_position = request.get_ref().from_position))]
pub(super) fn subscription(
    state: &Arc<AppState>,
    request: &Request<pb::SubscribeRequest>,
) -> Result<SubscriptionStream, Status> {
    let client = match (request.extensions().get::<Arc<Caller>>(), request.remote_addr()) {
        (Some(caller), _) => format!("token \"{}\"", caller.identity),
        (None, Some(address)) => format!("client {}", address.ip()),
        (None, None) => "the client".to_owned(),
    };
    Ok(subscribe(Arc::clone(state), request.get_ref(), client)?)
}

/// An append as `Append` and `AppendStream` both take it: the events' actors checked against
/// the caller, the request parsed and sealed, and queued with the writer. Returns once it is
/// queued, so that appends queued one after the other are decided in that order; the future
/// returned completes once the events are durable (or the append failed).
pub(super) async fn queue_append(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    mut request: pb::AppendRequest,
) -> Result<impl Future<Output = Result<pb::AppendResponse, Status>> + Send + 'static, Status> {
    let recorded_by = match caller {
        Some(caller) => {
            caller.assign_actors(&mut request.events)?;
            caller.identity.clone()
        }
        None => String::new(),
    };
    let append = Append::from_wire(request, recorded_by, &state.limits, &state.personal).await?;
    let kinds: Vec<_> = append.events.iter().map(|event| event.body.kind()).collect();
    let appended = state.writer.submit(append).await?;
    let metrics = Arc::clone(&state.metrics);
    Ok(async move {
        let outcome = appended.await?;
        let recorded = if outcome.duplicate { &[][..] } else { &kinds[..] };
        metrics.appended(recorded.iter().map(|kind| kind.name()));
        Ok(outcome.to_wire())
    })
}

/// Events checked per step of a whole-log check.
const CHECK_PAGE: usize = 4_096;

/// `rapport.v1.Ledger`.
pub(crate) struct LedgerService(pub Arc<AppState>);

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id, events = request.get_ref().events.len()))]
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let caller = request.extensions().get::<Arc<Caller>>().cloned();
        let appended = queue_append(&self.0, caller.as_deref(), request.into_inner()).await?;
        Ok(Response::new(appended.await?))
    }

    type AppendStreamStream = AppendStreamAnswers;

    #[instrument(skip_all)]
    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendStreamRequest>>,
    ) -> Result<Response<AppendStreamAnswers>, Status> {
        let caller = request.extensions().get::<Arc<Caller>>().cloned();
        Ok(Response::new(append_stream::answer(Arc::clone(&self.0), caller, request.into_inner())))
    }

    type ReadStreamStream = RecordedEventStream;

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn read_stream(
        &self,
        request: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<RecordedEventStream>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let request = request.into_inner();
        let account_id = self.0.account_id(&request.account_id)?;
        let projected =
            self.0.projections.active().get(&account_id)?.ok_or(ReadError::AccountNotFound(account_id.clone()))?;
        // Only durable events are shown: the projection's version is the durable head.
        let head = projected.account.version;
        let limit = read_limit(request.limit);
        let (log, state) = (Arc::clone(&self.0.log), Arc::clone(&self.0));
        let render = move |page: &[rapport_store::StoredEvent]| state.recorded_to_wire(page);
        let stream = if request.backwards {
            let mut next =
                if request.from_version == 0 || request.from_version > head { head } else { request.from_version };
            paged(
                limit.min(next),
                move |n| {
                    let page = log.read_stream(&account_id, next, Direction::Backwards, n)?;
                    next = page.last().map_or(0, |e| e.version.saturating_sub(1));
                    Ok(page)
                },
                render,
            )
        } else {
            let mut next = request.from_version.max(1);
            let available = (head + 1).saturating_sub(next);
            paged(
                limit.min(available),
                move |n| {
                    let page = log.read_stream(&account_id, next, Direction::Forwards, n)?;
                    next = page.last().map_or(next, |e| e.version + 1);
                    Ok(page)
                },
                render,
            )
        };
        Ok(Response::new(stream))
    }

    type ReadAllStream = RecordedEventStream;

    #[instrument(skip_all, fields(from_position = request.get_ref().from_position))]
    async fn read_all(&self, request: Request<pb::ReadAllRequest>) -> Result<Response<RecordedEventStream>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let request = request.into_inner();
        let durable = self.0.projections.durable_position();
        let mut next = request.from_position.max(1);
        let available = (durable + 1).saturating_sub(next);
        let (log, state) = (Arc::clone(&self.0.log), Arc::clone(&self.0));
        let stream = paged(
            read_limit(request.limit).min(available),
            move |n| {
                let page = log.read_all(next, n)?;
                next = page.last().map_or(next, |e| e.position + 1);
                Ok(page)
            },
            move |page| state.recorded_to_wire(page),
        );
        Ok(Response::new(stream))
    }

    type SubscribeStream = DecodedSubscription;

    /// The server answers `Subscribe` on its own route ([`super::SubscribeRoute`]), which sends
    /// the subscription's framed messages as they are; this is the same subscription for a
    /// `LedgerServer` served without that route, its messages decoded again.
    async fn subscribe(&self, request: Request<pb::SubscribeRequest>) -> Result<Response<DecodedSubscription>, Status> {
        let framed = subscription(&self.0, &request)?;
        let decoded = framed.flat_map(|sent| {
            let messages = sent.and_then(decode_frames::<pb::SubscribeResponse>);
            let messages: Vec<Result<pb::SubscribeResponse, Status>> = match messages {
                Ok(messages) => messages.into_iter().map(Ok).collect(),
                Err(status) => vec![Err(status)],
            };
            futures::stream::iter(messages)
        });
        Ok(Response::new(Box::pin(decoded)))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let response = blocking(move || {
            let account_id = if request.account_id.is_empty() {
                None
            } else {
                let id = state.account_id(&request.account_id)?;
                state.projections.active().get(&id)?.ok_or_else(|| ReadError::AccountNotFound(id.clone()))?;
                Some(id)
            };
            let (check, found) =
                verify_log(state.log.as_ref(), account_id.as_ref(), state.projections.durable_position())?;
            Ok(verify_response(&check, found.as_ref()))
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(position = request.get_ref().position))]
    async fn digest(&self, request: Request<pb::DigestRequest>) -> Result<Response<pb::DigestResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let requested = request.into_inner().position;
        let durable = state.projections.durable_position();
        if requested > durable {
            return Err(ReadError::BeyondEnd { field: "position", requested, end: durable }.into());
        }
        let position = if requested == 0 { durable } else { requested };
        let response = blocking(move || {
            let (check, found) = verify_log(state.log.as_ref(), None, position)?;
            if let Some(found) = found {
                return Err(ReadError::Corrupt(format!(
                    "the log's hash chain is broken, so it has no digest: {found}"
                )));
            }
            Ok(digest_response(position, &check.digest(), check.streams_seen() as u64))
        })
        .await?;
        Ok(Response::new(response))
    }
}

/// Checks chains in the log up to the durable position `up_to`: the whole log, or one stream.
fn verify_log(
    log: &dyn EventLog,
    account_id: Option<&AccountId>,
    up_to: u64,
) -> Result<(ChainCheck, Option<ChainBreak>), ReadError> {
    let mut check = if account_id.is_some() { ChainCheck::streams() } else { ChainCheck::whole_log() };
    let mut next = 1;
    loop {
        let page = match account_id {
            Some(id) => log.read_stream(id, next, Direction::Forwards, CHECK_PAGE)?,
            None if next > up_to => Vec::new(),
            None => log.read_all(next, (up_to - next + 1).min(CHECK_PAGE as u64) as usize)?,
        };
        let Some(last) = page.last() else { break };
        next = if account_id.is_some() { last.version + 1 } else { last.position + 1 };
        for event in &page {
            if event.position > up_to {
                return Ok((check, None));
            }
            if let Err(found) = check.check(event) {
                return Ok((check, Some(found)));
            }
        }
    }
    Ok((check, None))
}
