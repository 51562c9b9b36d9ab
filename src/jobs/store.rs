//! The narrow interface job records are kept behind, so a store for several
//! replicas (PostgreSQL, say) can replace the embedded one without touching
//! the runner or the handlers.

use crate::config::JobRetention;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Recorded, waiting to run (`?wait=false`, or found at start).
    Queued,
    /// Running now (or was, when the server died: see [`JobStore::interrupt_running`]).
    Running,
    /// The program ran to its end; `exit_code` says how.
    Done,
    /// The deadline passed.
    Timeout,
    /// A memory, CPU or output limit stopped it; `error` names which.
    Killed,
    /// It could not run: our failure, or a restart interrupted it.
    Error,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Timeout,
        JobStatus::Killed,
        JobStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Timeout => "timeout",
            JobStatus::Killed => "killed",
            JobStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the job has ended (its record is complete).
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// One job's record: what was asked, and once it ended, what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    /// The caller's grouping key (a grader's task, an interview question).
    pub task_id: Option<String>,
    /// The language as the caller named it, lower-cased.
    pub lang: String,
    pub code: String,
    pub stdin: Option<String>,
    pub timeout_ms: u64,
    pub status: JobStatus,
    /// stdout and stderr interleaved in the order written.
    pub output: String,
    /// Whether `output` was cut at its cap.
    pub output_truncated: bool,
    /// The program's exit code; `None` when it did not end by itself.
    pub exit_code: Option<i32>,
    /// For `killed` and `error`: what stopped it.
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    /// Who asked (a key's hash or an address), for the per-client share
    /// of a shared queue; not shown.
    pub client: Option<String>,
}

/// Which records a listing returns: newest first, at most `limit`, older
/// than the record `before` when given.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub task_id: Option<String>,
    pub status: Option<JobStatus>,
    pub limit: usize,
    pub before: Option<String>,
}

/// The store could not do what was asked; the message says what and where.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Durable job records. Every method blocks: call them off the async
/// reactor. A successful `insert` or `update` is durable when it returns.
pub trait JobStore: Send + Sync {
    fn insert(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Replaces the record with `job.id`; false when there is none (it
    /// was deleted).
    fn update(&self, job: &JobRecord) -> Result<bool, StoreError>;
    fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Summaries, newest first: `code` empty, no `stdin`, and `output` cut
    /// to its first 4096 characters (`output_truncated` set when cut).
    fn list(&self, filter: &ListFilter) -> Result<Vec<JobRecord>, StoreError>;
    /// False when there was no such record.
    fn delete(&self, id: &str) -> Result<bool, StoreError>;
    /// Removes what `retention` no longer keeps; returns how many. Jobs
    /// still queued or running are never removed.
    fn prune(&self, retention: &JobRetention, now_ms: u64) -> Result<u64, StoreError>;
    /// At start: marks every `running` record as `error` ("interrupted by
    /// a restart") and returns the `queued` ones, oldest first, to run.
    fn recover(&self, now_ms: u64) -> Result<Vec<JobRecord>, StoreError>;
    /// Whether the records can be read (and the store is the one opened).
    fn ping(&self) -> Result<(), StoreError>;
    /// Bytes the records take in the store.
    fn bytes(&self) -> Result<u64, StoreError>;
    /// Removes the oldest finished records until the store takes at most
    /// `max_bytes` (or none is left to remove); returns how many.
    fn shrink_to(&self, max_bytes: u64) -> Result<u64, StoreError>;
    /// The queue, when several replicas share these records: then queued
    /// jobs are claimed by whichever replica has room, not run by the one
    /// that recorded them.
    fn shared(&self) -> Option<&dyn SharedQueue> {
        None
    }
}

/// The background queue of a store several replicas share. Blocking, as
/// [`JobStore`].
pub trait SharedQueue: Send + Sync {
    /// Takes the oldest queued job for this replica, `running` under a
    /// lease; `None` when nothing waits. No two replicas take one job.
    fn claim(&self) -> Result<Option<JobRecord>, StoreError>;
    /// Says this replica is alive, renews the leases of the jobs it runs,
    /// and marks `error` ("interrupted: replica lost") the running jobs
    /// whose lease ran out; returns how many it marked.
    fn heartbeat(&self, now_ms: u64) -> Result<u64, StoreError>;
    /// Jobs queued in all, and queued by `client`.
    fn queued(&self, client: Option<&str>) -> Result<(u64, u64), StoreError>;
    /// Signalled when a job may have been queued by any replica.
    fn woken(&self) -> std::sync::Arc<tokio::sync::Notify>;
}
