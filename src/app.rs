//! `App`: the cheap-clone handles every part of the process shares, and `run`, which starts the
//! long-running parts on given listeners and stops them on a shutdown signal.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::comfy::workflow::{Workflow, WorkflowError, load_dir};
use crate::config::Config;
use crate::media::{Checker, Limits};
use crate::queue::{OpenReport, Queue, QueueConfig};
use crate::store::Store;
use crate::worker::{Backends, Events};

/// The time source. Tests drive a manual clock instead of sleeping.
#[derive(Clone)]
pub enum Clock {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => jiff::Timestamp::now().as_millisecond(),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance_ms(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub queue: Queue,
    pub clock: Clock,
    /// The bearer token of the admin API.
    pub admin_token: Arc<SecretString>,
    pub workflows: Workflows,
    pub backends: Backends,
    pub events: Events,
    /// Upload checks (bounded concurrency).
    pub media: Checker,
    /// Wakes the workers when a job was queued.
    pub jobs_changed: Arc<tokio::sync::Notify>,
    pub presets: PresetBook,
    /// Telegram for `ops` (Stars refunds and transactions, notices); `None` without a bot token.
    pub telegram: Option<Arc<dyn crate::ops::Telegram>>,
    /// The YooKassa client, when `[yookassa]` is enabled.
    pub yookassa: Option<crate::yookassa::Client>,
    /// The watched folder's latest status, when one runs.
    pub watch: crate::watch::WatchBoard,
    /// Counters and histograms for `/metrics`.
    pub telemetry: crate::telemetry::Telemetry,
    /// Held (shared) by every storage call in flight off the runtime: `run` takes it
    /// exclusively before returning, so a call whose caller was cancelled mid-way (and that
    /// still holds the stores) has finished when `run` returns.
    in_flight: Arc<tokio::sync::RwLock<()>>,
}

/// The loaded presets; reloadable while running.
#[derive(Clone, Default)]
pub struct PresetBook(Arc<std::sync::RwLock<Arc<crate::presets::Presets>>>);

impl PresetBook {
    pub fn load(config: &Config) -> Result<Self, crate::presets::PresetError> {
        let book = Self::default();
        book.reload(config)?;
        Ok(book)
    }

    pub fn reload(&self, config: &Config) -> Result<usize, crate::presets::PresetError> {
        let dirs = config.preset_dirs();
        let loaded = crate::presets::Presets::load(&dirs)?;
        let n = loaded.len();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(n)
    }

    pub fn get(&self) -> Arc<crate::presets::Presets> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The loaded workflows, by name; reloadable while running.
#[derive(Clone, Default)]
pub struct Workflows(Arc<std::sync::RwLock<Arc<std::collections::BTreeMap<String, Workflow>>>>);

impl Workflows {
    /// Loads the shipped folder, then the operator's (which overrides same-named files).
    pub fn load(config: &Config) -> Result<Self, WorkflowError> {
        let w = Self::default();
        w.reload(config)?;
        Ok(w)
    }

    pub fn reload(&self, config: &Config) -> Result<usize, WorkflowError> {
        let dirs = config.workflow_dirs();
        let loaded = load_dir(&dirs)?;
        let n = loaded.len();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(n)
    }

