//! A fake ComfyUI that behaves like `shared/protocols/comfyui.md` describes, traps included:
//! `node_errors` on a 200, `execution_success` before the history entry, no replay after a
//! reconnect, the deaf second socket of one client id, interrupts at step boundaries, the
//! cache, `{}` for unknown classes and ids, both combo syntaxes.
//!
//! It runs on its own runtime thread (also for [`FakeComfy::start`]), so that [`FakeComfy::set_down`]
//! can wait until the port is really closed. Only configured delays sleep; everything else is
//! driven by events.

#![allow(dead_code)] // each test uses a part of the fake

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::multipart;

/// What the fake does with one queued prompt.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Runs every node; `progress` 1..=steps on the KSampler (or the first node), `step_ms`
    /// before each step.
    Succeed { steps: u32, step_ms: u64 },
    /// `/prompt` answers 200 with `node_errors` (a second, invalid output branch); the valid
    /// graph runs anyway.
    NodeErrors,
    /// `/prompt` answers 500 text/plain.
    Http500,
    /// The first node fails at runtime, with a server path in the message.
    ExecutionError,
    /// Closes every WebSocket after step k; the run still finishes.
    DropSocketsAfterStep(u32),
    /// `execution_start`, then nothing until interrupted.
    Hang,
    /// The history entry is written `ms` after `executing` null.
    SlowHistory { ms: u64 },
    /// Succeeds, but `/view` of its images answers 404.
    MissingOutput,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::Succeed {
            steps: 4,
            step_ms: 0,
        }
    }
}

/// A prompt the fake queued (a 200 from `/prompt`).
#[derive(Clone, Debug)]
pub struct PromptSeen {
    pub id: String,
    pub client_id: Option<String>,
    pub graph: Value,
    pub number: i64,
}

/// An accepted upload.
#[derive(Clone, Debug)]
pub struct UploadSeen {
    /// The name as stored (maybe renamed to `x (1).png`).
    pub name: String,
    pub subfolder: String,
    pub len: usize,
}

/// A fake ComfyUI on 127.0.0.1. Cheap to clone; stops when the last clone drops.
#[derive(Clone)]
pub struct FakeComfy {
    inner: Arc<Owner>,
}

struct Owner {
    sh: Arc<Shared>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Clone, Debug)]
struct Job {
    number: i64,
    id: String,
    graph: Value,
    extra: Value,
    outputs: Vec<String>,
    client_id: Option<String>,
    behavior: Behavior,
}

enum Out {
    Text(String),
    Close,
}

type FileKey = (String, String, String); // (type, subfolder, name)

struct St {
    next_number: i64,
    script: VecDeque<Behavior>,
    default: Behavior,
    models: BTreeMap<String, Vec<String>>,
    files: HashMap<FileKey, Vec<u8>>,
    counters: HashMap<(String, String), u32>,
    pending: Vec<Job>,
    running: Option<Job>,
    current_node: Option<String>,
    interrupt: bool,
    history: Vec<(String, Value)>,
    last_success: Option<(Value, Map<String, Value>)>,
    prompts: Vec<PromptSeen>,
    uploads: Vec<UploadSeen>,
    interrupts: Vec<Option<String>>,
    deleted: Vec<String>,
    started: usize,
    finished: Vec<(String, i64, i64)>,
    next_conn: u64,
    conns: HashMap<u64, mpsc::UnboundedSender<Out>>,
    by_client: HashMap<String, u64>,
    kicked: HashSet<u64>,
    ws_open: usize,
    http_open: usize,
    listening: bool,
    new_listener: Option<std::net::TcpListener>,
    /// `/view` requests still to hold (see [`FakeComfy::hold_next_views`]).
    hold_views: usize,
    /// `/view` requests held so far.
    views_held: usize,
    /// Bumped by [`FakeComfy::release_views`].
    view_release: u64,
}

struct Shared {
    st: Mutex<St>,
    /// Signalled when connection counts or `listening` change (for `set_down`).
    cv: Condvar,
    /// Bumped on every state change the async waiters care about.
    tick: watch::Sender<u64>,
    down: watch::Sender<bool>,
    work: Notify,
    interrupted: Notify,
    addr: SocketAddr,
    t0: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.tick.send_modify(|v| *v += 1);
        self.cv.notify_all();
    }

    fn ms(&self) -> i64 {
        self.t0.elapsed().as_millis() as i64
    }
}

pub const DEFAULT_MODELS: &[(&str, &str)] = &[
    (
        "diffusion_models",
        "qwen_image_edit_2511_fp8mixed.safetensors",
    ),
    ("text_encoders", "qwen_2.5_vl_7b_fp8_scaled.safetensors"),
    ("vae", "qwen_image_vae.safetensors"),
    (
        "loras",
        "Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors",
    ),
];

const MODEL_FOLDERS: &[&str] = &[
    "checkpoints",
    "clip",
    "clip_vision",
    "configs",
    "controlnet",
    "diffusion_models",
    "embeddings",
    "loras",
    "text_encoders",
    "unet",
    "upscale_models",
    "vae",
    "vae_approx",
];

const OUTPUT_CLASSES: &[&str] = &["SaveImage", "PreviewImage"];

impl FakeComfy {
    /// Starts a fake (on its own runtime thread) on 127.0.0.1 and a free port.
    pub async fn start() -> FakeComfy {
        Self::start_in_thread()
    }

    /// Starts a fake on its own runtime thread; usable outside any runtime.
    pub fn start_in_thread() -> FakeComfy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake ComfyUI: bind");
        listener
            .set_nonblocking(true)
            .expect("fake ComfyUI: nonblocking");
        let addr = listener.local_addr().expect("fake ComfyUI: local addr");
        let mut models: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (folder, file) in DEFAULT_MODELS {
            models
                .entry(folder.to_string())
                .or_default()
                .push(file.to_string());
        }
        let st = St {
            next_number: 0,
            script: VecDeque::new(),
            default: Behavior::default(),
            models,
            files: HashMap::new(),
            counters: HashMap::new(),
            pending: Vec::new(),
            running: None,
            current_node: None,
            interrupt: false,
            history: Vec::new(),
            last_success: None,
            prompts: Vec::new(),
            uploads: Vec::new(),
            interrupts: Vec::new(),
            deleted: Vec::new(),
            started: 0,
            finished: Vec::new(),
            next_conn: 0,
            conns: HashMap::new(),
            by_client: HashMap::new(),
            kicked: HashSet::new(),
            ws_open: 0,
            http_open: 0,
            listening: true,
            new_listener: Some(listener),
            hold_views: 0,
            views_held: 0,
            view_release: 0,
        };
        let sh = Arc::new(Shared {
            st: Mutex::new(st),
            cv: Condvar::new(),
            tick: watch::Sender::new(0),
            down: watch::Sender::new(false),
            work: Notify::new(),
            interrupted: Notify::new(),
            addr,
            t0: Instant::now(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sh2 = sh.clone();
        std::thread::Builder::new()
            .name(format!("fake-comfy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake ComfyUI: runtime");
                rt.block_on(async move {
                    tokio::spawn(accept_loop(sh2.clone()));
                    tokio::spawn(executor(sh2));
                    let _ = stop_rx.await;
                });
                rt.shutdown_background();
            })
            .expect("fake ComfyUI: thread");
        FakeComfy {
            inner: Arc::new(Owner {
                sh,
                stop: Mutex::new(Some(stop_tx)),
            }),
        }
    }

    fn sh(&self) -> &Arc<Shared> {
        &self.inner.sh
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}/", self.sh().addr)).unwrap()
    }

