//! The host side of `fetch`: one plain-HTTP/1.1 request to a host on the
//! `ALLOW_NET` list. No redirects are followed, no TLS is spoken, and the
//! response body is capped.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use serde::{Deserialize, Serialize};

use crate::engine::permissions::Permissions;

/// Largest response body `fetch` returns.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What the glue asks for.
#[derive(Debug, Deserialize)]
pub(crate) struct FetchRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

/// What the glue gets back.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FetchResponse {
    pub status: u16,
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub url: String,
}

/// Why a fetch failed.
#[derive(Debug)]
pub(crate) enum FetchError {
    Denied(String),
    Type(String),
    Network(String),
}

/// Checks the URL against the allow-list and returns its host and port.
pub(crate) fn check(
    perms: &Permissions,
    url: &str,
) -> Result<(deno_core::url::Url, String, u16), FetchError> {
    let parsed = deno_core::url::Url::parse(url)
        .map_err(|e| FetchError::Type(format!("Invalid URL '{url}': {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| FetchError::Type(format!("URL '{url}' has no host")))?
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    if !perms.net_allowed(&host, port) {
        return Err(FetchError::Denied(format!(
            "Requires net access to \"{host}:{port}\" (fetch of '{url}'); the host is not on \
             ALLOW_NET"
        )));
    }
    match parsed.scheme() {
        "http" => Ok((parsed, host, port)),
        "https" => Err(FetchError::Type(format!(
            "fetch of '{url}': https is not supported by this server; use http:// to a host on \
             ALLOW_NET"
        ))),
        other => Err(FetchError::Type(format!(
            "fetch of '{url}': scheme '{other}:' is not supported"
        ))),
    }
}

/// Sends the request and reads the whole response.
pub(crate) async fn send(
    perms: &Permissions,
    req: FetchRequest,
    body: Vec<u8>,
) -> Result<(FetchResponse, Vec<u8>), FetchError> {
    let (url, host, port) = check(perms, &req.url)?;
    let net = |e: &dyn std::fmt::Display| FetchError::Network(format!("fetch of '{url}': {e}"));
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| net(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| net(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let method = hyper::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| FetchError::Type(format!("Invalid method '{}'", req.method)))?;
    let mut builder = Request::builder().method(method).uri(path);
    let mut has_host = false;
    for (k, v) in &req.headers {
        has_host |= k.eq_ignore_ascii_case("host");
        builder = builder.header(k.as_str(), v.as_str());
    }
    if !has_host {
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        builder = builder.header("host", authority);
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| FetchError::Type(format!("fetch of '{url}': {e}")))?;
    let response = sender.send_request(request).await.map_err(|e| net(&e))?;
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| net(&e))?
        .to_bytes()
        .to_vec();
    Ok((
        FetchResponse {
            status: status.as_u16(),
            status_text: status.canonical_reason().unwrap_or("").to_string(),
            headers,
            url: url.to_string(),
        },
        bytes,
    ))
}
