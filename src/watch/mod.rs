//! The watched folder: every image that appears in `in_dir`, once fully written, becomes a job;
//! its result lands in `out_dir` as `<stem>.edited.png`; a failure puts the input and a `.txt`
//! reason into `out_dir/failed/`. `Watcher::scan` is one step (list, take stable files, submit,
//! collect finished jobs) so tests drive it without sleeping; `run` calls it on a timer.
//!
//! A file is taken when its size and modification time are the same on two scans in a row (a
//! half-copied file keeps changing; a rename into place is stable at once). Hidden files and
//! `*.tmp`/`*.part` are ignored. What happened to each file is kept in
//! `out_dir/.qwenedit-watch.json`, written atomically after every change, and the job id is
//! written there *before* the job is submitted (submission is idempotent by job id): after a
//! restart a file is never submitted twice, and a job in flight is followed to its end.
//!
//! The watcher reaches the jobs through an [`Engine`]: [`Local`] calls `ops` on this process's
//! stores (the service's `[watch]` section, or `qwenedit watch` with the service stopped); the
//! [`remote::ApiEngine`] calls a running service's `/api/v1` for the same steps (what
//! `qwenedit watch` uses while the service holds the stores).

pub mod remote;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::Watch;
use crate::domain::{JobId, JobState, UserId};
use crate::ops::{self, OpsError};

/// The state file inside `out_dir`.
pub const STATE_FILE: &str = ".qwenedit-watch.json";
/// The user of free watch jobs when no user is configured.
pub const WATCH_USER: i64 = 0;
/// Bigger files are refused without being read (no photo is this big).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Entry {
    /// Seen once with this size and mtime; taken when the next scan sees the same.
    Seen { size: u64, mtime_ms: i64 },
    /// Submitted as this job (or about to be).
    Submitted {
        job: String,
        size: u64,
        mtime_ms: i64,
    },
    Done {
        output: String,
        size: u64,
        mtime_ms: i64,
    },
    Failed {
        reason: String,
        size: u64,
        mtime_ms: i64,
    },
}

impl Entry {
    fn stamp(&self) -> (u64, i64) {
        match self {
            Entry::Seen { size, mtime_ms }
            | Entry::Submitted { size, mtime_ms, .. }
            | Entry::Done { size, mtime_ms, .. }
            | Entry::Failed { size, mtime_ms, .. } => (*size, *mtime_ms),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    files: BTreeMap<String, Entry>,
}

/// What the status page shows of the batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchStatus {
    pub in_dir: String,
    pub out_dir: String,
    /// Seen, waiting for the file to stop changing.
    pub waiting: usize,
    pub running: usize,
    pub done: usize,
    pub failed: usize,
    pub last_scan_ms: i64,
    /// The newest failures: (file, reason).
    pub recent_failures: Vec<(String, String)>,
}

/// Where the running watcher publishes its status after each scan (for `/api/status`); a
/// change can be awaited.
#[derive(Clone)]
pub struct WatchBoard(Arc<tokio::sync::watch::Sender<Option<WatchStatus>>>);

impl Default for WatchBoard {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(None)))
    }
}

impl WatchBoard {
    pub fn set(&self, s: WatchStatus) {
        self.0.send_replace(Some(s));
    }

    pub fn get(&self) -> Option<WatchStatus> {
        self.0.borrow().clone()
    }

    /// The status as it changes, from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<WatchStatus>> {
        self.0.subscribe()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// The engine could not be reached or failed; the scan is retried later.
    #[error("{0}")]
    Engine(String),
}

/// Why an engine step did not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The file is not a usable image.
    #[error("{0}")]
    BadImage(String),
    /// The job was refused for good (no points, banned, bad request).
    #[error("{0}")]
    Refused(String),
    /// Anything else: storage, the network. Retried on the next scan.
    #[error("{0}")]
    Failed(String),
}

