//! Kernel-style C files for benchmarks, assembled from the rule fixtures: every function of
//! `fixtures/rules/*/{bad,good}.c`, renamed so that names do not repeat.

// Each benchmark and example that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::Path;

use aidiag::analysis::{functions, syntax};

/// The functions of every rule fixture, in a fixed order.
pub fn fixture_functions() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        for name in ["bad.c", "good.c"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let parse = syntax::parse(&text, None);
            for node in functions::function_nodes(&parse.tree) {
                out.push(text[node.byte_range()].to_owned());
            }
        }
    }
    out
}

/// One file of at least `lines` lines; `seed` makes function names unique across files.
pub fn file(functions: &[String], lines: usize, seed: usize) -> String {
    let mut text = String::from(
        "// SPDX-License-Identifier: GPL-2.0\n/* Generated for aidiag benchmarks from its rule fixtures. */\n\n#include <linux/module.h>\n#include <linux/slab.h>\n#include <linux/uaccess.h>\n\n",
    );
    let mut i = 0;
    while text.lines().count() < lines {
        let f = &functions[(seed * 7 + i) % functions.len()];
        let parse = syntax::parse(f, None);
        let node = functions::function_nodes(&parse.tree)[0];
        let name = functions::function_name(node).unwrap();
        let renamed = format!(
            "{}{}_{}_{}",
            &f[..name.start_byte()],
            &f[name.byte_range()],
            seed,
            i
        );
        text.push_str(&renamed);
        text.push_str(&f[name.end_byte()..]);
        text.push_str("\n\n");
        i += 1;
    }
    text
}

/// Writes `count` files of about `lines` lines each into `dir`.
pub fn write_tree(dir: &Path, count: usize, lines: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let functions = fixture_functions();
    for n in 0..count {
        std::fs::write(dir.join(format!("drv{n:03}.c")), file(&functions, lines, n)).unwrap();
    }
}
