/* cl_ops_gemm.c: matrix products on cl devices through CLBlast (row-major SGEMM, strided
 * batched or offset-list batched), and matmul / linear as differentiable ops with the CPU's
 * semantics (engine/ops_matmul.c): torch.matmul broadcasting, transposed views passed as
 * transpose flags, not copied. CLBlast compiles a kernel per routine variant on first use
 * (seconds on PoCL); it enqueues on the device's one queue, so ordering is kept.
 * f16 matmul (inference: f16 tensors never carry gradients) runs in half precision through
 * CLBlast's HGEMM where the device has cl_khr_fp16, and elsewhere in fp32 on converted copies,
 * rounded back to f16. */
#include "cl/cl_internal.h"
#include <stdlib.h>

static int blast_fail(int st, craft_cl_dev *d, const char *what, int64_t M, int64_t N, int64_t K, int64_t batch) {
    const char *name = st == CLBlastNotImplemented ? " (not implemented)" : st == CLBlastInvalidLocalMemUsage ? " (local memory)"
                       : st == CLBlastNoDoublePrecision ? " (no double precision)" : st == CLBlastInvalidBatchCount ? " (batch count)"
                       : st <= -2040 && st >= -2048 ? " (CLBlast kernel setup)" : st < 0 && st > -100 ? " (OpenCL error)" : "";
    return craft_fail(st == CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CL_OUT_OF_RESOURCES ? CRAFT_ENOMEM : CRAFT_EDEVICE,
                      "%s %lldx%lldx%lld (batch %lld) on cl:%d (%s): CLBlast status %d%s", what, (long long)M, (long long)N,
                      (long long)K, (long long)batch, d->index, d->info.name, st, name);
}

/* C[i] = alpha op(A[i]) op(B[i]) + beta C[i] for i < batch, row-major; offsets in elements into
 * the storages. C must be a distinct storage from A and B. */
