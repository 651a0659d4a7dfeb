//! The PostgreSQL peer: events in one append-only table, as a team that "just puts events in
//! Postgres" would build it.
//!
//! - The table has a unique `(account_id, version)` constraint and a unique `event_id`;
//!   `position` is a `bigserial`.
//! - An append is one `INSERT … SELECT … FROM unnest(…)` statement, so one transaction and one
//!   round trip per request, committed with `synchronous_commit = on`. The expected version is
//!   checked in the statement (`WHERE max(version) = expected`); two writers racing for the
//!   same version are told apart by the unique constraint; `any` retries such a race.
//! - The event is stored as the same protobuf bytes Rapport stores, with its type, times, actor
//!   and source in columns.
//! - Reading an account replays its rows and folds them with Rapport's own projection fold and
//!   scores, so both systems answer the same question with the same code; a rebuild is a full
//!   scan in position order folding every event the same way.
//!
//! What it does not do, and Rapport does: validate events against the account (contacts
//! known, owner changes from the owner, …), chain hashes, keep a projection up to date, and
//! make retries idempotent by event id (a retry here is refused by the unique `event_id`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::{StreamExt, pin_mut};
use prost::Message;
use rapport_domain::{AccountId, Limits, Timestamp};
use rapport_projection::{AccountProjection, Folded, RuleSet, scores};
use rapport_proto::v1 as pb;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use crate::load::{Ledger, Refused, System};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position    bigserial   PRIMARY KEY,
    account_id  text        NOT NULL,
    version     bigint      NOT NULL,
    event_id    uuid        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    source      text        NOT NULL,
    payload     bytea       NOT NULL,
    UNIQUE (account_id, version)
)";

