//! The command line. One file per subcommand; only this module knows clap.

mod admin;
mod backup;
mod doctor;
mod edit;
mod logging;
mod render;
mod serve;
mod systemd;
mod target;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_PATH};

#[derive(Parser, Debug)]
#[command(
    name = "qwenedit",
    version,
    about = "Photo edits with Qwen-Image-Edit, sold for points in Telegram"
)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "QWENEDIT_CONFIG", default_value = DEFAULT_PATH)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run everything: web server, admin API (and the bot and workers).
    Serve,
    /// Operator commands; they talk to the running service, or open the store when it is stopped.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Write a consistent copy of all data into DIR (a new folder).
    Backup(backup::BackupArgs),
    /// One edit straight through ComfyUI, without Telegram.
    Edit(edit::EditArgs),
    /// Check the config, ComfyUI backends, workflows, models and the bot token.
    Doctor,
    /// Turn every image dropped into a folder into an edit: through the running service's API,
    /// or with its own workers when the service is stopped.
    Watch(watch::WatchArgs),
    /// Print the man page (roff) on stdout; the .deb is built with it.
    #[command(hide = true)]
    Man,
}

/// A failure to report on stderr; the message is already phrased for the operator.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

/// The man page, from the same definitions as `--help`.
fn man() -> Result<(), CliError> {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(())
}

pub fn load_config(path: &std::path::Path) -> Result<Config, CliError> {
    Config::load(path).map_err(|e| CliError(e.to_string()))
}

pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve => serve::run(&cli.config),
        Command::Admin { command } => admin::run(&cli.config, command),
        Command::Backup(args) => backup::run(&cli.config, args),
        Command::Edit(args) => edit::run(&cli.config, args),
        Command::Doctor => doctor::run(&cli.config),
        Command::Watch(args) => watch::run(&cli.config, args),
        Command::Man => man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
