//! Retention of photos (inputs and results older than `storage.retention`, never an active
//! job's input), the background task in `serve` that applies it, and `admin compact`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use qwenedit::app::{App, Clock};
use qwenedit::config::Config;
use qwenedit::domain::{JobId, JobSpec, Lane, Points, UserId};
use qwenedit::store::NewUser;

use crate::support::app::{TestApp, config_text, png};
use crate::support::process::Daemon;
use crate::support::{self, bin};

const DAY: Duration = Duration::from_secs(86_400);

fn write_aged(path: &Path, age: Duration) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, png(8, 8)).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn open(dir: &Path, extra: &str) -> App {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        config_text(&["http://127.0.0.1:9".parse().unwrap()], extra),
    )
    .unwrap();
    let config = Config::from_toml(
        &std::fs::read_to_string(&path).unwrap(),
        &path,
        std::iter::empty(),
    )
    .unwrap();
    App::open(config, Clock::System).unwrap().0
}

#[test]
fn old_photos_go_and_active_jobs_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path(), "");
    assert_eq!(app.config.storage.retention, 7 * DAY, "the default");
    let data = app.config.storage.data_dir.clone();
    write_aged(&data.join("inputs/old.png"), 8 * DAY);
    write_aged(&data.join("inputs/fresh.png"), 6 * DAY);
    write_aged(&data.join("inputs/queued-old.png"), 30 * DAY);
    write_aged(&data.join("results/01JOLD/0.png"), 8 * DAY);
    write_aged(&data.join("results/01JOLD/1.png"), 9 * DAY);
    write_aged(&data.join("results/01JMIXED/0.png"), 9 * DAY);
    write_aged(&data.join("results/01JMIXED/1.png"), DAY);

    // A job still waits for an old input: it must survive.
    let user = UserId::new(7);
    app.store
        .register(user, NewUser::default(), 100, app.now_ms())
        .unwrap();
    let spec = JobSpec {
        user,
        chat: None,
        inputs: vec!["inputs/queued-old.png".into()],
        preset: None,
        prompt: Some("make it blue".into()),
        workflow: "qwen-image-edit-2511".into(),
        seed: 1,
        price: Points::new(10),
        lane: Lane::Normal,
    };
    qwenedit::ops::submit_edit(&app, JobId::new(), spec).unwrap();

    let report = qwenedit::ops::clean_files(&app);
    assert_eq!(report.inputs_removed, 1);
    assert_eq!(report.results_removed, 1);
    assert!(report.bytes_freed > 0);
    assert!(!data.join("inputs/old.png").exists());
    assert!(data.join("inputs/fresh.png").exists());
    assert!(
        data.join("inputs/queued-old.png").exists(),
        "an active job's input"
    );
    assert!(!data.join("results/01JOLD").exists());
    assert!(
        data.join("results/01JMIXED/1.png").exists(),
        "a folder goes only when all of it is old"
    );
    assert_eq!(
        qwenedit::ops::clean_files(&app),
        Default::default(),
        "nothing more to do"
    );
}

#[test]
fn retention_is_configurable_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path(), "");
    drop(app);
    let text = config_text(&["http://127.0.0.1:9".parse().unwrap()], "");
    let text = text.replace(
        "queue_fsync = false",
        "queue_fsync = false\nretention = \"36h\"",
    );
    let c = Config::from_toml(&text, Path::new("/x/config.toml"), std::iter::empty()).unwrap();
    assert_eq!(c.storage.retention, Duration::from_secs(36 * 3600));
    let bad = text.replace("\"36h\"", "\"0s\"");
    let e = Config::from_toml(&bad, Path::new("/x/config.toml"), std::iter::empty()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config key `storage.retention`: must be longer than zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_cleans_up_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_text(&["http://127.0.0.1:9".parse().unwrap()], ""),
    )
    .unwrap();
    let old = dir.path().join("data/inputs/old.png");
    write_aged(&old, 8 * DAY);
    let t = TestApp::start_in(dir, &config, Clock::System).await;
    // Nothing to wait on but the file system: poll with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while old.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old input is still there after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.stop().await;
}

#[test]
fn compact_runs_while_stopped_and_says_why_not_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "127.0.0.1:0", "");
    // A store with some data in it.
    let out = std::process::Command::new(bin())
        .args(["admin", "topup", "42", "5", "--create", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = std::process::Command::new(bin())
        .args(["admin", "compact", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&stopped.stdout);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(stdout.starts_with("database compacted: "), "{stdout}");

    let daemon = Daemon::start(&config);
    let running = std::process::Command::new(bin())
        .args(["admin", "compact", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!running.status.success());
    let stderr = String::from_utf8_lossy(&running.stderr);
    assert_eq!(
        stderr.trim(),
        "error: the service is running and holds the database: stop it first (systemctl stop qwenedit), run `qwenedit admin compact`, then start it again"
    );
    drop(daemon);
}