    pub fn get(&self, name: &str) -> Option<Workflow> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Arc<std::collections::BTreeMap<String, Workflow>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Why the stores could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Preset(#[from] crate::presets::PresetError),
    #[error("cannot prepare the admin token at {path}: {source}")]
    Token {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl OpenError {
    /// Whether another process holds the files.
    pub fn is_locked(&self) -> bool {
        matches!(
            self,
            OpenError::Store(crate::store::StoreError::Locked)
                | OpenError::Queue(crate::queue::QueueError::Locked)
        )
    }
}

impl App {
    /// Opens both stores in the configured data dir.
    pub fn open(config: Config, clock: Clock) -> Result<(Self, OpenReport), OpenError> {
        let data_dir = config.storage.data_dir.clone();
        let store = Store::open(&data_dir)?;
        let (queue, report) =
            Queue::open(&data_dir, QueueConfig::from_config(&config), clock.now_ms())?;
        let admin_token = match &config.web.admin_token {
            Some(t) => t.clone(),
            None => load_or_create_token(&config.admin_token_path())?,
        };
        let workflows = Workflows::load(&config)?;
        let presets = PresetBook::load(&config)?;
        let backends = Backends::new(&config.comfyui.backends, std::time::Duration::from_secs(60));
        let telemetry = crate::telemetry::Telemetry::default();
        let telegram = crate::bot::gateway(&config, &store, &telemetry);
        let yookassa = config.yookassa.as_ref().map(crate::yookassa::Client::new);
        Ok((
            Self {
                config: Arc::new(config),
                store,
                queue,
                clock,
                admin_token: Arc::new(admin_token),
                workflows,
                backends,
                events: Events::default(),
                media: Checker::new(Limits::default(), 2),
                jobs_changed: Arc::new(tokio::sync::Notify::new()),
                presets,
                telegram,
                yookassa,
                watch: Default::default(),
                telemetry,
                in_flight: Arc::default(),
            },
            report,
        ))
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Runs blocking storage work off the async runtime.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&App) -> T + Send + 'static,
    ) -> T {
        let app = self.clone();
        let call = self.in_flight.clone().read_owned().await;
        match tokio::task::spawn_blocking(move || {
            // Declared first, dropped last: the stores are let go before the call ends.
            let _call = call;
            let app = app;
            f(&app)
        })
        .await
        {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Reads the generated admin token, creating it (mode 0600) on first start.
pub fn load_or_create_token(path: &Path) -> Result<SecretString, OpenError> {
    let err = |source| OpenError::Token {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            return Ok(SecretString::from(text.trim().to_string()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let token: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..40)
            .map(|_| {
                let c = rng.random_range(0..62u8);
                char::from(match c {
                    0..=9 => b'0' + c,
                    10..=35 => b'a' + c - 10,
                    _ => b'A' + c - 36,
                })
            })
            .collect()
    };
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(token.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(SecretString::from(token))
}

/// Runs everything until `shutdown` resolves: reconciles the stores, starts one worker per
/// ComfyUI backend and the bot, serves the web listener; on shutdown stops the workers and the
/// bot and waits for them.
pub async fn run(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let report = app.blocking(crate::ops::reconcile).await?;
    if !report.is_empty() {
        tracing::warn!(?report, "reconciled the stores after an unclean stop");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = crate::worker::spawn_all(&app, stop_rx.clone());
    workers.push(tokio::spawn(crate::bot::run(app.clone(), stop_rx.clone())));
    workers.push(tokio::spawn(crate::ops::run_yookassa_reconciler(
        app.clone(),
        stop_rx.clone(),
    )));
    if let Some(w) = app.config.watch.clone() {
        let every = w.interval;
        workers.push(tokio::spawn(crate::watch::run(
            app.clone(),
            w,
            every,
            stop_rx.clone(),
        )));
    }
    workers.push(tokio::spawn(periodic(app.clone(), stop_rx.clone())));
    workers.push(tokio::spawn(retention(app.clone(), stop_rx)));
    let web_shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let in_flight = app.in_flight.clone();
    let served = crate::web::serve(app, listener, web_shutdown).await;
    for w in workers {
        let _ = w.await;
    }
    drop(in_flight.write().await);
    served
}

/// Deletes photos and forgets API idempotency keys older than `storage.retention`: at start,
/// then hourly.
async fn retention(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        app.blocking(crate::ops::clean_files).await;
        if let Err(e) = app.blocking(crate::ops::forget_old_replays).await {
            tracing::error!(error = %e, "cannot forget old Idempotency-Keys");
        }
    }
}

/// Background duties on a timer: the weekly bonus with its notices (catching up after downtime
/// at start) and the Stars reconciliation.
async fn periodic(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let duties = async {
            if let Err(e) = crate::ops::weekly_task(&app).await {
                tracing::error!(error = %e, "weekly bonus failed");
            }
            crate::ops::stars_task(&app).await;
        };
        // A long run of notices must not hold up a shutdown: storage steps finish on their own
        // threads, and an unsent notice is only a notice.
        tokio::select! {
            _ = duties => {}
            _ = stop.changed() => return,
        }
    }
}
