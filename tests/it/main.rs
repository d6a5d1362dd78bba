//! The one integration test binary: the real app against fakes, real storage in temp dirs.

mod support;

mod bad_input;
mod bot_admin;
mod bot_edges;
mod bot_flows;
mod cli_admin;
mod cli_engine;
mod comfy_client;
mod config;
mod crash;
mod crash_points;
mod disk_full;
mod fake_telegram_selftest;
mod ledger_props;
mod load;
mod money;
mod queue;
mod tg_faults;
mod uploads;
mod worker;
mod workflows;
