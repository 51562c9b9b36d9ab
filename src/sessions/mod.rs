//! Sessions of the live-coding API: each has a directory of its own (under
//! `<DATA_DIR>/sessions/`), and in notebook mode an isolate of its own.
//! Runs in one session are serialised in arrival order; idle sessions end
//! after `SESSION_TTL`; at most `MAX_SESSIONS` live at once. A session's
//! files and isolate go when it ends: deleted, expired, or at shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, watch};

pub(crate) use catalog::{Catalog, Entry};

use crate::clock::now_ms;
use crate::config::Config;
use crate::engine::Language;
use crate::engine::Notebook;
use crate::sync::lock;

mod catalog;
mod execute;
pub(crate) use execute::{RunError, RunInput};

/// How often expired sessions are looked for.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// What a session runs: an environment as the API names it (`node` and
/// `javascript` are both JavaScript), and its language. The names come
/// from [`Language::environments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Environment {
    name: &'static str,
    language: Language,
}

impl Environment {
    /// Every environment, language by language.
    pub fn all() -> impl Iterator<Item = Environment> {
        Language::ALL.into_iter().flat_map(|language| {
            language
                .environments()
                .iter()
                .map(move |&name| Environment { name, language })
        })
    }

    pub fn as_str(self) -> &'static str {
        self.name
    }

    /// The environment `text` names, in any case.
    pub fn parse(text: &str) -> Option<Environment> {
        Environment::all().find(|e| e.name.eq_ignore_ascii_case(text))
    }

    /// The language its code is written in.
    pub fn language(self) -> Language {
        self.language
    }

    /// The file an execute writes when it names none.
    pub fn default_file(self) -> String {
        format!("main.{}", self.language.extension())
    }
}

/// How a session runs its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each execute writes a file and runs it as a fresh program.
    Script,
    /// One isolate for the session's life; each execute is the next cell.
    Notebook,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Script => "script",
            Mode::Notebook => "notebook",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        [Mode::Script, Mode::Notebook]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Creating,
    Ready,
    Executing,
    Stopping,
    Stopped,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Creating => "creating",
            Status::Ready => "ready",
            Status::Executing => "executing",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Error => "error",
        }
    }
}

/// One session.
pub struct Session {
    pub id: String,
    /// The client that made it: each client holds at most its share of
    /// `MAX_SESSIONS`.
    pub owner: Arc<str>,
    pub environment: Environment,
    pub mode: Mode,
    /// Its own directory: files persist here for the session's life.
    pub dir: PathBuf,
    pub created_at_ms: u64,
    state: std::sync::Mutex<SessionState>,
    /// Held by the running execute: runs are serialised, first come first
    /// served (tokio's mutex is fair).
    pub run_lock: AsyncMutex<()>,
    /// The notebook isolate (notebook mode).
    pub notebook: Option<Notebook>,
    /// Set to true when the session ends; a running execute stops.
    ended: watch::Sender<bool>,
    /// Signalled by `interrupt`: a running script-mode execute stops.
    pub interrupt: tokio::sync::Notify,
    /// Executions so far (each renews the idle deadline).
    pub executions: AtomicU64,
    /// Set when this replica adopted the session from a lost one: the next
    /// run says the notebook's state was reset.
    pub(crate) state_lost: std::sync::atomic::AtomicBool,
    /// The catalog's lapse count when this replica last knew it owned the
    /// session (see `Catalog::lapses`).
    pub(crate) owned_as_of: AtomicU64,
}

struct SessionState {
    status: Status,
    last_execution_ms: Option<u64>,
    /// When the session expires if nothing runs before.
    expires: Instant,
    expires_at_ms: u64,
}

/// What the API reports about a session.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: String,
    pub status: Status,
    pub environment: Environment,
    pub mode: Mode,
    pub created_at_ms: u64,
    pub last_execution_ms: Option<u64>,
    pub expires_at_ms: u64,
}

