//! The account projection: every account's current state, folded from the log and kept in
//! memory so that `GetAccount` never replays a stream.
//!
//! The projection only ever shows durable events. The writer publishes an account's new state
//! after the sync that made its events durable, and moves the durable position forward at the
//! same time; reads of the log are capped at what the projection shows, so a client never sees
//! an event that a crash could still take back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rapport_domain::{Account, AccountId, EventBody};
use rapport_store::{Direction, EventLog, StoredEvent};
use tracing::info;

use crate::convert::decode_event;
use crate::error::ReadError;

/// Events read from the log per step of the start-up fold.
const LOAD_CHUNK: usize = 4_096;

/// An account's state and where in the log its last event is.
#[derive(Debug, Clone)]
pub(crate) struct ProjectedAccount {
    /// The fold of the account's stream.
    pub account: Account,
    /// Position of the stream's last event.
    pub position: u64,
}

/// Every account's durable state, and the log position up to which all events are durable.
#[derive(Debug, Default)]
pub(crate) struct Projection {
    accounts: RwLock<HashMap<AccountId, Arc<ProjectedAccount>>>,
    durable_position: AtomicU64,
}

impl Projection {
    /// Folds the whole log into a projection. Every stored event must decode: a log that does
    /// not is not served from.
    pub fn load(log: &dyn EventLog) -> Result<Projection, ReadError> {
        let mut accounts: HashMap<AccountId, ProjectedAccount> = HashMap::new();
        let mut with_retractions = Vec::new();
        let mut next = 1;
        loop {
            let chunk = log.read_all(next, LOAD_CHUNK)?;
            let Some(last) = chunk.last() else { break };
            next = last.position + 1;
            for record in &chunk {
                let event = decode_event(record)?;
                if matches!(event.body, EventBody::EventRetracted(_)) {
                    with_retractions.push(record.account_id.clone());
                }
                match accounts.get_mut(&record.account_id) {
                    Some(projected) => {
                        projected.account.apply(&event);
                        projected.position = record.position;
                    }
                    None => {
                        let account = Account::open(record.account_id.clone(), &event).ok_or_else(|| {
                            ReadError::Corrupt(format!(
                                "the stream of account \"{}\" starts at position {} with {}, not account_opened",
                                record.account_id,
                                record.position,
                                event.body.kind()
                            ))
                        })?;
                        accounts
                            .insert(record.account_id.clone(), ProjectedAccount { account, position: record.position });
                    }
                }
            }
        }
        // `apply` only marks a retracted event; undoing its effect takes a replay of the stream.
        with_retractions.sort();
        with_retractions.dedup();
        for account_id in with_retractions {
            let refolded = refold(log, &account_id)?;
            if let Some(projected) = accounts.get_mut(&account_id) {
                projected.account = refolded;
            }
        }
        let durable_position = next - 1;
        info!(accounts = accounts.len(), events = durable_position, "folded the log");
        Ok(Projection {
            accounts: RwLock::new(accounts.into_iter().map(|(id, p)| (id, Arc::new(p))).collect()),
            durable_position: AtomicU64::new(durable_position),
        })
    }

    /// The durable state of an account, if it exists.
    pub fn get(&self, account_id: &AccountId) -> Option<Arc<ProjectedAccount>> {
        self.accounts.read().unwrap_or_else(PoisonError::into_inner).get(account_id).cloned()
    }

    /// The position up to which every event of the log is durable and visible.
    pub fn durable_position(&self) -> u64 {
        self.durable_position.load(Ordering::Acquire)
    }

    /// Shows new durable states, all of whose events lie at or before `durable_position`.
    pub fn publish(
        &self,
        accounts: impl IntoIterator<Item = (AccountId, Arc<ProjectedAccount>)>,
        durable_position: u64,
    ) {
        let mut map = self.accounts.write().unwrap_or_else(PoisonError::into_inner);
        map.extend(accounts);
        // Under the write lock, so a reader that sees the new position also sees the accounts.
        self.durable_position.fetch_max(durable_position, Ordering::AcqRel);
    }
}

/// Replays an account's whole stream, skipping retracted events.
pub(crate) fn refold(log: &dyn EventLog, account_id: &AccountId) -> Result<Account, ReadError> {
    let records: Vec<StoredEvent> = log.read_stream(account_id, 1, Direction::Forwards, usize::MAX)?;
    let events = records.iter().map(decode_event).collect::<Result<Vec<_>, _>>()?;
    Account::replay(account_id.clone(), &events)
        .ok_or_else(|| ReadError::Corrupt(format!("the stream of account \"{account_id}\" does not open the account")))
}
