//! `qwenedit edit` and `qwenedit doctor` as the operator runs them: the real binary against a
//! fake ComfyUI (and, for doctor's token check, a fake Telegram), with the shipped workflows and
//! presets. Outputs are snapshotted after replacing temp paths, ports and free-space figures.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support;
use crate::support::fake_comfy::{Behavior, FakeComfy};
use crate::support::fake_telegram::FakeTelegram;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------------------------
// Set-up: a temp dir with a config, the binary run in it.

/// What a test changes in the config; everything else points at the repo's workflows and
/// presets and at one fake ComfyUI.
struct Settings {
    backend: String,
    data_dir: String,
    /// Extra lines of `[comfyui]`.
    comfyui: String,
    /// Extra lines of `[presets]`.
    presets: String,
    /// The lines of `[telegram]`.
    telegram: String,
}

impl Settings {
    fn new(comfy: &FakeComfy) -> Self {
        Self {
            backend: comfy.url().to_string(),
            data_dir: "data".into(),
            comfyui: String::new(),
            presets: String::new(),
            telegram: String::new(),
        }
    }

    fn comfyui(mut self, lines: &str) -> Self {
        self.comfyui.push_str(lines);
        self.comfyui.push('\n');
        self
    }

    fn presets(mut self, lines: &str) -> Self {
        self.presets.push_str(lines);
        self.presets.push('\n');
        self
    }

    /// `api_url` of a fake Telegram and a token (none: no token line).
    fn telegram(mut self, tg: &FakeTelegram, token: Option<&str>) -> Self {
        self.telegram = format!("api_url = \"{}\"\n", tg.api_url());
        if let Some(token) = token {
            self.telegram.push_str(&format!("token = \"{token}\"\n"));
        }
        self
    }

    fn data_dir(mut self, dir: &str) -> Self {
        self.data_dir = dir.into();
        self
    }
}

