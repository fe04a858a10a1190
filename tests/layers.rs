//! The layering of ARCHITECTURE.md, enforced: only `src/server/` knows LSP, and the analysis
//! core does no I/O and imports neither the server nor the CLI.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

#[test]
fn only_the_server_layer_knows_lsp() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for file in rust_files(&src) {
        if file.starts_with(src.join("server")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in ["lsp_types", "tower_lsp"] {
            if text.contains(needle) {
                offenders.push(format!("{} uses {needle}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn the_analysis_core_does_no_io_and_imports_no_outer_layer() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/analysis");
    let mut offenders = Vec::new();
    for file in rust_files(&core) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Tests inside the core may read fixtures; production code may not.
        let production = text.split("#[cfg(test)]").next().unwrap();
        for needle in [
            "std::fs",
            "std::io",
            "std::net",
            "crate::server",
            "crate::cli",
            "crate::model",
            "tokio",
            "serde_json",
        ] {
            if production.contains(needle) {
                offenders.push(format!("{} uses {needle}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn the_model_layer_imports_neither_the_server_nor_the_cli() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model");
    let mut offenders = Vec::new();
    for file in rust_files(&model) {
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in ["crate::server", "crate::cli", "super::super"] {
            if text.contains(needle) {
                offenders.push(format!("{} uses {needle}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
