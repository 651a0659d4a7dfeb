//! `rapport forget`, `rapport subject-report` (clients of the Privacy service) and
//! `rapport keys rotate` (offline, on a data directory's key store).

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rapport_keys::KeyStore;
use rapport_proto::v1 as pb;

use crate::ServerArgs;
use crate::client::{connect, refused};
use crate::render;

/// Options of `rapport forget`.
#[derive(Debug, Args)]
pub(crate) struct ForgetArgs {
    /// The account.
    account_id: String,
    /// The contact to forget.
    contact_id: String,
    /// Why: the request's reference (`DSR-2026-0142`). Recorded for good: no personal data.
    #[arg(long)]
    reason: String,
    /// Who asked for the erasure (a staff id); defaults to RAPPORT_ACTOR.
    #[arg(long, env = "RAPPORT_ACTOR")]
    requested_by: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport subject-report`.
#[derive(Debug, Args)]
pub(crate) struct SubjectReportArgs {
    /// The account.
    account_id: String,
    /// The contact.
    contact_id: String,
    /// Print the report as JSON (the proto3 JSON mapping).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// `rapport keys`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Re-wrap every live data key under a new master key and destroy the old one, so that
    /// remnants of deleted keys left on the disk can no longer be unwrapped. Stop the server
    /// first (it holds the key store).
    Rotate {
        /// The data directory.
        #[arg(long, env = "RAPPORT_DATA_DIR", default_value = "./rapport-data")]
        data_dir: PathBuf,
        /// The master key file, if the server is given one (`--master-key-file`); the new
        /// master key replaces it.
        #[arg(long, env = "RAPPORT_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
    },
}

pub(crate) async fn forget(args: ForgetArgs) -> anyhow::Result<()> {
    let mut privacy = pb::privacy_client::PrivacyClient::new(connect(&args.server).await?);
    let request = pb::ForgetContactRequest {
        account_id: args.account_id.clone(),
        contact_id: args.contact_id.clone(),
        reason: args.reason,
        requested_by: args.requested_by,
    };
    let what = format!("could not forget contact \"{}\" of account \"{}\"", args.contact_id, args.account_id);
    let reply = privacy.forget_contact(request).await.map_err(|status| refused(&what, &status))?.into_inner();
    let how = if reply.already_forgotten { "was already forgotten" } else { "is forgotten" };
    println!(
        "contact \"{}\" of account \"{}\" {how}: contact_forgotten at version {}, position {}, recorded {}",
        args.contact_id,
        args.account_id,
        reply.version,
        reply.position,
        render::instant(reply.forgotten_at.as_ref())
    );
    Ok(())
}

pub(crate) async fn subject_report(args: SubjectReportArgs) -> anyhow::Result<()> {
    let mut privacy = pb::privacy_client::PrivacyClient::new(connect(&args.server).await?);
    let request = pb::SubjectReportRequest {
        account_id: args.account_id.clone(),
        contact_id: args.contact_id.clone(),
        min_position: 0,
    };
    let what = format!("could not report on contact \"{}\" of account \"{}\"", args.contact_id, args.account_id);
    let report = privacy.subject_report(request).await.map_err(|status| refused(&what, &status))?.into_inner();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report_text(&report));
    }
    Ok(())
}

/// The subject report as people read it.
fn report_text(report: &pb::SubjectReportResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Subject report: contact \"{}\" of account \"{}\", made {}",
        report.contact_id,
        report.account_id,
        render::instant(report.generated_at.as_ref())
    );
    if report.forgotten {
        let erasure = report.erasure.as_ref();
        let _ = writeln!(
            out,
            "FORGOTTEN at position {} ({}): nothing personal about them can be read any more; what stays is linked \
             only to their id",
            erasure.map_or(0, |e| e.position),
            render::instant(erasure.and_then(|e| e.recorded_at.as_ref())),
        );
    }
    if report.stored_in_clear {
        let _ = writeln!(out, "Some of their events are stored in clear (a data directory from before sealing).");
    }
    if let Some(contact) = &report.contact {
        let _ = writeln!(
            out,
            "\n{} ({}), {}, key contact: {}",
            contact.name,
            contact.title,
            contact.department,
            if contact.key { "yes" } else { "no" }
        );
    }
    let _ = writeln!(out, "\n{} events concern them:", report.events.len());
    for recorded in &report.events {
        let _ = writeln!(out, "{}", render::timeline_line(recorded));
    }
    out
}

pub(crate) fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { data_dir, master_key_file } => {
            let dir = crate::store::keys_dir(&data_dir);
            if crate::store::is_cluster_node(&data_dir) {
                anyhow::bail!(
                    "{} is a node of a NATS cluster, whose nodes share their data keys wrapped under one master key; \
                     rotating it on one node would leave the others unable to read the keys it makes, so a \
                     cluster's master key cannot be rotated yet",
                    data_dir.display()
                );
            }
            if !dir.join("keyring").exists() {
                anyhow::bail!("{} holds no key store; is {} a data directory?", dir.display(), data_dir.display());
            }
            let master = crate::store::master_key(master_key_file.as_deref());
            let opened = KeyStore::open(&dir, master)
                .with_context(|| format!("could not open the key store in {}", dir.display()))?;
            let path = opened.store.rotate().context("the rotation failed; the old master key still holds")?;
            let counts = opened.store.counts();
            println!(
                "rotated: {} live keys re-wrapped under a new master key in {}; the old master key is destroyed ({} \
                 forgotten keys stay deleted)",
                counts.live,
                path.display(),
                counts.forgotten
            );
            Ok(())
        }
    }
}
