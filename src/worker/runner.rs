//! One backend's runner: its socket, its in-flight jobs, and the step function.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::backends::Backend;
use super::events::{JobEvent, JobEventKind};
use crate::app::App;
use crate::comfy::{ComfyError, Event, Socket};
use crate::domain::JobError;
use crate::queue::{FailOutcome, LeasedJob};

/// A job submitted to this backend's ComfyUI.
pub(super) struct InFlight {
    pub lease: LeasedJob,
    pub lease_expires_ms: i64,
    /// The output node of its workflow.
    pub output_node: String,
    /// The socket client id it was submitted under; events of an older socket are lost.
    pub client_id: Option<String>,
    /// When it became the head of the pipeline (the one ComfyUI runs now or next).
    pub head_since_ms: Option<i64>,
    pub started_ms: Option<i64>,
    pub percent: u8,
    /// ComfyUI said it is over; `/history` did not have it yet.
    pub awaiting_history: bool,
    /// We interrupted it (timeout).
    pub timed_out: bool,
    /// When it was first found neither in ComfyUI's queue nor in its history. ComfyUI writes
    /// the history a moment after a run ends, so only a long absence means it is lost.
    pub missing_since_ms: Option<i64>,
}

/// How long a job may be neither queued nor in history before it counts as lost.
const LOST_AFTER_MS: i64 = 15_000;

pub struct Runner {
    pub(super) app: App,
    pub(super) backend: Arc<Backend>,
    socket: Option<Socket>,
    client_id: String,
    pub(super) inflight: Vec<InFlight>,
    up: bool,
    next_probe_ms: i64,
    probe_failures: u32,
}

const TICK: Duration = Duration::from_millis(250);

impl Runner {
    pub fn new(app: App, backend: Arc<Backend>) -> Self {
        Self {
            app,
            backend,
            socket: None,
            client_id: String::new(),
            inflight: Vec::new(),
            up: false,
            next_probe_ms: 0,
            probe_failures: 0,
        }
    }

    /// The client id of the current socket (empty before the first connect).
    pub(super) fn client_id_now(&self) -> String {
        self.client_id.clone()
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Runs until `stop` turns true. Leases of jobs in flight are left to expire (or to be
    /// returned when the process starts again).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let jobs_changed = self.app.jobs_changed.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.app.now_ms();
            self.step(now).await;
            tokio::select! {
                ev = next_event(&mut self.socket) => match ev {
                    Some(ev) => self.handle(ev).await,
                    None => self.socket_lost().await,
                },
                _ = tick.tick() => {}
                _ = jobs_changed.notified() => {}
                _ = stop.changed() => {}
            }
        }
        if let Some(s) = self.socket.take() {
            s.close().await;
        }
    }

    /// Everything time-driven, for `now`.
    pub async fn step(&mut self, now: i64) {
        if !self.up {
            if now < self.next_probe_ms {
                return;
            }
            self.probe(now).await;
            if !self.up {
                return;
            }
        }
        if self.socket.is_none() && !self.connect().await {
            return;
        }
        self.poll_unheard(now).await;
        self.check_timeouts(now).await;
        self.extend_leases(now).await;
        self.fill(now).await;
        self.publish_health();
    }

    async fn probe(&mut self, now: i64) {
        match self.backend.client.system_stats().await {
            Ok(stats) => {
                self.up = true;
                self.probe_failures = 0;
                let device = stats.devices.first().cloned().unwrap_or_default();
                self.backend.update(|h| {
                    h.up = true;
                    h.last_error = None;
                    h.version = Some(stats.system.comfyui_version.clone());
                    h.device = Some(device.name.clone());
                    h.vram_total = device.vram_total;
                    h.vram_free = device.vram_free;
                });
                tracing::info!(backend = %self.backend.name, version = %stats.system.comfyui_version, "backend up");
            }
            Err(e) => self.mark_down(now, &e),
        }
    }

    async fn connect(&mut self) -> bool {
        let client_id = format!("qwenedit-{}", ulid::Ulid::new());
        match Socket::connect(self.backend.client.base(), &client_id).await {
            Ok(socket) => {
                self.socket = Some(socket);
                self.client_id = client_id;
                true
            }
            Err(e) => {
                let now = self.app.now_ms();
                self.mark_down(now, &e);
                false
            }
        }
    }

    /// The socket closed: events of prompts in flight are lost from here (no replay), so they
    /// are polled through `/history` until done.
    async fn socket_lost(&mut self) {
        if let Some(s) = self.socket.take() {
            s.close().await;
        }
        tracing::warn!(backend = %self.backend.name, in_flight = self.inflight.len(), "ComfyUI socket closed; re-reading history");
    }

