//! What every request goes through once: a request id, route matching
//! (method + path pattern with parameters, by `matchit`) over the routes
//! the APIs declare, auth, the handler, errors written in the route's
//! dialect, and one log line. Handlers never import this module.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use tracing::Instrument;

use super::api;
use super::error::{Dialect, ErrorKind, HttpError, Reply};
use super::reply::Body;
use super::request::{
    CLIENT_HEADER, FORWARDED_HEADER, Forwarded, ForwardedClient, HttpRequest, PeerKey, bearer,
    constant_time_eq, percent_decode,
};
use super::route::{self, Route};
use crate::app::App;

/// Every route of the server, matched by path.
pub struct Router {
    matcher: matchit::Router<usize>,
    routes: Vec<Route>,
}

/// One route as the router serves it: its pattern, and each method with
/// whether it needs the API key and whether the API's description has it.
pub struct RouteInfo {
    pub pattern: &'static str,
    pub methods: Vec<MethodInfo>,
}

/// One method of a route.
pub struct MethodInfo {
    pub method: String,
    pub auth: bool,
    pub described: bool,
}

impl Router {
    /// The routes every API declares ([`api::routes`]).
    pub fn new() -> Router {
        let routes = route::merged(api::routes());
        let mut matcher = matchit::Router::new();
        for (index, route) in routes.iter().enumerate() {
            if let Err(e) = matcher.insert(route.pattern, index) {
                panic!("route {} conflicts with another: {e}", route.pattern);
            }
        }
        Router { matcher, routes }
    }

