//! `GET /openapi.json` (OpenAPI 3.1), `GET /docs` (Swagger UI) and
//! `GET /redoc` (ReDoc). The document is built from the route table itself
//! (every route and method the router serves, no other) and from the
//! request and reply types of [`super::api_types`]; a route the table has
//! but this file does not describe fails the build's tests. The pages'
//! assets are embedded (`assets/vendor/`, see its MANIFEST): no request
//! leaves them.

use std::sync::Arc;

use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, Object, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Content, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr,
    Required, ResponseBuilder, Schema,
};

use super::api_types::*;
use super::reply::{Reply, with_type};
use super::request::HttpRequest;
use crate::app::App;

/// One route as the router serves it.
pub struct RouteInfo {
    pub pattern: &'static str,
    pub methods: Vec<String>,
    pub auth: bool,
}

/// What one operation is: its summary, tag, request body and replies.
struct Doc {
    summary: &'static str,
    tag: &'static str,
    body: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
    replies: &'static [(&'static str, &'static str, Option<&'static str>)],
}

/// The description of every (pattern, method) the router serves; `None`
/// for one it does not know.
fn describe(pattern: &str, method: &str) -> Option<Doc> {
    let d = |summary, tag, body, replies| Doc {
        summary,
        tag,
        body,
        query: &[],
        replies,
    };
    Some(match (pattern, method) {
        ("/" | "/run", "POST") => d(
            "Call an exported function of a module",
            "function calls",
            Some("RunRequest"),
            &[
                ("200", "The result and the logs", Some("RunReply")),
                (
                    "4XX",
                    "Bad input, timeout, unknown function",
                    Some("CallError"),
                ),
                (
                    "5XX",
                    "User code threw, limits, overload",
                    Some("CallError"),
                ),
            ],
        ),
        ("/", "GET") => d(
            "The playground, for a browser (Accept: text/html)",
            "server",
            None,
            &[
                ("200", "An HTML page", None),
                ("405", "Not a browser: use POST /", Some("CallError")),
            ],
        ),
        ("/playground", "GET") => d(
            "The playground: try every API in a browser",
            "server",
            None,
            &[("200", "An HTML page", None)],
        ),
        ("/playground/{asset}", "GET") => d(
            "The playground's assets",
            "server",
            None,
            &[("200", "The asset", None)],
        ),
        ("/health", "GET") => d(
            "Liveness, uptime, memory and pool occupancy",
            "server",
            None,
            &[("200", "The server answers", Some("HealthReply"))],
        ),
        ("/metrics", "GET") => d(
            "Prometheus metrics: the Prometheus text format, or OpenMetrics when Accept asks for it",
            "server",
            None,
            &[("200", "The exposition text", None)],
        ),
        ("/openapi.json", "GET") => d(
            "This document",
            "server",
            None,
            &[("200", "OpenAPI 3.1", None)],
        ),
        ("/docs", "GET") => d(
            "Swagger UI for this document",
            "server",
            None,
            &[("200", "An HTML page", None)],
        ),
        ("/docs/{asset}", "GET") => d(
            "Swagger UI's assets",
            "server",
            None,
            &[("200", "The asset", None)],
        ),
        ("/redoc", "GET") => d(
            "ReDoc for this document",
            "server",
            None,
            &[("200", "An HTML page", None)],
        ),
        ("/redoc/{asset}", "GET") => d(
            "ReDoc's assets",
            "server",
            None,
            &[("200", "The asset", None)],
        ),
        ("/workspace", "PUT" | "POST") => d(
            "Save code under a codeId",
            "restexec",
            Some("SaveRequest"),
            &[
                ("200", "Saved", Some("RestexecOk")),
                ("4XX", "Validation error", Some("RestexecError")),
            ],
        ),
        ("/workspace", "GET") => d(
            "List saved code",
            "restexec",
            None,
            &[("200", "The files", Some("RestexecOk"))],
        ),
        ("/workspace/{codeId}", "GET") => d(
            "Read saved code",
            "restexec",
            None,
            &[
                ("200", "The code", Some("RestexecOk")),
                ("404", "No such codeId", Some("RestexecError")),
            ],
        ),
        ("/workspace/{codeId}", "DELETE") => d(
            "Delete saved code",
            "restexec",
            None,
            &[
                ("200", "Deleted", Some("RestexecOk")),
                ("404", "No such codeId", Some("RestexecError")),
            ],
        ),
        ("/execute", "POST") => d(
            "Run saved code as a program",
            "restexec",
            Some("ExecuteRequest"),
            &[
                (
                    "200",
                    "Exit code 0: stdout parsed as JSON",
                    Some("RestexecOk"),
                ),
                (
                    "4XX",
                    "Validation, not found, timeout",
                    Some("RestexecError"),
                ),
                (
                    "5XX",
                    "The program failed, or overload",
                    Some("RestexecError"),
                ),
            ],
        ),
        ("/lint", "POST") => d(
            "Lint saved code (deno lint --json shape)",
            "restexec",
            Some("LintRequest"),
            &[
                ("200", "The report", Some("RestexecOk")),
                (
                    "4XX",
                    "Validation, not found, timeout",
                    Some("RestexecError"),
                ),
            ],
        ),
        ("/execute/code", "POST") => Doc {
            summary: "Run a snippet and keep a record of the run",
            tag: "code jobs",
            body: Some("JobSubmit"),
            query: &[(
                "wait",
                "false: answer 202 at once and run in the background",
            )],
            replies: &[
                ("200", "The completed record", Some("JobView")),
                ("202", "Queued (`?wait=false`)", Some("JobQueued")),
                ("4XX", "Bad input", Some("CallError")),
                ("503", "The records cannot be written", Some("CallError")),
            ],
        },
        ("/execute/health", "GET") => d(
            "The job API and its records answer",
            "code jobs",
            None,
            &[
                ("200", "Healthy", Some("StatusOk")),
                ("503", "Records unreachable", Some("CallError")),
            ],
        ),
        ("/execute/jobs", "GET") => Doc {
            summary: "List job records, newest first",
            tag: "code jobs",
            body: None,
            query: &[
                ("task_id", "Only this task's jobs"),
                ("status", "queued, running, done, timeout, killed or error"),
                ("limit", "1 to 1000 (default 50)"),
                ("before", "The next_before of the previous page"),
            ],
            replies: &[
                ("200", "A page of records", Some("JobList")),
                ("400", "Bad filter", Some("CallError")),
            ],
        },
        ("/execute/jobs/{id}", "GET") => d(
            "A job's record, with its code",
            "code jobs",
            None,
            &[
                ("200", "The record", Some("JobView")),
                ("404", "No such job", Some("CallError")),
            ],
        ),
        ("/execute/jobs/{id}", "DELETE") => d(
            "Delete a job's record",
            "code jobs",
            None,
            &[
                ("200", "Deleted", Some("Deleted")),
                ("404", "No such job", Some("CallError")),
            ],
        ),
        ("/api/v1/environments", "GET") => d(
            "The environments sessions can run",
            "sessions",
            None,
            &[("200", "typescript, javascript, node", None)],
        ),
        ("/api/v1/health", "GET") => d(
            "The session API answers",
            "sessions",
            None,
            &[("200", "Healthy", Some("StatusOk"))],
        ),
        ("/api/v1/sessions", "POST") => d(
            "Create a session (script or notebook)",
            "sessions",
            Some("SessionCreate"),
            &[
                ("200", "Ready", Some("SessionCreated")),
                ("400", "Unknown environment or mode", Some("SessionError")),
                ("429", "MAX_SESSIONS are alive", Some("SessionError")),
            ],
        ),
        ("/api/v1/sessions", "GET") => d(
            "List sessions",
            "sessions",
            None,
            &[("200", "The sessions", Some("SessionList"))],
        ),
        ("/api/v1/sessions/{id}", "GET") => d(
            "A session",
            "sessions",
            None,
            &[
                ("200", "The session", Some("SessionInfo")),
                ("404", "No such session", Some("SessionError")),
            ],
        ),
        ("/api/v1/sessions/{id}", "DELETE") => d(
            "End a session",
            "sessions",
            None,
            &[
                ("200", "Stopping or stopped", Some("SessionStopped")),
                ("404", "No such session", Some("SessionError")),
            ],
        ),
        ("/api/v1/sessions/{id}/execute", "POST") => d(
            "Run code in a session (a file, or the next notebook cell)",
            "sessions",
            Some("SessionExecute"),
            &[
                ("200", "The run", Some("SessionRun")),
                ("4XX", "Bad input, no such session", Some("SessionError")),
            ],
        ),
        ("/api/v1/sessions/{id}/interrupt", "POST") => d(
            "Stop the running execute (a notebook keeps its state)",
            "sessions",
            None,
            &[
                (
                    "200",
                    "Whether something was stopped",
                    Some("SessionInterrupted"),
                ),
                ("404", "No such session", Some("SessionError")),
            ],
        ),
        _ => return None,
    })
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json_content(name: Option<&str>) -> Content {
    match name {
        Some(n) => Content::new(Some(schema_ref(n))),
        None => Content::new(None::<RefOr<Schema>>),
    }
}

fn operation(route: &RouteInfo, method: &str, doc: &Doc) -> Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(doc.summary))
        .tag(doc.tag)
        .operation_id(Some(format!(
            "{}{}",
            method.to_ascii_lowercase(),
            route.pattern.replace(['/', '{', '}', '.'], "_")
        )));
    for segment in route.pattern.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let p: Parameter = ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(RefOr::T(Schema::Object(Object::with_type(
                    Type::String,
                )))))
                .build();
            op = op.parameter(p);
        }
    }
    for (name, description) in doc.query {
        let p: Parameter = ParameterBuilder::new()
            .name(*name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(*description))
            .schema(Some(RefOr::T(Schema::Object(Object::with_type(
                Type::String,
            )))))
            .build();
        op = op.parameter(p);
    }
    if let Some(body) = doc.body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(Some(body)))
                .required(Some(Required::True))
                .build(),
        ));
    }
    for (status, description, schema) in doc.replies {
        let mut r = ResponseBuilder::new().description(*description);
        if schema.is_some() {
            r = r.content("application/json", json_content(*schema));
        }
        op = op.response(*status, r.build());
    }
    if route.auth {
        op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    op.build()
}

