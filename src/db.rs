//! The PostgreSQL connection that every shared store uses (`DATABASE_URL`):
//! a small pool on a runtime of its own, the schema (created and migrated
//! at start, versioned), this replica's heartbeat row, and the wake-ups
//! other replicas send (`LISTEN`/`NOTIFY`).
//!
//! The stores' traits are blocking (`JobStore`, `CodeStore`: called off the
//! reactor), so [`Db::run`] blocks the calling thread on the pool's runtime;
//! the async side ([`Db::run_async`]) is for callers on a runtime. Every
//! statement has a deadline: with the database down, a call fails within
//! seconds and the route answers 503, never hangs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

/// Connections in the pool.
const POOL_SIZE: usize = 8;
/// How long connecting, waiting for a pooled connection, and one statement
/// may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the listener waits before connecting again after a failure.
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// The channel replicas are woken on when a job is queued.
pub(crate) const JOBS_CHANNEL: &str = "isoexec_jobs";

/// The schema, one step per version; each step runs once, in a
/// transaction, and `schema_version` records how far a database is.
const MIGRATIONS: [&str; 2] = [
    "
CREATE TABLE replicas (
    id text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    draining boolean NOT NULL DEFAULT false
);
CREATE TABLE jobs (
    seq bigserial UNIQUE,
    id text PRIMARY KEY,
    task_id text,
    lang text NOT NULL,
    code text NOT NULL,
    stdin text,
    timeout_ms bigint NOT NULL,
    status text NOT NULL,
    output text NOT NULL DEFAULT '',
    output_truncated boolean NOT NULL DEFAULT false,
    exit_code integer,
    error text,
    duration_ms bigint,
    created_at_ms bigint NOT NULL,
    finished_at_ms bigint,
    client text,
    claimed_by text,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX jobs_queued ON jobs (seq) WHERE status = 'queued';
CREATE INDEX jobs_task ON jobs (task_id, seq);
CREATE INDEX jobs_status ON jobs (status, seq);
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
CREATE TABLE workspace_files (
    code_id text NOT NULL,
    version bigint NOT NULL,
    sha256 bytea NOT NULL,
    content text NOT NULL,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (code_id, version)
);
CREATE TABLE sessions (
    id text PRIMARY KEY,
    owner text NOT NULL,
    owner_addr text NOT NULL,
    client text NOT NULL,
    environment text NOT NULL,
    mode text NOT NULL,
    created_at_ms bigint NOT NULL,
    epoch integer NOT NULL DEFAULT 0
);
CREATE INDEX sessions_client ON sessions (client);
CREATE TABLE session_files (
    session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    name text NOT NULL,
    content text NOT NULL,
    PRIMARY KEY (session_id, name)
);
CREATE TABLE cluster (secret text NOT NULL);
INSERT INTO cluster VALUES (md5(random()::text || clock_timestamp()::text) || md5(random()::text));
CREATE TABLE workspace_head (
    code_id text PRIMARY KEY,
    version bigint NOT NULL,
    sha256 bytea NOT NULL,
    size bigint NOT NULL,
    modified_ms bigint NOT NULL
);
",
    TENANT_TABLES,
];

/// The tables of tenants and their functions (`crate::tenants`), in what
/// both PostgreSQL and SQLite speak: the embedded registry creates them
/// too.
pub(crate) const TENANT_TABLES: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id text PRIMARY KEY,
    limits text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_keys (
    id text PRIMARY KEY,
    tenant text NOT NULL,
    hash text NOT NULL UNIQUE,
    scopes text NOT NULL,
    label text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS tenant_keys_tenant ON tenant_keys (tenant);
CREATE TABLE IF NOT EXISTS functions (
    tenant text NOT NULL,
    name text NOT NULL,
    head bigint NOT NULL,
    created_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS function_versions (
    tenant text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL,
    sha256 text NOT NULL,
    code text NOT NULL,
    settings text NOT NULL,
    exports text NOT NULL,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE TABLE IF NOT EXISTS tenant_secrets (
    tenant text NOT NULL,
    function text NOT NULL,
    name text NOT NULL,
    value text NOT NULL,
    updated_at_ms bigint NOT NULL,
    PRIMARY KEY (tenant, function, name)
);
CREATE TABLE IF NOT EXISTS function_usage (
    tenant text NOT NULL,
    function text NOT NULL,
    minute bigint NOT NULL,
    outcome text NOT NULL,
    calls bigint NOT NULL,
    cpu_us bigint NOT NULL,
    wall_us bigint NOT NULL,
    mem_peak bigint NOT NULL,
    PRIMARY KEY (tenant, function, minute, outcome)
);
CREATE TABLE IF NOT EXISTS function_logs (
    id text PRIMARY KEY,
    tenant text NOT NULL,
    function text NOT NULL,
    ts_ms bigint NOT NULL,
    version bigint NOT NULL,
    via text NOT NULL,
    outcome text NOT NULL,
    status bigint NOT NULL,
    wall_us bigint NOT NULL,
    cpu_us bigint NOT NULL,
    logs text NOT NULL
);
CREATE INDEX IF NOT EXISTS function_logs_fn ON function_logs (tenant, function, id);
";

/// Why the database could not do what was asked. The message never holds
/// the URL (it may carry a password).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DbError(pub(crate) String);

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        match e.as_db_error() {
            Some(db) => DbError(format!("PostgreSQL: {}", db.message())),
            None => DbError(format!("PostgreSQL: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> DbError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            deadpool_postgres::PoolError::Timeout(_) => {
                DbError("PostgreSQL: no connection within the timeout".into())
            }
            other => DbError(format!("PostgreSQL: {other}")),
        }
    }
}

/// A pooled connection.
pub(crate) type Client = deadpool_postgres::Object;

/// The database of a replica, shared by the stores.
pub(crate) struct Db {
    /// Runs the pool's connections; dropped without waiting.
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    pg_config: tokio_postgres::Config,
    /// This replica's name.
    pub(crate) replica: String,
    /// Signalled when another replica queued a job.
    pub(crate) jobs_queued: Arc<Notify>,
    /// A secret the replicas share (made once, in the database): a request
    /// one replica forwards to another carries it, so the receiver may
    /// trust the client identity it names.
    pub(crate) secret: String,
    /// How long a replica counts as alive after its last heartbeat.
    pub(crate) lease: Duration,
    /// When this replica's heartbeat last reached the database (epoch ms).
    alive_at: std::sync::atomic::AtomicU64,
    /// Times the heartbeat came back after the lease had run out: what this
    /// replica held may have been taken over meanwhile.
    lapses: std::sync::atomic::AtomicU64,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Db {
    /// Connects to `url`, brings the schema up to date and registers
    /// `replica`. Blocks: call it off the async reactor.
    pub(crate) fn open(url: &str, replica: &str, lease: Duration) -> Result<Arc<Db>, DbError> {
        let mut pg_config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| DbError(format!("DATABASE_URL: {e}")))?;
        pg_config.connect_timeout(CONNECT_TIMEOUT);
        if pg_config.get_application_name().is_none() {
            pg_config.application_name(format!("isoexec {replica}"));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("isoexec-db")
            .enable_all()
            .build()
            .map_err(|e| DbError(format!("cannot start the database runtime: {e}")))?;
        let handle = rt.handle().clone();
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _enter = handle.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| DbError(format!("cannot build the connection pool: {e}")))?
        };
        let mut db = Db {
            rt: Some(rt),
            handle,
            pool,
            pg_config,
            replica: replica.to_string(),
            jobs_queued: Arc::new(Notify::new()),
            secret: String::new(),
            lease,
            alive_at: std::sync::atomic::AtomicU64::new(crate::clock::now_ms()),
            lapses: std::sync::atomic::AtomicU64::new(0),
        };
        db.run(|c| async move { migrate(c).await })?;
        db.secret = db.run(|c| async move {
            Ok(c.query_one("SELECT secret FROM cluster LIMIT 1", &[])
                .await?
                .get(0))
        })?;
        let db = Arc::new(db);
        let me = db.replica.clone();
        db.run(move |c| async move {
            c.execute(
                "INSERT INTO replicas (id) VALUES ($1) ON CONFLICT (id) DO UPDATE \
                 SET started_at = now(), heartbeat_at = now(), draining = false",
                &[&me],
            )
            .await
            .map(|_| ())
            .map_err(DbError::from)
        })?;
        db.listen();
        Ok(db)
    }

    /// Records that this replica's heartbeat reached the database.
    pub(crate) fn mark_alive(&self) {
        use std::sync::atomic::Ordering;
        let now = crate::clock::now_ms();
        let before = self.alive_at.swap(now, Ordering::AcqRel);
        if now.saturating_sub(before) >= self.lease.as_millis() as u64 {
            self.lapses.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// How many times this replica's lease has run out and come back.
    pub(crate) fn lapses(&self) -> u64 {
        self.lapses.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether this replica still holds its lease: its last heartbeat is
    /// younger than the lease. One that does not may have had its sessions
    /// and jobs taken over by the others, and must not act on them.
    pub(crate) fn holds_lease(&self) -> bool {
        let at = self.alive_at.load(std::sync::atomic::Ordering::Relaxed);
        crate::clock::now_ms().saturating_sub(at) < self.lease.as_millis() as u64
    }

    /// Runs `f` with a pooled connection, blocking the calling thread (not
    /// an async task) until it finishes or its deadline passes.
    pub(crate) fn run<T, F, Fut>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        self.handle.block_on(self.run_async(f))
    }

    /// Runs `f` with a pooled connection, within the statement deadline.
    pub(crate) async fn run_async<T, F, Fut>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        let work = async {
            let client = self.pool.get().await?;
            f(client).await
        };
        match tokio::time::timeout(STATEMENT_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(DbError(format!(
                "PostgreSQL: no answer within {} s",
                STATEMENT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Holds one connection that listens for queued jobs and wakes
    /// [`Db::jobs_queued`]; it connects again after any failure.
    fn listen(&self) {
        let config = self.pg_config.clone();
        let woken = self.jobs_queued.clone();
        self.handle.spawn(async move {
            loop {
                if let Err(e) = listen_once(&config, &woken).await {
                    tracing::debug!(error = %e, "the job listener reconnects");
                }
                // Whatever was missed meanwhile is found by the claimers'
                // own polling; waking them costs one query each.
                woken.notify_waiters();
                tokio::time::sleep(LISTEN_RETRY).await;
            }
        });
    }
}

/// One listening connection, until it fails.
async fn listen_once(config: &tokio_postgres::Config, woken: &Notify) -> Result<(), DbError> {
    let (client, mut connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| DbError("PostgreSQL: the listener could not connect in time".into()))??;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Polling the connection drives it and yields what the server sends
    // unasked (notifications).
    let driver = crate::background::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                // The stream's end or an error ends the connection.
                None | Some(Err(_)) => break,
                Some(Ok(message)) => {
                    if tx.send(message).is_err() {
                        break;
                    }
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {JOBS_CHANNEL}"))
        .await?;
    while let Some(message) = rx.recv().await {
        if let AsyncMessage::Notification(_) = message {
            woken.notify_waiters();
        }
    }
    driver.abort();
    Err(DbError("PostgreSQL: the listening connection ended".into()))
}

/// Brings the schema up to date, one step per version, under an advisory
/// lock so that replicas starting together do not race.
async fn migrate(mut client: Client) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7126381); \
         CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
    )
    .await?;
    let row = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?;
    let have = match row {
        Some(r) => r.get::<_, i32>(0) as usize,
        None => {
            tx.execute("INSERT INTO schema_version VALUES (0)", &[])
                .await?;
            0
        }
    };
    if have > MIGRATIONS.len() {
        return Err(DbError(format!(
            "the database's schema is version {have}, newer than this build knows ({}): \
             run the newer isoexec",
            MIGRATIONS.len()
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(have) {
        tx.batch_execute(step).await?;
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[&((i + 1) as i32)],
        )
        .await?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    tx.commit().await?;
    Ok(())
}
