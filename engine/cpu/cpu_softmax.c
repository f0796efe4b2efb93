/* cpu_softmax.c: the CPU's softmax and log_softmax kernels, forward and backward, plus the
 * vectorised row kernels (exp with a running sum, max, dot) that attention shares. The input
 * is a contiguous [outer, n, inner]: rows (inner == 1) are reduced along memory, columns
 * (inner > 1) are reduced across rows so that the inner loop still runs along memory. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>
#include "cpu/cpu_vmath.h"

/* ---- shared row kernels (cpu_kernels.h; cpu_attention.c uses them too) ---- */

/* dst[i] = exp(src[i] - sub) (dst may be src); returns the sum of the results. */
float craft_vexp(float *dst, const float *src, int64_t n, float sub) {
#if defined(__AVX512F__)
    __m512 s = _mm512_set1_ps(sub), acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 y = vm_exp_softmax(_mm512_sub_ps(_mm512_loadu_ps(src + i), s));
        _mm512_storeu_ps(dst + i, y);
        acc = _mm512_add_ps(acc, y);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 y = vm_exp_softmax(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, src + i), s));
        _mm512_mask_storeu_ps(dst + i, m, y);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, y));
    }
    return _mm512_reduce_add_ps(acc);
#else
    float acc = 0;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = expf(src[i] - sub);
        acc += dst[i];
    }
    return acc;
#endif
}

/* dst = exp(src - sub) rounded to bf16 (nearest even), returning the sum of the unrounded
 * values: attention's probability tile for its bf16 P V product, in one pass. */
float craft_vexp_bf16(uint16_t *dst, const float *src, int64_t n, float sub) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    /* The values are rounded to bf16 (8 significant bits) right away, so a degree-5 polynomial
     * (relative error 2.4e-6, a thousandth of bf16's rounding) serves; 2^k is applied with scalef. */
    const __m512 s = _mm512_set1_ps(sub), lo = _mm512_set1_ps(-87.3365447f), hi = _mm512_set1_ps(88.0f);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, src + i), s);
        __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
        x = _mm512_max_ps(lo, _mm512_min_ps(hi, x)); /* NaN stays NaN */
        __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
        r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
        __m512 p = _mm512_set1_ps(1.0f / 120);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
        __m512 y = _mm512_maskz_mov_ps((__mmask16)(m & ~under), _mm512_scalef_ps(p, k));
        acc = _mm512_add_ps(acc, y);
#if defined(__AVX512BF16__)
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)_mm512_cvtneps_pbh(y));
#else
        __m512i u = _mm512_castps_si512(y); /* finite and >= 0 (or a quiet NaN, kept NaN) */
        u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                  _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
        _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
#endif
    }
    return _mm512_reduce_add_ps(acc);
#else
    float acc = 0;
    for (int64_t i = 0; i < n; i++) {
        float y = expf(src[i] - sub);
        acc += y;
        dst[i] = craft_float_to_bf16(y);
    }
    return acc;
#endif
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/* 16 floats rounded to bf16 (nearest even; NaN stays NaN), as core/dtype.c's craft_float_to_bf16 */
static inline __m256i vm_to_bf16(__m512 y) {
#if defined(__AVX512BF16__)
    return (__m256i)_mm512_cvtneps_pbh(y);
#else
    __m512i u = _mm512_castps_si512(y);
    __mmask16 nan = _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000)); /* quiet, sign and payload kept */
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
#endif
}
#endif

/* dst = exp(src - sub) in fp32 (as craft_vexp) and dst16 the same rounded to bf16, in one pass:
 * attention's backward keeps P in fp32 for dS and multiplies its bf16 form. */
void craft_vexp_dual(float *dst, uint16_t *dst16, const float *src, int64_t n, float sub) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    __m512 s = _mm512_set1_ps(sub);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 y = vm_exp_softmax(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, src + i), s));
        _mm512_mask_storeu_ps(dst + i, m, y);
        _mm256_mask_storeu_epi16(dst16 + i, m, vm_to_bf16(y));
    }
#else
    craft_vexp(dst, src, n, sub);
    for (int64_t i = 0; i < n; i++) dst16[i] = craft_float_to_bf16(dst[i]);
#endif
}

/* dst16 = p * (dp - d) rounded to bf16: attention's dS row, straight into its bf16 product. */
void craft_vds_bf16(uint16_t *dst16, const float *p, const float *dp, float d, int64_t n) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    __m512 dv = _mm512_set1_ps(d);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + i),
                                 _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dp + i), dv));
        _mm256_mask_storeu_epi16(dst16 + i, m, vm_to_bf16(y));
    }
#else
    for (int64_t i = 0; i < n; i++) dst16[i] = craft_float_to_bf16(p[i] * (dp[i] - d));
#endif
}

/* max of x[0..n) (-inf for n == 0; NaN if any element is NaN, as torch's max) */
float craft_vmax(const float *x, int64_t n) {
    int64_t i = 0;
    float m = -INFINITY;
#if defined(__AVX512F__)
    __m512 acc = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        acc = _mm512_max_ps(acc, v);
    }
    if (nan) return NAN;
    m = _mm512_reduce_max_ps(acc);
#endif
    for (; i < n; i++) {
        if (x[i] != x[i]) return NAN;
        if (x[i] > m) m = x[i];
    }
    return m;
}

