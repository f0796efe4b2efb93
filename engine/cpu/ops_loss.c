/* ops_loss.c: l2_normalize, cosine_similarity, cross_entropy and mse_loss, each fused with its
 * own backward (PyTorch semantics). Reductions along a dim see the contiguous input as
 * [outer, n, inner] and accumulate in double.
 *  - l2_normalize: x / max(||x||, eps) (torch.nn.functional.normalize, p = 2).
 *  - cosine_similarity as torch 1.13 computes it: each squared norm is clamped to eps^2 with
 *    the clamp invisible to autograd, n = sqrt(max(sum x^2, eps^2)), cos = sum((a/n_a)(b/n_b));
 *    so d cos/da = (b/n_b - cos a/n_a) / n_a even where the clamp is active (checked against
 *    torch's gradients). a and b broadcast.
 *  - cross_entropy: log-softmax over dim 1 of [N, C, d1...] (or dim 0 of [C]), int64 targets
 *    [N, d1...] (or a 0-d target), label smoothing as torch (a (1 - s) share on the target and
 *    s / C on every class), no class weights and no ignore_index: every target must be a class.
 *  - mse_loss: (a - b)^2 with reduction; broadcasting shapes go through the elementwise ops. */
#include "core/internal.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

int craft_loss_reduction_check(const char *op, int reduction) {
    if (reduction < 0 || reduction > 2)
        return craft_fail(CRAFT_EINVAL, "%s: reduction %d (expected 0 none, 1 mean, 2 sum)", op, reduction);
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- l2_normalize */
/* saved: y, denominators (negative where the eps clamp is active, so no norm gradient) */
static int l2n_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *y = nd->saved[0], *den = nd->saved[1], *g;
    int64_t outer = nd->iarg[0], n = nd->iarg[1], inner = nd->iarg[2];
    CRAFT_TRY(craft_contig_f32(gout[0], &g));
    craft_tensor *gx = craft_new_tensor(y->ndim, y->shape, CRAFT_F32, 0);
    if (!gx) { craft_tensor_release(g); return craft_last_status(); }
    const float *yp = craft_tensor_data(y), *dp = craft_tensor_data(den), *gp = craft_tensor_data(g);
    float *o = craft_tensor_data(gx);
    #pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
    for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = a * n * inner + i;
            float d = dp[a * inner + i];
            double s = 0;
            if (d > 0)
                for (int64_t k = 0; k < n; k++) s += (double)gp[base + k * inner] * yp[base + k * inner];
            float inv = 1.0f / fabsf(d), sf = (float)s;
            for (int64_t k = 0; k < n; k++) o[base + k * inner] = (gp[base + k * inner] - yp[base + k * inner] * sf) * inv;
        }
    craft_tensor_release(g);
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_l2_normalize(const craft_tensor *x, int dim, double eps, craft_tensor **out) {
    if (x && x->device != CRAFT_DEVICE_CPU) return craft_cl_op_l2_normalize(x, dim, eps, out);
    CRAFT_TRY(craft_check_f32("l2_normalize", "input", x));
    int d;
    CRAFT_TRY(craft_normalize_dim("l2_normalize", dim, x->ndim, &d));
    int64_t outer, n, inner;
    craft_split_at(x->ndim, x->shape, d, &outer, &n, &inner);
    craft_tensor *xc, *y = NULL, *den = NULL;
    CRAFT_TRY(craft_contig_f32(x, &xc));
    int64_t nden = craft_mul_sat(outer, inner);
    y = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, 0);
    den = craft_new_tensor(1, &nden, CRAFT_F32, 0);
    int rc = (!y || !den) ? craft_last_status() : CRAFT_OK;
    if (!rc) {
        const float *xp = craft_tensor_data(xc);
        float *yp = craft_tensor_data(y), *dp = craft_tensor_data(den);
        #pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
        for (int64_t a = 0; a < outer; a++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = a * n * inner + i;
                double s = 0;
                for (int64_t k = 0; k < n; k++) s += (double)xp[base + k * inner] * xp[base + k * inner];
                float nrm = (float)sqrt(s), dd = nrm >= (float)eps ? nrm : (float)eps;
                for (int64_t k = 0; k < n; k++) yp[base + k * inner] = xp[base + k * inner] / dd;
                dp[a * inner + i] = nrm >= (float)eps ? dd : -dd;
            }
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
/* saved: a, b (broadcast, contiguous), cos, norms [2, outer * inner] */
static int cos_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = nd->saved[0], *b = nd->saved[1], *y = nd->saved[2], *nr = nd->saved[3], *g;
    int64_t outer = nd->iarg[0], n = nd->iarg[1], inner = nd->iarg[2], m = outer * inner;
    CRAFT_TRY(craft_contig_f32(gout[0], &g));
    craft_tensor *ga = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, 0), *gb = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, 0);
    int rc = (!ga || !gb) ? craft_last_status() : CRAFT_OK;
    if (!rc) {
        const float *ap = craft_tensor_data(a), *bp = craft_tensor_data(b), *yp = craft_tensor_data(y);
        const float *np = craft_tensor_data(nr), *gp = craft_tensor_data(g);
        float *oa = craft_tensor_data(ga), *ob = craft_tensor_data(gb);
        #pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = o * n * inner + i, r = o * inner + i;
                float n1 = np[r], n2 = np[m + r], c = yp[r], gg = gp[r];
                for (int64_t k = 0; k < n; k++) {
                    float u1 = ap[base + k * inner] / n1, u2 = bp[base + k * inner] / n2;
                    oa[base + k * inner] = gg * (u2 - c * u1) / n1;
                    ob[base + k * inner] = gg * (u1 - c * u2) / n2;
                }
            }
    }
    if (!rc && CRAFT_NEEDS_GRAD(nd, 0)) rc = craft_sum_to_shape(ga, nd->edges[0].ndim, nd->edges[0].shape, &gin[0]);
    if (!rc && CRAFT_NEEDS_GRAD(nd, 1)) rc = craft_sum_to_shape(gb, nd->edges[1].ndim, nd->edges[1].shape, &gin[1]);
    craft_tensor_release(ga);
    craft_tensor_release(gb);
    craft_tensor_release(g);
    return rc;
}

