//! Where each chat is in a conversation, stored in redb so it survives a restart.

use serde::{Deserialize, Serialize};

use crate::codec::{Versioned, decode, encode};
use crate::store::{Store, StoreError};

/// An edit the user is about to confirm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// Normalised inputs in the data dir.
    pub photos: Vec<String>,
    pub preset: Option<String>,
    pub prompt: Option<String>,
    pub seed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    #[default]
    Idle,
    /// Waiting for photos: for a preset, or (no preset) for an own prompt.
    AwaitPhotos {
        preset: Option<String>,
        need: u8,
        got: Vec<String>,
    },
    /// Photos received first; the user picks what to do.
    HavePhotos { photos: Vec<String> },
    /// Photos in hand; the next text is the prompt.
    AwaitPrompt { photos: Vec<String> },
    /// The confirm card is shown; only its nonce confirms.
    Confirming { draft: Draft, nonce: u32 },
    /// Profile → Promo code was pressed: the next text is the code.
    AwaitPromo,
}

/// Photos of an album being collected (debounced).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Album {
    pub group: String,
    pub photos: Vec<String>,
    /// Set when an item was not a photo.
    pub mixed: bool,
    pub too_many: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    pub step: Step,
    pub album: Option<Album>,
    pub updated_ms: i64,
}

impl Versioned for Dialog {
    const NAME: &'static str = "dialog";
    const VERSION: u8 = 1;
}

fn key(chat: i64) -> String {
    format!("dialog:{chat}")
}

impl Dialog {
    /// The chat's dialogue; a missing or unreadable one starts fresh (it is only UI state).
    pub fn load(store: &Store, chat: i64) -> Result<Dialog, StoreError> {
        Ok(store
            .bot_get(&key(chat))?
            .and_then(|bytes| decode(&bytes).ok())
            .unwrap_or_default())
    }

    pub fn save(&self, store: &Store, chat: i64) -> Result<(), StoreError> {
        store.bot_put(&key(chat), &encode(self))
    }

    /// The photos the user has at hand, whatever the step.
    pub fn photos(&self) -> Vec<String> {
        match &self.step {
            Step::HavePhotos { photos } | Step::AwaitPrompt { photos } => photos.clone(),
            Step::AwaitPhotos { got, .. } => got.clone(),
            Step::Confirming { draft, .. } => draft.photos.clone(),
            Step::Idle | Step::AwaitPromo => Vec::new(),
        }
    }
}

/// The messages that belong to a job: where to report progress and deliver the result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessages {
    pub chat: i64,
    pub status_message: i32,
    pub lang: super::texts::Lang,
    pub delivered: bool,
    /// What it charged (for the failure text).
    pub price: u32,
}

impl Versioned for JobMessages {
    const NAME: &'static str = "job messages";
    const VERSION: u8 = 1;
}

impl JobMessages {
    pub fn key(job: crate::domain::JobId) -> String {
        format!("job:{job}")
    }

    pub fn load(
        store: &Store,
        job: crate::domain::JobId,
    ) -> Result<Option<JobMessages>, StoreError> {
        Ok(store
            .bot_get(&Self::key(job))?
            .and_then(|bytes| decode(&bytes).ok()))
    }

    pub fn save(&self, store: &Store, job: crate::domain::JobId) -> Result<(), StoreError> {
        store.bot_put(&Self::key(job), &encode(self))
    }
}
