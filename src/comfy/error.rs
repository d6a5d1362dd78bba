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

    /// reqwest's own text is only "error sending request"; the cause (connection refused,
    /// timed out) is in its source chain.
    pub(crate) fn unreachable(url: &reqwest::Url, e: &reqwest::Error) -> Self {
        let mut message = if e.is_timeout() {
            "timed out".to_string()
        } else {
            String::new()
        };
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message = cause.to_string();
            source = cause.source();
        }
        if message.is_empty() {
            message = "request failed".to_string();
        }
        ComfyError::Unreachable {
            url: url.to_string(),
            message,
        }
    }
}