impl Session {
    pub fn view(&self) -> SessionView {
        let st = lock(&self.state);
        SessionView {
            id: self.id.clone(),
            status: st.status,
            environment: self.environment,
            mode: self.mode,
            created_at_ms: self.created_at_ms,
            last_execution_ms: st.last_execution_ms,
            expires_at_ms: st.expires_at_ms,
        }
    }

    pub fn status(&self) -> Status {
        lock(&self.state).status
    }

    pub fn set_status(&self, status: Status) {
        lock(&self.state).status = status;
    }

    /// Marks an execution starting: `executing`, and the idle deadline
    /// renewed. False if the session has ended meanwhile.
    pub fn begin_execution(&self, ttl: Duration) -> bool {
        let mut st = lock(&self.state);
        if matches!(
            st.status,
            Status::Stopping | Status::Stopped | Status::Error
        ) {
            return false;
        }
        st.status = Status::Executing;
        st.last_execution_ms = Some(now_ms());
        st.expires = Instant::now() + ttl;
        st.expires_at_ms = now_ms() + ttl.as_millis() as u64;
        self.executions.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Marks an execution done: `ready` again (unless the session ended),
    /// and the idle time starting now.
    pub fn end_execution(&self, ttl: Duration) {
        let mut st = lock(&self.state);
        if st.status == Status::Executing {
            st.status = Status::Ready;
        }
        st.expires = Instant::now() + ttl;
        st.expires_at_ms = now_ms() + ttl.as_millis() as u64;
    }

    /// Resolves when the session ends.
    pub async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }

    /// Stops the running execute, if any; a notebook keeps its state.
    /// Whether something was running.
    pub fn interrupt(&self) -> bool {
        let running = self.status() == Status::Executing;
        if let Some(nb) = &self.notebook {
            nb.interrupt();
        }
        self.interrupt.notify_waiters();
        running
    }

    fn expired(&self, now: Instant) -> bool {
        let st = lock(&self.state);
        st.status != Status::Executing && now >= st.expires
    }
}

/// Why a session could not be made.
#[derive(Debug)]
pub enum CreateError {
    /// `MAX_SESSIONS` are alive, all of them executing.
    Full(usize),
    /// The client holds its share, all of them executing.
    ClientFull(usize),
    Io(std::io::Error),
    /// The shared catalog could not record it.
    Store(String),
}

/// Every live session.
pub struct Sessions {
    root: PathBuf,
    ttl: Duration,
    max: usize,
    live: std::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// What every run gets.
    settings: RunSettings,
    /// The catalog several replicas share, when there is one.
    catalog: Option<Arc<Catalog>>,
    /// Sessions that ended lately, so a client polling for `stopped` sees
    /// it (for `ENDED_KEPT`, at most `ENDED_MAX` of them).
    ended: std::sync::Mutex<HashMap<String, (Arc<Session>, Instant)>>,
}

/// How long an ended session still answers `GET` (as `stopping` or
/// `stopped`), and how many are kept so.
const ENDED_KEPT: Duration = Duration::from_secs(60);
const ENDED_MAX: usize = 1024;

/// The settings every session run gets.
struct RunSettings {
    /// `SESSION_DISK_BYTES`: what a session's files may hold.
    disk_bytes: u64,
    cpu_limit: Option<Duration>,
    /// What `Deno.env.get` sees.
    env: HashMap<String, String>,
}

