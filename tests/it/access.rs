//! Access: bearer tokens and roles, over the real server. The role matrix calls every RPC of
//! the contract (read from the descriptor, so a new RPC cannot be forgotten) as every kind of
//! caller, and checks the status against the table below, written from the documented rules.

use std::sync::Arc;

use futures::StreamExt;
use prost::Message;
use rapport_proto::v1 as pb;
use rapport_server::{ServerConfig, Tokens, token_hash};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::*;

/// (identity, role, token, records_for_others)
const TOKENS: [(&str, &str, &str, bool); 6] = [
    ("crm-sync", "writer", "writer-secret-0001", false),
    ("hr-feed", "writer", "hr-secret-0002", true),
    ("ada.audit", "auditor", "auditor-secret-0003", false),
    ("ana.lyst", "analyst", "analyst-secret-0004", false),
    ("dpo", "privacy_officer", "privacy-secret-0006", false),
    ("root.admin", "admin", "admin-secret-0005", false),
];

fn token_of(role: &str) -> &'static str {
    TOKENS.iter().find(|t| t.1 == role).map(|t| t.2).expect("a token per role")
}

fn tokens_file() -> String {
    TOKENS
        .iter()
        .map(|(identity, role, token, others)| {
            format!(
                "[[token]]\nidentity = \"{identity}\"\nrole = \"{role}\"\nsha256 = \"{}\"\nrecords_for_others = {others}\n",
                token_hash(token)
            )
        })
        .collect()
}

async fn server_with_tokens() -> TestServer {
    let tokens = Tokens::parse(&tokens_file()).expect("the test tokens file is valid");
    TestServer::start_with(ServerConfig { tokens: Some(Arc::new(tokens)), ..test_config() }).await
}

/// Which roles besides admin may call each method: the documented table.
fn allowed(method: &str) -> &'static [&'static str] {
    match method {
        "rapport.v1.Ledger/Append" | "rapport.v1.Ledger/AppendStream" => &["writer"],
        "rapport.v1.Ledger/ReadStream"
        | "rapport.v1.Ledger/ReadAll"
        | "rapport.v1.Ledger/Subscribe"
        | "rapport.v1.Ledger/Verify"
        | "rapport.v1.Ledger/Digest" => &["auditor"],
        "rapport.v1.Accounts/GetAccount"
        | "rapport.v1.Accounts/ListAccounts"
        | "rapport.v1.Accounts/Handover"
        | "rapport.v1.Accounts/GiftRegister"
        | "rapport.v1.Accounts/ListPlans"
        | "rapport.v1.Accounts/Cadence"
        | "rapport.v1.Accounts/Contributions"
        | "rapport.v1.Projections/ListRuleSets" => &["auditor", "analyst"],
        "rapport.v1.Projections/Rebuild"
        | "rapport.v1.Projections/Activate"
        | "rapport.v1.Projections/Compare"
        | "rapport.v1.Projections/Playbook" => &["analyst"],
        "rapport.v1.Privacy/ForgetContact" | "rapport.v1.Privacy/SubjectReport" => &["privacy_officer"],
        other => panic!("{other} is not in the role matrix: add it, with the roles the README gives it"),
    }
}

/// Every RPC of `rapport.v1`, as (`package.Service/Method`, server streaming).
fn contract_methods() -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(rapport_proto::FILE_DESCRIPTOR_SET).expect("the descriptor set");
    let mut methods = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == "rapport.v1") {
        for service in &file.service {
            for method in &service.method {
                methods.push((format!("rapport.v1.{}/{}", service.name(), method.name()), method.server_streaming()));
            }
        }
    }
    methods
}

