/* cl_reduce.c: the reduction kernels on cl devices (kernels_cl/reduce.cl): rows of a
 * contiguous block (sum, mean, var, sum of squares; one work-group per row, or one work-item
 * per row for short rows), max / min over one dim and its gradient's scatter, accumulating in
 * double where the device has fp64. craft_cl_reduce plans a reduction over dims as the op
 * layer does (the back end's own ops use it: bias gradients, losses, clip_grad_norm). */
#include "cl/cl_internal.h"

typedef struct {
    int red[CRAFT_MAX_DIMS];
    int64_t out_shape[CRAFT_MAX_DIMS];
    int out_ndim;
    int64_t rows, rowlen;
} plan;

static int make_plan(const char *op, const craft_tensor *a, int ndims, const int *dims, int keepdim,
                     plan *p) {
    memset(p, 0, sizeof *p);
    if (ndims == 0)
        for (int i = 0; i < a->ndim; i++) p->red[i] = 1;
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
            if (p->red[i] == pass) {
                v->shape[k] = a->shape[i];
                v->stride[k] = a->stride[i];
                k++;
            }
    if (craft_is_contiguous(v)) {
        *out = v;
        return CRAFT_OK;
    }
    craft_tensor *c = cl_new(v->ndim, v->shape, CRAFT_F32, v->device);
    int rc = c ? craft_cl_copy_(c, v) : craft_last_status();
    craft_tensor_release(v);
    if (rc) {
        craft_tensor_release(c);
        return rc;
    }
    *out = c;
    return CRAFT_OK;
}

/* kind: 0 sum, 1 mean, 2 var, 3 sum of squares; y gets rows values */
static int reduce_launch(craft_cl_dev *d, const craft_tensor *x, craft_tensor *y, int64_t rows,
                         int64_t rowlen, int kind, int correction) {
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
    cl_arg args[9] = {CLA(xm),  CLA(xoff), CLA(ym),   CLA(yoff),          CLA(r),
                      CLA(len), CLA(k),    CLA(corr), {local * acc, NULL}};
    return cl_launch(d, K_reduce_rows, 9, args, groups * local, local);
}

int craft_cl_reduce(int kind, const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim,
                    craft_tensor **out) {
    static const char *names[4] = {"sum", "mean", "var", "sum of squares"};
    if (kind < 0 || kind > 3) return craft_fail(CRAFT_EINVAL, "reduce: unknown kind %d", kind);
    const char *op = names[kind];
    if (a->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: input is %s, expected f32 (convert with :float())", op,
                          craft_shape_str(a));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(a->device, op, &d));
    plan p;
    CRAFT_TRY(make_plan(op, a, ndims, dims, keepdim, &p));
    if (kind == 2 && p.rowlen - correction <= 0)
        return craft_fail(CRAFT_ESHAPE, "%s: %lld elements per group with correction %d", op,
                          (long long)p.rowlen, correction);
    craft_tensor *x = NULL, *y = cl_new(p.out_ndim, p.out_shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int rc = rowmajor(a, &p, &x);
    if (!rc) {
        rc = reduce_launch(d, x, y, p.rows, p.rowlen, kind, correction);
        craft_tensor_release(x);
    }
    if (rc) {
        craft_tensor_release(y);
        return rc;
    }
    *out = y;
    return CRAFT_OK;
}

int craft_cl_reduce_rows(int kind, const craft_tensor *x, int64_t rows, int64_t rowlen, int correction,
                         craft_tensor *y) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "reduce", &d));
    return reduce_launch(d, x, y, rows, rowlen, kind, correction);
}

/* --------------------------------------------------------- max / min ---- */
int craft_cl_maxmin_grad(const craft_tensor *idx, const craft_tensor *gc, int64_t o, int64_t D, int64_t in,
                         craft_tensor *z) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(z->device, "max/min backward", &d));
    CRAFT_TRY(craft_cl_fill_(z, 0.0));
    cl_mem zm = cl_mem_of(z), gm = cl_mem_of(gc), im = cl_mem_of(idx);
    cl_long goff = gc->offset, ioff = idx->offset, co = o, cD = D, ci = in;
    cl_arg args[8] = {CLA(zm), CLA(gm), CLA(goff), CLA(im), CLA(ioff), CLA(co), CLA(cD), CLA(ci)};
    return o * in > 0 ? cl_launch(d, K_maxmin_scatter, 8, args, cl_global_for(o * in), 0) : CRAFT_OK;
}

int craft_cl_maxmin(int want_max, const craft_tensor *x, int64_t outer, int64_t D, int64_t inner,
                    craft_tensor *v, craft_tensor *ix) {
    craft_cl_dev *dev;
    CRAFT_TRY(cl_dev_get(v->device, want_max ? "max" : "min", &dev));
    if (outer * inner == 0) return CRAFT_OK;
    cl_mem xm = cl_mem_of(x), vm = cl_mem_of(v), im = cl_mem_of(ix);
    cl_long xoff = x->offset, co = outer, cD = D, ci = inner;
    cl_int wm = want_max;
    cl_arg args[8] = {CLA(xm), CLA(xoff), CLA(vm), CLA(im), CLA(co), CLA(cD), CLA(ci), CLA(wm)};
    return cl_launch(dev, K_maxmin_dim, 8, args, cl_global_for(outer * inner), 0);
}
