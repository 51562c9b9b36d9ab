//! Saved code: `<codeId>.ts` files in `WORKSPACE_DIR`, written atomically and
//! durably so that a crash or two concurrent saves of one `codeId` never leave
//! a torn or mixed file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

/// Largest code a save accepts, in bytes (after fence extraction).
pub const MAX_CODE_BYTES: usize = 10 * 1024 * 1024;

/// Free disk space below which saves, session files and new job records are
/// refused (507), so that what was already accepted can still be completed.
pub const MIN_FREE_DISK: u64 = 64 * 1024 * 1024;

/// Free bytes for an unprivileged writer on the file system of `dir`.
pub fn free_disk(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs(3) with a valid NUL-terminated path and an owned,
    // zeroed struct to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// An error when the file system of `dir` has less than `MIN_FREE_DISK`
/// free.
pub fn ensure_room(dir: &Path) -> io::Result<()> {
    match free_disk(dir) {
        Some(free) if free < MIN_FREE_DISK => Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("less than {} MiB of disk is free", MIN_FREE_DISK >> 20),
        )),
        _ => Ok(()),
    }
}
/// Longest `codeId`. A saved file is `<codeId>.ts`, and Linux file systems cap a name at 255
/// bytes: 252 characters is the longest codeId that can be stored.
pub const MAX_CODE_ID_CHARS: usize = 252;

/// Checks a `codeId`: 1–252 letters, digits, `-` or `_`. The message says
/// what is wrong.
pub fn validate_code_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("codeId must not be empty".into());
    }
    if id.len() > MAX_CODE_ID_CHARS {
        return Err(format!(
            "codeId is {} characters long; at most {MAX_CODE_ID_CHARS} are allowed (the saved \
             file is <codeId>.ts, and file names are limited to 255 bytes)",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "codeId may only contain letters, digits, '-' and '_'; found {c:?}"
        ));
    }
    Ok(())
}

/// Fence languages whose block is taken as the code.
const CODE_FENCES: [&str; 5] = ["", "ts", "typescript", "js", "javascript"];

/// The code to save from `text`: the body of its first closed code fence
/// (```` ```ts ````, ```` ```typescript ````, ```` ```js ````,
/// ```` ```javascript ```` or a bare ```` ``` ````), else the whole text.
/// Blocks fenced for other languages are skipped; an unclosed fence means
/// the text is not markdown, and all of it is kept.
pub fn extract_code(text: &str) -> &str {
    let mut offset = 0;
    let mut open: Option<(bool, usize)> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let Some(rest) = trimmed.strip_prefix("```") else {
            continue;
        };
        match open {
            None => {
                let lang = rest.trim().to_ascii_lowercase();
                open = Some((CODE_FENCES.contains(&lang.as_str()), offset));
            }
            Some((wanted, body_start)) if rest.trim().is_empty() => {
                if wanted {
                    let body = &text[body_start..start];
                    return body
                        .strip_suffix('\n')
                        .map_or(body, |b| b.strip_suffix('\r').unwrap_or(b));
                }
                open = None;
            }
            Some(_) => {}
        }
    }
    text
}

/// Whether `text` is markdown whose first code fence is JSX (`tsx` or
/// `jsx`), which this server does not run: the message to give, if so.
pub fn jsx_fence(text: &str) -> Option<String> {
    let first = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("```"))?
        .trim()
        .to_ascii_lowercase();
    matches!(first.as_str(), "tsx" | "jsx").then(|| {
        format!(
            "The code is in a ```{first} block: JSX is not supported; send TypeScript (```ts) or \
             JavaScript (```js) without JSX"
        )
    })
}

/// Where saved code lives.
#[derive(Debug)]
pub struct Workspace {
    dir: PathBuf,
}

/// What a save wrote.
#[derive(Debug, Clone)]
pub struct Saved {
    pub path: PathBuf,
    pub size: usize,
}

