use super::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ5K, BlockQ6K, BlockQ8K, BlockQ8_0, QK8_0, QK_K,
};
use crate::Result;
use byteorder::{ByteOrder, LittleEndian};
use half::f16;

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

#[inline(always)]
pub(crate) unsafe fn sum_i16_pairs_float(x: __m256i) -> __m256 {
    let ones = _mm256_set1_epi16(1);
    let summed_pairs = _mm256_madd_epi16(ones, x);
    _mm256_cvtepi32_ps(summed_pairs)
}

#[inline(always)]
pub(crate) unsafe fn mul_sum_us8_pairs_float(ax: __m256i, sy: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(ax, sy);
    sum_i16_pairs_float(dot)
}

#[inline(always)]
pub(crate) unsafe fn hsum_float_8(x: __m256) -> f32 {
    let res = _mm256_extractf128_ps(x, 1);
    let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    let res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

#[inline(always)]
pub(crate) unsafe fn bytes_from_nibbles_32(rsi: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(rsi as *const __m128i);
    let bytes = _mm256_insertf128_si256::<1>(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4));
    let low_mask = _mm256_set1_epi8(0xF);
    _mm256_and_si256(low_mask, bytes)
}

#[inline(always)]
pub(crate) unsafe fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs_float(ax, sy)
}

#[inline(always)]
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, xs: &[BlockQ4_0], ys: &[BlockQ8_0]) -> Result<f32> {
    let qk = QK8_0;
    if n % QK8_0 != 0 {
        crate::bail!("vec_dot_q4_0_q8_0: {n} is not divisible by {qk}")
    }
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d));
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            let off = _mm256_set1_epi8(8);
            let bx = _mm256_sub_epi8(bx, off);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_i8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        Ok(hsum_float_8(acc))
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, xs: &[BlockQ8_0], ys: &[BlockQ8_0]) -> Result<f32> {
    let qk = QK8_0;
    if n % QK8_0 != 0 {
        crate::bail!("vec_dot_q8_0_q8_0: {n} is not divisible by {qk}")
    }
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d));
            let bx = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_i8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        Ok(hsum_float_8(acc))
    }
}

/// aidiag patch (see vendor/README.md): the four-byte dot products of one 32-byte block, as
/// eight i32 lanes, lane i being the sum of bytes 4i..4i+3 of `ax * sy` (`ax` unsigned, `sy`
/// signed). With AVX-512 VNNI one `vpdpbusd`; otherwise upstream's `maddubs` + `madd`. The two
/// agree exactly whenever `maddubs` does not saturate, which holds for Q8_0 activations: they are
/// quantized to [-127, 127] and `ax` is at most 128, so a pair sums to at most 32512.
#[inline(always)]
unsafe fn dot_i8_lanes(ax: __m256i, sy: __m256i) -> __m256i {
    #[cfg(all(target_feature = "avx512vnni", target_feature = "avx512vl"))]
    {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)
    }
    #[cfg(not(all(target_feature = "avx512vnni", target_feature = "avx512vl")))]
    {
        _mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_maddubs_epi16(ax, sy))
    }
}

/// aidiag patch (see vendor/README.md): `vec_dot_q8_0_q8_0` of `R` activation rows `ys` with `C`
/// weight rows `xs` at once: `out[r][c]` is bit-for-bit `vec_dot_q8_0_q8_0(n, xs[c], ys[r])`.
/// Each (r, c) keeps its own accumulator, updated block by block with the same operations in the
/// same order as upstream (the i32 lanes, their conversion, the fmadd with the f32 product of
/// the two scales) and summed by the same `hsum_float_8`. What changes is that a weight block
/// is loaded, made absolute and its scale converted once for `R` rows, and an activation block
/// once for `C` weight rows, so the loads and conversions per multiply-add drop by R and C. The
/// R x C products of the scales are computed together once per block and stored, so each
/// fmadd takes its product with a broadcast load (with AVX-512VL, folded into the fmadd)
/// instead of a scalar multiply and a register broadcast of its own.
///
/// Safety: every row of `xs` and `ys` must hold at least `xs[0].len()` blocks; the activation
/// rows must come from `BlockQ8_0::from_float` (values in [-127, 127], see `dot_i8_lanes`).
#[inline(always)]
pub(crate) unsafe fn vec_dot_q8_0_q8_0_tile<const R: usize, const C: usize>(
    xs: [&[BlockQ8_0]; C],
    ys: [&[BlockQ8_0]; R],
) -> [[f32; C]; R] {
    let blocks = xs[0].len();
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut d = [[0f32; C]; R];
    for b in 0..blocks {
        let mut bx = [_mm256_setzero_si256(); C];
        let mut ax = [_mm256_setzero_si256(); C];
        let mut dx = [0f32; C];
        for c in 0..C {
            let x = xs[c].get_unchecked(b);
            bx[c] = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            ax[c] = _mm256_sign_epi8(bx[c], bx[c]);
            dx[c] = f16::to_f32(x.d);
        }
        for r in 0..R {
            let dy = f16::to_f32(ys[r].get_unchecked(b).d);
            for c in 0..C {
                d[r][c] = dx[c] * dy;
            }
        }
        // Kept in memory: otherwise the compiler takes each product out of a register again
        // with a shuffle, which is what this saves.
        let d = std::hint::black_box(&d);
        for r in 0..R {
            let y = ys[r].get_unchecked(b);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            for c in 0..C {
                let sy = _mm256_sign_epi8(by, bx[c]);
                let q = _mm256_cvtepi32_ps(dot_i8_lanes(ax[c], sy));
                acc[r][c] = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[r][c]), q, acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = hsum_float_8(acc[r][c]);
        }
    }
    out
}

/// aidiag patch (see vendor/README.md): `acc + madd(a, b)`, the i16 pair products of `a` and `b`
/// summed into i32 lanes and added to `acc`, for the 32-byte paths of the K-quant tiles:
/// upstream's `madd` + `add`.
#[inline(always)]
unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

