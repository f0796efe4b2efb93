/* cl_gemm.c: matrix products on cl devices through CLBlast (row-major SGEMM / HGEMM, strided
 * batched or offset-list batched): the back end's gemm kernel, and linear's bias gradient. An
 * f32 product may run on craft's tiled kernel instead where the per-device choice says so
 * (cl_gemm_tiled.c: CRAFT_CL_GEMM=tiled or tune; CLBlast by default).
 * CLBlast compiles a kernel per routine variant on first use (seconds on PoCL); it enqueues
 * on the device's one queue, so ordering is kept. HGEMM needs cl_khr_fp16 (the back end's
 * supports() says so; the op layer falls back to fp32 elsewhere). */
#include "cl/cl_internal.h"
#include <stdlib.h>

static int blast_fail(int st, craft_cl_dev *d, const char *what, int64_t M, int64_t N, int64_t K,
                      int64_t batch) {
    const char *name = st == CLBlastNotImplemented ? " (not implemented)"
        : st == CLBlastInvalidLocalMemUsage        ? " (local memory)"
        : st == CLBlastNoDoublePrecision           ? " (no double precision)"
        : st == CLBlastInvalidBatchCount           ? " (batch count)"
        : st <= -2040 && st >= -2048               ? " (CLBlast kernel setup)"
        : st < 0 && st > -100                      ? " (OpenCL error)"
                                                   : "";
    return craft_fail(st == CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CL_OUT_OF_RESOURCES ? CRAFT_ENOMEM
                                                                                          : CRAFT_EDEVICE,
                      "%s %lldx%lldx%lld (batch %lld) on cl:%d (%s): CLBlast status %d%s", what, (long long)M,
                      (long long)N, (long long)K, (long long)batch, d->index, d->info.name, st, name);
}

/* C[i] = alpha op(A[i]) op(B[i]) + beta C[i] for i < batch, row-major; offsets in elements into
 * the storages. C must be a distinct storage from A and B. */
static int gemm_blast(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                      const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff,
                      int64_t ldb, float beta, craft_tensor *C, const int64_t *coff, int64_t ldc,
                      int64_t batch) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(C->device, "gemm", &d));
    CRAFT_TRY(cl_blast_load());
    if (A->device != C->device || B->device != C->device)
        return craft_fail(CRAFT_EDEVICE, "gemm: operands on devices %d, %d and %d", A->device, B->device,
                          C->device);
    int half = C->dtype == CRAFT_F16;
    if ((C->dtype != CRAFT_F32 && !half) || A->dtype != C->dtype || B->dtype != C->dtype)
        return craft_fail(CRAFT_ETYPE,
                          "gemm: f32 (or, with cl_khr_fp16, f16) operands of one dtype expected (%s, %s, %s)",
                          craft_shape_str(A), craft_shape_str(B), craft_shape_str(C));
    if (half && !d->info.fp16)
        return craft_fail(CRAFT_EUNSUPPORTED, "gemm: cl:%d (%s) has no cl_khr_fp16 for f16 products",
                          d->index, d->info.name);
    if (M == 0 || N == 0 || batch == 0) return CRAFT_OK;
    if (K == 0) { /* C = beta C: only the fresh-output case is needed */
        if (beta != 0 || ldc != N)
            return craft_fail(CRAFT_EUNSUPPORTED, "gemm: K = 0 needs beta 0 and dense C");
        float zero = 0;
        size_t es = half ? 2 : 4;
        for (int64_t i = 0; i < batch; i++) {
            cl_int err = clEnqueueFillBuffer(d->queue, cl_mem_of(C), &zero, es, (size_t)coff[i] * es,
                                             (size_t)(M * N) * es, 0, NULL, NULL);
            if (err != CL_SUCCESS) return cl_fail(err, d, "gemm (K = 0)");
        }
        return CRAFT_OK;
    }
    CLBlastTranspose tA = ta == 'T' ? CLBlastTransposeYes : CLBlastTransposeNo,
                     tB = tb == 'T' ? CLBlastTransposeYes : CLBlastTransposeNo;
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
        st = CLBlastHgemm(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, ha, am,
                          (size_t)aoff[0], (size_t)lda, bm, (size_t)boff[0], (size_t)ldb, hb, cm,
                          (size_t)coff[0], (size_t)ldc, &d->queue, NULL);
    } else if (half && strided) {
        st = CLBlastHgemmStridedBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, ha,
                                        am, (size_t)aoff[0], (size_t)lda, (size_t)(aoff[1] - aoff[0]), bm,
                                        (size_t)boff[0], (size_t)ldb, (size_t)(boff[1] - boff[0]), hb, cm,
                                        (size_t)coff[0], (size_t)ldc, (size_t)(coff[1] - coff[0]),
                                        (size_t)batch, &d->queue, NULL);
    } else if (batch == 1) {
        st = CLBlastSgemm(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, alpha, am,
                          (size_t)aoff[0], (size_t)lda, bm, (size_t)boff[0], (size_t)ldb, beta, cm,
                          (size_t)coff[0], (size_t)ldc, &d->queue, NULL);
    } else if (strided) {
        st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, alpha,
                                        am, (size_t)aoff[0], (size_t)lda, (size_t)(aoff[1] - aoff[0]), bm,
                                        (size_t)boff[0], (size_t)ldb, (size_t)(boff[1] - boff[0]), beta, cm,
                                        (size_t)coff[0], (size_t)ldc, (size_t)(coff[1] - coff[0]),
                                        (size_t)batch, &d->queue, NULL);
    } else {
        size_t *offs = malloc((size_t)batch * 3 * sizeof *offs);
        float *ab = malloc((size_t)batch * 2 * sizeof *ab);
        cl_half *hab = malloc((size_t)batch * 2 * sizeof *hab);
        if (!offs || !ab || !hab) {
            pthread_mutex_unlock(&d->lock);
            free(offs);
            free(ab);
            free(hab);
            return craft_fail(CRAFT_ENOMEM, "gemm: out of host memory for %lld batch offsets",
                              (long long)batch);
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
            st = CLBlastHgemmBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, hab, am,
                                     offs, (size_t)lda, bm, offs + batch, (size_t)ldb, hab + batch, cm,
                                     offs + 2 * batch, (size_t)ldc, (size_t)batch, &d->queue, NULL);
        else
            st = CLBlastSgemmBatched(CLBlastLayoutRowMajor, tA, tB, (size_t)M, (size_t)N, (size_t)K, ab, am,
                                     offs, (size_t)lda, bm, offs + batch, (size_t)ldb, ab + batch, cm,
                                     offs + 2 * batch, (size_t)ldc, (size_t)batch, &d->queue, NULL);
        free(offs);
        free(ab);
        free(hab);
    }
    if (st == CLBlastSuccess) d->launches++; /* one per routine call, whatever CLBlast enqueues inside */
    pthread_mutex_unlock(&d->lock);
    return st == CLBlastSuccess ? CRAFT_OK : blast_fail(st, d, "gemm", M, N, K, batch);
}

