//! Tenants and their functions: the operator's routes (tenants, keys,
//! limits), each tenant's (deploy, versions, rollback, secrets, usage,
//! logs, invoke) and the functions' HTTP routes (`/t/{tenant}/{name}/…`),
//! which call a module's fetch handler with a web-standard `Request`.
//!
//! A tenant's key sees only its own tenant: any other tenant, and anything
//! of it, is a 404 exactly like one that does not exist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::engine::{Entry, Execution, Report};
use crate::http::error::{Dialect, ErrorKind, HttpError, Reply};
use crate::http::reply::{Body, json};
use crate::http::request::{
    HttpRequest, bearer, json_object, millis_field, required_str, str_field,
};
use crate::http::route::{Doc, Route, fields_of};
use crate::tenants::{
    Caller, Deployed, Failed, FunctionSettings, Refused, Scope, TenantLimits, valid_name,
    valid_secret_name,
};

pub(super) fn routes() -> Vec<Route> {
    use bodies::*;
    let d = Dialect::FunctionCall;
    let tag = "tenants";
    let fns = "functions";
    let err = |doc: Doc| {
        doc.reply::<super::run::bodies::CallError>("4XX", "Bad input, unknown tenant or function")
    };
    let mut routes = vec![
        Route::new("/tenants", d)
            .on(
                Method::POST,
                create_tenant,
                err(Doc::new("Create a tenant (operator)", tag)
                    .body::<TenantRequest>()
                    .reply::<TenantReply>("201", "The tenant")),
            )
            .on(
                Method::GET,
                list_tenants,
                Doc::new("List tenants (operator)", tag).reply::<TenantList>("200", "Every tenant"),
            ),
        Route::new("/tenants/{tenant}", d)
            .tenant(
                Method::GET,
                get_tenant,
                err(Doc::new("A tenant and its limits", tag)
                    .reply::<TenantReply>("200", "The tenant")),
            )
            .on(
                Method::PATCH,
                patch_tenant,
                err(Doc::new("Set a tenant's limits (operator)", tag)
                    .body::<LimitsRequest>()
                    .reply::<TenantReply>("200", "The tenant")),
            )
            .on(
                Method::DELETE,
                delete_tenant,
                err(Doc::new("Remove a tenant and all it owns (operator)", tag)
                    .reply_other("204", "Removed")),
            ),
        Route::new("/tenants/{tenant}/keys", d)
            .on(
                Method::POST,
                create_key,
                err(
                    Doc::new("Create a key for a tenant (operator); shown once", tag)
                        .body::<KeyRequest>()
                        .reply::<KeyReply>("201", "The key, with its secret"),
                ),
            )
            .on(
                Method::GET,
                list_keys,
                err(
                    Doc::new("A tenant's keys, without their secrets (operator)", tag)
                        .reply::<KeyList>("200", "The keys"),
                ),
            ),
        Route::new("/tenants/{tenant}/keys/{key}", d).on(
            Method::DELETE,
            revoke_key,
            err(Doc::new("Revoke a key (operator)", tag).reply_other("204", "Revoked")),
        ),
        Route::new("/tenants/{tenant}/secrets", d)
            .tenant(
                Method::PUT,
                put_secrets,
                err(
                    Doc::new("Set secrets every function of the tenant sees", tag)
                        .body::<SecretsRequest>()
                        .reply::<SecretList>("200", "Secret names (never values)"),
                ),
            )
            .tenant(
                Method::GET,
                list_secrets,
                err(Doc::new("The tenant's secret names", tag)
                    .reply::<SecretList>("200", "Secret names (never values)")),
            ),
        Route::new("/tenants/{tenant}/secrets/{secret}", d).tenant(
            Method::DELETE,
            delete_secret,
            err(Doc::new("Remove a tenant secret", tag).reply_other("204", "Removed")),
        ),
        Route::new("/tenants/{tenant}/usage", d).tenant(
            Method::GET,
            usage,
            err(Doc::new("Usage per minute (OpenTelemetry FaaS names)", tag)
                .query(&[
                    ("function", "One function's usage only"),
                    (
                        "minutes",
                        "How many minutes back (default 60, at most 10080)",
                    ),
                ])
                .reply::<UsageReply>("200", "Usage per function and minute")),
        ),
        Route::new("/tenants/{tenant}/functions", d).tenant(
            Method::GET,
            list_functions,
            err(Doc::new("The tenant's functions", fns).reply::<FunctionList>("200", "Functions")),
        ),
        Route::new("/tenants/{tenant}/functions/{name}", d)
            .tenant(
                Method::PUT,
                deploy,
                err(
                    Doc::new("Deploy a new version of a function (checked first)", fns)
                        .body::<DeployRequest>()
                        .reply::<FunctionReply>("201", "A new version, now the head")
                        .reply::<FunctionReply>(
                            "200",
                            "The head already is this code and settings",
                        ),
                ),
            )
            .tenant(
                Method::GET,
                get_function,
                err(Doc::new("A function and its head version", fns)
                    .reply::<FunctionReply>("200", "The function")),
            )
            .tenant(
                Method::DELETE,
                delete_function,
                err(
                    Doc::new("Remove a function, its versions, secrets and logs", fns)
                        .reply_other("204", "Removed"),
                ),
            ),
        Route::new("/tenants/{tenant}/functions/{name}/versions", d).tenant(
            Method::GET,
            list_versions,
            err(Doc::new("A function's versions, newest first", fns)
                .reply::<VersionList>("200", "Versions")),
        ),
        Route::new("/tenants/{tenant}/functions/{name}/versions/{version}", d).tenant(
            Method::GET,
            get_version,
            err(Doc::new("One version, with its code", fns)
                .reply::<VersionReply>("200", "The version")),
        ),
        Route::new("/tenants/{tenant}/functions/{name}/rollback", d).tenant(
            Method::POST,
            rollback,
            err(Doc::new("Make an earlier version the head", fns)
                .body::<RollbackRequest>()
                .reply::<FunctionReply>("200", "The function")),
        ),
        Route::new("/tenants/{tenant}/functions/{name}/invoke", d).tenant(
            Method::POST,
            invoke,
            err(
                Doc::new("Call an exported function of the head version", fns)
                    .body::<InvokeRequest>()
                    .reply::<super::run::bodies::RunReply>("200", "The result and the logs")
                    .reply::<super::run::bodies::CallError>(
                        "429",
                        "Past the concurrency or rate limit",
                    ),
            ),
        ),
        Route::new("/tenants/{tenant}/functions/{name}/secrets", d)
            .tenant(
                Method::PUT,
                put_secrets,
                err(Doc::new("Set secrets of one function", fns)
                    .body::<SecretsRequest>()
                    .reply::<SecretList>("200", "Secret names (never values)")),
            )
            .tenant(
                Method::GET,
                list_secrets,
                err(Doc::new("A function's secret names", fns)
                    .reply::<SecretList>("200", "Secret names (never values)")),
            ),
        Route::new("/tenants/{tenant}/functions/{name}/secrets/{secret}", d).tenant(
            Method::DELETE,
            delete_secret,
            err(Doc::new("Remove a function secret", fns).reply_other("204", "Removed")),
        ),
        Route::new("/tenants/{tenant}/functions/{name}/logs", d).tenant(
            Method::GET,
            logs,
            err(
                Doc::new("Recent invocations of a function, newest first", fns)
                    .query(&[("limit", "How many (default 20, at most 100)")])
                    .reply::<LogList>("200", "Invocations"),
            ),
        ),
    ];
    for pattern in ["/t/{tenant}/{name}", "/t/{tenant}/{name}/{*path}"] {
        let mut route = Route::new(pattern, d);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::HEAD,
        ] {
            let doc = (method == Method::GET || method == Method::POST).then(|| {
                Doc::new("A function's HTTP route: its fetch handler answers", fns)
                    .reply_other("2XX", "What the handler's Response says")
            });
            route = match doc {
                Some(doc) => route.tenant(method, trigger, doc),
                None => route.tenant_undescribed(method, trigger),
            };
        }
        routes.push(route);
    }
    routes
}

