//! Time per rule over the benchmark file (a profiling aid for rule authors).

#[path = "../benches/corpus.rs"]
mod corpus;

use std::time::Instant;

fn main() {
    let text = corpus::file(&corpus::fixture_functions(), 5_000, 0);
    let t = Instant::now();
    let parse = aidiag::analysis::syntax::parse(&text, None);
    println!("full parse: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    let nodes = aidiag::analysis::functions::function_nodes(&parse.tree);
    let t = Instant::now();
    let mut old = parse.tree.clone();
    let edit = tree_sitter::InputEdit {
        start_byte: 5000,
        old_end_byte: 5000,
        new_end_byte: 5000,
        start_position: tree_sitter::Point::new(0, 0),
        old_end_position: tree_sitter::Point::new(0, 0),
        new_end_position: tree_sitter::Point::new(0, 0),
    };
    old.edit(&edit);
    for _ in 0..100 {
        aidiag::analysis::syntax::parse(&text, Some(&old));
    }
    println!(
        "incremental parse (no-op edit): {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / 100.0
    );
    let t = Instant::now();
    for _ in 0..100 {
        aidiag::analysis::functions::function_nodes(&parse.tree);
    }
    println!(
        "function_nodes: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / 100.0
    );
    for (i, rule) in aidiag::analysis::rules::RULES.iter().enumerate() {
        let t = Instant::now();
        for _ in 0..5 {
            for n in &nodes {
                aidiag::analysis::rules::check_one(i, *n, &text);
            }
        }
        println!(
            "{:<26} {:.2} ms",
            rule.id,
            t.elapsed().as_secs_f64() * 1e3 / 5.0
        );
    }
}
