//! Trusted-tenant functions: tenants with their own keys, functions
//! deployed once as immutable versions and invoked by name (or by their
//! HTTP route), each tenant within its own limits, with write-only
//! secrets, usage per minute and recent invocation logs.
//!
//! The registry lives in the same store as saved code and job records
//! (`<DATA_DIR>/functions.db`, or the shared PostgreSQL), so every replica
//! serves every function. What a call needs (the head version, the
//! secrets, the tenant's limits) is cached per replica: a change made on
//! this replica is seen at once, one made on another within
//! [`SHARED_CACHE_TTL`].

mod limits;
mod sql;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

pub(crate) use limits::{Admitted, Effective, FunctionSettings, Refused, TenantLimits};
pub(crate) use sql::StoreError;
pub(crate) use store::{
    Exports, FunctionRecord, InvocationLog, KeyRecord, LOGS_KEPT, Scope, TenantRecord, UsageRow,
    VersionRecord,
};

use crate::clock::now_ms;
use crate::config::Config;
use crate::db::Db;
use crate::engine::{Entry, Execution, Report};
use crate::runner::Runner;
use crate::sync::lock;
use limits::Gate;
use store::Registry;

/// How long what a call needs is trusted when other replicas may change
/// it (with PostgreSQL); a single server sees its own changes at once.
pub(crate) const SHARED_CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a key's lookup is trusted without a shared store.
const LOCAL_CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries cached at most (keys; functions); past it the cache is emptied.
const CACHE_MAX: usize = 10_000;
/// How often usage and logs are written to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Minutes of usage kept.
pub(crate) const USAGE_KEPT_MINUTES: u64 = 7 * 24 * 60;
/// Invocation logs waiting to be written, at most, per replica: past it
/// the oldest are dropped (usage is still counted).
const PENDING_LOGS_MAX: usize = 5_000;
/// Bytes of one invocation's console output kept in its log.
const LOG_BYTES_KEPT: usize = 16 * 1024;

/// Who a request comes from.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// The operator's key (`API_KEY`), or anyone when none is set.
    Operator,
    /// A tenant's key.
    Tenant { tenant: String, scopes: Vec<Scope> },
}

/// What a call of a function needs, as deployed.
pub(crate) struct Deployed {
    pub tenant: TenantRecord,
    pub function: FunctionRecord,
    pub version: VersionRecord,
    pub code: Arc<str>,
    pub secrets: BTreeMap<String, String>,
    /// What `Deno.env.get` sees: the server's `ALLOW_ENV` values, then the
    /// secrets.
    pub env: HashMap<String, String>,
    pub limits: Effective,
}

impl Deployed {
    /// `report` with every secret's value taken out of its logs and error.
    pub(crate) fn redact(&self, mut report: Report) -> Report {
        if self.secrets.is_empty() {
            return report;
        }
        for entry in &mut report.logs {
            entry.message = redact(&entry.message, &self.secrets);
        }
        report.outcome = report
            .outcome
            .map_err(|e| e.map_text(|t| redact(&t, &self.secrets)));
        report
    }
}

/// A function's head as cached, and since when.
type Cached = (Arc<Deployed>, Instant);

/// Figures of the calls not yet written to the store.
#[derive(Default)]
struct Pending {
    /// By (tenant, function, minute, outcome).
    usage: HashMap<(String, String, u64, String), UsageRow>,
    /// By (tenant, function).
    logs: Vec<(String, String, InvocationLog)>,
}

/// The tenants and their functions.
pub(crate) struct Tenants {
    registry: Arc<Registry>,
    /// Whether other replicas share the registry.
    shared: bool,
    keys: Mutex<HashMap<String, (Option<KeyRecord>, Instant)>>,
    functions: Mutex<HashMap<(String, String), Cached>>,
    pub(crate) gate: Gate,
    pending: Mutex<Pending>,
    flushed: Notify,
}

