//! The embedded job store: one SQLite file (`<DATA_DIR>/jobs.db`, bundled
//! SQLite, no server to install) in WAL mode. A committed transaction is in
//! the WAL before `insert`/`update` return, so a `kill -9` at any moment
//! loses no completed record and leaves no half-written one
//! (`synchronous = NORMAL`: durable across process crashes; a power loss may
//! lose the last transactions, never corrupt the file).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::store::{JobRecord, JobStatus, JobStore, ListFilter, StoreError};
use crate::config::JobRetention;
use crate::sync::lock;

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task_id TEXT,
    lang TEXT NOT NULL,
    code TEXT NOT NULL,
    stdin TEXT,
    timeout_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    output TEXT NOT NULL,
    output_truncated INTEGER NOT NULL,
    exit_code INTEGER,
    error TEXT,
    duration_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_task ON jobs (task_id, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
";

const COLUMNS: &str = "id, task_id, lang, code, stdin, timeout_ms, status, output, \
    output_truncated, exit_code, error, duration_ms, created_at_ms, finished_at_ms";

/// The columns of a listing: no code or stdin, and the output cut to its
/// first `LIST_OUTPUT_CHARS` characters, so a page of large records costs
/// little memory.
const SUMMARY_COLUMNS: &str = "id, task_id, lang, '' AS code, NULL AS stdin, timeout_ms, \
    status, substr(output, 1, 4096), \
    CASE WHEN length(output) > 4096 THEN 1 ELSE output_truncated END, exit_code, error, \
    duration_ms, created_at_ms, finished_at_ms";

/// Records removed at a time when the store is over its byte bound.
const SHRINK_BATCH: i64 = 64;

/// Job records in a SQLite file.
pub(crate) struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Device and inode of the file opened: a file removed or replaced
    /// under the server would take every later write with it.
    file: (u64, u64),
}

fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

impl SqliteStore {
    /// Opens (creating when needed) `<dir>/jobs.db`. The error names the
    /// path.
    pub(crate) fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = dir.join("jobs.db");
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError(format!("{what} {}: {e}", path.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the directory of", &e))?;
        let conn = Connection::open(&path).map_err(|e| fail("cannot open", &e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail("cannot configure", &e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| fail("cannot use WAL mode in", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "{} does not support WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| fail("cannot create the tables of", &e))?;
        let file = file_id(&path).map_err(|e| fail("cannot read the metadata of", &e))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            file,
        })
    }

    /// Fails when the database file is no longer the one opened: what is
    /// written now would be lost at the next start.
    fn check_file(&self) -> Result<(), StoreError> {
        match file_id(&self.path) {
            Ok(id) if id == self.file => Ok(()),
            Ok(_) => Err(StoreError(format!(
                "{} was replaced while the server ran; restart the server to use it",
                self.path.display()
            ))),
            Err(e) => Err(StoreError(format!(
                "{} was removed while the server ran ({e}); restart the server to create it anew",
                self.path.display()
            ))),
        }
    }

    fn failed(&self, what: &str, e: rusqlite::Error) -> StoreError {
        StoreError(format!("{what} in {}: {e}", self.path.display()))
    }
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let status: String = r.get(6)?;
    Ok(JobRecord {
        id: r.get(0)?,
        task_id: r.get(1)?,
        lang: r.get(2)?,
        code: r.get(3)?,
        stdin: r.get(4)?,
        timeout_ms: r.get::<_, i64>(5)? as u64,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Error),
        output: r.get(7)?,
        output_truncated: r.get::<_, i64>(8)? != 0,
        exit_code: r.get(9)?,
        error: r.get(10)?,
        duration_ms: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
        created_at_ms: r.get::<_, i64>(12)? as u64,
        finished_at_ms: r.get::<_, Option<i64>>(13)?.map(|v| v as u64),
        client: None,
    })
}

impl JobStore for SqliteStore {
    fn insert(&self, j: &JobRecord) -> Result<(), StoreError> {
        self.check_file()?;
        lock(&self.conn)
            .execute(
                &format!(
                    "INSERT INTO jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                     ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    j.id,
                    j.task_id,
                    j.lang,
                    j.code,
                    j.stdin,
                    j.timeout_ms as i64,
                    j.status.as_str(),
                    j.output,
                    j.output_truncated as i64,
                    j.exit_code,
                    j.error,
                    j.duration_ms.map(|v| v as i64),
                    j.created_at_ms as i64,
                    j.finished_at_ms.map(|v| v as i64),
                ],
            )
            .map(|_| ())
            .map_err(|e| self.failed("recording a job", e))
    }

    fn update(&self, j: &JobRecord) -> Result<bool, StoreError> {
        self.check_file()?;
        lock(&self.conn)
            .execute(
                "UPDATE jobs SET status = ?2, output = ?3, output_truncated = ?4, exit_code = ?5, \
                 error = ?6, duration_ms = ?7, finished_at_ms = ?8 WHERE id = ?1",
                params![
                    j.id,
                    j.status.as_str(),
                    j.output,
                    j.output_truncated as i64,
                    j.exit_code,
                    j.error,
                    j.duration_ms.map(|v| v as i64),
                    j.finished_at_ms.map(|v| v as i64),
                ],
            )
            .map(|n| n > 0)
            .map_err(|e| self.failed("completing a job record", e))
    }

    fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        lock(&self.conn)
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(|e| self.failed("reading a job", e))
    }

    fn list(&self, f: &ListFilter) -> Result<Vec<JobRecord>, StoreError> {
        let conn = lock(&self.conn);
        let before: Option<i64> = match &f.before {
            None => None,
            Some(id) => {
                let seq = conn
                    .query_row("SELECT seq FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                    .optional()
                    .map_err(|e| self.failed("reading a job", e))?;
                // A cursor whose record is gone: nothing is older than "gone".
                Some(seq.unwrap_or(i64::MIN))
            }
        };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE (?1 IS NULL OR task_id = ?1) \
                 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR seq < ?3) \
                 ORDER BY seq DESC LIMIT ?4"
            ))
            .map_err(|e| self.failed("listing jobs", e))?;
        let rows = stmt
            .query_map(
                params![
                    f.task_id,
                    f.status.map(JobStatus::as_str),
                    before,
                    f.limit as i64
                ],
                from_row,
            )
            .map_err(|e| self.failed("listing jobs", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failed("listing jobs", e))
    }

