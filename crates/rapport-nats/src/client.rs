//! What the log and the key stream share: the small tokio runtime each owns for its client,
//! which lets their blocking methods wait for the network, and the connection to the cluster.

use async_nats::jetstream;

use crate::{NatsOptions, OpenError};

/// A runtime owned by a blocking handle on the cluster ([`crate::NatsLog`],
/// [`crate::KeyStream`]): its methods `block_on` it, so they can be called from any thread
/// that is not a runtime's worker (the server calls them from its writer thread and its
/// blocking pool). Shut down, without waiting, when dropped.
pub(crate) struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl ClientRuntime {
    /// A runtime of two workers whose threads are named `name`.
    pub(crate) fn new(name: &str) -> Result<ClientRuntime, OpenError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map(|runtime| ClientRuntime(Some(runtime)))
            .map_err(|e| OpenError::Options(format!("could not start the NATS client's runtime: {e}")))
    }

    /// Runs `future` to its end on the runtime, blocking the calling thread.
    pub(crate) fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime().block_on(future)
    }

    /// Runs `future` on the runtime until it ends or the runtime is dropped.
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.runtime().spawn(future);
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        match &self.0 {
            Some(runtime) => runtime,
            // Only `drop` takes the runtime.
            None => unreachable!("the NATS client's runtime is gone before its owner"),
        }
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        // The owner may be dropped on a runtime's thread, where a runtime cannot be waited for.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Connects to the cluster the options name (credentials and TLS as they say), and a
/// JetStream context on it whose requests wait `ack_timeout`.
pub(crate) async fn connect(options: &NatsOptions) -> Result<(async_nats::Client, jetstream::Context), OpenError> {
    if options.servers.is_empty() {
        return Err(OpenError::Options("--nats-url names no server (nats://host:port, comma-separated)".into()));
    }
    let servers: Vec<async_nats::ServerAddr> = options
        .servers
        .iter()
        .map(|url| url.parse().map_err(|e| OpenError::Options(format!("--nats-url: {url:?} is not a server URL: {e}"))))
        .collect::<Result<_, _>>()?;
    let mut connect = async_nats::ConnectOptions::new().name("rapport").retry_on_initial_connect();
    if let Some(credentials) = &options.credentials {
        connect = connect.credentials_file(credentials).await.map_err(|e| {
            OpenError::Options(format!("--nats-creds {}: the credentials do not load: {e}", credentials.display()))
        })?;
    }
    if let Some(ca) = &options.tls_ca {
        connect = connect.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &options.tls_client {
        connect = connect.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
    }
    let client = tokio::time::timeout(options.ack_timeout * 4, connect.connect(servers))
        .await
        .map_err(|_| options.unreachable("no server answered".into()))?
        .map_err(|e| options.unreachable(e.to_string()))?;
    let js = jetstream::context::ContextBuilder::new()
        .timeout(options.ack_timeout)
        .max_ack_inflight(16_384)
        .backpressure_on_inflight(true)
        .build(client.clone());
    Ok((client, js))
}

/// The stream `config` names, made if missing, with its info as it was just read: asked again
/// for a while when the cluster cannot answer yet (a cluster started with its Rapport nodes may
/// still be electing its metadata leader or placing replicas), then refused with why.
pub(crate) async fn stream_made(
    js: &jetstream::Context,
    config: jetstream::stream::Config,
    options: &NatsOptions,
) -> Result<jetstream::stream::Stream, OpenError> {
    let name = config.name.clone();
    let deadline = tokio::time::Instant::now() + options.ack_timeout * 4;
    loop {
        let made = async {
            let mut stream = js.get_or_create_stream(config.clone()).await.map_err(|e| e.to_string())?;
            stream.info().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(stream)
        };
        match made.await {
            Ok(stream) => return Ok(stream),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(options.unreachable(format!("the stream {name} could not be found or made: {why}")));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
}
