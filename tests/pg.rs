//! A real PostgreSQL server for tests and benches: Debian's binaries, run
//! as the `postgres` user (they refuse root), on a loopback port, with its
//! files in a temporary directory. Where PostgreSQL is not installed,
//! `Postgres::start` says so and answers `None`; with
//! `ISOEXEC_REQUIRE_POSTGRES` set (as `.ci/run` sets it) it panics instead.

#![allow(dead_code, reason = "tests and benches each use a part")]

use std::path::PathBuf;
use std::process::Command;

/// A PostgreSQL server of the caller's own, stopped (immediately) and its
/// files removed when dropped.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

fn as_postgres(args: &[&str]) -> Command {
    // initdb and pg_ctl refuse to run as root.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c.args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    cmd.stdout(std::process::Stdio::null());
    cmd
}

impl Postgres {
    /// Starts a fresh server, or says why it cannot (`None`).
    pub fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                dirs.flatten()
                    .map(|d| d.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            });
        let Some(bin) = bin else {
            let why = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)";
            assert!(
                std::env::var_os("ISOEXEC_REQUIRE_POSTGRES").is_none(),
                "{why}, and ISOEXEC_REQUIRE_POSTGRES is set"
            );
            eprintln!("skipped: {why}; install Debian's postgresql to run it");
            return None;
        };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "isoexec-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for PostgreSQL");
        let chown = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status();
        if unsafe { libc::geteuid() } == 0 {
            assert!(
                chown.is_ok_and(|s| s.success()),
                "chown of the data directory"
            );
        }
        let data = dir.join("data");
        let path = |name: &str| bin.join(name).display().to_string();
        let status = as_postgres(&[
            &path("initdb"),
            "-D",
            &data.display().to_string(),
            "-A",
            "trust",
            "-U",
            "isoexec",
            "--no-sync",
        ])
        .status()
        .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = Postgres { bin, dir, port };
        pg.pg_ctl_start();
        Some(pg)
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let status = as_postgres(&[
            &self.bin.join("pg_ctl").display().to_string(),
            "-D",
            &self.dir.join("data").display().to_string(),
            "-l",
            &self.dir.join("log").display().to_string(),
            "-w",
            "-o",
            &options,
            "start",
        ])
        .status()
        .expect("run pg_ctl");
        assert!(status.success(), "pg_ctl start failed");
    }

    /// Stops the server at once (as a crash would).
    pub fn stop(&self) {
        let _ = as_postgres(&[
            &self.bin.join("pg_ctl").display().to_string(),
            "-D",
            &self.dir.join("data").display().to_string(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .status();
    }

    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    pub fn url(&self) -> String {
        format!("postgres://isoexec@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` and returns its rows, each a list of text values.
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test's PostgreSQL");
        let driver = tokio::spawn(connection);
        let mut out = Vec::new();
        for message in client.simple_query(sql).await.expect("query") {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                out.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(String::from))
                        .collect(),
                );
            }
        }
        drop(client);
        let _ = driver.await;
        out
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
