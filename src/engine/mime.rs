//! MIME sniffing for binary results and their `data:` URIs: magic numbers
//! through `infer`, then content checks for SVG, JSON, XML, HTML and text.

use base64::Engine as _;

/// How far into a buffer the markup checks look for an `<svg` tag.
const MARKUP_SCAN: usize = 4096;

/// The MIME type of `bytes`, without parameters.
pub(super) fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.is_empty() {
        return "application/octet-stream";
    }
    if let Some(t) = infer::get(bytes) {
        match t.mime_type() {
            "text/xml" => {
                return if looks_like_svg(bytes) {
                    "image/svg+xml"
                } else {
                    "application/xml"
                };
            }
            // infer reports anything starting with `#!` as a shell script and
            // knows only some HTML tags: let the text checks below decide.
            "text/x-shellscript" | "text/html" => {}
            // infer looks for an Office document's part folder only in the
            // third or fourth entry; Office itself often puts it later.
            "application/zip" => return office_type(bytes).unwrap_or("application/zip"),
            mime => return mime,
        }
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return "application/octet-stream";
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
    {
        return "application/octet-stream";
    }
    let body = text.trim_start_matches('\u{feff}').trim();
    if looks_like_svg(body.as_bytes()) {
        return "image/svg+xml";
    }
    if (body.starts_with('{') || body.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok()
    {
        return "application/json";
    }
    if body.starts_with('<') && body.ends_with('>') {
        return if looks_like_html(body) {
            "text/html"
        } else {
            "application/xml"
        };
    }
    "text/plain"
}

/// Entries of a ZIP archive looked at to tell an Office document.
const ZIP_ENTRIES_SCANNED: usize = 256;

/// The Office Open XML type of a ZIP archive, from the names of its entries:
/// `[Content_Types].xml` plus a `word/`, `xl/` or `ppt/` part.
fn office_type(bytes: &[u8]) -> Option<&'static str> {
    const LOCAL: &[u8] = b"PK\x03\x04";
    let (mut at, mut content_types, mut kind) = (0usize, false, None);
    for _ in 0..ZIP_ENTRIES_SCANNED {
        if bytes.get(at..at + 4) != Some(LOCAL) {
            break;
        }
        let header = bytes.get(at..at + 30)?;
        let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]) as usize;
        let flags = u16_at(6);
        let compressed =
            u32::from_le_bytes([header[18], header[19], header[20], header[21]]) as usize;
        let (name_len, extra_len) = (u16_at(26), u16_at(28));
        let name = bytes.get(at + 30..at + 30 + name_len)?;
        if name == b"[Content_Types].xml" {
            content_types = true;
        } else if kind.is_none() {
            kind = if name.starts_with(b"word/") {
                Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
            } else if name.starts_with(b"xl/") {
                Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            } else if name.starts_with(b"ppt/") {
                Some("application/vnd.openxmlformats-officedocument.presentationml.presentation")
            } else {
                None
            };
        }
        if content_types && kind.is_some() {
            return kind;
        }
        let data = at + 30 + name_len + extra_len;
        at = if flags & 0x08 != 0 {
            // Sizes follow the data: find the next entry's signature.
            data + find(bytes.get(data..)?, LOCAL)?
        } else {
            data.checked_add(compressed)?
        };
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The room a result needs for the data URI of `len` bytes, checked
/// before the URI is made.
pub(super) fn data_uri_room(len: usize) -> usize {
    len / 3 * 4 + 64
}

/// `data:<mime>;base64,<bytes>` for `bytes`.
pub(super) fn data_uri(bytes: &[u8]) -> String {
    let mime = sniff(bytes);
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = String::with_capacity(13 + mime.len() + bytes.len().div_ceil(3) * 4);
    out.push_str("data:");
    out.push_str(mime);
    out.push_str(";base64,");
    engine.encode_string(bytes, &mut out);
    out
}

/// Markup that starts (after a BOM, white space, an XML declaration, comments
/// or a doctype) with an `<svg` element.
fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(MARKUP_SCAN)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("<svg") {
            return after.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/');
        }
        let skip_to = if rest.starts_with("<?") {
            rest.find("?>").map(|i| i + 2)
        } else if rest.starts_with("<!--") {
            rest.find("-->").map(|i| i + 3)
        } else if rest.starts_with("<!doctype") {
            rest.find('>').map(|i| i + 1)
        } else {
            return false;
        };
        match skip_to {
            Some(i) => rest = rest[i..].trim_start(),
            None => return false,
        }
    }
}