/// Why a registry operation failed.
#[derive(Debug)]
pub(crate) enum Failed {
    Store(StoreError),
    NotFound(String),
    Invalid {
        field: String,
        message: String,
    },
    /// A tenant's bound on what it stores was reached.
    Quota(String),
    /// The execution queue (of this many) was full: a deploy's check
    /// could not run.
    Overloaded(usize),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Failed {
        Failed::Store(e)
    }
}

/// A tenant's id or a function's name: 1 to 63 of `a-z`, `0-9`, `-`, `_`,
/// starting with a letter or digit.
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// A secret's name: an environment variable's (`A-Z`, `a-z`, `0-9`, `_`,
/// not starting with a digit), at most 128 bytes.
pub(crate) fn valid_secret_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The SHA-256 of `text` in hex: what a key is stored and looked up by,
/// and a version's content hash.
fn sha256_hex(text: &str) -> String {
    let h = Sha256::digest(text.as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new key: `ixk_` and 40 random hex digits.
fn new_key() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("ixk_{}{}", &a[..20], &b[..20])
}

/// Runs a blocking registry call off the reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failed> + Send + 'static,
) -> Result<T, Failed> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Failed::Store(StoreError(format!(
            "a registry task failed: {e}"
        ))))
    })
}

impl Tenants {
    /// Opens the registry: in PostgreSQL when `db` is given, else in
    /// `<DATA_DIR>/functions.db`.
    pub(crate) fn open(config: &Config, db: Option<Arc<Db>>) -> Result<Tenants, StoreError> {
        let shared = db.is_some();
        let sql: Box<dyn sql::Sql> = match db {
            Some(db) => Box::new(sql::Postgres::new(db)),
            None => Box::new(sql::Sqlite::open(&config.data_dir)?),
        };
        Ok(Tenants {
            registry: Arc::new(Registry::new(sql)),
            shared,
            keys: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            gate: Gate::default(),
            pending: Mutex::new(Pending::default()),
            flushed: Notify::new(),
        })
    }

    fn ttl(&self, local: Duration) -> Duration {
        if self.shared { SHARED_CACHE_TTL } else { local }
    }

    /// Who holds `bearer` when it is not the operator's key: a tenant, the
    /// operator (when no `API_KEY` is set, any other key is none at all),
    /// or nobody (`None`).
    pub(crate) async fn caller(
        &self,
        api_key_set: bool,
        bearer: Option<&str>,
    ) -> Result<Option<Caller>, Failed> {
        let Some(given) = bearer.filter(|b| !b.is_empty()) else {
            return Ok((!api_key_set).then_some(Caller::Operator));
        };
        let hash = sha256_hex(given);
        let ttl = self.ttl(LOCAL_CACHE_TTL);
        if let Some((record, at)) = lock(&self.keys).get(&hash)
            && at.elapsed() < ttl
        {
            return Ok(record.clone().map(tenant_caller));
        }
        let registry = self.registry.clone();
        let looked = hash.clone();
        let record = blocking(move || Ok(registry.key_by_hash(&looked)?)).await?;
        let mut keys = lock(&self.keys);
        if keys.len() >= CACHE_MAX {
            keys.clear();
        }
        keys.insert(hash, (record.clone(), Instant::now()));
        drop(keys);
        if record.is_none() && !api_key_set {
            // No API_KEY: a key that is not a tenant's is no key at all.
            return Ok(Some(Caller::Operator));
        }
        Ok(record.map(tenant_caller))
    }

    // Tenants.

    pub(crate) async fn create_tenant(
        &self,
        id: String,
        limits: TenantLimits,
    ) -> Result<Option<TenantRecord>, Failed> {
        let record = TenantRecord {
            id,
            limits,
            created_at_ms: now_ms(),
        };
        let registry = self.registry.clone();
        let r = record.clone();
        let created = blocking(move || Ok(registry.create_tenant(&r)?)).await?;
        Ok(created.then_some(record))
    }

    pub(crate) async fn tenants(&self) -> Result<Vec<TenantRecord>, Failed> {
        let registry = self.registry.clone();
        blocking(move || Ok(registry.tenants()?)).await
    }