/// A temp dir with `config.toml`, the current directory of every run.
struct Cli {
    dir: tempfile::TempDir,
    config: PathBuf,
    /// (text, replacement) applied to outputs, besides the temp dir and the repo path.
    replace: Vec<(String, String)>,
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Cli {
    fn new(s: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let text = format!(
            r#"
[storage]
data_dir = "{data_dir}"

[comfyui]
backends = ["{backend}"]
workflows_dir = "{REPO}/workflows"
{comfyui}
[presets]
dir = "{REPO}/presets"
{presets}
[telegram]
{telegram}
[web]
listen = "127.0.0.1:0"
"#,
            data_dir = s.data_dir,
            backend = s.backend,
            comfyui = s.comfyui,
            presets = s.presets,
            telegram = s.telegram,
        );
        std::fs::write(&config, text).unwrap();
        Self {
            dir,
            config,
            replace: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Shows `127.0.0.1:PORT` of this server as `127.0.0.1:[name]`.
    fn port(mut self, url: &reqwest::Url, name: &str) -> Self {
        let host = format!("127.0.0.1:{}", url.port().unwrap());
        self.replace.push((host, format!("127.0.0.1:[{name}]")));
        self
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path().join(name), bytes).unwrap();
    }

    fn run(&self, args: &[&str]) -> Outcome {
        let mut cmd = assert_cmd::Command::new(support::bin());
        for (key, _) in std::env::vars() {
            if key.starts_with("QWENEDIT_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        let started = Instant::now();
        let out = cmd
            .current_dir(self.path())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        Outcome {
            code: out.status.code().expect("killed by a signal"),
            stdout: self.normalise(&String::from_utf8(out.stdout).unwrap()),
            stderr: self.normalise(&String::from_utf8(out.stderr).unwrap()),
            took: started.elapsed(),
        }
    }

    /// Runs a command and appends it with its output to a transcript.
    fn step(&self, transcript: &mut String, args: &[&str]) -> Outcome {
        let o = self.run(args);
        transcript.push_str(&self.normalise(&format!("$ qwenedit {}", args.join(" "))));
        transcript.push_str(&o.stdout);
        for line in o.stderr.lines() {
            let sep = if line.is_empty() { "" } else { " " };
            transcript.push_str(&format!("!{sep}{line}\n"));
        }
        transcript.push_str(&format!("[exit {}]\n\n", o.code));
        o
    }

    /// Replaces what changes from run to run: the temp dir, the repo path, ports, free disk
    /// space; trims line ends.
    fn normalise(&self, text: &str) -> String {
        let mut text = text.to_string();
        if let Ok(canonical) = self.path().canonicalize() {
            text = text.replace(&canonical.display().to_string(), "[DIR]");
        }
        text = text.replace(&self.path().display().to_string(), "[DIR]");
        text = text.replace(REPO, "[REPO]");
        for (from, to) in &self.replace {
            text = text.replace(from, to);
        }
        text = hide_run_ids(&text);
        text = hide_unreachable_reason(&text);
        text.lines()
            .map(|line| hide_free_space(line.trim_end()) + "\n")
            .collect()
    }
}

/// A ComfyUI that is down drops the connection: whether the client sees a reset, a broken
/// pipe, an early close or a connection "not ready" depends on timing, so the reason in
/// `not reachable (<reason>); is … running?` reads `[reason]`.
fn hide_unreachable_reason(text: &str) -> String {
    let (open, close) = ("not reachable (", "); is ");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(open) {
        let start = i + open.len();
        let Some(j) = rest[start..].find(close) else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str("[reason]");
        rest = &rest[start + j..];
    }
    out.push_str(rest);
    out
}

/// `cli-01KE6Q...` (a ULID per run, in upload and output names) → `cli-[ID]`.
fn hide_run_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("cli-") {
        let after = &rest[i + 4..];
        let id_len = after
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .count();
        out.push_str(&rest[..i + 4]);
        if id_len == 26 {
            out.push_str("[ID]");
            rest = &after[26..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `(writable, 123.4 GiB free)` → `(writable, [N] GiB free)`.
fn hide_free_space(line: &str) -> String {
    const START: &str = "(writable, ";
    const END: &str = " GiB free)";
    if let Some(i) = line.find(START) {
        let from = i + START.len();
        if let Some(n) = line[from..].find(END) {
            let figure = &line[from..from + n];
            if figure.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return format!("{}[N]{}", &line[..from], &line[from + n..]);
            }
        }
    }
    line.to_string()
}

impl Outcome {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(
            self.stderr, "",
            "a successful command writes nothing to stderr"
        );
        self
    }

    /// Exit code 1, one `error: ...` message on stderr, nothing on stdout.
    #[track_caller]
    fn failed(&self) -> &Self {
        assert_eq!(
            self.code, 1,
            "expected exit code 1\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "a failed edit prints nothing on stdout");
        assert!(
            self.stderr.starts_with("error: "),
            "stderr: {}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("\n\n"),
            "no blank lines in the error: {:?}",
            self.stderr
        );
        self
    }

    #[track_caller]
    fn says(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "{text:?} not in stderr: {}",
            self.stderr
        );
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs and what the fake saw

fn encode(img: image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

/// A real photo-like JPEG: a gradient with a dark square.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        if (40..100).contains(&x) && (40..100).contains(&y) {
            image::Rgb([20, 20, 30])
        } else {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 180])
        }
    });
    encode(img, image::ImageFormat::Jpeg)
}

/// A 1x1 GIF.
fn gif() -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]);
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]);
    g.push(0x3B);
    g
}

/// The start of an iPhone photo: an ISO BMFF `ftyp` box with HEIC brands, then an empty `mdat`.
fn heic() -> Vec<u8> {
    let mut b = 24u32.to_be_bytes().to_vec();
    b.extend_from_slice(b"ftypheic");
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(b"mif1heic");
    b.extend_from_slice(&[0, 0, 0, 8]);
    b.extend_from_slice(b"mdat");
    b
}

/// Decodes `path` as a PNG (by content) and returns it.
#[track_caller]
fn read_png(path: &Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

/// The nodes of a graph whose title carries `qwenedit:<mark>`.
fn marked<'a>(graph: &'a Value, mark: &str) -> Vec<&'a Value> {
    graph
        .as_object()
        .unwrap()
        .values()
        .filter(|n| {
            n["_meta"]["title"]
                .as_str()
                .and_then(|t| t.strip_prefix("qwenedit:"))
                .is_some_and(|marks| marks.split(',').any(|m| m.trim() == mark))
        })
        .collect()
}

