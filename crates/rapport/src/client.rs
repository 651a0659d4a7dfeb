//! The client subcommands: a person's way to push events and look at accounts, over the same
//! gRPC contract every other system uses.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use rapport_proto::{v1 as pb, wkt};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::input::{Defaults, fill_defaults, parse_requests};
use crate::render;
use crate::{AccountArgs, AppendArgs, DemoArgs, HistoryArgs, ServerArgs};

/// A connection to the server that sends the bearer token (if any) with every request.
pub(crate) type Connection = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub(crate) struct Bearer(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub(crate) async fn connect(server: &ServerArgs) -> anyhow::Result<Connection> {
    let mut endpoint = Endpoint::from_shared(server.server.clone())
        .with_context(|| format!("--server \"{}\" is not a URL like http://127.0.0.1:50051", server.server))?;
    if server.server.starts_with("https://") {
        let path = server.tls_ca.as_ref().with_context(|| {
            format!("{} is an https URL: pass --tls-ca (or RAPPORT_TLS_CA), the CA certificate to trust", server.server)
        })?;
        let pem = std::fs::read(path).with_context(|| format!("could not read --tls-ca {}", path.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .context("the TLS settings are not valid")?;
    }
    let bearer = match &server.token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse::<AsciiMetadataValue>()
                .map_err(|_| anyhow!("--token (or RAPPORT_TOKEN) holds characters a token cannot have"))?,
        ),
        None => None,
    };
    let channel = endpoint.connect().await.map_err(|error| {
        anyhow!(
            "cannot reach the Rapport server at {}: {}\nStart one with `rapport serve`, or point --server (or RAPPORT_SERVER) at it",
            server.server,
            source_chain(&error)
        )
    })?;
    Ok(InterceptedService::new(channel, Bearer(bearer)))
}

/// The innermost cause of a transport error ("Connection refused"), which is what a person
/// needs to read.
fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        last = cause.to_string();
        source = cause.source();
    }
    last
}

pub(crate) fn refused(what: &str, status: &Status) -> anyhow::Error {
    anyhow!("{what}: {:?}: {}", status.code(), status.message())
}

fn now() -> wkt::Timestamp {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    wkt::Timestamp { seconds: elapsed.as_secs() as i64, nanos: elapsed.subsec_nanos() as i32 }
}

pub(crate) async fn append(args: AppendArgs) -> anyhow::Result<()> {
    let (text, origin) = match args.file.as_deref() {
        None => (read_stdin()?, "standard input".to_owned()),
        Some(path) if path.as_os_str() == "-" => (read_stdin()?, "standard input".to_owned()),
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))?,
            path.display().to_string(),
        ),
    };
    let mut requests = parse_requests(&text, &origin)?;
    let defaults = Defaults {
        actor: args.actor.as_deref(),
        server_fills_actor: args.server.token.is_some(),
        source: &args.source,
        now: now(),
    };
    for note in fill_defaults(&mut requests, &defaults)? {
        eprintln!("note: {note}");
    }
    let mut ledger = pb::ledger_client::LedgerClient::new(connect(&args.server).await?);
    let sent: Vec<(String, usize)> = requests.iter().map(|r| (r.account_id.clone(), r.events.len())).collect();
    let total = sent.len();
    let mut refusals = Vec::new();
    for (index, ((account_id, count), answer)) in
        sent.into_iter().zip(append_all(&mut ledger, requests).await?).enumerate()
    {
        match answer {
            Ok(r) => {
                let what = if r.duplicate { "already recorded" } else { "appended" };
                println!(
                    "{account_id}: {count} event(s) {what} at versions {}..{}, positions {}..{}",
                    r.first_version, r.last_version, r.first_position, r.last_position
                );
            }
            Err(status) => {
                let error = refused(
                    &format!("request {} of {total} to account \"{account_id}\" was refused", index + 1),
                    &status,
                );
                eprintln!("{error}");
                refusals.push(index + 1);
            }
        }
    }
    match refusals.as_slice() {
        [] => Ok(()),
        [one] if total == 1 => bail!("request {one} was refused; nothing was appended"),
        _ => bail!(
            "{} of {total} requests were refused (requests {}); the others were appended (above)",
            refusals.len(),
            refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Sends `requests` over one `AppendStream` (one round trip for all of them, decided in this
/// order) and returns each one's answer in the same order: what unary `Append` would have
/// answered. Fails only when the stream itself does.
async fn append_all(
    ledger: &mut pb::ledger_client::LedgerClient<Connection>,
    requests: Vec<pb::AppendRequest>,
) -> anyhow::Result<Vec<Result<pb::AppendResponse, Status>>> {
    use pb::append_stream_response::Outcome;
    let total = requests.len();
    let outgoing = requests
        .into_iter()
        .zip(1u64..)
        .map(|(request, correlation_id)| pb::AppendStreamRequest { correlation_id, request: Some(request) });
    let mut answers: Vec<Option<Result<pb::AppendResponse, Status>>> = (0..total).map(|_| None).collect();
    let mut stream = ledger
        .append_stream(futures::stream::iter(outgoing))
        .await
        .map_err(|status| refused("the server did not take the appends", &status))?
        .into_inner();
    let mut answered = 0;
    let broke = |answered: usize| {
        format!(
            "the append stream broke with {answered} of {total} requests answered; those without an answer may or \
             may not be recorded: sending them again with the same event ids is safe"
        )
    };
    while let Some(answer) = stream.message().await.map_err(|status| refused(&broke(answered), &status))? {
        let slot = usize::try_from(answer.correlation_id).ok().and_then(|id| answers.get_mut(id.checked_sub(1)?));
        let (Some(slot), Some(outcome)) = (slot, answer.outcome) else {
            bail!(
                "the server answered correlation id {} of {total}, which this client did not send",
                answer.correlation_id
            );
        };
        *slot = Some(match outcome {
            Outcome::Appended(response) => Ok(response),
            Outcome::Error(status) => Err(Status::new(Code::from_i32(status.code), status.message)),
        });
        answered += 1;
    }
    answers.into_iter().map(|answer| answer.ok_or_else(|| anyhow!(broke(answered)))).collect()
}

fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("could not read standard input")?;
    Ok(text)
}

pub(crate) async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let mut ledger = pb::ledger_client::LedgerClient::new(connect(&args.server).await?);
    let request = pb::ReadStreamRequest {
        account_id: args.account_id.clone(),
        from_version: args.from,
        backwards: args.backwards,
        limit: args.limit,
        min_position: 0,
    };
    let mut stream = ledger
        .read_stream(request)
        .await
        .map_err(|status| refused(&format!("could not read the history of \"{}\"", args.account_id), &status))?
        .into_inner();
    while let Some(recorded) = stream
        .message()
        .await
        .map_err(|status| refused(&format!("reading the history of \"{}\" failed", args.account_id), &status))?
    {
        if args.json {
            println!("{}", serde_json::to_string(&recorded)?);
        } else {
            println!("{}", render::timeline_line(&recorded));
        }
    }
    Ok(())
}

pub(crate) async fn account(args: AccountArgs) -> anyhow::Result<()> {
    let mut accounts = pb::accounts_client::AccountsClient::new(connect(&args.server).await?);
    let as_of = args.as_of.as_deref().map(parse_instant).transpose()?;
    if (args.known || args.occurred) && as_of.is_none() {
        bail!("--known and --occurred say which question --as-of answers; give --as-of too");
    }
    let as_of_kind = match (as_of.is_some(), args.occurred) {
        (false, _) => pb::AsOf::Unspecified,
        (true, true) => pb::AsOf::Occurred,
        (true, false) => pb::AsOf::Known,
    };
    let request = pb::GetAccountRequest {
        account_id: args.account_id.clone(),
        as_of,
        as_of_kind: as_of_kind as i32,
        as_of_version: args.version.unwrap_or(0),
        ..Default::default()
    };
    let view = accounts
        .get_account(request)
        .await
        .map_err(|status| refused(&format!("could not get account \"{}\"", args.account_id), &status))?
        .into_inner();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render::account(&view));
    }
    Ok(())
}

