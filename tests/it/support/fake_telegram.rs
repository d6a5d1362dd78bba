//! A fake Telegram Bot API server: the real app talks to it through `telegram.api_url` exactly as
//! to a local Bot API server. Tests act as users (`send_text`, `send_photo`, `press`, ...), then
//! look at what the bot did (`messages`, `calls`, `transcript`) and inject faults (`fail_next`).
//!
//! Shape of the protocol as teloxide-core 0.13 speaks it: `POST {api_url}/bot{token}/{Method}`
//! with the method name in PascalCase (`SendMessage`, matched case-insensitively), JSON bodies for
//! most methods and `multipart/form-data` when an `InputFile` is uploaded (the file field holds
//! `attach://<id>` and the bytes come in a part named `<id>`). Downloads are
//! `GET {api_url}/file/bot{token}/{file_path}` with the path percent-encoded as one segment.
//!
//! Realistic checks the fake makes (each answers like Telegram would): texts up to 4096 chars,
//! captions up to 1024, callback data 1–64 bytes, HTML / MarkdownV2 entity parsing, photo limits
//! (10 MB, width + height <= 10000, aspect ratio <= 20), "message is not modified", unknown
//! message / file / query ids, Stars invoices (`XTR`, one price, payload 1–128 bytes, title 1–32,
//! description 1–255), pre-checkout answers within 10 s, double refunds, and
//! "bot can't initiate conversation with a user" for users who never wrote to the bot.
//! There is no automatic flood control: every call's time is recorded for rate checks instead.

use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::multipart::{self, percent_decode};

/// The bot's user id (the numeric part of [`FakeTelegram::TOKEN`]).
pub const BOT_ID: i64 = 123456;
/// The bot's username as `getMe` reports it.
pub const BOT_USERNAME: &str = "qwenedit_test_bot";

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(300);
const DEFAULT_LANGUAGE: &str = "ru";
const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
const MAX_DOCUMENT_BYTES: usize = 50 * 1024 * 1024;
const MAX_DOWNLOAD_BYTES: usize = 20 * 1024 * 1024;
const PRE_CHECKOUT_DEADLINE: Duration = Duration::from_secs(10);
const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
const QUERY_TOO_OLD: &str =
    "Bad Request: query is too old and response timeout expired or query ID is invalid";

/// Update kinds Telegram sends when `allowed_updates` was never given (or given empty).
const NOT_DEFAULT_KINDS: &[&str] = &["chat_member", "message_reaction", "message_reaction_count"];

/// Canonical spellings of Bot API methods; anything else is normalised by lower-casing its first
/// letter (teloxide sends `SendMessage`, the Bot API name is `sendMessage`).
const KNOWN_METHODS: &[&str] = &[
    "getMe",
    "getUpdates",
    "logOut",
    "close",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "setMyName",
    "setMyDescription",
    "getMyDescription",
    "setMyShortDescription",
    "getMyShortDescription",
    "sendMessage",
    "forwardMessage",
    "copyMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "editMessageCaption",
    "editMessageMedia",
    "deleteMessage",
    "deleteMessages",
    "sendPhoto",
    "sendDocument",
    "sendVideo",
    "sendAnimation",
    "sendMediaGroup",
    "sendChatAction",
    "answerCallbackQuery",
    "getFile",
    "getChat",
    "sendInvoice",
    "createInvoiceLink",
    "answerPreCheckoutQuery",
    "refundStarPayment",
    "getStarTransactions",
    "getMyStarBalance",
];

/// One request the bot made, in arrival order.
#[derive(Clone, Debug)]
pub struct Call {
    /// Normalised Bot API method name (`sendMessage`), or `download` for a file download.
    pub method: String,
    /// The parameters as JSON. Multipart text fields are converted back to JSON values (numbers,
    /// booleans, nested objects); uploaded files appear as `{"file": <len>, "name": <file name>}`.
    /// A download has `{"path": <decoded file path>}`.
    pub params: Value,
    /// When the request arrived.
    pub time: Instant,
}

/// What kind of message the bot sent. Compares equal to its lower-case name too:
/// `m.kind == BotMessageKind::Photo` and `m.kind == "photo"` both work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BotMessageKind {
    Text,
    Photo,
    Document,
    Invoice,
}

impl BotMessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BotMessageKind::Text => "text",
            BotMessageKind::Photo => "photo",
            BotMessageKind::Document => "document",
            BotMessageKind::Invoice => "invoice",
        }
    }
}

impl fmt::Display for BotMessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for BotMessageKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for BotMessageKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// The invoice of an invoice message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceInfo {
    pub title: String,
    pub description: String,
    pub payload: String,
    pub currency: String,
    /// The sum of the prices (for `XTR`: Stars).
    pub amount: u32,
}

/// A message the bot sent, as it is now (after edits).
#[derive(Clone, Debug)]
pub struct BotMessage {
    pub id: i32,
    pub chat: i64,
    pub kind: BotMessageKind,
    /// Text or caption as the user sees it (HTML / MarkdownV2 markup removed); for an invoice
    /// its description; empty when there is none.
    pub text: String,
    pub parse_mode: Option<String>,
    /// Inline keyboard rows: (label, callback data — or the URL / other target for other buttons).
    pub keyboard: Vec<Vec<(String, String)>>,
    /// Reply keyboard rows (labels) sent with this message; empty if none.
    pub reply_keyboard: Vec<Vec<String>>,
    /// The bytes of a photo or document.
    pub file: Option<Vec<u8>>,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    /// Width and height of a photo.
    pub size: Option<(u32, u32)>,
    pub invoice: Option<InvoiceInfo>,
    pub media_group_id: Option<String>,
    /// How many successful edits the message has had.
    pub edits: u32,
    /// The `Message` object as last returned to the bot.
    pub json: Value,
}

impl BotMessage {
    /// All inline button labels, row by row.
    pub fn buttons(&self) -> Vec<String> {
        self.keyboard
            .iter()
            .flatten()
            .map(|(label, _)| label.clone())
            .collect()
    }

    /// The callback data (or URL) of the inline button with this label (exact match first, then
    /// the only label containing it). Panics listing the buttons when there is none.
    pub fn callback_data(&self, label: &str) -> String {
        let all: Vec<&(String, String)> = self.keyboard.iter().flatten().collect();
        if let Some((_, data)) = all.iter().find(|(l, _)| l == label) {
            return data.clone();
        }
        let partial: Vec<_> = all.iter().filter(|(l, _)| l.contains(label)).collect();
        match partial.as_slice() {
            [(_, data)] => data.clone(),
            _ => panic!(
                "no single button {label:?} in message {}: {:?}",
                self.id,
                self.buttons()
            ),
        }
    }
}

/// One item of an album a user sends.
#[derive(Clone, Debug)]
pub enum AlbumItem {
    Photo(Vec<u8>),
    /// A (fake) video message in the group.
    Video,
}

/// The fake server. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct FakeTelegram {
    inner: Arc<Inner>,
}

struct Inner {
    world: Mutex<World>,
    bump: watch::Sender<u64>,
    addr: SocketAddr,
}

struct Stored {
    msg: BotMessage,
    raw_text: String,
    content: Map<String, Value>,
    inline_raw: Option<Value>,
    date: u64,
    edit_date: Option<u64>,
    deleted: bool,
}

#[derive(Default)]
struct ChatLog {
    next_message_id: i32,
    messages: Vec<Stored>,
    user_messages: HashSet<i32>,
    transcript: Vec<String>,
}

struct StoredFile {
    id: String,
    unique_id: String,
    path: String,
    name: Option<String>,
    mime: Option<String>,
    bytes: Vec<u8>,
}

struct Queued {
    id: i64,
    update: Value,
    fetched: bool,
    /// A repeat: delivered once more even though its id is below the confirmed offset.
    forced: bool,
    /// Delivered whatever `allowed_updates` says (raw updates: unknown kinds must reach the bot).
    bypass: bool,
}

struct Failure {
    status: u16,
    description: String,
    retry_after: Option<u32>,
}

struct Query {
    user: i64,
    at: Instant,
    answered: bool,
}

struct Payment {
    user: i64,
    payload: String,
    currency: String,
    total: u32,
    refunded: bool,
}

struct World {
    next_update_id: i64,
    queue: Vec<Queued>,
    last_update: Option<(i64, Value)>,
    allowed_updates: Option<Vec<String>>,
    dropped: Vec<Value>,
    poll_seq: u64,
    languages: HashMap<i64, String>,
    known_users: HashSet<i64>,
    blocked: HashSet<i64>,
    chats: HashMap<i64, ChatLog>,
    files: HashMap<String, StoredFile>,
    paths: HashMap<String, String>,
    next_file: u64,
    next_query: u64,
    next_group: u64,
    calls: Vec<Call>,
    failures: HashMap<String, VecDeque<Failure>>,
    fail_downloads: usize,
    fail_updates: usize,
    in_flight: usize,
    last_activity: Instant,
    /// When `getUpdates` last handed the bot an update it had not fetched before.
    handed_out: Option<Instant>,
    callbacks: HashMap<String, Query>,
    pre_checkouts: HashMap<String, Query>,
    payments: HashMap<String, Payment>,
    transactions: Vec<Value>,
    commands: HashMap<String, Value>,
}

struct ApiErr {
    status: u16,
    description: String,
    retry_after: Option<u32>,
}

fn api_err(status: u16, description: &str) -> ApiErr {
    ApiErr {
        status,
        description: description.to_owned(),
        retry_after: None,
    }
}

fn bad(what: &str) -> ApiErr {
    api_err(400, &format!("Bad Request: {what}"))
}

