//! What a tenant's calls may use: the tenant's limits (set by the
//! operator), a function's own (which may only lower them), the limits in
//! force for a call, and the per-replica counters that hold concurrency and
//! rate to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::Config;
use crate::engine::Isolation;
use crate::sync::lock;

/// Limits of a tenant, or of one of its functions. Absent fields take the
/// tenant's value (for a function) or the server's default (for a tenant).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TenantLimits {
    /// Wall-clock limit of a call, ms (default: `DEFAULT_TIMEOUT`, at most
    /// `MAX_TIMEOUT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// CPU-time limit of a call, ms (default: `DEFAULT_CPU_TIMEOUT`, or none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    /// Memory a call may hold, MiB (default and most: `MEMORY_LIMIT_MB`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Calls running at once on one replica; past it, 429 (default 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// Calls per second on one replica, a token bucket (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    /// The bucket's size: calls that may come at once (default: the rate,
    /// at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Hosts (`name` or `name:port`) `fetch` may reach (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_net: Option<Vec<String>>,
    /// Isolate threads the tenant's calls may hold at once (default and
    /// most: `SCRIPT_THREADS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
}

/// Calls a tenant may run at once when its limits do not say.
pub(crate) const DEFAULT_CONCURRENCY: u64 = 16;

/// A function's settings, given when a version is deployed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionSettings {
    /// `none` (warm: the function's module state is kept across its calls,
    /// in isolates no other tenant uses), `frozen` or `isolate` (a clean
    /// state per call).
    pub isolation: Option<String>,
    /// Lower limits than the tenant's.
    #[serde(default)]
    pub limits: TenantLimits,
    /// Whether the HTTP route answers without a key.
    #[serde(default)]
    pub public: bool,
}

impl FunctionSettings {
    pub(crate) fn isolation(&self) -> Isolation {
        self.isolation
            .as_deref()
            .and_then(Isolation::parse)
            .unwrap_or(Isolation::None)
    }
}

/// The limits in force for one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Effective {
    pub timeout: Duration,
    pub cpu: Option<Duration>,
    pub memory: usize,
    pub allow_net: Arc<Vec<String>>,
    pub threads: usize,
}