    /// The behaviour of the next queued prompt (FIFO).
    pub fn script(&self, b: Behavior) {
        self.sh().lock().script.push_back(b);
    }

    /// The behaviour when the script is empty (initially `Succeed { steps: 4, step_ms: 0 }`).
    pub fn set_default(&self, b: Behavior) {
        self.sh().lock().default = b;
    }

    /// `true`: refuses every new connection (they are reset at once), closes every open HTTP
    /// connection and WebSocket, and returns once they are closed. `false`: serves again, on the
    /// same port (which it never gave up).
    pub fn set_down(&self, down: bool) {
        let sh = self.sh();
        if down {
            {
                let mut st = sh.lock();
                kick_ws(&mut st);
            }
            sh.down.send_replace(true);
            let st = sh.lock();
            let (st, timeout) = sh
                .cv
                .wait_timeout_while(st, Duration::from_secs(10), |st| {
                    st.http_open > 0 || st.ws_open > 0
                })
                .unwrap_or_else(|e| e.into_inner());
            assert!(
                !timeout.timed_out(),
                "fake ComfyUI: still open 10 s after set_down(true): {} HTTP, {} WS",
                st.http_open,
                st.ws_open
            );
        } else {
            sh.down.send_replace(false);
        }
    }

    /// The files of `models/{folder}`; loader combos list them.
    pub fn set_models(&self, folder: &str, files: &[&str]) {
        self.sh().lock().models.insert(
            folder.to_string(),
            files.iter().map(|f| f.to_string()).collect(),
        );
    }

    /// Every queued prompt (a 200 from `/prompt`), in order.
    pub fn prompts(&self) -> Vec<PromptSeen> {
        self.sh().lock().prompts.clone()
    }

    pub fn uploads(&self) -> Vec<UploadSeen> {
        self.sh().lock().uploads.clone()
    }

    /// Every `POST /interrupt`: `Some(id)` targeted, `None` global.
    pub fn interrupts(&self) -> Vec<Option<String>> {
        self.sh().lock().interrupts.clone()
    }

    /// Ids removed from the pending queue by `POST /queue` (delete or clear).
    pub fn deleted(&self) -> Vec<String> {
        self.sh().lock().deleted.clone()
    }

    /// WebSockets currently open (including a deaf one, trap 6).
    pub fn sockets(&self) -> usize {
        self.sh().lock().ws_open
    }

    /// Waits until `n` prompts have finished (success, error or interrupt); panics after 20 s.
    pub async fn wait_finished(&self, n: usize) {
        self.wait_until(&format!("{n} finished prompt(s)"), |st| {
            st.finished.len() >= n
        })
        .await
    }

    /// Waits until `n` prompts have started executing; panics after 20 s.
    pub async fn wait_started(&self, n: usize) {
        self.wait_until(&format!("{n} started prompt(s)"), |st| st.started >= n)
            .await
    }

    /// Waits until exactly `n` WebSockets are open; panics after 20 s.
    pub async fn wait_sockets(&self, n: usize) {
        self.wait_until(&format!("{n} open socket(s)"), |st| st.ws_open == n)
            .await
    }

    async fn wait_until(&self, what: &str, done: impl Fn(&St) -> bool) {
        let sh = self.sh().clone();
        let mut rx = sh.tick.subscribe();
        let reached = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if done(&sh.lock()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if reached.is_err() {
            let st = sh.lock();
            panic!(
                "fake ComfyUI: waited 20 s for {what}: {} queued, {} started, {} finished, {} sockets, running {:?}, pending {:?}",
                st.prompts.len(),
                st.started,
                st.finished.len(),
                st.ws_open,
                st.running.as_ref().map(|j| &j.id),
                st.pending.iter().map(|j| &j.id).collect::<Vec<_>>()
            );
        }
    }

    /// The next `n` `/view` requests wait (unanswered) until [`FakeComfy::release_views`]; 0
    /// disarms what is left.
    pub fn hold_next_views(&self, n: usize) {
        self.sh().lock().hold_views = n;
    }

    /// Answers every held `/view` request.
    pub fn release_views(&self) {
        self.sh().lock().view_release += 1;
        self.sh().bump();
    }

    /// How many `/view` requests were held so far.
    pub fn views_held(&self) -> usize {
        self.sh().lock().views_held
    }

    /// Waits until `n` `/view` requests have been held; panics after 20 s.
    pub async fn wait_views_held(&self, n: usize) {
        self.wait_until(&format!("{n} held /view request(s)"), |st| {
            st.views_held >= n
        })
        .await
    }

    /// (prompt id, start ms, end ms) of every finished prompt, since the fake started.
    pub fn finished(&self) -> Vec<(String, i64, i64)> {
        self.sh().lock().finished.clone()
    }
}

// ---------------------------------------------------------------- connections

async fn went_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|d| *d).await;
}

/// Accepts for the fake's whole life. While "down", connections are closed at once: the port
/// stays ours (a freed port could be taken by another test's server, and this test's client
/// would then talk to it).
async fn accept_loop(sh: Arc<Shared>) {
    let app = router(sh.clone());
    let Some(std_listener) = sh.lock().new_listener.take() else {
        return;
    };
    let listener = tokio::net::TcpListener::from_std(std_listener).expect("fake ComfyUI: listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if *sh.down.borrow() {
            drop(stream);
            continue;
        }
        sh.lock().http_open += 1;
        tokio::spawn(serve_http(sh.clone(), app.clone(), stream));
    }
}

async fn serve_http(sh: Arc<Shared>, app: Router, stream: tokio::net::TcpStream) {
    let mut down = sh.down.subscribe();
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
        .with_upgrades();
    tokio::select! {
        biased;
        _ = went_down(&mut down) => {}
        _ = conn => {}
    }
    sh.lock().http_open -= 1;
    sh.cv.notify_all();
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/upload/image", post(upload))
        .route("/prompt", post(post_prompt).get(get_prompt))
        .route("/history", get(history_all).post(history_post))
        .route("/history/{id}", get(history_one))
        .route("/view", get(view))
        .route("/queue", get(queue_get).post(queue_post))
        .route("/interrupt", post(interrupt))
        .route("/system_stats", get(system_stats))
        .route("/object_info", get(object_info_all))
        .route("/object_info/{class}", get(object_info_one))
        .route("/features", get(features))
        .route("/models", get(models_all))
        .route("/models/{folder}", get(models_one))
        .route("/free", post(free))
}

fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .merge(routes())
        .nest("/api", routes())
        .layer(DefaultBodyLimit::max(120 << 20))
        .with_state(sh)
}

