//! Forwarding a request to the replica that holds what it names (a
//! session), so a client behind any load balancer sees one server. The
//! forwarded request carries the replicas' shared secret and the client as
//! this replica saw it (the owner counts shares and lists sessions by it);
//! a forwarded request is never forwarded again.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName};
use hyper::{Request, Response};

use super::error::{ErrorKind, HttpError, Reply};
use super::request::{CLIENT_HEADER, FORWARDED_HEADER, HttpRequest};
use crate::config::Config;
use crate::sync::lock;

/// How long connecting to the owner may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Beyond the longest execution, what the owner's answer may take.
const ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// Request headers the owner needs; the rest are the hop's own.
const PASSED_ON: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("x-request-id"),
];
/// Reply headers the client needs.
const PASSED_BACK: [HeaderName; 3] = [header::CONTENT_TYPE, header::RETRY_AFTER, header::ALLOW];

/// Kept-alive connections to other replicas, by address.
type Idle = Mutex<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>;
/// Connections kept per replica.
const IDLE_PER_PEER: usize = 8;

fn idle() -> &'static Idle {
    static IDLE: OnceLock<Idle> = OnceLock::new();
    IDLE.get_or_init(Idle::default)
}

/// A kept connection to `authority` that is still open.
fn idle_connection(authority: &str) -> Option<SendRequest<Full<Bytes>>> {
    let mut idle = lock(idle());
    let kept = idle.get_mut(authority)?;
    while let Some(sender) = kept.pop() {
        if !sender.is_closed() {
            return Some(sender);
        }
    }
    None
}

fn keep_connection(authority: &str, sender: SendRequest<Full<Bytes>>) {
    let mut idle = lock(idle());
    let kept = idle.entry(authority.to_string()).or_default();
    if kept.len() < IDLE_PER_PEER {
        kept.push(sender);
    }
}

/// A new connection to `authority`; its driver ends when it closes.
async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    crate::background::spawn(connection);
    Ok(sender)
}

/// Sends `req` to the replica at `addr` (`http://host:port`) and answers
/// with its reply.
pub(crate) async fn forward(
    mut req: HttpRequest,
    config: &Config,
    addr: &str,
    secret: &str,
) -> Reply {
    let client = req.client();
    let body = req.body(config).await?;
    let unreachable = |why: String| {
        tracing::warn!(owner = addr, why = %why, "a session's replica did not answer");
        HttpError::new(
            ErrorKind::StorageUnavailable,
            "The replica that holds this session does not answer; retry shortly (a replica \
             that is gone hands its sessions over within LEASE_MS)",
        )
        .retry_in(1)
    };
    let authority = addr.strip_prefix("http://").unwrap_or(addr);
    let path = req
        .parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let request = || {
        let mut out = Request::builder()
            .method(req.parts.method.clone())
            .uri(path.as_str())
            .header(header::HOST, authority)
            .header(FORWARDED_HEADER, secret)
            .header(CLIENT_HEADER, client.as_ref());
        for name in &PASSED_ON {
            if let Some(value) = req.parts.headers.get(name) {
                out = out.header(name, value);
            }
        }
        out.body(Full::new(body.clone()))
            .map_err(|e| HttpError::internal(format!("building a forwarded request: {e}")))
    };
    let limit = config.limits.max_timeout + ANSWER_MARGIN;
    // A kept connection the owner has closed fails at once: then one new
    // connection is tried.
    let mut kept = idle_connection(authority);
    let (parts, bytes) = loop {
        let reused = kept.is_some();
        let mut sender = match kept.take() {
            Some(sender) => sender,
            None => connect(authority).await.map_err(unreachable)?,
        };
        let out = request()?;
        let answer = tokio::time::timeout(limit, async {
            sender.ready().await?;
            let response = sender.send_request(out).await?;
            let (parts, body) = response.into_parts();
            let bytes: Bytes = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts, bytes))
        })
        .await;
        match answer {
            Ok(Ok(answer)) => {
                keep_connection(authority, sender);
                break answer;
            }
            // Not sent (the kept connection was closed): safe to send again.
            Ok(Err(e)) if reused && (e.is_canceled() || e.is_closed()) => continue,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("no answer in time".into())),
        }
    };
    let mut reply = Response::new(Full::new(bytes));
    *reply.status_mut() = parts.status;
    for name in &PASSED_BACK {
        if let Some(value) = parts.headers.get(name) {
            reply.headers_mut().insert(name, value.clone());
        }
    }
    Ok(reply)
}
