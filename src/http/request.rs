//! What a handler gets ([`HttpRequest`]) and the parsing every API shares:
//! the body under its size and time limits, JSON under the depth limit,
//! and the fields several routes take (`timeout`, `isolation`).

use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header;
use serde_json::{Map, Value};

use super::error::{ErrorKind, HttpError};
use crate::config::Config;
use crate::engine::Isolation;

/// The client key of the connection a request came on (`addr:` and its
/// peer's IP address), made once per connection and handed to each of its
/// requests.
#[derive(Debug, Clone)]
pub(crate) struct PeerKey(std::sync::Arc<str>);

impl PeerKey {
    pub(crate) fn new(peer: std::net::SocketAddr) -> PeerKey {
        PeerKey(format!("addr:{}", peer.ip()).into())
    }
}

/// The client a request forwarded by another replica was sent by (set by
/// the router only when the request carries the replicas' shared secret).
#[derive(Clone)]
pub(crate) struct ForwardedClient(pub std::sync::Arc<str>);

/// Marks a request another replica forwarded (with the shared secret):
/// it is not forwarded again.
#[derive(Clone, Copy)]
pub(crate) struct Forwarded;

/// Headers of a request one replica forwards to another: the shared
/// secret, and the client as the first replica saw it.
pub(crate) const FORWARDED_HEADER: header::HeaderName =
    header::HeaderName::from_static("x-isoexec-forwarded");
pub(crate) const CLIENT_HEADER: header::HeaderName =
    header::HeaderName::from_static("x-isoexec-client");

/// One request as a handler sees it: its head, its path parameters, and its
/// body, read on demand under the server's limits.
pub(crate) struct HttpRequest {
    pub parts: hyper::http::request::Parts,
    body: Option<Incoming>,
    params: Vec<(String, String)>,
    peer: PeerKey,
}

impl HttpRequest {
    pub(crate) fn new(
        parts: hyper::http::request::Parts,
        body: Incoming,
        params: Vec<(String, String)>,
        peer: PeerKey,
    ) -> HttpRequest {
        HttpRequest {
            peer,
            parts,
            body: Some(body),
            params,
        }
    }

    /// Who sent the request, for fair shares: the bearer key when one is
    /// given (as a hash: the key itself is not kept), else the client's IP
    /// address. Limits per client (pool threads, sessions, background
    /// jobs) are counted under this name.
    /// The hash is SHA-256, so every replica of a shared store (and every
    /// restart) names a key alike; a request another replica forwarded names
    /// its client as the first replica saw it.
    pub(crate) fn client(&self) -> std::sync::Arc<str> {
        use sha2::{Digest, Sha256};
        if let Some(ForwardedClient(client)) = self.parts.extensions.get::<ForwardedClient>() {
            return client.clone();
        }
        if let Some(key) = bearer(&self.parts.headers).filter(|k| !k.is_empty()) {
            let h = Sha256::digest(key.as_bytes());
            let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
            return format!("key:{hex}").into();
        }
        self.peer.0.clone()
    }

    /// Whether another replica forwarded this request.
    pub(crate) fn forwarded(&self) -> bool {
        self.parts.extensions.get::<Forwarded>().is_some()
    }

    /// The value of `name` in the query string, percent-decoded (`+` is a
    /// space), or `None` when the query does not have it.
    pub(crate) fn query(&self, name: &str) -> Option<String> {
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        self.parts.uri.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
    }

