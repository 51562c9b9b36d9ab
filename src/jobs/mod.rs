//! Code jobs: run a snippet as a program and keep a durable record of every
//! run. A record is written before the run starts (`running`, or `queued`
//! for `?wait=false`) and completed after it; at start, records left
//! `running` become `error` ("interrupted by a restart") and `queued` ones
//! run. Records live behind [`store::JobStore`]; [`sqlite::SqliteStore`] is
//! the embedded one, and `postgres::PgStore` the one several replicas share
//! (`DATABASE_URL`): there a queued job is claimed by whichever replica has
//! room, under a lease its heartbeat renews. Every store call runs off the
//! async reactor.

mod postgres;
pub(crate) mod sqlite;
pub(crate) mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::clock::now_ms;
use crate::code::with_virtual_paths;
use crate::config::{Config, JobRetention};
use crate::engine::{ExecError, Execution, Language, LogEntry, ProgramEnd, Report};
use crate::runner::Runner;
use store::{JobRecord, JobStatus, JobStore, ListFilter, StoreError};

use crate::db::Db;

/// How often old records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long a background job waits before trying a full queue again.
const RETRY_QUEUE_AFTER: Duration = Duration::from_millis(50);
/// How often a replica of a shared store looks for queued jobs when no
/// notification came.
const CLAIM_POLL: Duration = Duration::from_secs(1);
/// How often a completion that could not be written is tried again, and
/// for how long.
const RECORD_RETRY_EVERY: Duration = Duration::from_secs(1);
const RECORD_RETRY_FOR: Duration = Duration::from_secs(600);

/// What a caller asks to run.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub lang: String,
    pub code: String,
    pub task_id: Option<String>,
    pub timeout: Duration,
    pub stdin: Option<String>,
    /// Who asked: background jobs are shared out per client.
    pub client: Option<Arc<str>>,
}

/// Why a job could not be recorded or run.
#[derive(Debug)]
pub enum JobError {
    /// The store failed: nothing ran without its record.
    Store(StoreError),
    /// The execution queue was full (the record says so).
    Overloaded(Box<JobRecord>),
    /// No room for another record (the disk, or `JOB_STORE_BYTES`):
    /// nothing was recorded or run.
    Full(String),
    /// `QUEUE_SIZE` background jobs are waiting already: nothing was
    /// recorded.
    QueueFull(usize),
    /// This client holds its share of the background queue already.
    ClientShareFull(usize),
    /// The job ran, but its completed record could not be written; it is
    /// tried again in the background.
    Unrecorded {
        record: Box<JobRecord>,
        error: StoreError,
    },
}

/// The job runner and its store.
pub struct Jobs {
    store: Arc<dyn JobStore>,
    /// Runs the programs and counts them.
    runner: Arc<Runner>,
    retention: JobRetention,
    /// Programs are named as if they lived here, so their relative imports
    /// resolve against saved code.
    workspace_dir: PathBuf,
    /// `ALLOW_ENV` values: what `Deno.env.get` sees.
    env: std::collections::HashMap<String, String>,
    cpu_limit: Option<Duration>,
    /// Bytes of output a record keeps (`JOB_OUTPUT_BYTES`).
    output_cap: usize,
    /// Bytes the store may take (`JOB_STORE_BYTES`).
    store_cap: u64,
    data_dir: PathBuf,
    /// Background jobs recorded and not yet ended, and their bound
    /// (`QUEUE_SIZE`).
    background: AtomicUsize,
    queue_size: usize,
    /// Background jobs per client, each within `client_share`.
    by_client: std::sync::Mutex<std::collections::HashMap<Arc<str>, usize>>,
    /// Set at shutdown: background jobs that have not started stay queued
    /// for the next start.
    stopping: AtomicBool,
    /// Claimed jobs one replica of a shared store runs at once.
    claim_slots: usize,
    /// How often a replica of a shared store renews its leases.
    heartbeat: Duration,
}

/// How a job is run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunAs {
    /// Now, for a caller who waits: a full queue is an error.
    Now,
    /// A background job of this replica: it waits for room, queued.
    Queued,
    /// A job this replica claimed from a shared queue: it waits for room
    /// holding its claim, and gives it back if the replica stops first.
    Claimed,
}

