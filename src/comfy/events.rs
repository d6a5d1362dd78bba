//! The WebSocket side: one socket per client id, frames turned into typed events.

use futures_util::StreamExt;
use reqwest::Url;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::error::ComfyError;

/// What ComfyUI tells a client about its prompts.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Queue length changed.
    Status {
        queue_remaining: Option<u64>,
    },
    ExecutionStart {
        prompt_id: String,
    },
    /// Nodes served from cache (a re-run of an identical graph).
    Cached {
        prompt_id: String,
        nodes: Vec<String>,
    },
    /// A node starts; `node: None` with our prompt id means the prompt is over. After a
    /// reconnect, ComfyUI sends one without a prompt id.
    Executing {
        prompt_id: Option<String>,
        node: Option<String>,
    },
    /// A node's progress bar (KSampler: one per step).
    Progress {
        prompt_id: Option<String>,
        node: Option<String>,
        value: f64,
        max: f64,
    },
    Executed {
        prompt_id: String,
        node: String,
    },
    Success {
        prompt_id: String,
    },
    Error {
        prompt_id: String,
        node_type: String,
        exception_type: String,
        exception_message: String,
    },
    /// Broadcast to every socket.
    Interrupted {
        prompt_id: String,
    },
    /// Anything else (progress_state, feature_flags, previews, unknown events).
    Other,
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Event {
    /// Parses one text frame; unknown or malformed frames are `Other`.
    pub fn parse(text: &str) -> Event {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return Event::Other;
        };
        let d = &v["data"];
        let prompt = || s(d, "prompt_id");
        match v["type"].as_str().unwrap_or("") {
            "status" => Event::Status {
                queue_remaining: d["status"]["exec_info"]["queue_remaining"].as_u64(),
            },
            "execution_start" => prompt().map_or(Event::Other, |prompt_id| Event::ExecutionStart {
                prompt_id,
            }),
            "execution_cached" => prompt().map_or(Event::Other, |prompt_id| Event::Cached {
                prompt_id,
                nodes: d["nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            "executing" => Event::Executing {
                prompt_id: prompt(),
                node: s(d, "node"),
            },
            "progress" => Event::Progress {
                prompt_id: prompt(),
                node: s(d, "node"),
                value: d["value"].as_f64().unwrap_or(0.0),
                max: d["max"].as_f64().unwrap_or(0.0),
            },
            "executed" => match (prompt(), s(d, "node")) {
                (Some(prompt_id), Some(node)) => Event::Executed { prompt_id, node },
                _ => Event::Other,
            },
            "execution_success" => {
                prompt().map_or(Event::Other, |prompt_id| Event::Success { prompt_id })
            }
            "execution_error" => prompt().map_or(Event::Other, |prompt_id| Event::Error {
                prompt_id,
                node_type: s(d, "node_type").unwrap_or_default(),
                exception_type: s(d, "exception_type").unwrap_or_default(),
                exception_message: s(d, "exception_message").unwrap_or_default(),
            }),
            "execution_interrupted" => {
                prompt().map_or(Event::Other, |prompt_id| Event::Interrupted { prompt_id })
            }
            _ => Event::Other,
        }
    }
}

/// A WebSocket to one ComfyUI with our client id. Close it before opening another with the
/// same id (two sockets with one id make the newer one deaf, comfyui.md §3 rule 6).
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    pub async fn connect(base: &Url, client_id: &str) -> Result<Socket, ComfyError> {
        let mut url = base.clone();
        let scheme = if base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        url.set_scheme(scheme)
            .map_err(|_| ComfyError::Protocol(format!("cannot make a WebSocket URL of {base}")))?;
        let path = format!("{}/ws", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.query_pairs_mut()
            .clear()
            .append_pair("clientId", client_id);
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| ComfyError::Unreachable {
                url: base.to_string(),
                message: e.to_string(),
            })?;
        Ok(Socket { ws })
    }

    /// The next event; `None` when the socket closed or failed.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => return Some(Event::parse(&text)),
                Ok(Message::Close(_)) | Err(_) => return None,
                // Binary frames are previews; pings are answered by tungstenite.
                Ok(_) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recorded_frames() {
        assert_eq!(
            Event::parse(r#"{"type":"executing","data":{"node":null,"prompt_id":"p1"}}"#),
            Event::Executing {
                prompt_id: Some("p1".into()),
                node: None
            }
        );
        assert_eq!(
            Event::parse(r#"{"type":"executing","data":{"node":"10"}}"#),
            Event::Executing {
                prompt_id: None,
                node: Some("10".into())
            }
        );
        assert_eq!(
            Event::parse(
                r#"{"type":"progress","data":{"value":2,"max":4,"prompt_id":"p1","node":"3"}}"#
            ),
            Event::Progress {
                prompt_id: Some("p1".into()),
                node: Some("3".into()),
                value: 2.0,
                max: 4.0
            }
        );
        assert!(matches!(
            Event::parse(r#"{"type":"execution_error","data":{"prompt_id":"p1","node_id":"1","node_type":"LoadImage","exception_type":"PIL.UnidentifiedImageError","exception_message":"cannot identify image file '/opt/comfyui/input/corrupt.png'\n"}}"#),
            Event::Error { node_type, .. } if node_type == "LoadImage"
        ));
        assert_eq!(Event::parse("not json"), Event::Other);
        assert_eq!(
            Event::parse(r#"{"type":"progress_state","data":{}}"#),
            Event::Other
        );
    }
}