struct Upload {
    name: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

type Uploads = HashMap<String, Upload>;

struct Input {
    bytes: Vec<u8>,
    name: Option<String>,
    mime: Option<String>,
}

/// Inline keyboard rows of (label, callback data or URL).
type Keyboard = Vec<Vec<(String, String)>>;

#[derive(Default)]
struct Markup {
    inline: Option<(Keyboard, Value)>,
    reply: Option<Vec<Vec<String>>>,
}

/// Decrements the in-flight counter when a request handler finishes (or is dropped).
struct InFlight(FakeTelegram);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut w = self.0.lock();
            w.in_flight -= 1;
            w.last_activity = Instant::now();
        }
        self.0.bump();
    }
}

impl FakeTelegram {
    /// The bot token tests configure (`telegram.token`).
    pub const TOKEN: &str = "123456:TEST-token";

    /// Starts the server on 127.0.0.1:0 in the current tokio runtime.
    pub async fn start() -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake telegram");
        let addr = listener.local_addr().unwrap();
        let (bump, _) = watch::channel(0u64);
        let world = World {
            next_update_id: 100_001,
            queue: Vec::new(),
            last_update: None,
            allowed_updates: None,
            dropped: Vec::new(),
            poll_seq: 0,
            languages: HashMap::new(),
            known_users: HashSet::new(),
            blocked: HashSet::new(),
            chats: HashMap::new(),
            files: HashMap::new(),
            paths: HashMap::new(),
            next_file: 0,
            next_query: 0,
            next_group: 0,
            calls: Vec::new(),
            failures: HashMap::new(),
            fail_downloads: 0,
            fail_updates: 0,
            in_flight: 0,
            last_activity: Instant::now(),
            handed_out: None,
            callbacks: HashMap::new(),
            pre_checkouts: HashMap::new(),
            payments: HashMap::new(),
            transactions: Vec::new(),
            commands: HashMap::new(),
        };
        let fake = FakeTelegram {
            inner: Arc::new(Inner {
                world: Mutex::new(world),
                bump,
                addr,
            }),
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake telegram server");
        });
        fake
    }

    /// `http://127.0.0.1:PORT/` — what goes into `telegram.api_url`.
    pub fn api_url(&self) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}/", self.inner.addr)).unwrap()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.inner.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.inner.bump.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn begin_request(&self) -> InFlight {
        {
            let mut w = self.lock();
            w.in_flight += 1;
            w.last_activity = Instant::now();
        }
        InFlight(self.clone())
    }

    /// Runs a user action: `f` returns the updates (without ids) and transcript lines.
    fn act(&self, user: i64, f: impl FnOnce(&mut World) -> Vec<(Value, String)>) {
        {
            let mut w = self.lock();
            w.known_users.insert(user);
            w.blocked.remove(&user);
            for (update, line) in f(&mut w) {
                w.enqueue(update, false);
                w.log(user, line);
            }
        }
        self.bump();
    }

    // ---- users acting ----

    /// A text message in the private chat with `user`; text starting with '/' gets a
    /// `bot_command` entity.
    pub fn send_text(&self, user: i64, text: &str) {
        self.act(user, |w| {
            let mut content = json!({ "text": text });
            if text.starts_with('/') {
                let command = text.split_whitespace().next().unwrap_or(text);
                content["entities"] = json!([{
                    "type": "bot_command",
                    "offset": 0,
                    "length": command.encode_utf16().count(),
                }]);
            }
            let message = w.user_message(user, content);
            vec![(json!({ "message": message }), format!("> {text}"))]
        });
    }

    /// A photo: a small thumbnail and the full size (last) in `photo`.
    pub fn send_photo(&self, user: i64, jpeg: Vec<u8>) {
        self.act(user, |w| {
            let (sizes, dims) = w.photo_sizes(jpeg);
            let message = w.user_message(user, json!({ "photo": sizes }));
            vec![(
                json!({ "message": message }),
                format!("> [photo{}]", dims_label(dims)),
            )]
        });
    }

    /// A file sent "as document" (original bytes).
    pub fn send_document(&self, user: i64, bytes: Vec<u8>, file_name: &str, mime: &str) {
        self.act(user, |w| {
            let file = w.store_file(
                bytes,
                "documents",
                extension(file_name),
                Some(file_name),
                Some(mime),
            );
            let document = json!({
                "file_id": file.0, "file_unique_id": file.1, "file_size": file.2,
                "file_name": file_name, "mime_type": mime,
            });
            let message = w.user_message(user, json!({ "document": document }));
            vec![(
                json!({ "message": message }),
                format!("> [document {file_name} {mime}]"),
            )]
        });
    }

    /// An album: one photo update per item, all with the same `media_group_id`.
    pub fn send_album(&self, user: i64, photos: Vec<Vec<u8>>) {
        self.send_album_mixed(user, photos.into_iter().map(AlbumItem::Photo).collect());
    }

    /// An album of photos and videos.
    pub fn send_album_mixed(&self, user: i64, items: Vec<AlbumItem>) {
        self.act(user, |w| {
            w.next_group += 1;
            let group = format!("{}", 13_000_000_000_000_000u64 + w.next_group);
            let mut out = Vec::new();
            for item in items {
                let (content, line) = match item {
                    AlbumItem::Photo(bytes) => {
                        let (sizes, dims) = w.photo_sizes(bytes);
                        (
                            json!({ "photo": sizes }),
                            format!("> [photo{} in album]", dims_label(dims)),
                        )
                    }
                    AlbumItem::Video => {
                        let file = w.store_file(
                            b"fake video".to_vec(),
                            "videos",
                            "mp4",
                            None,
                            Some("video/mp4"),
                        );
                        let video = json!({
                            "file_id": file.0, "file_unique_id": file.1, "file_size": file.2,
                            "width": 640, "height": 360, "duration": 3, "mime_type": "video/mp4",
                        });
                        (json!({ "video": video }), "> [video in album]".to_owned())
                    }
                };
                let mut content = content;
                content["media_group_id"] = json!(group);
                let message = w.user_message(user, content);
                out.push((json!({ "message": message }), line));
            }
            out
        });
    }

    /// The user presses an inline button of the bot's message `message_id`.
    pub fn press(&self, user: i64, message_id: i32, data: &str) {
        self.act(user, |w| {
            let found = w
                .chats
                .get(&user)
                .and_then(|c| c.messages.iter().find(|s| s.msg.id == message_id));
            let message = found.map(|s| s.msg.json.clone()).unwrap_or_else(
                || json!({ "chat": chat_json(user), "message_id": message_id, "date": 0 }),
            );
            let label = found.and_then(|s| {
                s.msg
                    .keyboard
                    .iter()
                    .flatten()
                    .find(|(_, d)| d == data)
                    .map(|(l, _)| l.clone())
            });
            w.next_query += 1;
            let id = format!("{}", 4_000_000_000_000_000_000u64 + w.next_query);
            w.callbacks.insert(
                id.clone(),
                Query {
                    user,
                    at: Instant::now(),
                    answered: false,
                },
            );
            let update = json!({ "callback_query": {
                "id": id,
                "from": w.user_json(user),
                "message": message,
                "chat_instance": format!("-{}", 7_000_000_000u64 + user.unsigned_abs()),
                "data": data,
            }});
            let line = match label {
                Some(label) => format!("> [press {label:?}]"),
                None => format!("> [press data={data:?}]"),
            };
            vec![(update, line)]
        });
    }

    /// Queues any update (unknown kinds, forged data). `update_id` is assigned when missing.
    /// Raw updates are delivered whatever `allowed_updates` the bot asked for.
    pub fn send_raw_update(&self, update: Value) {
        {
            let mut w = self.lock();
            let kind = update_kind(&update).to_owned();
            let chat = guess_chat(&update);
            let mut update = update;
            let given = update.get("update_id").and_then(Value::as_i64);
            let id = match given {
                Some(id) => {
                    w.next_update_id = w.next_update_id.max(id + 1);
                    id
                }
                None => {
                    let id = w.next_update_id;
                    w.next_update_id += 1;
                    if let Some(o) = update.as_object_mut() {
                        o.insert("update_id".into(), json!(id));
                    }
                    id
                }
            };
            w.last_update = Some((id, update.clone()));
            w.queue.push(Queued {
                id,
                update,
                fetched: false,
                forced: false,
                bypass: true,
            });
            if let Some(chat) = chat {
                w.known_users.insert(chat);
                w.log(chat, format!("> [update {kind}]"));
            }
        }
        self.bump();
    }

    /// The last queued update is delivered again with the same `update_id` (even if confirmed).
    pub fn repeat_last_update(&self) {
        {
            let mut w = self.lock();
            let (id, update) = w
                .last_update
                .clone()
                .expect("repeat_last_update: no update yet");
            if let Some(chat) = guess_chat(&update) {
                w.log(chat, "> [same update again]".to_owned());
            }
            w.queue.push(Queued {
                id,
                update,
                fetched: false,
                forced: true,
                bypass: true,
            });
        }
        self.bump();
    }

    /// `language_code` in `from` of this user's later updates (default "ru").
    pub fn set_language(&self, user: i64, code: &str) {
        self.lock().languages.insert(user, code.to_owned());
    }

    /// The user blocks the bot: later sends to them answer 403 "bot was blocked by the user"
    /// (until the user writes again).
    pub fn block_bot(&self, user: i64) {
        let mut w = self.lock();
        w.blocked.insert(user);
        w.log(user, "> [blocks the bot]".to_owned());
    }

    /// A `pre_checkout_query` for an invoice; returns the query id.
    pub fn pre_checkout(&self, user: i64, payload: &str, currency: &str, total: u32) -> String {
        let mut id = String::new();
        self.act(user, |w| {
            w.next_query += 1;
            id = format!("{}", 5_000_000_000_000_000_000u64 + w.next_query);
            w.pre_checkouts.insert(
                id.clone(),
                Query {
                    user,
                    at: Instant::now(),
                    answered: false,
                },
            );
            let update = json!({ "pre_checkout_query": {
                "id": id,
                "from": w.user_json(user),
                "currency": currency,
                "total_amount": total,
                "invoice_payload": payload,
            }});
            vec![(update, format!("> [checkout {total} {currency}]"))]
        });
        id
    }

    /// The `successful_payment` service message; the payment becomes a Star transaction
    /// (`getStarTransactions`) that `refundStarPayment` can refund once.
    pub fn successful_payment(
        &self,
        user: i64,
        payload: &str,
        currency: &str,
        total: u32,
        charge_id: &str,
    ) {
        self.act(user, |w| {
            let payment = json!({
                "currency": currency,
                "total_amount": total,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
            });
            let message = w.user_message(user, json!({ "successful_payment": payment }));
            w.charge(user, payload, currency, total, charge_id);
            vec![(
                json!({ "message": message }),
                format!("> [paid {total} {currency}]"),
            )]
        });
    }

    /// Telegram took the Stars but the `successful_payment` update never reached the bot (a
    /// crash between fetching and handling it): only `getStarTransactions` knows.
    pub fn payment_update_lost(
        &self,
        user: i64,
        payload: &str,
        currency: &str,
        total: u32,
        charge_id: &str,
    ) {
        {
            let mut w = self.lock();
            w.charge(user, payload, currency, total, charge_id);
            w.log(
                user,
                format!("> [paid {total} {currency}; the update is lost]"),
            );
        }
        self.bump();
    }

    /// How many payments have been refunded.
    pub fn refunds(&self) -> usize {
        self.lock().payments.values().filter(|p| p.refunded).count()
    }

    // ---- what the bot did ----

    /// Every request so far (including `getUpdates` polls and `download`s).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// When the newest request of one of `methods` arrived.
    #[allow(dead_code)] // benches/proof.rs
    pub fn last_call_time(&self, methods: &[&str]) -> Option<Instant> {
        let w = self.lock();
        let call = w
            .calls
            .iter()
            .rev()
            .find(|c| methods.contains(&c.method.as_str()));
        call.map(|c| c.time)
    }

    /// When `getUpdates` last handed the bot a new update: where the bot's own time starts
    /// (the fake's work to build the update, such as a photo's thumbnail, comes before it).
    #[allow(dead_code)] // benches/proof.rs
    pub fn last_hand_out(&self) -> Option<Instant> {
        self.lock().handed_out
    }

    /// The chat's bot messages as they are now (deleted ones left out), oldest first.
    pub fn messages(&self, chat: i64) -> Vec<BotMessage> {
        self.lock().messages(chat)
    }

    /// The id of the newest bot message in the chat (0 when there is none).
    pub fn last_message_id(&self, chat: i64) -> i32 {
        self.lock().live_messages(chat).last().map_or(0, |m| m.id)
    }

    /// The newest bot message in the chat; panics when there is none.
    pub fn last_message(&self, chat: i64) -> BotMessage {
        let w = self.lock();
        match w.messages(chat).pop() {
            Some(m) => m,
            None => panic!(
                "no bot message in chat {chat}; transcript:\n{}",
                w.transcript(chat)
            ),
        }
    }

    /// Waits up to 20 s for a bot message in the chat matching `pred` and returns the newest
    /// matching one; panics listing the chat's messages.
    pub async fn wait_for_message(
        &self,
        chat: i64,
        pred: impl Fn(&BotMessage) -> bool,
    ) -> BotMessage {
        self.wait_until(
            |w| w.live_messages(chat).rev().find(|m| pred(m)).cloned(),
            |w| {
                format!(
                    "no matching bot message in chat {chat}; transcript:\n{}\nmessages:\n{}",
                    w.transcript(chat),
                    {
                        let list: Vec<String> =
                            w.messages(chat).iter().map(|m| format!("{m:?}")).collect();
                        list.join("\n")
                    }
                )
            },
        )
        .await
    }

    /// Waits up to 20 s until the chat's bot messages, as they are now, satisfy `pred`.
    pub async fn wait_until_chat(&self, chat: i64, pred: impl Fn(&[BotMessage]) -> bool) {
        self.wait_until(
            |w| pred(&w.messages(chat)).then_some(()),
            |w| {
                format!(
                    "chat {chat} never got there; transcript:\n{}",
                    w.transcript(chat)
                )
            },
        )
        .await
    }

    /// Waits up to 20 s for a call of `method` (case-insensitive) whose params match `pred`;
    /// returns the earliest matching call so far.
    pub async fn wait_for_call(&self, method: &str, pred: impl Fn(&Value) -> bool) -> Call {
        let method = normalise(method);
        self.wait_until(
            |w| {
                w.calls
                    .iter()
                    .find(|c| c.method == method && pred(&c.params))
                    .cloned()
            },
            |w| {
                let list: Vec<String> = w
                    .calls
                    .iter()
                    .map(|c| format!("{} {}", c.method, c.params))
                    .collect();
                format!("no matching {method} call; calls:\n{}", list.join("\n"))
            },
        )
        .await
    }

    /// Waits until every queued update has been fetched by `getUpdates`, no request other than
    /// a parked long poll is in flight, and no request arrived for 300 ms. Panics after 20 s.
    pub async fn wait_idle(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut rx = self.inner.bump.subscribe();
        loop {
            let wake = {
                let w = self.lock();
                let fetched = w.queue.iter().all(|q| q.fetched);
                if fetched && w.in_flight == 0 {
                    let quiet_at = w.last_activity + QUIET;
                    if Instant::now() >= quiet_at {
                        return;
                    }
                    Some(tokio::time::Instant::from_std(quiet_at))
                } else {
                    None
                }
            };
            if tokio::time::Instant::now() >= deadline {
                let w = self.lock();
                let pending: Vec<String> = w
                    .queue
                    .iter()
                    .filter(|q| !q.fetched)
                    .map(|q| q.update.to_string())
                    .collect();
                panic!(
                    "fake telegram not idle after 20 s: {} requests in flight, unfetched updates: {pending:?}",
                    w.in_flight
                );
            }
            let until = wake.map_or(deadline, |t| t.min(deadline));
            let _ = tokio::time::timeout_at(until, rx.changed()).await;
        }
    }

    async fn wait_until<T>(
        &self,
        check: impl Fn(&World) -> Option<T>,
        describe: impl Fn(&World) -> String,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut rx = self.inner.bump.subscribe();
        loop {
            if let Some(found) = check(&self.lock()) {
                return found;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                if let Some(found) = check(&self.lock()) {
                    return found;
                }
                let text = describe(&self.lock());
                panic!("waited 20 s: {text}");
            }
        }
    }

    /// The conversation in this chat so far, for snapshots:
    /// `> ` user actions, `< ` bot messages (`  [button] [button]` rows, `  (label)` reply
    /// keyboard rows), `<~ ` edits (the whole message as it became), `<x ` deletions,
    /// `<! ` callback answers with text, `<$ ` payment answers and refunds.
    pub fn transcript(&self, chat: i64) -> String {
        self.lock().transcript(chat)
    }

    // ---- faults ----

    /// The next call of `method` answers
    /// `{"ok":false,"error_code":status,"description":..,"parameters":{"retry_after":..}}`.
    /// Several calls queue up. Note: teloxide sleeps 10 s before reading a 5xx answer.
    pub fn fail_next(
        &self,
        method: &str,
        status: u16,
        description: &str,
        retry_after: Option<u32>,
    ) {
        let failure = Failure {
            status,
            description: description.to_owned(),
            retry_after,
        };
        self.lock()
            .failures
            .entry(normalise(method).to_ascii_lowercase())
            .or_default()
            .push_back(failure);
    }

    /// The next `n` file downloads break off after half of the bytes (connection dropped).
    pub fn fail_file_downloads(&self, n: usize) {
        self.lock().fail_downloads += n;
    }

    /// The next `n` `getUpdates` calls fail at the network level (connection dropped).
    pub fn fail_get_updates(&self, n: usize) {
        self.lock().fail_updates += n;
    }

    // ---- serving ----

    async fn get_updates(&self, p: Value) -> Response {
        let network_failure = {
            let mut w = self.lock();
            let fail = w.fail_updates > 0;
            if fail {
                w.fail_updates -= 1;
            }
            fail
        };
        if network_failure {
            return broken_response(Vec::new(), None);
        }
        let offset = p_i64(&p, "offset");
        let limit = p_i64(&p, "limit").unwrap_or(100).clamp(1, 100) as usize;
        let timeout = p_i64(&p, "timeout").unwrap_or(0).clamp(0, 600) as u64;
        let mut rx = self.inner.bump.subscribe();
        let seq = {
            let mut w = self.lock();
            if let Some(list) = p.get("allowed_updates").and_then(Value::as_array) {
                let list: Vec<String> = list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                w.allowed_updates = if list.is_empty() { None } else { Some(list) };
            }
            if let Some(offset) = offset.filter(|o| *o > 0) {
                w.queue.retain(|q| q.id >= offset || q.forced);
            }
            w.poll_seq += 1;
            w.poll_seq
        };
        self.bump();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        loop {
            let batch = {
                let mut w = self.lock();
                if w.poll_seq != seq {
                    return error_response(&api_err(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    ));
                }
                w.take_batch(limit)
            };
            if let Some(batch) = batch {
                self.bump();
                return ok_response(Value::Array(batch));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    let batch = self.lock().take_batch(limit).unwrap_or_default();
                    self.bump();
                    return ok_response(Value::Array(batch));
                }
            }
        }
    }

    async fn download(&self, rest: &str) -> Response {
        let _guard = self.begin_request();
        let (token, path) = rest.split_once('/').unwrap_or((rest, ""));
        let token = percent_decode(token.strip_prefix("bot").unwrap_or(""), false);
        let path = percent_decode(path, false);
        let (bytes, fail) = {
            let mut w = self.lock();
            w.calls.push(Call {
                method: "download".into(),
                params: json!({ "path": path }),
                time: Instant::now(),
            });
            if token != Self::TOKEN {
                drop(w);
                self.bump();
                return error_response(&api_err(401, "Unauthorized"));
            }
            let bytes = w
                .paths
                .get(&path)
                .and_then(|id| w.files.get(id))
                .map(|f| f.bytes.clone());
            let fail = w.fail_downloads > 0;
            if fail {
                w.fail_downloads -= 1;
            }
            (bytes, fail)
        };
        self.bump();
        match (bytes, fail) {
            (Some(bytes), true) => {
                let total = bytes.len();
                broken_response(bytes[..total / 2].to_vec(), Some(total))
            }
            (None, true) => broken_response(Vec::new(), None),
            (Some(bytes), false) => Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, bytes.len())
                .body(Body::from(bytes))
                .unwrap(),
            (None, false) => error_response(&api_err(404, "Not Found")),
        }
    }
}