impl Sessions {
    /// Sessions under `<DATA_DIR>/sessions/`; directories a previous run
    /// left behind are removed.
    pub(crate) fn open(config: &Config, catalog: Option<Catalog>) -> std::io::Result<Sessions> {
        let root = config.data_dir.join("sessions");
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(&root)?;
        let root = std::fs::canonicalize(&root)?;
        Ok(Sessions {
            root,
            ttl: config.session_ttl,
            max: config.max_sessions,
            live: std::sync::Mutex::new(HashMap::new()),
            settings: RunSettings {
                disk_bytes: config.session_disk_bytes,
                cpu_limit: config.limits.default_cpu_limit,
                env: config.allow_env_values.clone(),
            },
            catalog: catalog.map(Arc::new),
            ended: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The shared catalog, when several replicas share sessions.
    pub(crate) fn catalog(&self) -> Option<&Catalog> {
        self.catalog.as_deref()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn count(&self) -> usize {
        lock(&self.live).len()
    }

    /// A client's share of `MAX_SESSIONS`: half (at least one).
    pub fn client_share(&self) -> usize {
        crate::config::client_share(self.max)
    }

    /// Makes room for a session of `owner`: at its share, its own
    /// longest-idle session ends; at `MAX_SESSIONS`, the longest-idle one of
    /// any client. Fails when room is needed and every candidate is
    /// executing.
    fn make_room(&self, owner: &Arc<str>) -> Result<(), CreateError> {
        let victim = {
            let live = lock(&self.live);
            let longest_idle = |mine: bool| {
                live.values()
                    .filter(|s| !mine || s.owner == *owner)
                    .filter(|s| s.status() == Status::Ready)
                    .min_by_key(|s| lock(&s.state).expires)
                    .map(|s| s.id.clone())
            };
            let owned = live.values().filter(|s| s.owner == *owner).count();
            if owned >= self.client_share() {
                Some(longest_idle(true).ok_or(CreateError::ClientFull(self.client_share()))?)
            } else if live.len() >= self.max {
                Some(longest_idle(false).ok_or(CreateError::Full(self.max))?)
            } else {
                None
            }
        };
        if let Some(id) = victim {
            tracing::info!(session = %id, "session ended to make room for a new one");
            self.remove(&id);
        }
        Ok(())
    }

    /// Makes a session for `owner`; `notebook` starts its isolate in `dir`.
    /// With a shared catalog, the session is recorded there as this
    /// replica's. Blocks.
    pub fn create(
        &self,
        owner: Arc<str>,
        environment: Environment,
        mode: Mode,
        notebook: impl FnOnce(&Path) -> std::io::Result<Notebook>,
    ) -> Result<Arc<Session>, CreateError> {
        let id = uuid::Uuid::new_v4().to_string();
        let session = self.make(id, owner, environment, mode, now_ms(), notebook)?;
        if let Some(catalog) = &self.catalog
            && let Err(e) = catalog.insert(
                &session.id,
                &session.owner,
                environment,
                mode,
                session.created_at_ms,
            )
        {
            if let Some(s) = lock(&self.live).remove(&session.id) {
                finish(&s);
            }
            return Err(CreateError::Store(e.0));
        }
        Ok(session)
    }

    /// Takes over `entry`'s session from its lost owner (compare-and-set in
    /// the catalog): a fresh isolate, the stored files. `None` when another
    /// replica took it first. Blocks.
    pub(crate) fn adopt(
        &self,
        entry: &Entry,
        notebook: impl FnOnce(&Path) -> std::io::Result<Notebook>,
    ) -> Result<Option<Arc<Session>>, CreateError> {
        let (Some(catalog), Some(environment), Some(mode)) =
            (&self.catalog, entry.environment(), entry.mode())
        else {
            return Ok(None);
        };
        let Some(files) = catalog.adopt(entry).map_err(|e| CreateError::Store(e.0))? else {
            return Ok(None);
        };
        let session = self.make(
            entry.id.clone(),
            entry.client.as_str().into(),
            environment,
            mode,
            entry.created_at_ms,
            notebook,
        )?;
        for (name, content) in files {
            if valid_filename(&name).is_err() {
                continue;
            }
            let path = session.dir.join(&name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(CreateError::Io)?;
            }
            std::fs::write(&path, content).map_err(CreateError::Io)?;
        }
        if mode == Mode::Notebook {
            session.state_lost.store(true, Ordering::Relaxed);
        }
        tracing::info!(session = %entry.id, from = %entry.owner, "session adopted from a lost replica");
        Ok(Some(session))
    }

    /// Makes a session with `id` on this replica.
    fn make(
        &self,
        id: String,
        owner: Arc<str>,
        environment: Environment,
        mode: Mode,
        created_at_ms: u64,
        notebook: impl FnOnce(&Path) -> std::io::Result<Notebook>,
    ) -> Result<Arc<Session>, CreateError> {
        self.make_room(&owner)?;
        let dir = self.root.join(&id);
        std::fs::create_dir_all(&dir).map_err(CreateError::Io)?;
        let notebook = match mode {
            Mode::Notebook => match notebook(&dir) {
                Ok(n) => Some(n),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(CreateError::Io(e));
                }
            },
            Mode::Script => None,
        };
        let (ended, _) = watch::channel(false);
        let session = Arc::new(Session {
            id: id.clone(),
            owner,
            environment,
            mode,
            dir,
            created_at_ms,
            state: std::sync::Mutex::new(SessionState {
                status: Status::Ready,
                last_execution_ms: None,
                expires: Instant::now() + self.ttl,
                expires_at_ms: now_ms() + self.ttl.as_millis() as u64,
            }),
            run_lock: AsyncMutex::new(()),
            notebook,
            ended,
            interrupt: tokio::sync::Notify::new(),
            executions: AtomicU64::new(0),
            state_lost: std::sync::atomic::AtomicBool::new(false),
            owned_as_of: AtomicU64::new(self.catalog.as_ref().map_or(0, |c| c.lapses())),
        });
        let mut live = lock(&self.live);
        if live.len() >= self.max {
            drop(live);
            finish(&session);
            return Err(CreateError::Full(self.max));
        }
        live.insert(id, session.clone());
        Ok(session)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.live).get(id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<_> = lock(&self.live).values().cloned().collect();
        all.sort_by_key(|s| s.created_at_ms);
        all
    }

    /// Ends a session: it leaves the registry at once; a running execute is
    /// stopped; its files and isolate go once that run has ended. Returns
    /// the session and whether a run was still going.
    /// A session that ended within the last minute (deleted or expired):
    /// its view says `stopping` or `stopped`.
    pub(crate) fn recently_ended(&self, id: &str) -> Option<SessionView> {
        let ended = lock(&self.ended);
        let (session, at) = ended.get(id)?;
        (at.elapsed() < ENDED_KEPT).then(|| session.view())
    }

    pub fn remove(&self, id: &str) -> Option<(Arc<Session>, bool)> {
        let session = lock(&self.live).remove(id)?;
        {
            let mut ended = lock(&self.ended);
            ended.retain(|_, (_, at)| at.elapsed() < ENDED_KEPT);
            if ended.len() >= ENDED_MAX {
                ended.clear();
            }
            ended.insert(id.to_string(), (session.clone(), Instant::now()));
        }
        let running = session.status() == Status::Executing;
        // Stopping while a run lets go; an idle session has nothing to wait for.
        session.set_status(if running {
            Status::Stopping
        } else {
            Status::Stopped
        });
        let _ = session.ended.send(true);
        if let Some(nb) = &session.notebook {
            nb.interrupt();
        }
        let cleanup = session.clone();
        let catalog = self.catalog.clone();
        crate::background::spawn(async move {
            if let Some(catalog) = catalog {
                let id = cleanup.id.clone();
                let removed = tokio::task::spawn_blocking(move || catalog.remove(&id)).await;
                if let Ok(Err(e)) = removed {
                    tracing::warn!(session = %cleanup.id, error = %e, "a session stayed in the catalog");
                }
            }
            // Wait for the run in progress, if any, to let go.
            let _guard = cleanup.run_lock.lock().await;
            finish(&cleanup);
        });
        Some((session, running))
    }

    /// Ends idle sessions past their TTL, once a second, for as long as
    /// the returned task runs.
    pub fn reap_in_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let sessions = self.clone();
        crate::background::spawn(async move {
            loop {
                tokio::time::sleep(REAP_EVERY).await;
                let now = Instant::now();
                let expired: Vec<String> = lock(&sessions.live)
                    .values()
                    .filter(|s| s.expired(now))
                    .map(|s| s.id.clone())
                    .collect();
                for id in expired {
                    tracing::info!(session = %id, "session expired");
                    sessions.remove(&id);
                }
                sessions.fence().await;
            }
        })
    }

    /// With a shared catalog: ends here the sessions another replica took
    /// over while this one was out of touch (its lease ran out), so no
    /// session runs in two places.
    async fn fence(self: &Arc<Self>) {
        let Some(catalog) = self.catalog.clone() else {
            return;
        };
        // A session is recorded in the catalog just after it is made here:
        // only those older than that are looked at.
        let settled = now_ms().saturating_sub(5_000);
        let ids: Vec<String> = lock(&self.live)
            .values()
            .filter(|s| s.created_at_ms < settled)
            .map(|s| s.id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        let lost = tokio::task::spawn_blocking(move || catalog.lost(ids)).await;
        if let Ok(Ok(lost)) = lost {
            for id in lost {
                tracing::warn!(session = %id, "session taken over by another replica; ended here");
                self.remove(&id);
            }
        }
    }

    /// Ends every session (at shutdown), removing their files now.
    pub fn shutdown(&self) {
        let all: Vec<_> = lock(&self.live).drain().map(|(_, s)| s).collect();
        for s in all {
            let _ = s.ended.send(true);
            finish(&s);
        }
    }
}

/// Releases what a session holds: its isolate and its files.
fn finish(session: &Session) {
    if let Some(nb) = &session.notebook {
        nb.stop();
    }
    if let Err(e) = std::fs::remove_dir_all(&session.dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %session.dir.display(), error = %e, "a session's files could not be removed");
    }
    session.set_status(Status::Stopped);
}

/// Whether `name` is a file name a session may write: a relative path
/// inside the session directory (sub-directories allowed), ending in a
/// JavaScript, TypeScript, JSON or Python extension.
pub(crate) fn valid_filename(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("filename must be 1 to 255 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("filename must not contain control characters (NUL, newline, ...)".into());
    }
    let path = Path::new(name);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "filename '{name}' must be a relative path inside the session (no '..', no leading '/')"
        ));
    }
    let ok_ext = [".ts", ".js", ".mjs", ".mts", ".json", ".py"]
        .iter()
        .any(|e| name.ends_with(e));
    if !ok_ext {
        return Err(format!(
            "filename '{name}' must end in .ts, .js, .mts, .mjs, .json or .py"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_stay_inside_the_session() {
        assert!(valid_filename("main.ts").is_ok());
        assert!(valid_filename("lib/util.js").is_ok());
        assert!(valid_filename(&format!("{}.ts", "a".repeat(252))).is_ok());
        for bad in [
            "",
            "/etc/x.ts",
            "../x.ts",
            "a/../../x.ts",
            "x.rb",
            "./x.ts",
            "a\0.ts",
            "a\n.ts",
        ] {
            assert!(valid_filename(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environments_and_modes_parse() {
        let ts = Environment::parse("TypeScript").unwrap();
        assert_eq!(
            (ts.as_str(), ts.language()),
            ("typescript", Language::TypeScript)
        );
        let py = Environment::parse("Python").unwrap();
        assert_eq!(
            (py.as_str(), py.language(), py.default_file()),
            ("python", Language::Python, "main.py".into())
        );
        assert_eq!(Environment::parse("go"), None);
        assert_eq!(ts.default_file(), "main.ts");
        let node = Environment::parse("node").unwrap();
        assert_eq!(
            (node.as_str(), node.default_file()),
            ("node", "main.js".into())
        );
        assert_eq!(Mode::parse("notebook"), Some(Mode::Notebook));
        assert_eq!(Mode::parse("repl"), None);
    }
}
