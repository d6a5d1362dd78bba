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

/// Megapixels being decoded at once, across all checks. A decode holds about 3 bytes a pixel
/// (the RGB image) plus the resize's intermediate image and the decoder's own buffers, so a
/// 12 MP photo peaks at ≈ 60 MB: two of them at once pushed the process over its 150 MB goal
/// (issue #8, `cargo bench --bench proof -- memory`). With this budget a photo over 8 MP is
/// checked alone while smaller ones still run side by side.
const DECODE_BUDGET_MP: u32 = 16;

/// Runs checks off the async runtime, a bounded number at a time (decoding is CPU- and
/// memory-heavy), weighed by pixel count so large photos do not decode side by side.
#[derive(Clone)]
pub struct Checker {
    limits: Limits,
    permits: Arc<Semaphore>,
    /// [`DECODE_BUDGET_MP`] permits: each check takes one per megapixel (read from the header).
    pixels: Arc<Semaphore>,
    /// Uploads admitted (downloading, waiting for a check, being checked): bounds the raw
    /// bytes held in memory when many users send photos at once.
    admitted: Arc<Semaphore>,
}

impl Checker {
    pub fn new(limits: Limits, concurrency: usize) -> Self {
        Self {
            limits,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            pixels: Arc::new(Semaphore::new(DECODE_BUDGET_MP as usize)),
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
        // The header is read off the runtime too (the JPEG decoder copies the whole input).
        let (bytes, pixels) = tokio::task::spawn_blocking(move || {
            let pixels = check::header_pixels(&bytes);
            (bytes, pixels)
        })
        .await
        .map_err(|_| Rejection::Corrupt)?;
        // An unreadable header is refused by `normalize` before anything big is allocated.
        let _pixels = self
            .pixels
            .acquire_many(decode_weight(pixels))
            .await
            .map_err(|_| Rejection::Corrupt)?;
        let limits = self.limits.clone();
        tokio::task::spawn_blocking(move || normalize(&bytes, &limits, target_pixels))
            .await
            .unwrap_or(Err(Rejection::Corrupt))
    }
}

/// A check's share of [`DECODE_BUDGET_MP`]: one permit per started megapixel, at least one, at
/// most the whole budget (a photo bigger than the budget still runs, alone).
fn decode_weight(pixels: Option<u64>) -> u32 {
    pixels
        .map_or(1, |p| p.div_ceil(1_000_000))
        .clamp(1, u64::from(DECODE_BUDGET_MP)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_photos_decode_alone_small_ones_together() {
        assert_eq!(decode_weight(None), 1);
        assert_eq!(decode_weight(Some(64 * 48)), 1);
        assert_eq!(decode_weight(Some(2_000_001)), 3);
        // Two 12 MP photos exceed the budget; a 12 MP and a 1 MP one fit; 50 MP takes it all.
        assert!(2 * decode_weight(Some(12_000_000)) > DECODE_BUDGET_MP);
        assert!(
            decode_weight(Some(12_000_000)) + decode_weight(Some(1_000_000)) <= DECODE_BUDGET_MP
        );
        assert!(2 * decode_weight(Some(8_000_000)) <= DECODE_BUDGET_MP);
        assert_eq!(decode_weight(Some(50_000_000)), DECODE_BUDGET_MP);
    }
}
