/* op_matmul.c: batched matmul (torch.matmul broadcasting, 1-d operands) and linear, for every
 * device, on the back end's gemm kernel (row-major, transposed operands as flags). Transposed
 * views are passed as transpose flags, not copied. f16 @ f16 (inference: f16 tensors carry no
 * gradients) runs in half precision where the back end has an f16 gemm, elsewhere in fp32 on
 * converted copies, rounded back to f16. Under the bf16 compute precision an unrecorded matmul or
 * linear (under bf16-mixed any, and their backward's input gradients) runs on the back end's
 * gemm_bf16 kernel (core/precision.c), linear's weight as a kept operand unless it is trained;
 * under fp16 an unrecorded one runs on gemm_f16 likewise. */
#include "core/backend.h"
#include <stdlib.h>

/* One operand matrix layout: row-major with leading dim, or transposed. */
typedef struct {
    char trans;
    int64_t ld;
} mat_layout;

static int layout_of(const craft_tensor *t, mat_layout *l) {
    int n = t->ndim;
    int64_t rs = t->stride[n - 2], cs = t->stride[n - 1], rows = t->shape[n - 2], cols = t->shape[n - 1];
    if ((cs == 1 || cols == 1) && rs >= (cols > 1 ? cols : 1) && rs >= 1) {
        l->trans = 'N';
        l->ld = rs;
        return 1;
    }
    if ((rs == 1 || rows == 1) && cs >= (rows > 1 ? rows : 1) && cs >= 1) {
        l->trans = 'T';
        l->ld = cs;
        return 1;
    }
    return 0;
}

/* t itself when gemm can read it, else a contiguous copy (same dtype) */
static int gemm_operand(const craft_tensor *t, craft_tensor **out, mat_layout *l) {
    if (layout_of(t, l)) {
        *out = craft_alias(t);
        return *out ? CRAFT_OK : craft_last_status();
    }
    craft_tensor *c = craft_new_tensor(t->ndim, t->shape, t->dtype, t->device);
    int rc = c ? craft_copy_(c, t) : craft_last_status();
    if (rc) {
        craft_tensor_release(c);
        return rc;
    }
    layout_of(c, l);
    *out = c;
    return CRAFT_OK;
}

/* The precision an unrecorded product on device computes in (core/precision.c): CRAFT_PREC_BF16
 * (gemm_bf16), CRAFT_PREC_FP16 (gemm_f16) or 0 (gemm). */
static int lowp_of(int device, int n, const craft_tensor *const *ins) {
    if (craft_bf16_for(device, CRAFT_K_gemm_bf16, n, ins)) return CRAFT_PREC_BF16;
    return craft_f16_for(device, CRAFT_K_gemm_f16, n, ins) ? CRAFT_PREC_FP16 : 0;
}
static int gemm_kid(int lowp) {
    return lowp == CRAFT_PREC_BF16 ? CRAFT_K_gemm_bf16
        : lowp == CRAFT_PREC_FP16  ? CRAFT_K_gemm_f16
                                   : CRAFT_K_gemm;
}

/* C[batch] = A[batch] @ B[batch] for a, b with >= 2 dims and broadcast batch dims; lowp (lowp_of):
 * on the back end's gemm_bf16 or gemm_f16 kernel. */