impl From<Failed> for HttpError {
    fn from(f: Failed) -> HttpError {
        match f {
            Failed::NotFound(message) => HttpError::new(ErrorKind::NotFound, message),
            Failed::Invalid { field, message } => HttpError::bad_field(&field, message),
            Failed::Quota(message) => HttpError::new(ErrorKind::InsufficientStorage, message),
            Failed::Overloaded(queue_size) => HttpError::overloaded(queue_size),
            Failed::Store(e) => {
                tracing::error!(error = %e, "function registry");
                HttpError::new(
                    ErrorKind::StorageUnavailable,
                    "The function registry is unavailable; try again",
                )
                .retry_in(1)
            }
        }
    }
}

/// What a route needs of its caller.
#[derive(Clone, Copy, PartialEq)]
enum Need {
    /// The tenant's key with this scope (or the operator's).
    Scope(Scope),
    /// Any key of the tenant (or the operator's).
    AnyScope,
}

/// Checks the caller may do what `need` says to `tenant` (`None` for the
/// routes of no one tenant). A tenant key for another tenant gets the 404
/// a missing tenant gets.
async fn authorize(
    app: &App,
    req: &HttpRequest,
    tenant: Option<&str>,
    need: Need,
) -> Result<Caller, HttpError> {
    let given = bearer(&req.parts.headers);
    if let (Some(key), Some(given)) = (&app.config.api_key, given)
        && crate::http::request::constant_time_eq(given.as_bytes(), key.as_bytes())
    {
        return Ok(Caller::Operator);
    }
    let caller = app
        .tenants
        .caller(app.config.api_key.is_some(), given)
        .await?
        .ok_or_else(|| {
            HttpError::new(
                ErrorKind::Unauthorized,
                "Missing or invalid API key (Authorization: Bearer <key>)",
            )
        })?;
    if let Caller::Tenant {
        tenant: own,
        scopes,
    } = &caller
    {
        if let Some(t) = tenant
            && t != own
        {
            return Err(HttpError::new(
                ErrorKind::NotFound,
                format!("No tenant '{t}'"),
            ));
        }
        match need {
            Need::Scope(scope) if !scopes.contains(&scope) => {
                let name = match scope {
                    Scope::Deploy => "deploy",
                    Scope::Invoke => "invoke",
                };
                return Err(HttpError::new(
                    ErrorKind::Forbidden,
                    format!("This key lacks the '{name}' scope"),
                ));
            }
            _ => {}
        }
    }
    Ok(caller)
}