    pub(crate) async fn tenant(&self, id: &str) -> Result<TenantRecord, Failed> {
        let registry = self.registry.clone();
        let id = id.to_string();
        let missing = id.clone();
        blocking(move || Ok(registry.tenant(&id)?))
            .await?
            .ok_or_else(|| Failed::NotFound(format!("No tenant '{missing}'")))
    }

    pub(crate) async fn set_limits(
        &self,
        id: &str,
        limits: TenantLimits,
    ) -> Result<TenantRecord, Failed> {
        let registry = self.registry.clone();
        let (i, l) = (id.to_string(), limits);
        let found = blocking(move || Ok(registry.set_limits(&i, &l)?)).await?;
        if !found {
            return Err(Failed::NotFound(format!("No tenant '{id}'")));
        }
        self.forget_tenant(id);
        self.tenant(id).await
    }

    pub(crate) async fn delete_tenant(&self, id: &str) -> Result<(), Failed> {
        let registry = self.registry.clone();
        let i = id.to_string();
        let found = blocking(move || Ok(registry.delete_tenant(&i)?)).await?;
        self.forget_tenant(id);
        lock(&self.keys).retain(|_, (r, _)| r.as_ref().is_none_or(|k| k.tenant != id));
        let mut pending = lock(&self.pending);
        pending.usage.retain(|k, _| k.0 != id);
        pending.logs.retain(|l| l.0 != id);
        drop(pending);
        if found {
            Ok(())
        } else {
            Err(Failed::NotFound(format!("No tenant '{id}'")))
        }
    }

    /// Drops what is cached of a tenant's functions.
    fn forget_tenant(&self, id: &str) {
        lock(&self.functions).retain(|(t, _), _| t != id);
    }

    fn forget_function(&self, tenant: &str, name: &str) {
        lock(&self.functions).remove(&(tenant.to_string(), name.to_string()));
    }

    // Keys.

    /// A new key for `tenant`: the record and the key itself (shown once).
    pub(crate) async fn create_key(
        &self,
        tenant: &str,
        scopes: Vec<Scope>,
        label: String,
    ) -> Result<(KeyRecord, String), Failed> {
        self.tenant(tenant).await?;
        let key = new_key();
        let record = KeyRecord {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            tenant: tenant.to_string(),
            scopes,
            label,
            created_at_ms: now_ms(),
        };
        let registry = self.registry.clone();
        let (r, hash) = (record.clone(), sha256_hex(&key));
        blocking(move || Ok(registry.add_key(&r, &hash)?)).await?;
        Ok((record, key))
    }

    pub(crate) async fn keys(&self, tenant: &str) -> Result<Vec<KeyRecord>, Failed> {
        self.tenant(tenant).await?;
        let registry = self.registry.clone();
        let t = tenant.to_string();
        blocking(move || Ok(registry.keys(&t)?)).await
    }

    pub(crate) async fn revoke_key(&self, tenant: &str, id: &str) -> Result<(), Failed> {
        let registry = self.registry.clone();
        let (t, i) = (tenant.to_string(), id.to_string());
        match blocking(move || Ok(registry.revoke_key(&t, &i)?)).await? {
            Some(hash) => {
                lock(&self.keys).remove(&hash);
                Ok(())
            }
            None => Err(Failed::NotFound(format!("No key '{id}'"))),
        }
    }

    // Functions.