/// aidiag patch (see vendor/README.md): the 6-bit scales and mins of a Q4_K block, as upstream's
/// `vec_dot_q4k_q8k` unpacks them: bytes 0..8 the scales, 8..16 the mins.
#[inline(always)]
fn q4k_scales_and_mins(x: &BlockQ4K) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;
    let mut utmp = [0u32; 4];
    LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);
    utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
    let uaux = utmp[1] & KMASK1;
    utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
    utmp[2] = uaux;
    utmp[0] &= KMASK1;
    utmp
}

/// aidiag patch (see vendor/README.md): what the Q4_K tile reads of a weight block besides its
/// 4-bit values: the unpacked scales and mins (`q4k_scales_and_mins`) and the two f16 factors as
/// f32. The matmul computes it once per block for all the tiles of rows that read the block.
#[derive(Clone, Copy)]
pub(crate) struct Q4KPrepared {
    utmp: [u32; 4],
    d: f32,
    dmin: f32,
}

pub(crate) fn prepare_q4k(x: &BlockQ4K) -> Q4KPrepared {
    Q4KPrepared {
        utmp: q4k_scales_and_mins(x),
        d: x.d.to_f32(),
        dmin: x.dmin.to_f32(),
    }
}

/// aidiag patch (see vendor/README.md): `vec_dot_q4k_q8k` of `R` activation rows `ys` with `C`
/// weight rows `xs` at once: `out[r][c]` is bit-for-bit `vec_dot_q4k_q8k(n, xs[c], ys[r])`.
/// Each (r, c) keeps upstream's two accumulators (the eight f32 lanes of the scaled sums and the
/// four of the mins), updated block by block with the same f32 operations in the same order and
/// summed the same way at the end. The i32 lanes of a block's sum are the same integers: lane i
/// is the sum over the block's 32-value groups of the group's scale times its bytes 4i..4i+3
/// of `q4 * q8`, here accumulated with `vpdpwssd` where the CPU has it (integer sums, so the
/// order does not matter). What changes is that a weight block's nibbles, scales and mins are
/// unpacked once for `R` rows and an activation block is loaded once for `C` weight rows.
///
/// Safety: every row of `xs`, `ps` and `ys` must hold at least `xs[0].len()` blocks, and `ps[c]`
/// must be `prepare_q4k` of the blocks of `xs[c]`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q4k_q8k_tile<const R: usize, const C: usize>(
    xs: [&[BlockQ4K]; C],
    ps: [&[Q4KPrepared]; C],
    ys: [&[BlockQ8K]; R],
) -> [[f32; C]; R] {
    #[cfg(all(target_feature = "avx512bw", target_feature = "avx512vnni"))]
    if C % 2 == 0 {
        return q4k_tile_pairs(xs, ps, ys);
    }
    let blocks = xs[0].len();
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut acc_m = [[_mm_setzero_ps(); C]; R];
    for b in 0..blocks {
        // The weight blocks' scales (bytes 0..8 of `bytes`) and mins (8..16).
        let mut bytes = [[0u8; 16]; C];
        let mut mins = [_mm_setzero_si128(); C];
        let mut dx = [0f32; C];
        let mut dminx = [0f32; C];
        for c in 0..C {
            let x = ps[c].get_unchecked(b);
            let utmp = x.utmp;
            bytes[c] = std::mem::transmute::<[u32; 4], [u8; 16]>(utmp);
            mins[c] = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, utmp[3] as i32, utmp[2] as i32));
            dx[c] = x.d;
            dminx[c] = x.dmin;
        }
        for r in 0..R {
            let y = ys[r].get_unchecked(b);
            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            for c in 0..C {
                let dmin = -y.d * dminx[c];
                let prod = _mm_madd_epi16(mins[c], q8s);
                acc_m[r][c] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[r][c]);
            }
        }
        let sumi = q4k_sums(xs, ys, b, &bytes);
        for r in 0..R {
            let yd = ys[r].get_unchecked(b).d;
            for c in 0..C {
                let d = yd * dx[c];
                acc[r][c] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[r][c]), acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let m = acc_m[r][c];
            let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[r][c] = hsum_float_8(acc[r][c]) + _mm_cvtss_f32(m);
        }
    }
    out
}

