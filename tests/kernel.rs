//! The patched CPU quantized matmul in vendor/candle-core gives bit-for-bit the results of
//! upstream's algorithm (one `vec_dot` of a quantized input row with a weight row per output),
//! for shapes around its tile and block edges, with Q8_0 and Q4_K weights. Q8_0 goes through the
//! patch's own four-by-four kernel (`vec_dot_q8_0_q8_0_tile`, VNNI where the CPU has it).

use candle_core::quantized::k_quants::{self, BlockQ4K, BlockQ8_0, GgmlType};

/// A fixed pseudo-random sequence in [-1, 1).
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Upstream's definition: quantize each input row, then one `vec_dot` per output.
fn reference<T: GgmlType>(m: usize, k: usize, n: usize, lhs: &[f32], rhs: &[T]) -> Vec<f32> {
    let row_blocks = k / T::VecDotType::BLCK_SIZE;
    let rhs_blocks = k / T::BLCK_SIZE;
    let mut out = vec![0f32; m * n];
    for r in 0..m {
        let mut quantized = vec![T::VecDotType::zeros(); row_blocks];
        T::VecDotType::from_float(&lhs[r * k..(r + 1) * k], &mut quantized).unwrap();
        for c in 0..n {
            out[r * n + c] =
                T::vec_dot(k, &rhs[c * rhs_blocks..(c + 1) * rhs_blocks], &quantized).unwrap();
        }
    }
    out
}

fn check<T: GgmlType>(k: usize) {
    for m in [1, 2, 3, 4, 5, 15, 16, 17, 40, 250] {
        for n in [1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 130] {
            let lhs = values(m * k, (m * 1000 + n) as u64);
            let weights = values(n * k, (n * 7) as u64);
            let mut rhs = vec![T::zeros(); n * k / T::BLCK_SIZE];
            T::from_float(&weights, &mut rhs).unwrap();
            let mut dst = vec![0f32; m * n];
            k_quants::matmul((m, k, n), &lhs, &rhs, &mut dst).unwrap();
            let expected = reference(m, k, n, &lhs, &rhs);
            let same = dst
                .iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "m={m} k={k} n={n}: the patched matmul differs");
        }
    }
}

#[test]
fn patched_matmul_matches_upstream_bit_for_bit() {
    check::<BlockQ8_0>(96);
    check::<BlockQ8_0>(576);
    check::<BlockQ4K>(256);
}
