//! Where an import leads: relative paths, an import map (re-read when the
//! file changes) and `file:` URLs, always to a file inside an allowed module
//! root (workspace, tools, vendor). Nothing is fetched from the network.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use deno_core::ModuleSpecifier;
use deno_core::url::Url;

/// The URL prefix of function-call scripts, which have no file. Their
/// relative imports resolve against the workspace directory.
pub(super) const SCRIPT_URL_PREFIX: &str = "file:///isoexec/";

/// Why an import was not resolved. Each message names the specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResolveError {
    /// The specifier is of a kind never served (network, npm, outside the
    /// roots): a permission matter.
    Refused(String),
    /// It names nothing that exists.
    NotFound(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Refused(m) | ResolveError::NotFound(m) => f.write_str(m),
        }
    }
}

/// A parsed import map: exact entries and prefix entries (keys ending in
/// `/`), targets already resolved against the map's own location.
#[derive(Debug, Default)]
struct ImportMap {
    /// Longest key first, so the most specific prefix wins.
    entries: Vec<(String, Result<Url, String>)>,
}

struct CachedMap {
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    map: Result<ImportMap, String>,
}

/// Resolves imports for both APIs; shared by all isolate threads.
pub(crate) struct Resolver {
    roots: Vec<PathBuf>,
    workspace: PathBuf,
    import_map: PathBuf,
    cached: Mutex<Option<CachedMap>>,
}

impl Resolver {
    /// `roots` are the directories modules may come from; `import_map` the
    /// file to read entries from (it may be absent).
    pub(crate) fn new(workspace: &Path, roots: Vec<PathBuf>, import_map: PathBuf) -> Resolver {
        Resolver {
            roots,
            workspace: workspace.to_path_buf(),
            import_map,
            cached: Mutex::new(None),
        }
    }