    /// Checks `code` by loading it in a clean isolate (syntax, imports,
    /// top-level errors) and records it as a new version that becomes the
    /// head. Deploying what the head already is (code and settings) makes
    /// no new version. Returns the version and whether it is new.
    pub(crate) async fn deploy(
        &self,
        runner: &Runner,
        config: &Config,
        tenant: &str,
        name: &str,
        code: String,
        settings: FunctionSettings,
    ) -> Result<Result<(VersionRecord, bool), (Execution, Report)>, Failed> {
        let record = self.tenant(tenant).await?;
        settings
            .limits
            .check(Some(&record.limits))
            .map_err(|(field, message)| Failed::Invalid {
                field: format!("limits.{field}"),
                message,
            })?;
        let sha256 = sha256_hex(&code);
        let registry = self.registry.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        let (count, exists) = blocking(move || {
            Ok((
                registry.function_count(&t)?,
                registry.function(&t, &n)?.is_some(),
            ))
        })
        .await?;
        if !exists && count >= FUNCTIONS_PER_TENANT {
            return Err(Failed::Quota(format!(
                "Tenant '{tenant}' has {count} functions, the most one may have; remove one first"
            )));
        }
        if let Ok(head) = self.deployed(config, tenant, name).await
            && head.version.sha256 == sha256
            && head.version.settings == settings
        {
            return Ok(Ok((head.version.clone(), false)));
        }
        let limits = record.limits.effective(&settings.limits, config);
        let execution = Arc::new(held_to(
            tenant,
            &limits,
            config,
            Execution {
                entry: Entry::Exports,
                ..Execution::call(
                    code.clone().into(),
                    String::new(),
                    "null".into(),
                    limits.timeout.min(DEPLOY_CHECK_TIMEOUT),
                )
            },
        ));
        let report = runner
            .execute("functions", &execution)
            .await
            .map_err(|_| Failed::Overloaded(config.queue_size))?;
        let exports: Exports = match &report.outcome {
            Ok(json) => serde_json::from_str(json).unwrap_or_default(),
            Err(_) => return Ok(Err((Arc::unwrap_or_clone(execution), report))),
        };
        let version = VersionRecord {
            version: 0,
            sha256,
            code,
            settings,
            exports,
            created_at_ms: now_ms(),
        };
        let registry = self.registry.clone();
        let (t, n, v) = (tenant.to_string(), name.to_string(), version.clone());
        let number = blocking(move || Ok(registry.deploy(&t, &n, &v)?)).await?;
        self.forget_function(tenant, name);
        Ok(Ok((
            VersionRecord {
                version: number,
                ..version
            },
            true,
        )))
    }

    pub(crate) async fn functions(&self, tenant: &str) -> Result<Vec<FunctionRecord>, Failed> {
        self.tenant(tenant).await?;
        let registry = self.registry.clone();
        let t = tenant.to_string();
        blocking(move || Ok(registry.functions(&t)?)).await
    }

