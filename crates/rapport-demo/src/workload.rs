//! An endless, seeded stream of valid append requests for load tests.

use rapport_proto::{v1 as pb, wkt};

use crate::events::*;
use crate::rng::Rng;
use crate::words;

/// How far back the generated business times reach.
const SPAN_SECONDS: i64 = 2 * 365 * 86_400;

/// Many accounts receiving a realistic mix of events, always valid against each account's
/// state. Requests expect `any` version: the generator is the only writer of its accounts, so
/// its requests stay valid whatever order the server commits concurrent requests of
/// different accounts in. Requests for one account must be sent in the order generated.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: Rng,
    now: i64,
    prefix: String,
    accounts: Vec<Option<AccountState>>,
}

#[derive(Debug, Clone)]
struct AccountState {
    owner: &'static str,
    contacts: Vec<String>,
    next_contact: u32,
    team: Vec<&'static str>,
}

impl Workload {
    /// A workload over `accounts` accounts named `{prefix}-{n}` (prefix `load` when empty),
    /// with business times in the two years before `now` (Unix seconds).
    pub fn new(seed: u64, accounts: usize, now: i64, prefix: &str) -> Workload {
        let prefix = if prefix.is_empty() { "load" } else { prefix };
        Workload { rng: Rng::new(seed), now, prefix: prefix.to_owned(), accounts: vec![None; accounts.max(1)] }
    }

    /// The number of accounts.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// The next request, for a randomly chosen account.
    pub fn next_request(&mut self, events_per_request: usize) -> pb::AppendRequest {
        let account = self.rng.below(self.accounts.len());
        self.next_request_for(account, events_per_request)
    }

    /// The next request for account number `account` (modulo the number of accounts): its
    /// opening if it has none yet (the `account_opened` event and first contacts, then more
    /// events up to `events_per_request`), else `events_per_request` events (at least one).
    pub fn next_request_for(&mut self, account: usize, events_per_request: usize) -> pb::AppendRequest {
        let index = account % self.accounts.len();
        let account_id = format!("{}-{index}", self.prefix);
        let mut events = Vec::with_capacity(events_per_request.max(1));
        if self.accounts[index].is_none() {
            let owner = *self.rng.pick(words::STAFF);
            let at = self.time();
            events.push(event(
                &mut self.rng,
                at,
                owner,
                "crm",
                opened(&format!("Customer {index}"), "Manufacturing", owner),
            ));
            let mut state = AccountState { owner, contacts: Vec::new(), next_contact: 0, team: Vec::new() };
            for _ in 0..3 {
                events.push(self.add_contact(&mut state));
            }
            self.accounts[index] = Some(state);
        }
        let Some(mut state) = self.accounts[index].take() else { unreachable!("opened above") };
        while events.len() < events_per_request.max(1) {
            let event = self.next_event(&mut state);
            events.push(event);
        }
        self.accounts[index] = Some(state);
        pb::AppendRequest {
            account_id,
            expected: Some(pb::ExpectedVersion { kind: Some(pb::expected_version::Kind::Any(wkt::Empty {})) }),
            events,
        }
    }

    /// `count` events for `account_id`, an account some workload opened: meetings and support
    /// signals about its first three contacts (`c0`, `c1`, `c2`), by any of our staff. They stay
    /// valid whatever other writers of such events append to the same account in between, so
    /// many writers can contend for one account (with expected versions).
    pub fn touches(&mut self, count: usize) -> Vec<pb::Event> {
        (0..count.max(1))
            .map(|_| {
                let at = self.time();
                let by = *self.rng.pick(words::STAFF);
                let contact = format!("c{}", self.rng.below(3));
                let body = if self.rng.chance(60) {
                    let topic = *self.rng.pick(words::TOPICS);
                    let notes_len = self.rng.between(100, 1_500) as usize;
                    meeting(pb::MeetingKind::Call, &[by], &[&contact], topic, words::notes(&mut self.rng, notes_len))
                } else {
                    let support = self.rng.between(-2, 2) as i32;
                    let intimacy = self.rng.between(0, 4) as u32;
                    signal(&contact, support, intimacy, self.rng.pick::<&str>(words::EVIDENCE))
                };
                event(&mut self.rng, at, by, "crm", body)
            })
            .collect()
    }

    fn time(&mut self) -> i64 {
        self.now - self.rng.between(60, SPAN_SECONDS)
    }

