//! aidiag patch (see vendor/README.md): the quantized matmul of a prompt (many input rows) on
//! Intel AMX, the tile unit of Xeon processors since Sapphire Rapids.
//!
//! Each block of 32 weight rows is dequantized with the type's own `to_float` and rounded to
//! bf16, the input rows are rounded to bf16, and `tdpbf16ps` multiplies 16 weight rows by 16
//! input rows over 32 values per instruction, adding the products in f32. Unlike the other
//! CPU paths, which quantize the input rows to the weight type's dot-product type (8 bits per
//! value in blocks) and match upstream bit for bit, this one rounds the inputs to bf16 (8
//! significant bits per value, no shared block scale) and the weights' dequantized values to
//! bf16: its results differ from upstream's in the low bits. tests/kernel.rs bounds each output
//! against the exact product (by the two roundings) and against the product of the rounded
//! operands (by the f32 additions).
//!
//! Used only where the CPU has AMX-TILE and AMX-BF16 and Linux lets the process use the tile
//! state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), and not when `AIDIAG_AMX=off` is set.

use super::k_quants::GgmlType;
use crate::Result;
use rayon::prelude::*;
use std::arch::asm;

/// The fewest input rows for which the AMX path is taken: below, dequantizing every weight to
/// bf16 costs more than the tile unit saves (decoding, one row, keeps the vector kernels).
pub const MIN_ROWS: usize = 16;

/// Weight rows per parallel task: two tiles of 16.
const BLOCK_COLS: usize = 32;

/// Values of the shared dimension per tile instruction (64 bytes of bf16 per tile row).
const K_STEP: usize = 32;

/// True when the AMX path may run on this machine, asked once per process.
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("AIDIAG_AMX").is_ok_and(|v| v == "off" || v == "0") {
            return false;
        }
        detect()
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
        return false;
    }
    extern "C" {
        fn syscall(number: i64, ...) -> i64;
    }
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    // Safety: a plain system call; it fails (non-zero) on kernels without AMX support.
    unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// True when `matmul` can compute a product with a shared dimension of `k` values.
pub fn supports<T: GgmlType>(k: usize) -> bool {
    k > 0 && k % K_STEP == 0 && k % T::BLCK_SIZE == 0
}

/// `f32` rounded to the nearest bf16 (ties to even), as `vcvtneps2bf16` rounds; a NaN stays a
/// NaN.
pub fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1));
    (rounded >> 16) as u16
}

/// The tile configuration (palette 1): every tile used is 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// Rounds `xs` to bf16 into `out` (same length), as `bf16` does, 16 values per instruction
/// where the CPU has AVX-512 BF16.
fn to_bf16(xs: &[f32], out: &mut [u16]) {
    assert_eq!(xs.len(), out.len());
    #[cfg(all(target_feature = "avx512bf16", target_feature = "avx512f"))]
    {
        use std::arch::x86_64::*;
        let (chunks, rest) = (xs.len() / 16, xs.len() % 16);
        for i in 0..chunks {
            // Safety: 16 values in and out at offset 16 i, within both slices; the CPU has the
            // features (compile-time target features).
            unsafe {
                let v = _mm512_loadu_ps(xs.as_ptr().add(16 * i));
                let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(out.as_mut_ptr().add(16 * i) as *mut __m256i, b);
            }
        }
        let done = xs.len() - rest;
        for (o, x) in out[done..].iter_mut().zip(&xs[done..]) {
            *o = bf16(*x);
        }
    }
    #[cfg(not(all(target_feature = "avx512bf16", target_feature = "avx512f")))]
    for (o, x) in out.iter_mut().zip(xs) {
        *o = bf16(*x);
    }
}

