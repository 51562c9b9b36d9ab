//! Configuration: environment variables and matching command-line flags,
//! read and validated once at start-up into typed values. Nothing else in the
//! crate reads the environment.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

mod parse;

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

/// Every setting of the server, validated. (Serializable: a worker process
/// gets the server's exact settings.)
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// How long a session may sit idle before it ends (`SESSION_TTL`).
    pub session_ttl: Duration,
    /// Sessions alive at once (`MAX_SESSIONS`).
    pub max_sessions: usize,
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

/// The per-execution limits, passed down to the isolate pool.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub default_cpu_limit: Option<Duration>,
    pub memory_limit_bytes: usize,
    pub max_result_bytes: usize,
    pub max_log_entries: usize,
    pub max_log_bytes: usize,
    pub max_json_depth: usize,
    /// Bytes one execution may write to files (`MAX_WRITE_BYTES`).
    pub max_write_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_timeout: Duration::from_millis(5000),
            max_timeout: Duration::from_millis(300_000),
            default_cpu_limit: None,
            memory_limit_bytes: 128 * MIB,
            max_result_bytes: 10 * MIB,
            max_log_entries: 1000,
            max_log_bytes: MIB,
            max_json_depth: 128,
            max_write_bytes: 64 * MIB as u64,
        }
    }
}

const MIB: usize = 1024 * 1024;

/// Flags as given on the command line; each overrides its variable.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<String>,
    #[arg(long)]
    pub log_level: Option<String>,
    #[arg(long)]
    pub log_format: Option<String>,
    #[arg(long)]
    pub workspace_dir: Option<String>,
    #[arg(long)]
    pub data_dir: Option<String>,
    #[arg(long)]
    pub job_retention: Option<String>,
    #[arg(long)]
    pub session_ttl: Option<String>,
    #[arg(long)]
    pub max_sessions: Option<String>,
    #[arg(long)]
    pub tools_dir: Option<String>,
    #[arg(long)]
    pub vendor_dir: Option<String>,
    #[arg(long)]
    pub import_map: Option<String>,
    #[arg(long)]
    pub allow_read: Option<String>,
    #[arg(long)]
    pub allow_write: Option<String>,
    #[arg(long)]
    pub allow_net: Option<String>,
    #[arg(long)]
    pub allow_env: Option<String>,
    #[arg(long)]
    pub default_timeout: Option<String>,
    #[arg(long)]
    pub max_timeout: Option<String>,
    #[arg(long)]
    pub cpu_limit_ms: Option<String>,
    #[arg(long)]
    pub pool_size: Option<String>,
    #[arg(long)]
    pub queue_size: Option<String>,
    #[arg(long)]
    pub process_prestart: Option<String>,
    #[arg(long)]
    pub memory_limit_mb: Option<String>,
    #[arg(long)]
    pub max_body_bytes: Option<String>,
    #[arg(long)]
    pub max_result_bytes: Option<String>,
    #[arg(long)]
    pub max_log_entries: Option<String>,
    #[arg(long)]
    pub max_log_bytes: Option<String>,
    #[arg(long)]
    pub max_json_depth: Option<String>,
    #[arg(long)]
    pub header_read_timeout_ms: Option<String>,
    #[arg(long)]
    pub body_read_timeout_ms: Option<String>,
    #[arg(long)]
    pub max_write_bytes: Option<String>,
    #[arg(long)]
    pub api_key: Option<String>,
}

impl Config {
    /// Reads the configuration from `flags` and the process environment.
    pub fn from_env(flags: &Flags) -> Result<Config, ConfigError> {
        Config::from_source(flags, |k| std::env::var(k).ok())
    }

