//! `rapport export`, `rapport verify --file` and `rapport import`: the log as JSON lines.
//!
//! One recorded event per line, with stable field names (see the README):
//! `{"position", "account_id", "version", "recorded_at", "event_id", "recorded_by", "event",
//! "prev_hash", "hash"}` (`recorded_by` only when not empty). `event` is the event in the proto3 JSON mapping; its canonical protobuf encoding
//! is the byte string the hash covers, so a line whose event was altered no longer matches its
//! hash. Verifying a file needs no server; importing one needs an empty data directory.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_proto::v1 as pb;
use rapport_store::{AppendBatch, ChainCheck, NewEvent, StoredEvent, hex};
use serde::{Deserialize, Serialize};

use crate::ServerArgs;
use crate::client::{connect, refused};

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    position: u64,
    account_id: String,
    version: u64,
    /// RFC 3339, nanosecond precision, UTC.
    recorded_at: String,
    event_id: String,
    /// The token identity that appended the event; absent when it was appended without one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    recorded_by: String,
    event: pb::Event,
    /// Lower-case hex SHA-256.
    prev_hash: String,
    hash: String,
}

/// Options of `rapport export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Export only this account; without it, the whole log.
    #[arg(long)]
    account: Option<String>,
    /// The file to write; `-` or nothing writes standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The export to restore (a whole-log export).
    file: PathBuf,
    /// The data directory to restore into; it must hold no events.
    #[arg(long)]
    data_dir: PathBuf,
}

fn recorded_to_line(recorded: pb::RecordedEvent) -> anyhow::Result<Line> {
    let at = recorded.recorded_at.unwrap_or_default();
    let recorded_at = jiff::Timestamp::new(at.seconds, at.nanos)?;
    Ok(Line {
        position: recorded.position,
        account_id: recorded.account_id,
        version: recorded.version,
        recorded_at: format!("{recorded_at:.9}"),
        event_id: recorded.event.as_ref().map(|e| e.event_id.clone()).unwrap_or_default(),
        recorded_by: recorded.recorded_by,
        event: recorded.event.unwrap_or_default(),
        prev_hash: hex(&hash_bytes(&recorded.prev_hash)),
        hash: hex(&hash_bytes(&recorded.hash)),
    })
}

fn hash_bytes(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).unwrap_or([0; 32])
}

fn unhex(text: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<_>>()
        .with_context(|| format!("{what} {text:?} is not hex"))?;
    <[u8; 32]>::try_from(bytes).map_err(|_| anyhow::anyhow!("{what} {text:?} is not 32 bytes of hex"))
}

/// A line as the store holds it; the payload is the event's canonical encoding.
fn line_to_stored(line: &Line) -> anyhow::Result<StoredEvent> {
    let limits = Limits::for_recorded_events();
    let recorded_at: jiff::Timestamp = line.recorded_at.parse().context("recorded_at is not an RFC 3339 time")?;
    Ok(StoredEvent {
        account_id: AccountId::parse(&line.account_id, &limits).map_err(|e| anyhow::anyhow!("account_id: {e}"))?,
        version: line.version,
        position: line.position,
        recorded_at: Timestamp::from_parts(recorded_at.as_second(), recorded_at.subsec_nanosecond())
            .map_err(|e| anyhow::anyhow!("recorded_at: {e}"))?,
        event_id: EventId::parse(&line.event_id).map_err(|e| anyhow::anyhow!("event_id: {e}"))?,
        recorded_by: line.recorded_by.clone(),
        payload: Bytes::from(line.event.encode_to_vec()),
        prev_hash: unhex(&line.prev_hash, "prev_hash")?,
        hash: unhex(&line.hash, "hash")?,
    })
}

pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let mut ledger =
        pb::ledger_client::LedgerClient::new(connect(&args.server).await?).max_decoding_message_size(64 * 1024 * 1024);
    let mut stream = match &args.account {
        Some(account_id) => ledger
            .read_stream(pb::ReadStreamRequest { account_id: account_id.clone(), ..Default::default() })
            .await
            .map_err(|status| refused(&format!("could not read account \"{account_id}\""), &status))?,
        None => ledger
            .read_all(pb::ReadAllRequest::default())
            .await
            .map_err(|status| refused("could not read the log", &status))?,
    }
    .into_inner();
    let mut out: Box<dyn Write> = match args.out.as_deref() {
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
        Some(path) if path.as_os_str() == "-" => Box::new(BufWriter::new(std::io::stdout().lock())),
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("could not create {}", path.display()))?,
        )),
    };
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} events exported ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    while let Some(recorded) = stream.message().await.map_err(|status| refused("the export stopped", &status))? {
        serde_json::to_writer(&mut out, &recorded_to_line(recorded)?)?;
        out.write_all(b"\n")?;
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    eprintln!("exported {} events", bar.position());
    Ok(())
}