fn method(name: &str) -> Option<HttpMethod> {
    Some(match name {
        "GET" => HttpMethod::Get,
        "HEAD" => HttpMethod::Head,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        _ => return None,
    })
}

/// The OpenAPI document of `routes`. Errors name a route or method this
/// file does not describe.
pub fn document(routes: &[RouteInfo]) -> Result<OpenApi, String> {
    let mut paths = PathsBuilder::new();
    for route in routes {
        let mut item: Option<PathItem> = None;
        for m in &route.methods {
            let m = m.as_str();
            if m == "HEAD" {
                continue;
            }
            let doc = describe(route.pattern, m)
                .ok_or_else(|| format!("{m} {} is not described", route.pattern))?;
            let http = method(m).ok_or_else(|| format!("no OpenAPI method for {m}"))?;
            let op = operation(route, m, &doc);
            item = Some(match item {
                None => PathItem::new(http, op),
                Some(mut existing) => {
                    existing.merge_operations(PathItem::new(http, op));
                    existing
                }
            });
        }
        if let Some(item) = item {
            paths = paths.path(route.pattern, item);
        }
    }
    let components = ComponentsBuilder::new()
        .schema_from::<RunRequest>()
        .schema_from::<RunReply>()
        .schema_from::<LogLine>()
        .schema_from::<CallError>()
        .schema_from::<SaveRequest>()
        .schema_from::<ExecuteRequest>()
        .schema_from::<LintRequest>()
        .schema_from::<RestexecOk>()
        .schema_from::<RestexecError>()
        .schema_from::<RestexecErrorBody>()
        .schema_from::<JobSubmit>()
        .schema_from::<JobView>()
        .schema_from::<JobQueued>()
        .schema_from::<JobList>()
        .schema_from::<Deleted>()
        .schema_from::<StatusOk>()
        .schema_from::<SessionCreate>()
        .schema_from::<SessionCreated>()
        .schema_from::<SessionInfo>()
        .schema_from::<SessionList>()
        .schema_from::<SessionExecute>()
        .schema_from::<SessionRun>()
        .schema_from::<SessionStopped>()
        .schema_from::<SessionInterrupted>()
        .schema_from::<SessionError>()
        .schema_from::<HealthReply>()
        .schema_from::<MemoryUsage>()
        .schema_from::<PoolFigures>()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The API_KEY, when the server has one"))
                    .build(),
            ),
        )
        .build();
    Ok(OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("isoexec")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Runs TypeScript and JavaScript in pooled V8 isolates: function calls, \
                     restexec's save/lint/execute, code jobs with durable records, and sessions \
                     (script and notebook).",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build())
}