    /// Marks the backend down: its jobs go back to the queue for the others, without spending
    /// an attempt.
    pub(super) fn mark_down(&mut self, now: i64, e: &ComfyError) {
        if self.up || self.probe_failures == 0 {
            tracing::warn!(backend = %self.backend.name, error = %e, "backend down");
        }
        self.up = false;
        self.socket = None;
        self.probe_failures += 1;
        let backoff = 1_000i64.saturating_mul(1 << self.probe_failures.min(5));
        self.next_probe_ms = now + backoff;
        let message = e.to_string();
        self.backend.update(|h| {
            h.up = false;
            h.last_error = Some(message);
            h.current_job = None;
        });
        for f in std::mem::take(&mut self.inflight) {
            if let Err(err) = self
                .app
                .queue
                .abandon(&f.lease, "its backend went down", now)
            {
                tracing::warn!(job = %f.lease.id(), user = %f.lease.record.user(), error = %err, "could not return a job");
            }
        }
        self.app.jobs_changed.notify_waiters();
    }

    /// Reacts to one WebSocket event.
    pub async fn handle(&mut self, ev: Event) {
        let now = self.app.now_ms();
        match ev {
            Event::ExecutionStart { prompt_id } => {
                if let Some(f) = self.find(&prompt_id) {
                    f.started_ms = Some(now);
                    let lease = f.lease.clone();
                    self.publish(
                        &lease,
                        JobEventKind::Started {
                            backend: self.backend.name.clone(),
                        },
                    );
                    crate::faults::crash_point("running");
                }
            }
            Event::Progress {
                prompt_id: Some(prompt_id),
                value,
                max,
                ..
            } if max > 0.0 => {
                let percent = ((value / max) * 100.0).clamp(0.0, 100.0) as u8;
                if let Some(f) = self.find(&prompt_id)
                    && f.percent != percent
                {
                    f.percent = percent;
                    let lease = f.lease.clone();
                    self.publish(&lease, JobEventKind::Progress { percent });
                }
            }
            // The end of a run we saw start. A retried job reuses its prompt id, so the end of
            // the interrupted previous run can arrive after the retry was queued; ComfyUI runs
            // one prompt at a time, so that end always comes before the retry's start.
            Event::Executing {
                prompt_id: Some(prompt_id),
                node: None,
            } if self
                .find(&prompt_id)
                .is_some_and(|f| f.started_ms.is_some()) =>
            {
                self.finish(&prompt_id, now).await;
            }
            Event::Executing {
                prompt_id: None, ..
            } => {
                // A reconnect mid-run: whatever happened meanwhile is in /history.
                for f in &mut self.inflight {
                    f.client_id = None;
                }
            }
            Event::Error {
                prompt_id,
                node_type,
                exception_type,
                exception_message,
            } if self.position(&prompt_id).is_some() => {
                // The details (with server paths) are for the log only.
                let user = self
                    .position(&prompt_id)
                    .map(|i| self.inflight[i].lease.record.user().get());
                tracing::warn!(job = %prompt_id, user, backend = %self.backend.name, %node_type, %exception_type, message = %exception_message, "ComfyUI execution error");
            }
            _ => {}
        }
    }

    pub(super) fn find(&mut self, prompt_id: &str) -> Option<&mut InFlight> {
        self.inflight
            .iter_mut()
            .find(|f| f.lease.id().to_string() == prompt_id)
    }

    /// Jobs whose end we may not hear of (submitted under an older socket, or ComfyUI ended
    /// them before writing history): ask `/history`.
    async fn poll_unheard(&mut self, now: i64) {
        let unheard: Vec<String> = self
            .inflight
            .iter()
            .filter(|f| f.awaiting_history || f.client_id.as_deref() != Some(&self.client_id))
            .map(|f| f.lease.id().to_string())
            .collect();
        if unheard.is_empty() {
            return;
        }
        let queue = match self.backend.client.queue().await {
            Ok(q) => q,
            Err(e) => return self.on_comfy_error(now, e),
        };
        for prompt_id in unheard {
            match self.backend.client.history(&prompt_id).await {
                // Still queued or running: the history entry is an earlier attempt's.
                Ok(Some(_)) if queue.contains(&prompt_id) => {}
                Ok(Some(_)) => self.finish(&prompt_id, now).await,
                Ok(None) if !queue.contains(&prompt_id) => {
                    // Neither queued nor finished: just ended, or lost (ComfyUI restarted?).
                    let Some(i) = self.position(&prompt_id) else {
                        continue;
                    };
                    let since = *self.inflight[i].missing_since_ms.get_or_insert(now);
                    if now - since >= LOST_AFTER_MS {
                        let f = self.inflight.remove(i);
                        self.fail(f, JobError::transient("ComfyUI lost the job"), now)
                            .await;
                    }
                }
                Ok(None) => {
                    if let Some(f) = self.find(&prompt_id) {
                        f.missing_since_ms = None;
                    }
                }
                Err(e) => return self.on_comfy_error(now, e),
            }
        }
    }

