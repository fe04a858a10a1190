//! aidiag patch (see vendor/README.md): causal attention on the CPU in one pass.
//!
//! Upstream computed `softmax(mask(q k^T * scale)) v` as five tensor operations, each allocating
//! its (heads x queries x keys) result: the product, the scaling, a `where_cond` against a mask
//! broadcast through a strided index (8% of a prefill in `perf`), the softmax and the second
//! product; and it first copied k and v once per query head sharing them (`repeat_kv`). Here each
//! query row is computed once, against the keys it may see only (the masked half is skipped, not
//! computed and then hidden), reading k and v of its key-value head in place.
//!
//! Each output depends only on its own query row and the keys before it, summed in a fixed order,
//! so a row gives the same bits whatever else is in the batch: a prompt run whole or continued
//! from a cached prefix computes its attention identically (one-row steps, decoding, take the
//! second path below and may differ from a prefill in the last bits).

use candle_core::{Result, Tensor};

/// Query rows per task; their scores share each load of the keys. A step of fewer rows
/// (decoding) takes the other path, whose sums are in another order.
pub const ROWS: usize = 4;

/// Whether this build has the fused attention (x86-64 with AVX-512F, or AVX2 and FMA).
pub const FUSED: bool = cfg!(all(
    target_arch = "x86_64",
    any(
        target_feature = "avx512f",
        all(target_feature = "avx2", target_feature = "fma")
    )
));

/// Causal attention: `q` is (1, heads, q_len, d); `k` and `v` are (1, kv_heads, kv_len, d), the
/// cache's keys followed by the `q_len` new ones, with `heads` a multiple of `kv_heads` (query
/// head `h` reads key-value head `h / (heads / kv_heads)`). Query row `i` sees keys
/// `0..=kv_len - q_len + i`. Returns (1, q_len, heads * d), the layout the output projection
/// takes, or `None` where this build or these tensors are not covered (not f32 on the CPU, `d`
/// not a multiple of 16, rows not in place): the caller then runs upstream's operations.
#[doc(hidden)]
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Option<Tensor>> {
    #[cfg(all(
    target_arch = "x86_64",
    any(
        target_feature = "avx512f",
        all(target_feature = "avx2", target_feature = "fma")
    )
))]
    return fused::fused(q, k, v, scale);
    #[allow(unreachable_code)]
    {
        let _ = (q, k, v, scale);
        Ok(None)
    }
}

/// The softmax the fused attention applies to each row of scores, in place; `false` where the
/// fused attention is not compiled (see `FUSED`). Exported so that aidiag's `tests/kernel.rs`
/// checks it against an f64 definition.
#[doc(hidden)]
pub fn softmax(w: &mut [f32]) -> bool {
    #[cfg(all(
    target_arch = "x86_64",
    any(
        target_feature = "avx512f",
        all(target_feature = "avx2", target_feature = "fma")
    )
))]
    {
        if !w.is_empty() {
            fused::softmax(w);
        }
        return true;
    }
    #[allow(unreachable_code)]
    {
        let _ = w;
        false
    }
}