int craft_cl_gemm_batched(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const craft_tensor *A, const int64_t *aoff, int64_t lda, const craft_tensor *B,
                          const int64_t *boff, int64_t ldb, float beta, craft_tensor *C, const int64_t *coff,
                          int64_t ldc, int64_t batch) {
    if (C->dtype == CRAFT_F32 && A->dtype == CRAFT_F32 && B->dtype == CRAFT_F32 && A->device == C->device &&
        B->device == C->device && M > 0 && N > 0 && K > 0 && batch > 0) {
        craft_cl_dev *d;
        int tiled = 0;
        CRAFT_TRY(cl_dev_get(C->device, "gemm", &d));
        CRAFT_TRY(
            cl_gemm_pick(d, ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, batch, gemm_blast, &tiled));
        if (tiled)
            return cl_gemm_tiled(d, 0, ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, beta, C, coff, ldc,
                                 batch);
    }
    return gemm_blast(ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, beta, C, coff, ldc, batch);
}

int craft_cl_gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                  int64_t aoff, int64_t lda, const craft_tensor *B, int64_t boff, int64_t ldb, float beta,
                  craft_tensor *C, int64_t coff, int64_t ldc) {
    return craft_cl_gemm_batched(ta, tb, M, N, K, alpha, A, &aoff, lda, B, &boff, ldb, beta, C, &coff, ldc,
                                 1);
}

/* y[j] = sum over the rows of a contiguous [M, N] x (linear's bias gradient) */
int craft_cl_sum_rows(const craft_tensor *x, int64_t M, int64_t N, craft_tensor *y) {
    craft_tensor *x2 = craft_alias(x), *s = NULL;
    if (!x2) return craft_last_status();
    x2->ndim = 2;
    x2->shape[0] = M;
    x2->shape[1] = N;
    x2->stride[0] = N;
    x2->stride[1] = 1;
    x2->numel = M * N;
    int dim0 = 0, rc = craft_cl_reduce(0, x2, 1, &dim0, 0, 0, &s);
    if (!rc) rc = craft_cl_copy_(y, s);
    craft_tensor_release(x2);
    craft_tensor_release(s);
    return rc;
}
