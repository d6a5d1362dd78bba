//! One edit straight through ComfyUI, without Telegram or the stores (`qwenedit edit`).

use std::path::PathBuf;
use std::time::Duration;

use crate::comfy::oneshot::{RunError, run_graph_within, show_duration};
use crate::comfy::{ComfyClient, ComfyError, Patch, Workflow, WorkflowError};
use crate::config::Config;
use crate::media::{Limits, Rejection, normalize};

#[derive(Debug)]
pub struct EditRequest {
    pub images: Vec<PathBuf>,
    pub preset: Option<String>,
    pub prompt: Option<String>,
    /// A workflow file (API format) instead of the preset's or the default one.
    pub workflow_file: Option<PathBuf>,
    pub backend: Option<reqwest::Url>,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("{path}: {rejection}")]
    Rejected { path: String, rejection: Rejection },
    #[error("unknown preset {0:?}; the presets are the .toml files in {1}")]
    UnknownPreset(String, String),
    #[error("unknown workflow {0:?}; the workflows folders have: {1}")]
    UnknownWorkflow(String, String),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error("{0}")]
    Presets(String),
    #[error(
        "the preset {key} takes {takes} {}; {given} given",
        if *takes == 1 { "photo" } else { "photos" }
    )]
    ImageCount {
        key: String,
        takes: u8,
        given: usize,
    },
    #[error("ComfyUI at {url} is not reachable ({message}); is it running?")]
    Down { url: String, message: String },
    #[error(
        "ComfyUI rejected the workflow: {0}\n(`qwenedit doctor` lists missing models and nodes)"
    )]
    Invalid(String),
    #[error("ComfyUI gave no result within {0} (comfyui.job_timeout); the run was interrupted")]
    TimedOut(String),
    #[error("the run was interrupted in ComfyUI")]
    Interrupted,
    /// ComfyUI's own words, on one line.
    #[error("{0}")]
    Comfy(String),
}

impl From<ComfyError> for EditError {
    fn from(e: ComfyError) -> Self {
        match e {
            ComfyError::Unreachable { url, message } => EditError::Down { url, message },
            ComfyError::Rejected(m) => EditError::Invalid(m),
            ComfyError::Interrupted => EditError::Interrupted,
            other => EditError::Comfy(one_line(&other.to_string())),
        }
    }
}

impl From<RunError> for EditError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Comfy(e) => e.into(),
            RunError::TimedOut(after) => EditError::TimedOut(show_duration(after)),
        }
    }
}

/// Python tracebacks and HTTP bodies end in newlines and may span several lines.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub struct EditOutcome {
    pub images: Vec<Vec<u8>>,
    pub backend: String,
    pub workflow: String,
}

/// Checks the inputs, patches the workflow, runs it on one backend and returns the outputs.
pub async fn edit_once(
    config: &Config,
    req: EditRequest,
    progress: impl FnMut(u8),
) -> Result<EditOutcome, EditError> {
    let Resolved {
        workflow,
        prompt,
        takes,
    } = resolve(config, &req)?;
    if let Some((key, takes)) = takes
        && usize::from(takes) != req.images.len()
    {
        return Err(EditError::ImageCount {
            key,
            takes,
            given: req.images.len(),
        });
    }
    let target = config.input_pixels();
    let mut pngs = Vec::new();
    for path in &req.images {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| EditError::Input {
            path: shown.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let limits = Limits::default();
        let normalized = tokio::task::spawn_blocking(move || normalize(&bytes, &limits, target))
            .await
            .map_err(|e| EditError::Input {
                path: shown.clone(),
                message: e.to_string(),
            })?
            .map_err(|rejection| EditError::Rejected {
                path: shown,
                rejection,
            })?;
        pngs.push(normalized.png);
    }
    let url = req
        .backend
        .clone()
        .or_else(|| config.comfyui.backends.first().cloned())
        .ok_or_else(|| EditError::Presets("no ComfyUI backend configured".into()))?;
    let client = ComfyClient::new(url.clone(), Duration::from_secs(120));
    let run_id = format!("cli-{}", ulid::Ulid::new());
    let mut images = Vec::new();
    for (i, png) in pngs.into_iter().enumerate() {
        images.push(
            client
                .upload_image(png, &format!("{run_id}-{}.png", i + 1), "qwenedit")
                .await?,
        );
    }
    let graph = workflow.patch(&Patch {
        images,
        prompt,
        negative: None,
        seed: req.seed,
        output_prefix: format!("qwenedit/{run_id}"),
        models: config.comfyui.models.clone(),
    })?;
    let outputs = run_graph_within(
        &client,
        &graph,
        &run_id,
        workflow.output_node(),
        config.comfyui.job_timeout,
        progress,
    )
    .await?;
    Ok(EditOutcome {
        images: outputs,
        backend: url.to_string(),
        workflow: workflow.name.clone(),
    })
}

/// What an edit request resolves to.
struct Resolved {
    workflow: Workflow,
    prompt: Option<String>,
    /// For a preset: its key and how many photos it takes.
    takes: Option<(String, u8)>,
}

fn resolve(config: &Config, req: &EditRequest) -> Result<Resolved, EditError> {
    let (named, prompt, takes) = match (&req.preset, &req.prompt) {
        (Some(key), _) => {
            let dirs = config.preset_dirs();
            let presets = crate::presets::Presets::load(&dirs)
                .map_err(|e| EditError::Presets(e.to_string()))?;
            let preset = presets.get(key).ok_or_else(|| {
                let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                EditError::UnknownPreset(key.clone(), dirs.join(" and "))
            })?;
            (
                preset.workflow.clone(),
                Some(preset.prompt.clone()),
                Some((preset.key.clone(), preset.images)),
            )
        }
        (None, prompt) => (None, prompt.clone(), None),
    };
    let workflow = match &req.workflow_file {
        Some(path) => Workflow::load(path)?,
        None => {
            let name = named.unwrap_or_else(|| config.comfyui.default_workflow.clone());
            let dirs = config.workflow_dirs();
            let all = crate::comfy::workflow::load_dir(&dirs)?;
            let names = all.keys().cloned().collect::<Vec<_>>().join(", ");
            all.get(&name).cloned().ok_or(EditError::UnknownWorkflow(
                name,
                if names.is_empty() {
                    "none".into()
                } else {
                    names
                },
            ))?
        }
    };
    Ok(Resolved {
        workflow,
        prompt,
        takes,
    })
}
