//! Workflow templates (`qwenedit::comfy::workflow`): the shipped Qwen-Image-Edit graph patched for
//! 1, 2 and 3 images and without its LoRA (snapshotted, and checked structurally: unused image
//! branches gone, every link resolving, the second image wired into both encoders as in
//! comfyui.md §9), an operator's own workflow, every load-time validation error (messages
//! snapshotted), patch errors, folder overrides and the model/node inventory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use qwenedit::comfy::workflow::load_dir;
use qwenedit::comfy::{ModelSettings, Patch, Workflow, WorkflowError};
use serde_json::{Value, json};

const SHIPPED: &str = "qwen-image-edit-2511";

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("workflows/{SHIPPED}.json"))
}

fn shipped() -> Workflow {
    Workflow::load(&shipped_path()).expect("the shipped workflow loads")
}

fn shipped_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(shipped_path()).unwrap()).unwrap()
}

fn models() -> ModelSettings {
    ModelSettings {
        unet: Some("qwen_image_edit_2511_bf16.safetensors".into()),
        clip: Some("qwen_2.5_vl_7b.safetensors".into()),
        vae: Some("qwen_image_vae_v2.safetensors".into()),
        lora: Some("Qwen-Image-Edit-2511-Lightning-8steps-V1.0-bf16.safetensors".into()),
        steps: Some(8),
        cfg: Some(2.5),
        megapixels: Some(1.5),
    }
}

/// A job with `n` images, as a worker builds it.
fn job(n: usize) -> Patch {
    Patch {
        images: (1..=n)
            .map(|i| format!("qwenedit/01JQ5ZK3V7XKC9Q0T8M2Y4B6DE_{i}.png"))
            .collect(),
        prompt: Some("put a red knitted hat on the cat".into()),
        negative: Some("blurry, watermark".into()),
        seed: 18_446_744_073_709_551_615,
        output_prefix: "qwenedit/01JQ5ZK3V7XKC9Q0T8M2Y4B6DE".into(),
        models: models(),
    }
}

fn node<'a>(graph: &'a Value, id: &str) -> &'a Value {
    graph
        .get(id)
        .unwrap_or_else(|| panic!("node {id} is missing"))
}

fn inputs<'a>(graph: &'a Value, id: &str) -> &'a serde_json::Map<String, Value> {
    node(graph, id)["inputs"].as_object().unwrap()
}

