//! The real `qwenedit serve` process: start it, wait until it listens, kill it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `qwenedit serve`. Killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Log lines (JSON) after start-up, as they come.
    pub logs: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `qwenedit serve --config <config>` and waits for its "listening" log line.
    pub fn start(config: &Path) -> Daemon {
        Self::start_env(config, &[])
    }

    /// `start` with extra environment variables (`QWENEDIT_CRASH_AT`, ...).
    pub fn start_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let (child, rx) = Self::spawn(config, env);
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
            child: Some(child),
            addr,
            logs: rx,
        }
    }

    /// Starts the process without waiting for anything: for a run that may die early. Returns
    /// it with its log lines.
    pub fn spawn(config: &Path, env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
        let mut child = Command::new(super::bin())
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("QWENEDIT_CRASH_AT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qwenedit serve");
        let rx = stderr_lines(&mut child);
        (child, rx)
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the process is ours")
    }

    #[allow(dead_code)] // benches/proof.rs
    pub fn pid(&mut self) -> u32 {
        self.child().id()
    }

    /// Waits up to `timeout` for the process to end by itself (a crash point); returns how it
    /// ended and every log line it wrote since start-up.
    pub fn wait_exit(mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let child = self.child.take().expect("the process is ours");
        let (_, dead) = mpsc::channel();
        let logs = std::mem::replace(&mut self.logs, dead);
        wait_exit(child, logs, timeout)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.child().kill().unwrap();
        self.child().wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child().id() as i32;
        // SAFETY-free: `kill` from the command line keeps libc out of the tests.
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        self.child().wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The admin token the daemon generated in its data dir.
pub fn admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// Waits up to `timeout` for `child` to exit (on a thread blocked in `wait`, no polling); kills
/// it and panics when it does not. Returns its exit status and its remaining log lines.
pub fn wait_exit(
    mut child: Child,
    logs: mpsc::Receiver<String>,
    timeout: Duration,
) -> (std::process::ExitStatus, Vec<String>) {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(timeout).is_err() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let _ = waiter.join();
        let lines: Vec<String> = logs.try_iter().collect();
        panic!(
            "qwenedit serve (pid {pid}) did not exit within {timeout:?}; its last log lines:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        );
    }
    let status = waiter.join().unwrap().unwrap();
    // The stderr reader ends at EOF, once the process is gone.
    let lines = logs.iter().collect();
    (status, lines)
}

/// The lines a child writes to its (piped) stderr, as they come.
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