int craft_cl_gemm_batched(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                          const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,
                          float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(C->device, "gemm", &d));
    CRAFT_TRY(cl_blast_load());
    if (A->device != C->device || B->device != C->device)
        return craft_fail(CRAFT_EDEVICE, "gemm: operands on devices %d, %d and %d", A->device, B->device, C->device);
    int half = C->dtype == CRAFT_F16;
    if ((C->dtype != CRAFT_F32 && !half) || A->dtype != C->dtype || B->dtype != C->dtype)
        return craft_fail(CRAFT_ETYPE, "gemm: f32 (or, with cl_khr_fp16, f16) operands of one dtype expected (%s, %s, %s)",
                          craft_shape_str(A), craft_shape_str(B), craft_shape_str(C));
    if (half && !d->info.fp16)
        return craft_fail(CRAFT_EUNSUPPORTED, "gemm: cl:%d (%s) has no cl_khr_fp16 for f16 products", d->index, d->info.name);
    if (M == 0 || N == 0 || batch == 0) return CRAFT_OK;
    if (K == 0) {   /* C = beta C: only the fresh-output case is needed */
        if (beta != 0 || ldc != N) return craft_fail(CRAFT_EUNSUPPORTED, "gemm: K = 0 needs beta 0 and dense C");
        float zero = 0;
        size_t es = half ? 2 : 4;
        for (int64_t i = 0; i < batch; i++) {
            cl_int err = clEnqueueFillBuffer(d->queue, cl_mem_of(C), &zero, es, (size_t)coff[i] * es, (size_t)(M * N) * es, 0, NULL, NULL);
            if (err != CL_SUCCESS) return cl_fail(err, d, "gemm (K = 0)");
        }
        return CRAFT_OK;
    }
    CLBlastTranspose tA = ta == 'T' ? CLBlastTransposeYes : CLBlastTransposeNo, tB = tb == 'T' ? CLBlastTransposeYes : CLBlastTransposeNo;
    cl_mem am = cl_mem_of(A), bm = cl_mem_of(B), cm = cl_mem_of(C);
    int strided = batch > 1;
    for (int64_t i = 2; i < batch && strided; i++)
        strided = aoff[i] - aoff[i - 1] == aoff[1] - aoff[0] && boff[i] - boff[i - 1] == boff[1] - boff[0] &&
                  coff[i] - coff[i - 1] == coff[1] - coff[0];
    if (strided) strided = aoff[1] >= aoff[0] && boff[1] >= boff[0] && coff[1] > coff[0];
    CLBlastStatusCode st;
    cl_half ha = craft_float_to_half(alpha), hb = craft_float_to_half(beta);
    pthread_mutex_lock(&d->lock);
    if (half && batch == 1) {
        st = CLBlastHgemm(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, ha, am, (size_t)aoff[0], (size_t)lda,
                          bm, (size_t)boff[0], (size_t)ldb, hb, cm, (size_t)coff[0], (size_t)ldc, &d->queue, NULL);
    } else if (half && strided) {
        st = CLBlastHgemmStridedBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, ha, am, (size_t)aoff[0],
                                        (size_t)lda, (size_t)(aoff[1] - aoff[0]), bm, (size_t)boff[0], (size_t)ldb,
                                        (size_t)(boff[1] - boff[0]), hb, cm, (size_t)coff[0], (size_t)ldc,
                                        (size_t)(coff[1] - coff[0]), (size_t)batch, &d->queue, NULL);
    } else if (batch == 1) {
        st = CLBlastSgemm(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, alpha, am, (size_t)aoff[0], (size_t)lda,
                          bm, (size_t)boff[0], (size_t)ldb, beta, cm, (size_t)coff[0], (size_t)ldc, &d->queue, NULL);
    } else if (strided) {
        st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, alpha, am, (size_t)aoff[0],
                                        (size_t)lda, (size_t)(aoff[1] - aoff[0]), bm, (size_t)boff[0], (size_t)ldb,
                                        (size_t)(boff[1] - boff[0]), beta, cm, (size_t)coff[0], (size_t)ldc,
                                        (size_t)(coff[1] - coff[0]), (size_t)batch, &d->queue, NULL);
    } else {
        size_t *offs = malloc((size_t)batch * 3 * sizeof *offs);
        float *ab = malloc((size_t)batch * 2 * sizeof *ab);
        cl_half *hab = malloc((size_t)batch * 2 * sizeof *hab);
        if (!offs || !ab || !hab) {
            pthread_mutex_unlock(&d->lock);
            free(offs);
            free(ab);
            free(hab);
            return craft_fail(CRAFT_ENOMEM, "gemm: out of host memory for %lld batch offsets", (long long)batch);
        }
        for (int64_t i = 0; i < batch; i++) {
            offs[i] = (size_t)aoff[i];
            offs[batch + i] = (size_t)boff[i];
            offs[2 * batch + i] = (size_t)coff[i];
            ab[i] = alpha;
            ab[batch + i] = beta;
            hab[i] = ha;
            hab[batch + i] = hb;
        }
        if (half)
            st = CLBlastHgemmBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, hab, am, offs, (size_t)lda, bm,
                                     offs + batch, (size_t)ldb, hab + batch, cm, offs + 2 * batch, (size_t)ldc, (size_t)batch,
                                     &d->queue, NULL);
        else
            st = CLBlastSgemmBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, ab, am, offs, (size_t)lda, bm,
                                     offs + batch, (size_t)ldb, ab + batch, cm, offs + 2 * batch, (size_t)ldc, (size_t)batch,
                                     &d->queue, NULL);
        free(offs);
        free(ab);
        free(hab);
    }
    pthread_mutex_unlock(&d->lock);
    return st == CLBlastSuccess ? CRAFT_OK : blast_fail(st, d, "gemm", M, N, K, batch);
}

int craft_cl_gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A, int64_t aoff,
                  int64_t lda, const craft_tensor *B, int64_t boff, int64_t ldb, float beta, craft_tensor *C, int64_t coff,
                  int64_t ldc) {
    return craft_cl_gemm_batched(ta, tb, M, N, K, alpha, A, &aoff, lda, B, &boff, ldb, beta, C, &coff, ldc, 1);
}

