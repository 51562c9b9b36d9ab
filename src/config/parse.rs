//! Turning raw setting text into typed values, each failure naming its
//! variable.

use std::time::Duration;

use super::{ConfigError, JobRetention, MIB};

/// Where raw values come from: flags first, then a variable lookup, then
/// the names other systems give the same setting.
pub(super) struct Source<E: Fn(&str) -> Option<String>> {
    pub env: E,
    /// The other systems' names used, as lines for the log.
    pub aliases_used: std::cell::RefCell<Vec<String>>,
}

/// How another system's value becomes ours.
#[derive(Clone, Copy)]
enum Convert {
    Same,
    /// Seconds → milliseconds.
    SecondsToMs,
    /// A size (`512m`, `1g`, `536870912`) → whole MiB.
    SizeToMib,
}

/// Settings of the systems isoexec replaces, under their own names: (their
/// name, ours, how the value converts, whose name it is).
const ALIASES: [(&str, &str, Convert, &str); 7] = [
    ("DENO_ALLOW_READ", "ALLOW_READ", Convert::Same, "restexec"),
    ("DENO_ALLOW_WRITE", "ALLOW_WRITE", Convert::Same, "restexec"),
    ("DENO_ALLOW_NET", "ALLOW_NET", Convert::Same, "restexec"),
    ("DENO_ALLOW_ENV", "ALLOW_ENV", Convert::Same, "restexec"),
    ("DENO_IMPORT_MAP", "IMPORT_MAP", Convert::Same, "restexec"),
    (
        "EXECUTION_TIMEOUT",
        "DEFAULT_TIMEOUT",
        Convert::SecondsToMs,
        "the session executor",
    ),
    (
        "CONTAINER_MEMORY_LIMIT",
        "MEMORY_LIMIT_MB",
        Convert::SizeToMib,
        "the session executor",
    ),
];

/// Names of other systems' settings that cannot apply here, by prefix,
/// with what to use instead.
const FOREIGN: [(&str, &str); 5] = [
    (
        "CONTAINER_",
        "no containers run here: MEMORY_LIMIT_MB, DEFAULT_TIMEOUT and CPU_LIMIT_MS bound each execution",
    ),
    (
        "DOCKER_",
        "no Docker is used: executions run in V8 isolates in this process (ISOLATION modes)",
    ),
    (
        "CELERY_",
        "no task queue is needed: code jobs queue in the job store (QUEUE_SIZE, DATABASE_URL for several replicas)",
    ),
    (
        "REDIS_",
        "no Redis is used: job records and the queue are in SQLite, or in PostgreSQL with DATABASE_URL",
    ),
    (
        "NETWORK_DISABLED",
        "code has no network unless ALLOW_NET lists the hosts it may reach",
    ),
];

/// Warnings for variables of other systems that mean nothing here, one per
/// variable, from the names in the environment.
pub(super) fn foreign_settings(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    // Set by container runtimes themselves, not settings of any system.
    const RUNTIME_SET: [&str; 3] = ["CONTAINER_NAME", "CONTAINER_ID", "CONTAINER_HOST"];
    for name in names {
        if ALIASES.iter().any(|(theirs, ..)| *theirs == name)
            || RUNTIME_SET.contains(&name.as_str())
        {
            continue;
        }
        if let Some((_, instead)) = FOREIGN.iter().find(|(prefix, _)| name.starts_with(prefix)) {
            out.push(format!(
                "{name} is not a setting of isoexec and is ignored: {instead}"
            ));
        }
    }
    out.sort();
    out
}

fn convert(text: &str, how: Convert) -> Option<String> {
    match how {
        Convert::Same => Some(text.to_string()),
        Convert::SecondsToMs => {
            let secs: f64 = text.trim().parse().ok()?;
            (secs.is_finite() && secs > 0.0).then(|| format!("{}", (secs * 1000.0).round() as u64))
        }
        Convert::SizeToMib => {
            let t = text.trim().to_ascii_lowercase();
            let t = t.trim_end_matches('b');
            let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
                Some(i) => (&t[..i], &t[i..]),
                None => (t, ""),
            };
            let n: f64 = digits.parse().ok()?;
            let bytes = n * match unit {
                "" => 1.0,
                "k" | "ki" => 1024.0,
                "m" | "mi" => 1024.0 * 1024.0,
                "g" | "gi" => 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            Some(format!(
                "{}",
                (bytes / (1024.0 * 1024.0)).round().max(1.0) as u64
            ))
        }
    }
}

