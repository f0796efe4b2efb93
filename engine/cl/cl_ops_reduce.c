/* cl_ops_reduce.c: reductions on cl devices (kernels_cl/reduce.cl): sum, mean, var and sum of
 * squares over dims, max/min/argmax over one dim, with their backward, and sum_to_shape for
 * the broadcasting ops' gradients. As on the CPU, the input is laid out as [kept...,
 * reduced...] (a device copy only when the view is not already so) and each output element
 * reduces one contiguous row, accumulating in double where the device has fp64. */
#include "cl/cl_internal.h"

typedef struct {
    int red[CRAFT_MAX_DIMS];
    int64_t out_shape[CRAFT_MAX_DIMS];
    int out_ndim;
    int64_t rows, rowlen;
} plan;

static int make_plan(const char *op, const craft_tensor *a, int ndims, const int *dims, int keepdim, plan *p) {
    memset(p, 0, sizeof *p);
    if (ndims == 0) for (int i = 0; i < a->ndim; i++) p->red[i] = 1;
    for (int i = 0; i < ndims; i++) {
        int d;
        CRAFT_TRY(craft_normalize_dim(op, dims[i], a->ndim, &d));
        if (a->ndim) p->red[d] = 1;
    }
    p->rows = p->rowlen = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (p->red[i]) p->rowlen = craft_mul_sat(p->rowlen, a->shape[i]);
        else p->rows = craft_mul_sat(p->rows, a->shape[i]);
        if (!p->red[i]) p->out_shape[p->out_ndim++] = a->shape[i];
        else if (keepdim) p->out_shape[p->out_ndim++] = 1;
    }
    return CRAFT_OK;
}

/* a as a contiguous [rows, rowlen] f32 block (a new reference; a itself when it already is) */
static int rowmajor(const craft_tensor *a, const plan *p, craft_tensor **out) {
    craft_tensor *v = craft_alias(a);
    if (!v) return craft_last_status();
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < a->ndim; i++)
            if (p->red[i] == pass) { v->shape[k] = a->shape[i]; v->stride[k] = a->stride[i]; k++; }
    if (craft_is_contiguous(v)) { *out = v; return CRAFT_OK; }
    craft_tensor *c = cl_new(v->ndim, v->shape, CRAFT_F32, v->device);
    int rc = c ? craft_cl_copy_(c, v) : craft_last_status();
    craft_tensor_release(v);
    if (rc) { craft_tensor_release(c); return rc; }
    *out = c;
    return CRAFT_OK;
}

/* kind: 0 sum, 1 mean, 2 var, 3 sum of squares; y gets rows values */
static int reduce_launch(craft_cl_dev *d, const craft_tensor *x, craft_tensor *y, int64_t rows, int64_t rowlen, int kind,
                         int correction) {
    if (rows == 0) return CRAFT_OK;
    cl_mem xm = cl_mem_of(x), ym = cl_mem_of(y);
    cl_long xoff = x->offset, yoff = y->offset, r = rows, len = rowlen;
    cl_int k = kind, corr = correction;
    if (rowlen <= 32 || rows >= 8192) {
        cl_arg args[8] = {CLA(xm), CLA(xoff), CLA(ym), CLA(yoff), CLA(r), CLA(len), CLA(k), CLA(corr)};
        return cl_launch(d, K_reduce_rows_seq, 8, args, cl_global_for(rows), 0);
    }
    size_t local = cl_pow2_local(d, K_reduce_rows, 256);
    size_t acc = d->info.fp64 ? sizeof(cl_double) : sizeof(cl_float);
    if (d->info.local_mem > 0 && local * acc > (size_t)d->info.local_mem / 2) local = 64;
    size_t groups = rows < 65536 ? (size_t)rows : 65536;
    cl_arg args[9] = {CLA(xm), CLA(xoff), CLA(ym), CLA(yoff), CLA(r), CLA(len), CLA(k), CLA(corr), {local * acc, NULL}};
    return cl_launch(d, K_reduce_rows, 9, args, groups * local, local);
}

