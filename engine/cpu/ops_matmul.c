/* ops_matmul.c: batched matmul (torch.matmul broadcasting) and linear, on oneDNN's sgemm
 * (row-major, measured at 86-96 % of this machine's fp32 peak). Transposed views are passed as
 * transpose flags, not copied. */
#include "core/internal.h"
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

/* One operand matrix layout: row-major with leading dim, or transposed. */
typedef struct { char trans; int64_t ld; } mat_layout;

static int layout_of(const craft_tensor *t, mat_layout *l) {
    int n = t->ndim;
    int64_t rs = t->stride[n - 2], cs = t->stride[n - 1], rows = t->shape[n - 2], cols = t->shape[n - 1];
    if ((cs == 1 || cols == 1) && rs >= (cols > 1 ? cols : 1) && rs >= 1) { l->trans = 'N'; l->ld = rs; return 1; }
    if ((rs == 1 || rows == 1) && cs >= (rows > 1 ? rows : 1) && cs >= 1) { l->trans = 'T'; l->ld = cs; return 1; }
    return 0;
}

int craft_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return CRAFT_OK;
    if (K == 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return CRAFT_OK;
    }
    dnnl_status_t s = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (s != dnnl_success) return craft_fail(CRAFT_EINVAL, "sgemm %lldx%lldx%lld failed in oneDNN (status %d)",
                                             (long long)M, (long long)N, (long long)K, (int)s);
    return CRAFT_OK;
}

/* C[batch] = A[batch] @ B[batch] for a, b with >= 2 dims and broadcast batch dims. */
static int matmul_raw(const craft_tensor *a_in, const craft_tensor *b_in, craft_tensor **out) {
    craft_tensor *a = craft_alias(a_in), *b = craft_alias(b_in);
    if (!a || !b) { craft_tensor_release(a); craft_tensor_release(b); return craft_last_status(); }
    mat_layout la, lb;
    int rc = CRAFT_OK;
    if (!layout_of(a, &la)) { craft_tensor *c = NULL; rc = craft_contig_f32(a, &c); craft_tensor_release(a); a = c; if (!rc) layout_of(a, &la); }
    if (!rc && !layout_of(b, &lb)) { craft_tensor *c = NULL; rc = craft_contig_f32(b, &c); craft_tensor_release(b); b = c; if (!rc) layout_of(b, &lb); }
    if (rc) { craft_tensor_release(a); craft_tensor_release(b); return rc; }
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    /* broadcast batch dims */
    int nba = a->ndim - 2, nbb = b->ndim - 2, nb = nba > nbb ? nba : nbb;
    int64_t bshape[CRAFT_MAX_DIMS], sa[CRAFT_MAX_DIMS], sb[CRAFT_MAX_DIMS];
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - nba), ib = i - (nb - nbb);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            rc = craft_fail(CRAFT_ESHAPE, "matmul: batch dims of %s and %s do not broadcast", craft_shape_str(a_in), craft_shape_str(b_in));
            break;
        }
        bshape[i] = da > db ? da : db;
        sa[i] = (ia >= 0 && da != 1) ? a->stride[ia] : 0;
        sb[i] = (ib >= 0 && db != 1) ? b->stride[ib] : 0;
    }
    craft_tensor *y = NULL;
    if (!rc) {
        int64_t oshape[CRAFT_MAX_DIMS];
        for (int i = 0; i < nb; i++) oshape[i] = bshape[i];
        oshape[nb] = M;
        oshape[nb + 1] = N;
        y = craft_new_tensor(nb + 2, oshape, CRAFT_F32, 0);
        if (!y) rc = craft_last_status();
    }
    if (!rc && y->numel > 0) {   /* an empty result may still have a huge batch: nothing to do */
        int64_t batch = craft_numel_of(nb, bshape);
        const float *ap = craft_tensor_data(a), *bp = craft_tensor_data(b);
        float *yp = craft_tensor_data(y);
        int par = batch >= 2 && M * N * K < (1 << 21);
        int err = 0;
        #pragma omp parallel for if (par) schedule(static)
        for (int64_t bi = 0; bi < batch; bi++) {
            int64_t r = bi, offa = 0, offb = 0;
            for (int d = nb - 1; d >= 0; d--) { int64_t k = r % bshape[d]; r /= bshape[d]; offa += k * sa[d]; offb += k * sb[d]; }
            if (craft_sgemm(la.trans, lb.trans, M, N, K, 1.0f, ap + offa, la.ld, bp + offb, lb.ld, 0.0f, yp + bi * M * N, N))
                err = 1;
        }
        if (err) rc = craft_fail(CRAFT_EINVAL, "matmul %s @ %s: oneDNN sgemm failed", craft_shape_str(a_in), craft_shape_str(b_in));
    }
    craft_tensor_release(a);
    craft_tensor_release(b);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static int matmul_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = n->saved[0], *b = n->saved[1], *g = gout[0], *t, *tr;
    if (CRAFT_NEEDS_GRAD(n, 0)) {   /* g @ b^T */
        CRAFT_TRY(craft_transpose(b, -1, -2, &tr));
        int rc = matmul_raw(g, tr, &t);
        craft_tensor_release(tr);
        if (rc) return rc;
        rc = craft_sum_to_shape(t, a->ndim, a->shape, &gin[0]);
        craft_tensor_release(t);
        if (rc) return rc;
    }
    if (CRAFT_NEEDS_GRAD(n, 1)) {   /* a^T @ g */
        CRAFT_TRY(craft_transpose(a, -1, -2, &tr));
        int rc = matmul_raw(tr, g, &t);
        craft_tensor_release(tr);
        if (rc) return rc;
        rc = craft_sum_to_shape(t, b->ndim, b->shape, &gin[1]);
        craft_tensor_release(t);
        if (rc) return rc;
    }
    return CRAFT_OK;
}

