//! `rapport.v1.Projections`: rebuilds under a rule set with their progress, activation, the
//! list of builds and comparisons between two of them.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, stream};
use rapport_projection::{Playbook, RuleSet, compare, playbook_touches};
use rapport_proto::v1 as pb;
use rapport_wire::practice::{playbook_to_wire, playbook_window};
use rapport_wire::replies::{
    BuildInfo, activate_response, compare_response, rebuild_progress, rule_set_info, rule_sets_response,
};
use rapport_wire::requests::required_rule_set;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{blocking, read_up_to};
use crate::error::ReadError;
use crate::projection::Build;
use crate::state::AppState;

/// How often a rebuild's progress is reported at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Accounts a comparison lists when the request does not say.
const COMPARE_LIMIT: usize = 20;

/// The stream of a rebuild's progress.
pub type RebuildProgressStream = Pin<Box<dyn Stream<Item = Result<pb::RebuildProgress, Status>> + Send>>;

/// `rapport.v1.Projections`.
pub(crate) struct ProjectionsService(pub Arc<AppState>);

#[tonic::async_trait]
impl pb::projections_server::Projections for ProjectionsService {
    type RebuildStream = RebuildProgressStream;

    #[instrument(skip_all)]
    async fn rebuild(&self, request: Request<pb::RebuildRequest>) -> Result<Response<RebuildProgressStream>, Status> {
        let request = request.into_inner();
        let rules = RuleSet::parse(&request.rule_set).map_err(ReadError::from)?;
        let state = Arc::clone(&self.0);
        let build = {
            let state = Arc::clone(&state);
            blocking(move || state.projections.start_build(rules, request.from_scratch)).await?
        };
        let watch = RebuildWatch {
            started: Instant::now(),
            from: build.position(),
            progress: build.progress(),
            build,
            finish_at: None,
        };
        let steps = stream::unfold(Some(watch), move |watch| {
            let state = Arc::clone(&state);
            async move {
                let mut watch = watch?;
                let step = watch.next(&state).await.map_err(Status::from);
                let more = matches!(&step, Ok(p) if !p.caught_up);
                Some((step, more.then_some(watch)))
            }
        });
        Ok(Response::new(Box::pin(steps)))
    }

    #[instrument(skip_all, fields(rule_set = %request.get_ref().rule_set))]
    async fn activate(&self, request: Request<pb::ActivateRequest>) -> Result<Response<pb::ActivateResponse>, Status> {
        let request = request.into_inner();
        let id = required_rule_set(&request.rule_set).map_err(ReadError::Invalid)?;
        let build = self.0.build(id)?;
        let previous = self.0.writer.activate(Arc::clone(&build)).await?;
        Ok(Response::new(activate_response(&build.id, previous, build.position())))
    }

    #[instrument(skip_all)]
    async fn list_rule_sets(
        &self,
        _request: Request<pb::ListRuleSetsRequest>,
    ) -> Result<Response<pb::ListRuleSetsResponse>, Status> {
        let state = Arc::clone(&self.0);
        let rule_sets = blocking(move || {
            let active = state.projections.active();
            let log_position = state.projections.durable_position();
            let mut infos = Vec::new();
            for build in state.projections.builds() {
                let (digest, position, accounts) = build.digest()?;
                infos.push(rule_set_info(BuildInfo {
                    rules: &build.rules,
                    active: Arc::ptr_eq(&build, &active),
                    position,
                    log_position,
                    digest: &digest,
                    accounts: accounts as u64,
                }));
            }
            Ok(infos)
        })
        .await?;
        Ok(Response::new(rule_sets_response(rule_sets)))
    }

    #[instrument(skip_all)]
    async fn compare(&self, request: Request<pb::CompareRequest>) -> Result<Response<pb::CompareResponse>, Status> {
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let response = blocking(move || {
            let (a, b) = (state.build(&request.rule_set_a)?, state.build(&request.rule_set_b)?);
            let as_of = (state.clock)();
            let (accounts, _, _) = a.all()?;
            let mut movements = Vec::with_capacity(accounts.len());
            for account in &accounts {
                let Some(other) = b.get(&account.account.id)? else { continue };
                movements.push(compare(account, &a.rules, &other, &b.rules, as_of));
            }
            movements.sort_by(|x, y| {
                y.largest_change.total_cmp(&x.largest_change).then_with(|| x.account_id.cmp(&y.account_id))
            });
            let limit = if request.limit == 0 { COMPARE_LIMIT } else { request.limit as usize };
            movements.truncate(limit);
            Ok(compare_response(&movements, as_of))
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all)]
    async fn playbook(&self, request: Request<pb::PlaybookRequest>) -> Result<Response<pb::PlaybookResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let (from, to) = playbook_window(&request, (state.clock)()).map_err(ReadError::Invalid)?;
        let response = blocking(move || {
            let build = state.build(&request.rule_set)?;
            let (accounts, _, _) = build.all()?;
            let mut playbook = Playbook::new(&build.rules, from, to);
            for projected in &accounts {
                let tier = projected.account.tier.as_ref().filter(|t| t.since <= to).map(|t| t.tier);
                playbook.add(tier, &playbook_touches(projected, &build.rules, from, to));
            }
            Ok(playbook_to_wire(&playbook.finish(), accounts.len() as u32, build.id.clone()))
        })
        .await?;
        Ok(Response::new(response))
    }
}

/// One client's view of a build's progress, for the `Rebuild` stream.
struct RebuildWatch {
    build: Arc<Build>,
    progress: watch::Receiver<u64>,
    started: Instant,
    /// The build's position when the client started watching.
    from: u64,
    /// Once the build is within a chunk of the log: the durable position it must reach before
    /// the final message (so that a quiet log gives a digest at its very end).
    finish_at: Option<u64>,
}

impl RebuildWatch {
    /// The next message: progress while the build catches up, then the final one with the
    /// digest.
    async fn next(&mut self, state: &AppState) -> Result<pb::RebuildProgress, ReadError> {
        loop {
            if !state.projections.is_registered(&self.build) {
                return Err(ReadError::Replaced(self.build.id.clone()));
            }
            let total = state.projections.durable_position();
            if self.finish_at.is_none() && state.projections.is_caught_up(&self.build) {
                self.finish_at = Some(total);
            }
            let done = self.build.position();
            let elapsed = self.started.elapsed().as_secs_f64();
            let rate = if elapsed > 0.0 { done.saturating_sub(self.from) as f64 / elapsed } else { 0.0 };
            if self.finish_at.is_some_and(|target| done >= target) {
                let build = Arc::clone(&self.build);
                let (digest, position, _) = tokio::task::spawn_blocking(move || build.digest()).await??;
                return Ok(rebuild_progress(&self.build.id, position, position.max(total), rate, Some(digest)));
            }
            let _ = tokio::time::timeout(PROGRESS_EVERY, self.progress.changed()).await;
            if self.finish_at.is_none() {
                return Ok(rebuild_progress(&self.build.id, done, total, rate, None));
            }
        }
    }
}
