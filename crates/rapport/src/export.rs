//! `rapport export`, `rapport verify --file` and `rapport import`: the log as JSON lines.
//!
//! One recorded event per line, with stable field names (see the README):
//! `{"position", "account_id", "version", "recorded_at", "event_id", "recorded_by", "event",
//! "stored", "forgotten", "prev_hash", "hash"}` (`recorded_by` only when not empty, `stored` and
//! `forgotten` only when set); the line itself is `rapport_wire::export::ExportLine`, which the
//! console's export download writes too. Verifying a file needs no server; importing one needs
//! an empty data directory, and seals what it imports under that directory's keys (`migrate`).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use std::collections::HashSet;

use rapport_domain::{AccountId, EventBody, EventId, Limits, Personal, Timestamp};
use rapport_keys::{KeyStore, SubjectId};
use rapport_proto::v1 as pb;
use rapport_store::{AppendBatch, Appended, ChainCheck, EventLog, HashScheme, NewEvent, StoredEvent, hex};
use rapport_wire::export::ExportLine;
use rapport_wire::sealing::{holds_clear_text, open_event, seal_event, subjects_of};

use crate::ServerArgs;
use crate::client::{connect, refused};
use crate::store::LogEngine;

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
    /// The log engine of a new data directory, `segments` (the default), `sled` or `nats` (into
    /// an empty stream of the cluster `--nats-url` names); an existing empty one keeps its own
    /// (see `rapport serve --help`).
    #[arg(long, env = "RAPPORT_LOG_ENGINE", value_enum)]
    log_engine: Option<LogEngine>,
    #[command(flatten)]
    nats: crate::NatsArgs,
    /// The master key the directory's server will be given (see `rapport serve --help`);
    /// without it, the directory's own is used, made if missing.
    #[arg(long, env = "RAPPORT_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

fn unhex(text: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<_>>()
        .with_context(|| format!("{what} {text:?} is not hex"))?;
    <[u8; 32]>::try_from(bytes).map_err(|_| anyhow::anyhow!("{what} {text:?} is not 32 bytes of hex"))
}

/// A line as the store holds it; the payload is the stored event's canonical encoding.
fn line_to_stored(line: &ExportLine) -> anyhow::Result<StoredEvent> {
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
        payload: Bytes::from(line.stored.as_ref().unwrap_or(&line.event).encode_to_vec()),
        prev_hash: unhex(&line.prev_hash, "prev_hash")?,
        hash: unhex(&line.hash, "hash")?,
        scheme: HashScheme::from_number(line.hash_scheme)
            .with_context(|| format!("hash_scheme {} is not one this build knows (1 or 2)", line.hash_scheme))?,
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
        serde_json::to_writer(&mut out, &ExportLine::from_recorded(recorded)?)?;
        out.write_all(b"\n")?;
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    eprintln!("exported {} events", bar.position());
    Ok(())
}

/// Reads an export line by line, checking each event against the chains before it, so that
/// a file of any size is read in bounded memory. A file that starts at position 1 is a
/// whole-log export, whose positions must follow each other without gaps.
struct ExportReader<R> {
    path: PathBuf,
    lines: std::io::Lines<BufReader<R>>,
    /// The number of the last line read.
    number: usize,
    /// Made at the first event, which says whether the file is a whole-log export.
    check: Option<ChainCheck>,
    /// Whether the first event is at position 1.
    whole_log: bool,
}

impl ExportReader<File> {
    fn open(path: &Path) -> anyhow::Result<ExportReader<File>> {
        let file = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
        Ok(ExportReader::new(path, file))
    }
}

impl<R: Read> ExportReader<R> {
    fn new(path: &Path, read: R) -> ExportReader<R> {
        ExportReader {
            path: path.to_owned(),
            lines: BufReader::new(read).lines(),
            number: 0,
            check: None,
            whole_log: false,
        }
    }