    /// The path parameter `name` (percent-decoded), or "".
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The whole body, up to `MAX_BODY_BYTES` (with or without
    /// `Content-Length`) and within `BODY_READ_TIMEOUT_MS`.
    pub(crate) async fn body(&mut self, config: &Config) -> Result<Bytes, HttpError> {
        let limit = config.max_body_bytes;
        let too_large = || {
            HttpError::new(
                ErrorKind::PayloadTooLarge,
                format!("Request body is larger than {limit} bytes"),
            )
            .with("limit", limit)
        };
        let declared = self
            .parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let Some(body) = self.body.take() else {
            return Err(HttpError::internal("the request body was read twice"));
        };
        let timeout = config.body_read_timeout;
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                HttpError::bad_field("body", format!("Could not read the request body: {e}"))
            }
        };
        let mut body = Limited::new(body, limit);
        // A small request's body has usually come with its head, whole: taken
        // at once, without a timer, and without asking for its end once its
        // length is all there.
        let first =
            std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut body).poll_frame(cx)))
                .await;
        let head = match first {
            Poll::Ready(None) => return Ok(Bytes::new()),
            Poll::Ready(Some(Err(e))) => return Err(failed(e)),
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if body.is_end_stream() => return Ok(data),
                Ok(data) => Some(data),
                // Trailers come last: nothing more to read.
                Err(_) => return Ok(Bytes::new()),
            },
            Poll::Pending => None,
        };
        // The rest, appended to what came first.
        let rest = async {
            let mut all = bytes::BytesMut::from(head.as_deref().unwrap_or_default());
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    all.extend_from_slice(&data);
                }
            }
            Ok(all.freeze())
        };
        let Ok(read) = tokio::time::timeout(timeout, rest).await else {
            return Err(HttpError::bad_field(
                "body",
                format!(
                    "The request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            ));
        };
        read.map_err(failed)
    }
}

/// Checks that `body` nests no deeper than `max_depth` (the request's own
/// structure, before any parser recurses into it).
pub(crate) fn check_depth(body: &[u8], max_depth: usize) -> Result<(), HttpError> {
    if json_depth_exceeds(body, max_depth + 1) {
        return Err(HttpError::bad_field(
            "body",
            format!("Request JSON is nested deeper than {max_depth} levels"),
        )
        .with("maxDepth", max_depth));
    }
    Ok(())
}

/// Bodies up to this size are parsed on the connection's thread; larger
/// ones on the blocking pool, so that checking a 16 MiB body does not hold
/// up the other connections that thread serves.
pub(crate) const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Runs `parse` on `body`: at once when the body is small, else on the
/// blocking pool (see [`INLINE_PARSE_BYTES`]).
pub(crate) async fn parse_body<T: Send + 'static>(
    body: Bytes,
    parse: impl FnOnce(&[u8]) -> Result<T, HttpError> + Send + 'static,
) -> Result<T, HttpError> {
    if body.len() <= INLINE_PARSE_BYTES {
        return parse(&body);
    }
    tokio::task::spawn_blocking(move || parse(&body))
        .await
        .unwrap_or_else(|e| Err(HttpError::internal(format!("reading the body failed: {e}"))))
}

/// A body that must be a JSON object with only the fields `allowed`;
/// `shape` shows the caller what object is expected.
pub(crate) async fn json_object(
    body: Bytes,
    max_depth: usize,
    allowed: Vec<String>,
    shape: &'static str,
) -> Result<Map<String, Value>, HttpError> {
    parse_body(body, move |body| {
        parse_object(body, max_depth, &allowed, shape)
    })
    .await
}

fn parse_object(
    body: &[u8],
    max_depth: usize,
    allowed: &[String],
    shape: &str,
) -> Result<Map<String, Value>, HttpError> {
    check_depth(body, max_depth)?;
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => {
            check_fields(m.keys().map(String::as_str), allowed)?;
            Ok(m)
        }
        Ok(other) => Err(not_an_object(&other, shape)),
        Err(e) => Err(HttpError::bad_field(
            "body",
            format!("Malformed JSON body: {e}"),
        )),
    }
}

/// A string field of a JSON body: absent or `null` gives `None`, any other
/// type is a `bad_request` naming the field.
pub(crate) fn str_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, HttpError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(HttpError::bad_field(
            name,
            format!("Field '{name}' must be a string"),
        )),
    }
}

/// A string field that must be present: [`str_field`], with a missing or
/// `null` field a `bad_request` of its own.
pub(crate) fn required_str<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, HttpError> {
    str_field(body, name)?
        .ok_or_else(|| HttpError::bad_field(name, format!("Missing required field '{name}'")))
}

/// The error for a body that parsed but is not an object.
pub(crate) fn not_an_object(value: &Value, shape: &str) -> HttpError {
    let what = match value {
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Object(_) => "an object",
    };
    HttpError::bad_field(
        "body",
        format!("The request body must be a JSON object such as {shape}, not {what}"),
    )
}

/// Names callers often use for a field by another name.
const SYNONYMS: [(&str, &str); 14] = [
    ("params", "payload"),
    ("args", "payload"),
    ("arguments", "payload"),
    ("input", "payload"),
    ("data", "payload"),
    ("timeoutMs", "timeout"),
    ("timeout_ms", "timeout"),
    ("function", "fn"),
    ("func", "fn"),
    ("functionName", "fn"),
    ("source", "script"),
    ("language", "lang"),
    ("code_id", "codeId"),
    ("env_vars", "env"),
];

