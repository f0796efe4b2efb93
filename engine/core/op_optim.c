/* op_optim.c: optimiser steps (AdamW, SGD), global gradient-norm clipping and EMA, for every
 * device. They update tensors in place, bump the storages' versions (autograd then refuses to
 * backward through a graph that saved an updated tensor) and are never recorded. The
 * arithmetic follows PyTorch's single-tensor float32 code step by step, with the per-step
 * constants computed here once in double, so every device gets the same constants. Tensors
 * may be strided views; the state tensors (m, v, momentum) must be f32, shaped like the param
 * and on its device. */
#include "core/backend.h"
#include <math.h>
#include <stdio.h>

static int check_like(const char *op, const char *what, const craft_tensor *t, const craft_tensor *param) {
    CRAFT_TRY(craft_want(op, what, t, param->device));
    int bad = t->ndim != param->ndim;
    for (int i = 0; i < param->ndim && !bad; i++) bad = t->shape[i] != param->shape[i];
    if (bad)
        return craft_fail(CRAFT_ESHAPE, "%s: %s %s does not match param %s", op, what, craft_shape_str(t),
                          craft_shape_str(param));
    return CRAFT_OK;
}

int craft_adamw_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *m, craft_tensor *v,
                     double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step) {
    const char *op = "adamw_step";
    const craft_kernels *k;
    if (!param) return craft_fail(CRAFT_EINVAL, "%s: param is missing", op);
    CRAFT_TRY(craft_want(op, "param", param, param->device));
    CRAFT_TRY(check_like(op, "grad", grad, param));
    CRAFT_TRY(check_like(op, "m (exp_avg)", m, param));
    CRAFT_TRY(check_like(op, "v (exp_avg_sq)", v, param));
    if (m->storage == v->storage || m->storage == param->storage || v->storage == param->storage)
        return craft_fail(CRAFT_EINVAL, "%s: param, m and v must not share storage", op);
    if (!(lr >= 0) || !(eps >= 0) || !(weight_decay >= 0) || !isfinite(lr) || !isfinite(eps) ||
        !isfinite(weight_decay))
        return craft_fail(CRAFT_EINVAL, "%s: lr %g, eps %g, weight_decay %g must be finite and >= 0", op, lr,
                          eps, weight_decay);
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        return craft_fail(CRAFT_EINVAL, "%s: betas (%g, %g) must be in [0, 1)", op, beta1, beta2);
    if (step < 1)
        return craft_fail(CRAFT_EINVAL, "%s: step %lld must be >= 1 (the first step is 1)", op,
                          (long long)step);
    CRAFT_TRY(craft_kernels_for(param->device, CRAFT_K_adamw, CRAFT_F32, op, &k));
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    craft_adamw_consts c = {(float)(1.0 - lr * weight_decay),
                            (float)beta1,
                            (float)(1.0 - beta1),
                            (float)beta2,
                            (float)(1.0 - beta2),
                            (float)sqrt(bc2),
                            (float)eps,
                            (float)(-(lr / bc1))};
    CRAFT_TRY(k->adamw(param, grad, m, v, &c));
    param->storage->version++;
    m->storage->version++;
    v->storage->version++;
    return CRAFT_OK;
}

int craft_sgd_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *momentum_buf, double lr,
                   double momentum, double weight_decay, int nesterov) {
    const char *op = "sgd_step";
    const craft_kernels *k;
    if (!param) return craft_fail(CRAFT_EINVAL, "%s: param is missing", op);
    CRAFT_TRY(craft_want(op, "param", param, param->device));
    CRAFT_TRY(check_like(op, "grad", grad, param));
    if (!(lr >= 0) || !(momentum >= 0) || !(weight_decay >= 0) || !isfinite(lr) || !isfinite(momentum) ||
        !isfinite(weight_decay))
        return craft_fail(CRAFT_EINVAL, "%s: lr %g, momentum %g, weight_decay %g must be finite and >= 0", op,
                          lr, momentum, weight_decay);
    if (nesterov && momentum <= 0)
        return craft_fail(CRAFT_EINVAL, "%s: nesterov needs a positive momentum (got %g)", op, momentum);
    int has_buf = momentum != 0;
    if (has_buf) {
        if (!momentum_buf)
            return craft_fail(CRAFT_EINVAL,
                              "%s: momentum %g needs a momentum buffer (zeros before the first step)", op,
                              momentum);
        CRAFT_TRY(check_like(op, "momentum buffer", momentum_buf, param));
        if (momentum_buf->storage == param->storage)
            return craft_fail(CRAFT_EINVAL, "%s: the momentum buffer must not share storage with param", op);
    }
    CRAFT_TRY(craft_kernels_for(param->device, CRAFT_K_sgd, CRAFT_F32, op, &k));
    CRAFT_TRY(k->sgd(param, grad, has_buf ? momentum_buf : NULL, (float)(-lr), (float)momentum,
                     (float)weight_decay, nesterov ? 1 : 0));
    param->storage->version++;
    if (has_buf) momentum_buf->storage->version++;
    return CRAFT_OK;
}

