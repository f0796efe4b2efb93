/* cpu_embed.c: the CPU's embedding kernels (row gather, scatter-add backward) and the
 * timestep embedding's sin / cos table. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>

int cpu_embedding(const craft_tensor *wc, const craft_tensor *idx, craft_tensor *y) {
    const int64_t *ip = craft_tensor_data(idx);
    int64_t D = wc->shape[1];
    const float *wp = craft_tensor_data(wc);
    float *yp = craft_tensor_data(y);
    int64_t K = idx->numel;
#pragma omp parallel for schedule(static) if (K * D >= CRAFT_PAR_MIN)
    for (int64_t k = 0; k < K; k++) memcpy(yp + k * D, wp + ip[k] * D, (size_t)D * sizeof(float));
    return CRAFT_OK;
}

/* gw = 0, then gw[idx[k], :] += g[k, :]. Threads split the D columns, so every row is
 * accumulated by one thread in index order: duplicates need no atomics and the result does
 * not depend on the thread count. */
int cpu_embedding_grad(const craft_tensor *g, const craft_tensor *idx, craft_tensor *gw) {
    const int64_t *ip = craft_tensor_data(idx);
    const float *gp = craft_tensor_data(g);
    float *wp = craft_tensor_data(gw);
    if (gw->numel) memset(wp, 0, (size_t)gw->numel * sizeof(float));
    int64_t K = idx->numel, D = gw->shape[1];
    int nt = K * D >= CRAFT_PAR_MIN && D >= 64 ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = D * t / T, hi = D * (t + 1) / T;
        for (int64_t k = 0; k < K; k++) {
            float *dst = wp + ip[k] * D;
            const float *src = gp + k * D;
            for (int64_t j = lo; j < hi; j++) dst[j] += src[j];
        }
    }
    return CRAFT_OK;
}

int cpu_timestep_embedding(const craft_tensor *tc, const float *freq, int dim, int flip_sin_to_cos,
                           double scale, craft_tensor *y) {
    int64_t N = tc->shape[0], half = dim / 2;
    const float sc = (float)scale;
    const float *tp = craft_tensor_data(tc);
    float *yp = craft_tensor_data(y);
#pragma omp parallel for schedule(static) if (N * dim >= CRAFT_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        float *row = yp + n * dim;
        float *first = row, *second = row + half; /* sin block, cos block */
        if (flip_sin_to_cos) {
            first = row + half;
            second = row;
        }
        for (int64_t i = 0; i < half; i++) {
            float a = sc * (tp[n] * freq[i]);
            first[i] = sinf(a);
            second[i] = cosf(a);
        }
        if (dim & 1) row[dim - 1] = 0.0f;
    }
    return CRAFT_OK;
}
