fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let t = std::time::Instant::now();
    let n = 20;
    let mut errors = 0;
    for _ in 0..n {
        errors = aidiag::analysis::syntax::parse(&text, None).errors;
    }
    println!(
        "{} bytes, {} errors, fresh parse {:.2} ms",
        text.len(),
        errors,
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}
