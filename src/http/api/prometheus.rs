//! `GET /metrics`: the Prometheus exposition of [`crate::metrics`].

use std::sync::Arc;

use hyper::header::{self, HeaderValue};

use hyper::Method;

use crate::app::App;
use crate::http::error::{Dialect, Reply};
use crate::http::reply::text;
use crate::http::request::HttpRequest;
use crate::http::route::{Doc, Route};

pub(super) fn routes() -> Vec<Route> {
    vec![Route::new("/metrics", Dialect::FunctionCall).on(
        Method::GET,
        metrics,
        Doc::new(
            "Prometheus metrics: the Prometheus text format, or OpenMetrics when Accept asks for it",
            "server",
        )
        .reply_other("200", "The exposition text"),
    )]
}

/// The content types of the two text formats.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: the Prometheus text format, or OpenMetrics for a client
/// that asks for it (`Accept: application/openmetrics-text`).
async fn metrics(app: Arc<App>, req: HttpRequest) -> Reply {
    let wants_openmetrics = req
        .parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if wants_openmetrics {
        (app.runner.metrics.encode_openmetrics(), OPENMETRICS)
    } else {
        (app.runner.metrics.encode_prometheus(), PROMETHEUS)
    };
    let mut r = text(200, body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(r)
}
