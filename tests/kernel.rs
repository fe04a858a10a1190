//! The patched CPU quantized matmul in vendor/candle-core gives bit-for-bit the results of
//! upstream's algorithm (one `vec_dot` of a quantized input row with a weight row per output),
//! for shapes around its tile and block edges, with Q8_0, Q4_K and Q6_K weights, each through
//! the patch's own four-by-four kernel (`vec_dot_q8_0_q8_0_tile`, `vec_dot_q4k_q8k_tile`,
//! `vec_dot_q6k_q8k_tile`; VNNI where the CPU has it) in `matmul_exact`. `matmul`'s AMX path
//! (prompts, where the CPU has AMX tiles) is not upstream's arithmetic: it is held within the
//! bf16 rounding of the exact product instead.

use candle_core::quantized::k_quants::{self, BlockQ4K, BlockQ6K, BlockQ8K, BlockQ8_0, GgmlType};

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

/// The inputs of one case: `m` input rows and `n` weight rows (quantized) of `k` values.
fn case<T: GgmlType>(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<T>) {
    let lhs = values(m * k, (m * 1000 + n) as u64);
    let weights = values(n * k, (n * 7) as u64);
    let mut rhs = vec![T::zeros(); n * k / T::BLCK_SIZE];
    T::from_float(&weights, &mut rhs).unwrap();
    (lhs, rhs)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

fn check<T: GgmlType>(k: usize) {
    for m in [1, 2, 3, 4, 5, 15, 16, 17, 40, 250] {
        for n in [1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 130] {
            let (lhs, rhs) = case::<T>(m, k, n);
            let mut dst = vec![0f32; m * n];
            k_quants::matmul_exact((m, k, n), &lhs, &rhs, &mut dst).unwrap();
            let expected = reference(m, k, n, &lhs, &rhs);
            assert!(
                same_bits(&dst, &expected),
                "m={m} k={k} n={n}: the patched matmul differs"
            );
        }
    }
}

/// The AMX path (16 input rows or more where the CPU has AMX) against the exact product of the
/// inputs with the dequantized weights: each output within the error of rounding both factors
/// to bf16 (2^-8 relative each, so 2^-7 of the sum of the products' magnitudes, with room for
/// the f32 additions). Where there is no AMX, `matmul` must be `matmul_exact` bit for bit.
fn check_amx<T: GgmlType>(k: usize) {
    use candle_core::quantized::amx;
    for m in [16, 17, 31, 32, 33, 48, 250] {
        for n in [1, 15, 16, 31, 32, 33, 65, 130] {
            let (lhs, rhs) = case::<T>(m, k, n);
            let mut dst = vec![0f32; m * n];
            k_quants::matmul((m, k, n), &lhs, &rhs, &mut dst).unwrap();
            if !amx::available() {
                let mut exact = vec![0f32; m * n];
                k_quants::matmul_exact((m, k, n), &lhs, &rhs, &mut exact).unwrap();
                assert!(
                    same_bits(&dst, &exact),
                    "m={m} k={k} n={n}: not matmul_exact"
                );
                continue;
            }
            let mut w = vec![0f32; n * k];
            T::to_float(&rhs, &mut w).unwrap();
            let rounded = |v: f32| f32::from_bits((amx::bf16(v) as u32) << 16) as f64;
            for r in 0..m {
                for c in 0..n {
                    let (x, w) = (&lhs[r * k..(r + 1) * k], &w[c * k..(c + 1) * k]);
                    let products = || x.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64);
                    let exact: f64 = products().sum();
                    let magnitude: f64 = products().map(f64::abs).sum();
                    let got = dst[r * n + c] as f64;
                    assert!(
                        (got - exact).abs() <= magnitude * (1.0 / 128.0) * 1.01 + 1e-5,
                        "m={m} k={k} n={n} row {r} column {c}: {got} for {exact} (magnitude {magnitude})"
                    );
                    // The same product of the operands rounded to bf16, in f64: only the f32
                    // additions of the tile unit remain, so a wrong value anywhere shows.
                    let of_rounded: f64 = x
                        .iter()
                        .zip(w)
                        .map(|(a, b)| rounded(*a) * rounded(*b))
                        .sum();
                    assert!(
                        (got - of_rounded).abs() <= magnitude * 1e-5 + 1e-6,
                        "m={m} k={k} n={n} row {r} column {c}: {got} for {of_rounded} of bf16 operands"
                    );
                }
            }
        }
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn amx_matmul_is_within_bf16_rounding_of_the_exact_product() {
    use candle_core::quantized::amx;
    if !amx::available() {
        eprintln!("no AMX on this machine: checking that matmul is matmul_exact instead");
    }
    check_amx::<BlockQ8_0>(96);
    check_amx::<BlockQ4K>(256);
    check_amx::<BlockQ4K>(768);
    check_amx::<BlockQ6K>(768);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn bf16_rounds_to_nearest_even() {
    use candle_core::quantized::amx::bf16;
    assert_eq!(bf16(1.0), 0x3F80);
    assert_eq!(bf16(f32::from_bits(0x3F80_8000)), 0x3F80); // a tie, to the even 0x3F80
    assert_eq!(bf16(f32::from_bits(0x3F81_8000)), 0x3F82); // a tie, to the even 0x3F82
    assert_eq!(bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
    assert_eq!(bf16(-2.5), 0xC020);
    assert_eq!(bf16(f32::INFINITY), 0x7F80);
    assert_eq!(bf16(f32::MAX), 0x7F80); // rounds up to infinity, as vcvtneps2bf16 does
    assert!(f32::from_bits((bf16(f32::NAN) as u32) << 16).is_nan());
}

#[test]
fn patched_matmul_matches_upstream_bit_for_bit() {
    check::<BlockQ8_0>(96);
    check::<BlockQ8_0>(576);
    check::<BlockQ4K>(256);
    check::<BlockQ4K>(768);
    check::<BlockQ6K>(256);
    check::<BlockQ6K>(768);
}

/// Upstream's scalar `quantize_row_q8_0`, as the 34 bytes of each block (f16 scale, 32 i8).
fn upstream_q8_0_bytes(xs: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in xs.chunks(32) {
        let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|x| (x * id).round() as i8 as u8));
    }
    out
}

fn q8_0_bytes(blocks: &[BlockQ8_0]) -> Vec<u8> {
    assert_eq!(std::mem::size_of::<BlockQ8_0>(), 34);
    // SAFETY: BlockQ8_0 is repr(C), an f16 and 32 i8, with no padding (size 34).
    unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, blocks.len() * 34) }.to_vec()
}

