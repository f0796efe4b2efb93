/* cpu_iter.c: strided, broadcasting iteration over up to 4 operands (the loop under every
 * elementwise kernel of the CPU). */
#include "cpu/cpu_kernels.h"
#include <omp.h>

void craft_iter(int nargs, int ndim, const int64_t *shape_in, char **base,
                int64_t (*strides_in)[CRAFT_MAX_DIMS], craft_loop_fn fn, void *ctx, int parallel) {
    int64_t shape[CRAFT_MAX_DIMS], st[4][CRAFT_MAX_DIMS];
    int64_t numel = craft_numel_of(ndim, shape_in);
    if (numel == 0) return;
    int nd = craft_coalesce_dims(nargs, ndim, shape_in, strides_in, shape, st);
    if (nd == 0) { /* a scalar */
        int64_t zs[4] = {0, 0, 0, 0};
        fn(1, base, zs, ctx);
        return;
    }
    int64_t inner = shape[nd - 1];
    int64_t inner_st[4];
    for (int a = 0; a < nargs; a++) inner_st[a] = st[a][nd - 1];
    int64_t outer = numel / inner;
    int nthreads = (parallel && numel >= CRAFT_PAR_MIN) ? omp_get_max_threads() : 1;
    if (outer == 1 && nthreads > 1 && inner >= CRAFT_PAR_MIN) {
/* one long run: split the inner loop itself */
#pragma omp parallel num_threads(nthreads)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t lo = inner * t / T, hi = inner * (t + 1) / T;
            char *p[4];
            for (int a = 0; a < nargs; a++) p[a] = base[a] + lo * inner_st[a];
            if (hi > lo) fn(hi - lo, p, inner_st, ctx);
        }
        return;
    }
    if (outer < nthreads) nthreads = (int)outer;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = outer * t / T, hi = outer * (t + 1) / T;
        int64_t idx[CRAFT_MAX_DIMS] = {0};
        /* coordinates of outer index lo */
        int64_t r = lo;
        for (int d = nd - 2; d >= 0; d--) {
            idx[d] = r % shape[d];
            r /= shape[d];
        }
        char *p[4];
        for (int64_t o = lo; o < hi; o++) {
            for (int a = 0; a < nargs; a++) {
                int64_t off = 0;
                for (int d = 0; d < nd - 1; d++) off += idx[d] * st[a][d];
                p[a] = base[a] + off;
            }
            fn(inner, p, inner_st, ctx);
            for (int d = nd - 2; d >= 0; d--) {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
    }
}