fn classes(graph: &Value) -> Vec<&str> {
    let mut v: Vec<&str> = graph
        .as_object()
        .unwrap()
        .values()
        .map(|n| n["class_type"].as_str().unwrap())
        .collect();
    v.sort();
    v
}

/// The only prompt the fake queued.
#[track_caller]
fn only_prompt(comfy: &FakeComfy) -> support::fake_comfy::PromptSeen {
    let prompts = comfy.prompts();
    assert_eq!(prompts.len(), 1, "{prompts:#?}");
    prompts.into_iter().next().unwrap()
}

/// A preset's prompt as the presets loader reads it.
fn preset_prompt(key: &str) -> String {
    qwenedit::presets::parse_file(&Path::new(REPO).join("presets").join(format!("{key}.toml")))
        .unwrap()
        .prompt
}

/// What an operator exports from ComfyUI with "Export (API)" after titling the nodes: the photo
/// inverted, and a text encoder for the prompt.
fn operator_workflow() -> Value {
    json!({
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
            "inputs": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image", "device": "default"},
            "class_type": "CLIPLoader",
            "_meta": {"title": "Load CLIP"}
        },
        "21": {
            "inputs": {"text": "", "clip": ["20", 0]},
            "class_type": "CLIPTextEncode",
            "_meta": {"title": "qwenedit:prompt"}
        }
    })
}

// ---------------------------------------------------------------------------------------------
// qwenedit edit

#[test]
fn edit_with_a_prompt_writes_the_result_as_png() {
    let comfy = FakeComfy::start_in_thread();
    let cli = Cli::new(Settings::new(&comfy)).port(&comfy.url(), "COMFY");
    cli.write("photo.jpg", &jpeg(320, 240));

    let o = cli.run(&[
        "edit",
        "photo.jpg",
        "--prompt",
        "make it a winter evening",
        "-o",
        "out.png",
    ]);
    o.ok();
    // The seed is random without --seed; it is printed, and it is the one the graph got.
    let seed: u64 = o
        .stdout
        .split("seed ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seed in {}", o.stdout));
    let stdout = o.stdout.replace(&format!("seed {seed},"), "seed [SEED],");
    insta::assert_snapshot!("edit_prompt", stdout);

    let out = read_png(&cli.path().join("out.png"));
    // The fake inverts the (normalised) input and fits it into 256x256.
    assert_eq!(out.dimensions(), (256, 192));
    let dark_square = out.get_pixel(60, 60);
    assert!(
        dark_square.0.iter().all(|&c| c > 180),
        "the dark square inverted: {dark_square:?}"
    );

    let p = only_prompt(&comfy);
    let prompt = marked(&p.graph, "prompt");
    assert_eq!(prompt[0]["inputs"]["prompt"], "make it a winter evening");
    assert_eq!(marked(&p.graph, "seed")[0]["inputs"]["seed"], json!(seed));
    // One photo: one LoadImage, fed the uploaded file.
    let uploads = comfy.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let loads = marked(&p.graph, "image1");
    assert_eq!(
        loads[0]["inputs"]["image"],
        format!("{}/{}", uploads[0].subfolder, uploads[0].name)
    );
    assert!(marked(&p.graph, "image2").is_empty());
    assert_eq!(
        classes(&p.graph)
            .iter()
            .filter(|c| **c == "LoadImage")
            .count(),
        1
    );
}

