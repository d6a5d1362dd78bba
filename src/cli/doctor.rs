//! `qwenedit doctor`: a readable checklist; exits non-zero when something is wrong.

use std::path::Path;

use super::{CliError, load_config, logging};
use crate::ops::{self, DoctorReport, Status};

pub fn run(config_path: &Path) -> Result<(), CliError> {
    logging::init_quiet();
    let config = load_config(config_path)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(ops::doctor(&config, config_path));
    print!("{}", render(&report));
    match report.failures() {
        0 => Ok(()),
        1 => Err(CliError("1 problem found".into())),
        n => Err(CliError(format!("{n} problems found"))),
    }
}

pub fn render(report: &DoctorReport) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.what.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for c in &report.checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let pad = width - c.what.chars().count();
        out.push_str(&format!(
            "{mark}  {}{}  {}\n",
            c.what,
            " ".repeat(pad),
            c.detail
        ));
    }
    if report.failures() == 0 {
        out.push_str("everything needed is in place\n");
    }
    out
}
