//! The one integration test binary: the real app against fakes, real storage in temp dirs.

mod support;

mod bot_admin;
mod bot_edges;
mod bot_flows;
mod bot_money;
mod bot_stars;
mod bot_yookassa;
mod cli_admin;
mod cli_engine;
mod comfy_client;
mod config;
mod crash;
mod fake_telegram_selftest;
mod ledger_props;
mod money;
mod money_props;
mod queue;
mod uploads;
mod worker;
mod workflows;
mod yookassa;
