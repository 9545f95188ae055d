//! The crate's modules depend on each other in one direction: no module imports a module that
//! imports it back, directly or through others. A parent declares (and may re-export) its
//! children, so a child that imports its parent's items closes a circle too.
//!
//! Read from the source: every `crate::…` and `super::…` path outside comments and test modules
//! is an edge to the deepest module it names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".to_owned()
    } else {
        format!("crate::{}", parts.join("::"))
    }
}

fn parent(m: &str) -> Option<&str> {
    m.rsplit_once("::").map(|(p, _)| p)
}

/// The code of a file without comments and without its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The deepest known module a path starting at `start` names.
fn resolve(modules: &BTreeSet<String>, mut path: Vec<String>) -> Option<String> {
    while !path.is_empty() {
        let m = path.join("::");
        if modules.contains(&m) {
            return Some(m);
        }
        path.pop();
    }
    None
}

fn edges(modules: &BTreeSet<String>, module: &str, code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes: Vec<char> = code.chars().collect();
    let text: String = bytes.iter().collect();
    for (i, _) in text
        .match_indices("crate::")
        .chain(text.match_indices("super::"))
    {
        if i > 0 && bytes[i - 1].is_alphanumeric() {
            continue;
        }
        let rest: String = text[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut segments: Vec<String> = rest
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let mut base: Vec<String> = if segments.first().is_some_and(|s| s == "crate") {
            segments.remove(0);
            vec!["crate".to_owned()]
        } else {
            module.split("::").map(str::to_owned).collect()
        };
        while segments.first().is_some_and(|s| s == "super") {
            segments.remove(0);
            base.pop();
        }
        base.extend(segments);
        // `path::{a, b::{C}}`: each first name of the group.
        let after = &text[i + rest.len()..];
        let firsts: Vec<String> = if rest.ends_with("::") && after.starts_with('{') {
            let mut depth = 0;
            let mut group = String::new();
            for c in after.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                group.push(c);
                if depth == 0 {
                    break;
                }
            }
            top_level_items(&group[1..group.len().saturating_sub(1)])
        } else {
            vec![String::new()]
        };
        for first in firsts {
            let mut path = base.clone();
            if !first.is_empty() {
                path.push(first);
            }
            if let Some(target) = resolve(modules, path)
                && target != module
            {
                out.insert(target);
            }
        }
    }
    out
}

/// The first name of each comma-separated item of a `{...}` group (nested groups skipped).
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .iter()
        .map(|i| {
            i.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|i| !i.is_empty())
        .collect()
}

fn collect(dir: &Path, root: &Path, files: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, root, files);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") {
            let rel = path.strip_prefix(root).unwrap().to_owned();
            files.push((module_of(&rel), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &files {
        let mut out = edges(&modules, m, &code(text));
        // The parent declares its children.
        for child in &modules {
            if parent(child) == Some(m.as_str()) {
                out.insert(child.clone());
            }
        }
        graph.insert(m.clone(), out);
    }
    assert!(graph.contains_key("crate::db::shared") && graph.contains_key("crate::http::auth"));
    // Every module reachable from each module's dependencies must not lead back to it.
    for (m, deps) in &graph {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = deps
            .iter()
            .map(|d| (d.clone(), vec![m.clone(), d.clone()]))
            .collect();
        while let Some((n, path)) = stack.pop() {
            assert!(n != *m, "import circle: {}", path.join(" -> "));
            if !seen.insert(n.clone()) {
                continue;
            }
            for next in graph.get(&n).into_iter().flatten() {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
}
