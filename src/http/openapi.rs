//! The OpenAPI 3.1 document, built from the route table itself: every
//! route and method the router serves, described where its handler is
//! declared (see [`super::route`]), and every request and reply type those
//! descriptions name.

use std::collections::BTreeMap;

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

use super::route::{self, Doc, Endpoint, Route};

fn json_content(schema: Option<route::Schema>) -> Content {
    match schema {
        Some(s) => Content::new(Some(RefOr::Ref(Ref::from_schema_name((s.name)())))),
        None => Content::new(None::<RefOr<Schema>>),
    }
}

fn operation(route: &Route, endpoint: &Endpoint, doc: &Doc) -> Operation {
    let method = endpoint.method.as_str();
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
    for (status, description, schema) in &doc.replies {
        let mut r = ResponseBuilder::new().description(*description);
        if schema.is_some() {
            r = r.content("application/json", json_content(*schema));
        }
        op = op.response(*status, r.build());
    }
    if endpoint.auth {
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
        "PATCH" => HttpMethod::Patch,
        "OPTIONS" => HttpMethod::Options,
        _ => return None,
    })
}

/// The OpenAPI document of `routes`: each described method, and the
/// schema of every type a description names.
pub(crate) fn document(routes: &[Route]) -> Result<OpenApi, String> {
    let mut paths = PathsBuilder::new();
    let mut schemas = BTreeMap::new();
    for route in routes {
        let mut item: Option<PathItem> = None;
        for endpoint in &route.endpoints {
            let Some(doc) = &endpoint.doc else { continue };
            let m = endpoint.method.as_str();
            let http = method(m).ok_or_else(|| format!("no OpenAPI method for {m}"))?;
            let named = doc
                .body
                .iter()
                .chain(doc.replies.iter().filter_map(|r| r.2.as_ref()));
            for schema in named {
                schemas.insert((schema.name)(), schema.add);
            }
            let op = operation(route, endpoint, doc);
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
    let components = schemas
        .into_values()
        .fold(ComponentsBuilder::new(), |c, add| add(c))
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
