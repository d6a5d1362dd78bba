//! Finishing a run: `/history` is the authority; outputs come through `/view` into the data
//! dir; then the queue records the outcome and the hold is captured or released.

use super::events::JobEventKind;
use super::runner::Runner;
use crate::comfy::{ComfyClient, History};
use crate::domain::JobError;
use crate::queue::JobResult;

impl Runner {
    /// ComfyUI says `prompt_id` is over: read its history and finish it.
    pub(super) async fn finish(&mut self, prompt_id: &str, now: i64) {
        let client = self.backend.client.clone();
        match client.history(prompt_id).await {
            Ok(Some(h)) => self.finish_from(prompt_id, &client, h, now).await,
            Ok(None) => {
                // Over, but not in history yet: poll it on the next steps.
                if let Some(f) = self.find(prompt_id) {
                    f.awaiting_history = true;
                }
            }
            Err(e) => {
                if let Some(f) = self.find(prompt_id) {
                    f.awaiting_history = true;
                }
                self.on_comfy_error(now, e);
            }
        }
    }

    pub(super) async fn finish_from(
        &mut self,
        prompt_id: &str,
        client: &ComfyClient,
        history: History,
        now: i64,
    ) {
        let Some(i) = self.position(prompt_id) else {
            return;
        };
        let f = self.inflight.remove(i);
        if !history.succeeded() {
            let message = if f.timed_out || history.was_interrupted() {
                "interrupted".to_string()
            } else {
                match history.error() {
                    Some((node, kind, msg)) => format!("{node}: {kind}: {}", msg.trim()),
                    None => format!("ComfyUI status {:?}", history.status.status_str),
                }
            };
            return self.fail(f, JobError::transient(message), now).await;
        }
        let images = history
            .outputs
            .get(&f.output_node)
            .map(|o| o.images.clone())
            .unwrap_or_default();
        if images.is_empty() {
            let message = format!("no images from output node {}", f.output_node);
            return self.fail(f, JobError::transient(message), now).await;
        }
        let id = f.lease.id();
        let data_dir = self.app.config.storage.data_dir.clone();
        let mut outputs = Vec::with_capacity(images.len());
        for (n, image) in images.iter().enumerate() {
            let bytes = match client.view(image).await {
                Ok(b) => b,
                Err(e) => return self.fail(f, JobError::transient(e.to_string()), now).await,
            };
            let name = crate::files::result_name(id, n);
            if let Err(e) = crate::files::resolve(&data_dir, &name)
                .and_then(|path| crate::files::write_atomic(&path, &bytes))
            {
                return self
                    .fail(
                        f,
                        JobError::transient(format!("cannot save the result: {e}")),
                        now,
                    )
                    .await;
            }
            outputs.push(name);
        }
        crate::faults::crash_point("finished");
        let record = match self.app.queue.complete(
            &f.lease,
            JobResult {
                outputs: outputs.clone(),
            },
            now,
        ) {
            Ok(r) => r,
            Err(e) => {
                // Someone else holds the job now; their run counts.
                tracing::warn!(job = %id, user = %f.lease.record.user(), error = %e, "finished, but the lease was lost");
                return;
            }
        };
        crate::faults::crash_point("completed");
        if let Err(e) = crate::ops::settle_job(&self.app, &record) {
            tracing::error!(job = %id, user = %record.user(), error = %e, "could not capture the points of a finished job; reconcile will");
        }
        let run_ms = f.started_ms.map_or(0, |s| (now - s).max(0) as u64);
        self.backend.update(|h| {
            h.jobs_done += 1;
            h.busy_ms += run_ms;
        });
        tracing::info!(job = %id, user = %record.user(), backend = %self.backend.name, outputs = outputs.len(), "job succeeded");
        self.publish(&f.lease, JobEventKind::Succeeded { outputs });
    }
}
