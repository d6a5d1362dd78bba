//! Submitting a leased job to ComfyUI: recovery through `/history` first, then upload, patch,
//! queue.

use super::events::JobEventKind;
use super::runner::{InFlight, Runner};
use crate::comfy::{ComfyError, Patch};
use crate::domain::JobError;
use crate::queue::LeasedJob;

impl Runner {
    pub(super) async fn submit(&mut self, lease: LeasedJob, now: i64) {
        crate::faults::crash_point("leased");
        let id = lease.id();
        let prompt_id = id.to_string();
        let spec = lease.record.spec();
        let Some(workflow) = self.app.workflows.get(&spec.workflow) else {
            let f = self.track(lease, String::new(), now);
            let message = format!("unknown workflow {:?}", spec.workflow);
            return self.fail(f, JobError::permanent(message), now).await;
        };
        let output_node = workflow.output_node().to_string();

        // A job leased again after a crash may have run already: reuse a finished run instead
        // of running (and charging) again, and never submit a prompt that is still queued.
        if lease.record.attempts > 1 {
            let backends = self.app.backends.clone();
            for backend in backends.all() {
                match backend.client.history(&prompt_id).await {
                    Ok(Some(h))
                        if h.succeeded()
                            && outputs_available(&backend.client, &h, &output_node).await =>
                    {
                        tracing::info!(job = %id, user = %lease.record.user(), backend = %backend.name, "reusing a finished run");
                        let mut f = self.track(lease, output_node, now);
                        f.client_id = None;
                        self.inflight.push(f);
                        return self.finish_from(&prompt_id, &backend.client, h, now).await;
                    }
                    _ => {}
                }
                if let Ok(q) = backend.client.queue().await
                    && q.contains(&prompt_id)
                {
                    if std::sync::Arc::ptr_eq(backend, &self.backend) {
                        tracing::info!(job = %id, user = %lease.record.user(), "still in ComfyUI's queue; following it");
                        let mut f = self.track(lease, output_node, now);
                        f.client_id = None;
                        self.inflight.push(f);
                        return;
                    }
                    // Queued on another backend by a lost runner: take it back from there.
                    let _ = backend
                        .client
                        .delete_pending(std::slice::from_ref(&prompt_id))
                        .await;
                }
            }
        }

        let mut images = Vec::new();
        for (i, input) in spec.inputs.iter().enumerate() {
            let bytes = match crate::files::read(&self.app.config.storage.data_dir, input) {
                Ok(b) => b,
                Err(e) => {
                    let f = self.track(lease, output_node, now);
                    let message = format!("input {input} is unreadable: {e}");
                    return self.fail(f, JobError::permanent(message), now).await;
                }
            };
            let name = format!("{id}-{}.png", i + 1);
            match self
                .backend
                .client
                .upload_image(bytes, &name, "qwenedit")
                .await
            {
                Ok(stored) => images.push(stored),
                Err(e) => return self.submit_failed(lease, output_node, e, now).await,
            }
        }
        let patch = Patch {
            images,
            prompt: spec.prompt.clone(),
            negative: None,
            seed: spec.seed,
            // Per attempt: a retry must not be served ComfyUI's cached (maybe missing) output.
            output_prefix: format!("qwenedit/{id}-{}", lease.record.attempts),
            models: self.app.config.comfyui.models.clone(),
        };
        let graph = match workflow.patch(&patch) {
            Ok(g) => g,
            Err(e) => {
                let f = self.track(lease, output_node, now);
                return self.fail(f, JobError::permanent(e.to_string()), now).await;
            }
        };
        let client_id = self.client_id_now();
        if let Err(e) = self
            .backend
            .client
            .queue_prompt(&graph, &prompt_id, &client_id)
            .await
        {
            return self.submit_failed(lease, output_node, e, now).await;
        }
        let f = self.track(lease, output_node, now);
        self.publish(
            &f.lease,
            JobEventKind::Submitted {
                backend: self.backend.name.clone(),
            },
        );
        tracing::debug!(job = %id, user = %f.lease.record.user(), backend = %self.backend.name, "submitted");
        self.inflight.push(f);
    }

    async fn submit_failed(
        &mut self,
        lease: LeasedJob,
        output_node: String,
        e: ComfyError,
        now: i64,
    ) {
        if matches!(e, ComfyError::Unreachable { .. }) {
            // The backend went away: the job goes back without spending an attempt.
            let _ = self.app.queue.abandon(&lease, "its backend went down", now);
            return self.mark_down(now, &e);
        }
        let f = self.track(lease, output_node, now);
        let error = if e.is_transient() {
            JobError::transient(e.to_string())
        } else {
            JobError::permanent(e.to_string())
        };
        self.fail(f, error, now).await;
    }

    pub(super) fn track(&self, lease: LeasedJob, output_node: String, now: i64) -> InFlight {
        let lease_expires_ms = lease.record.lease.as_ref().map_or(now, |l| l.expires_ms);
        InFlight {
            lease,
            lease_expires_ms,
            output_node,
            client_id: Some(self.client_id_now()),
            head_since_ms: None,
            started_ms: None,
            percent: 0,
            awaiting_history: false,
            timed_out: false,
            missing_since_ms: None,
        }
    }
}

/// Whether a finished run's outputs can still be downloaded (a crash-recovery reuse of a run
/// whose files are gone would fail every time).
async fn outputs_available(
    client: &crate::comfy::ComfyClient,
    history: &crate::comfy::History,
    output_node: &str,
) -> bool {
    let Some(images) = history.outputs.get(output_node).map(|o| &o.images) else {
        return false;
    };
    if images.is_empty() {
        return false;
    }
    for image in images {
        if client.view(image).await.is_err() {
            return false;
        }
    }
    true
}
