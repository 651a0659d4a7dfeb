//! A build's portfolio kept scored: the [`PortfolioIndex`] that answers `ListAccounts`, scored
//! at a quantised instant and kept current as accounts change.
//!
//! Scores fade with time, so an index holds them at one instant: the server's time rounded
//! down to a multiple of the listing quantum (`ServerConfig::listing_quantum`). A listing's
//! first page is scored at the newest instant the index has reached; its later pages carry
//! that instant in their token. When the clock passes into the next quantum, the first page
//! asking for it starts scoring a new index in the background and is answered from the old
//! one meanwhile, so no request waits for the whole portfolio to be scored again — unless the
//! index is older than one quantum (no listing for a while), or there is none yet: then that
//! request scores it. A page whose token names an instant the index has left is answered by
//! scoring every account at that instant, the slow way, so that the pages of one listing
//! still agree.
//!
//! The index follows the build: every account the build publishes is marked, and the next
//! listing scores the marked accounts again before it reads a page. Nothing is marked until
//! the first listing, so a server nobody lists pays nothing for it.

use std::collections::HashSet;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use rapport_domain::{AccountId, Timestamp};
use rapport_projection::{PortfolioIndex, PortfolioPage, PortfolioQuery};

use super::Build;
use crate::error::ReadError;

/// The index of a build and the new one being scored beside it.
#[derive(Default)]
pub(crate) struct Listing {
    index: Option<PortfolioIndex>,
    /// The instant a new index is being scored at, in the background.
    rescoring: Option<Timestamp>,
    /// Accounts the old index took from the build's marks while the new one was scored: the
    /// new one scores them again before it replaces the old.
    taken_meanwhile: HashSet<AccountId>,
}

/// `now` rounded down to a multiple of `quantum` since the Unix epoch.
pub(crate) fn quantised(now: Timestamp, quantum: Duration) -> Timestamp {
    let quantum = nanos(quantum).max(1);
    Timestamp::from_unix_nanos(now.unix_nanos().div_euclid(quantum) * quantum)
}

/// `duration` in nanoseconds, as a timestamp counts them (saturating).
fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

impl Build {
    fn listing(&self) -> MutexGuard<'_, Listing> {
        self.listing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers `query` with `render`, given the page and the query as answered (a first
    /// page's instant is the index's). `first_page`: the query's instant is the server's
    /// quantised time, which the index may answer from the instant before; otherwise it is a
    /// later page's, which is answered at exactly that instant. `quantum` is the listing
    /// quantum the instant was rounded to.
    pub fn list<R>(
        self: &Arc<Self>,
        mut query: PortfolioQuery,
        first_page: bool,
        quantum: Duration,
        render: impl FnOnce(&PortfolioPage<'_>, &PortfolioQuery) -> R,
    ) -> Result<R, ReadError> {
        let mut listing = self.listing();
        let behind = listing.index.as_ref().map(|index| (index.instant(), query.as_of));
        match behind {
            Some((at, wanted)) if first_page && at < wanted => {
                if at.saturating_add_nanos(nanos(quantum)) >= wanted {
                    self.rescore_in_background(&mut listing, wanted);
                    query.as_of = at;
                } else {
                    listing.index = Some(self.score_all(query.as_of)?);
                }
            }
            None => listing.index = Some(self.score_all(query.as_of)?),
            Some(_) => {}
        }
        self.take_changes(&mut listing);
        if let Some(index) = listing.index.as_mut()
            && let Some(page) = index.run(&query, &self.rules)
        {
            return Ok(render(&page, &query));
        }
        drop(listing);
        let (accounts, _, _) = self.all()?;
        Ok(render(&query.run(accounts.iter().map(Arc::as_ref), &self.rules), &query))
    }

    /// Every account of the build scored at `instant`. The build marks the accounts it
    /// publishes from here on, so that what changes while they are scored is scored again.
    fn score_all(&self, instant: Timestamp) -> Result<PortfolioIndex, ReadError> {
        self.write().unlisted.get_or_insert_with(HashSet::new);
        let (accounts, _, _) = self.all()?;
        let mut index = PortfolioIndex::new(instant);
        for account in accounts {
            index.update(account, &self.rules);
        }
        Ok(index)
    }

    /// Scores the accounts the build marked since the index last looked.
    fn take_changes(&self, listing: &mut Listing) {
        let marked = self.write().unlisted.as_mut().map(std::mem::take).unwrap_or_default();
        if listing.rescoring.is_some() {
            listing.taken_meanwhile.extend(marked.iter().cloned());
        }
        if let Some(index) = listing.index.as_mut() {
            self.score_again(index, marked);
        }
    }

    fn score_again(&self, index: &mut PortfolioIndex, accounts: impl IntoIterator<Item = AccountId>) {
        for id in accounts {
            // Accounts are never removed from a build, so a marked one is in memory.
            if let Some(Some(account)) = self.in_memory(&id) {
                index.update(account, &self.rules);
            }
        }
    }

    /// Starts scoring a new index at `instant` on a thread of its own, unless one is already.
    fn rescore_in_background(self: &Arc<Self>, listing: &mut Listing, instant: Timestamp) {
        if listing.rescoring.is_some() {
            return;
        }
        listing.rescoring = Some(instant);
        listing.taken_meanwhile.clear();
        let build = Arc::clone(self);
        let started = std::thread::Builder::new().name("rapport-listing".into()).spawn(move || build.rescore(instant));
        if let Err(error) = started {
            tracing::warn!(build = %self.id, %error, "could not start scoring the portfolio anew; listings stay at their instant");
            listing.rescoring = None;
        }
    }

    fn rescore(&self, instant: Timestamp) {
        let scored = self.score_all(instant);
        let mut listing = self.listing();
        listing.rescoring = None;
        let taken = std::mem::take(&mut listing.taken_meanwhile);
        match scored {
            Ok(mut index) => {
                // What changed while it was scored: taken by the old index, or still marked.
                let marked = self.write().unlisted.as_mut().map(std::mem::take).unwrap_or_default();
                if let Some(old) = listing.index.as_mut() {
                    self.score_again(old, marked.iter().cloned());
                }
                self.score_again(&mut index, taken.into_iter().chain(marked));
                if listing.index.as_ref().is_none_or(|old| old.instant() < instant) {
                    listing.index = Some(index);
                }
            }
            Err(error) => {
                tracing::warn!(build = %self.id, %error, "could not score the portfolio anew; the next listing tries again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_down_to_the_quantum() {
        let minute = Duration::from_secs(60);
        let at = |nanos: i64| Timestamp::from_unix_nanos(nanos);
        let m = 60_000_000_000;
        assert_eq!(quantised(at(5 * m), minute), at(5 * m));
        assert_eq!(quantised(at(5 * m + 1), minute), at(5 * m));
        assert_eq!(quantised(at(6 * m - 1), minute), at(5 * m));
        // Before the epoch, down is still down.
        assert_eq!(quantised(at(-1), minute), at(-m));
        assert_eq!(quantised(at(7), Duration::ZERO), at(7), "a zero quantum rounds nothing");
    }
}