impl<E: Fn(&str) -> Option<String>> Source<E> {
    /// The raw text for `var`: the flag when given, else the variable.
    /// Empty values count as unset.
    pub(super) fn raw(
        &self,
        var: &'static str,
        flag: &Option<String>,
    ) -> Option<(String, &'static str)> {
        let own = flag
            .clone()
            .or_else(|| (self.env)(var))
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v.trim().to_string(), var));
        own.or_else(|| self.alias(var))
    }

    /// `var`'s value under another system's name, converted to our unit;
    /// errors then name that variable.
    fn alias(&self, var: &'static str) -> Option<(String, &'static str)> {
        let (theirs, _, how, whose) = ALIASES.iter().find(|(_, ours, ..)| *ours == var)?;
        let text = (self.env)(theirs).filter(|v| !v.trim().is_empty())?;
        let converted = convert(&text, *how).unwrap_or(text.clone());
        self.aliases_used.borrow_mut().push(format!(
            "{theirs}={text} ({whose}'s name) is read as {var}={converted}"
        ));
        Some((converted, theirs))
    }
}

pub(super) fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        flag: var.to_ascii_lowercase().replace('_', "-"),
        message: message.into(),
    }
}

pub(super) fn parse_num<T>(
    value: Option<(String, &'static str)>,
    default: T,
    min: T,
    max: T,
    what: &str,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some((text, var)) = value else {
        return Ok(default);
    };
    let n: T = text
        .parse()
        .map_err(|_| err(var, format!("'{text}' is not a valid {what}")))?;
    if n < min || n > max {
        return Err(err(var, format!("{n} is out of range ({min} to {max})")));
    }
    Ok(n)
}

/// Parses a byte size: a plain number of bytes, or with a suffix
/// `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB` (all binary).
pub fn parse_byte_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().ok()?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => 1024 * MIB,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(super) fn parse_size(
    value: Option<(String, &'static str)>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let Some((text, var)) = value else {
        return Ok(default);
    };
    let n = parse_byte_size(&text).ok_or_else(|| {
        err(
            var,
            format!("'{text}' is not a byte size (a number, optionally with K, M or G)"),
        )
    })?;
    if n < min || n > max {
        return Err(err(
            var,
            format!("{n} bytes is out of range ({min} to {max})"),
        ));
    }
    Ok(n)
}

pub(super) fn parse_list(value: Option<(String, &'static str)>) -> Option<Vec<String>> {
    value.map(|(text, _)| {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

/// `JOB_RETENTION`: a count of records, an age (`30d`, `12h`, `90m`,
/// `3600s`), or both separated by a comma; `off` keeps everything. Absent
/// means the default (100000 records, 30 days).
pub(super) fn parse_retention(
    value: Option<(String, &'static str)>,
) -> Result<JobRetention, ConfigError> {
    let Some((text, var)) = value else {
        return Ok(JobRetention::default());
    };
    if text.eq_ignore_ascii_case("off") {
        return Ok(JobRetention {
            max_records: None,
            max_age: None,
        });
    }
    let mut kept = JobRetention {
        max_records: None,
        max_age: None,
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            err(
                var,
                format!(
                    "'{part}' is neither a number of records nor an age such as 30d, 12h, 90m or 3600s"
                ),
            )
        };
        if let Ok(n) = part.parse::<u64>() {
            if n == 0 {
                return Err(err(
                    var,
                    "a count of 0 would keep no record; use off to keep all",
                ));
            }
            kept.max_records = Some(n);
            continue;
        }
        if !part.is_ascii() {
            return Err(bad());
        }
        let (digits, unit) = part.split_at(part.len() - 1);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(bad()),
        };
        kept.max_age = Some(Duration::from_secs(secs));
    }
    Ok(kept)
}