async fn handle(State(fake): State<FakeTelegram>, req: Request) -> Response {
    let arrived = Instant::now();
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/file/") {
        return fake.download(rest).await;
    }
    let query = req.uri().query().map(str::to_owned);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (token, method) = match path.trim_start_matches('/').split_once('/') {
        Some((bot, method))
            if bot.starts_with("bot") && !method.is_empty() && !method.contains('/') =>
        {
            (
                percent_decode(&bot[3..], false),
                normalise(&percent_decode(method, false)),
            )
        }
        _ => return error_response(&api_err(404, "Not Found")),
    };
    let polling = method == "getUpdates";
    let _guard = (!polling).then(|| fake.begin_request());
    let body = axum::body::to_bytes(req.into_body(), 64 << 20).await;
    let parsed = match body {
        Ok(body) => parse_params(&content_type, query.as_deref(), &body),
        Err(_) => Err(api_err(413, "Request Entity Too Large")),
    };
    let (params, uploads, parse_error) = match parsed {
        Ok((params, uploads)) => (params, uploads, None),
        Err(e) => (json!({}), Uploads::new(), Some(e)),
    };
    let early = {
        let mut w = fake.lock();
        w.calls.push(Call {
            method: method.clone(),
            params: for_record(&params, &uploads),
            time: arrived,
        });
        w.last_activity = Instant::now();
        if token != FakeTelegram::TOKEN {
            Some(api_err(401, "Unauthorized"))
        } else if parse_error.is_some() {
            parse_error
        } else {
            w.failures
                .get_mut(&method.to_ascii_lowercase())
                .and_then(VecDeque::pop_front)
                .map(|f| ApiErr {
                    status: f.status,
                    description: f.description,
                    retry_after: f.retry_after,
                })
        }
    };
    fake.bump();
    if let Some(e) = early {
        return error_response(&e);
    }
    if polling {
        return fake.get_updates(params).await;
    }
    let result = fake.lock().dispatch(&method, &params, &uploads);
    fake.bump();
    match result {
        Ok(v) => ok_response(v),
        Err(e) => error_response(&e),
    }
}

