//! The tenant registry's records and the statements that keep them:
//! tenants, their keys (hashed), functions with immutable versions and a
//! head, write-only secrets, usage per minute and recent invocation logs.
//! Every method blocks (call it off the reactor).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{FunctionSettings, TenantLimits};
use super::sql::{CONFLICT, Sql, StoreError, Val};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    /// Deploy, roll back and delete functions; write secrets; read logs.
    Deploy,
    /// Invoke functions (by name and by their HTTP route).
    Invoke,
}

#[derive(Debug, Clone)]
pub(crate) struct TenantRecord {
    pub id: String,
    pub limits: TenantLimits,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub label: String,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct FunctionRecord {
    pub name: String,
    pub head: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// What a deployed version exports, found when it was deployed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Exports {
    pub functions: Vec<String>,
    pub fetch: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct VersionRecord {
    pub version: u64,
    pub sha256: String,
    pub code: String,
    pub settings: FunctionSettings,
    pub exports: Exports,
    pub created_at_ms: u64,
}

/// One function's figures for one minute and one outcome (`ok` or an
/// error kind).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UsageRow {
    pub function: String,
    pub minute: u64,
    pub outcome: String,
    pub calls: u64,
    pub cpu_us: u64,
    pub wall_us: u64,
    pub mem_peak: u64,
}

/// One invocation, as its tenant reads it back.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InvocationLog {
    pub id: String,
    #[serde(rename = "ts")]
    pub ts_ms: u64,
    pub version: u64,
    /// `invoke` or `http`.
    pub via: String,
    /// `ok` or the error kind.
    pub outcome: String,
    /// The HTTP status an HTTP-triggered call answered (0 for invoke).
    pub status: u64,
    #[serde(rename = "wallMs")]
    pub wall_ms: f64,
    #[serde(rename = "cpuMs")]
    pub cpu_ms: f64,
    /// The call's console output (log entries as JSON), kept as the text
    /// it was written as.
    pub logs: Box<serde_json::value::RawValue>,
}

/// JSON text the server wrote itself, to pass through unparsed (`null` if
/// it were not JSON).
pub(crate) fn raw_json(text: String) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(text).unwrap_or_else(|_| {
        serde_json::value::RawValue::from_string("null".into()).unwrap_or_default()
    })
}

/// Recent invocations kept per function.
pub(crate) const LOGS_KEPT: u64 = 100;
/// Versions kept per function: older ones are removed as new ones come
/// (never the head).
pub(crate) const VERSIONS_KEPT: u64 = 50;

pub(crate) struct Registry {
    sql: Box<dyn Sql>,
}

fn u(v: &Val) -> u64 {
    u64::try_from(v.int()).unwrap_or(0)
}

impl Registry {
    pub(super) fn new(sql: Box<dyn Sql>) -> Registry {
        Registry { sql }
    }

    // Tenants.

    /// False when a tenant with that id exists.
    pub(crate) fn create_tenant(&self, t: &TenantRecord) -> Result<bool, StoreError> {
        let limits = serde_json::to_string(&t.limits).unwrap_or_else(|_| "{}".into());
        match self.sql.exec(
            "INSERT INTO tenants (id, limits, created_at_ms) VALUES ($1, $2, $3)",
            &[t.id.as_str().into(), limits.into(), t.created_at_ms.into()],
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.0 == CONFLICT => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn tenant_of(row: &[Val]) -> TenantRecord {
        TenantRecord {
            id: row[0].text(),
            limits: serde_json::from_str(&row[1].text()).unwrap_or_default(),
            created_at_ms: u(&row[2]),
        }
    }

    pub(crate) fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT id, limits, created_at_ms FROM tenants ORDER BY id",
            &[],
        )?;
        Ok(rows.iter().map(|r| Registry::tenant_of(r)).collect())
    }

