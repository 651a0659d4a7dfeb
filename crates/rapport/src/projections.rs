//! The analyst's and account manager's commands: `rebuild`, `activate`, `rules`, `compare`,
//! `accounts` and `handover`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_projection::{PortfolioOrder, ScoreKind};
use rapport_proto::v1 as pb;

use crate::ServerArgs;
use crate::client::{Connection, connect, refused};
use crate::render;

/// Options of `rapport rebuild`.
#[derive(Debug, Args)]
pub(crate) struct RebuildArgs {
    /// The rule file (TOML; see rules/default.toml).
    #[arg(long)]
    rules: PathBuf,
    /// Start again from the first event even if this rule set is built already.
    #[arg(long)]
    from_scratch: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport activate`.
#[derive(Debug, Args)]
pub(crate) struct ActivateArgs {
    /// The built rule set to serve, as `name@version`.
    rule_set: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport rules`.
#[derive(Debug, Args)]
pub(crate) struct RulesArgs {
    /// Instead of listing the server's builds, print the whole rule set this rule file
    /// resolves to (every key, in the current format), offline, and which keys its format did
    /// not have and so took their defaults.
    #[arg(long, value_name = "FILE")]
    explain: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport compare`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The rule set to compare from (`name@version`).
    a: String,
    /// The rule set to compare to.
    b: String,
    /// Show this many accounts, largest change first.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport accounts`.
#[derive(Debug, Args)]
pub(crate) struct AccountsArgs {
    /// Only this tier (S, A, B, C).
    #[arg(long)]
    tier: Option<String>,
    /// Only accounts this person owns.
    #[arg(long)]
    owner: Option<String>,
    /// Only this value class (champion, "future star", harvest, cost).
    #[arg(long)]
    value_class: Option<String>,
    /// Only accounts at risk.
    #[arg(long)]
    at_risk: bool,
    /// Only accounts with a key contact or executive visits past their cadence.
    #[arg(long)]
    overdue: bool,
    /// Only accounts where touches bypassed the account team.
    #[arg(long)]
    uncoordinated: bool,
    /// Only accounts whose team lacks this role of the iron triangle (sales, solution, delivery).
    #[arg(long, value_parser = ["sales", "solution", "delivery"])]
    missing_role: Option<String>,
    /// Only accounts whose team lacks any role of the iron triangle.
    #[arg(long)]
    team_incomplete: bool,
    /// Sort by a score (health, key, general, organisational, risk, coordination) or by
    /// name, tier, owner or value-class.
    #[arg(long, default_value = "health")]
    sort: String,
    /// Lowest first.
    #[arg(long)]
    ascending: bool,
    /// Only accounts whose health is at least this.
    #[arg(long)]
    min_health: Option<f64>,
    /// Only accounts whose health is at most this.
    #[arg(long)]
    max_health: Option<f64>,
    /// Show at most this many accounts.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Read a built rule set other than the active one (`name@version`).
    #[arg(long)]
    rule_set: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport handover`.
#[derive(Debug, Args)]
pub(crate) struct HandoverArgs {
    /// The account.
    account_id: String,
    /// Read a built rule set other than the active one (`name@version`).
    #[arg(long)]
    rule_set: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

async fn client(server: &ServerArgs) -> anyhow::Result<pb::projections_client::ProjectionsClient<Connection>> {
    Ok(pb::projections_client::ProjectionsClient::new(connect(server).await?))
}

pub(crate) async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("could not read the rule file {}", args.rules.display()))?;
    let mut projections = client(&args.server).await?;
    let mut stream = projections
        .rebuild(pb::RebuildRequest { rule_set: text, from_scratch: args.from_scratch })
        .await
        .map_err(|status| refused(&format!("the rebuild under {} was refused", args.rules.display()), &status))?
        .into_inner();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} events  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    while let Some(step) = stream.message().await.map_err(|status| refused("the rebuild stopped", &status))? {
        bar.set_prefix(step.rule_set.clone());
        bar.set_length(step.events_total);
        bar.set_position(step.events_done);
        bar.set_message(format!("{:.0} events/s, {:.0} s left", step.events_per_second, step.eta_seconds));
        if step.caught_up {
            bar.finish_and_clear();
            println!(
                "{} caught up at position {} ({:.0} events/s)\ndigest {}\nIt follows new appends until you activate it: `rapport activate {}`",
                step.rule_set, step.events_done, step.events_per_second, step.digest, step.rule_set
            );
            return Ok(());
        }
    }
    bar.abandon();
    anyhow::bail!("the server ended the rebuild before it caught up; run the same command again to resume it")
}

pub(crate) async fn activate(args: ActivateArgs) -> anyhow::Result<()> {
    let activated = client(&args.server)
        .await?
        .activate(pb::ActivateRequest { rule_set: args.rule_set.clone() })
        .await
        .map_err(|status| refused(&format!("could not activate {}", args.rule_set), &status))?
        .into_inner();
    println!("serving {} (was {}) at position {}", activated.rule_set, activated.previous, activated.position);
    Ok(())
}

pub(crate) async fn rules(args: RulesArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.explain {
        print!("{}", explain(file)?);
        return Ok(());
    }
    let listed = client(&args.server)
        .await?
        .list_rule_sets(pb::ListRuleSetsRequest {})
        .await
        .map_err(|status| refused("could not list the rule sets", &status))?
        .into_inner();
    println!("{:<3} {:<24} {:>12} {:>10}  digest", "", "rule set", "position", "accounts");
    for info in &listed.rule_sets {
        let marker = if info.active { "*" } else { "" };
        let position = if info.position < info.log_position {
            format!("{}/{}", info.position, info.log_position)
        } else {
            info.position.to_string()
        };
        println!("{marker:<3} {:<24} {position:>12} {:>10}  {}", info.id, info.accounts, info.digest);
    }
    Ok(())
}

pub(crate) async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let compared = client(&args.server)
        .await?
        .compare(pb::CompareRequest { rule_set_a: args.a.clone(), rule_set_b: args.b.clone(), limit: args.limit })
        .await
        .map_err(|status| refused(&format!("could not compare {} and {}", args.a, args.b), &status))?
        .into_inner();
    println!(
        "{} accounts whose scores move most from {} to {} (as of {})",
        compared.accounts.len(),
        args.a,
        args.b,
        render::instant(compared.as_of.as_ref())
    );
    for movement in &compared.accounts {
        let health = |s: &Option<pb::Scores>| s.as_ref().and_then(|s| s.health.as_ref()).map_or(0.0, |h| h.value);
        println!(
            "\n{:<24} largest change {:.2}; health {:.2} -> {:.2}",
            movement.account_id,
            movement.largest_change,
            health(&movement.a),
            health(&movement.b)
        );
        for factor in movement.factors.iter().take(6) {
            println!("    {:<28} {:<24} {:>7.2} -> {:>7.2}", factor.score, factor.factor, factor.a, factor.b);
        }
    }
    Ok(())
}

/// The rule set a rule file resolves to, as TOML with every key, each defaulted key marked.
fn explain(file: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("could not read the rule file {}", file.display()))?;
    let resolved = rapport_projection::RuleSet::resolve(&text).with_context(|| format!("in {}", file.display()))?;
    let mut out = format!(
        "# {} ({}), written in rule format {}, as this build reads it (format {}).\n",
        file.display(),
        resolved.rules.id(),
        resolved.format,
        rapport_projection::FORMAT
    );
    if resolved.defaulted.is_empty() {
        out.push_str("# Every key was given in the file.\n");
    }
    for key in &resolved.defaulted {
        let _ = writeln!(
            out,
            "# {} = {}: added in format {}; the file's format does not have it",
            key.key, key.default, key.format
        );
    }
    out.push('\n');
    out.push_str(&resolved.rules.to_toml());
    Ok(out)
}

/// `--sort`: a score's short name, or a field of the account.
fn sort_key(name: &str) -> anyhow::Result<PortfolioOrder> {
    PortfolioOrder::named(name).ok_or_else(|| {
        let names: Vec<&str> = render::health_first().map(ScoreKind::short).collect();
        anyhow::anyhow!("--sort {name:?}: use one of {}, name, tier, owner or value-class", names.join(", "))
    })
}

pub(crate) async fn accounts(args: AccountsArgs) -> anyhow::Result<()> {
    let mut ranges = Vec::new();
    if args.min_health.is_some() || args.max_health.is_some() {
        ranges.push(pb::ScoreRange {
            score: rapport_wire::score_kind_to_wire(ScoreKind::Health) as i32,
            min: args.min_health.unwrap_or(0.0),
            max: args.max_health.unwrap_or(100.0),
        });
    }
    let order = sort_key(&args.sort)?;
    let mut request = pb::ListAccountsRequest {
        rule_set: args.rule_set.unwrap_or_default(),
        tier: args.tier.unwrap_or_default(),
        owner: args.owner.unwrap_or_default(),
        value_class: args.value_class.unwrap_or_default(),
        ranges,
        at_risk: args.at_risk,
        sort_by: 0,
        order_by: 0,
        ascending: args.ascending,
        page_size: args.limit,
        page_token: String::new(),
        min_position: 0,
        overdue: args.overdue,
        uncoordinated: args.uncoordinated,
        missing_role: match args.missing_role.as_deref() {
            Some("sales") => pb::TeamRole::Sales as i32,
            Some("solution") => pb::TeamRole::Solution as i32,
            Some("delivery") => pb::TeamRole::Delivery as i32,
            _ => pb::TeamRole::Unspecified as i32,
        },
        team_incomplete: args.team_incomplete,
    };
    rapport_wire::requests::sort_listing_by(&mut request, order);
    let listed = pb::accounts_client::AccountsClient::new(connect(&args.server).await?)
        .list_accounts(request)
        .await
        .map_err(|status| refused("could not list the accounts", &status))?
        .into_inner();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} of {} accounts under {} as of {}",
        listed.accounts.len(),
        listed.total,
        listed.rule_set,
        render::instant(listed.as_of.as_ref())
    );
    let _ = write!(out, "{:<20} {:<24} {:<4} {:<16}", "account", "name", "tier", "owner");
    for kind in render::health_first() {
        let _ = write!(out, " {:>width$}", kind.short(), width = column(kind));
    }
    let _ = writeln!(out, "  {:<12} risk?", "value");
    for a in &listed.accounts {
        let name: String = a.name.chars().take(24).collect();
        let _ = write!(out, "{:<20} {name:<24} {:<4} {:<16}", a.account_id, a.tier, a.owner);
        for kind in render::health_first() {
            let _ = write!(out, " {:>width$.1}", rapport_wire::scores::summary_score(a, kind), width = column(kind));
        }
        let _ = writeln!(out, "  {:<12} {}", a.value_class, if a.at_risk.is_empty() { "" } else { "AT RISK" });
    }
    print!("{out}");
    Ok(())
}

/// The width of a score's column in the portfolio table: its name, and at least `100.0`.
fn column(kind: ScoreKind) -> usize {
    kind.short().len().max(6)
}

pub(crate) async fn handover(args: HandoverArgs) -> anyhow::Result<()> {
    let report = pb::accounts_client::AccountsClient::new(connect(&args.server).await?)
        .handover(pb::HandoverRequest {
            account_id: args.account_id.clone(),
            rule_set: args.rule_set.unwrap_or_default(),
            min_position: 0,
        })
        .await
        .map_err(|status| refused(&format!("could not get the handover of \"{}\"", args.account_id), &status))?
        .into_inner();
    let mut out = String::new();
    let _ = writeln!(out, "Handover of {} to {} (under {})", report.account_id, report.owner, report.rule_set);
    if let Some(previous) = &report.previous {
        let _ = writeln!(out, "previous owner {} since {}", previous.owner, render::instant(previous.from.as_ref()));
    }
    if !report.handover_note.is_empty() {
        let _ = writeln!(out, "note: {}", report.handover_note);
    }
    let risk = report.personalisation_risk.as_ref().map_or(0.0, |r| r.value);
    let _ = writeln!(
        out,
        "personalisation risk {risk:.1}; if {} left: {:.1}\n\nKey contacts",
        report.owner, report.risk_if_owner_leaves
    );
    for c in &report.contacts {
        let Some(contact) = &c.contact else { continue };
        let held: Vec<String> =
            c.held_by.iter().map(|t| format!("{} ({})", t.by, render::instant(t.at.as_ref()))).collect();
        let _ = writeln!(
            out,
            "  {:<10} {} ({}, {})  stance {:+}, closeness {}\n        held by: {}{}",
            contact.contact_id,
            contact.name,
            contact.title,
            contact.department,
            contact.support,
            contact.intimacy,
            if held.is_empty() { "nobody in the window".to_owned() } else { held.join(", ") },
            if c.only_through_owner { "  <- only through the owner" } else { "" }
        );
    }
    if !report.recent_gifts.is_empty() {
        let _ = writeln!(out, "\nRecent gifts");
        for g in &report.recent_gifts {
            let value = g.value.as_ref().map(|v| render::money(v.minor, &v.currency)).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {} -> {}: {} ({value}){}",
                render::instant(g.at.as_ref()),
                g.giver,
                g.recipient_contact_id,
                g.description,
                if g.approval_ref.is_empty() { ", NO APPROVAL" } else { "" }
            );
        }
    }
    if !report.open_outcomes.is_empty() {
        let _ = writeln!(out, "\nRunning commitments");
        for o in &report.open_outcomes {
            let _ = writeln!(out, "  {} {}", render::instant(o.at.as_ref()), o.title);
        }
    }
    print!("{out}");
    Ok(())
}
