//! `qwenedit admin ...` and `qwenedit backup` as the operator runs them: against a stopped
//! service (the CLI opens the store itself) and against a running one (through its admin API).
//! Outputs are snapshotted after replacing temp paths, times and byte counts.

use std::path::{Path, PathBuf};

use crate::support;
use crate::support::process::{Daemon, admin_token};
use qwenedit::app::{App, Clock};
use qwenedit::config::Config;
use qwenedit::domain::{JobId, JobSpec, Lane, Points, UserId};
use qwenedit::ops::{self, TopupRequest};
use qwenedit::store::NewUser;

/// The `qwenedit` binary with a given config, shielded from the caller's environment.
struct Cli {
    config: PathBuf,
    /// Replaced by `[DIR]` in outputs.
    dir: PathBuf,
    env: Vec<(String, String)>,
    /// Replace wall-clock times by `[TIME]` (not needed when the data was written with a
    /// fixed clock).
    hide_times: bool,
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new(dir: &Path, config: &Path) -> Self {
        Self {
            config: config.to_path_buf(),
            dir: dir.to_path_buf(),
            env: Vec::new(),
            hide_times: true,
        }
    }

    fn keep_times(mut self) -> Self {
        self.hide_times = false;
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(support::bin());
        for (key, _) in std::env::vars() {
            if key.starts_with("QWENEDIT_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.current_dir(&self.dir);
        cmd
    }

    fn run(&self, args: &[&str]) -> Outcome {
        let out = self
            .command()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        Outcome {
            code: out.status.code().expect("killed by a signal"),
            stdout: self.normalise(&String::from_utf8(out.stdout).unwrap()),
            stderr: self.normalise(&String::from_utf8(out.stderr).unwrap()),
        }
    }

    fn normalise(&self, text: &str) -> String {
        let text = normalise(text, &self.dir);
        if self.hide_times {
            replace_mask(&text, "dddd-dd-dd dd:dd:dd UTC", "[TIME]")
        } else {
            text
        }
    }

    /// Runs a command and appends it with its output to a transcript.
    fn step(&self, transcript: &mut String, args: &[&str]) -> Outcome {
        let o = self.run(args);
        transcript.push_str(&format!("$ qwenedit {}\n", args.join(" ")));
        transcript.push_str(&o.stdout);
        for line in o.stderr.lines() {
            let sep = if line.is_empty() { "" } else { " " };
            transcript.push_str(&format!("!{sep}{line}\n"));
        }
        transcript.push_str(&format!("[exit {}]\n\n", o.code));
        o
    }
}

impl Outcome {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(
            self.stderr, "",
            "a successful command writes nothing to stderr"
        );
        self
    }

    /// Exit code 1, a message starting with `error: ` on stderr, nothing on stdout.
    #[track_caller]
    fn failed(&self) -> &Self {
        assert_eq!(
            self.code, 1,
            "expected exit code 1\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "a failed command prints nothing on stdout");
        assert!(
            self.stderr.starts_with("error: "),
            "stderr: {}",
            self.stderr
        );
        self
    }
}

/// Replaces what changes from run to run: the temp dir and file sizes; trims line ends.
fn normalise(text: &str, dir: &Path) -> String {
    let mut text = text.to_string();
    if let Ok(canonical) = dir.canonicalize() {
        text = text.replace(&canonical.display().to_string(), "[DIR]");
    }
    text = text.replace(&dir.display().to_string(), "[DIR]");
    text.lines()
        .map(str::trim_end)
        .map(|line| {
            let t = line.trim_start();
            if (t.starts_with("store: ") || t.starts_with("queue: ")) && t.ends_with(" bytes") {
                format!("{}[N] bytes", &line[..line.len() - t.len() + 7])
            } else {
                line.to_string()
            }
        })
        .map(|line| line + "\n")
        .collect()
}

/// Replaces every match of `mask` (`d` = an ASCII digit, anything else itself) by `with`.
fn replace_mask(text: &str, mask: &str, with: &str) -> String {
    let matches_at = |rest: &[u8]| {
        rest.len() >= mask.len()
            && mask.bytes().zip(rest).all(|(m, &c)| match m {
                b'd' => c.is_ascii_digit(),
                m => m == c,
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if matches_at(&bytes[i..]) {
            out.push_str(&text[copied..i]);
            out.push_str(with);
            i += mask.len();
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The same operator session, whether the service runs or not: unknown user, top-up with
/// `--create`, a repeat with the same key, a second top-up, the user, the ledger, a backup.
fn admin_session(cli: &Cli) -> String {
    let mut t = String::new();
    let o = cli.step(&mut t, &["admin", "topup", "42", "100"]);
    o.failed();
    assert!(o.stderr.contains("unknown user 42"), "{}", o.stderr);
    assert!(o.stderr.contains("--create"), "{}", o.stderr);

    let args = [
        "admin", "topup", "42", "100", "--create", "--reason", "promo", "--key", "promo-1",
    ];
    let o = cli.step(&mut t, &args);
    o.ok();
    assert!(o.stdout.contains("created user 42"), "{}", o.stdout);
    assert!(o.stdout.contains("balance is now 100"), "{}", o.stdout);

    let o = cli.step(&mut t, &args);
    o.ok();
    assert!(o.stdout.contains("already applied"), "{}", o.stdout);
    assert!(o.stdout.contains("has 100 points"), "{}", o.stdout);

    let o = cli.step(&mut t, &["admin", "topup", "42", "5", "--reason", "bonus"]);
    o.ok();
    assert!(o.stdout.contains("balance is now 105"), "{}", o.stdout);

    let o = cli.step(&mut t, &["admin", "user", "42"]);
    o.ok();
    assert!(o.stdout.contains("balance:   105 points"), "{}", o.stdout);

    let o = cli.step(&mut t, &["admin", "ledger", "--verify"]);
    o.ok();
    assert!(o.stdout.contains("ok: "), "{}", o.stdout);

    // Relative to the current directory (the temp dir).
    let o = cli.step(&mut t, &["backup", "backup-1"]);
    o.ok();
    let backup = cli.dir.join("backup-1");
    assert!(backup.join("qwenedit.redb").metadata().unwrap().len() > 0);
    assert!(backup.join("queue").is_dir());

    let o = cli.step(&mut t, &["backup", "backup-1"]);
    o.failed();
    assert!(o.stderr.contains("not empty"), "{}", o.stderr);
    t
}

// ---------------------------------------------------------------------------------------------
// No service running: the CLI opens the store itself.

#[test]
fn admin_session_without_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "127.0.0.1:0", "");
    let cli = Cli::new(dir.path(), &config);
    let transcript = admin_session(&cli);
    insta::assert_snapshot!("admin_session", transcript);
}

#[test]
fn a_backup_is_a_working_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "127.0.0.1:0", "");
    let cli = Cli::new(dir.path(), &config);
    cli.run(&["admin", "topup", "42", "77", "--create"]).ok();
    cli.run(&["backup", "copy"]).ok();
    // The live data moves on; the copy keeps the state at backup time.
    cli.run(&["admin", "topup", "42", "1"]).ok();

    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("data_dir = \"data\"", "data_dir = \"../copy\"");
    std::fs::write(restored.join("config.toml"), text).unwrap();
    let from_copy = Cli::new(dir.path(), &restored.join("config.toml"));
    let o = from_copy.run(&["admin", "user", "42"]);
    o.ok();
    assert!(o.stdout.contains("balance:   77 points"), "{}", o.stdout);
    from_copy.run(&["admin", "ledger", "--verify"]).ok();
}

#[test]
fn bad_amounts_and_user_ids_are_refused_before_the_store_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "127.0.0.1:0", "");
    let cli = Cli::new(dir.path(), &config);
    let mut t = String::new();
    let cases: [&[&str]; 7] = [
        &["admin", "topup", "42", "0"],
        &["admin", "topup", "42", "-5"],
        &["admin", "topup", "42", "abc"],
        &["admin", "topup", "42", "1.5"],
        &["admin", "topup", "42", "99999999999"],
        &["admin", "topup", "abc", "100"],
        &["admin", "user", "abc"],
    ];
    for args in cases {
        cli.step(&mut t, args).failed();
    }
    assert!(
        !dir.path().join("data").exists(),
        "a refused command must not create the store"
    );
    insta::assert_snapshot!("bad_input", t);
}

/// A user with a job, written through the library with a fixed clock, so every time and id in
/// the output is stable.
#[test]
fn admin_user_shows_balance_ledger_and_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = support::write_config(dir.path(), "127.0.0.1:0", "");
    {
        let text = std::fs::read_to_string(&config_path).unwrap();
        let config = Config::from_toml(&text, &config_path, std::iter::empty()).unwrap();
        // 2026-01-05 10:00:00 UTC
        let clock = Clock::manual(1_767_607_200_000);
        let (app, _) = App::open(config, clock.clone()).unwrap();
        let alice = UserId::new(42);
        ops::register_user(
            &app,
            alice,
            NewUser {
                username: Some("alice".into()),
                language: Some("de".into()),
            },
        )
        .unwrap();
        clock.advance_ms(90_000);
        let job: JobId = "01KE6Q0000000000000000ABCD".parse().unwrap();
        ops::submit_edit(
            &app,
            job,
            JobSpec {
                user: alice,
                chat: Some(42),
                inputs: vec![],
                preset: Some("cartoon".into()),
                prompt: None,
                workflow: "qwen-image-edit-2511".into(),
                seed: 7,
                price: Points::new(30),
                lane: Lane::Normal,
            },
        )
        .unwrap();
        clock.advance_ms(3_600_000);
        ops::topup(
            &app,
            TopupRequest {
                user: alice,
                points: Points::new(25),
                note: Some("sorry for the wait".into()),
                create: false,
                idempotency_key: Some("ticket-17".into()),
            },
        )
        .unwrap();
        // Dropping the app releases the store for the CLI.
    }
    let cli = Cli::new(dir.path(), &config_path).keep_times();
    let mut t = String::new();
    let o = cli.step(&mut t, &["admin", "user", "42"]);
    o.ok();
    assert!(o.stdout.contains("balance:   55 points"), "{}", o.stdout);
    assert!(
        o.stdout.contains("01KE6Q0000000000000000ABCD"),
        "{}",
        o.stdout
    );
    cli.step(&mut t, &["admin", "ledger", "--verify"]).ok();
    insta::assert_snapshot!("user_with_a_job", t);
}

