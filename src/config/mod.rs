//! Configuration: environment variables and matching command-line flags,
//! read and validated once at start-up into typed values. Nothing else in
//! the server reads the environment for a setting; the two other readers
//! are process plumbing: PID 1 marks the child it starts (`init.rs`), and a
//! worker process takes its `EngineOptions` from the variable its parent
//! set (`engine/process/worker.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

mod parse;

use crate::engine::EngineOptions;
pub use crate::engine::Limits;
pub use parse::parse_byte_size;
use parse::{Source, err, parse_list, parse_num, parse_retention, parse_size};

/// A configuration value that could not be used. The message names the
/// variable (and its flag) so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{var} (--{flag}): {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub flag: String,
    pub message: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of the server, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub log_level: String,
    pub log_format: LogFormat,
    pub workspace_dir: PathBuf,
    /// Where the job records' database lives (`DATA_DIR`).
    pub data_dir: PathBuf,
    /// How many and how old job records are kept (`JOB_RETENTION`).
    pub job_retention: JobRetention,
    /// Bytes of output a job record keeps (`JOB_OUTPUT_BYTES`).
    pub job_output_bytes: usize,
    /// Bytes the job store may hold before new jobs are refused
    /// (`JOB_STORE_BYTES`).
    pub job_store_bytes: u64,
    /// How long a session may sit idle before it ends (`SESSION_TTL`).
    pub session_ttl: Duration,
    /// Sessions alive at once (`MAX_SESSIONS`).
    pub max_sessions: usize,
    /// Bytes of files one session may hold (`SESSION_DISK_BYTES`).
    pub session_disk_bytes: u64,
    pub tools_dir: PathBuf,
    pub vendor_dir: PathBuf,
    /// `None` means `<workspace_dir>/import_map.json` when that file exists.
    pub import_map: Option<PathBuf>,
    /// `None` means the default: workspace and tools directories.
    pub allow_read: Option<Vec<PathBuf>>,
    pub allow_write: Vec<PathBuf>,
    pub allow_net: Vec<String>,
    pub allow_env: Vec<String>,
    /// The values, at start-up, of the variables `ALLOW_ENV` names (those
    /// that were set): what `Deno.env.get` sees besides a request's `env`.
    pub allow_env_values: HashMap<String, String>,
    pub limits: Limits,
    pub pool_size: usize,
    /// Most isolate threads one script may hold at once (`SCRIPT_THREADS`).
    pub script_threads: usize,
    /// Threads that serve connections (`HTTP_THREADS`).
    pub http_threads: usize,
    /// Compile helpers started with the server (cores, at most
    /// `pool_size`); up to twice as many are started on demand.
    pub compile_helpers: usize,
    pub queue_size: usize,
    /// Worker processes kept started ahead of `"process"` calls (0: one is
    /// spawned per call).
    pub process_prestart: usize,
    pub max_body_bytes: usize,
    /// How long a client may take to send a request head, and how long a
    /// keep-alive connection may sit idle.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a whole request body.
    pub body_read_timeout: Duration,
    pub api_key: Option<String>,
    /// Whether `/metrics` has series per tenant and function
    /// (`TENANT_METRICS`): off by default, as their number grows with the
    /// tenants'.
    pub tenant_metrics: bool,
    /// The shared store of several replicas, when set.
    pub database_url: Option<String>,
    /// This replica's name in the shared store.
    pub replica_id: String,
    /// How long a claim on a running job lasts without a heartbeat.
    pub lease: Duration,
    /// How often claims are renewed and lost ones looked for.
    pub heartbeat: Duration,
    /// Where the other replicas reach this one; `None` until the server
    /// has bound its address, which then gives the default.
    pub advertise_url: Option<String>,
    /// Isolation of a call or program that names none.
    pub default_isolation: crate::engine::Isolation,
    /// Environment of a session created without one.
    pub default_environment: Option<String>,
    /// What the log should say about the settings read: other systems'
    /// names taken as ours (info), and theirs that mean nothing here
    /// (warnings).
    pub notices: Notices,
}

/// Lines for the log about how the settings were read.
#[derive(Debug, Clone, Default)]
pub struct Notices {
    pub aliases: Vec<String>,
    pub ignored: Vec<String>,
}

