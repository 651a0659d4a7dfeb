//! The data directory: which log engine it is laid out for, and the stores `rapport serve` and
//! `rapport import` open in it.
//!
//! A data directory made by this build records its engine in `layout.toml`, written and synced
//! before anything else, and is refused under the other engine:
//! - `segments` (the default): the segment log in `log/`, the projections on sled in
//!   `projections/`;
//! - `sled`: one sled database in `sled/` holding the log and the projections;
//! - `nats`: the log on a NATS JetStream stream that other Rapport nodes share (`--nats-url`),
//!   the node's projections on sled in `projections/`, and in `nats.toml` which stream they are
//!   of (its name and when it was made), so that they are never served over another stream.
//!
//! Directories made before `layout.toml` existed are recognised by their files and served as
//! they are, without writing into them: `log/` (or `projections/`) is the segment log, and a
//! sled database at the top of the directory (sled's `conf` and `db` files) is the layout from
//! before the segment log, one database holding both. `rapport export` then `rapport import`
//! into a new directory moves a history from one engine to the other.
//!
//! Every layout keeps its key store in `keys/` (the data keys of contacts, wrapped under the
//! master key; see `rapport-keys`), made on first open with the directory's master key in
//! `keys/master.key` unless `--master-key-file` names another.
//!
//! `rapport import` marks the directory it fills with `IMPORT-UNFINISHED` until its last event
//! is durable, so that an import that failed or was killed half-way is never served as if it
//! were the whole history.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rapport_keys::{KeyStore, MasterKeySource};
use rapport_nats::{KeyStream, NatsLog, NatsOptions};
use rapport_segments::SegmentLog;
use rapport_sled::{SledLog, SledProjections};
use rapport_store::{EventLog, ProjectionStore, StoreError};
use serde::Deserialize;
use tracing::info;

/// The file that records a data directory's engine and layout version.
pub(crate) const LAYOUT_FILE: &str = "layout.toml";
/// The file that marks a data directory an import is still filling.
pub(crate) const IMPORT_UNFINISHED_FILE: &str = "IMPORT-UNFINISHED";
/// The layout version this build writes and reads. A change to where a data directory keeps
/// its stores, or a new key in `layout.toml`, takes a new version; a build refuses a version
/// newer than its own.
const LAYOUT_VERSION: u32 = 1;

/// The log engine a data directory is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogEngine {
    /// Rapport's own segment log in `log/`, projections on sled in `projections/`.
    Segments,
    /// One sled database in `sled/` for the log and the projections.
    Sled,
    /// The log on a NATS JetStream cluster (`--nats-url`), projections on sled in
    /// `projections/`.
    Nats,
}

impl LogEngine {
    /// The name `--log-engine` and `layout.toml` use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LogEngine::Segments => "segments",
            LogEngine::Sled => "sled",
            LogEngine::Nats => "nats",
        }
    }

    /// What a person calls a directory of this engine.
    fn directory_kind(self) -> &'static str {
        match self {
            LogEngine::Segments => "a segment-log data directory",
            LogEngine::Sled => "a sled data directory",
            LogEngine::Nats => "the data directory of a node on a NATS cluster",
        }
    }
}

impl fmt::Display for LogEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a data directory keeps its stores, as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `layout.toml` names the engine (this build's layout, version 1).
    Recorded(LogEngine),
    /// No `layout.toml`, but `log/` or `projections/`: the segment log as made before
    /// directories recorded their engine.
    SegmentsUnrecorded,
    /// No `layout.toml`, but a sled database in `sled/`: this build's sled layout whose
    /// `layout.toml` was removed.
    SledUnrecorded,
    /// No `layout.toml`, and a sled database at the top: the layout from before the segment
    /// log, one database holding the log and the projections.
    SledAtTop,
}

impl Layout {
    fn engine(self) -> LogEngine {
        match self {
            Layout::Recorded(engine) => engine,
            Layout::SegmentsUnrecorded => LogEngine::Segments,
            Layout::SledUnrecorded | Layout::SledAtTop => LogEngine::Sled,
        }
    }