impl Jobs {
    /// Opens the embedded store under `DATA_DIR`; the error names the path.
    /// With `db`, the records and the queue are the shared ones there.
    pub(crate) fn open(
        config: &Config,
        runner: Arc<Runner>,
        db: Option<Arc<Db>>,
    ) -> Result<Jobs, StoreError> {
        let store: Arc<dyn JobStore> = match db {
            Some(db) => Arc::new(postgres::PgStore::new(db, config.lease)),
            None => Arc::new(sqlite::SqliteStore::open(&config.data_dir)?),
        };
        Ok(Jobs::with_store(store, config, runner))
    }

    /// Jobs over any store.
    pub fn with_store(store: Arc<dyn JobStore>, config: &Config, runner: Arc<Runner>) -> Jobs {
        Jobs {
            store,
            runner,
            retention: config.job_retention,
            workspace_dir: std::fs::canonicalize(&config.workspace_dir)
                .unwrap_or_else(|_| config.workspace_dir.clone()),
            env: config.allow_env_values.clone(),
            cpu_limit: config.limits.default_cpu_limit,
            output_cap: config.job_output_bytes,
            store_cap: config.job_store_bytes,
            data_dir: config.data_dir.clone(),
            background: AtomicUsize::new(0),
            queue_size: config.queue_size,
            by_client: std::sync::Mutex::new(std::collections::HashMap::new()),
            stopping: AtomicBool::new(false),
            claim_slots: config.pool_size,
            heartbeat: config.heartbeat,
        }
    }

    /// Whether several replicas share the records and the queue.
    pub(crate) fn shared(&self) -> bool {
        self.store.shared().is_some()
    }

    /// Whether there is room for one more record: enough free disk under
    /// `DATA_DIR`, and the store under `JOB_STORE_BYTES` (the oldest
    /// finished records are removed to make room first).
    async fn admit(&self) -> Result<(), JobError> {
        let free = crate::disk::free_disk(&self.data_dir);
        if free.is_some_and(|f| f < crate::disk::MIN_FREE_DISK) {
            return Err(JobError::Full(format!(
                "less than {} MiB of disk is free for job records",
                crate::disk::MIN_FREE_DISK >> 20
            )));
        }
        let cap = self.store_cap;
        let bytes = self
            .blocking(move |s| {
                if s.bytes()? > cap {
                    let removed = s.shrink_to(cap - cap / 10)?;
                    if removed > 0 {
                        tracing::info!(removed, "pruned job records to stay under JOB_STORE_BYTES");
                    }
                }
                s.bytes()
            })
            .await
            .map_err(JobError::Store)?;
        if bytes > cap {
            return Err(JobError::Full(format!(
                "the job records take {bytes} bytes, over JOB_STORE_BYTES ({cap}), and all \
                 of them are queued or running"
            )));
        }
        Ok(())
    }

    /// Stops starting background jobs: those not yet running stay queued
    /// and run at the next start.
    pub fn stop_starting(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Runs a store call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn JobStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .unwrap_or_else(|e| Err(StoreError(format!("a store task failed: {e}"))))
    }

    /// Records a job and runs it now, returning the completed record.
    pub async fn run_now(&self, request: JobRequest) -> Result<JobRecord, JobError> {
        self.admit().await?;
        let client = request.client.clone();
        let record = new_record(request, JobStatus::Running);
        let inserted = record.clone();
        self.blocking(move |s| s.insert(&inserted))
            .await
            .map_err(JobError::Store)?;
        self.execute(record, RunAs::Now, client).await
    }

    /// A client's share of the background queue: half of `QUEUE_SIZE`
    /// (at least one).
    pub fn client_share(&self) -> usize {
        crate::config::client_share(self.queue_size)
    }

    /// Takes a place of `client`'s share; false when it holds all of it.
    fn take_client_place(&self, client: &Option<Arc<str>>) -> bool {
        let Some(client) = client else { return true };
        let mut by = crate::sync::lock(&self.by_client);
        let n = by.entry(client.clone()).or_insert(0);
        if *n >= self.client_share() {
            return false;
        }
        *n += 1;
        true
    }

