/* cpu_optim.c: the CPU's optimiser kernels (AdamW, SGD, EMA: elementwise over same-shaped
 * strided tensors, torch's float32 arithmetic step by step) and the sum of squares that
 * clip_grad_norm adds up. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* Byte strides of up to 4 same-shaped tensors, for craft_iter. */
static void iter_setup(int n, const craft_tensor *const *ts, int64_t (*st)[CRAFT_MAX_DIMS], char **base) {
    for (int i = 0; i < n; i++) {
        craft_broadcast_strides(ts[i], ts[0]->ndim, ts[0]->shape, st[i]);
        base[i] = craft_elem_ptr(ts[i]);
    }
}

/* p, g, m, v. torch.optim.AdamW (amsgrad off):
 *   p *= 1 - lr*wd;  m = m*b1 + (1-b1)*g;  v = v*b2 + (1-b2)*g*g
 *   p += -(lr / (1 - b1^t)) * (m / (sqrt(v) / sqrt(1 - b2^t) + eps)) */
static void adamw_loop(int64_t n, char **ptr, const int64_t *s, void *vctx) {
    const craft_adamw_consts *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float *p = (float *)(ptr[0] + i * s[0]), *m = (float *)(ptr[2] + i * s[2]),
              *v = (float *)(ptr[3] + i * s[3]);
        float g = *(const float *)(ptr[1] + i * s[1]);
        float pv = *p * c->decay;
        float mv = *m * c->b1 + c->omb1 * g;
        float vv = *v * c->b2 + c->omb2 * g * g;
        float denom = sqrtf(vv) / c->bc2_sqrt + c->eps;
        *p = pv + c->neg_step * (mv / denom);
        *m = mv;
        *v = vv;
    }
}

#if defined(__AVX512F__)
/* adamw_loop's arithmetic on 16 lanes, operation for operation (no fused multiply-adds: the
 * scalar loop compiles without contraction, and sqrt and division are correctly rounded in
 * both), so the result is bit-identical; for dense tensors. */
static void adamw_dense(int64_t lo, int64_t hi, float *p, const float *g, float *m, float *v,
                        const craft_adamw_consts *c) {
    const __m512 decay = _mm512_set1_ps(c->decay), b1 = _mm512_set1_ps(c->b1), omb1 = _mm512_set1_ps(c->omb1),
                 b2 = _mm512_set1_ps(c->b2), omb2 = _mm512_set1_ps(c->omb2), bc2 = _mm512_set1_ps(c->bc2_sqrt),
                 eps = _mm512_set1_ps(c->eps), step = _mm512_set1_ps(c->neg_step);
    for (int64_t i = lo; i < hi; i += 16) {
        __mmask16 k = hi - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hi - i)) - 1);
        __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
        __m512 pv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), decay);
        __m512 mv = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, m + i), b1), _mm512_mul_ps(omb1, gv));
        __m512 vv = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + i), b2),
                                  _mm512_mul_ps(_mm512_mul_ps(omb2, gv), gv));
        __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), bc2), eps);
        _mm512_mask_storeu_ps(p + i, k, _mm512_add_ps(pv, _mm512_mul_ps(step, _mm512_div_ps(mv, denom))));
        _mm512_mask_storeu_ps(m + i, k, mv);
        _mm512_mask_storeu_ps(v + i, k, vv);
    }
}
#endif