impl World {
    /// A paid invoice: a payment `refundStarPayment` can refund once, and a Star transaction.
    fn charge(&mut self, user: i64, payload: &str, currency: &str, total: u32, charge_id: &str) {
        self.payments.insert(
            charge_id.to_owned(),
            Payment {
                user,
                payload: payload.to_owned(),
                currency: currency.to_owned(),
                total,
                refunded: false,
            },
        );
        let tx = json!({
            "id": charge_id,
            "amount": total,
            "date": now_unix(),
            "source": {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": self.user_json(user),
                "invoice_payload": payload,
            },
        });
        self.transactions.push(tx);
    }

    fn enqueue(&mut self, mut update: Value, bypass: bool) -> i64 {
        let id = self.next_update_id;
        self.next_update_id += 1;
        update["update_id"] = json!(id);
        self.last_update = Some((id, update.clone()));
        self.queue.push(Queued {
            id,
            update,
            fetched: false,
            forced: false,
            bypass,
        });
        id
    }

    fn take_batch(&mut self, limit: usize) -> Option<Vec<Value>> {
        let allowed = self.allowed_updates.clone();
        let mut dropped = Vec::new();
        self.queue.retain(|q| {
            let kind = update_kind(&q.update);
            let ok = q.bypass
                || match &allowed {
                    Some(list) => list.iter().any(|k| k == kind),
                    None => !NOT_DEFAULT_KINDS.contains(&kind),
                };
            if !ok {
                dropped.push(q.update.clone());
            }
            ok
        });
        self.dropped.extend(dropped);
        if self.queue.is_empty() {
            return None;
        }
        let now = Instant::now();
        let batch = self
            .queue
            .iter_mut()
            .take(limit)
            .map(|q| {
                if !q.fetched {
                    self.handed_out = Some(now);
                }
                q.fetched = true;
                q.forced = false;
                q.update.clone()
            })
            .collect();
        Some(batch)
    }

    fn chat(&mut self, chat: i64) -> &mut ChatLog {
        self.chats.entry(chat).or_insert_with(|| ChatLog {
            next_message_id: 1,
            ..ChatLog::default()
        })
    }

    fn next_message_id(&mut self, chat: i64) -> i32 {
        let c = self.chat(chat);
        let id = c.next_message_id;
        c.next_message_id += 1;
        id
    }

    fn log(&mut self, chat: i64, line: String) {
        self.chat(chat).transcript.push(line);
    }

    fn language(&self, user: i64) -> String {
        self.languages
            .get(&user)
            .cloned()
            .unwrap_or_else(|| DEFAULT_LANGUAGE.to_owned())
    }

    fn user_json(&self, user: i64) -> Value {
        json!({
            "id": user,
            "is_bot": false,
            "first_name": format!("User{user}"),
            "username": format!("user{user}"),
            "language_code": self.language(user),
        })
    }

    fn user_message(&mut self, user: i64, content: Value) -> Value {
        let id = self.next_message_id(user);
        self.chat(user).user_messages.insert(id);
        let mut message = json!({
            "message_id": id,
            "from": self.user_json(user),
            "chat": chat_json(user),
            "date": now_unix(),
        });
        if let (Some(m), Value::Object(c)) = (message.as_object_mut(), content) {
            m.extend(c);
        }
        message
    }

    /// Stores a file; returns (file_id, file_unique_id, size, file_path).
    fn store_file(
        &mut self,
        bytes: Vec<u8>,
        dir: &str,
        ext: &str,
        name: Option<&str>,
        mime: Option<&str>,
    ) -> (String, String, usize, String) {
        let n = self.next_file;
        self.next_file += 1;
        let id = format!("BQACAgIAAxkBAAI{n:05}-fake");
        let unique_id = format!("AgAD{n:05}");
        let path = format!("{dir}/file_{n}.{ext}");
        let size = bytes.len();
        self.paths.insert(path.clone(), id.clone());
        self.files.insert(
            id.clone(),
            StoredFile {
                id: id.clone(),
                unique_id: unique_id.clone(),
                path: path.clone(),
                name: name.map(str::to_owned),
                mime: mime.map(str::to_owned),
                bytes,
            },
        );
        (id, unique_id, size, path)
    }

    /// Stores a photo as a small thumbnail plus the full size; returns the `PhotoSize` array
    /// (full size last) and the full size's dimensions.
    fn photo_sizes(&mut self, bytes: Vec<u8>) -> (Value, Option<(u32, u32)>) {
        let dims = image_dims(&bytes);
        let (w, h) = dims.unwrap_or((0, 0));
        let (thumb, tw, th) = thumbnail(&bytes).unwrap_or_else(|| {
            let cut = bytes.len().min(512);
            (bytes[..cut].to_vec(), w.min(90), h.min(90))
        });
        let t = self.store_file(thumb, "photos", "jpg", None, Some("image/jpeg"));
        let f = self.store_file(bytes, "photos", "jpg", None, Some("image/jpeg"));
        let sizes = json!([
            { "file_id": t.0, "file_unique_id": t.1, "file_size": t.2, "width": tw, "height": th },
            { "file_id": f.0, "file_unique_id": f.1, "file_size": f.2, "width": w, "height": h },
        ]);
        (sizes, dims)
    }

    fn messages(&self, chat: i64) -> Vec<BotMessage> {
        self.live_messages(chat).cloned().collect()
    }

    /// The chat's messages without copying them (results carry their bytes: waits that check
    /// on every request must not clone a long chat each time).
    fn live_messages(&self, chat: i64) -> impl DoubleEndedIterator<Item = &BotMessage> {
        self.chats
            .get(&chat)
            .into_iter()
            .flat_map(|c| c.messages.iter())
            .filter(|s| !s.deleted)
            .map(|s| &s.msg)
    }

    fn transcript(&self, chat: i64) -> String {
        self.chats
            .get(&chat)
            .map(|c| c.transcript.join("\n"))
            .unwrap_or_default()
    }

    fn target_chat(&self, p: &Value) -> Result<i64, ApiErr> {
        let chat = match p.get("chat_id") {
            None | Some(Value::Null) => return Err(bad("chat_id is empty")),
            Some(_) => p_i64(p, "chat_id").ok_or_else(|| bad("chat not found"))?,
        };
        if self.blocked.contains(&chat) {
            return Err(api_err(403, "Forbidden: bot was blocked by the user"));
        }
        if !self.known_users.contains(&chat) {
            return Err(api_err(
                403,
                "Forbidden: bot can't initiate conversation with a user",
            ));
        }
        Ok(chat)
    }

    fn find_mut(&mut self, chat: i64, id: i64) -> Option<&mut Stored> {
        self.chats
            .get_mut(&chat)?
            .messages
            .iter_mut()
            .find(|s| i64::from(s.msg.id) == id && !s.deleted)
    }