/// aidiag patch (see vendor/README.md): `vec_dot_q4k_q8k_tile` for an even number of weight rows
/// with AVX-512: the f32 work of each block done for two weight rows per instruction. Weight rows
/// 2p and 2p + 1 share one 16-lane accumulator per activation row (lanes 0..8 the first's eight
/// lanes, 8..16 the second's) and one 8-lane accumulator of the mins (4 + 4), each lane updated
/// with the same f32 multiply and fused multiply-add as upstream's lane (the products of the
/// scales are lane-wise products of the same two numbers), and each half reduced at the end as
/// upstream reduces its accumulator. Outputs stay bit-for-bit upstream's `vec_dot_q4k_q8k`.
#[cfg(all(target_feature = "avx512bw", target_feature = "avx512vnni"))]
#[inline(always)]
unsafe fn q4k_tile_pairs<const R: usize, const C: usize>(
    xs: [&[BlockQ4K]; C],
    ps: [&[Q4KPrepared]; C],
    ys: [&[BlockQ8K]; R],
) -> [[f32; C]; R] {
    let blocks = xs[0].len();
    let m4 = _mm512_set1_epi8(0xF);
    // Index vectors for `vpermw`: vector j takes scale 2j into the low 16 lanes, 2j + 1 into the
    // high 16.
    let pick =
        |j: i16| _mm512_inserti64x4(_mm512_set1_epi16(2 * j), _mm256_set1_epi16(2 * j + 1), 1);
    let picks = [pick(0), pick(1), pick(2), pick(3)];
    // Only the first C / 2 of each row are used (C / 2 is not a const expression).
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut acc_m = [[_mm256_setzero_ps(); C]; R];
    for b in 0..blocks {
        let mut scales = [[_mm512_setzero_si512(); QK_K / 64]; C];
        let mut mins = [_mm_setzero_si128(); C];
        let mut dx = [0f32; C];
        let mut dminx = [0f32; C];
        for c in 0..C {
            let x = ps[c].get_unchecked(b);
            let utmp = x.utmp;
            let sc = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, utmp[1] as i32, utmp[0] as i32));
            for (j, scale) in scales[c].iter_mut().enumerate() {
                *scale = _mm512_permutexvar_epi16(picks[j], _mm512_castsi128_si512(sc));
            }
            mins[c] = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, utmp[3] as i32, utmp[2] as i32));
            dx[c] = x.d;
            dminx[c] = x.dmin;
        }
        // Kept in memory and read by the multiply-adds as operands: registers hold the sums.
        let scales = std::hint::black_box(&scales);
        let mut dxs = [_mm512_setzero_ps(); C];
        let mut dmins = [_mm256_setzero_ps(); C];
        let mut pair_mins = [_mm256_setzero_si256(); C];
        for p in 0..C / 2 {
            let (c0, c1) = (2 * p, 2 * p + 1);
            dxs[p] = _mm512_insertf32x8(_mm512_set1_ps(dx[c0]), _mm256_set1_ps(dx[c1]), 1);
            dmins[p] = _mm256_insertf128_ps(_mm256_set1_ps(dminx[c0]), _mm_set1_ps(dminx[c1]), 1);
            pair_mins[p] = mm256_set_m128i(mins[c1], mins[c0]);
        }
        for r in 0..R {
            let y = ys[r].get_unchecked(b);
            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let q8s = mm256_set_m128i(q8s, q8s);
            let minus_yd = _mm256_set1_ps(-y.d);
            for p in 0..C / 2 {
                let dmin = _mm256_mul_ps(minus_yd, dmins[p]);
                let prod = _mm256_madd_epi16(pair_mins[p], q8s);
                acc_m[r][p] = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(prod), acc_m[r][p]);
            }
        }
        let mut sumi = [[_mm512_setzero_si512(); C]; R];
        for j in 0..QK_K / 64 {
            let mut q4 = [_mm512_setzero_si512(); C];
            for c in 0..C {
                let x = xs[c].get_unchecked(b);
                let bits = _mm256_loadu_si256(x.qs.as_ptr().add(32 * j) as *const __m256i);
                let both =
                    _mm512_inserti64x4(_mm512_castsi256_si512(bits), _mm256_srli_epi16(bits, 4), 1);
                q4[c] = _mm512_and_si512(both, m4);
            }
            for r in 0..R {
                let y = ys[r].get_unchecked(b);
                let q8 = _mm512_loadu_si512(y.qs.as_ptr().add(64 * j) as *const __m512i);
                for c in 0..C {
                    let p16 = _mm512_maddubs_epi16(q4[c], q8);
                    sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], scales[c][j], p16);
                }
            }
        }
        for r in 0..R {
            let yd = _mm512_set1_ps(ys[r].get_unchecked(b).d);
            for p in 0..C / 2 {
                let (s0, s1) = (sumi[r][2 * p], sumi[r][2 * p + 1]);
                // [low half of s0 | low half of s1] + [high half of s0 | high half of s1].
                let low = _mm512_inserti64x4(s0, _mm512_castsi512_si256(s1), 1);
                let high = _mm512_shuffle_i64x2(s0, s1, 0xEE);
                let sum = _mm512_add_epi32(low, high);
                let d = _mm512_mul_ps(yd, dxs[p]);
                acc[r][p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sum), acc[r][p]);
            }
        }
    }
    let hsum_4 = |m: __m128| {
        let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
        _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)))
    };
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for p in 0..C / 2 {
            let (a, m) = (acc[r][p], acc_m[r][p]);
            out[r][2 * p] =
                hsum_float_8(_mm512_castps512_ps256(a)) + hsum_4(_mm256_castps256_ps128(m));
            out[r][2 * p + 1] =
                hsum_float_8(_mm512_extractf32x8_ps(a, 1)) + hsum_4(_mm256_extractf128_ps(m, 1));
        }
    }
    out
}

/// aidiag patch (see vendor/README.md): the i32 lanes of block `b` of `vec_dot_q4k_q8k` for each
/// (activation row, weight row): lane i is the sum over the eight 32-value groups of the group's
/// scale (`bytes[c][group]`) times bytes 4i..4i+3 of `q4 * q8`, as upstream's `maddubs` and
/// `madd` compute it, one group per 32-byte instruction. (With AVX-512 BW and VNNI an even number
/// of weight rows goes through `q4k_tile_pairs` instead; an odd number, only the last columns
/// of a matrix whose width is not a multiple of four, comes here.)
#[inline(always)]
unsafe fn q4k_sums<const R: usize, const C: usize>(
    xs: [&[BlockQ4K]; C],
    ys: [&[BlockQ8K]; R],
    b: usize,
    bytes: &[[u8; 16]; C],
) -> [[__m256i; C]; R] {
    let m4 = _mm256_set1_epi8(0xF);
    let mut scales = [[_mm256_setzero_si256(); QK_K / 32]; C];
    for c in 0..C {
        for (g, scale) in scales[c].iter_mut().enumerate() {
            *scale = _mm256_set1_epi16(bytes[c][g] as i16);
        }
    }
    // Kept in memory and read by the multiply-adds as operands: registers hold the sums.
    let scales = std::hint::black_box(&scales);
    let mut sumi = [[_mm256_setzero_si256(); C]; R];
    for j in 0..QK_K / 64 {
        let mut q4l = [_mm256_setzero_si256(); C];
        let mut q4h = [_mm256_setzero_si256(); C];
        for c in 0..C {
            let x = xs[c].get_unchecked(b);
            let bits = _mm256_loadu_si256(x.qs.as_ptr().add(32 * j) as *const __m256i);
            q4l[c] = _mm256_and_si256(bits, m4);
            q4h[c] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        }
        for r in 0..R {
            let y = ys[r].get_unchecked(b);
            let q8l = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j) as *const __m256i);
            let q8h = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j + 32) as *const __m256i);
            for c in 0..C {
                let l = _mm256_maddubs_epi16(q4l[c], q8l);
                let s = madd_acc(sumi[r][c], scales[c][2 * j], l);
                let h = _mm256_maddubs_epi16(q4h[c], q8h);
                sumi[r][c] = madd_acc(s, scales[c][2 * j + 1], h);
            }
        }
    }
    sumi
}

