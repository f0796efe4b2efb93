/* cl_ops_loss.c: l2_normalize, cosine_similarity, cross_entropy and mse_loss on cl devices
 * (kernels_cl/loss.cl), forward and backward, with the CPU ops' checks and semantics
 * (engine/ops_loss.c; PyTorch's). Reductions along a dim are lines of the dense [outer, n,
 * inner] input; loss reductions to a scalar go through craft_cl_reduce (double accumulation
 * with fp64). cross_entropy reads its targets back to check every index against the class
 * count before a kernel uses it (an out-of-range index would read outside the buffer); a CPU
 * target, mse_loss's CPU operand or cosine_similarity's CPU input is copied over (the latter
 * two differentiably). */
#include "cl/cl_internal.h"
#include <stdlib.h>

/* The device of a two-operand op (the first cl one) and both operands on it (new references). */
static int pair_on_device(const char *op, const craft_tensor *a, const craft_tensor *b, craft_tensor **ad, craft_tensor **bd) {
    if (!a || !b) return craft_fail(CRAFT_EINVAL, "%s: operand missing", op);
    int code = a->device != CRAFT_DEVICE_CPU ? a->device : b->device;
    *ad = *bd = NULL;
    int rc = cl_nn_bring(op, "first input", a, code, ad);
    if (!rc) rc = cl_nn_bring(op, "second input", b, code, bd);
    if (!rc) rc = cl_nn_want(op, "first input", *ad, code);
    if (!rc) rc = cl_nn_want(op, "second input", *bd, code);
    if (rc) { craft_tensor_release(*ad); craft_tensor_release(*bd); *ad = *bd = NULL; }
    return rc;
}

/* ---------------------------------------------------------------- l2_normalize */
/* saved: y, den; iarg: outer, n, inner */
static int l2n_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *y = nd->saved[0], *den = nd->saved[1], *g;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "l2_normalize backward", &d));
    CRAFT_TRY(cl_nn_grad(gout[0], y->device, &g));
    craft_tensor *gx = cl_new(y->ndim, y->shape, CRAFT_F32, y->device);
    int rc = gx ? CRAFT_OK : craft_last_status();
    if (!rc && y->numel > 0) {
        cl_mem ym = cl_mem_of(y), dm = cl_mem_of(den), gm = cl_mem_of(g), om = cl_mem_of(gx);
        cl_long goff = g->offset, outer = nd->iarg[0], n = nd->iarg[1], inner = nd->iarg[2];
        cl_arg args[8] = {CLA(ym), CLA(dm), CLA(gm), CLA(goff), CLA(om), CLA(outer), CLA(n), CLA(inner)};
        rc = cl_nn_lines(d, K_l2n_bwd, 8, args, outer * inner, n, inner);
    }
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_cl_op_l2_normalize(const craft_tensor *x, int dim, double eps, craft_tensor **out) {
    if (!x) return craft_fail(CRAFT_EINVAL, "l2_normalize: input is missing");
    CRAFT_TRY(cl_nn_want("l2_normalize", "input", x, x->device));
    int dd;
    CRAFT_TRY(craft_normalize_dim("l2_normalize", dim, x->ndim, &dd));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(x->device, "l2_normalize", &d));
    int64_t outer, n, inner;
    craft_split_at(x->ndim, x->shape, dd, &outer, &n, &inner);
    int64_t nden = craft_mul_sat(outer, inner);
    craft_tensor *xc = NULL, *y = cl_new(x->ndim, x->shape, CRAFT_F32, x->device), *den = cl_new(1, &nden, CRAFT_F32, x->device);
    int rc = y && den ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc && x->numel > 0) {
        cl_mem xm = cl_mem_of(xc), ym = cl_mem_of(y), dm = cl_mem_of(den);
        cl_long xoff = xc->offset, co = outer, cn = n, ci = inner;
        cl_float e = (cl_float)eps;
        cl_arg args[8] = {CLA(xm), CLA(xoff), CLA(ym), CLA(dm), CLA(co), CLA(cn), CLA(ci), CLA(e)};
        rc = cl_nn_lines(d, K_l2n_fwd, 8, args, outer * inner, n, inner);
    }
    if (!rc) {
        const craft_tensor *save[2] = {y, den};
        int64_t iargs[3] = {outer, n, inner};
        rc = craft_record("l2_normalize", 1, &x, y, l2n_backward, 2, save, NULL, 0, iargs, 3, NULL);
    }
    craft_tensor_release(xc);
    craft_tensor_release(den);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- cosine_similarity */