    /// The URL `specifier`, imported from `referrer`, loads.
    pub(crate) fn resolve(
        &self,
        specifier: &str,
        referrer: &str,
    ) -> Result<ModuleSpecifier, ResolveError> {
        let url = if is_relative(specifier) {
            let base = if referrer.starts_with(SCRIPT_URL_PREFIX) || referrer == "." {
                dir_url(&self.workspace)?
            } else {
                Url::parse(referrer).map_err(|_| {
                    ResolveError::NotFound(format!(
                        "Cannot resolve '{specifier}': the importing module '{referrer}' has no location"
                    ))
                })?
            };
            base.join(specifier)
                .map_err(|e| ResolveError::NotFound(format!("Cannot resolve '{specifier}': {e}")))?
        } else if let Some(url) = self.mapped(specifier)? {
            // A map entry that points at the network is refused as a
            // direct URL import is, with the same words.
            if url.scheme() != "file" {
                return Err(network_refused(specifier, url.as_str()));
            }
            url
        } else if let Some(package) = package_name(specifier) {
            // An npm package installed under a module root's node_modules.
            let from = Url::parse(referrer)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| self.workspace.clone());
            let path = self.node_module(package, &from, IMPORT_CONDITIONS)?;
            return Url::from_file_path(&path)
                .map_err(|()| ResolveError::NotFound(format!("Cannot resolve '{specifier}'")));
        } else if let Ok(url) = Url::parse(specifier) {
            if url.scheme() == "node" {
                return Err(ResolveError::Refused(format!(
                    "Import of '{specifier}' is not allowed: Node built-ins are not available. \
                     This runtime offers web APIs (fetch, URL, TextEncoder, crypto) and a \
                     restricted Deno namespace (Deno.readTextFile, Deno.env) instead"
                )));
            }
            if url.scheme() != "file" {
                return Err(network_refused(specifier, specifier));
            }
            url
        } else {
            return Err(ResolveError::NotFound(format!(
                "Module not found: '{specifier}' is not a relative path and no import map entry \
                 matches it"
            )));
        };
        self.check_file(specifier, url)
    }

    /// Checks that `url` is a file inside a module root, following symlinks.
    fn check_file(&self, specifier: &str, url: Url) -> Result<ModuleSpecifier, ResolveError> {
        let path = url.to_file_path().map_err(|()| {
            ResolveError::NotFound(format!(
                "Cannot resolve '{specifier}': '{url}' is not a file path"
            ))
        })?;
        let real = std::fs::canonicalize(&path).map_err(|_| {
            ResolveError::NotFound(format!(
                "Module not found: '{specifier}' (looked for {})",
                path.display()
            ))
        })?;
        if !self.roots.iter().any(|r| real.starts_with(r)) {
            return Err(ResolveError::Refused(format!(
                "Import of '{specifier}' is not allowed: {} is outside the workspace, tools and \
                 vendor directories",
                path.display()
            )));
        }
        if !real.is_file() {
            return Err(ResolveError::NotFound(format!(
                "Module not found: '{specifier}' ({} is not a file)",
                path.display()
            )));
        }
        Url::from_file_path(&real)
            .map_err(|()| ResolveError::NotFound(format!("Cannot resolve '{specifier}'")))
    }

    /// The import map's target for a bare specifier, if an entry matches.
    fn mapped(&self, specifier: &str) -> Result<Option<Url>, ResolveError> {
        let mut cached = crate::sync::lock(&self.cached);
        let stamp = stamp_of(&self.import_map);
        let fresh = matches!(&*cached, Some(c) if c.stamp == stamp && c.path == self.import_map);
        if !fresh {
            let map = match stamp {
                None => Ok(ImportMap::default()),
                Some(_) => load_import_map(&self.import_map),
            };
            *cached = Some(CachedMap {
                path: self.import_map.clone(),
                stamp,
                map,
            });
        }
        let Some(cached) = cached.as_ref() else {
            return Ok(None);
        };
        let map = cached.map.as_ref().map_err(|e| {
            ResolveError::NotFound(format!(
                "Cannot resolve '{specifier}': the import map {} is invalid: {e}",
                self.import_map.display()
            ))
        })?;
        for (key, target) in &map.entries {
            let rest = if key.ends_with('/') {
                specifier.strip_prefix(key.as_str())
            } else {
                (specifier == key).then_some("")
            };
            let Some(rest) = rest else { continue };
            let target = target.as_ref().map_err(|e| {
                ResolveError::NotFound(format!(
                    "Cannot resolve '{specifier}': import map entry '{key}' {e}"
                ))
            })?;
            return target
                .join(rest)
                .map(Some)
                .map_err(|e| ResolveError::NotFound(format!("Cannot resolve '{specifier}': {e}")));
        }
        Ok(None)
    }
}

/// Why an import that leads to the network (`target`) is refused, and
/// what to do instead.
fn network_refused(specifier: &str, target: &str) -> ResolveError {
    let shown = if specifier == target {
        format!("'{specifier}'")
    } else {
        format!("'{specifier}' (mapped to '{target}')")
    };
    ResolveError::Refused(format!(
        "Import of {shown} is not allowed: nothing is fetched from the network or a package \
         registry at run time; install npm packages with `npm install --prefix <VENDOR_DIR> \
         <package>` and import them by name, or put the file under VENDOR_DIR and map it in \
         the import map"
    ))
}

fn is_relative(specifier: &str) -> bool {
    specifier.starts_with("./") || specifier.starts_with("../") || specifier.starts_with('/')
}

fn dir_url(dir: &Path) -> Result<Url, ResolveError> {
    Url::from_directory_path(dir)
        .map_err(|()| ResolveError::NotFound(format!("{} is not an absolute path", dir.display())))
}