/// What the watcher needs of the service, wherever it runs.
pub trait Engine: Send {
    /// The user jobs are charged to: `Some(id)` must exist; `None` is the free watch user,
    /// created and made unlimited.
    fn prepare_user(&self, user: Option<i64>) -> Result<i64, EngineError>;
    fn has_preset(&self, key: &str) -> Result<bool, EngineError>;
    /// Checks and stores an image; its data-dir name.
    fn store_input(&self, bytes: &[u8]) -> Result<String, EngineError>;
    /// Submits a job (idempotent by `job`).
    fn submit(&self, job: JobId, spec: ops::EditSpec) -> Result<(), EngineError>;
    /// A job's state and last error; `None` when unknown.
    fn job(&self, job: JobId) -> Result<Option<(JobState, Option<String>)>, EngineError>;
    /// A succeeded job's first result (PNG).
    fn result(&self, job: JobId) -> Result<Vec<u8>, EngineError>;
    fn now_ms(&self) -> i64;
}

/// The engine in this process: `ops` on the stores.
pub struct Local(pub App);

fn local_error(e: OpsError) -> EngineError {
    match e {
        OpsError::BadImage(m) => EngineError::BadImage(m),
        e @ (OpsError::InsufficientPoints { .. }
        | OpsError::Banned(_)
        | OpsError::UnknownUser(_)
        | OpsError::Invalid(_)
        | OpsError::NoResult { .. }) => EngineError::Refused(e.to_string()),
        other => EngineError::Failed(other.to_string()),
    }
}

impl Engine for Local {
    fn prepare_user(&self, user: Option<i64>) -> Result<i64, EngineError> {
        match user {
            Some(id) => ops::user_row(&self.0, UserId::new(id))
                .map(|u| u.id)
                .map_err(local_error),
            None => {
                let id = UserId::new(WATCH_USER);
                ops::ensure_user(&self.0, id).map_err(local_error)?;
                ops::set_unlimited(&self.0, id, true).map_err(local_error)?;
                Ok(WATCH_USER)
            }
        }
    }

    fn has_preset(&self, key: &str) -> Result<bool, EngineError> {
        Ok(self.0.presets.get().get(key).is_some())
    }

    fn store_input(&self, bytes: &[u8]) -> Result<String, EngineError> {
        ops::store_input(&self.0, bytes).map_err(local_error)
    }

    fn submit(&self, job: JobId, spec: ops::EditSpec) -> Result<(), EngineError> {
        let spec = ops::edit_spec(&self.0, spec).map_err(local_error)?;
        ops::submit_edit(&self.0, job, spec)
            .map(|_| ())
            .map_err(local_error)
    }

    fn job(&self, job: JobId) -> Result<Option<(JobState, Option<String>)>, EngineError> {
        match ops::job(&self.0, job) {
            Ok(r) => Ok(Some((r.state(), r.last_error))),
            Err(OpsError::UnknownJob(_)) => Ok(None),
            Err(e) => Err(local_error(e)),
        }
    }

    fn result(&self, job: JobId) -> Result<Vec<u8>, EngineError> {
        ops::job_result(&self.0, job, 0).map_err(local_error)
    }

    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

pub struct Watcher {
    engine: Box<dyn Engine>,
    cfg: Watch,
    user: i64,
    state: State,
}

fn mtime_ms(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with('~')
}

impl Watcher {
    /// A watcher on this process's stores.
    pub fn open(app: App, cfg: Watch) -> Result<Self, WatchError> {
        Self::with_engine(Box::new(Local(app)), cfg)
    }

