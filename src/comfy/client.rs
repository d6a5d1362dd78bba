//! The HTTP side of ComfyUI.

use std::time::Duration;

use reqwest::Url;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::error::ComfyError;
use super::types::{History, OutputImage, QueueSnapshot, SystemStats};

/// A cheap-clone client for one ComfyUI backend.
#[derive(Clone, Debug)]
pub struct ComfyClient {
    base: Url,
    http: reqwest::Client,
}

impl ComfyClient {
    pub fn new(base: Url, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self { base, http }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    async fn send(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ComfyError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ComfyError::unreachable(&self.base, &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(ComfyError::Http {
            what,
            status,
            body: body.chars().take(500).collect(),
        })
    }

    async fn json(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, ComfyError> {
        let resp = self.send(what, req).await?;
        resp.json()
            .await
            .map_err(|e| ComfyError::Protocol(format!("{what}: {e}")))
    }

    /// Uploads an input image under a name we chose, into `subfolder`. Returns the reference
    /// LoadImage takes (`subfolder/name`, with the name ComfyUI actually stored).
    pub async fn upload_image(
        &self,
        bytes: Vec<u8>,
        name: &str,
        subfolder: &str,
    ) -> Result<String, ComfyError> {
        let part = Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str("image/png")
            .map_err(|e| ComfyError::Protocol(e.to_string()))?;
        let form = Form::new()
            .part("image", part)
            .text("type", "input")
            .text("subfolder", subfolder.to_string())
            .text("overwrite", "true");
        let v = self
            .json(
                "upload",
                self.http.post(self.url("/upload/image")).multipart(form),
            )
            .await?;
        let stored = v["name"]
            .as_str()
            .ok_or_else(|| ComfyError::Protocol(format!("upload answer without a name: {v}")))?;
        let sub = v["subfolder"].as_str().unwrap_or("");
        Ok(if sub.is_empty() {
            stored.to_string()
        } else {
            format!("{sub}/{stored}")
        })
    }

    /// Queues a graph with our id. A 200 with `node_errors` is a rejection (the valid part would
    /// run alone otherwise); we then remove it from the queue.
    pub async fn queue_prompt(
        &self,
        graph: &Value,
        prompt_id: &str,
        client_id: &str,
    ) -> Result<(), ComfyError> {
        let body = json!({
            "prompt": graph,
            "client_id": client_id,
            "prompt_id": prompt_id,
            "extra_data": {"qwenedit_job": prompt_id},
        });
        let resp = self
            .http
            .post(self.url("/prompt"))
            .json(&body)
            .send()
            .await
            .map_err(|e| ComfyError::unreachable(&self.base, &e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 400 {
            return Err(ComfyError::Rejected(describe_rejection(&v)));
        }
        if !(200..300).contains(&status) {
            return Err(ComfyError::Http {
                what: "prompt",
                status,
                body: text.chars().take(500).collect(),
            });
        }
        let node_errors = v.get("node_errors");
        if node_errors.is_some_and(|e| e.as_object().is_some_and(|o| !o.is_empty())) {
            let _ = self.delete_pending(&[prompt_id.to_string()]).await;
            let _ = self.interrupt(prompt_id).await;
            return Err(ComfyError::Rejected(describe_rejection(&v)));
        }
        Ok(())
    }

    /// The finished run of `prompt_id`, or `None` while queued, running or unknown.
    pub async fn history(&self, prompt_id: &str) -> Result<Option<History>, ComfyError> {
        let v = self
            .json(
                "history",
                self.http.get(self.url(&format!("/history/{prompt_id}"))),
            )
            .await?;
        match v.get(prompt_id) {
            None => Ok(None),
            Some(entry) => serde_json::from_value(entry.clone())
                .map(Some)
                .map_err(|e| ComfyError::Protocol(format!("history: {e}"))),
        }
    }

    /// Downloads one output image.
    pub async fn view(&self, image: &OutputImage) -> Result<Vec<u8>, ComfyError> {
        let req = self.http.get(self.url("/view")).query(&[
            ("filename", image.filename.as_str()),
            ("subfolder", image.subfolder.as_str()),
            ("type", image.kind.as_str()),
        ]);
        match self.send("view", req).await {
            Ok(resp) => resp
                .bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| ComfyError::unreachable(&self.base, &e)),
            Err(ComfyError::Http { status: 404, .. }) => {
                Err(ComfyError::MissingOutput(image.filename.clone()))
            }
            Err(e) => Err(e),
        }
    }

    /// Interrupts `prompt_id` if it is the one running (a no-op otherwise).
    pub async fn interrupt(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.send(
            "interrupt",
            self.http
                .post(self.url("/interrupt"))
                .json(&json!({ "prompt_id": prompt_id })),
        )
        .await
        .map(drop)
    }

    /// Removes pending prompts (running ones are not affected).
    pub async fn delete_pending(&self, prompt_ids: &[String]) -> Result<(), ComfyError> {
        self.send(
            "queue delete",
            self.http
                .post(self.url("/queue"))
                .json(&json!({ "delete": prompt_ids })),
        )
        .await
        .map(drop)
    }

    pub async fn queue(&self) -> Result<QueueSnapshot, ComfyError> {
        let v = self
            .json("queue", self.http.get(self.url("/queue")))
            .await?;
        let ids = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.get(1).and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(QueueSnapshot {
            running: ids("queue_running"),
            pending: ids("queue_pending"),
        })
    }

    pub async fn system_stats(&self) -> Result<SystemStats, ComfyError> {
        let v = self
            .json("system_stats", self.http.get(self.url("/system_stats")))
            .await?;
        serde_json::from_value(v).map_err(|e| ComfyError::Protocol(format!("system_stats: {e}")))
    }

    /// A node class's spec, or `None` when ComfyUI does not know it (it answers `{}`).
    pub async fn object_info(&self, class: &str) -> Result<Option<Value>, ComfyError> {
        let v = self
            .json(
                "object_info",
                self.http.get(self.url(&format!("/object_info/{class}"))),
            )
            .await?;
        Ok(v.get(class).cloned())
    }

    /// The files of a models folder (`diffusion_models`, `loras`, ...).
    pub async fn models(&self, folder: &str) -> Result<Vec<String>, ComfyError> {
        let v = self
            .json(
                "models",
                self.http.get(self.url(&format!("/models/{folder}"))),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The options of a combo input in an `object_info` spec, in either syntax: legacy
/// `[["a","b"], {...}]` or V3 `["COMBO", {"options": [...]}]`.
pub fn combo_options(spec: &Value, input: &str) -> Option<Vec<String>> {
    let def = ["required", "optional"]
        .iter()
        .find_map(|section| spec["input"][section].get(input))?;
    let strings = |v: &Value| -> Option<Vec<String>> {
        Some(
            v.as_array()?
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        )
    };
    match def.get(0)? {
        Value::Array(_) => strings(&def[0]),
        Value::String(t) if t == "COMBO" => strings(&def[1]["options"]),
        _ => None,
    }
}

/// A short description of a `/prompt` rejection for the log (it may contain server paths, so
/// it is never shown to users).
fn describe_rejection(v: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(msg) = v["error"]["message"].as_str() {
        let details = v["error"]["details"].as_str().unwrap_or("");
        parts.push(if details.is_empty() {
            msg.to_string()
        } else {
            format!("{msg} ({details})")
        });
    }
    if let Some(nodes) = v["node_errors"].as_object() {
        for (id, node) in nodes {
            let class = node["class_type"].as_str().unwrap_or("?");
            for e in node["errors"].as_array().into_iter().flatten() {
                let msg = e["message"].as_str().unwrap_or("");
                let details = e["details"].as_str().unwrap_or("");
                parts.push(format!("node {id} ({class}): {msg}: {details}"));
            }
        }
    }
    if parts.is_empty() {
        "no details".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_combo_syntaxes() {
        let legacy =
            json!({"input": {"required": {"vae_name": [["pixel_space", "a.safetensors"]]}}});
        assert_eq!(
            combo_options(&legacy, "vae_name").unwrap(),
            vec!["pixel_space", "a.safetensors"]
        );
        let v3 = json!({"input": {"required": {"upscale_method": ["COMBO", {"options": ["lanczos"], "multiselect": false}]}}});
        assert_eq!(
            combo_options(&v3, "upscale_method").unwrap(),
            vec!["lanczos"]
        );
        assert_eq!(combo_options(&v3, "nope"), None);
    }

    #[test]
    fn describes_rejections_from_the_recordings() {
        let v = json!({"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": ""},
            "node_errors": {"39": {"errors": [{"type": "value_not_in_list", "message": "Value not in list", "details": "vae_name: 'qwen_image_vae.safetensors' not in ['pixel_space']"}], "class_type": "VAELoader"}}});
        assert_eq!(
            describe_rejection(&v),
            "Prompt outputs failed validation; node 39 (VAELoader): Value not in list: vae_name: 'qwen_image_vae.safetensors' not in ['pixel_space']"
        );
    }
}