#[test]
fn q8_0_quantization_matches_upstream_bit_for_bit() {
    // Random rows at several magnitudes, and blocks built so that scaled values land exactly on
    // halves (amax 127 gives the scale 1): f32::round takes them away from zero.
    let mut rows: Vec<Vec<f32>> = [1.0f32, 1e-3, 37.5, 6e4]
        .iter()
        .enumerate()
        .map(|(i, scale)| {
            values(32 * 64, 100 + i as u64)
                .iter()
                .map(|v| v * scale)
                .collect()
        })
        .collect();
    let mut ties = vec![0f32; 64];
    ties[0] = 127.0;
    for (i, t) in ties.iter_mut().enumerate().skip(1) {
        *t = (i as f32 - 32.0) + 0.5 * (i % 2) as f32;
    }
    ties[32] = -127.0;
    ties[33] = 0.49999997;
    ties[34] = -0.5;
    ties[35] = -0.0;
    ties[36] = 126.5;
    rows.push(ties);
    rows.push(vec![0f32; 32]);
    for row in &rows {
        let mut blocks = vec![BlockQ8_0::zeros(); row.len() / 32];
        BlockQ8_0::from_float(row, &mut blocks).unwrap();
        assert_eq!(q8_0_bytes(&blocks), upstream_q8_0_bytes(row));
    }
}

