//! What a handler file declares: its routes, each method's handler, and
//! each method's description for the OpenAPI document. The router serves
//! exactly what is declared here and the document describes exactly that,
//! so the two cannot drift apart.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::Method;
use utoipa::ToSchema;
use utoipa::openapi::schema::ComponentsBuilder;

use super::error::{Dialect, Reply};
use super::request::HttpRequest;
use crate::app::App;

type BoxReply = Pin<Box<dyn Future<Output = Reply> + Send>>;
/// A handler: the app and the request in, a reply out.
pub(crate) type Handler = Box<dyn Fn(Arc<App>, HttpRequest) -> BoxReply + Send + Sync>;

/// One path pattern and what it serves.
pub(crate) struct Route {
    pub pattern: &'static str,
    /// The API whose error shape its replies use.
    pub dialect: Dialect,
    pub endpoints: Vec<Endpoint>,
}

/// One method of a route.
pub(crate) struct Endpoint {
    pub method: Method,
    pub handler: Handler,
    /// Whether it needs a key.
    pub auth: bool,
    /// Whether its handler checks the key itself (the operator's or a
    /// tenant's) instead of the router checking the API key.
    pub own_auth: bool,
    /// Whether `Allow` names it (aliases such as `POST /workspace` and
    /// `HEAD` are served but not advertised).
    pub advertised: bool,
    /// Its description; `None` leaves it out of the document (`HEAD`).
    pub doc: Option<Doc>,
}

/// What one operation is, for the OpenAPI document.
pub(crate) struct Doc {
    pub summary: &'static str,
    pub tag: &'static str,
    pub body: Option<Schema>,
    /// Query parameters: name and description.
    pub query: &'static [(&'static str, &'static str)],
    /// Status (or range such as `4XX`), description, and body type.
    pub replies: Vec<(&'static str, &'static str, Option<Schema>)>,
}

/// A request or reply type, as the document refers to it and adds it.
#[derive(Clone, Copy)]
pub(crate) struct Schema {
    pub name: fn() -> Cow<'static, str>,
    /// Adds the type's schema, and those of the types it refers to.
    pub add: fn(ComponentsBuilder) -> ComponentsBuilder,
}

/// The schema of `T`.
pub(crate) fn schema<T: ToSchema + 'static>() -> Schema {
    Schema {
        name: T::name,
        add: |components| {
            let mut nested = Vec::new();
            T::schemas(&mut nested);
            components.schema_from::<T>().schemas_from_iter(nested)
        },
    }
}

impl Doc {
    pub(crate) fn new(summary: &'static str, tag: &'static str) -> Doc {
        Doc {
            summary,
            tag,
            body: None,
            query: &[],
            replies: Vec::new(),
        }
    }

    /// The request body is a `T`, as JSON.
    pub(crate) fn body<T: ToSchema + 'static>(mut self) -> Doc {
        self.body = Some(schema::<T>());
        self
    }

    pub(crate) fn query(mut self, params: &'static [(&'static str, &'static str)]) -> Doc {
        self.query = params;
        self
    }

    /// A reply whose body is a `T`, as JSON.
    pub(crate) fn reply<T: ToSchema + 'static>(
        mut self,
        status: &'static str,
        description: &'static str,
    ) -> Doc {
        self.replies
            .push((status, description, Some(schema::<T>())));
        self
    }

    /// A reply whose body is not JSON (a page, an asset, metrics text).
    pub(crate) fn reply_other(mut self, status: &'static str, description: &'static str) -> Doc {
        self.replies.push((status, description, None));
        self
    }
}

/// `routes` with each pattern once: a pattern two APIs declare (`/` is
/// both the call and the playground) becomes one route with the methods of
/// both. Panics if the two disagree on the dialect.
pub(crate) fn merged(routes: Vec<Route>) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for route in routes {
        match out.iter_mut().find(|r| r.pattern == route.pattern) {
            Some(same) => {
                assert!(
                    same.dialect == route.dialect,
                    "route {} is declared in two dialects",
                    route.pattern
                );
                same.endpoints.extend(route.endpoints);
            }
            None => out.push(route),
        }
    }
    out
}

/// Boxes an async handler function.
fn boxed<F, Fut>(f: F) -> Handler
where
    F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    Box::new(move |app, req| Box::pin(f(app, req)))
}

impl Route {
    /// A route whose methods need the API key unless marked public.
    pub(crate) fn new(pattern: &'static str, dialect: Dialect) -> Route {
        Route {
            pattern,
            dialect,
            endpoints: Vec::new(),
        }
    }

    fn push<F, Fut>(
        mut self,
        method: Method,
        f: F,
        auth: bool,
        advertised: bool,
        doc: Option<Doc>,
    ) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.endpoints.push(Endpoint {
            method,
            handler: boxed(f),
            auth,
            own_auth: false,
            advertised,
            doc,
        });
        self
    }

    /// [`Route::tenant`], served but left out of the document.
    pub(crate) fn tenant_undescribed<F, Fut>(mut self, method: Method, f: F) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self = self.push(method, f, true, true, None);
        if let Some(last) = self.endpoints.last_mut() {
            last.own_auth = true;
        }
        self
    }

    /// `method`, behind the operator's key or a tenant's: the handler
    /// finds out which (see `crate::tenants`).
    pub(crate) fn tenant<F, Fut>(mut self, method: Method, f: F, doc: Doc) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self = self.push(method, f, true, true, Some(doc));
        if let Some(last) = self.endpoints.last_mut() {
            last.own_auth = true;
        }
        self
    }

    /// `method`, behind the API key.
    pub(crate) fn on<F, Fut>(self, method: Method, f: F, doc: Doc) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.push(method, f, true, true, Some(doc))
    }

    /// `method`, open to everyone (health, pages, the document).
    pub(crate) fn public<F, Fut>(self, method: Method, f: F, doc: Doc) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.push(method, f, false, true, Some(doc))
    }

    /// `method` served as an alias: described, but not named in `Allow`.
    pub(crate) fn alias<F, Fut>(self, method: Method, f: F, doc: Doc) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.push(method, f, true, false, Some(doc))
    }

    /// `GET` of a page's files (scripts, styles): public, and left out of
    /// the API's description, which they are no part of.
    pub(crate) fn asset<F, Fut>(self, f: F) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.push(Method::GET, f, false, true, None)
    }

    /// `HEAD`, answered as the `GET` it mirrors, public and undescribed.
    pub(crate) fn head<F, Fut>(self, f: F) -> Route
    where
        F: Fn(Arc<App>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.push(Method::HEAD, f, false, false, None)
    }

    /// The `Allow` header for a method this route does not serve.
    pub(crate) fn allow(&self) -> String {
        self.endpoints
            .iter()
            .filter(|e| e.advertised)
            .map(|e| e.method.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Field names of a request type, from its schema: the handlers refuse any
/// other.
pub(crate) fn fields_of<T: ToSchema>() -> Vec<String> {
    let schema = T::schema();
    match schema {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(o)) => {
            o.properties.keys().cloned().collect()
        }
        _ => Vec::new(),
    }
}