/// Which job records are kept: at most `max_records` (the newest), none
/// older than `max_age`; either may be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobRetention {
    pub max_records: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Default for JobRetention {
    fn default() -> Self {
        JobRetention {
            max_records: Some(100_000),
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

const MIB: usize = 1024 * 1024;

/// Flags as given on the command line; each overrides its variable.
/// The environment variables of every setting, as `--help` names them.
pub const VARIABLES: [&str; 46] = [
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "WORKSPACE_DIR",
    "DATA_DIR",
    "JOB_RETENTION",
    "SESSION_TTL",
    "MAX_SESSIONS",
    "TOOLS_DIR",
    "VENDOR_DIR",
    "IMPORT_MAP",
    "ALLOW_READ",
    "ALLOW_WRITE",
    "ALLOW_NET",
    "ALLOW_ENV",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "CPU_LIMIT_MS",
    "POOL_SIZE",
    "SCRIPT_THREADS",
    "HTTP_THREADS",
    "QUEUE_SIZE",
    "PROCESS_PRESTART",
    "MEMORY_LIMIT_MB",
    "MAX_BODY_BYTES",
    "MAX_RESULT_BYTES",
    "MAX_LOG_ENTRIES",
    "MAX_LOG_BYTES",
    "MAX_JSON_DEPTH",
    "HEADER_READ_TIMEOUT_MS",
    "BODY_READ_TIMEOUT_MS",
    "MAX_WRITE_BYTES",
    "API_KEY",
    "TENANT_METRICS",
    "DATABASE_URL",
    "REPLICA_ID",
    "LEASE_MS",
    "HEARTBEAT_MS",
    "ADVERTISE_URL",
    "DEFAULT_ISOLATION",
    "DEFAULT_ENVIRONMENT",
    "JOB_OUTPUT_BYTES",
    "JOB_STORE_BYTES",
    "SESSION_DISK_BYTES",
    "NOTEBOOK_MEMORY_MB",
];

/// Every setting as a command-line flag, accepted before or after the
/// subcommand (`global`). Each flag wins over its environment variable;
/// `Config` reads both and validates them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Address to listen on [default: 127.0.0.1] [env: HOST]"
    )]
    pub host: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Port to listen on; 0 picks a free one [default: 3000] [env: PORT]"
    )]
    pub port: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Log filter: trace, debug, info, warn, error, off, or tracing directives [default: info] [env: LOG_LEVEL]"
    )]
    pub log_level: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Log format: text or json [default: text] [env: LOG_FORMAT]"
    )]
    pub log_format: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Directory of saved code (created if missing) [default: ./workspace] [env: WORKSPACE_DIR]"
    )]
    pub workspace_dir: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Directory of the job records' database and session files [default: ./data] [env: DATA_DIR]"
    )]
    pub data_dir: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Job records kept: a count, an age (30d, 12h), both (100000,30d) or off [default: 100000,30d] [env: JOB_RETENTION]"
    )]
    pub job_retention: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Bytes of output a job record keeps; the rest is cut [default: 1MiB] [env: JOB_OUTPUT_BYTES]"
    )]
    pub job_output_bytes: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Bytes the job records may take on disk; the oldest finished go first, then new jobs are refused (507) [default: 1GiB] [env: JOB_STORE_BYTES]"
    )]
    pub job_store_bytes: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Bytes of files one session may hold, across its executions [default: 64MiB] [env: SESSION_DISK_BYTES]"
    )]
    pub session_disk_bytes: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "MiB all live notebooks may hold together; past it, the notebook whose cell ran last is reset [default: 1024] [env: NOTEBOOK_MEMORY_MB]"
    )]
    pub notebook_memory_mb: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Seconds an idle session lives [default: 3600] [env: SESSION_TTL]"
    )]
    pub session_ttl: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Sessions alive at once [default: 64] [env: MAX_SESSIONS]"
    )]
    pub max_sessions: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Directory of shared modules imports may use [default: ./tools] [env: TOOLS_DIR]"
    )]
    pub tools_dir: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Directory of vendored libraries for bare imports [default: ./vendor] [env: VENDOR_DIR]"
    )]
    pub vendor_dir: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Import map file [default: <WORKSPACE_DIR>/import_map.json] [env: IMPORT_MAP]"
    )]
    pub import_map: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Comma-separated directories code may read [default: workspace and tools] [env: ALLOW_READ]"
    )]
    pub allow_read: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Comma-separated directories code may write [default: none] [env: ALLOW_WRITE]"
    )]
    pub allow_write: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Comma-separated hosts (host or host:port) fetch may reach [default: none] [env: ALLOW_NET]"
    )]
    pub allow_net: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Comma-separated variables Deno.env.get may read [default: none] [env: ALLOW_ENV]"
    )]
    pub allow_env: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Wall-clock limit of a call, ms [default: 5000] [env: DEFAULT_TIMEOUT]"
    )]
    pub default_timeout: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Largest timeout a request may ask for, ms [default: 300000] [env: MAX_TIMEOUT]"
    )]
    pub max_timeout: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Default CPU-time limit, ms [default: off] [env: CPU_LIMIT_MS]"
    )]
    pub cpu_limit_ms: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Isolate threads [default: twice the number of cores] [env: POOL_SIZE]"
    )]
    pub pool_size: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Most isolate threads one script may hold at once [default: cores, at most POOL_SIZE] [env: SCRIPT_THREADS]"
    )]
    pub script_threads: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Threads that serve HTTP connections, each connection on one of them; a thread serving one connection runs its \"none\" and \"frozen\" calls itself [default: twice the number of cores] [env: HTTP_THREADS]"
    )]
    pub http_threads: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Executions waiting for an isolate before 503 [default: 256] [env: QUEUE_SIZE]"
    )]
    pub queue_size: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Worker processes kept started for isolation process (0: spawn per call) [default: pool size, at most 4] [env: PROCESS_PRESTART]"
    )]
    pub process_prestart: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Heap, and separately ArrayBuffer memory, per execution, MiB [default: 128] [env: MEMORY_LIMIT_MB]"
    )]
    pub memory_limit_mb: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Largest request body (K/M/G suffixes) [default: 16MiB] [env: MAX_BODY_BYTES]"
    )]
    pub max_body_bytes: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Largest converted result [default: 10MiB] [env: MAX_RESULT_BYTES]"
    )]
    pub max_result_bytes: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Log entries kept per call [default: 1000] [env: MAX_LOG_ENTRIES]"
    )]
    pub max_log_entries: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Log bytes kept per call [default: 1MiB] [env: MAX_LOG_BYTES]"
    )]
    pub max_log_bytes: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Nesting of request payloads and results [default: 128] [env: MAX_JSON_DEPTH]"
    )]
    pub max_json_depth: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Time for a request head and for an idle connection, ms [default: 30000] [env: HEADER_READ_TIMEOUT_MS]"
    )]
    pub header_read_timeout_ms: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Time for a whole request body, ms [default: 60000] [env: BODY_READ_TIMEOUT_MS]"
    )]
    pub body_read_timeout_ms: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Bytes one execution may write to files [default: 64MiB] [env: MAX_WRITE_BYTES]"
    )]
    pub max_write_bytes: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Bearer key every route but /health and the docs need [default: unset: no auth] [env: API_KEY]"
    )]
    pub api_key: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Series per tenant and function on /metrics: true or false [default: false] [env: TENANT_METRICS]"
    )]
    pub tenant_metrics: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "PostgreSQL URL (postgres://user:pass@host:port/db): job records and queue, saved code and the replicas' catalog live there, shared by every replica [default: unset: SQLite and files under DATA_DIR and WORKSPACE_DIR] [env: DATABASE_URL]"
    )]
    pub database_url: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "This replica's name in the shared store (letters, digits, '-', '_', '.') [default: the host name] [env: REPLICA_ID]"
    )]
    pub replica_id: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "How long a replica's claim on a running job lasts without a heartbeat, in ms; a job whose replica is gone this long becomes an error [default: 10000] [env: LEASE_MS]"
    )]
    pub lease_ms: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "How often a replica renews its claims and looks for lost ones, in ms (under LEASE_MS) [default: 2000] [env: HEARTBEAT_MS]"
    )]
    pub heartbeat_ms: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Where the other replicas reach this one (http://host:port), to forward a session's requests to it [default: http:// and the listening address; the host name when listening on all addresses] [env: ADVERTISE_URL]"
    )]
    pub advertise_url: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Isolation of a call or program that names none: isolate, none, frozen or process (programs take isolate unless this is process) [default: isolate] [env: DEFAULT_ISOLATION]"
    )]
    pub default_isolation: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "VALUE",
        help = "Environment of a session created without one: typescript, javascript, node or python [default: unset: 'environment' is required] [env: DEFAULT_ENVIRONMENT]"
    )]
    pub default_environment: Option<String>,
}

