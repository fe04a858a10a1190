//! Writes a directory of kernel-style C files for `scripts/bench-check.sh`:
//! `cargo run --release --example gen_corpus -- DIR [FILES] [LINES]`.

#[path = "../benches/corpus.rs"]
mod corpus;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: gen_corpus DIR [FILES] [LINES]");
    let files = args
        .next()
        .map_or(100, |n| n.parse().expect("FILES is a number"));
    let lines = args
        .next()
        .map_or(400, |n| n.parse().expect("LINES is a number"));
    corpus::write_tree(std::path::Path::new(&dir), files, lines);
}
