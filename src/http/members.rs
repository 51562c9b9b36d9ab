//! A JSON object's top-level members, split in one pass, their values left
//! as raw JSON text.
//!
//! A call's body is mostly one string, its script, and clients send the same
//! script call after call. A JSON parser goes over that string byte by byte
//! at every escape (every line break of the script) and then the body is
//! checked for UTF-8 and nesting in passes of its own; here a value equal to
//! a string token the caller already knows (the script this thread last
//! took) is recognized by comparing bytes, which tells where it ends and
//! that it is valid, and every other value is checked on its own.
//!
//! Only the plain case is handled — an object whose member names have no
//! escapes, nothing after it but whitespace. Anything else gives `None`,
//! and the caller parses the body in full, which also words the error.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::http::request::json_depth_exceeds;

/// The members of `body` in order, each name with its value's raw text,
/// or `None` when the body is not a plain object or a value is refused
/// (not valid JSON or UTF-8, or nested deeper than `max_depth` levels
/// below the object). `known` is the complete JSON text of a string token,
/// a valid one: a value whose bytes start with it is that token.
pub(crate) fn split<'a>(
    body: &'a [u8],
    known: Option<&str>,
    max_depth: usize,
) -> Option<Vec<(&'a str, &'a str)>> {
    let mut members = Vec::with_capacity(8);
    let mut at = skip_ws(body, 0);
    if body.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(body, at + 1);
    if body.get(at) == Some(&b'}') {
        return (skip_ws(body, at + 1) == body.len()).then_some(members);
    }
    loop {
        let (name, end) = plain_string(body, at)?;
        let name = &name[1..name.len() - 1];
        at = skip_ws(body, end);
        if body.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(body, at + 1);
        let (value, end) = value(body, at, known, max_depth)?;
        members.push((name, value));
        at = skip_ws(body, end);
        match body.get(at) {
            Some(b',') => at = skip_ws(body, at + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    (skip_ws(body, at + 1) == body.len()).then_some(members)
}

/// The value at `at` and the index after it.
fn value<'a>(
    body: &'a [u8],
    at: usize,
    known: Option<&str>,
    max_depth: usize,
) -> Option<(&'a str, usize)> {
    let rest = body.get(at..)?;
    if rest.first() == Some(&b'"') {
        if let Some(known) = known
            && known.len() > 1
            && known.starts_with('"')
            && rest.starts_with(known.as_bytes())
        {
            let end = at + known.len();
            // SAFETY: these bytes are equal to those of `known`, a `str`:
            // valid UTF-8, and looking at them again is what this skips.
            let text = unsafe { std::str::from_utf8_unchecked(&body[at..end]) };
            return Some((text, end));
        }
        if let Some(found) = plain_string(body, at) {
            return Some(found);
        }
    }
    // Anything else (escapes, numbers, objects, ...) by the JSON parser,
    // one value.
    let mut de = serde_json::Deserializer::from_slice(rest);
    let raw = <&RawValue>::deserialize(&mut de).ok()?;
    let text = raw.get();
    if json_depth_exceeds(text.as_bytes(), max_depth) {
        return None;
    }
    // The raw text is the value's own bytes, from `at` (no whitespace
    // before it there); what follows is looked at by the caller.
    Some((text, at + text.len()))
}

/// The string token at `at` when it has no escapes: the token, quotes
/// included, and the index after it. `None` for an escape, a control
/// character (which JSON does not allow unescaped), bytes that are not
/// UTF-8, or no string there.
fn plain_string(body: &[u8], at: usize) -> Option<(&str, usize)> {
    if body.get(at) != Some(&b'"') {
        return None;
    }
    let inner = body.get(at + 1..)?;
    let len = memchr::memchr2(b'"', b'\\', inner)?;
    if inner[len] != b'"' {
        return None;
    }
    let end = at + 1 + len + 1;
    let token = &body[at..end];
    // Printable ASCII, the common case, is valid UTF-8 as it is.
    if inner[..len].iter().all(|&b| (0x20..0x7f).contains(&b)) {
        // SAFETY: every byte of the token is ASCII.
        return Some((unsafe { std::str::from_utf8_unchecked(token) }, end));
    }
    if inner[..len].iter().any(|&b| b < 0x20) {
        return None;
    }
    Some((std::str::from_utf8(token).ok()?, end))
}

fn skip_ws(body: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = body.get(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_values(body: &str, known: Option<&str>) -> Option<Vec<(String, String)>> {
        split(body.as_bytes(), known, 4).map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
    }

    #[test]
    fn plain_objects_are_split_into_raw_members() {
        let got = names_and_values(
            " {\"script\" : \"a\\nb\", \"fn\":\"f\",\"payload\":{\"x\": [1, 2]} ,\"n\":-1.5e3,\"t\":true, \"z\":null}\r\n",
            None,
        )
        .unwrap();
        let want = [
            ("script", r#""a\nb""#),
            ("fn", r#""f""#),
            ("payload", r#"{"x": [1, 2]}"#),
            ("n", "-1.5e3"),
            ("t", "true"),
            ("z", "null"),
        ];
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
        assert_eq!(names_and_values("{}", None).unwrap().len(), 0);
        assert_eq!(names_and_values(" { } ", None).unwrap().len(), 0);
    }

    #[test]
    fn a_known_token_is_taken_whole_and_anything_unusual_is_left_to_the_parser() {
        let known = r#""x\"}, \"fn\": 1""#;
        let body = format!(r#"{{"script":{known},"fn":"f"}}"#);
        let got = names_and_values(&body, Some(known)).unwrap();
        assert_eq!(got[0], ("script".into(), known.into()));
        assert_eq!(got[1], ("fn".into(), r#""f""#.into()));
        // The same body split without the hint: the parser finds the same.
        assert_eq!(names_and_values(&body, None).unwrap(), got);
        for refused in [
            "",
            "[1]",
            "\"a\"",
            "{\"a\":1",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{\"a\":1} x",
            "{\"a\":1}{}",
            "{\"\\u0061\":1}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":01}",
            "{\"a\":[1,]}",
            "{\"a\":\"\\q\"}",
            // Deeper than 4 levels below the object.
            "{\"a\":[[[[[1]]]]]}",
        ] {
            assert!(names_and_values(refused, None).is_none(), "{refused}");
        }
        assert!(names_and_values("{\"a\":[[[[1]]]]}", None).is_some());
        // Bytes that are not UTF-8, in a name, a plain value, a parsed one.
        for bad in [
            &b"{\"\xff\":1}"[..],
            &b"{\"a\":\"\xff\"}"[..],
            &b"{\"a\":[\"\xff\"]}"[..],
        ] {
            assert!(split(bad, None, 4).is_none());
        }
    }
}
