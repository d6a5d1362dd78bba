//! The status page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! scripts/setup-test-deps) driven over the DevTools protocol. The page loads without console
//! errors, its refresh picks up changes of the app more than once, and screenshots (desktop
//! and phone) are saved to `target/test-artifacts/` for a person to look at.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use qwenedit::domain::{Lane, UserId};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::web::WebApp;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: Socket,
    next_id: u64,
    /// Every event seen (console messages, exceptions, log entries).
    events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for name in ["chromium", "chromium-browser"] {
            let p = PathBuf::from(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("chromium is not installed: run scripts/setup-test-deps (apt-get install chromium)");
}

impl Browser {
    async fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Chromium prints its DevTools address on stderr; keep draining it afterwards.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.strip_prefix("DevTools listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
        let browser_ws = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("chromium did not print its DevTools address within 60 s")
            .expect("chromium exited early");
        let host = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let targets: Vec<Value> = reqwest::get(format!("http://{host}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page_ws = targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(page_ws).await.unwrap();
        Browser {
            child,
            _profile: profile,
            socket,
            next_id: 0,
            events: Vec::new(),
        }
    }

    /// Sends one DevTools command and returns its result; events in between are kept.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer within 60 s"));
            let text = match next {
                Some(Ok(Message::Text(t))) => t.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("{method}: DevTools socket ended: {other:?}"),
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Resolves when the element's text becomes `want` (watched with a MutationObserver on the
    /// refreshed part), failing after `secs`.
    async fn wait_text(&mut self, id: &str, want: &str, secs: u32) {
        let expr = format!(
            r##"new Promise((resolve, reject) => {{
                const check = () => {{
                    const e = document.getElementById({id:?});
                    return e !== null && e.textContent === {want:?};
                }};
                if (check()) {{ resolve(true); return; }}
                const o = new MutationObserver(() => {{ if (check()) {{ o.disconnect(); resolve(true); }} }});
                o.observe(document.body, {{ childList: true, subtree: true, characterData: true }});
                setTimeout(() => reject(new Error("#{id} did not become {want} within {secs} s")), {secs} * 1000);
            }})"##
        );
        self.eval(&expr).await;
    }

    fn errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => true,
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .collect()
    }

    async fn screenshot(&mut self, width: u32, height: u32, mobile: bool, name: &str) -> PathBuf {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
        // Full page: grow the viewport to the content's height.
        let content = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .await
            .as_u64()
            .unwrap_or(u64::from(height));
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": content.max(u64::from(height)), "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// `<target dir>/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_relative() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(target)
    } else {
        target
    };
    target.join("test-artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_loads_cleanly_in_chromium_and_keeps_refreshing() {
    let w = WebApp::start("").await;
    w.seed();
    let mut b = Browser::launch().await;
    b.call("Runtime.enable", json!({})).await;
    b.call("Log.enable", json!({})).await;
    b.call("Page.enable", json!({})).await;
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    // Refresh every 300 ms instead of 5 s.
    b.call("Page.navigate", json!({ "url": w.url("/?refresh=0.3") }))
        .await;
    b.eval(
        r#"new Promise(r => document.readyState === 'complete' ? r(true) : addEventListener('load', () => r(true)))"#,
    )
    .await;
    assert_eq!(b.eval("document.title").await, "qwenedit status");
    b.wait_text("queue-waiting", "2", 20).await;

    // The app changes; the open page follows, twice.
    w.submit(20, UserId::new(1002), Some("anime"), Lane::Normal);
    b.wait_text("queue-waiting", "3", 20).await;
    w.user(1004, "dan");
    b.wait_text("users-total", "4", 20).await;
    assert_eq!(
        b.eval("document.getElementById('conn').className").await,
        "dot ok",
        "the live dot says the page is current"
    );

    let desktop = b.screenshot(1280, 900, false, "status.png").await;
    let phone = b.screenshot(412, 915, true, "status-phone.png").await;
    // On a phone nothing sticks out sideways but the tables (which scroll in their box).
    let overflow = b
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(overflow, true, "the page fits a phone's width");
    println!("screenshots: {} {}", desktop.display(), phone.display());

    let errors = b.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    drop(b);
    w.stop().await;
}
