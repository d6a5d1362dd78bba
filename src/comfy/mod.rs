//! ComfyUI: the HTTP client, the WebSocket events and workflow templating. Only this module
//! knows ComfyUI's JSON. Behaviour follows `shared/protocols/comfyui.md`, traps included:
//! `node_errors` on a 200 is a failure, completion is `executing` with `node: null` and then
//! `/history` is the authority, outputs come through `/view`, error texts (with server paths)
//! are logged and never shown to users.

pub mod client;
mod error;
mod events;
pub mod oneshot;
mod types;
pub mod workflow;

pub use client::ComfyClient;
pub use error::ComfyError;
pub use events::{Event, Socket};
pub use types::{History, OutputImage, QueueSnapshot, SystemStats};
pub use workflow::{ModelSettings, Patch, Workflow, WorkflowError};
