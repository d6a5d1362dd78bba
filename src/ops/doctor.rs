//! `qwenedit doctor`: checks everything the service needs and says exactly what is missing.

use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;

use crate::comfy::client::combo_options;
use crate::comfy::workflow::{load_dir, model_files_in, models_folder};
use crate::comfy::{ComfyClient, ComfyError, Patch, Workflow};
use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub status: Status,
    pub what: String,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
}

impl DoctorReport {
    fn push(&mut self, status: Status, what: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check {
            status,
            what: what.into(),
            detail: detail.into(),
        });
    }

    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }
}

pub async fn doctor(config: &Config, config_path: &Path) -> DoctorReport {
    let mut r = DoctorReport::default();
    r.push(Status::Ok, "config", config_path.display().to_string());
    check_data_dir(
        &mut r,
        &config.storage.data_dir,
        config.storage.min_free_mb.saturating_mul(1 << 20),
    );

    let dirs = config.workflow_dirs();
    let workflows = match load_dir(&dirs) {
        Ok(w) if w.is_empty() => {
            r.push(
                Status::Fail,
                "workflows",
                format!("none found in {}", config.comfyui.workflows_dir.display()),
            );
            Default::default()
        }
        Ok(w) => {
            let names: Vec<&str> = w.keys().map(String::as_str).collect();
            r.push(Status::Ok, "workflows", names.join(", "));
            w
        }
        Err(e) => {
            r.push(Status::Fail, "workflows", e.to_string());
            Default::default()
        }
    };
    if !workflows.is_empty() && !workflows.contains_key(&config.comfyui.default_workflow) {
        r.push(
            Status::Fail,
            "workflows",
            format!(
                "comfyui.default_workflow {:?} is not among them",
                config.comfyui.default_workflow
            ),
        );
    }
    check_presets(&mut r, config, &workflows);
    check_telegram(&mut r, config).await;
    check_yookassa(&mut r, config).await;
    for url in &config.comfyui.backends {
        check_backend(&mut r, config, url, &workflows).await;
    }
    r
}

fn check_data_dir(r: &mut DoctorReport, dir: &Path, min_free: u64) {
    let what = "data dir";
    if let Err(e) = std::fs::create_dir_all(dir) {
        return r.push(
            Status::Fail,
            what,
            format!("{}: cannot create: {e}", dir.display()),
        );
    }
    let probe = dir.join(format!(".doctor-{}", ulid::Ulid::new()));
    if let Err(e) = std::fs::write(&probe, b"ok") {
        return r.push(
            Status::Fail,
            what,
            format!("{}: not writable: {e}", dir.display()),
        );
    }
    let _ = std::fs::remove_file(&probe);
    match crate::files::free_bytes(dir) {
        Some(free) => {
            let gib = free as f64 / (1u64 << 30) as f64;
            let (status, note) = if free < min_free {
                (
                    Status::Fail,
                    " — too little space: new jobs will be refused",
                )
            } else if free < (2 << 30).max(min_free.saturating_mul(2)) {
                (Status::Warn, " — running low")
            } else {
                (Status::Ok, "")
            };
            r.push(
                status,
                what,
                format!("{} (writable, {gib:.1} GiB free){note}", dir.display()),
            );
        }
        None => r.push(
            Status::Warn,
            what,
            format!("{}: free space unknown", dir.display()),
        ),
    }
}

fn check_presets(
    r: &mut DoctorReport,
    config: &Config,
    workflows: &std::collections::BTreeMap<String, Workflow>,
) {
    let dirs = config.preset_dirs();
    match crate::presets::Presets::load(&dirs) {
        Ok(p) if p.is_empty() => r.push(
            Status::Warn,
            "presets",
            format!(
                "none found in {}: only own prompts will work",
                config.presets.dir.display()
            ),
        ),
        Ok(p) => {
            let mut bad = Vec::new();
            for preset in p.all() {
                let wf = preset
                    .workflow
                    .clone()
                    .unwrap_or_else(|| config.comfyui.default_workflow.clone());
                match workflows.get(&wf) {
                    None if !workflows.is_empty() => {
                        bad.push(format!("{} uses unknown workflow {wf:?}", preset.key))
                    }
                    Some(w) if w.image_slots() < usize::from(preset.images) => bad.push(format!(
                        "{} takes {} photos but workflow {wf:?} takes {}",
                        preset.key,
                        preset.images,
                        w.image_slots()
                    )),
                    _ => {}
                }
            }
            if bad.is_empty() {
                r.push(Status::Ok, "presets", format!("{} loaded", p.len()));
            } else {
                r.push(Status::Fail, "presets", bad.join("; "));
            }
        }
        Err(e) => r.push(Status::Fail, "presets", e.to_string()),
    }
}

