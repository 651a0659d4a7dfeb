//! The generated sample and workload are valid: the real server accepts every request.

use rapport_proto::v1 as pb;

use crate::support::*;

#[tokio::test]
async fn the_demo_sample_is_accepted_whole_and_tells_its_story() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let requests = rapport_demo::sample(7, NOW_SECONDS);
    let total: usize = requests.iter().map(|r| r.events.len()).sum();
    for request in requests {
        let account = request.account_id.clone();
        ledger.append(request).await.unwrap_or_else(|s| panic!("{account}: {}", s.message()));
    }
    assert_eq!(read_all(&mut ledger).await.len(), total);
    let nordwind = get_account(&mut server.accounts(), "nordwind-logistics").await;
    assert_eq!(nordwind.owner, "anna.berg", "the owner rotated");
    let owners: Vec<&str> = nordwind.owner_history.iter().map(|t| t.owner.as_str()).collect();
    assert_eq!(owners, vec!["li.wei", "anna.berg"]);
    let cio = nordwind.contacts.iter().find(|c| c.contact_id == "k.hartmann").unwrap();
    assert_eq!((cio.support, cio.intimacy), (2, 3), "the skeptical CIO became a coach");
    let kappa = get_account(&mut server.accounts(), "kappa-retail").await;
    assert_eq!(kappa.former_contacts.len(), 1);

    // The practice: each of the story's turns shows in the account's view.
    let plan = |view: &pb::AccountView, id: &str| {
        view.practice.as_ref().and_then(|p| p.plans.iter().find(|plan| plan.plan_id == id).cloned()).unwrap()
    };
    let won = plan(&nordwind, "cio-coach");
    assert_eq!(won.status(), pb::PlanStatus::Achieved, "{won:?}");
    assert!(won.achieved_at.unwrap().seconds < won.due_at.unwrap().seconds, "achieved before its date");
    let helios = get_account(&mut server.accounts(), "helios-energy").await;
    let behind = plan(&helios, "cto-supporter");
    assert_eq!(behind.status(), pb::PlanStatus::Overdue, "{behind:?}");
    assert!(behind.progress > 0.0 && behind.progress < 1.0, "{behind:?}");
    let practice = |view: &pb::AccountView| view.practice.clone().unwrap();
    let missing = practice(&helios).iron_triangle.unwrap().missing;
    assert_eq!(missing, vec![pb::TeamRole::Delivery as i32], "Helios's delivery member left");

    let tianhe = get_account(&mut server.accounts(), "tianhe-motors").await;
    let cadence = practice(&tianhe).cadence.unwrap();
    let cfo = cadence.overdue.iter().find(|o| o.contact_id == "m.zhang").expect("the CFO is past cadence");
    // Tier S allows 14 days between touches of a key contact (rules/default.toml).
    assert_eq!(cadence.key_contact_days, 14.0);
    let since = (NOW_SECONDS - cfo.last_touch.unwrap().seconds) / 86_400;
    assert_eq!(cfo.days_overdue, since - 14, "{cfo:?}");

    let coordination = practice(&kappa).coordination.unwrap();
    assert!(coordination.flagged);
    let outside = &coordination.bypassing[0];
    assert_eq!((outside.staff.as_str(), outside.business_unit.as_str()), ("raj.patel", "Cloud Services"));
    assert_eq!(outside.contact_id, "o.brown");
    let infrastructure = practice(&kappa).competition.into_iter().find(|c| c.contact_id == "g.meyer").unwrap();
    assert_eq!(infrastructure.strongest_competitor, "Vantage Systems");
    assert!(infrastructure.behind && infrastructure.theirs > infrastructure.ours, "{infrastructure:?}");
}

#[tokio::test]
async fn a_long_workload_is_accepted() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let mut workload = rapport_demo::Workload::new(11, 20, NOW_SECONDS, "w");
    let mut total = 0;
    for i in 0..400 {
        let request = workload.next_request(1 + i % 7);
        total += request.events.len();
        ledger.append(request).await.unwrap_or_else(|s| panic!("request {i}: {}", s.message()));
    }
    assert_eq!(read_all(&mut ledger).await.len(), total);
}