    fn delete(&self, id: &str) -> Result<bool, StoreError> {
        lock(&self.conn)
            .execute("DELETE FROM jobs WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(|e| self.failed("deleting a job", e))
    }

    fn prune(&self, retention: &JobRetention, now_ms: u64) -> Result<u64, StoreError> {
        let conn = lock(&self.conn);
        let mut removed = 0u64;
        if let Some(age) = retention.max_age {
            let cutoff = now_ms.saturating_sub(age.as_millis() as u64) as i64;
            removed += conn
                .execute(
                    "DELETE FROM jobs WHERE created_at_ms < ?1 \
                     AND status NOT IN ('queued', 'running')",
                    [cutoff],
                )
                .map_err(|e| self.failed("pruning jobs", e))? as u64;
        }
        if let Some(max) = retention.max_records {
            removed += conn
                .execute(
                    "DELETE FROM jobs WHERE status NOT IN ('queued', 'running') AND seq <= \
                     (SELECT seq FROM jobs ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                    [max as i64],
                )
                .map_err(|e| self.failed("pruning jobs", e))? as u64;
        }
        Ok(removed)
    }

    fn recover(&self, now_ms: u64) -> Result<Vec<JobRecord>, StoreError> {
        let conn = lock(&self.conn);
        conn.execute(
            "UPDATE jobs SET status = 'error', error = 'interrupted by a restart', \
             finished_at_ms = ?1 WHERE status = 'running'",
            [now_ms as i64],
        )
        .map_err(|e| self.failed("marking interrupted jobs", e))?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY seq ASC"
            ))
            .map_err(|e| self.failed("finding queued jobs", e))?;
        let rows = stmt
            .query_map([], from_row)
            .map_err(|e| self.failed("finding queued jobs", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failed("finding queued jobs", e))
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.check_file()?;
        // A real read of the records, not a bare `SELECT 1`.
        lock(&self.conn)
            .query_row(
                "SELECT count(*) FROM (SELECT seq FROM jobs LIMIT 1)",
                [],
                |_| Ok(()),
            )
            .map_err(|e| self.failed("reading the job records", e))
    }

