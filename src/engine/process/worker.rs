//! The worker process's side: `isoexec worker` runs one execution it reads
//! from stdin in a one-thread pool of its own and prints the report.

use std::io::{Read, Write};

use super::OPTIONS_ENV;
use crate::engine::rlimit::set_rlimit;
use crate::engine::types::{Execution, Isolation, Task};
use crate::engine::{Engine, EngineOptions};

/// Private data a worker may map beyond the heap limit: V8's own
/// structures and the one-time margin the near-heap-limit callback grants
/// while a runaway script unwinds.
const DATA_HEADROOM: u64 = 2 * 1024 * 1024 * 1024;

/// The worker's OS limits, set by itself before V8 starts and before it
/// reads its execution: private data (`RLIMIT_DATA`) at the memory limit
/// plus V8's headroom, no core files, and no gaining privileges through
/// exec.
fn limit_self(memory_limit: u64) {
    let data = memory_limit + DATA_HEADROOM;
    set_rlimit(libc::RLIMIT_DATA, data, data);
    set_rlimit(libc::RLIMIT_CORE, 0, 0);
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
}

/// CPU seconds this process has used so far.
fn cpu_seconds_used() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec).max(0) as u64
}

/// The `isoexec worker` entry point: one execution from stdin, one report
/// on stdout.
pub(crate) fn serve() -> std::process::ExitCode {
    crate::engine::lifeline::hold();
    let options: EngineOptions = match std::env::var(OPTIONS_ENV)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("isoexec worker: no usable {OPTIONS_ENV}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    limit_self(options.limits.memory_limit_bytes as u64);
    crate::engine::init_v8();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isoexec worker: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: std::io::Result<()> = rt.block_on(async {
        // The server sends a function-call script compiled; a program and
        // its imports are compiled by a helper this worker starts if needed.
        let engine = Engine::start_in_worker(&options)?;
        {
            let mut out = std::io::stdout().lock();
            out.write_all(b"ready\n")?;
            out.flush()?;
        }
        let mut input = Vec::new();
        std::io::stdin().lock().read_to_end(&mut input)?;
        let mut execution: Execution =
            serde_json::from_slice(&input).map_err(std::io::Error::other)?;
        if let (Task::Call { script, .. }, Some(code)) =
            (&execution.task, execution.precompiled.take())
        {
            engine.seed_compiled(script, code);
        }
        // The one isolate thread of this worker runs it.
        execution.isolation = Isolation::Isolate;
        // Past the execution's own limits the kernel ends the process: CPU time
        // (SIGXCPU, then SIGKILL at the hard limit).
        let cpu_budget = execution.cpu_limit.unwrap_or(execution.timeout).as_secs() + 2;
        let cpu_now = cpu_seconds_used();
        set_rlimit(
            libc::RLIMIT_CPU,
            cpu_now + cpu_budget,
            cpu_now + cpu_budget + 1,
        );
        let report = engine
            .run(&std::sync::Arc::new(execution))
            .await
            .map_err(|_| std::io::Error::other("the worker's pool refused the execution"))?;
        // One line (JSON escapes every newline inside it): the server takes
        // the report at its newline, without waiting for this process to
        // be torn down.
        let mut bytes = serde_json::to_vec(&report).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)?;
        out.flush()
    });
    match result {
        // Skip destructors: the process is done, and tearing down V8 only
        // costs time.
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("isoexec worker: {e}");
            std::process::exit(1)
        }
    }
}
