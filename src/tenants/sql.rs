//! The few statements the tenant registry needs, written once and run on
//! either store: the embedded SQLite file or the shared PostgreSQL. The
//! statements keep to what both speak (`$n` parameters in order, `CAST`,
//! `ON CONFLICT … DO UPDATE`, `text` and `bigint` columns, no NULLs), so
//! each backend is only a way to run them.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::db::Db;
use crate::sync::lock;

/// The registry could not do what was asked; the message says what.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StoreError(pub String);

/// A parameter or a column: the registry stores only integers and text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    Int(i64),
    Text(String),
}

impl Val {
    pub(super) fn int(&self) -> i64 {
        match self {
            Val::Int(n) => *n,
            Val::Text(t) => t.parse().unwrap_or(0),
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            Val::Text(t) => t.clone(),
            Val::Int(n) => n.to_string(),
        }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(s)
    }
}

impl From<i64> for Val {
    fn from(n: i64) -> Val {
        Val::Int(n)
    }
}

impl From<u64> for Val {
    fn from(n: u64) -> Val {
        Val::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// A statement failed because a row with that key exists.
pub(super) const CONFLICT: &str = "conflict";

/// Runs statements. Blocking: call off the async reactor.
pub(super) trait Sql: Send + Sync {
    /// Runs a statement; returns the rows it changed. A unique-key
    /// violation is the error [`CONFLICT`].
    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64, StoreError>;
    /// Runs a query; returns its rows.
    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, StoreError>;
}

/// How long a statement waits for the SQLite file's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The registry in `<DATA_DIR>/functions.db`.
pub(super) struct Sqlite {
    conn: Mutex<rusqlite::Connection>,
}

impl Sqlite {
    pub(super) fn open(dir: &Path) -> Result<Sqlite, StoreError> {
        let path = dir.join("functions.db");
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError(format!("{what} {}: {e}", path.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the directory of", &e))?;
        let conn = rusqlite::Connection::open(&path).map_err(|e| fail("cannot open", &e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail("cannot configure", &e))?;
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| fail("cannot use WAL mode in", &e))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .and_then(|()| conn.execute_batch(crate::db::TENANT_TABLES))
            .map_err(|e| fail("cannot create the tables of", &e))?;
        Ok(Sqlite {
            conn: Mutex::new(conn),
        })
    }
}

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[Val]) -> rusqlite::Result<()> {
    for (i, p) in params.iter().enumerate() {
        // `$n` is a named parameter to SQLite: bind it by its name, so the
        // order the statement names them in does not matter.
        let Some(index) = stmt.parameter_index(&format!("${}", i + 1))? else {
            continue;
        };
        match p {
            Val::Int(n) => stmt.raw_bind_parameter(index, n)?,
            Val::Text(t) => stmt.raw_bind_parameter(index, t.as_str())?,
        }
    }
    Ok(())
}

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return StoreError(CONFLICT.into());
    }
    StoreError(format!("function registry: {e}"))
}

impl Sql for Sqlite {
    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
        bind(&mut stmt, params).map_err(sqlite_error)?;
        stmt.raw_execute().map(|n| n as u64).map_err(sqlite_error)
    }

    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, StoreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
        bind(&mut stmt, params).map_err(sqlite_error)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                let v = match row.get_ref(i).map_err(sqlite_error)? {
                    rusqlite::types::ValueRef::Integer(n) => Val::Int(n),
                    rusqlite::types::ValueRef::Real(f) => Val::Int(f as i64),
                    rusqlite::types::ValueRef::Text(t) => {
                        Val::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(b) => {
                        Val::Text(String::from_utf8_lossy(b).into_owned())
                    }
                    rusqlite::types::ValueRef::Null => Val::Int(0),
                };
                values.push(v);
            }
            out.push(values);
        }
        Ok(out)
    }
}

/// The registry in the shared PostgreSQL (`DATABASE_URL`).
pub(super) struct Postgres {
    db: Arc<Db>,
}

impl Postgres {
    pub(super) fn new(db: Arc<Db>) -> Postgres {
        Postgres { db }
    }
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                Val::Int(n) => Box::new(*n),
                Val::Text(t) => Box::new(t.clone()),
            }
        })
        .collect()
}

fn pg_error(e: crate::db::DbError) -> StoreError {
    StoreError(format!("function registry: {e}"))
}

fn pg_conflict(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl Sql for Postgres {
    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let sql = sql.to_string();
        let params = pg_params(params);
        let result = self.db.run(move |c| async move {
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            match c.execute(sql.as_str(), &refs).await {
                Ok(n) => Ok(Ok(n)),
                // A duplicate key is an answer, not a failure of the store.
                Err(e) if pg_conflict(&e) => Ok(Err(())),
                Err(e) => Err(e.into()),
            }
        });
        match result {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(())) => Err(StoreError(CONFLICT.into())),
            Err(e) => Err(pg_error(e)),
        }
    }

    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, StoreError> {
        use tokio_postgres::types::Type;
        let sql = sql.to_string();
        let params = pg_params(params);
        self.db
            .run(move |c| async move {
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let rows = c.query(sql.as_str(), &refs).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut values = Vec::with_capacity(row.len());
                    for (i, column) in row.columns().iter().enumerate() {
                        let v = match *column.type_() {
                            Type::INT8 => Val::Int(row.try_get::<_, Option<i64>>(i)?.unwrap_or(0)),
                            Type::INT4 => {
                                Val::Int(row.try_get::<_, Option<i32>>(i)?.unwrap_or(0).into())
                            }
                            _ => {
                                Val::Text(row.try_get::<_, Option<String>>(i)?.unwrap_or_default())
                            }
                        };
                        values.push(v);
                    }
                    out.push(values);
                }
                Ok(out)
            })
            .map_err(pg_error)
    }
}
