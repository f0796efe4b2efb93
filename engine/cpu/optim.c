/* optim.c: optimiser kernels (AdamW, SGD), global gradient-norm clipping and EMA. They update
 * tensors in place, bump the storages' versions (autograd then refuses to backward through a
 * graph that saved an updated tensor) and are never recorded. The arithmetic follows PyTorch's
 * single-tensor float32 code step by step, so a few steps agree to rounding. Tensors may be
 * strided views; the state tensors (m, v, momentum) must be f32 and shaped like the param. */
#include "core/internal.h"
#include <math.h>
#include <omp.h>

static int check_like(const char *op, const char *what, const craft_tensor *t, const craft_tensor *param) {
    CRAFT_TRY(craft_check_f32(op, what, t));
    int bad = t->ndim != param->ndim;
    for (int i = 0; i < param->ndim && !bad; i++) bad = t->shape[i] != param->shape[i];
    if (bad) return craft_fail(CRAFT_ESHAPE, "%s: %s %s does not match param %s", op, what, craft_shape_str(t), craft_shape_str(param));
    return CRAFT_OK;
}

/* Byte strides of up to 4 same-shaped tensors, for craft_iter. */
static void iter_setup(int n, const craft_tensor *const *ts, int64_t (*st)[CRAFT_MAX_DIMS], char **base) {
    for (int i = 0; i < n; i++) {
        craft_broadcast_strides(ts[i], ts[0]->ndim, ts[0]->shape, st[i]);
        base[i] = craft_elem_ptr(ts[i]);
    }
}

/* ---------------------------------------------------------------- AdamW ---- */
typedef struct { float decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step; } adamw_ctx;

/* p, g, m, v. torch.optim.AdamW (amsgrad off):
 *   p *= 1 - lr*wd;  m = m*b1 + (1-b1)*g;  v = v*b2 + (1-b2)*g*g
 *   p += -(lr / (1 - b1^t)) * (m / (sqrt(v) / sqrt(1 - b2^t) + eps)) */
static void adamw_loop(int64_t n, char **ptr, const int64_t *s, void *vctx) {
    const adamw_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float *p = (float *)(ptr[0] + i * s[0]), *m = (float *)(ptr[2] + i * s[2]), *v = (float *)(ptr[3] + i * s[3]);
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

int craft_adamw_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *m, craft_tensor *v,
                     double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step) {
    if (param && param->device != CRAFT_DEVICE_CPU) return craft_cl_adamw_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step);
    CRAFT_TRY(craft_check_f32("adamw_step", "param", param));
    CRAFT_TRY(check_like("adamw_step", "grad", grad, param));
    CRAFT_TRY(check_like("adamw_step", "m (exp_avg)", m, param));
    CRAFT_TRY(check_like("adamw_step", "v (exp_avg_sq)", v, param));
    if (m->storage == v->storage || m->storage == param->storage || v->storage == param->storage)
        return craft_fail(CRAFT_EINVAL, "adamw_step: param, m and v must not share storage");
    if (!(lr >= 0) || !(eps >= 0) || !(weight_decay >= 0) || !isfinite(lr) || !isfinite(eps) || !isfinite(weight_decay))
        return craft_fail(CRAFT_EINVAL, "adamw_step: lr %g, eps %g, weight_decay %g must be finite and >= 0", lr, eps, weight_decay);
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        return craft_fail(CRAFT_EINVAL, "adamw_step: betas (%g, %g) must be in [0, 1)", beta1, beta2);
    if (step < 1) return craft_fail(CRAFT_EINVAL, "adamw_step: step %lld must be >= 1 (the first step is 1)", (long long)step);
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    adamw_ctx c = {(float)(1.0 - lr * weight_decay), (float)beta1, (float)(1.0 - beta1), (float)beta2,
                   (float)(1.0 - beta2), (float)sqrt(bc2), (float)eps, (float)(-(lr / bc1))};
    const craft_tensor *ts[4] = {param, grad, m, v};
    int64_t st[4][CRAFT_MAX_DIMS];
    char *base[4];
    iter_setup(4, ts, st, base);
    craft_iter(4, param->ndim, param->shape, base, st, adamw_loop, &c, 1);
    param->storage->version++;
    m->storage->version++;
    v->storage->version++;
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- SGD ------ */
typedef struct { float neg_lr, mom, wd; int nesterov, has_buf; } sgd_ctx;

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

