//! Running code for an API: the engine, and the metrics every execution is
//! counted in. The app, the jobs and the sessions share one [`Runner`], so
//! none of them needs the whole app to run code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Engine, Execution, Overloaded, Report};
use crate::metrics::Metrics;

/// The engine and the metrics, shared behind an `Arc`.
pub struct Runner {
    /// Runs every execution and lint (isolates, worker processes, compile
    /// helpers); the only part that touches V8.
    pub engine: Engine,
    /// Every series `/metrics` exports.
    pub metrics: Metrics,
}

impl Runner {
    /// Runs an execution on the engine and records it in the metrics
    /// (`api` names the API it came through).
    pub async fn execute(
        &self,
        api: &'static str,
        execution: &Arc<Execution>,
    ) -> Result<Report, Overloaded> {
        let started = Instant::now();
        let isolation = execution.isolation.as_str();
        let result = self.engine.run(execution).await;
        let (outcome, queued) = match &result {
            Ok(report) => (report.outcome_kind(), report.queue_wait),
            Err(_) => ("overloaded", Duration::ZERO),
        };
        let ran = started.elapsed().saturating_sub(queued);
        self.metrics.execution(api, isolation, outcome, ran, queued);
        result
    }
}
