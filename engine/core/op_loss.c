/* op_loss.c: l2_normalize, cosine_similarity, cross_entropy and mse_loss for every device,
 * each a fused op with its own backward (PyTorch semantics) on the back end's loss kernels.
 * Reductions along a dim see the contiguous input as [outer, n, inner].
 *  - l2_normalize: x / max(||x||, eps) (torch.nn.functional.normalize, p = 2).
 *  - cosine_similarity as torch 1.13 computes it: each squared norm is clamped to eps^2 with
 *    the clamp invisible to autograd, n = sqrt(max(sum x^2, eps^2)), cos = sum((a/n_a)(b/n_b));
 *    so d cos/da = (b/n_b - cos a/n_a) / n_a even where the clamp is active (checked against
 *    torch's gradients). a and b broadcast.
 *  - cross_entropy: log-softmax over dim 1 of [N, C, d1...] (or dim 0 of [C]), int64 targets
 *    [N, d1...] (or a 0-d target), label smoothing as torch (a (1 - s) share on the target and
 *    s / C on every class), no class weights and no ignore_index: every target must be a class.
 *    The targets are read to the host and checked before any kernel uses one.
 *  - mse_loss: (a - b)^2 with reduction; broadcasting shapes go through the elementwise ops.
 * Operands that are data rather than parameters (cosine_similarity's and mse_loss's second
 * input, targets) may sit on the CPU next to a device input: they are copied over,
 * differentiably where they carry gradients. */
#include "core/backend.h"
#include <stdlib.h>

static int loss_reduction_check(const char *op, int reduction) {
    if (reduction < 0 || reduction > 2)
        return craft_fail(CRAFT_EINVAL, "%s: reduction %d (expected 0 none, 1 mean, 2 sum)", op, reduction);
    return CRAFT_OK;
}

/* a and b on one device (new references; a CPU one copied over differentiably), f32 there */
static int pair_on_device(const char *op, const char *an, const char *bn, const craft_tensor *a,
                          const craft_tensor *b, craft_tensor **ad, craft_tensor **bd) {
    *ad = *bd = NULL;
    if (!a) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, an);
    if (!b) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, bn);
    const craft_tensor *in[2] = {a, b};
    int device;
    CRAFT_TRY(craft_op_device(op, 2, in, &device));
    int rc = craft_want(op, an, a, a->device);
    if (!rc) rc = craft_want(op, bn, b, b->device);
    if (!rc) rc = craft_bring(op, an, a, device, ad);
    if (!rc) rc = craft_bring(op, bn, b, device, bd);
    if (rc) {
        craft_tensor_release(*ad);
        craft_tensor_release(*bd);
        *ad = *bd = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- l2_normalize */
/* saved: y, denominators (negative where the eps clamp is active, so no norm gradient) */
static int l2n_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *y = nd->saved[0], *den = nd->saved[1], *g, *gx;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(y->device, CRAFT_K_l2_normalize_grad, CRAFT_F32, nd->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], y->device, &g));
    int rc =
        (gx = craft_new_tensor(y->ndim, y->shape, CRAFT_F32, y->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = k->l2_normalize_grad(y, den, g, nd->iarg[0], nd->iarg[1], nd->iarg[2], gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

int craft_l2_normalize(const craft_tensor *x, int dim, double eps, craft_tensor **out) {
    if (!x) return craft_fail(CRAFT_EINVAL, "l2_normalize: input is missing");
    const craft_kernels *k;
    CRAFT_TRY(craft_want("l2_normalize", "input", x, x->device));
    int d;
    CRAFT_TRY(craft_normalize_dim("l2_normalize", dim, x->ndim, &d));
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_l2_normalize, CRAFT_F32, "l2_normalize", &k));
    int64_t outer, n, inner;
    craft_split_at(x->ndim, x->shape, d, &outer, &n, &inner);
    craft_tensor *xc, *y = NULL, *den = NULL;
    CRAFT_TRY(craft_contig_f32(x, &xc));
    int64_t nden = craft_mul_sat(outer, inner);
    y = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device);
    den = craft_new_tensor(1, &nden, CRAFT_F32, x->device);
    int rc = (!y || !den) ? craft_last_status() : CRAFT_OK;
    if (!rc) rc = k->l2_normalize(xc, outer, n, inner, eps, y, den);
    if (!rc) {
        const craft_tensor *save[2] = {y, den};
        int64_t iargs[3] = {outer, n, inner};
        rc = craft_record("l2_normalize", 1, &x, y, l2n_backward, 2, save, NULL, 0, iargs, 3, NULL);
    }
    craft_tensor_release(xc);
    craft_tensor_release(den);
    return craft_finish(rc, y, out);
}