    /// How the engine was told, for messages and the start-up log.
    fn evidence(self) -> &'static str {
        match self {
            Layout::Recorded(_) => "as its layout.toml records",
            Layout::SegmentsUnrecorded => "it holds log/ and was made before data directories recorded their engine",
            Layout::SledUnrecorded => "it holds a sled database in sled/ (its layout.toml is missing)",
            Layout::SledAtTop => "it holds one sled database at its top, as directories made before the segment log do",
        }
    }
}

/// What `layout.toml` holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    /// The layout version ([`LAYOUT_VERSION`]).
    layout: u32,
    /// The engine the directory was made for.
    engine: LogEngine,
}

/// The log, the projection store and the key store of a data directory.
pub(crate) struct Store {
    pub log: Arc<dyn EventLog>,
    pub projections: Arc<dyn ProjectionStore>,
    pub keys: Arc<KeyStore>,
    /// Where opening made a new master key, if it did.
    pub created_master: Option<PathBuf>,
    /// The engine the directory is laid out for.
    pub engine: LogEngine,
}

/// The key store's directory in a data directory.
pub(crate) fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}

/// Where the master key comes from: the file given, or the data directory's own.
pub(crate) fn master_key(file: Option<&Path>) -> MasterKeySource {
    file.map_or(MasterKeySource::Default, |path| MasterKeySource::File(path.to_owned()))
}

/// Why a data directory could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The directory belongs to another engine than the one asked for.
    OtherEngine { dir: PathBuf, found: LogEngine, evidence: &'static str },
    /// `layout.toml` cannot be read or is not one this build understands.
    Layout { file: PathBuf, reason: String },
    /// An import into the directory did not finish.
    UnfinishedImport { dir: PathBuf },
    /// Making the directory or its `layout.toml` failed.
    Io { what: String, error: io::Error },
    /// The engine could not open its store (damaged, of another format, or an I/O error).
    Store(StoreError),
    /// The key store could not be opened.
    Keys(rapport_keys::KeyError),
    /// The directory is a NATS node's, and no `--nats-url` says where its cluster is.
    NoCluster { dir: PathBuf },
    /// The directory is a NATS node's, and no `--master-key-file` gives the master key every
    /// node of the cluster shares.
    NoSharedMasterKey { dir: PathBuf },
    /// The cluster could not be reached, or its stream is unsafe or damaged.
    Cluster(rapport_nats::OpenError),
    /// The directory's projections are of another stream than the one reached.
    OtherStream { dir: PathBuf, recorded: String, found: String },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::OtherEngine { dir, found, evidence } => {
                let dir = dir.display();
                let kind = found.directory_kind();
                let move_it = match found {
                    LogEngine::Sled | LogEngine::Nats => "to move it to the segment log",
                    LogEngine::Segments => "with --log-engine sled or nats to move it there",
                };
                write!(
                    f,
                    "{dir} is {kind} ({evidence}); run rapport serve --log-engine {found} (or without --log-engine), \
                     or export it and import the export into a new directory {move_it}"
                )
            }
            OpenError::Layout { file, reason } => write!(
                f,
                "{}: {reason}; this file records the data directory's engine and layout, is written once when the \
                 directory is made, and is not to be edited",
                file.display()
            ),
            OpenError::UnfinishedImport { dir } => write!(
                f,
                "{} holds an import that did not finish (its {IMPORT_UNFINISHED_FILE} file is there), so it is not a \
                 whole history and is not opened; delete the directory and run rapport import again",
                dir.display()
            ),
            OpenError::Io { what, error } => write!(f, "could not {what}: {error}"),
            OpenError::Store(error) => write!(f, "{error}"),
            OpenError::Keys(error) => write!(f, "{error}"),
            OpenError::NoCluster { dir } => write!(
                f,
                "{} is the data directory of a node on a NATS cluster; say where the cluster is with --nats-url \
                 (RAPPORT_NATS_URL)",
                dir.display()
            ),
            OpenError::NoSharedMasterKey { dir } => write!(
                f,
                "{} is the data directory of a node on a NATS cluster, whose nodes share their contacts' data keys \
                 wrapped under one master key: give every node the same --master-key-file \
                 (RAPPORT_MASTER_KEY_FILE), for example one made with `openssl rand -hex 32`",
                dir.display()
            ),
            OpenError::Cluster(error) => write!(f, "{error}"),
            OpenError::OtherStream { dir, recorded, found } => write!(
                f,
                "{}'s projections are of the NATS stream {recorded}, but the cluster reached holds the stream \
                 {found}; give --nats-url and --nats-stream of the stream this node served, or start the node on a \
                 new data directory (it then builds its projections from the stream)",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { error, .. } => Some(error),
            OpenError::Store(error) => Some(error),
            OpenError::Keys(error) => Some(error),
            OpenError::Cluster(error) => Some(error),
            _ => None,
        }
    }
}

