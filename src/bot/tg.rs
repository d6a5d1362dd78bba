//! The Telegram Bot API as the bot uses it, over teloxide's client: flood control honoured
//! (`retry_after`), "message is not modified" ignored, the token kept out of every error text.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use teloxide::net::Download;
use teloxide::payloads::{
    AnswerCallbackQuerySetters, EditMessageTextSetters, GetUpdatesSetters, SendDocumentSetters,
    SendMessageSetters, SendPhotoSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{
    AllowedUpdate, BotCommand, CallbackQueryId, ChatAction, ChatId, FileId, InlineKeyboardButton,
    InlineKeyboardMarkup, InputFile, KeyboardButton, KeyboardMarkup, MessageId, ReplyMarkup,
    Update,
};
use teloxide::{ApiError, Bot, RequestError};

use super::callback::Callback;

/// Buttons under a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Markup {
    #[default]
    None,
    Inline(Vec<Vec<(String, Callback)>>),
    /// The persistent menu keyboard under the input field.
    Reply(Vec<Vec<String>>),
    /// Link buttons (label, URL), one per row, above callback rows.
    Links {
        links: Vec<(String, String)>,
        rows: Vec<Vec<(String, Callback)>>,
    },
}

impl Markup {
    fn to_teloxide(&self) -> Option<ReplyMarkup> {
        match self {
            Markup::None => None,
            Markup::Inline(rows) => Some(ReplyMarkup::InlineKeyboard(InlineKeyboardMarkup::new(
                rows.iter().map(|row| {
                    row.iter()
                        .map(|(label, cb)| {
                            InlineKeyboardButton::callback(label.clone(), cb.encode())
                        })
                        .collect::<Vec<_>>()
                }),
            ))),
            Markup::Links { links, rows } => {
                let links = links.iter().filter_map(|(label, url)| {
                    Some(vec![InlineKeyboardButton::url(
                        label.clone(),
                        url.parse().ok()?,
                    )])
                });
                let rows = rows.iter().map(|row| {
                    row.iter()
                        .map(|(label, cb)| {
                            InlineKeyboardButton::callback(label.clone(), cb.encode())
                        })
                        .collect::<Vec<_>>()
                });
                Some(ReplyMarkup::InlineKeyboard(InlineKeyboardMarkup::new(
                    links.chain(rows).collect::<Vec<_>>(),
                )))
            }
            Markup::Reply(rows) => Some(ReplyMarkup::Keyboard(
                KeyboardMarkup::new(rows.iter().map(|row| {
                    row.iter()
                        .map(|l| KeyboardButton::new(l.clone()))
                        .collect::<Vec<_>>()
                }))
                .resize_keyboard(),
            )),
        }
    }

    fn inline(&self) -> Option<InlineKeyboardMarkup> {
        match self.to_teloxide() {
            Some(ReplyMarkup::InlineKeyboard(k)) => Some(k),
            _ => None,
        }
    }
}

/// A Stars invoice as the bot words it.
#[derive(Clone, Debug)]
pub struct Invoice {
    /// 1–32 characters.
    pub title: String,
    /// 1–255 characters.
    pub description: String,
    /// Our order id (1–128 bytes).
    pub payload: String,
    /// The price item's label.
    pub label: String,
    pub stars: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TgError {
    #[error("flood control: retry after {0:?}")]
    RetryAfter(Duration),
    #[error("{0}")]
    Api(String),
    #[error("network: {0}")]
    Network(String),
}

/// A cheap-clone handle to the Bot API.
#[derive(Clone)]
pub struct Tg {
    bot: Bot,
    token: SecretString,
    telemetry: crate::telemetry::Telemetry,
}

const SEND_ATTEMPTS: usize = 3;

impl Tg {
    pub fn new(
        token: SecretString,
        api_url: reqwest::Url,
        telemetry: crate::telemetry::Telemetry,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let bot = Bot::with_client(token.expose_secret(), client).set_api_url(api_url);
        Self {
            bot,
            token,
            telemetry,
        }
    }

    fn redact(&self, text: String) -> String {
        text.replace(self.token.expose_secret(), "<token>")
    }