#[test]
fn unknown_users_and_incomplete_commands_fail() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "127.0.0.1:0", "");
    let cli = Cli::new(dir.path(), &config);
    let mut t = String::new();
    let o = cli.step(&mut t, &["admin", "ledger", "--verify"]);
    o.ok();
    assert!(o.stdout.contains("checked 0 users"), "{}", o.stdout);
    let o = cli.step(&mut t, &["admin", "user", "7"]);
    o.failed();
    assert!(o.stderr.contains("unknown user 7"), "{}", o.stderr);
    let o = cli.step(&mut t, &["admin", "ledger"]);
    o.failed();
    assert!(o.stderr.contains("--verify"), "{}", o.stderr);
    insta::assert_snapshot!("unknown_and_incomplete", t);
}

#[test]
fn config_problems_are_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = String::new();

    let missing = dir.path().join("missing.toml");
    let o = Cli::new(dir.path(), &missing).step(&mut t, &["admin", "ledger", "--verify"]);
    o.failed();
    assert!(
        o.stderr.starts_with("error: cannot read the config file "),
        "{}",
        o.stderr
    );

    // QWENEDIT_CONFIG is the same as --config.
    let cli = Cli::new(dir.path(), &missing);
    let out = cli
        .command()
        .env("QWENEDIT_CONFIG", &missing)
        .args(["admin", "ledger", "--verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        normalise(&String::from_utf8_lossy(&out.stderr), dir.path()),
        o.stderr
    );

    let invalid = support::write_config(dir.path(), "127.0.0.1:0", "[billing]\nedit_price = -1");
    let o = Cli::new(dir.path(), &invalid).step(&mut t, &["admin", "topup", "42", "1"]);
    o.failed();
    assert!(
        o.stderr
            .starts_with("error: config key `billing.edit_price`"),
        "{}",
        o.stderr
    );

    let unknown = support::write_config(dir.path(), "127.0.0.1:0", "[bot]\ntoken = \"x\"");
    let o = Cli::new(dir.path(), &unknown).step(&mut t, &["backup", "b"]);
    o.failed();
    assert!(o.stderr.starts_with("error: config key "), "{}", o.stderr);

    let env_wrong = support::write_config(dir.path(), "127.0.0.1:0", "");
    let o = Cli::new(dir.path(), &env_wrong)
        .env("QWENEDIT_WEB__LISTEN", "localhost")
        .step(&mut t, &["admin", "user", "1"]);
    o.failed();
    assert!(o.stderr.contains("web.listen"), "{}", o.stderr);

    assert!(!dir.path().join("data").exists());
    insta::assert_snapshot!("config_problems", t);
}

