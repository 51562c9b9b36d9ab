//! [`DirStore`]: saved code as `<codeId>.ts` files in `WORKSPACE_DIR`,
//! written atomically and durably so that a crash or two concurrent saves
//! of one `codeId` never leave a torn or mixed file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use super::{CodeStore, Listed, Saved, validate_code_id};
use crate::disk::ensure_room;

/// Saved code as `<codeId>.ts` files in one directory.
#[derive(Debug)]
pub(crate) struct DirStore {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DirStore {
    /// Opens (creating it if needed) the workspace directory.
    pub(crate) fn open(dir: &Path) -> io::Result<DirStore> {
        fs::create_dir_all(dir)?;
        Ok(DirStore {
            dir: fs::canonicalize(dir)?,
        })
    }

    /// Removes temporary files a crash in the middle of a save left behind.
    /// Only the server calls this, at start, before it accepts saves.
    pub(crate) fn remove_stale_temps(&self) {
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

    /// The file of a (validated) `codeId`.
    fn path_of(&self, code_id: &str) -> PathBuf {
        self.dir.join(format!("{code_id}.ts"))
    }
}

impl CodeStore for DirStore {
    /// Writes `code` as `<codeId>.ts`: a temporary file in the same
    /// directory, synced, renamed over the target, then the directory
    /// synced. Readers see the old file or the new one, never a mix.
    fn put(&self, code_id: &str, code: &str) -> io::Result<Saved> {
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
    fn get(&self, code_id: &str) -> io::Result<String> {
        fs::read_to_string(self.path_of(code_id))
    }

    /// Removes `code_id`'s file (and makes the removal durable).
    fn delete(&self, code_id: &str) -> io::Result<()> {
        fs::remove_file(self.path_of(code_id))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Every saved `.ts` file whose name is a valid `codeId`, sorted.
    fn list(&self) -> io::Result<Vec<Listed>> {
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

    fn local_path(&self, code_id: &str) -> io::Result<Option<PathBuf>> {
        let path = self.path_of(code_id);
        Ok(path.try_exists()?.then_some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_replace_the_file_whole() {
        let dir = std::env::temp_dir().join(format!("isoexec-ws-{}", std::process::id()));
        let ws = DirStore::open(&dir).unwrap();
        let saved = ws.put("a", "one").unwrap();
        assert_eq!(saved.size, 3);
        ws.put("a", "two!").unwrap();
        assert_eq!(ws.get("a").unwrap(), "two!");
        let listed = ws.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].code_id.as_str(), listed[0].size), ("a", 4));
        let path = ws.local_path("a").unwrap().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two!");
        ws.delete("a").unwrap();
        assert_eq!(ws.local_path("a").unwrap(), None);
        assert!(ws.get("a").is_err());
        assert!(ws.list().unwrap().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