/* ---------------------------------------------------------------- cosine_similarity */
/* saved: a, b (broadcast, contiguous), cos, norms [2, outer * inner] */
static int cos_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = nd->saved[0], *b = nd->saved[1], *y = nd->saved[2], *nr = nd->saved[3], *g;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(a->device, CRAFT_K_cosine_grad, CRAFT_F32, nd->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], a->device, &g));
    craft_tensor *ga = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device),
                 *gb = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device);
    int rc = (!ga || !gb) ? craft_last_status() : CRAFT_OK;
    if (!rc) rc = k->cosine_grad(a, b, y, nr, g, nd->iarg[0], nd->iarg[1], nd->iarg[2], ga, gb);
    if (!rc && CRAFT_NEEDS_GRAD(nd, 0))
        rc = craft_sum_to_shape(ga, nd->edges[0].ndim, nd->edges[0].shape, &gin[0]);
    if (!rc && CRAFT_NEEDS_GRAD(nd, 1))
        rc = craft_sum_to_shape(gb, nd->edges[1].ndim, nd->edges[1].shape, &gin[1]);
    craft_tensor_release(ga);
    craft_tensor_release(gb);
    craft_tensor_release(g);
    return rc;
}

static int cosine_operands(const craft_tensor *a, const craft_tensor *b, int dim, int *nd, int64_t *shape,
                           int *d, craft_tensor **ac, craft_tensor **bc) {
    const char *op = "cosine_similarity";
    *ac = *bc = NULL;
    CRAFT_TRY(craft_broadcast_shape(op, a, b, nd, shape));
    if (*nd == 0)
        return craft_fail(CRAFT_ESHAPE, "cosine_similarity: 0-d inputs %s and %s", craft_shape_str(a),
                          craft_shape_str(b));
    CRAFT_TRY(craft_normalize_dim(op, dim, *nd, d));
    const craft_tensor *in[2] = {a, b};
    craft_tensor **outs[2] = {ac, bc};
    int prev = craft_set_grad_enabled(0), rc = CRAFT_OK;
    for (int i = 0; i < 2 && !rc; i++) {
        craft_tensor *e;
        rc = craft_expand(in[i], *nd, shape, &e);
        if (!rc) {
            rc = craft_contig_f32(e, outs[i]);
            craft_tensor_release(e);
        }
    }
    craft_set_grad_enabled(prev);
    if (rc) {
        craft_tensor_release(*ac);
        craft_tensor_release(*bc);
        *ac = *bc = NULL;
    }
    return rc;
}

int craft_cosine_similarity(const craft_tensor *a_in, const craft_tensor *b_in, int dim, double eps,
                            craft_tensor **out) {
    const char *op = "cosine_similarity";
    craft_tensor *a, *b;
    CRAFT_TRY(pair_on_device(op, "first input", "second input", a_in, b_in, &a, &b));
    const craft_kernels *k;
    int nd = 0, d = 0;
    int64_t shape[CRAFT_MAX_DIMS], outer = 1, n = 1, inner = 1;
    craft_tensor *ac = NULL, *bc = NULL, *y = NULL, *nr = NULL;
    int rc = craft_kernels_for(a->device, CRAFT_K_cosine, CRAFT_F32, op, &k);
    if (!rc) rc = cosine_operands(a, b, dim, &nd, shape, &d, &ac, &bc);
    if (!rc) {
        craft_split_at(nd, shape, d, &outer, &n, &inner);
        int64_t oshape[CRAFT_MAX_DIMS], two = craft_mul_sat(2, craft_mul_sat(outer, inner));
        int ond = 0;
        for (int i = 0; i < nd; i++)
            if (i != d) oshape[ond++] = shape[i];
        y = craft_new_tensor(ond, oshape, CRAFT_F32, a->device);
        nr = craft_new_tensor(1, &two, CRAFT_F32, a->device);
        if (!y || !nr) rc = craft_last_status();
    }
    if (!rc) rc = k->cosine(ac, bc, outer, n, inner, eps, y, nr);
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
    return craft_finish(rc, y, out);
}

/* ---------------------------------------------------------------- cross_entropy */
/* saved: log-probabilities [N, C, inner], targets (i64, dense, on the device); sarg: smoothing,
 * scale of g; iarg: N, C, inner, reduction */
