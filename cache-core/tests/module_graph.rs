//! The runtime's modules import each other without cycles, apart from the
//! cycles listed in [`KNOWN_CYCLES`], which may shrink but never grow.
//!
//! The graph is read off the sources: every `crate::a::b` and `super::x`
//! path outside comments and `#[cfg(test)]` code is an edge to the longest
//! module it names (a child naming its parent, which re-exports, is not an
//! edge). Strongly connected components of more than one module are cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Cycles that exist today and are to be taken apart (tracker issue 12:
/// the handle, the memoizer and the entry store as layers). Removing a
/// module from one of these, or a whole cycle, is progress: update the list.
const KNOWN_CYCLES: &[&[&str]] = &[&["cache", "lease", "memoizing"]];

fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable src dir") {
            let path = entry.expect("a dir entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("::");
            if let Some(parent) = name.strip_suffix("::mod") {
                name = parent.to_owned();
            }
            found.insert(
                name,
                std::fs::read_to_string(&path).expect("readable source"),
            );
        }
    }
    found
}

/// The code of a file without comments and without its `#[cfg(test)]` tail.
fn code(source: &str) -> String {
    let source = source.split("#[cfg(test)]").next().unwrap_or_default();
    source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::…` / `super::…` path in `code`, as its segments.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.push(rest.split("::").map(str::to_owned).collect());
        }
    }
    found
}

fn graph(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, source) in modules {
        let parent: Vec<String> = match module.rsplit_once("::") {
            Some((parent, _)) => parent.split("::").map(str::to_owned).collect(),
            None => Vec::new(),
        };
        let out = edges.entry(module.clone()).or_default();
        for path in paths(&code(source)) {
            let segments: Vec<String> = match path[0].as_str() {
                "super" => parent
                    .iter()
                    .cloned()
                    .chain(path[1..].iter().cloned())
                    .collect(),
                _ => path[1..].to_vec(),
            };
            for k in (1..=segments.len()).rev() {
                let target = segments[..k].join("::");
                if modules.contains_key(&target) {
                    if target != *module && !module.starts_with(&format!("{target}::")) {
                        out.insert(target);
                    }
                    break;
                }
            }
        }
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_new_import_cycles_among_the_runtime_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    assert!(modules.contains_key("cache") && modules.contains_key("backend::redis"));
    let edges = graph(&modules);
    let known: Vec<BTreeSet<String>> = KNOWN_CYCLES
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect();
    for cycle in cycles(&edges) {
        assert!(
            known.iter().any(|k| cycle.is_subset(k)),
            "an import cycle that is not in KNOWN_CYCLES: {cycle:?}; \
             edges among them: {:?}",
            cycle
                .iter()
                .map(|m| (m, edges[m].intersection(&cycle).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_checker_finds_a_cycle() {
    let modules: BTreeMap<String, String> = [
        ("a", "use crate::b::Thing;"),
        ("b", "pub(crate) fn f() { crate::c::g() }"),
        (
            "c",
            "// crate::a is only mentioned in a comment\nuse super::a;",
        ),
        ("d", "use crate::a;"),
    ]
    .into_iter()
    .map(|(m, s)| (m.to_owned(), s.to_owned()))
    .collect();
    let found = cycles(&graph(&modules));
    let expected: BTreeSet<String> = ["a", "b", "c"].into_iter().map(str::to_owned).collect();
    assert_eq!(found, vec![expected]);
}
