/* op_reduce.c: sum, mean, var, max / min / argmax over dims, forward and backward, for every
 * device. The input is laid out as [kept..., reduced...] (a copy only when the view is not
 * already so) and the back end's reduce kernel reduces each contiguous row. */
#include "core/backend.h"

typedef struct {
    int64_t out_shape[CRAFT_MAX_DIMS]; /* output shape honouring keepdim */
    int out_ndim;
    int64_t rows, rowlen;
    craft_tensor *rowmajor; /* contiguous [rows, rowlen] f32 */
} reduce_plan;

static int plan_reduce(const char *op, const craft_tensor *a, int ndims, const int *dims, int keepdim,
                       reduce_plan *p) {
    int red[CRAFT_MAX_DIMS] = {0};
    if (ndims == 0)
        for (int i = 0; i < a->ndim; i++) red[i] = 1;
    for (int i = 0; i < ndims; i++) {
        int d;
        CRAFT_TRY(craft_normalize_dim(op, dims[i], a->ndim, &d));
        if (a->ndim == 0) continue;
        red[d] = 1;
    }
    int perm[CRAFT_MAX_DIMS], k = 0;
    p->rows = 1;
    p->rowlen = 1;
    p->out_ndim = 0;
    for (int i = 0; i < a->ndim; i++)
        if (!red[i]) {
            perm[k++] = i;
            p->rows = craft_mul_sat(p->rows, a->shape[i]);
        }
    for (int i = 0; i < a->ndim; i++)
        if (red[i]) {
            perm[k++] = i;
            p->rowlen = craft_mul_sat(p->rowlen, a->shape[i]);
        }
    for (int i = 0; i < a->ndim; i++) {
        if (!red[i]) p->out_shape[p->out_ndim++] = a->shape[i];
        else if (keepdim) p->out_shape[p->out_ndim++] = 1;
    }
    craft_tensor *v = craft_alias(a);
    if (!v) return craft_last_status();
    for (int i = 0; i < a->ndim; i++) {
        v->shape[i] = a->shape[perm[i]];
        v->stride[i] = a->stride[perm[i]];
    }
    int rc = craft_contig_f32(v, &p->rowmajor);
    craft_tensor_release(v);
    return rc;
}

/* grad of sum/mean: g (keepdim shape in iarg[1..]) broadcast back over the reduced dims, dense */
static int expand_grad(craft_node *n, const craft_tensor *g_in, craft_tensor **out) {
    int kd = (int)n->iarg[0];
    int64_t shp[CRAFT_MAX_DIMS];
    for (int i = 0; i < kd; i++) shp[i] = n->iarg[1 + i];
    craft_tensor *g, *r = NULL, *e = NULL;
    CRAFT_TRY(craft_on_device(g_in, n->device, &g));
    int rc = craft_reshape(g, kd, shp, &r);
    if (!rc) rc = craft_expand(r, n->edges[0].ndim, n->edges[0].shape, &e);
    if (!rc) rc = craft_contiguous(e, out);
    craft_tensor_release(g);
    craft_tensor_release(r);
    craft_tensor_release(e);
    return rc;
}

static int sum_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return expand_grad(n, gout[0], &gin[0]);
}

static int mean_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *e;
    CRAFT_TRY(expand_grad(n, gout[0], &e));
    if (e->refcount > 1 || !craft_is_contiguous(e)) { /* never scale a shared buffer */
        craft_tensor *c;
        int rc = craft_clone(e, &c);
        craft_tensor_release(e);
        if (rc) return rc;
        e = c;
    }
    int rc = craft_scale_(e, n->sarg[0]);
    return craft_finish(rc, e, &gin[0]);
}

/* d var / dx = g * 2 (x - mean) / (R - correction) */
static int var_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *mean, *e, *d, *t;
    int kd = (int)n->iarg[0];
    int dims[CRAFT_MAX_DIMS], nd = 0;
    for (int i = 0; i < kd; i++)
        if (n->iarg[1 + i] == 1 && x->shape[i] != 1) dims[nd++] = i;
    if (nd == 0)
        for (int i = 0; i < kd; i++)
            if (n->iarg[1 + i] == 1) dims[nd++] = i;
    CRAFT_TRY(craft_mean(x, nd, dims, 1, &mean));
    int rc = craft_binary(CRAFT_SUB, x, mean, &d);
    craft_tensor_release(mean);
    if (rc) return rc;
    rc = expand_grad(n, gout[0], &e);
    if (rc) {
        craft_tensor_release(d);
        return rc;
    }
    rc = craft_binary(CRAFT_MUL, d, e, &t);
    craft_tensor_release(d);
    craft_tensor_release(e);
    if (rc) return rc;
    rc = craft_binary_scalar(CRAFT_MUL, t, n->sarg[0], 0, &gin[0]);
    craft_tensor_release(t);
    return rc;
}