static int ce_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *lp = nd->saved[0], *tg = nd->saved[1], *g, *gx;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(lp->device, CRAFT_K_cross_entropy_grad, CRAFT_F32, nd->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], lp->device, &g));
    int rc =
        (gx = craft_new_tensor(lp->ndim, lp->shape, CRAFT_F32, lp->device)) ? CRAFT_OK : craft_last_status();
    if (!rc)
        rc = k->cross_entropy_grad(lp, tg, g, nd->iarg[0], nd->iarg[1], nd->iarg[2], (int)nd->iarg[3],
                                   nd->sarg[0], nd->sarg[1], gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

static int cross_entropy_check(const craft_tensor *logits, const craft_tensor *targets, int reduction,
                               double label_smoothing, int *cdim, int64_t *N, int64_t *C, int64_t *inner) {
    CRAFT_TRY(loss_reduction_check("cross_entropy", reduction));
    if (!targets) return craft_fail(CRAFT_EINVAL, "cross_entropy: targets are missing");
    if (targets->dtype != CRAFT_I64 && targets->dtype != CRAFT_I32)
        return craft_fail(CRAFT_ETYPE, "cross_entropy: targets %s must be int64 class indices",
                          craft_shape_str(targets));
    if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
        return craft_fail(CRAFT_EINVAL, "cross_entropy: label_smoothing %g outside [0, 1]", label_smoothing);
    if (logits->ndim < 1)
        return craft_fail(CRAFT_ESHAPE,
                          "cross_entropy: logits %s need a class dim ([C], [N, C] or [N, C, d1...])",
                          craft_shape_str(logits));
    /* targets: logits' shape without the class dim */
    int cd = logits->ndim == 1 ? 0 : 1, ok = targets->ndim == logits->ndim - 1;
    for (int i = 0, j = 0; ok && i < logits->ndim; i++) {
        if (i == cd) continue;
        if (targets->shape[j++] != logits->shape[i]) ok = 0;
    }
    if (!ok)
        return craft_fail(
            CRAFT_ESHAPE,
            "cross_entropy: targets %s do not fit logits %s (expected the logits' shape without dim %d)",
            craft_shape_str(targets), craft_shape_str(logits), cd);
    *cdim = cd;
    *N = cd == 1 ? logits->shape[0] : 1;
    *C = logits->shape[cd];
    *inner = cd == 1 ? craft_numel_of(logits->ndim - 2, logits->shape + 2) : 1;
    return CRAFT_OK;
}

static int cross_entropy_targets(const craft_tensor *logits, const craft_tensor *targets, int64_t C,
                                 int64_t *tp) {
    int rc = craft_tensor_read(targets, CRAFT_I64, tp, (size_t)targets->numel * sizeof(int64_t));
    for (int64_t r = 0; !rc && r < targets->numel; r++)
        if (tp[r] < 0 || tp[r] >= C)
            rc = craft_fail(
                CRAFT_EINVAL,
                "cross_entropy: target %lld at flat index %lld is out of range for %lld classes (logits %s, targets %s)",
                (long long)tp[r], (long long)r, (long long)C, craft_shape_str(logits),
                craft_shape_str(targets));
    return rc;
}

int craft_cross_entropy(const craft_tensor *logits, const craft_tensor *targets, int reduction,
                        double label_smoothing, craft_tensor **out) {
    if (!logits) return craft_fail(CRAFT_EINVAL, "cross_entropy: logits are missing");
    int device = logits->device;
    const craft_kernels *k;
    CRAFT_TRY(craft_want("cross_entropy", "logits", logits, device));
    if (targets && targets->device != CRAFT_DEVICE_CPU && targets->device != device)
        return craft_fail(CRAFT_EDEVICE, "cross_entropy: targets on %s, logits on %s; move one with :to()",
                          craft_device_str(targets->device), craft_device_str(device));
    int cdim = 0;
    int64_t N = 0, C = 0, inner = 0;
    CRAFT_TRY(cross_entropy_check(logits, targets, reduction, label_smoothing, &cdim, &N, &C, &inner));
    CRAFT_TRY(craft_kernels_for(device, CRAFT_K_cross_entropy, CRAFT_F32, "cross_entropy", &k));
    /* the targets, checked on the host, then as a dense i64 tensor on the device */
    craft_tensor *th = craft_new_tensor(targets->ndim, targets->shape, CRAFT_I64, CRAFT_DEVICE_CPU),
                 *tg = NULL;
    if (!th) return craft_last_status();
    int rc = cross_entropy_targets(logits, targets, C, craft_tensor_data(th));
    if (!rc) rc = craft_on_device(th, device, &tg);
    craft_tensor_release(th);
    craft_tensor *lp = NULL, *y = NULL;
    if (!rc) {
        int prev = craft_set_grad_enabled(0);
        rc = craft_log_softmax(logits, cdim, &lp);
        craft_set_grad_enabled(prev);
    }
    int64_t count = craft_mul_sat(N, inner);
    if (!rc) {
        y = reduction == 0 ? craft_new_tensor(targets->ndim, targets->shape, CRAFT_F32, device)
                           : craft_new_tensor(0, &N, CRAFT_F32, device);
        if (!y) rc = craft_last_status();
    }
    if (!rc) rc = k->cross_entropy(lp, tg, N, C, inner, reduction, label_smoothing, y);
    if (!rc) {
        const craft_tensor *save[2] = {lp, tg};
        double sargs[2] = {label_smoothing, reduction == 1 ? 1.0 / (double)count : 1.0};
        int64_t iargs[4] = {N, C, inner, reduction};
        rc = craft_record("cross_entropy", 1, &logits, y, ce_backward, 2, save, sargs, 2, iargs, 4, NULL);
    }
    craft_tensor_release(lp);
    craft_tensor_release(tg);
    return craft_finish(rc, y, out);
}

/* ---------------------------------------------------------------- mse_loss */
/* saved: a, b (contiguous); sarg: the scale of g; iarg: reduction */
static int mse_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = nd->saved[0], *b = nd->saved[1], *g;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(a->device, CRAFT_K_mse_grad, CRAFT_F32, nd->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], a->device, &g));
    int need_b = CRAFT_NEEDS_GRAD(nd, 1);
    craft_tensor *ga = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device);
    craft_tensor *gb = need_b ? craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device) : NULL;
    int rc = (!ga || (need_b && !gb)) ? craft_last_status() : CRAFT_OK;
    if (!rc) rc = k->mse_grad(a, b, g, (int)nd->iarg[0], nd->sarg[0], ga, gb);
    craft_tensor_release(g);
    if (rc) {
        craft_tensor_release(ga);
        craft_tensor_release(gb);
        return rc;
    }
    if (CRAFT_NEEDS_GRAD(nd, 0)) gin[0] = ga;
    else craft_tensor_release(ga);
    gin[1] = gb;
    return CRAFT_OK;
}