/// aidiag patch (see vendor/README.md): `vec_dot_q6k_q8k` of `R` activation rows `ys` with `C`
/// weight rows `xs` at once: `out[r][c]` is bit-for-bit `vec_dot_q6k_q8k(n, xs[c], ys[r])`, in
/// the manner of `vec_dot_q4k_q8k_tile`: the same f32 accumulator per (r, c), the same i32 lanes
/// per block (integer sums, order free), a weight block's 6-bit values and scales unpacked once
/// for `R` rows and an activation block's values and offsets (`32 * q8`) once for `C` weight
/// rows.
///
/// Safety: every row of `xs` and `ys` must hold at least `xs[0].len()` blocks.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q6k_q8k_tile<const R: usize, const C: usize>(
    xs: [&[BlockQ6K]; C],
    ys: [&[BlockQ8K]; R],
) -> [[f32; C]; R] {
    #[cfg(all(target_feature = "avx512bw", target_feature = "avx512vnni"))]
    if C % 2 == 0 {
        return q6k_tile_pairs(xs, ys);
    }
    let blocks = xs[0].len();
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    for b in 0..blocks {
        let mut dx = [0f32; C];
        for c in 0..C {
            dx[c] = xs[c].get_unchecked(b).d.to_f32();
        }
        let sumi = q6k_sums(xs, ys, b);
        for r in 0..R {
            let yd = ys[r].get_unchecked(b).d;
            for c in 0..C {
                let d = yd * dx[c];
                acc[r][c] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[r][c]), acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = hsum_float_8(acc[r][c]);
        }
    }
    out
}

#[inline(always)]
unsafe fn get_scale_shuffle(i: usize) -> __m128i {
    const K_SHUFFLE: [u8; 128] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7,
        7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10,
        11, 11, 11, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13,
        13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15,
    ];
    _mm_loadu_si128((K_SHUFFLE.as_ptr() as *const __m128i).add(i))
}

#[inline(always)]
unsafe fn get_scale_shuffle_k4(i: usize) -> __m256i {
    const K_SHUFFLE: [u8; 256] = [
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
        0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        2, 3, 2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5,
        4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
        6, 7, 6, 7, 6, 7, 6, 7, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9,
        8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10,
        11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 12, 13, 12, 13, 12, 13,
        12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12,
        13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
        14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
    ];
    _mm256_loadu_si256((K_SHUFFLE.as_ptr() as *const __m256i).add(i))
}

#[inline(always)]
unsafe fn get_scale_shuffle_q3k(i: usize) -> __m256i {
    const K_SHUFFLE: [u8; 128] = [
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
        6, 7, 6, 7, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11,
        10, 11, 10, 11, 10, 11, 10, 11, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12,
        13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
    ];
    _mm256_loadu_si256((K_SHUFFLE.as_ptr() as *const __m256i).add(i))
}

#[inline(always)]
pub(crate) fn vec_dot_q6k_q8k(n: usize, xs: &[BlockQ6K], ys: &[BlockQ8K]) -> Result<f32> {
    let qk = QK_K;
    if n % qk != 0 {
        crate::bail!("vec_dot_q6k_8k: {n} is not divisible by {qk}")
    }

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let m2 = _mm256_set1_epi8(3);
        let m32s = _mm256_set1_epi8(32);
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();
            let mut q4 = x.ql.as_ptr();
            let mut qh = x.qh.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 128 {
                let is = j * 4;
                let scale_0 = _mm_shuffle_epi8(scales, get_scale_shuffle(is));
                let scale_1 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 1));
                let scale_2 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 2));
                let scale_3 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 3));

                let q4bits1 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits2 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits_h = _mm256_loadu_si256(qh as *const __m256i);
                qh = qh.add(32);

                let q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m2), 4);
                let q4h_1 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 2), m2), 4);
                let q4h_2 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 4), m2), 4);
                let q4h_3 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 6), m2), 4);

                let q4_0 = _mm256_or_si256(_mm256_and_si256(q4bits1, m4), q4h_0);
                let q4_1 = _mm256_or_si256(_mm256_and_si256(q4bits2, m4), q4h_1);
                let q4_2 =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), q4h_2);
                let q4_3 =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), q4h_3);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let q8s_0 = _mm256_maddubs_epi16(m32s, q8_0);
                let q8s_1 = _mm256_maddubs_epi16(m32s, q8_1);
                let q8s_2 = _mm256_maddubs_epi16(m32s, q8_2);
                let q8s_3 = _mm256_maddubs_epi16(m32s, q8_3);

                let p16_0 = _mm256_maddubs_epi16(q4_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q4_1, q8_1);
                let p16_2 = _mm256_maddubs_epi16(q4_2, q8_2);
                let p16_3 = _mm256_maddubs_epi16(q4_3, q8_3);

                let p16_0 = _mm256_sub_epi16(p16_0, q8s_0);
                let p16_1 = _mm256_sub_epi16(p16_1, q8s_1);
                let p16_2 = _mm256_sub_epi16(p16_2, q8s_2);
                let p16_3 = _mm256_sub_epi16(p16_3, q8s_3);

                let p16_0 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_0), p16_0);
                let p16_1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_1), p16_1);
                let p16_2 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_2), p16_2);
                let p16_3 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_3), p16_3);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_2, p16_3));
            }
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }
        Ok(hsum_float_8(acc))
    }
}

#[inline(always)]
unsafe fn mm256_set_m128i(a: __m128i, b: __m128i) -> __m256i {
    _mm256_insertf128_si256(_mm256_castsi128_si256(b), a, 1)
}