    /// The next event of the file, checked; `None` at its end.
    fn next_event(&mut self) -> anyhow::Result<Option<Exported>> {
        let path = self.path.display();
        for text in self.lines.by_ref() {
            self.number += 1;
            let number = self.number;
            let text = text.with_context(|| format!("{path}: line {number} could not be read"))?;
            if text.trim().is_empty() {
                continue;
            }
            let line: ExportLine = serde_json::from_str(&text)
                .with_context(|| format!("{path}: line {number} is not an exported event"))?;
            let stored =
                line_to_stored(&line).with_context(|| format!("{path}: line {number} does not hold together"))?;
            let check = self.check.get_or_insert_with(|| {
                self.whole_log = stored.position == 1;
                if self.whole_log { ChainCheck::whole_log() } else { ChainCheck::streams() }
            });
            if let Err(found) = check.check(&stored) {
                bail!(
                    "{path}: line {number} breaks the chain: {found}\nThe file was altered (or is incomplete); do not \
                     trust or import it"
                );
            }
            if let Some(sealed) = &line.stored
                && !shown_matches_stored(&line.event, sealed)
            {
                bail!(
                    "{path}: line {number} breaks the chain: its event is not the one its stored form (which the hash \
                     covers) holds, in a field that is not sealed\nThe file was altered; do not trust or import it"
                );
            }
            return Ok(Some(Exported { stored, shown: line.event, forgotten: line.forgotten }));
        }
        Ok(None)
    }
}

/// Whether an event as readers saw it is its stored form with the sealed fields opened: every
/// field the hash covers in clear must be the same. (The sealed ones cannot be checked
/// without the keys.)
fn shown_matches_stored(shown: &pb::Event, stored: &pb::Event) -> bool {
    let limits = Limits::for_recorded_events();
    let (Ok(mut shown), Ok(stored)) = (
        rapport_wire::event_from_wire(shown.clone(), "event", &limits),
        rapport_wire::event_from_wire(stored.clone(), "stored", &limits),
    ) else {
        return false;
    };
    let sealed = stored.body.personal_fields();
    let mut opened = shown.body.personal_fields_mut();
    if opened.len() != sealed.len() {
        return false;
    }
    for ((field, text), (stored_field, stored_text)) in opened.iter_mut().zip(sealed) {
        if *field != stored_field {
            return false;
        }
        **text = stored_text.clone();
    }
    drop(opened);
    rapport_wire::encode_event(&shown) == rapport_wire::encode_event(&stored)
}

/// An exported event: as the log stored it (checked against its chain), and as readers saw it.
struct Exported {
    stored: StoredEvent,
    shown: pb::Event,
    forgotten: bool,
}

/// An exported event as the data directory it is imported into stores it, and whether its
/// bytes changed. A sealed event whose keys that directory holds (its `keys/` restored from
/// the same place) is kept as it was; any other personal text is sealed under the directory's
/// own keys, made as needed: text in clear (an export from before sealing) from the stored
/// event, sealed text from what readers saw. Text shown forgotten stays forgotten, and a
/// `contact_forgotten` leaves its contact forgotten in the key store too.
fn migrate(keys: &KeyStore, exported: Exported) -> anyhow::Result<(StoredEvent, bool)> {
    let Exported { mut stored, shown, forgotten } = exported;
    let account = stored.account_id.clone();
    let original = rapport_wire::event_from_bytes(&stored.payload)?;
    let subjects = subjects_of(&account, &original);
    let mut event = original.clone();
    if !subjects.is_empty() {
        let mut opened = original.clone();
        open_event(&mut opened, &account, keys);
        if holds_clear_text(&original) || (!forgotten && opened.body.is_forgotten()) {
            if !holds_clear_text(&original) {
                event = rapport_wire::event_from_wire(shown, "event", &Limits::for_recorded_events())
                    .map_err(|v| anyhow::anyhow!("the event as readers saw it does not hold together: {v}"))?;
            }
            let found = keys.keys_or_create(&subjects).context("could not make the contacts' data keys")?;
            seal_event(&mut event, &account, &found);
        } else if forgotten {
            for (_, text) in event.body.personal_fields_mut() {
                if matches!(text, Personal::Sealed(_)) {
                    *text = Personal::Forgotten;
                }
            }
        }
    }
    if let EventBody::ContactForgotten(erasure) = &original.body {
        keys.forget(&SubjectId::of(&account, &erasure.contact_id)).context("could not forget a contact's key")?;
    }
    let payload = rapport_wire::encode_event(&event);
    let changed = payload != stored.payload;
    stored.payload = payload;
    Ok((stored, changed))
}

