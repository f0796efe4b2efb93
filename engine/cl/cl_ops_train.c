/* cl_ops_train.c: random fills and optimiser steps on cl devices (kernels_cl/random.cl,
 * kernels_cl/optim.cl). Philox draws follow engine/rng.c's mapping, so a (seed, offset) gives
 * the CPU's uniforms bit for bit and, on fp64 devices, its normals; optimiser steps take their
 * constants from the same double expressions as engine/optim.c. */
#include "cl/cl_internal.h"
#include <math.h>

/* mode 0 uniform, 1 normal (double formulas; the float ones where the device lacks fp64),
 * 2 normal with the float formulas (for tests of the no-fp64 path). */
int craft_cl_philox_(craft_tensor *t, uint64_t seed, uint64_t offset, int mode) {
    const char *op = mode ? "randn_" : "rand_";
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: tensor is missing", op);
    if (t->dtype != CRAFT_F32 && t->dtype != CRAFT_F64 && t->dtype != CRAFT_F16 && t->dtype != CRAFT_BF16)
        return craft_fail(CRAFT_ETYPE, "%s: tensor %s must be a float dtype (f32, f64, f16, bf16)", op, craft_shape_str(t));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(t->device, op, &d));
    if (mode == 1 && !d->info.fp64) mode = 2;
    craft_tensor *y = NULL;
    int direct = t->dtype == CRAFT_F32 && craft_is_contiguous(t);
    if (direct) y = craft_tensor_retain(t);
    else if (!(y = cl_new(t->ndim, t->shape, CRAFT_F32, t->device))) return craft_last_status();
    int rc = CRAFT_OK;
    if (t->numel > 0) {
        cl_mem m = cl_mem_of(y);
        cl_long yoff = y->offset, n = t->numel;
        cl_ulong s = seed, o = offset;
        cl_int md = mode;
        cl_arg args[6] = {CLA(m), CLA(yoff), CLA(n), CLA(s), CLA(o), CLA(md)};
        int64_t blocks = (int64_t)(((offset & 3) + (uint64_t)t->numel + 3) >> 2);
        rc = cl_launch(d, K_philox_fill, 6, args, cl_global_for(blocks), 0);
    }
    if (!rc && !direct) rc = craft_cl_copy_(t, y);
    if (!rc && direct) t->storage->version++;
    craft_tensor_release(y);
    return rc;
}

int craft_cl_randn_(craft_tensor *t, uint64_t seed, uint64_t offset) { return craft_cl_philox_(t, seed, offset, 1); }
int craft_cl_rand_(craft_tensor *t, uint64_t seed, uint64_t offset) { return craft_cl_philox_(t, seed, offset, 0); }

/* ------------------------------------------------------------ optimisers ---- */
static int check_like(const char *op, const char *what, const craft_tensor *t, const craft_tensor *param) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, what);
    if (t->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s is %s, expected f32", op, what, craft_shape_str(t));
    if (t->device != param->device)
        return craft_fail(CRAFT_EDEVICE, "%s: %s is on device %d, param on device %d (move it with :to())", op, what,
                          t->device, param->device);
    int bad = t->ndim != param->ndim;
    for (int i = 0; i < param->ndim && !bad; i++) bad = t->shape[i] != param->shape[i];
    if (bad) return craft_fail(CRAFT_ESHAPE, "%s: %s %s does not match param %s", op, what, craft_shape_str(t), craft_shape_str(param));
    return CRAFT_OK;
}

int craft_cl_adamw_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *m, craft_tensor *v, double lr,
                        double beta1, double beta2, double eps, double weight_decay, int64_t step) {
    const char *op = "adamw_step";
    if (!param || param->dtype != CRAFT_F32) return craft_fail(CRAFT_ETYPE, "%s: param must be an f32 tensor", op);
    CRAFT_TRY(check_like(op, "grad", grad, param));
    CRAFT_TRY(check_like(op, "m (exp_avg)", m, param));
    CRAFT_TRY(check_like(op, "v (exp_avg_sq)", v, param));
    if (m->storage == v->storage || m->storage == param->storage || v->storage == param->storage)
        return craft_fail(CRAFT_EINVAL, "%s: param, m and v must not share storage", op);
    if (!(lr >= 0) || !(eps >= 0) || !(weight_decay >= 0) || !isfinite(lr) || !isfinite(eps) || !isfinite(weight_decay))
        return craft_fail(CRAFT_EINVAL, "%s: lr %g, eps %g, weight_decay %g must be finite and >= 0", op, lr, eps, weight_decay);
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        return craft_fail(CRAFT_EINVAL, "%s: betas (%g, %g) must be in [0, 1)", op, beta1, beta2);
    if (step < 1) return craft_fail(CRAFT_EINVAL, "%s: step %lld must be >= 1 (the first step is 1)", op, (long long)step);
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(param->device, op, &d));
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    cl_float c[8] = {(float)(1.0 - lr * weight_decay), (float)beta1, (float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2),
                     (float)sqrt(bc2), (float)eps, (float)(-(lr / bc1))};
    cl_arg extra[8];
    for (int i = 0; i < 8; i++) extra[i] = CLA(c[i]);
    const craft_tensor *ts[4] = {param, grad, m, v};
    CRAFT_TRY(cl_elementwise(d, K_adamw, 4, ts, param->ndim, param->shape, 8, extra));
    param->storage->version++;
    m->storage->version++;
    v->storage->version++;
    return CRAFT_OK;
}