impl From<StoreError> for OpenError {
    fn from(error: StoreError) -> OpenError {
        OpenError::Store(error)
    }
}

/// Opens the stores in `dir`. A directory with no store in it yet is laid out for `asked`
/// (the segment log when `None`), its `layout.toml` written and synced first; an existing one
/// opens with its own engine, and is refused if `asked` names another. The `nats` engine's log
/// is on the cluster `nats` reaches.
pub(crate) fn open(
    dir: &Path,
    asked: Option<LogEngine>,
    master: MasterKeySource,
    nats: Option<NatsOptions>,
) -> Result<Store, OpenError> {
    if dir.join(IMPORT_UNFINISHED_FILE).exists() {
        return Err(OpenError::UnfinishedImport { dir: dir.to_owned() });
    }
    let layout = match find_layout(dir)? {
        Some(layout) => layout,
        None => make_layout(dir, asked.unwrap_or(LogEngine::Segments))?,
    };
    let engine = layout.engine();
    if let Some(asked) = asked
        && asked != engine
    {
        return Err(OpenError::OtherEngine { dir: dir.to_owned(), found: engine, evidence: layout.evidence() });
    }
    info!(data_dir = %dir.display(), engine = %engine, layout = layout.evidence(), "opening the data directory");
    let (log, projections): Stores = match layout {
        Layout::Recorded(LogEngine::Segments) | Layout::SegmentsUnrecorded => {
            (Arc::new(SegmentLog::open(&dir.join("log"))?), Arc::new(SledProjections::open(&dir.join("projections"))?))
        }
        Layout::Recorded(LogEngine::Sled) | Layout::SledUnrecorded => sled_stores(&dir.join("sled"))?,
        Layout::SledAtTop => sled_stores(dir)?,
        Layout::Recorded(LogEngine::Nats) => {
            let options = nats.as_ref().ok_or_else(|| OpenError::NoCluster { dir: dir.to_owned() })?;
            if matches!(master, MasterKeySource::Default) {
                return Err(OpenError::NoSharedMasterKey { dir: dir.to_owned() });
            }
            let log = NatsLog::open(options).map_err(OpenError::Cluster)?;
            check_stream(dir, &log.stream_identity())?;
            (Arc::new(log), Arc::new(SledProjections::open(&dir.join("projections"))?))
        }
    };
    let opened = KeyStore::open(&keys_dir(dir), master).map_err(OpenError::Keys)?;
    let keys = Arc::new(opened.store);
    if engine == LogEngine::Nats
        && let Some(options) = &nats
    {
        // The nodes of a cluster share their data keys through the key stream: read to its end
        // and installed on the store before anything is sealed or forgotten.
        KeyStream::open(options, Arc::clone(&keys)).map_err(OpenError::Cluster)?;
    }
    Ok(Store { log, projections, keys, created_master: opened.created_master, engine })
}

/// A log and a projection store.
type Stores = (Arc<dyn EventLog>, Arc<dyn ProjectionStore>);

