/* cpu_vmath.h: 16-lane AVX-512 exp and the activations built on it (sigmoid, SiLU, quick GELU,
 * exact GELU and their derivatives), shared by the elementwise kernels and softmax. Scalar libm
 * calls cost a third of a small model's elementwise time; these run 16 lanes at once, within a
 * few ulp of the double-precision values (tests/c/test_vmath.c states and checks the bounds).
 * Builds without AVX-512 use the scalar libm formulas of cpu_elementwise.c instead (within the
 * same bounds), so the last bits of these activations depend on the instruction set a build
 * targets. */
#ifndef CRAFT_CPU_VMATH_H
#define CRAFT_CPU_VMATH_H
#if defined(__AVX512F__)
#include <immintrin.h>
#define CRAFT_HAVE_VMATH 1

/* e^r for |r| <= ln2/2: a degree-7 polynomial (Cephes' expf coefficients, about 1 ulp) */
static inline __m512 vm_exp_poly(__m512 r) {
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    return _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
}

/* x = k ln2 + r (Cody-Waite: ln2's high part has few bits, so k * hi is exact) */
static inline __m512 vm_exp_reduce(__m512 x, __m512 *k) {
    *k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(*k, _mm512_set1_ps(0.693359375f), x);
    return _mm512_fnmadd_ps(*k, _mm512_set1_ps(-2.12194440e-4f), r);
}

/* exp for softmax-like uses, whose inputs are <= 0 after the max is subtracted: inputs above 88
 * are clamped to 88; below -87.33 (a denormal result) give 0; -inf gives 0, NaN stays NaN. */
static inline __m512 vm_exp_softmax(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.0f), lo = _mm512_set1_ps(-87.3365447f);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(hi, x); /* min/max return the second operand when one is NaN: keeps NaN */
    x = _mm512_max_ps(lo, x);
    __m512 k, r = vm_exp_reduce(x, &k);
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(vm_exp_poly(r), _mm512_castsi512_ps(e));
    return _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
}

/* exp over the whole float range: above ln(FLT_MAX) gives +inf, below -87.33 (a denormal
 * result) gives 0, NaN stays NaN. 2^k is applied as 2^(k-s) 2^s (s = 1 for k > 0) so that k = 128,
 * reached just below ln(FLT_MAX), does not overflow the exponent field. */
static inline __m512 vm_exp(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.7228391f), lo = _mm512_set1_ps(-87.3365447f);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    x = _mm512_min_ps(hi, x);
    x = _mm512_max_ps(lo, x);
    __m512 k, r = vm_exp_reduce(x, &k);
    __m512i ki = _mm512_cvtps_epi32(k);
    __m512i s = _mm512_min_epi32(_mm512_max_epi32(ki, _mm512_setzero_si512()), _mm512_set1_epi32(1));
    __m512i e1 = _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(ki, s), _mm512_set1_epi32(127)), 23);
    __m512i e2 = _mm512_slli_epi32(_mm512_add_epi32(s, _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(vm_exp_poly(r), _mm512_castsi512_ps(e1)), _mm512_castsi512_ps(e2));
    y = _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
    return _mm512_mask_mov_ps(y, over, _mm512_set1_ps(__builtin_inff()));
}

static inline __m512 vm_sigmoid(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, vm_exp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* s = sigmoid(x) and c = 1 - s, each to full relative accuracy: for x > 0, where s rounds toward
 * 1, c = e^-x s instead of the cancelling 1 - s (derivatives use c) */
static inline __m512 vm_sigmoid2(__m512 x, __m512 *c) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = vm_exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
    __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    *c = _mm512_mask_mul_ps(_mm512_sub_ps(one, s), pos, e, s);
    return s;
}

/* Phi(x), the standard normal CDF, as erfc: Phi(x) = erfc(-x/sqrt2)/2. erfc(z) for z >= 0 is
 * t exp(-z^2 + P(t)), t = 1/(1 + z/2), with the Chebyshev fit of Numerical Recipes' erfcc
 * (relative error below 1.2e-7 for every z), so Phi keeps its relative accuracy in the far
 * negative tail where 1 + erf(x/sqrt2) would cancel. */
static inline __m512 vm_normal_cdf(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(half, z, one));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    __m512 arg = _mm512_fnmadd_ps(z, z, p); /* -z^2 + P(t) */
    __m512 half_erfc = _mm512_mul_ps(_mm512_mul_ps(half, t), vm_exp(arg));
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_sub_ps(half_erfc, pos, one, half_erfc);
}

/* the standard normal density exp(-x^2/2) / sqrt(2 pi) */
static inline __m512 vm_normal_pdf(__m512 x) {
    __m512 a = _mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(-0.5f));
    return _mm512_mul_ps(vm_exp(a), _mm512_set1_ps(0.3989422804014327f));
}

/* the unary ops that have a vector form here */
static inline int vm_has(int op) {
    return op == CRAFT_EXP || op == CRAFT_SIGMOID || op == CRAFT_SILU || op == CRAFT_QUICK_GELU || op == CRAFT_GELU;
}

/* f(x) for one op of vm_has (any other op returns x unchanged: callers check vm_has first) */
static inline __m512 vm_activation(int op, __m512 x) {
    switch (op) {
    case CRAFT_EXP: return vm_exp(x);
    case CRAFT_SIGMOID: return vm_sigmoid(x);
    case CRAFT_SILU: return _mm512_mul_ps(x, vm_sigmoid(x));
    case CRAFT_QUICK_GELU: return _mm512_mul_ps(x, vm_sigmoid(_mm512_mul_ps(_mm512_set1_ps(1.702f), x)));
    case CRAFT_GELU: return _mm512_mul_ps(x, vm_normal_cdf(x));
    }
    return x;
}

/* g * f'(x) for one op of vm_has (any other op returns g unchanged) */
static inline __m512 vm_activation_grad(int op, __m512 x, __m512 g) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 d, s, c;
    switch (op) {
    case CRAFT_EXP: d = vm_exp(x); break;
    case CRAFT_SIGMOID:
        s = vm_sigmoid2(x, &c);
        d = _mm512_mul_ps(s, c);
        break;
    case CRAFT_SILU: /* s (1 + x (1 - s)) */
        s = vm_sigmoid2(x, &c);
        d = _mm512_mul_ps(s, _mm512_fmadd_ps(x, c, one));
        break;
    case CRAFT_QUICK_GELU: { /* s + 1.702 x s (1 - s) */
        __m512 ax = _mm512_mul_ps(_mm512_set1_ps(1.702f), x);
        s = vm_sigmoid2(ax, &c);
        d = _mm512_fmadd_ps(_mm512_mul_ps(ax, s), c, s);
        break;
    }
    case CRAFT_GELU: d = _mm512_fmadd_ps(x, vm_normal_pdf(x), vm_normal_cdf(x)); break;
    default: return g;
    }
    return _mm512_mul_ps(g, d);
}
#endif
#endif