int cpu_adamw(craft_tensor *param, const craft_tensor *grad, craft_tensor *m, craft_tensor *v,
              const craft_adamw_consts *c) {
#if defined(__AVX512F__)
    if (craft_is_contiguous(param) && craft_is_contiguous(grad) && craft_is_contiguous(m) &&
        craft_is_contiguous(v)) {
        int64_t n = param->numel, chunk = 1 << 14;
        float *p = (float *)craft_elem_ptr(param), *mp = (float *)craft_elem_ptr(m), *vp = (float *)craft_elem_ptr(v);
        const float *g = (const float *)craft_elem_ptr(grad);
#pragma omp parallel for if (n >= 4 * CRAFT_PAR_MIN && !omp_in_parallel()) schedule(static)
        for (int64_t lo = 0; lo < n; lo += chunk) adamw_dense(lo, lo + chunk < n ? lo + chunk : n, p, g, mp, vp, c);
        return CRAFT_OK;
    }
#endif
    const craft_tensor *ts[4] = {param, grad, m, v};
    int64_t st[4][CRAFT_MAX_DIMS];
    char *base[4];
    iter_setup(4, ts, st, base);
    craft_iter(4, param->ndim, param->shape, base, st, adamw_loop, (void *)c, 1);
    return CRAFT_OK;
}

typedef struct {
    float neg_lr, mom, wd;
    int nesterov, has_buf;
} sgd_ctx;

/* p, g[, buf]. torch.optim.SGD with dampening 0:
 *   d = g + wd*p;  buf = mom*buf + d;  d = nesterov ? d + mom*buf : buf;  p += -lr*d
 * A zero buffer on the first step gives torch's buf = d exactly. */
static void sgd_loop(int64_t n, char **ptr, const int64_t *s, void *vctx) {
    const sgd_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float *p = (float *)(ptr[0] + i * s[0]);
        float d = *(const float *)(ptr[1] + i * s[1]);
        if (c->wd != 0) d = d + c->wd * *p;
        if (c->has_buf) {
            float *b = (float *)(ptr[2] + i * s[2]);
            float bv = *b * c->mom + d;
            *b = bv;
            d = c->nesterov ? d + c->mom * bv : bv;
        }
        *p = *p + c->neg_lr * d;
    }
}

int cpu_sgd(craft_tensor *param, const craft_tensor *grad, craft_tensor *buf, float neg_lr, float momentum,
            float weight_decay, int nesterov) {
    sgd_ctx c = {neg_lr, momentum, weight_decay, nesterov, buf != NULL};
    const craft_tensor *ts[3] = {param, grad, buf ? buf : grad};
    int64_t st[3][CRAFT_MAX_DIMS];
    char *base[3];
    iter_setup(3, ts, st, base);
    craft_iter(3, param->ndim, param->shape, base, st, sgd_loop, &c, 1);
    return CRAFT_OK;
}

/* Sum of squares in double over a fixed number of chunks, added in chunk order: the same
 * total for any thread count. */
#define NORM_CHUNKS 64
static double sum_squares(const float *x, int64_t n) {
    double part[NORM_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= CRAFT_PAR_MIN)
    for (int k = 0; k < NORM_CHUNKS; k++) {
        int64_t lo = n * k / NORM_CHUNKS, hi = n * (k + 1) / NORM_CHUNKS;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        part[k] = s;
    }
    double s = 0;
    for (int k = 0; k < NORM_CHUNKS; k++) s += part[k];
    return s;
}

int cpu_sum_squares(const craft_tensor *x, double *out) {
    *out = sum_squares(craft_tensor_data(x), x->numel);
    return CRAFT_OK;
}

typedef struct {
    float d, omd;
} ema_ctx;

static void ema_loop(int64_t n, char **ptr, const int64_t *s, void *vctx) {
    const ema_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float *e = (float *)(ptr[0] + i * s[0]);
        float p = *(const float *)(ptr[1] + i * s[1]);
        *e = c->d * *e + c->omd * p;
    }
}

int cpu_ema(craft_tensor *ema, const craft_tensor *param, float decay, float one_minus_decay) {
    ema_ctx c = {decay, one_minus_decay};
    const craft_tensor *ts[2] = {ema, param};
    int64_t st[2][CRAFT_MAX_DIMS];
    char *base[2];
    iter_setup(2, ts, st, base);
    craft_iter(2, ema->ndim, ema->shape, base, st, ema_loop, &c, 1);
    return CRAFT_OK;
}
