//! Where the AMX path of the vendored candle's quantized matmul starts to pay
//! (vendor/README.md, candle-core change 8): for a 1536 x 1536 Q4_K weight matrix (the size of
//! Qwen2.5-Coder-1.5B's attention projections) and a growing number of input rows, the time of
//! `k_quants::matmul` (the AMX path from `amx::MIN_ROWS` rows, where the CPU has AMX) next to
//! `k_quants::matmul_exact` (the vector kernels), each the mean of 10 runs after one unmeasured
//! run, on every core.
//!
//! `cargo run --release --example amx_threshold`

use candle_core::quantized::k_quants::{self, BlockQ4K, GgmlType};

fn main() {
    let (k, n) = (1536, 1536);
    let weights: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut rhs = vec![BlockQ4K::zeros(); n * k / 256];
    BlockQ4K::from_float(&weights, &mut rhs).expect("whole blocks");
    #[cfg(target_arch = "x86_64")]
    println!(
        "AMX path: {}",
        if candle_core::quantized::amx::available() {
            "available"
        } else {
            "not available (both columns are the vector kernels)"
        }
    );
    for m in [8, 12, 16, 24, 32, 48, 64, 128] {
        let lhs: Vec<f32> = (0..m * k)
            .map(|i| ((i * 31) % 100) as f32 / 50.0 - 1.0)
            .collect();
        let time = |f: &dyn Fn(&mut [f32])| {
            let mut dst = vec![0f32; m * n];
            f(&mut dst);
            let start = std::time::Instant::now();
            for _ in 0..10 {
                f(&mut dst);
            }
            start.elapsed().as_secs_f64() / 10.0 * 1e3
        };
        let matmul = time(&|d| k_quants::matmul((m, k, n), &lhs, &rhs, d).expect("shapes"));
        let exact = time(&|d| k_quants::matmul_exact((m, k, n), &lhs, &rhs, d).expect("shapes"));
        println!("{m:4} rows: matmul {matmul:.2} ms, matmul_exact {exact:.2} ms");
    }
}
