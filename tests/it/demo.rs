//! The generated sample and workload are valid: the real server accepts every request.

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