int craft_cl_sgd_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *momentum_buf, double lr, double momentum,
                      double weight_decay, int nesterov) {
    const char *op = "sgd_step";
    if (!param || param->dtype != CRAFT_F32) return craft_fail(CRAFT_ETYPE, "%s: param must be an f32 tensor", op);
    CRAFT_TRY(check_like(op, "grad", grad, param));
    if (!(lr >= 0) || !(momentum >= 0) || !(weight_decay >= 0) || !isfinite(lr) || !isfinite(momentum) || !isfinite(weight_decay))
        return craft_fail(CRAFT_EINVAL, "%s: lr %g, momentum %g, weight_decay %g must be finite and >= 0", op, lr, momentum, weight_decay);
    if (nesterov && momentum <= 0)
        return craft_fail(CRAFT_EINVAL, "%s: nesterov needs a positive momentum (got %g)", op, momentum);
    int has_buf = momentum != 0;
    if (has_buf) {
        if (!momentum_buf) return craft_fail(CRAFT_EINVAL, "%s: momentum %g needs a momentum buffer (zeros before the first step)", op, momentum);
        CRAFT_TRY(check_like(op, "momentum buffer", momentum_buf, param));
        if (momentum_buf->storage == param->storage)
            return craft_fail(CRAFT_EINVAL, "%s: the momentum buffer must not share storage with param", op);
    }
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(param->device, op, &d));
    cl_float neg_lr = (float)(-lr), mom = (float)momentum, wd = (float)weight_decay;
    cl_int nest = nesterov ? 1 : 0, hb = has_buf;
    cl_arg extra[5] = {CLA(neg_lr), CLA(mom), CLA(wd), CLA(nest), CLA(hb)};
    const craft_tensor *ts[3] = {param, grad, has_buf ? momentum_buf : grad};
    CRAFT_TRY(cl_elementwise(d, K_sgd, 3, ts, param->ndim, param->shape, 5, extra));
    param->storage->version++;
    if (has_buf) momentum_buf->storage->version++;
    return CRAFT_OK;
}

int craft_cl_ema_update(craft_tensor *ema, const craft_tensor *param, double decay) {
    if (!ema || ema->dtype != CRAFT_F32) return craft_fail(CRAFT_ETYPE, "ema_update: ema must be an f32 tensor");
    CRAFT_TRY(check_like("ema_update", "param", param, ema));
    if (!(decay >= 0 && decay <= 1)) return craft_fail(CRAFT_EINVAL, "ema_update: decay %g must be in [0, 1]", decay);
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(ema->device, "ema_update", &d));
    cl_float dc = (float)decay, omd = (float)(1.0 - decay);
    cl_arg extra[2] = {CLA(dc), CLA(omd)};
    const craft_tensor *ts[2] = {ema, param};
    CRAFT_TRY(cl_elementwise(d, K_ema, 2, ts, ema->ndim, ema->shape, 2, extra));
    ema->storage->version++;
    return CRAFT_OK;
}

/* craft_clip_grad_norm for grads on any devices: each tensor's sum of squares (in double on
 * the device where it has fp64, rounded to float per tensor; in double on the CPU), added in
 * double in list order. */
int craft_cl_clip_grad_norm(int n, craft_tensor **grads, double max_norm, double *total_norm) {
    if (n < 0 || (n > 0 && !grads)) return craft_fail(CRAFT_EINVAL, "clip_grad_norm: %d grads", n);
    if (!(max_norm >= 0)) return craft_fail(CRAFT_EINVAL, "clip_grad_norm: max_norm %g must be >= 0", max_norm);
    for (int i = 0; i < n; i++)
        if (grads[i] && grads[i]->dtype != CRAFT_F32)
            return craft_fail(CRAFT_ETYPE, "clip_grad_norm: grad %d is %s, expected f32", i, craft_shape_str(grads[i]));
    double ss = 0;
    for (int i = 0; i < n; i++) {
        craft_tensor *g = grads[i], *s = NULL;
        if (!g || g->numel == 0) continue;
        if (g->device == CRAFT_DEVICE_CPU) {
            craft_tensor *c;
            CRAFT_TRY(craft_contig_f32(g, &c));
            const float *p = craft_tensor_data(c);
            for (int64_t k = 0; k < c->numel; k++) ss += (double)p[k] * (double)p[k];
            craft_tensor_release(c);
            continue;
        }
        CRAFT_TRY(craft_cl_reduce(3, g, 0, NULL, 0, 0, &s));
        float v = 0;
        int rc = craft_cl_read_bytes(s, s->offset, &v, sizeof v);
        craft_tensor_release(s);
        if (rc) return rc;
        ss += v;
    }
    double total = sqrt(ss);
    if (total_norm) *total_norm = total;
    if (!isfinite(total)) return CRAFT_OK;
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0)
        for (int i = 0; i < n; i++)
            if (grads[i]) CRAFT_TRY(craft_scale_(grads[i], coef));
    return CRAFT_OK;
}