/* torch.nn.utils.clip_grad_norm_ (norm_type 2): total = sqrt(sum of squares of every grad),
 * coef = max_norm / (total + 1e-6), and the grads are scaled by coef when coef < 1. NULL
 * entries (params without a gradient) are skipped; grads may be on different devices (each
 * tensor's sum of squares on its own, added in double in list order). Unlike torch, a
 * non-finite total leaves the grads untouched (it is still returned, so the caller can skip
 * the step). */
int craft_clip_grad_norm(int n, craft_tensor **grads, double max_norm, double *total_norm) {
    if (n < 0 || (n > 0 && !grads)) return craft_fail(CRAFT_EINVAL, "clip_grad_norm: %d grads", n);
    if (!(max_norm >= 0))
        return craft_fail(CRAFT_EINVAL, "clip_grad_norm: max_norm %g must be >= 0", max_norm);
    for (int i = 0; i < n; i++)
        if (grads[i]) {
            char what[32];
            snprintf(what, sizeof what, "grad %d", i);
            CRAFT_TRY(craft_want("clip_grad_norm", what, grads[i], grads[i]->device));
        }
    /* all on one device whose back end clips in place: no read per tensor, at most the total's */
    int dev = -1;
    for (int i = 0; i < n && dev != -2; i++)
        if (grads[i]) dev = dev == -1 || dev == grads[i]->device ? grads[i]->device : -2;
    if (dev > 0 && craft_device_supports(dev, CRAFT_K_clip_grad_norm, CRAFT_F32)) {
        const craft_kernels *k;
        CRAFT_TRY(craft_kernels_for(dev, CRAFT_K_clip_grad_norm, CRAFT_F32, "clip_grad_norm", &k));
        CRAFT_TRY(k->clip_grad_norm(n, grads, max_norm, total_norm));
        for (int i = 0; i < n; i++)
            if (grads[i]) grads[i]->storage->version++; /* scaled, or by 1 */
        return CRAFT_OK;
    }
    double ss = 0;
    for (int i = 0; i < n; i++) {
        if (!grads[i] || grads[i]->numel == 0) continue;
        const craft_kernels *k;
        CRAFT_TRY(craft_kernels_for(grads[i]->device, CRAFT_K_sum_squares, CRAFT_F32, "clip_grad_norm", &k));
        craft_tensor *c;
        CRAFT_TRY(craft_contig_f32(grads[i], &c));
        double s = 0;
        int rc = k->sum_squares(c, &s);
        craft_tensor_release(c);
        if (rc) return rc;
        ss += s;
    }
    double total = sqrt(ss);
    if (total_norm) *total_norm = total;
    if (!isfinite(total)) return CRAFT_OK;
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0)
        for (int i = 0; i < n; i++)
            if (grads[i]) CRAFT_TRY(craft_scale_(grads[i], coef)); /* bumps the version */
    return CRAFT_OK;
}

/* ema = decay * ema + (1 - decay) * param, in float32 with decay and 1 - decay rounded to
 * float first (1 - decay computed in double). */
int craft_ema_update(craft_tensor *ema, const craft_tensor *param, double decay) {
    const craft_kernels *k;
    if (!ema) return craft_fail(CRAFT_EINVAL, "ema_update: ema is missing");
    CRAFT_TRY(craft_want("ema_update", "ema", ema, ema->device));
    if (!param) return craft_fail(CRAFT_EINVAL, "ema_update: param is missing");
    CRAFT_TRY(craft_want("ema_update", "param", param, ema->device));
    int bad = ema->ndim != param->ndim;
    for (int i = 0; i < param->ndim && !bad; i++) bad = ema->shape[i] != param->shape[i];
    if (bad)
        return craft_fail(CRAFT_ESHAPE, "ema_update: ema %s does not match param %s", craft_shape_str(ema),
                          craft_shape_str(param));
    if (!(decay >= 0 && decay <= 1))
        return craft_fail(CRAFT_EINVAL, "ema_update: decay %g must be in [0, 1]", decay);
    CRAFT_TRY(craft_kernels_for(ema->device, CRAFT_K_ema, CRAFT_F32, "ema_update", &k));
    CRAFT_TRY(k->ema(ema, param, (float)decay, (float)(1.0 - decay)));
    ema->storage->version++;
    return CRAFT_OK;
}
