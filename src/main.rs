//! The `qwenedit` binary: parse the command line and hand over to `cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    qwenedit::cli::main(qwenedit::cli::Cli::parse())
}