#[test]
fn edit_with_a_preset_passes_its_prompt_and_the_seed() {
    let comfy = FakeComfy::start_in_thread();
    let cli = Cli::new(Settings::new(&comfy)).port(&comfy.url(), "COMFY");
    cli.write("photo.jpg", &jpeg(640, 480));
    let mut t = String::new();
    cli.step(
        &mut t,
        &[
            "edit",
            "photo.jpg",
            "--preset",
            "anime",
            "--seed",
            "12345",
            "-o",
            "anime.png",
        ],
    )
    .ok();
    read_png(&cli.path().join("anime.png"));
    let p = only_prompt(&comfy);
    assert_eq!(
        marked(&p.graph, "prompt")[0]["inputs"]["prompt"],
        json!(preset_prompt("anime"))
    );
    let samplers = marked(&p.graph, "seed");
    assert_eq!(samplers.len(), 1);
    assert_eq!(samplers[0]["class_type"], "KSampler");
    assert_eq!(samplers[0]["inputs"]["seed"], json!(12345u64));

    // The same seed again: the same graph but for the upload and output names; the largest
    // seed ComfyUI takes goes through unchanged.
    cli.step(
        &mut t,
        &[
            "edit",
            "photo.jpg",
            "--preset",
            "anime",
            "--seed",
            "18446744073709551615",
            "-o",
            "anime-2.png",
        ],
    )
    .ok();
    let p = comfy.prompts().pop().unwrap();
    assert_eq!(
        marked(&p.graph, "seed")[0]["inputs"]["seed"],
        json!(u64::MAX)
    );
    read_png(&cli.path().join("anime-2.png"));

    // A 2-photo preset with its 2 photos: both uploaded, both in the graph.
    cli.write("scene.jpg", &jpeg(480, 320));
    cli.step(
        &mut t,
        &[
            "edit",
            "photo.jpg",
            "scene.jpg",
            "--preset",
            "combine",
            "--seed",
            "5",
            "-o",
            "combined.png",
        ],
    )
    .ok();
    read_png(&cli.path().join("combined.png"));
    let p = comfy.prompts().pop().unwrap();
    assert_eq!(
        marked(&p.graph, "prompt")[0]["inputs"]["prompt"],
        json!(preset_prompt("combine"))
    );
    let first = marked(&p.graph, "image1")[0]["inputs"]["image"].clone();
    let second = marked(&p.graph, "image2")[0]["inputs"]["image"].clone();
    assert!(first.as_str().unwrap().ends_with("-1.png"), "{first}");
    assert!(second.as_str().unwrap().ends_with("-2.png"), "{second}");
    assert!(marked(&p.graph, "image3").is_empty());
    insta::assert_snapshot!("edit_preset", t);
}

#[test]
fn edit_with_an_operator_workflow_file() {
    let comfy = FakeComfy::start_in_thread();
    let cli = Cli::new(Settings::new(&comfy)).port(&comfy.url(), "COMFY");
    cli.write("photo.jpg", &jpeg(200, 150));
    cli.write("invert.json", operator_workflow().to_string().as_bytes());
    let mut t = String::new();
    cli.step(
        &mut t,
        &[
            "edit",
            "photo.jpg",
            "--workflow",
            "invert.json",
            "--prompt",
            "negative",
            "--seed",
            "7",
            "-o",
            "inverted.png",
        ],
    )
    .ok();
    insta::assert_snapshot!("edit_operator_workflow", t);

    let out = read_png(&cli.path().join("inverted.png"));
    assert_eq!(out.dimensions(), (200, 150));
    let p = only_prompt(&comfy);
    assert_eq!(
        classes(&p.graph),
        [
            "CLIPLoader",
            "CLIPTextEncode",
            "ImageInvert",
            "LoadImage",
            "SaveImage"
        ]
    );
    assert_eq!(p.graph["21"]["inputs"]["text"], "negative");
    let prefix = p.graph["12"]["inputs"]["filename_prefix"].as_str().unwrap();
    assert!(prefix.starts_with("qwenedit/cli-"), "{prefix}");
    assert_ne!(p.graph["10"]["inputs"]["image"], "example.png");
}