    pub(crate) fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT id, limits, created_at_ms FROM tenants WHERE id = $1",
            &[id.into()],
        )?;
        Ok(rows.first().map(|r| Registry::tenant_of(r)))
    }

    pub(crate) fn set_limits(&self, id: &str, limits: &TenantLimits) -> Result<bool, StoreError> {
        let limits = serde_json::to_string(limits).unwrap_or_else(|_| "{}".into());
        Ok(self.sql.exec(
            "UPDATE tenants SET limits = $1 WHERE id = $2",
            &[limits.into(), id.into()],
        )? > 0)
    }

    /// Removes the tenant and everything it owns (its usage too).
    pub(crate) fn delete_tenant(&self, id: &str) -> Result<bool, StoreError> {
        for table in [
            "tenant_keys",
            "functions",
            "function_versions",
            "tenant_secrets",
            "function_usage",
            "function_logs",
        ] {
            self.sql.exec(
                &format!("DELETE FROM {table} WHERE tenant = $1"),
                &[id.into()],
            )?;
        }
        Ok(self
            .sql
            .exec("DELETE FROM tenants WHERE id = $1", &[id.into()])?
            > 0)
    }

    // Keys.

    pub(crate) fn add_key(&self, key: &KeyRecord, hash: &str) -> Result<(), StoreError> {
        let scopes = serde_json::to_string(&key.scopes).unwrap_or_else(|_| "[]".into());
        self.sql.exec(
            "INSERT INTO tenant_keys (id, tenant, hash, scopes, label, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                key.id.as_str().into(),
                key.tenant.as_str().into(),
                hash.into(),
                scopes.into(),
                key.label.as_str().into(),
                key.created_at_ms.into(),
            ],
        )?;
        Ok(())
    }

    fn key_of(row: &[Val]) -> KeyRecord {
        KeyRecord {
            id: row[0].text(),
            tenant: row[1].text(),
            scopes: serde_json::from_str(&row[2].text()).unwrap_or_default(),
            label: row[3].text(),
            created_at_ms: u(&row[4]),
        }
    }

    pub(crate) fn keys(&self, tenant: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT id, tenant, scopes, label, created_at_ms FROM tenant_keys \
             WHERE tenant = $1 ORDER BY created_at_ms, id",
            &[tenant.into()],
        )?;
        Ok(rows.iter().map(|r| Registry::key_of(r)).collect())
    }

    pub(crate) fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT id, tenant, scopes, label, created_at_ms FROM tenant_keys WHERE hash = $1",
            &[hash.into()],
        )?;
        Ok(rows.first().map(|r| Registry::key_of(r)))
    }

    /// Returns the revoked key's hash, or `None` when there was no such key.
    pub(crate) fn revoke_key(&self, tenant: &str, id: &str) -> Result<Option<String>, StoreError> {
        let rows = self.sql.query(
            "SELECT hash FROM tenant_keys WHERE tenant = $1 AND id = $2",
            &[tenant.into(), id.into()],
        )?;
        let Some(hash) = rows.first().map(|r| r[0].text()) else {
            return Ok(None);
        };
        self.sql.exec(
            "DELETE FROM tenant_keys WHERE tenant = $1 AND id = $2",
            &[tenant.into(), id.into()],
        )?;
        Ok(Some(hash))
    }

    // Functions.

    /// Records a new version and makes it the head; returns its number.
    pub(crate) fn deploy(
        &self,
        tenant: &str,
        name: &str,
        version: &VersionRecord,
    ) -> Result<u64, StoreError> {
        let settings = serde_json::to_string(&version.settings).unwrap_or_else(|_| "{}".into());
        let exports = serde_json::to_string(&version.exports).unwrap_or_else(|_| "{}".into());
        // Two deploys at once may pick the same number: the second one
        // tries the next.
        for _ in 0..5 {
            let rows = self.sql.query(
                "SELECT COALESCE(MAX(version), 0) FROM function_versions \
                 WHERE tenant = $1 AND name = $2",
                &[tenant.into(), name.into()],
            )?;
            let next = rows.first().map_or(0, |r| u(&r[0])) + 1;
            let inserted = self.sql.exec(
                "INSERT INTO function_versions \
                 (tenant, name, version, sha256, code, settings, exports, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    tenant.into(),
                    name.into(),
                    next.into(),
                    version.sha256.as_str().into(),
                    version.code.as_str().into(),
                    settings.as_str().into(),
                    exports.as_str().into(),
                    version.created_at_ms.into(),
                ],
            );
            match inserted {
                Ok(_) => {
                    self.sql.exec(
                        "INSERT INTO functions (tenant, name, head, created_at_ms, updated_at_ms) \
                         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (tenant, name) \
                         DO UPDATE SET head = excluded.head, updated_at_ms = excluded.updated_at_ms",
                        &[
                            tenant.into(),
                            name.into(),
                            next.into(),
                            version.created_at_ms.into(),
                        ],
                    )?;
                    self.sql.exec(
                        "DELETE FROM function_versions WHERE tenant = $1 AND name = $2 \
                         AND version <= $3 AND version <> $4",
                        &[
                            tenant.into(),
                            name.into(),
                            next.saturating_sub(VERSIONS_KEPT).into(),
                            next.into(),
                        ],
                    )?;
                    return Ok(next);
                }
                Err(e) if e.0 == CONFLICT => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError(
            "too many deploys of this function at once; try again".into(),
        ))
    }

    /// How many functions a tenant has.
    pub(crate) fn function_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let rows = self.sql.query(
            "SELECT COUNT(*) FROM functions WHERE tenant = $1",
            &[tenant.into()],
        )?;
        Ok(rows.first().map_or(0, |r| u(&r[0])))
    }

    fn function_of(row: &[Val]) -> FunctionRecord {
        FunctionRecord {
            name: row[0].text(),
            head: u(&row[1]),
            created_at_ms: u(&row[2]),
            updated_at_ms: u(&row[3]),
        }
    }

    pub(crate) fn functions(&self, tenant: &str) -> Result<Vec<FunctionRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT name, head, created_at_ms, updated_at_ms FROM functions \
             WHERE tenant = $1 ORDER BY name",
            &[tenant.into()],
        )?;
        Ok(rows.iter().map(|r| Registry::function_of(r)).collect())
    }

    pub(crate) fn function(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<FunctionRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT name, head, created_at_ms, updated_at_ms FROM functions \
             WHERE tenant = $1 AND name = $2",
            &[tenant.into(), name.into()],
        )?;
        Ok(rows.first().map(|r| Registry::function_of(r)))
    }

    fn version_of(row: &[Val]) -> VersionRecord {
        VersionRecord {
            version: u(&row[0]),
            sha256: row[1].text(),
            code: row[2].text(),
            settings: serde_json::from_str(&row[3].text()).unwrap_or_default(),
            exports: serde_json::from_str(&row[4].text()).unwrap_or_default(),
            created_at_ms: u(&row[5]),
        }
    }

    /// Every version, newest first, without code.
    pub(crate) fn versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT version, sha256, '', settings, exports, created_at_ms \
             FROM function_versions WHERE tenant = $1 AND name = $2 ORDER BY version DESC",
            &[tenant.into(), name.into()],
        )?;
        Ok(rows.iter().map(|r| Registry::version_of(r)).collect())
    }

    pub(crate) fn version(
        &self,
        tenant: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<VersionRecord>, StoreError> {
        let rows = self.sql.query(
            "SELECT version, sha256, code, settings, exports, created_at_ms \
             FROM function_versions WHERE tenant = $1 AND name = $2 AND version = $3",
            &[tenant.into(), name.into(), version.into()],
        )?;
        Ok(rows.first().map(|r| Registry::version_of(r)))
    }

    /// Makes `version` the head; false when the function has no such version.
    pub(crate) fn set_head(
        &self,
        tenant: &str,
        name: &str,
        version: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if self.version(tenant, name, version)?.is_none() {
            return Ok(false);
        }
        Ok(self.sql.exec(
            "UPDATE functions SET head = $1, updated_at_ms = $2 WHERE tenant = $3 AND name = $4",
            &[version.into(), now_ms.into(), tenant.into(), name.into()],
        )? > 0)
    }

    /// Removes the function, its versions, secrets and logs (its usage is
    /// kept: it was used).
    pub(crate) fn delete_function(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let existed = self.sql.exec(
            "DELETE FROM functions WHERE tenant = $1 AND name = $2",
            &[tenant.into(), name.into()],
        )? > 0;
        for (table, column) in [
            ("function_versions", "name"),
            ("tenant_secrets", "function"),
            ("function_logs", "function"),
        ] {
            self.sql.exec(
                &format!("DELETE FROM {table} WHERE tenant = $1 AND {column} = $2"),
                &[tenant.into(), name.into()],
            )?;
        }
        Ok(existed)
    }

    // Secrets: `function` "" is the tenant's own, seen by all its functions.

    pub(crate) fn put_secrets(
        &self,
        tenant: &str,
        function: &str,
        values: &BTreeMap<String, String>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        for (name, value) in values {
            self.sql.exec(
                "INSERT INTO tenant_secrets (tenant, function, name, value, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, function, name) \
                 DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
                &[
                    tenant.into(),
                    function.into(),
                    name.as_str().into(),
                    value.as_str().into(),
                    now_ms.into(),
                ],
            )?;
        }
        Ok(())
    }

    pub(crate) fn delete_secret(
        &self,
        tenant: &str,
        function: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.sql.exec(
            "DELETE FROM tenant_secrets WHERE tenant = $1 AND function = $2 AND name = $3",
            &[tenant.into(), function.into(), name.into()],
        )? > 0)
    }

    /// Names and when each was last set (never the values).
    pub(crate) fn secret_names(
        &self,
        tenant: &str,
        function: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self.sql.query(
            "SELECT name, updated_at_ms FROM tenant_secrets \
             WHERE tenant = $1 AND function = $2 ORDER BY name",
            &[tenant.into(), function.into()],
        )?;
        Ok(rows.iter().map(|r| (r[0].text(), u(&r[1]))).collect())
    }

    /// What a function's code sees: the tenant's secrets, then the
    /// function's own (which win).
    pub(crate) fn secrets_for(
        &self,
        tenant: &str,
        function: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = self.sql.query(
            "SELECT function, name, value FROM tenant_secrets \
             WHERE tenant = $1 AND (function = '' OR function = $2)",
            &[tenant.into(), function.into()],
        )?;
        let mut out = BTreeMap::new();
        for own in [false, true] {
            for r in &rows {
                if (r[0].text() != "") == own {
                    out.insert(r[1].text(), r[2].text());
                }
            }
        }
        Ok(out)
    }

    // Usage and logs.

    pub(crate) fn add_usage(&self, tenant: &str, rows: &[UsageRow]) -> Result<(), StoreError> {
        for r in rows {
            self.sql.exec(
                "INSERT INTO function_usage \
                 (tenant, function, minute, outcome, calls, cpu_us, wall_us, mem_peak) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tenant, function, minute, outcome) DO UPDATE SET \
                 calls = function_usage.calls + excluded.calls, \
                 cpu_us = function_usage.cpu_us + excluded.cpu_us, \
                 wall_us = function_usage.wall_us + excluded.wall_us, \
                 mem_peak = CASE WHEN excluded.mem_peak > function_usage.mem_peak \
                 THEN excluded.mem_peak ELSE function_usage.mem_peak END",
                &[
                    tenant.into(),
                    r.function.as_str().into(),
                    r.minute.into(),
                    r.outcome.as_str().into(),
                    r.calls.into(),
                    r.cpu_us.into(),
                    r.wall_us.into(),
                    r.mem_peak.into(),
                ],
            )?;
        }
        Ok(())
    }

    /// Usage rows since `minute` (inclusive), of one function or all.
    pub(crate) fn usage(
        &self,
        tenant: &str,
        function: Option<&str>,
        since_minute: u64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let rows = self.sql.query(
            "SELECT function, minute, outcome, calls, cpu_us, wall_us, mem_peak \
             FROM function_usage WHERE tenant = $1 AND minute >= $2 \
             AND ($3 = '' OR function = $3) ORDER BY minute, function, outcome",
            &[
                tenant.into(),
                since_minute.into(),
                function.unwrap_or("").into(),
            ],
        )?;
        Ok(rows
            .iter()
            .map(|r| UsageRow {
                function: r[0].text(),
                minute: u(&r[1]),
                outcome: r[2].text(),
                calls: u(&r[3]),
                cpu_us: u(&r[4]),
                wall_us: u(&r[5]),
                mem_peak: u(&r[6]),
            })
            .collect())
    }

    /// Removes usage older than `minute`.
    pub(crate) fn prune_usage(&self, before_minute: u64) -> Result<u64, StoreError> {
        self.sql.exec(
            "DELETE FROM function_usage WHERE minute < $1",
            &[before_minute.into()],
        )
    }

    pub(crate) fn add_logs(
        &self,
        tenant: &str,
        function: &str,
        logs: &[InvocationLog],
    ) -> Result<(), StoreError> {
        for l in logs {
            self.sql.exec(
                "INSERT INTO function_logs \
                 (id, tenant, function, ts_ms, version, via, outcome, status, wall_us, cpu_us, logs) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    l.id.as_str().into(),
                    tenant.into(),
                    function.into(),
                    l.ts_ms.into(),
                    l.version.into(),
                    l.via.as_str().into(),
                    l.outcome.as_str().into(),
                    l.status.into(),
                    ((l.wall_ms * 1000.0) as u64).into(),
                    ((l.cpu_ms * 1000.0) as u64).into(),
                    l.logs.get().into(),
                ],
            )?;
        }
        // Only the newest are kept (ids sort by time).
        let rows = self.sql.query(
            "SELECT id FROM function_logs WHERE tenant = $1 AND function = $2 \
             ORDER BY id DESC LIMIT 1 OFFSET $3",
            &[tenant.into(), function.into(), (LOGS_KEPT - 1).into()],
        )?;
        if let Some(oldest) = rows.first().map(|r| r[0].text()) {
            self.sql.exec(
                "DELETE FROM function_logs WHERE tenant = $1 AND function = $2 AND id < $3",
                &[tenant.into(), function.into(), oldest.into()],
            )?;
        }
        Ok(())
    }

    /// The newest invocation logs of a function, newest first.
    pub(crate) fn logs(
        &self,
        tenant: &str,
        function: &str,
        limit: u64,
    ) -> Result<Vec<InvocationLog>, StoreError> {
        let rows = self.sql.query(
            "SELECT id, ts_ms, version, via, outcome, status, wall_us, cpu_us, logs \
             FROM function_logs WHERE tenant = $1 AND function = $2 \
             ORDER BY id DESC LIMIT $3",
            &[tenant.into(), function.into(), limit.into()],
        )?;
        Ok(rows
            .iter()
            .map(|r| InvocationLog {
                id: r[0].text(),
                ts_ms: u(&r[1]),
                version: u(&r[2]),
                via: r[3].text(),
                outcome: r[4].text(),
                status: u(&r[5]),
                wall_ms: u(&r[6]) as f64 / 1000.0,
                cpu_ms: u(&r[7]) as f64 / 1000.0,
                logs: raw_json(r[8].text()),
            })
            .collect())
    }
}
