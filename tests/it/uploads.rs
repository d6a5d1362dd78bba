//! Upload checks (`qwenedit::media`) against a corpus made here, byte by byte: valid JPEG, PNG
//! and WebP are normalised to metadata-free PNG (orientation applied, transparency on white,
//! downscaled, never upscaled); everything else is refused with the right `Rejection`, cheaply
//! (headers first) and without panicking. Property tests throw arbitrary and mutated bytes at
//! `normalize`.
//!
//! "Without allocating" is measured, not assumed: this file installs a global allocator that
//! forwards to the system one and, only on a thread that asked for it, records the largest single
//! allocation (see `largest_allocation`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use qwenedit::media::{Checker, Kind, Limits, Normalized, Rejection, normalize, sniff};

// ---------------------------------------------------------------------------------------------
// Measuring allocations

/// The system allocator, noting the largest allocation made by a thread inside
/// `largest_allocation` (other threads, and this one outside it, only pay a TLS read).
struct Watching;

thread_local! {
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| {
        if let Some(max) = l.get()
            && size > max
        {
            l.set(Some(size));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; `note` neither allocates nor panics.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static WATCHING: Watching = Watching;

/// Runs `f` on this thread; returns its result and the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(Some(0)));
    let out = f();
    let largest = LARGEST.with(|l| l.replace(None)).unwrap_or(0);
    (out, largest)
}

const MIB: usize = 1024 * 1024;

/// A refusal that must come from a header: quick, and no buffer anywhere near the image's size.
#[track_caller]
fn refused_cheaply(bytes: &[u8], limits: &Limits) -> Rejection {
    let started = Instant::now();
    let (result, largest) = largest_allocation(|| normalize(bytes, limits, 1_000_000));
    let took = started.elapsed();
    let err = refusal(result);
    assert!(
        largest < MIB,
        "{err:?}: the check allocated {largest} bytes at once"
    );
    assert!(
        took < Duration::from_secs(2),
        "{err:?}: the check took {took:?}"
    );
    err
}

// ---------------------------------------------------------------------------------------------
// Making the corpus

/// A picture with structure, so that a wrong rotation or a wrong resize shows.
fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w.max(2)) as u8,
            (y * 255 / h.max(2)) as u8,
            ((x + y) % 7 * 30) as u8,
        ])
    })
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(img, img.width(), img.height(), ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img, img.width(), img.height(), ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn png_rgba(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img, img.width(), img.height(), ExtendedColorType::Rgba8)
        .unwrap();
    out
}

fn webp(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(img, img.width(), img.height(), ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One PNG chunk: length, type, data, CRC (over type and data).
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&out[4..]).to_be_bytes());
    out
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// Where the chunk after IHDR starts (signature 8 + IHDR 4 + 4 + 13 + 4).
const AFTER_IHDR: usize = 33;

/// A PNG with `chunk` inserted right after IHDR.
fn with_png_chunk(png: &[u8], chunk: &[u8]) -> Vec<u8> {
    assert_eq!(&png[12..16], b"IHDR");
    [&png[..AFTER_IHDR], chunk, &png[AFTER_IHDR..]].concat()
}

/// The types of a PNG's chunks, in order.
fn png_chunk_types(png: &[u8]) -> Vec<String> {
    assert!(png.starts_with(PNG_SIGNATURE), "not a PNG");
    let mut types = Vec::new();
    let mut at = PNG_SIGNATURE.len();
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        types.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
        at += 12 + len;
    }
    assert_eq!(at, png.len(), "the chunks must end where the file ends");
    types
}

/// Bits for a deflate stream: fields LSB first, Huffman codes MSB first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    used: u32,
}

impl Bits {
    fn bit(&mut self, b: u32) {
        if self.used.is_multiple_of(8) {
            self.out.push(0);
        }
        if b != 0 {
            *self.out.last_mut().unwrap() |= 1 << (self.used % 8);
        }
        self.used += 1;
    }

    fn field(&mut self, value: u32, n: u32) {
        for i in 0..n {
            self.bit((value >> i) & 1);
        }
    }

    fn code(&mut self, code: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit((code >> i) & 1);
        }
    }
}

/// A zlib stream of `n` zero bytes: one fixed-Huffman block of "repeat the last byte 258
/// times" (13 bits each), the way decompression bombs are built (about 160:1).
fn zlib_zeros(n: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.field(1, 1); // BFINAL
    bits.field(1, 2); // BTYPE = fixed Huffman
    let mut left = n;
    if left > 0 {
        bits.code(0x30, 8); // literal 0
        left -= 1;
    }
    while left >= 258 {
        bits.code(0xC0 + (285 - 280), 8); // length 258
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    let b = (n % 65521) as u32; // Adler-32 of zeros: a = 1, b = n
    [&[0x78, 0x01][..], &bits.out, &((b << 16) | 1).to_be_bytes()].concat()
}

fn ihdr(w: u32, h: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&w.to_be_bytes());
    data.extend_from_slice(&h.to_be_bytes());
    data.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    png_chunk(b"IHDR", &data)
}