    /// Reads the configuration from `flags` and a variable lookup function.
    pub fn from_source(
        flags: &Flags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let s = Source { env };
        let f = flags;

        let host = match s.raw("HOST", &f.host) {
            None => IpAddr::from([127, 0, 0, 1]),
            Some((text, var)) => {
                if text == "localhost" {
                    IpAddr::from([127, 0, 0, 1])
                } else {
                    text.parse()
                        .map_err(|_| err(var, format!("'{text}' is not an IP address")))?
                }
            }
        };
        let port = parse_num(s.raw("PORT", &f.port), 3000u16, 0, u16::MAX, "port")?;

        let log_level = match s.raw("LOG_LEVEL", &f.log_level) {
            None => "info".to_string(),
            Some((text, var)) => {
                tracing_subscriber::EnvFilter::try_new(&text)
                    .map_err(|e| err(var, format!("'{text}' is not a log filter: {e}")))?;
                text
            }
        };
        let log_format = match s.raw("LOG_FORMAT", &f.log_format) {
            None => LogFormat::Text,
            Some((text, var)) => match text.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(err(var, format!("'{text}' is not 'text' or 'json'"))),
            },
        };

        let path = |v: Option<(String, &'static str)>, default: &str| {
            PathBuf::from(v.map(|(t, _)| t).unwrap_or_else(|| default.to_string()))
        };
        let workspace_dir = path(s.raw("WORKSPACE_DIR", &f.workspace_dir), "./workspace");
        let data_dir = path(s.raw("DATA_DIR", &f.data_dir), "./data");
        let job_retention = parse_retention(s.raw("JOB_RETENTION", &f.job_retention))?;
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
        let allow_net = parse_list(s.raw("ALLOW_NET", &f.allow_net)).unwrap_or_default();
        let allow_env = parse_list(s.raw("ALLOW_ENV", &f.allow_env)).unwrap_or_default();
        if let Some(bad) = allow_env
            .iter()
            .find(|k| !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(err(
                "ALLOW_ENV",
                format!("'{bad}' is not a variable name (letters, digits, '_')"),
            ));
        }

        let allow_env_values = allow_env
            .iter()
            .filter_map(|k| (s.env)(k).map(|v| (k.clone(), v)))
            .collect();

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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool_size = parse_num(
            s.raw("POOL_SIZE", &f.pool_size),
            cores,
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
        let memory_limit_mb = parse_num(
            s.raw("MEMORY_LIMIT_MB", &f.memory_limit_mb),
            128usize,
            16,
            64 * 1024,
            "number of megabytes",
        )?;
        let max_body_bytes = parse_size(
            s.raw("MAX_BODY_BYTES", &f.max_body_bytes),
            16 * MIB,
            1024,
            1024 * MIB,
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
        let max_log_bytes =
            parse_size(s.raw("MAX_LOG_BYTES", &f.max_log_bytes), MIB, 0, 1024 * MIB)?;
        let max_json_depth = parse_num(
            s.raw("MAX_JSON_DEPTH", &f.max_json_depth),
            128usize,
            1,
            1000,
            "depth",
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
        let max_write_bytes = parse_size(
            s.raw("MAX_WRITE_BYTES", &f.max_write_bytes),
            64 * MIB,
            0,
            1 << 40,
        )?;
        let api_key = s.raw("API_KEY", &f.api_key).map(|(t, _)| t);

        Ok(Config {
            host,
            port,
            log_level,
            log_format,
            workspace_dir,
            data_dir,
            job_retention,
            session_ttl: Duration::from_secs(session_ttl),
            max_sessions,
            tools_dir,
            vendor_dir,
            import_map,
            allow_read,
            allow_write,
            allow_net,
            allow_env,
            allow_env_values,
            limits: Limits {
                default_timeout: Duration::from_millis(default_timeout_ms),
                max_timeout: Duration::from_millis(max_timeout_ms),
                default_cpu_limit: cpu_limit_ms.map(Duration::from_millis),
                memory_limit_bytes: memory_limit_mb * MIB,
                max_result_bytes,
                max_log_entries,
                max_log_bytes,
                max_json_depth,
                max_write_bytes: max_write_bytes as u64,
            },
            pool_size,
            queue_size,
            process_prestart,
            max_body_bytes,
            header_read_timeout: Duration::from_millis(header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(body_read_timeout_ms),
            api_key,
        })
    }
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
        assert!(c.pool_size >= 1);
        assert!(c.limits.default_cpu_limit.is_none());
        assert!(c.api_key.is_none());
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
}