/* ---------------------------------------------------------------- matmul ---- */
typedef struct { char trans; int64_t ld; } mat_layout;

static int layout_of(const craft_tensor *t, mat_layout *l) {
    int n = t->ndim;
    int64_t rs = t->stride[n - 2], cs = t->stride[n - 1], rows = t->shape[n - 2], cols = t->shape[n - 1];
    if ((cs == 1 || cols == 1) && rs >= (cols > 1 ? cols : 1) && rs >= 1) { l->trans = 'N'; l->ld = rs; return 1; }
    if ((rs == 1 || rows == 1) && cs >= (rows > 1 ? rows : 1) && cs >= 1) { l->trans = 'T'; l->ld = cs; return 1; }
    return 0;
}

/* an operand CLBlast can read: t itself or a contiguous copy */
static int gemm_operand(const craft_tensor *t, craft_tensor **out, mat_layout *l) {
    if (layout_of(t, l)) { *out = craft_alias(t); return *out ? CRAFT_OK : craft_last_status(); }
    craft_tensor *c = cl_new(t->ndim, t->shape, t->dtype, t->device);
    int rc = c ? craft_cl_copy_(c, t) : craft_last_status();
    if (rc) { craft_tensor_release(c); return rc; }
    layout_of(c, l);
    *out = c;
    return CRAFT_OK;
}

static int matmul_raw(const craft_tensor *a_in, const craft_tensor *b_in, craft_tensor **out) {
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
            rc = craft_fail(CRAFT_ESHAPE, "matmul: batch dims of %s and %s do not broadcast", craft_shape_str(a_in), craft_shape_str(b_in));
        bshape[i] = da > db ? da : db;
        sa[i] = (ia >= 0 && da != 1) ? a->stride[ia] : 0;
        sb[i] = (ib >= 0 && db != 1) ? b->stride[ib] : 0;
    }
    int64_t batch = craft_numel_of(nb, bshape), *offs = NULL;
    if (!rc) {
        int64_t oshape[CRAFT_MAX_DIMS];
        for (int i = 0; i < nb; i++) oshape[i] = bshape[i];
        oshape[nb] = M;
        oshape[nb + 1] = N;
        y = cl_new(nb + 2, oshape, a->dtype, a->device);
        offs = malloc((size_t)(batch ? batch : 1) * 3 * sizeof *offs);
        if (!y) rc = craft_last_status();
        else if (!offs) rc = craft_fail(CRAFT_ENOMEM, "matmul: out of host memory");
    }
    if (!rc) {
        for (int64_t bi = 0; bi < batch; bi++) {
            int64_t r = bi, oa = a->offset, ob = b->offset;
            for (int dd = nb - 1; dd >= 0; dd--) { int64_t k = r % bshape[dd]; r /= bshape[dd]; oa += k * sa[dd]; ob += k * sb[dd]; }
            offs[bi] = oa;
            offs[batch + bi] = ob;
            offs[2 * batch + bi] = bi * M * N;
        }
        if (!rc) rc = craft_cl_gemm_batched(la.trans, lb.trans, M, N, K, 1.0f, a, offs, la.ld, b, offs + batch, lb.ld, 0.0f, y,
                                   offs + 2 * batch, N, batch);
    }
    free(offs);
    craft_tensor_release(a);
    craft_tensor_release(b);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static int matmul_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *a = n->saved[0], *b = n->saved[1], *g, *t, *tr;
    CRAFT_TRY(cl_on_device(gout[0], a->device, &g));
    int rc = CRAFT_OK;
    if (CRAFT_NEEDS_GRAD(n, 0)) {   /* g @ b^T */
        rc = craft_transpose(b, -1, -2, &tr);
        if (!rc) { rc = matmul_raw(g, tr, &t); craft_tensor_release(tr); }
        if (!rc) { rc = cl_sum_to_shape(t, a->ndim, a->shape, &gin[0]); craft_tensor_release(t); }
    }
    if (!rc && CRAFT_NEEDS_GRAD(n, 1)) {   /* a^T @ g */
        rc = craft_transpose(a, -1, -2, &tr);
        if (!rc) { rc = matmul_raw(tr, g, &t); craft_tensor_release(tr); }
        if (!rc) { rc = cl_sum_to_shape(t, b->ndim, b->shape, &gin[1]); craft_tensor_release(t); }
    }
    craft_tensor_release(g);
    return rc;
}

