//! `Ledger.AppendStream`: many appends over one HTTP/2 stream, each answered as soon as it is
//! durable, after KurrentDB's BatchAppend.
//!
//! One task per stream reads the requests in order and hands each to the writer as `Append`
//! does, waiting for it to join the writer's queue before reading the next, so the requests of
//! a stream are decided in the order they were sent. Its answers come back as their groups
//! become durable. Before it reads a request, the task takes a place for its answer in a
//! channel of `append_stream_window` places, which the answer holds until the client takes
//! it: so at most that many requests are unanswered or answered but not taken. With no place
//! free the task stops reading, the stream's HTTP/2 window fills, and the client's sends wait.
//! A refused request is answered with the status unary `Append` would have returned; the
//! stream goes on.

use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use rapport_domain::Violation;
use rapport_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::ledger::queue_append;
use crate::access::Caller;
use crate::error::AppendError;
use crate::state::AppState;
use crate::status::rpc_status;

/// The answers of an `AppendStream`, as the service returns them.
pub type AppendStreamAnswers = Pin<Box<dyn Stream<Item = Result<pb::AppendStreamResponse, Status>> + Send>>;

/// Starts answering `requests` on a task of its own; the answers, as they come.
pub(super) fn answer(
    state: Arc<AppState>,
    caller: Option<Arc<Caller>>,
    requests: Streaming<pb::AppendStreamRequest>,
) -> AppendStreamAnswers {
    // A place for each request of the window, from its reading until its answer is taken.
    let (answers, taken) = mpsc::channel(state.append_stream_window);
    tokio::spawn(run(state, caller, requests, answers));
    Box::pin(ReceiverStream::new(taken))
}

type Answers = mpsc::Sender<Result<pb::AppendStreamResponse, Status>>;

/// An answer's place in the channel, taken before its request is read.
type Place = mpsc::OwnedPermit<Result<pb::AppendStreamResponse, Status>>;

async fn run(
    state: Arc<AppState>,
    caller: Option<Arc<Caller>>,
    mut requests: Streaming<pb::AppendStreamRequest>,
    answers: Answers,
) {
    let mut closing = state.closing.clone();
    let mut place: Option<Place> = None;
    let mut unanswered = FuturesUnordered::new();
    let mut reading = true;
    loop {
        // Shutting down: nothing more is read, what was read is answered, and the client is
        // told to send the rest again (elsewhere, or once the server is back).
        if reading && *closing.borrow_and_update() {
            // The place held for the next request is the ending's.
            drop(place);
            return end(unanswered, &answers, Status::from(AppendError::ShuttingDown)).await;
        }
        tokio::select! {
            // What is durable is answered first, so that answers flow while the client keeps
            // sending.
            biased;
            Some(()) = unanswered.next(), if !unanswered.is_empty() => {}
            reserved = answers.clone().reserve_owned(), if reading && place.is_none() => match reserved {
                Ok(reserved) => place = Some(reserved),
                Err(_) => return, // The client went away; what it sent is still decided.
            },
            next = requests.message(), if reading && place.is_some() => match next {
                Ok(Some(request)) => {
                    // The branch runs only with a place taken.
                    let Some(place) = place.take() else { continue };
                    let correlation_id = request.correlation_id;
                    match queue(&state, caller.as_deref(), request).await {
                        Ok(pending) => {
                            let metrics = Arc::clone(&state.metrics);
                            unanswered.push(async move {
                                deliver(place, &metrics, correlation_id, pending.await);
                            });
                        }
                        Err(status) => deliver(place, &state.metrics, correlation_id, Err(status)),
                    }
                }
                Ok(None) => {
                    reading = false;
                    place = None;
                }
                // The stream itself broke (a message too large or undecodable, a reset): what
                // was read is still answered, then the stream ends with the reason.
                Err(status) => {
                    drop(place);
                    return end(unanswered, &answers, status).await;
                }
            },
            _ = closing.changed(), if reading => {}
            else => return,
        }
    }
}

/// Answers what is unanswered, then ends the stream with `status`.
async fn end(mut unanswered: FuturesUnordered<impl Future<Output = ()>>, answers: &Answers, status: Status) {
    while unanswered.next().await.is_some() {}
    let _ = answers.send(Err(status)).await;
}

/// Puts a request's answer in its place, counting a refusal as a unary one is counted.
fn deliver(
    place: Place,
    metrics: &crate::metrics::Metrics,
    correlation_id: u64,
    outcome: Result<pb::AppendResponse, Status>,
) {
    use pb::append_stream_response::Outcome;
    let outcome = match outcome {
        Ok(appended) => Outcome::Appended(appended),
        Err(status) => {
            metrics.refused_in_stream(status.code());
            Outcome::Error(rpc_status(&status))
        }
    };
    place.send(Ok(pb::AppendStreamResponse { correlation_id, outcome: Some(outcome) }));
}

/// Queues one request of the stream with the writer, as `Append` does.
async fn queue(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    request: pb::AppendStreamRequest,
) -> Result<impl Future<Output = Result<pb::AppendResponse, Status>> + Send + 'static, Status> {
    let request = request.request.ok_or_else(|| {
        AppendError::Invalid(Violation::new("request", "missing: each AppendStreamRequest carries one AppendRequest"))
    })?;
    queue_append(state, caller, request).await
}