    /// Turns teloxide's error into ours, with the token cut out of any text.
    fn error(&self, e: RequestError) -> TgError {
        use crate::telemetry::TelegramError as Kind;
        let redact = |s: String| s.replace(self.token.expose_secret(), "<token>");
        match &e {
            RequestError::RetryAfter(_) => self.telemetry.telegram_error(Kind::TooManyRequests),
            RequestError::Network(_) | RequestError::Io(_) => {
                self.telemetry.telegram_error(Kind::Network)
            }
            // Not an error: the text was already what we sent.
            RequestError::Api(ApiError::MessageNotModified) => {}
            _ => self.telemetry.telegram_error(Kind::Api),
        }
        match e {
            RequestError::RetryAfter(s) => TgError::RetryAfter(s.duration()),
            RequestError::Api(api) => TgError::Api(redact(api.to_string())),
            RequestError::Network(n) => TgError::Network(redact(n.to_string())),
            other => TgError::Api(redact(other.to_string())),
        }
    }

    /// Runs a request, waiting out flood control a few times.
    async fn with_retry<T, F, Fut>(&self, mut f: F) -> Result<T, TgError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::IntoFuture<Output = Result<T, RequestError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) => match self.error(e) {
                    TgError::RetryAfter(d) if attempt < SEND_ATTEMPTS => {
                        tracing::warn!(wait = ?d, "Telegram flood control; waiting");
                        tokio::time::sleep(d).await;
                    }
                    TgError::Network(_) if attempt < SEND_ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    }
                    other => return Err(other),
                },
            }
        }
    }

    pub async fn get_updates(&self, offset: i32, timeout: u32) -> Result<Vec<Update>, TgError> {
        self.bot
            .get_updates()
            .offset(offset)
            .timeout(timeout)
            .allowed_updates(vec![
                AllowedUpdate::Message,
                AllowedUpdate::CallbackQuery,
                AllowedUpdate::PreCheckoutQuery,
            ])
            .await
            .map_err(|e| self.error(e))
    }

    pub async fn send_text(&self, chat: i64, text: &str, markup: &Markup) -> Result<i32, TgError> {
        let msg = self
            .with_retry(|| {
                let mut req = self.bot.send_message(ChatId(chat), text);
                if let Some(m) = markup.to_teloxide() {
                    req = req.reply_markup(m);
                }
                req
            })
            .await?;
        Ok(msg.id.0)
    }

    /// Edits a message's text; "not modified" is success. Flood control is returned, not waited
    /// out (progress edits skip a tick instead).
    pub async fn edit_text(
        &self,
        chat: i64,
        message: i32,
        text: &str,
        markup: &Markup,
    ) -> Result<(), TgError> {
        let mut req = self
            .bot
            .edit_message_text(ChatId(chat), MessageId(message), text);
        if let Some(m) = markup.inline() {
            req = req.reply_markup(m);
        }
        match req.await {
            Ok(_) => Ok(()),
            Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
            Err(e) => match self.error(e) {
                TgError::Api(m) if m.contains("message is not modified") => Ok(()),
                other => Err(other),
            },
        }
    }

    pub async fn send_photo(
        &self,
        chat: i64,
        png: Vec<u8>,
        caption: &str,
        markup: &Markup,
    ) -> Result<i32, TgError> {
        let msg = self
            .with_retry(|| {
                let mut req = self
                    .bot
                    .send_photo(
                        ChatId(chat),
                        InputFile::memory(png.clone()).file_name("result.png"),
                    )
                    .caption(caption);
                if let Some(m) = markup.to_teloxide() {
                    req = req.reply_markup(m);
                }
                req
            })
            .await?;
        Ok(msg.id.0)
    }

    pub async fn send_document(
        &self,
        chat: i64,
        bytes: Vec<u8>,
        file_name: &str,
        caption: &str,
        markup: &Markup,
    ) -> Result<i32, TgError> {
        let msg = self
            .with_retry(|| {
                let mut req = self
                    .bot
                    .send_document(
                        ChatId(chat),
                        InputFile::memory(bytes.clone()).file_name(file_name.to_string()),
                    )
                    .caption(caption);
                if let Some(m) = markup.to_teloxide() {
                    req = req.reply_markup(m);
                }
                req
            })
            .await?;
        Ok(msg.id.0)
    }

    pub async fn answer_callback(&self, id: &str, text: Option<&str>) {
        let mut req = self
            .bot
            .answer_callback_query(CallbackQueryId(id.to_string()));
        if let Some(t) = text {
            req = req.text(t).show_alert(false);
        }
        if let Err(e) = req.await {
            tracing::debug!(error = %self.error(e), "answerCallbackQuery failed");
        }
    }

    pub async fn chat_action(&self, chat: i64) {
        let _ = self
            .bot
            .send_chat_action(ChatId(chat), ChatAction::UploadPhoto)
            .await;
    }

    /// Downloads a file the user sent.
    pub async fn download(&self, file_id: &str) -> Result<Vec<u8>, TgError> {
        let file = self
            .with_retry(|| self.bot.get_file(FileId(file_id.to_string())))
            .await?;
        // A dropped connection mid-file is retried from the start a few times.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut out = Vec::with_capacity(file.size as usize);
            match self.bot.download_file(&file.path, &mut out).await {
                Ok(()) => return Ok(out),
                Err(e) if attempt < SEND_ATTEMPTS => {
                    tracing::info!(attempt, error = %self.redact(e.to_string()), "download broke off; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                }
                Err(e) => return Err(TgError::Network(self.redact(e.to_string()))),
            }
        }
    }

    pub async fn set_commands(
        &self,
        commands: Vec<(String, String)>,
        lang: Option<&str>,
    ) -> Result<(), TgError> {
        use teloxide::payloads::SetMyCommandsSetters;
        let cmds: Vec<BotCommand> = commands
            .into_iter()
            .map(|(c, d)| BotCommand::new(c, d))
            .collect();
        let mut req = self.bot.set_my_commands(cmds);
        if let Some(l) = lang {
            req = req.language_code(l);
        }
        req.await.map(drop).map_err(|e| self.error(e))
    }

    pub async fn set_description(
        &self,
        description: &str,
        short: &str,
        lang: Option<&str>,
    ) -> Result<(), TgError> {
        use teloxide::payloads::{SetMyDescriptionSetters, SetMyShortDescriptionSetters};
        let mut req = self.bot.set_my_description().description(description);
        if let Some(l) = lang {
            req = req.language_code(l);
        }
        req.await.map_err(|e| self.error(e))?;
        let mut req = self.bot.set_my_short_description().short_description(short);
        if let Some(l) = lang {
            req = req.language_code(l);
        }
        req.await.map(drop).map_err(|e| self.error(e))
    }

    /// A Stars invoice (`XTR`, no provider token, one price item).
    pub async fn send_invoice(&self, chat: i64, invoice: &Invoice) -> Result<i32, TgError> {
        use teloxide::payloads::SendInvoiceSetters;
        use teloxide::types::LabeledPrice;
        let msg = self
            .with_retry(|| {
                self.bot
                    .send_invoice(
                        ChatId(chat),
                        invoice.title.clone(),
                        invoice.description.clone(),
                        invoice.payload.clone(),
                        "XTR",
                        [LabeledPrice::new(invoice.label.clone(), invoice.stars)],
                    )
                    .provider_token("")
            })
            .await?;
        Ok(msg.id.0)
    }

    /// `answerPreCheckoutQuery`: ok, or refused with a reason the user sees.
    pub async fn answer_pre_checkout(
        &self,
        id: &str,
        refusal: Option<&str>,
    ) -> Result<(), TgError> {
        use teloxide::payloads::AnswerPreCheckoutQuerySetters;
        use teloxide::types::PreCheckoutQueryId;
        let mut req = self
            .bot
            .answer_pre_checkout_query(PreCheckoutQueryId(id.to_string()), refusal.is_none());
        if let Some(reason) = refusal {
            req = req.error_message(reason);
        }
        req.await.map(drop).map_err(|e| self.error(e))
    }

    /// `refundStarPayment`.
    pub async fn refund_star_payment(&self, user: i64, charge_id: &str) -> Result<(), TgError> {
        use teloxide::types::{TelegramTransactionId, UserId};
        self.bot
            .refund_star_payment(
                UserId(user as u64),
                TelegramTransactionId(charge_id.to_string()),
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// `getStarTransactions` as raw JSON: teloxide's types fail on transaction partners newer
    /// than its Bot API version, and reconciliation must read whatever Telegram lists.
    pub async fn star_transactions(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, TgError> {
        let mut url = self.bot.api_url();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push(&format!("bot{}", self.token.expose_secret()))
                .push("getStarTransactions");
        }
        let redact = |s: String| s.replace(self.token.expose_secret(), "<token>");
        let resp = self
            .bot
            .client()
            .post(url)
            .json(&serde_json::json!({ "offset": offset, "limit": limit }))
            .send()
            .await
            .map_err(|e| TgError::Network(redact(e.without_url().to_string())))?;
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| TgError::Network(redact(e.without_url().to_string())))?;
        if body.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
            let description = body
                .get("description")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no description");
            return Err(TgError::Api(redact(description.to_string())));
        }
        Ok(body
            .pointer("/result/transactions")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn delete_webhook(&self) -> Result<(), TgError> {
        self.bot
            .delete_webhook()
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }
}