    fn dispatch(&mut self, method: &str, p: &Value, up: &Uploads) -> Result<Value, ApiErr> {
        match method {
            "getMe" => Ok(json!({
                "id": BOT_ID,
                "is_bot": true,
                "first_name": "QwenEdit Test",
                "username": BOT_USERNAME,
                "can_join_groups": true,
                "can_read_all_group_messages": false,
                "supports_inline_queries": false,
                "can_connect_to_business": false,
                "has_main_web_app": false,
            })),
            "deleteWebhook" => {
                // As on Telegram: pending updates are gone for good.
                if p_bool(p, "drop_pending_updates") {
                    let pending = std::mem::take(&mut self.queue);
                    self.dropped.extend(pending.into_iter().map(|q| q.update));
                }
                Ok(json!(true))
            }
            "close" | "logOut" => Ok(json!(true)),
            "getWebhookInfo" => Ok(json!({
                "url": "",
                "has_custom_certificate": false,
                "pending_update_count": self.queue.len(),
            })),
            "setMyCommands" => self.set_my_commands(p),
            "getMyCommands" => {
                let lang = p_str(p, "language_code").unwrap_or("").to_owned();
                Ok(self
                    .commands
                    .get(&lang)
                    .cloned()
                    .unwrap_or_else(|| json!([])))
            }
            "deleteMyCommands" => {
                let lang = p_str(p, "language_code").unwrap_or("").to_owned();
                self.commands.remove(&lang);
                Ok(json!(true))
            }
            "setMyDescription" => check_len(p, "description", 512),
            "setMyShortDescription" => check_len(p, "short_description", 120),
            "setMyName" => check_len(p, "name", 64),
            "sendMessage" => self.send_message(p),
            "editMessageText" => self.edit(p, Edit::Text),
            "editMessageCaption" => self.edit(p, Edit::Caption),
            "editMessageReplyMarkup" => self.edit(p, Edit::Markup),
            "deleteMessage" => self.delete_message(p),
            "sendPhoto" => self.send_file(p, up, BotMessageKind::Photo),
            "sendDocument" => self.send_file(p, up, BotMessageKind::Document),
            "sendMediaGroup" => self.send_media_group(p, up),
            "sendChatAction" => {
                self.target_chat(p)?;
                const ACTIONS: &[&str] = &[
                    "typing",
                    "upload_photo",
                    "record_video",
                    "upload_video",
                    "record_voice",
                    "upload_voice",
                    "upload_document",
                    "choose_sticker",
                    "find_location",
                    "record_video_note",
                    "upload_video_note",
                ];
                match p_str(p, "action") {
                    Some(a) if ACTIONS.contains(&a) => Ok(json!(true)),
                    _ => Err(bad("wrong parameter action in request")),
                }
            }
            "answerCallbackQuery" => self.answer_callback(p),
            "getFile" => {
                let id = p_str(p, "file_id").unwrap_or("");
                let f = self.files.get(id).ok_or_else(|| bad("invalid file_id"))?;
                if f.bytes.len() > MAX_DOWNLOAD_BYTES {
                    return Err(bad("file is too big"));
                }
                Ok(json!({
                    "file_id": f.id, "file_unique_id": f.unique_id,
                    "file_size": f.bytes.len(), "file_path": f.path,
                }))
            }
            "sendInvoice" => self.send_invoice(p),
            "answerPreCheckoutQuery" => self.answer_pre_checkout(p),
            "refundStarPayment" => self.refund(p),
            "getStarTransactions" => {
                let offset = p_i64(p, "offset").unwrap_or(0).max(0) as usize;
                let limit = p_i64(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
                let list: Vec<Value> = self
                    .transactions
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .cloned()
                    .collect();
                Ok(json!({ "transactions": list }))
            }
            _ => Err(api_err(404, "Not Found: method not found")),
        }
    }

    fn set_my_commands(&mut self, p: &Value) -> Result<Value, ApiErr> {
        let list = p
            .get("commands")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("commands must be an array"))?;
        if list.len() > 100 {
            return Err(bad("BOT_COMMANDS_TOO_MUCH"));
        }
        for c in list {
            let command = c.get("command").and_then(Value::as_str).unwrap_or("");
            let valid = (1..=32).contains(&command.len())
                && command
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if !valid {
                return Err(bad("BOT_COMMAND_INVALID"));
            }
            let description = c.get("description").and_then(Value::as_str).unwrap_or("");
            if !(1..=256).contains(&description.chars().count()) {
                return Err(bad("BOT_COMMAND_DESCRIPTION_INVALID"));
            }
        }
        let lang = p_str(p, "language_code").unwrap_or("").to_owned();
        self.commands.insert(lang, Value::Array(list.clone()));
        Ok(json!(true))
    }

    fn send_message(&mut self, p: &Value) -> Result<Value, ApiErr> {
        let chat = self.target_chat(p)?;
        let raw = p_str(p, "text").unwrap_or("").to_owned();
        let parse_mode = parse_mode(p);
        let text = render_text(&raw, parse_mode.as_deref())?;
        if text.trim().is_empty() {
            return Err(bad("message text is empty"));
        }
        if text.chars().count() > 4096 {
            return Err(bad("message is too long"));
        }
        let markup = parse_markup(p.get("reply_markup"))?;
        let msg = new_message(chat, BotMessageKind::Text, text, parse_mode);
        Ok(self.store_message(msg, raw, Map::new(), markup))
    }

    fn store_message(
        &mut self,
        mut msg: BotMessage,
        raw_text: String,
        content: Map<String, Value>,
        markup: Markup,
    ) -> Value {
        msg.id = self.next_message_id(msg.chat);
        let (keyboard, inline_raw) = match markup.inline {
            Some((k, raw)) => (k, Some(raw)),
            None => (Vec::new(), None),
        };
        msg.keyboard = keyboard;
        msg.reply_keyboard = markup.reply.unwrap_or_default();
        msg.media_group_id = content
            .get("media_group_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut stored = Stored {
            msg,
            raw_text,
            content,
            inline_raw,
            date: now_unix(),
            edit_date: None,
            deleted: false,
        };
        rebuild_json(&mut stored);
        let json = stored.msg.json.clone();
        let chat = stored.msg.chat;
        let lines = render(BotPrefix::New, &stored.msg);
        let log = self.chat(chat);
        log.messages.push(stored);
        log.transcript.extend(lines);
        json
    }

    fn edit(&mut self, p: &Value, what: Edit) -> Result<Value, ApiErr> {
        if p.get("inline_message_id").is_some_and(|v| !v.is_null()) {
            return Err(bad("fake telegram: inline messages are not supported"));
        }
        let chat = p_i64(p, "chat_id").ok_or_else(|| bad("chat_id is empty"))?;
        let id =
            p_i64(p, "message_id").ok_or_else(|| bad("message identifier is not specified"))?;
        let markup = parse_markup(p.get("reply_markup"))?;
        if markup.reply.is_some() {
            return Err(bad("inline keyboard expected"));
        }
        let parse_mode = parse_mode(p);
        let stored = self
            .find_mut(chat, id)
            .ok_or_else(|| bad("message to edit not found"))?;
        let kind = stored.msg.kind;
        let (text, raw, parse_mode) = match what {
            Edit::Text => {
                if kind != BotMessageKind::Text {
                    return Err(bad("there is no text in the message to edit"));
                }
                let raw = p_str(p, "text").unwrap_or("").to_owned();
                let text = render_text(&raw, parse_mode.as_deref())?;
                if text.trim().is_empty() {
                    return Err(bad("message text is empty"));
                }
                if text.chars().count() > 4096 {
                    return Err(bad("message is too long"));
                }
                (text, raw, parse_mode)
            }
            Edit::Caption => {
                if !matches!(kind, BotMessageKind::Photo | BotMessageKind::Document) {
                    return Err(bad("there is no caption in the message to edit"));
                }
                let raw = p_str(p, "caption").unwrap_or("").to_owned();
                let text = render_text(&raw, parse_mode.as_deref())?;
                if text.chars().count() > 1024 {
                    return Err(bad("message caption is too long"));
                }
                (text, raw, parse_mode)
            }
            Edit::Markup => (
                stored.msg.text.clone(),
                stored.raw_text.clone(),
                stored.msg.parse_mode.clone(),
            ),
        };
        let (keyboard, inline_raw) = match markup.inline {
            Some((k, raw)) if !k.is_empty() => (k, Some(raw)),
            _ => (Vec::new(), None),
        };
        if text == stored.msg.text && raw == stored.raw_text && keyboard == stored.msg.keyboard {
            return Err(api_err(400, NOT_MODIFIED));
        }
        stored.msg.text = text;
        stored.raw_text = raw;
        stored.msg.parse_mode = parse_mode;
        stored.msg.keyboard = keyboard;
        stored.inline_raw = inline_raw;
        stored.msg.edits += 1;
        stored.edit_date = Some(now_unix());
        rebuild_json(stored);
        let json = stored.msg.json.clone();
        let lines = render(BotPrefix::Edit, &stored.msg);
        self.chat(chat).transcript.extend(lines);
        Ok(json)
    }

    fn delete_message(&mut self, p: &Value) -> Result<Value, ApiErr> {
        let chat = p_i64(p, "chat_id").ok_or_else(|| bad("chat_id is empty"))?;
        let id =
            p_i64(p, "message_id").ok_or_else(|| bad("message identifier is not specified"))?;
        if let Some(stored) = self.find_mut(chat, id) {
            stored.deleted = true;
            let first = render(BotPrefix::Delete, &stored.msg)
                .into_iter()
                .next()
                .unwrap_or_default();
            self.chat(chat).transcript.push(first);
            return Ok(json!(true));
        }
        let user_message = i32::try_from(id)
            .ok()
            .filter(|id| self.chat(chat).user_messages.remove(id));
        if user_message.is_some() {
            self.log(chat, "<x [user's message]".to_owned());
            return Ok(json!(true));
        }
        Err(bad("message to delete not found"))
    }