float craft_vdot(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    float s = 0;
#if defined(__AVX512F__)
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#endif
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- softmax / log_softmax on [outer, n, inner] ---- */
typedef struct {
    int64_t outer, n, inner;
} smx_shape;

/* log: 0 softmax, 1 log_softmax. x and y dense with the plan's layout. */
static void smx_forward(const float *x, float *y, smx_shape s, int log) {
    int64_t n = s.n, inner = s.inner;
    if (n == 0) return;
    if (inner == 1) {
#pragma omp parallel for if (s.outer * n >= CRAFT_PAR_MIN) schedule(static)
        for (int64_t r = 0; r < s.outer; r++) {
            const float *xr = x + r * n;
            float *yr = y + r * n;
            float m = craft_vmax(xr, n);
            if (m == -INFINITY) m = 0; /* an all -inf row: 0 / 0 gives NaN, as torch */
            float sum = craft_vexp(yr, xr, n, m);
            if (log) {
                float c = m + logf(sum);
                for (int64_t i = 0; i < n; i++) yr[i] = xr[i] - c;
            } else {
                float inv = 1.0f / sum;
                for (int64_t i = 0; i < n; i++) yr[i] *= inv;
            }
        }
        return;
    }
    /* columns: per outer slab [n, inner], work on chunks of the inner dim */
    const int64_t CH = 256;
    int64_t nch = (inner + CH - 1) / CH;
#pragma omp parallel for collapse(2) if (s.outer * n * inner >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t c = 0; c < nch; c++) {
            int64_t c0 = c * CH, w = inner - c0 < CH ? inner - c0 : CH;
            const float *xs = x + o * n * inner + c0;
            float *ys = y + o * n * inner + c0;
            float mx[256], sm[256];
            for (int64_t j = 0; j < w; j++) {
                mx[j] = -INFINITY;
                sm[j] = 0;
            }
            for (int64_t k = 0; k < n; k++)
                for (int64_t j = 0; j < w; j++) {
                    float v = xs[k * inner + j];
                    mx[j] = (v > mx[j] || v != v) ? v : mx[j];
                }
            for (int64_t j = 0; j < w; j++)
                if (mx[j] == -INFINITY) mx[j] = 0;
            for (int64_t k = 0; k < n; k++) {
                float *yk = ys + k * inner;
                const float *xk = xs + k * inner;
                for (int64_t j = 0; j < w; j++) yk[j] = xk[j] - mx[j];
                craft_vexp(yk, yk, w, 0.0f);
                for (int64_t j = 0; j < w; j++) sm[j] += yk[j];
            }
            if (log) {
                for (int64_t j = 0; j < w; j++) mx[j] += logf(sm[j]);
                for (int64_t k = 0; k < n; k++)
                    for (int64_t j = 0; j < w; j++) ys[k * inner + j] = xs[k * inner + j] - mx[j];
            } else {
                for (int64_t j = 0; j < w; j++) sm[j] = 1.0f / sm[j];
                for (int64_t k = 0; k < n; k++)
                    for (int64_t j = 0; j < w; j++) ys[k * inner + j] *= sm[j];
            }
        }
}

/* gx from y and g (all dense, plan layout) */
static void smx_backward(const float *y, const float *g, float *gx, smx_shape s, int log) {
    int64_t n = s.n, inner = s.inner;
    if (n == 0) return;
    if (inner == 1) {
#pragma omp parallel for if (s.outer * n >= CRAFT_PAR_MIN) schedule(static)
        for (int64_t r = 0; r < s.outer; r++) {
            const float *yr = y + r * n, *gr = g + r * n;
            float *o = gx + r * n;
            if (log) {
                float sg = 0;
                for (int64_t i = 0; i < n; i++) sg += gr[i];
                craft_vexp(o, yr, n, 0.0f);
                for (int64_t i = 0; i < n; i++) o[i] = gr[i] - o[i] * sg;
            } else {
                float d = craft_vdot(gr, yr, n);
                for (int64_t i = 0; i < n; i++) o[i] = yr[i] * (gr[i] - d);
            }
        }
        return;
    }
    const int64_t CH = 256;
    int64_t nch = (inner + CH - 1) / CH;
#pragma omp parallel for collapse(2) if (s.outer * n * inner >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t c = 0; c < nch; c++) {
            int64_t c0 = c * CH, w = inner - c0 < CH ? inner - c0 : CH, base = o * n * inner + c0;
            float acc[256];
            for (int64_t j = 0; j < w; j++) acc[j] = 0;
            for (int64_t k = 0; k < n; k++) {
                const float *yk = y + base + k * inner, *gk = g + base + k * inner;
                if (log)
                    for (int64_t j = 0; j < w; j++) acc[j] += gk[j];
                else
                    for (int64_t j = 0; j < w; j++) acc[j] += gk[j] * yk[j];
            }
            for (int64_t k = 0; k < n; k++) {
                const float *yk = y + base + k * inner, *gk = g + base + k * inner;
                float *ok = gx + base + k * inner;
                if (log) {
                    craft_vexp(ok, yk, w, 0.0f);
                    for (int64_t j = 0; j < w; j++) ok[j] = gk[j] - ok[j] * acc[j];
                } else {
                    for (int64_t j = 0; j < w; j++) ok[j] = yk[j] * (gk[j] - acc[j]);
                }
            }
        }
}

int cpu_softmax(const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, int log, craft_tensor *y) {
    smx_shape s = {outer, n, inner};
    smx_forward(craft_tensor_data(x), craft_tensor_data(y), s, log);
    return CRAFT_OK;
}

int cpu_softmax_grad(const craft_tensor *y, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner,
                     int log, craft_tensor *gx) {
    smx_shape s = {outer, n, inner};
    smx_backward(craft_tensor_data(y), craft_tensor_data(g), craft_tensor_data(gx), s, log);
    return CRAFT_OK;
}