    fn give_client_place(&self, client: &Option<Arc<str>>) {
        let Some(client) = client else { return };
        let mut by = crate::sync::lock(&self.by_client);
        if let Some(n) = by.get_mut(client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by.remove(client);
            }
        }
    }

    /// Records a job as queued; the caller runs it with [`Jobs::run_queued`].
    /// At most `QUEUE_SIZE` background jobs wait or run at once.
    pub async fn enqueue(&self, request: JobRequest) -> Result<JobRecord, JobError> {
        if self.shared() {
            return self.enqueue_shared(request).await;
        }
        if !self.take_client_place(&request.client) {
            return Err(JobError::ClientShareFull(self.client_share()));
        }
        let client = request.client.clone();
        let taken = self.background.fetch_add(1, Ordering::AcqRel);
        if taken >= self.queue_size {
            self.background.fetch_sub(1, Ordering::AcqRel);
            self.give_client_place(&client);
            return Err(JobError::QueueFull(self.queue_size));
        }
        let recorded = async {
            self.admit().await?;
            let record = new_record(request, JobStatus::Queued);
            let inserted = record.clone();
            self.blocking(move |s| s.insert(&inserted))
                .await
                .map_err(JobError::Store)?;
            Ok(record)
        }
        .await;
        if recorded.is_err() {
            self.background.fetch_sub(1, Ordering::AcqRel);
            self.give_client_place(&client);
        }
        recorded
    }

    /// Records a job in the shared queue, where any replica claims it. The
    /// bounds are the shared queue's: at most `QUEUE_SIZE` jobs waiting, and
    /// half of them per client (counted, then inserted: replicas recording
    /// at the same moment may pass a bound by a few).
    async fn enqueue_shared(&self, request: JobRequest) -> Result<JobRecord, JobError> {
        let client = request.client.as_deref().map(String::from);
        let (all, mine) = self
            .blocking(move |s| match s.shared() {
                Some(queue) => queue.queued(client.as_deref()),
                None => Ok((0, 0)),
            })
            .await
            .map_err(JobError::Store)?;
        if request.client.is_some() && mine >= self.client_share() as u64 {
            return Err(JobError::ClientShareFull(self.client_share()));
        }
        if all >= self.queue_size as u64 {
            return Err(JobError::QueueFull(self.queue_size));
        }
        self.admit().await?;
        let record = new_record(request, JobStatus::Queued);
        let inserted = record.clone();
        self.blocking(move |s| s.insert(&inserted))
            .await
            .map_err(JobError::Store)?;
        Ok(record)
    }

    /// Claims queued jobs from the shared queue whenever this replica has
    /// room (`POOL_SIZE` claimed jobs at once), woken by other replicas'
    /// notifications and looking every second regardless; and renews this
    /// replica's leases every `HEARTBEAT_MS`, marking lost the jobs of
    /// replicas that stopped renewing theirs. Runs until the replica stops.
    pub(crate) fn claim_in_background(self: &Arc<Self>) {
        let Some(queue) = self.store.shared() else {
            return;
        };
        let woken = queue.woken();
        let jobs = self.clone();
        crate::background::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(jobs.claim_slots.max(1)));
            while !jobs.stopping.load(Ordering::Acquire) {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                if jobs.stopping.load(Ordering::Acquire) {
                    return;
                }
                // Made before the claim, so a notification during it counts.
                let notified = woken.notified();
                let claimed = jobs
                    .blocking(|s| match s.shared() {
                        Some(queue) => queue.claim(),
                        None => Ok(None),
                    })
                    .await;
                match claimed {
                    Ok(Some(record)) => {
                        let jobs = jobs.clone();
                        jobs.background.fetch_add(1, Ordering::AcqRel);
                        crate::background::spawn(async move {
                            let id = record.id.clone();
                            let client = record.client.as_deref().map(Arc::from);
                            if let Err(JobError::Store(e) | JobError::Unrecorded { error: e, .. }) =
                                jobs.execute(record, RunAs::Claimed, client).await
                            {
                                tracing::error!(%id, error = %e, "a claimed job's record was not completed");
                            }
                            jobs.background.fetch_sub(1, Ordering::AcqRel);
                            drop(slot);
                        });
                    }
                    Ok(None) => {
                        drop(slot);
                        let _ = tokio::time::timeout(CLAIM_POLL, notified).await;
                    }
                    Err(e) => {
                        drop(slot);
                        tracing::warn!(error = %e, "claiming queued jobs failed");
                        tokio::time::sleep(CLAIM_POLL).await;
                    }
                }
            }
        });
        let jobs = self.clone();
        crate::background::spawn(async move {
            loop {
                match jobs
                    .blocking(|s| match s.shared() {
                        Some(queue) => queue.heartbeat(now_ms()),
                        None => Ok(0),
                    })
                    .await
                {
                    Ok(0) => {}
                    Ok(lost) => tracing::warn!(lost, "jobs of a lost replica marked interrupted"),
                    Err(e) => tracing::warn!(error = %e, "renewing this replica's leases failed"),
                }
                tokio::time::sleep(jobs.heartbeat).await;
            }
        });
    }

    /// Waits until no background job is running or waiting (up to
    /// `until`); false if some still were.
    pub async fn wait_idle(&self, until: Instant) -> bool {
        while self.background.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Counts jobs found queued at start among the background jobs.
    pub fn adopt(&self, count: usize) {
        self.background.fetch_add(count, Ordering::AcqRel);
    }

    /// Runs a queued job (recorded by [`Jobs::enqueue`] or found at start)
    /// to its end, waiting for room in a full queue.
    /// `client` is who enqueued it (`None` for a job found at start).
    pub async fn run_queued(&self, record: JobRecord, client: Option<Arc<str>>) {
        let id = record.id.clone();
        if let Err(JobError::Store(e) | JobError::Unrecorded { error: e, .. }) =
            self.execute(record, RunAs::Queued, client.clone()).await
        {
            tracing::error!(%id, error = %e, "a job's record was not completed")
        }
        self.give_client_place(&client);
        self.background.fetch_sub(1, Ordering::AcqRel);
    }

    /// Runs `record` and completes its record. A background job of this
    /// replica is marked running here, and put back to queued while the
    /// execution queue is full; a claimed one keeps its claim meanwhile. At
    /// shutdown one that has not started stays (or goes back to) queued.
    async fn execute(
        &self,
        mut record: JobRecord,
        run_as: RunAs,
        client: Option<Arc<str>>,
    ) -> Result<JobRecord, JobError> {
        let execution = Arc::new(self.execution(&record, client));
        let started = Instant::now();
        let report = loop {
            if run_as != RunAs::Now && self.stopping.load(Ordering::Acquire) {
                if run_as == RunAs::Claimed {
                    // Give the claim back: another replica runs it.
                    self.set_status(&mut record, JobStatus::Queued).await?;
                }
                return Ok(record);
            }
            if run_as == RunAs::Queued && !self.set_status(&mut record, JobStatus::Running).await? {
                // Deleted while queued: nothing to run.
                return Ok(record);
            }
            match self.runner.execute("jobs", &execution).await {
                Ok(report) => break report,
                Err(_) if run_as == RunAs::Queued => {
                    self.set_status(&mut record, JobStatus::Queued).await?;
                    tokio::time::sleep(RETRY_QUEUE_AFTER).await;
                }
                Err(_) if run_as == RunAs::Claimed => {
                    tokio::time::sleep(RETRY_QUEUE_AFTER).await;
                }
                Err(_) => {
                    record.status = JobStatus::Error;
                    self.runner.metrics.job(record.status.as_str());
                    record.error = Some("overloaded: the execution queue was full".into());
                    record.finished_at_ms = Some(now_ms());
                    record.duration_ms = Some(0);
                    let done = record.clone();
                    self.blocking(move |s| s.update(&done))
                        .await
                        .map_err(JobError::Store)?;
                    return Err(JobError::Overloaded(Box::new(record)));
                }
            }
        };
        complete(&mut record, report, started.elapsed(), self.output_cap);
        // The program's file reads as `/workspace/job.<ext>`, not where the
        // server keeps it.
        let file = self.program_name(&record);
        let shown = format!("job.{}", file.rsplit('.').next().unwrap_or("ts"));
        record.output = with_virtual_paths(
            &record.output,
            &self.workspace_dir,
            "/workspace",
            &[(&file, &shown)],
        );
        self.runner.metrics.job(record.status.as_str());
        let done = record.clone();
        if let Err(error) = self.blocking(move |s| s.update(&done)).await {
            // The program ran: say so, and keep trying to write its end so
            // the record does not stay `running`.
            self.complete_later(record.clone());
            return Err(JobError::Unrecorded {
                record: Box::new(record),
                error,
            });
        }
        Ok(record)
    }

    /// Writes `record.status` (running or queued again) unless the job is
    /// final; false when the record is gone.
    async fn set_status(
        &self,
        record: &mut JobRecord,
        status: JobStatus,
    ) -> Result<bool, JobError> {
        if record.status == status {
            return Ok(true);
        }
        record.status = status;
        let changed = record.clone();
        self.blocking(move |s| s.update(&changed))
            .await
            .map_err(JobError::Store)
    }

    /// Tries to write a completed record again, every second for ten
    /// minutes (after that, the next start marks it interrupted).
    fn complete_later(&self, record: JobRecord) {
        let store = self.store.clone();
        crate::background::spawn(async move {
            let until = Instant::now() + RECORD_RETRY_FOR;
            while Instant::now() < until {
                tokio::time::sleep(RECORD_RETRY_EVERY).await;
                let (store, done) = (store.clone(), record.clone());
                let written = tokio::task::spawn_blocking(move || store.update(&done)).await;
                if matches!(written, Ok(Ok(_))) {
                    tracing::info!(id = %record.id, "a job's record was completed late");
                    return;
                }
            }
            tracing::error!(id = %record.id, "a job's record could not be completed");
        });
    }

    /// The file name a job's program is known by (in the workspace, so its
    /// relative imports resolve against saved code).
    fn program_name(&self, record: &JobRecord) -> String {
        let language = Language::from_alias(&record.lang).unwrap_or(Language::TypeScript);
        format!("__job_{}.{}", record.id, language.extension())
    }

    fn execution(&self, record: &JobRecord, record_client: Option<Arc<str>>) -> Execution {
        let name = self.program_name(record);
        Execution {
            cpu_limit: self.cpu_limit,
            env: self.env.clone(),
            stdin: record.stdin.as_deref().map(Into::into),
            client: record_client,
            ..Execution::program(
                self.workspace_dir.join(name),
                Some(record.code.as_str().into()),
                Duration::from_millis(record.timeout_ms),
            )
        }
    }

    pub async fn get(&self, id: String) -> Result<Option<JobRecord>, StoreError> {
        self.blocking(move |s| s.get(&id)).await
    }

    pub async fn list(&self, filter: ListFilter) -> Result<Vec<JobRecord>, StoreError> {
        self.blocking(move |s| s.list(&filter)).await
    }

    pub async fn delete(&self, id: String) -> Result<bool, StoreError> {
        self.blocking(move |s| s.delete(&id)).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|s| s.ping()).await
    }

    /// At start: marks interrupted runs and returns the queued jobs to run.
    pub fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.store.recover(now_ms())
    }

    /// Removes records past the retention, now and every minute, for as
    /// long as the returned task runs.
    pub fn prune_in_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        crate::background::spawn(async move {
            loop {
                let retention = jobs.retention;
                match jobs.blocking(move |s| s.prune(&retention, now_ms())).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "pruned old job records"),
                    Err(e) => tracing::warn!(error = %e, "pruning job records failed"),
                }
                tokio::time::sleep(PRUNE_EVERY).await;
            }
        })
    }
}