impl Config {
    /// What the engine is started with: the parts of this configuration
    /// that concern running code, and nothing else (no key, no address).
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            workspace_dir: self.workspace_dir.clone(),
            tools_dir: self.tools_dir.clone(),
            vendor_dir: self.vendor_dir.clone(),
            import_map: self.import_map.clone(),
            allow_read: self.allow_read.clone(),
            allow_write: self.allow_write.clone(),
            allow_net: self.allow_net.clone(),
            allow_env: self.allow_env.clone(),
            pool_size: self.pool_size,
            script_threads: self.script_threads,
            queue_size: self.queue_size,
            compile_helpers: self.compile_helpers,
            process_prestart: self.process_prestart,
            limits: self.limits.clone(),
            python_snapshot_dir: Some(self.data_dir.join("python")),
        }
    }

    /// Reads the configuration from `flags` and the process environment.
    pub fn from_env(flags: &Flags) -> Result<Config, ConfigError> {
        let mut config = Config::from_source(flags, |k| std::env::var(k).ok())?;
        config.notices.ignored = parse::foreign_settings(std::env::vars().map(|(k, _)| k));
        Ok(config)
    }

    /// Reads the configuration from `flags` and a variable lookup function.
    pub fn from_source(
        flags: &Flags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let s = Source {
            env,
            aliases_used: Default::default(),
        };
        let f = flags;
        let host = host(s.raw("HOST", &f.host))?;
        let log_level = log_level(s.raw("LOG_LEVEL", &f.log_level))?;
        let log_format = log_format(s.raw("LOG_FORMAT", &f.log_format))?;

        let port = parse_num(s.raw("PORT", &f.port), 3000u16, 0, u16::MAX, "port")?;

        let path = |v: Option<(String, &'static str)>, default: &str| {
            PathBuf::from(v.map(|(t, _)| t).unwrap_or_else(|| default.to_string()))
        };
        let workspace_dir = path(s.raw("WORKSPACE_DIR", &f.workspace_dir), "./workspace");
        let data_dir = path(s.raw("DATA_DIR", &f.data_dir), "./data");
        let job_retention = parse_retention(s.raw("JOB_RETENTION", &f.job_retention))?;
        let job_output_bytes = parse_size(
            s.raw("JOB_OUTPUT_BYTES", &f.job_output_bytes),
            MIB,
            1024,
            64 * MIB,
        )?;
        let job_store_bytes = parse_size(
            s.raw("JOB_STORE_BYTES", &f.job_store_bytes),
            1024 * MIB,
            16 * MIB,
            1 << 50,
        )? as u64;
        let session_disk_bytes = parse_size(
            s.raw("SESSION_DISK_BYTES", &f.session_disk_bytes),
            64 * MIB,
            64 * 1024,
            1 << 40,
        )? as u64;
        let session_ttl = parse_num(
            s.raw("SESSION_TTL", &f.session_ttl),
            3600u64,
            1,
            30 * 86_400,
            "number of seconds",
        )?;
        let max_sessions = parse_num(
            s.raw("MAX_SESSIONS", &f.max_sessions),
            64usize,
            1,
            100_000,
            "number",
        )?;
        let tools_dir = path(s.raw("TOOLS_DIR", &f.tools_dir), "./tools");
        let vendor_dir = path(s.raw("VENDOR_DIR", &f.vendor_dir), "./vendor");
        let import_map = s
            .raw("IMPORT_MAP", &f.import_map)
            .map(|(t, _)| PathBuf::from(t));

        let to_paths =
            |v: Option<Vec<String>>| v.map(|l| l.into_iter().map(PathBuf::from).collect());
        let allow_read = to_paths(parse_list(s.raw("ALLOW_READ", &f.allow_read)));
        let allow_write: Vec<PathBuf> =
            to_paths(parse_list(s.raw("ALLOW_WRITE", &f.allow_write))).unwrap_or_default();
        let allow_net = allow_net(s.raw("ALLOW_NET", &f.allow_net))?;
        let allow_env = allow_env(s.raw("ALLOW_ENV", &f.allow_env))?;
        let allow_env_values = allow_env
            .iter()
            .filter_map(|k| (s.env)(k).map(|v| (k.clone(), v)))
            .collect();

        let limits = limits(&s, f)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool_size = parse_num(
            s.raw("POOL_SIZE", &f.pool_size),
            2 * cores,
            1,
            1024,
            "thread count",
        )?;
        let script_threads = parse_num(
            s.raw("SCRIPT_THREADS", &f.script_threads),
            cores.min(pool_size),
            1,
            1024,
            "thread count",
        )?;
        let http_threads = parse_num(
            s.raw("HTTP_THREADS", &f.http_threads),
            2 * cores,
            1,
            1024,
            "thread count",
        )?;
        let queue_size = parse_num(
            s.raw("QUEUE_SIZE", &f.queue_size),
            256usize,
            0,
            1_000_000,
            "queue length",
        )?;
        let process_prestart = parse_num(
            s.raw("PROCESS_PRESTART", &f.process_prestart),
            pool_size.min(4),
            0,
            256,
            "process count",
        )?;
        let max_body_bytes = parse_size(
            s.raw("MAX_BODY_BYTES", &f.max_body_bytes),
            16 * MIB,
            1024,
            1024 * MIB,
        )?;
        let header_read_timeout_ms = parse_num(
            s.raw("HEADER_READ_TIMEOUT_MS", &f.header_read_timeout_ms),
            30_000u64,
            100,
            3_600_000,
            "number of milliseconds",
        )?;
        let body_read_timeout_ms = parse_num(
            s.raw("BODY_READ_TIMEOUT_MS", &f.body_read_timeout_ms),
            60_000u64,
            100,
            3_600_000,
            "number of milliseconds",
        )?;
        let api_key = s.raw("API_KEY", &f.api_key).map(|(t, _)| t);
        let tenant_metrics = match s.raw("TENANT_METRICS", &f.tenant_metrics) {
            None => false,
            Some((t, var)) => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(parse::err(var, format!("'{t}' is not true or false"))),
            },
        };
        let database_url = database_url(s.raw("DATABASE_URL", &f.database_url))?;
        let default_isolation = match s.raw("DEFAULT_ISOLATION", &f.default_isolation) {
            None => crate::engine::Isolation::Isolate,
            Some((text, var)) => crate::engine::Isolation::parse(&text.to_ascii_lowercase())
                .ok_or_else(|| {
                    err(
                        var,
                        format!("'{text}' is not isolate, none, frozen or process"),
                    )
                })?,
        };
        let default_environment = match s.raw("DEFAULT_ENVIRONMENT", &f.default_environment) {
            None => None,
            Some((text, var)) => {
                let names: Vec<&str> = crate::engine::Language::ALL
                    .iter()
                    .flat_map(|l| l.environments().iter().copied())
                    .collect();
                match names.iter().find(|n| n.eq_ignore_ascii_case(&text)) {
                    Some(name) => Some(name.to_string()),
                    None => {
                        return Err(err(
                            var,
                            format!("'{text}' is not an environment: {}", names.join(", ")),
                        ));
                    }
                }
            }
        };
        let replica_id = replica_id(s.raw("REPLICA_ID", &f.replica_id))?;
        let advertise_url = match s.raw("ADVERTISE_URL", &f.advertise_url) {
            None => None,
            Some((text, var)) => {
                let ok = text
                    .strip_prefix("http://")
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', ' ', '?', '#']));
                if !ok {
                    return Err(err(
                        var,
                        format!("'{text}' is not http://host:port (no path)"),
                    ));
                }
                Some(text)
            }
        };
        let lease_ms = parse_num(
            s.raw("LEASE_MS", &f.lease_ms),
            10_000u64,
            500,
            3_600_000,
            "number of milliseconds",
        )?;
        let heartbeat_ms = parse_num(
            s.raw("HEARTBEAT_MS", &f.heartbeat_ms),
            2_000u64.min(lease_ms / 2),
            50,
            lease_ms / 2,
            "number of milliseconds (at most half of LEASE_MS)",
        )?;

        Ok(Config {
            host,
            port,
            log_level,
            log_format,
            workspace_dir,
            data_dir,
            job_retention,
            job_output_bytes,
            job_store_bytes,
            session_ttl: Duration::from_secs(session_ttl),
            max_sessions,
            session_disk_bytes,
            tools_dir,
            vendor_dir,
            import_map,
            allow_read,
            allow_write,
            allow_net,
            allow_env,
            allow_env_values,
            limits,
            pool_size,
            script_threads,
            http_threads,
            compile_helpers: cores.min(pool_size),
            queue_size,
            process_prestart,
            max_body_bytes,
            header_read_timeout: Duration::from_millis(header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(body_read_timeout_ms),
            api_key,
            tenant_metrics,
            database_url,
            replica_id,
            lease: Duration::from_millis(lease_ms),
            heartbeat: Duration::from_millis(heartbeat_ms),
            advertise_url,
            default_isolation,
            default_environment,
            notices: Notices {
                aliases: s.aliases_used.take(),
                ignored: Vec::new(),
            },
        })
    }
}

