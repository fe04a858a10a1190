//! Times incremental reparses of the benchmark file (a profiling aid).

#[path = "../benches/corpus.rs"]
mod corpus;

fn main() {
    let mut text = corpus::file(&corpus::fixture_functions(), 5_000, 0);
    if std::env::var_os("NO_MACRO_LOOPS").is_some() {
        text = text
            .replace("list_for_each_entry_safe(", "for_each_entry_safe_fn(")
            .replace(", list) {", ", list); {")
            .replace("__acquires(&baz->lock)", "");
    }
    let parse0 = aidiag::analysis::syntax::parse(&text, None);
    println!("errors in file: {}", parse0.errors);
    let parse = aidiag::analysis::syntax::parse(&text, None);
    let mut old = parse.tree.clone();
    let p = tree_sitter::Point::new(0, 0);
    old.edit(&tree_sitter::InputEdit {
        start_byte: 5000,
        old_end_byte: 5000,
        new_end_byte: 5000,
        start_position: p,
        old_end_position: p,
        new_end_position: p,
    });
    let t = std::time::Instant::now();
    for _ in 0..500 {
        aidiag::analysis::syntax::parse(&text, Some(&old));
    }
    println!(
        "incremental parse: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / 500.0
    );
    let t = std::time::Instant::now();
    for _ in 0..500 {
        aidiag::analysis::syntax::count_errors(parse.tree.root_node());
    }
    println!(
        "count_errors: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / 500.0
    );
}