static int matmul_raw(const craft_tensor *a_in, const craft_tensor *b_in, int lowp, craft_tensor **out) {
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(a_in->device, gemm_kid(lowp), a_in->dtype, "matmul", &k));
    craft_tensor *a = NULL, *b = NULL, *y = NULL;
    mat_layout la, lb;
    int rc = gemm_operand(a_in, &a, &la);
    if (!rc) rc = gemm_operand(b_in, &b, &lb);
    int64_t M = a_in->shape[a_in->ndim - 2], K = a_in->shape[a_in->ndim - 1], N = b_in->shape[b_in->ndim - 1];
    int nba = a_in->ndim - 2, nbb = b_in->ndim - 2, nb = nba > nbb ? nba : nbb;
    int64_t bshape[CRAFT_MAX_DIMS] = {0}, sa[CRAFT_MAX_DIMS], sb[CRAFT_MAX_DIMS];
    for (int i = 0; i < nb && !rc; i++) {
        int ia = i - (nb - nba), ib = i - (nb - nbb);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            rc = craft_fail(CRAFT_ESHAPE, "matmul: batch dims of %s and %s do not broadcast",
                            craft_shape_str(a_in), craft_shape_str(b_in));
        bshape[i] = da > db ? da : db;
        sa[i] = (ia >= 0 && da != 1) ? a->stride[ia] : 0;
        sb[i] = (ib >= 0 && db != 1) ? b->stride[ib] : 0;
    }
    if (!rc) {
        int64_t oshape[CRAFT_MAX_DIMS];
        for (int i = 0; i < nb; i++) oshape[i] = bshape[i];
        oshape[nb] = M;
        oshape[nb + 1] = N;
        if (!(y = craft_new_tensor(nb + 2, oshape, a->dtype, a->device))) rc = craft_last_status();
    }
    if (!rc && y->numel > 0) { /* an empty result may still have a huge batch: nothing to do */
        int64_t batch = craft_numel_of(nb, bshape), *offs = malloc((size_t)batch * 3 * sizeof *offs);
        if (!offs)
            rc = craft_fail(CRAFT_ENOMEM, "matmul: out of host memory for %lld batch offsets",
                            (long long)batch);
        for (int64_t bi = 0; !rc && bi < batch; bi++) {
            int64_t r = bi, oa = a->offset, ob = b->offset;
            for (int d = nb - 1; d >= 0; d--) {
                int64_t c = r % bshape[d];
                r /= bshape[d];
                oa += c * sa[d];
                ob += c * sb[d];
            }
            offs[bi] = oa;
            offs[batch + bi] = ob;
            offs[2 * batch + bi] = bi * M * N;
        }
        if (!rc && lowp)
            rc = (lowp == CRAFT_PREC_BF16 ? k->gemm_bf16 : k->gemm_f16)(la.trans, lb.trans, M, N, K, 1.0f, a,
                                                                        offs, la.ld, b, offs + batch, lb.ld,
                                                                        0.0f, y, offs + 2 * batch, N, batch,
                                                                        0);
        else if (!rc)
            rc = k->gemm(la.trans, lb.trans, M, N, K, 1.0f, a, offs, la.ld, b, offs + batch, lb.ld, 0.0f, y,
                         offs + 2 * batch, N, batch);
        free(offs);
    }
    craft_tensor_release(a);
    craft_tensor_release(b);
    return craft_finish(rc, y, out);
}

/* both products in bf16 when the forward was (mixed precision): matmul cannot tell a weight */
static int matmul_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = n->saved[0], *b = n->saved[1], *g, *t, *tr;
    CRAFT_TRY(craft_on_device(gout[0], a->device, &g));
    int rc = CRAFT_OK, bf16 = craft_bf16_grad_for(n, CRAFT_K_gemm_bf16);
    if (CRAFT_NEEDS_GRAD(n, 0)) { /* g @ b^T */
        rc = craft_transpose(b, -1, -2, &tr);
        if (!rc) {
            rc = matmul_raw(g, tr, bf16 ? CRAFT_PREC_BF16 : 0, &t);
            craft_tensor_release(tr);
        }
        if (!rc) {
            rc = craft_sum_to_shape(t, a->ndim, a->shape, &gin[0]);
            craft_tensor_release(t);
        }
    }
    if (!rc && CRAFT_NEEDS_GRAD(n, 1)) { /* a^T @ g */
        rc = craft_transpose(a, -1, -2, &tr);
        if (!rc) {
            rc = matmul_raw(tr, g, bf16 ? CRAFT_PREC_BF16 : 0, &t);
            craft_tensor_release(tr);
        }
        if (!rc) {
            rc = craft_sum_to_shape(t, b->ndim, b->shape, &gin[1]);
            craft_tensor_release(t);
        }
    }
    craft_tensor_release(g);
    return rc;
}

/* A 1-d operand is promoted (a to [1, K], b to [K, 1]), multiplied through craft_matmul and the
 * added dim dropped again: all differentiable, as torch.matmul. */
static int matmul_vec(const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    craft_tensor *a2 = NULL, *b2 = NULL, *y = NULL;
    int rc = a->ndim == 1 ? craft_unsqueeze(a, 0, &a2) : (a2 = craft_tensor_retain((craft_tensor *)a), 0);
    if (!rc)
        rc = b->ndim == 1 ? craft_unsqueeze(b, -1, &b2) : (b2 = craft_tensor_retain((craft_tensor *)b), 0);
    if (!rc) rc = craft_matmul(a2, b2, &y);
    craft_tensor_release(a2);
    craft_tensor_release(b2);
    if (rc) return rc;
    craft_tensor *s1 = y, *s2;
    if (a->ndim == 1) {
        rc = craft_squeeze(s1, -2, &s2);
        craft_tensor_release(s1);
        if (rc) return rc;
        s1 = s2;
    }
    if (b->ndim == 1) {
        rc = craft_squeeze(s1, -1, &s2);
        craft_tensor_release(s1);
        if (rc) return rc;
        s1 = s2;
    }
    *out = s1;
    return CRAFT_OK;
}

