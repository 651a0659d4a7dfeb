//! The `rapport` command line: `rapport serve` runs the service on the embedded store;
//! `append`, `history`, `account`, `demo`, `accounts`, `handover`, `rebuild`, `activate`,
//! `rules`, `compare`, `plans`, `cadence`, `contributions`, `playbook`, `verify`, `digest`,
//! `tail` and `export` are a client for people, talking
//! to a running server over gRPC like any other system would, as are `forget` and
//! `subject-report` (the Privacy service); `import` restores an export offline, `keys rotate`
//! rotates a data directory's master key offline, and `token` makes bearer tokens for the
//! server's tokens file.

mod audit;
mod client;
mod export;
mod input;
mod practice;
mod privacy;
mod projections;
mod render;
mod serve;
mod store;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Rapport: the relationship ledger. Every fact of a customer relationship, kept as an
/// immutable event, folded into the current picture of each account.
#[derive(Debug, Parser)]
#[command(name = "rapport", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service on the embedded store (the segment log in DATA_DIR/log, or sled).
    Serve(Box<ServeArgs>),
    /// Append events read as JSON (AppendRequest objects, one after another or in an array).
    Append(AppendArgs),
    /// Print an account's history as a timeline.
    History(HistoryArgs),
    /// Print an account's current state.
    Account(AccountArgs),
    /// Push a realistic sample of accounts, contacts, meetings, gifts and an owner change.
    Demo(DemoArgs),
    /// List the portfolio as a table: filter by tier, owner, value class, health, risk.
    Accounts(projections::AccountsArgs),
    /// What a new owner inherits: key contacts and who holds them, gifts, commitments, risk.
    Handover(projections::HandoverArgs),
    /// Build a projection under a rule file beside the live one, with a progress bar.
    Rebuild(projections::RebuildArgs),
    /// Serve a built rule set.
    Activate(projections::ActivateArgs),
    /// List the built rule sets with their positions and digests (or, with --explain FILE, print
    /// the whole rule set a rule file resolves to).
    Rules(projections::RulesArgs),
    /// List the accounts whose scores move most between two rule sets, and why.
    Compare(projections::CompareArgs),
    /// Relationship plans, the most urgent first: filter by account, owner (`me`) and status.
    Plans(practice::PlansArgs),
    /// Key contacts and executive visits past their cadence across the portfolio: filter by
    /// owner (`me`) and tier.
    Cadence(practice::CadenceArgs),
    /// Who of ours built the relationships in a period (`--period 2026-Q3`): touches, key
    /// contacts, departments opened, improvements, plans achieved, gifts, and each one's share.
    Contributions(practice::ContributionsArgs),
    /// What works: for each meeting kind, how often the contact met improved soon after,
    /// against the base rate, across the portfolio and by tier.
    Playbook(practice::PlaybookArgs),
    /// Check the hash chain of an account or of the whole log; report the first break.
    Verify(audit::VerifyArgs),
    /// Print the log's root hash at a position, or check it against one kept earlier.
    Digest(audit::DigestArgs),
    /// Follow the log live (optionally from a position, filtered by type or account).
    Tail(audit::TailArgs),
    /// Write the whole log, or one account, as JSON lines with their hashes.
    Export(export::ExportArgs),
    /// Restore a whole-log export into an empty data directory (no server running on it).
    Import(export::ImportArgs),
    /// Forget a contact (GDPR Art. 17, PIPL Art. 47): their data key is deleted, so their name,
    /// title and the text about them can no longer be read anywhere; an auditable
    /// `contact_forgotten` event records it.
    Forget(privacy::ForgetArgs),
    /// Everything held about a contact, opened (GDPR Art. 15, PIPL Art. 45).
    SubjectReport(privacy::SubjectReportArgs),
    /// The key store of a data directory (offline: no server running on it).
    #[command(subcommand)]
    Keys(privacy::KeysCommand),
    /// Make a bearer token for the tokens file, or hash one.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
}

