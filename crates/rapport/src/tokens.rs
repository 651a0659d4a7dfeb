//! `rapport token`: makes bearer tokens and the tokens-file entries that admit them.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use rapport_server::token_hash;

/// `rapport token …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a new random token; print it once, and the entry for the server's tokens file.
    New(NewArgs),
    /// Print the SHA-256 of a token read from standard input, as the tokens file holds it.
    Hash,
}

/// Options of `rapport token new`.
#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// Who the token is (recorded with every event it appends), like `crm-sync` or `ada.audit`.
    #[arg(long)]
    identity: String,
    /// What it may do.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Let it append events whose actor is someone else (an integration recording for staff).
    #[arg(long)]
    records_for_others: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Writer,
    Auditor,
    Analyst,
    Admin,
}

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::New(args) => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("the system has no randomness to give: {e}"))?;
            let token: String =
                std::iter::once("rapport_".to_owned()).chain(secret.iter().map(|b| format!("{b:02x}"))).collect();
            let role = format!("{:?}", args.role).to_lowercase();
            let entry = format!(
                "[[token]]\nidentity = {:?}\nrole = {role:?}\nsha256 = {:?}\n{}",
                args.identity,
                token_hash(&token),
                if args.records_for_others { "records_for_others = true\n" } else { "" }
            );
            // The entry is checked the way the server will read it, so a bad identity fails here.
            rapport_server::Tokens::parse(&entry).context("the token entry would not be accepted")?;
            eprintln!("The token (shown only now; give it to its holder, e.g. as RAPPORT_TOKEN):");
            println!("{token}");
            eprintln!("\nAdd this to the server's tokens file (it holds only the hash):\n");
            eprint!("{entry}");
            Ok(())
        }
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token).context("could not read the token from standard input")?;
            let token = token.trim();
            if token.is_empty() {
                bail!("no token on standard input; pipe one in: echo \"$RAPPORT_TOKEN\" | rapport token hash");
            }
            println!("{}", token_hash(token));
            Ok(())
        }
    }
}