/// Refuses a field that is not one of `allowed`, naming it and, where one
/// is close, the field meant.
pub(crate) fn check_fields<'a>(
    keys: impl Iterator<Item = &'a str>,
    allowed: &[String],
) -> Result<(), HttpError> {
    for key in keys {
        if allowed.iter().any(|a| a == key) {
            continue;
        }
        let hint = suggestion(key, allowed);
        let mut message = format!("Unknown field '{key}'");
        if let Some(h) = &hint {
            message.push_str(&format!("; did you mean '{h}'?"));
        }
        message.push_str(&format!(" Fields: {}", allowed.join(", ")));
        let mut e = HttpError::bad_field(key, message).with("allowed", allowed.to_vec());
        if let Some(h) = hint {
            e = e.with("did_you_mean", h);
        }
        return Err(e);
    }
    Ok(())
}

/// The allowed field a caller most likely meant by `key`.
fn suggestion(key: &str, allowed: &[String]) -> Option<String> {
    if let Some((_, to)) = SYNONYMS.iter().find(|(from, _)| *from == key)
        && allowed.iter().any(|a| a == to)
    {
        return Some((*to).to_string());
    }
    let lower = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (edit_distance(&lower, &a.to_ascii_lowercase()), a))
        .filter(|(d, a)| *d <= 2.min(a.len() / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.clone())
}