/// Options of `rapport serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RAPPORT_ADDR", default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Address of the web console and the operations endpoints (/metrics, /healthz, /readyz),
    /// or `off`. TLS and tokens are the gRPC listener's.
    #[arg(long, env = "RAPPORT_HTTP_ADDR", default_value = "127.0.0.1:8080", value_parser = http_addr)]
    http_addr: HttpAddr,
    /// Directory of the log and the projections; created if missing.
    #[arg(long, env = "RAPPORT_DATA_DIR", default_value = "./rapport-data")]
    data_dir: PathBuf,
    /// The log engine: `segments` (Rapport's segment log in DATA_DIR/log, projections on sled
    /// in DATA_DIR/projections), `sled` (one sled database in DATA_DIR/sled for both) or `nats`
    /// (the log on a NATS JetStream cluster, `--nats-url`, shared with other Rapport nodes; the
    /// node's projections in DATA_DIR/projections). A data directory keeps the engine it was
    /// made with (DATA_DIR/layout.toml records it). Without this option an existing directory
    /// opens with its own engine and a new one is made for `segments`; with it, a directory of
    /// another engine is refused.
    #[arg(long, env = "RAPPORT_LOG_ENGINE", value_enum)]
    log_engine: Option<store::LogEngine>,
    #[command(flatten)]
    nats: NatsArgs,
    /// Log filter, as in RUST_LOG (`info`, `rapport_server=debug`, ...).
    #[arg(long, env = "RAPPORT_LOG", default_value = "info")]
    log_level: String,
    /// Largest request accepted, in bytes; a larger one is refused before it is decoded.
    #[arg(long, env = "RAPPORT_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Most events in one append request.
    #[arg(long, env = "RAPPORT_MAX_EVENTS_PER_APPEND", default_value_t = 1_000)]
    max_events_per_append: usize,
    /// Longest identifier (account, contact, staff, source), in bytes.
    #[arg(long, env = "RAPPORT_MAX_ID_LEN", default_value_t = 128)]
    max_id_len: usize,
    /// Longest short text (names, titles, topics), in characters.
    #[arg(long, env = "RAPPORT_MAX_LABEL_CHARS", default_value_t = 256)]
    max_label_chars: usize,
    /// Longest note (meeting notes, evidence), in bytes.
    #[arg(long, env = "RAPPORT_MAX_NOTE_BYTES", default_value_t = 16 * 1024)]
    max_note_bytes: usize,
    /// Most entries in a list field (meeting staff, contacts).
    #[arg(long, env = "RAPPORT_MAX_LIST_LEN", default_value_t = 100)]
    max_list_len: usize,
    /// How far in the future an event's business time may lie, in seconds (clock skew).
    #[arg(long, env = "RAPPORT_MAX_FUTURE_SKEW_SECONDS", default_value_t = 86_400)]
    max_future_skew_seconds: u64,
    /// How long a subscription may go unread before the server ends it, in seconds.
    #[arg(long, env = "RAPPORT_SUBSCRIBER_STALL_SECONDS", default_value_t = 30)]
    subscriber_stall_seconds: u64,
    /// Most subscriptions one client (a token, or else a remote IP address) may hold open.
    #[arg(long, env = "RAPPORT_MAX_SUBSCRIPTIONS_PER_CLIENT", default_value_t = 64)]
    max_subscriptions_per_client: usize,
    /// Most requests of one AppendStream held unanswered; beyond it the server stops reading
    /// the stream until answers are taken (flow control holds the client back).
    #[arg(long, env = "RAPPORT_APPEND_STREAM_WINDOW", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    append_stream_window: u32,
    /// Listings score the portfolio at the time rounded down to a multiple of this many
    /// seconds, and keep those scores until the time reaches the next multiple.
    #[arg(long, env = "RAPPORT_LISTING_QUANTUM_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    listing_quantum_seconds: u64,
    /// Require bearer tokens, as listed (hashed) in this TOML file (see `rapport token new`).
    /// Without it, the server serves anyone who can reach it.
    #[arg(long, env = "RAPPORT_TOKENS")]
    tokens: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "RAPPORT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "RAPPORT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The master key that wraps every contact's data key: a file of 64 hex digits (for
    /// example `openssl rand -hex 32`). Keep it apart from the data directory and its backups.
    /// Without it, the data directory's own DATA_DIR/keys/master.key is used, made on first
    /// start.
    #[arg(long, env = "RAPPORT_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Rotate the master key after every erasure, so that the remnants of a deleted key that
    /// may linger on the disk can no longer be unwrapped.
    #[arg(long, env = "RAPPORT_ROTATE_MASTER_KEY_AFTER_ERASURE")]
    rotate_master_key_after_erasure: bool,
    /// Rotate the master key on a schedule, every this many hours (0: never).
    #[arg(long, env = "RAPPORT_ROTATE_MASTER_KEY_EVERY_HOURS", default_value_t = 0)]
    rotate_master_key_every_hours: u64,
    /// Retention: forget contacts this many days after their contact_left, each with its own
    /// contact_forgotten event (checked at start and every hour). Off by default.
    #[arg(long, env = "RAPPORT_FORGET_AFTER_LEFT_DAYS")]
    forget_after_left_days: Option<u64>,
}

