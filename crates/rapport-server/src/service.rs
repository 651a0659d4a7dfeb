//! The gRPC services: thin handlers that parse the request (`convert`), ask the writer or the
//! projection, and render the answer. Errors become statuses in `status.rs`.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use rapport_domain::Limits;
use rapport_proto::v1 as pb;
use rapport_store::{ChainBreak, ChainCheck, Direction, EventLog, StoredEvent, hex};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::access::Caller;
use crate::convert::cut_from_wire;
use crate::convert::{
    account_id_from_wire, account_to_wire, append_from_wire, chain_break_to_wire, contact_id_from_wire,
    handover_to_wire, movement_to_wire, outcome_to_wire, recorded_to_wire, register_to_wire,
};
use crate::error::{AppendError, ReadError};
use crate::portfolio::PortfolioQuery;
use crate::projection::{Build, Cut, Projections, replay_as_of};
use crate::writer::Writer;
use rapport_projection::{AccountProjection, RuleSet, compare, gift_register, handover, scores};

/// Events read from the log per step of a streamed read.
const PAGE: u64 = 512;

/// A stream of recorded events, as the read RPCs return it.
pub type RecordedEventStream = Pin<Box<dyn Stream<Item = Result<pb::RecordedEvent, Status>> + Send>>;

/// What every handler shares.
pub(crate) struct Shared {
    pub log: Arc<dyn EventLog>,
    pub projections: Arc<Projections>,
    pub writer: Writer,
    pub limits: Limits,
    pub clock: crate::Clock,
    /// Turns true when the server starts shutting down; subscriptions end with a reason.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// How long a subscription waits for its client before it ends.
    pub subscriber_stall_timeout: std::time::Duration,
    /// Open subscriptions per client.
    pub subscribers: crate::subscribe::Subscribers,
}

/// `rapport.v1.Ledger`.
pub(crate) struct LedgerService(pub Arc<Shared>);