/// A setting's raw text and the variable it came from, if set.
type Raw = Option<(String, &'static str)>;

/// `HOST`: an IP address, or `localhost`.
fn host(raw: Raw) -> Result<IpAddr, ConfigError> {
    Ok(match raw {
        None => IpAddr::from([127, 0, 0, 1]),
        Some((text, var)) => {
            if text == "localhost" {
                IpAddr::from([127, 0, 0, 1])
            } else {
                text.parse()
                    .map_err(|_| err(var, format!("'{text}' is not an IP address")))?
            }
        }
    })
}

/// `LOG_LEVEL`: a level, or tracing directives.
fn log_level(raw: Raw) -> Result<String, ConfigError> {
    Ok(match raw {
        None => "info".to_string(),
        Some((text, var)) => {
            // A bare word is a level; anything else is a directive list
            // (`isoexec=debug,hyper=warn`). EnvFilter would take an
            // unknown word as a target name and log nothing.
            const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
            let bare = !text.contains(['=', ',', '[', ':']);
            if bare && !LEVELS.contains(&text.to_ascii_lowercase().as_str()) {
                return Err(err(
                    var,
                    format!(
                        "'{text}' is not a level: use one of {} or directives such as isoexec=debug",
                        LEVELS.join(", ")
                    ),
                ));
            }
            tracing_subscriber::EnvFilter::try_new(&text)
                .map_err(|e| err(var, format!("'{text}' is not a log filter: {e}")))?;
            text
        }
    })
}

/// `LOG_FORMAT`: text or json.
fn log_format(raw: Raw) -> Result<LogFormat, ConfigError> {
    Ok(match raw {
        None => LogFormat::Text,
        Some((text, var)) => match text.to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(err(var, format!("'{text}' is not 'text' or 'json'"))),
        },
    })
}

