//! What every service shares: the log, the projections, the writer, the limits and the clock,
//! and the lookups every handler makes (a build by name, an account in a build).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use rapport_domain::{AccountId, Limits};
use rapport_projection::AccountProjection;
use rapport_proto::v1 as pb;
use rapport_store::{EventLog, StoredEvent};
use tokio::sync::watch;

use crate::config::Clock;
use crate::error::ReadError;
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::privacy::PersonalData;
use crate::projection::{Build, Projections};
use crate::subscribers::Subscribers;
use crate::writer::Writer;

/// The server's state, one per `serve`.
pub(crate) struct AppState {
    pub log: Arc<dyn EventLog>,
    pub projections: Arc<Projections>,
    pub writer: Writer,
    pub limits: Limits,
    pub clock: Clock,
    /// Turns true when the server starts shutting down; subscriptions end with a reason.
    pub closing: watch::Receiver<bool>,
    /// How long a subscription waits for its client before it ends.
    pub subscriber_stall_timeout: Duration,
    /// Open subscriptions per client.
    pub subscribers: Subscribers,
    /// The keys that seal and open personal data, and the erasures under way.
    pub personal: PersonalData,
    /// The longest a read waits for its `min_position`.
    pub max_read_wait: Duration,
    /// Most unanswered requests of one `AppendStream`.
    pub append_stream_window: usize,
    /// What listings round the server's time down to a multiple of.
    pub listing_quantum: Duration,
    /// What operators watch (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// The events subscriptions send, rendered once for all of them.
    pub feed: Arc<Feed>,
}

impl AppState {
    /// The build a request names (`name@version`), or the active one.
    pub fn build(&self, rule_set: &str) -> Result<Arc<Build>, ReadError> {
        self.projections.build(rule_set).ok_or_else(|| ReadError::RuleSetNotFound {
            id: rule_set.to_owned(),
            available: self.projections.builds().iter().map(|b| b.id.clone()).collect(),
        })
    }

    /// An account as a build holds it.
    pub fn account(&self, build: &Build, account_id: &str) -> Result<Arc<AccountProjection>, ReadError> {
        let account_id = self.account_id(account_id)?;
        build.get(&account_id)?.ok_or(ReadError::AccountNotFound(account_id))
    }

    /// A request's `account_id`, checked.
    pub fn account_id(&self, account_id: &str) -> Result<AccountId, ReadError> {
        rapport_wire::requests::account_id(account_id, "account_id", &self.limits).map_err(ReadError::Invalid)
    }

    /// Recorded events as clients read them, each retracted one naming the version of its
    /// retraction. The active build knows every durable retraction (it folds each durable
    /// group before the durable position moves), so this holds for any read capped there.
    /// Reads the store for accounts the build has not loaded yet: call it off the async workers.
    pub fn recorded_to_wire(&self, records: &[StoredEvent]) -> Result<Vec<pb::RecordedEvent>, ReadError> {
        let build = self.projections.active();
        let mut accounts: HashMap<&AccountId, Option<Arc<AccountProjection>>> = HashMap::new();
        records
            .iter()
            .map(|record| {
                let account = match accounts.entry(&record.account_id) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => new.insert(build.get(&record.account_id)?),
                };
                let retracted_by =
                    account.as_ref().and_then(|a| a.account.retracted.get(&record.event_id).copied()).unwrap_or(0);
                Ok(rapport_wire::recorded_to_wire(record, retracted_by, &self.personal)?)
            })
            .collect()
    }
}
