//! Upload checks: content sniffing, a bounded decode, orientation, metadata stripping, resizing
//! and re-encoding. Nothing a user sent reaches ComfyUI as is. Only this module knows `image`,
//! `infer` and `fast_image_resize`.

mod check;
mod sniff;

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use check::{Limits, Normalized, normalize};
pub use sniff::{Kind, sniff};

/// Why an upload was refused. `Display` is for logs and the CLI; the bot renders its own
/// translated text from the variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the file is empty")]
    Empty,
    #[error("the file is too big: {bytes} bytes (at most {max})")]
    TooBig { bytes: u64, max: u64 },
    #[error("HEIC/HEIF images are not supported")]
    Heic,
    #[error("animated or GIF images are not supported")]
    Gif,
    #[error("SVG drawings are not supported")]
    Svg,
    #[error("PDF documents are not supported")]
    Pdf,
    #[error("videos are not supported")]
    Video,
    #[error("not a JPEG, PNG or WebP image ({0})")]
    Unsupported(String),
    #[error("the image is {width}x{height} pixels; at most {max_side} on a side")]
    TooWide {
        width: u32,
        height: u32,
        max_side: u32,
    },
    #[error("the image has {pixels} pixels; at most {max_pixels}")]
    TooManyPixels { pixels: u64, max_pixels: u64 },
    #[error("the image is damaged or truncated")]
    Corrupt,
}

impl Rejection {
    /// A stable code for texts, logs and the API.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::TooBig { .. } => "too_big",
            Rejection::Heic => "heic",
            Rejection::Gif => "gif",
            Rejection::Svg => "svg",
            Rejection::Pdf => "pdf",
            Rejection::Video => "video",
            Rejection::Unsupported(_) => "unsupported",
            Rejection::TooWide { .. } => "too_wide",
            Rejection::TooManyPixels { .. } => "too_many_pixels",
            Rejection::Corrupt => "corrupt",
        }
    }
}

/// Runs checks off the async runtime, a bounded number at a time (decoding is CPU- and
/// memory-heavy).
#[derive(Clone)]
pub struct Checker {
    limits: Limits,
    permits: Arc<Semaphore>,
    /// Uploads admitted (downloading, waiting for a check, being checked): bounds the raw
    /// bytes held in memory when many users send photos at once.
    admitted: Arc<Semaphore>,
}

impl Checker {
    pub fn new(limits: Limits, concurrency: usize) -> Self {
        Self {
            limits,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            admitted: Arc::new(Semaphore::new(2 * concurrency.max(1))),
        }
    }

    /// Waits for a turn to download and check one upload; the permit is held until the check
    /// is done. Without it, every chat's download would sit in memory waiting for a check.
    pub async fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.admitted.clone().acquire_owned().await.ok()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks and normalises one upload, downscaling to at most `target_pixels`.
    pub async fn check(&self, bytes: Vec<u8>, target_pixels: u64) -> Result<Normalized, Rejection> {
        // Cheap refusals first, without waiting for a permit.
        if bytes.is_empty() {
            return Err(Rejection::Empty);
        }
        if bytes.len() as u64 > self.limits.max_bytes {
            return Err(Rejection::TooBig {
                bytes: bytes.len() as u64,
                max: self.limits.max_bytes,
            });
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Rejection::Corrupt)?;
        let limits = self.limits.clone();
        tokio::task::spawn_blocking(move || normalize(&bytes, &limits, target_pixels))
            .await
            .unwrap_or(Err(Rejection::Corrupt))
    }
}