/// Where the web console listens: `--http-addr` (a type of its own, as clap reads an
/// `Option` field as an option that may be left out, not as a value that may be `off`).
#[derive(Debug, Clone, Copy)]
enum HttpAddr {
    /// `off`: no console and no operations endpoints.
    Off,
    At(SocketAddr),
}

/// `--http-addr`: an address, or `off` for none.
fn http_addr(text: &str) -> Result<HttpAddr, String> {
    match text {
        "off" => Ok(HttpAddr::Off),
        address => address
            .parse()
            .map(HttpAddr::At)
            .map_err(|_| format!("{address:?} is neither an address like 127.0.0.1:8080 nor `off`")),
    }
}

/// How the `nats` engine reaches its cluster (`rapport serve`, `rapport import`).
#[derive(Debug, Clone, Args)]
pub(crate) struct NatsArgs {
    /// The NATS servers of the cluster that holds the log (engine `nats`), comma-separated,
    /// for example nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224.
    #[arg(long, env = "RAPPORT_NATS_URL")]
    nats_url: Option<String>,
    /// The JetStream stream of the log: made if missing (file storage, --nats-replicas
    /// replicas, no deletes, no purges, no limits), refused if its settings could lose events.
    #[arg(long, env = "RAPPORT_NATS_STREAM", default_value = rapport_nats::stream::DEFAULT_STREAM)]
    nats_stream: String,
    /// Replicas of a stream this node makes; at least 3.
    #[arg(long, env = "RAPPORT_NATS_REPLICAS", default_value_t = rapport_nats::stream::MIN_REPLICAS)]
    nats_replicas: usize,
    /// A NATS credentials file (user JWT and NKey seed), for a cluster that asks for one.
    #[arg(long, env = "RAPPORT_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// Trust these certificate authorities (PEM) for TLS to the NATS servers, and require TLS.
    #[arg(long, env = "RAPPORT_NATS_CA")]
    nats_ca: Option<PathBuf>,
    /// A client certificate (PEM) for NATS servers that verify clients; needs --nats-key.
    #[arg(long, env = "RAPPORT_NATS_CERT", requires = "nats_key")]
    nats_cert: Option<PathBuf>,
    /// The private key (PEM) of --nats-cert.
    #[arg(long, env = "RAPPORT_NATS_KEY", requires = "nats_cert")]
    nats_key: Option<PathBuf>,
    /// How long an append waits for the cluster's acknowledgement before it answers
    /// UNAVAILABLE (the append may still land; a retry with the same event ids is safe).
    #[arg(long, env = "RAPPORT_NATS_TIMEOUT_SECONDS", default_value_t = 5)]
    nats_timeout_seconds: u64,
}