pub(crate) async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let channel = connect(&args.server).await?;
    let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
    let mut reader = pb::accounts_client::AccountsClient::new(channel);
    let requests = rapport_demo::sample(args.seed, now().seconds);
    let mut accounts: Vec<String> = Vec::new();
    for request in &requests {
        if !accounts.contains(&request.account_id) {
            accounts.push(request.account_id.clone());
        }
    }
    for account_id in &accounts {
        match reader.get_account(pb::GetAccountRequest { account_id: account_id.clone(), ..Default::default() }).await {
            Err(status) if status.code() == Code::NotFound => {}
            Ok(_) => bail!(
                "account \"{account_id}\" already exists on this server, so the demo was pushed before; look at it \
                 with `rapport account {account_id}`, or start a server on a fresh --data-dir"
            ),
            Err(status) => return Err(refused(&format!("could not check account \"{account_id}\""), &status)),
        }
    }
    let events: usize = requests.iter().map(|r| r.events.len()).sum();
    let account_ids: Vec<String> = requests.iter().map(|r| r.account_id.clone()).collect();
    for (account_id, answer) in account_ids.iter().zip(append_all(&mut ledger, requests).await?) {
        answer.map_err(|status| refused(&format!("the demo append to \"{account_id}\" was refused"), &status))?;
    }
    println!("pushed {events} events into {} accounts:", accounts.len());
    let mut views = Vec::new();
    for account_id in &accounts {
        let view = reader
            .get_account(pb::GetAccountRequest { account_id: account_id.clone(), ..Default::default() })
            .await
            .map_err(|status| refused(&format!("could not read back \"{account_id}\""), &status))?
            .into_inner();
        println!(
            "  {:<24} {:<32} owner {:<14} {} contacts, {} events",
            account_id,
            view.name,
            view.owner,
            view.contacts.len(),
            view.version
        );
        views.push(view);
    }
    println!("\nThe practice finds:\n{}", crate::practice::highlights(&views));
    if let Some(first) = accounts.first() {
        println!(
            "next: `rapport account {first}` and `rapport history {first}`; the week's work with `rapport cadence`, \
             `rapport plans`, `rapport contributions` and `rapport playbook`"
        );
    }
    Ok(())
}

/// An instant from the command line: a date means the end of that day (UTC), so that
/// "as of 2025-06-30" includes everything of June 30; otherwise an RFC 3339 time.
fn parse_instant(text: &str) -> anyhow::Result<wkt::Timestamp> {
    let instant = if let Ok(date) = text.parse::<jiff::civil::Date>() {
        let next_day = date.tomorrow().and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))?;
        next_day.timestamp() - jiff::SignedDuration::from_nanos(1)
    } else {
        text.parse::<jiff::Timestamp>().with_context(|| {
            format!("--as-of {text:?} is neither a date (2025-06-30) nor an RFC 3339 time (2025-06-30T12:00:00Z)")
        })?
    };
    Ok(wkt::Timestamp { seconds: instant.as_second(), nanos: instant.subsec_nanosecond() })
}
