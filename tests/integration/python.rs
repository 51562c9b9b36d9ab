//! Python over real HTTP: code jobs, script sessions whose files persist,
//! notebooks whose interpreter keeps its state, the command line, and the
//! same limits JavaScript runs under (time, memory, output, recursion, no
//! network, no processes, no host files).
//!
//! What bounds Python input: per call, the job's or cell's `timeout`
//! (wall clock; KeyboardInterrupt first in a notebook), `MEMORY_LIMIT_MB`
//! (the interpreter's wasm memory is charged page by page, besides the
//! heap), `JOB_OUTPUT_BYTES`, `MAX_WRITE_BYTES` and the session quota for
//! files it saves; per client, the same queue share as any job; in total,
//! one ready interpreter per isolate thread and `NOTEBOOK_MEMORY_MB` over
//! every notebook (wasm memory counted). A client that goes away stops its
//! run; the interpreter is discarded.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, TempDir};

async fn job(s: &Server, code: &str, extra: Value) -> Value {
    let mut body = json!({"lang": "python", "code": code});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = s.post("/execute/code", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn session(s: &Server, mode: &str) -> String {
    let r = s
        .post(
            "/api/v1/sessions",
            &json!({"environment": "python", "mode": mode}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["session_id"].as_str().unwrap().to_string()
}

async fn exec(s: &Server, id: &str, body: Value) -> Value {
    let r = s
        .post(&format!("/api/v1/sessions/{id}/execute"), &body)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test]
async fn python_jobs_print_read_stdin_exit_and_trace_back() {
    // An operator's pure-Python packages, under <VENDOR_DIR>/python.
    let vendor = TempDir::new("pyvendor");
    let pkg = vendor.0.join("python/greeting");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("__init__.py"), "from .words import hello\n").unwrap();
    std::fs::write(
        pkg.join("words.py"),
        "def hello(n):\n    return 'hello ' + n\n",
    )
    .unwrap();
    std::fs::write(
        vendor.0.join("python/tally.py"),
        "def count(xs):\n    return len(xs)\n",
    )
    .unwrap();
    let s = Server::start_with(&[("VENDOR_DIR", vendor.0.to_str().unwrap())]);
    let r = job(
        &s,
        "import greeting, tally\nprint(greeting.hello('ada'), tally.count([1, 2]))",
        json!({}),
    )
    .await;
    assert_eq!(r["output"], "hello ada 2\n", "{r}");
    for lang in ["python", "py", "Python3"] {
        let r = s
            .post(
                "/execute/code",
                &json!({"lang": lang, "code": "print('hello', 6 * 7)"}),
            )
            .await
            .json();
        assert_eq!(r["output"], "hello 42\n", "{lang}: {r}");
        assert_eq!(r["exit_code"], 0);
        assert_eq!(r["status"], "done");
    }

    // stdin through input() and sys.stdin; stdout and stderr interleave in
    // the order written; sys.exit(n) is the exit code.
    let r = job(
        &s,
        "import sys\nname = input()\nprint('hi', name)\nprint('warn', file=sys.stderr)\n\
         print(sum(int(x) for x in sys.stdin.read().split()))\nsys.exit(3)",
        json!({"stdin": "ada\n1 2 3\n"}),
    )
    .await;
    assert_eq!(r["output"], "hi ada\nwarn\n6\n", "{r}");
    assert_eq!(r["exit_code"], 3);
    // Output exactly as written: no newline is added to a last partial line.
    let r = job(
        &s,
        "print('a', end='')\nprint('b', end='', flush=True)",
        json!({}),
    )
    .await;
    assert_eq!(r["output"], "ab", "{r}");
    let r = job(&s, "import sys\nsys.exit('bad input')", json!({})).await;
    assert_eq!(
        (r["output"].as_str(), r["exit_code"].as_i64()),
        (Some("bad input\n"), Some(1))
    );

    // An uncaught exception: Python's own traceback with the job's virtual
    // file and the user's line numbers, exit code 1.
    let r = job(
        &s,
        "print('before')\ndef parse(s):\n    return int(s)\n\nparse('x')",
        json!({}),
    )
    .await;
    let out = r["output"].as_str().unwrap();
    assert!(
        out.starts_with("before\nTraceback (most recent call last):\n"),
        "{out}"
    );
    assert!(
        out.contains("File \"/workspace/job.py\", line 5, in <module>"),
        "{out}"
    );
    assert!(
        out.contains("File \"/workspace/job.py\", line 3, in parse"),
        "{out}"
    );
    assert!(
        out.ends_with("ValueError: invalid literal for int() with base 10: 'x'\n"),
        "{out}"
    );
    assert!(!out.contains("driver") && !out.contains("isoexec"), "{out}");
    assert_eq!(r["exit_code"], 1);

    // A syntax error: where, and exit code 1.
    let r = job(&s, "print(1\n", json!({})).await;
    let out = r["output"].as_str().unwrap();
    assert!(out.contains("File \"/workspace/job.py\", line 1"), "{out}");
    assert!(out.contains("SyntaxError: '(' was never closed"), "{out}");
    assert_eq!(r["exit_code"], 1);

    // A package that is not there says what is, and how to add more.
    let r = job(&s, "import numpy", json!({})).await;
    let out = r["output"].as_str().unwrap();
    assert!(
        out.contains("ModuleNotFoundError: No module named 'numpy'"),
        "{out}"
    );
    assert!(
        out.contains("VENDOR_DIR") && out.contains("standard library"),
        "{out}"
    );

    // The standard library is there; every interpreter has its own random
    // state, though all start from one memory snapshot.
    let code = "import json, random, re, datetime\nprint(random.random(), json.dumps({'a': [1]}))";
    let a = job(&s, code, json!({})).await;
    let b = job(&s, code, json!({})).await;
    assert!(
        a["output"].as_str().unwrap().ends_with(" {\"a\": [1]}\n"),
        "{a}"
    );
    assert_ne!(
        a["output"], b["output"],
        "two jobs drew the same random numbers"
    );

    // Nothing a job leaves reaches the next: each gets a fresh interpreter.
    job(
        &s,
        "import builtins\nbuiltins.planted = 1\nopen('/tmp/x', 'w').write('1')",
        json!({}),
    )
    .await;
    let r = job(
        &s,
        "import builtins, os\nprint(hasattr(builtins, 'planted'), os.path.exists('/tmp/x'))",
        json!({}),
    )
    .await;
    assert_eq!(r["output"], "False False\n", "{r}");
    s.assert_healthy().await;
}

#[tokio::test]
async fn python_runs_within_the_limits_javascript_runs_within() {
    let s = Server::start_with(&[("JOB_OUTPUT_BYTES", "4096")]);
    // Wall clock: a loop ends at its timeout.
    let started = Instant::now();
    let r = job(&s, "while True:\n    pass", json!({"timeout": 500})).await;
    assert_eq!(r["status"], "timeout", "{r}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // Memory: growth past MEMORY_LIMIT_MB is refused and the run killed;
    // a single allocation larger than any heap is a MemoryError.
    let r = job(&s, "s = 'x'\nwhile True:\n    s = s + s", json!({})).await;
    assert_eq!(r["status"], "killed", "{r}");
    assert!(r["error"].as_str().unwrap().contains("memory"), "{r}");
    for code in [
        "b = bytearray(2**31 - 1)",
        "xs = [0] * 10**9",
        "b = bytearray(10**10)",
    ] {
        let r = job(&s, code, json!({})).await;
        let out = r["output"].as_str().unwrap();
        assert!(
            r["status"] == "killed" || out.contains("MemoryError") || out.contains("OverflowError"),
            "{code}: {r}"
        );
    }

    // Recursion: Python's RecursionError, never a native stack overflow.
    let r = job(&s, "def f(n):\n    return f(n + 1)\nf(0)", json!({})).await;
    assert!(
        r["output"].as_str().unwrap().contains("RecursionError"),
        "{r}"
    );
    assert_eq!(r["exit_code"], 1);

    // Output: capped at JOB_OUTPUT_BYTES and flagged.
    let r = job(&s, "for i in range(100000):\n    print(i)", json!({})).await;
    assert_eq!(r["output_truncated"], true, "{r}");
    assert!(r["output"].as_str().unwrap().len() <= 4096 + 200);

    // No host files, no processes, no threads, no network, no WebAssembly:
    // Python reaches what JavaScript does, and no more.
    let probe = format!(
        r#"
out = []
try:
    open('/etc/passwd').read(); out.append('host-file')
except OSError: pass
try:
    import subprocess; subprocess.run(['ls']); out.append('process')
except Exception: pass
try:
    import threading; threading.Thread(target=print).start(); out.append('thread')
except Exception: pass
try:
    import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1); out.append('socket')
except Exception: pass
try:
    import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health'); out.append('http')
except Exception: pass
import js
if hasattr(js, 'WebAssembly'): out.append('wasm')
print(out)
"#,
        port = s.addr.port()
    );
    let r = job(&s, &probe, json!({})).await;
    assert_eq!(r["output"], "[]\n", "{r}");

    // WebAssembly stays out of JavaScript's reach.
    let r = s
        .post(
            "/execute/code",
            &json!({"lang": "js", "code": "console.log(typeof WebAssembly)"}),
        )
        .await
        .json();
    assert_eq!(r["output"], "undefined\n");
    s.assert_healthy().await;
}

#[tokio::test]
async fn a_python_run_whose_client_goes_away_stops() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    // Warm up: the first interpreter of the process makes the snapshot.
    assert_eq!(job(&s, "print(1)", json!({})).await["output"], "1\n");
    // A session's run ends with its caller (a job, by design, runs on to
    // complete its record).
    let id = session(&s, "script").await;
    let body = serde_json::to_vec(&json!({
        "code": "while True:\n    pass", "timeout": 60000,
    }))
    .unwrap();
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(format!("/api/v1/sessions/{id}/execute"))
        .header("host", s.addr.to_string())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let pending = tokio::spawn(async move { sender.send_request(req).await });
    let started = Instant::now();
    loop {
        if s.get("/health").await.json()["pool"]["busy"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pending.abort();
    conn.abort();
    let hung_up = Instant::now();
    // The only isolate thread, and the session, are free again long before
    // the 60 s deadline.
    assert_eq!(
        job(&s, "print('next')", json!({})).await["output"],
        "next\n"
    );
    let r = exec(&s, &id, json!({"code": "print('again')"})).await;
    assert_eq!(r["stdout"], "again\n", "{r}");
    assert!(hung_up.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn python_sessions_keep_files_and_notebook_state() {
    let s = Server::start_with(&[("SESSION_DISK_BYTES", "65536")]);
    // Script mode: main.py by default; files persist and import each other;
    // what a program writes is saved in the session, within its quota.
    let id = session(&s, "script").await;
    let r = exec(
        &s,
        &id,
        json!({"code": "def double(x):\n    return 2 * x\n", "filename": "helpers.py"}),
    )
    .await;
    assert_eq!(r["exit_code"], 0, "{r}");
    let r = exec(
        &s,
        &id,
        json!({"code": "import os\nfrom helpers import double\nprint(double(21), os.getcwd(), sorted(os.listdir('.')))\nopen('out.txt', 'w').write('saved')"}),
    )
    .await;
    assert_eq!(
        r["stdout"], "42 /session ['helpers.py', 'main.py']\n",
        "{r}"
    );
    let r = exec(&s, &id, json!({"code": "print(open('out.txt').read())"})).await;
    assert_eq!(r["stdout"], "saved\n", "{r}");
    let r = exec(
        &s,
        &id,
        json!({"code": "open('big.bin', 'wb').write(b'x' * 100000)"}),
    )
    .await;
    assert_eq!(r["exit_code"], 1, "{r}");
    assert!(
        r["stderr"]
            .as_str()
            .unwrap()
            .contains("big.bin was not saved"),
        "{r}"
    );
    let r = exec(&s, &id, json!({"code": "1/0"})).await;
    assert_eq!(
        (r["status"].as_str(), r["exit_code"].as_i64()),
        (Some("completed"), Some(1))
    );
    assert!(
        r["stderr"]
            .as_str()
            .unwrap()
            .contains("File \"/session/main.py\", line 1"),
        "{r}"
    );

    // Notebook mode: one interpreter for the session's life.
    let id = session(&s, "notebook").await;
    let r = exec(
        &s,
        &id,
        json!({"code": "import math\nxs = [1, 2, 3]\ndef sq(v):\n    return v * v"}),
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), r["result"].clone()),
        (Some("completed"), Value::Null),
        "{r}"
    );
    let r = exec(&s, &id, json!({"code": "print('hi')\n[sq(x) for x in xs]"})).await;
    assert_eq!(
        (r["stdout"].as_str(), r["result"].clone()),
        (Some("hi\n"), json!([1, 4, 9]))
    );
    let r = exec(&s, &id, json!({"code": "object()"})).await;
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .starts_with("<object object at "),
        "{r}"
    );
    // A timeout raises KeyboardInterrupt and keeps the state.
    let r = exec(
        &s,
        &id,
        json!({"code": "xs.append(4)\nwhile True:\n    pass", "timeout": 500}),
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), r["state_reset"].as_bool()),
        (Some("timeout"), Some(false)),
        "{r}"
    );
    assert!(
        r["stderr"].as_str().unwrap().contains("KeyboardInterrupt"),
        "{r}"
    );
    let r = exec(&s, &id, json!({"code": "len(xs), math.pi > 3"})).await;
    assert_eq!(r["result"], json!([4, true]), "{r}");
    // An exception keeps it too, and shows the cell's line.
    let r = exec(&s, &id, json!({"code": "y = 1\n1 / 0"})).await;
    let err = r["stderr"].as_str().unwrap();
    assert!(
        err.contains("line 2") && err.contains("1 / 0") && err.contains("ZeroDivisionError"),
        "{r}"
    );
    assert_eq!(exec(&s, &id, json!({"code": "y"})).await["result"], 1);
    // A memory kill loses the state and says so.
    let r = exec(
        &s,
        &id,
        json!({"code": "s = 'x'\nwhile True:\n    s = s + s"}),
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), r["state_reset"].as_bool()),
        (Some("error"), Some(true)),
        "{r}"
    );
    assert!(
        r["stderr"].as_str().unwrap().contains("memory limit"),
        "{r}"
    );
    let r = exec(&s, &id, json!({"code": "xs"})).await;
    assert!(r["stderr"].as_str().unwrap().contains("NameError"), "{r}");
    s.assert_healthy().await;
}