fn reply(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn empty(status: StatusCode) -> Response {
    status.into_response()
}

fn server_trouble() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "500 Internal Server Error\n\nServer got itself in trouble",
    )
        .into_response()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn random_uuid() -> String {
    let h = random_hex();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------- WebSocket

fn msg(kind: &str, data: Value) -> String {
    json!({"type": kind, "data": data}).to_string()
}

fn queue_remaining(st: &St) -> usize {
    st.pending.len() + usize::from(st.running.is_some())
}

fn status_data(st: &St) -> Value {
    json!({"status": {"exec_info": {"queue_remaining": queue_remaining(st)}}})
}

/// To the socket registered for `client_id` (none without a client id).
fn send_to(st: &St, client_id: Option<&str>, kind: &str, data: Value) {
    let Some(conn) = client_id.and_then(|c| st.by_client.get(c)) else {
        return;
    };
    if let Some(tx) = st.conns.get(conn) {
        let _ = tx.send(Out::Text(msg(kind, data)));
    }
}

/// To every registered socket (a deaf one, trap 6, gets nothing).
fn broadcast(st: &St, kind: &str, data: Value) {
    let text = msg(kind, data);
    for conn in st.by_client.values() {
        if let Some(tx) = st.conns.get(conn) {
            let _ = tx.send(Out::Text(text.clone()));
        }
    }
}

/// Closes every socket after what was already sent to it; later events reach nobody.
fn kick_ws(st: &mut St) {
    for (id, tx) in &st.conns {
        let _ = tx.send(Out::Close);
        st.kicked.insert(*id);
    }
    st.by_client.clear();
}

async fn ws_upgrade(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> Response {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let client_id = q
        .get("clientId")
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(random_hex);
    // Registered before the 101 goes out, so nothing sent after the handshake is lost.
    let (conn, rx) = register_ws(&sh, &client_id);
    let sh2 = sh.clone();
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            run_ws(&sh2, ws, rx).await;
        }
        unregister_ws(&sh2, conn, &client_id);
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .body(Body::empty())
        .unwrap()
}

fn register_ws(sh: &Shared, client_id: &str) -> (u64, mpsc::UnboundedReceiver<Out>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut st = sh.lock();
    let id = st.next_conn;
    st.next_conn += 1;
    let mut first = status_data(&st);
    first["sid"] = json!(client_id);
    let _ = tx.send(Out::Text(msg("status", first)));
    // Reconnect during a run: the node now executing, without a prompt id, no replay.
    if let (Some(job), Some(node)) = (&st.running, &st.current_node)
        && job.client_id.as_deref() == Some(client_id)
    {
        let _ = tx.send(Out::Text(msg("executing", json!({"node": node}))));
    }
    st.conns.insert(id, tx);
    st.by_client.insert(client_id.to_string(), id);
    st.ws_open += 1;
    drop(st);
    sh.bump();
    (id, rx)
}

fn unregister_ws(sh: &Shared, conn: u64, client_id: &str) {
    let mut st = sh.lock();
    st.conns.remove(&conn);
    if !st.kicked.remove(&conn) {
        // ComfyUI forgets the id when any socket of it closes, even an older one (trap 6).
        st.by_client.remove(client_id);
    }
    st.ws_open -= 1;
    drop(st);
    sh.bump();
}

async fn run_ws<S>(sh: &Shared, ws: WebSocketStream<S>, mut rx: mpsc::UnboundedReceiver<Out>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let mut down = sh.down.subscribe();
    let mut first = true;
    loop {
        tokio::select! {
            biased;
            _ = went_down(&mut down) => break,
            out = rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if first && v["type"] == "feature_flags" {
                        let answer = msg(
                            "feature_flags",
                            json!({"supports_preview_metadata": true, "max_upload_size": 104857600u64}),
                        );
                        if sink.send(Message::text(answer)).await.is_err() {
                            break;
                        }
                    }
                    first = false;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => first = false,
            },
        }
    }
}

// ---------------------------------------------------------------- uploads and files

fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

fn bad_path(p: &str) -> bool {
    p.starts_with('/') || p.split(['/', '\\']).any(|s| s == "..")
}

async fn upload(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(parts) = multipart::boundary(ct).and_then(|b| multipart::parse(&body, &b).ok()) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let field = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name && p.filename.is_none())
            .map(|p| String::from_utf8_lossy(&p.data).to_string())
    };
    let Some(image) = parts.iter().find(|p| p.name == "image") else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let filename = image
        .filename
        .as_deref()
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .to_string();
    let kind = field("type").unwrap_or_else(|| "input".into());
    let subfolder = field("subfolder").unwrap_or_default();
    let overwrite = matches!(field("overwrite").as_deref(), Some("true" | "1"));
    if filename.is_empty()
        || !matches!(kind.as_str(), "input" | "temp" | "output")
        || bad_path(&subfolder)
    {
        return empty(StatusCode::BAD_REQUEST);
    }
    let mut st = sh.lock();
    let mut name = filename.clone();
    let mut duplicate = false;
    if !overwrite {
        let (stem, ext) = split_ext(&filename);
        let mut i = 1;
        while let Some(existing) = st
            .files
            .get(&(kind.clone(), subfolder.clone(), name.clone()))
        {
            if *existing == image.data {
                duplicate = true;
                break;
            }
            name = format!("{stem} ({i}){ext}");
            i += 1;
        }
    }
    if !duplicate {
        st.files.insert(
            (kind.clone(), subfolder.clone(), name.clone()),
            image.data.clone(),
        );
    }
    st.uploads.push(UploadSeen {
        name: name.clone(),
        subfolder: subfolder.clone(),
        len: image.data.len(),
    });
    drop(st);
    reply(
        StatusCode::OK,
        json!({"name": name, "subfolder": subfolder, "type": kind}),
    )
}

