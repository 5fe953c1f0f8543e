//! The layering of `src/` holds: each layer uses only the layers below it.
//!
//! `domain` → `formats` → `store` → `app` → `http` → `cli` (and `lib.rs`/`main.rs` on
//! top). A file's layer is its first folder under `src/`; every `crate::<layer>` path
//! it names (code or doc link) must belong to its own layer or a lower one.

use std::path::{Path, PathBuf};

const LAYERS: [&str; 6] = ["domain", "formats", "store", "app", "http", "cli"];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// The layer of a file by its path under `src/` (`None`: the crate root files).
fn layer_of(relative: &Path) -> Option<&str> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    rank(first).map(|_| first)
}

/// Every upward reference in `text` (a file of layer `layer`), as (line, target layer).
fn upward_references(layer: &str, text: &str) -> Vec<(usize, String)> {
    let own = rank(layer).expect("a known layer");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(target) = rank(&name) {
                if target > own {
                    out.push((n + 1, name.clone()));
                }
            }
            rest = after;
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_checker_sees_an_upward_reference() {
    assert_eq!(
        upward_references("store", "use crate::app::sync::SyncReport;\n"),
        [(1, "app".to_string())]
    );
    assert!(upward_references("app", "use crate::store::pool::Pool;\n").is_empty());
    assert!(upward_references("cli", "use crate::http::Server;\n").is_empty());
}

#[test]
fn no_layer_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut layered = 0;
    let mut seen_layers = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let Some(layer) = layer_of(relative) else {
            continue;
        };
        layered += 1;
        seen_layers.insert(layer.to_string());
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in upward_references(layer, &text) {
            problems.push(format!(
                "src/{}:{line}: the {layer} layer uses crate::{target}, a layer above it",
                relative.display()
            ));
        }
    }
    assert_eq!(
        seen_layers.len(),
        LAYERS.len(),
        "every layer has files: {seen_layers:?}"
    );
    assert!(layered > 30, "only {layered} files found under src/");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
