//! Checks every function of the benchmark file repeatedly, for `perf record`.

#[path = "../benches/corpus.rs"]
mod corpus;

fn main() {
    let text = corpus::file(&corpus::fixture_functions(), 5_000, 0);
    let parse = aidiag::analysis::syntax::parse(&text, None);
    let nodes = aidiag::analysis::functions::function_nodes(&parse.tree);
    let t = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..40 {
        for node in &nodes {
            n += aidiag::analysis::rules::check_function(*node, &text, Default::default()).len();
        }
    }
    println!(
        "{n} findings, {:.2} ms per pass",
        t.elapsed().as_secs_f64() * 1e3 / 40.0
    );
}
