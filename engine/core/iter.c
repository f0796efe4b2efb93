/* iter.c: strided, broadcasting iteration over up to 4 operands (the loop under every
 * elementwise op). */
#include "core/internal.h"
#include <omp.h>

char *craft_elem_ptr(const craft_tensor *t) {
    /* an empty view may carry a saturated offset (a slice of a tensor with huge sizes): it has
     * no element to point at, so its storage's start serves */
    if (t->numel == 0) return (char *)t->storage->data;
    return (char *)t->storage->data + t->offset * (int64_t)craft_dtype_size(t->dtype);
}

void craft_broadcast_strides(const craft_tensor *t, int ndim, const int64_t *shape, int64_t *s) {
    int64_t es = (int64_t)craft_dtype_size(t->dtype);
    int off = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - off;
        /* saturating: an empty tensor whose other sizes are huge has saturated strides (no
         * element is ever reached through them) */
        if (j < 0 || t->shape[j] == 1) s[i] = 0;
        else if (__builtin_mul_overflow(t->stride[j], es, &s[i])) s[i] = t->stride[j] < 0 ? INT64_MIN : INT64_MAX;
        (void)shape;
    }
}

int craft_broadcast_shape(const char *op, const craft_tensor *a, const craft_tensor *b, int *ndim, int64_t *shape) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return craft_fail(CRAFT_ESHAPE, "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)",
                              op, craft_shape_str(a), craft_shape_str(b), i, (long long)da, (long long)db);
        shape[i] = da == 1 ? db : da;
    }
    *ndim = n;
    return CRAFT_OK;
}

int craft_coalesce_dims(int nargs, int ndim, const int64_t *shape_in, int64_t (*strides_in)[CRAFT_MAX_DIMS],
                        int64_t *shape, int64_t (*st)[CRAFT_MAX_DIMS]) {
    int nd = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape_in[i] == 1) continue;
        shape[nd] = shape_in[i];
        for (int a = 0; a < nargs; a++) st[a][nd] = strides_in[a][i];
        nd++;
    }
    if (nd == 0) return 0;
    int w = 0;
    for (int i = 1; i < nd; i++) {
        int merge = 1;
        for (int a = 0; a < nargs; a++)
            if (st[a][w] != st[a][i] * shape[i]) { merge = 0; break; }
        if (merge) {
            shape[w] *= shape[i];
            for (int a = 0; a < nargs; a++) st[a][w] = st[a][i];
        } else {
            w++;
            shape[w] = shape[i];
            for (int a = 0; a < nargs; a++) st[a][w] = st[a][i];
        }
    }
    return w + 1;
}

void craft_iter(int nargs, int ndim, const int64_t *shape_in, char **base, int64_t (*strides_in)[CRAFT_MAX_DIMS],
                craft_loop_fn fn, void *ctx, int parallel) {
    int64_t shape[CRAFT_MAX_DIMS], st[4][CRAFT_MAX_DIMS];
    int64_t numel = craft_numel_of(ndim, shape_in);
    if (numel == 0) return;
    int nd = craft_coalesce_dims(nargs, ndim, shape_in, strides_in, shape, st);
    if (nd == 0) {   /* a scalar */
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
        for (int d = nd - 2; d >= 0; d--) { idx[d] = r % shape[d]; r /= shape[d]; }
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
