//! Workflows in ComfyUI's API format, with patch points marked by node title
//! (`_meta.title = "qwenedit:<mark>"`), so an operator can build a graph in ComfyUI's UI, set the
//! titles, export it and drop it into `workflows/`.
//!
//! Marks: `image1`..`image3` (LoadImage; `image1` required), `output` (SaveImage; required),
//! `prompt`, `negative`, `seed`, `steps`, `cfg`, `megapixels`, and the model loaders `unet`,
//! `clip`, `vae`, `lora` (all optional). One title may carry several marks
//! (`qwenedit:seed,steps,cfg` on a KSampler), and the value marks (`seed`, `steps`, `cfg`,
//! `megapixels`, model loaders) may stand on several nodes, which all get the value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkflowError {
    #[error("{file}: not valid JSON: {message}")]
    Json { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("workflow {workflow} takes {max} input image(s), the job has {given}")]
    TooManyImages {
        workflow: String,
        max: usize,
        given: usize,
    },
    #[error("workflow {workflow} needs the image `{mark}`: removing it would remove the output")]
    ImageRequired { workflow: String, mark: String },
}

/// Values the operator sets in the config, applied where the workflow has the mark.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSettings {
    pub unet: Option<String>,
    pub clip: Option<String>,
    pub vae: Option<String>,
    /// `Some("")` removes the LoRA node (its consumers are wired to its model input).
    pub lora: Option<String>,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub megapixels: Option<f64>,
}

/// What one job puts into the workflow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patch {
    /// Uploaded image names as ComfyUI's LoadImage takes them (`qwenedit/<name>.png`).
    pub images: Vec<String>,
    pub prompt: Option<String>,
    pub negative: Option<String>,
    pub seed: u64,
    /// Output files are named `<prefix>_00001_.png`.
    pub output_prefix: String,
    pub models: ModelSettings,
}

/// A loaded, validated workflow template.
#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    graph: Map<String, Value>,
    /// mark → node ids
    marks: BTreeMap<String, Vec<String>>,
}

const MARK_PREFIX: &str = "qwenedit:";
/// Marks that must stand on one node only.
const UNIQUE_MARKS: &[&str] = &["image1", "image2", "image3", "output", "prompt", "negative"];
const KNOWN_MARKS: &[&str] = &[
    "image1",
    "image2",
    "image3",
    "output",
    "prompt",
    "negative",
    "seed",
    "steps",
    "cfg",
    "megapixels",
    "unet",
    "clip",
    "vae",
    "lora",
];
/// Which input each mark writes, in order of preference.
const MARK_INPUTS: &[(&str, &[&str])] = &[
    ("image1", &["image"]),
    ("image2", &["image"]),
    ("image3", &["image"]),
    ("output", &["filename_prefix"]),
    ("prompt", &["prompt", "text", "value"]),
    ("negative", &["prompt", "text", "value"]),
    ("seed", &["seed", "noise_seed", "value"]),
    ("steps", &["steps", "value"]),
    ("cfg", &["cfg", "value"]),
    ("megapixels", &["megapixels", "value"]),
    ("unet", &["unet_name", "ckpt_name"]),
    ("clip", &["clip_name"]),
    ("vae", &["vae_name"]),
    ("lora", &["lora_name"]),
];

fn link_target(v: &Value) -> Option<&str> {
    match v.as_array()?.as_slice() {
        [Value::String(node), Value::Number(_)] => Some(node),
        _ => None,
    }
}

impl Workflow {
    pub fn load(path: &Path) -> Result<Self, WorkflowError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WorkflowError::Invalid {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("workflow")
            .to_string();
        Self::parse(&name, &file, &text)
    }

