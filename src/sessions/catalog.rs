//! The catalog of sessions several replicas share (`DATABASE_URL`): a row
//! per session names the replica that owns it (its isolate, its run lock),
//! that replica's address, and an epoch. A request for a session that
//! reaches another replica is forwarded to the owner; when the owner is
//! gone (its heartbeat older than the lease) the next request adopts the
//! session with a compare-and-set on the epoch, so there are never two
//! owners. A script session's files are stored here as they are written,
//! so an adopted one keeps them; a notebook starts fresh and says so.
//! Every method blocks: call it off the async reactor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Environment, Mode};
use crate::db::{Db, DbError};
use crate::sync::lock;

/// One session as the catalog knows it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) owner_addr: String,
    pub(crate) client: String,
    pub(crate) environment: String,
    pub(crate) mode: String,
    pub(crate) created_at_ms: u64,
    /// Whether the owner's heartbeat is within the lease.
    pub(crate) owner_alive: bool,
}

impl Entry {
    pub(crate) fn environment(&self) -> Option<Environment> {
        Environment::parse(&self.environment)
    }

    pub(crate) fn mode(&self) -> Option<Mode> {
        Mode::parse(&self.mode)
    }
}

/// How long a session's place, once looked up, is used without asking the
/// catalog again (a forward that fails forgets it at once).
const PLACE_KEPT: Duration = Duration::from_secs(2);
/// Places remembered at most.
const PLACES_MAX: usize = 10_000;

/// The shared catalog, seen from one replica.
pub(crate) struct Catalog {
    db: Arc<Db>,
    /// Where other replicas reach this one (`ADVERTISE_URL`).
    addr: String,
    /// Sessions other live replicas hold, as last looked up.
    places: Mutex<HashMap<String, (Entry, Instant)>>,
}

const ENTRY_COLUMNS: &str = "s.id, s.owner, s.owner_addr, s.client, s.environment, s.mode, \
    s.created_at_ms, coalesce(r.heartbeat_at > now() - make_interval(secs => $2), false)";

fn entry(r: &tokio_postgres::Row) -> Entry {
    Entry {
        id: r.get(0),
        owner: r.get(1),
        owner_addr: r.get(2),
        client: r.get(3),
        environment: r.get(4),
        mode: r.get(5),
        created_at_ms: r.get::<_, i64>(6).max(0) as u64,
        owner_alive: r.get(7),
    }
}

impl Catalog {
    pub(crate) fn new(db: Arc<Db>, addr: String) -> Catalog {
        Catalog {
            db,
            addr,
            places: Mutex::new(HashMap::new()),
        }
    }

    /// The session `id` held by another live replica, as looked up less
    /// than two seconds ago.
    pub(crate) fn remembered(&self, id: &str) -> Option<Entry> {
        let places = lock(&self.places);
        let (entry, at) = places.get(id)?;
        (at.elapsed() < PLACE_KEPT).then(|| entry.clone())
    }

    /// Forgets where `id` was (its replica did not answer).
    pub(crate) fn forget(&self, id: &str) {
        lock(&self.places).remove(id);
    }

    fn remember(&self, entry: &Entry) {
        let mut places = lock(&self.places);
        if places.len() >= PLACES_MAX {
            places.retain(|_, (_, at)| at.elapsed() < PLACE_KEPT);
            if places.len() >= PLACES_MAX {
                places.clear();
            }
        }
        places.insert(entry.id.clone(), (entry.clone(), Instant::now()));
    }

    /// This replica's name.
    pub(crate) fn me(&self) -> &str {
        &self.db.replica
    }

    /// Whether this replica still holds its lease (see `Db::holds_lease`).
    pub(crate) fn holds_lease(&self) -> bool {
        self.db.holds_lease()
    }

    /// How many times this replica's lease ran out and came back: a session
    /// held here since before the last of them is checked before it runs.
    pub(crate) fn lapses(&self) -> u64 {
        self.db.lapses()
    }

