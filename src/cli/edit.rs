//! `qwenedit edit IMAGE... (--preset KEY | --prompt TEXT) -o OUT`: one edit straight through
//! ComfyUI, with a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};

use super::{CliError, load_config, logging};
use crate::ops::{self, EditRequest};

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("what")
        .args(["preset", "prompt", "workflow"])
        .required(true)
        .multiple(true)
))]
pub struct EditArgs {
    /// 1 to 3 input images (JPEG, PNG or WebP).
    #[arg(required = true, num_args = 1..=3)]
    pub images: Vec<PathBuf>,
    /// A preset key (see the presets folder).
    #[arg(long, conflicts_with = "prompt")]
    pub preset: Option<String>,
    /// What to change, in your own words.
    #[arg(long)]
    pub prompt: Option<String>,
    /// A workflow file in ComfyUI's API format instead of the preset's or the default (then
    /// --preset and --prompt are optional: a workflow may need no prompt).
    #[arg(long)]
    pub workflow: Option<PathBuf>,
    /// The ComfyUI to use (default: the first configured backend).
    #[arg(long)]
    pub backend: Option<String>,
    /// The seed (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where to write the result (PNG).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

pub fn run(config_path: &Path, args: EditArgs) -> Result<(), CliError> {
    logging::init_quiet();
    let config = load_config(config_path)?;
    let backend = match &args.backend {
        Some(b) => Some(
            reqwest::Url::parse(b)
                .map_err(|e| CliError(format!("--backend {b:?} is not a URL: {e}")))?,
        ),
        None => None,
    };
    if let Some(prompt) = &args.prompt
        && prompt.trim().is_empty()
    {
        return Err(CliError("--prompt is empty".into()));
    }
    let req = EditRequest {
        images: args.images,
        preset: args.preset,
        prompt: args.prompt,
        workflow_file: args.workflow,
        backend,
        seed: args.seed.unwrap_or_else(rand::random),
    };
    let seed = req.seed;
    let tty = std::io::stderr().is_terminal();
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime
        .block_on(ops::edit_once(&config, req, |percent| {
            if tty {
                let filled = usize::from(percent) / 5;
                eprint!(
                    "\r[{}{}] {percent:>3}%",
                    "#".repeat(filled),
                    ".".repeat(20 - filled)
                );
                let _ = std::io::stderr().flush();
            }
        }))
        .map_err(|e| {
            if tty {
                eprintln!();
            }
            CliError(e.to_string())
        })?;
    if tty {
        eprintln!();
    }
    let mut written = Vec::new();
    for (i, bytes) in outcome.images.iter().enumerate() {
        let path = if i == 0 {
            args.out.clone()
        } else {
            numbered(&args.out, i + 1)
        };
        std::fs::write(&path, bytes)
            .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
        written.push(path);
    }
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!(
        "workflow {}, seed {seed}, on {}",
        outcome.workflow,
        outcome.backend.trim_end_matches('/')
    );
    Ok(())
}

/// `out.png` → `out-2.png`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("png");
    path.with_file_name(format!("{stem}-{n}.{ext}"))
}