    /// Parses and validates API-format JSON. `file` names it in errors.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<Self, WorkflowError> {
        let invalid = |message: String| WorkflowError::Invalid {
            file: file.to_string(),
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| WorkflowError::Json {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let Value::Object(graph) = value else {
            return Err(invalid("the top level must be an object of nodes (API format; in ComfyUI use \"Export (API)\")".into()));
        };
        if graph.contains_key("nodes") && graph.contains_key("links") {
            return Err(invalid(
                "this is ComfyUI's UI format; export the workflow with \"Export (API)\"".into(),
            ));
        }
        let mut marks = BTreeMap::new();
        for (id, node) in &graph {
            let class = node.get("class_type").and_then(Value::as_str);
            if class.is_none_or(str::is_empty) {
                return Err(invalid(format!("node {id} has no class_type")));
            }
            let Some(inputs) = node.get("inputs").and_then(Value::as_object) else {
                return Err(invalid(format!("node {id} has no inputs object")));
            };
            for (input, v) in inputs {
                if let Some(target) = link_target(v)
                    && !graph.contains_key(target)
                {
                    return Err(invalid(format!(
                        "node {id} input `{input}` links to node {target}, which does not exist"
                    )));
                }
            }
            let title = node
                .get("_meta")
                .and_then(|m| m.get("title"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(list) = title.strip_prefix(MARK_PREFIX) else {
                continue;
            };
            for mark in list.split(',').map(str::trim) {
                if !KNOWN_MARKS.contains(&mark) {
                    return Err(invalid(format!(
                        "node {id} has the unknown mark `{MARK_PREFIX}{mark}`; known: {}",
                        KNOWN_MARKS.join(", ")
                    )));
                }
                let nodes: &mut Vec<String> = marks.entry(mark.to_string()).or_default();
                if UNIQUE_MARKS.contains(&mark)
                    && let Some(other) = nodes.first()
                {
                    return Err(invalid(format!(
                        "the mark `{MARK_PREFIX}{mark}` is on two nodes ({other} and {id})"
                    )));
                }
                nodes.push(id.clone());
            }
        }
        for required in ["image1", "output"] {
            if !marks.contains_key(required) {
                return Err(invalid(format!(
                    "no node is titled `{MARK_PREFIX}{required}`"
                )));
            }
        }
        if marks.contains_key("image3") && !marks.contains_key("image2") {
            return Err(invalid(
                "`qwenedit:image3` without `qwenedit:image2`".into(),
            ));
        }
        let wf = Self {
            name: name.to_string(),
            graph,
            marks,
        };
        for (mark, _) in MARK_INPUTS {
            wf.mark_inputs(mark).map_err(invalid)?;
        }
        Ok(wf)
    }

    /// The (node, input) pairs a mark writes to.
    fn mark_inputs(&self, mark: &str) -> Result<Vec<(String, String)>, String> {
        let candidates = MARK_INPUTS
            .iter()
            .find(|(m, _)| *m == mark)
            .map(|(_, c)| *c)
            .unwrap_or(&[]);
        let mut out = Vec::new();
        for id in self.marks.get(mark).into_iter().flatten() {
            let inputs = self.graph[id]["inputs"].as_object();
            let input = candidates
                .iter()
                .find(|c| inputs.is_some_and(|i| i.contains_key(**c)))
                .ok_or_else(|| {
                    format!(
                        "node {id} (`{MARK_PREFIX}{mark}`) has none of the inputs {}",
                        candidates.join(", ")
                    )
                })?;
            out.push((id.clone(), input.to_string()));
        }
        Ok(out)
    }

    fn mark_node(&self, mark: &str) -> Option<&str> {
        self.marks.get(mark)?.first().map(String::as_str)
    }

    /// How many input images the workflow takes (1 to 3).
    pub fn image_slots(&self) -> usize {
        (1..=3)
            .take_while(|i| self.marks.contains_key(&format!("image{i}")))
            .count()
    }

    pub fn has_mark(&self, mark: &str) -> bool {
        self.marks.contains_key(mark)
    }

    /// The node whose images are the result.
    pub fn output_node(&self) -> &str {
        self.mark_node("output").unwrap_or_default()
    }

    /// Every node class the workflow uses.
    pub fn node_types(&self) -> BTreeSet<String> {
        self.graph
            .values()
            .filter_map(|n| n["class_type"].as_str().map(str::to_string))
            .collect()
    }

    /// (class, input, file) for every model-file input of the template.
    pub fn model_files(&self) -> Vec<(String, String, String)> {
        model_files_in(&Value::Object(self.graph.clone()))
    }

    /// The graph for one job, ready for `/prompt`.
    pub fn patch(&self, p: &Patch) -> Result<Value, WorkflowError> {
        let slots = self.image_slots();
        if p.images.is_empty() || p.images.len() > slots {
            return Err(WorkflowError::TooManyImages {
                workflow: self.name.clone(),
                max: slots,
                given: p.images.len(),
            });
        }
        let mut graph = self.graph.clone();
        let mut set = |mark: &str, value: Value| {
            for (id, input) in self.mark_inputs(mark).unwrap_or_default() {
                if let Some(inputs) = graph.get_mut(&id).and_then(|n| n["inputs"].as_object_mut()) {
                    inputs.insert(input, value.clone());
                }
            }
        };
        for (i, image) in p.images.iter().enumerate() {
            set(&format!("image{}", i + 1), Value::from(image.clone()));
        }
        if let Some(prompt) = &p.prompt {
            if !self.has_mark("prompt") {
                tracing::warn!(workflow = %self.name, "the job has a prompt but the workflow has no `qwenedit:prompt` node; running without it");
            }
            set("prompt", Value::from(prompt.clone()));
        }
        if let Some(negative) = &p.negative {
            set("negative", Value::from(negative.clone()));
        }
        set("seed", Value::from(p.seed));
        set("output", Value::from(p.output_prefix.clone()));
        let m = &p.models;
        if let Some(v) = m.steps {
            set("steps", Value::from(v));
        }
        if let Some(v) = m.cfg {
            set("cfg", Value::from(v));
        }
        if let Some(v) = m.megapixels {
            set("megapixels", Value::from(v));
        }
        for (mark, value) in [("unet", &m.unet), ("clip", &m.clip), ("vae", &m.vae)] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                set(mark, Value::from(v.clone()));
            }
        }
        match m.lora.as_deref() {
            Some("") => {
                for id in self.marks.get("lora").into_iter().flatten() {
                    bypass(&mut graph, id);
                }
            }
            Some(v) => set("lora", Value::from(v)),
            None => {}
        }
        for i in (p.images.len() + 1)..=3 {
            let mark = format!("image{i}");
            if let Some(id) = self.mark_node(&mark) {
                remove_cascade(&mut graph, id);
                if !graph.contains_key(self.output_node()) {
                    return Err(WorkflowError::ImageRequired {
                        workflow: self.name.clone(),
                        mark,
                    });
                }
            }
        }
        Ok(Value::Object(graph))
    }
}

/// (class, input, file) for every model-file input (`*_name` inputs holding a file name) of a
/// graph in API format.
pub fn model_files_in(graph: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for node in graph.as_object().into_iter().flat_map(|g| g.values()) {
        let class = node["class_type"].as_str().unwrap_or_default();
        if let Some(inputs) = node["inputs"].as_object() {
            for (input, v) in inputs {
                if let Some(file) = v.as_str()
                    && input.ends_with("_name")
                    && file.contains('.')
                {
                    out.push((class.to_string(), input.clone(), file.to_string()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The folder under ComfyUI's `models/` where a loader input's files live.
pub fn models_folder(input: &str) -> &'static str {
    match input {
        "unet_name" => "diffusion_models",
        "clip_name" => "text_encoders",
        "vae_name" => "vae",
        "lora_name" => "loras",
        "ckpt_name" => "checkpoints",
        "control_net_name" => "controlnet",
        "upscale_model_name" | "model_name" => "upscale_models",
        _ => "(see the node's documentation)",
    }
}

/// Node classes whose `image2`/`image3` inputs are optional (Qwen-Image-Edit's encoders).
const OPTIONAL_EXTRA_IMAGES: &[&str] = &["TextEncodeQwenImageEditPlus"];

/// Removes a node and, through its links, whatever cannot run without it: an optional
/// `image2`/`image3` input of a Qwen encoder is just dropped; any other consumer is removed in
/// turn.
fn remove_cascade(graph: &mut Map<String, Value>, id: &str) {
    let mut doomed = vec![id.to_string()];
    while let Some(id) = doomed.pop() {
        if graph.remove(&id).is_none() {
            continue;
        }
        for (other, node) in graph.iter_mut() {
            let optional_images = node["class_type"]
                .as_str()
                .is_some_and(|c| OPTIONAL_EXTRA_IMAGES.contains(&c));
            let Some(inputs) = node["inputs"].as_object_mut() else {
                continue;
            };
            let linked: Vec<String> = inputs
                .iter()
                .filter(|(_, v)| link_target(v) == Some(id.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            for input in linked {
                if optional_images && matches!(input.as_str(), "image2" | "image3") {
                    inputs.remove(&input);
                } else {
                    doomed.push(other.clone());
                }
            }
        }
    }
}

/// Removes a pass-through LoRA loader, wiring each consumer of its output N to what fed its
/// N-th pass-through input (`model`, then `clip`: LoraLoader has both outputs,
/// LoraLoaderModelOnly only the first).
fn bypass(graph: &mut Map<String, Value>, id: &str) {
    let Some(node) = graph.get(id) else {
        return;
    };
    let sources: Vec<Option<Value>> = ["model", "clip"]
        .iter()
        .map(|input| node["inputs"].get(*input).cloned())
        .collect();
    graph.remove(id);
    for node in graph.values_mut() {
        if let Some(inputs) = node["inputs"].as_object_mut() {
            for v in inputs.values_mut() {
                if link_target(v) == Some(id) {
                    let output = v[1].as_u64().unwrap_or(0) as usize;
                    if let Some(Some(source)) = sources.get(output) {
                        *v = source.clone();
                    }
                }
            }
        }
    }
}

/// All workflows in a folder, by file stem; a later folder's file overrides an earlier one's.
pub fn load_dir(dirs: &[&Path]) -> Result<BTreeMap<String, Workflow>, WorkflowError> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let wf = Workflow::load(&path)?;
            out.insert(wf.name.clone(), wf);
        }
    }
    Ok(out)
}