/// A complete, valid 8-bit grey PNG of `w`x`h` black pixels, small on disk.
fn black_png(w: u32, h: u32) -> Vec<u8> {
    let raw = h as usize * (w as usize + 1); // a filter byte (0) per row
    [
        PNG_SIGNATURE,
        &ihdr(w, h, 8, 0),
        &png_chunk(b"IDAT", &zlib_zeros(raw)),
        &png_chunk(b"IEND", b""),
    ]
    .concat()
}

/// A PNG whose (CRC-correct) header claims `w`x`h`, with a little zero data after it.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    [
        PNG_SIGNATURE,
        &ihdr(w, h, 8, 2),
        &png_chunk(b"IDAT", &zlib_zeros(4096)),
        &png_chunk(b"IEND", b""),
    ]
    .concat()
}

/// A JPEG's frame header rewritten to claim `w`x`h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut bytes = jpeg(&picture(32, 24));
    let sof = bytes
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

/// A lossless WebP whose VP8L header is rewritten to claim `w`x`h` (at most 16384).
fn webp_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = webp(&picture(32, 24));
    assert_eq!(&bytes[12..16], b"VP8L");
    assert_eq!(bytes[20], 0x2F);
    let old = u32::from_le_bytes(bytes[21..25].try_into().unwrap());
    let new = (old & !((1 << 28) - 1)) | (w - 1) | ((h - 1) << 14);
    bytes[21..25].copy_from_slice(&new.to_le_bytes());
    bytes
}

/// Where a JPEG's entropy-coded data begins (its SOS marker).
fn start_of_scan(jpeg: &[u8]) -> usize {
    jpeg.windows(2)
        .position(|m| m == [0xFF, 0xDA])
        .expect("a start of scan")
}

/// A JPEG APP1 segment carrying a big-endian Exif block with one tag: Orientation.
fn exif_orientation_app1(orientation: u16) -> Vec<u8> {
    let tiff = exif_orientation_tiff(orientation);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    seg.extend_from_slice(&payload);
    seg
}

/// A TIFF structure (as in Exif) with IFD0 holding Orientation and an ASCII Make.
fn exif_orientation_tiff(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\0\x2A".to_vec();
    t.extend_from_slice(&8u32.to_be_bytes()); // IFD0 right after the header
    t.extend_from_slice(&2u16.to_be_bytes()); // two entries
    // Make (0x010F), ASCII, 12 bytes at offset 38
    t.extend_from_slice(&[0x01, 0x0F, 0x00, 0x02]);
    t.extend_from_slice(&12u32.to_be_bytes());
    t.extend_from_slice(&38u32.to_be_bytes());
    // Orientation (0x0112), SHORT, 1 value, stored inline
    t.extend_from_slice(&[0x01, 0x12, 0x00, 0x03]);
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes()); // no IFD1
    assert_eq!(t.len(), 38);
    t.extend_from_slice(b"SecretCam1\0\0");
    t
}

/// `jpeg` with `segment` inserted right after SOI.
fn with_jpeg_segment(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    [&jpeg[..2], segment, &jpeg[2..]].concat()
}

fn jpeg_comment(text: &str) -> Vec<u8> {
    let mut seg = vec![0xFF, 0xFE];
    seg.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    seg.extend_from_slice(text.as_bytes());
    seg
}

/// A 1x1 GIF89a.
fn gif() -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]); // 1x1, a 2-colour global table
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // image descriptor
    g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW data
    g.push(0x3B);
    g
}

/// An ISO BMFF `ftyp` box with the given brands, then an empty `mdat`.
fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let len = 16 + 4 * compatible.len();
    let mut b = (len as u32).to_be_bytes().to_vec();
    b.extend_from_slice(b"ftyp");
    b.extend_from_slice(major);
    b.extend_from_slice(&[0, 0, 0, 0]);
    for c in compatible {
        b.extend_from_slice(*c);
    }
    b.extend_from_slice(&[0, 0, 0, 8]);
    b.extend_from_slice(b"mdat");
    b
}

fn elf() -> Vec<u8> {
    let mut e = b"\x7FELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    e.extend_from_slice(&[2, 0, 0x3E, 0, 1, 0, 0, 0]); // ET_EXEC, x86-64, version 1
    e.resize(512, 0);
    e
}

/// The start of a WebM file: an EBML header whose DocType is "webm", then padding.
fn webm() -> Vec<u8> {
    let mut w = b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\xF7\x81\x01".to_vec();
    w.extend_from_slice(b"\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02");
    w.resize(512, 0);
    w
}

/// Deterministic noise (xorshift), so a failure is reproducible.
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checking an accepted upload

/// Decodes the normalised PNG and checks that it is what `n` says, and bare: only IHDR, IDAT
/// and IEND, no text, Exif, colour profile or time.
#[track_caller]
fn decoded(n: &Normalized) -> RgbImage {
    let types = png_chunk_types(&n.png);
    assert!(
        types
            .iter()
            .all(|t| matches!(t.as_str(), "IHDR" | "IDAT" | "IEND")),
        "the output must carry no metadata chunks: {types:?}"
    );
    let img = image::load_from_memory_with_format(&n.png, image::ImageFormat::Png)
        .expect("the output is a valid PNG");
    assert_eq!(
        img.color(),
        image::ColorType::Rgb8,
        "the output is 8-bit RGB"
    );
    let img = img.into_rgb8();
    assert_eq!(img.dimensions(), (n.width, n.height));
    img
}

