//! The HTTP server: accept loop (HTTP/1.1 and HTTP/2), graceful shutdown,
//! request ids, auth, body limits, routing, and the one place where
//! [`ApiError`] becomes an HTTP response.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::compile::Compiler;
use crate::config::Config;
use crate::conn::{IdleStream, InFlight};
use crate::error::{ApiError, ErrorKind};
use crate::permissions::Permissions;
use crate::pool::{Pool, PoolOptions};
use crate::process::ProcessPool;
use crate::resolve::Resolver;
use crate::restexec::{self, RestError};
use crate::workspace::Workspace;

/// The first bytes of an HTTP/2 connection; until they are complete (or
/// ruled out) the protocol is unknown and hyper's own timer is not running.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub type Body = Full<Bytes>;

/// State shared by all requests.
pub struct App {
    pub config: Config,
    pub pool: Pool,
    pub started: Instant,
    pub workspace: Workspace,
    /// Parses and lints user code in helper processes.
    pub compiler: Arc<Compiler>,
    pub process: Arc<ProcessPool>,
}

/// Opens the workspace and starts the isolate pool with the resolver and
/// permissions `config` describes.
pub fn start_pool(config: &Config, compiler: Arc<Compiler>) -> std::io::Result<(Workspace, Pool)> {
    let workspace = Workspace::open(&config.workspace_dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("WORKSPACE_DIR {}: {e}", config.workspace_dir.display()),
        )
    })?;
    let ws = workspace.dir().to_path_buf();
    let tools = real_or_absolute(&config.tools_dir);
    let vendor = real_or_absolute(&config.vendor_dir);
    let import_map = config
        .import_map
        .clone()
        .unwrap_or_else(|| ws.join("import_map.json"));
    let resolver = Resolver::new(&ws, vec![ws.clone(), tools.clone(), vendor], import_map);
    let permissions = Permissions {
        read: match &config.allow_read {
            Some(list) => list.iter().map(|p| real_or_absolute(p)).collect(),
            None => vec![ws.clone(), tools],
        },
        write: config
            .allow_write
            .iter()
            .map(|p| real_or_absolute(p))
            .collect(),
        net: config.allow_net.clone(),
        base_dir: ws,
    };
    let pool = Pool::start(PoolOptions {
        size: config.pool_size,
        queue_size: config.queue_size,
        limits: config.limits.clone(),
        resolver: Arc::new(resolver),
        permissions: Arc::new(permissions),
        compiler,
    })?;
    Ok((workspace, pool))
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (up to a grace period) and stops the pool.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Compiles come from isolate threads and from lint requests.
    let compiler = Arc::new(Compiler::helpers(config.pool_size)?);
    let (workspace, pool) = start_pool(&config, compiler.clone())?;
    workspace.remove_stale_temps();
    let process = ProcessPool::new(&config, pool.transpile_cache())?;
    process.replenish();
    let app = Arc::new(App {
        config,
        pool,
        started: Instant::now(),
        workspace,
        compiler,
        process,
    });

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let head_timeout = app.config.header_read_timeout;
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let graceful_watch = graceful.watcher();
        let in_flight = InFlight::default();
        let counted = in_flight.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            let guard = counted.enter();
            async move {
                let response = handle(&app, req).await;
                drop(guard);
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            // hyper's header-read timer only starts once the protocol is
            // known: bound the wait for the first bytes here.
            if !protocol_known(&stream, head_timeout).await {
                tracing::debug!(%peer, "closed a connection that sent no request in time");
                return;
            }
            // Idle connections (HTTP/2 ones too) end after the head timeout.
            let stream = IdleStream::new(stream, in_flight, head_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = graceful_watch.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("in-flight requests did not finish in time");
        }
    }
    let app2 = app.clone();
    let _ = tokio::task::spawn_blocking(move || app2.pool.shutdown(Duration::from_secs(5))).await;
    Ok(())
}