    fn add_contact(&mut self, state: &mut AccountState) -> pb::Event {
        let (department, titles) = *self.rng.pick(words::DEPARTMENTS);
        let first = *self.rng.pick(words::FIRST_NAMES);
        let last = *self.rng.pick(words::LAST_NAMES);
        let roles = [R::DecisionMaker, R::Approver, R::Influencer, R::User, R::Gatekeeper, R::TechnicalEvaluator];
        let person = Person {
            id: format!("c{}", state.next_contact),
            name: format!("{first} {last}"),
            title: (*self.rng.pick(titles)).to_owned(),
            department: department.to_owned(),
            role: *self.rng.pick(&roles),
            key: self.rng.chance(30),
        };
        state.next_contact += 1;
        state.contacts.push(person.id.clone());
        let at = self.time();
        event(&mut self.rng, at, state.owner, "crm", contact_added(&person))
    }

    fn next_event(&mut self, state: &mut AccountState) -> pb::Event {
        let roll = self.rng.below(100);
        let at = self.time();
        let source = *self.rng.pick(words::SOURCES);
        let body = match roll {
            0..=44 => {
                let mut staff = vec![state.owner];
                if let Some(member) = state.team.first().filter(|m| **m != state.owner) {
                    staff.push(member);
                }
                let mut contacts: Vec<&str> = Vec::new();
                for _ in 0..self.rng.between(1, 3) {
                    let contact = self.rng.pick(&state.contacts).as_str();
                    if !contacts.contains(&contact) {
                        contacts.push(contact);
                    }
                }
                let kinds = [
                    pb::MeetingKind::Visit,
                    pb::MeetingKind::Call,
                    pb::MeetingKind::Dinner,
                    pb::MeetingKind::TechnicalExchange,
                    pb::MeetingKind::ExecutiveVisit,
                    pb::MeetingKind::Workshop,
                ];
                let kind = *self.rng.pick(&kinds);
                let topic = *self.rng.pick(words::TOPICS);
                let notes_len = self.rng.between(100, 1_500) as usize;
                meeting(kind, &staff, &contacts, topic, words::notes(&mut self.rng, notes_len))
            }
            45..=69 => {
                let contact = self.rng.pick(&state.contacts).clone();
                let support = self.rng.between(-2, 2) as i32;
                let intimacy = self.rng.between(0, 4) as u32;
                signal(&contact, support, intimacy, self.rng.pick::<&str>(words::EVIDENCE))
            }
            70..=77 => {
                let recipient = self.rng.pick(&state.contacts).clone();
                let (description, value) = *self.rng.pick(words::GIFTS);
                let currency = *self.rng.pick(words::CURRENCIES);
                let approval =
                    if self.rng.chance(85) { format!("GA-{}", self.rng.between(1_000, 9_999)) } else { String::new() };
                gift(state.owner, &recipient, description, value, currency, &approval)
            }
            78..=82 => return self.add_contact(state),
            83..=85 if state.contacts.len() > 3 => {
                let index = self.rng.below(state.contacts.len());
                let contact = state.contacts.swap_remove(index);
                contact_left(&contact, "left the company")
            }
            86..=87 => {
                let to = loop {
                    let candidate = *self.rng.pick(words::STAFF);
                    if candidate != state.owner {
                        break candidate;
                    }
                };
                let from = std::mem::replace(&mut state.owner, to);
                owner_changed(
                    from,
                    to,
                    "rotation",
                    "Introduced the key contacts; open topics are in the last meeting notes.",
                )
            }
            88..=89 => match state.team.pop() {
                Some(member) => left_team(member, "reassigned"),
                None => {
                    let member = *self.rng.pick(words::STAFF);
                    state.team.push(member);
                    joined(member, pb::TeamRole::Solution, "Solutions")
                }
            },
            90..=93 => {
                let contact = self.rng.pick(&state.contacts).clone();
                feedback(&contact, self.rng.between(0, 10) as u32, "Survey answer: good support, slow invoicing.")
            }
            94..=96 => {
                let value = self.rng.between(10_000, 50_000_000);
                outcome(pb::OutcomeKind::DealWon, "Expansion order", value, "EUR", "OPP-1")
            }
            _ => {
                let tiers = [pb::Tier::S, pb::Tier::A, pb::Tier::B, pb::Tier::C];
                tier(*self.rng.pick(&tiers), "Annual portfolio review")
            }
        };
        event(&mut self.rng, at, state.owner, source, body)
    }
}

use pb::ContactRole as R;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_open_each_account_once_and_hold_the_asked_number_of_events() {
        let mut workload = Workload::new(1, 3, 1_800_000_000, "");
        let mut opened = std::collections::HashSet::new();
        for _ in 0..200 {
            let request = workload.next_request(5);
            assert_eq!(request.events.len(), 5.max(if opened.contains(&request.account_id) { 0 } else { 4 }));
            let opens = request.events.iter().filter(|e| matches!(e.body, Some(Body::AccountOpened(_)))).count();
            assert_eq!(opens, usize::from(opened.insert(request.account_id.clone())));
        }
        assert_eq!(opened.len(), 3);
    }
}
