//! The stream Rapport makes, on a real three-node cluster: the servers take its settings
//! (atomic batches need 2.12 or later), and what they report back passes Rapport's check; a
//! stream the servers would let lose events is refused by name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use async_nats::jetstream;
use rapport_nats::cluster::Cluster;
use rapport_nats::stream::{DEFAULT_STREAM, check, config};

/// A three-node cluster, a JetStream context on it, and Rapport's stream `name` made there.
async fn cluster_with_stream(name: &str) -> (Cluster, jetstream::Context, jetstream::stream::Stream) {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(3)).await.unwrap().unwrap();
    let servers: Vec<async_nats::ServerAddr> = cluster.urls().split(',').map(|url| url.parse().unwrap()).collect();
    let js = jetstream::new(async_nats::connect(servers).await.unwrap());
    // A new cluster may still be placing its first stream's replicas: retry for a while.
    let began = Instant::now();
    let stream = loop {
        match js.create_stream(config(name, 3)).await {
            Ok(stream) => break stream,
            Err(_) if began.elapsed() < Duration::from_secs(20) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(error) => panic!("the stream could not be made: {error}\n{}", cluster.log(0)),
        }
    };
    (cluster, js, stream)
}

#[tokio::test]
async fn the_cluster_takes_rapports_stream_and_reports_it_back_safe() {
    let (_cluster, js, mut stream) = cluster_with_stream(DEFAULT_STREAM).await;
    let info = stream.info().await.unwrap();
    assert_eq!(check(&info.config), Ok(()), "{:?}", info.config);
    assert!(info.config.allow_atomic_publish && info.config.deny_delete && info.config.deny_purge);
    assert_eq!(info.cluster.as_ref().map(|c| c.replicas.len() + 1), Some(3), "a leader and two replicas");

    // A stream of one replica in memory, as someone may have made it by hand, is refused.
    let mut careless = config("CARELESS", 3);
    careless.num_replicas = 1;
    careless.storage = jetstream::stream::StorageType::Memory;
    let mut made = js.create_stream(careless).await.unwrap();
    let refused = check(&made.info().await.unwrap().config).unwrap_err();
    assert_eq!(refused.setting, "storage");
    assert!(refused.to_string().contains("stream CARELESS"), "{refused}");
}

/// The atomic batches Rapport's multi-event appends are (ADR-50, headers by hand as the engine
/// sends them): all of a batch or none of it, with the account's expected subject sequence
/// checked on its first message.
#[tokio::test]
async fn an_atomic_batch_lands_whole_or_not_at_all_and_checks_the_subjects_sequence() {
    use async_nats::HeaderMap;
    use async_nats::jetstream::message::PublishMessage;

    let (cluster, _, mut stream) = cluster_with_stream("BATCHES").await;
    let servers: Vec<async_nats::ServerAddr> = cluster.urls().split(',').map(|url| url.parse().unwrap()).collect();
    // A batch's messages and its commit on one connection, in order, as the engine sends them:
    // on two, the commit may overtake them.
    let client = async_nats::connect(servers).await.unwrap();
    let js = jetstream::new(client.clone());
    let subject = "BATCHES.a.acme";
    let batch = |id: &'static str, expected: u64, size: usize| {
        let (js, client) = (js.clone(), client.clone());
        async move {
            let headers = |n: usize| {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Batch-Id", id);
                headers.insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
                if n == 0 {
                    headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string().as_str());
                }
                headers
            };
            for n in 0..size - 1 {
                client.publish_with_headers(subject, headers(n), format!("event {n}").into()).await.unwrap();
            }
            let mut last = headers(size - 1);
            last.insert("Nats-Batch-Commit", "1");
            let commit = PublishMessage::build().headers(last).payload("last event".into());
            js.send_publish(subject, commit).await.unwrap().await
        }
    };
    let first = batch("one", 0, 3).await.expect("a new account's first batch lands");
    assert_eq!(first.sequence, 3);
    // Another writer's batch with the same (now stale) expectation lands not at all.
    assert!(batch("two", 0, 4).await.is_err(), "a batch with a stale expected sequence is refused");
    assert_eq!(stream.info().await.unwrap().state.messages, 3, "and none of its messages is stored");
    let second = batch("three", 3, 2).await.expect("with the current sequence it lands");
    assert_eq!(second.sequence, 5);
}