#[inline(always)]
pub(crate) fn vec_dot_q2k_q8k(n: usize, xs: &[BlockQ2K], ys: &[BlockQ8K]) -> Result<f32> {
    if n % QK_K != 0 {
        crate::bail!("vec_dot_q2k_q8k: {n} is not divisible by {QK_K}")
    }

    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let m4 = _mm_set1_epi8(0xF);

        let mut acc = _mm256_setzero_ps();

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();
            let dmin = -y.d * x.dmin.to_f32();

            let mut q2 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let scales8 = _mm_and_si128(mins_and_scales, m4);
            let mins8 = _mm_and_si128(_mm_srli_epi16(mins_and_scales, 4), m4);
            let mins = _mm256_cvtepi8_epi16(mins8);
            let prod =
                _mm256_madd_epi16(mins, _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i));

            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&dmin), _mm256_cvtepi32_ps(prod), acc);

            let all_scales = _mm256_cvtepi8_epi16(scales8);
            let l_scales = _mm256_extracti128_si256(all_scales, 0);
            let h_scales = _mm256_extracti128_si256(all_scales, 1);
            let scales = [
                mm256_set_m128i(l_scales, l_scales),
                mm256_set_m128i(h_scales, h_scales),
            ];

            let mut sumi = _mm256_setzero_si256();

            for scale in scales {
                let q2bits = _mm256_loadu_si256(q2 as *const __m256i);
                q2 = q2.add(32);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let q2_0 = _mm256_and_si256(q2bits, m3);
                let q2_1 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 2), m3);
                let q2_2 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 4), m3);
                let q2_3 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 6), m3);

                let p0 = _mm256_maddubs_epi16(q2_0, q8_0);
                let p1 = _mm256_maddubs_epi16(q2_1, q8_1);
                let p2 = _mm256_maddubs_epi16(q2_2, q8_2);
                let p3 = _mm256_maddubs_epi16(q2_3, q8_3);

                let p0 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(0)), p0);
                let p1 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(1)), p1);
                let p2 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(2)), p2);
                let p3 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(3)), p3);

                let p0 = _mm256_add_epi32(p0, p1);
                let p2 = _mm256_add_epi32(p2, p3);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p2));
            }
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }

        Ok(hsum_float_8(acc))
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q3k_q8k(n: usize, xs: &[BlockQ3K], ys: &[BlockQ8K]) -> Result<f32> {
    if n % QK_K != 0 {
        crate::bail!("vec_dot_q3k_q8k: {n} is not divisible by {QK_K}")
    }

    const KMASK1: u32 = 0x03030303;
    const KMASK2: u32 = 0x0f0f0f0f;

    let mut aux = [0u32; 3];

    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let mone = _mm256_set1_epi8(1);
        let m32 = _mm_set1_epi8(32);

        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();

            let mut q3 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            LittleEndian::read_u32_into(&x.scales, &mut aux);
            let scales128 = _mm_set_epi32(
                (((aux[1] >> 4) & KMASK2) | (((aux[2] >> 6) & KMASK1) << 4)) as i32,
                (((aux[0] >> 4) & KMASK2) | (((aux[2] >> 4) & KMASK1) << 4)) as i32,
                ((aux[1] & KMASK2) | (((aux[2] >> 2) & KMASK1) << 4)) as i32,
                ((aux[0] & KMASK2) | (((aux[2]) & KMASK1) << 4)) as i32,
            );
            let scales128 = _mm_sub_epi8(scales128, m32);
            let all_scales = _mm256_cvtepi8_epi16(scales128);
            let l_scales = _mm256_extracti128_si256(all_scales, 0);
            let h_scales = _mm256_extracti128_si256(all_scales, 1);
            let scales = [
                mm256_set_m128i(l_scales, l_scales),
                mm256_set_m128i(h_scales, h_scales),
            ];

            // high bit
            let hbits = _mm256_loadu_si256(x.hmask.as_ptr() as *const __m256i);

            let mut sumi = _mm256_setzero_si256();

            for (j, scale) in scales.iter().enumerate() {
                // load low 2 bits
                let q3bits = _mm256_loadu_si256(q3 as *const __m256i);
                q3 = q3.add(32);

                // Prepare low and high bits
                // We hardcode the shifts here to avoid loading them into a separate register
                let q3l_0 = _mm256_and_si256(q3bits, m3);
                let q3h_0 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 0)), 0)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 4)), 4)
                };
                let q3h_0 = _mm256_slli_epi16(q3h_0, 2);

                let q3l_1 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 2), m3);
                let q3h_1 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 1)), 1)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 5)), 5)
                };
                let q3h_1 = _mm256_slli_epi16(q3h_1, 2);

                let q3l_2 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 4), m3);
                let q3h_2 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 2)), 2)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 6)), 6)
                };
                let q3h_2 = _mm256_slli_epi16(q3h_2, 2);

                let q3l_3 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 6), m3);
                let q3h_3 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 3)), 3)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 7)), 7)
                };
                let q3h_3 = _mm256_slli_epi16(q3h_3, 2);

                // load Q8 quants
                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                // Dot product: we multiply the 2 low bits and 1 high bit part separately, so we
                // can use _mm256_maddubs_epi16, and then subtract. The high bit part has the 2
                // already subtracted (and so, it is zero if the high bit was not set, and 2 if the
                // high bit was set)
                let q8s_0 = _mm256_maddubs_epi16(q3h_0, q8_0);
                let q8s_1 = _mm256_maddubs_epi16(q3h_1, q8_1);
                let q8s_2 = _mm256_maddubs_epi16(q3h_2, q8_2);
                let q8s_3 = _mm256_maddubs_epi16(q3h_3, q8_3);

                let p16_0 = _mm256_maddubs_epi16(q3l_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q3l_1, q8_1);
                let p16_2 = _mm256_maddubs_epi16(q3l_2, q8_2);
                let p16_3 = _mm256_maddubs_epi16(q3l_3, q8_3);

                let p16_0 = _mm256_sub_epi16(p16_0, q8s_0);
                let p16_1 = _mm256_sub_epi16(p16_1, q8s_1);
                let p16_2 = _mm256_sub_epi16(p16_2, q8s_2);
                let p16_3 = _mm256_sub_epi16(p16_3, q8s_3);

                // multiply with scales
                let p16_0 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(0)), p16_0);
                let p16_1 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(1)), p16_1);
                let p16_2 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(2)), p16_2);
                let p16_3 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(3)), p16_3);

                // accumulate
                let p16_0 = _mm256_add_epi32(p16_0, p16_1);
                let p16_2 = _mm256_add_epi32(p16_2, p16_3);
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_2));
            }

            // multiply with block scale and accumulate
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }
        Ok(hsum_float_8(acc))
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q4k_q8k(n: usize, xs: &[BlockQ4K], ys: &[BlockQ8K]) -> Result<f32> {
    if n % QK_K != 0 {
        crate::bail!("vec_dot_q4k_q8k: {n} is not divisible by {QK_K}")
    }
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);

        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();
            let dmin = -y.d * x.dmin.to_f32();

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            let mut q4 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));

            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);

            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);

            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 64 {
                let scale_l = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));

                let q4bits = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4l = _mm256_and_si256(q4bits, m4);
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);

                let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16l = _mm256_maddubs_epi16(q4l, q8l);
                let p16l = _mm256_madd_epi16(scale_l, p16l);
                sumi = _mm256_add_epi32(sumi, p16l);

                let q8h = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16h = _mm256_maddubs_epi16(q4h, q8h);
                let p16h = _mm256_madd_epi16(scale_h, p16h);
                sumi = _mm256_add_epi32(sumi, p16h);
            }

            let vd = _mm256_set1_ps(d);
            acc = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(sumi), acc);
        }

        let acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        let acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));

        Ok(hsum_float_8(acc) + _mm_cvtss_f32(acc_m))
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q5k_q8k(n: usize, xs: &[BlockQ5K], ys: &[BlockQ8K]) -> Result<f32> {
    if n % QK_K != 0 {
        crate::bail!("vec_dot_q5k_q8k: {n} is not divisible by {QK_K}")
    }
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let mzero = _mm_setzero_si128();
        let mone = _mm256_set1_epi8(1);

        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0;

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();
            let dmin = -y.d * x.dmin.to_f32();

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            let mut q5 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));

            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
            let hsum = _mm_hadd_epi32(_mm_hadd_epi32(prod, mzero), mzero);
            summs += dmin * _mm_extract_epi32(hsum, 0) as f32;

            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);

            let hbits = _mm256_loadu_si256(x.qh.as_ptr() as *const __m256i);
            let mut hmask = mone;

            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 64 {
                let scale_0 = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_1 = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));

                let q5bits = _mm256_loadu_si256(q5 as *const __m256i);
                q5 = q5.add(32);

                //Similar to q3k we hardcode the shifts here to avoid loading them into a separate register
                let q5l_0 = _mm256_and_si256(q5bits, m4);
                let q5l_0_shift_input = _mm256_and_si256(hbits, hmask);
                let q5l_0_right_shift = match j {
                    0 => _mm256_srli_epi16(q5l_0_shift_input, 0),
                    1 => _mm256_srli_epi16(q5l_0_shift_input, 2),
                    2 => _mm256_srli_epi16(q5l_0_shift_input, 4),
                    3 => _mm256_srli_epi16(q5l_0_shift_input, 6),
                    _ => unreachable!(),
                };
                let q5h_0 = _mm256_slli_epi16(q5l_0_right_shift, 4);
                let q5_0 = _mm256_add_epi8(q5l_0, q5h_0);
                hmask = _mm256_slli_epi16(hmask, 1);

                let q5l_1 = _mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4);
                let q5l_1_shift_input = _mm256_and_si256(hbits, hmask);
                let q5l_1_right_shift = match j {
                    0 => _mm256_srli_epi16(q5l_1_shift_input, 1),
                    1 => _mm256_srli_epi16(q5l_1_shift_input, 3),
                    2 => _mm256_srli_epi16(q5l_1_shift_input, 5),
                    3 => _mm256_srli_epi16(q5l_1_shift_input, 7),
                    _ => unreachable!(),
                };

                let q5h_1 = _mm256_slli_epi16(q5l_1_right_shift, 4);
                let q5_1 = _mm256_add_epi8(q5l_1, q5h_1);
                hmask = _mm256_slli_epi16(hmask, 1);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let p16_0 = _mm256_maddubs_epi16(q5_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q5_1, q8_1);

                let p16_0 = _mm256_madd_epi16(scale_0, p16_0);
                let p16_1 = _mm256_madd_epi16(scale_1, p16_1);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
            }
            let vd = _mm256_set1_ps(d);
            acc = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(sumi), acc);
        }
        Ok(hsum_float_8(acc) + summs)
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q8k_q8k(n: usize, xs: &[BlockQ8K], ys: &[BlockQ8K]) -> Result<f32> {
    let qk = QK_K;
    if n % qk != 0 {
        crate::bail!("vec_dot_q8k_8k: {n} is not divisible by {qk}")
    }

    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let mut sumi = _mm256_setzero_si256();
            let x_qs = xs.qs.as_ptr();
            let y_qs = ys.qs.as_ptr();
            for j in (0..QK_K).step_by(32) {
                let xs = _mm256_loadu_si256(x_qs.add(j) as *const __m256i);
                let ys = _mm256_loadu_si256(y_qs.add(j) as *const __m256i);

                let xs0 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xs, 0));
                let ys0 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(ys, 0));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(xs0, ys0));

                let xs1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xs, 1));
                let ys1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(ys, 1));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(xs1, ys1));
            }
            let d = _mm256_set1_ps(xs.d * ys.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        Ok(hsum_float_8(acc))
    }
}

