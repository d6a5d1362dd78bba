//! The real `qwenedit serve` process: start it, wait until it listens, kill it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `qwenedit serve`. Killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    /// Log lines (JSON) after start-up, as they come.
    pub logs: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `qwenedit serve --config <config>` and waits for its "listening" log line.
    pub fn start(config: &Path) -> Daemon {
        let mut child = Command::new(super::bin())
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qwenedit serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("qwenedit serve exited or stayed silent before listening");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["fields"]["message"] == "web server listening"
            {
                break v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        };
        Daemon {
            child,
            addr,
            logs: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY-free: `kill` from the command line keeps libc out of the tests.
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin token the daemon generated in its data dir.
pub fn admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string()
}