fn stamp_of(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn load_import_map(path: &Path) -> Result<ImportMap, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let imports = match json.get("imports") {
        None => return Ok(ImportMap::default()),
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => return Err("\"imports\" must be an object".into()),
    };
    let base = path
        .parent()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
        .ok_or("the import map has no directory")?;
    let base = dir_url(&base).map_err(|e| e.to_string())?;
    let mut entries: Vec<(String, Result<Url, String>)> = imports
        .iter()
        .map(|(key, value)| {
            let target = match value.as_str() {
                None => Err("has a target that is not a string".to_string()),
                Some(t) if key.ends_with('/') && !t.ends_with('/') => {
                    Err(format!("maps a prefix to '{t}', which does not end in '/'"))
                }
                Some(t) if is_relative(t) => base.join(t).map_err(|e| format!("'{t}': {e}")),
                // A network URL is kept: resolving it refuses it as a
                // direct import of that URL is refused.
                Some(t) => match Url::parse(t) {
                    Ok(u) => Ok(u),
                    Err(_) => Err(format!(
                        "points to '{t}', which is neither a path nor a file: URL"
                    )),
                },
            };
            (key.clone(), target)
        })
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
    Ok(ImportMap { entries })
}

/// The package a bare specifier names (`zod`, `@scope/pkg/sub`, `npm:zod@3`),
/// with its subpath: `None` for anything else (paths, URLs).
fn package_name(specifier: &str) -> Option<(&str, &str)> {
    let spec = specifier.strip_prefix("npm:").unwrap_or(specifier);
    if spec.is_empty()
        || spec.starts_with(['.', '/', '#'])
        || (spec.contains(':') && !specifier.starts_with("npm:"))
    {
        return None;
    }
    // The name is one segment, or two for a scope; a version follows `@`.
    let segments = if spec.starts_with('@') { 2 } else { 1 };
    let mut end = 0;
    for (i, part) in spec.split('/').enumerate() {
        if i == segments {
            break;
        }
        end += part.len() + usize::from(i > 0);
    }
    let (name, rest) = spec.split_at(end.min(spec.len()));
    let name = match name.rfind('@') {
        Some(at) if at > 0 => &name[..at],
        _ => name,
    };
    if name.is_empty() || name.ends_with('/') {
        return None;
    }
    Some((name, rest))
}

/// Largest file `require` reads.
const MAX_REQUIRE_BYTES: u64 = 32 * 1024 * 1024;

/// Export conditions of an ES module import and of a `require`.
pub(crate) const IMPORT_CONDITIONS: &[&str] = &["import", "node", "default"];
pub(crate) const REQUIRE_CONDITIONS: &[&str] = &["require", "node", "default"];

