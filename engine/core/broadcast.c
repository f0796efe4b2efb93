/* broadcast.c: broadcasting shapes and strides and coalescing dims, which the op layer and
 * every back end's elementwise iteration share. */
#include "core/internal.h"

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
        else if (__builtin_mul_overflow(t->stride[j], es, &s[i]))
            s[i] = t->stride[j] < 0 ? INT64_MIN : INT64_MAX;
        (void)shape;
    }
}

int craft_broadcast_shape(const char *op, const craft_tensor *a, const craft_tensor *b, int *ndim,
                          int64_t *shape) {
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
            if (st[a][w] != st[a][i] * shape[i]) {
                merge = 0;
                break;
            }
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
