//! The portfolio index answers every listing exactly as scoring every account does: the same
//! accounts in the same order with the same scores, totals and health distribution, before
//! and after accounts change.

use std::sync::Arc;

use super::*;

/// A small deterministic generator (an LCG), so that the portfolio is varied but the same
/// on every run.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const OWNERS: [&str; 3] = ["ana.silva", "li.wei", "tom.berg"];
const TIERS: [Tier; 4] = [Tier::S, Tier::A, Tier::B, Tier::C];

/// An account of a few contacts, signals, meetings and team changes, all drawn from `dice`.
fn account(dice: &mut Dice, name: &str) -> Stream {
    let mut stream = Stream { events: Vec::new() };
    stream.push(
        0,
        EventBody::AccountOpened(AccountOpened {
            name: label(name),
            industry: label("Steel"),
            owner: staff(OWNERS[dice.below(3) as usize]),
        }),
    );
    if dice.below(5) > 0 {
        let tier = TIERS[dice.below(4) as usize];
        stream.push(1, EventBody::TierAssigned(TierAssigned { tier, reason: label("review") }));
    }
    for c in 0..dice.below(4) {
        let contact = format!("c{c}");
        stream.key_contact(&contact, ["Board", "Plant", "IT"][dice.below(3) as usize]);
        for _ in 0..dice.below(3) {
            let at = 2 + dice.below(300) as i64;
            stream.signal(at, &contact, dice.below(5) as i32 - 2, dice.below(5) as u32);
        }
        if dice.below(2) == 0 {
            let at = 2 + dice.below(300) as i64;
            let staff = OWNERS[dice.below(3) as usize];
            stream.meeting(at, &[staff], &[&contact], MeetingKind::Visit);
        }
    }
    if dice.below(3) == 0 {
        stream.push(
            3,
            EventBody::TeamMemberJoined(TeamMemberJoined {
                member: staff("eva.kim"),
                role: TeamRole::Solution,
                business_unit: label("Services"),
            }),
        );
    }
    stream
}

/// Every order both ways, under each kind of filter, at several offsets and page sizes.
fn queries(as_of: Timestamp) -> Vec<PortfolioQuery> {
    let everything = PortfolioQuery {
        tier: None,
        owner: None,
        value_class: None,
        ranges: Vec::new(),
        at_risk: false,
        overdue: false,
        uncoordinated: false,
        missing_role: None,
        team_incomplete: false,
        sort_by: PortfolioOrder::Score(ScoreKind::Health),
        ascending: false,
        page_size: 10,
        offset: 0,
        as_of,
    };
    let filters = [
        PortfolioQuery { tier: Some(Tier::A), ..everything.clone() },
        PortfolioQuery { owner: Some("li.wei".into()), ..everything.clone() },
        PortfolioQuery { value_class: Some(ValueClass::Cost), ..everything.clone() },
        PortfolioQuery {
            ranges: vec![ScoreRange { kind: ScoreKind::Health, min: 10.0, max: 40.0 }],
            ..everything.clone()
        },
        PortfolioQuery { at_risk: true, ..everything.clone() },
        PortfolioQuery { overdue: true, ..everything.clone() },
        PortfolioQuery { uncoordinated: true, ..everything.clone() },
        PortfolioQuery { missing_role: Some(TeamRole::Solution), ..everything.clone() },
        PortfolioQuery { team_incomplete: true, ..everything.clone() },
        everything,
    ];
    let orders = PortfolioOrder::FIELDS.into_iter().chain(ScoreKind::ALL.iter().copied().map(PortfolioOrder::Score));
    let mut queries = Vec::new();
    for order in orders {
        for ascending in [false, true] {
            for filter in &filters {
                for (offset, page_size) in [(0, 10), (55, 10), (0, 1_000)] {
                    queries.push(PortfolioQuery { sort_by: order, ascending, offset, page_size, ..filter.clone() });
                }
            }
        }
    }
    queries
}

fn same_page(index: &mut PortfolioIndex, accounts: &[Arc<AccountProjection>], rules: &RuleSet, as_of: Timestamp) {
    let mut matched = 0;
    for query in queries(as_of) {
        let expected = query.run(accounts.iter().map(Arc::as_ref), rules);
        let page = index.run(&query, rules).expect("the query is scored at the index's instant");
        let ids =
            |page: &PortfolioPage<'_>| page.accounts.iter().map(|(p, _)| p.account.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&page), ids(&expected), "{query:?}");
        let scores = |page: &PortfolioPage<'_>| page.accounts.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>();
        assert!(scores(&page) == scores(&expected), "{query:?}");
        assert_eq!(
            (page.total, page.next_offset, page.health_distribution),
            (expected.total, expected.next_offset, expected.health_distribution),
            "{query:?}"
        );
        matched += page.accounts.len();
    }
    assert!(matched > 1_000, "the queries find accounts ({matched} rows)");
}

#[test]
fn the_index_answers_every_listing_as_scoring_every_account_does() {
    let rules = rules();
    let as_of = day(320);
    let mut dice = Dice(7);
    let mut streams: Vec<(String, Stream)> = (0..80)
        .map(|i| {
            // Names repeat, so that ties fall to the account id.
            let name = format!("Firm {}", i % 25);
            (format!("a{i:03}"), account(&mut dice, &name))
        })
        .collect();
    let project = |streams: &[(String, Stream)]| -> Vec<Arc<AccountProjection>> {
        streams.iter().map(|(id, stream)| Arc::new(stream.project_as(id, &rules))).collect()
    };
    let accounts = project(&streams);
    let mut index = PortfolioIndex::new(as_of);
    for account in &accounts {
        index.update(Arc::clone(account), &rules);
    }
    assert_eq!(index.len(), 80);
    same_page(&mut index, &accounts, &rules, as_of);

    // Change a third of the accounts and add new ones; the orders made above are kept
    // current one account at a time.
    for (i, (_, stream)) in streams.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        let at = 300 + (i % 20) as i64;
        stream.key_contact("late", "Finance");
        stream.signal(at, "late", [2, -2, 0][i % 3], 4);
        stream.push(at, EventBody::TierAssigned(TierAssigned { tier: TIERS[i % 4], reason: label("regrade") }));
    }
    for i in 80..90 {
        streams.push((format!("a{i:03}"), account(&mut dice, "Newcomer")));
    }
    let accounts = project(&streams);
    for (i, account) in accounts.iter().enumerate() {
        if i % 3 == 0 || i >= 80 {
            index.update(Arc::clone(account), &rules);
        }
    }
    assert_eq!(index.len(), 90);
    same_page(&mut index, &accounts, &rules, as_of);
}

#[test]
fn the_index_answers_only_at_its_instant() {
    let rules = rules();
    let mut index = PortfolioIndex::new(day(10));
    index.update(Arc::new(Stream::opened("li.wei").project(&rules)), &rules);
    let mut query = queries(day(11)).into_iter().find(PortfolioQuery::keeps_all).expect("a query of everything");
    assert!(index.run(&query, &rules).is_none(), "another instant");
    query.as_of = day(10);
    let page = index.run(&query, &rules).expect("its instant");
    assert_eq!((page.total, page.accounts.len()), (1, 1));
}