/// Waits until the connection's first bytes tell HTTP/1 from HTTP/2 (24
/// bytes of the HTTP/2 preface, or any byte that departs from it), up to
/// `limit`. False if the client sent nothing useful in time or hung up.
async fn protocol_known(stream: &tokio::net::TcpStream, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 24];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        match peeked {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) if n >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&buf[..n]) => {
                return true;
            }
            // Part of the preface so far: peek returns at once while those
            // bytes sit unread, so poll for more at a gentle pace.
            Ok(Ok(_)) => {
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// `path` with symlinks resolved when it exists, else made absolute.
fn real_or_absolute(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Handles one request: id, auth, routing, and the error-to-HTTP mapping.
async fn handle(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let request_id = req
        .headers()
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(new_request_id);
    let span = tracing::info_span!(
        "request",
        id = %request_id.to_str().unwrap_or("-"),
        method = %req.method(),
        path = %req.uri().path(),
    );
    async move {
        let started = Instant::now();
        let restexec = is_restexec_path(req.uri().path());
        let mut response = if restexec {
            match route_restexec(app, req).await {
                Ok(r) => r,
                Err(e) => e.response(None),
            }
        } else {
            match route(app, req).await {
                Ok(r) => r,
                Err(e) => error_response(&e, None),
            }
        };
        response.headers_mut().insert("x-request-id", request_id);
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "done"
        );
        response
    }
    .instrument(span)
    .await
}

/// Paths of the restexec-compatible API, which replies in its own shape.
fn is_restexec_path(path: &str) -> bool {
    path == "/execute" || path == "/lint" || path == "/workspace" || path.starts_with("/workspace/")
}

async fn route_restexec(
    app: &Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Body>, RestError> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    check_auth(app, &req)?;
    let limit = app.config.max_body_bytes;
    match (path.as_str(), method) {
        ("/workspace", Method::PUT | Method::POST) => {
            let body = read_body(req, limit, app.config.body_read_timeout).await?;
            restexec::save(app, &body).await
        }
        ("/workspace", Method::GET) => restexec::list(app).await,
        ("/execute", Method::POST) => {
            let body = read_body(req, limit, app.config.body_read_timeout).await?;
            restexec::execute(app, &body).await
        }
        ("/lint", Method::POST) => {
            let body = read_body(req, limit, app.config.body_read_timeout).await?;
            restexec::lint(app, &body).await
        }
        (p, m) if p.starts_with("/workspace/") => {
            let code_id = percent_decode(&p["/workspace/".len()..]);
            match m {
                Method::GET => restexec::read(app, &code_id).await,
                Method::DELETE => restexec::delete(app, &code_id).await,
                _ => Err(method_not_allowed("GET, DELETE").into()),
            }
        }
        ("/workspace", _) => Err(method_not_allowed("PUT, GET").into()),
        _ => Err(method_not_allowed("POST").into()),
    }
}

/// Decodes `%XX` escapes (a codeId never needs them, but a client may send
/// `%2F` to probe; decoding lets validation see and refuse it).
fn percent_decode(s: &str) -> String {
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

async fn route(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path != "/health" {
        check_auth(app, &req)?;
    }
    match (path.as_str(), method) {
        ("/" | "/run", Method::POST) => {
            let body =
                read_body(req, app.config.max_body_bytes, app.config.body_read_timeout).await?;
            crate::api::run(app, &body).await
        }
        ("/health", Method::GET | Method::HEAD) => Ok(crate::health::health(app)),
        ("/" | "/run", _) => Err(method_not_allowed("POST")),
        ("/health", _) => Err(method_not_allowed("GET")),
        _ => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("No route for {path}"),
        )),
    }
}

fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("Method not allowed; use {allowed}"),
    )
    .with("allow", allowed)
}

fn check_auth(app: &App, req: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(key) = &app.config.api_key else {
        return Ok(());
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Missing or invalid API key (Authorization: Bearer <key>)",
        ))
    }
}

/// Compares without an early exit, so timing does not reveal a prefix match.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0
}

/// Reads the body up to `limit` bytes, with or without `Content-Length`.
async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("Request body is larger than {limit} bytes"),
        )
        .with("limit", limit)
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect());
    let Ok(read) = read.await else {
        return Err(ApiError::bad_request(format!(
            "The request body did not arrive within {} ms",
            timeout.as_millis()
        ))
        .with("field", "body"));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "Could not read the request body: {e}"
        ))),
    }
}

/// A JSON response.
pub fn json_response(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"error", "kind", "details", "logs"}` with the kind's status. `logs` is
/// the JSON text of the captured logs and whether they were cut at their cap.
pub fn error_response(e: &ApiError, logs: Option<(&str, bool)>) -> Response<Body> {
    let (logs, truncated) = logs.unwrap_or(("[]", false));
    let body = format!(
        "{{\"error\":{},\"kind\":\"{}\",\"details\":{},\"logs\":{}{}}}",
        serde_json::Value::String(e.message.clone()),
        e.kind.as_str(),
        serde_json::Value::Object(e.details.clone()),
        logs,
        if truncated {
            ",\"logsTruncated\":true"
        } else {
            ""
        },
    );
    let mut r = json_response(e.status(), body);
    if let Some(secs) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.kind == ErrorKind::MethodNotAllowed
        && let Some(allow) = e.details.get("allow").and_then(|v| v.as_str())
        && let Ok(v) = HeaderValue::from_str(allow)
    {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

fn new_request_id() -> HeaderValue {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = SEED.get_or_init(RandomState::new).hash_one(n);
    HeaderValue::from_str(&format!("{hash:016x}{n:08x}")).unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_keys() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn request_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
    }
}
