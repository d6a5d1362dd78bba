//! The app in-process: real stores in a temp dir, real web server and workers on port 0,
//! pointed at fake backends. Helpers read like what happens to a job.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use qwenedit::app::{App, Clock};
use qwenedit::config::Config;
use qwenedit::domain::{JobId, JobSpec, Lane, Points, UserId};
use qwenedit::store::NewUser;
use qwenedit::worker::{JobEvent, JobEventKind};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

pub struct TestApp {
    pub app: App,
    #[allow(dead_code)] // for tests of the HTTP side
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    events: broadcast::Receiver<JobEvent>,
    /// Events of other jobs seen while waiting for one job, kept for later waits.
    backlog: Vec<JobEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A config for the in-process app: the repo's workflows and presets, fast leases.
pub fn config_text(backends: &[reqwest::Url], extra: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let backends: Vec<String> = backends
        .iter()
        .map(|u| format!("{:?}", u.as_str()))
        .collect();
    format!(
        r#"
[storage]
data_dir = "data"
queue_fsync = false

[comfyui]
backends = [{}]
workflows_dir = "{root}/workflows"
job_timeout = "30s"
pipeline_depth = 2

[presets]
dir = "{root}/presets"

[queue]
lease_ttl = "30s"
backoff_base = "1ms"
backoff_max = "10ms"
max_attempts = 3

[log]
level = "warn"
{extra}
"#,
        backends.join(", ")
    )
}

impl TestApp {
    pub async fn start(backends: &[reqwest::Url], extra: &str) -> TestApp {
        Self::start_with_clock(backends, extra, Clock::System).await
    }

    pub async fn start_with_clock(backends: &[reqwest::Url], extra: &str, clock: Clock) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config_text(backends, extra)).unwrap();
        Self::start_in(dir, &path, clock).await
    }

    /// Starts on an existing data dir (a restart).
    pub async fn start_in(dir: tempfile::TempDir, config: &Path, clock: Clock) -> TestApp {
        // RUST_LOG=qwenedit=debug shows the app's log in a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let text = std::fs::read_to_string(config).unwrap();
        let config = Config::from_toml(&text, config, std::iter::empty()).unwrap();
        let (app, _) = App::open(config, clock).unwrap();
        let events = app.events.subscribe();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(qwenedit::app::run(app.clone(), listener, async move {
            let _ = stop_rx.await;
        }));
        TestApp {
            app,
            addr,
            dir,
            events,
            backlog: Vec::new(),
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stops the web server and the workers and waits for them; returns the data dir.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let TestApp { app, dir, .. } = self;
        drop(app);
        dir
    }

    /// A registered user with `points` on their balance.
    pub fn user(&self, id: i64, points: u32) -> UserId {
        let user = UserId::new(id);
        self.app
            .store
            .register(user, NewUser::default(), points, 0)
            .unwrap();
        user
    }

    /// Stores a normalised input image and returns its data-dir name.
    pub fn input(&self, png: &[u8]) -> String {
        qwenedit::files::store_input(&self.app.config.storage.data_dir, png).unwrap()
    }

    /// Submits an own-prompt edit of `inputs` for `user`, charging `price`.
    pub fn submit(&self, user: UserId, inputs: Vec<String>, price: u32) -> JobId {
        let job = JobId::new();
        let spec = JobSpec {
            user,
            chat: Some(user.get()),
            inputs,
            preset: None,
            prompt: Some("make the sky purple".into()),
            workflow: "qwen-image-edit-2511".into(),
            seed: 7,
            price: Points::new(price),
            lane: Lane::Normal,
        };
        qwenedit::ops::submit_edit(&self.app, job, spec).unwrap();
        job
    }

    /// Waits for the next event of `job` matching `pred`; panics with the events seen after a
    /// generous timeout.
    pub async fn wait_for(
        &mut self,
        job: JobId,
        pred: impl Fn(&JobEventKind) -> bool,
    ) -> JobEventKind {
        let mut seen = Vec::new();
        // Earlier events of this job first, in order.
        while let Some(i) = self.backlog.iter().position(|e| e.job == job) {
            let ev = self.backlog.remove(i);
            if pred(&ev.kind) {
                return ev.kind;
            }
            seen.push(ev.kind);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(ev)) if ev.job == job => {
                    if pred(&ev.kind) {
                        return ev.kind;
                    }
                    seen.push(ev.kind);
                }
                Ok(Ok(other)) => self.backlog.push(other),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("missed {n} job events"),
                Ok(Err(e)) => panic!("event stream ended: {e}"),
                Err(_) => panic!("job {job}: no matching event within 30 s; saw {seen:?}"),
            }
        }
    }

    /// Waits until `job` succeeded or failed for good.
    pub async fn wait_done(&mut self, job: JobId) -> JobEventKind {
        self.wait_for(job, |k| {
            matches!(
                k,
                JobEventKind::Succeeded { .. } | JobEventKind::Failed { .. }
            )
        })
        .await
    }

    pub fn balance(&self, user: UserId) -> i64 {
        self.app.store.balance(user).unwrap()
    }
}

/// A small PNG with a gradient, as the engine's upload checks would produce.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}
