//! `[comfyui]` as written, and its checks into [`Comfyui`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fields::{positive_duration, resolve, text, url};
use crate::config::{Comfyui, ConfigError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawComfyui {
    backends: Vec<String>,
    workflows_dir: PathBuf,
    extra_workflows_dir: Option<PathBuf>,
    default_workflow: String,
    #[serde(deserialize_with = "text::req")]
    job_timeout: String,
    pipeline_depth: usize,
    #[serde(deserialize_with = "text::opt")]
    diffusion_model: Option<String>,
    #[serde(deserialize_with = "text::opt")]
    text_encoder: Option<String>,
    #[serde(deserialize_with = "text::opt")]
    vae: Option<String>,
    #[serde(deserialize_with = "text::opt")]
    lora: Option<String>,
    steps: Option<u32>,
    cfg: Option<f64>,
    megapixels: Option<f64>,
}

impl Default for RawComfyui {
    fn default() -> Self {
        Self {
            backends: vec!["http://127.0.0.1:8188".into()],
            workflows_dir: "/usr/share/qwenedit/workflows".into(),
            extra_workflows_dir: None,
            default_workflow: "qwen-image-edit-2511".into(),
            job_timeout: "10m".into(),
            pipeline_depth: 2,
            diffusion_model: None,
            text_encoder: None,
            vae: None,
            lora: None,
            steps: None,
            cfg: None,
            megapixels: None,
        }
    }
}

impl RawComfyui {
    pub(super) fn validate(self, base: &Path) -> Result<Comfyui, ConfigError> {
        let backends = self
            .backends
            .iter()
            .map(|b| url("comfyui.backends", b))
            .collect::<Result<Vec<_>, _>>()?;
        if backends.is_empty() {
            return Err(ConfigError::key(
                "comfyui.backends",
                "list at least one ComfyUI URL, e.g. [\"http://127.0.0.1:8188\"]",
            ));
        }
        if !(1..=8).contains(&self.pipeline_depth) {
            return Err(ConfigError::key("comfyui.pipeline_depth", "must be 1 to 8"));
        }
        if self.steps.is_some_and(|s| !(1..=200).contains(&s)) {
            return Err(ConfigError::key("comfyui.steps", "must be 1 to 200"));
        }
        if self.cfg.is_some_and(|v| !(0.0..=30.0).contains(&v)) {
            return Err(ConfigError::key("comfyui.cfg", "must be 0 to 30"));
        }
        if self.megapixels.is_some_and(|v| !(0.1..=16.0).contains(&v)) {
            return Err(ConfigError::key("comfyui.megapixels", "must be 0.1 to 16"));
        }
        if self.default_workflow.trim().is_empty() {
            return Err(ConfigError::key(
                "comfyui.default_workflow",
                "must not be empty",
            ));
        }
        Ok(Comfyui {
            backends,
            workflows_dir: resolve(base, self.workflows_dir),
            extra_workflows_dir: self.extra_workflows_dir.map(|d| resolve(base, d)),
            default_workflow: self.default_workflow,
            job_timeout: positive_duration("comfyui.job_timeout", &self.job_timeout)?,
            pipeline_depth: self.pipeline_depth,
            models: crate::comfy::ModelSettings {
                unet: self.diffusion_model,
                clip: self.text_encoder,
                vae: self.vae,
                lora: self.lora,
                steps: self.steps,
                cfg: self.cfg,
                megapixels: self.megapixels,
            },
        })
    }
}