/// A Q4_K weight row straight into the tile layout (`matmul`'s `weights`, the row's 32-value
/// runs at `(step * 2 + tile) * 512 + at`), each value `d * scale * q - dmin * min` computed
/// as upstream's `to_float` computes it (a multiply, then a subtraction), 16 per instruction,
/// then rounded to bf16. False (nothing written) for other weight types, or without AVX-512
/// BF16, where the caller dequantizes with `to_float`.
fn weight_row_q4k<T: GgmlType>(xs: &[T], weights: &mut [u16], tile: usize, at: usize) -> bool {
    #[cfg(all(target_feature = "avx512bf16", target_feature = "avx512f"))]
    if T::DTYPE == super::GgmlDType::Q4K {
        use super::k_quants::{BlockQ4K, QK_K};
        use super::utils::get_scale_min_k4;
        use std::arch::x86_64::*;
        // Safety: `T` is `BlockQ4K` (its DTYPE).
        let xs = unsafe { std::slice::from_raw_parts(xs.as_ptr() as *const BlockQ4K, xs.len()) };
        assert!(weights.len() >= (xs.len() * QK_K / K_STEP * 2) * 512);
        assert!(tile < 2 && at + K_STEP <= 512);
        for (b, x) in xs.iter().enumerate() {
            let (d, min) = (x.d.to_f32(), x.dmin.to_f32());
            for j in 0..QK_K / 64 {
                // Safety: 32 bytes at 32 j of the 128 of `qs`; each store writes 16 values at
                // `(step * 2 + tile) * 512 + at + 16 h`, within `weights` (asserted above).
                unsafe {
                    let bits = _mm256_loadu_si256(x.qs.as_ptr().add(32 * j) as *const __m256i);
                    let m4 = _mm256_set1_epi8(0xF);
                    let low = _mm256_and_si256(bits, m4);
                    let high = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                    for (g, q) in [(2 * j, low), (2 * j + 1, high)] {
                        let (scale, m) = get_scale_min_k4(g, &x.scales);
                        let d = _mm512_set1_ps(d * scale as f32);
                        let m = _mm512_set1_ps(min * m as f32);
                        let step = b * (QK_K / K_STEP) + g;
                        let out = weights.as_mut_ptr().add((step * 2 + tile) * 512 + at);
                        let halves = [_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)];
                        for (h, q) in halves.into_iter().enumerate() {
                            let q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q));
                            let v = _mm512_sub_ps(_mm512_mul_ps(d, q), m);
                            let v: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                            _mm256_storeu_si256(out.add(16 * h) as *mut __m256i, v);
                        }
                    }
                }
            }
        }
        return true;
    }
    let _ = (xs, weights, tile, at);
    false
}