fn name_param<'a>(req: &'a HttpRequest, param: &str) -> Result<&'a str, HttpError> {
    let v = req.param(param);
    if valid_name(v) {
        Ok(v)
    } else {
        // A name that could never exist is as missing as one that does not.
        Err(HttpError::new(
            ErrorKind::NotFound,
            format!("No {param} '{v}'"),
        ))
    }
}

async fn object(
    app: &App,
    req: &mut HttpRequest,
    fields: Vec<String>,
    shape: &'static str,
) -> Result<Map<String, Value>, HttpError> {
    let body = req.body(&app.config).await?;
    json_object(body, app.config.limits.max_json_depth, fields, shape).await
}

fn limits_of(value: Option<&Value>, field: &str) -> Result<TenantLimits, HttpError> {
    match value {
        None | Some(Value::Null) => Ok(TenantLimits::default()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| HttpError::bad_field(field, format!("'{field}': {e}"))),
    }
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn tenant_json(t: &crate::tenants::TenantRecord) -> Value {
    json!({"id": t.id, "limits": t.limits, "createdAt": t.created_at_ms})
}

// The operator's routes.

async fn create_tenant(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let body = object(
        &app,
        &mut req,
        fields_of::<bodies::TenantRequest>(),
        r#"{"id": "acme", "limits": {"timeoutMs": 1000}}"#,
    )
    .await?;
    let id = required_str(&body, "id")?;
    if !valid_name(id) {
        return Err(HttpError::bad_field(
            "id",
            "A tenant id is 1 to 63 of a-z, 0-9, '-', '_', starting with a letter or digit",
        ));
    }
    let limits = limits_of(body.get("limits"), "limits")?;
    limits
        .check(None)
        .map_err(|(f, m)| HttpError::bad_field(&format!("limits.{f}"), m))?;
    match app.tenants.create_tenant(id.to_string(), limits).await? {
        Some(t) => Ok(json(201, &tenant_json(&t))),
        None => Err(HttpError::bad_field("id", format!("Tenant '{id}' exists"))),
    }
}

async fn list_tenants(app: Arc<App>, _req: HttpRequest) -> Reply {
    let tenants = app.tenants.tenants().await?;
    let list: Vec<Value> = tenants.iter().map(tenant_json).collect();
    Ok(json(200, &json!({ "tenants": list })))
}

async fn get_tenant(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    authorize(&app, &req, Some(tenant), Need::AnyScope).await?;
    Ok(json(200, &tenant_json(&app.tenants.tenant(tenant).await?)))
}

async fn patch_tenant(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?.to_string();
    let body = object(
        &app,
        &mut req,
        fields_of::<bodies::LimitsRequest>(),
        r#"{"limits": {"concurrency": 4}}"#,
    )
    .await?;
    let limits = limits_of(body.get("limits"), "limits")?;
    limits
        .check(None)
        .map_err(|(f, m)| HttpError::bad_field(&format!("limits.{f}"), m))?;
    let t = app.tenants.set_limits(&tenant, limits).await?;
    Ok(json(200, &tenant_json(&t)))
}

async fn delete_tenant(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    app.tenants.delete_tenant(tenant).await?;
    Ok(no_content())
}

fn scopes_of(value: Option<&Value>) -> Result<Vec<Scope>, HttpError> {
    let bad = || HttpError::bad_field("scopes", "'scopes' is a list of \"deploy\" and \"invoke\"");
    match value {
        None | Some(Value::Null) => Ok(vec![Scope::Deploy, Scope::Invoke]),
        Some(v) => {
            let scopes: Vec<Scope> = serde_json::from_value(v.clone()).map_err(|_| bad())?;
            if scopes.is_empty() {
                return Err(bad());
            }
            Ok(scopes)
        }
    }
}

fn key_json(k: &crate::tenants::KeyRecord) -> Value {
    json!({"id": k.id, "tenant": k.tenant, "scopes": k.scopes, "label": k.label, "createdAt": k.created_at_ms})
}

async fn create_key(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?.to_string();
    let body = object(
        &app,
        &mut req,
        fields_of::<bodies::KeyRequest>(),
        r#"{"scopes": ["invoke"], "label": "ci"}"#,
    )
    .await?;
    let scopes = scopes_of(body.get("scopes"))?;
    let label = str_field(&body, "label")?.unwrap_or("").to_string();
    if label.len() > 200 {
        return Err(HttpError::bad_field(
            "label",
            "'label' is at most 200 bytes",
        ));
    }
    let (record, key) = app.tenants.create_key(&tenant, scopes, label).await?;
    let mut reply = key_json(&record);
    reply["key"] = Value::String(key);
    Ok(json(201, &reply))
}

async fn list_keys(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let keys = app.tenants.keys(tenant).await?;
    let list: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(json(200, &json!({ "keys": list })))
}

async fn revoke_key(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    app.tenants.revoke_key(tenant, req.param("key")).await?;
    Ok(no_content())
}

// Secrets.

/// Values at most this long; at most [`MAX_SECRETS`] per request.
const MAX_SECRET_BYTES: usize = 64 * 1024;
const MAX_SECRETS: usize = 100;

/// Whose secrets a route names: the function in its path (`{name}`), or
/// "" for the tenant's own.
fn secrets_of(req: &HttpRequest) -> Result<&str, HttpError> {
    if req.param("name").is_empty() {
        Ok("")
    } else {
        name_param(req, "name")
    }
}

async fn put_secrets(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?.to_string();
    let name = secrets_of(&req)?.to_string();
    authorize(&app, &req, Some(&tenant), Need::Scope(Scope::Deploy)).await?;
    let body = req.body(&app.config).await?;
    let values: BTreeMap<String, Value> = serde_json::from_slice(&body).map_err(|_| {
        HttpError::bad_field(
            "body",
            r#"Send an object of names and string values: {"API_TOKEN": "…"}"#,
        )
    })?;
    if values.len() > MAX_SECRETS {
        return Err(HttpError::bad_field(
            "body",
            format!("At most {MAX_SECRETS} secrets at once"),
        ));
    }
    let mut secrets = BTreeMap::new();
    for (k, v) in values {
        if !valid_secret_name(&k) {
            return Err(HttpError::bad_field(
                &k,
                format!(
                    "'{k}' is not a secret name (letters, digits and '_', not starting with a digit)"
                ),
            ));
        }
        let Value::String(v) = v else {
            return Err(HttpError::bad_field(
                &k,
                format!("The value of '{k}' must be a string"),
            ));
        };
        if v.len() > MAX_SECRET_BYTES {
            return Err(HttpError::bad_field(
                &k,
                format!("The value of '{k}' is over {MAX_SECRET_BYTES} bytes"),
            ));
        }
        secrets.insert(k, v);
    }
    let names = app.tenants.put_secrets(&tenant, &name, secrets).await?;
    Ok(json(200, &secret_list(&names)))
}

fn secret_list(names: &[(String, u64)]) -> Value {
    let list: Vec<Value> = names
        .iter()
        .map(|(n, at)| json!({"name": n, "updatedAt": at}))
        .collect();
    json!({ "secrets": list })
}

async fn list_secrets(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let name = secrets_of(&req)?;
    authorize(&app, &req, Some(tenant), Need::Scope(Scope::Deploy)).await?;
    let names = app.tenants.secret_names(tenant, name).await?;
    Ok(json(200, &secret_list(&names)))
}

async fn delete_secret(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let name = secrets_of(&req)?;
    authorize(&app, &req, Some(tenant), Need::Scope(Scope::Deploy)).await?;
    app.tenants
        .delete_secret(tenant, name, req.param("secret"))
        .await?;
    Ok(no_content())
}

// Usage and logs.

async fn usage(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    authorize(&app, &req, Some(tenant), Need::AnyScope).await?;
    let minutes: u64 = match req.query("minutes").as_deref() {
        None => 60,
        Some(m) => m
            .parse()
            .ok()
            .filter(|m| (1..=crate::tenants::USAGE_KEPT_MINUTES).contains(m))
            .ok_or_else(|| {
                HttpError::bad_field("minutes", "'minutes' is a whole number from 1 to 10080")
            })?,
    };
    let function = req.query("function").filter(|f| !f.is_empty());
    let since = (crate::clock::now_ms() / 60_000).saturating_sub(minutes - 1);
    let rows = app
        .tenants
        .usage(tenant, function.as_deref(), since)
        .await?;
    // One entry per function and minute, errors by kind.
    let mut by: BTreeMap<(u64, String), bodies::UsageMinute> = BTreeMap::new();
    for r in rows {
        let m = by
            .entry((r.minute, r.function.clone()))
            .or_insert_with(|| bodies::UsageMinute {
                minute: r.minute * 60_000,
                function: r.function.clone(),
                ..Default::default()
            });
        m.invocations += r.calls;
        m.cpu_usage += r.cpu_us as f64 / 1000.0;
        m.invoke_duration += r.wall_us as f64 / 1000.0;
        m.mem_usage = m.mem_usage.max(r.mem_peak);
        if r.outcome != "ok" {
            m.errors += r.calls;
            if r.outcome == "timeout" || r.outcome == "cpu_limit" {
                m.timeouts += r.calls;
            }
            *m.errors_by_kind.entry(r.outcome).or_default() += r.calls;
        }
    }
    let units = [
        ("faas.cpu_usage", "ms"),
        ("faas.invoke_duration", "ms"),
        ("faas.mem_usage", "bytes (peak)"),
    ];
    Ok(json(
        200,
        &bodies::UsageReply {
            tenant: tenant.to_string(),
            units: units.into_iter().collect(),
            usage: by.into_values().collect(),
        },
    ))
}

async fn logs(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let name = name_param(&req, "name")?;
    authorize(&app, &req, Some(tenant), Need::Scope(Scope::Deploy)).await?;
    let limit: u64 = match req.query("limit").as_deref() {
        None => 20,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=crate::tenants::LOGS_KEPT).contains(l))
            .ok_or_else(|| {
                HttpError::bad_field("limit", "'limit' is a whole number from 1 to 100")
            })?,
    };
    let logs = app.tenants.logs(tenant, name, limit).await?;
    Ok(json(200, &json!({ "invocations": logs })))
}

