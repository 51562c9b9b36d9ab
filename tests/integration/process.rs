//! `"isolation": "process"`: the same contract from a worker process, and
//! the server surviving whatever happens to the worker.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::Server;

/// The server's `isoexec worker` children (compile helpers are not counted).
fn children(pid: u32) -> Vec<i32> {
    crate::support::children_with_arg(pid, b"worker")
        .into_iter()
        .map(|p| p as i32)
        .collect()
}

#[tokio::test]
async fn process_calls_return_results_logs_and_data_uris() {
    let server = Server::start();
    let script = "export async function f(p: number) {\n\
                  console.info('from the worker', p);\n\
                  await new Promise((r) => setTimeout(r, 5));\n\
                  return { n: p * 2, png: new Uint8Array([0x89,0x50,0x4E,0x47,0x0D,0x0A,0x1A,0x0A]) };\n}";
    for _ in 0..3 {
        let r = server
            .call(script, "f", json!({"payload": 21, "isolation": "process"}))
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let b = r.json();
        assert_eq!(
            b["result"],
            json!({"n": 42, "png": "data:image/png;base64,iVBORw0KGgo="})
        );
        assert_eq!(b["logs"][0]["level"], "info");
        assert_eq!(b["logs"][0]["message"], "from the worker 21");
    }
    // The same error kinds as in-process.
    let r = server
        .call(
            "export function f() { throw new RangeError('no'); }",
            "f",
            json!({"isolation": "process"}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["kind"], "exception");
    assert_eq!(r.json()["details"]["name"], "RangeError");
    let r = server
        .call("export const g = 1;", "f", json!({"isolation": "process"}))
        .await;
    assert_eq!(r.json()["kind"], "fn_not_found");

    // /execute takes the option too.
    server
        .save("p", "console.log(JSON.stringify({pid: typeof Deno.pid}));")
        .await;
    let r = server.execute("p", json!({"isolation": "process"})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"], json!({"pid": "number"}));
}

#[tokio::test]
async fn process_timeouts_and_memory_limits_end_the_worker_not_the_server() {
    let server = Server::start();
    let pid = server.pid();
    let started = Instant::now();
    let r = server
        .call(
            "export function f() { while (true) {} }",
            "f",
            json!({"timeout": 300, "isolation": "process"}),
        )
        .await;
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["kind"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    let r = server
        .call(
            "export function f() { const a = []; while (true) a.push(new Array(100000).fill(1)); }",
            "f",
            json!({"isolation": "process"}),
        )
        .await;
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["kind"], "memory_limit");

    let r = server
        .call(
            "export const f = () => 'fine'",
            "f",
            json!({"isolation": "process"}),
        )
        .await;
    assert_eq!(r.json()["result"], "fine");
    assert_eq!(server.pid(), pid);
}

/// CPU time a process has used, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    crate::support::stat_cpu_ticks(&format!("/proc/{pid}/stat"))
}

#[tokio::test]
async fn a_crashing_worker_is_internal_with_its_signal() {
    // One worker per call, so the only child is the one running the job.
    let server = std::sync::Arc::new(Server::start_with(&[("PROCESS_PRESTART", "0")]));
    let pid = server.pid();
    let s = server.clone();
    let call = tokio::spawn(async move {
        s.call(
            "export function f() { console.log('spinning'); while (true) {} }",
            "f",
            json!({"timeout": 20000, "isolation": "process"}),
        )
        .await
    });
    // Once the worker has clearly been spinning (well past its start-up),
    // abort it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let worker = loop {
        assert!(Instant::now() < deadline, "no busy worker appeared");
        if let Some(&w) = children(pid).iter().find(|&&c| cpu_ticks(c) >= 50) {
            break w;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // SAFETY: plain kill(2) of the server's child process.
    unsafe { libc::kill(worker, libc::SIGABRT) };
    let r = call.await.unwrap();
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    let b = r.json();
    assert_eq!(b["kind"], "internal");
    assert_eq!(b["details"]["signal"], "SIGABRT");
    let r = server
        .call(
            "export const f = () => 7",
            "f",
            json!({"isolation": "process"}),
        )
        .await;
    assert_eq!(r.json()["result"], 7);
    assert_eq!(server.pid(), pid);
}

#[tokio::test]
async fn dead_prestarted_workers_are_replaced() {
    let server = Server::start_with(&[("PROCESS_PRESTART", "2")]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while children(server.pid()).len() < 2 {
        assert!(Instant::now() < deadline, "workers were not pre-started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = children(server.pid());
    for &child in &killed {
        // SAFETY: plain kill(2) of the server's child processes.
        unsafe { libc::kill(child, libc::SIGKILL) };
    }
    // Wait until they are dead (zombies, or reaped already).
    for child in killed {
        while std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|st| {
            st.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        }) {
            assert!(Instant::now() < deadline, "a killed worker did not die");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for n in 0..3 {
        let r = server
            .call(
                "export const f = (n) => n",
                "f",
                json!({"payload": n, "isolation": "process"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["result"], n);
    }
    let r = server
        .call("export const f = () => 8", "f", json!({}))
        .await;
    assert_eq!(r.json()["result"], 8);
}

#[tokio::test]
async fn workers_can_be_spawned_per_call() {
    let server = Server::start_with(&[("PROCESS_PRESTART", "0")]);
    let r = server
        .call(
            "export const f = () => 'cold'",
            "f",
            json!({"isolation": "process"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"], "cold");
    // The worker is not kept: it exits once its report is read (and is
    // reaped off the call's path, so give it a moment).
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !children(server.pid()).is_empty() && std::time::Instant::now() < gone {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(children(server.pid()).is_empty());
}

#[tokio::test]
async fn a_worker_holds_its_os_limits_before_it_runs_anything() {
    let server = Server::start_with(&[("PROCESS_PRESTART", "1"), ("MEMORY_LIMIT_MB", "64")]);
    // A prestarted worker has set its limits before it said it was ready.
    let mut worker = None;
    for _ in 0..250 {
        worker = children(server.pid()).into_iter().find(|&p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.windows(6).any(|w| w == b"worker"))
                && std::fs::read_to_string(format!("/proc/{p}/status"))
                    .is_ok_and(|s| s.contains("NoNewPrivs:\t1"))
        });
        if worker.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let worker = worker.expect("a prestarted worker with no new privileges");
    let limits = std::fs::read_to_string(format!("/proc/{worker}/limits")).unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap()
    };
    let data = (64u64 << 20) + (2u64 << 30);
    assert!(
        line("Max data size").contains(&data.to_string()),
        "{limits}"
    );
    assert_eq!(line("Max core file size")[4], "0", "{limits}");
}