#[tokio::test]
async fn every_rpc_as_every_role_is_allowed_or_refused_as_documented() {
    let server = server_with_tokens().await;
    let methods = contract_methods();
    assert!(methods.len() >= 16, "the contract's RPCs were found: {methods:?}");
    let callers: [(&str, Option<&str>); 7] = [
        ("no token", None),
        ("an unknown token", Some("not-a-configured-token")),
        ("writer", Some(token_of("writer"))),
        ("auditor", Some(token_of("auditor"))),
        ("analyst", Some(token_of("analyst"))),
        ("privacy_officer", Some(token_of("privacy_officer"))),
        ("admin", Some(token_of("admin"))),
    ];
    let mut failures = Vec::new();
    let mut calls = 0;
    for (method, streaming) in &methods {
        let path = format!("/{method}");
        for (caller, token) in callers {
            calls += 1;
            // An empty request: enough to pass or fail the access check, never enough to write.
            let result = raw_call(server.channel(), &path, *streaming, Vec::new(), token).await;
            let code = result.as_ref().err().map(|status| status.code());
            let message = result.as_ref().err().map(|status| status.message().to_owned()).unwrap_or_default();
            let ok = match caller {
                "no token" | "an unknown token" => code == Some(Code::Unauthenticated),
                "admin" => !matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied)),
                role if allowed(method).contains(&role) => {
                    !matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied))
                }
                role => {
                    code == Some(Code::PermissionDenied)
                        && message.contains(&format!("has role {role}"))
                        && message.contains(&path)
                }
            };
            if !ok {
                failures.push(format!("{method} as {caller}: {code:?} {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {calls} calls broke the matrix:\n{}", failures.len(), failures.join("\n"));
    let mut ledger = pb::ledger_client::LedgerClient::with_interceptor(server.channel(), bearer(token_of("admin")));
    let everything = ledger.read_all(pb::ReadAllRequest::default()).await.unwrap().into_inner();
    assert_eq!(everything.count().await, 0, "no call of the matrix wrote anything");
}

#[tokio::test]
async fn a_missing_malformed_or_unknown_token_is_unauthenticated_and_health_stays_open() {
    let server = server_with_tokens().await;
    let append = "/rapport.v1.Ledger/Append";
    let body = request("acme", Expected::NoStream, vec![opened("Acme", "li.wei")]).encode_to_vec();
    let missing = raw_call(server.channel(), append, false, body.clone(), None).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("authorization: Bearer"), "{}", missing.message());
    let unknown = raw_call(server.channel(), append, false, body.clone(), Some("guess")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert!(unknown.message().contains("not one this server knows"), "{}", unknown.message());
    // A token's hash is not the token.
    let hash = token_hash(token_of("writer"));
    assert_eq!(
        raw_call(server.channel(), append, false, body.clone(), Some(&hash)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut basic = tonic::Request::new(pb::ReadAllRequest::default());
    basic.metadata_mut().insert("authorization", "Basic YWRhOnNlY3JldA==".parse().unwrap());
    let malformed = server.ledger().read_all(basic).await.unwrap_err();
    assert_eq!(malformed.code(), Code::Unauthenticated);
    assert!(malformed.message().contains("Bearer <token>"), "{}", malformed.message());

    let mut health = HealthClient::new(server.channel());
    let serving = health.check(HealthCheckRequest { service: "rapport.v1.Ledger".into() }).await.unwrap();
    assert_eq!(serving.into_inner().status, 1, "health answers without a token");

    // The scheme is case-insensitive (RFC 7235): an integration that sends BEARER gets in.
    let mut shouted = tonic::Request::new(pb::ReadAllRequest::default());
    let value = format!("BEARER {}", token_of("auditor"));
    shouted.metadata_mut().insert("authorization", value.parse().unwrap());
    server.ledger().read_all(shouted).await.expect("BEARER is the Bearer scheme");

    // With a right token the same request goes through (one that may record li.wei's events).
    raw_call(server.channel(), append, false, body, Some("hr-secret-0002")).await.unwrap();
    let mut ledger = pb::ledger_client::LedgerClient::with_interceptor(server.channel(), bearer(token_of("auditor")));
    let stream = ledger
        .read_stream(pb::ReadStreamRequest { account_id: "acme".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.count().await, 1);
}

#[tokio::test]
async fn the_actor_is_taken_from_or_checked_against_the_token_and_the_identity_is_recorded() {
    let server = server_with_tokens().await;
    let mut crm = pb::ledger_client::LedgerClient::with_interceptor(server.channel(), bearer(token_of("writer")));
    let mut hr = pb::ledger_client::LedgerClient::with_interceptor(server.channel(), bearer("hr-secret-0002"));

    // No actor: the token's identity becomes the actor.
    let without_actor = |mut event: pb::Event| {
        event.actor.clear();
        event
    };
    let opening = without_actor(opened("Acme", "li.wei"));
    crm.append(request("acme", Expected::NoStream, vec![opening.clone()])).await.unwrap();
    // The token's own identity as actor is accepted.
    let mut own = contact("c1", "IT", true);
    own.actor = "crm-sync".into();
    crm.append(request("acme", Expected::Exact(1), vec![own])).await.unwrap();
    // Someone else as actor: refused for a token that records only its own events; nothing written.
    let mut for_li = signal("c1", 1, 1);
    for_li.actor = "li.wei".into();
    let refused = crm
        .append(request("acme", Expected::Exact(2), vec![without_actor(signal("c1", 0, 1)), for_li.clone()]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().starts_with("events[1].actor is \"li.wei\""), "{}", refused.message());
    // An integration allowed to record for others keeps the actor and is recorded as itself.
    hr.append(request("acme", Expected::Exact(2), vec![for_li])).await.unwrap();

    let mut auditor = pb::ledger_client::LedgerClient::with_interceptor(server.channel(), bearer(token_of("auditor")));
    let history: Vec<pb::RecordedEvent> = auditor
        .read_stream(pb::ReadStreamRequest { account_id: "acme".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap())
        .collect()
        .await;
    let trail: Vec<(String, String)> =
        history.iter().map(|r| (r.event.as_ref().unwrap().actor.clone(), r.recorded_by.clone())).collect();
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(trail, [pair("crm-sync", "crm-sync"), pair("crm-sync", "crm-sync"), pair("li.wei", "hr-feed")]);
    // The identity is covered by the chain: the whole account verifies.
    let verified = auditor
        .verify(pb::VerifyRequest { account_id: "acme".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact && verified.events_checked == 3, "{verified:?}");
    // A retry of the first request, actor again left to the token, is the same request.
    let retry = crm.append(request("acme", Expected::NoStream, vec![opening])).await.unwrap().into_inner();
    assert!(retry.duplicate && retry.first_version == 1, "{retry:?}");
}

#[tokio::test]
async fn subscriptions_per_client_are_limited_per_token() {
    let tokens = Tokens::parse(&tokens_file()).unwrap();
    let config = ServerConfig { tokens: Some(Arc::new(tokens)), max_subscriptions_per_client: 2, ..test_config() };
    let server = TestServer::start_with(config).await;
    let subscribe = |token: &'static str| {
        let channel = server.channel();
        async move {
            let mut ledger = pb::ledger_client::LedgerClient::with_interceptor(channel, bearer(token));
            ledger.subscribe(pb::SubscribeRequest::default()).await
        }
    };
    let first = subscribe(token_of("auditor")).await.unwrap();
    let second = subscribe(token_of("auditor")).await.unwrap();
    let third = subscribe(token_of("auditor")).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(third.message().contains("token \"ada.audit\" already holds 2 subscriptions"), "{}", third.message());
    // Another token has its own allowance.
    let _admin = subscribe(token_of("admin")).await.unwrap();
    // Ending one gives its slot back.
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match subscribe(token_of("auditor")).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(status) => panic!("the slot was not given back: {status:?}"),
        }
    }
    drop(second);
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate_carries_tokens_and_refuses_plaintext() {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a self-signed certificate");
    let identity = rapport_server::TlsIdentity::from_pem(cert.pem(), signing_key.serialize_pem());
    let tokens = Tokens::parse(&tokens_file()).unwrap();
    let config = ServerConfig { tokens: Some(Arc::new(tokens)), tls: Some(identity), ..test_config() };
    let dir = tempfile::tempdir().unwrap();
    let (log, projections) = open_store(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rapport_server::serve(listener, log, projections, config, async {
        let _ = stopped.await;
    }));

    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert.pem()))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection trusting the self-signed certificate");
    let mut writer = pb::ledger_client::LedgerClient::with_interceptor(channel.clone(), bearer(token_of("writer")));
    let mut opening = opened("Acme", "li.wei");
    opening.actor.clear();
    let appended = writer.append(request("acme", Expected::NoStream, vec![opening])).await.unwrap().into_inner();
    assert_eq!((appended.first_version, appended.first_position), (1, 1));
    let mut auditor = pb::ledger_client::LedgerClient::with_interceptor(channel.clone(), bearer(token_of("auditor")));
    let verified = auditor.verify(pb::VerifyRequest::default()).await.unwrap().into_inner();
    assert!(verified.intact && verified.events_checked == 1, "{verified:?}");
    // Roles hold over TLS as well.
    let denied = auditor.append(request("acme", Expected::Any, vec![signal("c1", 1, 1)])).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // A plaintext client gets no gRPC answer from a TLS port.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await;
    if let Ok(plain) = plain {
        let mut ledger = pb::ledger_client::LedgerClient::with_interceptor(plain, bearer(token_of("auditor")));
        let refused = ledger.verify(pb::VerifyRequest::default()).await;
        assert!(refused.is_err(), "a plaintext call to a TLS server must fail");
    }
    // Nor does a client that does not trust the certificate.
    let untrusted = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tonic::transport::ClientTlsConfig::new().domain_name("localhost"))
        .unwrap()
        .connect()
        .await;
    assert!(untrusted.is_err(), "a client without the CA must not connect");

    drop((writer, auditor, channel));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