    /// Checks the folders and the preset, prepares the user and loads the state file.
    pub fn with_engine(engine: Box<dyn Engine>, cfg: Watch) -> Result<Self, WatchError> {
        if !cfg.in_dir.is_dir() {
            return Err(WatchError::Setup(format!(
                "{} is not a folder",
                cfg.in_dir.display()
            )));
        }
        std::fs::create_dir_all(cfg.out_dir.join("failed")).map_err(|e| {
            WatchError::Setup(format!("cannot create {}: {e}", cfg.out_dir.display()))
        })?;
        let setup = |e: EngineError| match e {
            EngineError::BadImage(m) | EngineError::Refused(m) | EngineError::Failed(m) => {
                WatchError::Setup(m)
            }
        };
        if let Some(key) = &cfg.preset
            && !engine.has_preset(key).map_err(setup)?
        {
            return Err(WatchError::Setup(format!("unknown preset {key:?}")));
        }
        let user = engine.prepare_user(cfg.user).map_err(setup)?;
        let state = match std::fs::read(cfg.out_dir.join(STATE_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| WatchError::Setup(format!("the watch state file is damaged: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(WatchError::Setup(format!("cannot read the state: {e}"))),
        };
        Ok(Self {
            engine,
            cfg,
            user,
            state,
        })
    }

    fn save(&self) -> Result<(), WatchError> {
        let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        crate::files::write_atomic(&self.cfg.out_dir.join(STATE_FILE), &bytes)
            .map_err(|e| WatchError::Setup(format!("cannot write the watch state: {e}")))
    }

    /// One step: new and changed files, stable files submitted, finished jobs collected.
    pub fn scan(&mut self) -> Result<WatchStatus, WatchError> {
        let mut changed = false;
        let listing = std::fs::read_dir(&self.cfg.in_dir).map_err(|e| {
            WatchError::Setup(format!("cannot list {}: {e}", self.cfg.in_dir.display()))
        })?;
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let Ok(meta) = item.metadata() else { continue };
            if !meta.is_file() || ignored(&name) {
                continue;
            }
            let stamp = (meta.len(), mtime_ms(&meta));
            match self.state.files.get(&name) {
                None => {
                    self.state.files.insert(
                        name,
                        Entry::Seen {
                            size: stamp.0,
                            mtime_ms: stamp.1,
                        },
                    );
                    changed = true;
                }
                Some(Entry::Seen { .. }) if self.state.files[&name].stamp() != stamp => {
                    self.state.files.insert(
                        name,
                        Entry::Seen {
                            size: stamp.0,
                            mtime_ms: stamp.1,
                        },
                    );
                    changed = true;
                }
                Some(Entry::Seen { .. }) => {
                    self.take(&name, stamp)?;
                    changed = true;
                }
                // A finished file replaced by a new one with the same name: a new round.
                Some(e @ (Entry::Done { .. } | Entry::Failed { .. })) if e.stamp() != stamp => {
                    self.state.files.insert(
                        name,
                        Entry::Seen {
                            size: stamp.0,
                            mtime_ms: stamp.1,
                        },
                    );
                    changed = true;
                }
                Some(_) => {}
            }
        }
        let submitted: Vec<(String, String)> = self
            .state
            .files
            .iter()
            .filter_map(|(n, e)| match e {
                Entry::Submitted { job, .. } => Some((n.clone(), job.clone())),
                _ => None,
            })
            .collect();
        for (name, job) in submitted {
            changed |= self.collect(&name, &job)?;
        }
        if changed {
            self.save()?;
        }
        Ok(self.status())
    }

    /// Submits a stable file: the job id goes into the state file first.
    fn take(&mut self, name: &str, (size, mtime_ms): (u64, i64)) -> Result<(), WatchError> {
        if size > MAX_FILE_BYTES {
            let why = format!("the file is too big ({size} bytes; at most {MAX_FILE_BYTES})");
            return self.fail(name, (size, mtime_ms), &why);
        }
        let path = self.cfg.in_dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                return self.fail(
                    name,
                    (size, mtime_ms),
                    &format!("cannot read the file: {e}"),
                );
            }
        };
        let input = match self.engine.store_input(&bytes) {
            Ok(i) => i,
            Err(EngineError::BadImage(why) | EngineError::Refused(why)) => {
                return self.fail(
                    name,
                    (size, mtime_ms),
                    &format!("not a usable image: {why}"),
                );
            }
            Err(EngineError::Failed(e)) => return Err(WatchError::Engine(e)),
        };
        let job = JobId::new();
        self.state.files.insert(
            name.to_string(),
            Entry::Submitted {
                job: job.to_string(),
                size,
                mtime_ms,
            },
        );
        self.save()?;
        self.submit(name, job, input)
    }

