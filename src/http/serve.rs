//! The accept loop (HTTP/1.1 and HTTP/2 on one port) and graceful
//! shutdown. Each connection's requests go to the [`Router`].

use std::convert::Infallible;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::conn::{IdleStream, InFlight};
use super::router::Router;
use super::threads::ConnThreads;
use crate::app::App;
use crate::config::Config;

/// The first bytes of an HTTP/2 connection; until they are complete (or
/// ruled out) the protocol is unknown and hyper's own timer is not running.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Starts the application `config` describes and serves `listener` until
/// `shutdown` resolves; then stops accepting, lets in-flight requests
/// finish (up to a grace period) and stops the engine.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::background::settle_here();
    let app = Arc::new(App::start(config)?);
    app.start_background()?;
    serve(listener, app, shutdown).await
}

/// Serves `listener` with a started `app` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::background::settle_here();
    let router = Arc::new(Router::new());
    // A route the document cannot describe stops the server here.
    super::api::docs::document_json().map_err(std::io::Error::other)?;

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The time a request head may take is bounded by the connection's idle
    // limit (`IdleStream`, below): it runs from the last request's end, so
    // a head, sent whole or a byte at a time, must be in by then. hyper's
    // own head timer would arm a timer per request for the same bound.
    builder.http1().header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let threads = ConnThreads::start(
        app.config.http_threads,
        Some(app.runner.engine.lane_parts()),
    )?;
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
        // The socket leaves this runtime's poller for its thread's own:
        // otherwise each of its readiness events would wake this runtime
        // too, and it would pass them on across threads.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not hand a connection over");
                continue;
            }
        };
        let (app, router) = (app.clone(), router.clone());
        let builder = builder.clone();
        let graceful_watch = graceful.watcher();
        let in_flight = InFlight::default();
        let counted = in_flight.clone();
        let client = super::request::PeerKey::new(peer);
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (app, router, client) = (app.clone(), router.clone(), client.clone());
                let guard = counted.enter();
                async move {
                    let response = router.handle(&app, req, client).await;
                    drop(guard);
                    Ok::<_, Infallible>(response)
                }
            });
        threads.spawn(async move {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "could not take a connection over");
                    return;
                }
            };
            // hyper's header-read timer only starts once the protocol is
            // known: bound the wait for the first bytes here.
            let Some(h2) = protocol_known(&stream, head_timeout).await else {
                tracing::debug!(%peer, "closed a connection that sent no request in time");
                return;
            };
            // An HTTP/2 connection's streams share its thread: while one is
            // open there, calls are not run on it.
            let _h2 = h2.then(crate::engine::lane_h2_open);
            // An HTTP/1 connection's socket is watched during its calls on
            // this thread (which cannot read it meanwhile). Registered
            // until after the connection below has closed it.
            let _h1 = (!h2).then(|| crate::engine::lane_h1_open(stream.as_raw_fd()));
            // Idle connections (HTTP/2 ones too) end after the head timeout.
            let stream = IdleStream::new(stream, in_flight, head_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = graceful_watch.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let drain_until = std::time::Instant::now() + SHUTDOWN_GRACE;
    tracing::info!("shutting down: finishing in-flight requests and running jobs");
    // Background jobs that have not started stay queued for the next start.
    app.jobs.stop_starting();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("in-flight requests did not finish in time");
        }
    }
    // Background jobs already running get the same drain period, and
    // their records are completed before the engine stops.
    if !app.jobs.wait_idle(drain_until).await {
        tracing::warn!("background jobs did not finish in time");
    }
    app.sessions.shutdown();
    let app2 = app.clone();
    let grace = drain_until
        .saturating_duration_since(std::time::Instant::now())
        .max(Duration::from_secs(1));
    // The connection threads stop last: what their requests started (a job
    // waiting for its report, say) may still finish while the engine drains.
    let _ = tokio::task::spawn_blocking(move || {
        app2.runner.engine.shutdown(grace);
        drop(threads);
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits until the connection's first bytes tell HTTP/1 from HTTP/2 (24
/// bytes of the HTTP/2 preface, or any byte that departs from it), up to
/// `limit`: whether it is HTTP/2, or `None` if the client sent nothing
/// useful in time or hung up.
async fn protocol_known(stream: &tokio::net::TcpStream, limit: Duration) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 24];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        match peeked {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) if n >= H2_PREFACE.len() => return Some(buf.starts_with(H2_PREFACE)),
            Ok(Ok(n)) if !H2_PREFACE.starts_with(&buf[..n]) => return Some(false),
            // Part of the preface so far: peek returns at once while those
            // bytes sit unread, so poll for more at a gentle pace.
            Ok(Ok(_)) => {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}
