//! Saved code of the restexec API, behind [`CodeStore`]: put, get, list
//! and delete by `codeId`, and the local file the engine loads a codeId
//! from. [`DirStore`] keeps `<codeId>.ts` files in `WORKSPACE_DIR`; a
//! shared store can take its place without the handlers changing.

mod dir;
mod postgres;

use std::io;
use std::path::PathBuf;

pub(crate) use dir::DirStore;
pub(crate) use postgres::PgCodeStore;

/// Where saved code lives. Every method blocks: call it off the async
/// reactor. A `codeId` given to it has passed [`validate_code_id`]; a
/// missing one is an error of kind [`io::ErrorKind::NotFound`].
pub trait CodeStore: Send + Sync {
    /// Saves `code` under `code_id`, replacing what was there whole:
    /// readers see the old code or the new, never a mix.
    fn put(&self, code_id: &str, code: &str) -> io::Result<Saved>;
    /// The saved code of `code_id`.
    fn get(&self, code_id: &str) -> io::Result<String>;
    /// Every saved codeId, sorted.
    fn list(&self) -> io::Result<Vec<Listed>>;
    /// Removes `code_id`.
    fn delete(&self, code_id: &str) -> io::Result<()>;
    /// The local file holding `code_id`'s current code, which the module
    /// loader reads (its relative imports resolve beside it); `None` if
    /// nothing is saved under it.
    fn local_path(&self, code_id: &str) -> io::Result<Option<PathBuf>>;
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

/// Longest `codeId`. A saved file is `<codeId>.ts`, and Linux file systems cap a name at 255
/// bytes: 252 characters is the longest codeId that can be stored.
pub(crate) const MAX_CODE_ID_CHARS: usize = 252;

/// Checks a `codeId`: 1–252 letters, digits, `-` or `_`. The message says
/// what is wrong.
pub(crate) fn validate_code_id(id: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