fn ids(graph: &Value) -> BTreeSet<&str> {
    graph
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// A link is `["<node id>", <output index>]`.
fn link_target(v: &Value) -> Option<&str> {
    match v.as_array()?.as_slice() {
        [Value::String(id), Value::Number(_)] => Some(id),
        _ => None,
    }
}

/// Every link in `graph` points at a node that exists; returns the links (node, input, target).
#[track_caller]
fn assert_links_resolve(graph: &Value) -> Vec<(String, String, String)> {
    let nodes = graph.as_object().expect("a graph is an object of nodes");
    let mut links = Vec::new();
    let mut dangling = Vec::new();
    for (id, n) in nodes {
        assert!(n["class_type"].is_string(), "node {id} has no class_type");
        for (input, v) in n["inputs"].as_object().expect("inputs") {
            if let Some(target) = link_target(v) {
                if !nodes.contains_key(target) {
                    dangling.push(format!("{id}.{input} -> {target}"));
                }
                links.push((id.clone(), input.clone(), target.to_string()));
            }
        }
    }
    assert!(dangling.is_empty(), "links to removed nodes: {dangling:?}");
    links
}

/// The nodes whose output reaches `output` (and `output` itself).
fn feeding(graph: &Value, output: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![output.to_string()];
    while let Some(id) = todo.pop() {
        if seen.insert(id.clone()) {
            for v in inputs(graph, &id).values() {
                todo.extend(link_target(v).map(str::to_string));
            }
        }
    }
    seen
}

/// What every patched shipped graph must hold, whatever the number of images.
#[track_caller]
fn assert_common_patch(graph: &Value, p: &Patch) {
    assert_links_resolve(graph);
    assert_eq!(inputs(graph, "78")["image"], json!(p.images[0]));
    assert_eq!(
        inputs(graph, "111")["prompt"],
        json!(p.prompt.as_deref().unwrap())
    );
    assert_eq!(
        inputs(graph, "110")["prompt"],
        json!(p.negative.as_deref().unwrap())
    );
    let sampler = inputs(graph, "3");
    assert_eq!(sampler["seed"], json!(p.seed));
    assert_eq!(sampler["steps"], json!(8));
    assert_eq!(sampler["cfg"], json!(2.5));
    assert_eq!(sampler["sampler_name"], json!("euler"), "untouched");
    assert_eq!(
        inputs(graph, "60")["filename_prefix"],
        json!(p.output_prefix)
    );
    assert_eq!(inputs(graph, "93")["megapixels"], json!(1.5));
    assert_eq!(
        inputs(graph, "37")["unet_name"],
        json!("qwen_image_edit_2511_bf16.safetensors")
    );
    assert_eq!(inputs(graph, "37")["weight_dtype"], json!("default"));
    assert_eq!(
        inputs(graph, "38")["clip_name"],
        json!("qwen_2.5_vl_7b.safetensors")
    );
    assert_eq!(
        inputs(graph, "39")["vae_name"],
        json!("qwen_image_vae_v2.safetensors")
    );
    // Everything left still feeds the output: nothing dangles, nothing runs for nothing.
    assert_eq!(
        feeding(graph, "60"),
        ids(graph).into_iter().map(str::to_string).collect()
    );
}

// ---------------------------------------------------------------------------------------------
// The shipped workflow

#[test]
fn the_shipped_workflow_takes_three_images() {
    let wf = shipped();
    assert_eq!(wf.name, SHIPPED);
    assert_eq!(wf.image_slots(), 3);
    assert_eq!(wf.output_node(), "60");
    for mark in [
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
    ] {
        assert!(wf.has_mark(mark), "{mark}");
    }
    assert!(!wf.has_mark("nonsense"));
    assert_links_resolve(&shipped_json());
}

#[test]
fn one_image_removes_the_other_loaders_and_their_scalers() {
    let p = job(1);
    let graph = shipped().patch(&p).unwrap();
    insta::assert_json_snapshot!("shipped_1_image", graph);

    assert_common_patch(&graph, &p);
    for gone in ["79", "94", "80", "95"] {
        assert!(graph.get(gone).is_none(), "node {gone} must be removed");
    }
    for encoder in ["111", "110"] {
        let i = inputs(&graph, encoder);
        assert_eq!(i["image1"], json!(["93", 0]));
        assert!(!i.contains_key("image2"), "{encoder} still has image2");
        assert!(!i.contains_key("image3"), "{encoder} still has image3");
        assert_eq!(i["clip"], json!(["38", 0]));
        assert_eq!(i["vae"], json!(["39", 0]));
    }
    let load_images = graph
        .as_object()
        .unwrap()
        .values()
        .filter(|n| n["class_type"] == "LoadImage")
        .count();
    assert_eq!(load_images, 1);
}

#[test]
fn two_images_wire_the_second_into_both_encoders() {
    let p = job(2);
    let graph = shipped().patch(&p).unwrap();
    insta::assert_json_snapshot!("shipped_2_images", graph);

    assert_common_patch(&graph, &p);
    assert!(graph.get("80").is_none() && graph.get("95").is_none());
    assert_eq!(inputs(&graph, "79")["image"], json!(p.images[1]));
    assert_eq!(inputs(&graph, "94")["image"], json!(["79", 0]));
    assert_eq!(inputs(&graph, "94")["megapixels"], json!(1.5));
    for encoder in ["111", "110"] {
        let i = inputs(&graph, encoder);
        assert_eq!(i["image1"], json!(["93", 0]), "{encoder}");
        assert_eq!(i["image2"], json!(["94", 0]), "{encoder}");
        assert!(!i.contains_key("image3"), "{encoder} still has image3");
    }
}

#[test]
fn three_images_keep_the_whole_graph() {
    let p = job(3);
    let graph = shipped().patch(&p).unwrap();
    insta::assert_json_snapshot!("shipped_3_images", graph);

    assert_common_patch(&graph, &p);
    assert_eq!(ids(&graph), ids(&shipped_json()));
    assert_eq!(inputs(&graph, "79")["image"], json!(p.images[1]));
    assert_eq!(inputs(&graph, "80")["image"], json!(p.images[2]));
    for scaler in ["93", "94", "95"] {
        assert_eq!(inputs(&graph, scaler)["megapixels"], json!(1.5));
    }
    for encoder in ["111", "110"] {
        let i = inputs(&graph, encoder);
        assert_eq!(
            (&i["image1"], &i["image2"], &i["image3"]),
            (&json!(["93", 0]), &json!(["94", 0]), &json!(["95", 0]))
        );
    }
    assert_eq!(
        inputs(&graph, "89")["lora_name"],
        json!("Qwen-Image-Edit-2511-Lightning-8steps-V1.0-bf16.safetensors")
    );
    // The seed is written exactly, even beyond 2^53.
    assert!(
        serde_json::to_string(&graph)
            .unwrap()
            .contains("\"seed\":18446744073709551615")
    );
}

#[test]
fn an_empty_lora_removes_the_lora_and_wires_its_consumer_to_the_unet() {
    let mut p = job(1);
    p.models.lora = Some(String::new());
    let graph = shipped().patch(&p).unwrap();
    insta::assert_json_snapshot!("shipped_1_image_without_lora", graph);

    assert_common_patch(&graph, &p);
    assert!(graph.get("89").is_none(), "the LoRA node must be removed");
    assert_eq!(inputs(&graph, "66")["model"], json!(["37", 0]));
    assert!(
        !graph
            .as_object()
            .unwrap()
            .values()
            .any(|n| n["class_type"] == "LoraLoaderModelOnly")
    );
}

#[test]
fn unset_model_settings_leave_the_template_values() {
    let p = Patch {
        models: ModelSettings {
            unet: Some(String::new()),
            ..ModelSettings::default()
        },
        prompt: None,
        negative: None,
        ..job(3)
    };
    let graph = shipped().patch(&p).unwrap();
    let template = shipped_json();
    for (id, input) in [
        ("37", "unet_name"),
        ("38", "clip_name"),
        ("39", "vae_name"),
        ("89", "lora_name"),
        ("3", "steps"),
        ("3", "cfg"),
        ("93", "megapixels"),
        ("111", "prompt"),
        ("110", "prompt"),
    ] {
        assert_eq!(
            inputs(&graph, id)[input],
            template[id]["inputs"][input],
            "{id}.{input}"
        );
    }
    assert_eq!(inputs(&graph, "3")["seed"], json!(p.seed));
}

#[test]
fn patching_does_not_change_the_template() {
    let wf = shipped();
    let one = wf.patch(&job(1)).unwrap();
    let three = wf.patch(&job(3)).unwrap();
    assert_eq!(ids(&three), ids(&shipped_json()));
    assert!(ids(&one).len() < ids(&three).len());
    assert_eq!(wf.patch(&job(1)).unwrap(), one, "patching is deterministic");
}

#[test]
fn too_many_or_no_images_are_refused() {
    let wf = shipped();
    let err = wf.patch(&job(4)).unwrap_err();
    assert_eq!(
        err,
        WorkflowError::TooManyImages {
            workflow: SHIPPED.into(),
            max: 3,
            given: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "workflow qwen-image-edit-2511 takes 3 input image(s), the job has 4"
    );
    assert_eq!(
        wf.patch(&job(0)).unwrap_err(),
        WorkflowError::TooManyImages {
            workflow: SHIPPED.into(),
            max: 3,
            given: 0
        }
    );
    let custom =
        Workflow::parse("invert", "invert.json", &operator_workflow().to_string()).unwrap();
    assert_eq!(
        custom.patch(&job(2)).unwrap_err(),
        WorkflowError::TooManyImages {
            workflow: "invert".into(),
            max: 1,
            given: 2
        }
    );
}

#[test]
fn the_shipped_node_types_and_model_files() {
    let wf = shipped();
    let types: Vec<String> = wf.node_types().into_iter().collect();
    assert_eq!(
        types,
        [
            "CFGNorm",
            "CLIPLoader",
            "ImageScaleToTotalPixels",
            "KSampler",
            "LoadImage",
            "LoraLoaderModelOnly",
            "ModelSamplingAuraFlow",
            "SaveImage",
            "TextEncodeQwenImageEditPlus",
            "UNETLoader",
            "VAEDecode",
            "VAEEncode",
            "VAELoader",
        ]
    );
    let files = wf.model_files();
    let files: Vec<(&str, &str, &str)> = files
        .iter()
        .map(|(c, i, f)| (c.as_str(), i.as_str(), f.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            (
                "CLIPLoader",
                "clip_name",
                "qwen_2.5_vl_7b_fp8_scaled.safetensors"
            ),
            (
                "LoraLoaderModelOnly",
                "lora_name",
                "Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors"
            ),
            (
                "UNETLoader",
                "unet_name",
                "qwen_image_edit_2511_fp8mixed.safetensors"
            ),
            ("VAELoader", "vae_name", "qwen_image_vae.safetensors"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// An operator's own workflow

/// What an operator exports from ComfyUI with "Export (API)" after titling the nodes: an
/// inverted photo, a text encoder for the prompt and a seed primitive.
fn operator_workflow() -> Value {
    json!({
        "4": {
            "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
            "class_type": "CheckpointLoaderSimple",
            "_meta": {"title": "qwenedit:unet"}
        },
        "10": {
            "inputs": {"image": "example.png", "upload": "image"},
            "class_type": "LoadImage",
            "_meta": {"title": "qwenedit:image1"}
        },
        "11": {
            "inputs": {"image": ["10", 0]},
            "class_type": "ImageInvert",
            "_meta": {"title": "Invert Image"}
        },
        "12": {
            "inputs": {"filename_prefix": "ComfyUI", "images": ["11", 0]},
            "class_type": "SaveImage",
            "_meta": {"title": "qwenedit:output"}
        },
        "20": {
            "inputs": {"text": "a photo", "clip": ["4", 1]},
            "class_type": "CLIPTextEncode",
            "_meta": {"title": "qwenedit:prompt"}
        },
        "21": {
            "inputs": {"value": 42},
            "class_type": "PrimitiveInt",
            "_meta": {"title": "qwenedit:seed"}
        }
    })
}

#[test]
fn an_operator_workflow_is_patched_where_it_is_marked() {
    let wf = Workflow::parse("invert", "invert.json", &operator_workflow().to_string()).unwrap();
    assert_eq!(wf.image_slots(), 1);
    assert_eq!(wf.output_node(), "12");
    assert_eq!(
        wf.node_types().into_iter().collect::<Vec<_>>(),
        [
            "CLIPTextEncode",
            "CheckpointLoaderSimple",
            "ImageInvert",
            "LoadImage",
            "PrimitiveInt",
            "SaveImage"
        ]
    );
    assert_eq!(
        wf.model_files(),
        [(
            "CheckpointLoaderSimple".to_string(),
            "ckpt_name".to_string(),
            "sd_xl_base_1.0.safetensors".to_string()
        )]
    );

    let p = Patch {
        images: vec!["qwenedit/01JQ60AAAAAAAAAAAAAAAAAAAA_1.png".into()],
        prompt: Some("make it look like a negative".into()),
        negative: Some("ignored: no node is marked".into()),
        seed: 7,
        output_prefix: "qwenedit/01JQ60AAAAAAAAAAAAAAAAAAAA".into(),
        models: models(),
    };
    let graph = wf.patch(&p).unwrap();
    insta::assert_json_snapshot!("operator_invert", graph);

    assert_links_resolve(&graph);
    assert_eq!(ids(&graph), ids(&operator_workflow()));
    assert_eq!(inputs(&graph, "10")["image"], json!(p.images[0]));
    assert_eq!(inputs(&graph, "10")["upload"], json!("image"));
    assert_eq!(
        inputs(&graph, "12")["filename_prefix"],
        json!(p.output_prefix)
    );
    assert_eq!(inputs(&graph, "20")["text"], json!(p.prompt.unwrap()));
    assert_eq!(inputs(&graph, "21")["value"], json!(7));
    assert_eq!(
        inputs(&graph, "4")["ckpt_name"],
        json!("qwen_image_edit_2511_bf16.safetensors"),
        "`unet` falls back to a checkpoint loader's ckpt_name"
    );
    let text = graph.to_string();
    assert!(!text.contains("ignored: no node is marked"));
    assert!(!text.contains("Lightning"), "no LoRA node, no LoRA name");
}

#[test]
fn one_title_may_carry_several_marks_and_value_marks_several_nodes() {
    let mut g = operator_workflow();
    g["22"] = json!({
        "inputs": {"noise_seed": 0, "steps": 20, "cfg": 7.0, "other": 1},
        "class_type": "KSamplerAdvanced",
        "_meta": {"title": "qwenedit:seed, steps ,cfg"}
    });
    let wf = Workflow::parse("multi", "multi.json", &g.to_string()).unwrap();
    let p = Patch {
        models: ModelSettings {
            steps: Some(30),
            cfg: Some(4.0),
            ..ModelSettings::default()
        },
        ..job(1)
    };
    let graph = wf.patch(&p).unwrap();
    // `seed` stands on two nodes; both get it, each through its own input.
    assert_eq!(inputs(&graph, "21")["value"], json!(p.seed));
    let sampler = inputs(&graph, "22");
    assert_eq!(
        (&sampler["noise_seed"], &sampler["steps"], &sampler["cfg"]),
        (&json!(p.seed), &json!(30), &json!(4.0))
    );
    assert_eq!(sampler["other"], json!(1));
}

#[test]
fn an_image_that_feeds_the_output_directly_is_required() {
    let g = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"},
              "_meta": {"title": "qwenedit:image1"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "b.png"},
              "_meta": {"title": "qwenedit:image2"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"},
              "_meta": {"title": "qwenedit:output"}}
    });
    let wf = Workflow::parse("second", "second.json", &g.to_string()).unwrap();
    assert_eq!(wf.image_slots(), 2);
    let err = wf.patch(&job(1)).unwrap_err();
    assert_eq!(
        err,
        WorkflowError::ImageRequired {
            workflow: "second".into(),
            mark: "image2".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "workflow second needs the image `image2`: removing it would remove the output"
    );
    // With both images it is fine.
    let graph = wf.patch(&job(2)).unwrap();
    assert_links_resolve(&graph);
    assert_eq!(inputs(&graph, "2")["image"], json!(job(2).images[1]));
}

#[test]
fn an_image_behind_a_required_input_is_required_too() {
    // image2 → scale → VAEEncode (its `pixels` is not optional) → ... → output.
    let mut g = shipped_json();
    g["88"]["inputs"]["pixels"] = json!(["94", 0]);
    let wf = Workflow::parse("latent2", "latent2.json", &g.to_string()).unwrap();
    assert!(matches!(
        wf.patch(&job(1)),
        Err(WorkflowError::ImageRequired { mark, .. }) if mark == "image2"
    ));
    assert_links_resolve(&wf.patch(&job(2)).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Validation at load

/// A workflow file as an operator might get it wrong.
struct Broken {
    case: &'static str,
    text: String,
}

fn broken(case: &'static str, graph: Value) -> Broken {
    Broken {
        case,
        text: serde_json::to_string_pretty(&graph).unwrap(),
    }
}

fn broken_workflows() -> Vec<Broken> {
    let ok = operator_workflow();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut g = ok.clone();
        f(&mut g);
        g
    };
    vec![
        broken(
            "UI-format export",
            json!({
                "last_node_id": 12,
                "last_link_id": 11,
                "nodes": [{"id": 10, "type": "LoadImage", "title": "qwenedit:image1",
                           "widgets_values": ["example.png", "image"]}],
                "links": [[11, 10, 0, 11, 0, "IMAGE"]],
                "groups": [],
                "version": 0.4
            }),
        ),
        broken("a list instead of an object", json!([ok.clone()])),
        broken(
            "no qwenedit:image1",
            with(&|g| g["10"]["_meta"]["title"] = json!("Load Image")),
        ),
        broken(
            "no qwenedit:output",
            with(&|g| {
                g["12"]["_meta"].as_object_mut().unwrap().remove("title");
            }),
        ),
        broken(
            "unknown mark",
            with(&|g| g["21"]["_meta"]["title"] = json!("qwenedit:seed,sampler")),
        ),
        broken(
            "misspelt mark",
            with(&|g| g["10"]["_meta"]["title"] = json!("qwenedit:image_1")),
        ),
        broken(
            "empty mark",
            with(&|g| g["11"]["_meta"]["title"] = json!("qwenedit:")),
        ),
        broken(
            "a mark on two nodes",
            with(&|g| {
                g["30"] = json!({"inputs": {"text": "", "clip": ["4", 1]},
                    "class_type": "CLIPTextEncode", "_meta": {"title": "qwenedit:prompt"}});
            }),
        ),
        broken(
            "prompt mark on a node without prompt/text/value",
            with(&|g| {
                g["20"]["_meta"]["title"] = json!("CLIP Text Encode (Prompt)");
                g["11"]["_meta"]["title"] = json!("qwenedit:prompt");
            }),
        ),
        broken(
            "output mark on a node without filename_prefix",
            with(&|g| {
                g["12"]["class_type"] = json!("PreviewImage");
                g["12"]["inputs"]
                    .as_object_mut()
                    .unwrap()
                    .remove("filename_prefix");
            }),
        ),
        broken(
            "a link to a missing node",
            with(&|g| g["11"]["inputs"]["image"] = json!(["99", 0])),
        ),
        broken(
            "a node without class_type",
            with(&|g| {
                g["11"].as_object_mut().unwrap().remove("class_type");
            }),
        ),
        broken(
            "an empty class_type",
            with(&|g| g["11"]["class_type"] = json!("")),
        ),
        broken(
            "a node without inputs",
            with(&|g| {
                g["11"].as_object_mut().unwrap().remove("inputs");
            }),
        ),
        broken(
            "qwenedit:image3 without image2",
            with(&|g| {
                g["13"] = json!({"inputs": {"image": "c.png"}, "class_type": "LoadImage",
                    "_meta": {"title": "qwenedit:image3"}});
            }),
        ),
        Broken {
            case: "not JSON (cut short)",
            text: {
                let t = serde_json::to_string_pretty(&ok).unwrap();
                t[..t.len() / 2].to_string()
            },
        },
        Broken {
            case: "not JSON (a Python dict)",
            text: "{'1': {'class_type': 'LoadImage'}}".into(),
        },
    ]
}

#[test]
fn broken_workflows_are_refused_at_load_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut transcript = String::new();
    for (i, b) in broken_workflows().into_iter().enumerate() {
        let path = dir.path().join(format!("broken-{i:02}.json"));
        std::fs::write(&path, &b.text).unwrap();
        let err = Workflow::load(&path).expect_err(b.case);
        let file = match &err {
            WorkflowError::Json { file, .. } | WorkflowError::Invalid { file, .. } => file,
            other => panic!("{}: unexpected {other:?}", b.case),
        };
        assert_eq!(file, &path.display().to_string(), "{}", b.case);
        let message = err.to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{}: {message}",
            b.case
        );
        let shown = message.replace(&dir.path().display().to_string(), "<dir>");
        transcript.push_str(&format!("{}\n  {shown}\n", b.case));
    }
    let missing = dir.path().join("missing.json");
    let err = Workflow::load(&missing).unwrap_err();
    let shown = err
        .to_string()
        .replace(&dir.path().display().to_string(), "<dir>");
    transcript.push_str(&format!("a missing file\n  {shown}\n"));
    insta::assert_snapshot!("load_errors", transcript);
}

#[test]
fn parse_names_the_given_file_in_errors() {
    let err = Workflow::parse("x", "/usr/share/qwenedit/workflows/x.json", "{}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/usr/share/qwenedit/workflows/x.json: no node is titled `qwenedit:image1`"
    );
}

// ---------------------------------------------------------------------------------------------
// Folders

fn write(dir: &Path, name: &str, graph: &Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(graph).unwrap()).unwrap();
}

#[test]
fn a_later_folder_overrides_a_same_named_workflow() {
    let system = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    std::fs::copy(
        shipped_path(),
        system.path().join(format!("{SHIPPED}.json")),
    )
    .unwrap();
    write(system.path(), "invert.json", &operator_workflow());
    std::fs::write(system.path().join("README.txt"), "not a workflow").unwrap();
    // The operator's own version of the shipped name: a one-image graph.
    let mut own = operator_workflow();
    own["12"]["inputs"]["filename_prefix"] = json!("mine");
    write(local.path(), &format!("{SHIPPED}.json"), &own);
    write(local.path(), "extra.json", &operator_workflow());
    let nowhere = system.path().join("does-not-exist");

    let all = load_dir(&[system.path(), &nowhere, local.path()]).unwrap();
    assert_eq!(
        all.keys().map(String::as_str).collect::<Vec<_>>(),
        ["extra", "invert", SHIPPED]
    );
    let overridden = &all[SHIPPED];
    assert_eq!(overridden.name, SHIPPED);
    assert_eq!(overridden.image_slots(), 1, "the local file wins");
    assert!(overridden.node_types().contains("ImageInvert"));

    // In the other order the shipped file wins.
    let all = load_dir(&[local.path(), system.path()]).unwrap();
    assert_eq!(all[SHIPPED].image_slots(), 3);

    // One broken file stops the load and is named.
    std::fs::write(local.path().join("zz-broken.json"), "{").unwrap();
    let err = load_dir(&[system.path(), local.path()]).unwrap_err();
    assert!(err.to_string().contains("zz-broken.json"), "{err}");
}

#[test]
fn the_shipped_folder_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let all = load_dir(&[&dir]).unwrap();
    assert!(all.contains_key(SHIPPED));
    for (name, wf) in &all {
        assert_eq!(&wf.name, name);
        assert!(wf.image_slots() >= 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Known problems

#[test]
fn a_required_image2_input_is_not_dropped() {
    let g = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"},
              "_meta": {"title": "qwenedit:image1"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "b.png"},
              "_meta": {"title": "qwenedit:image2"}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"},
              "_meta": {"title": "qwenedit:output"}}
    });
    let wf = Workflow::parse("batch", "batch.json", &g.to_string()).unwrap();
    match wf.patch(&job(1)) {
        Err(WorkflowError::ImageRequired { .. }) => {}
        Ok(graph) => assert!(
            graph
                .get("3")
                .is_none_or(|n| n["inputs"].get("image2").is_some()),
            "ImageBatch lost its required image2: {graph}"
        ),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn removing_a_model_and_clip_lora_keeps_the_clip_wiring() {
    let g = json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"},
              "_meta": {"title": "qwenedit:unet"}},
        "2": {"class_type": "LoraLoader",
              "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "l.safetensors",
                         "strength_model": 1.0, "strength_clip": 1.0},
              "_meta": {"title": "qwenedit:lora"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 1]},
              "_meta": {"title": "qwenedit:prompt"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "a.png"},
              "_meta": {"title": "qwenedit:image1"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"},
              "_meta": {"title": "qwenedit:output"}},
        "6": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["2", 0], "shift": 3.1}}
    });
    let wf = Workflow::parse("lora", "lora.json", &g.to_string()).unwrap();
    let p = Patch {
        models: ModelSettings {
            lora: Some(String::new()),
            ..ModelSettings::default()
        },
        ..job(1)
    };
    let graph = wf.patch(&p).unwrap();
    assert!(graph.get("2").is_none());
    assert_eq!(inputs(&graph, "6")["model"], json!(["1", 0]));
    assert_eq!(inputs(&graph, "3")["clip"], json!(["1", 1]));
}