/// `BlockQ8_0::from_float` for one block, eight lanes at a time. Gives the same bits as the
/// scalar definition for every finite input: the maximum of absolute values is exact in any
/// order, the scale and its inverse are the same scalar operations, and `f32::round` (half away
/// from zero) is computed exactly as `trunc(v)` plus one step away from zero where
/// `|v - trunc(v)| >= 0.5` (that difference is exact in floating point). The scalar loop called
/// `roundf` once per value and was about 7% of a prefill.
#[cfg(target_feature = "avx2")]
#[inline(always)]
pub(crate) unsafe fn quantize_block_q8_0(xs: &[f32], y: &mut BlockQ8_0) {
    debug_assert_eq!(xs.len(), QK8_0);
    let sign = _mm256_set1_ps(-0.0);
    let mut v = [_mm256_setzero_ps(); 4];
    let mut amax = _mm256_setzero_ps();
    for (i, v) in v.iter_mut().enumerate() {
        *v = _mm256_loadu_ps(xs.as_ptr().add(8 * i));
        // max_ps returns its second operand when the first is NaN, as `f32::max` ignores NaN.
        amax = _mm256_max_ps(_mm256_andnot_ps(sign, *v), amax);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), amax);
    let amax = lanes.iter().fold(0f32, |a, &b| a.max(b));
    let d = amax / ((1 << 7) - 1) as f32;
    let id = if d != 0f32 { 1. / d } else { 0. };
    y.d = f16::from_f32(d);
    let id = _mm256_set1_ps(id);
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    let mut q = [_mm256_setzero_si256(); 4];
    for (q, v) in q.iter_mut().zip(v) {
        let x = _mm256_mul_ps(v, id);
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
        let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(x, t));
        let away = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, half);
        let step = _mm256_or_ps(_mm256_and_ps(x, sign), one);
        *q = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(away, step)));
    }
    // i32 -> i16 -> i8 (the values lie in [-127, 127]; packing saturates like `as i8`), then
    // undo the packs' interleaving of 128-bit halves.
    let q01 = _mm256_packs_epi32(q[0], q[1]);
    let q23 = _mm256_packs_epi32(q[2], q[3]);
    let bytes = _mm256_packs_epi16(q01, q23);
    let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(y.qs.as_mut_ptr() as *mut __m256i, bytes);
}

