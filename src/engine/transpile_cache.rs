//! Compiled scripts, cached by content hash under a byte budget so repeated
//! scripts skip the parser and memory stays bounded. The compiling itself
//! runs through a [`Compiler`] (a helper process), under the caller's
//! deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deno_ast::ModuleSpecifier;
use sha2::{Digest, Sha256};

use super::compile::{CompileError, Compiler, SyntaxError};

/// A script ready to load: its JavaScript and the specifier it is known by.
#[derive(Debug)]
pub(crate) struct Module {
    /// SHA-256 of the source text.
    pub hash: [u8; 32],
    /// `file:///isoexec/<hash prefix>.ts`: the name stack traces show.
    pub specifier: ModuleSpecifier,
    /// The emitted JavaScript, with an inline source map back to the source.
    pub code: Arc<str>,
    /// V8's code cache for `code`, every function compiled: `"frozen"`
    /// calls load each call's new instance of the module from it instead of
    /// compiling it again. Made by the first such call; counted in the
    /// cache's budget.
    pub code_cache: std::sync::OnceLock<Arc<[u8]>>,
    /// Whether a call has tried to make `code_cache`: it is made once, and
    /// not tried again when the budget refused it.
    pub code_cache_tried: std::sync::atomic::AtomicBool,
    /// For `"frozen"` calls: the script whose value is a function making a
    /// new instance of the module at each call, or `None` if the module
    /// cannot be made that way. Asked for by the second such call (see
    /// [`TranspileCache::factory`]); counted in the cache's budget.
    pub factory: std::sync::OnceLock<Option<Arc<str>>>,
    /// Whether a `"frozen"` call has used the module.
    pub frozen_once: std::sync::atomic::AtomicBool,
}

impl Module {
    /// A module of this text, with nothing made of it yet.
    fn new(hash: [u8; 32], specifier: ModuleSpecifier, code: Arc<str>) -> Module {
        Module {
            hash,
            specifier,
            code,
            code_cache: Default::default(),
            code_cache_tried: Default::default(),
            factory: Default::default(),
            frozen_once: Default::default(),
        }
    }
}

type Entry = Result<Arc<Module>, SyntaxError>;

/// The most a call waits for its module's factory script (see
/// [`TranspileCache::factory`]).
const FACTORY_TIME: Duration = Duration::from_secs(1);

/// Content-addressed cache of transpiled scripts, shared by all workers.
pub(crate) struct TranspileCache {
    inner: Mutex<CacheInner>,
    max_bytes: usize,
    compiler: Arc<Compiler>,
    /// Tells this cache's entries in [`LAST_MODULE`] from another's.
    id: u64,
}

/// The largest script [`LAST_MODULE`] keeps.
const LAST_MODULE_BYTES: usize = 64 * 1024;

/// A thread's last module for a function-call script (see [`LAST_MODULE`]).
struct LastModule {
    cache: u64,
    source: Arc<str>,
    module: Arc<Module>,
}