#[tokio::test]
async fn the_command_line_runs_python_files() {
    let dir = TempDir::new("pycli");
    let file = dir.0.join("greet.py");
    std::fs::write(&file, "import sys\nprint('hi', input())\nsys.exit(4)\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_isoexec"))
        .arg("run")
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"ada\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi ada\n");
    assert_eq!(out.status.code(), Some(4));
    let bad = dir.0.join("bad.py");
    std::fs::write(&bad, "x = 1\nraise KeyError('k')\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_isoexec"))
        .arg("run")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.py\", line 2") && err.contains("KeyError: 'k'"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn the_python_snapshot_is_kept_in_data_dir_and_a_damaged_one_is_replaced() {
    let mut s = Server::start();
    assert_eq!(job(&s, "print(1)", json!({})).await["output"], "1\n");
    let dir = s.data_dir().join("python");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .expect("a kept snapshot");
    let whole = std::fs::read(&file).unwrap();
    assert!(whole.starts_with(b"ISOPYSN1") && whole.len() > 1 << 20);
    // Damaged (a byte flipped past its header): not restored, replaced.
    let mut damaged = whole.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0xff;
    std::fs::write(&file, &damaged).unwrap();
    s.kill();
    let data = s.data_dir().to_str().unwrap().to_string();
    let s2 = Server::start_with(&[("DATA_DIR", &data)]);
    let r = job(&s2, "import random\nprint(random.random() < 1)", json!({})).await;
    assert_eq!(r["output"], "True\n", "{r}");
    let again = std::fs::read(&file).unwrap();
    assert!(again.starts_with(b"ISOPYSN1"));
    assert_ne!(again, damaged, "the damaged snapshot was kept");
}