/// One saved file, as the listing shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub code_id: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Workspace {
    /// Opens (creating it if needed) the workspace directory.
    pub fn open(dir: &Path) -> io::Result<Workspace> {
        fs::create_dir_all(dir)?;
        Ok(Workspace {
            dir: fs::canonicalize(dir)?,
        })
    }

    /// Removes temporary files a crash in the middle of a save left behind.
    /// Only the server calls this, at start, before it accepts saves.
    pub fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The canonical directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a (validated) `codeId`.
    pub fn path_of(&self, code_id: &str) -> PathBuf {
        self.dir.join(format!("{code_id}.ts"))
    }

    /// Writes `code` as `<codeId>.ts`: a temporary file in the same
    /// directory, synced, renamed over the target, then the directory
    /// synced. Readers see the old file or the new one, never a mix.
    pub fn save(&self, code_id: &str, code: &str) -> io::Result<Saved> {
        ensure_room(&self.dir)?;
        let path = self.path_of(code_id);
        let temp = self.dir.join(format!(
            // Not named after the codeId: a long one would not leave room.
            ".save.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = File::options().write(true).create_new(true).open(&temp)?;
            f.write_all(code.as_bytes())?;
            f.sync_all()?;
            drop(f);
            fs::rename(&temp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        File::open(&self.dir)?.sync_all()?;
        Ok(Saved {
            path,
            size: code.len(),
        })
    }

    /// The saved code of `code_id`.
    pub fn read(&self, code_id: &str) -> io::Result<String> {
        fs::read_to_string(self.path_of(code_id))
    }

    /// Removes `code_id`'s file (and makes the removal durable).
    pub fn delete(&self, code_id: &str) -> io::Result<()> {
        fs::remove_file(self.path_of(code_id))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Every saved `.ts` file whose name is a valid `codeId`, sorted.
    pub fn list(&self) -> io::Result<Vec<Listed>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".ts")) else {
                continue;
            };
            if validate_code_id(id).is_err() {
                continue;
            }
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            out.push(Listed {
                code_id: id.to_string(),
                size: meta.len(),
                modified_ms,
            });
        }
        out.sort_by(|a, b| a.code_id.cmp(&b.code_id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsx_fences_are_named() {
        assert!(jsx_fence("Here:\n```tsx\nconst a = <b/>;\n```\n").is_some());
        assert!(jsx_fence("```ts\nconst a = 1;\n```").is_none());
        assert!(jsx_fence("const a = 1;").is_none());
    }

    #[test]
    fn code_ids_are_checked() {
        assert!(validate_code_id("hello-world_2").is_ok());
        assert!(validate_code_id(&"a".repeat(252)).is_ok());
        assert!(validate_code_id(&"a".repeat(253)).is_err());
        for bad in ["", "../x", "a/b", "a\\b", "a.b", "a b", "é"] {
            assert!(validate_code_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_code_id(&"a".repeat(256)).is_err());
    }

    #[test]
    fn the_first_closed_code_fence_is_taken() {
        let md = "Here you go:\n```ts\nconst a = 1;\nconsole.log(a);\n```\nand\n```js\nx\n```\n";
        assert_eq!(extract_code(md), "const a = 1;\nconsole.log(a);");
        let bare = "```\nlet x = 2;\n```";
        assert_eq!(extract_code(bare), "let x = 2;");
        let typescript = "```TypeScript\nlet y: number = 3;\n```";
        assert_eq!(extract_code(typescript), "let y: number = 3;");
    }

    #[test]
    fn other_languages_are_skipped_and_unclosed_fences_keep_everything() {
        let md = "```python\nprint(1)\n```\n```javascript\nconsole.log(1)\n```";
        assert_eq!(extract_code(md), "console.log(1)");
        let unclosed = "```ts\nconst a = 1;\n";
        assert_eq!(extract_code(unclosed), unclosed);
        let plain = "const a = `template`;\nconsole.log(a);\n";
        assert_eq!(extract_code(plain), plain);
    }

    #[test]
    fn saves_replace_the_file_whole() {
        let dir = std::env::temp_dir().join(format!("isoexec-ws-{}", std::process::id()));
        let ws = Workspace::open(&dir).unwrap();
        let saved = ws.save("a", "one").unwrap();
        assert_eq!(saved.size, 3);
        ws.save("a", "two!").unwrap();
        assert_eq!(ws.read("a").unwrap(), "two!");
        let listed = ws.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].code_id.as_str(), listed[0].size), ("a", 4));
        ws.delete("a").unwrap();
        assert!(ws.read("a").is_err());
        assert!(ws.list().unwrap().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