// Functions.

fn function_json(f: &crate::tenants::FunctionRecord, v: &crate::tenants::VersionRecord) -> Value {
    json!({
        "name": f.name,
        "version": v.version,
        "sha256": v.sha256,
        "exports": v.exports.functions,
        "fetch": v.exports.fetch,
        "isolation": v.settings.isolation().as_str(),
        "limits": v.settings.limits,
        "public": v.settings.public,
        "createdAt": f.created_at_ms,
        "updatedAt": f.updated_at_ms,
    })
}

fn version_json(v: &crate::tenants::VersionRecord) -> Value {
    json!({
        "version": v.version,
        "sha256": v.sha256,
        "exports": v.exports.functions,
        "fetch": v.exports.fetch,
        "isolation": v.settings.isolation().as_str(),
        "limits": v.settings.limits,
        "public": v.settings.public,
        "createdAt": v.created_at_ms,
    })
}

async fn list_functions(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    authorize(&app, &req, Some(tenant), Need::AnyScope).await?;
    let list = app.tenants.functions(tenant).await?;
    let list: Vec<Value> = list
        .iter()
        .map(|f| json!({"name": f.name, "version": f.head, "createdAt": f.created_at_ms, "updatedAt": f.updated_at_ms}))
        .collect();
    Ok(json(200, &json!({ "functions": list })))
}

