//! The auditor's and follower's commands: `verify`, `digest` and `tail`.

use anyhow::bail;
use clap::Args;
use rapport_proto::v1 as pb;

use crate::ServerArgs;
use crate::client::{connect, refused};

/// Options of `rapport verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Check only this account; without it, the whole log.
    account_id: Option<String>,
    /// Check an export file instead, offline (no server needed).
    #[arg(long, conflicts_with = "account_id")]
    file: Option<std::path::PathBuf>,
    /// With --file: the digest the whole log had when exported, kept earlier.
    #[arg(long, requires = "file")]
    expect: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport digest`.
#[derive(Debug, Args)]
pub(crate) struct DigestArgs {
    /// Take the digest at this position (default: the end of the log).
    #[arg(long, default_value_t = 0)]
    at: u64,
    /// Compare with a digest kept earlier (at the same position); exits non-zero if they differ.
    #[arg(long)]
    expect: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

pub(crate) async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.file {
        return crate::export::verify_file(file, args.expect.as_deref());
    }
    let what = args.account_id.as_deref().map_or_else(|| "the whole log".to_owned(), |a| format!("account \"{a}\""));
    let report = pb::ledger_client::LedgerClient::new(connect(&args.server).await?)
        .verify(pb::VerifyRequest { account_id: args.account_id.clone().unwrap_or_default(), min_position: 0 })
        .await
        .map_err(|status| refused(&format!("could not verify {what}"), &status))?
        .into_inner();
    match report.first_break {
        None => {
            println!(
                "{what}: intact ({} events in {} streams, up to position {})",
                report.events_checked, report.streams_checked, report.last_position
            );
            Ok(())
        }
        Some(found) => bail!(
            "{what} is NOT intact: {}\n{} events checked before the break; restore the data directory from an export \
             or a backup, and keep this one for investigation",
            found.message,
            report.events_checked
        ),
    }
}

pub(crate) async fn digest(args: DigestArgs) -> anyhow::Result<()> {
    let digest = pb::ledger_client::LedgerClient::new(connect(&args.server).await?)
        .digest(pb::DigestRequest { position: args.at, min_position: 0 })
        .await
        .map_err(|status| refused("could not take the digest", &status))?
        .into_inner();
    println!("position {}  streams {}  digest {}", digest.position, digest.streams, digest.digest);
    match args.expect {
        Some(expected) if !expected.eq_ignore_ascii_case(&digest.digest) => bail!(
            "the digest at position {} differs from the one expected ({expected}): the history up to there has changed",
            digest.position
        ),
        Some(_) => {
            println!("matches the digest kept earlier: the history up to position {} is unchanged", digest.position);
            Ok(())
        }
        None => Ok(()),
    }
}

/// Options of `rapport tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// Start at this position (default: only what is appended from now on).
    #[arg(long)]
    from: Option<u64>,
    /// Only events of this type (`meeting_held`, `gift_given`, ...); repeat for several.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only this account; repeat for several.
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Only accounts whose id starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Print recorded events as JSON lines instead of a timeline.
    #[arg(long)]
    json: bool,
    /// Stop after this many events (default: follow until interrupted).
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    server: ServerArgs,
}

pub(crate) async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let mut ledger = pb::ledger_client::LedgerClient::new(connect(&args.server).await?);
    let from_position = match args.from {
        Some(position) => position,
        None => {
            let end = ledger
                .digest(pb::DigestRequest { position: 0, min_position: 0 })
                .await
                .map_err(|status| refused("could not find the end of the log", &status))?;
            end.into_inner().position + 1
        }
    };
    let request = pb::SubscribeRequest {
        from_position,
        filter: Some(pb::SubscribeFilter {
            event_types: args.types,
            account_ids: args.accounts,
            account_id_prefix: args.prefix.unwrap_or_default(),
        }),
        ..Default::default()
    };
    let mut stream = ledger
        .subscribe(request)
        .await
        .map_err(|status| refused("the subscription was refused", &status))?
        .into_inner();
    let mut shown = 0;
    let mut resume_from = from_position;
    while args.limit.is_none_or(|limit| shown < limit) {
        let message = stream.message().await.map_err(|status| {
            refused(&format!("the subscription ended (resume with --from {resume_from})"), &status)
        })?;
        let Some(message) = message else { break };
        match message.kind {
            Some(pb::subscribe_response::Kind::Event(event)) => {
                resume_from = event.position + 1;
                shown += 1;
                if args.json {
                    println!("{}", serde_json::to_string(&event)?);
                } else {
                    println!("{}", crate::render::timeline_line(&event));
                }
            }
            Some(pb::subscribe_response::Kind::Checkpoint(checkpoint)) => resume_from = checkpoint.position + 1,
            Some(pb::subscribe_response::Kind::Heartbeat(_)) | None => {}
        }
    }
    Ok(())
}