fn new_record(request: JobRequest, status: JobStatus) -> JobRecord {
    JobRecord {
        id: uuid::Uuid::new_v4().to_string(),
        task_id: request.task_id,
        lang: request.lang,
        code: request.code,
        stdin: request.stdin,
        timeout_ms: request.timeout.as_millis() as u64,
        status,
        output: String::new(),
        output_truncated: false,
        exit_code: None,
        error: None,
        duration_ms: None,
        created_at_ms: now_ms(),
        finished_at_ms: None,
        client: request.client.as_deref().map(String::from),
    }
}

/// Fills in how the run ended, keeping at most `output_cap` bytes of
/// output.
fn complete(record: &mut JobRecord, report: Report, took: Duration, output_cap: usize) {
    let mut output = interleaved(&report.logs);
    let stopped = match ProgramEnd::of(report.outcome) {
        ProgramEnd::Exited(code) => Ok(code),
        ProgramEnd::Failed { line, .. } => {
            output.push_str(&line);
            Ok(1)
        }
        ProgramEnd::Stopped(e) => Err(e),
    };
    let (status, exit_code, error) = match stopped {
        Ok(code) => (JobStatus::Done, Some(code), None),
        Err(ExecError::Timeout) => (JobStatus::Timeout, None, Some("timeout".into())),
        Err(ExecError::MemoryLimit) => (JobStatus::Killed, None, Some("memory_limit".into())),
        Err(ExecError::CpuLimit) => (JobStatus::Killed, None, Some("cpu_limit".into())),
        Err(ExecError::OutputLimit { message }) => (
            JobStatus::Killed,
            None,
            Some(format!("output_limit: {message}")),
        ),
        Err(ExecError::Cancelled) => (JobStatus::Error, None, Some("cancelled".into())),
        Err(ExecError::WorkerDied { signal, code }) => (
            JobStatus::Error,
            None,
            Some(format!(
                "internal: the worker process ended ({})",
                signal.unwrap_or_else(|| format!("exit code {}", code.unwrap_or(-1)))
            )),
        ),
        Err(ExecError::Internal { message }) => {
            tracing::error!(id = %record.id, cause = %message, "a job failed on our side");
            (JobStatus::Error, None, Some("internal".into()))
        }
        Err(other) => (JobStatus::Error, None, Some(other.kind().into())),
    };
    record.status = status;
    record.exit_code = exit_code;
    record.error = error;
    let cut = output.len() > output_cap;
    if cut {
        let mut end = output_cap;
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        output.truncate(end);
    }
    record.output = output;
    record.output_truncated = report.logs_truncated || cut;
    record.duration_ms = Some(took.as_millis() as u64);
    record.finished_at_ms = Some(now_ms());
}