/// aidiag patch (see vendor/README.md): `BlockQ8K::from_float` for one block, eight lanes at a
/// time. The same bits as upstream's scalar loop for every finite input: the largest absolute
/// value is exact in any order and `max` is the first value that reaches it, as upstream's
/// strict `<` keeps; the scale, the products and `d` are the same scalar and lane operations;
/// `f32::round` is computed as in `quantize_block_q8_0`; upstream's `min(127.)` is the
/// saturation of the packs (only `128` can exceed it); the sums of sixteen are exact integers.
/// Upstream leaves `bsums` as they were for an all-zero block, and so does this. (A NaN input
/// gives -128 where upstream gives 127.)
#[cfg(target_feature = "avx2")]
#[inline(always)]
pub(crate) unsafe fn quantize_block_q8k(xs: &[f32], y: &mut BlockQ8K) {
    debug_assert_eq!(xs.len(), QK_K);
    let sign = _mm256_set1_ps(-0.0);
    let mut amax = _mm256_setzero_ps();
    for i in 0..QK_K / 8 {
        let v = _mm256_loadu_ps(xs.as_ptr().add(8 * i));
        // max_ps returns its second operand when the first is NaN: NaN is skipped, as upstream's
        // `amax < x.abs()` skips it.
        amax = _mm256_max_ps(_mm256_andnot_ps(sign, v), amax);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), amax);
    let amax = lanes.iter().fold(0f32, |a, &b| a.max(b));
    if amax == 0f32 {
        y.d = 0f32;
        y.qs.fill(0);
        return;
    }
    let max = *xs.iter().find(|x| x.abs() == amax).unwrap_or(&amax);
    let iscale = -128f32 / max;
    let id = _mm256_set1_ps(iscale);
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    let ones = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    for chunk in 0..QK_K / 32 {
        let mut q = [_mm256_setzero_si256(); 4];
        for (i, q) in q.iter_mut().enumerate() {
            let v = _mm256_loadu_ps(xs.as_ptr().add(32 * chunk + 8 * i));
            let x = _mm256_mul_ps(id, v);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
            let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(x, t));
            let away = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, half);
            let step = _mm256_or_ps(_mm256_and_ps(x, sign), one);
            *q = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(away, step)));
        }
        // i32 -> i16 -> i8 (the values lie in [-128, 128]; the packs saturate 128 to 127), then
        // undo the packs' interleaving of 128-bit halves.
        let q01 = _mm256_packs_epi32(q[0], q[1]);
        let q23 = _mm256_packs_epi32(q[2], q[3]);
        let bytes = _mm256_packs_epi16(q01, q23);
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(y.qs.as_mut_ptr().add(32 * chunk) as *mut __m256i, bytes);
        // Sums of four bytes, then of four such sums: bsums 2 * chunk and 2 * chunk + 1.
        let fours = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, bytes), ones16);
        let mut sums = [0i32; 8];
        _mm256_storeu_si256(sums.as_mut_ptr() as *mut __m256i, fours);
        y.bsums[2 * chunk] = (sums[0] + sums[1] + sums[2] + sums[3]) as i16;
        y.bsums[2 * chunk + 1] = (sums[4] + sums[5] + sums[6] + sums[7]) as i16;
    }
    y.d = 1.0 / iscale;
}

