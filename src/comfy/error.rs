//! What can go wrong talking to ComfyUI, and whether trying again may help.

#[derive(Debug, thiserror::Error)]
pub enum ComfyError {
    #[error("ComfyUI at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("ComfyUI answered {status} to {what}: {body}")]
    Http {
        what: &'static str,
        status: u16,
        body: String,
    },
    /// `/prompt` refused the graph (validation), or accepted it with `node_errors`.
    #[error("ComfyUI rejected the workflow: {0}")]
    Rejected(String),
    /// A node failed while running.
    #[error("ComfyUI failed in node {node_type}: {exception_type}: {message}")]
    Execution {
        node_type: String,
        exception_type: String,
        message: String,
    },
    #[error("the run was interrupted")]
    Interrupted,
    #[error("ComfyUI's answer was not understood: {0}")]
    Protocol(String),
    #[error("the output {0} is missing from ComfyUI")]
    MissingOutput(String),
}

impl ComfyError {
    /// Transient faults are retried; a rejected workflow will be rejected again.
    pub fn is_transient(&self) -> bool {
        match self {
            ComfyError::Rejected(_) => false,
            ComfyError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => true,
        }
    }

    pub(crate) fn unreachable(url: &reqwest::Url, e: &reqwest::Error) -> Self {
        ComfyError::Unreachable {
            url: url.to_string(),
            message: e.to_string(),
        }
    }
}