/// A workflow without a `qwenedit:prompt` node needs neither --prompt nor --preset; a prompt
/// given anyway is ignored with a warning. Without any of the three, the usage error says so.
#[test]
fn edit_with_a_workflow_that_takes_no_prompt() {
    let comfy = FakeComfy::start_in_thread();
    let cli = Cli::new(Settings::new(&comfy)).port(&comfy.url(), "COMFY");
    cli.write("photo.jpg", &jpeg(200, 150));
    let mut workflow = operator_workflow();
    let nodes = workflow.as_object_mut().unwrap();
    nodes.remove("20");
    nodes.remove("21");
    cli.write("invert.json", workflow.to_string().as_bytes());
    let mut t = String::new();
    let args = [
        "edit",
        "photo.jpg",
        "--workflow",
        "invert.json",
        "--seed",
        "7",
    ];
    cli.step(&mut t, &[&args[..], &["-o", "a.png"][..]].concat())
        .ok();
    read_png(&cli.path().join("a.png"));
    assert_eq!(
        classes(&only_prompt(&comfy).graph),
        ["ImageInvert", "LoadImage", "SaveImage"]
    );

    let o = cli.run(&[&args[..], &["--prompt", "x", "-o", "b.png"][..]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains(
            "the job has a prompt but the workflow has no `qwenedit:prompt` node; running without it"
        ),
        "{}",
        o.stderr
    );
    read_png(&cli.path().join("b.png"));

    let o = cli.step(&mut t, &["edit", "photo.jpg", "-o", "c.png"]);
    assert_eq!(o.code, 2, "a usage error");
    assert!(
        o.stderr
            .contains("<--preset <PRESET>|--prompt <PROMPT>|--workflow <WORKFLOW>>"),
        "{}",
        o.stderr
    );
    let o = cli.step(
        &mut t,
        &[
            "edit",
            "photo.jpg",
            "--preset",
            "anime",
            "--prompt",
            "x",
            "-o",
            "c.png",
        ],
    );
    assert_eq!(o.code, 2, "a usage error");
    assert!(!cli.path().join("c.png").exists());
    assert_eq!(comfy.prompts().len(), 2);
    insta::assert_snapshot!("edit_workflow_without_prompt", t);
}

#[test]
fn edit_uses_the_backend_given_and_explains_a_comfyui_that_is_down() {
    let down = FakeComfy::start_in_thread();
    down.set_down(true);
    let up = FakeComfy::start_in_thread();
    let cli = Cli::new(Settings::new(&down))
        .port(&down.url(), "DOWN")
        .port(&up.url(), "UP");
    cli.write("photo.jpg", &jpeg(320, 240));
    let mut t = String::new();

    let args = ["edit", "photo.jpg", "--prompt", "add a hat", "--seed", "1"];
    let o = cli.step(&mut t, &[&args[..], &["-o", "out.png"][..]].concat());
    o.failed()
        .says("ComfyUI at http://127.0.0.1:[DOWN]/ is not reachable")
        .says("is it running?");
    assert!(!cli.path().join("out.png").exists());

    let up_url = up.url().to_string();
    let o = cli.step(
        &mut t,
        &[&args[..], &["--backend", &up_url, "-o", "out.png"][..]].concat(),
    );
    o.ok();
    assert!(
        o.stdout.contains("on http://127.0.0.1:[UP]"),
        "{}",
        o.stdout
    );
    read_png(&cli.path().join("out.png"));
    assert_eq!(up.prompts().len(), 1);

    let o = cli.step(
        &mut t,
        &[&args[..], &["--backend", "not a url", "-o", "out.png"][..]].concat(),
    );
    o.failed().says("--backend \"not a url\" is not a URL");
    insta::assert_snapshot!("edit_backend", t);
}

/// Every way an edit can fail before or in ComfyUI: a clear message, exit code 1, no output
/// file, and nothing left queued in ComfyUI.
#[test]
fn edit_failures_are_explained() {
    let comfy = FakeComfy::start_in_thread();
    let cli = Cli::new(Settings::new(&comfy)).port(&comfy.url(), "COMFY");
    cli.write("photo.jpg", &jpeg(320, 240));
    cli.write("photo.heic", &heic());
    cli.write("photo.gif", &gif());
    let mut t = String::new();
    let edit = |t: &mut String, inputs: &[&str], how: &[&str]| {
        let args = [
            &["edit"][..],
            inputs,
            how,
            &["--seed", "3", "-o", "out.png"][..],
        ]
        .concat();
        let o = cli.step(t, &args);
        o.failed();
        assert!(!cli.path().join("out.png").exists());
        o
    };
    let anime = ["--preset", "anime"];

    // Refused before anything is sent to ComfyUI.
    edit(&mut t, &["photo.jpg"], &["--preset", "nope"])
        .says("unknown preset \"nope\"; the presets are the .toml files in [REPO]/presets");
    edit(&mut t, &["photo.jpg"], &["--preset", "combine"])
        .says("the preset combine takes 2 photos; 1 given");
    edit(&mut t, &["photo.jpg", "photo.jpg"], &anime)
        .says("the preset anime takes 1 photo; 2 given");
    edit(&mut t, &["photo.jpg"], &["--prompt", "  "]).says("--prompt is empty");
    edit(&mut t, &["photo.heic"], &anime)
        .says("photo.heic: ")
        .says("HEIC/HEIF images are not supported");
    edit(&mut t, &["photo.gif"], &anime)
        .says("photo.gif: ")
        .says("GIF images are not supported");
    edit(&mut t, &["missing.jpg"], &anime).says("missing.jpg: cannot read: ");
    edit(
        &mut t,
        &["photo.jpg"],
        &["--prompt", "x", "--workflow", "nope.json"],
    )
    .says("nope.json: ");
    assert!(comfy.uploads().is_empty());
    assert!(comfy.prompts().is_empty());

    // ComfyUI lacks a model file: it refuses the graph, naming the loader and the file.
    comfy.set_models("vae", &[]);
    edit(&mut t, &["photo.jpg"], &anime)
        .says("ComfyUI rejected the workflow")
        .says("qwen_image_vae.safetensors")
        .says("qwenedit doctor");
    comfy.set_models("vae", &["qwen_image_vae.safetensors"]);
    assert!(comfy.prompts().is_empty());

    // Accepted with node_errors: rejected all the same, and taken off ComfyUI's queue.
    comfy.script(Behavior::NodeErrors);
    edit(&mut t, &["photo.jpg"], &anime)
        .says("ComfyUI rejected the workflow")
        .says("Invalid image file");
    let p = only_prompt(&comfy);
    assert!(comfy.interrupts().contains(&Some(p.id.clone())));

    // A node fails while running.
    comfy.script(Behavior::ExecutionError);
    edit(&mut t, &["photo.jpg"], &anime)
        .says("ComfyUI failed in node LoadImage: PIL.UnidentifiedImageError: cannot identify");

    // The outputs vanished before they could be fetched.
    comfy.script(Behavior::MissingOutput);
    edit(&mut t, &["photo.jpg"], &anime).says("missing from ComfyUI");

    // A 500 from /prompt.
    comfy.script(Behavior::Http500);
    edit(&mut t, &["photo.jpg"], &anime).says("500");

    // Down.
    comfy.set_down(true);
    edit(&mut t, &["photo.jpg"], &anime).says("is not reachable");

    insta::assert_snapshot!("edit_failures", t);
}

/// A run that never finishes is interrupted after `comfyui.job_timeout` (the one real wait of
/// these tests: 2 s).
#[test]
fn an_edit_that_hangs_is_interrupted_after_the_job_timeout() {
    let comfy = FakeComfy::start_in_thread();
    let cli =
        Cli::new(Settings::new(&comfy).comfyui("job_timeout = \"2s\"")).port(&comfy.url(), "COMFY");
    cli.write("photo.jpg", &jpeg(320, 240));
    comfy.script(Behavior::Hang);
    let mut t = String::new();
    let o = cli.step(
        &mut t,
        &[
            "edit",
            "photo.jpg",
            "--preset",
            "anime",
            "--seed",
            "3",
            "-o",
            "out.png",
        ],
    );
    o.failed().says("2s").says("interrupted");
    assert!(o.took >= Duration::from_secs(2), "took {:?}", o.took);
    assert!(!cli.path().join("out.png").exists());
    let p = only_prompt(&comfy);
    assert!(
        comfy.interrupts().contains(&Some(p.id.clone())),
        "{:?}",
        comfy.interrupts()
    );
    // ComfyUI really stopped it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(comfy.wait_finished(1));
    assert_eq!(comfy.finished()[0].0, p.id);
    insta::assert_snapshot!("edit_timeout", t);
}

// ---------------------------------------------------------------------------------------------
// qwenedit doctor

/// A fake ComfyUI with the default models and a fake Telegram (on its own runtime) that knows
/// the test token.
struct Doctor {
    comfy: FakeComfy,
    telegram: FakeTelegram,
    _rt: tokio::runtime::Runtime,
}

impl Doctor {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let telegram = rt.block_on(FakeTelegram::start());
        Self {
            comfy: FakeComfy::start_in_thread(),
            telegram,
            _rt: rt,
        }
    }

    /// The settings where everything is in place.
    fn settings(&self) -> Settings {
        Settings::new(&self.comfy).telegram(&self.telegram, Some(FakeTelegram::TOKEN))
    }

    fn cli(&self, s: Settings) -> Cli {
        Cli::new(s)
            .port(&self.comfy.url(), "COMFY")
            .port(&self.telegram.api_url(), "TELEGRAM")
    }

    /// Runs `qwenedit doctor` and returns the transcript. `problems`: the FAIL lines expected.
    #[track_caller]
    fn run(&self, cli: &Cli, problems: usize) -> (Outcome, String) {
        let mut t = String::new();
        let o = cli.step(&mut t, &["doctor"]);
        let fails = o.stdout.lines().filter(|l| l.starts_with("FAIL")).count();
        assert_eq!(fails, problems, "{}", o.stdout);
        if problems == 0 {
            o.ok();
            assert!(
                o.stdout.ends_with("everything needed is in place\n"),
                "{}",
                o.stdout
            );
        } else {
            assert_eq!(o.code, 1, "{}", o.stdout);
            let expected = match problems {
                1 => "error: 1 problem found\n".to_string(),
                n => format!("error: {n} problems found\n"),
            };
            assert_eq!(o.stderr, expected);
            assert!(!o.stdout.contains("everything needed is in place"));
        }
        (o, t)
    }
}