int craft_cosine_operands(const craft_tensor *a, const craft_tensor *b, int dim, int *nd, int64_t *shape, int *d,
                          craft_tensor **ac, craft_tensor **bc) {
    const char *op = "cosine_similarity";
    *ac = *bc = NULL;
    CRAFT_TRY(craft_broadcast_shape(op, a, b, nd, shape));
    if (*nd == 0) return craft_fail(CRAFT_ESHAPE, "cosine_similarity: 0-d inputs %s and %s", craft_shape_str(a), craft_shape_str(b));
    CRAFT_TRY(craft_normalize_dim(op, dim, *nd, d));
    const craft_tensor *in[2] = {a, b};
    craft_tensor **outs[2] = {ac, bc};
    int prev = craft_set_grad_enabled(0), rc = CRAFT_OK;
    for (int i = 0; i < 2 && !rc; i++) {
        craft_tensor *e;
        rc = craft_expand(in[i], *nd, shape, &e);
        if (!rc) { rc = craft_contig_f32(e, outs[i]); craft_tensor_release(e); }
    }
    craft_set_grad_enabled(prev);
    if (rc) { craft_tensor_release(*ac); craft_tensor_release(*bc); *ac = *bc = NULL; }
    return rc;
}

int craft_cosine_similarity(const craft_tensor *a, const craft_tensor *b, int dim, double eps, craft_tensor **out) {
    if ((a && a->device != CRAFT_DEVICE_CPU) || (b && b->device != CRAFT_DEVICE_CPU)) return craft_cl_op_cosine_similarity(a, b, dim, eps, out);
    CRAFT_TRY(craft_check_f32("cosine_similarity", "first input", a));
    CRAFT_TRY(craft_check_f32("cosine_similarity", "second input", b));
    int nd, d;
    int64_t shape[CRAFT_MAX_DIMS];
    craft_tensor *ac = NULL, *bc = NULL, *y = NULL, *nr = NULL;
    int rc = craft_cosine_operands(a, b, dim, &nd, shape, &d, &ac, &bc);
    if (rc) return rc;
    int64_t outer, n, inner;
    craft_split_at(nd, shape, d, &outer, &n, &inner);
    if (!rc) {
        int64_t oshape[CRAFT_MAX_DIMS], two = craft_mul_sat(2, craft_mul_sat(outer, inner));
        int ond = 0;
        for (int i = 0; i < nd; i++) if (i != d) oshape[ond++] = shape[i];
        y = craft_new_tensor(ond, oshape, CRAFT_F32, 0);
        nr = craft_new_tensor(1, &two, CRAFT_F32, 0);
        if (!y || !nr) rc = craft_last_status();
    }
    if (!rc) {
        const float *ap = craft_tensor_data(ac), *bp = craft_tensor_data(bc);
        float *yp = craft_tensor_data(y), *np = craft_tensor_data(nr);
        int64_t m = outer * inner;
        double e2 = eps * eps;
        #pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = o * n * inner + i, r = o * inner + i;
                double s1 = 0, s2 = 0;
                for (int64_t k = 0; k < n; k++) {
                    double x1 = ap[base + k * inner], x2 = bp[base + k * inner];
                    s1 += x1 * x1;
                    s2 += x2 * x2;
                }
                float n1 = (float)sqrt(s1 > e2 ? s1 : e2), n2 = (float)sqrt(s2 > e2 ? s2 : e2);
                double c = 0;
                for (int64_t k = 0; k < n; k++) c += (double)(ap[base + k * inner] / n1) * (bp[base + k * inner] / n2);
                yp[r] = (float)c;
                np[r] = n1;
                np[m + r] = n2;
            }
        const craft_tensor *ins[2] = {a, b}, *save[4] = {ac, bc, y, nr};
        int64_t iargs[3] = {outer, n, inner};
        rc = craft_record("cosine_similarity", 2, ins, y, cos_backward, 4, save, NULL, 0, iargs, 3, NULL);
    }
    craft_tensor_release(ac);
    craft_tensor_release(bc);
    craft_tensor_release(nr);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- cross_entropy */