int craft_mse_loss(const craft_tensor *a_in, const craft_tensor *b_in, int reduction, craft_tensor **out) {
    craft_tensor *a, *b;
    CRAFT_TRY(pair_on_device("mse_loss", "input", "target", a_in, b_in, &a, &b));
    int rc = loss_reduction_check("mse_loss", reduction), same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!rc && !same) { /* broadcasting: compose (autograd follows the parts) */
        craft_tensor *d = NULL, *sq = NULL;
        rc = craft_binary(CRAFT_SUB, a, b, &d);
        if (!rc) rc = craft_unary(CRAFT_SQUARE, d, &sq);
        craft_tensor_release(d);
        if (!rc && reduction == 0) *out = craft_tensor_retain(sq);
        else if (!rc) rc = reduction == 1 ? craft_mean(sq, 0, NULL, 0, out) : craft_sum(sq, 0, NULL, 0, out);
        craft_tensor_release(sq);
        craft_tensor_release(a);
        craft_tensor_release(b);
        return rc;
    }
    const craft_kernels *k;
    craft_tensor *ac = NULL, *bc = NULL, *y = NULL;
    if (!rc) rc = craft_kernels_for(a->device, CRAFT_K_mse, CRAFT_F32, "mse_loss", &k);
    if (!rc) rc = craft_contig_f32(a, &ac);
    if (!rc) rc = craft_contig_f32(b, &bc);
    if (!rc) {
        y = reduction == 0 ? craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device)
                           : craft_new_tensor(0, &a->numel, CRAFT_F32, a->device);
        if (!y) rc = craft_last_status();
    }
    if (!rc) rc = k->mse(ac, bc, reduction, y);
    if (!rc) {
        const craft_tensor *ins[2] = {a, b}, *save[2] = {ac, bc};
        double sarg = reduction == 1 ? 1.0 / (double)a->numel : 1.0;
        int64_t iarg = reduction;
        rc = craft_record("mse_loss", 2, ins, y, mse_backward, 2, save, &sarg, 1, &iarg, 1, NULL);
    }
    craft_tensor_release(a);
    craft_tensor_release(b);
    craft_tensor_release(ac);
    craft_tensor_release(bc);
    return craft_finish(rc, y, out);
}
