//! TypeScript → JavaScript with `deno_ast`, cached by content hash under a
//! byte budget so repeated scripts skip the parser and memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use deno_ast::diagnostics::Diagnostic as _;
use deno_ast::{
    EmitOptions, MediaType, ModuleSpecifier, ParseParams, SourceMapOption, TranspileModuleOptions,
    TranspileOptions,
};
use sha2::{Digest, Sha256};

/// A script ready to load: its JavaScript and the specifier it is known by.
#[derive(Debug)]
pub struct Module {
    /// SHA-256 of the source text.
    pub hash: [u8; 32],
    /// `file:///isoexec/<hash prefix>.ts`: the name stack traces show.
    pub specifier: ModuleSpecifier,
    /// The emitted JavaScript, with an inline source map back to the source.
    pub code: Arc<str>,
}

/// A script that does not parse, with a 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

type Entry = Result<Arc<Module>, SyntaxError>;

/// Content-addressed cache of transpiled scripts, shared by all workers.
pub struct TranspileCache {
    inner: Mutex<CacheInner>,
    max_bytes: usize,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<[u8; 32], (Entry, usize)>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

impl TranspileCache {
    pub fn new(max_bytes: usize) -> TranspileCache {
        TranspileCache {
            inner: Mutex::new(CacheInner::default()),
            max_bytes,
        }
    }

    /// The module for a function-call script, transpiled now or taken from
    /// the cache.
    pub fn get(&self, source: &str) -> Entry {
        let hash: [u8; 32] = Sha256::digest(source.as_bytes()).into();
        self.get_or_transpile(hash, source, || {
            transpile(hash, specifier_for(&hash), MediaType::TypeScript, source)
        })
    }

    /// The module for a file at `specifier` with this text. The specifier
    /// is part of the key: it is written into the emitted source map.
    pub fn get_file(&self, specifier: &ModuleSpecifier, source: &str) -> Entry {
        let mut hasher = Sha256::new();
        hasher.update(specifier.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(source.as_bytes());
        let hash: [u8; 32] = hasher.finalize().into();
        self.get_or_transpile(hash, source, || {
            let media_type = match MediaType::from_specifier(specifier) {
                MediaType::Unknown => MediaType::TypeScript,
                known => known,
            };
            transpile(hash, specifier.clone(), media_type, source)
        })
    }

    fn get_or_transpile(
        &self,
        hash: [u8; 32],
        source: &str,
        make: impl FnOnce() -> Entry,
    ) -> Entry {
        if let Some((entry, _)) = self.lock().entries.get(&hash) {
            return entry.clone();
        }
        let entry = make();
        let cost = source.len()
            + match &entry {
                Ok(m) => m.code.len(),
                Err(e) => e.message.len(),
            };
        if cost <= self.max_bytes {
            let mut inner = self.lock();
            if !inner.entries.contains_key(&hash) {
                while inner.bytes + cost > self.max_bytes {
                    let Some(old) = inner.order.pop_front() else {
                        break;
                    };
                    if let Some((_, c)) = inner.entries.remove(&old) {
                        inner.bytes -= c;
                    }
                }
                inner.entries.insert(hash, (entry.clone(), cost));
                inner.order.push_back(hash);
                inner.bytes += cost;
            }
        }
        entry
    }

    /// Bytes held (sources plus emitted code).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A poisoned lock only means another thread panicked mid-insert; the
        // map itself is still consistent enough to serve from.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The specifier a script with this hash is loaded under.
pub fn specifier_for(hash: &[u8; 32]) -> ModuleSpecifier {
    let prefix: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    ModuleSpecifier::parse(&format!("file:///isoexec/{prefix}.ts"))
        .expect("a URL of hex digits always parses")
}

fn transpile(
    hash: [u8; 32],
    specifier: ModuleSpecifier,
    media_type: MediaType,
    source: &str,
) -> Entry {
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let parsed = deno_ast::parse_module(ParseParams {
        specifier: specifier.clone(),
        text: text.into(),
        media_type,
        capture_tokens: false,
        scope_analysis: false,
        maybe_syntax: None,
    })
    .map_err(|d| syntax_error(&d))?;
    if let Some(d) = parsed.diagnostics().first() {
        return Err(syntax_error(d));
    }
    let emitted = parsed
        .transpile(
            &TranspileOptions {
                imports_not_used_as_values: deno_ast::ImportsNotUsedAsValues::Remove,
                decorators: deno_ast::DecoratorsTranspileOption::Ecma,
                ..Default::default()
            },
            &TranspileModuleOptions { module_kind: None },
            &EmitOptions {
                source_map: SourceMapOption::Inline,
                inline_sources: false,
                ..Default::default()
            },
        )
        .map_err(|e| match e {
            deno_ast::TranspileError::ParseErrors(errs) => match errs.0.first() {
                Some(d) => syntax_error(d),
                None => SyntaxError {
                    message: "the script does not parse".into(),
                    line: 1,
                    column: 1,
                },
            },
            other => SyntaxError {
                message: other.to_string(),
                line: 1,
                column: 1,
            },
        })?
        .into_source();
    Ok(Arc::new(Module {
        hash,
        specifier,
        code: emitted.text.into(),
    }))
}

fn syntax_error(d: &deno_ast::ParseDiagnostic) -> SyntaxError {
    let pos = d.display_position();
    SyntaxError {
        message: d.message().to_string(),
        line: pos.line_number,
        column: pos.column_number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typescript_becomes_javascript() {
        let cache = TranspileCache::new(1 << 20);
        let m = cache
            .get("export function fn(x: number): number { return x + 1 }")
            .unwrap();
        assert!(m.code.contains("export function fn(x)"), "{}", m.code);
        assert!(m.code.contains("sourceMappingURL=data:"));
        assert!(m.specifier.as_str().starts_with("file:///isoexec/"));
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let cache = TranspileCache::new(1 << 20);
        let e = cache
            .get("export const a = 1;\nexport function fn( {")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.column >= 1);
        assert!(!e.message.is_empty());
    }

    #[test]
    fn the_same_source_is_served_from_the_cache() {
        let cache = TranspileCache::new(1 << 20);
        let a = cache.get("export const fn = () => 1;").unwrap();
        let b = cache.get("export const fn = () => 1;").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn the_cache_stays_under_its_budget() {
        let cache = TranspileCache::new(4096);
        for i in 0..200 {
            cache
                .get(&format!(
                    "export const fn = () => {i}; // {}",
                    "x".repeat(100)
                ))
                .unwrap();
        }
        assert!(cache.bytes() <= 4096, "{}", cache.bytes());
        assert!(cache.bytes() > 0);
    }
}