/// With `[yookassa]` on: the credentials work, the shop's test flag is `yookassa.test`,
/// receipts have fiscalization, and notifications can reach us.
async fn check_yookassa(r: &mut DoctorReport, config: &Config) {
    let Some(cfg) = &config.yookassa else {
        return;
    };
    let what = "yookassa";
    let client = crate::yookassa::Client::new(cfg);
    match client.shop().await {
        Ok(shop) if shop.test != cfg.test => r.push(
            Status::Fail,
            what,
            format!(
                "shop {} is a {} shop but yookassa.test = {}: its payments would never be credited",
                shop.account_id,
                if shop.test { "test" } else { "real" },
                cfg.test
            ),
        ),
        Ok(shop) => {
            r.push(
                Status::Ok,
                what,
                format!(
                    "shop {} answers{}",
                    shop.account_id,
                    if shop.test { " (test shop)" } else { "" }
                ),
            );
            if cfg.receipt.is_some() && shop.fiscalization_enabled == Some(false) {
                r.push(
                    Status::Warn,
                    what,
                    "yookassa.receipt is on but the shop has no fiscalization: payments with receipts will be refused",
                );
            }
        }
        Err(crate::yookassa::YooError::Api { status: 401, .. }) => r.push(
            Status::Fail,
            what,
            "the shop id or secret key was rejected (yookassa.shop_id, yookassa.secret_key)",
        ),
        Err(e) => r.push(
            Status::Fail,
            what,
            format!("{} does not answer as expected: {e}", cfg.api_url),
        ),
    }
    if cfg.trusted_header.is_none() && config.web.listen.ip().is_loopback() {
        r.push(
            Status::Warn,
            what,
            "web.listen is loopback and yookassa.trusted_header is unset: notifications through a reverse proxy come from 127.0.0.1 and are refused; set trusted_header (e.g. \"X-Real-IP\")",
        );
    }
}

async fn check_telegram(r: &mut DoctorReport, config: &Config) {
    let Some(token) = &config.telegram.token else {
        return r.push(
            Status::Warn,
            "telegram",
            "no token (telegram.token, or a line in telegram.token_file — /etc/qwenedit/credentials from the .deb — or QWENEDIT_TELEGRAM__TOKEN): the bot stays off",
        );
    };
    let base = config.telegram.api_url.as_str().trim_end_matches('/');
    let url = format!("{base}/bot{}/getMe", token.expose_secret());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    match client.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            if v["ok"] == true {
                let name = v["result"]["username"].as_str().unwrap_or("?");
                r.push(Status::Ok, "telegram", format!("token works: @{name}"));
            } else if status.as_u16() == 401 || status.as_u16() == 404 {
                r.push(
                    Status::Fail,
                    "telegram",
                    "the bot token was rejected; get a new one from @BotFather",
                );
            } else {
                r.push(Status::Fail, "telegram", format!("getMe answered {status}"));
            }
        }
        // reqwest's error text may contain the URL, and the URL the token: keep it out.
        Err(e) => r.push(
            Status::Fail,
            "telegram",
            format!(
                "{base} is unreachable ({})",
                if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                }
            ),
        ),
    }
}

async fn check_backend(
    r: &mut DoctorReport,
    config: &Config,
    url: &reqwest::Url,
    workflows: &std::collections::BTreeMap<String, Workflow>,
) {
    let what = format!("comfyui {}", url.as_str().trim_end_matches('/'));
    let client = ComfyClient::new(url.clone(), Duration::from_secs(20));
    let stats = match client.system_stats().await {
        Ok(s) => s,
        Err(ComfyError::Unreachable { message, .. }) => {
            return r.push(
                Status::Fail,
                what,
                format!("not reachable ({message}); is ComfyUI running?"),
            );
        }
        Err(e) => return r.push(Status::Fail, what, e.to_string()),
    };
    let device = stats.devices.first().cloned().unwrap_or_default();
    let vram = if device.vram_total > 0 {
        format!(
            ", {:.1} of {:.1} GiB VRAM free",
            gib(device.vram_free),
            gib(device.vram_total)
        )
    } else {
        String::new()
    };
    let device_note = if device.kind == "cpu" {
        (Status::Warn, " — no GPU: edits will be very slow")
    } else {
        (Status::Ok, "")
    };
    r.push(
        device_note.0,
        what.clone(),
        format!(
            "ComfyUI {} on {}{vram}{}",
            stats.system.comfyui_version, device.name, device_note.1
        ),
    );
    for (name, workflow) in workflows {
        let mut missing_nodes = Vec::new();
        for class in workflow.node_types() {
            match client.object_info(&class).await {
                Ok(Some(_)) => {}
                Ok(None) => missing_nodes.push(class),
                Err(e) => return r.push(Status::Fail, what, format!("object_info failed: {e}")),
            }
        }
        let check = format!("{what} · {name}");
        if !missing_nodes.is_empty() {
            r.push(
                Status::Fail,
                check.clone(),
                format!(
                    "node types missing: {} (update ComfyUI or install the custom nodes)",
                    missing_nodes.join(", ")
                ),
            );
        }
        // The files the workflow will really ask for, after the config's overrides.
        let slots = workflow.image_slots();
        let patched = workflow.patch(&Patch {
            images: (0..slots).map(|i| format!("doctor{i}.png")).collect(),
            models: config.comfyui.models.clone(),
            output_prefix: "doctor".into(),
            ..Patch::default()
        });
        let graph = match patched {
            Ok(g) => g,
            Err(e) => {
                r.push(Status::Fail, check, e.to_string());
                continue;
            }
        };
        let mut missing_models = Vec::new();
        for (class, input, file) in model_files_in(&graph) {
            if missing_nodes.contains(&class) {
                continue;
            }
            let options = match client.object_info(&class).await {
                Ok(Some(spec)) => combo_options(&spec, &input),
                _ => None,
            };
            if options.is_some_and(|o| !o.contains(&file)) {
                missing_models.push(format!(
                    "{file} → put it into ComfyUI/models/{}/",
                    models_folder(&input)
                ));
            }
        }
        if missing_models.is_empty() && missing_nodes.is_empty() {
            r.push(Status::Ok, check, "all nodes and model files present");
        } else if !missing_models.is_empty() {
            r.push(
                Status::Fail,
                check,
                format!("model files missing: {}", missing_models.join("; ")),
            );
        }
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}