    /// Which of `ids` (sessions this replica holds) another replica has
    /// adopted meanwhile, or that were removed: they end here.
    pub(crate) fn lost(&self, ids: Vec<String>) -> Result<Vec<String>, DbError> {
        let me = self.db.replica.clone();
        self.db.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT id FROM unnest($1::text[]) AS mine(id) WHERE NOT EXISTS \
                     (SELECT 1 FROM sessions s WHERE s.id = mine.id AND s.owner = $2)",
                    &[&ids, &me],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// The secret forwarded requests carry.
    pub(crate) fn secret(&self) -> &str {
        &self.db.secret
    }

    fn lease_secs(&self) -> f64 {
        self.db.lease.as_secs_f64()
    }

    /// Records a new session owned by this replica.
    pub(crate) fn insert(
        &self,
        id: &str,
        client: &str,
        environment: Environment,
        mode: Mode,
        created_at_ms: u64,
    ) -> Result<(), DbError> {
        let (id, client) = (id.to_string(), client.to_string());
        let (me, addr) = (self.db.replica.clone(), self.addr.clone());
        let (env, mode) = (environment.as_str(), mode.as_str());
        self.db.run(move |c| async move {
            c.execute(
                "INSERT INTO sessions (id, owner, owner_addr, client, environment, mode, \
                 created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &id,
                    &me,
                    &addr,
                    &client,
                    &env,
                    &mode,
                    &(created_at_ms as i64),
                ],
            )
            .await?;
            Ok(())
        })
    }

    /// The session `id`, if the catalog has it.
    pub(crate) fn lookup(&self, id: &str) -> Result<Option<Entry>, DbError> {
        let id = id.to_string();
        let lease = self.lease_secs();
        let found = self.db.run(move |c| async move {
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {ENTRY_COLUMNS} FROM sessions s \
                         LEFT JOIN replicas r ON r.id = s.owner WHERE s.id = $1"
                    ),
                    &[&id, &lease],
                )
                .await?;
            Ok(row.as_ref().map(entry))
        })?;
        if let Some(e) = &found
            && e.owner_alive
            && e.owner != self.db.replica
        {
            self.remember(e);
        }
        Ok(found)
    }

    /// The sessions of `client`, oldest first.
    pub(crate) fn of_client(&self, client: &str) -> Result<Vec<Entry>, DbError> {
        let client = client.to_string();
        let lease = self.lease_secs();
        self.db.run(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {ENTRY_COLUMNS} FROM sessions s \
                         LEFT JOIN replicas r ON r.id = s.owner WHERE s.client = $1 \
                         ORDER BY s.created_at_ms"
                    ),
                    &[&client, &lease],
                )
                .await?;
            Ok(rows.iter().map(entry).collect())
        })
    }

    /// Makes this replica the owner of `entry`'s session, if it is still
    /// owned by the replica `entry` names (compare-and-set); returns the
    /// stored files of the session when it won.
    pub(crate) fn adopt(&self, entry: &Entry) -> Result<Option<Vec<(String, String)>>, DbError> {
        let (id, from) = (entry.id.clone(), entry.owner.clone());
        let (me, addr) = (self.db.replica.clone(), self.addr.clone());
        self.db.run(move |c| async move {
            let won = c
                .execute(
                    "UPDATE sessions SET owner = $3, owner_addr = $4, epoch = epoch + 1 \
                     WHERE id = $1 AND owner = $2",
                    &[&id, &from, &me, &addr],
                )
                .await?;
            if won == 0 {
                return Ok(None);
            }
            let rows = c
                .query(
                    "SELECT name, content FROM session_files WHERE session_id = $1",
                    &[&id],
                )
                .await?;
            Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
        })
    }

    /// Stores a file a script-mode run wrote, so an adopted session has it.
    pub(crate) fn store_file(&self, id: &str, name: &str, content: &str) -> Result<(), DbError> {
        let (id, name, content) = (id.to_string(), name.to_string(), content.to_string());
        self.db.run(move |c| async move {
            c.execute(
                "INSERT INTO session_files (session_id, name, content) VALUES ($1, $2, $3) \
                 ON CONFLICT (session_id, name) DO UPDATE SET content = $3",
                &[&id, &name, &content],
            )
            .await?;
            Ok(())
        })
    }

    /// Removes a session this replica ended (deleted or expired).
    pub(crate) fn remove(&self, id: &str) -> Result<(), DbError> {
        let (id, me) = (id.to_string(), self.db.replica.clone());
        self.db.run(move |c| async move {
            c.execute(
                "DELETE FROM sessions WHERE id = $1 AND owner = $2",
                &[&id, &me],
            )
            .await?;
            Ok(())
        })
    }
}