    fn resolve_input(&self, v: Option<&Value>, up: &Uploads, field: &str) -> Result<Input, ApiErr> {
        match v {
            Some(Value::String(s)) if s.starts_with("attach://") => {
                let u = up
                    .get(&s["attach://".len()..])
                    .ok_or_else(|| bad("wrong file identifier/HTTP URL specified"))?;
                Ok(Input {
                    bytes: u.bytes.clone(),
                    name: u.name.clone(),
                    mime: u.content_type.clone(),
                })
            }
            Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
                Err(bad("failed to get HTTP URL content"))
            }
            Some(Value::String(s)) => {
                let f = self
                    .files
                    .get(s)
                    .ok_or_else(|| bad("wrong file identifier/HTTP URL specified"))?;
                Ok(Input {
                    bytes: f.bytes.clone(),
                    name: f.name.clone(),
                    mime: f.mime.clone(),
                })
            }
            _ => Err(bad(&format!("there is no {field} in the request"))),
        }
    }

    /// Builds (without storing) a photo or document message from an input file.
    fn media_message(
        &mut self,
        chat: i64,
        kind: BotMessageKind,
        input: Input,
        caption_raw: &str,
        parse_mode: Option<String>,
    ) -> Result<(BotMessage, Map<String, Value>), ApiErr> {
        let caption = render_text(caption_raw, parse_mode.as_deref())?;
        if caption.chars().count() > 1024 {
            return Err(bad("message caption is too long"));
        }
        let mut msg = new_message(chat, kind, caption, parse_mode);
        let mut content = Map::new();
        if kind == BotMessageKind::Photo {
            let dims = check_photo(&input.bytes)?;
            let (sizes, _) = self.photo_sizes(input.bytes.clone());
            content.insert("photo".into(), sizes);
            msg.size = Some(dims);
        } else {
            if input.bytes.is_empty() {
                return Err(bad("file must be non-empty"));
            }
            if input.bytes.len() > MAX_DOCUMENT_BYTES {
                return Err(api_err(413, "Request Entity Too Large"));
            }
            let name = input
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "document".to_owned());
            let mime = input
                .mime
                .clone()
                .filter(|m| m != "application/octet-stream")
                .unwrap_or_else(|| guess_mime(&name).to_owned());
            let f = self.store_file(
                input.bytes.clone(),
                "documents",
                extension(&name),
                Some(&name),
                Some(&mime),
            );
            content.insert(
                "document".into(),
                json!({
                    "file_id": f.0, "file_unique_id": f.1, "file_size": f.2,
                    "file_name": name, "mime_type": mime,
                }),
            );
            msg.file_name = Some(name);
            msg.mime_type = Some(mime);
        }
        msg.file = Some(input.bytes);
        Ok((msg, content))
    }

    fn send_file(
        &mut self,
        p: &Value,
        up: &Uploads,
        kind: BotMessageKind,
    ) -> Result<Value, ApiErr> {
        let chat = self.target_chat(p)?;
        let field = kind.as_str();
        let input = self.resolve_input(p.get(field), up, field)?;
        let markup = parse_markup(p.get("reply_markup"))?;
        let raw = p_str(p, "caption").unwrap_or("").to_owned();
        let (msg, content) = self.media_message(chat, kind, input, &raw, parse_mode(p))?;
        Ok(self.store_message(msg, raw, content, markup))
    }

    fn send_media_group(&mut self, p: &Value, up: &Uploads) -> Result<Value, ApiErr> {
        let chat = self.target_chat(p)?;
        let media = p
            .get("media")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("media must be an array"))?;
        if !(2..=10).contains(&media.len()) {
            return Err(bad("wrong number of media in the group"));
        }
        let mut built = Vec::new();
        let mut kinds = HashSet::new();
        for item in media {
            let kind = match item.get("type").and_then(Value::as_str) {
                Some("photo") => BotMessageKind::Photo,
                Some("document") => BotMessageKind::Document,
                other => {
                    return Err(bad(&format!(
                        "fake telegram: unsupported media type {other:?}"
                    )));
                }
            };
            kinds.insert(kind);
            let input = self.resolve_input(item.get("media"), up, kind.as_str())?;
            let raw = item
                .get("caption")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let pm = item
                .get("parse_mode")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            built.push((kind, input, raw, pm));
        }
        if kinds.len() > 1 {
            return Err(bad("MEDIA_GROUP_INVALID"));
        }
        let mut prepared = Vec::new();
        for (kind, input, raw, pm) in built {
            let (msg, content) = self.media_message(chat, kind, input, &raw, pm)?;
            prepared.push((msg, raw, content));
        }
        self.next_group += 1;
        let group = format!("{}", 14_000_000_000_000_000u64 + self.next_group);
        let mut out = Vec::new();
        for (msg, raw, mut content) in prepared {
            content.insert("media_group_id".into(), json!(group));
            out.push(self.store_message(msg, raw, content, Markup::default()));
        }
        Ok(Value::Array(out))
    }

    fn answer_callback(&mut self, p: &Value) -> Result<Value, ApiErr> {
        let id = p_str(p, "callback_query_id").unwrap_or("");
        let q = match self.callbacks.get_mut(id) {
            Some(q) if !q.answered => q,
            _ => return Err(api_err(400, QUERY_TOO_OLD)),
        };
        q.answered = true;
        let user = q.user;
        let text = p_str(p, "text").unwrap_or("");
        if text.chars().count() > 200 {
            return Err(bad("MESSAGE_TOO_LONG"));
        }
        if !text.is_empty() {
            let alert = if p_bool(p, "show_alert") {
                " (alert)"
            } else {
                ""
            };
            self.log(user, format!("<! {text}{alert}"));
        }
        Ok(json!(true))
    }

    fn send_invoice(&mut self, p: &Value) -> Result<Value, ApiErr> {
        let chat = self.target_chat(p)?;
        let title = p_str(p, "title").unwrap_or("").to_owned();
        let description = p_str(p, "description").unwrap_or("").to_owned();
        let payload = p_str(p, "payload").unwrap_or("").to_owned();
        let currency = p_str(p, "currency").unwrap_or("").to_owned();
        if !(1..=32).contains(&title.chars().count()) {
            return Err(bad("INVOICE_TITLE_INVALID"));
        }
        if !(1..=255).contains(&description.chars().count()) {
            return Err(bad("INVOICE_DESCRIPTION_INVALID"));
        }
        if !(1..=128).contains(&payload.len()) {
            return Err(bad("INVOICE_PAYLOAD_INVALID"));
        }
        let prices = p
            .get("prices")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("prices must be an array"))?;
        let mut amount: u64 = 0;
        for price in prices {
            let a = price.get("amount").and_then(Value::as_i64).unwrap_or(0);
            if a <= 0 {
                return Err(bad("CURRENCY_TOTAL_AMOUNT_INVALID"));
            }
            amount += a as u64;
        }
        if prices.is_empty() || amount == 0 {
            return Err(bad("CURRENCY_TOTAL_AMOUNT_INVALID"));
        }
        if currency == "XTR" {
            if prices.len() != 1 {
                return Err(bad("STARS_INVOICE_INVALID"));
            }
            if p_str(p, "provider_token").is_some_and(|t| !t.is_empty()) {
                return Err(bad("PROVIDER_TOKEN_INVALID"));
            }
        } else if p_str(p, "provider_token").is_none_or(str::is_empty) {
            return Err(bad("PAYMENT_PROVIDER_INVALID"));
        }
        let markup = parse_markup(p.get("reply_markup"))?;
        let amount = u32::try_from(amount).map_err(|_| bad("CURRENCY_TOTAL_AMOUNT_INVALID"))?;
        let mut msg = new_message(chat, BotMessageKind::Invoice, description.clone(), None);
        msg.invoice = Some(InvoiceInfo {
            title: title.clone(),
            description: description.clone(),
            payload,
            currency: currency.clone(),
            amount,
        });
        let mut content = Map::new();
        content.insert(
            "invoice".into(),
            json!({
                "title": title,
                "description": description,
                "start_parameter": p_str(p, "start_parameter").unwrap_or(""),
                "currency": currency,
                "total_amount": amount,
            }),
        );
        Ok(self.store_message(msg, description, content, markup))
    }

    fn answer_pre_checkout(&mut self, p: &Value) -> Result<Value, ApiErr> {
        let id = p_str(p, "pre_checkout_query_id").unwrap_or("");
        let q = match self.pre_checkouts.get_mut(id) {
            Some(q) if !q.answered => q,
            _ => return Err(bad("QUERY_ID_INVALID")),
        };
        if q.at.elapsed() > PRE_CHECKOUT_DEADLINE {
            return Err(api_err(400, QUERY_TOO_OLD));
        }
        let ok = p
            .get("ok")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("ok must be a boolean"))?;
        let message = p_str(p, "error_message").unwrap_or("").to_owned();
        if !ok && message.is_empty() {
            return Err(bad("error_message is required when ok is false"));
        }
        q.answered = true;
        let user = q.user;
        let line = if ok {
            "<$ checkout ok".to_owned()
        } else {
            format!("<$ checkout declined: {message}")
        };
        self.log(user, line);
        Ok(json!(true))
    }

    fn refund(&mut self, p: &Value) -> Result<Value, ApiErr> {
        let user = p_i64(p, "user_id").ok_or_else(|| bad("USER_ID_INVALID"))?;
        let charge = p_str(p, "telegram_payment_charge_id")
            .unwrap_or("")
            .to_owned();
        let payment = match self.payments.get_mut(&charge) {
            Some(payment) if payment.user == user => payment,
            _ => return Err(bad("CHARGE_ID_INVALID")),
        };
        if payment.refunded {
            return Err(bad("CHARGE_ALREADY_REFUNDED"));
        }
        payment.refunded = true;
        let (total, currency, payload) = (
            payment.total,
            payment.currency.clone(),
            payment.payload.clone(),
        );
        let tx = json!({
            "id": charge,
            "amount": total,
            "date": now_unix(),
            "receiver": {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": self.user_json(user),
                "invoice_payload": payload,
            },
        });
        self.transactions.push(tx);
        self.log(user, format!("<$ refund {total} {currency}"));
        Ok(json!(true))
    }
}