/// The file of a NATS node's data directory that names the stream its projections are of.
const STREAM_FILE: &str = "nats.toml";

/// Whether `dir` is the data directory of a node on a NATS cluster (its `nats.toml` says which
/// stream it serves).
pub(crate) fn is_cluster_node(dir: &Path) -> bool {
    dir.join(STREAM_FILE).exists()
}

/// Records the stream a NATS node's projections are of on its first start, and refuses
/// another stream afterwards (one of another name, or one deleted and made again under the
/// same name: its positions are another log's).
fn check_stream(dir: &Path, found: &str) -> Result<(), OpenError> {
    let file = dir.join(STREAM_FILE);
    let io = |what: String| move |error| OpenError::Io { what, error };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let recorded = text
                .parse::<toml::Table>()
                .ok()
                .and_then(|table| table.get("stream").and_then(toml::Value::as_str).map(str::to_owned))
                .ok_or_else(|| OpenError::Layout { file: file.clone(), reason: "it names no `stream`".to_owned() })?;
            if recorded != found {
                return Err(OpenError::OtherStream { dir: dir.to_owned(), recorded, found: found.to_owned() });
            }
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let text = format!(
                "# The NATS stream this node's projections are of, written on its first start. Do not edit it.\n\
                 stream = {}\n",
                toml::Value::from(found)
            );
            let mut out = File::create(&file).map_err(io(format!("create {}", file.display())))?;
            out.write_all(text.as_bytes()).map_err(io(format!("write {}", file.display())))?;
            out.sync_all().map_err(io(format!("sync {}", file.display())))?;
            sync_dir(dir).map_err(io(format!("sync the data directory {}", dir.display())))
        }
        Err(error) => Err(OpenError::Io { what: format!("read {}", file.display()), error }),
    }
}

fn sled_stores(dir: &Path) -> Result<Stores, OpenError> {
    let log = Arc::new(SledLog::open(dir)?);
    let projections = Arc::new(log.projections());
    Ok((log, projections))
}

/// The layout of an existing data directory; `None` when it holds no store yet.
fn find_layout(dir: &Path) -> Result<Option<Layout>, OpenError> {
    let file = dir.join(LAYOUT_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            return parse_layout(&text)
                .map(|e| Some(Layout::Recorded(e)))
                .map_err(|reason| OpenError::Layout { file, reason });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(OpenError::Io { what: format!("read {}", file.display()), error }),
    }
    // sled keeps a `conf` and a `db` file at the top of its directory.
    let is_sled = |at: &Path| at.join("conf").is_file() && at.join("db").is_file();
    Ok(if is_sled(dir) {
        Some(Layout::SledAtTop)
    } else if dir.join("log").exists() || dir.join("projections").exists() {
        Some(Layout::SegmentsUnrecorded)
    } else if is_sled(&dir.join("sled")) {
        Some(Layout::SledUnrecorded)
    } else {
        None
    })
}

/// The engine a `layout.toml` names, or why it names none this build can open.
fn parse_layout(text: &str) -> Result<LogEngine, String> {
    // The version first, on its own: a newer layout may hold keys this build does not know.
    let table: toml::Table = text.parse().map_err(|e| format!("it is not TOML: {e}"))?;
    match table.get("layout").and_then(toml::Value::as_integer) {
        Some(version) if version == i64::from(LAYOUT_VERSION) => {}
        Some(version) if version > i64::from(LAYOUT_VERSION) => {
            return Err(format!(
                "layout {version} was written by a newer rapport; this build reads layout {LAYOUT_VERSION}"
            ));
        }
        Some(version) => return Err(format!("layout {version} is not a layout rapport ever wrote")),
        None => return Err("it has no `layout` number".to_owned()),
    }
    let file: LayoutFile = toml::from_str(text).map_err(|e| format!("it does not hold together: {e}"))?;
    debug_assert_eq!(file.layout, LAYOUT_VERSION, "checked above");
    Ok(file.engine)
}

