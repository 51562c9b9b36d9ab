//! Turning raw setting text into typed values, each failure naming its
//! variable.

use std::time::Duration;

use super::{ConfigError, JobRetention, MIB};

/// Where raw values come from: flags first, then a variable lookup.
pub(super) struct Source<E: Fn(&str) -> Option<String>> {
    pub env: E,
}

impl<E: Fn(&str) -> Option<String>> Source<E> {
    /// The raw text for `var`: the flag when given, else the variable.
    /// Empty values count as unset.
    pub(super) fn raw(
        &self,
        var: &'static str,
        flag: &Option<String>,
    ) -> Option<(String, &'static str)> {
        flag.clone()
            .or_else(|| (self.env)(var))
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v.trim().to_string(), var))
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