    /// What a call of `tenant`'s function `name` runs, with its limits
    /// under this server's settings: cached.
    pub(crate) async fn deployed(
        &self,
        config: &Config,
        tenant: &str,
        name: &str,
    ) -> Result<Arc<Deployed>, Failed> {
        let key = (tenant.to_string(), name.to_string());
        let ttl = self.ttl(Duration::MAX);
        if let Some((d, at)) = lock(&self.functions).get(&key)
            && at.elapsed() < ttl
        {
            return Ok(d.clone());
        }
        let registry = self.registry.clone();
        let (t, n) = key.clone();
        let found = blocking(move || {
            let Some(tenant) = registry.tenant(&t)? else {
                return Ok(None);
            };
            let Some(function) = registry.function(&t, &n)? else {
                return Ok(None);
            };
            let Some(version) = registry.version(&t, &n, function.head)? else {
                return Ok(None);
            };
            let secrets = registry.secrets_for(&t, &n)?;
            Ok(Some((tenant, function, version, secrets)))
        })
        .await?;
        let Some((tenant_record, function, version, secrets)) = found else {
            return Err(Failed::NotFound(format!("No function '{name}'")));
        };
        let limits = tenant_record
            .limits
            .effective(&version.settings.limits, config);
        let mut env = config.allow_env_values.clone();
        env.extend(secrets.clone());
        let deployed = Arc::new(Deployed {
            code: version.code.as_str().into(),
            tenant: tenant_record,
            function,
            version,
            secrets,
            env,
            limits,
        });
        let mut cache = lock(&self.functions);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (deployed.clone(), Instant::now()));
        Ok(deployed)
    }

    /// The function `name` of `tenant`, or `NotFound`.
    async fn function(&self, tenant: &str, name: &str) -> Result<FunctionRecord, Failed> {
        let registry = self.registry.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        blocking(move || Ok(registry.function(&t, &n)?))
            .await?
            .ok_or_else(|| Failed::NotFound(format!("No function '{name}'")))
    }

    pub(crate) async fn versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(FunctionRecord, Vec<VersionRecord>), Failed> {
        let registry = self.registry.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        let found = blocking(move || {
            let Some(f) = registry.function(&t, &n)? else {
                return Ok(None);
            };
            Ok(Some((f, registry.versions(&t, &n)?)))
        })
        .await?;
        found.ok_or_else(|| Failed::NotFound(format!("No function '{name}'")))
    }

    pub(crate) async fn version(
        &self,
        tenant: &str,
        name: &str,
        version: u64,
    ) -> Result<VersionRecord, Failed> {
        let registry = self.registry.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        blocking(move || Ok(registry.version(&t, &n, version)?))
            .await?
            .ok_or_else(|| Failed::NotFound(format!("No version {version} of '{name}'")))
    }

    pub(crate) async fn rollback(
        &self,
        tenant: &str,
        name: &str,
        version: u64,
    ) -> Result<(), Failed> {
        let registry = self.registry.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        let done = blocking(move || Ok(registry.set_head(&t, &n, version, now_ms())?)).await?;
        self.forget_function(tenant, name);
        if done {
            Ok(())
        } else {
            Err(Failed::NotFound(format!(
                "No version {version} of '{name}'"
            )))
        }
    }

    pub(crate) async fn delete_function(&self, tenant: &str, name: &str) -> Result<(), Failed> {
        let registry = self.registry.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        let done = blocking(move || Ok(registry.delete_function(&t, &n)?)).await?;
        self.forget_function(tenant, name);
        lock(&self.pending)
            .logs
            .retain(|l| !(l.0 == tenant && l.1 == name));
        if done {
            Ok(())
        } else {
            Err(Failed::NotFound(format!("No function '{name}'")))
        }
    }

    // Secrets: `function` "" for the tenant's own.

    pub(crate) async fn put_secrets(
        &self,
        tenant: &str,
        function: &str,
        values: BTreeMap<String, String>,
    ) -> Result<Vec<(String, u64)>, Failed> {
        self.tenant(tenant).await?;
        if !function.is_empty() {
            self.function(tenant, function).await?;
        }
        let registry = self.registry.clone();
        let (t, f) = (tenant.to_string(), function.to_string());
        let names = blocking(move || {
            let have = registry.secret_names(&t, &f)?;
            let new = values
                .keys()
                .filter(|k| !have.iter().any(|(n, _)| n == *k))
                .count();
            if have.len() + new > SECRETS_PER_SCOPE {
                return Err(Failed::Quota(format!(
                    "At most {SECRETS_PER_SCOPE} secrets each for a tenant and for a function"
                )));
            }
            registry.put_secrets(&t, &f, &values, now_ms())?;
            Ok(registry.secret_names(&t, &f)?)
        })
        .await?;
        if function.is_empty() {
            self.forget_tenant(tenant);
        } else {
            self.forget_function(tenant, function);
        }
        Ok(names)
    }

    pub(crate) async fn secret_names(
        &self,
        tenant: &str,
        function: &str,
    ) -> Result<Vec<(String, u64)>, Failed> {
        self.tenant(tenant).await?;
        if !function.is_empty() {
            self.function(tenant, function).await?;
        }
        let registry = self.registry.clone();
        let (t, f) = (tenant.to_string(), function.to_string());
        blocking(move || Ok(registry.secret_names(&t, &f)?)).await
    }

    pub(crate) async fn delete_secret(
        &self,
        tenant: &str,
        function: &str,
        name: &str,
    ) -> Result<(), Failed> {
        let registry = self.registry.clone();
        let (t, f, n) = (tenant.to_string(), function.to_string(), name.to_string());
        let done = blocking(move || Ok(registry.delete_secret(&t, &f, &n)?)).await?;
        if function.is_empty() {
            self.forget_tenant(tenant);
        } else {
            self.forget_function(tenant, function);
        }
        if done {
            Ok(())
        } else {
            Err(Failed::NotFound(format!("No secret '{name}'")))
        }
    }

    // Calls.

    /// The execution of a call of `deployed`, entered by `entry`.
    pub(crate) fn execution(
        &self,
        config: &Config,
        deployed: &Deployed,
        entry: Entry,
        fn_name: String,
        payload: Arc<str>,
    ) -> Execution {
        let limits = &deployed.limits;
        held_to(
            &deployed.tenant.id,
            limits,
            config,
            Execution {
                isolation: deployed.version.settings.isolation(),
                env: deployed.env.clone(),
                entry,
                ..Execution::call(deployed.code.clone(), fn_name, payload, limits.timeout)
            },
        )
    }

    /// Admits a call of `deployed` under its tenant's and its own
    /// concurrency and rate limits.
    pub(crate) fn admit(&self, deployed: &Deployed) -> Result<Admitted<'_>, Refused> {
        self.gate.admit(
            &deployed.tenant.id,
            &deployed.function.name,
            deployed
                .tenant
                .limits
                .admission(limits::DEFAULT_CONCURRENCY),
            deployed.version.settings.limits.admission(u64::MAX),
        )
    }

    /// Records a finished call in the usage and the function's logs.
    /// `report` is as its caller got it, its secrets taken out
    /// ([`Deployed::redact`]).
    pub(crate) fn record(
        &self,
        deployed: &Deployed,
        via: &str,
        status: u16,
        report: &Report,
        wall: Duration,
    ) {
        let outcome = report.outcome_kind().to_string();
        let minute = now_ms() / 60_000;
        let tenant = deployed.tenant.id.clone();
        let function = deployed.function.name.clone();
        let cpu_us = report.cpu.as_micros() as u64;
        let wall_us = wall.as_micros() as u64;
        let mut logs = serde_json::to_string(&report.logs).unwrap_or_else(|_| "[]".into());
        if logs.len() > LOG_BYTES_KEPT {
            logs = serde_json::json!([{
                "level": "warn",
                "message": format!("(output of {} bytes not kept)", logs.len()),
            }])
            .to_string();
        }
        let ts_ms = now_ms();
        let entry = InvocationLog {
            id: log_id(ts_ms),
            ts_ms,
            version: deployed.version.version,
            via: via.to_string(),
            outcome: outcome.clone(),
            status: u64::from(status),
            wall_ms: wall_us as f64 / 1000.0,
            cpu_ms: cpu_us as f64 / 1000.0,
            logs: store::raw_json(logs),
        };
        let mut pending = lock(&self.pending);
        let row = pending
            .usage
            .entry((tenant.clone(), function.clone(), minute, outcome.clone()))
            .or_insert_with(|| UsageRow {
                function: function.clone(),
                minute,
                outcome,
                ..UsageRow::default()
            });
        row.calls += 1;
        row.cpu_us += cpu_us;
        row.wall_us += wall_us;
        row.mem_peak = row.mem_peak.max(report.memory);
        if pending.logs.len() >= PENDING_LOGS_MAX {
            pending.logs.remove(0);
        }
        pending.logs.push((tenant, function, entry));
    }

    /// Writes pending usage and logs to the store.
    pub(crate) async fn flush(&self) -> Result<(), Failed> {
        let taken = std::mem::take(&mut *lock(&self.pending));
        if taken.usage.is_empty() && taken.logs.is_empty() {
            return Ok(());
        }
        let registry = self.registry.clone();
        let result = blocking(move || {
            let mut by_tenant: BTreeMap<String, Vec<UsageRow>> = BTreeMap::new();
            for ((tenant, ..), row) in taken.usage {
                by_tenant.entry(tenant).or_default().push(row);
            }
            for (tenant, rows) in by_tenant {
                registry.add_usage(&tenant, &rows)?;
            }
            let mut by_function: BTreeMap<(String, String), Vec<InvocationLog>> = BTreeMap::new();
            for (t, f, log) in taken.logs {
                by_function.entry((t, f)).or_default().push(log);
            }
            for ((t, f), logs) in by_function {
                registry.add_logs(&t, &f, &logs)?;
            }
            Ok(())
        })
        .await;
        self.flushed.notify_waiters();
        result
    }

    /// Writes usage and logs every second, and drops usage past
    /// [`USAGE_KEPT_MINUTES`] once an hour.
    pub(crate) fn flush_in_background(self: &Arc<Self>) {
        let me = self.clone();
        crate::background::spawn(async move {
            let mut pruned_at = Instant::now() - Duration::from_secs(3600);
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                if let Err(e) = me.flush().await {
                    tracing::warn!(error = ?e, "function usage could not be written");
                }
                if pruned_at.elapsed() >= Duration::from_secs(3600) {
                    pruned_at = Instant::now();
                    let registry = me.registry.clone();
                    let before = (now_ms() / 60_000).saturating_sub(USAGE_KEPT_MINUTES);
                    let _ = blocking(move || Ok(registry.prune_usage(before)?)).await;
                }
            }
        });
    }

    pub(crate) async fn usage(
        &self,
        tenant: &str,
        function: Option<&str>,
        since_minute: u64,
    ) -> Result<Vec<UsageRow>, Failed> {
        self.tenant(tenant).await?;
        self.flush().await?;
        let registry = self.registry.clone();
        let (t, f) = (tenant.to_string(), function.map(str::to_string));
        blocking(move || Ok(registry.usage(&t, f.as_deref(), since_minute)?)).await
    }

    pub(crate) async fn logs(
        &self,
        tenant: &str,
        function: &str,
        limit: u64,
    ) -> Result<Vec<InvocationLog>, Failed> {
        self.function(tenant, function).await?;
        self.flush().await?;
        let registry = self.registry.clone();
        let (t, f) = (tenant.to_string(), function.to_string());
        blocking(move || Ok(registry.logs(&t, &f, limit)?)).await
    }
}

