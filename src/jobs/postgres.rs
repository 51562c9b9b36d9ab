//! The shared job store: records and the background queue in PostgreSQL
//! (`DATABASE_URL`), for several replicas.
//!
//! A `wait=true` job is recorded `running`, claimed by the replica that
//! received it; a `wait=false` one is recorded `queued`, and any replica
//! with room claims it (`FOR UPDATE SKIP LOCKED`: no two take one row),
//! woken by `NOTIFY` with a slow poll behind it. A replica holds a lease on
//! each job it runs and renews it every heartbeat; a job whose lease ran out
//! (its replica died) becomes `error` "interrupted: replica lost" — the
//! same rule as a restart, never a second run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::Row;

use super::store::{JobRecord, JobStatus, JobStore, ListFilter, SharedQueue, StoreError};
use crate::config::JobRetention;
use crate::db::{Client, Db, DbError, JOBS_CHANNEL};
use crate::sync::lock;

const COLUMNS: &str = "id, task_id, lang, code, stdin, timeout_ms, status, output, \
    output_truncated, exit_code, error, duration_ms, created_at_ms, finished_at_ms, client";

/// A listing's columns: no code or stdin, the output cut to 4096 characters.
const SUMMARY_COLUMNS: &str = "id, task_id, lang, '' AS code, NULL::text AS stdin, timeout_ms, \
    status, left(output, 4096), (length(output) > 4096 OR output_truncated), exit_code, error, \
    duration_ms, created_at_ms, finished_at_ms, client";

/// What a record takes, counted the same way for `bytes` and `shrink_to`.
const RECORD_BYTES: &str = "octet_length(code) + octet_length(output) \
    + coalesce(octet_length(stdin), 0) + coalesce(octet_length(error), 0) + 256";

/// Records removed at a time when the store is over its byte bound.
const SHRINK_BATCH: i64 = 64;

/// How long a measure of the records' bytes is used before it is taken
/// again (a measure reads every row; records this replica adds meanwhile
/// are counted in, other replicas' show at the next measure).
const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// Job records and the queue in PostgreSQL.
pub(crate) struct PgStore {
    db: Arc<Db>,
    /// How long a claim lasts without a heartbeat.
    lease: Duration,
    /// The last measure of the records' bytes, and when it was taken.
    measured: Mutex<Option<(Instant, u64)>>,
}

impl PgStore {
    pub(crate) fn new(db: Arc<Db>, lease: Duration) -> PgStore {
        PgStore {
            db,
            lease,
            measured: Mutex::new(None),
        }
    }

    fn run<T, F, Fut>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, DbError>>,
    {
        self.db
            .run(f)
            .map_err(|e| StoreError(format!("{what}: {e}")))
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }
}

fn from_row(r: &Row) -> JobRecord {
    let status: String = r.get(6);
    JobRecord {
        id: r.get(0),
        task_id: r.get(1),
        lang: r.get(2),
        code: r.get(3),
        stdin: r.get(4),
        timeout_ms: r.get::<_, i64>(5) as u64,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Error),
        output: r.get(7),
        output_truncated: r.get(8),
        exit_code: r.get(9),
        error: r.get(10),
        duration_ms: r.get::<_, Option<i64>>(11).map(|v| v as u64),
        created_at_ms: r.get::<_, i64>(12) as u64,
        finished_at_ms: r.get::<_, Option<i64>>(13).map(|v| v as u64),
        client: r.get(14),
    }
}

impl JobStore for PgStore {
    fn insert(&self, j: &JobRecord) -> Result<(), StoreError> {
        if let Some((_, bytes)) = lock(&self.measured).as_mut() {
            *bytes +=
                (j.code.len() + j.output.len() + j.stdin.as_ref().map_or(0, String::len) + 256)
                    as u64;
        }
        let j = j.clone();
        let me = self.db.replica.clone();
        let lease = self.lease_secs();
        self.run("recording a job", move |c| async move {
            let running = j.status == JobStatus::Running;
            c.execute(
                &format!(
                    "INSERT INTO jobs ({COLUMNS}, claimed_by, lease_until) VALUES ($1, $2, $3, \
                     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     CASE WHEN $16::text IS NULL THEN NULL \
                     ELSE now() + make_interval(secs => $17) END)"
                ),
                &[
                    &j.id,
                    &j.task_id,
                    &j.lang,
                    &j.code,
                    &j.stdin,
                    &(j.timeout_ms as i64),
                    &j.status.as_str(),
                    &j.output,
                    &j.output_truncated,
                    &j.exit_code,
                    &j.error,
                    &j.duration_ms.map(|v| v as i64),
                    &(j.created_at_ms as i64),
                    &j.finished_at_ms.map(|v| v as i64),
                    &j.client,
                    &running.then_some(me),
                    &lease,
                ],
            )
            .await?;
            if j.status == JobStatus::Queued {
                c.batch_execute(&format!("NOTIFY {JOBS_CHANNEL}")).await?;
            }
            Ok(())
        })
    }

