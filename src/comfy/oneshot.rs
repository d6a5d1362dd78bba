//! One graph run straight through ComfyUI, for `qwenedit edit`: submit, follow the socket for
//! progress, then `/history` and `/view`.

use std::time::Duration;

use serde_json::Value;

use super::{ComfyClient, ComfyError, Event, Socket};

/// Runs `graph` as `prompt_id`, reporting sampling progress (0..=100), and returns the bytes of
/// every image of `output_node`. Interrupts the run when `timeout` passes.
pub async fn run_graph(
    client: &ComfyClient,
    graph: &Value,
    prompt_id: &str,
    output_node: &str,
    timeout: Duration,
    mut progress: impl FnMut(u8),
) -> Result<Vec<Vec<u8>>, ComfyError> {
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
                return Err(ComfyError::Protocol(format!("no result within {}s; interrupted", timeout.as_secs())));
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
                return Err(ComfyError::Interrupted);
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
            });
        }
        return Err(ComfyError::Interrupted);
    }
    let images = history
        .outputs
        .get(output_node)
        .map(|o| o.images.clone())
        .unwrap_or_default();
    if images.is_empty() {
        return Err(ComfyError::MissingOutput(format!("node {output_node}")));
    }
    let mut out = Vec::new();
    for image in &images {
        out.push(client.view(image).await?);
    }
    progress(100);
    Ok(out)
}