/* saved: a, b (broadcast, contiguous), cos, norms [2, lines]; iarg: outer, n, inner */
static int cos_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = nd->saved[0], *b = nd->saved[1], *y = nd->saved[2], *nr = nd->saved[3], *g;
    int code = a->device;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, "cosine_similarity backward", &d));
    CRAFT_TRY(cl_nn_grad(gout[0], code, &g));
    craft_tensor *ga = cl_new(a->ndim, a->shape, CRAFT_F32, code), *gb = cl_new(a->ndim, a->shape, CRAFT_F32, code);
    int rc = ga && gb ? CRAFT_OK : craft_last_status();
    if (!rc && a->numel > 0) {
        cl_mem am = cl_mem_of(a), bm = cl_mem_of(b), ym = cl_mem_of(y), nm = cl_mem_of(nr), gm = cl_mem_of(g);
        cl_mem gam = cl_mem_of(ga), gbm = cl_mem_of(gb);
        cl_long aoff = a->offset, boff = b->offset, goff = g->offset, outer = nd->iarg[0], n = nd->iarg[1], inner = nd->iarg[2];
        cl_arg args[13] = {CLA(am), CLA(aoff), CLA(bm), CLA(boff), CLA(ym), CLA(nm), CLA(gm), CLA(goff), CLA(gam), CLA(gbm),
                           CLA(outer), CLA(n), CLA(inner)};
        rc = cl_launch(d, K_cos_bwd, 13, args, cl_global_for(a->numel), 0);
    }
    if (!rc && CRAFT_NEEDS_GRAD(nd, 0)) rc = cl_sum_to_shape(ga, nd->edges[0].ndim, nd->edges[0].shape, &gin[0]);
    if (!rc && CRAFT_NEEDS_GRAD(nd, 1)) rc = cl_sum_to_shape(gb, nd->edges[1].ndim, nd->edges[1].shape, &gin[1]);
    craft_tensor_release(ga);
    craft_tensor_release(gb);
    craft_tensor_release(g);
    return rc;
}

int craft_cl_op_cosine_similarity(const craft_tensor *a_in, const craft_tensor *b_in, int dim, double eps, craft_tensor **out) {
    const char *op = "cosine_similarity";
    craft_tensor *a, *b;
    CRAFT_TRY(pair_on_device(op, a_in, b_in, &a, &b));
    int code = a->device, nd = 0, dd = 0;
    int64_t shape[CRAFT_MAX_DIMS];
    craft_cl_dev *d = NULL;
    craft_tensor *ac = NULL, *bc = NULL, *y = NULL, *nr = NULL;
    int rc = cl_dev_get(code, op, &d);
    if (!rc) rc = craft_cosine_operands(a, b, dim, &nd, shape, &dd, &ac, &bc);
    int64_t outer = 1, n = 1, inner = 1;
    if (!rc) {
        craft_split_at(nd, shape, dd, &outer, &n, &inner);
        int64_t oshape[CRAFT_MAX_DIMS], two = craft_mul_sat(2, craft_mul_sat(outer, inner));
        int ond = 0;
        for (int i = 0; i < nd; i++) if (i != dd) oshape[ond++] = shape[i];
        y = cl_new(ond, oshape, CRAFT_F32, code);
        nr = cl_new(1, &two, CRAFT_F32, code);
        if (!y || !nr) rc = craft_last_status();
    }
    if (!rc && outer * inner > 0) {
        cl_mem am = cl_mem_of(ac), bm = cl_mem_of(bc), ym = cl_mem_of(y), nm = cl_mem_of(nr);
        cl_long aoff = ac->offset, boff = bc->offset, co = outer, cn = n, ci = inner;
        cl_float e2 = (cl_float)(eps * eps);
        cl_arg args[10] = {CLA(am), CLA(aoff), CLA(bm), CLA(boff), CLA(ym), CLA(nm), CLA(co), CLA(cn), CLA(ci), CLA(e2)};
        rc = cl_nn_lines(d, K_cos_fwd, 10, args, outer * inner, n, inner);
    }
    if (!rc) {
        const craft_tensor *ins[2] = {a, b}, *save[4] = {ac, bc, y, nr};
        int64_t iargs[3] = {outer, n, inner};
        rc = craft_record(op, 2, ins, y, cos_backward, 4, save, NULL, 0, iargs, 3, NULL);
    }
    craft_tensor_release(a);
    craft_tensor_release(b);
    craft_tensor_release(ac);
    craft_tensor_release(bc);
    craft_tensor_release(nr);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- cross_entropy */
/* saved: log-probabilities [N, C, inner], targets (i64, dense, device); sarg: smoothing, scale
 * of g; iarg: N, C, inner, reduction */
static int ce_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *lp = nd->saved[0], *tg = nd->saved[1], *g;
    int code = lp->device;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, "cross_entropy backward", &d));
    CRAFT_TRY(cl_nn_grad(gout[0], code, &g));
    craft_tensor *gx = cl_new(lp->ndim, lp->shape, CRAFT_F32, code);
    int rc = gx ? CRAFT_OK : craft_last_status();
    cl_long N = nd->iarg[0], C = nd->iarg[1], inner = nd->iarg[2];
    if (!rc && N * C * inner > 0) {
        cl_float eps = (cl_float)nd->sarg[0], on = 1.0f - eps, off = eps / (float)C, gscale = (cl_float)nd->sarg[1];
        cl_int reduced = nd->iarg[3] != 0;
        cl_mem lm = cl_mem_of(lp), tm = cl_mem_of(tg), gm = cl_mem_of(g), om = cl_mem_of(gx);
        cl_long goff = g->offset;
        cl_arg args[12] = {CLA(lm), CLA(tm), CLA(gm), CLA(goff), CLA(om), CLA(N), CLA(C), CLA(inner), CLA(on), CLA(off),
                           CLA(gscale), CLA(reduced)};
        rc = cl_launch(d, K_ce_bwd, 12, args, cl_global_for(N * C * inner), 0);
    }
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