/* saved: log-probabilities [N, C, inner], targets (i64, dense); sarg: smoothing, scale of g */
static int ce_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *lp = nd->saved[0], *tg = nd->saved[1], *g;
    int64_t N = nd->iarg[0], C = nd->iarg[1], inner = nd->iarg[2], reduction = nd->iarg[3];
    float eps = (float)nd->sarg[0], gscale = (float)nd->sarg[1];
    CRAFT_TRY(craft_contig_f32(gout[0], &g));
    craft_tensor *gx = craft_new_tensor(lp->ndim, lp->shape, CRAFT_F32, 0);
    if (!gx) { craft_tensor_release(g); return craft_last_status(); }
    const float *lpp = craft_tensor_data(lp), *gp = craft_tensor_data(g);
    const int64_t *tp = craft_tensor_data(tg);
    float *o = craft_tensor_data(gx);
    float on = 1.0f - eps, off = eps / (float)C;
    #pragma omp parallel for collapse(2) if (N * C * inner >= CRAFT_PAR_MIN)
    for (int64_t a = 0; a < N; a++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = a * C * inner + i, r = a * inner + i;
            float gg = (reduction == 0 ? gp[r] : gp[0]) * gscale;
            for (int64_t c = 0; c < C; c++) o[base + c * inner] = gg * (expf(lpp[base + c * inner]) - off);
            o[base + tp[r] * inner] -= gg * on;
        }
    craft_tensor_release(g);
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_cross_entropy_check(const craft_tensor *logits, const craft_tensor *targets, int reduction, double label_smoothing,
                              int *cdim, int64_t *N, int64_t *C, int64_t *inner) {
    CRAFT_TRY(craft_loss_reduction_check("cross_entropy", reduction));
    if (!targets) return craft_fail(CRAFT_EINVAL, "cross_entropy: targets are missing");
    if (targets->dtype != CRAFT_I64 && targets->dtype != CRAFT_I32)
        return craft_fail(CRAFT_ETYPE, "cross_entropy: targets %s must be int64 class indices", craft_shape_str(targets));
    if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
        return craft_fail(CRAFT_EINVAL, "cross_entropy: label_smoothing %g outside [0, 1]", label_smoothing);
    if (logits->ndim < 1)
        return craft_fail(CRAFT_ESHAPE, "cross_entropy: logits %s need a class dim ([C], [N, C] or [N, C, d1...])",
                          craft_shape_str(logits));
    /* targets: logits' shape without the class dim */
    int cd = logits->ndim == 1 ? 0 : 1, ok = targets->ndim == logits->ndim - 1;
    for (int i = 0, j = 0; ok && i < logits->ndim; i++) {
        if (i == cd) continue;
        if (targets->shape[j++] != logits->shape[i]) ok = 0;
    }
    if (!ok)
        return craft_fail(CRAFT_ESHAPE, "cross_entropy: targets %s do not fit logits %s (expected the logits' shape without dim %d)",
                          craft_shape_str(targets), craft_shape_str(logits), cd);
    *cdim = cd;
    *N = cd == 1 ? logits->shape[0] : 1;
    *C = logits->shape[cd];
    *inner = cd == 1 ? craft_numel_of(logits->ndim - 2, logits->shape + 2) : 1;
    return CRAFT_OK;
}

