//! What a file really is, by its content (never by its name or declared MIME type).

use super::Rejection;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Webp,
}

impl Kind {
    pub fn format(self) -> image::ImageFormat {
        match self {
            Kind::Jpeg => image::ImageFormat::Jpeg,
            Kind::Png => image::ImageFormat::Png,
            Kind::Webp => image::ImageFormat::WebP,
        }
    }
}

/// Accepts JPEG, PNG and WebP; names the refused kinds users send most.
pub fn sniff(bytes: &[u8]) -> Result<Kind, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::Empty);
    }
    let kind = infer::get(bytes);
    // Magic bytes first (a JPEG whose comment mentions "<svg" is still a JPEG); infer calls
    // SVG "text/xml" or nothing, and users know it as a drawing.
    if kind.is_none_or(|t| t.mime_type() == "text/xml") && looks_like_svg(bytes) {
        return Err(Rejection::Svg);
    }
    if let Some(t) = kind {
        return match t.mime_type() {
            "image/jpeg" => Ok(Kind::Jpeg),
            "image/png" => Ok(Kind::Png),
            "image/webp" => Ok(Kind::Webp),
            "image/heif" | "image/heic" | "image/avif" => Err(Rejection::Heic),
            "image/gif" => Err(Rejection::Gif),
            "application/pdf" => Err(Rejection::Pdf),
            _ if t.matcher_type() == infer::MatcherType::Video => Err(Rejection::Video),
            other => Err(Rejection::Unsupported(other.to_string())),
        };
    }
    Err(Rejection::Unsupported("unknown content".into()))
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.contains("<svg") || (text.trim_start().starts_with("<?xml") && text.contains("svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"), Ok(Kind::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Ok(Kind::Png));
        assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00"), Err(Rejection::Gif));
        assert_eq!(sniff(b"%PDF-1.7\n"), Err(Rejection::Pdf));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            Err(Rejection::Svg)
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
            Err(Rejection::Heic)
        );
        assert!(matches!(
            sniff(b"\x7fELF\x02\x01\x01"),
            Err(Rejection::Unsupported(_))
        ));
        assert!(matches!(sniff(b"hello"), Err(Rejection::Unsupported(_))));
        assert_eq!(sniff(b""), Err(Rejection::Empty));
    }
}