/// The text of a new `layout.toml`.
fn layout_text(engine: LogEngine) -> String {
    format!(
        "# How this Rapport data directory is laid out, written when it was made. Do not edit it:\n\
         # rapport opens the directory with this engine and refuses the other.\n\
         layout = {LAYOUT_VERSION}\n\
         engine = \"{}\"\n",
        engine.name()
    )
}

/// Lays out a new data directory for `engine`: creates it and writes `layout.toml` durably
/// before any store exists, so that no store is ever there without the record of its engine.
/// If another process made the directory meanwhile, its layout wins and is returned.
fn make_layout(dir: &Path, engine: LogEngine) -> Result<Layout, OpenError> {
    let io = |what: String| move |error| OpenError::Io { what, error };
    std::fs::create_dir_all(dir).map_err(io(format!("create the data directory {}", dir.display())))?;
    let file = dir.join(LAYOUT_FILE);
    let partial = dir.join(format!("{LAYOUT_FILE}.partial.{}", std::process::id()));
    {
        let mut out = File::create(&partial).map_err(io(format!("create {}", partial.display())))?;
        out.write_all(layout_text(engine).as_bytes()).map_err(io(format!("write {}", partial.display())))?;
        out.sync_all().map_err(io(format!("sync {}", partial.display())))?;
    }
    // A hard link fails if the file exists, where a rename would replace it: of two processes
    // making one directory at once, the first to link decides its engine.
    let linked = std::fs::hard_link(&partial, &file);
    let outcome = match linked {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        // A file system without hard links: a rename is atomic too, only not exclusive.
        Err(_) => std::fs::rename(&partial, &file).map_err(io(format!("write {}", file.display()))),
    };
    let _ = std::fs::remove_file(&partial);
    outcome?;
    sync_dir(dir).map_err(io(format!("sync the data directory {}", dir.display())))?;
    // The directory's own entry, in case it was made just now.
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    sync_dir(parent).map_err(io(format!("sync {}", parent.display())))?;
    match find_layout(dir)? {
        Some(layout) => Ok(layout),
        None => Err(OpenError::Layout { file, reason: "it vanished right after it was written".to_owned() }),
    }
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Marks `dir` as being filled by an import, durably, before its first event is written.
pub(crate) fn mark_import_unfinished(dir: &Path) -> io::Result<()> {
    let mut out = File::create(dir.join(IMPORT_UNFINISHED_FILE))?;
    out.write_all(
        b"rapport import is filling this data directory, or stopped before its last event.\n\
          While this file is here the directory is not opened: delete the directory and import again.\n",
    )?;
    out.sync_all()?;
    sync_dir(dir)
}

/// Removes the mark of [`mark_import_unfinished`], durably, once every event is durable.
pub(crate) fn mark_import_finished(dir: &Path) -> io::Result<()> {
    std::fs::remove_file(dir.join(IMPORT_UNFINISHED_FILE))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_layout_reads_back_as_its_engine() {
        for engine in [LogEngine::Segments, LogEngine::Sled, LogEngine::Nats] {
            assert_eq!(parse_layout(&layout_text(engine)), Ok(engine), "{}", layout_text(engine));
        }
        assert!(layout_text(LogEngine::Sled).contains("engine = \"sled\""));
    }

    #[test]
    fn layouts_this_build_cannot_open_are_refused_with_the_reason() {
        let refused = |text: &str| parse_layout(text).expect_err(text);
        assert!(refused("layout = 2\nengine = \"sled\"\nshards = 4").contains("newer rapport"));
        assert!(refused("layout = 0\nengine = \"sled\"").contains("not a layout"));
        assert!(refused("engine = \"sled\"").contains("no `layout`"));
        assert!(refused("layout = 1\nengine = \"rocks\"").contains("rocks"));
        assert!(refused("layout = 1\nengine = \"sled\"\nextra = true").contains("extra"));
        assert!(refused("layout = 1\n").contains("engine"));
        assert!(refused("not toml at all").contains("not TOML"));
    }
}