static int check_pair(const char *op, const craft_tensor *a, const craft_tensor *b) {
    if (!a || !b) return craft_fail(CRAFT_EINVAL, "%s: operand missing", op);
    if (!strcmp(op, "matmul") && a->dtype == CRAFT_F16 && b->dtype == CRAFT_F16 && a->device == b->device && a->device) return CRAFT_OK;
    if (a->dtype != CRAFT_F32 || b->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s and %s, expected f32 (convert with :float())", op, craft_shape_str(a), craft_shape_str(b));
    if (a->device != b->device || a->device == CRAFT_DEVICE_CPU)
        return craft_fail(CRAFT_EDEVICE, "%s: operands on devices %d and %d; both must be on one cl device (move with :to())", op,
                          a->device, b->device);
    return CRAFT_OK;
}

/* f16 @ f16 -> f16, never recorded (f16 tensors carry no gradients) */
static int matmul_half(const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(a->device, "matmul", &d));
    if (d->info.fp16) return matmul_raw(a, b, out);
    craft_tensor *a32 = NULL, *b32 = NULL, *y32 = NULL, *y = NULL;   /* fp32 compute, f16 storage */
    int rc = craft_to_dtype(a, CRAFT_F32, &a32);
    if (!rc) rc = craft_to_dtype(b, CRAFT_F32, &b32);
    if (!rc) rc = matmul_raw(a32, b32, &y32);
    if (!rc) rc = craft_to_dtype(y32, CRAFT_F16, &y);
    craft_tensor_release(a32);
    craft_tensor_release(b32);
    craft_tensor_release(y32);
    if (!rc) *out = y;
    return rc;
}

