//! The one integration test binary: the real app against fakes, real storage in temp dirs.

mod support;

mod api_v1;
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
mod data_care;
mod deb;
mod fake_telegram_selftest;
mod ledger_props;
mod logs;
mod metrics;
mod money;
mod money_props;
mod openapi;
mod queue;
mod status_browser;
mod status_page;
mod systemd_notify;
mod uploads;
mod watch;
mod worker;
mod workflows;
mod yookassa;