    /// The path patterns of every route, in the order they were added.
    pub fn patterns(&self) -> Vec<&'static str> {
        self.routes.iter().map(|r| r.pattern).collect()
    }

    /// Every route with its methods.
    pub fn describe(&self) -> Vec<RouteInfo> {
        self.routes
            .iter()
            .map(|r| RouteInfo {
                pattern: r.pattern,
                methods: r
                    .endpoints
                    .iter()
                    .map(|e| MethodInfo {
                        method: e.method.to_string(),
                        auth: e.auth,
                        described: e.doc.is_some(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Answers one request.
    pub(crate) async fn handle(
        &self,
        app: &Arc<App>,
        req: Request<Incoming>,
        peer: PeerKey,
    ) -> Response<Body> {
        let one_per_connection = browser_on_http1(&req);
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .filter(|v| usable_request_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(new_request_id);
        let matched = self.matcher.at(req.uri().path()).ok().map(|m| {
            let params = m
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect::<Vec<_>>();
            (&self.routes[*m.value], params)
        });
        let pattern = matched.as_ref().map_or("(none)", |(r, _)| r.pattern);
        let method = method_label(req.method());
        let span = tracing::info_span!(
            "request",
            id = %request_id.to_str().unwrap_or("-"),
            method,
            route = pattern,
        );
        async move {
            let started = Instant::now();
            // Logs the request if the client goes away before the answer
            // (the connection drops this future mid-way).
            let mut unanswered = Unanswered {
                started,
                armed: true,
            };
            let (dialect, result) = match matched {
                None => (
                    Dialect::FunctionCall,
                    Err(HttpError::new(
                        ErrorKind::NotFound,
                        format!("No route for {}", req.uri().path()),
                    )),
                ),
                Some((route, params)) => {
                    (route.dialect, dispatch(app, route, params, req, peer).await)
                }
            };
            let (mut response, kind) = match result {
                Ok(r) => (r, None),
                Err(mut e) => {
                    // restexec clients read executionTime on every /execute
                    // and /lint reply, a refused request's too.
                    if matches!(pattern, "/execute" | "/lint") && e.execution_ms.is_none() {
                        e.execution_ms = Some(started.elapsed().as_millis() as u64);
                    }
                    (e.response(dialect), Some(e.kind.as_str()))
                }
            };
            unanswered.armed = false;
            let headers = response.headers_mut();
            headers.insert(REQUEST_ID, request_id);
            // No page of this server may be framed by another site.
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("frame-ancestors 'none'"),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            if one_per_connection {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            app.runner.metrics.request(
                pattern,
                method,
                response.status().as_u16(),
                started.elapsed(),
            );
            tracing::info!(
                status = response.status().as_u16(),
                ms = started.elapsed().as_secs_f64() * 1000.0,
                kind = kind.unwrap_or("-"),
                "done"
            );
            response
        }
        .instrument(span)
        .await
    }
}

/// Whether a browser sent `req` over HTTP/1: such a connection serves one
/// request. A browser that receives a 408 (an execution's timeout) on a
/// connection it reused takes it for the server dropping an idle
/// connection and sends the request again, so the code would run twice;
/// on a connection of its own, a 408 is its answer. Browsers say who they
/// are with `Sec-Fetch-Mode`; other clients keep their connections alive.
fn browser_on_http1(req: &Request<Incoming>) -> bool {
    static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
    req.version() <= hyper::Version::HTTP_11 && req.headers().contains_key(&SEC_FETCH_MODE)
}

/// Writes the log line of a request whose client left before its answer.
struct Unanswered {
    started: Instant,
    armed: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.armed {
            tracing::info!(
                status = 499,
                ms = self.started.elapsed().as_secs_f64() * 1000.0,
                kind = "client_closed",
                "client went away before the answer"
            );
        }
    }
}

/// The method as a metric label and log field: one of a fixed set, so a
/// client cannot make a series per made-up method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Whether a client's `X-Request-Id` is used as it is: up to 200 of
/// `A-Z a-z 0-9 - _ . : /`. Anything else (spaces, quotes, `=`, control
/// characters) could forge fields of a text log line, so the server makes
/// an id of its own instead.
fn usable_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(b))
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

/// Auth, then the route's handler for the method.
async fn dispatch(
    app: &Arc<App>,
    route: &Route,
    params: Vec<(String, String)>,
    req: Request<Incoming>,
    peer: PeerKey,
) -> Reply {
    let Some(endpoint) = route.endpoints.iter().find(|e| e.method == req.method()) else {
        return Err(HttpError::method_not_allowed(&route.allow()));
    };
    if endpoint.auth && !endpoint.own_auth {
        check_auth(app, &req)?;
    }
    let (mut parts, body) = req.into_parts();
    trust_forwarded(app, &mut parts);
    (endpoint.handler)(app.clone(), HttpRequest::new(parts, body, params, peer)).await
}

/// A request another replica forwarded names its client: believed only
/// with the replicas' shared secret, and otherwise stripped, so no client
/// can pass for another.
fn trust_forwarded(app: &App, parts: &mut hyper::http::request::Parts) {
    // A look along the request's few header names costs less than the two
    // lookups by hash below, and almost no request has either header.
    if !parts
        .headers
        .keys()
        .any(|name| *name == FORWARDED_HEADER || *name == CLIENT_HEADER)
    {
        return;
    }
    let given = parts.headers.remove(FORWARDED_HEADER);
    let client = parts.headers.remove(CLIENT_HEADER);
    let Some(given) = given else { return };
    let trusted = app
        .sessions
        .catalog()
        .is_some_and(|c| constant_time_eq(c.secret().as_bytes(), given.as_bytes()));
    if trusted && let Some(client) = client.as_ref().and_then(|c| c.to_str().ok()) {
        parts.extensions.insert(ForwardedClient(client.into()));
        parts.extensions.insert(Forwarded);
    }
}

fn check_auth(app: &App, req: &Request<Incoming>) -> Result<(), HttpError> {
    let Some(key) = &app.config.api_key else {
        return Ok(());
    };
    let given = bearer(req.headers()).unwrap_or("");
    if constant_time_eq(given.as_bytes(), key.as_bytes()) {
        Ok(())
    } else {
        Err(HttpError::new(
            ErrorKind::Unauthorized,
            "Missing or invalid API key (Authorization: Bearer <key>)",
        ))
    }
}

/// The header a request's id comes in and goes back in.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

fn new_request_id() -> HeaderValue {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The count scrambled by a bijection (splitmix64's finalizer) of it
    // plus a seed drawn at start: ids look unrelated and never repeat
    // within a run, without hashing each one.
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(0u64));
    let mut hash = n.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(seed);
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    // 16 hex digits of the hash, then the low 8 of the count.
    let both = (u128::from(hash) << 32) | u128::from(n as u32);
    let digits = b"0123456789abcdef";
    let id: [u8; 24] = std::array::from_fn(|i| digits[((both >> (4 * (23 - i))) & 0xf) as usize]);
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_in_full() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn paths_match_patterns_with_parameters() {
        let r = Router::new();
        let m = r.matcher.at("/workspace/abc").unwrap();
        assert_eq!(r.routes[*m.value].pattern, "/workspace/{codeId}");
        assert_eq!(m.params.get("codeId"), Some("abc"));
        assert!(r.matcher.at("/workspace/a/b").is_err());
        assert_eq!(percent_decode("..%2Fx"), "../x");
    }

    #[test]
    fn request_ids_are_hex_hash_then_count() {
        let (a, b) = (new_request_id(), new_request_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 24);
            assert!(id.as_bytes().iter().all(|c| c.is_ascii_hexdigit()));
            assert!(usable_request_id(id.as_bytes()));
        }
        let count = |id: &HeaderValue| {
            u32::from_str_radix(std::str::from_utf8(&id.as_bytes()[16..]).unwrap(), 16).unwrap()
        };
        // Other tests may take ids in between, never this one's again.
        assert!(count(&b).wrapping_sub(count(&a)) >= 1);
        assert_ne!(a.as_bytes()[..16], b.as_bytes()[..16]);
    }

    #[test]
    fn made_up_methods_share_one_label_and_odd_request_ids_are_replaced() {
        let custom = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&Method::POST), "POST");
        assert!(usable_request_id(b"req-42_a.b:c/d"));
        assert!(!usable_request_id(b"x status=200 kind=none"));
        assert!(!usable_request_id(b"a\"b"));
        assert!(!usable_request_id(b""));
        assert!(!usable_request_id(&[b'a'; 201]));
    }

    #[test]
    fn allow_lists_the_route_methods() {
        let r = Router::new();
        let allow = |p: &str| r.routes.iter().find(|x| x.pattern == p).unwrap().allow();
        assert_eq!(allow("/run"), "POST");
        assert_eq!(allow("/health"), "GET");
        assert_eq!(allow("/workspace/{codeId}"), "GET, DELETE");
    }
}