thread_local! {
    /// Per worker thread: one block of weight rows in tile layout, the f32 row being
    /// dequantized, and the block's outputs; reused from one block to the next.
    static BUFFERS: std::cell::RefCell<(Vec<u16>, Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// `dst` (`m` rows of `n`) = `lhs` (`m` rows of `k`) times the transpose of `rhs` (`n` rows of
/// `k` values, quantized), on the tile unit. The caller checks `available()` and
/// `supports::<T>(k)`.
///
/// The weights are the first operand of `tdpbf16ps` (16 weight rows of 32 values per tile),
/// the input rows the second (for 16 input rows, 16 tile rows of pairs: tile row p holds
/// values 2p and 2p + 1 of each input row), so a weight row is dequantized and rounded into
/// 64-byte runs, and only the input rows, far fewer values, are interleaved.
pub fn matmul<T: GgmlType>(
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    rhs: &[T],
    dst: &mut [f32],
) -> Result<()> {
    assert!(available() && supports::<T>(k));
    if lhs.len() != m * k || rhs.len() != n * (k / T::BLCK_SIZE) || dst.len() != m * n {
        crate::bail!("amx matmul: unexpected lengths for {:?}", (m, k, n));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let steps = k / K_STEP;
    // Input rows padded with zero rows to whole tiles of 16.
    let row_tiles = m.div_ceil(16);
    let padded = row_tiles * 16;
    let mut inputs = vec![0u32; row_tiles * steps * 256];
    inputs
        .par_chunks_mut(steps * 256)
        .enumerate()
        .for_each(|(tile, out)| {
            let mut rounded = vec![0u16; k];
            for i in 0..16.min(m - tile * 16) {
                let row = tile * 16 + i;
                to_bf16(&lhs[row * k..(row + 1) * k], &mut rounded);
                for (step, values) in rounded.chunks_exact(K_STEP).enumerate() {
                    for (p, pair) in values.chunks_exact(2).enumerate() {
                        out[step * 256 + p * 16 + i] = pair[0] as u32 | (pair[1] as u32) << 16;
                    }
                }
            }
        });
    let row_blocks = k / T::BLCK_SIZE;
    let blocks: Vec<Vec<f32>> = (0..n.div_ceil(BLOCK_COLS))
        .into_par_iter()
        .map(|block| -> Result<Vec<f32>> {
            let first = block * BLOCK_COLS;
            let width = BLOCK_COLS.min(n - first);
            BUFFERS.with(|buffers| {
                let (weights, row, out) = &mut *buffers.borrow_mut();
                // For each step, two tiles of 16 weight rows of 32 values; rows past `n` zero.
                weights.resize(steps * 2 * 512, 0);
                row.resize(k, 0.0);
                out.resize(BLOCK_COLS * padded, 0.0);
                for j in 0..BLOCK_COLS {
                    let (tile, at) = (j / 16, (j % 16) * K_STEP);
                    if j < width {
                        let c = first + j;
                        let xs = &rhs[c * row_blocks..(c + 1) * row_blocks];
                        if weight_row_q4k(xs, weights, tile, at) {
                            continue;
                        }
                        T::to_float(xs, row)?;
                    } else {
                        row.fill(0.0);
                    }
                    for (step, values) in row.chunks_exact(K_STEP).enumerate() {
                        let start = (step * 2 + tile) * 512 + at;
                        to_bf16(values, &mut weights[start..start + K_STEP]);
                    }
                }
                // Safety: `available()` holds (the caller's contract); `weights` holds `steps`
                // steps of two 1 KB tiles, `inputs` `row_tiles` tiles of `steps` steps of 1 KB,
                // `out` 32 rows of `padded` values.
                unsafe { tiles(weights, &inputs, steps, row_tiles, out) };
                // `out` holds the block's outputs by weight row; `dst` wants them by input row.
                let mut kept = vec![0f32; m * width];
                for (j, outputs) in out.chunks_exact(padded).take(width).enumerate() {
                    for (r, value) in outputs[..m].iter().enumerate() {
                        kept[r * width + j] = *value;
                    }
                }
                Ok(kept)
            })
        })
        .collect::<Result<_>>()?;
    for (block, out) in blocks.iter().enumerate() {
        let first = block * BLOCK_COLS;
        let width = out.len() / m;
        for r in 0..m {
            dst[r * n + first..r * n + first + width]
                .copy_from_slice(&out[r * width..(r + 1) * width]);
        }
    }
    Ok(())
}

/// The products of one block of 32 weight rows with every input row: tiles 0-3 accumulate 32
/// weight rows by 32 input rows, 4-5 hold 16 weight rows each, 6-7 16 input rows each.
///
/// Safety: AMX is usable (`available()`); `weights` holds `steps` steps of two tiles (16 rows
/// of 32 bf16 each), `inputs` `row_tiles` tiles of `steps` steps (16 rows of 16 pairs each), and
/// `out` 32 rows of `16 * row_tiles` values.
unsafe fn tiles(weights: &[u16], inputs: &[u32], steps: usize, row_tiles: usize, out: &mut [f32]) {
    let padded = row_tiles * 16;
    assert!(weights.len() >= steps * 1024 && inputs.len() >= row_tiles * steps * 256);
    assert!(out.len() >= BLOCK_COLS * padded);
    let mut config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    for t in 0..8 {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    asm!("ldtilecfg [{}]", in(reg) &config as *const TileConfig, options(nostack, readonly));
    let out_stride = padded * 4;
    let mut t = 0;
    while t < row_tiles {
        let pair = t + 1 < row_tiles;
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for step in 0..steps {
            let w = weights.as_ptr().add(step * 1024);
            let x = inputs.as_ptr().add((t * steps + step) * 256);
            asm!(
                "tileloadd tmm4, [{w} + {s}*1]",
                "tileloadd tmm5, [{w2} + {s}*1]",
                "tileloadd tmm6, [{x} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm5, tmm6",
                w = in(reg) w,
                w2 = in(reg) w.add(512),
                x = in(reg) x,
                s = in(reg) 64usize,
                options(nostack, readonly)
            );
            if pair {
                asm!(
                    "tileloadd tmm7, [{x} + {s}*1]",
                    "tdpbf16ps tmm2, tmm4, tmm7",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    x = in(reg) x.add(steps * 256),
                    s = in(reg) 64usize,
                    options(nostack, readonly)
                );
            }
        }
        // Tile (h, t): weight rows 16 h.., input rows 16 t.., at out[16 h][16 t].
        let o = out.as_mut_ptr().add(t * 16);
        asm!(
            "tilestored [{o} + {s}*1], tmm0",
            "tilestored [{o2} + {s}*1], tmm1",
            o = in(reg) o,
            o2 = in(reg) o.add(16 * padded),
            s = in(reg) out_stride,
            options(nostack)
        );
        if pair {
            let o = o.add(16);
            asm!(
                "tilestored [{o} + {s}*1], tmm2",
                "tilestored [{o2} + {s}*1], tmm3",
                o = in(reg) o,
                o2 = in(reg) o.add(16 * padded),
                s = in(reg) out_stride,
                options(nostack)
            );
        }
        t += if pair { 2 } else { 1 };
    }
    asm!("tilerelease", options(nostack, nomem));
}
