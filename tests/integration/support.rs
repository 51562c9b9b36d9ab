//! Test support: starts the real `isoexec` binary on port 0 and talks HTTP
//! to it with a plain hyper client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::spawn::{ISOEXEC_LISTENING, spawn_listening};

/// A running server process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Its workspace directory (a fresh temporary one unless given).
    pub workspace: PathBuf,
    owned_dir: Option<TempDir>,
    /// The default `DATA_DIR`, removed with the server.
    data_dir: TempDir,
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "isoexec-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(std::fs::canonicalize(&dir).expect("canonical temp dir"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A finished response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy), for messages and text replies.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts the binary with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        Server::start_under(&[], env)
    }

    /// Starts the binary as the last argument of `wrapper` (a command such
    /// as `unshare --pid --fork`), with extra environment variables.
    pub fn start_under(wrapper: &[&str], env: &[(&str, &str)]) -> Server {
        let bin = env!("CARGO_BIN_EXE_isoexec");
        let mut cmd = match wrapper.split_first() {
            None => Command::new(bin),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
        };
        cmd.env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("POOL_SIZE", "2")
            .env("LOG_LEVEL", "warn");
        let owned_dir = if env.iter().any(|(k, _)| *k == "WORKSPACE_DIR") {
            None
        } else {
            let dir = TempDir::new("ws");
            cmd.env("WORKSPACE_DIR", &dir.0);
            Some(dir)
        };
        // Job records go to a temporary directory unless the test names one.
        let data_dir = TempDir::new("data");
        cmd.env("DATA_DIR", &data_dir.0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let workspace = owned_dir.as_ref().map_or_else(
            || {
                PathBuf::from(
                    env.iter()
                        .find(|(k, _)| *k == "WORKSPACE_DIR")
                        .map_or("", |(_, v)| *v),
                )
            },
            |d| d.0.clone(),
        );
        let (child, addr) = spawn_listening(cmd, ISOEXEC_LISTENING);
        Server {
            child,
            addr,
            workspace,
            owned_dir,
            data_dir,
        }
    }

    /// The server's `DATA_DIR` (unless the test named another).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir.0
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.connect()
            .await
            .request(method, path, headers, body)
            .await
    }

    /// A keep-alive connection: its requests share one TCP connection.
    pub async fn connect(&self) -> Conn {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        Conn {
            sender,
            host: self.addr.to_string(),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_text(path, serde_json::to_vec(body).expect("json"))
            .await
    }

    /// `POST` of a JSON body given as text, exactly as written.
    pub async fn post_text(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.connect().await.post_text(path, body).await
    }

    /// `POST /run` with `script`, `fn` and any extra fields.
    pub async fn call(&self, script: &str, func: &str, extra: Value) -> Reply {
        self.connect().await.call(script, func, extra).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.request(
            "PUT",
            path,
            &[("content-type", "application/json")],
            serde_json::to_vec(body).expect("json"),
        )
        .await
    }

    /// Saves `code` as `code_id` and checks that it worked.
    pub async fn save(&self, code_id: &str, code: &str) {
        let r = self
            .put(
                "/workspace",
                &serde_json::json!({"codeId": code_id, "code": code}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    /// `POST /execute` of `code_id` with extra fields.
    pub async fn execute(&self, code_id: &str, extra: Value) -> Reply {
        let mut body = serde_json::json!({ "codeId": code_id });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.post("/execute", &body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], Bytes::new()).await
    }

    /// The value of the unlabelled series `name` in `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = String::from_utf8_lossy(&self.get("/metrics").await.body).into_owned();
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics: {text}"))
    }

    /// Health says ok and the pool is back at full size with nothing busy.
    pub async fn assert_healthy(&self) {
        let mut last = Value::Null;
        for _ in 0..100 {
            let h = self.get("/health").await;
            assert_eq!(h.status, 200);
            last = h.json();
            if last["pool"]["busy"] == 0 && last["pool"]["idle"] == last["pool"]["size"] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("pool did not return to idle: {last}");
    }
}

/// One HTTP/1 connection to the server; dropping it closes it.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.host.as_str());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request");
        let resp = self.sender.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `POST /run` with `script`, `fn` and any extra fields.
    pub async fn call(&mut self, script: &str, func: &str, extra: Value) -> Reply {
        let mut body = serde_json::json!({ "script": script, "fn": func });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.post_text("/run", serde_json::to_vec(&body).expect("json"))
            .await
    }

    /// `POST` of a JSON body given as text, exactly as written.
    pub async fn post_text(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.request("POST", path, &[("content-type", "application/json")], body)
            .await
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.request("GET", path, &[], Bytes::new()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.owned_dir.take());
    }
}

/// The process ids of `pid`'s children (listed under each of its threads).
/// User and system CPU time in clock ticks (100 a second here) from a
/// `/proc` stat file (a process's or one of its threads'); 0 if unreadable.
pub fn stat_cpu_ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n(11) + n(12)
}

pub fn child_pids(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether process `pid` was started with `arg` among its arguments.
pub fn has_arg(pid: u32, arg: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|b| b.split(|x| *x == 0).any(|a| a == arg))
}

/// `pid`'s children started with `arg` (a subcommand: `worker`,
/// `compile-helper`).
pub fn children_with_arg(pid: u32, arg: &[u8]) -> Vec<u32> {
    child_pids(pid)
        .into_iter()
        .filter(|&c| has_arg(c, arg))
        .collect()
}