impl Resolver {
    /// What `require(specifier)` from the file `referrer` loads: the file's
    /// path and text. Relative paths resolve against the requiring file,
    /// package names through `node_modules` (require conditions); the file
    /// must be inside a module root, and an ES module is refused, as Node
    /// 22 refuses it.
    pub(crate) fn require_file(
        &self,
        specifier: &str,
        referrer: &str,
    ) -> Result<(String, String), String> {
        let from = Path::new(referrer)
            .parent()
            .map_or_else(|| self.workspace.clone(), Path::to_path_buf);
        let path = if is_relative(specifier) {
            let target = from.join(specifier);
            let file = probe_file(&target).ok_or_else(|| {
                format!(
                    "Cannot find module '{specifier}' (looked for {})",
                    target.display()
                )
            })?;
            let url = Url::from_file_path(&file)
                .map_err(|()| format!("Cannot find module '{specifier}'"))?;
            self.check_file(specifier, url)
                .map_err(|e| e.to_string())?
                .to_file_path()
                .map_err(|()| format!("Cannot find module '{specifier}'"))?
        } else {
            let package = package_name(specifier)
                .ok_or_else(|| format!("Cannot find module '{specifier}'"))?;
            self.node_module(package, &from, REQUIRE_CONDITIONS)
                .map_err(|e| e.to_string())?
        };
        let json = path.extension().is_some_and(|e| e == "json");
        if !json && !is_commonjs_file(&path) {
            return Err(format!(
                "require() of the ES module {} is not supported: import it instead \
                 (`import … from \"{specifier}\"`, or `await import(\"{specifier}\")`)",
                path.display()
            ));
        }
        let meta = std::fs::metadata(&path).map_err(|e| e.to_string())?;
        if meta.len() > MAX_REQUIRE_BYTES {
            return Err(format!(
                "{} is larger than {MAX_REQUIRE_BYTES} bytes",
                path.display()
            ));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((path.to_string_lossy().into_owned(), text))
    }

    /// The file `package` (a name and a subpath such as `/sub`) leads to,
    /// from the directory `from`: the nearest `node_modules` above it, then
    /// each module root's, as Node searches; the package's `exports` (with
    /// `conditions`), else `main`, else `index.js`. Only a file inside a
    /// module root is returned (symlinks followed first).
    pub(crate) fn node_module(
        &self,
        (name, subpath): (&str, &str),
        from: &Path,
        conditions: &[&str],
    ) -> Result<PathBuf, ResolveError> {
        let shown = format!("{name}{subpath}");
        let mut candidates: Vec<PathBuf> = from
            .ancestors()
            .take_while(|d| self.roots.iter().any(|r| d.starts_with(r)))
            .map(|d| d.join("node_modules").join(name))
            .collect();
        candidates.extend(self.roots.iter().map(|r| r.join("node_modules").join(name)));
        let Some(dir) = candidates
            .into_iter()
            .find(|d| d.join("package.json").is_file() || d.is_dir())
        else {
            return Err(ResolveError::NotFound(format!(
                "Cannot find package '{name}': nothing is fetched at run time; install it into \
                 VENDOR_DIR with `npm install --prefix <VENDOR_DIR> {name}` (it is then found in \
                 <VENDOR_DIR>/node_modules)"
            )));
        };
        let manifest: serde_json::Value = std::fs::read_to_string(dir.join("package.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        let sub = format!(".{subpath}");
        let target = match manifest.get("exports") {
            Some(exports) if !exports.is_null() => {
                let rel = exports_target(exports, &sub, conditions).ok_or_else(|| {
                    ResolveError::NotFound(format!(
                        "Package '{name}' exports no '{sub}' for {}",
                        conditions.join("/")
                    ))
                })?;
                dir.join(rel.trim_start_matches("./"))
            }
            _ if sub == "." => {
                let main = manifest
                    .get("main")
                    .and_then(|m| m.as_str())
                    .unwrap_or("index.js");
                dir.join(main.trim_start_matches("./"))
            }
            _ => dir.join(&subpath[1..]),
        };
        let file = probe_file(&target).ok_or_else(|| {
            ResolveError::NotFound(format!(
                "Module not found: '{shown}' (looked for {})",
                target.display()
            ))
        })?;
        let url = Url::from_file_path(&file)
            .map_err(|()| ResolveError::NotFound(format!("Cannot resolve '{shown}'")))?;
        let checked = self.check_file(&shown, url)?;
        checked
            .to_file_path()
            .map_err(|()| ResolveError::NotFound(format!("Cannot resolve '{shown}'")))
    }
}

/// `path` itself, or with `.js`, `.json`, `/index.js` added: the first file.
fn probe_file(path: &Path) -> Option<PathBuf> {
    let with = |ext: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    [
        path.to_path_buf(),
        with(".js"),
        with(".json"),
        with(".cjs"),
        with(".mjs"),
        path.join("index.js"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The target of `subpath` in a package's `exports` under `conditions`
/// (a string, a map of subpaths, or a map of conditions; `*` patterns).
fn exports_target(
    exports: &serde_json::Value,
    subpath: &str,
    conditions: &[&str],
) -> Option<String> {
    let by_subpath = exports
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k.starts_with('.')));
    if !by_subpath {
        return (subpath == ".")
            .then(|| condition_target(exports, conditions))
            .flatten();
    }
    let map = exports.as_object()?;
    if let Some(entry) = map.get(subpath) {
        return condition_target(entry, conditions);
    }
    // Patterns: "./locales/*" → "./lib/locales/*".
    for (key, entry) in map {
        let Some((prefix, suffix)) = key.split_once('*') else {
            continue;
        };
        if let Some(middle) = subpath
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
        {
            return condition_target(entry, conditions).map(|t| t.replace('*', middle));
        }
    }
    None
}

/// A conditional target: a string, the first matching condition of a map
/// (in the map's order), or the first resolvable entry of an array.
fn condition_target(entry: &serde_json::Value, conditions: &[&str]) -> Option<String> {
    match entry {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| conditions.contains(&k.as_str()))
            .find_map(|(_, v)| condition_target(v, conditions)),
        serde_json::Value::Array(list) => list.iter().find_map(|v| condition_target(v, conditions)),
        _ => None,
    }
}

/// Whether a file under `node_modules` is CommonJS: `.cjs`, or `.js` in a
/// package whose `type` is not `module` (the nearest package.json says).
pub(crate) fn is_commonjs_file(path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("cjs") => return true,
        Some("js") => {}
        _ => return false,
    }
    for dir in path.ancestors().skip(1) {
        let manifest = dir.join("package.json");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let kind = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(String::from));
            return kind.as_deref() != Some("module");
        }
        if dir.file_name().is_some_and(|n| n == "node_modules") {
            break;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(name: &str) -> (PathBuf, Resolver) {
        let root = std::env::temp_dir().join(format!("isoexec-res-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["workspace", "tools/utils", "vendor/lib"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let root = std::fs::canonicalize(&root).unwrap();
        std::fs::write(root.join("workspace/main.ts"), "").unwrap();
        std::fs::write(root.join("workspace/helper.ts"), "").unwrap();
        std::fs::write(root.join("tools/utils/math.ts"), "").unwrap();
        std::fs::write(root.join("vendor/lib/mod.ts"), "").unwrap();
        std::fs::write(
            root.join("workspace/import_map.json"),
            r#"{"imports": {"utils/": "../tools/utils/", "lib": "../vendor/lib/mod.ts"}}"#,
        )
        .unwrap();
        let ws = root.join("workspace");
        let r = Resolver::new(
            &ws,
            vec![ws.clone(), root.join("tools"), root.join("vendor")],
            ws.join("import_map.json"),
        );
        (root, r)
    }

    #[test]
    fn relative_mapped_and_refused_specifiers() {
        let (root, r) = setup("a");
        let main = Url::from_file_path(root.join("workspace/main.ts")).unwrap();
        let got = r.resolve("./helper.ts", main.as_str()).unwrap();
        assert!(got.path().ends_with("/workspace/helper.ts"), "{got}");
        let got = r.resolve("utils/math.ts", main.as_str()).unwrap();
        assert!(got.path().ends_with("/tools/utils/math.ts"), "{got}");
        let got = r.resolve("lib", main.as_str()).unwrap();
        assert!(got.path().ends_with("/vendor/lib/mod.ts"), "{got}");
        let script = "file:///isoexec/abc.ts";
        assert!(r.resolve("./helper.ts", script).is_ok());
        assert!(matches!(
            r.resolve("https://deno.land/x/mod.ts", main.as_str()),
            Err(ResolveError::Refused(m)) if m.contains("https://deno.land/x/mod.ts")
        ));
        // A map entry to a URL is refused as the URL itself is.
        let map_dir = root.join("workspace");
        std::fs::write(
            map_dir.join("import_map.json"),
            r#"{"imports": {"es-toolkit": "https://esm.sh/es-toolkit@1"}}"#,
        )
        .unwrap();
        let mapped = r.resolve("es-toolkit", main.as_str());
        let direct = r.resolve("https://esm.sh/es-toolkit@1", main.as_str());
        for got in [&mapped, &direct] {
            assert!(
                matches!(got, Err(ResolveError::Refused(m)) if m.contains("npm install --prefix")),
                "{got:?}"
            );
        }
        std::fs::remove_file(map_dir.join("import_map.json")).unwrap();
        // A package that is not installed says how to install it.
        assert!(matches!(
            r.resolve("npm:left-pad", main.as_str()),
            Err(ResolveError::NotFound(m)) if m.contains("npm install --prefix")
        ));
        assert!(matches!(
            r.resolve("../../../../../etc/passwd", main.as_str()),
            Err(ResolveError::Refused(_)) | Err(ResolveError::NotFound(_))
        ));
        assert!(matches!(
            r.resolve("/etc/hostname", main.as_str()),
            Err(ResolveError::Refused(_))
        ));
        assert!(matches!(
            r.resolve("nothing-here", main.as_str()),
            Err(ResolveError::NotFound(m)) if m.contains("nothing-here")
        ));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_import_map_is_reread_when_it_changes() {
        let (root, r) = setup("b");
        let main = Url::from_file_path(root.join("workspace/main.ts")).unwrap();
        assert!(r.resolve("@/utils/math.ts", main.as_str()).is_err());
        std::fs::write(
            root.join("workspace/import_map.json"),
            r#"{"imports": {"@/": "../tools/", "utils/": "../tools/utils/"}}"#,
        )
        .unwrap();
        let got = r.resolve("@/utils/math.ts", main.as_str()).unwrap();
        assert!(got.path().ends_with("/tools/utils/math.ts"), "{got}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn symlinks_cannot_lead_out_of_the_roots() {
        let (root, r) = setup("c");
        std::os::unix::fs::symlink("/etc/hostname", root.join("workspace/evil.ts")).unwrap();
        let main = Url::from_file_path(root.join("workspace/main.ts")).unwrap();
        assert!(r.resolve("./evil.ts", main.as_str()).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn package_specifiers_and_exports_maps_resolve_as_node_does() {
        assert_eq!(package_name("zod"), Some(("zod", "")));
        assert_eq!(package_name("npm:zod@3/v4"), Some(("zod", "/v4")));
        assert_eq!(
            package_name("@scope/pkg/sub/x.js"),
            Some(("@scope/pkg", "/sub/x.js"))
        );
        assert_eq!(package_name("npm:@scope/pkg@1.2"), Some(("@scope/pkg", "")));
        for not_a_package in ["./a", "/abs", "https://x.test/a.js", "node:fs", "#internal"] {
            assert_eq!(package_name(not_a_package), None, "{not_a_package}");
        }
        let exports: serde_json::Value = serde_json::json!({
            ".": {"types": "./i.d.ts", "require": "./lib/index.js", "import": "./lib/index.mjs"},
            "./locales/*": "./lib/locales/*",
        });
        assert_eq!(
            exports_target(&exports, ".", IMPORT_CONDITIONS).as_deref(),
            Some("./lib/index.mjs")
        );
        assert_eq!(
            exports_target(&exports, ".", REQUIRE_CONDITIONS).as_deref(),
            Some("./lib/index.js")
        );
        assert_eq!(
            exports_target(&exports, "./locales/en.js", IMPORT_CONDITIONS).as_deref(),
            Some("./lib/locales/en.js")
        );
        assert_eq!(
            exports_target(&exports, "./private", IMPORT_CONDITIONS),
            None
        );
        let sugar = serde_json::json!({"node": {"import": "./n.mjs"}, "default": "./d.js"});
        assert_eq!(
            exports_target(&sugar, ".", IMPORT_CONDITIONS).as_deref(),
            Some("./n.mjs")
        );
        assert_eq!(
            exports_target(&sugar, ".", REQUIRE_CONDITIONS).as_deref(),
            Some("./d.js")
        );
    }
}