thread_local! {
    /// The module this thread last took for a function-call script, by
    /// cache and by the very `Arc` of the script's text: a client calling
    /// the same script again and again sends the same text, which the
    /// server then hands on as the same `Arc` (see `http::api::run`), so a
    /// pointer comparison stands for hashing the text. One per thread, of
    /// a script of at most [`LAST_MODULE_BYTES`]: kept after the cache has
    /// evicted the module, it is never more than that.
    static LAST_MODULE: std::cell::RefCell<Option<LastModule>> =
        const { std::cell::RefCell::new(None) };
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<[u8; 32], (Entry, usize)>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

impl TranspileCache {
    pub(crate) fn new(max_bytes: usize, compiler: Arc<Compiler>) -> TranspileCache {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        TranspileCache {
            inner: Mutex::new(CacheInner::default()),
            max_bytes,
            compiler,
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// As [`TranspileCache::get`], for a script text the caller shares: the
    /// same `Arc` as this thread's previous look-up finds its module without
    /// hashing the text (see [`LAST_MODULE`]).
    pub(crate) fn get_shared(
        &self,
        source: &Arc<str>,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Arc<Module>, CompileError> {
        let last = LAST_MODULE.with_borrow(|last| match last {
            Some(last) if last.cache == self.id && Arc::ptr_eq(&last.source, source) => {
                Some(last.module.clone())
            }
            _ => None,
        });
        if let Some(module) = last {
            return Ok(module);
        }
        let module = self.get(source, deadline, stop)?;
        if source.len() <= LAST_MODULE_BYTES {
            LAST_MODULE.set(Some(LastModule {
                cache: self.id,
                source: source.clone(),
                module: module.clone(),
            }));
        }
        Ok(module)
    }

    /// The module for a function-call script, transpiled now (by
    /// `deadline`, unless `stop` says the caller left) or taken from the
    /// cache.
    pub(crate) fn get(
        &self,
        source: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Arc<Module>, CompileError> {
        let hash: [u8; 32] = Sha256::digest(source.as_bytes()).into();
        self.get_or_transpile(hash, || specifier_for(&hash), source, deadline, stop)
    }

    /// The module for a file at `specifier` with this text. The specifier
    /// is part of the key: it is written into the emitted source map.
    pub(crate) fn get_file(
        &self,
        specifier: &ModuleSpecifier,
        source: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Arc<Module>, CompileError> {
        let mut hasher = Sha256::new();
        hasher.update(specifier.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(source.as_bytes());
        let hash: [u8; 32] = hasher.finalize().into();
        self.get_or_transpile(hash, || specifier.clone(), source, deadline, stop)
    }

    /// `specifier` is only made on a miss: a hit is a hash and a lookup.
    fn get_or_transpile(
        &self,
        hash: [u8; 32],
        specifier: impl FnOnce() -> ModuleSpecifier,
        source: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Arc<Module>, CompileError> {
        if let Some((entry, _)) = self.lock().entries.get(&hash) {
            return entry.clone().map_err(CompileError::Syntax);
        }
        // Only answers that belong to the source are cached: a timeout or
        // a failure of ours is not.
        let specifier = specifier();
        let entry: Entry = match self
            .compiler
            .transpile(specifier.as_str(), source, deadline, stop)
        {
            Ok(Ok(code)) => Ok(Arc::new(Module::new(hash, specifier, code.into()))),
            Ok(Err(e)) | Err(CompileError::Syntax(e)) => Err(e),
            // Not a property of the source: not cached.
            Err(other) => return Err(other),
        };
        let cost = source.len()
            + match &entry {
                Ok(m) => m.code.len(),
                Err(e) => e.message.len(),
            };
        self.insert(hash, entry.clone(), cost);
        entry.map_err(CompileError::Syntax)
    }

    /// Puts the JavaScript another process compiled for a function-call
    /// `source` into the cache, as if it had been transpiled here.
    pub(crate) fn seed(&self, source: &str, code: Arc<str>) {
        let hash: [u8; 32] = Sha256::digest(source.as_bytes()).into();
        let cost = source.len() + code.len();
        let module = Arc::new(Module::new(hash, specifier_for(&hash), code));
        self.insert(hash, Ok(module), cost);
    }

    /// Keeps `entry` unless it alone is over the budget, evicting the
    /// oldest entries to make room.
    fn insert(&self, hash: [u8; 32], entry: Entry, cost: usize) {
        if cost > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if inner.entries.contains_key(&hash) {
            return;
        }
        while inner.bytes + cost > self.max_bytes {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, c)) = inner.entries.remove(&old) {
                inner.bytes -= c;
            }
        }
        inner.entries.insert(hash, (entry, cost));
        inner.order.push_back(hash);
        inner.bytes += cost;
    }

    /// Attaches V8's code cache to `module` (see `Module::code_cache`) if
    /// the module is still cached and the cache fits in the budget, which
    /// may evict older entries.
    pub(crate) fn keep_code_cache(&self, module: &Module, cache: &[u8]) {
        if module.code_cache.get().is_some() {
            return;
        }
        self.charge(module, cache.len(), || {
            module.code_cache.set(Arc::from(cache)).is_ok()
        });
    }

    /// Makes `module`'s factory script (see `Module::factory`) for a
    /// `"frozen"` call, unless a call already has. The first such call goes
    /// without: a script called once does not wait for the compile helper's
    /// parse. The helper gets at most a quarter of what is left of the
    /// call's time (and a second at most); a module it cannot answer for in
    /// that time, or at all, keeps the module way for good, so no later
    /// call waits for it again. Only a caller that went away leaves it to a
    /// later call. Kept with the module if it fits in the budget.
    pub(crate) fn factory(
        &self,
        module: &Module,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), CompileError> {
        use std::sync::atomic::Ordering;
        if module.factory.get().is_some() || !module.frozen_once.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let now = Instant::now();
        let slice = (deadline.saturating_duration_since(now) / 4).min(FACTORY_TIME);
        let made = match self.compiler.factory(&module.code, now + slice, stop) {
            Ok(made) => made.map(Arc::<str>::from),
            Err(CompileError::Cancelled) => return Err(CompileError::Cancelled),
            Err(e) => {
                tracing::debug!(error = ?e, "no factory script for a module");
                None
            }
        };
        let extra = made.as_ref().map_or(0, |f| f.len());
        let kept = self.charge(module, extra, || module.factory.set(made).is_ok());
        if !kept {
            // Over the budget: not made again for this module, which keeps
            // the module way.
            let _ = module.factory.set(None);
        }
        Ok(())
    }

    /// Adds `extra` bytes to what `module` costs, evicting older entries to
    /// make room, and runs `attach` (whether it attached them) — unless
    /// the module is no longer cached or would not fit.
    fn charge(&self, module: &Module, extra: usize, attach: impl FnOnce() -> bool) -> bool {
        let mut inner = self.lock();
        let cost = match inner.entries.get(&module.hash) {
            Some((Ok(m), cost)) if std::ptr::eq(Arc::as_ptr(m), module) => *cost,
            _ => return false,
        };
        if cost + extra > self.max_bytes {
            return false;
        }
        // The oldest others make room; this one is not among them.
        let mut tries = inner.order.len();
        while inner.bytes + extra > self.max_bytes && tries > 0 {
            tries -= 1;
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if old == module.hash {
                inner.order.push_back(old);
                continue;
            }
            if let Some((_, c)) = inner.entries.remove(&old) {
                inner.bytes -= c;
            }
        }
        if inner.bytes + extra > self.max_bytes || !attach() {
            return false;
        }
        if let Some((_, cost)) = inner.entries.get_mut(&module.hash) {
            *cost += extra;
        }
        inner.bytes += extra;
        true
    }

    /// Bytes held (sources plus emitted code).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        crate::sync::lock(&self.inner)
    }
}

/// The specifier a script with this hash is loaded under.
pub(super) fn specifier_for(hash: &[u8; 32]) -> ModuleSpecifier {
    let prefix: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    ModuleSpecifier::parse(&format!("file:///isoexec/{prefix}.ts"))
        .expect("a URL of hex digits always parses")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cache(bytes: usize) -> TranspileCache {
        TranspileCache::new(bytes, Arc::new(Compiler::in_process()))
    }

    fn get(cache: &TranspileCache, source: &str) -> Result<Arc<Module>, CompileError> {
        cache.get(source, Instant::now() + Duration::from_secs(60), &|| false)
    }

    #[test]
    fn typescript_becomes_javascript() {
        let cache = cache(1 << 20);
        let m = get(
            &cache,
            "export function fn(x: number): number { return x + 1 }",
        )
        .unwrap();
        assert!(m.code.contains("export function fn(x)"), "{}", m.code);
        assert!(m.code.contains("sourceMappingURL=data:"));
        assert!(m.specifier.as_str().starts_with("file:///isoexec/"));
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let cache = cache(1 << 20);
        let CompileError::Syntax(e) =
            get(&cache, "export const a = 1;\nexport function fn( {").unwrap_err()
        else {
            panic!("not a syntax error");
        };
        assert_eq!(e.line, 2);
        assert!(e.column >= 1);
        assert!(!e.message.is_empty());
    }

    #[test]
    fn the_same_source_is_served_from_the_cache() {
        let cache = cache(1 << 20);
        let a = get(&cache, "export const fn = () => 1;").unwrap();
        let b = get(&cache, "export const fn = () => 1;").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn a_thread_knows_its_last_script_by_its_arc() {
        let shared = |cache: &TranspileCache, source: &Arc<str>| {
            cache
                .get_shared(source, Instant::now() + Duration::from_secs(60), &|| false)
                .unwrap()
        };
        // A budget too small to keep anything: every look-up that reaches
        // the cache transpiles anew, and so makes another module.
        let cache = cache(1);
        let text: Arc<str> = "export const fn = () => 1;".into();
        let first = shared(&cache, &text);
        assert!(Arc::ptr_eq(&first, &shared(&cache, &text)));
        // The same text in another `Arc` is looked up by its hash.
        let copy: Arc<str> = text.to_string().into();
        let other = shared(&cache, &copy);
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(first.code, other.code);
        // That look-up took the thread's place; another cache never
        // shares it.
        assert!(Arc::ptr_eq(&other, &shared(&cache, &copy)));
        let second = self::cache(1);
        assert!(!Arc::ptr_eq(&other, &shared(&second, &copy)));
        // A large script is not kept.
        let large: Arc<str> =
            format!("export const fn = () => 1; // {}", "x".repeat(70_000)).into();
        let a = shared(&cache, &large);
        assert!(!Arc::ptr_eq(&a, &shared(&cache, &large)));
        // Nor is a syntax error.
        let broken: Arc<str> = "export function (".into();
        for _ in 0..2 {
            assert!(matches!(
                cache.get_shared(&broken, Instant::now() + Duration::from_secs(60), &|| false),
                Err(CompileError::Syntax(_))
            ));
        }
    }

    #[test]
    fn the_cache_stays_under_its_budget() {
        let cache = cache(4096);
        for i in 0..200 {
            get(
                &cache,
                &format!("export const fn = () => {i}; // {}", "x".repeat(100)),
            )
            .unwrap();
        }
        assert!(cache.bytes() <= 4096, "{}", cache.bytes());
        assert!(cache.bytes() > 0);
    }

    #[test]
    fn code_caches_are_kept_once_and_counted_in_the_budget() {
        let cache = cache(4096);
        let m = get(&cache, "export const fn = () => 1;").unwrap();
        let before = cache.bytes();
        cache.keep_code_cache(&m, &[7u8; 100]);
        assert_eq!(m.code_cache.get().map(|c| c.len()), Some(100));
        assert_eq!(cache.bytes(), before + 100);
        // The first one stays.
        cache.keep_code_cache(&m, &[8u8; 50]);
        assert_eq!(m.code_cache.get().map(|c| c[0]), Some(7));
        assert_eq!(cache.bytes(), before + 100);
        // One that cannot fit is refused and costs nothing.
        let n = get(&cache, "export const fn = () => 2;").unwrap();
        let held = cache.bytes();
        cache.keep_code_cache(&n, &[0u8; 8192]);
        assert!(n.code_cache.get().is_none());
        assert_eq!(cache.bytes(), held);
        // Room is made by evicting older entries, never the module itself.
        let big = get(&cache, "export const fn = () => 3;").unwrap();
        cache.keep_code_cache(&big, &[1u8; 3000]);
        assert!(big.code_cache.get().is_some());
        assert!(cache.bytes() <= 4096, "{}", cache.bytes());
        assert!(Arc::ptr_eq(
            &big,
            &get(&cache, "export const fn = () => 3;").unwrap()
        ));
    }

    #[test]
    fn factories_are_made_from_the_second_frozen_call_and_counted_in_the_budget() {
        let cache = cache(1 << 20);
        let far = Instant::now() + Duration::from_secs(60);
        let m = get(&cache, "let n = 0;\nexport function f() { return ++n; }").unwrap();
        let before = cache.bytes();
        // The first call goes without.
        cache.factory(&m, far, &|| false).unwrap();
        assert!(m.factory.get().is_none());
        cache.factory(&m, far, &|| false).unwrap();
        let made = m
            .factory
            .get()
            .cloned()
            .flatten()
            .expect("a factory script");
        assert!(made.contains("return { __proto__: null, get \"f\"() { return f; } }"));
        assert_eq!(cache.bytes(), before + made.len());
        // A module that cannot be one is told so once, at no cost.
        let i = get(&cache, "import './x.ts';\nexport const f = () => 1;").unwrap();
        let held = cache.bytes();
        cache.factory(&i, far, &|| false).unwrap();
        cache.factory(&i, far, &|| false).unwrap();
        assert_eq!(i.factory.get(), Some(&None));
        assert_eq!(cache.bytes(), held);
        // A helper out of time leaves the module the module way, and the
        // call goes on: no later call waits for it again.
        let slow = get(&cache, "export const f = () => 4;").unwrap();
        cache.factory(&slow, Instant::now(), &|| false).unwrap();
        cache.factory(&slow, Instant::now(), &|| false).unwrap();
        assert_eq!(slow.factory.get(), Some(&None));
        // A caller that went away leaves it to a later call.
        let left = get(&cache, "export const f = () => 5;").unwrap();
        cache.factory(&left, far, &|| true).unwrap();
        let gone = cache.factory(&left, far, &|| true);
        assert_eq!(gone, Err(CompileError::Cancelled));
        assert!(left.factory.get().is_none());
        cache.factory(&left, far, &|| false).unwrap();
        assert!(left.factory.get().cloned().flatten().is_some());
    }
}
