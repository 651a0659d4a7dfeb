//! A throwaway PostgreSQL cluster: `initdb` in a temporary directory, `postgres` on a free
//! loopback port, stopped and removed on drop. Uses the system's PostgreSQL binaries
//! (`RAPPORT_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`). PostgreSQL
//! refuses to run as root; as root, the cluster runs as the `postgres` user the Debian package
//! creates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
    server: Option<Child>,
}

/// The settings the peer runs with: durable commits (the default, stated), memory sized like a
/// tuned installation, and checkpoints spaced so that a bulk load is not dominated by them.
const SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
    ("max_connections", "300"),
    ("shared_buffers", "1GB"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "15min"),
];

impl Cluster {
    /// Creates and starts a cluster; returns once it accepts connections.
    pub async fn start() -> anyhow::Result<Cluster> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new().prefix("rapport-bench-pg").tempdir()?;
        let run_as = if is_root() { Some("postgres".to_owned()) } else { None };
        if let Some(user) = &run_as {
            let chown = Command::new("chown").arg("-R").arg(user).arg(dir.path()).status()?;
            if !chown.success() {
                bail!(
                    "could not give {} to the {user} user (does it exist? apt-get install postgresql)",
                    dir.path().display()
                );
            }
        }
        let data = dir.path().join("data");
        let mut initdb = command(&run_as, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "bench", "-E", "UTF8", "--no-sync"]);
        let output = initdb.output().context("could not run initdb")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let mut cluster = Cluster { dir, bin, run_as, port: free_port()?, server: None };
        cluster.launch().await?;
        Ok(cluster)
    }

    /// The connection string of the `postgres` database.
    pub fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=bench dbname=postgres", self.port)
    }

    /// Stops the cluster (a fast shutdown: a checkpoint, then exit) and starts it again;
    /// returns the time from the start command to the first query answered.
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        self.stop()?;
        let began = Instant::now();
        self.launch().await?;
        Ok(began.elapsed())
    }

    /// Bytes under the data directory.
    pub fn data_bytes(&self) -> u64 {
        crate::disk::bytes_under(&self.dir.path().join("data"))
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut postgres = command(&self.run_as, &self.bin.join("postgres"));
        postgres.arg("-D").arg(self.dir.path().join("data")).arg("-p").arg(self.port.to_string());
        postgres.arg("-k").arg(self.dir.path());
        for (key, value) in SETTINGS {
            postgres.arg("-c").arg(format!("{key}={value}"));
        }
        let log = std::fs::File::create(self.dir.path().join("server.log"))?;
        self.server = Some(postgres.stdout(Stdio::null()).stderr(log).spawn().context("could not start postgres")?);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((client, connection)) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await {
                let connection = tokio::spawn(connection);
                let answered = client.simple_query("SELECT 1").await.is_ok();
                drop(client);
                let _ = connection.await;
                if answered {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
                bail!("postgres did not accept connections within 60 s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if self.server.is_none() {
            return Ok(());
        }
        let mut stop = command(&self.run_as, &self.bin.join("pg_ctl"));
        stop.arg("-D").arg(self.dir.path().join("data")).args(["stop", "-m", "fast", "-w"]);
        let status = stop.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
        if let Some(mut server) = self.server.take() {
            if !status.success() {
                let _ = server.kill();
            }
            let _ = server.wait();
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
        if self.run_as.is_some() {
            // Files the postgres user made: give them back so that the temporary directory
            // can be removed.
            let _ = Command::new("chown").arg("-R").arg("root").arg(self.dir.path()).status();
        }
    }
}

fn command(run_as: &Option<String>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Whether PostgreSQL's server binaries can be found.
pub fn installed() -> bool {
    binaries().is_ok()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where `initdb`, `postgres` and `pg_ctl` are.
fn binaries() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("RAPPORT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|dir| dir.join("initdb").exists());
    versions.sort_by_key(|dir| {
        dir.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    if let Some(newest) = versions.pop() {
        return Ok(newest);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).find(|dir| dir.join("initdb").exists()).ok_or_else(|| {
        anyhow::anyhow!(
            "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH): \
             apt-get install -y postgresql, or set RAPPORT_PG_BIN"
        )
    })
}
