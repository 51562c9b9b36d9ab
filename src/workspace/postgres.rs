//! Saved code shared by several replicas (`DATABASE_URL`): every `PUT` is a
//! new version row, a head row per `codeId` names the current one. The
//! module loader reads files, so each replica keeps its `WORKSPACE_DIR` as a
//! mirror of the heads: before a program runs, the files whose content hash
//! changed are written anew and those deleted elsewhere removed. A save on
//! one replica is what the next `/execute` on any replica runs, imports
//! between saved files included.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{CodeStore, DirStore, Listed, Saved};
use crate::clock::now_ms;
use crate::db::{Db, DbError};
use crate::sync::lock;

/// Versions kept per `codeId` (the head and the ones before it).
const KEEP_VERSIONS: i64 = 10;

/// Saved code in PostgreSQL, mirrored into a local directory.
pub(crate) struct PgCodeStore {
    db: Arc<Db>,
    /// This replica's copy of the heads, which the engine loads.
    mirror: DirStore,
    /// The hash of each file the mirror holds, as last written.
    mirrored: Mutex<HashMap<String, Vec<u8>>>,
}

fn io_error(e: DbError) -> io::Error {
    io::Error::other(e.0)
}

fn not_found(code_id: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no saved code {code_id}"))
}

impl PgCodeStore {
    pub(crate) fn new(db: Arc<Db>, mirror_dir: &Path) -> io::Result<PgCodeStore> {
        Ok(PgCodeStore {
            db,
            mirror: DirStore::open(mirror_dir)?,
            mirrored: Mutex::new(HashMap::new()),
        })
    }

    /// Brings the mirror in line with the heads: changed files written,
    /// files deleted elsewhere removed. Returns the heads' codeIds.
    fn sync(&self) -> io::Result<Vec<String>> {
        let heads: Vec<(String, Vec<u8>)> = self
            .db
            .run(|c| async move {
                let rows = c
                    .query("SELECT code_id, sha256 FROM workspace_head", &[])
                    .await?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })
            .map_err(io_error)?;
        let stale: Vec<String> = {
            let mirrored = lock(&self.mirrored);
            heads
                .iter()
                .filter(|(id, sha)| mirrored.get(id) != Some(sha))
                .map(|(id, _)| id.clone())
                .collect()
        };
        if !stale.is_empty() {
            let rows: Vec<(String, String, Vec<u8>)> = self
                .db
                .run(move |c| async move {
                    let rows = c
                        .query(
                            "SELECT h.code_id, f.content, h.sha256 FROM workspace_head h \
                             JOIN workspace_files f ON f.code_id = h.code_id \
                             AND f.version = h.version WHERE h.code_id = ANY($1)",
                            &[&stale],
                        )
                        .await?;
                    Ok(rows
                        .iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect())
                })
                .map_err(io_error)?;
            for (id, content, sha) in rows {
                self.mirror.put(&id, &content)?;
                lock(&self.mirrored).insert(id, sha);
            }
        }
        let gone: Vec<String> = {
            let mirrored = lock(&self.mirrored);
            mirrored
                .keys()
                .filter(|id| !heads.iter().any(|(h, _)| h == *id))
                .cloned()
                .collect()
        };
        for id in gone {
            match self.mirror.delete(&id) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            lock(&self.mirrored).remove(&id);
        }
        Ok(heads.into_iter().map(|(id, _)| id).collect())
    }
}

impl CodeStore for PgCodeStore {
    fn put(&self, code_id: &str, code: &str) -> io::Result<Saved> {
        let sha = Sha256::digest(code.as_bytes()).to_vec();
        let (id, content, hash) = (code_id.to_string(), code.to_string(), sha.clone());
        self.db
            .run(move |mut c| async move {
                let tx = c.transaction().await?;
                // One writer per codeId at a time: versions stay a sequence.
                tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&id])
                    .await?;
                let version: i64 = tx
                    .query_one(
                        "SELECT coalesce(max(version), 0) + 1 FROM workspace_files \
                         WHERE code_id = $1",
                        &[&id],
                    )
                    .await?
                    .get(0);
                let now = now_ms() as i64;
                tx.execute(
                    "INSERT INTO workspace_files (code_id, version, sha256, content, \
                     created_at_ms) VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &version, &hash, &content, &now],
                )
                .await?;
                tx.execute(
                    "INSERT INTO workspace_head (code_id, version, sha256, size, modified_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code_id) DO UPDATE SET \
                     version = $2, sha256 = $3, size = $4, modified_ms = $5",
                    &[&id, &version, &hash, &(content.len() as i64), &now],
                )
                .await?;
                tx.execute(
                    "DELETE FROM workspace_files WHERE code_id = $1 AND version <= $2",
                    &[&id, &(version - KEEP_VERSIONS)],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
            .map_err(io_error)?;
        let saved = self.mirror.put(code_id, code)?;
        lock(&self.mirrored).insert(code_id.to_string(), sha);
        Ok(saved)
    }

    fn get(&self, code_id: &str) -> io::Result<String> {
        let id = code_id.to_string();
        let content: Option<String> = self
            .db
            .run(move |c| async move {
                let row = c
                    .query_opt(
                        "SELECT f.content FROM workspace_head h JOIN workspace_files f \
                         ON f.code_id = h.code_id AND f.version = h.version \
                         WHERE h.code_id = $1",
                        &[&id],
                    )
                    .await?;
                Ok(row.map(|r| r.get(0)))
            })
            .map_err(io_error)?;
        content.ok_or_else(|| not_found(code_id))
    }

    fn list(&self) -> io::Result<Vec<Listed>> {
        self.db
            .run(|c| async move {
                let rows = c
                    .query(
                        "SELECT code_id, size, modified_ms FROM workspace_head ORDER BY code_id",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| Listed {
                        code_id: r.get(0),
                        size: r.get::<_, i64>(1).max(0) as u64,
                        modified_ms: r.get::<_, i64>(2).max(0) as u64,
                    })
                    .collect())
            })
            .map_err(io_error)
    }

    fn delete(&self, code_id: &str) -> io::Result<()> {
        let id = code_id.to_string();
        let removed = self
            .db
            .run(move |c| async move {
                Ok(
                    c.execute("DELETE FROM workspace_head WHERE code_id = $1", &[&id])
                        .await?,
                )
            })
            .map_err(io_error)?;
        if removed == 0 {
            return Err(not_found(code_id));
        }
        match self.mirror.delete(code_id) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        lock(&self.mirrored).remove(code_id);
        Ok(())
    }

    fn local_path(&self, code_id: &str) -> io::Result<Option<PathBuf>> {
        // A file of the directory that is no head (left from before the
        // shared store) is not saved code.
        if !self.sync()?.iter().any(|id| id == code_id) {
            return Ok(None);
        }
        self.mirror.local_path(code_id)
    }
}