/// Upstream's scalar `BlockQ8K::from_float`, as the 292 bytes of each block (f32 scale, 256 i8,
/// 16 i16 sums). An all-zero block keeps the sums it had: zeros here, as in `BlockQ8K::zeros()`.
fn upstream_q8k_bytes(xs: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in xs.chunks(256) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &x in block {
            if amax < x.abs() {
                amax = x.abs();
                max = x;
            }
        }
        let (d, qs): (f32, Vec<i8>) = if amax == 0.0 {
            (0.0, vec![0; 256])
        } else {
            let iscale = -128f32 / max;
            let qs = block
                .iter()
                .map(|x| (iscale * x).round().min(127.) as i8)
                .collect();
            (1.0 / iscale, qs)
        };
        out.extend_from_slice(&d.to_le_bytes());
        out.extend(qs.iter().map(|&q| q as u8));
        for group in qs.chunks(16) {
            let sum: i32 = if amax == 0.0 {
                0
            } else {
                group.iter().map(|&q| q as i32).sum()
            };
            out.extend_from_slice(&(sum as i16).to_le_bytes());
        }
    }
    out
}

fn q8k_bytes(blocks: &[BlockQ8K]) -> Vec<u8> {
    assert_eq!(std::mem::size_of::<BlockQ8K>(), 292);
    // SAFETY: BlockQ8K is repr(C), an f32, 256 i8 and 16 i16, with no padding (size 292).
    unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, blocks.len() * 292) }.to_vec()
}

#[test]
fn q8k_quantization_matches_upstream_bit_for_bit() {
    // Random rows at several magnitudes; a block whose largest magnitude comes first as a
    // positive and later as a negative value (upstream keeps the first), one where the scaled
    // values land on halves and on +128 (saturated to 127), and an all-zero block.
    let mut rows: Vec<Vec<f32>> = [1.0f32, 1e-3, 37.5, 6e4]
        .iter()
        .enumerate()
        .map(|(i, scale)| {
            values(256 * 8, 200 + i as u64)
                .iter()
                .map(|v| v * scale)
                .collect()
        })
        .collect();
    let mut ties = vec![0f32; 256];
    ties[3] = 128.0;
    ties[200] = -128.0;
    for (i, t) in ties.iter_mut().enumerate().skip(4).take(150) {
        *t = (i as f32 - 80.0) / 2.0 + 0.25 * (i % 3) as f32;
    }
    ties[160] = 0.5;
    ties[161] = -0.5;
    ties[162] = 0.49999997;
    ties[163] = -0.0;
    rows.push(ties.clone());
    ties[3] = -128.0;
    ties[200] = 128.0;
    rows.push(ties);
    rows.push(vec![0f32; 256]);
    for row in &rows {
        let mut blocks = vec![BlockQ8K::zeros(); row.len() / 256];
        BlockQ8K::from_float(row, &mut blocks).unwrap();
        assert_eq!(q8k_bytes(&blocks), upstream_q8k_bytes(row));
    }
}