#[track_caller]
fn assert_close(got: &Rgb<u8>, want: [u8; 3], tolerance: u8) {
    let near = got
        .0
        .iter()
        .zip(want)
        .all(|(g, w)| g.abs_diff(w) <= tolerance);
    assert!(near, "pixel {:?}, expected about {want:?}", got.0);
}

/// The refusal, or a failure that does not print the whole accepted PNG.
#[track_caller]
fn refusal(result: Result<Normalized, Rejection>) -> Rejection {
    match result {
        Ok(n) => panic!("accepted as a {}x{} image", n.width, n.height),
        Err(e) => e,
    }
}

fn default_normalize(bytes: &[u8], target: u64) -> Result<Normalized, Rejection> {
    normalize(bytes, &Limits::default(), target)
}

// ---------------------------------------------------------------------------------------------
// Accepted uploads

#[test]
fn the_default_limits_are_the_products() {
    let l = Limits::default();
    assert_eq!(l.max_bytes, 20 * 1024 * 1024);
    assert_eq!(l.max_side, 12_000);
    assert_eq!(l.max_pixels, 50_000_000);
    assert_eq!(l.max_alloc, 400 * 1024 * 1024);
    assert_eq!(Checker::new(l.clone(), 0).limits().max_bytes, l.max_bytes);
}

#[test]
fn jpeg_png_and_webp_are_sniffed_by_content() {
    let img = picture(40, 30);
    assert_eq!(sniff(&jpeg(&img)), Ok(Kind::Jpeg));
    assert_eq!(sniff(&png(&img)), Ok(Kind::Png));
    assert_eq!(sniff(&webp(&img)), Ok(Kind::Webp));
    assert_eq!(Kind::Jpeg.format(), image::ImageFormat::Jpeg);
    assert_eq!(Kind::Png.format(), image::ImageFormat::Png);
    assert_eq!(Kind::Webp.format(), image::ImageFormat::WebP);
}

#[test]
fn a_jpeg_is_downscaled_to_the_target_keeping_its_aspect() {
    let n = default_normalize(&jpeg(&picture(400, 300)), 30_000).unwrap();
    assert_eq!(n.source, Kind::Jpeg);
    assert_eq!((n.source_width, n.source_height), (400, 300));
    assert_eq!((n.width, n.height), (200, 150));
    let img = decoded(&n);
    // The gradient survives the resize: red grows to the right, green downwards.
    assert!(img.get_pixel(190, 75)[0] > img.get_pixel(10, 75)[0] + 150);
    assert!(img.get_pixel(100, 140)[1] > img.get_pixel(100, 10)[1] + 150);
}

#[test]
fn downscaling_keeps_the_aspect_of_wide_and_tall_images() {
    for (w, h, target, want) in [
        (1000, 500, 125_000, (500, 250)),
        (300, 1200, 22_500, (75, 300)),
        (640, 480, 76_800, (320, 240)),
    ] {
        let n = default_normalize(&png(&picture(w, h)), target).unwrap();
        assert_eq!((n.width, n.height), want, "{w}x{h} to {target} pixels");
        assert!(u64::from(n.width) * u64::from(n.height) <= target);
        decoded(&n);
    }
}

#[test]
fn an_image_at_most_a_quarter_over_the_target_keeps_its_size() {
    // The workflow scales to the model's pixel count itself: a second resample only blurs.
    for (w, h) in [(1200, 840), (1280, 960)] {
        let n = default_normalize(&jpeg(&picture(w, h)), 1_000_000).unwrap();
        assert_eq!((n.width, n.height), (w, h));
    }
    // 1280x1024 is 31 % over: downscaled to at most the target.
    let n = default_normalize(&jpeg(&picture(1280, 1024)), 1_000_000).unwrap();
    assert_eq!((n.width, n.height), (1118, 894));
    assert!(u64::from(n.width) * u64::from(n.height) <= 1_000_000);
}

#[test]
fn small_images_are_never_upscaled() {
    let img = picture(64, 48);
    for bytes in [jpeg(&img), png(&img), webp(&img)] {
        let n = default_normalize(&bytes, 1_000_000).unwrap();
        assert_eq!((n.width, n.height), (64, 48));
    }
    // A target of 0 means "do not resize".
    let n = default_normalize(&png(&picture(300, 200)), 0).unwrap();
    assert_eq!((n.width, n.height), (300, 200));
}

#[test]
fn a_png_is_reencoded_with_the_same_pixels() {
    let img = picture(50, 40);
    let n = default_normalize(&png(&img), 1_000_000).unwrap();
    assert_eq!(n.source, Kind::Png);
    assert_eq!(decoded(&n), img);
}