/// `DATABASE_URL`: a PostgreSQL URL (or key=value connection string).
fn database_url(raw: Raw) -> Result<Option<String>, ConfigError> {
    let Some((text, var)) = raw else {
        return Ok(None);
    };
    match text.parse::<tokio_postgres::Config>() {
        Ok(_) => Ok(Some(text)),
        // The message must not repeat the URL: it may hold a password.
        Err(e) => Err(err(
            var,
            format!("not a PostgreSQL URL (postgres://user:password@host:port/database): {e}"),
        )),
    }
}

/// `REPLICA_ID`: a name, or the host name.
fn replica_id(raw: Raw) -> Result<String, ConfigError> {
    let (text, var) = match raw {
        Some(v) => v,
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let pid = std::process::id();
            return Ok(if host.is_empty() {
                format!("replica-{pid}")
            } else {
                host
            });
        }
    };
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(text)
    } else {
        Err(err(
            var,
            format!("'{text}' is not a replica name: 1 to 128 letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// `ALLOW_NET`: hosts, each `host` or `host:port`.
fn allow_net(raw: Raw) -> Result<Vec<String>, ConfigError> {
    let allow_net = parse_list(raw).unwrap_or_default();
    for host in &allow_net {
        let bad = host.contains("://") || host.contains('/') || host.contains('@');
        let port_ok = host
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_ok() || host.starts_with('['));
        if bad || !port_ok || host.contains(char::is_whitespace) {
            return Err(err(
                "ALLOW_NET",
                format!(
                    "'{host}' is not a host: give host or host:port (example.com, api.local:8080), \
                     without a scheme or a path"
                ),
            ));
        }
    }
    Ok(allow_net)
}

/// `ALLOW_ENV`: variable names.
fn allow_env(raw: Raw) -> Result<Vec<String>, ConfigError> {
    let allow_env = parse_list(raw).unwrap_or_default();
    if let Some(bad) = allow_env
        .iter()
        .find(|k| !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(err(
            "ALLOW_ENV",
            format!("'{bad}' is not a variable name (letters, digits, '_')"),
        ));
    }
    Ok(allow_env)
}

/// The per-execution limits: timeouts, CPU, memory, results, logs,
/// writes and the notebooks' budget.
fn limits<E: Fn(&str) -> Option<String>>(s: &Source<E>, f: &Flags) -> Result<Limits, ConfigError> {
    let max_timeout_ms = parse_num(
        s.raw("MAX_TIMEOUT", &f.max_timeout),
        300_000u64,
        1,
        24 * 3600 * 1000,
        "number of milliseconds",
    )?;
    let default_timeout_ms = parse_num(
        s.raw("DEFAULT_TIMEOUT", &f.default_timeout),
        5000u64.min(max_timeout_ms),
        1,
        max_timeout_ms,
        "number of milliseconds (at most MAX_TIMEOUT)",
    )?;
    let cpu_limit_ms = match s.raw("CPU_LIMIT_MS", &f.cpu_limit_ms) {
        None => None,
        Some((text, _)) if text.eq_ignore_ascii_case("off") => None,
        v => Some(parse_num(
            v,
            0u64,
            1,
            24 * 3600 * 1000,
            "number of milliseconds",
        )?),
    };
    let memory_limit_mb = parse_num(
        s.raw("MEMORY_LIMIT_MB", &f.memory_limit_mb),
        128usize,
        16,
        64 * 1024,
        "number of megabytes",
    )?;
    let max_result_bytes = parse_size(
        s.raw("MAX_RESULT_BYTES", &f.max_result_bytes),
        10 * MIB,
        64,
        1024 * MIB,
    )?;
    let max_log_entries = parse_num(
        s.raw("MAX_LOG_ENTRIES", &f.max_log_entries),
        1000usize,
        0,
        10_000_000,
        "count",
    )?;
    let max_log_bytes = parse_size(s.raw("MAX_LOG_BYTES", &f.max_log_bytes), MIB, 0, 1024 * MIB)?;
    let max_json_depth = parse_num(
        s.raw("MAX_JSON_DEPTH", &f.max_json_depth),
        128usize,
        1,
        1000,
        "depth",
    )?;
    let max_write_bytes = parse_size(
        s.raw("MAX_WRITE_BYTES", &f.max_write_bytes),
        64 * MIB,
        0,
        1 << 40,
    )?;
    let notebook_memory_mb = parse_num(
        s.raw("NOTEBOOK_MEMORY_MB", &f.notebook_memory_mb),
        1024usize,
        16,
        1 << 20,
        "number of MiB",
    )?;
    Ok(Limits {
        default_timeout: Duration::from_millis(default_timeout_ms),
        max_timeout: Duration::from_millis(max_timeout_ms),
        default_cpu_limit: cpu_limit_ms.map(Duration::from_millis),
        memory_limit_bytes: memory_limit_mb * MIB,
        max_result_bytes,
        max_log_entries,
        max_log_bytes,
        max_json_depth,
        max_write_bytes: max_write_bytes as u64,
        notebook_memory_bytes: notebook_memory_mb * MIB,
    })
}

impl Config {
    /// The most memory the server may take with these settings, in bytes:
    /// each isolate thread running a call (heap and off-heap budget, each
    /// as large as the memory limit; a Python interpreter's WebAssembly
    /// memory is charged to the latter) and keeping its warm and frozen
    /// isolates (each retired past half the limit) and a ready Python
    /// interpreter, each connection thread's kept isolates (the calls it
    /// runs take an isolate thread's place), the notebooks' budget and one
    /// cell running past it, the transpile cache, what Python keeps once
    /// per process (the snapshot and the compiled interpreter), and the
    /// server itself.
    pub fn worst_memory_bytes(&self) -> u64 {
        let limit = self.limits.memory_limit_bytes as u64;
        let threads = self.pool_size as u64;
        // Each connection thread's kept isolates, "none" and "frozen" (the
        // calls they run take the pool's places).
        let lanes = self.http_threads as u64 * 2 * limit / crate::engine::LANE_KEPT_SHARE as u64;
        threads * (2 * limit + limit + PYTHON_READY_BYTES)
            + lanes
            + self.limits.notebook_memory_bytes as u64
            + 2 * limit
            + 64 * MIB as u64
            + PYTHON_PROCESS_BYTES
            + 64 * MIB as u64
    }
}

/// What a ready (restored, idle) Python interpreter holds: measured at
/// about 84 MiB (`cargo bench --bench python`), rounded up.
const PYTHON_READY_BYTES: u64 = 128 * MIB as u64;
/// What Python keeps once per process: the 31 MB snapshot and the
/// interpreter's compiled WebAssembly code.
const PYTHON_PROCESS_BYTES: u64 = 64 * MIB as u64;

/// A client's share of a server-wide count (`MAX_SESSIONS`, `QUEUE_SIZE`
/// for background jobs): half of it, at least one, so no client can take
/// all of it.
pub fn client_share(total: usize) -> usize {
    (total / 2).max(1)
}

/// The memory this process may use: its cgroup's limit when it has one,
/// else the machine's memory.
pub fn memory_available() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&n| n < 1 << 60);
    cgroup.or_else(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)], flags: Flags) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_source(&flags, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = load(&[], Flags::default()).unwrap();
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.port, 3000);
        assert_eq!(c.limits.default_timeout, Duration::from_millis(5000));
        assert_eq!(c.limits.max_timeout, Duration::from_millis(300_000));
        assert_eq!(c.limits.memory_limit_bytes, 128 * MIB);
        assert_eq!(c.max_body_bytes, 16 * MIB);
        assert_eq!(c.limits.max_result_bytes, 10 * MIB);
        assert_eq!(c.limits.max_log_entries, 1000);
        assert_eq!(c.limits.max_log_bytes, MIB);
        assert_eq!(c.limits.max_json_depth, 128);
        assert_eq!(c.queue_size, 256);
        assert_eq!(c.job_output_bytes, MIB);
        assert_eq!(c.session_disk_bytes, 64 * MIB as u64);
        assert_eq!(c.job_store_bytes, 1024 * MIB as u64);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.pool_size, 2 * cores);
        assert_eq!(c.script_threads, cores);
        assert_eq!(c.http_threads, 2 * cores);
        assert_eq!(c.compile_helpers, cores);
        assert!(c.limits.default_cpu_limit.is_none());
        assert!(c.api_key.is_none());
        assert!(c.database_url.is_none());
        assert!(!c.replica_id.is_empty());
        assert_eq!(
            (c.lease.as_millis(), c.heartbeat.as_millis()),
            (10_000, 2_000)
        );
    }

    #[test]
    fn other_systems_names_are_read_with_their_units_and_said() {
        let env = HashMap::from([
            ("DENO_ALLOW_NET", "api.example.com"),
            ("DENO_ALLOW_ENV", "MY_VAR"),
            ("EXECUTION_TIMEOUT", "30"),
            ("CONTAINER_MEMORY_LIMIT", "512m"),
            ("ALLOW_READ", "/srv"),
        ]);
        let c =
            Config::from_source(&Flags::default(), |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.allow_net, vec!["api.example.com".to_string()]);
        assert_eq!(c.allow_env, vec!["MY_VAR".to_string()]);
        assert_eq!(c.limits.default_timeout, Duration::from_secs(30));
        assert_eq!(c.limits.memory_limit_bytes, 512 * MIB);
        assert_eq!(c.notices.aliases.len(), 4, "{:?}", c.notices.aliases);
        assert!(
            c.notices
                .aliases
                .iter()
                .any(|l| l.contains("EXECUTION_TIMEOUT=30") && l.contains("DEFAULT_TIMEOUT=30000"))
        );
        // Our own name wins over theirs.
        let both = HashMap::from([("DEFAULT_TIMEOUT", "700"), ("EXECUTION_TIMEOUT", "30")]);
        let c =
            Config::from_source(&Flags::default(), |k| both.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.limits.default_timeout, Duration::from_millis(700));
        assert!(c.notices.aliases.is_empty());
        // A bad value names their variable.
        let bad = HashMap::from([("CONTAINER_MEMORY_LIMIT", "lots")]);
        let e = Config::from_source(&Flags::default(), |k| bad.get(k).map(|v| v.to_string()))
            .unwrap_err();
        assert_eq!(e.var, "CONTAINER_MEMORY_LIMIT");
        // Names that mean nothing here are warned about, with what to use.
        let ignored = parse::foreign_settings(
            [
                "DOCKER_HOST",
                "REDIS_URL",
                "PORT",
                "CONTAINER_CPU_LIMIT",
                "CONTAINER_MEMORY_LIMIT",
            ]
            .into_iter()
            .map(String::from),
        );
        assert_eq!(ignored.len(), 3, "{ignored:?}");
        assert!(
            ignored
                .iter()
                .any(|l| l.starts_with("REDIS_URL") && l.contains("DATABASE_URL"))
        );
    }

    #[test]
    fn a_flag_wins_over_its_variable() {
        let flags = Flags {
            port: Some("4000".into()),
            ..Flags::default()
        };
        let c = load(&[("PORT", "5000")], flags).unwrap();
        assert_eq!(c.port, 4000);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = load(&[("PORT", "http")], Flags::default()).unwrap_err();
        assert_eq!(e.var, "PORT");
        assert!(e.to_string().starts_with("PORT (--port):"), "{e}");
        let e = load(&[("POOL_SIZE", "0")], Flags::default()).unwrap_err();
        assert_eq!(e.var, "POOL_SIZE");
        let e = load(&[("LOG_FORMAT", "xml")], Flags::default()).unwrap_err();
        assert_eq!(e.var, "LOG_FORMAT");
        let e = load(&[("MAX_BODY_BYTES", "lots")], Flags::default()).unwrap_err();
        assert_eq!(e.var, "MAX_BODY_BYTES");
        let e = load(
            &[("DEFAULT_TIMEOUT", "9000"), ("MAX_TIMEOUT", "1000")],
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(e.var, "DEFAULT_TIMEOUT");
    }

    #[test]
    fn byte_sizes_accept_binary_suffixes() {
        assert_eq!(parse_byte_size("1024"), Some(1024));
        assert_eq!(parse_byte_size("16MiB"), Some(16 * MIB));
        assert_eq!(parse_byte_size("2 k"), Some(2048));
        assert_eq!(parse_byte_size("1G"), Some(1024 * MIB));
        assert_eq!(parse_byte_size("1.5M"), None);
        assert_eq!(parse_byte_size("ten"), None);
    }

    #[test]
    fn lists_are_split_on_commas() {
        let c = load(
            &[("ALLOW_ENV", "A_B, C1 ,"), ("A_B", "x")],
            Flags::default(),
        )
        .unwrap();
        assert_eq!(c.allow_env, vec!["A_B", "C1"]);
        // Only variables that are set are passed on, with their values.
        assert_eq!(c.allow_env_values.len(), 1);
        assert_eq!(c.allow_env_values["A_B"], "x");
        assert!(load(&[("ALLOW_ENV", "A-B")], Flags::default()).is_err());
    }

    #[test]
    fn bad_log_levels_and_hosts_name_their_variable() {
        for (var, value) in [
            ("LOG_LEVEL", "verbose"),
            ("LOG_LEVEL", "isoexec=loud"),
            ("ALLOW_NET", "http://example.com"),
            ("ALLOW_NET", "example.com/api"),
            ("ALLOW_NET", "example.com:http"),
            ("JOB_RETENTION", "lots"),
        ] {
            let e = load(&[(var, value)], Flags::default()).unwrap_err();
            assert_eq!(e.var, var, "{value}");
            assert!(e.to_string().contains(value), "{e}");
        }
        for (var, value) in [
            ("LOG_LEVEL", "DEBUG"),
            ("LOG_LEVEL", "isoexec=debug,hyper=warn"),
            ("ALLOW_NET", "example.com,api.local:8080,[::1]:80"),
            ("JOB_RETENTION", "500,12h"),
        ] {
            assert!(
                load(&[(var, value)], Flags::default()).is_ok(),
                "{var}={value}"
            );
        }
    }

    #[test]
    fn every_variable_has_a_flag_and_help() {
        use clap::CommandFactory as _;
        #[derive(clap::Parser)]
        struct FlagsOnly {
            #[command(flatten)]
            flags: Flags,
        }
        let cmd = FlagsOnly::command();
        for var in VARIABLES {
            let flag = var.to_ascii_lowercase().replace('_', "-");
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(flag.as_str()))
                .unwrap_or_else(|| panic!("no --{flag}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains(&format!("[env: {var}]")), "{flag}: {help}");
            assert!(help.contains("[default: "), "{flag}: {help}");
        }
        assert_eq!(cmd.get_arguments().count(), VARIABLES.len());
    }
}
