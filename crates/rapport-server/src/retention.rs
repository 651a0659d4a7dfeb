//! Retention: contacts forgotten a set time after they left the customer
//! (`--forget-after-left-days`), through the same erasure as a request, each with its own
//! auditable `ContactForgotten`, requested by [`RETENTION`].

use std::sync::Arc;
use std::time::Duration;

use rapport_domain::{AccountId, ContactId, Label, Limits, StaffId};
use tracing::{info, warn};

use crate::error::PrivacyError;
use crate::privacy::{ErasureRequest, forget};
use crate::state::AppState;

/// How often the active projection is swept for contacts past their retention.
const SWEEP_EVERY: Duration = Duration::from_secs(3_600);

/// Who the erasures retention records are requested by.
pub const RETENTION: &str = "rapport-retention";

/// Sweeps at start and then every [`SWEEP_EVERY`], until the task is aborted.
pub(crate) async fn run(state: Arc<AppState>, after: Duration) {
    let mut closing = state.closing.clone();
    loop {
        sweep(&state, after).await;
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = closing.changed() => return,
        }
    }
}

/// Forgets every contact who left at least `after` ago (business time) and is not forgotten.
async fn sweep(state: &Arc<AppState>, after: Duration) {
    let now = (state.clock)();
    let nanos = i64::try_from(after.as_nanos()).unwrap_or(i64::MAX);
    let build = state.projections.active();
    let accounts = match tokio::task::spawn_blocking(move || build.all()).await {
        Ok(Ok((accounts, _, _))) => accounts,
        Ok(Err(error)) => return warn!(%error, "retention could not read the projection; next sweep in an hour"),
        Err(error) => return warn!(%error, "retention could not read the projection; next sweep in an hour"),
    };
    let due: Vec<(AccountId, ContactId)> = accounts
        .iter()
        .flat_map(|projected| {
            projected.account.contacts.values().filter_map(|contact| {
                let left = contact.left_at?;
                (!contact.forgotten && left.saturating_add_nanos(nanos) <= now)
                    .then(|| (projected.account.id.clone(), contact.id.clone()))
            })
        })
        .collect();
    let days = after.as_secs() / 86_400;
    let limits = Limits::default();
    let (Ok(reason), Ok(by)) = (
        Label::parse(format!("retention: {days} days after the contact left (--forget-after-left-days)"), &limits),
        StaffId::parse(RETENTION, &limits),
    ) else {
        return;
    };
    let mut forgotten = 0;
    for (account_id, contact_id) in due {
        let request = ErasureRequest {
            account_id: account_id.clone(),
            contact_id: contact_id.clone(),
            reason: reason.clone(),
            requested_by: by.clone(),
            actor: by.clone(),
            recorded_by: String::new(),
        };
        match forget(state, request).await {
            Ok(_) => forgotten += 1,
            Err(PrivacyError::InClear { .. }) => {
                warn!(%account_id, %contact_id, "retention cannot forget a contact stored in clear; migrate the data directory")
            }
            Err(error) => {
                warn!(%account_id, %contact_id, %error, "retention could not forget a contact; next sweep in an hour")
            }
        }
    }
    if forgotten > 0 {
        info!(forgotten, days, "retention forgot the contacts past their time");
    }
}
