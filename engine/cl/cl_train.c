/* cl_train.c: the random-fill and optimiser kernels on cl devices (kernels_cl/random.cl,
 * kernels_cl/optim.cl). Philox draws follow core/rng.c's mapping, so a (seed, offset) gives
 * the CPU's uniforms bit for bit and, on fp64 devices, its normals; optimiser steps take their
 * constants from the op layer (core/op_optim.c), the same for every device. */
#include "cl/cl_internal.h"
#include <math.h>

/* mode 0 uniform, 1 normal (double formulas; the float ones where the device lacks fp64),
 * 2 normal with the float formulas (for tests of the no-fp64 path). */
int craft_cl_philox_(craft_tensor *t, uint64_t seed, uint64_t offset, int mode) {
    const char *op = mode ? "randn_" : "rand_";
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: tensor is missing", op);
    if (t->dtype != CRAFT_F32 && t->dtype != CRAFT_F64 && t->dtype != CRAFT_F16 && t->dtype != CRAFT_BF16)
        return craft_fail(CRAFT_ETYPE, "%s: tensor %s must be a float dtype (f32, f64, f16, bf16)", op,
                          craft_shape_str(t));
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

int craft_cl_philox(craft_tensor *t, uint64_t seed, uint64_t offset, int normal) {
    return craft_cl_philox_(t, seed, offset, normal ? 1 : 0);
}

/* ------------------------------------------------------------ optimisers ---- */
int craft_cl_adamw(craft_tensor *param, const craft_tensor *grad, craft_tensor *m, craft_tensor *v,
                   const craft_adamw_consts *k) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(param->device, "adamw_step", &d));
    cl_float c[8] = {k->decay, k->b1, k->omb1, k->b2, k->omb2, k->bc2_sqrt, k->eps, k->neg_step};
    cl_arg extra[8];
    for (int i = 0; i < 8; i++) extra[i] = CLA(c[i]);
    const craft_tensor *ts[4] = {param, grad, m, v};
    return cl_elementwise(d, K_adamw, 4, ts, param->ndim, param->shape, 8, extra);
}

int craft_cl_sgd(craft_tensor *param, const craft_tensor *grad, craft_tensor *buf, float neg_lr,
                 float momentum, float weight_decay, int nesterov) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(param->device, "sgd_step", &d));
    cl_float nl = neg_lr, mom = momentum, wd = weight_decay;
    cl_int nest = nesterov ? 1 : 0, hb = buf != NULL;
    cl_arg extra[5] = {CLA(nl), CLA(mom), CLA(wd), CLA(nest), CLA(hb)};
    const craft_tensor *ts[3] = {param, grad, buf ? buf : grad};
    return cl_elementwise(d, K_sgd, 3, ts, param->ndim, param->shape, 5, extra);
}

int craft_cl_ema(craft_tensor *ema, const craft_tensor *param, float decay, float one_minus_decay) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(ema->device, "ema_update", &d));
    cl_float dc = decay, omd = one_minus_decay;
    cl_arg extra[2] = {CLA(dc), CLA(omd)};
    const craft_tensor *ts[2] = {ema, param};
    return cl_elementwise(d, K_ema, 2, ts, ema->ndim, ema->shape, 2, extra);
}

/* a contiguous tensor's sum of squares: in double on the device where it has fp64, rounded to
 * float (one value read back) */
int craft_cl_sum_squares(const craft_tensor *x, double *out) {
    int64_t one = 1;
    craft_tensor *s = cl_new(1, &one, CRAFT_F32, x->device);
    if (!s) return craft_last_status();
    float v = 0;
    int rc = craft_cl_reduce_rows(3, x, 1, x->numel, 0, s);
    if (!rc) rc = craft_cl_read_bytes(s, s->offset, &v, sizeof v);
    craft_tensor_release(s);
    *out = v;
    return rc;
}

/* clip_grad_norm on the device: each tensor's sum of squares into its slot of parts (the
 * reduction above), clip_coef adds them in list order (double with fp64, as the CPU path adds the
 * per-tensor sums) and writes [total, coef] (coef 1 when no clipping is due or the total is not
 * finite), clip_apply multiplies every tensor by coef. The host reads the total only when asked. */
int craft_cl_clip_grad_norm(int n, craft_tensor *const *grads, double max_norm, double *total) {
    int code = 0;
    for (int i = 0; i < n && !code; i++)
        if (grads[i]) code = grads[i]->device;
    if (!code) {
        if (total) *total = 0;
        return CRAFT_OK;
    }
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, "clip_grad_norm", &d));
    int64_t np = n, two = 2;
    craft_tensor *parts = cl_new(1, &np, CRAFT_F32, code), *out = cl_new(1, &two, CRAFT_F32, code);
    int rc = !parts || !out ? craft_last_status() : craft_cl_fill_(parts, 0.0);
    for (int i = 0; i < n && !rc; i++) {
        if (!grads[i] || grads[i]->numel == 0) continue;
        craft_tensor *c = NULL, *slot = NULL;
        rc = craft_contig_f32(grads[i], &c);
        if (!rc && !(slot = craft_alias(parts))) rc = craft_last_status();
        if (!rc) {
            slot->shape[0] = 1;
            slot->numel = 1;
            slot->offset = parts->offset + i;
            rc = craft_cl_reduce_rows(3, c, 1, c->numel, 0, slot);
        }
        craft_tensor_release(c);
        craft_tensor_release(slot);
    }
    if (!rc) {
        cl_mem pm = cl_mem_of(parts), om = cl_mem_of(out);
        cl_long cn = n, poff = parts->offset, ooff = out->offset;
        cl_float mx = (cl_float)max_norm;
        cl_arg args[6] = {CLA(pm), CLA(poff), CLA(cn), CLA(mx), CLA(om), CLA(ooff)};
        rc = cl_launch(d, K_clip_coef, 6, args, 1, 1);
    }
    for (int i = 0; i < n && !rc; i++) {
        if (!grads[i] || grads[i]->numel == 0) continue;
        cl_mem om = cl_mem_of(out);
        cl_long coff = out->offset + 1;
        cl_arg extra[2] = {CLA(om), CLA(coff)};
        const craft_tensor *ts[1] = {grads[i]};
        rc = cl_elementwise(d, K_clip_apply, 1, ts, grads[i]->ndim, grads[i]->shape, 2, extra);
    }
    if (!rc && total) {
        float v = 0;
        rc = craft_cl_read_bytes(out, out->offset, &v, sizeof v);
        *total = v;
    }
    craft_tensor_release(parts);
    craft_tensor_release(out);
    return rc;
}
