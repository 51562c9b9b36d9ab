//! Reply writers: the body every reply has, and JSON, text and typed
//! replies. A leaf: errors, handlers and the router import it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// The body of every reply: complete before it is sent.
pub(crate) type Body = Full<Bytes>;

/// Headers a reply has room for from the start: its content type and the
/// router's own (request id, framing and sniffing rules), so that adding
/// them never grows the map.
const HEADER_ROOM: usize = 8;

fn with_room(r: &mut Response<Body>) {
    *r.headers_mut() = hyper::HeaderMap::with_capacity(HEADER_ROOM);
}

/// A JSON reply from text that is already JSON.
pub(crate) fn json_text(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    with_room(&mut r);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON reply of `value`.
pub(crate) fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => json_text(status, text),
        Err(e) => {
            tracing::error!(cause = %e, "a reply could not be encoded");
            json_text(
                500,
                r#"{"error":"Internal server error","kind":"internal"}"#.into(),
            )
        }
    }
}

/// A reply of `body` with a content type.
pub(crate) fn with_type(
    status: u16,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    with_room(&mut r);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A plain-text reply.
pub(crate) fn text(status: u16, body: String) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", body)
}
