//! The real `rapport serve` as a child process, shared by the binary's tests.

#![allow(dead_code)] // Each test binary uses what it needs.

pub mod checks;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const RAPPORT: &str = env!("CARGO_BIN_EXE_rapport");

/// The log engine that is not `engine` (of the two `rapport serve --log-engine` takes).
pub fn other_engine(engine: &str) -> &'static str {
    match engine {
        "segments" => "sled",
        "sled" => "segments",
        other => panic!("no log engine {other:?}"),
    }
}

/// Tests that open stores run on each log engine: `on_each_engine!(a, b)` makes the tests
/// `a::segments`, `a::sled`, `b::segments` and `b::sled`, each calling the body `a(engine)` or
/// `b(engine)` of the same file.
#[macro_export]
macro_rules! on_each_engine {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn segments() {
                super::$name("segments")
            }
            #[test]
            fn sled() {
                super::$name("sled")
            }
        }
    )*};
}

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts `rapport serve` on a port the OS picks (picking a free port first and passing it
    /// would race with the other tests), and reads the address from its "serving" log line.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Like [`Server::start`], on a data directory of the given log engine (made for it if
    /// new).
    pub fn start_on(data_dir: &Path, engine: &str) -> Server {
        Server::start_with(data_dir, &["--log-engine", engine])
    }

    /// Like [`Server::start`], with more options for `rapport serve`.
    pub fn start_with(data_dir: &Path, options: &[&str]) -> Server {
        let mut child = Command::new(RAPPORT)
            .args(["serve", "--addr", "127.0.0.1:0", "--log-level", "info"])
            .args(options)
            .arg("--data-dir")
            .arg(data_dir)
            .env("NO_COLOR", "1")
            // Many servers run at once: each console on a port of its own.
            .env("RAPPORT_HTTP_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rapport serve starts");
        let (found, address) = std::sync::mpsc::channel();
        // The server's last lines, for the message of a server that never says where it listens.
        let said = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::<String>::new()));
        for output in [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
            child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let (found, said) = (found.clone(), std::sync::Arc::clone(&said));
            // Keeps draining the pipe for the server's whole life, so that it never blocks on it.
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if let Ok(mut said) = said.lock() {
                        said.push_back(line.clone());
                        if said.len() > 20 {
                            said.pop_front();
                        }
                    }
                    if let Some(at) = line.find("address=") {
                        let address: String = line[at + 8..]
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                            .collect();
                        let _ = found.send(address);
                    }
                }
            });
        }
        let Ok(address) = address.recv_timeout(Duration::from_secs(20)) else {
            let said: Vec<String> = said.lock().map(|said| said.iter().cloned().collect()).unwrap_or_default();
            panic!("the server did not log its address within 20 s; it said:\n{}", said.join("\n"));
        };
        Server { child, url: format!("http://{address}") }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(RAPPORT).args(args).env("RAPPORT_SERVER", &self.url).output().expect("rapport runs")
    }

    /// Like [`Server::run`], as the person `actor` (RAPPORT_ACTOR, whom `--owner me` means),
    /// or, with `None`, as someone who has not said who they are.
    pub fn run_as(&self, actor: Option<&str>, args: &[&str]) -> Output {
        let mut command = Command::new(RAPPORT);
        command.args(args).env("RAPPORT_SERVER", &self.url);
        match actor {
            Some(actor) => command.env("RAPPORT_ACTOR", actor),
            None => command.env_remove("RAPPORT_ACTOR"),
        };
        command.output().expect("rapport runs")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