    fn update(&self, j: &JobRecord) -> Result<bool, StoreError> {
        let j = j.clone();
        self.run("completing a job record", move |c| async move {
            // Back to `queued` (a replica that stops before it starts a
            // claimed job) releases the claim.
            let n = c
                .execute(
                    "UPDATE jobs SET status = $2, output = $3, output_truncated = $4, \
                     exit_code = $5, error = $6, duration_ms = $7, finished_at_ms = $8, \
                     claimed_by = CASE WHEN $2 = 'queued' THEN NULL ELSE claimed_by END, \
                     lease_until = CASE WHEN $2 = 'queued' THEN NULL ELSE lease_until END \
                     WHERE id = $1",
                    &[
                        &j.id,
                        &j.status.as_str(),
                        &j.output,
                        &j.output_truncated,
                        &j.exit_code,
                        &j.error,
                        &j.duration_ms.map(|v| v as i64),
                        &j.finished_at_ms.map(|v| v as i64),
                    ],
                )
                .await?;
            if j.status == JobStatus::Queued {
                c.batch_execute(&format!("NOTIFY {JOBS_CHANNEL}")).await?;
            }
            Ok(n > 0)
        })
    }

    fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_string();
        self.run("reading a job", move |c| async move {
            let row = c
                .query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"), &[&id])
                .await?;
            Ok(row.as_ref().map(from_row))
        })
    }

    fn list(&self, f: &ListFilter) -> Result<Vec<JobRecord>, StoreError> {
        let f = f.clone();
        self.run("listing jobs", move |c| async move {
            let before: Option<i64> = match &f.before {
                None => None,
                Some(id) => {
                    let row = c
                        .query_opt("SELECT seq FROM jobs WHERE id = $1", &[id])
                        .await?;
                    // A cursor whose record is gone: nothing is older.
                    Some(row.map_or(i64::MIN, |r| r.get(0)))
                }
            };
            let rows = c
                .query(
                    &format!(
                        "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR task_id = $1) \
                         AND ($2::text IS NULL OR status = $2) AND ($3::bigint IS NULL OR seq < $3) \
                         ORDER BY seq DESC LIMIT $4"
                    ),
                    &[
                        &f.task_id,
                        &f.status.map(JobStatus::as_str),
                        &before,
                        &(f.limit as i64),
                    ],
                )
                .await?;
            Ok(rows.iter().map(from_row).collect())
        })
    }

    fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run("deleting a job", move |c| async move {
            Ok(c.execute("DELETE FROM jobs WHERE id = $1", &[&id]).await? > 0)
        })
    }

    fn prune(&self, retention: &JobRetention, now_ms: u64) -> Result<u64, StoreError> {
        let retention = *retention;
        self.run("pruning jobs", move |c| async move {
            let mut removed = 0u64;
            if let Some(age) = retention.max_age {
                let cutoff = now_ms.saturating_sub(age.as_millis() as u64) as i64;
                removed += c
                    .execute(
                        "DELETE FROM jobs WHERE created_at_ms < $1 \
                         AND status NOT IN ('queued', 'running')",
                        &[&cutoff],
                    )
                    .await?;
            }
            if let Some(max) = retention.max_records {
                removed += c
                    .execute(
                        "DELETE FROM jobs WHERE status NOT IN ('queued', 'running') AND seq <= \
                         (SELECT seq FROM jobs ORDER BY seq DESC LIMIT 1 OFFSET $1)",
                        &[&(max as i64)],
                    )
                    .await?;
            }
            Ok(removed)
        })
    }

    /// At start: this replica's own running jobs were interrupted by its
    /// restart. Queued jobs are left to the claimers of every replica.
    fn recover(&self, now_ms: u64) -> Result<Vec<JobRecord>, StoreError> {
        let me = self.db.replica.clone();
        self.run("marking interrupted jobs", move |c| async move {
            c.execute(
                "UPDATE jobs SET status = 'error', error = 'interrupted by a restart', \
                 finished_at_ms = $2 WHERE status = 'running' AND claimed_by = $1",
                &[&me, &(now_ms as i64)],
            )
            .await?;
            Ok(Vec::new())
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.run("reading the job records", |c| async move {
            c.query_opt("SELECT seq FROM jobs LIMIT 1", &[]).await?;
            Ok(())
        })
    }

    fn bytes(&self) -> Result<u64, StoreError> {
        if let Some((at, bytes)) = *lock(&self.measured)
            && at.elapsed() < MEASURE_EVERY
        {
            return Ok(bytes);
        }
        let bytes = self.run("measuring the job records", |c| async move {
            let row = c
                .query_one(
                    &format!("SELECT coalesce(sum({RECORD_BYTES}), 0)::bigint FROM jobs"),
                    &[],
                )
                .await?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })?;
        *lock(&self.measured) = Some((Instant::now(), bytes));
        Ok(bytes)
    }

    fn shrink_to(&self, max_bytes: u64) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        loop {
            // Measured anew each round: the rows removed are gone now.
            *lock(&self.measured) = None;
            if self.bytes()? <= max_bytes {
                break;
            }
            let n = self.run("pruning jobs", |c| async move {
                Ok(c.execute(
                    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs \
                     WHERE status NOT IN ('queued', 'running') ORDER BY seq ASC LIMIT $1)",
                    &[&SHRINK_BATCH],
                )
                .await?)
            })?;
            if n == 0 {
                break;
            }
            removed += n;
        }
        Ok(removed)
    }

    fn shared(&self) -> Option<&dyn SharedQueue> {
        Some(self)
    }
}