// ---------------------------------------------------------------------------------------------
// The service runs: commands go through its admin API.

/// Starts the service on a free port, then rewrites the config (same file, same data dir) with
/// the port it got, for the CLI to find it.
fn start_service(dir: &Path) -> (Daemon, PathBuf) {
    let config = support::write_config(dir, "127.0.0.1:0", "");
    let daemon = Daemon::start(&config);
    support::write_config(dir, &daemon.addr.to_string(), "");
    (daemon, config)
}

/// Waits (on the daemon's own log, no sleeping) for a log line with this message.
fn wait_for_log(daemon: &Daemon, message: &str) -> serde_json::Value {
    loop {
        let line = daemon
            .logs
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {message:?} in the service log"));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["fields"]["message"] == message
        {
            return v;
        }
    }
}

#[test]
fn admin_session_through_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, config) = start_service(dir.path());
    let cli = Cli::new(dir.path(), &config);
    let transcript = admin_session(&cli);
    // The service did the work: it logged the top-ups and the backup itself.
    let topup = wait_for_log(&daemon, "top-up");
    assert_eq!(topup["fields"]["user"], "42");
    wait_for_log(&daemon, "backup written");
    // Word for word what the operator sees when the service is stopped.
    insta::assert_snapshot!("admin_session", transcript);

    let o = cli.run(&["admin", "user", "7"]);
    o.failed();
    assert!(o.stderr.contains("unknown user 7"), "{}", o.stderr);

    // Still running and consistent afterwards.
    let health = reqwest::blocking::get(daemon.url("/healthz")).unwrap();
    assert!(health.status().is_success());
    cli.run(&["admin", "ledger", "--verify"]).ok();
}