async fn deploy(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?.to_string();
    let name = req.param("name").to_string();
    authorize(&app, &req, Some(&tenant), Need::Scope(Scope::Deploy)).await?;
    if !valid_name(&name) {
        return Err(HttpError::bad_field(
            "name",
            "A function name is 1 to 63 of a-z, 0-9, '-', '_', starting with a letter or digit",
        ));
    }
    let body = object(
        &app,
        &mut req,
        fields_of::<bodies::DeployRequest>(),
        r#"{"code": "export default { fetch(req) { return new Response('hi') } }"}"#,
    )
    .await?;
    let code = match (str_field(&body, "code")?, str_field(&body, "script")?) {
        (Some(c), _) | (None, Some(c)) => c.to_string(),
        (None, None) => {
            return Err(HttpError::bad_field(
                "code",
                "Missing required field 'code' (the module)",
            ));
        }
    };
    let isolation = match str_field(&body, "isolation")? {
        None => None,
        Some(i @ ("none" | "frozen" | "isolate" | "process")) => Some(i.to_string()),
        Some(other) => {
            return Err(HttpError::bad_field(
                "isolation",
                format!("'{other}' is not a mode: none (warm), frozen, isolate or process"),
            ));
        }
    };
    let public = match body.get("public") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(HttpError::bad_field(
                "public",
                "'public' must be true or false",
            ));
        }
    };
    let settings = FunctionSettings {
        isolation,
        limits: limits_of(body.get("limits"), "limits")?,
        public,
    };
    settings
        .limits
        .check(None)
        .map_err(|(f, m)| HttpError::bad_field(&format!("limits.{f}"), m))?;
    let deployed = app
        .tenants
        .deploy(&app.runner, &app.config, &tenant, &name, code, settings)
        .await?;
    match deployed {
        Ok((version, created)) => {
            let function = app.tenants.deployed(&app.config, &tenant, &name).await?;
            let mut reply = function_json(&function.function, &version);
            reply["created"] = Value::Bool(created);
            Ok(json(if created { 201 } else { 200 }, &reply))
        }
        Err((execution, report)) => {
            // The check failed: the code is refused with what would have
            // failed (a syntax error, a missing import, a top-level throw).
            let e = report
                .outcome
                .err()
                .unwrap_or(crate::engine::ExecError::Internal {
                    message: "the check gave no answer".into(),
                });
            let mut error = HttpError::from_execution(&execution, e);
            let check = error.kind.as_str();
            error.message = format!("The code was not deployed: {}", error.message);
            if error.kind != ErrorKind::SyntaxError && error.kind != ErrorKind::Internal {
                error.kind = ErrorKind::BadRequest;
            }
            Err(error.with("field", "code").with("check", check))
        }
    }
}

async fn get_function(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let name = name_param(&req, "name")?;
    authorize(&app, &req, Some(tenant), Need::AnyScope).await?;
    let d = app.tenants.deployed(&app.config, tenant, name).await?;
    Ok(json(200, &function_json(&d.function, &d.version)))
}