    fn bytes(&self) -> Result<u64, StoreError> {
        let conn = lock(&self.conn);
        let pragma = |name: &str| -> Result<i64, StoreError> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(|e| self.failed("measuring the job records", e))
        };
        let used = pragma("page_count")? - pragma("freelist_count")?;
        Ok((used.max(0) as u64) * (pragma("page_size")?.max(0) as u64))
    }

    fn shrink_to(&self, max_bytes: u64) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        while self.bytes()? > max_bytes {
            let n = lock(&self.conn)
                .execute(
                    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs \
                     WHERE status NOT IN ('queued', 'running') ORDER BY seq ASC LIMIT ?1)",
                    [SHRINK_BATCH],
                )
                .map_err(|e| self.failed("pruning jobs", e))? as u64;
            if n == 0 {
                break;
            }
            removed += n;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, task: Option<&str>, status: JobStatus, created: u64) -> JobRecord {
        JobRecord {
            id: id.into(),
            task_id: task.map(String::from),
            lang: "js".into(),
            code: "console.log(1)".into(),
            stdin: None,
            timeout_ms: 1000,
            status,
            output: String::new(),
            output_truncated: false,
            exit_code: None,
            error: None,
            duration_ms: None,
            created_at_ms: created,
            finished_at_ms: None,
            client: None,
        }
    }

    fn temp_store(tag: &str) -> (SqliteStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("isoexec-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (SqliteStore::open(&dir).unwrap(), dir)
    }

    #[test]
    fn records_round_trip_and_list_newest_first_with_a_cursor() {
        let (store, dir) = temp_store("list");
        for (i, task) in ["a", "b", "a", "a"].iter().enumerate() {
            store
                .insert(&record(
                    &format!("j{i}"),
                    Some(task),
                    JobStatus::Done,
                    i as u64,
                ))
                .unwrap();
        }
        let mut done = store.get("j1").unwrap().unwrap();
        assert_eq!(done.task_id.as_deref(), Some("b"));
        done.output = "hi\n".into();
        done.exit_code = Some(3);
        assert!(store.update(&done).unwrap());
        assert_eq!(store.get("j1").unwrap().unwrap(), done);

        let ids = |f: ListFilter| -> Vec<String> {
            store.list(&f).unwrap().into_iter().map(|j| j.id).collect()
        };
        let a = |before: Option<&str>| ListFilter {
            task_id: Some("a".into()),
            limit: 2,
            before: before.map(String::from),
            ..ListFilter::default()
        };
        assert_eq!(ids(a(None)), ["j3", "j2"]);
        assert_eq!(ids(a(Some("j2"))), ["j0"]);
        assert!(store.delete("j0").unwrap());
        assert!(!store.delete("j0").unwrap());
        assert!(
            !store
                .update(&record("j0", None, JobStatus::Done, 0))
                .unwrap()
        );
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn recovery_and_retention() {
        let (store, dir) = temp_store("recover");
        store
            .insert(&record("r", None, JobStatus::Running, 1))
            .unwrap();
        store
            .insert(&record("q", None, JobStatus::Queued, 2))
            .unwrap();
        for i in 0..5 {
            store
                .insert(&record(&format!("d{i}"), None, JobStatus::Done, 10 + i))
                .unwrap();
        }
        let queued = store.recover(100).unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].id, "q");
        let r = store.get("r").unwrap().unwrap();
        assert_eq!(r.status, JobStatus::Error);
        assert_eq!(r.error.as_deref(), Some("interrupted by a restart"));

        // Keep the 3 newest; the queued one is never removed.
        let keep = JobRetention {
            max_records: Some(3),
            max_age: None,
        };
        store.prune(&keep, 100).unwrap();
        let left: Vec<String> = store
            .list(&ListFilter {
                limit: 100,
                ..ListFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(left, ["d4", "d3", "d2", "q"]);
        // Older than 90 ms at t = 100: created before 10.
        let by_age = JobRetention {
            max_records: None,
            max_age: Some(Duration::from_millis(89)),
        };
        store.prune(&by_age, 100).unwrap();
        assert!(store.get("d2").unwrap().is_some());
        store
            .prune(
                &JobRetention {
                    max_records: None,
                    max_age: Some(Duration::from_millis(87)),
                },
                100,
            )
            .unwrap();
        assert!(store.get("d2").unwrap().is_none());
        assert!(store.get("q").unwrap().is_some());
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
