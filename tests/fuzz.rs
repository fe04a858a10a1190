//! The fuzz targets of `fuzz/` (see fuzz/README.md), run by CI in a bounded loop: seed inputs
//! (LSP frames, the rule fixtures, a GGUF header) mutated by a fixed pseudo-random generator, so
//! every run tries the same inputs. `cargo fuzz` runs the same targets open-ended.

use aidiag::fuzzing;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Interesting bytes for C, JSON and headers.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"(",
    b")",
    b"\n",
    b"\r",
    b"\r\n",
    b"\0",
    b"\xff",
    b"\xc3\xa9",
    b"/*",
    b"*/",
    b"//",
    b"#if 0\n",
    b"#endif\n",
    b"\"",
    b"\\",
    b"Content-Length: ",
    b"\r\n\r\n",
    b"99999999999",
    b"kmalloc(",
    b"kfree(",
    b"mutex_lock(&a->l);",
    b"return -ENOMEM;",
    b"goto out;",
    b"out:",
    b"list_for_each_entry(p, h, l) {",
    b"__user",
    b"__acquires(x)",
    b"/* aidiag-ignore: leak-on-error */",
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            3 if !data.is_empty() => {
                // Copy a slice of the input somewhere else (splices functions, frames).
                let from = rng.below(data.len());
                let len = rng.below(64).min(data.len() - from);
                let piece = data[from..from + len].to_vec();
                data.splice(at..at, piece);
            }
            4 => {
                let byte = rng.next() as u8;
                data.splice(at..at, std::iter::repeat_n(byte, rng.below(32)));
            }
            _ => data.truncate(at),
        }
    }
    data
}

fn run(name: &str, seeds: &[Vec<u8>], iterations: usize, target: fn(&[u8])) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for seed in seeds {
        target(seed);
    }
    for i in 0..iterations {
        let seed = &seeds[i % seeds.len()];
        let input = mutate(seed, &mut rng);
        let ok = std::panic::catch_unwind(|| target(&input));
        if ok.is_err() {
            let file = std::env::temp_dir().join(format!("aidiag-fuzz-{name}-{i}.bin"));
            std::fs::write(&file, &input).unwrap();
            panic!("{name}: input {i} failed; written to {}", file.display());
        }
    }
    eprintln!("{name}: {} executions", seeds.len() + iterations);
}

fn frame(body: &str) -> Vec<u8> {
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn fixtures() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules");
    let mut seeds = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        for name in ["bad.c", "good.c"] {
            seeds.push(std::fs::read(dir.join(name)).unwrap());
        }
    }
    seeds
}

/// Iterations per target, scaled by AIDIAG_FUZZ_SCALE (default 1) for longer local runs.
fn scaled(n: usize) -> usize {
    let scale: usize = std::env::var("AIDIAG_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    n * scale
}

#[test]
fn framing() {
    let mut stream = vec![7u8];
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#,
        r#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///a.c","languageId":"c","version":1,"text":"int f(void) { return 0; }"}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"shutdown"}"#,
    ] {
        stream.extend(frame(body));
    }
    let seeds = vec![
        stream.clone(),
        [&[1u8][..], &stream[1..]].concat(),
        [&[64u8][..], &stream[1..]].concat(),
    ];
    run("framing", &seeds, scaled(20_000), fuzzing::framing);
}

#[test]
fn dialect() {
    run("dialect", &fixtures(), scaled(20_000), fuzzing::dialect);
}

#[test]
fn check() {
    run("check", &fixtures(), scaled(3_000), fuzzing::check);
}

#[test]
fn gguf() {
    let model = aidiag::model::resolve(None).map(|(path, _)| path);
    let mut seeds = Vec::new();
    // The first 64 KiB of the default model (its header) when it is there.
    if let Some(bytes) = model.and_then(|p| std::fs::read(p).ok()) {
        seeds.push(bytes[..bytes.len().min(1 << 16)].to_vec());
    }
    let mut tiny = b"GGUF".to_vec();
    tiny.extend(3u32.to_le_bytes());
    tiny.extend(1u64.to_le_bytes());
    tiny.extend(1u64.to_le_bytes());
    tiny.extend(20u64.to_le_bytes());
    tiny.extend(b"general.architecture");
    tiny.extend(8u32.to_le_bytes());
    tiny.extend(5u64.to_le_bytes());
    tiny.extend(b"llama");
    tiny.extend(1u64.to_le_bytes());
    tiny.extend(b"t");
    tiny.extend(2u32.to_le_bytes());
    tiny.extend(32u64.to_le_bytes());
    tiny.extend(4u64.to_le_bytes());
    tiny.extend(2u32.to_le_bytes());
    tiny.extend(0u64.to_le_bytes());
    seeds.push(tiny);
    run("gguf", &seeds, scaled(20_000), fuzzing::gguf);
}