async fn delete_function(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let name = name_param(&req, "name")?;
    authorize(&app, &req, Some(tenant), Need::Scope(Scope::Deploy)).await?;
    app.tenants.delete_function(tenant, name).await?;
    Ok(no_content())
}

async fn list_versions(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let name = name_param(&req, "name")?;
    authorize(&app, &req, Some(tenant), Need::Scope(Scope::Deploy)).await?;
    let (f, versions) = app.tenants.versions(tenant, name).await?;
    let list: Vec<Value> = versions.iter().map(version_json).collect();
    Ok(json(
        200,
        &json!({"name": f.name, "head": f.head, "versions": list}),
    ))
}

async fn get_version(app: Arc<App>, req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?;
    let name = name_param(&req, "name")?;
    authorize(&app, &req, Some(tenant), Need::Scope(Scope::Deploy)).await?;
    let version: u64 = req
        .param("version")
        .parse()
        .map_err(|_| HttpError::new(ErrorKind::NotFound, "No such version"))?;
    let v = app.tenants.version(tenant, name, version).await?;
    let mut reply = version_json(&v);
    reply["code"] = Value::String(v.code);
    Ok(json(200, &reply))
}

async fn rollback(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?.to_string();
    let name = name_param(&req, "name")?.to_string();
    authorize(&app, &req, Some(&tenant), Need::Scope(Scope::Deploy)).await?;
    let body = object(
        &app,
        &mut req,
        fields_of::<bodies::RollbackRequest>(),
        r#"{"version": 1}"#,
    )
    .await?;
    let version = body
        .get("version")
        .and_then(Value::as_u64)
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            HttpError::bad_field("version", "'version' is a version number (1, 2, …)")
        })?;
    app.tenants.rollback(&tenant, &name, version).await?;
    let d = app.tenants.deployed(&app.config, &tenant, &name).await?;
    Ok(json(200, &function_json(&d.function, &d.version)))
}

/// Admits a call, or the 429 that says when to come back.
fn refused(r: Refused) -> HttpError {
    match r {
        Refused::Concurrency { limit } => HttpError::new(
            ErrorKind::TooManyRequests,
            format!("{limit} calls are running; this one was not started"),
        )
        .with("limit", limit)
        .retry_in(1),
        Refused::Rate { retry_after } => HttpError::new(
            ErrorKind::TooManyRequests,
            "Past the calls-per-second limit; this one was not started",
        )
        .with("retryAfterMs", retry_after.as_millis() as u64)
        .retry_in(retry_after.as_secs_f64().ceil().max(1.0) as u32),
    }
}

/// Runs a call of `deployed` if its limits admit it: the report as its
/// caller sees it (secrets taken out), and how long the call took.
async fn run_call(
    app: &App,
    deployed: &Deployed,
    execution: &Arc<Execution>,
) -> Result<(Report, std::time::Duration), HttpError> {
    let admitted = app.tenants.admit(deployed).map_err(refused)?;
    let started = Instant::now();
    let report = app
        .runner
        .execute("functions", execution)
        .await
        .map_err(|_| HttpError::overloaded(app.config.queue_size))?;
    drop(admitted);
    Ok((deployed.redact(report), started.elapsed()))
}

async fn invoke(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?.to_string();
    let name = name_param(&req, "name")?.to_string();
    authorize(&app, &req, Some(&tenant), Need::Scope(Scope::Invoke)).await?;
    let body = req.body(&app.config).await?;
    let fields = fields_of::<bodies::InvokeRequest>();
    let max_depth = app.config.limits.max_json_depth;
    let parsed = json_object(
        body,
        max_depth,
        fields,
        r#"{"fn": "handler", "payload": {}}"#,
    )
    .await?;
    let fn_name = str_field(&parsed, "fn")?.unwrap_or("default").to_string();
    let payload: Arc<str> = parsed
        .get("payload")
        .map_or_else(|| "null".into(), |p| p.to_string().into());
    let deployed = app.tenants.deployed(&app.config, &tenant, &name).await?;
    let mut execution =
        app.tenants
            .execution(&app.config, &deployed, Entry::Function, fn_name, payload);
    if let Some(t) = parsed.get("timeout") {
        // A call may ask for less time than its limit, never more.
        let asked = millis_field(
            Some(t),
            "timeout",
            deployed.limits.timeout,
            deployed.limits.timeout,
            crate::http::request::OverMax::Cap,
        )?;
        execution.timeout = asked;
    }
    let execution = Arc::new(execution);
    let (report, wall) = run_call(&app, &deployed, &execution).await?;
    let status = match &report.outcome {
        Ok(_) => 200,
        Err(e) => ErrorKind::of_execution(e).status(Dialect::FunctionCall),
    };
    record(&app, &deployed, "invoke", status, &report, wall);
    super::run::reply(&execution, report)
}

