//! The bounded decode and the normalisation: orientation applied, alpha flattened onto white,
//! downscaled to about the target pixel count, re-encoded as PNG (which drops every metadata chunk).

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::{Kind, Rejection, sniff};

/// Upload limits (the defaults are the product's).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_side: u32,
    pub max_pixels: u64,
    /// The decoder's allocation cap.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_side: 12_000,
            max_pixels: 50_000_000,
            max_alloc: 400 * 1024 * 1024,
        }
    }
}

/// A checked, normalised image, ready for ComfyUI.
#[derive(Clone, Debug)]
pub struct Normalized {
    /// PNG bytes, no metadata.
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// What the user sent.
    pub source: Kind,
    pub source_width: u32,
    pub source_height: u32,
}

/// Checks `bytes` and normalises them; never panics (a decoder panic counts as corrupt).
pub fn normalize(
    bytes: &[u8],
    limits: &Limits,
    target_pixels: u64,
) -> Result<Normalized, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(Rejection::TooBig {
            bytes: bytes.len() as u64,
            max: limits.max_bytes,
        });
    }
    let kind = sniff(bytes)?;
    std::panic::catch_unwind(|| decode_and_normalize(bytes, kind, limits, target_pixels))
        .unwrap_or(Err(Rejection::Corrupt))
}

/// The pixel count from the header alone (nothing decoded), or `None` if it cannot be read:
/// [`super::Checker`] weighs a check by it before decoding.
pub fn header_pixels(bytes: &[u8]) -> Option<u64> {
    let kind = sniff(bytes).ok()?;
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), kind.format())
        .into_dimensions()
        .ok()?;
    Some(u64::from(w) * u64::from(h))
}

fn decode_and_normalize(
    bytes: &[u8],
    kind: Kind,
    limits: &Limits,
    target_pixels: u64,
) -> Result<Normalized, Rejection> {
    // The header first: refuse huge images before allocating anything for them.
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), kind.format())
        .into_dimensions()
        .map_err(|_| Rejection::Corrupt)?;
    check_size(w, h, limits)?;
    if kind == Kind::Jpeg && !jpeg_is_complete(bytes) {
        // The decoder would pad a cut-off scan with grey and call it a photo.
        return Err(Rejection::Corrupt);
    }

    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(|_| Rejection::Corrupt)?;
    // `from_decoder` does not check the allocation cap itself.
    if decoder.total_bytes() > limits.max_alloc {
        return Err(Rejection::TooManyPixels {
            pixels: u64::from(w) * u64::from(h),
            max_pixels: limits.max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => Rejection::TooManyPixels {
            pixels: u64::from(w) * u64::from(h),
            max_pixels: limits.max_pixels,
        },
        _ => Rejection::Corrupt,
    })?;
    img.apply_orientation(orientation);
    let rgb = flatten(img);
    let resized = downscale(rgb, target_pixels)?;
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Fast,
        // One cheap filter: adaptive filtering costs several times more for little gain here.
        image::codecs::png::FilterType::Sub,
    );
    resized
        .write_with_encoder(encoder)
        .map_err(|_| Rejection::Corrupt)?;
    Ok(Normalized {
        png,
        width: resized.width(),
        height: resized.height(),
        source: kind,
        source_width: w,
        source_height: h,
    })
}

/// A whole JPEG ends its last scan with an EOI marker. Entropy-coded data cannot contain
/// `FF D9` or `FF DA` (0xFF is stuffed), so EOI must come after the last SOS.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

fn check_size(w: u32, h: u32, limits: &Limits) -> Result<(), Rejection> {
    if w == 0 || h == 0 {
        return Err(Rejection::Corrupt);
    }
    if w > limits.max_side || h > limits.max_side {
        return Err(Rejection::TooWide {
            width: w,
            height: h,
            max_side: limits.max_side,
        });
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(Rejection::TooManyPixels {
            pixels,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

/// RGB, with any transparency composited onto white (ComfyUI would drop alpha to black).
fn flatten(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = u16::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u16::from(src[c]) * a + 255 * (255 - a)) / 255) as u8;
        }
    }
    out
}

/// How far over the target an image may stay as it is, in quarters: up to 25 % over. The
/// workflow scales every input to the model's pixel count itself (`ImageScaleToTotalPixels`),
/// so the target here bounds what is stored and uploaded; resampling a nearly right size
/// twice only blurs it and costs as much as the decode (a Telegram photo, at most 1280 px a
/// side, is 1.0–1.3 MP against the default 1 MP).
const SLACK_QUARTERS: u64 = 5;

/// Downscales to at most `target_pixels`, keeping the aspect ratio, unless the image is at most
/// 25 % over it ([`SLACK_QUARTERS`]); never upscales.
fn downscale(img: RgbImage, target_pixels: u64) -> Result<DynamicImage, Rejection> {
    let (w, h) = img.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if target_pixels == 0 || pixels * 4 <= target_pixels.saturating_mul(SLACK_QUARTERS) {
        return Ok(DynamicImage::ImageRgb8(img));
    }
    // Rounded down, so the result never exceeds the target.
    let scale = (target_pixels as f64 / pixels as f64).sqrt();
    let nw = ((f64::from(w) * scale).floor() as u32).max(1);
    let nh = ((f64::from(h) * scale).floor() as u32).max(1);
    let src = Image::from_vec_u8(w, h, img.into_raw(), PixelType::U8x3)
        .map_err(|_| Rejection::Corrupt)?;
    let mut dst = Image::new(nw, nh, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|_| Rejection::Corrupt)?;
    let out = RgbImage::from_raw(nw, nh, dst.into_vec()).ok_or(Rejection::Corrupt)?;
    Ok(DynamicImage::ImageRgb8(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn normalises_and_downscales() {
        let n = normalize(&jpeg(400, 300), &Limits::default(), 30_000).unwrap();
        assert_eq!((n.source_width, n.source_height), (400, 300));
        assert!(n.width * n.height <= 30_000);
        assert!((199..=200).contains(&n.width) && (149..=150).contains(&n.height));
        assert!(n.png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn never_upscales() {
        let n = normalize(&jpeg(64, 48), &Limits::default(), 1_000_000).unwrap();
        assert_eq!((n.width, n.height), (64, 48));
    }

    #[test]
    fn refuses_truncated_files() {
        let mut bytes = jpeg(64, 48);
        bytes.truncate(bytes.len() / 3);
        assert_eq!(
            normalize(&bytes, &Limits::default(), 0).unwrap_err(),
            Rejection::Corrupt
        );
    }

    #[test]
    fn transparency_becomes_white() {
        let img = image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0]));
        let rgb = flatten(DynamicImage::ImageRgba8(img));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
    }
}