static int reduce_op(const char *op, int kind, const craft_tensor *a, int ndims, const int *dims,
                     int correction, int keepdim, craft_tensor **out) {
    if (!a) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    const craft_kernels *k;
    CRAFT_TRY(craft_want(op, "input", a, a->device));
    CRAFT_TRY(craft_kernels_for(a->device, CRAFT_K_reduce, CRAFT_F32, op, &k));
    reduce_plan p;
    CRAFT_TRY(plan_reduce(op, a, ndims, dims, keepdim, &p));
    if (kind == 2 && p.rowlen - correction <= 0) {
        craft_tensor_release(p.rowmajor);
        return craft_fail(CRAFT_ESHAPE, "%s: %lld elements per group with correction %d", op,
                          (long long)p.rowlen, correction);
    }
    craft_tensor *y = craft_new_tensor(p.out_ndim, p.out_shape, CRAFT_F32, a->device);
    int rc = y ? k->reduce(kind, p.rowmajor, p.rows, p.rowlen, correction, y) : craft_last_status();
    craft_tensor_release(p.rowmajor);
    if (rc) {
        craft_tensor_release(y);
        return rc;
    }
    /* keepdim shape of the output, for backward */
    int64_t iargs[1 + CRAFT_MAX_DIMS];
    int red[CRAFT_MAX_DIMS] = {0};
    if (ndims == 0)
        for (int i = 0; i < a->ndim; i++) red[i] = 1;
    for (int i = 0; i < ndims; i++) {
        int d = dims[i] < 0 ? dims[i] + a->ndim : dims[i];
        if (a->ndim) red[d] = 1;
    }
    iargs[0] = a->ndim;
    for (int i = 0; i < a->ndim; i++) iargs[1 + i] = red[i] ? 1 : a->shape[i];
    double sarg = kind == 1 ? 1.0 / (double)p.rowlen : 2.0 / (double)(p.rowlen - correction);
    static craft_backward_kernel kernels[3] = {sum_backward, mean_backward, var_backward};
    rc = craft_record(op, 1, &a, y, kernels[kind], kind == 2 ? 1 : 0, &a, &sarg, 1, iargs, 1 + a->ndim, NULL);
    return craft_finish(rc, y, out);
}

int craft_sum(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out) {
    return reduce_op("sum", 0, a, ndims, dims, 0, keepdim, out);
}
int craft_mean(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out) {
    return reduce_op("mean", 1, a, ndims, dims, 0, keepdim, out);
}
int craft_var(const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim,
              craft_tensor **out) {
    return reduce_op("var", 2, a, ndims, dims, correction, keepdim, out);
}

/* ---- max / min over one dim ---- */
/* g scattered to the arg positions saved in saved[0] (int64 indices, keepdim layout) */
static int maxmin_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *idx = n->saved[0], *g, *z;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(n->device, CRAFT_K_maxmin_grad, CRAFT_F32, n->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], n->device, &g));
    int64_t outer, D, inner;
    craft_split_at(n->edges[0].ndim, n->edges[0].shape, (int)n->iarg[0], &outer, &D, &inner);
    int rc = (z = craft_new_tensor(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, n->device))
        ? CRAFT_OK
        : craft_last_status();
    if (!rc) rc = k->maxmin_grad(idx, g, outer, D, inner, z);
    craft_tensor_release(g);
    return craft_finish(rc, z, &gin[0]);
}

static int maxmin(const char *op, int want_max, const craft_tensor *a, int dim, int keepdim,
                  craft_tensor **values, craft_tensor **indices) {
    if (!a) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    const craft_kernels *k;
    CRAFT_TRY(craft_want(op, "input", a, a->device));
    int d;
    if (a->ndim == 0) return craft_fail(CRAFT_ESHAPE, "%s: needs at least 1 dim", op);
    CRAFT_TRY(craft_normalize_dim(op, dim, a->ndim, &d));
    if (a->shape[d] == 0)
        return craft_fail(CRAFT_ESHAPE, "%s: dim %d of %s is empty", op, d, craft_shape_str(a));
    CRAFT_TRY(craft_kernels_for(a->device, CRAFT_K_maxmin, CRAFT_F32, op, &k));
    int64_t outer, D, inner, oshape[CRAFT_MAX_DIMS];
    craft_split_at(a->ndim, a->shape, d, &outer, &D, &inner);
    int ond = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i != d) oshape[ond++] = a->shape[i];
        else if (keepdim) oshape[ond++] = 1;
    }
    craft_tensor *x = NULL, *v = craft_new_tensor(ond, oshape, CRAFT_F32, a->device);
    craft_tensor *ix = v ? craft_new_tensor(ond, oshape, CRAFT_I64, a->device) : NULL;
    int rc = ix ? craft_contig_f32(a, &x) : craft_last_status();
    if (!rc) rc = k->maxmin(want_max, x, outer, D, inner, v, ix);
    craft_tensor_release(x);
    int64_t iarg = d;
    if (!rc)
        rc = craft_record(op, 1, &a, v, maxmin_backward, 1, (const craft_tensor *const *)&ix, NULL, 0, &iarg,
                          1, NULL);
    if (rc) {
        craft_tensor_release(v);
        craft_tensor_release(ix);
        return rc;
    }
    *values = v;
    if (indices) *indices = ix;
    else craft_tensor_release(ix);
    return CRAFT_OK;
}

int craft_max(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices) {
    return maxmin("max", 1, a, dim, keepdim, values, indices);
}
int craft_min(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices) {
    return maxmin("min", 0, a, dim, keepdim, values, indices);
}
int craft_argmax(const craft_tensor *a, int dim, int keepdim, craft_tensor **out) {
    craft_tensor *v;
    int prev = craft_set_grad_enabled(0);
    int rc = maxmin("argmax", 1, a, dim, keepdim, &v, out);
    craft_set_grad_enabled(prev);
    if (!rc) craft_tensor_release(v);
    return rc;
}