/// aidiag patch (see vendor/README.md): `vec_dot_q6k_q8k_tile` for an even number of weight rows
/// with AVX-512, in the manner of `q4k_tile_pairs`: weight rows 2p and 2p + 1 share one 16-lane
/// accumulator per activation row, each lane updated with upstream's f32 multiply and fused
/// multiply-add, each half reduced as upstream reduces its accumulator; a block's sixteen scales
/// are spread to the lanes they multiply by one `vpermw` per 64 values. Outputs stay bit-for-bit
/// upstream's `vec_dot_q6k_q8k`.
#[cfg(all(target_feature = "avx512bw", target_feature = "avx512vnni"))]
#[inline(always)]
unsafe fn q6k_tile_pairs<const R: usize, const C: usize>(
    xs: [&[BlockQ6K]; C],
    ys: [&[BlockQ8K]; R],
) -> [[f32; C]; R] {
    let blocks = xs[0].len();
    let m4 = _mm512_set1_epi8(0xF);
    let m2 = _mm512_set1_epi8(3);
    let m32s = _mm512_set1_epi8(32);
    // Index vectors for `vpermw`: vector h takes scales 4h .. 4h + 4, eight lanes each.
    let pick = |h: i16| {
        let low = _mm256_inserti128_si256(_mm256_set1_epi16(4 * h), _mm_set1_epi16(4 * h + 1), 1);
        let high =
            _mm256_inserti128_si256(_mm256_set1_epi16(4 * h + 2), _mm_set1_epi16(4 * h + 3), 1);
        _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1)
    };
    let picks = [pick(0), pick(1), pick(2), pick(3)];
    // Only the first C / 2 of each row are used (C / 2 is not a const expression).
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for b in 0..blocks {
        let mut scales = [[_mm512_setzero_si512(); QK_K / 64]; C];
        let mut dx = [0f32; C];
        for c in 0..C {
            let x = xs[c].get_unchecked(b);
            let s = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.scales.as_ptr() as *const __m128i));
            for (h, scale) in scales[c].iter_mut().enumerate() {
                *scale = _mm512_permutexvar_epi16(picks[h], _mm512_castsi256_si512(s));
            }
            dx[c] = x.d.to_f32();
        }
        // Kept in memory and read by the multiply-adds as operands: registers hold the sums.
        let scales = std::hint::black_box(&scales);
        let mut dxs = [_mm512_setzero_ps(); C];
        for p in 0..C / 2 {
            dxs[p] =
                _mm512_insertf32x8(_mm512_set1_ps(dx[2 * p]), _mm256_set1_ps(dx[2 * p + 1]), 1);
        }
        let mut sumi = [[_mm512_setzero_si512(); C]; R];
        for j in 0..QK_K / 128 {
            for half in 0..2 {
                let mut q6 = [_mm512_setzero_si512(); C];
                for c in 0..C {
                    let x = xs[c].get_unchecked(b);
                    let ql = _mm512_loadu_si512(x.ql.as_ptr().add(64 * j) as *const __m512i);
                    let qh = _mm256_loadu_si256(x.qh.as_ptr().add(32 * j) as *const __m256i);
                    let (low, qh) = match half {
                        0 => (
                            ql,
                            _mm512_inserti64x4(
                                _mm512_castsi256_si512(qh),
                                _mm256_srli_epi16(qh, 2),
                                1,
                            ),
                        ),
                        _ => (
                            _mm512_srli_epi16(ql, 4),
                            _mm512_inserti64x4(
                                _mm512_castsi256_si512(_mm256_srli_epi16(qh, 4)),
                                _mm256_srli_epi16(qh, 6),
                                1,
                            ),
                        ),
                    };
                    let high = _mm512_slli_epi16(_mm512_and_si512(qh, m2), 4);
                    q6[c] = _mm512_or_si512(_mm512_and_si512(low, m4), high);
                }
                for r in 0..R {
                    let y = ys[r].get_unchecked(b);
                    let at = 128 * j + 64 * half;
                    let q8 = _mm512_loadu_si512(y.qs.as_ptr().add(at) as *const __m512i);
                    let q8s = _mm512_maddubs_epi16(m32s, q8);
                    for c in 0..C {
                        let p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(q6[c], q8), q8s);
                        sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], scales[c][2 * j + half], p16);
                    }
                }
            }
        }
        for r in 0..R {
            let yd = _mm512_set1_ps(ys[r].get_unchecked(b).d);
            for p in 0..C / 2 {
                let (s0, s1) = (sumi[r][2 * p], sumi[r][2 * p + 1]);
                // [low half of s0 | low half of s1] + [high half of s0 | high half of s1].
                let low = _mm512_inserti64x4(s0, _mm512_castsi512_si256(s1), 1);
                let high = _mm512_shuffle_i64x2(s0, s1, 0xEE);
                let sum = _mm512_add_epi32(low, high);
                let d = _mm512_mul_ps(yd, dxs[p]);
                acc[r][p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sum), acc[r][p]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for p in 0..C / 2 {
            out[r][2 * p] = hsum_float_8(_mm512_castps512_ps256(acc[r][p]));
            out[r][2 * p + 1] = hsum_float_8(_mm512_extractf32x8_ps(acc[r][p], 1));
        }
    }
    out
}

/// aidiag patch (see vendor/README.md): the i32 lanes of block `b` of `vec_dot_q6k_q8k` for each
/// (activation row, weight row): lane i is the sum over the sixteen 16-value groups of the
/// group's scale times the i16 pair sums of `q6 * q8 - 32 * q8` that fall in lane i, as
/// upstream's `maddubs`, `sub` and `madd` compute them, one 32-value quarter per 32-byte
/// instruction. (With AVX-512 BW and VNNI an even number of weight rows goes through
/// `q6k_tile_pairs` instead.)
#[inline(always)]
unsafe fn q6k_sums<const R: usize, const C: usize>(
    xs: [&[BlockQ6K]; C],
    ys: [&[BlockQ8K]; R],
    b: usize,
) -> [[__m256i; C]; R] {
    let m4 = _mm256_set1_epi8(0xF);
    let m2 = _mm256_set1_epi8(3);
    let m32s = _mm256_set1_epi8(32);
    // Each 16-value group's scale as i16 lanes: vector g covers groups 2g and 2g + 1.
    let mut scales = [[_mm256_setzero_si256(); QK_K / 32]; C];
    for c in 0..C {
        let x = xs[c].get_unchecked(b);
        let s = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
        for (g, scale) in scales[c].iter_mut().enumerate() {
            *scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, get_scale_shuffle(g)));
        }
    }
    let scales = std::hint::black_box(&scales);
    let mut sumi = [[_mm256_setzero_si256(); C]; R];
    for j in 0..QK_K / 128 {
        for k in 0..4 {
            let mut q6 = [_mm256_setzero_si256(); C];
            for c in 0..C {
                let x = xs[c].get_unchecked(b);
                let ql = x.ql.as_ptr().add(64 * j + 32 * (k % 2));
                let ql = _mm256_loadu_si256(ql as *const __m256i);
                let qh = _mm256_loadu_si256(x.qh.as_ptr().add(32 * j) as *const __m256i);
                let low = match k {
                    0 | 1 => _mm256_and_si256(ql, m4),
                    _ => _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4),
                };
                let high = match k {
                    0 => _mm256_and_si256(qh, m2),
                    1 => _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
                    2 => _mm256_and_si256(_mm256_srli_epi16(qh, 4), m2),
                    _ => _mm256_and_si256(_mm256_srli_epi16(qh, 6), m2),
                };
                q6[c] = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
            }
            for r in 0..R {
                let y = ys[r].get_unchecked(b);
                let at = 128 * j + 32 * k;
                let q8 = _mm256_loadu_si256(y.qs.as_ptr().add(at) as *const __m256i);
                let q8s = _mm256_maddubs_epi16(m32s, q8);
                for c in 0..C {
                    let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q6[c], q8), q8s);
                    sumi[r][c] = madd_acc(sumi[r][c], scales[c][4 * j + k], p16);
                }
            }
        }
    }
    sumi
}