/// Appends with a version check: inserts nothing unless the stream is at `$2` (`$9` false) or
/// whatever it is at (`$9` true).
const APPEND: &str = "
INSERT INTO events (account_id, version, event_id, event_type, occurred_at, actor, source, payload)
SELECT $1, head.version + e.ord, e.id, e.kind, e.at, e.actor, e.source, e.payload
FROM (SELECT coalesce(max(version), 0) AS version FROM events WHERE account_id = $1) AS head,
     unnest($3::uuid[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::bytea[])
         WITH ORDINALITY AS e(id, kind, at, actor, source, payload, ord)
WHERE $9 OR head.version = $2";

const HEAD: &str = "SELECT coalesce(max(version), 0) FROM events WHERE account_id = $1";
const STREAM: &str =
    "SELECT version, position, recorded_at, payload FROM events WHERE account_id = $1 ORDER BY version";

/// The peer, on a database URL.
pub struct Peer {
    url: String,
}

impl Peer {
    /// Creates the table (if missing) in the database at `url`.
    pub async fn create(url: &str) -> anyhow::Result<Peer> {
        let client = connect(url).await?;
        client.batch_execute(SCHEMA).await?;
        Ok(Peer { url: url.to_owned() })
    }

    /// Removes every event (between measurements).
    pub async fn clear(&self) -> anyhow::Result<()> {
        // No ANALYZE of the empty table: statistics saying "empty" would steer the planner to
        // sequential scans as the table grows during the measurement.
        connect(&self.url).await?.batch_execute("TRUNCATE events RESTART IDENTITY").await?;
        Ok(())
    }

    /// Loads requests quickly (no per-request round trip): the bulk path for the large scenarios.
    pub async fn load(&self, requests: &[pb::AppendRequest]) -> anyhow::Result<()> {
        let client = connect(&self.url).await?;
        let statement = client.prepare(APPEND).await?;
        for chunk in requests.chunks(64) {
            let sends = chunk.iter().map(|request| insert(&client, &statement, request, None));
            for result in futures::future::join_all(sends).await {
                result?;
            }
        }
        client.batch_execute("VACUUM ANALYZE events").await?;
        Ok(())
    }

    /// Bytes of the table with its indexes and TOAST.
    pub async fn table_bytes(&self) -> anyhow::Result<u64> {
        let client = connect(&self.url).await?;
        let row = client.query_one("SELECT pg_total_relation_size('events')", &[]).await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Scans every event in position order and folds each account under `rules`, as a
    /// rebuild does; returns the number of events and the accounts' count.
    pub async fn fold_all(&self, rules: &RuleSet) -> anyhow::Result<(u64, usize)> {
        let client = connect(&self.url).await?;
        let rows = client
            .query_raw(
                "SELECT account_id, version, position, recorded_at, payload FROM events ORDER BY position",
                std::iter::empty::<i32>(),
            )
            .await?;
        pin_mut!(rows);
        let mut accounts: HashMap<String, AccountProjection> = HashMap::new();
        let mut events = 0;
        while let Some(row) = rows.next().await {
            let row = row?;
            let account_id: String = row.get(0);
            let folded =
                Row { version: row.get(1), position: row.get(2), recorded_at: row.get(3), payload: row.get(4) };
            let event = folded.event()?;
            let at = folded.folded(&event);
            match accounts.get_mut(&account_id) {
                Some(projection) => projection.apply(at, rules),
                None => {
                    let id = AccountId::parse(&account_id, &Limits::for_recorded_events())
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    if let Some(projection) = AccountProjection::open(id, at) {
                        accounts.insert(account_id, projection);
                    }
                }
            }
            events += 1;
        }
        Ok((events, accounts.len()))
    }
}

/// One client: its own connection, the append statement prepared.
pub struct PeerClient {
    client: Client,
    append: Statement,
    head: Statement,
    stream: Statement,
    rules: RuleSet,
}

impl System for Peer {
    type Client = PeerClient;

    async fn connect(&self) -> anyhow::Result<PeerClient> {
        let client = connect(&self.url).await?;
        let append = client.prepare(APPEND).await?;
        let head = client.prepare(HEAD).await?;
        let stream = client.prepare(STREAM).await?;
        Ok(PeerClient { client, append, head, stream, rules: RuleSet::default_rules() })
    }
}

impl Ledger for PeerClient {
    async fn append(&mut self, request: pb::AppendRequest) -> Result<(), Refused> {
        use pb::expected_version::Kind;
        let expected = match request.expected.as_ref().and_then(|e| e.kind.as_ref()) {
            None | Some(Kind::Any(_)) => None,
            Some(Kind::NoStream(_)) => Some(0),
            Some(Kind::Exact(version)) => Some(*version),
            Some(Kind::StreamExists(_)) => None,
        };
        loop {
            match insert(&self.client, &self.append, &request, expected).await {
                Ok(0) => return Err(self.conflict(&request.account_id).await),
                Ok(_) => return Ok(()),
                Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    if expected.is_some() {
                        return Err(self.conflict(&request.account_id).await);
                    }
                    // `any` lost a race for the next version: take the new head.
                }
                Err(error) => return Err(Refused::Failed(error.into())),
            }
        }
    }

    async fn get_account(&mut self, account_id: &str) -> anyhow::Result<()> {
        let rows = self.client.query(&self.stream, &[&account_id]).await?;
        let events: Vec<(Row, rapport_domain::Event)> = rows
            .into_iter()
            .map(|row| {
                let row =
                    Row { version: row.get(0), position: row.get(1), recorded_at: row.get(2), payload: row.get(3) };
                let event = row.event()?;
                anyhow::Ok((row, event))
            })
            .collect::<Result<_, _>>()?;
        let folded: Vec<Folded<'_>> = events.iter().map(|(row, event)| row.folded(event)).collect();
        let id = AccountId::parse(account_id, &Limits::for_recorded_events()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let projection =
            AccountProjection::replay(id, &folded, &self.rules).with_context(|| format!("no account {account_id}"))?;
        let _ = scores(&projection, &self.rules, timestamp(SystemTime::now()));
        Ok(())
    }
}

impl PeerClient {
    async fn conflict(&self, account_id: &str) -> Refused {
        match self.client.query_one(&self.head, &[&account_id]).await {
            Ok(row) => Refused::Conflict { current: row.get::<_, i64>(0) as u64 },
            Err(error) => Refused::Failed(error.into()),
        }
    }
}

/// Runs the append statement for a request; the number of rows inserted.
async fn insert(
    client: &Client,
    statement: &Statement,
    request: &pb::AppendRequest,
    expected: Option<u64>,
) -> Result<u64, tokio_postgres::Error> {
    let events = &request.events;
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| uuid::Uuid::parse_str(&e.event_id).unwrap_or_default()).collect();
    let kinds: Vec<&str> =
        events.iter().map(|e| e.body.as_ref().map_or("none", |b| rapport_wire::kind_of(b).name())).collect();
    let times: Vec<SystemTime> = events
        .iter()
        .map(|e| {
            e.occurred_at
                .map_or(UNIX_EPOCH, |t| UNIX_EPOCH + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32))
        })
        .collect();
    let actors: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let payloads: Vec<Vec<u8>> = events.iter().map(Message::encode_to_vec).collect();
    let expected_version = expected.unwrap_or(0) as i64;
    client
        .execute(
            statement,
            &[
                &request.account_id,
                &expected_version,
                &ids,
                &kinds,
                &times,
                &actors,
                &sources,
                &payloads,
                &expected.is_none(),
            ],
        )
        .await
}

/// A stored row, as the fold needs it.
struct Row {
    version: i64,
    position: i64,
    recorded_at: SystemTime,
    payload: Vec<u8>,
}

impl Row {
    fn event(&self) -> anyhow::Result<rapport_domain::Event> {
        rapport_wire::event_from_bytes(&self.payload).map_err(|e| anyhow::anyhow!("row {}: {e}", self.position))
    }

    fn folded<'a>(&self, event: &'a rapport_domain::Event) -> Folded<'a> {
        Folded {
            event,
            version: self.version as u64,
            position: self.position as u64,
            recorded_at: timestamp(self.recorded_at),
        }
    }
}

fn timestamp(at: SystemTime) -> Timestamp {
    let nanos = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Timestamp::from_unix_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}
