//! The crate's layers point one way: no module reaches, through the paths
//! it names (`crate::…`, `super::…`), a module that names it back. A child
//! naming its parent (`super::X` in `engine/pool.rs`) is not a circle: the
//! parent is where its children's shared items live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of `src/` (but the binary), by path (`engine::pool`), with
/// its file.
fn modules() -> BTreeMap<String, PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            if name != "lib" && name != "main" {
                out.insert(name, path);
            }
        }
    }
    out
}

/// The code of a file without comments and without its test module.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a path starts: the crate root, the parent module, or the module
/// itself (a path through one of its children, `store::JobRecord`).
#[derive(Clone, Copy, PartialEq)]
enum From {
    Crate,
    Parent,
    Here,
}

/// The paths a file names after `crate::`, `super::` or `<child>::`, each
/// as a list of segments, brace groups expanded one level (`a::{b, c::d}`).
fn named_paths(code: &str, children: &[String]) -> Vec<(From, Vec<String>)> {
    let mut out = Vec::new();
    let mut markers = vec![
        (From::Crate, "crate::".to_string()),
        (From::Parent, "super::".to_string()),
    ];
    markers.extend(children.iter().map(|c| (From::Here, format!("{c}::"))));
    for (from, marker) in markers {
        let mut rest = code;
        while let Some(at) = rest.find(marker.as_str()) {
            let before = rest[..at].chars().next_back();
            let after_path = rest[..at].ends_with("::");
            let keep = if from == From::Here {
                rest[at..].split_once("::").map(|(c, _)| c.to_string())
            } else {
                None
            };
            rest = &rest[at + marker.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') || after_path {
                continue;
            }
            let mut segments: Vec<String> = keep.into_iter().collect();
            let mut tail = rest;
            loop {
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                if end == 0 {
                    break;
                }
                segments.push(tail[..end].to_string());
                tail = &tail[end..];
                match tail.strip_prefix("::") {
                    Some(t) => tail = t,
                    None => break,
                }
            }
            if let Some(group) = tail.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() && first != "self" {
                        let mut s = segments.clone();
                        s.push(first.to_string());
                        out.push((from, s));
                    }
                }
            }
            out.push((from, segments));
        }
    }
    out
}

#[test]
fn no_module_names_a_module_that_names_it_back() {
    let modules = modules();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, file) in &modules {
        let here: Vec<&str> = name.split("::").collect();
        let targets = edges.entry(name).or_default();
        let children: Vec<String> = modules
            .keys()
            .filter_map(|m| m.strip_prefix(&format!("{name}::")))
            .filter(|rest| !rest.contains("::"))
            .map(String::from)
            .collect();
        for (from, segments) in named_paths(&code_of(file), &children) {
            let base = match from {
                From::Crate => &here[..0],
                // `super` of `a::b` (a file b.rs or b/mod.rs) is `a`.
                From::Parent => &here[..here.len() - 1],
                From::Here => &here[..],
            };
            let mut full: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            full.extend(segments);
            // The longest prefix that is a module.
            let target = (1..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|m| modules.contains_key(m));
            if let Some(target) = target {
                let (key, _) = modules.get_key_value(&target).unwrap();
                let is_ancestor = name.starts_with(&format!("{key}::"));
                if key != name && !is_ancestor {
                    targets.insert(key);
                }
            }
        }
    }
    // A circle is a path from a module back to itself.
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        while let Some((at, path)) = stack.pop() {
            for &next in edges.get(at).into_iter().flatten() {
                if next == *start {
                    circles.push(path.join(" -> ") + " -> " + *start);
                } else if seen.insert(next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 50,
        "the module graph was not read"
    );
    assert!(circles.is_empty(), "circles:\n{}", circles.join("\n"));
}
