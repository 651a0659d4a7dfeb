//! Which recorded events a reader asks for: by kind, by account, by account id prefix.

use std::collections::BTreeSet;

use crate::{AccountId, EventKind};

/// A reader's choice of events. Every part that is empty lets everything through; the parts
/// that are given must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these kinds; empty for every kind.
    pub kinds: BTreeSet<EventKind>,
    /// Only these accounts; empty for every account.
    pub accounts: BTreeSet<AccountId>,
    /// Only accounts whose id starts with this; empty for every account.
    pub account_prefix: String,
}

impl EventFilter {
    /// Whether events of this account may pass (the kind is checked apart, because a reader
    /// can tell the account of a stored event before it decodes the event).
    pub fn admits_account(&self, account_id: &AccountId) -> bool {
        account_id.as_str().starts_with(&self.account_prefix)
            && (self.accounts.is_empty() || self.accounts.contains(account_id))
    }

    /// Whether events of every account may pass.
    pub fn admits_every_account(&self) -> bool {
        self.accounts.is_empty() && self.account_prefix.is_empty()
    }

    /// Whether events of this kind may pass.
    pub fn admits_kind(&self, kind: EventKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn id(text: &str) -> AccountId {
        AccountId::parse(text, &Limits::default()).unwrap()
    }

    #[test]
    fn empty_parts_admit_everything_and_given_parts_must_all_hold() {
        let everything = EventFilter::default();
        assert!(everything.admits_account(&id("acme")) && everything.admits_kind(EventKind::GiftGiven));
        assert!(everything.admits_every_account());
        let gifts = EventFilter { kinds: BTreeSet::from([EventKind::GiftGiven]), ..EventFilter::default() };
        assert!(gifts.admits_every_account(), "a filter of kinds only");
        assert!(!EventFilter { account_prefix: "eu-".into(), ..EventFilter::default() }.admits_every_account());

        let filter = EventFilter {
            kinds: BTreeSet::from([EventKind::GiftGiven]),
            accounts: BTreeSet::from([id("eu-acme"), id("us-globex")]),
            account_prefix: "eu-".into(),
        };
        assert!(filter.admits_account(&id("eu-acme")));
        assert!(!filter.admits_account(&id("us-globex")), "listed, but not under the prefix");
        assert!(!filter.admits_account(&id("eu-initech")), "under the prefix, but not listed");
        assert!(filter.admits_kind(EventKind::GiftGiven));
        assert!(!filter.admits_kind(EventKind::MeetingHeld));
    }
}