int craft_cl_reduce(int kind, const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim, craft_tensor **out) {
    static const char *names[4] = {"sum", "mean", "var", "sum of squares"};
    if (kind < 0 || kind > 3) return craft_fail(CRAFT_EINVAL, "reduce: unknown kind %d", kind);
    const char *op = names[kind];
    if (a->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: input is %s, expected f32 (convert with :float())", op, craft_shape_str(a));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(a->device, op, &d));
    plan p;
    CRAFT_TRY(make_plan(op, a, ndims, dims, keepdim, &p));
    if (kind == 2 && p.rowlen - correction <= 0)
        return craft_fail(CRAFT_ESHAPE, "%s: %lld elements per group with correction %d", op, (long long)p.rowlen, correction);
    craft_tensor *x = NULL, *y = cl_new(p.out_ndim, p.out_shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int rc = rowmajor(a, &p, &x);
    if (!rc) {
        rc = reduce_launch(d, x, y, p.rows, p.rowlen, kind, correction);
        craft_tensor_release(x);
    }
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---------------------------------------------------- sum / mean / var ---- */
/* iarg: [0] ndim, [1..8] the keepdim shape, [9..16] reduced mask; sarg[0]: the scale */
static int expand_grad(craft_node *n, craft_tensor *gin_like_dev, const craft_tensor *g_in, craft_tensor **out) {
    int kd = (int)n->iarg[0];
    int64_t shp[CRAFT_MAX_DIMS];
    for (int i = 0; i < kd; i++) shp[i] = n->iarg[1 + i];
    craft_tensor *g, *r = NULL, *e = NULL;
    CRAFT_TRY(cl_on_device(g_in, gin_like_dev->device, &g));
    int rc = craft_reshape(g, kd, shp, &r);
    if (!rc) rc = craft_expand(r, n->edges[0].ndim, n->edges[0].shape, &e);
    craft_tensor *y = NULL;
    if (!rc) rc = (y = cl_new(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, g->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = craft_cl_copy_(y, e);
    craft_tensor_release(g);
    craft_tensor_release(r);
    craft_tensor_release(e);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static int sum_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor like = {0};
    like.device = (int)n->iarg[17];
    return expand_grad(n, &like, gout[0], &gin[0]);
}

static int mean_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    CRAFT_TRY(sum_backward(n, gout, gin));
    int rc = craft_cl_scale_(gin[0], n->sarg[0]);
    if (rc) { craft_tensor_release(gin[0]); gin[0] = NULL; }
    return rc;
}

/* g * 2 (x - mean) / (R - correction) */
static int var_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *mean = NULL, *dv = NULL, *e = NULL;
    int dims[CRAFT_MAX_DIMS], nd = 0;
    for (int i = 0; i < x->ndim; i++) if (n->iarg[9 + i]) dims[nd++] = i;
    int rc = craft_cl_reduce(1, x, nd, dims, 0, 1, &mean);
    if (!rc) rc = (dv = cl_new(x->ndim, x->shape, CRAFT_F32, x->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = craft_cl_binary(CRAFT_SUB, x, mean, dv);
    if (!rc) rc = expand_grad(n, x, gout[0], &e);
    if (!rc) rc = craft_cl_binary(CRAFT_MUL, dv, e, dv);
    if (!rc) rc = craft_cl_scale_(dv, n->sarg[0]);
    craft_tensor_release(mean);
    craft_tensor_release(e);
    if (rc) { craft_tensor_release(dv); return rc; }
    gin[0] = dv;
    return CRAFT_OK;
}

static int reduce_op(int kind, const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim,
                     craft_tensor **out) {
    static const char *names[3] = {"sum", "mean", "var"};
    craft_tensor *y;
    CRAFT_TRY(craft_cl_reduce(kind, a, ndims, dims, correction, keepdim, &y));
    plan p;
    make_plan(names[kind], a, ndims, dims, 1, &p);
    int64_t iargs[18] = {a->ndim};
    for (int i = 0; i < a->ndim; i++) { iargs[1 + i] = p.red[i] ? 1 : a->shape[i]; iargs[9 + i] = p.red[i]; }
    iargs[17] = a->device;
    double sarg = kind == 1 ? 1.0 / (double)p.rowlen : 2.0 / (double)(p.rowlen - correction);
    static craft_backward_kernel kernels[3] = {sum_backward, mean_backward, var_backward};
    int rc = craft_record(names[kind], 1, &a, y, kernels[kind], kind == 2 ? 1 : 0, &a, &sarg, 1, iargs, 18, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

int craft_cl_op_sum(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out) {
    return reduce_op(0, a, ndims, dims, 0, keepdim, out);
}
int craft_cl_op_mean(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out) {
    return reduce_op(1, a, ndims, dims, 0, keepdim, out);
}
int craft_cl_op_var(const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim, craft_tensor **out) {
    return reduce_op(2, a, ndims, dims, correction, keepdim, out);
}

/* autograd.c's craft_sum_to_shape (its sum runs here, on the device), not recorded */
int cl_sum_to_shape(const craft_tensor *g, int ndim, const int64_t *shape, craft_tensor **out) {
    int prev = craft_set_grad_enabled(0);
    int rc = craft_sum_to_shape(g, ndim, shape, out);
    craft_set_grad_enabled(prev);
    return rc;
}

/* --------------------------------------------------------- max / min ---- */
static int maxmin_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *idx = n->saved[0], *g = NULL, *gc = NULL;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(idx->device, "max/min backward", &d));
    craft_tensor *z = cl_new(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, idx->device);
    if (!z) return craft_last_status();
    int rc = craft_cl_fill_(z, 0.0);
    if (!rc) rc = cl_on_device(gout[0], idx->device, &g);
    if (!rc) rc = craft_contig_f32(g, &gc);
    if (!rc) {
        int64_t o, D, in;
        craft_split_at(z->ndim, z->shape, (int)n->iarg[0], &o, &D, &in);
        cl_mem zm = cl_mem_of(z), gm = cl_mem_of(gc), im = cl_mem_of(idx);
        cl_long goff = gc->offset, ioff = idx->offset, co = o, cD = D, ci = in;
        cl_arg args[8] = {CLA(zm), CLA(gm), CLA(goff), CLA(im), CLA(ioff), CLA(co), CLA(cD), CLA(ci)};
        if (o * in > 0) rc = cl_launch(d, K_maxmin_scatter, 8, args, cl_global_for(o * in), 0);
    }
    craft_tensor_release(g);
    craft_tensor_release(gc);
    if (rc) { craft_tensor_release(z); return rc; }
    gin[0] = z;
    return CRAFT_OK;
}

static int maxmin(const char *op, int want_max, const craft_tensor *a, int dim, int keepdim, craft_tensor **values,
                  craft_tensor **indices) {
    if (a->dtype != CRAFT_F32) return craft_fail(CRAFT_ETYPE, "%s: input is %s, expected f32", op, craft_shape_str(a));
    if (a->ndim == 0) return craft_fail(CRAFT_ESHAPE, "%s: needs at least 1 dim", op);
    int d;
    CRAFT_TRY(craft_normalize_dim(op, dim, a->ndim, &d));
    if (a->shape[d] == 0) return craft_fail(CRAFT_ESHAPE, "%s: dim %d of %s is empty", op, d, craft_shape_str(a));
    craft_cl_dev *dev;
    CRAFT_TRY(cl_dev_get(a->device, op, &dev));
    int64_t oshape[CRAFT_MAX_DIMS], outer, D, inner;
    int ond = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i != d) oshape[ond++] = a->shape[i];
        else if (keepdim) oshape[ond++] = 1;
    }
    craft_split_at(a->ndim, a->shape, d, &outer, &D, &inner);
    craft_tensor *x = NULL, *v = cl_new(ond, oshape, CRAFT_F32, a->device), *ix = cl_new(ond, oshape, CRAFT_I64, a->device);
    int rc = (v && ix) ? craft_contig_f32(a, &x) : craft_last_status();
    if (!rc && outer * inner > 0) {
        cl_mem xm = cl_mem_of(x), vm = cl_mem_of(v), im = cl_mem_of(ix);
        cl_long xoff = x->offset, co = outer, cD = D, ci = inner;
        cl_int wm = want_max;
        cl_arg args[8] = {CLA(xm), CLA(xoff), CLA(vm), CLA(im), CLA(co), CLA(cD), CLA(ci), CLA(wm)};
        rc = cl_launch(dev, K_maxmin_dim, 8, args, cl_global_for(outer * inner), 0);
    }
    craft_tensor_release(x);
    int64_t iarg = d;
    if (!rc) rc = craft_record(op, 1, &a, v, maxmin_backward, 1, (const craft_tensor *const *)&ix, NULL, 0, &iarg, 1, NULL);
    if (rc) { craft_tensor_release(v); craft_tensor_release(ix); return rc; }
    *values = v;
    if (indices) *indices = ix;
    else craft_tensor_release(ix);
    return CRAFT_OK;
}

int craft_cl_op_max(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices) {
    return maxmin("max", 1, a, dim, keepdim, values, indices);
}
int craft_cl_op_min(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices) {
    return maxmin("min", 0, a, dim, keepdim, values, indices);
}
int craft_cl_op_argmax(const craft_tensor *a, int dim, int keepdim, craft_tensor **out) {
    craft_tensor *v;
    int prev = craft_set_grad_enabled(0);
    int rc = maxmin("argmax", 1, a, dim, keepdim, &v, out);
    craft_set_grad_enabled(prev);
    if (!rc) craft_tensor_release(v);
    return rc;
}
