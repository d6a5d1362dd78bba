//! One graph run straight through ComfyUI, for `qwenedit edit`: submit, follow the socket for
//! progress, then `/history` and `/view`.

use std::time::Duration;

use serde_json::Value;

use super::{ComfyClient, ComfyError, Event, Socket};

/// Why [`run_graph_within`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Comfy(#[from] ComfyError),
    /// The timeout passed; the run was interrupted and taken off the queue.
    #[error("no result within {}; interrupted", show_duration(*.0))]
    TimedOut(Duration),
}

/// Runs `graph` as `prompt_id`, reporting sampling progress (0..=100), and returns the bytes of
/// every image of `output_node`. Interrupts the run when `timeout` passes (a
/// [`ComfyError::Protocol`]; [`run_graph_within`] tells a timeout apart).
pub async fn run_graph(
    client: &ComfyClient,
    graph: &Value,
    prompt_id: &str,
    output_node: &str,
    timeout: Duration,
    progress: impl FnMut(u8),
) -> Result<Vec<Vec<u8>>, ComfyError> {
    run_graph_within(client, graph, prompt_id, output_node, timeout, progress)
        .await
        .map_err(|e| match e {
            RunError::Comfy(e) => e,
            timed_out @ RunError::TimedOut(_) => ComfyError::Protocol(timed_out.to_string()),
        })
}

/// [`run_graph`], with a timeout told apart from ComfyUI's failures.
pub async fn run_graph_within(
    client: &ComfyClient,
    graph: &Value,
    prompt_id: &str,
    output_node: &str,
    timeout: Duration,
    mut progress: impl FnMut(u8),
) -> Result<Vec<Vec<u8>>, RunError> {
    let client_id = format!("qwenedit-cli-{}", ulid::Ulid::new());
    let mut socket = Socket::connect(client.base(), &client_id).await?;
    client.queue_prompt(graph, prompt_id, &client_id).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::select! {
            ev = socket.next() => ev,
            _ = tokio::time::sleep_until(deadline) => {
                let _ = client.interrupt(prompt_id).await;
                let _ = client.delete_pending(&[prompt_id.to_string()]).await;
                socket.close().await;
                return Err(RunError::TimedOut(timeout));
            }
        };
        match ev {
            // The socket dropped: the history tells whether it finished meanwhile.
            None => break,
            Some(Event::Progress {
                prompt_id: Some(p),
                value,
                max,
                ..
            }) if p == prompt_id && max > 0.0 => {
                progress(((value / max) * 100.0).clamp(0.0, 100.0) as u8);
            }
            Some(Event::Executing {
                prompt_id: Some(p),
                node: None,
            }) if p == prompt_id => break,
            Some(Event::Interrupted { prompt_id: p }) if p == prompt_id => {
                socket.close().await;
                return Err(ComfyError::Interrupted.into());
            }
            Some(_) => {}
        }
    }
    socket.close().await;
    // History may lag the end by a moment, and after a dropped socket the run may still be
    // going: poll until it shows up, while ComfyUI still has it, up to the deadline.
    let mut history = None;
    let mut gone_polls = 0;
    while tokio::time::Instant::now() < deadline {
        if let Some(h) = client.history(prompt_id).await? {
            history = Some(h);
            break;
        }
        if client.queue().await?.contains(prompt_id) {
            gone_polls = 0;
        } else {
            gone_polls += 1;
            if gone_polls > 20 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = history.ok_or_else(|| ComfyError::Protocol("the run left no history".into()))?;
    if !history.succeeded() {
        if let Some((node_type, exception_type, message)) = history.error() {
            return Err(ComfyError::Execution {
                node_type,
                exception_type,
                message,
            }
            .into());
        }
        return Err(ComfyError::Interrupted.into());
    }
    let images = history
        .outputs
        .get(output_node)
        .map(|o| o.images.clone())
        .unwrap_or_default();
    if images.is_empty() {
        return Err(ComfyError::MissingOutput(format!("node {output_node}")).into());
    }
    let mut out = Vec::new();
    for image in &images {
        out.push(client.view(image).await?);
    }
    progress(100);
    Ok(out)
}

/// `2s`, `1500ms`: a timeout as the config writes it.
pub fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
