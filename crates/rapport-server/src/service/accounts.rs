//! `rapport.v1.Accounts`: an account now or as it was, the portfolio, the handover report and
//! the gift register, all read from a build.

use std::sync::Arc;

use rapport_projection::{AccountProjection, Contributions, contributions, gift_register, handover, practice, scores};
use rapport_proto::v1 as pb;
use rapport_wire::practice::{
    contributions_period, contributions_to_wire, overdue_executive_to_wire, overdue_to_wire, owned_and_tiered,
    plan_status, plan_to_wire, plan_urgency,
};
use rapport_wire::requests::{cut, optional_contact_id, optional_staff, optional_tier, portfolio_query};
use rapport_wire::views::Opener;
use rapport_wire::views::{account_to_wire, handover_to_wire, portfolio_page_to_wire, register_to_wire};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{blocking, read_up_to};
use crate::error::ReadError;
use crate::error::ReadError::Invalid;
use crate::projection::{Build, quantised, replay_as_of};
use crate::state::AppState;

/// `rapport.v1.Accounts`.
pub(crate) struct AccountsService(pub Arc<AppState>);

/// An account as it stands now, scored by the build's rules at the server's time.
fn current_view(state: &AppState, build: &Build, projected: &AccountProjection) -> pb::AccountView {
    account_to_wire(projected, &build.rules, &scores(projected, &build.rules, (state.clock)()), &state.personal)
}