/* A 1-d operand is promoted (a to [1, K], b to [K, 1]), multiplied through craft_matmul (on
 * the operands' device) and the added dim dropped again: all differentiable, as torch.matmul. */
int craft_matmul_vec(const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    craft_tensor *a2 = NULL, *b2 = NULL, *y = NULL;
    int rc = a->ndim == 1 ? craft_unsqueeze(a, 0, &a2) : (a2 = craft_tensor_retain((craft_tensor *)a), 0);
    if (!rc) rc = b->ndim == 1 ? craft_unsqueeze(b, -1, &b2) : (b2 = craft_tensor_retain((craft_tensor *)b), 0);
    if (!rc) rc = craft_matmul(a2, b2, &y);
    craft_tensor_release(a2);
    craft_tensor_release(b2);
    if (rc) return rc;
    craft_tensor *s1 = y, *s2;
    if (a->ndim == 1) { rc = craft_squeeze(s1, -2, &s2); craft_tensor_release(s1); if (rc) return rc; s1 = s2; }
    if (b->ndim == 1) { rc = craft_squeeze(s1, -1, &s2); craft_tensor_release(s1); if (rc) return rc; s1 = s2; }
    *out = s1;
    return CRAFT_OK;
}

int craft_matmul(const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if ((a && a->device != CRAFT_DEVICE_CPU) || (b && b->device != CRAFT_DEVICE_CPU)) return craft_cl_op_matmul(a, b, out);
    CRAFT_TRY(craft_check_f32("matmul", "left operand", a));
    CRAFT_TRY(craft_check_f32("matmul", "right operand", b));
    if (a->ndim == 0 || b->ndim == 0) return craft_fail(CRAFT_ESHAPE, "matmul: 0-d operand (%s @ %s)", craft_shape_str(a), craft_shape_str(b));
    if (a->ndim == 1 || b->ndim == 1) return craft_matmul_vec(a, b, out);
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return craft_fail(CRAFT_ESHAPE, "matmul: %s @ %s: inner dims %lld and %lld differ", craft_shape_str(a), craft_shape_str(b),
                          (long long)a->shape[a->ndim - 1], (long long)b->shape[b->ndim - 2]);
    craft_tensor *y;
    CRAFT_TRY(matmul_raw(a, b, &y));
    const craft_tensor *ins[2] = {a, b};
    int rc = craft_record("matmul", 2, ins, y, matmul_backward, 2, ins, NULL, 0, NULL, 0, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---- linear: y = x w^T + b ---- */
static int linear_forward(const craft_tensor *x2, const craft_tensor *w, const craft_tensor *b, craft_tensor *y) {
    int64_t M = x2->shape[0], K = x2->shape[1], N = w->shape[0];
    float *yp = craft_tensor_data(y);
    float beta = 0.0f;
    if (b) {
        const float *bp = craft_tensor_data(b);
        for (int64_t i = 0; i < M; i++) memcpy(yp + i * N, bp, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    return craft_sgemm('N', 'T', M, N, K, 1.0f, craft_tensor_data(x2), K, craft_tensor_data(w), K, beta, yp, N);
}

static int linear_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x2 = n->saved[0], *w = n->saved[1], *g;
    int64_t M = x2->shape[0], K = x2->shape[1], N = w->shape[0];
    CRAFT_TRY(craft_contig_f32(gout[0], &g));
    const float *gp = craft_tensor_data(g);
    int rc = CRAFT_OK;
    if (CRAFT_NEEDS_GRAD(n, 0)) {   /* gx = g w : [M, N] x [N, K] */
        craft_tensor *gx = craft_new_tensor(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, 0);
        if (!gx) rc = craft_last_status();
        else {
            rc = craft_sgemm('N', 'N', M, K, N, 1.0f, gp, N, craft_tensor_data(w), K, 0.0f, craft_tensor_data(gx), K);
            gin[0] = gx;
        }
    }
    if (!rc && CRAFT_NEEDS_GRAD(n, 1)) {   /* gw = g^T x : [N, M] x [M, K] */
        craft_tensor *gw = craft_new_tensor(2, w->shape, CRAFT_F32, 0);
        if (!gw) rc = craft_last_status();
        else {
            rc = craft_sgemm('T', 'N', N, K, M, 1.0f, gp, N, craft_tensor_data(x2), K, 0.0f, craft_tensor_data(gw), K);
            gin[1] = gw;
        }
    }
    if (!rc && n->n_in > 2 && CRAFT_NEEDS_GRAD(n, 2)) {
        craft_tensor *gb = craft_new_tensor(1, &N, CRAFT_F32, 0);
        if (!gb) rc = craft_last_status();
        else {
            float *bp = craft_tensor_data(gb);
            #pragma omp parallel for if (M * N >= CRAFT_PAR_MIN)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t i = 0; i < M; i++) s += gp[i * N + j];
                bp[j] = (float)s;
            }
            gin[2] = gb;
        }
    }
    craft_tensor_release(g);
    return rc;
}

int craft_linear(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, craft_tensor **out) {
    if ((x && x->device != CRAFT_DEVICE_CPU) || (w && w->device != CRAFT_DEVICE_CPU)) return craft_cl_op_linear(x, w, b, out);
    CRAFT_TRY(craft_check_f32("linear", "input", x));
    CRAFT_TRY(craft_check_f32("linear", "weight", w));
    if (b) CRAFT_TRY(craft_check_f32("linear", "bias", b));
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return craft_fail(CRAFT_ESHAPE, "linear: input %s and weight %s (expected weight [out, %lld])", craft_shape_str(x),
                          craft_shape_str(w), x->ndim ? (long long)x->shape[x->ndim - 1] : 0LL);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return craft_fail(CRAFT_ESHAPE, "linear: bias %s for weight %s (expected [%lld])", craft_shape_str(b), craft_shape_str(w), (long long)w->shape[0]);
    craft_tensor *xc, *wc, *bc = NULL, *y = NULL;
    CRAFT_TRY(craft_contig_f32(x, &xc));
    int rc = craft_contig_f32(w, &wc);
    if (rc) { craft_tensor_release(xc); return rc; }
    if (b) rc = craft_contig_f32(b, &bc);
    int64_t K = w->shape[1], M = K ? x->numel / K : 0;
    if (!rc) {   /* x as [M, K], y as [..., N] */
        xc->ndim = 2;
        xc->shape[0] = M; xc->shape[1] = K;
        xc->stride[0] = K; xc->stride[1] = 1;
        int64_t oshape[CRAFT_MAX_DIMS];
        for (int i = 0; i < x->ndim - 1; i++) oshape[i] = x->shape[i];
        oshape[x->ndim - 1] = w->shape[0];
        y = craft_new_tensor(x->ndim, oshape, CRAFT_F32, 0);
        if (!y) rc = craft_last_status();
    }
    if (!rc) rc = linear_forward(xc, wc, bc, y);
    if (!rc) {
        const craft_tensor *ins[3] = {x, w, b};
        const craft_tensor *save[2] = {xc, wc};
        rc = craft_record("linear", b ? 3 : 2, ins, y, linear_backward, 2, save, NULL, 0, NULL, 0, NULL);
    }
    craft_tensor_release(xc);
    craft_tensor_release(wc);
    craft_tensor_release(bc);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