/// A program's stdout and stderr in the order written.
fn interleaved(logs: &[LogEntry]) -> String {
    let mut out = String::with_capacity(logs.iter().map(|l| l.message.len() + 1).sum());
    for entry in logs {
        out.push_str(&entry.message);
        if !entry.partial {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LogLevel;

    fn report(outcome: Result<String, ExecError>) -> Report {
        Report {
            outcome,
            logs: vec![
                LogEntry {
                    partial: false,
                    ts: 0,
                    level: LogLevel::Log,
                    message: "out".into(),
                },
                LogEntry {
                    partial: false,
                    ts: 0,
                    level: LogLevel::Error,
                    message: "err".into(),
                },
            ],
            logs_truncated: false,
            queue_wait: Duration::ZERO,
            cpu: Duration::ZERO,
            memory: 0,
        }
    }

    /// A record of an empty JavaScript job, running.
    fn running() -> JobRecord {
        new_record(
            JobRequest {
                lang: "js".into(),
                code: String::new(),
                task_id: None,
                timeout: Duration::from_secs(1),
                stdin: None,
                client: None,
            },
            JobStatus::Running,
        )
    }

    #[test]
    fn every_end_maps_to_a_status() {
        let cases = [
            (Ok(String::new()), "done", Some(0)),
            (Err(ExecError::Exit { code: 3 }), "done", Some(3)),
            (
                Err(ExecError::Exception {
                    name: "Error".into(),
                    message: "x".into(),
                    stack: Some("Error: x\n    at main".into()),
                }),
                "done",
                Some(1),
            ),
            (Err(ExecError::Timeout), "timeout", None),
            (Err(ExecError::MemoryLimit), "killed", None),
            (Err(ExecError::CpuLimit), "killed", None),
            (
                Err(ExecError::Internal {
                    message: "bug".into(),
                }),
                "error",
                None,
            ),
        ];
        for (outcome, status, code) in cases {
            let mut r = running();
            complete(&mut r, report(outcome), Duration::from_millis(5), 1 << 20);
            assert_eq!(r.status.as_str(), status);
            assert_eq!(r.exit_code, code, "{status}");
            assert!(r.output.starts_with("out\nerr\n"), "{}", r.output);
            assert!(r.finished_at_ms.is_some());
        }
    }

    #[test]
    fn a_record_keeps_output_up_to_its_cap_on_a_char_boundary() {
        let mut r = running();
        let mut rep = report(Ok(String::new()));
        rep.logs[0].message = "é".repeat(100);
        complete(&mut r, rep, Duration::ZERO, 51);
        assert_eq!(r.output.len(), 50);
        assert!(r.output_truncated);
    }
}
