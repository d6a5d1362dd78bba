//! Telegram updates turned into what the bot reacts to. Unknown kinds become `Other`, never an
//! error (teloxide targets an older Bot API than Telegram speaks; CRATES.md trap 12).

use teloxide::types::{Message, Update, UpdateKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Command {
        name: String,
        args: String,
    },
    Text(String),
    Photo {
        file_id: String,
        size: u32,
        group: Option<String>,
    },
    Document {
        file_id: String,
        size: u32,
        group: Option<String>,
    },
    /// Video, sticker, voice... in an album or alone.
    Unsupported {
        group: Option<String>,
    },
    Callback {
        id: String,
        data: Option<String>,
        message_id: Option<i32>,
    },
    PreCheckout {
        id: String,
        payload: String,
        currency: String,
        total: u32,
    },
    SuccessfulPayment {
        payload: String,
        currency: String,
        total: u32,
        charge_id: String,
    },
    /// Anything else (edited messages, reactions, kinds teloxide does not know).
    Other,
}

#[derive(Clone, Debug)]
pub struct Incoming {
    pub update_id: u32,
    pub chat: i64,
    pub user: i64,
    pub username: Option<String>,
    pub language: Option<String>,
    pub input: Input,
}

impl Incoming {
    /// `None` for updates that come from no user we could answer (channels, groups without a
    /// sender...).
    pub fn parse(update: &Update) -> Option<Incoming> {
        let update_id = update.id.0;
        match &update.kind {
            UpdateKind::Message(msg) => {
                let user = msg.from.as_ref()?;
                if !msg.chat.is_private() {
                    return None;
                }
                Some(Incoming {
                    update_id,
                    chat: msg.chat.id.0,
                    user: user.id.0 as i64,
                    username: user.username.clone(),
                    language: user.language_code.clone(),
                    input: message_input(msg),
                })
            }
            UpdateKind::CallbackQuery(q) => Some(Incoming {
                update_id,
                chat: q
                    .message
                    .as_ref()
                    .map_or(q.from.id.0 as i64, |m| m.chat().id.0),
                user: q.from.id.0 as i64,
                username: q.from.username.clone(),
                language: q.from.language_code.clone(),
                input: Input::Callback {
                    id: q.id.0.clone(),
                    data: q.data.clone(),
                    message_id: q.message.as_ref().map(|m| m.id().0),
                },
            }),
            UpdateKind::PreCheckoutQuery(q) => Some(Incoming {
                update_id,
                chat: q.from.id.0 as i64,
                user: q.from.id.0 as i64,
                username: q.from.username.clone(),
                language: q.from.language_code.clone(),
                input: Input::PreCheckout {
                    id: q.id.0.clone(),
                    payload: q.invoice_payload.clone(),
                    currency: q.currency.clone(),
                    total: q.total_amount,
                },
            }),
            _ => None,
        }
    }
}

fn message_input(msg: &Message) -> Input {
    let group = msg.media_group_id().map(|g| g.0.clone());
    if let Some(p) = msg.successful_payment() {
        return Input::SuccessfulPayment {
            payload: p.invoice_payload.clone(),
            currency: p.currency.clone(),
            total: p.total_amount,
            charge_id: p.telegram_payment_charge_id.0.clone(),
        };
    }
    if let Some(sizes) = msg.photo() {
        // The largest size is the last one.
        return match sizes.last() {
            Some(p) => Input::Photo {
                file_id: p.file.id.0.clone(),
                size: p.file.size,
                group,
            },
            None => Input::Unsupported { group },
        };
    }
    if let Some(d) = msg.document() {
        return Input::Document {
            file_id: d.file.id.0.clone(),
            size: d.file.size,
            group,
        };
    }
    if let Some(text) = msg.text() {
        let text = text.trim();
        if let Some(command) = text.strip_prefix('/') {
            let (name, args) = command
                .split_once(char::is_whitespace)
                .unwrap_or((command, ""));
            // `/start@qwenedit_bot` in groups; harmless in private chats.
            let name = name.split('@').next().unwrap_or("").to_ascii_lowercase();
            return Input::Command {
                name,
                args: args.trim().to_string(),
            };
        }
        return Input::Text(text.to_string());
    }
    if group.is_some() || msg.video().is_some() {
        return Input::Unsupported { group };
    }
    Input::Other
}