/* targets as a dense i64 device tensor, every index checked against C on the host */
static int targets_on_device(const craft_tensor *logits, const craft_tensor *targets, int64_t C, int code, craft_tensor **out) {
    size_t nb = (size_t)(targets->numel ? targets->numel : 1) * sizeof(int64_t);
    int64_t *tp = malloc(nb);
    if (!tp) return craft_fail(CRAFT_ENOMEM, "cross_entropy: out of host memory for %lld targets", (long long)targets->numel);
    int rc = craft_cross_entropy_targets(logits, targets, C, tp);
    craft_tensor *t = NULL;
    if (!rc && !(t = cl_new(targets->ndim, targets->shape, CRAFT_I64, code))) rc = craft_last_status();
    if (!rc) rc = craft_tensor_write(t, CRAFT_I64, tp, (size_t)targets->numel * sizeof(int64_t));
    free(tp);
    if (rc) { craft_tensor_release(t); return rc; }
    *out = t;
    return CRAFT_OK;
}

int craft_cl_op_cross_entropy(const craft_tensor *logits, const craft_tensor *targets, int reduction, double label_smoothing,
                              craft_tensor **out) {
    const char *op = "cross_entropy";
    if (!logits) return craft_fail(CRAFT_EINVAL, "cross_entropy: logits are missing");
    int code = logits->device;
    CRAFT_TRY(cl_nn_want(op, "logits", logits, code));
    if (targets && targets->device != CRAFT_DEVICE_CPU && targets->device != code)
        return craft_fail(CRAFT_EDEVICE, "cross_entropy: targets on device %d, logits on device %d", targets->device, code);
    int cdim;
    int64_t N, C, inner;
    CRAFT_TRY(craft_cross_entropy_check(logits, targets, reduction, label_smoothing, &cdim, &N, &C, &inner));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, op, &d));
    craft_tensor *tg = NULL, *lp = NULL, *per = NULL, *y = NULL;
    int rc = targets_on_device(logits, targets, C, code, &tg);
    if (!rc) {
        int prev = craft_set_grad_enabled(0);
        rc = craft_log_softmax(logits, cdim, &lp);
        craft_set_grad_enabled(prev);
    }
    if (!rc && !(per = cl_new(targets->ndim, targets->shape, CRAFT_F32, code))) rc = craft_last_status();
    if (!rc && targets->numel > 0) {   /* = N * inner, exact */
        cl_float on = (cl_float)(1.0 - label_smoothing), off = (cl_float)(label_smoothing / (double)C);
        cl_mem lm = cl_mem_of(lp), tm = cl_mem_of(tg), pm = cl_mem_of(per);
        cl_long cN = N, cC = C, ci = inner;
        cl_arg args[8] = {CLA(lm), CLA(tm), CLA(pm), CLA(cN), CLA(cC), CLA(ci), CLA(on), CLA(off)};
        rc = cl_nn_lines(d, K_ce_fwd, 8, args, N * inner, C, inner);
    }
    if (!rc) {
        if (reduction == 0) y = craft_tensor_retain(per);
        else rc = craft_cl_reduce(reduction == 1 ? 1 : 0, per, 0, NULL, 0, 0, &y);
    }
    if (!rc) {
        const craft_tensor *save[2] = {lp, tg};
        double sargs[2] = {label_smoothing, reduction == 1 ? 1.0 / (double)targets->numel : 1.0};
        int64_t iargs[4] = {N, C, inner, reduction};
        rc = craft_record(op, 1, &logits, y, ce_backward, 2, save, sargs, 2, iargs, 4, NULL);
    }
    craft_tensor_release(tg);
    craft_tensor_release(lp);
    craft_tensor_release(per);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- mse_loss */