/// `rapport verify --file`: checks an export offline.
pub(crate) fn verify_file(path: &Path, expect: Option<&str>) -> anyhow::Result<()> {
    let mut reader = ExportReader::open(path)?;
    while reader.next_event()?.is_some() {}
    let whole_log = reader.whole_log;
    let check = reader.check.unwrap_or_else(ChainCheck::streams);
    let kind = if whole_log { "a whole-log export" } else { "a partial export" };
    println!(
        "{}: intact, {kind} of {} events in {} streams, up to position {}",
        path.display(),
        check.events(),
        check.streams_seen(),
        check.position()
    );
    if whole_log {
        let digest = hex(&check.digest());
        println!("digest at position {}: {digest}", check.position());
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

/// Most events restored with one `append_all` and one sync: enough that a sync is a small
/// share of a group's cost, few enough that a group's events stay a few MiB in memory.
const GROUP_EVENTS: usize = 4_096;
/// Most event bytes in one group, so that groups of large events stay bounded too (and a
/// group stays well inside one 64 MiB segment of the segment log).
const GROUP_BYTES: usize = 4 << 20;
/// Most events in one restored batch. Consecutive exported events of one account, recording
/// time and identity were usually one request (at most `--max-events-per-append`); several
/// consecutive requests can share all three, and the append's checks of a batch's ids are
/// quadratic in its length, so a longer run is split (each part restores exactly the same).
const BATCH_EVENTS: usize = 1_000;

/// Splits a group of exported events, in position order, into the batches that restore it:
/// consecutive events of one account with the same recording time and `recorded_by`, at
/// most [`BATCH_EVENTS`] each. The log records `max(recorded_at, last recorded_at)` for a
/// batch, and the exported times never decrease, so each batch gets back its exact time.
fn batch_runs(group: &[StoredEvent]) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (index, event) in group.iter().enumerate() {
        let extends = runs.last().is_some_and(|run| {
            let last = &group[run.end - 1];
            run.len() < BATCH_EVENTS
                && last.account_id == event.account_id
                && last.recorded_at == event.recorded_at
                && last.recorded_by == event.recorded_by
                && last.version + 1 == event.version
        });
        match runs.last_mut() {
            Some(run) if extends => run.end = index + 1,
            _ => runs.push(index..index + 1),
        }
    }
    runs
}

/// What an import has done to the chains: the streams whose events it sealed anew (so their
/// hashes from there on differ from the export's), and the restored log's own chain check.
struct Rechained {
    streams: HashSet<AccountId>,
    events: u64,
    check: ChainCheck,
}

/// Restores one group of exported events (the next ones of the log, in position order) with
/// one `append_all` and one sync, then reads them back and compares every field with the
/// export: hashes included, except in streams where the import sealed an event anew.
fn restore_group(
    log: &dyn EventLog,
    migrated: &[(StoredEvent, bool)],
    rechained: &mut Rechained,
) -> anyhow::Result<()> {
    let group: Vec<StoredEvent> = migrated.iter().map(|(event, _)| event.clone()).collect();
    let group = group.as_slice();
    let Some(first) = group.first() else { return Ok(()) };
    let new_events: Vec<NewEvent> =
        group.iter().map(|event| NewEvent { event_id: event.event_id, payload: event.payload.clone() }).collect();
    let runs = batch_runs(group);
    let batches: Vec<AppendBatch<'_>> = runs
        .iter()
        .map(|run| {
            let head = &group[run.start];
            AppendBatch {
                account_id: &head.account_id,
                expected_version: head.version.saturating_sub(1),
                recorded_at: head.recorded_at,
                recorded_by: &head.recorded_by,
                events: &new_events[run.clone()],
            }
        })
        .collect();
    for (run, result) in runs.iter().zip(log.append_all(&batches)) {
        let head = &group[run.start];
        let appended =
            result.with_context(|| format!("the event at position {} could not be restored", head.position))?;
        let expected =
            Appended { first_version: head.version, first_position: head.position, recorded_at: head.recorded_at };
        if appended != expected {
            bail!(
                "the restored event at position {} landed at version {}, position {}, recorded at {} instead of the \
                 exported version {}, position {}, recorded at {}",
                head.position,
                appended.first_version,
                appended.first_position,
                appended.recorded_at,
                head.version,
                head.position,
                head.recorded_at
            );
        }
    }
    let mut restored = Vec::with_capacity(group.len());
    while restored.len() < group.len() {
        let page = log.read_all(first.position + restored.len() as u64, group.len() - restored.len())?;
        if page.is_empty() {
            bail!("the restored log ends at position {}", first.position + restored.len() as u64 - 1);
        }
        restored.extend(page);
    }
    for ((exported, changed), found) in migrated.iter().zip(&restored) {
        // An event sealed anew, or hashed by another scheme than the export's (an export of
        // the replicated log restored into an embedded one), changes its stream's hashes.
        if *changed || exported.scheme != found.scheme {
            rechained.events += 1;
            rechained.streams.insert(exported.account_id.clone());
        }
        if let Err(found) = rechained.check.check(found) {
            bail!("the restored log breaks its own chain: {found}");
        }
    }
    let differs = |exported: &StoredEvent, found: &StoredEvent| {
        if rechained.streams.contains(&exported.account_id) {
            let unhashed = |e: &StoredEvent| StoredEvent {
                hash: [0; 32],
                prev_hash: [0; 32],
                scheme: HashScheme::Positioned,
                ..e.clone()
            };
            unhashed(exported) != unhashed(found)
        } else {
            exported != found
        }
    };
    if let Some((exported, found)) = group.iter().zip(&restored).find(|(exported, found)| differs(exported, found)) {
        bail!(
            "the restored event at position {} does not reproduce the exported one (hash {} instead of {})",
            exported.position,
            hex(&found.hash),
            hex(&exported.hash)
        );
    }
    log.sync()?;
    Ok(())
}

pub(crate) fn import(args: ImportArgs) -> anyhow::Result<()> {
    let file = File::open(&args.file).with_context(|| format!("could not open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "[{bar:40}] {bytes}/{total_bytes} of the export imported ({bytes_per_sec}, {msg})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message("0 events");
    let mut reader = ExportReader::new(&args.file, bar.wrap_read(file));
    // The first event says whether the file can be restored, before the directory is touched.
    let Some(first) = reader.next_event()? else {
        bail!("{} holds no events; there is nothing to import", args.file.display());
    };
    if first.stored.position != 1 {
        bail!(
            "{} is a partial export (it does not start at position 1); only a whole-log export can be restored with its positions",
            args.file.display()
        );
    }
    let dir = &args.data_dir;
    let master = crate::store::master_key(args.master_key_file.as_deref());
    let store = crate::store::open(dir, args.log_engine, master, args.nats.options())
        .with_context(|| format!("could not open the data directory {}", dir.display()))?;
    let last = store.log.last_position()?;
    if last > 0 {
        bail!("{} already holds {last} events; import restores into an empty data directory only", dir.display());
    }
    crate::store::mark_import_unfinished(dir)
        .with_context(|| format!("could not mark {} as being imported into", dir.display()))?;
    let stopped = || {
        format!(
            "the import stopped; {} holds part of the export and is marked as an unfinished import, so it will not be \
             opened: delete it",
            dir.display()
        )
    };
    let mut rechained = Rechained { streams: HashSet::new(), events: 0, check: ChainCheck::whole_log() };
    let reader = restore(&*store.log, &store.keys, reader, first, &bar, &mut rechained).with_context(stopped)?;
    crate::store::mark_import_finished(dir).with_context(stopped)?;
    bar.finish_and_clear();
    let check = reader.check.unwrap_or_else(ChainCheck::whole_log);
    println!(
        "imported {} events into {} ({} log); the file's digest at position {}: {}",
        check.events(),
        dir.display(),
        store.engine,
        check.position(),
        hex(&check.digest())
    );
    if rechained.events > 0 {
        println!(
            "sealed {} events anew under this directory's keys (their personal data was in clear, or sealed under \
             keys this directory does not hold), in {} streams, whose hashes from there on are new: the log's \
             digest at position {} is now {}",
            rechained.events,
            rechained.streams.len(),
            rechained.check.position(),
            hex(&rechained.check.digest())
        );
    }
    if let Some(master) = &store.created_master {
        println!("made a new master key at {}; keep a copy apart from the data directory's backups", master.display());
    }
    Ok(())
}

/// Reads the rest of the export on its own thread, in groups, while this one restores each
/// group (`restore_group`): parsing and appending overlap, and at most a few groups are in
/// memory. Returns the reader, whose check holds the file's digest.
fn restore<R: Read + Send>(
    log: &dyn EventLog,
    keys: &KeyStore,
    mut reader: ExportReader<R>,
    first: Exported,
    bar: &ProgressBar,
    rechained: &mut Rechained,
) -> anyhow::Result<ExportReader<R>> {
    std::thread::scope(|scope| {
        let (groups, received) = std::sync::mpsc::sync_channel::<anyhow::Result<Vec<Exported>>>(2);
        let producer = scope.spawn(move || {
            let mut pending = Some(first);
            loop {
                let mut group = Vec::with_capacity(GROUP_EVENTS);
                let mut bytes = 0;
                // Whether more may follow, or why the file cannot be read further.
                let more = loop {
                    if group.len() >= GROUP_EVENTS || bytes >= GROUP_BYTES {
                        break Ok(true);
                    }
                    match pending.take().map_or_else(|| reader.next_event(), |event| Ok(Some(event))) {
                        Ok(Some(event)) => {
                            bytes += event.stored.payload.len();
                            group.push(event);
                        }
                        Ok(None) => break Ok(false),
                        Err(error) => break Err(error),
                    }
                };
                // A failed send means the restoring side stopped; it reports why.
                if !group.is_empty() && groups.send(Ok(group)).is_err() {
                    return reader;
                }
                match more {
                    Ok(true) => {}
                    Ok(false) => return reader,
                    Err(error) => {
                        let _ = groups.send(Err(error));
                        return reader;
                    }
                }
            }
        });
        let mut restored = 0;
        for group in received {
            let group = group?.into_iter().map(|event| migrate(keys, event)).collect::<anyhow::Result<Vec<_>>>()?;
            restore_group(log, &group, rechained)?;
            restored += group.len();
            bar.set_message(format!("{restored} events"));
        }
        producer.join().map_err(|_| anyhow::anyhow!("the thread reading the export panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(account: &str, version: u64, position: u64, second: i64, recorded_by: &str) -> StoredEvent {
        let mut id = [0; 16];
        id[8..].copy_from_slice(&position.to_be_bytes());
        StoredEvent {
            account_id: AccountId::parse(account, &Limits::for_recorded_events()).unwrap(),
            version,
            position,
            recorded_at: Timestamp::from_parts(second, 0).unwrap(),
            event_id: EventId::from_bytes(id),
            recorded_by: recorded_by.to_owned(),
            payload: Bytes::from_static(b"event"),
            prev_hash: [0; 32],
            hash: [0; 32],
            scheme: HashScheme::Positioned,
        }
    }

    #[test]
    fn a_batch_is_a_run_of_one_account_recorded_at_one_time_by_one_identity() {
        let group = [
            event("acme", 1, 1, 10, ""),
            event("acme", 2, 2, 10, ""),
            event("helios", 1, 3, 10, ""),       // another account
            event("acme", 3, 4, 10, ""),         // back to the first: a new batch
            event("acme", 4, 5, 11, ""),         // a later recording time
            event("acme", 5, 6, 11, "crm-sync"), // another identity
            event("acme", 6, 7, 11, "crm-sync"),
        ];
        assert_eq!(batch_runs(&group), vec![0..2, 2..3, 3..4, 4..5, 5..7]);
        assert_eq!(batch_runs(&[]), Vec::<Range<usize>>::new());
    }

    #[test]
    fn a_long_run_is_split_into_batches_of_at_most_a_thousand() {
        let group: Vec<StoredEvent> = (1..=2_500).map(|n| event("acme", n, n, 10, "")).collect();
        assert_eq!(batch_runs(&group), vec![0..1_000, 1_000..2_000, 2_000..2_500]);
    }
}
