//! Starting a server process and reading its listening line: shared by the
//! integration tests and the benchmarks.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The line `isoexec` prints on stdout once it is ready, before its address.
pub const ISOEXEC_LISTENING: &str = "isoexec listening on http://";

/// Starts `cmd`, waits for its first stdout line (`prefix` then an
/// address), and keeps draining stdout so the server never blocks on a full
/// pipe. stderr is inherited.
pub fn spawn_listening(cmd: Command, prefix: &str) -> (Child, SocketAddr) {
    spawn_listening_with(cmd, prefix, Stdio::inherit())
}

/// As [`spawn_listening`], with the server's stderr going to `stderr`.
pub fn spawn_listening_with(mut cmd: Command, prefix: &str, stderr: Stdio) -> (Child, SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn the server");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .expect("an address after the prefix");
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    (child, addr)
}