/// The fused attention, compiled for x86-64 with AVX-512F, or AVX2 and FMA (`FUSED`).
#[cfg(all(
    target_arch = "x86_64",
    any(
        target_feature = "avx512f",
        all(target_feature = "avx2", target_feature = "fma")
    )
))]
mod fused {
    use super::ROWS;
    use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};
    use lanes::V;
    use rayon::prelude::*;

    /// Keys scored at once, and values summed at once: one vector of 16 f32.
    const LANES: usize = 16;

    /// Sixteen f32 lanes: one AVX-512 register, or two AVX2 registers. Without either, the fused
    /// attention is not compiled and upstream's tensor operations run instead.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    mod lanes {
        use std::arch::x86_64::*;
        #[derive(Clone, Copy)]
        pub struct V(__m512);
        impl V {
            #[inline(always)]
            pub fn zero() -> V {
                unsafe { V(_mm512_setzero_ps()) }
            }
            #[inline(always)]
            pub fn splat(x: f32) -> V {
                unsafe { V(_mm512_set1_ps(x)) }
            }
            #[inline(always)]
            pub fn load(x: &[f32]) -> V {
                assert!(x.len() >= 16);
                unsafe { V(_mm512_loadu_ps(x.as_ptr())) }
            }
            #[inline(always)]
            pub fn store(self, x: &mut [f32]) {
                assert!(x.len() >= 16);
                unsafe { _mm512_storeu_ps(x.as_mut_ptr(), self.0) }
            }
            /// `self * b + c`, rounded once.
            #[inline(always)]
            pub fn fma(self, b: V, c: V) -> V {
                unsafe { V(_mm512_fmadd_ps(self.0, b.0, c.0)) }
            }
            #[inline(always)]
            pub fn mul(self, b: V) -> V {
                unsafe { V(_mm512_mul_ps(self.0, b.0)) }
            }
            #[inline(always)]
            pub fn add(self, b: V) -> V {
                unsafe { V(_mm512_add_ps(self.0, b.0)) }
            }
            #[inline(always)]
            pub fn div(self, b: V) -> V {
                unsafe { V(_mm512_div_ps(self.0, b.0)) }
            }
            #[inline(always)]
            pub fn max(self, b: V) -> V {
                unsafe { V(_mm512_max_ps(self.0, b.0)) }
            }
            /// Each lane rounded to the nearest integer, ties to even.
            #[inline(always)]
            pub fn round(self) -> V {
                unsafe {
                    V(_mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                        self.0,
                    ))
                }
            }
            /// `self * 2^n`, `n` integral lanes in [-127, 127].
            #[inline(always)]
            pub fn scale2(self, n: V) -> V {
                unsafe { V(_mm512_scalef_ps(self.0, n.0)) }
            }
        }
    }

    #[cfg(all(
        target_arch = "x86_64",
        not(target_feature = "avx512f"),
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    mod lanes {
        use std::arch::x86_64::*;
        #[derive(Clone, Copy)]
        pub struct V(__m256, __m256);
        impl V {
            #[inline(always)]
            pub fn zero() -> V {
                unsafe { V(_mm256_setzero_ps(), _mm256_setzero_ps()) }
            }
            #[inline(always)]
            pub fn splat(x: f32) -> V {
                unsafe { V(_mm256_set1_ps(x), _mm256_set1_ps(x)) }
            }
            #[inline(always)]
            pub fn load(x: &[f32]) -> V {
                assert!(x.len() >= 16);
                unsafe { V(_mm256_loadu_ps(x.as_ptr()), _mm256_loadu_ps(x.as_ptr().add(8))) }
            }
            #[inline(always)]
            pub fn store(self, x: &mut [f32]) {
                assert!(x.len() >= 16);
                unsafe {
                    _mm256_storeu_ps(x.as_mut_ptr(), self.0);
                    _mm256_storeu_ps(x.as_mut_ptr().add(8), self.1);
                }
            }
            /// `self * b + c`, rounded once.
            #[inline(always)]
            pub fn fma(self, b: V, c: V) -> V {
                unsafe { V(_mm256_fmadd_ps(self.0, b.0, c.0), _mm256_fmadd_ps(self.1, b.1, c.1)) }
            }
            #[inline(always)]
            pub fn mul(self, b: V) -> V {
                unsafe { V(_mm256_mul_ps(self.0, b.0), _mm256_mul_ps(self.1, b.1)) }
            }
            #[inline(always)]
            pub fn add(self, b: V) -> V {
                unsafe { V(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1)) }
            }
            #[inline(always)]
            pub fn div(self, b: V) -> V {
                unsafe { V(_mm256_div_ps(self.0, b.0), _mm256_div_ps(self.1, b.1)) }
            }
            #[inline(always)]
            pub fn max(self, b: V) -> V {
                unsafe { V(_mm256_max_ps(self.0, b.0), _mm256_max_ps(self.1, b.1)) }
            }
            /// Each lane rounded to the nearest integer, ties to even.
            #[inline(always)]
            pub fn round(self) -> V {
                const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
                unsafe { V(_mm256_round_ps::<NEAREST>(self.0), _mm256_round_ps::<NEAREST>(self.1)) }
            }
            /// `self * 2^n`, `n` integral lanes in [-127, 127]: the exponent built from the bits.
            #[inline(always)]
            pub fn scale2(self, n: V) -> V {
                unsafe {
                    let pow = |n: __m256| {
                        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
                            _mm256_cvtps_epi32(n),
                            _mm256_set1_epi32(127),
                        ));
                        _mm256_castsi256_ps(bits)
                    };
                    V(_mm256_mul_ps(self.0, pow(n.0)), _mm256_mul_ps(self.1, pow(n.1)))
                }
            }
        }
    }


    /// A 4-d f32 tensor on the CPU read in place: its data, start offset and strides, with the last
    /// dimension contiguous.
    struct View<'a> {
        data: &'a [f32],
        start: usize,
        stride: [usize; 4],
    }

    impl View<'_> {
        /// The `d` values at (0, head, row).
        #[inline(always)]
        fn row(&self, head: usize, row: usize, d: usize) -> &[f32] {
            let at = self.start + head * self.stride[1] + row * self.stride[2];
            &self.data[at..at + d]
        }
    }

    fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout) -> Option<View<'a>> {
        match storage {
            Storage::Cpu(CpuStorage::F32(data)) if layout.dims().len() == 4 => {
                let s = layout.stride();
                (s[3] == 1).then(|| View {
                    data,
                    start: layout.start_offset(),
                    stride: [s[0], s[1], s[2], s[3]],
                })
            }
            _ => None,
        }
    }


    pub(super) fn fused(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Option<Tensor>> {
        if q.dtype() != DType::F32 || !q.device().is_cpu() {
            return Ok(None);
        }
        let (b, heads, q_len, d) = q.dims4()?;
        let (kb, kv_heads, kv_len, kd) = k.dims4()?;
        if b != 1
            || kb != 1
            || kd != d
            || d == 0
            || d % LANES != 0
            || v.dims() != k.dims()
            || kv_heads == 0
            || heads % kv_heads != 0
            || kv_len < q_len
        {
            return Ok(None);
        }
        let group = heads / kv_heads;
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (Some(q), Some(k), Some(v)) = (cpu_f32(&qs, ql), cpu_f32(&ks, kl), cpu_f32(&vs, vl)) else {
            return Ok(None);
        };
        let offset = kv_len - q_len;
        let mut out = vec![0f32; q_len * heads * d];

        if q_len < ROWS {
            // Decoding: one dot product per key, no transposed copy of the keys.
            out.par_chunks_mut(d).enumerate().for_each(|(at, out)| {
                let (i, h) = (at / heads, at % heads);
                let g = h / group;
                let qr = q.row(h, i, d);
                let mut w: Vec<f32> = (0..offset + i + 1)
                    .map(|j| dot(qr, k.row(g, j, d)) * scale)
                    .collect();
                softmax(&mut w);
                weighted_sum(&w, |j| v.row(g, j, d), out);
            });
        } else {
            // A prefill: the keys of each key-value head transposed, (d, keys padded to LANES), so
            // that LANES scores of a query row are LANES independent sums, each in the order of d.
            let padded = kv_len.div_ceil(LANES) * LANES;
            let mut kt = vec![0f32; kv_heads * d * padded];
            kt.par_chunks_mut(d * padded).enumerate().for_each(|(g, kt)| {
                for j in 0..kv_len {
                    for (e, &x) in k.row(g, j, d).iter().enumerate() {
                        kt[e * padded + j] = x;
                    }
                }
            });
            out.par_chunks_mut(ROWS * heads * d)
                .enumerate()
                .for_each(|(block, out)| {
                    let first = block * ROWS;
                    let rows = out.len() / (heads * d);
                    // The keys the block's last row sees; earlier rows ignore their extra scores.
                    let seen = offset + first + rows;
                    let stride = seen.div_ceil(LANES) * LANES;
                    let mut scores = vec![0f32; ROWS * stride];
                    let scale = V::splat(scale);
                    for h in 0..heads {
                        let g = h / group;
                        let kt = &kt[g * d * padded..(g + 1) * d * padded];
                        let qr: [&[f32]; ROWS] =
                            std::array::from_fn(|r| q.row(h, first + r.min(rows - 1), d));
                        for j0 in (0..seen).step_by(LANES) {
                            let mut acc = [V::zero(); ROWS];
                            for e in 0..d {
                                let keys = V::load(&kt[e * padded + j0..]);
                                for r in 0..ROWS {
                                    acc[r] = V::splat(qr[r][e]).fma(keys, acc[r]);
                                }
                            }
                            for (r, acc) in acc.iter().enumerate() {
                                acc.mul(scale).store(&mut scores[r * stride + j0..]);
                            }
                        }
                        for r in 0..rows {
                            let w = &mut scores[r * stride..r * stride + offset + first + r + 1];
                            softmax(w);
                            let o = &mut out[(r * heads + h) * d..(r * heads + h + 1) * d];
                            weighted_sum(w, |j| v.row(g, j, d), o);
                        }
                    }
                });
        }
        Ok(Some(Tensor::from_vec(
            out,
            (1, q_len, heads * d),
            &candle_core::Device::Cpu,
        )?))
    }

    /// A dot product in sixteen lanes (`d` a multiple of 16), the lanes then summed pairwise.
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = V::zero();
        for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            acc = V::load(x).fma(V::load(y), acc);
        }
        let mut lanes = [0f32; LANES];
        acc.store(&mut lanes);
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for l in 0..width {
                lanes[l] += lanes[l + width];
            }
        }
        lanes[0]
    }

    /// In place: the maximum, `exp` of the differences (`exp_lanes`), divided by their sum, in
    /// vectors of LANES. The last, partial vector is padded; its padding lanes are left out of
    /// the sum. The sum is LANES running sums added pairwise, a fixed order for a given length.
    #[inline(always)]
    pub(super) fn softmax(w: &mut [f32]) {
        let n = w.len();
        let full = n - n % LANES;
        let mut tail = [f32::NEG_INFINITY; LANES];
        tail[..n - full].copy_from_slice(&w[full..]);
        let mut max = V::load(&tail);
        for chunk in w[..full].chunks_exact(LANES) {
            max = max.max(V::load(chunk));
        }
        let minus_max = V::splat(-reduce(max, f32::max));
        let mut sum = V::zero();
        for chunk in w[..full].chunks_exact_mut(LANES) {
            let e = exp_lanes(V::load(chunk).add(minus_max));
            e.store(chunk);
            sum = sum.add(e);
        }
        let mut e = [0f32; LANES];
        exp_lanes(V::load(&tail).add(minus_max)).store(&mut e);
        e[n - full..].fill(0.0);
        let sum = V::splat(reduce(sum.add(V::load(&e)), |a, b| a + b));
        for chunk in w[..full].chunks_exact_mut(LANES) {
            V::load(chunk).div(sum).store(chunk);
        }
        V::load(&e).div(sum).store(&mut tail);
        w[full..].copy_from_slice(&tail[..n - full]);
    }

    /// The lanes of `v` combined pairwise: lane l with lane l + 8, then l + 4, l + 2, l + 1.
    #[inline(always)]
    fn reduce(v: V, f: impl Fn(f32, f32) -> f32) -> f32 {
        let mut lanes = [0f32; LANES];
        v.store(&mut lanes);
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for l in 0..width {
                lanes[l] = f(lanes[l], lanes[l + width]);
            }
        }
        lanes[0]
    }

    /// `e^x` for lanes x <= 0 (differences from a maximum): `x = n ln 2 + r` with
    /// |r| <= ln 2 / 2, e^r by its Taylor polynomial of degree 6 (Horner, fused multiply-adds;
    /// truncation under 1.2e-7 relative), times 2^n. Below -87, where e^x leaves f32's normal
    /// range, it gives e^-87, which a softmax sum (at least 1) cannot tell from 0. The softmax
    /// built on it is within 3 f32::EPSILON of its f64 definition (`tests/kernel.rs`).
    #[inline(always)]
    fn exp_lanes(x: V) -> V {
        let x = x.max(V::splat(-87.0));
        let n = x.mul(V::splat(std::f32::consts::LOG2_E)).round();
        // ln 2 split in two so that n * LN2_HI is exact.
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        let r = n.fma(V::splat(-LN2_HI), x);
        let r = n.fma(V::splat(-LN2_LO), r);
        let mut p = V::splat(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = p.fma(r, V::splat(c));
        }
        p.scale2(n)
    }

    /// `out = sum over j of w[j] * value(j)`, in the order of j, 64 outputs at a time in registers
    /// (`out.len()` a multiple of 16).
    #[inline(always)]
    fn weighted_sum<'a>(w: &[f32], value: impl Fn(usize) -> &'a [f32], out: &mut [f32]) {
        let mut at = 0;
        while at < out.len() {
            let n = ((out.len() - at) / LANES).min(4);
            let mut acc = [V::zero(); 4];
            for (j, &wj) in w.iter().enumerate() {
                let x = &value(j)[at..];
                let wj = V::splat(wj);
                for (c, acc) in acc.iter_mut().enumerate().take(n) {
                    *acc = wj.fma(V::load(&x[c * LANES..]), *acc);
                }
            }
            for (c, acc) in acc.iter().enumerate().take(n) {
                acc.store(&mut out[at + c * LANES..]);
            }
            at += n * LANES;
        }
    }
}