/* saved: a, b (contiguous); sarg: the scale of g; iarg: reduction */
static int mse_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = nd->saved[0], *b = nd->saved[1], *g;
    int code = a->device;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, "mse_loss backward", &d));
    CRAFT_TRY(cl_nn_grad(gout[0], code, &g));
    int need_b = CRAFT_NEEDS_GRAD(nd, 1);
    craft_tensor *ga = cl_new(a->ndim, a->shape, CRAFT_F32, code), *gb = need_b ? cl_new(a->ndim, a->shape, CRAFT_F32, code) : NULL;
    int rc = ga && (gb || !need_b) ? CRAFT_OK : craft_last_status();
    if (!rc && a->numel > 0) {
        cl_mem am = cl_mem_of(a), bm = cl_mem_of(b), gm = cl_mem_of(g), gam = cl_mem_of(ga), gbm = gb ? cl_mem_of(gb) : gam;
        cl_long aoff = a->offset, boff = b->offset, goff = g->offset, n = a->numel;
        cl_float sc = (cl_float)nd->sarg[0];
        cl_int reduced = nd->iarg[0] != 0, has_gb = gb != NULL;
        cl_arg args[12] = {CLA(am), CLA(aoff), CLA(bm), CLA(boff), CLA(gm), CLA(goff), CLA(gam), CLA(gbm), CLA(n), CLA(sc),
                           CLA(reduced), CLA(has_gb)};
        rc = cl_launch(d, K_mse_grad, 12, args, cl_global_for(n), 0);
    }
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(ga); craft_tensor_release(gb); return rc; }
    if (CRAFT_NEEDS_GRAD(nd, 0)) gin[0] = ga;
    else craft_tensor_release(ga);
    gin[1] = gb;
    return CRAFT_OK;
}

int craft_cl_op_mse_loss(const craft_tensor *a_in, const craft_tensor *b_in, int reduction, craft_tensor **out) {
    const char *op = "mse_loss";
    CRAFT_TRY(craft_loss_reduction_check(op, reduction));
    craft_tensor *a, *b;
    CRAFT_TRY(pair_on_device(op, a_in, b_in, &a, &b));
    int same = a->ndim == b->ndim, rc = CRAFT_OK;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same) {   /* broadcasting: compose, as the CPU op (the public ops run on the device) */
        craft_tensor *df = NULL, *sq = NULL;
        rc = craft_binary(CRAFT_SUB, a, b, &df);
        if (!rc) rc = craft_unary(CRAFT_SQUARE, df, &sq);
        craft_tensor_release(df);
        if (!rc && reduction == 0) *out = craft_tensor_retain(sq);
        else if (!rc) rc = reduction == 1 ? craft_mean(sq, 0, NULL, 0, out) : craft_sum(sq, 0, NULL, 0, out);
        craft_tensor_release(sq);
        craft_tensor_release(a);
        craft_tensor_release(b);
        return rc;
    }
    int code = a->device;
    craft_tensor *ac = NULL, *bc = NULL, *df = NULL, *y = NULL;
    rc = craft_contig_f32(a, &ac);
    if (!rc) rc = craft_contig_f32(b, &bc);
    if (!rc && !(df = cl_new(a->ndim, a->shape, CRAFT_F32, code))) rc = craft_last_status();
    if (!rc) rc = craft_cl_binary(CRAFT_SUB, ac, bc, df);
    if (!rc && reduction == 0) {   /* (a - b)^2 in float, as the CPU */
        rc = craft_cl_binary(CRAFT_MUL, df, df, df);
        if (!rc) y = craft_tensor_retain(df);
    } else if (!rc) {
        rc = craft_cl_reduce(3, df, 0, NULL, 0, 0, &y);
        if (!rc && reduction == 1) rc = craft_cl_scale_(y, 1.0 / (double)a->numel);
    }
    if (!rc) {
        const craft_tensor *ins[2] = {a, b}, *save[2] = {ac, bc};
        double sarg = reduction == 1 ? 1.0 / (double)a->numel : 1.0;
        int64_t iarg = reduction;
        rc = craft_record(op, 2, ins, y, mse_backward, 2, save, &sarg, 1, &iarg, 1, NULL);
    }
    craft_tensor_release(a);
    craft_tensor_release(b);
    craft_tensor_release(ac);
    craft_tensor_release(bc);
    craft_tensor_release(df);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