/// Levenshtein distance, with adjacent swaps counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Whether `json` nests objects/arrays deeper than `max`, without parsing it
/// (and so without recursion).
pub(crate) fn json_depth_exceeds(json: &[u8], max: usize) -> bool {
    // Nesting needs an opening bracket per level: with no more of them in
    // the whole text (strings included) than `max`, it cannot go deeper.
    // A vectorized search that stops only at brackets is far cheaper than
    // the walk below, which also stops at every escape in a string.
    if memchr::memchr2_iter(b'{', b'[', json).take(max + 1).count() <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => {
                // To the string's closing quote, a backslash and the byte
                // after it at a time: the bulk of a call's body (its
                // script) is one string.
                i += 1;
                loop {
                    let Some(k) = json
                        .get(i..)
                        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                    else {
                        // Unterminated: the parser says so.
                        return false;
                    };
                    i += k;
                    if json[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// What a `timeout` above `MAX_TIMEOUT` means for a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverMax {
    /// `/run`: capped at the maximum.
    Cap,
    /// restexec: refused.
    Reject,
}

/// A body's `timeout`: 1..=`MAX_TIMEOUT` ms (refused outside it); absent
/// means `DEFAULT_TIMEOUT`. The same rule for every API that takes one.
pub(crate) fn timeout_field(
    config: &Config,
    body: &Map<String, Value>,
) -> Result<Duration, HttpError> {
    let limits = &config.limits;
    millis_field(
        body.get("timeout"),
        "timeout",
        limits.default_timeout,
        limits.max_timeout,
        OverMax::Reject,
    )
}

/// A `timeout`-like field: a positive number of milliseconds; absent or
/// `null` gives `default`.
pub(crate) fn millis_field(
    value: Option<&Value>,
    name: &str,
    default: Duration,
    max: Duration,
    over: OverMax,
) -> Result<Duration, HttpError> {
    let max_ms = max.as_millis() as u64;
    let ms = match value {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    let shown = value.map_or_else(String::new, Value::to_string);
    match ms {
        Some(ms) if ms.is_finite() && ms > 0.0 => {
            if ms > max_ms as f64 && over == OverMax::Reject {
                return Err(HttpError::bad_field(
                    name,
                    format!(
                        "Field '{name}' must be between 1 and {max_ms} milliseconds, not {shown}"
                    ),
                )
                .with("max", max_ms));
            }
            if over == OverMax::Reject && ms < 1.0 {
                return Err(HttpError::bad_field(
                    name,
                    format!(
                        "Field '{name}' must be between 1 and {max_ms} milliseconds, not {shown}"
                    ),
                ));
            }
            Ok(Duration::from_secs_f64((ms / 1000.0).min(1e9)).min(max))
        }
        _ => Err(HttpError::bad_field(
            name,
            format!("Field '{name}' must be a positive number of milliseconds, not {shown}"),
        )),
    }
}

/// `isolation`: one of `allowed`; absent or `null` is `"isolate"`.
/// The `isolation` field: one of `allowed`, or when absent `default` (the
/// `DEFAULT_ISOLATION` setting; `"isolate"` where it is not allowed).
pub(crate) fn isolation_field(
    value: Option<&Value>,
    allowed: &[Isolation],
    default: Isolation,
) -> Result<Isolation, HttpError> {
    let wrong = || {
        let names: Vec<String> = allowed
            .iter()
            .map(|i| format!("\"{}\"", i.as_str()))
            .collect();
        HttpError::bad_field(
            "isolation",
            format!(
                "Field 'isolation' must be {}, not {}",
                names.join(" or "),
                value.map_or_else(String::new, Value::to_string)
            ),
        )
    };
    match value {
        None | Some(Value::Null) if allowed.contains(&default) => Ok(default),
        None | Some(Value::Null) => Ok(Isolation::Isolate),
        Some(Value::String(s)) => Isolation::parse(s)
            .filter(|i| allowed.contains(i))
            .ok_or_else(wrong),
        Some(_) => Err(wrong()),
    }
}

/// Compares without an early exit, so timing does not reveal a prefix match.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The key of an `Authorization: Bearer <key>` header, if there is one.
pub(crate) fn bearer(headers: &hyper::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Decodes `%XX` escapes (a codeId never needs them, but a client may send
/// `%2F` to probe; decoding lets validation see and refuse it).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: Option<&u8>) -> Option<u8> {
    (*b? as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_scan_counts_only_structure() {
        assert!(!json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 2));
        // Brackets inside strings do not count, escaped quotes do not end them.
        assert!(!json_depth_exceeds(br#"{"a":"[[[[\"[[[["}"#, 1));
        // An escaped backslash ends before the quote, which ends the string.
        assert!(json_depth_exceeds(br#"{"a":"x\\",  "b":[[1]]}"#, 2));
        assert!(!json_depth_exceeds(br#"{"a":"x\\\"[[["}"#, 1));
        // Unterminated strings and a trailing backslash end the scan.
        assert!(!json_depth_exceeds(br#"{"a":"[[[["#, 1));
        assert!(!json_depth_exceeds(br#"{"a":"\"#, 1));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(json_depth_exceeds(deep.as_bytes(), 128));
    }

    #[test]
    fn timeouts_are_capped_or_rejected_by_route() {
        let (d, max) = (Duration::from_millis(5), Duration::from_millis(100));
        let t = |v: Value, over| millis_field(Some(&v), "timeout", d, max, over);
        assert_eq!(
            millis_field(None, "timeout", d, max, OverMax::Cap).unwrap(),
            d
        );
        assert_eq!(
            t(json!(50), OverMax::Cap).unwrap(),
            Duration::from_millis(50)
        );
        assert_eq!(t(json!(500), OverMax::Cap).unwrap(), max);
        assert!(t(json!(500), OverMax::Reject).is_err());
        for bad in [json!(0), json!(-1), json!("5"), json!(true)] {
            let e = t(bad.clone(), OverMax::Cap).unwrap_err();
            assert_eq!(e.details["field"], "timeout", "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_named_with_the_field_meant() {
        let allowed: Vec<String> = [
            "script",
            "code",
            "fn",
            "payload",
            "timeout",
            "cpuTimeout",
            "isolation",
        ]
        .map(String::from)
        .to_vec();
        for (key, meant) in [
            ("params", Some("payload")),
            ("timeoutMs", Some("timeout")),
            ("scirpt", Some("script")),
            ("Fn", Some("fn")),
            ("isolaton", Some("isolation")),
            ("zzz", None),
        ] {
            let e = check_fields([key].into_iter(), &allowed).unwrap_err();
            assert_eq!(e.details["field"], key);
            assert_eq!(
                e.details.get("did_you_mean").and_then(|v| v.as_str()),
                meant,
                "{key}"
            );
            assert!(e.message.contains(key));
        }
        assert!(check_fields(["fn", "script"].into_iter(), &allowed).is_ok());
        let e = not_an_object(&json!([1]), "{\"a\": 1}");
        assert!(e.message.contains("not an array") && e.message.contains("{\"a\": 1}"));
    }

    #[test]
    fn isolation_names_what_is_allowed() {
        let all = Isolation::ALL;
        assert_eq!(
            isolation_field(None, &all, Isolation::Isolate).unwrap(),
            Isolation::Isolate
        );
        assert_eq!(
            isolation_field(Some(&json!("none")), &all, Isolation::Isolate).unwrap(),
            Isolation::None
        );
        let programs = [Isolation::Isolate, Isolation::Process];
        // DEFAULT_ISOLATION when absent, where it is allowed.
        assert_eq!(
            isolation_field(None, &programs, Isolation::Process).unwrap(),
            Isolation::Process
        );
        assert_eq!(
            isolation_field(None, &programs, Isolation::Frozen).unwrap(),
            Isolation::Isolate
        );
        let e = isolation_field(Some(&json!("none")), &programs, Isolation::Isolate).unwrap_err();
        assert!(
            e.message.contains("\"isolate\" or \"process\""),
            "{}",
            e.message
        );
    }
}