int craft_cl_op_matmul(const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    CRAFT_TRY(check_pair("matmul", a, b));
    if (a->ndim == 0 || b->ndim == 0) return craft_fail(CRAFT_ESHAPE, "matmul: 0-d operand (%s @ %s)", craft_shape_str(a), craft_shape_str(b));
    if (a->ndim == 1 || b->ndim == 1) return craft_matmul_vec(a, b, out);
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return craft_fail(CRAFT_ESHAPE, "matmul: %s @ %s: inner dims %lld and %lld differ", craft_shape_str(a), craft_shape_str(b),
                          (long long)a->shape[a->ndim - 1], (long long)b->shape[b->ndim - 2]);
    craft_tensor *y;
    if (a->dtype == CRAFT_F16) return matmul_half(a, b, out);
    CRAFT_TRY(matmul_raw(a, b, &y));
    const craft_tensor *ins[2] = {a, b};
    int rc = craft_record("matmul", 2, ins, y, matmul_backward, 2, ins, NULL, 0, NULL, 0, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---------------------------------------------------------------- linear ---- */
/* saved: x as [M, K] (contiguous), w (contiguous); gx = g w, gw = g^T x, gb = column sums of g */
static int linear_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x2 = n->saved[0], *w = n->saved[1], *g = NULL, *gd = NULL;
    int64_t M = x2->shape[0], K = x2->shape[1], N = w->shape[0];
    int rc = cl_on_device(gout[0], x2->device, &gd);
    if (!rc) rc = craft_contig_f32(gd, &g);
    craft_tensor_release(gd);
    if (!rc && CRAFT_NEEDS_GRAD(n, 0)) {
        craft_tensor *gx = cl_new(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, x2->device);
        rc = gx ? craft_cl_gemm('N', 'N', M, K, N, 1.0f, g, g->offset, N, w, w->offset, K, 0.0f, gx, 0, K) : craft_last_status();
        gin[0] = gx;
    }
    if (!rc && CRAFT_NEEDS_GRAD(n, 1)) {
        craft_tensor *gw = cl_new(2, w->shape, CRAFT_F32, x2->device);
        rc = gw ? craft_cl_gemm('T', 'N', N, K, M, 1.0f, g, g->offset, N, x2, x2->offset, K, 0.0f, gw, 0, K) : craft_last_status();
        gin[1] = gw;
    }
    if (!rc && n->n_in > 2 && CRAFT_NEEDS_GRAD(n, 2)) {
        craft_tensor *g2 = craft_alias(g), *gb = NULL;
        if (!g2) rc = craft_last_status();
        else {
            g2->ndim = 2;
            g2->shape[0] = M; g2->shape[1] = N;
            g2->stride[0] = N; g2->stride[1] = 1;
            int dim0 = 0;
            rc = craft_cl_reduce(0, g2, 1, &dim0, 0, 0, &gb);
            craft_tensor_release(g2);
            gin[2] = gb;
        }
    }
    craft_tensor_release(g);
    return rc;
}

int craft_cl_op_linear(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, craft_tensor **out) {
    CRAFT_TRY(check_pair("linear", x, w));
    if (b && (b->dtype != CRAFT_F32 || b->device != x->device))
        return craft_fail(CRAFT_EDEVICE, "linear: bias %s on device %d, input on device %d", craft_shape_str(b), b->device, x->device);
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return craft_fail(CRAFT_ESHAPE, "linear: input %s and weight %s (expected weight [out, %lld])", craft_shape_str(x),
                          craft_shape_str(w), x->ndim ? (long long)x->shape[x->ndim - 1] : 0LL);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return craft_fail(CRAFT_ESHAPE, "linear: bias %s for weight %s (expected [%lld])", craft_shape_str(b), craft_shape_str(w), (long long)w->shape[0]);
    craft_tensor *xc = NULL, *wc = NULL, *y = NULL;
    int rc = craft_contig_f32(x, &xc);
    if (!rc) rc = craft_contig_f32(w, &wc);
    int64_t K = w->shape[1], N = w->shape[0], M = K ? x->numel / K : 0;
    if (!rc) {
        xc->ndim = 2;
        xc->shape[0] = M; xc->shape[1] = K;
        xc->stride[0] = K; xc->stride[1] = 1;
        int64_t oshape[CRAFT_MAX_DIMS];
        for (int i = 0; i < x->ndim - 1; i++) oshape[i] = x->shape[i];
        oshape[x->ndim - 1] = N;
        y = cl_new(x->ndim, oshape, CRAFT_F32, x->device);
        if (!y) rc = craft_last_status();
    }
    float beta = 0.0f;
    if (!rc && b && M * N > 0) {   /* y rows start as the bias */
        craft_tensor *y2 = craft_alias(y);
        if (!y2) rc = craft_last_status();
        else {
            y2->ndim = 2;
            y2->shape[0] = M; y2->shape[1] = N;
            y2->stride[0] = N; y2->stride[1] = 1;
            rc = craft_cl_copy_(y2, b);
            craft_tensor_release(y2);
        }
        beta = 1.0f;
    }
    if (!rc && K == 0 && b) { /* y = bias already */ }
    else if (!rc) rc = craft_cl_gemm('N', 'T', M, N, K, 1.0f, xc, xc->offset, K, wc, wc->offset, K, beta, y, 0, N);
    if (!rc) {
        const craft_tensor *ins[3] = {x, w, b};
        const craft_tensor *save[2] = {xc, wc};
        rc = craft_record("linear", b ? 3 : 2, ins, y, linear_backward, 2, save, NULL, 0, NULL, 0, NULL);
    }
    craft_tensor_release(xc);
    craft_tensor_release(wc);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