/// Functions one tenant may have.
pub(crate) const FUNCTIONS_PER_TENANT: u64 = 500;
/// Secrets one tenant may have, and one function.
pub(crate) const SECRETS_PER_SCOPE: usize = 100;

/// `execution` held to a tenant's limits: its time, CPU, memory, hosts and
/// share of the pool, counted as the tenant's, in isolates only its code
/// uses.
fn held_to(tenant: &str, limits: &Effective, config: &Config, execution: Execution) -> Execution {
    Execution {
        cpu_limit: limits.cpu,
        client: Some(format!("tenant:{tenant}").into()),
        owner: Some(tenant.into()),
        net: Some(limits.allow_net.clone()),
        memory_limit: (limits.memory < config.limits.memory_limit_bytes).then_some(limits.memory),
        max_threads: Some(limits.threads),
        ..execution
    }
}

/// How long a deploy's check may take at most.
const DEPLOY_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// An invocation's id: its time, then a count this process keeps, then
/// random digits, so ids sort in the order the calls ended (on one
/// replica; by the millisecond across replicas).
fn log_id(ts_ms: u64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 10_000_000_000;
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{ts_ms:013}{seq:010}{}", &random[..8])
}

fn tenant_caller(k: KeyRecord) -> Caller {
    Caller::Tenant {
        tenant: k.tenant,
        scopes: k.scopes,
    }
}

/// `text` with every secret's value (of 4 bytes or more) replaced by
/// `[secret NAME]`.
pub(crate) fn redact(text: &str, secrets: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in secrets {
        if value.len() >= 4 && out.contains(value.as_str()) {
            out = out.replace(value.as_str(), &format!("[secret {name}]"));
        }
    }
    out
}