/// Counts a finished call in the tenant's usage and logs, and in the
/// per-tenant series when they are on.
fn record(
    app: &App,
    deployed: &Deployed,
    via: &str,
    status: u16,
    report: &Report,
    wall: std::time::Duration,
) {
    app.tenants.record(deployed, via, status, report, wall);
    app.runner.metrics.function_call(
        &deployed.tenant.id,
        &deployed.function.name,
        report.outcome_kind(),
        report.cpu,
        wall,
    );
}

/// Headers a handler's Response may not set: the connection's own.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
];

/// A function's HTTP route: the request as a `Request` to its fetch handler.
async fn trigger(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let tenant = name_param(&req, "tenant")?.to_string();
    let name = name_param(&req, "name")?.to_string();
    let deployed = app.tenants.deployed(&app.config, &tenant, &name).await;
    // A public function answers anyone; otherwise an invoke key of its
    // tenant (or the operator's) is needed, and a missing function is a
    // 404 only to those who may see the tenant.
    let public = deployed.as_ref().is_ok_and(|d| d.version.settings.public);
    if !public {
        authorize(&app, &req, Some(&tenant), Need::Scope(Scope::Invoke)).await?;
    }
    let deployed = deployed?;
    if !deployed.version.exports.fetch {
        return Err(HttpError::new(
            ErrorKind::NotFound,
            format!(
                "Function '{name}' has no fetch handler (export default {{ fetch }} or Deno.serve)"
            ),
        ));
    }
    let path = req.param("path").to_string();
    let host = req
        .parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let query = req
        .parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("http://{host}/{path}{query}");
    let method = req.parts.method.as_str().to_string();
    let headers: Vec<(String, String)> = req
        .parts
        .headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION || public)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .chain(std::iter::once((
            "x-forwarded-prefix".to_string(),
            format!("/t/{tenant}/{name}"),
        )))
        .collect();
    let body = req.body(&app.config).await?;
    let mut request = json!({
        "method": method,
        "url": url,
        "headers": headers,
        "env": deployed.secrets,
    });
    if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(text) => request["bodyText"] = Value::String(text.to_string()),
            Err(_) => {
                request["body64"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&body));
            }
        }
    }
    let execution = app.tenants.execution(
        &app.config,
        &deployed,
        Entry::Fetch,
        "fetch".into(),
        request.to_string().into(),
    );
    let execution = Arc::new(execution);
    let (report, wall) = run_call(&app, &deployed, &execution).await?;
    let result = match &report.outcome {
        Ok(json) => response_of(json),
        Err(e) => Err(HttpError::from_execution(&execution, e.clone())),
    };
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status(Dialect::FunctionCall),
    };
    record(&app, &deployed, "http", status, &report, wall);
    result
}