/// `rapport.v1.Accounts`.
pub(crate) struct AccountsService(pub Arc<Shared>);

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id, events = request.get_ref().events.len()))]
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let caller = request.extensions().get::<Arc<Caller>>().cloned();
        let mut request = request.into_inner();
        let recorded_by = match caller {
            Some(caller) => {
                caller.assign_actors(&mut request.events)?;
                caller.identity.clone()
            }
            None => String::new(),
        };
        let append = append_from_wire(&request, recorded_by, &self.0.limits).map_err(AppendError::Invalid)?;
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
        let projected =
            self.0.projections.active().get(&account_id)?.ok_or(ReadError::AccountNotFound(account_id.clone()))?;
        // Only durable events are shown: the projection's version is the durable head.
        let head = projected.account.version;
        let retracted = projected.account.retracted.clone();
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
        // Corrections are shown where they apply: each retracted event names its retraction.
        let stream = stream.map(move |event| {
            event.map(|mut event| {
                if let Some(id) = event.event.as_ref().and_then(|e| rapport_domain::EventId::parse(&e.event_id).ok()) {
                    event.retracted_by = retracted.get(&id).copied().unwrap_or(0);
                }
                event
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type ReadAllStream = RecordedEventStream;

    #[instrument(skip_all, fields(from_position = request.get_ref().from_position))]
    async fn read_all(&self, request: Request<pb::ReadAllRequest>) -> Result<Response<RecordedEventStream>, Status> {
        let request = request.into_inner();
        let durable = self.0.projections.durable_position();
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

    type SubscribeStream = crate::subscribe::SubscriptionStream;

    #[instrument(skip_all, fields(from_position = request.get_ref().from_position))]
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<crate::subscribe::SubscriptionStream>, Status> {
        // A client is its token's identity, or else where it connects from.
        let client = match (request.extensions().get::<Arc<Caller>>(), request.remote_addr()) {
            (Some(caller), _) => format!("token \"{}\"", caller.identity),
            (None, Some(address)) => format!("client {}", address.ip()),
            (None, None) => "the client".to_owned(),
        };
        Ok(Response::new(crate::subscribe::subscribe(Arc::clone(&self.0), request.get_ref(), client)?))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        let shared = Arc::clone(&self.0);
        let request = request.into_inner();
        let response = blocking(move || {
            let account_id = if request.account_id.is_empty() {
                None
            } else {
                let id = account_id_from_wire(&request.account_id, "account_id", &shared.limits)
                    .map_err(ReadError::Invalid)?;
                shared.projections.active().get(&id)?.ok_or_else(|| ReadError::AccountNotFound(id.clone()))?;
                Some(id)
            };
            let (check, found) =
                verify_log(shared.log.as_ref(), account_id.as_ref(), shared.projections.durable_position())?;
            Ok(pb::VerifyResponse {
                intact: found.is_none(),
                events_checked: check.events(),
                streams_checked: check.streams_seen() as u64,
                last_position: check.position(),
                first_break: found.map(|b| chain_break_to_wire(&b)),
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(position = request.get_ref().position))]
    async fn digest(&self, request: Request<pb::DigestRequest>) -> Result<Response<pb::DigestResponse>, Status> {
        let shared = Arc::clone(&self.0);
        let requested = request.into_inner().position;
        let durable = shared.projections.durable_position();
        if requested > durable {
            return Err(Status::out_of_range(format!(
                "position: {requested} is beyond the end of the log ({durable}); ask for {durable} or less, or 0 for the end"
            )));
        }
        let position = if requested == 0 { durable } else { requested };
        let response = blocking(move || {
            let (check, found) = verify_log(shared.log.as_ref(), None, position)?;
            if let Some(found) = found {
                return Err(ReadError::Corrupt(format!(
                    "the log's hash chain is broken, so it has no digest: {found}"
                )));
            }
            Ok(pb::DigestResponse { position, digest: hex(&check.digest()), streams: check.streams_seen() as u64 })
        })
        .await?;
        Ok(Response::new(response))
    }
}

impl Shared {
    /// The build a request names (`name@version`), or the active one.
    fn build(&self, rule_set: &str) -> Result<Arc<Build>, ReadError> {
        self.projections.build(rule_set).ok_or_else(|| ReadError::RuleSetNotFound {
            id: rule_set.to_owned(),
            available: self.projections.builds().iter().map(|b| b.id.clone()).collect(),
        })
    }

    /// An account as a build holds it.
    fn account(&self, build: &Build, account_id: &str) -> Result<Arc<AccountProjection>, ReadError> {
        let account_id = self.account_id(account_id)?;
        build.get(&account_id)?.ok_or(ReadError::AccountNotFound(account_id))
    }

    /// An account as it stands now, scored by the build's rules.
    fn current_view(&self, build: &Build, projected: &AccountProjection) -> pb::AccountView {
        account_to_wire(projected, &build.rules, &scores(projected, &build.rules, (self.clock)()))
    }

    /// A request's `account_id`, checked.
    fn account_id(&self, account_id: &str) -> Result<rapport_domain::AccountId, ReadError> {
        account_id_from_wire(account_id, "account_id", &self.limits).map_err(ReadError::Invalid)
    }
}

/// Runs blocking work (store reads, scoring a portfolio) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(error) => Err(Status::internal(format!("a read task failed: {error}"))),
    }
}

#[tonic::async_trait]
impl pb::accounts_server::Accounts for AccountsService {
    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Result<Response<pb::AccountView>, Status> {
        let shared = Arc::clone(&self.0);
        let request = request.into_inner();
        let cut = cut_from_wire(&request)?;
        // The current state of an account held in memory is answered here, on the async
        // worker: scoring one account is short, and a hop to the blocking pool would cost
        // more than it under load. Past states and accounts not read yet take that hop.
        if cut.is_none() {
            let build = shared.build(&request.rule_set)?;
            let account_id = shared.account_id(&request.account_id)?;
            if let Some(known) = build.in_memory(&account_id) {
                let projected = known.ok_or(ReadError::AccountNotFound(account_id))?;
                return Ok(Response::new(shared.current_view(&build, &projected)));
            }
        }
        let view = blocking(move || {
            let build = shared.build(&request.rule_set)?;
            let projected = shared.account(&build, &request.account_id)?;
            let Some(cut) = cut else { return Ok(shared.current_view(&build, &projected)) };
            let account_id = projected.account.id.clone();
            let durable = shared.projections.durable_position();
            let past = replay_as_of(shared.log.as_ref(), &build.rules, &account_id, durable, cut)?
                .ok_or_else(|| ReadError::NotYetOpened(account_id.clone()))?;
            let at = match cut {
                Cut::Known(at) | Cut::Occurred(at) => at,
                Cut::Version(_) => past.recorded_at,
            };
            Ok(account_to_wire(&past, &build.rules, &scores(&past, &build.rules, at)))
        })
        .await?;
        Ok(Response::new(view))
    }

    #[instrument(skip_all)]
    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let shared = Arc::clone(&self.0);
        let request = request.into_inner();
        let query = PortfolioQuery::from_wire(&request, (shared.clock)())?;
        let response = blocking(move || {
            let build = shared.build(&request.rule_set)?;
            let (accounts, _, _) = build.all()?;
            Ok(query.run(&accounts, &build.rules))
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn handover(&self, request: Request<pb::HandoverRequest>) -> Result<Response<pb::HandoverReport>, Status> {
        let shared = Arc::clone(&self.0);
        let request = request.into_inner();
        let report = blocking(move || {
            let build = shared.build(&request.rule_set)?;
            let projected = shared.account(&build, &request.account_id)?;
            let as_of = (shared.clock)();
            let report = handover(&projected, &build.rules, as_of);
            Ok(handover_to_wire(&projected.account.id, &report, as_of, build.id.clone()))
        })
        .await?;
        Ok(Response::new(report))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn gift_register(
        &self,
        request: Request<pb::GiftRegisterRequest>,
    ) -> Result<Response<pb::GiftRegisterView>, Status> {
        let shared = Arc::clone(&self.0);
        let request = request.into_inner();
        let register = blocking(move || {
            let build = shared.build(&request.rule_set)?;
            let projected = shared.account(&build, &request.account_id)?;
            let contact = if request.contact_id.is_empty() {
                None
            } else {
                Some(
                    contact_id_from_wire(&request.contact_id, "contact_id", &shared.limits)
                        .map_err(ReadError::Invalid)?,
                )
            };
            let register = gift_register(&projected, &build.rules, (shared.clock)(), contact.as_ref());
            Ok(register_to_wire(&projected.account.id, &register, build.id.clone()))
        })
        .await?;
        Ok(Response::new(register))
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

/// `rapport.v1.Projections`.
pub(crate) struct ProjectionsService(pub Arc<Shared>);

/// How often a rebuild's progress is reported at most.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The stream of a rebuild's progress.
pub type RebuildProgressStream = Pin<Box<dyn Stream<Item = Result<pb::RebuildProgress, Status>> + Send>>;

#[tonic::async_trait]
impl pb::projections_server::Projections for ProjectionsService {
    type RebuildStream = RebuildProgressStream;

    #[instrument(skip_all)]
    async fn rebuild(&self, request: Request<pb::RebuildRequest>) -> Result<Response<RebuildProgressStream>, Status> {
        let request = request.into_inner();
        let rules = RuleSet::parse(&request.rule_set).map_err(ReadError::from)?;
        let shared = Arc::clone(&self.0);
        let build = {
            let shared = Arc::clone(&shared);
            blocking(move || shared.projections.start_build(rules, request.from_scratch)).await?
        };
        let watch = RebuildWatch {
            started: std::time::Instant::now(),
            from: build.position(),
            progress: build.progress(),
            build,
            finish_at: None,
        };
        let steps = stream::unfold(Some(watch), move |state| {
            let shared = Arc::clone(&shared);
            async move {
                let mut watch = state?;
                let step = watch.next(&shared).await;
                let more = matches!(&step, Ok(p) if !p.caught_up);
                Some((step, more.then_some(watch)))
            }
        });
        Ok(Response::new(Box::pin(steps)))
    }

    #[instrument(skip_all, fields(rule_set = %request.get_ref().rule_set))]
    async fn activate(&self, request: Request<pb::ActivateRequest>) -> Result<Response<pb::ActivateResponse>, Status> {
        let id = request.into_inner().rule_set;
        if id.is_empty() {
            return Err(ReadError::Invalid(
                rapport_domain::InvalidValue::new("is required; name a built rule set as name@version").at("rule_set"),
            )
            .into());
        }
        let build = self.0.build(&id)?;
        let previous = self.0.writer.activate(Arc::clone(&build)).await?;
        Ok(Response::new(pb::ActivateResponse { rule_set: build.id.clone(), previous, position: build.position() }))
    }

    #[instrument(skip_all)]
    async fn list_rule_sets(
        &self,
        _request: Request<pb::ListRuleSetsRequest>,
    ) -> Result<Response<pb::ListRuleSetsResponse>, Status> {
        let shared = Arc::clone(&self.0);
        let rule_sets = blocking(move || {
            let active = shared.projections.active();
            let log_position = shared.projections.durable_position();
            let mut infos = Vec::new();
            for build in shared.projections.builds() {
                let (digest, position, accounts) = build.digest()?;
                infos.push(pb::RuleSetInfo {
                    id: build.id.clone(),
                    name: build.rules.name.clone(),
                    version: build.rules.version,
                    active: Arc::ptr_eq(&build, &active),
                    position,
                    log_position,
                    digest,
                    accounts: accounts as u64,
                    rules: build.rules.to_toml(),
                });
            }
            Ok(infos)
        })
        .await?;
        Ok(Response::new(pb::ListRuleSetsResponse { rule_sets }))
    }

    #[instrument(skip_all)]
    async fn compare(&self, request: Request<pb::CompareRequest>) -> Result<Response<pb::CompareResponse>, Status> {
        let shared = Arc::clone(&self.0);
        let request = request.into_inner();
        let response = blocking(move || {
            let (a, b) = (shared.build(&request.rule_set_a)?, shared.build(&request.rule_set_b)?);
            let as_of = (shared.clock)();
            let (accounts, _, _) = a.all()?;
            let mut movements = Vec::with_capacity(accounts.len());
            for account in &accounts {
                let Some(other) = b.get(&account.account.id)? else { continue };
                movements.push(compare(account, &a.rules, &other, &b.rules, as_of));
            }
            movements.sort_by(|x, y| {
                y.largest_change.total_cmp(&x.largest_change).then_with(|| x.account_id.cmp(&y.account_id))
            });
            let limit = if request.limit == 0 { 20 } else { request.limit as usize };
            Ok(pb::CompareResponse {
                accounts: movements.iter().take(limit).map(movement_to_wire).collect(),
                as_of: Some(crate::convert::timestamp_to_wire(as_of)),
            })
        })
        .await?;
        Ok(Response::new(response))
    }
}

/// One client's view of a build's progress, for the `Rebuild` stream.
struct RebuildWatch {
    build: Arc<Build>,
    progress: tokio::sync::watch::Receiver<u64>,
    started: std::time::Instant,
    /// The build's position when the client started watching.
    from: u64,
    /// Once the build is within a chunk of the log: the durable position it must reach before
    /// the final message (so that a quiet log gives a digest at its very end).
    finish_at: Option<u64>,
}

impl RebuildWatch {
    /// The next message: progress while the build catches up, then the final one with the
    /// digest.
    async fn next(&mut self, shared: &Shared) -> Result<pb::RebuildProgress, Status> {
        loop {
            if !shared.projections.is_registered(&self.build) {
                return Err(Status::aborted(format!(
                    "the build of {} was replaced by a rebuild from scratch; run Rebuild again to follow the new one",
                    self.build.id
                )));
            }
            let total = shared.projections.durable_position();
            if self.finish_at.is_none() && shared.projections.is_caught_up(&self.build) {
                self.finish_at = Some(total);
            }
            let done = self.build.position();
            let elapsed = self.started.elapsed().as_secs_f64();
            let rate = if elapsed > 0.0 { done.saturating_sub(self.from) as f64 / elapsed } else { 0.0 };
            if self.finish_at.is_some_and(|target| done >= target) {
                let build = Arc::clone(&self.build);
                let (digest, position, _) = blocking(move || build.digest()).await?;
                return Ok(pb::RebuildProgress {
                    rule_set: self.build.id.clone(),
                    events_done: position,
                    events_total: position.max(total),
                    events_per_second: rate,
                    eta_seconds: 0.0,
                    caught_up: true,
                    digest,
                });
            }
            let _ = tokio::time::timeout(PROGRESS_EVERY, self.progress.changed()).await;
            if self.finish_at.is_none() {
                return Ok(pb::RebuildProgress {
                    rule_set: self.build.id.clone(),
                    events_done: done,
                    events_total: total,
                    events_per_second: rate,
                    eta_seconds: if rate > 0.0 { total.saturating_sub(done) as f64 / rate } else { 0.0 },
                    caught_up: false,
                    digest: String::new(),
                });
            }
        }
    }
}

/// Checks chains in the log up to the durable position: the whole log, or one stream.
pub(crate) fn verify_log(
    log: &dyn EventLog,
    account_id: Option<&rapport_domain::AccountId>,
    up_to: u64,
) -> Result<(ChainCheck, Option<ChainBreak>), ReadError> {
    let mut check = if account_id.is_some() { ChainCheck::streams() } else { ChainCheck::whole_log() };
    let mut next = 1;
    loop {
        let page = match account_id {
            Some(id) => log.read_stream(id, next, Direction::Forwards, PAGE as usize)?,
            None if next > up_to => Vec::new(),
            None => log.read_all(next, (up_to - next + 1).min(PAGE * 8) as usize)?,
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
