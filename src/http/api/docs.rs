//! `GET /openapi.json` (OpenAPI 3.1), `GET /docs` (Swagger UI) and
//! `GET /redoc` (ReDoc). The pages' assets are embedded (`assets/vendor/`,
//! see its MANIFEST): no request leaves them.

use std::sync::{Arc, OnceLock};

use hyper::Method;

use crate::app::App;
use crate::http::error::{Dialect, ErrorKind, HttpError, Reply};
use crate::http::openapi;
use crate::http::reply::with_type;
use crate::http::request::HttpRequest;
use crate::http::route::{self, Doc, Route};

pub(super) fn routes() -> Vec<Route> {
    let page = |summary| Doc::new(summary, "server").reply_other("200", "An HTML page");
    vec![
        Route::new("/openapi.json", Dialect::FunctionCall).public(
            Method::GET,
            openapi,
            Doc::new("This document", "server").reply_other("200", "OpenAPI 3.1"),
        ),
        Route::new("/docs", Dialect::FunctionCall).public(
            Method::GET,
            docs,
            page("Swagger UI for this document"),
        ),
        Route::new("/docs/{asset}", Dialect::FunctionCall).asset(docs_asset),
        Route::new("/redoc", Dialect::FunctionCall).public(
            Method::GET,
            redoc,
            page("ReDoc for this document"),
        ),
        Route::new("/redoc/{asset}", Dialect::FunctionCall).asset(redoc_asset),
    ]
}

/// The OpenAPI document of every route the APIs declare, as JSON text,
/// built once.
pub(crate) fn document_json() -> Result<&'static str, String> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let document = openapi::document(&route::merged(super::routes()))?;
            serde_json::to_string(&document).map_err(|e| e.to_string())
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// `GET /openapi.json`.
async fn openapi(_app: Arc<App>, _req: HttpRequest) -> Reply {
    let text = document_json().map_err(HttpError::internal)?;
    Ok(with_type(200, "application/json", text))
}

const SWAGGER_UI_BUNDLE: &[u8] = include_bytes!("../../../assets/vendor/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &[u8] = include_bytes!("../../../assets/vendor/swagger-ui.css");
const REDOC_BUNDLE: &[u8] = include_bytes!("../../../assets/vendor/redoc.standalone.js");

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>isoexec API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="/docs/init.js" charset="utf-8"></script>
</body>
</html>
"#;

// validatorUrl off: the default badge would fetch from an outside host.
const DOCS_INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  persistAuthorization: true,
});
"##;

const REDOC_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>isoexec API</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="/openapi.json" hide-download-button="false"></redoc>
<script src="/redoc/redoc.standalone.js" charset="utf-8"></script>
</body>
</html>
"#;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `GET /docs`.
async fn docs(_app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(with_type(200, HTML, DOCS_PAGE))
}

/// `GET /docs/{asset}`.
async fn docs_asset(_app: Arc<App>, req: HttpRequest) -> Reply {
    match req.param("asset") {
        "swagger-ui-bundle.js" => Ok(with_type(200, JS, SWAGGER_UI_BUNDLE)),
        "swagger-ui.css" => Ok(with_type(200, CSS, SWAGGER_UI_CSS)),
        "init.js" => Ok(with_type(200, JS, DOCS_INIT)),
        other => Err(HttpError::new(
            ErrorKind::NotFound,
            format!("No asset {other}"),
        )),
    }
}

/// `GET /redoc`.
async fn redoc(_app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(with_type(200, HTML, REDOC_PAGE))
}

/// `GET /redoc/{asset}`.
async fn redoc_asset(_app: Arc<App>, req: HttpRequest) -> Reply {
    match req.param("asset") {
        "redoc.standalone.js" => Ok(with_type(200, JS, REDOC_BUNDLE)),
        other => Err(HttpError::new(
            ErrorKind::NotFound,
            format!("No asset {other}"),
        )),
    }
}