async fn view(State(sh): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(filename) = q.get("filename") else {
        return empty(StatusCode::BAD_REQUEST);
    };
    if filename.is_empty() || bad_path(filename) || filename.contains('/') {
        return empty(StatusCode::BAD_REQUEST);
    }
    let kind = q.get("type").map(String::as_str).unwrap_or("output");
    if !matches!(kind, "input" | "temp" | "output") {
        return empty(StatusCode::BAD_REQUEST);
    }
    let subfolder = q.get("subfolder").map(String::as_str).unwrap_or("");
    if bad_path(subfolder) {
        return empty(StatusCode::FORBIDDEN);
    }
    let held = {
        let mut st = sh.lock();
        (st.hold_views > 0).then(|| {
            st.hold_views -= 1;
            st.views_held += 1;
            st.view_release
        })
    };
    if let Some(generation) = held {
        let mut rx = sh.tick.subscribe();
        sh.bump();
        while sh.lock().view_release == generation {
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
    let key = (kind.to_string(), subfolder.to_string(), filename.clone());
    let Some(bytes) = sh.lock().files.get(&key).cloned() else {
        return empty(StatusCode::NOT_FOUND);
    };
    let mime = match split_ext(filename).1.to_ascii_lowercase().as_str() {
        ".jpg" | ".jpeg" => "image/jpeg",
        ".webp" => "image/webp",
        _ => "image/png",
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

// ---------------------------------------------------------------- prompts and queue

async fn get_prompt(State(sh): State<Arc<Shared>>) -> Response {
    let st = sh.lock();
    reply(
        StatusCode::OK,
        json!({"exec_info": {"queue_remaining": queue_remaining(&st)}}),
    )
}

fn invalid(kind: &str, message: &str, details: &str, node_errors: Value) -> Value {
    json!({
        "error": {"type": kind, "message": message, "details": details, "extra_info": {}},
        "node_errors": node_errors,
    })
}

async fn post_prompt(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut st = sh.lock();
    let mut number = st.next_number;
    st.next_number += 1;
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return server_trouble();
    };
    let Some(prompt) = body.get("prompt") else {
        let v = invalid(
            "no_prompt",
            "No prompt provided",
            "No prompt provided",
            json!({}),
        );
        return reply(StatusCode::BAD_REQUEST, v);
    };
    let Some(graph) = prompt.as_object() else {
        let v = invalid("prompt_no_outputs", "Prompt has no outputs", "", json!({}));
        return reply(StatusCode::BAD_REQUEST, v);
    };
    let scripted = st.script.pop_front();
    let behavior = scripted.clone().unwrap_or_else(|| st.default.clone());
    if matches!(behavior, Behavior::Http500) {
        return server_trouble();
    }
    let (outputs, mut node_errors) = match validate(&st, graph) {
        Ok(ok) => ok,
        Err(v) => {
            // The behaviour was meant for a queued prompt: keep it for the next one.
            if let Some(b) = scripted {
                st.script.push_front(b);
            }
            return reply(StatusCode::BAD_REQUEST, v);
        }
    };
    if matches!(behavior, Behavior::NodeErrors) {
        // As if the graph had a second output branch with a missing image (§5, last row).
        node_errors.insert(
            "9001".into(),
            json!({
                "errors": [{
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": "image - Invalid image file: nope.png",
                    "extra_info": {"input_name": "image"},
                }],
                "dependent_outputs": ["9002"],
                "class_type": "LoadImage",
            }),
        );
    }
    if body.get("front").and_then(Value::as_bool) == Some(true) {
        number = -number;
    }
    let id = body
        .get("prompt_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(random_uuid);
    let client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut extra = body
        .get("extra_data")
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(o) = extra.as_object_mut() {
        o.remove("auth_token_comfy_org");
        o.remove("api_key_comfy_org");
        if let Some(c) = &client_id {
            o.insert("client_id".into(), json!(c));
        }
    }
    let job = Job {
        number,
        id: id.clone(),
        graph: prompt.clone(),
        extra,
        outputs,
        client_id: client_id.clone(),
        behavior,
    };
    st.prompts.push(PromptSeen {
        id: id.clone(),
        client_id,
        graph: prompt.clone(),
        number,
    });
    st.pending.push(job);
    st.pending.sort_by_key(|j| j.number);
    // Observed: the queue change is announced twice.
    broadcast(&st, "status", status_data(&st));
    broadcast(&st, "status", status_data(&st));
    drop(st);
    sh.work.notify_one();
    sh.bump();
    reply(
        StatusCode::OK,
        json!({"prompt_id": id, "number": number, "node_errors": node_errors}),
    )
}

fn queue_item(job: &Job) -> Value {
    json!([job.number, job.id, job.graph, job.extra, job.outputs])
}

async fn queue_get(State(sh): State<Arc<Shared>>) -> Response {
    let st = sh.lock();
    let running: Vec<Value> = st.running.iter().map(queue_item).collect();
    let pending: Vec<Value> = st.pending.iter().map(queue_item).collect();
    reply(
        StatusCode::OK,
        json!({"queue_running": running, "queue_pending": pending}),
    )
}

async fn queue_post(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = sh.lock();
    let before = st.pending.len();
    let mut removed = Vec::new();
    if v["clear"].as_bool() == Some(true) {
        removed.extend(st.pending.drain(..).map(|j| j.id));
    }
    if let Some(ids) = v["delete"].as_array() {
        let ids: HashSet<&str> = ids.iter().filter_map(Value::as_str).collect();
        let (gone, kept): (Vec<Job>, Vec<Job>) = st
            .pending
            .drain(..)
            .partition(|j| ids.contains(j.id.as_str()));
        st.pending = kept;
        removed.extend(gone.into_iter().map(|j| j.id));
    }
    st.deleted.extend(removed);
    if st.pending.len() != before {
        broadcast(&st, "status", status_data(&st));
    }
    drop(st);
    sh.bump();
    empty(StatusCode::OK)
}

async fn interrupt(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let target = v["prompt_id"].as_str().map(str::to_string);
    let mut st = sh.lock();
    st.interrupts.push(target.clone());
    let hit = match (&st.running, &target) {
        (Some(job), Some(t)) => job.id == *t,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if hit {
        st.interrupt = true;
    }
    drop(st);
    if hit {
        sh.interrupted.notify_one();
    }
    sh.bump();
    empty(StatusCode::OK)
}

async fn history_one(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let st = sh.lock();
    let mut out = Map::new();
    if let Some((_, entry)) = st.history.iter().find(|(h, _)| *h == id) {
        out.insert(id, entry.clone());
    }
    reply(StatusCode::OK, Value::Object(out))
}

async fn history_all(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let st = sh.lock();
    let max = q
        .get("max_items")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let skip = st.history.len().saturating_sub(max);
    let out: Map<String, Value> = st.history[skip..]
        .iter()
        .map(|(id, e)| (id.clone(), e.clone()))
        .collect();
    reply(StatusCode::OK, Value::Object(out))
}

async fn history_post(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = sh.lock();
    if v["clear"].as_bool() == Some(true) {
        st.history.clear();
    }
    if let Some(ids) = v["delete"].as_array() {
        let ids: HashSet<&str> = ids.iter().filter_map(Value::as_str).collect();
        st.history.retain(|(id, _)| !ids.contains(id.as_str()));
    }
    empty(StatusCode::OK)
}

// ---------------------------------------------------------------- the rest of the API

async fn system_stats() -> Response {
    let gib = 1u64 << 30;
    reply(
        StatusCode::OK,
        json!({
            "system": {
                "os": "posix",
                "ram_total": 64 * gib,
                "ram_free": 48 * gib,
                "comfyui_version": "0.3.64",
                "required_frontend_version": "1.27.10",
                "installed_templates_version": "0.1.94",
                "required_templates_version": "0.1.94",
                "python_version": "3.12.3 (main, Aug 14 2025, 17:47:21) [GCC 13.3.0]",
                "pytorch_version": "2.8.0+cu128",
                "embedded_python": false,
                "argv": ["main.py", "--listen", "127.0.0.1"],
            },
            "devices": [{
                "name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
                "type": "cuda",
                "index": 0,
                "vram_total": 25_386_352_640u64,
                "vram_free": 24_001_249_280u64,
                "torch_vram_total": 0,
                "torch_vram_free": 0,
            }],
        }),
    )
}

async fn features() -> Response {
    reply(
        StatusCode::OK,
        json!({"supports_preview_metadata": true, "max_upload_size": 104857600u64}),
    )
}

async fn free() -> Response {
    empty(StatusCode::OK)
}

async fn models_all(State(sh): State<Arc<Shared>>) -> Response {
    let st = sh.lock();
    let mut folders: Vec<String> = MODEL_FOLDERS.iter().map(|f| f.to_string()).collect();
    folders.extend(st.models.keys().cloned());
    folders.sort();
    folders.dedup();
    reply(StatusCode::OK, json!(folders))
}

async fn models_one(State(sh): State<Arc<Shared>>, Path(folder): Path<String>) -> Response {
    let st = sh.lock();
    match st.models.get(&folder) {
        Some(files) => reply(StatusCode::OK, json!(files)),
        None if MODEL_FOLDERS.contains(&folder.as_str()) => reply(StatusCode::OK, json!([])),
        None => empty(StatusCode::NOT_FOUND),
    }
}

async fn object_info_all(State(sh): State<Arc<Shared>>) -> Response {
    let st = sh.lock();
    reply(StatusCode::OK, Value::Object(specs(&st)))
}

async fn object_info_one(State(sh): State<Arc<Shared>>, Path(class): Path<String>) -> Response {
    let st = sh.lock();
    let mut out = Map::new();
    if let Some(spec) = specs(&st).remove(&class) {
        out.insert(class, spec);
    }
    reply(StatusCode::OK, Value::Object(out))
}

// ---------------------------------------------------------------- node specs

#[allow(clippy::too_many_arguments)]
fn spec(
    name: &str,
    display: &str,
    category: &str,
    module: &str,
    required: Value,
    optional: Value,
    outputs: &[(&str, &str)],
    output_node: bool,
) -> Value {
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut input = json!({"required": required});
    let mut order = json!({"required": keys(&required)});
    if optional.as_object().is_some_and(|o| !o.is_empty()) {
        order["optional"] = json!(keys(&optional));
        input["optional"] = optional;
    }
    if output_node {
        input["hidden"] = json!({"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"});
    }
    json!({
        "input": input,
        "input_order": order,
        "output": outputs.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        "output_is_list": outputs.iter().map(|_| false).collect::<Vec<_>>(),
        "output_name": outputs.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        "name": name,
        "display_name": display,
        "description": "",
        "python_module": module,
        "category": category,
        "output_node": output_node,
        "deprecated": false,
        "experimental": false,
    })
}

fn float(default: f64, min: f64, max: f64, step: f64) -> Value {
    json!(["FLOAT", {"default": default, "min": min, "max": max, "step": step}])
}

fn int(default: i64, min: i64, max: u64) -> Value {
    json!(["INT", {"default": default, "min": min, "max": max}])
}

/// `/object_info` for every class the fake knows, with loader combos listing the models.
fn specs(st: &St) -> Map<String, Value> {
    let files = |folders: &[&str]| -> Vec<String> {
        folders
            .iter()
            .flat_map(|f| st.models.get(*f).cloned().unwrap_or_default())
            .collect()
    };
    let mut inputs: Vec<String> = st
        .files
        .keys()
        .filter(|(kind, _, _)| kind == "input")
        .map(|(_, sub, name)| {
            if sub.is_empty() {
                name.clone()
            } else {
                format!("{sub}/{name}")
            }
        })
        .collect();
    inputs.sort();
    let mut vae = vec!["pixel_space".to_string()];
    vae.extend(files(&["vae"]));
    let scale_methods = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"];
    let conditioning = ["CONDITIONING", "CONDITIONING"];
    let mut m = Map::new();
    let mut add = |v: Value| {
        m.insert(v["name"].as_str().unwrap().to_string(), v);
    };
    add(spec(
        "UNETLoader",
        "Load Diffusion Model",
        "advanced/loaders",
        "nodes",
        json!({
            "unet_name": [files(&["diffusion_models", "unet"])],
            "weight_dtype": [["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]],
        }),
        json!({}),
        &[("MODEL", "MODEL")],
        false,
    ));
    add(spec(
        "CLIPLoader",
        "Load CLIP",
        "advanced/loaders",
        "nodes",
        json!({
            "clip_name": [files(&["text_encoders", "clip"])],
            "type": [["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
                      "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
                      "qwen_image", "hunyuan_image"]],
        }),
        json!({"device": [["default", "cpu"], {"advanced": true}]}),
        &[("CLIP", "CLIP")],
        false,
    ));
    add(spec(
        "VAELoader",
        "Load VAE",
        "loaders",
        "nodes",
        json!({"vae_name": [vae]}),
        json!({}),
        &[("VAE", "VAE")],
        false,
    ));
    add(spec(
        "LoraLoaderModelOnly",
        "LoraLoaderModelOnly",
        "loaders",
        "nodes",
        json!({
            "model": ["MODEL"],
            "lora_name": [files(&["loras"])],
            "strength_model": float(1.0, -100.0, 100.0, 0.01),
        }),
        json!({}),
        &[("MODEL", "MODEL")],
        false,
    ));
    add(spec(
        "ModelSamplingAuraFlow",
        "ModelSamplingAuraFlow",
        "advanced/model",
        "comfy_extras.nodes_model_advanced",
        json!({"model": ["MODEL"], "shift": float(1.73, 0.0, 100.0, 0.01)}),
        json!({}),
        &[("MODEL", "MODEL")],
        false,
    ));
    add(spec(
        "CFGNorm",
        "CFGNorm",
        "advanced/guidance",
        "comfy_extras.nodes_cfg",
        json!({"model": ["MODEL", {}], "strength": float(1.0, 0.0, 100.0, 0.01)}),
        json!({}),
        &[("MODEL", "patched_model")],
        false,
    ));
    add(spec(
        "LoadImage",
        "Load Image",
        "image",
        "nodes",
        json!({"image": [inputs, {"image_upload": true}]}),
        json!({}),
        &[("IMAGE", "IMAGE"), ("MASK", "MASK")],
        false,
    ));
    add(spec(
        "ImageScaleToTotalPixels",
        "Scale Image to Total Pixels",
        "image/upscaling",
        "comfy_extras.nodes_post_processing",
        json!({
            "image": ["IMAGE", {}],
            "upscale_method": ["COMBO", {"options": scale_methods, "multiselect": false}],
            "megapixels": float(1.0, 0.01, 16.0, 0.01),
        }),
        json!({}),
        &[("IMAGE", "IMAGE")],
        false,
    ));
    add(spec(
        "ImageScale",
        "Upscale Image",
        "image/upscaling",
        "nodes",
        json!({
            "image": ["IMAGE"],
            "upscale_method": [scale_methods],
            "width": int(512, 0, 16384),
            "height": int(512, 0, 16384),
            "crop": [["disabled", "center"]],
        }),
        json!({}),
        &[("IMAGE", "IMAGE")],
        false,
    ));
    add(spec(
        "VAEEncode",
        "VAE Encode",
        "latent",
        "nodes",
        json!({"pixels": ["IMAGE"], "vae": ["VAE"]}),
        json!({}),
        &[("LATENT", "LATENT")],
        false,
    ));
    add(spec(
        "VAEDecode",
        "VAE Decode",
        "latent",
        "nodes",
        json!({"samples": ["LATENT"], "vae": ["VAE"]}),
        json!({}),
        &[("IMAGE", "IMAGE")],
        false,
    ));
    let text = json!(["STRING", {"multiline": true, "dynamicPrompts": true}]);
    add(spec(
        "TextEncodeQwenImageEditPlus",
        "TextEncodeQwenImageEditPlus",
        "advanced/conditioning",
        "comfy_extras.nodes_qwen",
        json!({"clip": ["CLIP", {}], "prompt": text}),
        json!({"vae": ["VAE", {}], "image1": ["IMAGE", {}], "image2": ["IMAGE", {}], "image3": ["IMAGE", {}]}),
        &[(conditioning[0], conditioning[1])],
        false,
    ));
    add(spec(
        "TextEncodeQwenImageEdit",
        "TextEncodeQwenImageEdit",
        "advanced/conditioning",
        "comfy_extras.nodes_qwen",
        json!({"clip": ["CLIP", {}], "prompt": text}),
        json!({"vae": ["VAE", {}], "image": ["IMAGE", {}]}),
        &[(conditioning[0], conditioning[1])],
        false,
    ));
    add(spec(
        "CLIPTextEncode",
        "CLIP Text Encode (Prompt)",
        "conditioning",
        "nodes",
        json!({"text": text, "clip": ["CLIP", {"tooltip": "The CLIP model used for encoding the text."}]}),
        json!({}),
        &[(conditioning[0], conditioning[1])],
        false,
    ));
    add(spec(
        "KSampler",
        "KSampler",
        "sampling",
        "nodes",
        json!({
            "model": ["MODEL"],
            "seed": ["INT", {"default": 0, "min": 0, "max": u64::MAX, "control_after_generate": true}],
            "steps": int(20, 1, 10000),
            "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
            "sampler_name": [["euler", "euler_cfg_pp", "euler_ancestral", "heun", "dpm_2", "lms",
                              "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "res_multistep"]],
            "scheduler": [["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
                           "normal", "linear_quadratic", "kl_optimal"]],
            "positive": ["CONDITIONING"],
            "negative": ["CONDITIONING"],
            "latent_image": ["LATENT"],
            "denoise": float(1.0, 0.0, 1.0, 0.01),
        }),
        json!({}),
        &[("LATENT", "LATENT")],
        false,
    ));
    add(spec(
        "EmptySD3LatentImage",
        "EmptySD3LatentImage",
        "latent/sd3",
        "comfy_extras.nodes_sd3",
        json!({
            "width": ["INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}],
            "height": ["INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}],
            "batch_size": int(1, 1, 4096),
        }),
        json!({}),
        &[("LATENT", "LATENT")],
        false,
    ));
    add(spec(
        "ImageInvert",
        "Invert Image",
        "image",
        "nodes",
        json!({"image": ["IMAGE"]}),
        json!({}),
        &[("IMAGE", "IMAGE")],
        false,
    ));
    add(spec(
        "ImageBlur",
        "Image Blur",
        "image/postprocessing",
        "comfy_extras.nodes_post_processing",
        json!({
            "image": ["IMAGE"],
            "blur_radius": ["INT", {"default": 1, "min": 1, "max": 31, "step": 1}],
            "sigma": float(1.0, 0.1, 10.0, 0.1),
        }),
        json!({}),
        &[("IMAGE", "IMAGE")],
        false,
    ));
    add(spec(
        "SaveImage",
        "Save Image",
        "image",
        "nodes",
        json!({
            "images": ["IMAGE", {"tooltip": "The images to save."}],
            "filename_prefix": ["STRING", {"default": "ComfyUI", "tooltip": "The prefix for the file to save."}],
        }),
        json!({}),
        &[],
        true,
    ));
    add(spec(
        "PreviewImage",
        "Preview Image",
        "image",
        "nodes",
        json!({"images": ["IMAGE"]}),
        json!({}),
        &[],
        true,
    ));
    m
}

// ---------------------------------------------------------------- validation

fn link_target(v: &Value) -> Option<&str> {
    match v.as_array()?.as_slice() {
        [Value::String(node), Value::Number(_)] => Some(node),
        _ => None,
    }
}

fn links(node: &Value) -> Vec<String> {
    node["inputs"]
        .as_object()
        .map(|o| {
            o.values()
                .filter_map(link_target)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `from` and every node it depends on (present in the graph).
fn ancestors(graph: &Map<String, Value>, from: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut todo = vec![from.to_string()];
    while let Some(id) = todo.pop() {
        if seen.contains(&id) {
            continue;
        }
        let Some(node) = graph.get(&id) else {
            continue;
        };
        todo.extend(links(node));
        seen.push(id);
    }
    seen
}

/// Nodes in execution order (dependencies first) for these outputs.
fn exec_order(graph: &Map<String, Value>, outputs: &[String]) -> Vec<String> {
    fn visit(
        graph: &Map<String, Value>,
        id: &str,
        out: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) {
        if !seen.insert(id.to_string()) {
            return;
        }
        let Some(node) = graph.get(id) else {
            return;
        };
        for dep in links(node) {
            visit(graph, &dep, out, seen);
        }
        out.push(id.to_string());
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for o in outputs {
        visit(graph, o, &mut out, &mut seen);
    }
    out
}

fn class_of<'a>(graph: &'a Value, id: &str) -> &'a str {
    graph[id]["class_type"].as_str().unwrap_or("")
}

fn py_list(items: &[Value]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|v| match v.as_str() {
            Some(s) => format!("'{s}'"),
            None => v.to_string(),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn image_file_exists(st: &St, value: &str) -> bool {
    let (name, kind) = [" [input]", " [output]", " [temp]"]
        .iter()
        .find_map(|suffix| {
            value
                .strip_suffix(suffix)
                .map(|n| (n, suffix.trim_matches([' ', '[', ']'])))
        })
        .unwrap_or((value, "input"));
    if bad_path(name) {
        return false;
    }
    let (sub, file) = name.rsplit_once('/').unwrap_or(("", name));
    st.files
        .contains_key(&(kind.to_string(), sub.to_string(), file.to_string()))
}

fn node_error(kind: &str, message: &str, details: String, extra: Value) -> Value {
    json!({"type": kind, "message": message, "details": details, "extra_info": extra})
}

fn validate_node(
    st: &St,
    specs: &Map<String, Value>,
    graph: &Map<String, Value>,
    id: &str,
) -> Vec<Value> {
    let node = &graph[id];
    let class = node["class_type"].as_str().unwrap_or("");
    let spec = &specs[class];
    let empty = Map::new();
    let given = node["inputs"].as_object().unwrap_or(&empty);
    let required = spec["input"]["required"].as_object().unwrap_or(&empty);
    let optional = spec["input"]["optional"].as_object().unwrap_or(&empty);
    let mut errors = Vec::new();
    for name in required.keys() {
        if !given.contains_key(name) {
            errors.push(node_error(
                "required_input_missing",
                "Required input is missing",
                name.clone(),
                json!({"input_name": name}),
            ));
        }
    }
    for (name, value) in given {
        let Some(def) = required.get(name).or_else(|| optional.get(name)) else {
            continue;
        };
        if let Some(target) = link_target(value) {
            if !graph.contains_key(target) {
                errors.push(node_error(
                    "exception_during_inner_validation",
                    "Exception when validating inner node",
                    format!("'{target}'"),
                    json!({"input_name": name, "input_config": def, "exception_message": format!("'{target}'"),
                           "exception_type": "KeyError", "linked_node": value}),
                ));
            }
            continue;
        }
        if class == "LoadImage" && name == "image" {
            let ok = value.as_str().is_some_and(|v| image_file_exists(st, v));
            if !ok {
                let shown = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                errors.push(node_error(
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    format!("image - Invalid image file: {shown}"),
                    json!({"input_name": "image"}),
                ));
            }
            continue;
        }
        let options = match &def[0] {
            Value::Array(o) => Some(o.clone()),
            Value::String(t) if t == "COMBO" => def[1]["options"].as_array().cloned(),
            _ => None,
        };
        if let Some(options) = options {
            if !options.contains(value) {
                let shown = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                errors.push(node_error(
                    "value_not_in_list",
                    "Value not in list",
                    format!("{name}: '{shown}' not in {}", py_list(&options)),
                    json!({"input_name": name, "input_config": def, "received_value": value}),
                ));
            }
            continue;
        }
        if let Some(t @ ("INT" | "FLOAT")) = def[0].as_str() {
            let Some(x) = value.as_f64() else {
                errors.push(node_error(
                    "invalid_input_type",
                    &format!("Failed to convert an input value to a {t} value"),
                    format!("{name}, {value}"),
                    json!({"input_name": name, "input_config": def, "received_value": value}),
                ));
                continue;
            };
            if let Some(max) = def[1]
                .get("max")
                .filter(|m| m.as_f64().is_some_and(|m| x > m))
            {
                errors.push(node_error(
                    "value_bigger_than_max",
                    &format!("Value {value} bigger than max of {max}"),
                    name.clone(),
                    json!({"input_name": name, "input_config": def, "received_value": value}),
                ));
            }
            if let Some(min) = def[1]
                .get("min")
                .filter(|m| m.as_f64().is_some_and(|m| x < m))
            {
                errors.push(node_error(
                    "value_smaller_than_min",
                    &format!("Value {value} smaller than min of {min}"),
                    name.clone(),
                    json!({"input_name": name, "input_config": def, "received_value": value}),
                ));
            }
        }
    }
    errors
}

/// The outputs that will run and the `node_errors` of the others, or the 400 body.
fn validate(
    st: &St,
    graph: &Map<String, Value>,
) -> Result<(Vec<String>, Map<String, Value>), Value> {
    let specs = specs(st);
    for (id, node) in graph {
        let Some(class) = node.get("class_type").and_then(Value::as_str) else {
            return Err(invalid(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                &format!("Node ID '#{id}'"),
                json!({}),
            ));
        };
        if !specs.contains_key(class) {
            return Err(invalid(
                "invalid_prompt",
                &format!("Cannot execute because node {class} does not exist."),
                &format!("Node ID '#{id}'"),
                json!({}),
            ));
        }
    }
    let outputs: Vec<String> = graph
        .iter()
        .filter(|(_, n)| OUTPUT_CLASSES.contains(&n["class_type"].as_str().unwrap_or("")))
        .map(|(id, _)| id.clone())
        .collect();
    if outputs.is_empty() {
        return Err(invalid(
            "prompt_no_outputs",
            "Prompt has no outputs",
            "",
            json!({}),
        ));
    }
    let mut errors: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut node_errors = Map::new();
    let mut valid = Vec::new();
    for out in &outputs {
        let mut ok = true;
        for id in ancestors(graph, out) {
            let errs = errors
                .entry(id.clone())
                .or_insert_with(|| validate_node(st, &specs, graph, &id));
            if errs.is_empty() {
                continue;
            }
            ok = false;
            let entry = node_errors.entry(id.clone()).or_insert_with(|| {
                json!({"errors": errs, "dependent_outputs": [], "class_type": graph[&id]["class_type"]})
            });
            entry["dependent_outputs"]
                .as_array_mut()
                .unwrap()
                .push(json!(out));
        }
        if ok {
            valid.push(out.clone());
        }
    }
    if valid.is_empty() {
        return Err(invalid(
            "prompt_outputs_failed_validation",
            "Prompt outputs failed validation",
            "",
            Value::Object(node_errors),
        ));
    }
    Ok((valid, node_errors))
}

// ---------------------------------------------------------------- the executor

enum Outcome {
    Success(Map<String, Value>),
    Error(Value),
    Interrupted(Value),
}

async fn executor(sh: Arc<Shared>) {
    loop {
        let job = {
            let mut st = sh.lock();
            if st.pending.is_empty() {
                None
            } else {
                // Pending is kept sorted by number: `front` (negative) first.
                Some(st.pending.remove(0))
            }
        };
        match job {
            Some(job) => run_job(&sh, job).await,
            None => sh.work.notified().await,
        }
    }
}

fn interrupted_data(job: &Job, node: &str, executed: &[String]) -> Value {
    json!({
        "prompt_id": job.id,
        "node_id": node,
        "node_type": class_of(&job.graph, node),
        "executed": executed,
        "timestamp": now_ms(),
    })
}

fn error_data(job: &Job, node: &str, executed: &[String]) -> Value {
    let class = class_of(&job.graph, node);
    let inputs = job.graph[node]["inputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let (exception_type, message) = match class {
        "LoadImage" => (
            "PIL.UnidentifiedImageError".to_string(),
            format!(
                "cannot identify image file '/opt/comfyui/input/{}'\n",
                inputs.get("image").and_then(Value::as_str).unwrap_or("")
            ),
        ),
        _ => {
            let file = inputs
                .iter()
                .find(|(k, v)| k.ends_with("_name") && v.is_string())
                .map(|(k, v)| {
                    let folder = match k.as_str() {
                        "unet_name" => "diffusion_models",
                        "clip_name" => "text_encoders",
                        "vae_name" => "vae",
                        "lora_name" => "loras",
                        _ => "checkpoints",
                    };
                    format!("/opt/comfyui/models/{folder}/{}", v.as_str().unwrap_or(""))
                })
                .unwrap_or_else(|| "/opt/comfyui/comfy/model_management.py".into());
            (
                "safetensors._safetensors_rust.SafetensorError".to_string(),
                format!("Error while deserializing header: header too large ({file})\n"),
            )
        }
    };
    let current_inputs: Map<String, Value> = inputs
        .iter()
        .filter(|(_, v)| link_target(v).is_none())
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({
        "prompt_id": job.id,
        "node_id": node,
        "node_type": class,
        "executed": executed,
        "exception_message": message,
        "exception_type": exception_type,
        "traceback": [
            "  File \"/opt/comfyui/execution.py\", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n",
            "  File \"/opt/comfyui/execution.py\", line 315, in get_output_data\n    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n",
        ],
        "current_inputs": current_inputs,
        "current_outputs": job.outputs,
        "timestamp": now_ms(),
    })
}

fn interrupt_requested(sh: &Shared) -> bool {
    sh.lock().interrupt
}

async fn wait_for_interrupt(sh: &Shared) {
    loop {
        let notified = sh.interrupted.notified();
        if interrupt_requested(sh) {
            return;
        }
        notified.await;
    }
}

async fn run_job(sh: &Arc<Shared>, job: Job) {
    let started_ms = sh.ms();
    let mut messages: Vec<Value> = Vec::new();
    let cid = job.client_id.as_deref();
    let cached = {
        let mut st = sh.lock();
        st.interrupt = false;
        st.current_node = None;
        st.running = Some(job.clone());
        st.started += 1;
        let start = json!({"prompt_id": job.id, "timestamp": now_ms()});
        send_to(&st, cid, "execution_start", start.clone());
        messages.push(json!(["execution_start", start]));
        let cacheable = matches!(
            job.behavior,
            Behavior::Succeed { .. } | Behavior::SlowHistory { .. } | Behavior::NodeErrors
        );
        let cached = st
            .last_success
            .as_ref()
            .filter(|(g, _)| cacheable && *g == job.graph)
            .map(|(_, outputs)| outputs.clone());
        let nodes: Vec<&String> = match &cached {
            Some(_) => job
                .graph
                .as_object()
                .map(|g| g.keys().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let c = json!({"nodes": nodes, "prompt_id": job.id, "timestamp": now_ms()});
        send_to(&st, cid, "execution_cached", c.clone());
        messages.push(json!(["execution_cached", c]));
        cached
    };
    sh.bump();
    let outcome = match cached {
        // An identical graph: outputs replayed from the cache, no new file.
        Some(outputs) => {
            let st = sh.lock();
            for (node, output) in &outputs {
                let d = json!({"node": node, "display_node": node, "output": output, "prompt_id": job.id});
                send_to(&st, cid, "executed", d);
            }
            Outcome::Success(outputs)
        }
        None => execute(sh, &job).await,
    };
    finish(sh, job, outcome, messages, started_ms).await;
}

async fn execute(sh: &Shared, job: &Job) -> Outcome {
    let graph = job.graph.as_object().cloned().unwrap_or_default();
    let order = exec_order(&graph, &job.outputs);
    let progress_node = order
        .iter()
        .find(|id| class_of(&job.graph, id) == "KSampler")
        .or(order.first())
        .cloned();
    let (steps, step_ms, drop_after) = match job.behavior {
        Behavior::Succeed { steps, step_ms } => (steps, step_ms, None),
        Behavior::DropSocketsAfterStep(k) => (4, 0, Some(k)),
        _ => (4, 0, None),
    };
    let cid = job.client_id.as_deref();
    let mut executed: Vec<String> = Vec::new();
    let mut outputs = Map::new();
    for node in &order {
        if matches!(job.behavior, Behavior::Hang) {
            wait_for_interrupt(sh).await;
        }
        if interrupt_requested(sh) {
            return Outcome::Interrupted(interrupted_data(job, node, &executed));
        }
        {
            let mut st = sh.lock();
            st.current_node = Some(node.clone());
            let d = json!({"node": node, "display_node": node, "prompt_id": job.id});
            send_to(&st, cid, "executing", d);
        }
        if matches!(job.behavior, Behavior::ExecutionError) {
            return Outcome::Error(error_data(job, node, &executed));
        }
        if progress_node.as_deref() == Some(node.as_str()) {
            for step in 1..=steps {
                if step_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(step_ms)).await;
                }
                if interrupt_requested(sh) {
                    return Outcome::Interrupted(interrupted_data(job, node, &executed));
                }
                let mut st = sh.lock();
                let d = json!({"value": step, "max": steps, "prompt_id": job.id, "node": node});
                send_to(&st, cid, "progress", d);
                if drop_after == Some(step) {
                    kick_ws(&mut st);
                }
            }
        }
        let class = class_of(&job.graph, node);
        if OUTPUT_CLASSES.contains(&class) {
            let images = save_images(sh, job, &graph, node);
            let output = json!({"images": images});
            let st = sh.lock();
            let d =
                json!({"node": node, "display_node": node, "output": output, "prompt_id": job.id});
            send_to(&st, cid, "executed", d);
            outputs.insert(node.clone(), output);
        }
        executed.push(node.clone());
    }
    Outcome::Success(outputs)
}

/// Writes one PNG for an output node (the first uploaded input upstream, inverted, or a
/// 64x48 gradient) and returns its `images` list.
fn save_images(sh: &Shared, job: &Job, graph: &Map<String, Value>, node: &str) -> Vec<Value> {
    let source = {
        let st = sh.lock();
        ancestors(graph, node)
            .iter()
            .filter(|id| class_of(&job.graph, id) == "LoadImage")
            .filter_map(|id| job.graph[id.as_str()]["inputs"]["image"].as_str())
            .find_map(|v| {
                let (sub, file) = v.rsplit_once('/').unwrap_or(("", v));
                st.files
                    .get(&("input".to_string(), sub.to_string(), file.to_string()))
                    .cloned()
            })
    };
    let png = render(source.as_deref());
    let preview = class_of(&job.graph, node) == "PreviewImage";
    let prefix = if preview {
        "ComfyUI_temp_fake".to_string()
    } else {
        job.graph[node]["inputs"]["filename_prefix"]
            .as_str()
            .unwrap_or("ComfyUI")
            .to_string()
    };
    let (subfolder, base) = prefix.rsplit_once('/').unwrap_or(("", &prefix));
    let kind = if preview { "temp" } else { "output" };
    let mut st = sh.lock();
    let counter = st
        .counters
        .entry((subfolder.to_string(), base.to_string()))
        .or_insert(0);
    *counter += 1;
    let filename = format!("{base}_{:05}_.png", *counter);
    if !matches!(job.behavior, Behavior::MissingOutput) {
        st.files.insert(
            (kind.to_string(), subfolder.to_string(), filename.clone()),
            png,
        );
    }
    vec![json!({"filename": filename, "subfolder": subfolder, "type": kind})]
}

fn render(source: Option<&[u8]>) -> Vec<u8> {
    let img = source
        .and_then(|b| image::load_from_memory(b).ok())
        .map(|img| {
            let img = if img.width() > 256 || img.height() > 256 {
                img.thumbnail(256, 256)
            } else {
                img
            };
            let mut rgb = img.to_rgb8();
            image::imageops::invert(&mut rgb);
            rgb
        })
        .unwrap_or_else(|| {
            image::RgbImage::from_fn(64, 48, |x, y| {
                image::Rgb([(x * 4) as u8, (y * 5) as u8, 128])
            })
        });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("fake ComfyUI: encode PNG");
    out.into_inner()
}

fn write_history(st: &mut St, id: &str, entry: Value) {
    st.history.retain(|(h, _)| h != id);
    st.history.push((id.to_string(), entry));
}

async fn finish(
    sh: &Arc<Shared>,
    job: Job,
    outcome: Outcome,
    mut messages: Vec<Value>,
    started_ms: i64,
) {
    let cid = job.client_id.as_deref();
    let mut st = sh.lock();
    let (status_str, completed, outputs) = match outcome {
        Outcome::Success(outputs) => {
            let d = json!({"prompt_id": job.id, "timestamp": now_ms()});
            send_to(&st, cid, "execution_success", d.clone());
            messages.push(json!(["execution_success", d]));
            if !matches!(job.behavior, Behavior::MissingOutput) {
                st.last_success = Some((job.graph.clone(), outputs.clone()));
            }
            ("success", true, outputs)
        }
        Outcome::Error(d) => {
            send_to(&st, cid, "execution_error", d.clone());
            messages.push(json!(["execution_error", d]));
            ("error", false, Map::new())
        }
        Outcome::Interrupted(d) => {
            broadcast(&st, "execution_interrupted", d.clone());
            messages.push(json!(["execution_interrupted", d]));
            ("error", false, Map::new())
        }
    };
    let meta: Map<String, Value> = outputs
        .keys()
        .map(|n| {
            (
                n.clone(),
                json!({"node_id": n, "display_node": n, "parent_node": null, "real_node_id": n}),
            )
        })
        .collect();
    let entry = json!({
        "prompt": queue_item(&job),
        "outputs": outputs,
        "status": {"status_str": status_str, "completed": completed, "messages": messages},
        "meta": meta,
    });
    // The entry is written after execution_success and before `executing` null (trap 2),
    // or later with SlowHistory.
    let slow = match job.behavior {
        Behavior::SlowHistory { ms } => Some(ms),
        _ => None,
    };
    if slow.is_none() {
        write_history(&mut st, &job.id, entry.clone());
    }
    st.running = None;
    st.current_node = None;
    st.interrupt = false;
    broadcast(&st, "status", status_data(&st));
    send_to(
        &st,
        cid,
        "executing",
        json!({"node": null, "prompt_id": job.id}),
    );
    let end = sh.ms();
    st.finished.push((job.id.clone(), started_ms, end));
    drop(st);
    sh.bump();
    if let Some(ms) = slow {
        let sh = sh.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            write_history(&mut sh.lock(), &job.id, entry);
            sh.bump();
        });
    }
}