    fn submit(&mut self, name: &str, job: JobId, input: String) -> Result<(), WatchError> {
        let spec = ops::EditSpec {
            user: self.user,
            preset: self.cfg.preset.clone(),
            prompt: self.cfg.prompt.clone(),
            inputs: vec![input],
            ..Default::default()
        };
        match self.engine.submit(job, spec) {
            Ok(()) => {
                tracing::info!(file = name, %job, "watched file submitted");
                Ok(())
            }
            Err(EngineError::Refused(why) | EngineError::BadImage(why)) => {
                let stamp = self.state.files[name].stamp();
                self.fail(name, stamp, &why)
            }
            // Stays `Submitted`: the next scan finds the job unknown and submits it again
            // under the same id.
            Err(EngineError::Failed(e)) => Err(WatchError::Engine(e)),
        }
    }

    /// Follows a submitted job; true when its file's entry changed.
    fn collect(&mut self, name: &str, job: &str) -> Result<bool, WatchError> {
        let stamp = self.state.files[name].stamp();
        let Ok(id) = job.parse::<JobId>() else {
            self.fail(name, stamp, "the state file names a bad job id")?;
            return Ok(true);
        };
        let (state, last_error) = match self.engine.job(id).map_err(engine_error)? {
            Some(s) => s,
            // Not in the queue: the stop came before the submission. Taking the file again
            // under the same job id is harmless (submission is idempotent by id).
            None => {
                let path = self.cfg.in_dir.join(name);
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) => {
                        self.fail(name, stamp, &format!("cannot read the file: {e}"))?;
                        return Ok(true);
                    }
                };
                match self.engine.store_input(&bytes) {
                    Ok(input) => self.submit(name, id, input)?,
                    Err(EngineError::Failed(e)) => return Err(WatchError::Engine(e)),
                    Err(EngineError::BadImage(why) | EngineError::Refused(why)) => {
                        self.fail(name, stamp, &format!("not a usable image: {why}"))?;
                    }
                }
                return Ok(true);
            }
        };
        match state {
            JobState::Queued | JobState::Running => Ok(false),
            JobState::Succeeded => {
                let png = match self.engine.result(id) {
                    Ok(p) => p,
                    Err(EngineError::Failed(e)) => return Err(WatchError::Engine(e)),
                    Err(EngineError::Refused(e) | EngineError::BadImage(e)) => {
                        self.fail(name, stamp, &e)?;
                        return Ok(true);
                    }
                };
                let output = self.output_name(name);
                crate::files::write_atomic(&self.cfg.out_dir.join(&output), &png)
                    .map_err(|e| WatchError::Setup(format!("cannot write {output}: {e}")))?;
                tracing::info!(file = name, output, "watched file done");
                self.state.files.insert(
                    name.to_string(),
                    Entry::Done {
                        output,
                        size: stamp.0,
                        mtime_ms: stamp.1,
                    },
                );
                Ok(true)
            }
            state => {
                let why = last_error.unwrap_or_else(|| format!("the job ended {}", state.as_str()));
                self.fail(
                    name,
                    stamp,
                    &format!("the edit failed ({}): {why}", state.as_str()),
                )?;
                Ok(true)
            }
        }
    }

    /// `photo.jpg` → `photo.edited.png`; another input with the same stem gets
    /// `photo.jpg.edited.png`, then a number.
    fn output_name(&self, name: &str) -> String {
        let stem = Path::new(name)
            .file_stem()
            .map_or(name.to_string(), |s| s.to_string_lossy().into_owned());
        let taken = |candidate: &str| {
            self.cfg.out_dir.join(candidate).exists()
                || self.state.files.iter().any(|(n, e)| {
                    n != name && matches!(e, Entry::Done { output, .. } if output == candidate)
                })
        };
        let mut candidate = format!("{stem}.edited.png");
        if !taken(&candidate) {
            return candidate;
        }
        candidate = format!("{name}.edited.png");
        let mut n = 2;
        while taken(&candidate) {
            candidate = format!("{name}.edited-{n}.png");
            n += 1;
        }
        candidate
    }

    /// Copies the input into `failed/` with a `.txt` reason, and remembers the failure.
    fn fail(
        &mut self,
        name: &str,
        (size, mtime_ms): (u64, i64),
        reason: &str,
    ) -> Result<(), WatchError> {
        tracing::warn!(file = name, reason, "watched file failed");
        let failed = self.cfg.out_dir.join("failed");
        let _ = std::fs::copy(self.cfg.in_dir.join(name), failed.join(name));
        crate::files::write_atomic(
            &failed.join(format!("{name}.txt")),
            format!("{reason}\n").as_bytes(),
        )
        .map_err(|e| WatchError::Setup(format!("cannot write to {}: {e}", failed.display())))?;
        self.state.files.insert(
            name.to_string(),
            Entry::Failed {
                reason: reason.to_string(),
                size,
                mtime_ms,
            },
        );
        self.save()
    }

    pub fn status(&self) -> WatchStatus {
        let mut s = WatchStatus {
            in_dir: self.cfg.in_dir.display().to_string(),
            out_dir: self.cfg.out_dir.display().to_string(),
            last_scan_ms: self.engine.now_ms(),
            ..Default::default()
        };
        for (name, e) in &self.state.files {
            match e {
                Entry::Seen { .. } => s.waiting += 1,
                Entry::Submitted { .. } => s.running += 1,
                Entry::Done { .. } => s.done += 1,
                Entry::Failed { reason, .. } => {
                    s.failed += 1;
                    s.recent_failures.push((name.clone(), reason.clone()));
                }
            }
        }
        s.recent_failures.truncate(10);
        s
    }

    /// What the state file says of a file.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.state.files.get(name)
    }

    pub fn out_dir(&self) -> &PathBuf {
        &self.cfg.out_dir
    }
}