/// What a verified file holds.
pub(crate) struct Verified {
    events: Vec<StoredEvent>,
    check: ChainCheck,
    whole_log: bool,
}

/// Reads and checks an export: every line parses, every chain holds. A file that starts at
/// position 1 is a whole-log export, whose positions must follow each other without gaps.
fn read_verified(path: &Path) -> anyhow::Result<Verified> {
    let file = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let mut events = Vec::new();
    let mut check = None;
    for (n, text) in BufReader::new(file).lines().enumerate() {
        let number = n + 1;
        let text = text.with_context(|| format!("{}: line {number} could not be read", path.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&text)
            .with_context(|| format!("{}: line {number} is not an exported event", path.display()))?;
        let stored = line_to_stored(&line)
            .with_context(|| format!("{}: line {number} does not hold together", path.display()))?;
        let check = check
            .get_or_insert_with(|| if stored.position == 1 { ChainCheck::whole_log() } else { ChainCheck::streams() });
        if let Err(found) = check.check(&stored) {
            bail!(
                "{}: line {number} breaks the chain: {found}\nThe file was altered (or is incomplete); do not trust or import it",
                path.display()
            );
        }
        events.push(stored);
    }
    let whole_log = events.first().is_some_and(|e| e.position == 1);
    Ok(Verified { events, check: check.unwrap_or_else(ChainCheck::streams), whole_log })
}

/// `rapport verify --file`: checks an export offline.
pub(crate) fn verify_file(path: &Path, expect: Option<&str>) -> anyhow::Result<()> {
    let verified = read_verified(path)?;
    let kind = if verified.whole_log { "a whole-log export" } else { "a partial export" };
    println!(
        "{}: intact, {kind} of {} events in {} streams, up to position {}",
        path.display(),
        verified.check.events(),
        verified.check.streams_seen(),
        verified.check.position()
    );
    if verified.whole_log {
        let digest = hex(&verified.check.digest());
        println!("digest at position {}: {digest}", verified.check.position());
        if let Some(expected) = expect
            && !expected.eq_ignore_ascii_case(&digest)
        {
            bail!("the file's digest differs from the one expected ({expected}): it is not that history");
        }
    } else if expect.is_some() {
        bail!("only a whole-log export has a digest to compare");
    }
    Ok(())
}

pub(crate) fn import(args: ImportArgs) -> anyhow::Result<()> {
    let verified = read_verified(&args.file)?;
    if !verified.whole_log {
        bail!(
            "{} is a partial export (it does not start at position 1); only a whole-log export can be restored with its positions",
            args.file.display()
        );
    }
    let log = crate::store::open(&args.data_dir)
        .with_context(|| format!("could not open the data directory {}", args.data_dir.display()))?
        .log;
    let last = log.last_position()?;
    if last > 0 {
        bail!(
            "{} already holds {last} events; import restores into an empty data directory only",
            args.data_dir.display()
        );
    }
    let bar = ProgressBar::new(verified.events.len() as u64).with_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} events imported ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    for event in &verified.events {
        let appended = log.append(AppendBatch {
            account_id: &event.account_id,
            expected_version: event.version - 1,
            recorded_at: event.recorded_at,
            recorded_by: &event.recorded_by,
            events: &[NewEvent { event_id: event.event_id, payload: event.payload.clone() }],
        })?;
        let head = log.stream_head(&event.account_id)?;
        if appended.first_position != event.position || head.map(|h| h.hash) != Some(event.hash) {
            bail!(
                "the restored event at position {} does not reproduce the exported one (position {}); the data directory is \
                 unusable, delete it",
                event.position,
                appended.first_position
            );
        }
        if event.position % 10_000 == 0 {
            log.sync()?;
        }
        bar.inc(1);
    }
    log.sync()?;
    bar.finish_and_clear();
    println!(
        "imported {} events into {}; digest at position {}: {}",
        verified.events.len(),
        args.data_dir.display(),
        verified.check.position(),
        hex(&verified.check.digest())
    );
    Ok(())
}