/// The number of shipped presets, shown as `[PRESETS]` (adding one must not break these tests).
fn shipped_presets() -> usize {
    std::fs::read_dir(Path::new(REPO).join("presets"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .count()
}

fn hide_preset_count(transcript: &str) -> String {
    transcript.replace(
        &format!("  {} loaded\n", shipped_presets()),
        "  [PRESETS] loaded\n",
    )
}

/// A checklist line with its columns two spaces apart (the padding depends on the longest
/// check, and on the digits of the ports behind `[COMFY]`).
fn squeeze(line: &str) -> String {
    let mut out = String::new();
    for (i, column) in line.split("  ").filter(|c| !c.is_empty()).enumerate() {
        if i > 0 {
            out.push_str("  ");
        }
        out.push_str(column.trim_start());
    }
    out
}

/// The checklist has exactly this line.
#[track_caller]
fn has_line(stdout: &str, line: &str) {
    assert!(
        stdout.lines().any(|l| squeeze(l) == line),
        "no line {line:?} in\n{stdout}"
    );
}

/// The one FAIL line, squeezed.
#[track_caller]
fn fail_line(stdout: &str) -> String {
    let fails: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(squeeze)
        .collect();
    assert_eq!(fails.len(), 1, "{stdout}");
    fails[0].clone()
}

#[test]
fn doctor_with_everything_in_place() {
    let d = Doctor::start();
    let cli = d.cli(d.settings());
    let (o, t) = d.run(&cli, 0);
    assert!(
        o.stdout.contains("token works: @qwenedit_test_bot"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("· qwen-image-edit-2511  all nodes and model files present"),
        "{}",
        o.stdout
    );
    assert!(cli.path().join("data").is_dir());
    insta::assert_snapshot!("doctor_all_good", hide_preset_count(&t));
}

#[test]
fn doctor_reports_a_comfyui_that_is_down() {
    let d = Doctor::start();
    d.comfy.set_down(true);
    let cli = d.cli(d.settings());
    let (o, t) = d.run(&cli, 1);
    assert_eq!(
        fail_line(&o.stdout),
        "FAIL  comfyui http://127.0.0.1:[COMFY]  not reachable ([reason]); is ComfyUI running?"
    );
    insta::assert_snapshot!("doctor_comfyui_down", hide_preset_count(&t));
}

#[test]
fn doctor_names_a_missing_model_file_and_its_folder() {
    let d = Doctor::start();
    d.comfy.set_models("vae", &[]);
    let cli = d.cli(d.settings());
    let (o, t) = d.run(&cli, 1);
    has_line(
        &o.stdout,
        "FAIL  comfyui http://127.0.0.1:[COMFY] · qwen-image-edit-2511  model files missing: \
         qwen_image_vae.safetensors → put it into ComfyUI/models/vae/",
    );
    insta::assert_snapshot!("doctor_missing_model", hide_preset_count(&t));
}

#[test]
fn doctor_names_missing_model_files_the_config_asks_for() {
    let d = Doctor::start();
    let cli = d.cli(
        d.settings()
            .comfyui("lora = \"my-lora.safetensors\"\ndiffusion_model = \"big.safetensors\""),
    );
    let (o, _) = d.run(&cli, 1);
    has_line(
        &o.stdout,
        "FAIL  comfyui http://127.0.0.1:[COMFY] · qwen-image-edit-2511  model files missing: \
         my-lora.safetensors → put it into ComfyUI/models/loras/; \
         big.safetensors → put it into ComfyUI/models/diffusion_models/",
    );
}

#[test]
fn doctor_names_node_types_comfyui_does_not_know() {
    let d = Doctor::start();
    let s = d
        .settings()
        .comfyui("extra_workflows_dir = \"my-workflows\"");
    let cli = d.cli(s);
    std::fs::create_dir(cli.path().join("my-workflows")).unwrap();
    let sharpen = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "qwenedit:image1"}},
        "2": {"class_type": "SUPIRSharpen", "inputs": {"image": ["1", 0], "amount": 2}, "_meta": {"title": "Sharpen"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}, "_meta": {"title": "qwenedit:output"}}
    });
    cli.write("my-workflows/sharpen.json", sharpen.to_string().as_bytes());
    let (o, t) = d.run(&cli, 1);
    has_line(
        &o.stdout,
        "FAIL  comfyui http://127.0.0.1:[COMFY] · sharpen  node types missing: \
         SUPIRSharpen (update ComfyUI or install the custom nodes)",
    );
    insta::assert_snapshot!("doctor_unknown_node", hide_preset_count(&t));
}