fn engine_error(e: EngineError) -> WatchError {
    match e {
        EngineError::BadImage(m) | EngineError::Refused(m) | EngineError::Failed(m) => {
            WatchError::Engine(m)
        }
    }
}

/// The service's watched folder: scans every `interval` until `stop`, publishing the status
/// on `app.watch`.
pub async fn run(
    app: App,
    cfg: Watch,
    interval: std::time::Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let opened = {
        let cfg = cfg.clone();
        app.blocking(move |app| Watcher::open(app.clone(), cfg))
            .await
    };
    match opened {
        Ok(w) => {
            let board = app.watch.clone();
            run_watcher(w, interval, stop, move |s| board.set(s)).await;
        }
        Err(e) => {
            tracing::error!(error = %e, dir = %cfg.in_dir.display(), "the watched folder is off");
        }
    }
}

/// Scans every `interval` until `stop` (off the async runtime), handing each status to
/// `publish`. A failed scan is logged and retried on the next tick.
pub async fn run_watcher(
    watcher: Watcher,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    publish: impl Fn(WatchStatus) + Send + 'static,
) {
    let watcher = Arc::new(Mutex::new(watcher));
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            // An engine may hold a blocking HTTP client: drop it off the runtime.
            let _ = tokio::task::spawn_blocking(move || drop(watcher)).await;
            return;
        }
        let w = watcher.clone();
        let scanned =
            tokio::task::spawn_blocking(move || w.lock().unwrap_or_else(|p| p.into_inner()).scan())
                .await;
        match scanned {
            Ok(Ok(status)) => publish(status),
            Ok(Err(e)) => tracing::error!(error = %e, "watched folder scan failed"),
            Err(e) => tracing::error!(error = %e, "watched folder scan panicked"),
        }
    }
}