#[test]
fn a_lossless_webp_is_reencoded_with_the_same_pixels() {
    let img = picture(50, 40);
    let n = default_normalize(&webp(&img), 1_000_000).unwrap();
    assert_eq!(n.source, Kind::Webp);
    assert_eq!((n.source_width, n.source_height), (50, 40));
    assert_eq!(decoded(&n), img);
}

#[test]
fn a_webp_is_downscaled_too() {
    let n = default_normalize(&webp(&picture(200, 100)), 5_000).unwrap();
    assert_eq!((n.width, n.height), (100, 50));
    decoded(&n);
}

#[test]
fn transparency_is_flattened_onto_white() {
    // Left half transparent black, right half opaque red, a half-transparent blue strip.
    let img = RgbaImage::from_fn(40, 20, |x, y| match (x, y) {
        (_, 0..5) => Rgba([0, 0, 255, 128]),
        (0..20, _) => Rgba([0, 0, 0, 0]),
        _ => Rgba([255, 0, 0, 255]),
    });
    let n = default_normalize(&png_rgba(&img), 1_000_000).unwrap();
    let out = decoded(&n);
    assert_eq!(out.get_pixel(5, 10).0, [255, 255, 255]);
    assert_eq!(out.get_pixel(30, 10).0, [255, 0, 0]);
    assert_close(out.get_pixel(10, 2), [127, 127, 255], 1);
}

