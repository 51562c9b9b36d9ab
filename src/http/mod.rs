//! The HTTP server. Infrastructure (accepting and serving connections,
//! routing, reading requests, writing replies and errors) lives here; each
//! API lives in one file under [`api`], with its routes, handlers,
//! descriptions and body types.

pub(crate) mod api;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod forward;
pub(crate) mod members;
pub(crate) mod openapi;
pub(crate) mod reply;
pub(crate) mod request;
pub(crate) mod route;
pub(crate) mod router;
pub(crate) mod serve;
pub(crate) mod threads;