int craft_cross_entropy_targets(const craft_tensor *logits, const craft_tensor *targets, int64_t C, int64_t *tp) {
    int rc = craft_tensor_read(targets, CRAFT_I64, tp, (size_t)targets->numel * sizeof(int64_t));
    for (int64_t r = 0; !rc && r < targets->numel; r++)
        if (tp[r] < 0 || tp[r] >= C)
            rc = craft_fail(CRAFT_EINVAL, "cross_entropy: target %lld at flat index %lld is out of range for %lld classes (logits %s, targets %s)",
                            (long long)tp[r], (long long)r, (long long)C, craft_shape_str(logits), craft_shape_str(targets));
    return rc;
}

int craft_cross_entropy(const craft_tensor *logits, const craft_tensor *targets, int reduction, double label_smoothing,
                        craft_tensor **out) {
    if (logits && logits->device != CRAFT_DEVICE_CPU) return craft_cl_op_cross_entropy(logits, targets, reduction, label_smoothing, out);
    CRAFT_TRY(craft_check_f32("cross_entropy", "logits", logits));
    int cdim;
    int64_t N, C, inner;
    CRAFT_TRY(craft_cross_entropy_check(logits, targets, reduction, label_smoothing, &cdim, &N, &C, &inner));
    craft_tensor *tg = craft_new_tensor(targets->ndim, targets->shape, CRAFT_I64, 0);
    if (!tg) return craft_last_status();
    int rc = craft_cross_entropy_targets(logits, targets, C, craft_tensor_data(tg));
    const int64_t *tp = craft_tensor_data(tg);
    craft_tensor *lp = NULL, *y = NULL;
    if (!rc) {
        int prev = craft_set_grad_enabled(0);
        rc = craft_log_softmax(logits, cdim, &lp);
        craft_set_grad_enabled(prev);
    }
    int64_t count = craft_mul_sat(N, inner);
    if (!rc) {
        y = reduction == 0 ? craft_new_tensor(targets->ndim, targets->shape, CRAFT_F32, 0)
                           : craft_new_tensor(0, &N, CRAFT_F32, 0);
        if (!y) rc = craft_last_status();
    }
    if (!rc) {
        const float *lpp = craft_tensor_data(lp);
        float *yp = craft_tensor_data(y);
        double on = 1.0 - label_smoothing, off = label_smoothing / (double)C, total = 0;
        #pragma omp parallel for collapse(2) reduction(+ : total) if (N * C * inner >= CRAFT_PAR_MIN)
        for (int64_t a = 0; a < N; a++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = a * C * inner + i, r = a * inner + i;
                double l = -on * lpp[base + tp[r] * inner];
                if (off != 0) {
                    double s = 0;
                    for (int64_t c = 0; c < C; c++) s += lpp[base + c * inner];
                    l -= off * s;
                }
                if (reduction == 0) yp[r] = (float)l;
                total += l;
            }
        if (reduction == 1) yp[0] = (float)(total / (double)count);
        else if (reduction == 2) yp[0] = (float)total;
        const craft_tensor *save[2] = {lp, tg};
        double sargs[2] = {label_smoothing, reduction == 1 ? 1.0 / (double)count : 1.0};
        int64_t iargs[4] = {N, C, inner, reduction};
        rc = craft_record("cross_entropy", 1, &logits, y, ce_backward, 2, save, sargs, 2, iargs, 4, NULL);
    }
    craft_tensor_release(lp);
    craft_tensor_release(tg);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- mse_loss */
static int mse_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = nd->saved[0], *b = nd->saved[1], *g;
    int reduction = (int)nd->iarg[0];
    float sc = (float)nd->sarg[0];
    CRAFT_TRY(craft_contig_f32(gout[0], &g));
    craft_tensor *ga = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, 0);
    craft_tensor *gb = CRAFT_NEEDS_GRAD(nd, 1) ? craft_new_tensor(a->ndim, a->shape, CRAFT_F32, 0) : NULL;
    if (!ga || (CRAFT_NEEDS_GRAD(nd, 1) && !gb)) {
        craft_tensor_release(ga); craft_tensor_release(g);
        return craft_last_status();
    }
    const float *ap = craft_tensor_data(a), *bp = craft_tensor_data(b), *gp = craft_tensor_data(g);
    float *oa = craft_tensor_data(ga), *ob = gb ? craft_tensor_data(gb) : NULL;
    int64_t n = a->numel;
    float g0 = reduction == 0 ? 0.0f : gp[0] * sc;
    #pragma omp parallel for if (n >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) oa[i] = 2.0f * (ap[i] - bp[i]) * (reduction == 0 ? gp[i] : g0);
    if (ob) {
        #pragma omp parallel for if (n >= CRAFT_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) ob[i] = -oa[i];
    }
    craft_tensor_release(g);
    if (CRAFT_NEEDS_GRAD(nd, 0)) gin[0] = ga;
    else craft_tensor_release(ga);
    gin[1] = gb;
    return CRAFT_OK;
}

