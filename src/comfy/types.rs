//! ComfyUI's JSON shapes that the client reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputImage {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    #[serde(rename = "type", default = "output_type")]
    pub kind: String,
}

fn output_type() -> String {
    "output".into()
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct NodeOutput {
    #[serde(default)]
    pub images: Vec<OutputImage>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct HistoryStatus {
    #[serde(default)]
    pub status_str: String,
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub messages: Vec<(String, Value)>,
}

/// One finished prompt in `/history/{id}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct History {
    #[serde(default)]
    pub outputs: BTreeMap<String, NodeOutput>,
    #[serde(default)]
    pub status: HistoryStatus,
}

impl History {
    pub fn succeeded(&self) -> bool {
        self.status.status_str == "success"
    }

    /// The `execution_error` message, if the run failed: (node type, exception type, message).
    pub fn error(&self) -> Option<(String, String, String)> {
        self.status
            .messages
            .iter()
            .find(|(event, _)| event == "execution_error")
            .map(|(_, d)| {
                let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                (s("node_type"), s("exception_type"), s("exception_message"))
            })
    }

    pub fn was_interrupted(&self) -> bool {
        self.status
            .messages
            .iter()
            .any(|(event, _)| event == "execution_interrupted")
    }
}

/// Prompt ids in ComfyUI's queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    pub running: Vec<String>,
    pub pending: Vec<String>,
}

impl QueueSnapshot {
    pub fn contains(&self, prompt_id: &str) -> bool {
        self.running
            .iter()
            .chain(&self.pending)
            .any(|p| p == prompt_id)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Device {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub vram_total: u64,
    #[serde(default)]
    pub vram_free: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct System {
    #[serde(default)]
    pub comfyui_version: String,
    #[serde(default)]
    pub python_version: String,
    #[serde(default)]
    pub pytorch_version: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SystemStats {
    #[serde(default)]
    pub system: System,
    #[serde(default)]
    pub devices: Vec<Device>,
}