#[derive(Clone, Copy)]
enum Edit {
    Text,
    Caption,
    Markup,
}

#[derive(Clone, Copy)]
enum BotPrefix {
    New,
    Edit,
    Delete,
}

fn new_message(
    chat: i64,
    kind: BotMessageKind,
    text: String,
    parse_mode: Option<String>,
) -> BotMessage {
    BotMessage {
        id: 0,
        chat,
        kind,
        text,
        parse_mode,
        keyboard: Vec::new(),
        reply_keyboard: Vec::new(),
        file: None,
        file_name: None,
        mime_type: None,
        size: None,
        invoice: None,
        media_group_id: None,
        edits: 0,
        json: Value::Null,
    }
}

fn rebuild_json(s: &mut Stored) {
    let mut o = Map::new();
    o.insert("message_id".into(), json!(s.msg.id));
    o.insert(
        "from".into(),
        json!({ "id": BOT_ID, "is_bot": true, "first_name": "QwenEdit Test", "username": BOT_USERNAME }),
    );
    o.insert("chat".into(), chat_json(s.msg.chat));
    o.insert("date".into(), json!(s.date));
    if let Some(d) = s.edit_date {
        o.insert("edit_date".into(), json!(d));
    }
    for (k, v) in &s.content {
        o.insert(k.clone(), v.clone());
    }
    match s.msg.kind {
        BotMessageKind::Text => {
            o.insert("text".into(), json!(s.msg.text));
        }
        BotMessageKind::Photo | BotMessageKind::Document if !s.msg.text.is_empty() => {
            o.insert("caption".into(), json!(s.msg.text));
        }
        _ => {}
    }
    if let Some(k) = &s.inline_raw {
        o.insert("reply_markup".into(), json!({ "inline_keyboard": k }));
    }
    s.msg.json = Value::Object(o);
}

/// Transcript lines of a bot message.
fn render(prefix: BotPrefix, m: &BotMessage) -> Vec<String> {
    let p = match prefix {
        BotPrefix::New => "<",
        BotPrefix::Edit => "<~",
        BotPrefix::Delete => "<x",
    };
    let head = match m.kind {
        BotMessageKind::Text => String::new(),
        BotMessageKind::Photo => format!("[photo{}]", dims_label(m.size)),
        BotMessageKind::Document => format!("[document {}]", m.file_name.as_deref().unwrap_or("?")),
        BotMessageKind::Invoice => match &m.invoice {
            Some(i) => format!("[invoice {:?} {} {}]", i.title, i.amount, i.currency),
            None => "[invoice]".to_owned(),
        },
    };
    let body = match (head.is_empty(), m.text.is_empty()) {
        (true, _) => m.text.clone(),
        (false, true) => head,
        (false, false) => format!("{head} {}", m.text),
    };
    let mut lines: Vec<String> = body
        .split('\n')
        .map(|l| {
            if l.is_empty() {
                p.to_owned()
            } else {
                format!("{p} {l}")
            }
        })
        .collect();
    if matches!(prefix, BotPrefix::Delete) {
        return lines;
    }
    for row in &m.keyboard {
        let cells: Vec<String> = row.iter().map(|(label, _)| format!("[{label}]")).collect();
        lines.push(format!("  {}", cells.join(" ")));
    }
    for row in &m.reply_keyboard {
        let cells: Vec<String> = row.iter().map(|label| format!("({label})")).collect();
        lines.push(format!("  {}", cells.join(" ")));
    }
    lines
}

fn dims_label(dims: Option<(u32, u32)>) -> String {
    match dims {
        Some((w, h)) => format!(" {w}x{h}"),
        None => String::new(),
    }
}

fn chat_json(id: i64) -> Value {
    json!({ "id": id, "type": "private", "first_name": format!("User{id}"), "username": format!("user{id}") })
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1)
}

fn update_kind(update: &Value) -> &str {
    update
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id"))
        .map(String::as_str)
        .unwrap_or("")
}

/// The chat an update is about, if it names one.
fn guess_chat(update: &Value) -> Option<i64> {
    let body = update.get(update_kind(update))?;
    body.pointer("/chat/id")
        .or_else(|| body.pointer("/message/chat/id"))
        .or_else(|| body.pointer("/from/id"))
        .or_else(|| body.pointer("/user/id"))
        .and_then(Value::as_i64)
}

fn normalise(method: &str) -> String {
    if let Some(m) = KNOWN_METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
    {
        return (*m).to_owned();
    }
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn ok_response(result: Value) -> Response {
    reply(200, json!({ "ok": true, "result": result }))
}

fn error_response(e: &ApiErr) -> Response {
    let mut body = json!({ "ok": false, "error_code": e.status, "description": e.description });
    if let Some(r) = e.retry_after {
        body["parameters"] = json!({ "retry_after": r });
    }
    reply(e.status, body)
}

/// A response whose body breaks off after `prefix`: the connection is dropped mid-answer.
fn broken_response(prefix: Vec<u8>, length: Option<usize>) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(prefix)),
        Err(std::io::Error::other("fake telegram: connection dropped")),
    ];
    let mut builder = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(length) = length {
        builder = builder.header(header::CONTENT_LENGTH, length);
    }
    builder
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap()
}

fn p_i64(p: &Value, key: &str) -> Option<i64> {
    let v = p.get(key)?;
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn p_str<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p.get(key)?.as_str()
}

fn p_bool(p: &Value, key: &str) -> bool {
    match p.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn parse_mode(p: &Value) -> Option<String> {
    p_str(p, "parse_mode")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn check_len(p: &Value, key: &str, max: usize) -> Result<Value, ApiErr> {
    if p_str(p, key).unwrap_or("").chars().count() > max {
        return Err(bad(&format!("{key} is too long")));
    }
    Ok(json!(true))
}

fn extension(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((_, ext))
            if !ext.is_empty()
                && ext.len() <= 8
                && ext.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            ext
        }
        _ => "bin",
    }
}

fn guess_mime(name: &str) -> &'static str {
    match extension(name).to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "gif" => "image/gif",
        "txt" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn image_dims(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

fn thumbnail(bytes: &[u8]) -> Option<(Vec<u8>, u32, u32)> {
    let img = image::load_from_memory(bytes).ok()?.thumbnail(90, 90);
    let rgb = image::DynamicImage::ImageRgb8(img.to_rgb8());
    let mut out = Cursor::new(Vec::new());
    rgb.write_to(&mut out, image::ImageFormat::Jpeg).ok()?;
    Some((out.into_inner(), rgb.width(), rgb.height()))
}

/// Telegram's photo limits: 10 MB, width + height <= 10000, aspect ratio <= 20.
fn check_photo(bytes: &[u8]) -> Result<(u32, u32), ApiErr> {
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(bad("PHOTO_INVALID_DIMENSIONS"));
    }
    let (w, h) = image_dims(bytes).ok_or_else(|| bad("IMAGE_PROCESS_FAILED"))?;
    let (long, short) = (w.max(h), w.min(h).max(1));
    if w == 0 || h == 0 || w + h > 10_000 || long > short * 20 {
        return Err(bad("PHOTO_INVALID_DIMENSIONS"));
    }
    Ok((w, h))
}

// ---- request parsing ----

fn parse_params(
    content_type: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<(Value, Uploads), ApiErr> {
    let mut map = Map::new();
    let mut uploads = Uploads::new();
    if let Some(q) = query {
        for (k, v) in form_pairs(q) {
            let value = text_value(&k, &v);
            map.insert(k, value);
        }
    }
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/form-data") {
        let boundary = multipart::boundary(content_type)
            .ok_or_else(|| bad("multipart boundary is missing"))?;
        for part in multipart::parse(body, &boundary).map_err(|e| bad(&e))? {
            if part.filename.is_some() {
                uploads.insert(
                    part.name,
                    Upload {
                        name: part.filename,
                        content_type: part.content_type,
                        bytes: part.data,
                    },
                );
            } else {
                let text = String::from_utf8_lossy(&part.data).into_owned();
                let value = text_value(&part.name, &text);
                map.insert(part.name, value);
            }
        }
        // A file part nobody refers to with attach:// is the field itself (`photo=<file>`).
        let mut referenced = HashSet::new();
        collect_attach(&Value::Object(map.clone()), &mut referenced);
        for name in uploads.keys() {
            if !referenced.contains(name) && !map.contains_key(name) {
                map.insert(name.clone(), json!(format!("attach://{name}")));
            }
        }
    } else if lower.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_pairs(&String::from_utf8_lossy(body)) {
            let value = text_value(&k, &v);
            map.insert(k, value);
        }
    } else if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(o)) => map.extend(o),
            Ok(_) => return Err(bad("parameters must be a JSON object")),
            Err(e) => return Err(bad(&format!("can't parse JSON: {e}"))),
        }
    }
    Ok((Value::Object(map), uploads))
}

/// A multipart / form / query text field back as a JSON value.
fn text_value(key: &str, s: &str) -> Value {
    const TEXT_KEYS: &[&str] = &[
        "text",
        "caption",
        "title",
        "description",
        "short_description",
        "payload",
        "error_message",
        "name",
    ];
    const NUMERIC_KEYS: &[&str] = &[
        "chat_id",
        "message_id",
        "user_id",
        "message_thread_id",
        "from_chat_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "width",
        "height",
        "duration",
        "cache_time",
    ];
    if TEXT_KEYS.contains(&key) {
        return json!(s);
    }
    let t = s.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(s)
    {
        return v;
    }
    if s == "true" || s == "false" {
        return json!(s == "true");
    }
    if NUMERIC_KEYS.contains(&key)
        && let Ok(n) = s.trim().parse::<i64>()
    {
        return json!(n);
    }
    json!(s)
}