fn lower(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl TenantLimits {
    /// Checks a tenant's limits (or a function's, against its tenant's):
    /// the message names the field.
    pub(crate) fn check(&self, within: Option<&TenantLimits>) -> Result<(), (String, String)> {
        let positive = [
            ("timeoutMs", self.timeout_ms),
            ("cpuMs", self.cpu_ms),
            ("memoryMb", self.memory_mb),
            ("concurrency", self.concurrency),
            ("burst", self.burst),
            ("threads", self.threads),
        ];
        for (name, value) in positive {
            if value == Some(0) {
                return Err((name.into(), format!("'{name}' must be at least 1")));
            }
        }
        if let Some(rate) = self.rate_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err((
                "ratePerSecond".into(),
                "'ratePerSecond' must be a positive number".into(),
            ));
        }
        if let Some(hosts) = &self.allow_net {
            for host in hosts {
                if host.is_empty() || host.contains(['/', ' ', '@']) {
                    return Err((
                        "allowNet".into(),
                        format!("'{host}' is not a host (name or name:port)"),
                    ));
                }
            }
        }
        let Some(tenant) = within else {
            return Ok(());
        };
        // A function may only lower its tenant's limits.
        let pairs = [
            ("timeoutMs", self.timeout_ms, tenant.timeout_ms),
            ("cpuMs", self.cpu_ms, tenant.cpu_ms),
            ("memoryMb", self.memory_mb, tenant.memory_mb),
            ("concurrency", self.concurrency, tenant.concurrency),
            ("threads", self.threads, tenant.threads),
        ];
        for (name, mine, theirs) in pairs {
            if let (Some(m), Some(t)) = (mine, theirs)
                && m > t
            {
                return Err((
                    name.into(),
                    format!(
                        "'{name}' is {m}, above the tenant's {t}: a function may only lower its tenant's limits"
                    ),
                ));
            }
        }
        if let (Some(m), Some(t)) = (self.rate_per_second, tenant.rate_per_second)
            && m > t
        {
            return Err((
                "ratePerSecond".into(),
                format!("'ratePerSecond' is {m}, above the tenant's {t}"),
            ));
        }
        if let Some(hosts) = &self.allow_net {
            let allowed = tenant.allow_net.clone().unwrap_or_default();
            if let Some(h) = hosts.iter().find(|h| !allowed.contains(h)) {
                return Err((
                    "allowNet".into(),
                    format!(
                        "'{h}' is not among the tenant's hosts ({})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The limits of a call of a function with `own` limits, under this
    /// tenant's, within the server's.
    pub(crate) fn effective(&self, own: &TenantLimits, config: &Config) -> Effective {
        let limits = &config.limits;
        let max_ms = limits.max_timeout.as_millis() as u64;
        let timeout_ms = lower(own.timeout_ms, self.timeout_ms)
            .unwrap_or(limits.default_timeout.as_millis() as u64)
            .min(max_ms);
        let cpu = lower(own.cpu_ms, self.cpu_ms)
            .map(Duration::from_millis)
            .or(limits.default_cpu_limit);
        let memory = lower(own.memory_mb, self.memory_mb)
            .map_or(limits.memory_limit_bytes, |mb| {
                (mb as usize).saturating_mul(1 << 20)
            })
            .min(limits.memory_limit_bytes);
        Effective {
            timeout: Duration::from_millis(timeout_ms),
            cpu,
            memory,
            allow_net: Arc::new(
                own.allow_net
                    .clone()
                    .or_else(|| self.allow_net.clone())
                    .unwrap_or_default(),
            ),
            threads: lower(own.threads, self.threads)
                .map_or(config.script_threads, |t| t as usize)
                .min(config.script_threads),
        }
    }
}

impl TenantLimits {
    /// What the gate holds calls under these limits to: calls at once
    /// (`unset` when none is set), and the token bucket's rate and size
    /// when a rate is set. Concurrency and rate are counted apart for a
    /// tenant and for each function, not merged as the other limits are.
    pub(crate) fn admission(&self, unset: u64) -> (u64, Option<(f64, f64)>) {
        let bucket = self
            .rate_per_second
            .map(|r| (r, self.burst.map_or(r.max(1.0), |b| b as f64)));
        (self.concurrency.unwrap_or(unset), bucket)
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` kept.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-replica admission: calls running and tokens left, per tenant and
/// per function.
#[derive(Default)]
pub(crate) struct Gate {
    running: Mutex<HashMap<String, u64>>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Why a call was not admitted, and when to try again.
pub(crate) enum Refused {
    Concurrency { limit: u64 },
    Rate { retry_after: Duration },
}

/// A call admitted: dropping it frees its place.
pub(crate) struct Admitted<'a> {
    gate: &'a Gate,
    keys: [String; 2],
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.gate.running);
        for key in &self.keys {
            if let Some(n) = running.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    running.remove(key);
                }
            }
        }
    }
}

impl Gate {
    /// Admits a call of `function` of `tenant`, or says why not. The
    /// tenant's limit counts all its functions' calls; a function's own
    /// limit (`function_limit`) its own.
    pub(crate) fn admit(
        &self,
        tenant: &str,
        function: &str,
        tenant_limits: (u64, Option<(f64, f64)>),
        function_limits: (u64, Option<(f64, f64)>),
    ) -> Result<Admitted<'_>, Refused> {
        let keys = [format!("t\0{tenant}"), format!("f\0{tenant}\0{function}")];
        let limits = [tenant_limits, function_limits];
        {
            let mut buckets = lock(&self.buckets);
            let now = Instant::now();
            // Both buckets must have a token before either gives one.
            let mut wait = Duration::ZERO;
            for (key, (_, rate)) in keys.iter().zip(&limits) {
                let Some((rate, burst)) = rate else { continue };
                let b = buckets.entry(key.clone()).or_insert(Bucket {
                    tokens: *burst,
                    at: now,
                });
                let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
                b.tokens = (b.tokens + elapsed * rate).min(*burst);
                b.at = now;
                if b.tokens < 1.0 {
                    wait = wait.max(Duration::from_secs_f64((1.0 - b.tokens) / rate));
                }
            }
            if !wait.is_zero() {
                return Err(Refused::Rate { retry_after: wait });
            }
            for (key, (_, rate)) in keys.iter().zip(&limits) {
                if rate.is_some()
                    && let Some(b) = buckets.get_mut(key)
                {
                    b.tokens -= 1.0;
                }
            }
            // Buckets that are full again need not be kept.
            if buckets.len() > 10_000 {
                buckets.retain(|_, b| b.at.elapsed() < Duration::from_secs(60));
            }
        }
        let mut running = lock(&self.running);
        for (key, (limit, _)) in keys.iter().zip(&limits) {
            if running.get(key).copied().unwrap_or(0) >= *limit {
                return Err(Refused::Concurrency { limit: *limit });
            }
        }
        for key in &keys {
            *running.entry(key.clone()).or_default() += 1;
        }
        drop(running);
        Ok(Admitted { gate: self, keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_may_only_lower_its_tenants_limits() {
        let tenant = TenantLimits {
            timeout_ms: Some(1000),
            allow_net: Some(vec!["api.example.com".into()]),
            ..Default::default()
        };
        let higher = TenantLimits {
            timeout_ms: Some(2000),
            ..Default::default()
        };
        assert_eq!(higher.check(Some(&tenant)).unwrap_err().0, "timeoutMs");
        let other_host = TenantLimits {
            allow_net: Some(vec!["evil.example.com".into()]),
            ..Default::default()
        };
        assert_eq!(other_host.check(Some(&tenant)).unwrap_err().0, "allowNet");
        let lower = TenantLimits {
            timeout_ms: Some(10),
            ..Default::default()
        };
        assert!(lower.check(Some(&tenant)).is_ok());
    }

    #[test]
    fn the_gate_holds_concurrency_and_rate() {
        let gate = Gate::default();
        let a = gate.admit("t", "f", (2, None), (16, None)).ok().unwrap();
        let _b = gate.admit("t", "g", (2, None), (16, None)).ok().unwrap();
        assert!(matches!(
            gate.admit("t", "f", (2, None), (16, None)),
            Err(Refused::Concurrency { limit: 2 })
        ));
        // Another tenant is not held by this one's calls.
        assert!(gate.admit("u", "f", (2, None), (16, None)).is_ok());
        drop(a);
        assert!(gate.admit("t", "f", (2, None), (16, None)).is_ok());

        let rate = Some((1.0, 2.0));
        assert!(gate.admit("r", "f", (16, rate), (16, None)).is_ok());
        assert!(gate.admit("r", "f", (16, rate), (16, None)).is_ok());
        match gate.admit("r", "f", (16, rate), (16, None)) {
            Err(Refused::Rate { retry_after }) => assert!(retry_after > Duration::ZERO),
            _ => panic!("a third call within the burst of two"),
        }
    }
}