/// The hyper response for the record the serve hook returned.
fn response_of(result: &str) -> Reply {
    let bad = |m: &str| HttpError::internal(format!("the fetch handler's response: {m}"));
    let v: Value = serde_json::from_str(result).map_err(|e| bad(&e.to_string()))?;
    let status = v["status"].as_u64().unwrap_or(200);
    let status = StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
        .map_err(|_| bad("status out of range"))?;
    let body = match &v["body"] {
        Value::String(uri) => {
            let data = uri.split_once(";base64,").map_or("", |(_, d)| d);
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| bad(&e.to_string()))?
        }
        _ => Vec::new(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(headers) = v["headers"].as_array() {
        for pair in headers {
            let (Some(k), Some(val)) = (pair[0].as_str(), pair[1].as_str()) else {
                continue;
            };
            if HOP_BY_HOP.contains(&k) {
                continue;
            }
            if let (Ok(k), Ok(val)) = (HeaderName::try_from(k), HeaderValue::try_from(val)) {
                response.headers_mut().append(k, val);
            }
        }
    }
    Ok(response)
}

/// The request and reply bodies of these routes, for the OpenAPI document.
pub(crate) mod bodies {
    #![allow(dead_code, reason = "the fields exist to be described")]

    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use utoipa::ToSchema;

    pub(crate) use crate::tenants::TenantLimits;

    /// `POST /tenants`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"id": "acme", "limits": {"timeoutMs": 2000, "concurrency": 8, "ratePerSecond": 50, "allowNet": ["api.example.com"]}}))]
    pub(crate) struct TenantRequest {
        /// 1 to 63 of a-z, 0-9, '-', '_'.
        pub id: String,
        pub limits: Option<TenantLimits>,
    }

    /// `PATCH /tenants/{tenant}`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub(crate) struct LimitsRequest {
        pub limits: TenantLimits,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct TenantReply {
        pub id: String,
        pub limits: TenantLimits,
        #[serde(rename = "createdAt")]
        #[schema(rename = "createdAt")]
        pub created_at: u64,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct TenantList {
        pub tenants: Vec<TenantReply>,
    }

    /// `POST /tenants/{tenant}/keys`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"scopes": ["invoke"], "label": "production"}))]
    pub(crate) struct KeyRequest {
        /// `deploy` and/or `invoke` (default both).
        pub scopes: Option<Vec<String>>,
        pub label: Option<String>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct KeyReply {
        pub id: String,
        pub tenant: String,
        pub scopes: Vec<String>,
        pub label: String,
        #[serde(rename = "createdAt")]
        #[schema(rename = "createdAt")]
        pub created_at: u64,
        /// The key itself: shown only in the reply that created it.
        pub key: Option<String>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct KeyList {
        pub keys: Vec<KeyReply>,
    }

    /// Names and string values: `{"API_TOKEN": "…"}`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"API_TOKEN": "s3cr3t"}))]
    pub(crate) struct SecretsRequest {}

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct SecretName {
        pub name: String,
        #[serde(rename = "updatedAt")]
        #[schema(rename = "updatedAt")]
        pub updated_at: u64,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct SecretList {
        pub secrets: Vec<SecretName>,
    }

    /// `PUT /tenants/{tenant}/functions/{name}`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"code": "export default { fetch(req, env) { return Response.json({ hello: new URL(req.url).pathname }) } }\nexport function add(p) { return p.a + p.b }", "isolation": "none", "limits": {"timeoutMs": 1000}}))]
    pub(crate) struct DeployRequest {
        /// The module (TypeScript or JavaScript).
        pub code: Option<String>,
        /// The same as `code`.
        pub script: Option<String>,
        /// `none` (warm, the default), `frozen`, `isolate` or `process`.
        pub isolation: Option<String>,
        /// Lower limits than the tenant's.
        pub limits: Option<TenantLimits>,
        /// Whether its HTTP route answers without a key.
        pub public: Option<bool>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct FunctionReply {
        pub name: String,
        /// The head version.
        pub version: u64,
        pub sha256: String,
        /// Exported functions (for `invoke`).
        pub exports: Vec<String>,
        /// Whether it has a fetch handler (for its HTTP route).
        pub fetch: bool,
        pub isolation: String,
        pub limits: TenantLimits,
        pub public: bool,
        /// On deploy: whether a new version was made.
        pub created: Option<bool>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct FunctionSummary {
        pub name: String,
        pub version: u64,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct FunctionList {
        pub functions: Vec<FunctionSummary>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct VersionReply {
        pub version: u64,
        pub sha256: String,
        pub exports: Vec<String>,
        pub fetch: bool,
        pub isolation: String,
        /// Only when one version is asked for.
        pub code: Option<String>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct VersionList {
        pub name: String,
        pub head: u64,
        pub versions: Vec<VersionReply>,
    }

    /// `POST …/rollback`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"version": 1}))]
    pub(crate) struct RollbackRequest {
        pub version: u64,
    }

    /// `POST …/invoke`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"fn": "add", "payload": {"a": 2, "b": 3}}))]
    pub(crate) struct InvokeRequest {
        /// The exported function (default `default`).
        #[serde(rename = "fn")]
        #[schema(rename = "fn")]
        pub fn_name: Option<String>,
        pub payload: Option<Value>,
        /// Less time than the function's limit, ms.
        pub timeout: Option<f64>,
    }

    /// Usage of one function in one minute, by OpenTelemetry's FaaS names.
    #[derive(Debug, Default, Serialize, ToSchema)]
    pub(crate) struct UsageMinute {
        /// The minute's start, ms since the epoch.
        pub minute: u64,
        pub function: String,
        #[serde(rename = "faas.invocations")]
        #[schema(rename = "faas.invocations")]
        pub invocations: u64,
        #[serde(rename = "faas.errors")]
        #[schema(rename = "faas.errors")]
        pub errors: u64,
        #[serde(rename = "faas.timeouts")]
        #[schema(rename = "faas.timeouts")]
        pub timeouts: u64,
        /// CPU ms.
        #[serde(rename = "faas.cpu_usage")]
        #[schema(rename = "faas.cpu_usage")]
        pub cpu_usage: f64,
        /// Wall ms.
        #[serde(rename = "faas.invoke_duration")]
        #[schema(rename = "faas.invoke_duration")]
        pub invoke_duration: f64,
        /// Peak bytes.
        #[serde(rename = "faas.mem_usage")]
        #[schema(rename = "faas.mem_usage")]
        pub mem_usage: u64,
        #[serde(rename = "errorsByKind")]
        #[schema(rename = "errorsByKind")]
        pub errors_by_kind: std::collections::BTreeMap<String, u64>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct UsageReply {
        pub tenant: String,
        /// The unit of each figure that is not a count.
        pub units: std::collections::BTreeMap<&'static str, &'static str>,
        pub usage: Vec<UsageMinute>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct Invocation {
        pub id: String,
        pub ts: u64,
        pub version: u64,
        /// `invoke` or `http`.
        pub via: String,
        /// `ok` or the error kind.
        pub outcome: String,
        pub status: u64,
        #[serde(rename = "wallMs")]
        #[schema(rename = "wallMs")]
        pub wall_ms: f64,
        #[serde(rename = "cpuMs")]
        #[schema(rename = "cpuMs")]
        pub cpu_ms: f64,
        pub logs: Value,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct LogList {
        pub invocations: Vec<Invocation>,
    }
}
