//! The watcher's engine over a running service's operator API: upload the image, submit the
//! job under the watcher's own job id (a repeat is harmless), follow it, download the result.
//! Blocking HTTP: call it off the async runtime (the watcher's scans run in `spawn_blocking`).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Engine, EngineError, WATCH_USER};
use crate::domain::{JobId, JobState};
use crate::ops::EditSpec;

pub struct ApiEngine {
    /// `http://host:port/api/v1`
    base: String,
    token: SecretString,
    http: reqwest::blocking::Client,
}

struct Answer {
    status: u16,
    code: String,
    message: String,
    bytes: Vec<u8>,
}

impl ApiEngine {
    pub fn new(base: impl Into<String>, token: SecretString) -> Result<Self, EngineError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| EngineError::Failed(e.to_string()))?;
        Ok(Self {
            base: base.into(),
            token,
            http,
        })
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<Answer, EngineError> {
        let resp = req
            .bearer_auth(self.token.expose_secret())
            .send()
            .map_err(|e| EngineError::Failed(format!("the service did not answer: {e}")))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .map_err(|e| EngineError::Failed(format!("the service's answer broke off: {e}")))?
            .to_vec();
        let (code, message) = if (200..300).contains(&status) {
            (String::new(), String::new())
        } else {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (
                v["code"].as_str().unwrap_or("").to_string(),
                v["message"]
                    .as_str()
                    .map_or_else(|| format!("the service answered {status}"), String::from),
            )
        };
        Ok(Answer {
            status,
            code,
            message,
            bytes,
        })
    }

    fn get(&self, path: &str) -> Result<Answer, EngineError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    fn post(&self, path: &str, body: &Value) -> Result<Answer, EngineError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
    }
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn json(&self) -> Result<Value, EngineError> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| EngineError::Failed(format!("unexpected answer from the service: {e}")))
    }

    /// A refusal for good (4xx other than auth) or a failure to retry.
    fn error(&self) -> EngineError {
        match (self.status, self.code.as_str()) {
            (_, "unauthorized") => EngineError::Failed(format!(
                "the service refused the admin token: {}",
                self.message
            )),
            (_, "unsupported_image" | "payload_too_large") => {
                EngineError::BadImage(self.message.clone())
            }
            (400..=499, c) if c != "rate_limited" && c != "idempotency_in_progress" => {
                EngineError::Refused(self.message.clone())
            }
            _ => EngineError::Failed(self.message.clone()),
        }
    }
}

impl Engine for ApiEngine {
    fn prepare_user(&self, user: Option<i64>) -> Result<i64, EngineError> {
        let a = match user {
            Some(id) => self.get(&format!("/users/{id}"))?,
            None => self.post(
                &format!("/users/{WATCH_USER}/unlimited"),
                &json!({"unlimited": true, "create": true}),
            )?,
        };
        if a.ok() {
            Ok(user.unwrap_or(WATCH_USER))
        } else {
            Err(a.error())
        }
    }

    fn has_preset(&self, key: &str) -> Result<bool, EngineError> {
        let a = self.get("/presets")?;
        if !a.ok() {
            return Err(a.error());
        }
        Ok(a.json()?
            .as_array()
            .is_some_and(|v| v.iter().any(|p| p["key"] == key)))
    }

    fn store_input(&self, bytes: &[u8]) -> Result<String, EngineError> {
        let a = self.send(
            self.http
                .post(format!("{}/inputs", self.base))
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec()),
        )?;
        if !a.ok() {
            return Err(a.error());
        }
        a.json()?["name"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| EngineError::Failed("the service named no input".into()))
    }

    fn submit(&self, job: JobId, spec: EditSpec) -> Result<(), EngineError> {
        let a = self.post(
            "/jobs",
            &json!({
                "job_id": job.to_string(),
                "user": spec.user,
                "preset": spec.preset,
                "prompt": spec.prompt,
                "inputs": spec.inputs,
            }),
        )?;
        if a.ok() { Ok(()) } else { Err(a.error()) }
    }

    fn job(&self, job: JobId) -> Result<Option<(JobState, Option<String>)>, EngineError> {
        let a = self.get(&format!("/jobs/{job}"))?;
        if a.status == 404 && a.code == "unknown_job" {
            return Ok(None);
        }
        if !a.ok() {
            return Err(a.error());
        }
        let v = a.json()?;
        let state = v["state"]
            .as_str()
            .and_then(JobState::parse)
            .ok_or_else(|| EngineError::Failed(format!("unexpected job state {}", v["state"])))?;
        Ok(Some((state, v["last_error"].as_str().map(String::from))))
    }

    fn result(&self, job: JobId) -> Result<Vec<u8>, EngineError> {
        let a = self.get(&format!("/jobs/{job}/result"))?;
        if a.ok() { Ok(a.bytes) } else { Err(a.error()) }
    }

    fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}