#[test]
fn doctor_reports_a_bad_preset_file() {
    let d = Doctor::start();
    let cli = d.cli(d.settings().presets("extra_dir = \"my-presets\""));
    std::fs::create_dir(cli.path().join("my-presets")).unwrap();
    cli.write(
        "my-presets/bad.toml",
        "key = \"bad\"\ncategory = \"misc\"\nemoji = \"🙂\"\nprompt = \"Make it better.\"\n\
         [title]\nru = \"Плохо\"\nen = \"Bad\"\n[description]\nru = \"Плохо\"\nen = \"Bad\"\n"
            .as_bytes(),
    );
    let (o, t) = d.run(&cli, 1);
    assert_eq!(
        fail_line(&o.stdout),
        "FAIL  presets  preset [DIR]/my-presets/bad.toml: category: \"misc\" is not one of \
         styles, portraits, products, lighting, animation, enhancement, combine"
    );
    insta::assert_snapshot!("doctor_bad_preset", hide_preset_count(&t));
}

#[test]
fn doctor_reports_a_rejected_telegram_token() {
    let d = Doctor::start();
    let cli = d.cli(
        d.settings()
            .telegram(&d.telegram, Some("123456:WRONG-token")),
    );
    let (o, t) = d.run(&cli, 1);
    has_line(
        &o.stdout,
        "FAIL  telegram  the bot token was rejected; get a new one from @BotFather",
    );
    assert!(!o.stdout.contains("WRONG"), "the token is never shown");
    insta::assert_snapshot!("doctor_token_rejected", hide_preset_count(&t));
}

#[test]
fn doctor_warns_without_a_telegram_token() {
    let d = Doctor::start();
    let cli = d.cli(d.settings().telegram(&d.telegram, None));
    let (o, t) = d.run(&cli, 0);
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("warn  telegram") && l.contains("no token")),
        "{}",
        o.stdout
    );
    insta::assert_snapshot!("doctor_no_token", hide_preset_count(&t));
}

#[test]
fn doctor_reports_a_data_dir_that_cannot_be_created() {
    let d = Doctor::start();
    let cli = d.cli(d.settings().data_dir("blocker/data"));
    cli.write("blocker", b"a file where a folder should be");
    let (o, t) = d.run(&cli, 1);
    assert_eq!(
        fail_line(&o.stdout),
        "FAIL  data dir  [DIR]/blocker/data: cannot create: Not a directory (os error 20)"
    );
    insta::assert_snapshot!("doctor_data_dir", hide_preset_count(&t));
}
