//! The one integration-test binary: every test starts the real `isoexec`
//! binary on port 0 and talks real HTTP to it.

mod deploy;
mod first_contact;
mod function_calls;
mod functions;
mod holes;
mod hostile;
mod http;
mod isolation;
mod jobs;
mod lanes;
mod layout;
mod limits;
mod migrating;
mod node;
mod observability;
#[path = "../pg.rs"]
mod pg;
mod process;
mod python;
mod readme;
mod replicas;
mod restexec;
mod sessions;
#[path = "../spawn.rs"]
mod spawn;
mod support;
mod tenants;