int craft_sgd_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *momentum_buf,
                   double lr, double momentum, double weight_decay, int nesterov) {
    if (param && param->device != CRAFT_DEVICE_CPU) return craft_cl_sgd_step(param, grad, momentum_buf, lr, momentum, weight_decay, nesterov);
    CRAFT_TRY(craft_check_f32("sgd_step", "param", param));
    CRAFT_TRY(check_like("sgd_step", "grad", grad, param));
    if (!(lr >= 0) || !(momentum >= 0) || !(weight_decay >= 0) || !isfinite(lr) || !isfinite(momentum) || !isfinite(weight_decay))
        return craft_fail(CRAFT_EINVAL, "sgd_step: lr %g, momentum %g, weight_decay %g must be finite and >= 0", lr, momentum, weight_decay);
    if (nesterov && momentum <= 0)
        return craft_fail(CRAFT_EINVAL, "sgd_step: nesterov needs a positive momentum (got %g)", momentum);
    int has_buf = momentum != 0;
    if (has_buf) {
        if (!momentum_buf) return craft_fail(CRAFT_EINVAL, "sgd_step: momentum %g needs a momentum buffer (zeros before the first step)", momentum);
        CRAFT_TRY(check_like("sgd_step", "momentum buffer", momentum_buf, param));
        if (momentum_buf->storage == param->storage)
            return craft_fail(CRAFT_EINVAL, "sgd_step: the momentum buffer must not share storage with param");
    }
    sgd_ctx c = {(float)(-lr), (float)momentum, (float)weight_decay, nesterov ? 1 : 0, has_buf};
    const craft_tensor *ts[3] = {param, grad, has_buf ? momentum_buf : grad};
    int64_t st[3][CRAFT_MAX_DIMS];
    char *base[3];
    iter_setup(3, ts, st, base);
    craft_iter(3, param->ndim, param->shape, base, st, sgd_loop, &c, 1);
    param->storage->version++;
    if (has_buf) momentum_buf->storage->version++;
    return CRAFT_OK;
}

/* ------------------------------------------------------- clip_grad_norm ---- */
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

/* torch.nn.utils.clip_grad_norm_ (norm_type 2): total = sqrt(sum of squares of every grad),
 * coef = max_norm / (total + 1e-6), and the grads are scaled by coef when coef < 1. NULL
 * entries (params without a gradient) are skipped. Unlike torch, a non-finite total leaves the
 * grads untouched (it is still returned, so the caller can skip the step). */
int craft_clip_grad_norm(int n, craft_tensor **grads, double max_norm, double *total_norm) {
    for (int i = 0; grads && i < n; i++)
        if (grads[i] && grads[i]->device != CRAFT_DEVICE_CPU) return craft_cl_clip_grad_norm(n, grads, max_norm, total_norm);
    if (n < 0 || (n > 0 && !grads)) return craft_fail(CRAFT_EINVAL, "clip_grad_norm: %d grads", n);
    if (!(max_norm >= 0)) return craft_fail(CRAFT_EINVAL, "clip_grad_norm: max_norm %g must be >= 0", max_norm);
    for (int i = 0; i < n; i++)
        if (grads[i]) {
            char what[32];
            snprintf(what, sizeof what, "grad %d", i);
            CRAFT_TRY(craft_check_f32("clip_grad_norm", what, grads[i]));
        }
    double ss = 0;
    for (int i = 0; i < n; i++) {
        if (!grads[i] || grads[i]->numel == 0) continue;
        craft_tensor *c;
        CRAFT_TRY(craft_contig_f32(grads[i], &c));
        ss += sum_squares(craft_tensor_data(c), c->numel);
        craft_tensor_release(c);
    }
    double total = sqrt(ss);
    if (total_norm) *total_norm = total;
    if (!isfinite(total)) return CRAFT_OK;
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0)
        for (int i = 0; i < n; i++)
            if (grads[i]) CRAFT_TRY(craft_scale_(grads[i], coef));   /* bumps the version */
    return CRAFT_OK;
}

/* ------------------------------------------------------------------ EMA ---- */
typedef struct { float d, omd; } ema_ctx;

static void ema_loop(int64_t n, char **ptr, const int64_t *s, void *vctx) {
    const ema_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float *e = (float *)(ptr[0] + i * s[0]);
        float p = *(const float *)(ptr[1] + i * s[1]);
        *e = c->d * *e + c->omd * p;
    }
}

/* ema = decay * ema + (1 - decay) * param, in float32 with decay and 1 - decay rounded to
 * float first (1 - decay computed in double). */
int craft_ema_update(craft_tensor *ema, const craft_tensor *param, double decay) {
    if (ema && ema->device != CRAFT_DEVICE_CPU) return craft_cl_ema_update(ema, param, decay);
    CRAFT_TRY(craft_check_f32("ema_update", "ema", ema));
    if (!param) return craft_fail(CRAFT_EINVAL, "ema_update: param is missing");
    CRAFT_TRY(craft_check_f32("ema_update", "param", param));
    int bad = ema->ndim != param->ndim;
    for (int i = 0; i < param->ndim && !bad; i++) bad = ema->shape[i] != param->shape[i];
    if (bad) return craft_fail(CRAFT_ESHAPE, "ema_update: ema %s does not match param %s", craft_shape_str(ema), craft_shape_str(param));
    if (!(decay >= 0 && decay <= 1)) return craft_fail(CRAFT_EINVAL, "ema_update: decay %g must be in [0, 1]", decay);
    ema_ctx c = {(float)decay, (float)(1.0 - decay)};
    const craft_tensor *ts[2] = {ema, param};
    int64_t st[2][CRAFT_MAX_DIMS];
    char *base[2];
    iter_setup(2, ts, st, base);
    craft_iter(2, ema->ndim, ema->shape, base, st, ema_loop, &c, 1);
    ema->storage->version++;
    return CRAFT_OK;
}
