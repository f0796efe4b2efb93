/* cpu_gemm.c: matrix products on oneDNN's sgemm (row-major, measured at 86-96 % of this
 * machine's fp32 peak): the gemm kernel (a batch of products, in parallel over the batch when
 * each product is small; oneDNN does not nest) and linear's bias gradient. */
#include "cpu/cpu_kernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

int craft_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return CRAFT_OK;
    if (K == 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return CRAFT_OK;
    }
    dnnl_status_t s = dnnl_success;
    /* With few rows and a deep reduction oneDNN's own division of one product among the
     * threads runs far below the peak (docs/performance.md, GEMM: the measurements behind the
     * bounds below). There each thread takes its own slice of the columns, a single-threaded
     * sgemm (oneDNN does not nest), and every element is still one product over the whole of K. */
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (T >= 2 && K >= 512 && M <= 1024 && N >= 64 * (int64_t)T) {
        int64_t step = (N / T + 15) / 16 * 16;
        int err = 0;
#pragma omp parallel num_threads(T)
        {
            int64_t n0 = omp_get_thread_num() * step, nn = N - n0 < step ? N - n0 : step;
            if (nn > 0 && dnnl_sgemm(ta, tb, M, nn, K, alpha, A, lda, tb == 'N' ? B + n0 : B + n0 * ldb, ldb, beta,
                                     C + n0, ldc) != dnnl_success)
                err = 1;
        }
        if (err) s = dnnl_runtime_error;
    } else {
        s = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    if (s != dnnl_success)
        return craft_fail(CRAFT_EINVAL, "sgemm %lldx%lldx%lld failed in oneDNN (status %d)", (long long)M,
                          (long long)N, (long long)K, (int)s);
    return CRAFT_OK;
}

int cpu_gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
             const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,
             float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch) {
    const float *ap = A->storage->data, *bp = B->storage->data;
    float *cp = C->storage->data;
    int par = batch >= 2 && M * N * K < (1 << 21);
    int err = 0;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t bi = 0; bi < batch; bi++)
        if (craft_sgemm(ta, tb, M, N, K, alpha, ap + aoff[bi], lda, bp + boff[bi], ldb, beta, cp + coff[bi],
                        ldc))
            err = 1;
    if (err)
        return craft_fail(CRAFT_EINVAL, "gemm %lldx%lldx%lld (batch %lld): oneDNN sgemm failed", (long long)M,
                          (long long)N, (long long)K, (long long)batch);
    return CRAFT_OK;
}

int cpu_sum_rows(const craft_tensor *x, int64_t M, int64_t N, craft_tensor *y) {
    const float *gp = craft_tensor_data(x);
    float *bp = craft_tensor_data(y);
#pragma omp parallel for if (M * N >= CRAFT_PAR_MIN)
    for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t i = 0; i < M; i++) s += gp[i * N + j];
        bp[j] = (float)s;
    }
    return CRAFT_OK;
}