fn looks_like_html(body: &str) -> bool {
    let head: String = body
        .chars()
        .take(256)
        .collect::<String>()
        .to_ascii_lowercase();
    const OPENERS: [&str; 12] = [
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<div",
        "<p>",
        "<p ",
        "<span",
        "<table",
        "<h1",
        "<script",
        "<!--",
    ];
    OPENERS.iter().any(|p| head.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ZIP of stored entries (local headers only), as Office lays out
    /// its documents: `[Content_Types].xml` first, large, then the parts.
    fn zip(entries: &[(&str, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, size) in entries {
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&(*size as u32).to_le_bytes());
            out.extend_from_slice(&(*size as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend(std::iter::repeat_n(b'x', *size));
        }
        out
    }

    #[test]
    fn office_documents_are_told_from_zip_archives() {
        let layout = |part: &'static str| {
            zip(&[
                ("[Content_Types].xml", 7000),
                ("_rels/.rels", 600),
                ("docProps/app.xml", 800),
                ("docProps/core.xml", 700),
                (part, 3000),
            ])
        };
        assert_eq!(
            sniff(&layout("word/document.xml")),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(
            sniff(&layout("xl/workbook.xml")),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        assert_eq!(
            sniff(&layout("ppt/presentation.xml")),
            "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        );
        // A plain archive, even with a folder named like a part, stays a ZIP.
        assert_eq!(
            sniff(&zip(&[("a.txt", 10), ("word/x", 5)])),
            "application/zip"
        );
    }

    #[test]
    fn the_documented_examples() {
        assert_eq!(data_uri(b"Hello"), "data:text/plain;base64,SGVsbG8=");
        assert_eq!(
            data_uri(&[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
            "data:image/png;base64,iVBORw0KGgo="
        );
        assert_eq!(
            data_uri(br#"{"message":"Hello"}"#),
            "data:application/json;base64,eyJtZXNzYWdlIjoiSGVsbG8ifQ=="
        );
        assert_eq!(data_uri(&[0xFF, 0xD8, 0xFF]), "data:image/jpeg;base64,/9j/");
    }

    #[test]
    fn svg_with_and_without_declaration() {
        let bare = br#"<svg xmlns="http://www.w3.org/2000/svg"><circle r="10"/></svg>"#;
        assert_eq!(sniff(bare), "image/svg+xml");
        let declared = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>"#;
        assert_eq!(sniff(declared), "image/svg+xml");
        let spaced = b"\n   <!-- made by hand -->\n<svg viewBox=\"0 0 1 1\"></svg>";
        assert_eq!(sniff(spaced), "image/svg+xml");
        let doctype = b"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\"><svg></svg>";
        assert_eq!(sniff(doctype), "image/svg+xml");
    }

    #[test]
    fn xml_html_json_and_text() {
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><note/>"), "application/xml");
        assert_eq!(sniff(b"<note><to>x</to></note>"), "application/xml");
        assert_eq!(sniff(b"<!DOCTYPE html><html></html>"), "text/html");
        assert_eq!(
            sniff(b"<section>hi</section><div>x</div>"),
            "application/xml"
        );
        assert_eq!(sniff(b"<div class=\"a\">hi</div>"), "text/html");
        assert_eq!(sniff(b"[1, 2, 3]"), "application/json");
        assert_eq!(sniff(b"{not json}"), "text/plain");
        assert_eq!(sniff(b"#!/bin/sh\necho hi\n"), "text/plain");
        assert_eq!(sniff("h\u{e9}llo".as_bytes()), "text/plain");
    }

    #[test]
    fn binary_is_octet_stream() {
        assert_eq!(sniff(&[0, 1, 2, 3]), "application/octet-stream");
        assert_eq!(sniff(&[0xC3]), "application/octet-stream");
        assert_eq!(sniff(&[]), "application/octet-stream");
    }

    #[test]
    fn magic_numbers_use_infer_names() {
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(&[0x1F, 0x8B, 0x08, 0x00]), "application/gzip");
        assert_eq!(sniff(b"GIF89a\x01\x00"), "image/gif");
        assert_eq!(sniff(b"PK\x03\x04\x14\x00\x00\x00"), "application/zip");
    }
}
