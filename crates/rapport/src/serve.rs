//! `rapport serve`: the service on the data directory's store (see `store.rs`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rapport_domain::Limits;
use rapport_server::{ServerConfig, TlsIdentity, Tokens};
use tokio::net::TcpListener;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::store::OpenError;
use crate::{HttpAddr, ServeArgs};

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level \"{}\" is not a valid log filter (try info or debug)", args.log_level))?;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    let (dir, engine, nats) = (args.data_dir.clone(), args.log_engine, args.nats.options());
    let master = crate::store::master_key(args.master_key_file.as_deref());
    let store = tokio::task::spawn_blocking(move || crate::store::open(&dir, engine, master, nats)).await?.map_err(
        |error| match error {
            OpenError::Store(error) => anyhow::Error::new(error).context(format!(
                "could not open the log in {}; if the store is damaged, keep it for investigation and restore from a \
                 backup, or import an export into a fresh directory (`rapport import FILE --data-dir NEW`)",
                args.data_dir.display()
            )),
            other => anyhow::Error::new(other),
        },
    )?;
    info!(data_dir = %args.data_dir.display(), engine = %store.engine, "opened the log");
    if store.engine == crate::store::LogEngine::Nats
        && (args.rotate_master_key_after_erasure || args.rotate_master_key_every_hours > 0)
    {
        bail!(
            "--rotate-master-key-after-erasure and --rotate-master-key-every-hours do not work on a NATS cluster yet: \
             its nodes share their data keys wrapped under one master key, which one node cannot rotate alone"
        );
    }
    if let Some(master) = &store.created_master {
        warn!(
            master_key = %master.display(),
            "made a new master key for the data keys of contacts; keep a copy of it apart from the data directory's \
             backups (without it the personal data cannot be read), or give your own with --master-key-file"
        );
    }
    let counts = store.keys.counts();
    info!(live = counts.live, forgotten = counts.forgotten, "opened the key store");
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("could not listen on {} (is another server running there? try --addr)", args.addr))?;
    let tokens = match &args.tokens {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read the tokens file {}", path.display()))?;
            let tokens = Tokens::parse(&text).with_context(|| format!("in the tokens file {}", path.display()))?;
            if tokens.is_empty() {
                bail!("the tokens file {} lists no token, so no one could call the server", path.display());
            }
            Some(Arc::new(tokens))
        }
        None => None,
    };
    let pem = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &std::path::PathBuf, what: &str| {
                std::fs::read(path).with_context(|| format!("could not read the TLS {what} {}", path.display()))
            };
            Some((read(cert, "certificate")?, read(key, "key")?))
        }
        _ => None,
    };
    let tls = pem.as_ref().map(|(cert, key)| TlsIdentity::from_pem(cert, key));
    let mut doors: Vec<Box<dyn rapport_server::FrontDoor>> = Vec::new();
    if let HttpAddr::At(address) = args.http_addr {
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!("could not listen on {address} for the console (is another server there? try --http-addr, or off)")
        })?;
        let console = match &pem {
            Some((cert, key)) => rapport_console::Console::with_tls(listener, cert, key)?,
            None => rapport_console::Console::new(listener),
        };
        doors.push(Box::new(console));
    }
    let config = ServerConfig {
        limits: Limits {
            max_events_per_append: args.max_events_per_append,
            max_id_len: args.max_id_len,
            max_label_chars: args.max_label_chars,
            max_note_bytes: args.max_note_bytes,
            max_list_len: args.max_list_len,
            max_future_skew: Duration::from_secs(args.max_future_skew_seconds),
        },
        max_request_bytes: args.max_request_bytes,
        subscriber_stall_timeout: Duration::from_secs(args.subscriber_stall_seconds),
        max_subscriptions_per_client: args.max_subscriptions_per_client,
        append_stream_window: args.append_stream_window as usize,
        listing_quantum: Duration::from_secs(args.listing_quantum_seconds),
        tokens,
        tls,
        keys: Some(store.keys),
        rotate_master_key_after_erasure: args.rotate_master_key_after_erasure,
        rotate_master_key_every: (args.rotate_master_key_every_hours > 0)
            .then(|| Duration::from_secs(args.rotate_master_key_every_hours.saturating_mul(3_600))),
        forget_after_left: args.forget_after_left_days.map(|days| Duration::from_secs(days.saturating_mul(86_400))),
        ..ServerConfig::default()
    };
    rapport_server::serve_with(listener, store.log, store.projections, config, shutdown_signal(), doors)
        .await
        .context("the server stopped with an error")?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => info!("interrupted; shutting down"),
        () = terminate => info!("terminated; shutting down"),
    }
}