/// Attention as defined: for each query head and row, softmax over the keys up to its position
/// of scaled dot products, times the values; in f64. q is (heads, q_len, d), k and v are
/// (kv_heads, kv_len, d), all row-major. Returns (q_len, heads, d).
fn attention_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (heads, kv_heads, q_len, kv_len, d): (usize, usize, usize, usize, usize),
) -> Vec<f64> {
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f64; q_len * heads * d];
    for h in 0..heads {
        let g = h / (heads / kv_heads);
        for i in 0..q_len {
            let seen = kv_len - q_len + i + 1;
            let scores: Vec<f64> = (0..seen)
                .map(|j| {
                    (0..d)
                        .map(|e| {
                            q[(h * q_len + i) * d + e] as f64 * k[(g * kv_len + j) * d + e] as f64
                        })
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for e in 0..d {
                out[(i * heads + h) * d + e] = (0..seen)
                    .map(|j| weights[j] / sum * v[(g * kv_len + j) * d + e] as f64)
                    .sum();
            }
        }
    }
    out
}

#[test]
fn fused_attention_matches_its_definition_and_ignores_the_batch() {
    use candle_core::{Device, Tensor};
    for (heads, kv_heads, d) in [(9, 3, 64), (4, 4, 32), (6, 1, 128)] {
        for (q_len, kv_len) in [
            (1, 1),
            (1, 37),
            (2, 9),
            (3, 3),
            (4, 4),
            (5, 40),
            (17, 17),
            (33, 71),
        ] {
            let dims = (heads, kv_heads, q_len, kv_len, d);
            let qv = values(heads * q_len * d, (q_len * 31 + kv_len) as u64);
            // Keys and values large enough that the softmax is far from uniform.
            let kv: Vec<f32> = values(kv_heads * kv_len * d, kv_len as u64 + 5)
                .iter()
                .map(|x| x * 4.0)
                .collect();
            let vv = values(kv_heads * kv_len * d, kv_len as u64 + 9);
            let q = Tensor::from_slice(&qv, (1, heads, q_len, d), &Device::Cpu).unwrap();
            // k and v as the model has them: (1, kv_len, kv_heads, d) transposed, not contiguous.
            let strided = |x: &[f32]| {
                let mut t = vec![0f32; x.len()];
                for g in 0..kv_heads {
                    for j in 0..kv_len {
                        for e in 0..d {
                            t[(j * kv_heads + g) * d + e] = x[(g * kv_len + j) * d + e];
                        }
                    }
                }
                Tensor::from_vec(t, (1, kv_len, kv_heads, d), &Device::Cpu)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
            };
            let (k, v) = (strided(&kv), strided(&vv));
            let scale = 1.0 / (d as f32).sqrt();
            let out = kalosm_llama::causal_attention(&q, &k, &v, scale).unwrap();
            // Builds without AVX-512F or AVX2 and FMA run upstream's operations instead.
            assert_eq!(out.is_some(), kalosm_llama::CAUSAL_ATTENTION_FUSED);
            let Some(out) = out else { continue };
            assert_eq!(out.dims(), &[1, q_len, heads * d]);
            let got: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
            let expected = attention_reference(&qv, &kv, &vv, dims);
            for (at, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (*g as f64 - e).abs() <= 1e-5 * (1.0 + e.abs()),
                    "{dims:?} output {at}: {g} against {e}"
                );
            }
            // The last rows alone, their keys as a cache would hold them, give the same bits
            // (chunks of 4 rows or more take the prefill path).
            if q_len >= 8 {
                let tail = q_len / 2;
                let q_tail = q.narrow(2, q_len - tail, tail).unwrap();
                let out_tail = kalosm_llama::causal_attention(&q_tail, &k, &v, scale)
                    .unwrap()
                    .unwrap();
                let got_tail: Vec<f32> = out_tail.flatten_all().unwrap().to_vec1().unwrap();
                let whole_tail = &got[(q_len - tail) * heads * d..];
                assert!(
                    got_tail
                        .iter()
                        .zip(whole_tail)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dims:?}: the last {tail} rows differ when run alone"
                );
            }
        }
    }
}

/// The attention's vector softmax against its definition in f64: every length from 1 to 100 (whole
/// vectors of 16 and a partial one), scores spread from -100 to 100 so that some differences
/// from the maximum fall below -87 (where its `exp` stops), and a row of equal scores. Each
/// probability within 4 units in the last place of f32 (plus 1e-37 absolute, for those that
/// round to nothing).
#[test]
fn attention_softmax_matches_its_definition() {
    let mut worst = 0f64;
    for n in 1..=100usize {
        for (spread, seed) in [(1.0f32, 1u64), (8.0, 2), (100.0, 3), (0.0, 4)] {
            let scores: Vec<f32> = values(n, seed * 1000 + n as u64)
                .iter()
                .map(|x| x * spread)
                .collect();
            let mut got = scores.clone();
            let ran = kalosm_llama::causal_attention_softmax(&mut got);
            // Builds without the fused attention have none of it to check.
            assert_eq!(ran, kalosm_llama::CAUSAL_ATTENTION_FUSED);
            if !ran {
                return;
            }
            // The differences from the maximum in f32, as any f32 softmax takes them (their
            // rounding alone moves e^x by up to 2e-6 relative at x = -47); the rest in f64.
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let exps: Vec<f64> = scores.iter().map(|&x| ((x - max) as f64).exp()).collect();
            let sum: f64 = exps.iter().sum();
            for (at, (g, e)) in got.iter().zip(exps.iter().map(|x| x / sum)).enumerate() {
                let error = (*g as f64 - e).abs();
                if e > 1e-30 {
                    worst = worst.max(error / (e * f32::EPSILON as f64));
                }
                assert!(
                    error <= 4.0 * f32::EPSILON as f64 * e + 1e-37,
                    "length {n}, spread {spread}, score {at}: {g} against {e}"
                );
            }
        }
    }
    eprintln!("worst relative error above 1e-30: {worst:.2} units of f32::EPSILON");
}
