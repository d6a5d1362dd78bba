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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::Watch;
use crate::domain::{JobId, JobSpec, JobState, Lane, UserId};
use crate::ops::{self, OpsError};

/// The state file inside `out_dir`.
pub const STATE_FILE: &str = ".qwenedit-watch.json";
/// The user of free watch jobs when no user is configured.
pub const WATCH_USER: i64 = 0;

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

/// Where the running watcher publishes its status (for `/api/status`).
#[derive(Clone, Default)]
pub struct WatchBoard(Arc<Mutex<Option<WatchStatus>>>);

impl WatchBoard {
    pub fn set(&self, s: WatchStatus) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }

    pub fn get(&self) -> Option<WatchStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Ops(#[from] OpsError),
}

pub struct Watcher {
    app: App,
    cfg: Watch,
    user: UserId,
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
    /// Checks the folders and the preset, prepares the user and loads the state file.
    pub fn open(app: App, cfg: Watch) -> Result<Self, WatchError> {
        if !cfg.in_dir.is_dir() {
            return Err(WatchError::Setup(format!(
                "{} is not a folder",
                cfg.in_dir.display()
            )));
        }
        std::fs::create_dir_all(cfg.out_dir.join("failed")).map_err(|e| {
            WatchError::Setup(format!("cannot create {}: {e}", cfg.out_dir.display()))
        })?;
        if let Some(key) = &cfg.preset
            && app.presets.get().get(key).is_none()
        {
            return Err(WatchError::Setup(format!("unknown preset {key:?}")));
        }
        let user = match cfg.user {
            Some(id) => {
                let id = UserId::new(id);
                ops::user_row(&app, id)?;
                id
            }
            None => {
                let id = UserId::new(WATCH_USER);
                app.store
                    .ensure_user(id, app.now_ms())
                    .map_err(OpsError::from)?;
                ops::set_unlimited(&app, id, true)?;
                id
            }
        };
        let state = match std::fs::read(cfg.out_dir.join(STATE_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| WatchError::Setup(format!("the watch state file is damaged: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(WatchError::Setup(format!("cannot read the state: {e}"))),
        };
        Ok(Self {
            app,
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
        let input = match ops::store_input(&self.app, &bytes) {
            Ok(i) => i,
            Err(OpsError::BadImage(why)) => {
                return self.fail(
                    name,
                    (size, mtime_ms),
                    &format!("not a usable image: {why}"),
                );
            }
            Err(e) => return Err(e.into()),
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
        let presets = self.app.presets.get();
        let preset = self.cfg.preset.as_deref().and_then(|k| presets.get(k));
        let spec = JobSpec {
            user: self.user,
            chat: None,
            inputs: vec![input],
            preset: self.cfg.preset.clone(),
            prompt: self
                .cfg
                .prompt
                .clone()
                .or_else(|| preset.map(|p| p.prompt.clone())),
            workflow: preset
                .and_then(|p| p.workflow.clone())
                .unwrap_or_else(|| self.app.config.comfyui.default_workflow.clone()),
            seed: rand::random(),
            price: ops::listed_price(&self.app, self.cfg.preset.as_deref()),
            lane: Lane::Normal,
        };
        match ops::submit_edit(&self.app, job, spec) {
            Ok(_) => {
                tracing::info!(file = name, %job, "watched file submitted");
                Ok(())
            }
            Err(e @ (OpsError::InsufficientPoints { .. } | OpsError::Banned(_))) => {
                self.fail(name, (size, mtime_ms), &e.to_string())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Follows a submitted job; true when its file's entry changed.
    fn collect(&mut self, name: &str, job: &str) -> Result<bool, WatchError> {
        let stamp = self.state.files[name].stamp();
        let Ok(id) = job.parse::<JobId>() else {
            self.fail(name, stamp, "the state file names a bad job id")?;
            return Ok(true);
        };
        let record = match ops::job(&self.app, id) {
            Ok(r) => r,
            // Not in the queue: the crash came before the submission finished. Submitting
            // again with the same id is harmless.
            Err(OpsError::UnknownJob(_)) => {
                self.state.files.insert(
                    name.to_string(),
                    Entry::Seen {
                        size: stamp.0,
                        mtime_ms: stamp.1,
                    },
                );
                self.take(name, stamp)?;
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        match record.state() {
            JobState::Queued | JobState::Running => Ok(false),
            JobState::Succeeded => {
                let png = match ops::job_result(&self.app, id, 0) {
                    Ok(p) => p,
                    Err(e) => {
                        self.fail(name, stamp, &e.to_string())?;
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
                let why = record
                    .last_error
                    .clone()
                    .unwrap_or_else(|| format!("the job ended {}", state.as_str()));
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
            last_scan_ms: self.app.now_ms(),
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

/// Scans every `interval` until `stop`, publishing the status on `app.watch`.
pub async fn run(
    app: App,
    cfg: Watch,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let opened = {
        let cfg = cfg.clone();
        app.blocking(move |app| Watcher::open(app.clone(), cfg))
            .await
    };
    let watcher = match opened {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => {
            tracing::error!(error = %e, dir = %cfg.in_dir.display(), "the watched folder is off");
            return;
        }
    };
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let w = watcher.clone();
        let result = app
            .blocking(move |_| w.lock().unwrap_or_else(|p| p.into_inner()).scan())
            .await;
        match result {
            Ok(status) => app.watch.set(status),
            Err(e) => tracing::error!(error = %e, "watched folder scan failed"),
        }
    }
}
