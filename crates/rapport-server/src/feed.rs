//! The events subscriptions send, read, opened and encoded once for all of them.
//!
//! Every subscription used to read the log, decode and open each event and encode its message
//! on its own, so fifty subscribers did fifty times the work of one, on the cores the writer
//! needs. Now a page of the log is rendered once, into one buffer of every event's
//! `SubscribeResponse` framed as gRPC sends it, and every subscription that reads that page
//! sends slices of that buffer (a whole page in one slice when it lets every event through):
//! the live subscriptions, which all wait at the end of the log, and catch-up ones that
//! started together. A subscription filtering by account renders its own pages (only its
//! accounts' events), so that one consumer of one account does not render everyone's.
//!
//! A rendered event shows what was known when it was rendered: whether a later correction
//! retracted it, and a contact's personal text, opened with the contact's key. So pages are
//! dropped when either may have changed: the writer calls [`Feed::invalidate`] once it has
//! published a retraction, and an erasure on this node once it has begun (from then on the
//! contact is shown forgotten). A contact forgotten on another node of a cluster reaches this
//! one's key store through the key stream, which the feed does not hear of; pages are
//! therefore served for [`FRESH_FOR`] after they were rendered at most, which bounds how much
//! later than the key store the feed learns of it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rapport_domain::{AccountId, EventFilter, EventKind};
use rapport_proto::framed::frame_into;
use rapport_wire::replies::subscribed_event;
use tokio::sync::OnceCell;

use crate::error::ReadError;
use crate::state::AppState;

/// Events read from the log per page.
const PAGE: usize = 512;
/// Rendered pages kept, the newest first kept: live subscribers read the last ones.
const KEPT_PAGES: usize = 64;
/// How long a rendered page is served after it was rendered.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The rendered pages, shared by the subscriptions.
#[derive(Default)]
pub(crate) struct Feed {
    /// Moves on whenever a rendered event may show something no longer true.
    epoch: AtomicU64,
    /// Pages by the position they start at; a cell being filled is a page being rendered,
    /// which the subscriptions asking for it meanwhile wait for.
    pages: Mutex<BTreeMap<u64, Arc<OnceCell<Arc<Page>>>>>,
}

/// Events of the log from one position on, rendered.
pub(crate) struct Page {
    /// The epoch it was rendered in.
    epoch: u64,
    rendered_at: Instant,
    /// The position of the last event read (the events may be fewer, when filtered).
    pub last: Option<u64>,
    /// The events, in position order.
    pub events: Vec<FedEvent>,
    /// Every event's `SubscribeResponse`, framed, one after the other.
    framed: Bytes,
}

/// One event as subscriptions send it.
pub(crate) struct FedEvent {
    /// Its position in the log.
    pub position: u64,
    /// Its account, for the subscriptions' filters.
    pub account_id: AccountId,
    /// Its kind, for the subscriptions' filters.
    pub kind: Option<EventKind>,
    /// Where its framed message is in the page's buffer.
    span: Range<usize>,
}

impl Page {
    /// The framed messages of `events` (a run of this page's events), as one slice of the
    /// page's buffer.
    pub fn framed(&self, events: Range<usize>) -> Bytes {
        let run = self.events.get(events).unwrap_or_default();
        match (run.first(), run.last()) {
            (Some(first), Some(last)) => self.framed.slice(first.span.start..last.span.end),
            _ => Bytes::new(),
        }
    }

    fn serves(&self, from: u64, epoch: u64) -> bool {
        self.epoch == epoch && self.last.is_some_and(|last| last >= from) && self.rendered_at.elapsed() < FRESH_FOR
    }
}

impl Feed {
    /// The events from `from` (a page at most, and not beyond `head`), rendered by whichever
    /// subscription asked first; the page may start before `from`.
    pub async fn page(&self, state: &Arc<AppState>, from: u64, head: u64) -> Result<Arc<Page>, ReadError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let cell = {
            let mut pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
            let covering = pages.range(..=from).next_back().and_then(|(_, cell)| cell.get());
            if let Some(page) = covering.filter(|page| page.serves(from, epoch)) {
                return Ok(Arc::clone(page));
            }
            match pages.get(&from) {
                // Being rendered (or rendered, still good): wait for it.
                Some(cell) if cell.get().is_none_or(|page| page.serves(from, epoch)) => Arc::clone(cell),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    // Pages past serving go, and then the oldest beyond the number kept.
                    pages.retain(|_, cell| cell.get().is_none_or(|page| page.rendered_at.elapsed() < FRESH_FOR));
                    pages.insert(from, Arc::clone(&cell));
                    while pages.len() > KEPT_PAGES {
                        pages.pop_first();
                    }
                    cell
                }
            }
        };
        let page = cell.get_or_try_init(|| render(Arc::clone(state), from, head, None)).await?;
        if page.epoch < epoch {
            // Rendered before something it shows changed, and before this call began.
            return render(Arc::clone(state), from, head, None).await;
        }
        Ok(Arc::clone(page))
    }

    /// Drops every rendered page: what they show may no longer be true.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.pages.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// Reads, opens and encodes the events from `from` up to `head` (a page at most), on the
/// blocking pool; `filter`, if given, keeps only the events of the accounts it admits (for a
/// subscription's own page, which is not shared).
pub(crate) async fn render(
    state: Arc<AppState>,
    from: u64,
    head: u64,
    filter: Option<Arc<EventFilter>>,
) -> Result<Arc<Page>, ReadError> {
    let epoch = state.feed.epoch.load(Ordering::Acquire);
    let limit = usize::try_from(head.saturating_sub(from) + 1).unwrap_or(PAGE).min(PAGE);
    let page = tokio::task::spawn_blocking(move || -> Result<Page, ReadError> {
        let records = state.log.read_all(from, limit)?;
        let last = records.last().map(|record| record.position);
        let records: Vec<_> = records
            .into_iter()
            .filter(|record| filter.as_ref().is_none_or(|f| f.admits_account(&record.account_id)))
            .collect();
        let mut framed = BytesMut::new();
        let events = state
            .recorded_to_wire(&records)?
            .into_iter()
            .zip(records)
            .map(|(event, record)| {
                let kind = event.event.as_ref().and_then(|e| e.body.as_ref()).map(rapport_wire::kind_of);
                let start = framed.len();
                frame_into(&subscribed_event(event), &mut framed);
                FedEvent { position: record.position, account_id: record.account_id, kind, span: start..framed.len() }
            })
            .collect();
        Ok(Page { epoch, rendered_at: Instant::now(), last, events, framed: framed.freeze() })
    });
    Ok(Arc::new(page.await.map_err(ReadError::from)??))
}
