//! Test helpers: configs in temp dirs, the real `qwenedit` process, an in-process app.

pub mod app;
pub mod bot;
pub mod fake_comfy;
pub mod fake_telegram;
pub mod process;
pub mod web;

use std::path::{Path, PathBuf};

/// Writes a config for a test into `dir` (data under `dir/data`) and returns its path.
/// `extra` is appended verbatim (extra sections or keys of new sections).
pub fn write_config(dir: &Path, listen: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        r#"
[storage]
data_dir = "data"
queue_fsync = true

[comfyui]
backends = ["http://127.0.0.1:9"]
workflows_dir = "workflows"

[web]
listen = "{listen}"

[log]
level = "info,qwenedit=debug"
format = "json"
{extra}
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The `qwenedit` binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_qwenedit")
}
