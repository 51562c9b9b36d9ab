//! What user code may touch outside its isolate: files under the read and
//! write allow-lists and hosts on the network allow-list. A path is judged by
//! where the opened file really is (read back from `/proc/self/fd`), so
//! neither `..` nor a symlink, nor one swapped in between check and use, can
//! lead outside the allowed roots.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The capabilities granted to every execution.
#[derive(Debug, Clone, Default)]
pub(crate) struct Permissions {
    /// Directories (canonical) whose files may be read.
    pub read: Vec<PathBuf>,
    /// Directories (canonical) whose files may be written.
    pub write: Vec<PathBuf>,
    /// Hosts (`name` or `name:port`) `fetch` may reach.
    pub net: Vec<String>,
    /// What relative paths are relative to.
    pub base_dir: PathBuf,
    /// Variables (`ALLOW_ENV`) code may ask for even when they are unset;
    /// asking for any other (not in the call's env) is refused.
    pub env: Vec<String>,
}

/// Why a file operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FsError {
    /// Outside the allow-list; the message names the path.
    Denied(String),
    NotFound(String),
    Other(String),
}

impl Permissions {
    /// `path` made absolute against the base directory and cleaned of `.`
    /// and `..` without touching the file system.
    pub(crate) fn absolute(&self, path: &str) -> PathBuf {
        normalize(&self.base_dir.join(path))
    }

    /// Reads a whole file inside the read roots, up to `max` bytes.
    pub(crate) fn read_file(&self, path: &str, max: usize) -> Result<Vec<u8>, FsError> {
        let wanted = self.absolute(path);
        let denied = || {
            FsError::Denied(format!(
                "Requires read access to \"{path}\"; it is outside ALLOW_READ"
            ))
        };
        if !within(&wanted, &self.read) {
            return Err(denied());
        }
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&wanted)
            .map_err(|e| io_error(e, path))?;
        if !within(&real_path(&file).ok_or_else(denied)?, &self.read) {
            return Err(denied());
        }
        let meta = file.metadata().map_err(|e| io_error(e, path))?;
        if meta.is_dir() {
            return Err(FsError::Other(format!("Is a directory: \"{path}\"")));
        }
        if !meta.is_file() {
            return Err(FsError::Other(format!("Not a regular file: \"{path}\"")));
        }
        if meta.len() > max as u64 {
            return Err(FsError::Other(format!(
                "\"{path}\" is {} bytes, more than the {max} a read may return",
                meta.len()
            )));
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        file.take(max as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| io_error(e, path))?;
        if data.len() > max {
            return Err(FsError::Other(format!(
                "\"{path}\" grew past the {max} bytes a read may return"
            )));
        }
        Ok(data)
    }

    /// Writes (or appends to) a file inside the write roots. The last
    /// component must not be a symlink.
    pub(crate) fn write_file(&self, path: &str, data: &[u8], append: bool) -> Result<(), FsError> {
        let wanted = self.absolute(path);
        let denied = || {
            FsError::Denied(format!(
                "Requires write access to \"{path}\"; it is outside ALLOW_WRITE"
            ))
        };
        if !within(&wanted, &self.write) {
            return Err(denied());
        }
        let (Some(parent), Some(name)) = (wanted.parent(), wanted.file_name()) else {
            return Err(denied());
        };
        let parent = std::fs::canonicalize(parent).map_err(|e| io_error(e, path))?;
        if !within(&parent, &self.write) {
            return Err(denied());
        }
        let mut options = File::options();
        options
            .write(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        if append {
            options.append(true);
        } else {
            options.truncate(true);
        }
        let mut file = match options.open(parent.join(name)) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(denied()),
            Err(e) => return Err(io_error(e, path)),
        };
        if !within(&real_path(&file).ok_or_else(denied)?, &self.write) {
            return Err(denied());
        }
        if !file.metadata().map_err(|e| io_error(e, path))?.is_file() {
            return Err(FsError::Other(format!("Not a regular file: \"{path}\"")));
        }
        file.write_all(data).map_err(|e| io_error(e, path))
    }

    /// Whether `fetch` may reach `host` (with `port`, the URL's port or its
    /// scheme's default).
    pub(crate) fn net_allowed(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.net.iter().any(|entry| match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(host)
                    && p.parse() == Ok(port)
            }
            _ => entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host),
        })
    }
}

/// Where an open file really is.
fn real_path(file: &File) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

fn within(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

fn io_error(e: io::Error, path: &str) -> FsError {
    match e.kind() {
        io::ErrorKind::NotFound => {
            FsError::NotFound(format!("No such file or directory: \"{path}\""))
        }
        _ => FsError::Other(format!("{e}: \"{path}\"")),
    }
}

/// Removes `.` and resolves `..` lexically (never above the root).
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(dir: &Path) -> Permissions {
        Permissions {
            env: Vec::new(),
            read: vec![dir.to_path_buf()],
            write: vec![dir.to_path_buf()],
            net: vec!["example.com".into(), "localhost:8080".into()],
            base_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn reads_stay_inside_their_roots() {
        let dir = std::env::temp_dir().join(format!("isoexec-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = std::fs::canonicalize(&dir).unwrap();
        let p = perms(&dir);
        p.write_file("a.txt", b"hi", false).unwrap();
        p.write_file("a.txt", b"!", true).unwrap();
        assert_eq!(p.read_file("a.txt", 100).unwrap(), b"hi!");
        assert_eq!(
            p.read_file(&format!("{}/a.txt", dir.display()), 100)
                .unwrap(),
            b"hi!"
        );
        assert!(matches!(
            p.read_file("/etc/passwd", 1 << 20),
            Err(FsError::Denied(_))
        ));
        assert!(matches!(
            p.read_file("../../../../etc/passwd", 1 << 20),
            Err(FsError::Denied(_))
        ));
        assert!(matches!(
            p.read_file("missing.txt", 100),
            Err(FsError::NotFound(_))
        ));
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        assert!(matches!(
            p.read_file("link", 1 << 20),
            Err(FsError::Denied(_))
        ));
        assert!(matches!(
            p.write_file("link", b"x", false),
            Err(FsError::Denied(_))
        ));
        assert!(matches!(
            p.write_file("/tmp/isoexec-out", b"x", false),
            Err(FsError::Denied(_))
        ));
        assert!(matches!(p.read_file("a.txt", 1), Err(FsError::Other(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let p = perms(Path::new("/"));
        assert!(p.net_allowed("example.com", 443));
        assert!(p.net_allowed("EXAMPLE.com", 80));
        assert!(p.net_allowed("localhost", 8080));
        assert!(!p.net_allowed("localhost", 80));
        assert!(!p.net_allowed("evil.com", 443));
    }

    #[test]
    fn normalize_never_climbs_above_the_root() {
        assert_eq!(
            normalize(Path::new("/a/b/../../../etc")),
            PathBuf::from("/etc")
        );
        assert_eq!(normalize(Path::new("/a/./b/..")), PathBuf::from("/a"));
    }
}