impl NatsArgs {
    /// The client's options, when `--nats-url` names a cluster.
    pub(crate) fn options(&self) -> Option<rapport_nats::NatsOptions> {
        let mut options = rapport_nats::NatsOptions::new(self.nats_url.as_deref()?);
        options.stream.clone_from(&self.nats_stream);
        options.replicas = self.nats_replicas;
        options.credentials.clone_from(&self.nats_creds);
        options.tls_ca.clone_from(&self.nats_ca);
        options.tls_client = self.nats_cert.clone().zip(self.nats_key.clone());
        options.ack_timeout = std::time::Duration::from_secs(self.nats_timeout_seconds.max(1));
        Some(options)
    }
}

/// How a client subcommand reaches the server.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The server's URL (`https://` for a server with TLS).
    #[arg(long, env = "RAPPORT_SERVER", default_value = "http://127.0.0.1:50051", global = true)]
    pub(crate) server: String,
    /// The bearer token to send, for a server with authentication (`rapport token new`).
    #[arg(long, env = "RAPPORT_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The CA certificate (PEM) to trust for an `https://` server.
    #[arg(long, env = "RAPPORT_TLS_CA", global = true)]
    pub(crate) tls_ca: Option<PathBuf>,
}

/// Options of `rapport append`.
#[derive(Debug, Args)]
struct AppendArgs {
    /// JSON file to read; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Actor to record for events that name none (our staff member recording them).
    #[arg(long, env = "RAPPORT_ACTOR")]
    actor: Option<String>,
    /// Source system to record for events that name none.
    #[arg(long, default_value = "rapport-cli")]
    source: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport history`.
#[derive(Debug, Args)]
struct HistoryArgs {
    /// The account.
    account_id: String,
    /// Print recorded events as JSON lines (the proto3 JSON mapping) instead of a timeline.
    #[arg(long)]
    json: bool,
    /// Newest first.
    #[arg(long)]
    backwards: bool,
    /// Start at this version (forwards: the oldest shown; backwards: the newest shown).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Show at most this many events (0: all).
    #[arg(long, default_value_t = 0)]
    limit: u32,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport account`.
#[derive(Debug, Args)]
struct AccountArgs {
    /// The account.
    account_id: String,
    /// Show the account as it was at this instant: a date (`2025-06-30`, meaning the end of
    /// that day, UTC) or an RFC 3339 time (`2025-06-30T12:00:00Z`).
    #[arg(long)]
    as_of: Option<String>,
    /// With --as-of: what we knew then (events recorded by then). The default.
    #[arg(long, conflicts_with = "occurred")]
    known: bool,
    /// With --as-of: what was true then (events that occurred by then, even if recorded later).
    #[arg(long)]
    occurred: bool,
    /// Show the account as of this version of its stream.
    #[arg(long, conflicts_with = "as_of")]
    version: Option<u64>,
    /// Print the view as JSON (the proto3 JSON mapping).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Seed of the generated sample; the same seed gives the same events.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Append(args) => client::append(args).await,
        Command::History(args) => client::history(args).await,
        Command::Account(args) => client::account(args).await,
        Command::Demo(args) => client::demo(args).await,
        Command::Accounts(args) => projections::accounts(args).await,
        Command::Handover(args) => projections::handover(args).await,
        Command::Rebuild(args) => projections::rebuild(args).await,
        Command::Activate(args) => projections::activate(args).await,
        Command::Rules(args) => projections::rules(args).await,
        Command::Compare(args) => projections::compare(args).await,
        Command::Plans(args) => practice::plans(args).await,
        Command::Cadence(args) => practice::cadence(args).await,
        Command::Contributions(args) => practice::contributions(args).await,
        Command::Playbook(args) => practice::playbook(args).await,
        Command::Verify(args) => audit::verify(args).await,
        Command::Digest(args) => audit::digest(args).await,
        Command::Tail(args) => audit::tail(args).await,
        Command::Export(args) => export::export(args).await,
        Command::Import(args) => tokio::task::spawn_blocking(move || export::import(args)).await?,
        Command::Forget(args) => privacy::forget(args).await,
        Command::SubjectReport(args) => privacy::subject_report(args).await,
        Command::Keys(command) => tokio::task::spawn_blocking(move || privacy::keys(command)).await?,
        Command::Token(command) => tokens::run(command),
    }
}