impl SharedQueue for PgStore {
    fn claim(&self) -> Result<Option<JobRecord>, StoreError> {
        let me = self.db.replica.clone();
        let lease = self.lease_secs();
        self.run("claiming a job", move |c| async move {
            let row = c
                .query_opt(
                    &format!(
                        "WITH next AS (SELECT id FROM jobs WHERE status = 'queued' \
                         ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) \
                         UPDATE jobs j SET status = 'running', claimed_by = $1, \
                         lease_until = now() + make_interval(secs => $2), \
                         attempts = attempts + 1 \
                         FROM next WHERE j.id = next.id RETURNING {}",
                        COLUMNS
                            .split(", ")
                            .map(|c| format!("j.{c}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    &[&me, &lease],
                )
                .await?;
            Ok(row.as_ref().map(from_row))
        })
    }

    fn heartbeat(&self, now_ms: u64) -> Result<u64, StoreError> {
        let me = self.db.replica.clone();
        let lease = self.lease_secs();
        let lost = self.run("renewing this replica's leases", move |c| async move {
            c.execute(
                "INSERT INTO replicas (id) VALUES ($1) ON CONFLICT (id) \
                 DO UPDATE SET heartbeat_at = now()",
                &[&me],
            )
            .await?;
            c.execute(
                "UPDATE jobs SET lease_until = now() + make_interval(secs => $2) \
                 WHERE status = 'running' AND claimed_by = $1",
                &[&me, &lease],
            )
            .await?;
            let lost = c
                .execute(
                    "UPDATE jobs SET status = 'error', error = 'interrupted: replica lost', \
                     finished_at_ms = $1, duration_ms = NULL \
                     WHERE status = 'running' AND lease_until < now()",
                    &[&(now_ms as i64)],
                )
                .await?;
            Ok(lost)
        })?;
        self.db.mark_alive();
        Ok(lost)
    }

    fn queued(&self, client: Option<&str>) -> Result<(u64, u64), StoreError> {
        let client = client.map(String::from);
        self.run("counting queued jobs", move |c| async move {
            let row = c
                .query_one(
                    "SELECT count(*), count(*) FILTER (WHERE client = $1) FROM jobs \
                     WHERE status = 'queued'",
                    &[&client],
                )
                .await?;
            Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
        })
    }

    fn woken(&self) -> Arc<tokio::sync::Notify> {
        self.db.jobs_queued.clone()
    }
}