#[test]
fn an_explicit_admin_token_is_used_and_a_wrong_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, config) = start_service(dir.path());
    let token = admin_token(&dir.path().join("data"));

    let right = Cli::new(dir.path(), &config).env("QWENEDIT_WEB__ADMIN_TOKEN", &token);
    right.run(&["admin", "ledger", "--verify"]).ok();

    let wrong = Cli::new(dir.path(), &config).env(
        "QWENEDIT_WEB__ADMIN_TOKEN",
        "not-the-admin-token-0123456789",
    );
    let mut t = String::new();
    for args in [
        &["admin", "ledger", "--verify"][..],
        &["admin", "topup", "42", "10", "--create"],
        &["admin", "user", "42"],
        &["backup", "b"],
    ] {
        let o = wrong.step(&mut t, args);
        o.failed();
        assert!(o.stderr.contains("refused the admin token"), "{}", o.stderr);
    }
    assert!(!dir.path().join("b").exists());
    insta::assert_snapshot!("wrong_admin_token", t);
    // Nothing was applied.
    right.run(&["admin", "user", "42"]).failed();
}

#[test]
fn a_locked_store_with_no_service_answering_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, _) = start_service(dir.path());
    // The CLI looks for the service where its config says, and nothing listens on port 9.
    let config = support::write_config(dir.path(), "127.0.0.1:9", "");
    let cli = Cli::new(dir.path(), &config);
    let mut t = String::new();
    let o = cli.step(&mut t, &["admin", "ledger", "--verify"]);
    o.failed();
    assert!(o.stderr.contains("locked"), "{}", o.stderr);
    assert!(o.stderr.contains("http://127.0.0.1:9"), "{}", o.stderr);
    insta::assert_snapshot!("locked_no_service", t);
}
