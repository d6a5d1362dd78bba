//! Test helpers: configs in temp dirs, the real `qwenedit` process, an in-process app.

pub mod app;
pub mod bot;
pub mod fake_comfy;
pub mod fake_telegram;
pub mod fake_yookassa;
pub mod multipart;
pub mod process;
pub mod rig;
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

/// The `qwenedit` binary built for these tests. `QWENEDIT_BIN` overrides it: with a target dir
/// shared by several checkouts, `target/debug/qwenedit` is whichever checkout linked it last
/// (each one's own copy is `target/debug/deps/qwenedit-<hash>`; link it as `.../qwenedit`, since
/// the CLI snapshots show the program's name).
pub fn bin() -> String {
    std::env::var("QWENEDIT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_qwenedit").to_string())
}
