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
            url
        } else if let Ok(url) = Url::parse(specifier) {
            if url.scheme() == "node" {
                return Err(ResolveError::Refused(format!(
                    "Import of '{specifier}' is not allowed: Node built-ins are not available. \
                     This runtime offers web APIs (fetch, URL, TextEncoder, crypto) and a \
                     restricted Deno namespace (Deno.readTextFile, Deno.env) instead"
                )));
            }
            if url.scheme() != "file" {
                return Err(ResolveError::Refused(format!(
                    "Import of '{specifier}' is not allowed: nothing is fetched from the network \
                     or a package registry; vendor it under VENDOR_DIR and map it in the import map"
                )));
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
                Some(t) => match Url::parse(t) {
                    Ok(u) if u.scheme() == "file" => Ok(u),
                    Ok(_) => Err(format!(
                        "points to '{t}', but nothing is fetched from the network"
                    )),
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
        assert!(matches!(
            r.resolve("npm:left-pad", main.as_str()),
            Err(ResolveError::Refused(_))
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
}