#[tonic::async_trait]
impl pb::accounts_server::Accounts for AccountsService {
    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Result<Response<pb::AccountView>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let request = request.into_inner();
        let cut = cut(&request).map_err(ReadError::Invalid)?;
        let build = self.0.build(&request.rule_set)?;
        let account_id = self.0.account_id(&request.account_id)?;
        // The current state of an account held in memory is answered here, on the async
        // worker: scoring one account is short, and a hop to the blocking pool would cost
        // more than it under load. Past states and accounts not read yet take that hop.
        if cut.is_none()
            && let Some(known) = build.in_memory(&account_id)
        {
            let projected = known.ok_or(ReadError::AccountNotFound(account_id))?;
            return Ok(Response::new(current_view(&self.0, &build, &projected)));
        }
        let state = Arc::clone(&self.0);
        let view = blocking(move || {
            let projected = build.get(&account_id)?.ok_or_else(|| ReadError::AccountNotFound(account_id.clone()))?;
            let Some(cut) = cut else { return Ok(current_view(&state, &build, &projected)) };
            let durable = state.projections.durable_position();
            let past = replay_as_of(state.log.as_ref(), &build.rules, &account_id, durable, cut)?
                .ok_or(ReadError::NotYetOpened(account_id))?;
            Ok(account_to_wire(&past, &build.rules, &scores(&past, &build.rules, cut.instant(&past)), &state.personal))
        })
        .await?;
        Ok(Response::new(view))
    }

    #[instrument(skip_all)]
    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let now = quantised((state.clock)(), state.listing_quantum);
        let query = portfolio_query(&request, now).map_err(ReadError::Invalid)?;
        let response = blocking(move || {
            let build = state.build(&request.rule_set)?;
            let first_page = request.page_token.is_empty();
            build.list(query, first_page, state.listing_quantum, |page, query| {
                portfolio_page_to_wire(page, query, &build.rules)
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn handover(&self, request: Request<pb::HandoverRequest>) -> Result<Response<pb::HandoverReport>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let report = blocking(move || {
            let build = state.build(&request.rule_set)?;
            let projected = state.account(&build, &request.account_id)?;
            let as_of = (state.clock)();
            let report = handover(&projected, &build.rules, as_of);
            Ok(handover_to_wire(&projected.account.id, &report, as_of, build.id.clone(), &state.personal))
        })
        .await?;
        Ok(Response::new(report))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn gift_register(
        &self,
        request: Request<pb::GiftRegisterRequest>,
    ) -> Result<Response<pb::GiftRegisterView>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let register = blocking(move || {
            let build = state.build(&request.rule_set)?;
            let projected = state.account(&build, &request.account_id)?;
            let contact =
                optional_contact_id(&request.contact_id, "contact_id", &state.limits).map_err(ReadError::Invalid)?;
            let register = gift_register(&projected, &build.rules, (state.clock)(), contact.as_ref());
            Ok(register_to_wire(&projected.account.id, &register, build.id.clone(), &state.personal))
        })
        .await?;
        Ok(Response::new(register))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn list_plans(
        &self,
        request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let owner = optional_staff(&request.owner, "owner", &state.limits).map_err(Invalid)?;
        let status = plan_status(request.status, "status").map_err(Invalid)?;
        let response = blocking(move || {
            let build = state.build(&request.rule_set)?;
            let accounts = scope(&state, &build, &request.account_id)?;
            let as_of = (state.clock)();
            let mut plans = Vec::new();
            for projected in &accounts {
                for plan in practice(projected, &build.rules, as_of).plans {
                    if owner.as_ref().is_none_or(|o| &plan.plan.owner == o) && status.is_none_or(|s| plan.status == s) {
                        plans.push((
                            plan_urgency(plan.status),
                            plan.plan.due_at,
                            plan_to_wire(&projected.account.id, &plan),
                        ));
                    }
                }
            }
            plans.sort_by(|a, b| {
                (a.0, a.1, &a.2.account_id, &a.2.plan_id).cmp(&(b.0, b.1, &b.2.account_id, &b.2.plan_id))
            });
            Ok(pb::ListPlansResponse {
                plans: plans.into_iter().map(|(_, _, plan)| plan).collect(),
                as_of: Some(rapport_wire::timestamp_to_wire(as_of)),
                rule_set: build.id.clone(),
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all)]
    async fn cadence(&self, request: Request<pb::CadenceRequest>) -> Result<Response<pb::CadenceResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let owner = optional_staff(&request.owner, "owner", &state.limits).map_err(Invalid)?;
        let tier = optional_tier(&request.tier, "tier").map_err(Invalid)?;
        let response = blocking(move || {
            let build = state.build(&request.rule_set)?;
            let (accounts, _, _) = build.all()?;
            let as_of = (state.clock)();
            let (mut overdue, mut executive) = (Vec::new(), Vec::new());
            for projected in accounts.iter().filter(|p| owned_and_tiered(&p.account, owner.as_ref(), tier)) {
                let cadence = practice(projected, &build.rules, as_of).cadence;
                let opener = Opener::new(&projected.account.id, &state.personal);
                overdue.extend(cadence.overdue.iter().map(|o| overdue_to_wire(&projected.account, o, opener)));
                executive.extend(overdue_executive_to_wire(&projected.account, &cadence));
            }
            overdue.sort_by(|a, b| {
                b.days_overdue
                    .cmp(&a.days_overdue)
                    .then_with(|| (&a.account_id, &a.contact_id).cmp(&(&b.account_id, &b.contact_id)))
            });
            executive.sort_by(|a, b| b.days_overdue.cmp(&a.days_overdue).then_with(|| a.account_id.cmp(&b.account_id)));
            Ok(pb::CadenceResponse {
                overdue,
                executive,
                as_of: Some(rapport_wire::timestamp_to_wire(as_of)),
                rule_set: build.id.clone(),
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn contributions(
        &self,
        request: Request<pb::ContributionsRequest>,
    ) -> Result<Response<pb::ContributionsResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let state = Arc::clone(&self.0);
        let request = request.into_inner();
        let (from, to) = contributions_period(&request).map_err(Invalid)?;
        let response = blocking(move || {
            let build = state.build(&request.rule_set)?;
            let accounts = scope(&state, &build, &request.account_id)?;
            let mut sum = Contributions::empty(from, to);
            for projected in &accounts {
                sum.add(&contributions(projected, &build.rules, from, to), &build.rules);
            }
            Ok(contributions_to_wire(&sum, accounts.len() as u32, build.id.clone()))
        })
        .await?;
        Ok(Response::new(response))
    }
}

/// The accounts a practice request covers: the one named, or every account of the build.
fn scope(state: &AppState, build: &Build, account_id: &str) -> Result<Vec<Arc<AccountProjection>>, ReadError> {
    if account_id.is_empty() { Ok(build.all()?.0) } else { Ok(vec![state.account(build, account_id)?]) }
}