/* f16 @ f16 -> f16, never recorded (f16 tensors carry no gradients) */
static int matmul_half(const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if (craft_device_supports(a->device, CRAFT_K_gemm, CRAFT_F16)) return matmul_raw(a, b, 0, out);
    craft_tensor *a32 = NULL, *b32 = NULL, *y32 = NULL, *y = NULL; /* fp32 compute, f16 storage */
    int rc = craft_to_dtype(a, CRAFT_F32, &a32);
    if (!rc) rc = craft_to_dtype(b, CRAFT_F32, &b32);
    if (!rc) rc = matmul_raw(a32, b32, 0, &y32);
    if (!rc) rc = craft_to_dtype(y32, CRAFT_F16, &y);
    craft_tensor_release(a32);
    craft_tensor_release(b32);
    craft_tensor_release(y32);
    if (!rc) *out = y;
    return rc;
}

int craft_matmul(const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if (!a || !b) return craft_fail(CRAFT_EINVAL, "matmul: %s operand is missing", a ? "right" : "left");
    if (a->device != b->device)
        return craft_fail(CRAFT_EDEVICE,
                          "matmul: operands on %s and %s; both must be on one device (move with :to())",
                          craft_device_str(a->device), craft_device_str(b->device));
    int half = a->dtype == CRAFT_F16 && b->dtype == CRAFT_F16;
    if (!half) {
        CRAFT_TRY(craft_want("matmul", "left operand", a, a->device));
        CRAFT_TRY(craft_want("matmul", "right operand", b, a->device));
    }
    if (a->ndim == 0 || b->ndim == 0)
        return craft_fail(CRAFT_ESHAPE, "matmul: 0-d operand (%s @ %s)", craft_shape_str(a),
                          craft_shape_str(b));
    if (a->ndim == 1 || b->ndim == 1) return matmul_vec(a, b, out);
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return craft_fail(CRAFT_ESHAPE, "matmul: %s @ %s: inner dims %lld and %lld differ",
                          craft_shape_str(a), craft_shape_str(b), (long long)a->shape[a->ndim - 1],
                          (long long)b->shape[b->ndim - 2]);
    if (half) return matmul_half(a, b, out);
    craft_tensor *y;
    const craft_tensor *ins[2] = {a, b};
    int lowp = lowp_of(a->device, 2, ins);
    CRAFT_TRY(matmul_raw(a, b, lowp, &y));
    craft_node *node;
    int rc = craft_record("matmul", 2, ins, y, matmul_backward, 2, ins, NULL, 0, NULL, 0, &node);
    if (!rc && node) node->lowp = lowp == CRAFT_PREC_BF16;
    return craft_finish(rc, y, out);
}

/* ---- linear: y = x w^T + b ---- */
/* saved: x as [M, K] (contiguous), w (contiguous); gx = g w, gw = g^T x, gb = column sums of g.
 * After a bf16 forward (mixed precision) gx is a bf16 product (w's bf16 copy kept, as the
 * forward's); gw stays fp32. */
static int linear_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x2 = n->saved[0], *w = n->saved[1], *g;
    int64_t M = x2->shape[0], K = x2->shape[1], N = w->shape[0], zero = 0;
    const craft_kernels *k;
    static const int kids[2] = {CRAFT_K_gemm, CRAFT_K_sum_rows};
    CRAFT_TRY(craft_kernels_all(x2->device, CRAFT_F32, "linear backward", 2, kids, &k));
    CRAFT_TRY(craft_grad_on(gout[0], x2->device, &g));
    int rc = CRAFT_OK;
    if (CRAFT_NEEDS_GRAD(n, 0)) { /* gx = g w : [M, N] x [N, K] */
        craft_tensor *gx = craft_new_tensor(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, x2->device);
        if (!gx) rc = craft_last_status();
        else if (craft_bf16_grad_for(n, CRAFT_K_gemm_bf16))
            rc = k->gemm_bf16('N', 'N', M, K, N, 1.0f, g, &g->offset, N, w, &w->offset, K, 0.0f, gx, &zero, K, 1,
                              !w->requires_grad);
        else rc = k->gemm('N', 'N', M, K, N, 1.0f, g, &g->offset, N, w, &w->offset, K, 0.0f, gx, &zero, K, 1);
        gin[0] = gx;
    }
    if (!rc && CRAFT_NEEDS_GRAD(n, 1)) { /* gw = g^T x : [N, M] x [M, K] */
        craft_tensor *gw = craft_new_tensor(2, w->shape, CRAFT_F32, x2->device);
        rc = gw
            ? k->gemm('T', 'N', N, K, M, 1.0f, g, &g->offset, N, x2, &x2->offset, K, 0.0f, gw, &zero, K, 1)
            : craft_last_status();
        gin[1] = gw;
    }
    if (!rc && n->n_in > 2 && CRAFT_NEEDS_GRAD(n, 2)) {
        craft_tensor *gb = craft_new_tensor(1, &N, CRAFT_F32, x2->device);
        rc = gb ? k->sum_rows(g, M, N, gb) : craft_last_status();
        gin[2] = gb;
    }
    craft_tensor_release(g);
    return rc;
}