/// `GET /openapi.json`.
pub async fn openapi(app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(with_type(
        200,
        "application/json",
        app.openapi_json().to_string(),
    ))
}

const SWAGGER_UI_BUNDLE: &[u8] = include_bytes!("../../assets/vendor/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &[u8] = include_bytes!("../../assets/vendor/swagger-ui.css");
const REDOC_BUNDLE: &[u8] = include_bytes!("../../assets/vendor/redoc.standalone.js");

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
pub async fn docs(_app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(with_type(200, HTML, DOCS_PAGE))
}

/// `GET /docs/{asset}`.
pub async fn docs_asset(_app: Arc<App>, req: HttpRequest) -> Reply {
    match req.param("asset") {
        "swagger-ui-bundle.js" => Ok(with_type(200, JS, SWAGGER_UI_BUNDLE)),
        "swagger-ui.css" => Ok(with_type(200, CSS, SWAGGER_UI_CSS)),
        "init.js" => Ok(with_type(200, JS, DOCS_INIT)),
        other => Err(super::error::HttpError::new(
            super::error::ErrorKind::NotFound,
            format!("No asset {other}"),
        )),
    }
}

/// `GET /redoc`.
pub async fn redoc(_app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(with_type(200, HTML, REDOC_PAGE))
}

/// `GET /redoc/{asset}`.
pub async fn redoc_asset(_app: Arc<App>, req: HttpRequest) -> Reply {
    match req.param("asset") {
        "redoc.standalone.js" => Ok(with_type(200, JS, REDOC_BUNDLE)),
        other => Err(super::error::HttpError::new(
            super::error::ErrorKind::NotFound,
            format!("No asset {other}"),
        )),
    }
}