fn collect_attach(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("attach://") {
                out.insert(name.to_owned());
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_attach(v, out)),
        Value::Object(o) => o.values().for_each(|v| collect_attach(v, out)),
        _ => {}
    }
}

/// Params for the call record: `attach://x` becomes `{"file": <len>, "name": <file name>}`.
fn for_record(v: &Value, up: &Uploads) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix("attach://").and_then(|n| up.get(n)) {
            Some(u) => json!({ "file": u.bytes.len(), "name": u.name }),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|v| for_record(v, up)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), for_record(v, up)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

// ---- text entities ----

fn render_text(raw: &str, parse_mode: Option<&str>) -> Result<String, ApiErr> {
    let parsed = match parse_mode {
        None => Ok(raw.to_owned()),
        Some(m) if m.eq_ignore_ascii_case("HTML") => parse_html(raw),
        Some(m) if m.eq_ignore_ascii_case("MarkdownV2") => parse_markdown_v2(raw),
        Some(m) if m.eq_ignore_ascii_case("Markdown") => Ok(raw.to_owned()),
        Some(m) => return Err(bad(&format!("unsupported parse_mode {m:?}"))),
    };
    parsed.map_err(|e| bad(&format!("can't parse entities: {e}")))
}

fn parse_html(s: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    ];
    let mut out = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or('\0');
        match c {
            '<' => {
                let end = s[i..].find('>').map(|k| k + i).ok_or_else(|| {
                    format!("Can't find end of the tag starting at byte offset {i}")
                })?;
                let inner = &s[i + 1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match stack.pop() {
                        Some(open) if open == name => {}
                        Some(open) => {
                            return Err(format!(
                                "Can't find end tag corresponding to start tag \"{open}\""
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name = inner
                        .split(|c: char| c.is_whitespace())
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {i}"
                        ));
                    }
                    stack.push(name);
                }
                i = end + 1;
            }
            '&' => {
                let entity = s[i + 1..].find(';').filter(|k| *k <= 10).and_then(|k| {
                    let name = &s[i + 1..i + 1 + k];
                    let ch = match name {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "quot" => Some('"'),
                        _ => name
                            .strip_prefix("#x")
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                            .and_then(char::from_u32),
                    };
                    ch.map(|ch| (ch, k + 2))
                });
                match entity {
                    Some((ch, len)) => {
                        out.push(ch);
                        i += len;
                    }
                    None => {
                        out.push('&');
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    match stack.pop() {
        Some(open) => Err(format!(
            "Can't find end tag corresponding to start tag \"{open}\""
        )),
        None => Ok(out),
    }
}

fn parse_markdown_v2(s: &str) -> Result<String, String> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    let mut out = String::new();
    let mut open: Vec<(&'static str, usize)> = Vec::new();
    let toggle =
        |open: &mut Vec<(&'static str, usize)>, name: &'static str, offset: usize| match open
            .iter()
            .rposition(|(n, _)| *n == name)
        {
            Some(k) => {
                open.remove(k);
            }
            None => open.push((name, offset)),
        };
    let mut i = 0;
    let mut line_start = true;
    while i < chars.len() {
        let (offset, c) = chars[i];
        let was_line_start = line_start;
        line_start = c == '\n';
        match c {
            '\\' => {
                match at(i + 1) {
                    Some(n) => {
                        out.push(n);
                        line_start = n == '\n';
                        i += 2;
                        continue;
                    }
                    None => return Err(
                        "Character '\\' is reserved and must be escaped with the preceding '\\'"
                            .to_owned(),
                    ),
                }
            }
            '`' if at(i + 1) == Some('`') && at(i + 2) == Some('`') => {
                let mut j = i + 3;
                // The language name after the opening ``` is not part of the text.
                while j < chars.len() && chars[j].1 != '\n' && chars[j].1 != '`' {
                    j += 1;
                }
                if at(j) == Some('\n') {
                    j += 1;
                }
                loop {
                    match at(j) {
                        None => {
                            return Err(format!(
                                "Can't find end of Pre entity at byte offset {offset}"
                            ));
                        }
                        Some('\\') if at(j + 1).is_some() => {
                            out.extend(at(j + 1));
                            j += 2;
                        }
                        Some('`') if at(j + 1) == Some('`') && at(j + 2) == Some('`') => {
                            i = j + 3;
                            break;
                        }
                        Some(ch) => {
                            out.push(ch);
                            j += 1;
                        }
                    }
                }
                continue;
            }
            '`' => {
                let mut j = i + 1;
                loop {
                    match at(j) {
                        None => {
                            return Err(format!(
                                "Can't find end of Code entity at byte offset {offset}"
                            ));
                        }
                        Some('\\') if at(j + 1).is_some() => {
                            out.extend(at(j + 1));
                            j += 2;
                        }
                        Some('`') => {
                            i = j + 1;
                            break;
                        }
                        Some(ch) => {
                            out.push(ch);
                            j += 1;
                        }
                    }
                }
                continue;
            }
            '*' => toggle(&mut open, "Bold", offset),
            '_' if at(i + 1) == Some('_') => {
                toggle(&mut open, "Underline", offset);
                i += 2;
                continue;
            }
            '_' => toggle(&mut open, "Italic", offset),
            '~' => toggle(&mut open, "Strikethrough", offset),
            '|' if at(i + 1) == Some('|') => {
                toggle(&mut open, "Spoiler", offset);
                i += 2;
                continue;
            }
            '!' if at(i + 1) == Some('[') => {
                open.push(("CustomEmoji", offset));
                i += 2;
                continue;
            }
            '[' => open.push(("TextUrl", offset)),
            ']' if matches!(open.last(), Some(("TextUrl" | "CustomEmoji", _))) => {
                let (name, start) = open.pop().unwrap_or(("TextUrl", offset));
                if at(i + 1) != Some('(') {
                    return Err(format!(
                        "Can't find end of {name} entity at byte offset {start}"
                    ));
                }
                let mut j = i + 2;
                loop {
                    match at(j) {
                        None => {
                            return Err(format!(
                                "Can't find end of a URL at byte offset {}",
                                chars[i].0
                            ));
                        }
                        Some('\\') => j += 2,
                        Some(')') => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                continue;
            }
            '>' if was_line_start => {}
            ']' | '(' | ')' | '>' | '#' | '+' | '-' | '=' | '|' | '{' | '}' | '.' | '!' => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ));
            }
            _ => out.push(c),
        }
        i += 1;
    }
    match open.last() {
        Some((name, offset)) => Err(format!(
            "Can't find end of {name} entity at byte offset {offset}"
        )),
        None => Ok(out),
    }
}

// ---- reply markup ----

fn parse_markup(v: Option<&Value>) -> Result<Markup, ApiErr> {
    let v = match v {
        None | Some(Value::Null) => return Ok(Markup::default()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Markup::default()),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|_| bad("can't parse reply keyboard markup JSON object"))?,
        Some(v) => v.clone(),
    };
    let mut markup = Markup::default();
    if let Some(rows) = v.get("inline_keyboard") {
        let rows = rows.as_array().ok_or_else(|| {
            bad("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array")
        })?;
        let mut keyboard = Vec::new();
        for row in rows {
            let row = row
                .as_array()
                .ok_or_else(|| bad("can't parse inline keyboard: row must be an Array"))?;
            let mut cells = Vec::new();
            for b in row {
                let label = b.get("text").and_then(Value::as_str).unwrap_or("");
                if label.is_empty() {
                    return Err(bad("text buttons are unallowed in the inline keyboard"));
                }
                let target = if let Some(data) = b.get("callback_data").and_then(Value::as_str) {
                    if data.is_empty() || data.len() > 64 {
                        return Err(bad("BUTTON_DATA_INVALID"));
                    }
                    data.to_owned()
                } else if let Some(url) = b.get("url").and_then(Value::as_str) {
                    if !(url.starts_with("http://")
                        || url.starts_with("https://")
                        || url.starts_with("tg://"))
                    {
                        return Err(bad(&format!(
                            "inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
                        )));
                    }
                    url.to_owned()
                } else if b.get("pay").is_some() {
                    "pay".to_owned()
                } else if let Some(url) = b
                    .pointer("/web_app/url")
                    .or_else(|| b.pointer("/login_url/url"))
                {
                    url.as_str().unwrap_or("").to_owned()
                } else if let Some(q) = b
                    .get("switch_inline_query")
                    .or_else(|| b.get("switch_inline_query_current_chat"))
                {
                    q.as_str().unwrap_or("").to_owned()
                } else if let Some(t) = b.pointer("/copy_text/text") {
                    t.as_str().unwrap_or("").to_owned()
                } else {
                    return Err(bad("text buttons are unallowed in the inline keyboard"));
                };
                cells.push((label.to_owned(), target));
            }
            keyboard.push(cells);
        }
        let raw = v.get("inline_keyboard").cloned().unwrap_or(Value::Null);
        if !keyboard.is_empty() {
            markup.inline = Some((keyboard, raw));
        }
    } else if let Some(rows) = v.get("keyboard").and_then(Value::as_array) {
        let keyboard = rows
            .iter()
            .map(|row| {
                row.as_array()
                    .map(|r| {
                        r.iter()
                            .map(|b| {
                                b.as_str()
                                    .or_else(|| b.get("text").and_then(Value::as_str))
                                    .unwrap_or("")
                                    .to_owned()
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        markup.reply = Some(keyboard);
    }
    Ok(markup)
}