int craft_linear(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, craft_tensor **out) {
    const craft_kernels *k;
    if (!x) return craft_fail(CRAFT_EINVAL, "linear: input is missing");
    CRAFT_TRY(craft_want("linear", "input", x, x->device));
    CRAFT_TRY(craft_want("linear", "weight", w, x->device));
    if (b) CRAFT_TRY(craft_want("linear", "bias", b, x->device));
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return craft_fail(CRAFT_ESHAPE, "linear: input %s and weight %s (expected weight [out, %lld])",
                          craft_shape_str(x), craft_shape_str(w),
                          x->ndim ? (long long)x->shape[x->ndim - 1] : 0LL);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return craft_fail(CRAFT_ESHAPE, "linear: bias %s for weight %s (expected [%lld])", craft_shape_str(b),
                          craft_shape_str(w), (long long)w->shape[0]);
    const craft_tensor *ins[3] = {x, w, b};
    int lowp = lowp_of(x->device, 3, ins);
    CRAFT_TRY(craft_kernels_for(x->device, gemm_kid(lowp), CRAFT_F32, "linear", &k));
    craft_tensor *xc = NULL, *wc = NULL, *y = NULL;
    int rc = craft_contig_f32(x, &xc);
    if (!rc) rc = craft_contig_f32(w, &wc);
    int64_t K = w->shape[1], N = w->shape[0], M = K ? x->numel / K : 0, zero = 0;
    if (!rc) { /* x as [M, K], y as [..., N] */
        xc->ndim = 2;
        xc->shape[0] = M;
        xc->shape[1] = K;
        xc->stride[0] = K;
        xc->stride[1] = 1;
        int64_t oshape[CRAFT_MAX_DIMS];
        for (int i = 0; i < x->ndim - 1; i++) oshape[i] = x->shape[i];
        oshape[x->ndim - 1] = N;
        if (!(y = craft_new_tensor(x->ndim, oshape, CRAFT_F32, x->device))) rc = craft_last_status();
    }
    float beta = 0.0f;
    if (!rc && b && M * N > 0) { /* y's rows start as the bias; the product adds to them */
        craft_tensor *y2 = craft_alias(y);
        if (!y2) rc = craft_last_status();
        else {
            y2->ndim = 2;
            y2->shape[0] = M;
            y2->shape[1] = N;
            y2->stride[0] = N;
            y2->stride[1] = 1;
            rc = craft_copy_(y2, b);
            craft_tensor_release(y2);
        }
        beta = 1.0f;
    }
    if (!rc && !(K == 0 && b)) /* with K = 0 the bias is the whole result */
        rc = lowp
            ? (lowp == CRAFT_PREC_BF16 ? k->gemm_bf16 : k->gemm_f16)('N', 'T', M, N, K, 1.0f, xc, &xc->offset,
                                                                     K, wc, &wc->offset, K, beta, y, &zero, N,
                                                                     1, !craft_grad_enabled() || !w->requires_grad)
            : k->gemm('N', 'T', M, N, K, 1.0f, xc, &xc->offset, K, wc, &wc->offset, K, beta, y, &zero, N, 1);
    if (!rc) {
        const craft_tensor *save[2] = {xc, wc};
        craft_node *node;
        rc = craft_record("linear", b ? 3 : 2, ins, y, linear_backward, 2, save, NULL, 0, NULL, 0, &node);
        if (!rc && node) node->lowp = lowp == CRAFT_PREC_BF16;
    }
    craft_tensor_release(xc);
    craft_tensor_release(wc);
    return craft_finish(rc, y, out);
}
