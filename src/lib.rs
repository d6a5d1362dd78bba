//! qwenedit: a Telegram bot that edits photos with Qwen-Image-Edit in a local ComfyUI, sold for
//! points. Modules in reading order; ARCHITECTURE.md has the map and the invariants.

pub mod app;
pub mod bot;
pub mod cli;
pub mod codec;
pub mod comfy;
pub mod config;
pub mod domain;
pub mod faults;
pub mod files;
pub mod media;
pub mod ops;
pub mod presets;
pub mod queue;
pub mod store;
pub mod telemetry;
pub mod watch;
pub mod web;
pub mod worker;
pub mod yookassa;