#[test]
fn exif_orientation_6_turns_a_120x80_jpeg_into_80x120() {
    // Top half red, bottom half blue; orientation 6 means "rotate 90° clockwise to display",
    // so the top (red) must end up on the right.
    let img = RgbImage::from_fn(120, 80, |_, y| {
        if y < 40 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let bytes = with_jpeg_segment(&jpeg(&img), &exif_orientation_app1(6));
    let n = default_normalize(&bytes, 1_000_000).unwrap();
    assert_eq!((n.source_width, n.source_height), (120, 80));
    assert_eq!((n.width, n.height), (80, 120));
    let out = decoded(&n);
    assert_close(out.get_pixel(70, 60), [255, 0, 0], 40);
    assert_close(out.get_pixel(10, 60), [0, 0, 255], 40);
    for needle in [&b"Exif"[..], b"SecretCam1", b"MM\0\x2A"] {
        assert!(
            !n.png.windows(needle.len()).any(|w| w == needle),
            "the output still holds {:?}",
            String::from_utf8_lossy(needle)
        );
    }

    // Rotated and downscaled: 9600 pixels to 2400 halves each side.
    let n = default_normalize(&bytes, 2_400).unwrap();
    assert_eq!((n.width, n.height), (40, 60));

    // Orientation 1 leaves it as it is.
    let upright = with_jpeg_segment(&jpeg(&img), &exif_orientation_app1(1));
    let n = default_normalize(&upright, 1_000_000).unwrap();
    assert_eq!((n.width, n.height), (120, 80));
}

#[test]
fn exif_orientation_in_a_png_is_applied_too() {
    let chunk = png_chunk(b"eXIf", &exif_orientation_tiff(6));
    let bytes = with_png_chunk(&png(&picture(120, 80)), &chunk);
    let n = default_normalize(&bytes, 1_000_000).unwrap();
    assert_eq!((n.width, n.height), (80, 120));
    decoded(&n);
}

#[test]
fn metadata_is_stripped() {
    let text = png_chunk(b"tEXt", b"Comment\0home: 55.7558N 37.6173E");
    let itxt = png_chunk(b"iTXt", b"Author\0\0\0en\0\0Ivan Petrov");
    let time = png_chunk(b"tIME", &[0x07, 0xE9, 1, 2, 3, 4, 5]);
    let source = with_png_chunk(
        &with_png_chunk(&with_png_chunk(&png(&picture(30, 20)), &text), &itxt),
        &time,
    );
    assert!(png_chunk_types(&source).contains(&"tEXt".to_string()));
    let n = default_normalize(&source, 1_000_000).unwrap();
    assert_eq!(png_chunk_types(&n.png), ["IHDR", "IDAT", "IEND"]);
    for needle in ["55.7558N", "Ivan Petrov", "Comment", "Author"] {
        assert!(!n.png.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }

    let commented = with_jpeg_segment(&jpeg(&picture(30, 20)), &jpeg_comment("GPS 55.7558N"));
    let n = default_normalize(&commented, 1_000_000).unwrap();
    assert!(!n.png.windows(8).any(|w| w == b"55.7558N"));
    decoded(&n);
}

#[test]
fn the_side_and_pixel_limits_are_inclusive() {
    let limits = Limits::default();
    let n = normalize(&black_png(12_000, 1), &limits, 0).unwrap();
    assert_eq!((n.width, n.height), (12_000, 1));
    assert_eq!(decoded(&n).get_pixel(11_999, 0).0, [0, 0, 0]);
    assert_eq!(
        refusal(normalize(&black_png(12_001, 1), &limits, 0)),
        Rejection::TooWide {
            width: 12_001,
            height: 1,
            max_side: 12_000
        }
    );
    assert_eq!(
        refusal(normalize(&black_png(1, 12_001), &limits, 0)),
        Rejection::TooWide {
            width: 1,
            height: 12_001,
            max_side: 12_000
        }
    );

    let small = Limits {
        max_pixels: 10_000,
        ..Limits::default()
    };
    assert!(normalize(&black_png(100, 100), &small, 0).is_ok());
    assert_eq!(
        refusal(normalize(&black_png(100, 101), &small, 0)),
        Rejection::TooManyPixels {
            pixels: 10_100,
            max_pixels: 10_000
        }
    );
    let tiny = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    let bytes = png(&picture(30, 30));
    assert!(bytes.len() > 100);
    assert_eq!(
        refusal(normalize(&bytes, &tiny, 0)),
        Rejection::TooBig {
            bytes: bytes.len() as u64,
            max: 100
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Refused uploads

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    want: Rejection,
    code: &'static str,
}

fn case(name: &'static str, bytes: Vec<u8>, want: Rejection, code: &'static str) -> Case {
    Case {
        name,
        bytes,
        want,
        code,
    }
}

fn unsupported(what: &str) -> Rejection {
    Rejection::Unsupported(what.to_string())
}

/// Every kind of wrong upload, with the refusal it must get.
fn refused_corpus() -> Vec<Case> {
    let valid_jpeg = jpeg(&picture(64, 48));
    let valid_png = png(&picture(64, 48));
    let valid_webp = webp(&picture(64, 48));
    let mut too_big = valid_jpeg.clone();
    too_big.resize(25 * MIB, 0);
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#;
    let svg_with_prolog = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n\
         <!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \
         \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n{svg}\n"
    );
    let svg_prolog_only_namespace = "<?xml version=\"1.0\"?>\n<!-- made in an svg editor -->\n";
    let mut html_svg = b"\n\n   <SVG viewBox=\"0 0 1 1\"></SVG>".to_vec();
    html_svg.extend(b" ".repeat(100));
    vec![
        case("empty", Vec::new(), Rejection::Empty, "empty"),
        case(
            "25 MB",
            too_big,
            Rejection::TooBig {
                bytes: 25 * MIB as u64,
                max: 20 * MIB as u64,
            },
            "too_big",
        ),
        case("gif", gif(), Rejection::Gif, "gif"),
        case("svg", svg.into(), Rejection::Svg, "svg"),
        case(
            "svg with xml prolog and doctype",
            svg_with_prolog.into(),
            Rejection::Svg,
            "svg",
        ),
        case(
            "xml prolog mentioning svg",
            svg_prolog_only_namespace.into(),
            Rejection::Svg,
            "svg",
        ),
        case(
            "upper-case svg after blank lines",
            html_svg,
            Rejection::Svg,
            "svg",
        ),
        case(
            "heic",
            ftyp(b"heic", &[b"mif1", b"heic"]),
            Rejection::Heic,
            "heic",
        ),
        case(
            "heif with mif1 brand",
            ftyp(b"mif1", &[b"mif1", b"heic", b"miaf"]),
            Rejection::Heic,
            "heic",
        ),
        case(
            "avif",
            ftyp(b"avif", &[b"avif", b"mif1", b"miaf", b"MA1B"]),
            Rejection::Heic,
            "heic",
        ),
        case(
            "pdf",
            b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec(),
            Rejection::Pdf,
            "pdf",
        ),
        case(
            "mp4",
            ftyp(b"isom", &[b"isom", b"iso2", b"avc1", b"mp41"]),
            Rejection::Video,
            "video",
        ),
        case(
            "quicktime",
            ftyp(b"qt  ", &[b"qt  "]),
            Rejection::Video,
            "video",
        ),
        case("webm", webm(), Rejection::Video, "video"),
        case(
            "elf executable named photo.jpg",
            elf(),
            unsupported("application/x-executable"),
            "unsupported",
        ),
        case(
            "bmp",
            [
                &b"BM"[..],
                &[0x3A, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0, 0, 0],
            ]
            .concat(),
            unsupported("image/bmp"),
            "unsupported",
        ),
        case(
            "tiff",
            exif_orientation_tiff(1),
            unsupported("image/tiff"),
            "unsupported",
        ),
        case(
            "plain text",
            b"hello, this is a photo".to_vec(),
            unsupported("unknown content"),
            "unsupported",
        ),
        case(
            "random bytes",
            noise(4096, 0x5EED),
            unsupported("unknown content"),
            "unsupported",
        ),
        case(
            "jpeg cut before its scan",
            valid_jpeg[..start_of_scan(&valid_jpeg)].to_vec(),
            Rejection::Corrupt,
            "corrupt",
        ),
        case(
            "jpeg cut inside its tables",
            valid_jpeg[..start_of_scan(&valid_jpeg) / 2].to_vec(),
            Rejection::Corrupt,
            "corrupt",
        ),
        case(
            "jpeg magic only",
            valid_jpeg[..4].to_vec(),
            Rejection::Corrupt,
            "corrupt",
        ),
        case(
            "truncated png",
            valid_png[..valid_png.len() / 2].to_vec(),
            Rejection::Corrupt,
            "corrupt",
        ),
        case(
            "png signature only",
            PNG_SIGNATURE.to_vec(),
            Rejection::Corrupt,
            "corrupt",
        ),
        case(
            "truncated webp",
            valid_webp[..valid_webp.len() / 2].to_vec(),
            Rejection::Corrupt,
            "corrupt",
        ),
        case(
            "png 0 pixels wide",
            png_claiming(0, 10),
            Rejection::Corrupt,
            "corrupt",
        ),
        case(
            "png header claiming 100000x100000",
            png_claiming(100_000, 100_000),
            Rejection::TooWide {
                width: 100_000,
                height: 100_000,
                max_side: 12_000,
            },
            "too_wide",
        ),
        case(
            "jpeg header claiming 65000x65000",
            jpeg_claiming(65_000, 65_000),
            Rejection::TooWide {
                width: 65_000,
                height: 65_000,
                max_side: 12_000,
            },
            "too_wide",
        ),
        case(
            "webp header claiming 16000x100",
            webp_claiming(16_000, 100),
            Rejection::TooWide {
                width: 16_000,
                height: 100,
                max_side: 12_000,
            },
            "too_wide",
        ),
        case(
            "png bomb 10000x10000 zeros",
            black_png(10_000, 10_000),
            Rejection::TooManyPixels {
                pixels: 100_000_000,
                max_pixels: 50_000_000,
            },
            "too_many_pixels",
        ),
        case(
            "png bomb 11999x5000 just under the side limit",
            black_png(11_999, 5_000),
            Rejection::TooManyPixels {
                pixels: 59_995_000,
                max_pixels: 50_000_000,
            },
            "too_many_pixels",
        ),
        case(
            "jpeg header claiming 11000x11000",
            jpeg_claiming(11_000, 11_000),
            Rejection::TooManyPixels {
                pixels: 121_000_000,
                max_pixels: 50_000_000,
            },
            "too_many_pixels",
        ),
        case(
            "webp header claiming 10000x10000",
            webp_claiming(10_000, 10_000),
            Rejection::TooManyPixels {
                pixels: 100_000_000,
                max_pixels: 50_000_000,
            },
            "too_many_pixels",
        ),
    ]
}

#[test]
fn every_wrong_upload_gets_the_right_refusal_cheaply() {
    let limits = Limits::default();
    let mut wrong = Vec::new();
    for c in refused_corpus() {
        let got = refused_cheaply(&c.bytes, &limits);
        if got != c.want || got.code() != c.code {
            wrong.push(format!(
                "{}: got {got:?} ({}), want {:?} ({})",
                c.name,
                got.code(),
                c.want,
                c.code
            ));
        }
        // `sniff` alone agrees on what it can know.
        let sniffed = sniff(&c.bytes);
        match &c.want {
            Rejection::Empty
            | Rejection::Gif
            | Rejection::Svg
            | Rejection::Heic
            | Rejection::Pdf
            | Rejection::Video
            | Rejection::Unsupported(_) => {
                assert_eq!(sniffed, Err(c.want.clone()), "sniff of {}", c.name);
            }
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "wrong refusals:\n{}", wrong.join("\n"));
}

#[test]
fn the_bombs_are_small_on_disk() {
    let bomb = black_png(10_000, 10_000);
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    // The crafted stream is real: a small one decodes to black.
    let n = default_normalize(&black_png(64, 32), 0).unwrap();
    assert_eq!((n.width, n.height), (64, 32));
    assert!(decoded(&n).pixels().all(|p| p.0 == [0, 0, 0]));
}

#[test]
fn the_allocation_watch_sees_a_real_decode() {
    // The control for `refused_cheaply`: decoding 1000x1000 RGB needs a 3 MB buffer at once.
    let bytes = black_png(1000, 1000);
    let (result, largest) = largest_allocation(|| default_normalize(&bytes, 0));
    assert!(result.is_ok());
    assert!(largest >= 3_000_000, "saw only {largest} bytes");
    // And it watches nothing outside.
    let (_, outside) = largest_allocation(|| ());
    assert_eq!(outside, 0);
}

#[test]
fn a_25_mb_upload_is_refused_before_sniffing_or_decoding() {
    // A valid image padded to 25 MB: the size alone decides, whatever the content.
    let mut bytes = png(&picture(64, 48));
    bytes.resize(25 * MIB, 0);
    let err = refused_cheaply(&bytes, &Limits::default());
    assert_eq!(err.code(), "too_big");
    let (_, largest) = largest_allocation(|| normalize(&bytes, &Limits::default(), 0));
    assert!(largest < 64 * 1024, "allocated {largest} bytes");
}

#[test]
fn rejections_have_stable_codes_and_readable_messages() {
    let all = [
        Rejection::Empty,
        Rejection::TooBig { bytes: 5, max: 4 },
        Rejection::Heic,
        Rejection::Gif,
        Rejection::Svg,
        Rejection::Pdf,
        Rejection::Video,
        Rejection::Unsupported("image/bmp".into()),
        Rejection::TooWide {
            width: 13_000,
            height: 10,
            max_side: 12_000,
        },
        Rejection::TooManyPixels {
            pixels: 60_000_000,
            max_pixels: 50_000_000,
        },
        Rejection::Corrupt,
    ];
    let rendered: Vec<String> = all
        .iter()
        .map(|r| format!("{:<16} {r}", r.code()))
        .collect();
    insta::assert_snapshot!("rejection_codes", rendered.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Known problems

#[test]
fn a_jpeg_whose_comment_mentions_svg_is_still_a_jpeg() {
    let bytes = with_jpeg_segment(
        &jpeg(&picture(30, 20)),
        &jpeg_comment("exported from <svg> editor"),
    );
    assert_eq!(sniff(&bytes), Ok(Kind::Jpeg));
    let text = png_chunk(b"tEXt", b"Source\0<svg width='1'/>");
    let bytes = with_png_chunk(&png(&picture(30, 20)), &text);
    assert_eq!(sniff(&bytes), Ok(Kind::Png));
}

#[test]
fn downscaling_never_exceeds_the_target() {
    // Header-claimed sizes are not needed: black PNGs of these sizes are cheap.
    for (w, h, target) in [(4000, 3000, 1_000_000), (48, 32, 1_000), (10, 10, 7)] {
        let n = default_normalize(&black_png(w, h), target).unwrap();
        assert!(
            u64::from(n.width) * u64::from(n.height) <= target,
            "{w}x{h} to {target}: {}x{}",
            n.width,
            n.height
        );
    }
}

#[test]
fn a_jpeg_cut_after_its_headers_is_refused_as_corrupt() {
    let bytes = jpeg(&picture(400, 300));
    let sos = start_of_scan(&bytes);
    let mut accepted = Vec::new();
    for cut in [
        sos + 20,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 100,
    ] {
        if let Ok(n) = default_normalize(&bytes[..cut], 0) {
            accepted.push(format!(
                "{cut} of {} bytes -> {}x{}",
                bytes.len(),
                n.width,
                n.height
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "truncated JPEGs accepted: {accepted:?}"
    );
}

#[test]
fn the_decoders_allocation_cap_refuses_as_too_many_pixels() {
    // 1000x1000 RGB needs 3 MB; allow 1 MB.
    let limits = Limits {
        max_alloc: MIB as u64,
        ..Limits::default()
    };
    let err = refusal(normalize(&png(&picture(1000, 1000)), &limits, 0));
    assert_eq!(
        err,
        Rejection::TooManyPixels {
            pixels: 1_000_000,
            max_pixels: 50_000_000
        }
    );
    assert_eq!(err.code(), "too_many_pixels");
}

// ---------------------------------------------------------------------------------------------
// The async checker

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_runs_eight_checks_at_once_two_at_a_time() {
    let checker = Checker::new(Limits::default(), 2);
    let wide = jpeg(&picture(400, 300));
    let mut truncated = png(&picture(100, 100));
    truncated.truncate(truncated.len() / 2);
    type Want = Result<(u32, u32), Rejection>;
    let cases: Vec<(Vec<u8>, Want)> = vec![
        (wide, Ok((200, 150))),
        (png(&picture(100, 100)), Ok((100, 100))),
        (webp(&picture(600, 200)), Ok((300, 100))),
        (
            with_jpeg_segment(&jpeg(&picture(120, 80)), &exif_orientation_app1(6)),
            Ok((80, 120)),
        ),
        (truncated, Err(Rejection::Corrupt)),
        (gif(), Err(Rejection::Gif)),
        (Vec::new(), Err(Rejection::Empty)),
        (
            black_png(10_000, 10_000),
            Err(Rejection::TooManyPixels {
                pixels: 100_000_000,
                max_pixels: 50_000_000,
            }),
        ),
    ];
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|(bytes, want)| {
            let checker = checker.clone();
            tokio::spawn(async move { (checker.check(bytes, 30_000).await, want) })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (got, want) = task.await.unwrap();
        match (got, want) {
            (Ok(n), Ok(dims)) => {
                assert_eq!((n.width, n.height), dims, "check {i}");
                decoded(&n);
            }
            (got, want) => assert_eq!(got.map(|n| (n.width, n.height)), want, "check {i}"),
        }
    }

    // Cheap refusals do not even wait for a permit.
    let big = vec![0xFF; 21 * MIB];
    assert_eq!(checker.check(big, 0).await.unwrap_err().code(), "too_big");
}

// ---------------------------------------------------------------------------------------------
// Properties

const TARGET: u64 = 1_000;

/// What every accepted upload must be, whatever came in.
fn check_accepted(n: &Normalized) -> Result<(), TestCaseError> {
    let img = decoded(n);
    prop_assert_eq!(img.dimensions(), (n.width, n.height));
    let (sw, sh) = (u64::from(n.source_width), u64::from(n.source_height));
    let (w, h) = (u64::from(n.width), u64::from(n.height));
    prop_assert!(w * h <= sw * sh, "upscaled: {}x{} to {}x{}", sw, sh, w, h);
    if sw * sh <= TARGET {
        prop_assert!(
            (w, h) == (sw, sh) || (w, h) == (sh, sw),
            "resized without need"
        );
    } else {
        // At most the target, give or take the rounding of each side to a whole pixel (see
        // the ignored `downscaling_never_exceeds_the_target`).
        let scale = (TARGET as f64 / (sw * sh) as f64).sqrt();
        let (a, b) = if (w > h) == (sw > sh) {
            (sw, sh)
        } else {
            (sh, sw)
        };
        prop_assert!(w as f64 <= (a as f64 * scale + 0.5).max(1.0), "width {}", w);
        prop_assert!(
            h as f64 <= (b as f64 * scale + 0.5).max(1.0),
            "height {}",
            h
        );
    }
    Ok(())
}

/// Small valid images of every accepted kind, to mutate (made once).
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(make_seeds);
    &SEEDS
}

fn make_seeds() -> Vec<Vec<u8>> {
    let rgba = RgbaImage::from_fn(16, 16, |x, y| {
        Rgba([x as u8 * 16, y as u8 * 16, 0, x as u8])
    });
    vec![
        jpeg(&picture(48, 32)),
        with_jpeg_segment(&jpeg(&picture(24, 16)), &exif_orientation_app1(6)),
        png(&picture(48, 32)),
        png_rgba(&rgba),
        webp(&picture(48, 32)),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte anywhere.
    Flip(Index, u8),
    /// XOR a byte among the first 64 (the headers).
    FlipHeader(usize, u8),
    /// Cut the file here.
    Truncate(Index),
    /// Insert bytes.
    Splice(Index, Vec<u8>),
    /// Remove a run of bytes.
    Remove(Index, usize),
    /// Copy a run of the file over another place in it.
    Copy(Index, Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        3 => (0..64usize, 1..=255u8).prop_map(|(i, x)| Mutation::FlipHeader(i, x)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(i, b)| Mutation::Splice(i, b)),
        1 => (any::<Index>(), 1..64usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1..64usize)
            .prop_map(|(a, b, n)| Mutation::Copy(a, b, n)),
    ]
}

/// Recomputes the CRC of every whole chunk of a PNG, so that a mutation reaches the decoder
/// instead of failing the checksum.
fn fix_png_crcs(bytes: &mut [u8]) {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return;
    }
    let mut at = PNG_SIGNATURE.len();
    while at + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= bytes.len()) else {
            break;
        };
        let crc = crc32(&bytes[at + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match m {
            Mutation::Flip(i, x) => bytes[i.index(len)] ^= x,
            Mutation::FlipHeader(i, x) => bytes[i % len] ^= x,
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Splice(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Copy(from, to, n) => {
                let (from, to) = (from.index(len), to.index(len));
                let n = (*n).min(len - from).min(len - to);
                bytes.copy_within(from..from + n, to);
            }
        }
    }
    bytes
}

/// Arbitrary bytes, often behind a real magic number so the decoders get to see them.
fn arbitrary_upload() -> impl Strategy<Value = Vec<u8>> {
    let magic = prop::sample::select(vec![
        &b""[..],
        b"\xFF\xD8\xFF\xE0",
        b"\xFF\xD8\xFF\xC0\x00\x11\x08",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        b"RIFF\x40\0\0\0WEBPVP8L",
        b"RIFF\x40\0\0\0WEBPVP8 ",
        b"GIF89a",
        b"<svg",
    ]);
    (magic, prop::collection::vec(any::<u8>(), 0..600))
        .prop_map(|(m, rest)| [m, &rest[..]].concat())
}

proptest! {
    #![proptest_config(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_ones_are_valid(bytes in arbitrary_upload()) {
        match normalize(&bytes, &Limits::default(), TARGET) {
            Ok(n) => check_accepted(&n)?,
            Err(r) => prop_assert!(!r.code().is_empty()),
        }
    }

    #[test]
    fn mutated_images_never_panic_and_accepted_ones_are_valid(
        seed in 0..seeds().len(),
        mutations in prop::collection::vec(mutation(), 1..4),
        fix_crcs in any::<bool>(),
    ) {
        let mut bytes = mutate(seeds()[seed].clone(), &mutations);
        if fix_crcs {
            fix_png_crcs(&mut bytes);
        }
        match normalize(&bytes, &Limits::default(), TARGET) {
            Ok(n) => check_accepted(&n)?,
            Err(r) => prop_assert!(!r.code().is_empty()),
        }
    }
}

#[test]
fn the_unmutated_seeds_are_accepted() {
    for (i, bytes) in seeds().iter().enumerate() {
        let n = default_normalize(bytes, TARGET).unwrap_or_else(|e| panic!("seed {i}: {e}"));
        check_accepted(&n).unwrap();
    }
}

#[test]
fn every_truncation_of_a_small_image_is_handled() {
    // Every 7th cut point of each seed, beyond what the random mutations reach.
    for bytes in seeds() {
        for cut in (0..bytes.len()).step_by(7) {
            if let Ok(n) = default_normalize(&bytes[..cut], TARGET) {
                check_accepted(&n).unwrap();
            }
        }
    }
}