    pub(super) fn position(&self, prompt_id: &str) -> Option<usize> {
        self.inflight
            .iter()
            .position(|f| f.lease.id().to_string() == prompt_id)
    }

    async fn check_timeouts(&mut self, now: i64) {
        let timeout = self.app.config.comfyui.job_timeout.as_millis() as i64;
        if let Some(head) = self.inflight.first_mut() {
            head.head_since_ms.get_or_insert(now);
        }
        let Some(head) = self.inflight.first() else {
            return;
        };
        let since = head.started_ms.or(head.head_since_ms).unwrap_or(now);
        if now - since < timeout || head.timed_out {
            return;
        }
        let prompt_id = head.lease.id().to_string();
        tracing::warn!(job = %prompt_id, user = %head.lease.record.user(), backend = %self.backend.name, "job timed out; interrupting");
        let _ = self.backend.client.interrupt(&prompt_id).await;
        let _ = self
            .backend
            .client
            .delete_pending(std::slice::from_ref(&prompt_id))
            .await;
        let f = self.inflight.remove(0);
        self.fail(
            f,
            JobError::transient(format!(
                "timed out after {}s",
                self.app.config.comfyui.job_timeout.as_secs()
            )),
            now,
        )
        .await;
    }

    async fn extend_leases(&mut self, now: i64) {
        let ttl = self.app.config.queue.lease_ttl;
        let half = (ttl.as_millis() / 2) as i64;
        let mut stale = Vec::new();
        for (i, f) in self.inflight.iter_mut().enumerate() {
            if f.lease_expires_ms - now > half {
                continue;
            }
            match self.app.queue.extend(&f.lease, now, ttl) {
                Ok(()) => f.lease_expires_ms = now + ttl.as_millis() as i64,
                Err(e) => {
                    tracing::warn!(job = %f.lease.id(), user = %f.lease.record.user(), error = %e, "lost the lease");
                    stale.push(i);
                }
            }
        }
        for i in stale.into_iter().rev() {
            let f = self.inflight.remove(i);
            let id = f.lease.id().to_string();
            let _ = self.backend.client.delete_pending(&[id]).await;
        }
    }

    /// Keeps the pipeline full.
    async fn fill(&mut self, now: i64) {
        let depth = self.app.config.comfyui.pipeline_depth;
        let ttl = self.app.config.queue.lease_ttl;
        while self.up && self.inflight.len() < depth && !self.backend.health().draining {
            let leased = match self.app.queue.lease_next(&self.backend.name, now, ttl) {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot lease a job");
                    break;
                }
            };
            self.submit(leased, now).await;
        }
    }

    pub(super) fn on_comfy_error(&mut self, now: i64, e: ComfyError) {
        if matches!(e, ComfyError::Unreachable { .. }) {
            self.mark_down(now, &e);
        } else {
            tracing::warn!(backend = %self.backend.name, error = %e, "ComfyUI error");
        }
    }

    /// Records a failed attempt: retried later, or final with its points released.
    pub(super) async fn fail(&mut self, f: InFlight, error: JobError, now: i64) {
        let lease = f.lease;
        let id = lease.id();
        tracing::warn!(job = %id, user = %lease.record.user(), backend = %self.backend.name, error = %error.message, transient = error.transient, "job attempt failed");
        self.backend.update(|h| h.jobs_failed += 1);
        self.app.telemetry.attempt_failed();
        let outcome = match self.app.queue.fail(&lease, &error, now) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(job = %id, user = %lease.record.user(), error = %e, "could not record the failure");
                return;
            }
        };
        match outcome {
            FailOutcome::Retry { at_ms } => {
                self.publish(&lease, JobEventKind::Retrying { at_ms });
            }
            FailOutcome::Final(record) => {
                if let Err(e) = crate::ops::settle_job(&self.app, &record) {
                    tracing::error!(job = %id, user = %record.user(), error = %e, "could not release the points of a failed job; reconcile will");
                }
                self.publish(
                    &lease,
                    JobEventKind::Failed {
                        reason: error.message,
                    },
                );
            }
        }
    }

    pub(super) fn publish(&self, lease: &LeasedJob, kind: JobEventKind) {
        self.app.events.publish(JobEvent {
            job: lease.id(),
            user: lease.record.user(),
            chat: lease.record.spec().chat,
            kind,
        });
    }

    fn publish_health(&self) {
        let head = self.inflight.first();
        let current = head.filter(|f| f.started_ms.is_some());
        self.backend.update(|h| {
            h.current_job = current.map(|f| f.lease.id().to_string());
            h.progress = current.map_or(0, |f| f.percent);
        });
    }
}

/// The next event of an open socket; pending forever without one.
async fn next_event(socket: &mut Option<Socket>) -> Option<Event> {
    match socket {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