int craft_mse_loss(const craft_tensor *a, const craft_tensor *b, int reduction, craft_tensor **out) {
    if ((a && a->device != CRAFT_DEVICE_CPU) || (b && b->device != CRAFT_DEVICE_CPU)) return craft_cl_op_mse_loss(a, b, reduction, out);
    CRAFT_TRY(craft_check_f32("mse_loss", "input", a));
    CRAFT_TRY(craft_check_f32("mse_loss", "target", b));
    CRAFT_TRY(craft_loss_reduction_check("mse_loss", reduction));
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same) {   /* broadcasting: compose (autograd follows the parts) */
        craft_tensor *d, *sq;
        CRAFT_TRY(craft_binary(CRAFT_SUB, a, b, &d));
        int rc = craft_unary(CRAFT_SQUARE, d, &sq);
        craft_tensor_release(d);
        if (rc || reduction == 0) { if (!rc) *out = sq; return rc; }
        rc = reduction == 1 ? craft_mean(sq, 0, NULL, 0, out) : craft_sum(sq, 0, NULL, 0, out);
        craft_tensor_release(sq);
        return rc;
    }
    craft_tensor *ac, *bc, *y = NULL;
    CRAFT_TRY(craft_contig_f32(a, &ac));
    int rc = craft_contig_f32(b, &bc);
    if (rc) { craft_tensor_release(ac); return rc; }
    y = reduction == 0 ? craft_new_tensor(a->ndim, a->shape, CRAFT_F32, 0) : craft_new_tensor(0, &a->numel, CRAFT_F32, 0);
    if (!y) rc = craft_last_status();
    if (!rc) {
        const float *ap = craft_tensor_data(ac), *bp = craft_tensor_data(bc);
        float *yp = craft_tensor_data(y);
        int64_t n = a->numel;
        if (reduction == 0) {
            #pragma omp parallel for if (n >= CRAFT_PAR_MIN) schedule(static)
            for (int64_t i = 0; i < n; i++) { float d = ap[i] - bp[i]; yp[i] = d * d; }
        } else {
            double s = 0;
            #pragma omp parallel for reduction(+ : s) if (n >= CRAFT_PAR_MIN) schedule(static)
            for (int64_t i = 0; i < n; i++) { double d = (double)ap[i] - bp[i]; s += d * d; }
            yp[0] = (float)(reduction == 1 ? s / (double)n : s);
        }
        const craft_tensor *ins[2] = {a, b}, *save[2] = {ac, bc};
        double sarg = reduction == 1 ? 1.0 / (double)n : 1.0;
        int64_t iarg = reduction;
        rc = craft_record("mse_loss", 2, ins, y, mse_backward, 2, save, &sarg, 1, &iarg, 1, NULL);
    }
    craft_tensor_release(ac);
    craft_tensor_release(bc);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
