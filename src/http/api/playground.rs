//! `GET /playground` (and `GET /` from a browser): a page to try the
//! server — an editor, function calls, lint, save and execute, a notebook.
//! Its assets are embedded (the CodeMirror bundle is built from npm by
//! `scripts/build-playground.sh`); the page talks only to this server.

use std::sync::Arc;

use hyper::header;

use hyper::Method;

use crate::app::App;
use crate::http::error::{Dialect, ErrorKind, HttpError, Reply};
use crate::http::reply::with_type;
use crate::http::request::HttpRequest;
use crate::http::route::{Doc, Route};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new("/", Dialect::FunctionCall).public(
            Method::GET,
            root,
            Doc::new(
                "The playground, for a browser (Accept: text/html)",
                "server",
            )
            .reply_other("200", "An HTML page")
            .reply_other("405", "Not a browser: use POST /"),
        ),
        Route::new("/playground", Dialect::FunctionCall).public(
            Method::GET,
            page,
            Doc::new("The playground: try every API in a browser", "server")
                .reply_other("200", "An HTML page"),
        ),
        Route::new("/playground/{asset}", Dialect::FunctionCall).asset(asset),
        // Browsers ask for it on every page: an icon, not a 404 per load.
        Route::new("/favicon.ico", Dialect::FunctionCall).public(
            Method::GET,
            favicon,
            Doc::new("The site's icon", "server").reply_other("200", "An SVG icon"),
        ),
    ]
}

/// The icon: an SVG (browsers take one at `/favicon.ico` by its type).
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f2937"/><path d="M9 10l7 6-7 6" fill="none" stroke="#34d399" stroke-width="3" stroke-linecap="round" stroke-linejoin="round"/><path d="M18 22h6" stroke="#e5e7eb" stroke-width="3" stroke-linecap="round"/></svg>"##;

/// `GET /favicon.ico`.
async fn favicon(_app: Arc<App>, _req: HttpRequest) -> Reply {
    let mut reply = with_type(200, "image/svg+xml", ICON);
    reply.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("public, max-age=86400"),
    );
    Ok(reply)
}

const PAGE: &str = include_str!("../../../assets/playground/index.html");
const STYLE: &str = include_str!("../../../assets/playground/style.css");
const APP: &str = include_str!("../../../assets/playground/app.js");
const EDITOR: &[u8] = include_bytes!("../../../assets/playground/playground.js");

/// The examples menu: the `examples/` scripts, with the call each shows.
const EXAMPLES: [(&str, &str, &str, &str); 3] = [
    (
        "hello.ts",
        include_str!("../../../examples/hello.ts"),
        "hello",
        r#"{"name": "Ada"}"#,
    ),
    (
        "async.ts",
        include_str!("../../../examples/async.ts"),
        "slowSum",
        r#"{"values": [1, 2, 3], "delayMs": 50}"#,
    ),
    (
        "image.ts",
        include_str!("../../../examples/image.ts"),
        "chart",
        r#"{"values": [3, 7, 4, 9, 6]}"#,
    ),
];

fn examples_js() -> String {
    let map: serde_json::Map<String, serde_json::Value> = EXAMPLES
        .iter()
        .map(|(name, script, fn_name, payload)| {
            (
                name.to_string(),
                serde_json::json!({"script": script, "fn": fn_name, "payload": payload}),
            )
        })
        .collect();
    format!(
        "window.ISOEXEC_EXAMPLES = {};\n",
        serde_json::Value::Object(map)
    )
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// `GET /playground`.
async fn page(_app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(with_type(200, HTML, PAGE))
}

/// `GET /playground/{asset}`.
async fn asset(_app: Arc<App>, req: HttpRequest) -> Reply {
    Ok(match req.param("asset") {
        "style.css" => with_type(200, "text/css; charset=utf-8", STYLE),
        "app.js" => with_type(200, JS, APP),
        "editor.js" => with_type(200, JS, EDITOR),
        "examples.js" => with_type(200, JS, examples_js()),
        other => {
            return Err(HttpError::new(
                ErrorKind::NotFound,
                format!("No asset {other}"),
            ));
        }
    })
}

/// `GET /`: the playground for a browser; API clients use `POST /`.
async fn root(app: Arc<App>, req: HttpRequest) -> Reply {
    let browser = req
        .parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if browser {
        page(app, req).await
    } else {
        Err(HttpError::method_not_allowed("POST"))
    }
}
