//! What a handler has at hand: the app, the Bot API, texts, and who it is talking to.

use std::sync::Arc;

use super::dialog::Dialog;
use super::texts::{Arg, Lang, Texts};
use super::tg::{Markup, Tg, TgError};
use crate::app::App;
use crate::domain::UserId;
use crate::domain::moderation::DenyList;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    pub app: App,
    pub tg: Tg,
    pub texts: Texts,
    pub deny: Arc<DenyList>,
    pub flood: Arc<super::flood::Flood>,
    /// The lanes' senders, for work scheduled from handlers (album flushes); weak, so that
    /// the lanes, which hold this, still end at shutdown.
    pub lanes: Arc<std::sync::OnceLock<Vec<tokio::sync::mpsc::WeakSender<super::handle::Work>>>>,
}

pub struct Ctx {
    pub s: Shared,
    pub chat: i64,
    pub user: UserId,
    pub lang: Lang,
    pub is_admin: bool,
}

impl Ctx {
    pub fn app(&self) -> &App {
        &self.s.app
    }

    pub fn t(&self, key: &str) -> String {
        self.s.texts.t(self.lang, key)
    }

    pub fn tr(&self, key: &str, args: &[(&str, Arg<'_>)]) -> String {
        self.s.texts.get(self.lang, key, args)
    }

    /// Sends a message; failures are logged (the user cannot be told anyway).
    pub async fn say(&self, text: &str, markup: Markup) -> Option<i32> {
        match self.s.tg.send_text(self.chat, text, &markup).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(chat = self.chat, error = %e, "sendMessage failed");
                None
            }
        }
    }

    /// Edits one of our messages, or sends a new one when there is none to edit.
    pub async fn edit_or_say(&self, message: Option<i32>, text: &str, markup: Markup) {
        if let Some(id) = message {
            let mut edited = self.s.tg.edit_text(self.chat, id, text, &markup).await;
            // Flood control: wait it out and edit, rather than send a new message at once.
            if let Err(TgError::RetryAfter(wait)) = edited {
                tokio::time::sleep(wait).await;
                edited = self.s.tg.edit_text(self.chat, id, text, &markup).await;
            }
            if edited.is_ok() {
                return;
            }
        }
        self.say(text, markup).await;
    }

    pub fn dialog(&self) -> Dialog {
        Dialog::load(&self.app().store, self.chat).unwrap_or_else(|e| {
            tracing::error!(chat = self.chat, error = %e, "cannot read the dialogue");
            Dialog::default()
        })
    }

    pub fn save(&self, mut dialog: Dialog) {
        dialog.updated_ms = self.app().now_ms();
        if let Err(e) = dialog.save(&self.app().store, self.chat) {
            tracing::error!(chat = self.chat, error = %e, "cannot save the dialogue");
        }
    }

    pub fn points(&self, key: &str, n: i64) -> String {
        self.tr(key, &[("n", n.into())])
    }
}
