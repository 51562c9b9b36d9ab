//! The APIs, one file each: its routes with their handlers and
//! descriptions, and its request and reply types. [`routes`] is the one
//! table the router serves and `/openapi.json` describes; adding a route
//! is a `Route` in its API's file, and adding an API is a file and a line
//! here.

pub(crate) mod docs;
pub(crate) mod functions;
pub(crate) mod health;
pub(crate) mod jobs;
pub(crate) mod playground;
pub(crate) mod prometheus;
pub(crate) mod restexec;
pub(crate) mod run;
pub(crate) mod sessions;

use super::route::Route;

/// Every route of the server, API by API.
pub(crate) fn routes() -> Vec<Route> {
    [
        run::routes(),
        playground::routes(),
        health::routes(),
        restexec::routes(),
        jobs::routes(),
        prometheus::routes(),
        docs::routes(),
        sessions::routes(),
        functions::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
