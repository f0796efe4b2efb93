/* ops_reduce.c: sum, mean, var, max/min/argmax over dims, forward and backward. The input is
 * laid out as [kept..., reduced...] (a copy only when the view is not already so) and each
 * output element reduces one contiguous row, accumulating in double. */
#include "core/internal.h"
#include <math.h>
#include <omp.h>

typedef struct {
    int nkeep;
    int64_t keep_shape[CRAFT_MAX_DIMS];   /* output shape with keepdim=0 */
    int64_t out_shape[CRAFT_MAX_DIMS];    /* output shape honouring keepdim */
    int out_ndim;
    int64_t rows, rowlen;
    craft_tensor *rowmajor;               /* contiguous [rows, rowlen] f32 */
} reduce_plan;

static int plan_reduce(const char *op, const craft_tensor *a, int ndims, const int *dims, int keepdim, reduce_plan *p) {
    int red[CRAFT_MAX_DIMS] = {0};
    if (ndims == 0) for (int i = 0; i < a->ndim; i++) red[i] = 1;
    for (int i = 0; i < ndims; i++) {
        int d;
        CRAFT_TRY(craft_normalize_dim(op, dims[i], a->ndim, &d));
        if (a->ndim == 0) continue;
        red[d] = 1;
    }
    int perm[CRAFT_MAX_DIMS], k = 0;
    p->nkeep = 0;
    p->rows = 1;
    p->rowlen = 1;
    p->out_ndim = 0;
    for (int i = 0; i < a->ndim; i++)
        if (!red[i]) { perm[k++] = i; p->keep_shape[p->nkeep++] = a->shape[i]; p->rows = craft_mul_sat(p->rows, a->shape[i]); }
    for (int i = 0; i < a->ndim; i++)
        if (red[i]) { perm[k++] = i; p->rowlen = craft_mul_sat(p->rowlen, a->shape[i]); }
    for (int i = 0; i < a->ndim; i++) {
        if (!red[i]) p->out_shape[p->out_ndim++] = a->shape[i];
        else if (keepdim) p->out_shape[p->out_ndim++] = 1;
    }
    craft_tensor *v = craft_alias(a);
    if (!v) return craft_last_status();
    for (int i = 0; i < a->ndim; i++) { v->shape[i] = a->shape[perm[i]]; v->stride[i] = a->stride[perm[i]]; }
    int rc = craft_contig_f32(v, &p->rowmajor);
    craft_tensor_release(v);
    return rc;
}

/* kind: 0 sum, 1 mean, 2 var (correction in arg) */
static int reduce_rows(const reduce_plan *p, int kind, int correction, craft_tensor **out) {
    craft_tensor *y = craft_new_tensor(p->out_ndim, p->out_shape, CRAFT_F32, 0);
    if (!y) return craft_last_status();
    const float *x = craft_tensor_data(p->rowmajor);
    float *o = craft_tensor_data(y);
    int64_t R = p->rowlen, rows = p->rows;
    if (rows == 1 && R >= CRAFT_PAR_MIN) {
        double s = 0;
        #pragma omp parallel for reduction(+ : s)
        for (int64_t i = 0; i < R; i++) s += x[i];
        if (kind == 0) o[0] = (float)s;
        else if (kind == 1) o[0] = (float)(s / (double)R);
        else {
            double m = s / (double)R, v = 0;
            #pragma omp parallel for reduction(+ : v)
            for (int64_t i = 0; i < R; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
            o[0] = (float)(v / (double)(R - correction));
        }
    } else {
        #pragma omp parallel for if (rows * R >= CRAFT_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + r * R;
            double s = 0;
            for (int64_t i = 0; i < R; i++) s += row[i];
            if (kind == 0) o[r] = (float)s;
            else if (kind == 1) o[r] = (float)(s / (double)R);
            else {
                double m = s / (double)R, v = 0;
                for (int64_t i = 0; i < R; i++) v += ((double)row[i] - m) * ((double)row[i] - m);
                o[r] = (float)(v / (double)(R - correction));
            }
        }
    }
    *out = y;
    return CRAFT_OK;
}

/* grad of sum/mean: broadcast g back over the reduced dims */
static int expand_grad(craft_node *n, const craft_tensor *g, craft_tensor **out) {
    /* g has the keepdim shape stored in iarg[1..]: reshape then expand */
    int kd = (int)n->iarg[0];
    int64_t shp[CRAFT_MAX_DIMS];
    for (int i = 0; i < kd; i++) shp[i] = n->iarg[1 + i];
    craft_tensor *r, *e;
    CRAFT_TRY(craft_reshape(g, kd, shp, &r));
    int rc = craft_expand(r, n->edges[0].ndim, n->edges[0].shape, &e);
    craft_tensor_release(r);
    if (rc) return rc;
    rc = craft_contiguous(e, out);
    craft_tensor_release(e);
    return rc;
}

static int sum_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return expand_grad(n, gout[0], &gin[0]);
}

static int mean_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *e;
    CRAFT_TRY(expand_grad(n, gout[0], &e));
    if (e->refcount > 1 || !craft_is_contiguous(e)) {   /* never scale a shared buffer */
        craft_tensor *c;
        int rc = craft_clone(e, &c);
        craft_tensor_release(e);
        if (rc) return rc;
        e = c;
    }
    int rc = craft_scale_(e, n->sarg[0]);
    if (rc) { craft_tensor_release(e); return rc; }
    gin[0] = e;
    return CRAFT_OK;
}

/* d var / dx = g * 2 (x - mean) / (R - correction) */
static int var_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *mean, *e, *d, *t;
    int kd = (int)n->iarg[0];
    int dims[CRAFT_MAX_DIMS], nd = 0;
    for (int i = 0; i < kd; i++) if (n->iarg[1 + i] == 1 && x->shape[i] != 1) dims[nd++] = i;
    if (nd == 0) for (int i = 0; i < kd; i++) if (n->iarg[1 + i] == 1) dims[nd++] = i;
    CRAFT_TRY(craft_mean(x, nd, dims, 1, &mean));
    int rc = craft_binary(CRAFT_SUB, x, mean, &d);
    craft_tensor_release(mean);
    if (rc) return rc;
    rc = expand_grad(n, gout[0], &e);
    if (rc) { craft_tensor_release(d); return rc; }
    rc = craft_binary(CRAFT_MUL, d, e, &t);
    craft_tensor_release(d);
    craft_tensor_release(e);
    if (rc) return rc;
    rc = craft_binary_scalar(CRAFT_MUL, t, n->sarg[0], 0, &gin[0]);
    craft_tensor_release(t);
    return rc;
}

static int reduce_op(const char *op, int kind, const craft_tensor *a, int ndims, const int *dims, int correction,
                     int keepdim, craft_tensor **out) {
    CRAFT_TRY(craft_check_f32(op, "input", a));
    reduce_plan p;
    CRAFT_TRY(plan_reduce(op, a, ndims, dims, keepdim, &p));
    if (kind == 2 && p.rowlen - correction <= 0) {
        craft_tensor_release(p.rowmajor);
        return craft_fail(CRAFT_ESHAPE, "%s: %lld elements per group with correction %d", op, (long long)p.rowlen, correction);
    }
    craft_tensor *y = NULL;
    int rc = reduce_rows(&p, kind, correction, &y);
    craft_tensor_release(p.rowmajor);
    if (rc) return rc;
    /* keepdim shape of the output, for backward */
    int64_t iargs[1 + CRAFT_MAX_DIMS];
    int red[CRAFT_MAX_DIMS] = {0};
    if (ndims == 0) for (int i = 0; i < a->ndim; i++) red[i] = 1;
    for (int i = 0; i < ndims; i++) { int d = dims[i] < 0 ? dims[i] + a->ndim : dims[i]; if (a->ndim) red[d] = 1; }
    iargs[0] = a->ndim;
    for (int i = 0; i < a->ndim; i++) iargs[1 + i] = red[i] ? 1 : a->shape[i];
    double sarg = kind == 1 ? 1.0 / (double)p.rowlen : 2.0 / (double)(p.rowlen - correction);
    static craft_backward_kernel kernels[3] = {sum_backward, mean_backward, var_backward};
    rc = craft_record(op, 1, &a, y, kernels[kind], kind == 2 ? 1 : 0, &a, &sarg, 1, iargs, 1 + a->ndim, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

int craft_sum(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_sum(a, ndims, dims, keepdim, out);
    return reduce_op("sum", 0, a, ndims, dims, 0, keepdim, out);
}
int craft_mean(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_mean(a, ndims, dims, keepdim, out);
    return reduce_op("mean", 1, a, ndims, dims, 0, keepdim, out);
}
int craft_var(const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim, craft_tensor **out) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_var(a, ndims, dims, correction, keepdim, out);
    return reduce_op("var", 2, a, ndims, dims, correction, keepdim, out);
}

/* ---- max / min over one dim ---- */
static int maxmin_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    /* scatter g to the arg positions saved in saved[0] (int64 indices, keepdim layout) */
    craft_tensor *idx = n->saved[0], *g;
    int dim = (int)n->iarg[0];
    CRAFT_TRY(craft_contig_f32(gout[0], &g));
    craft_tensor *z;
    int rc = craft_zeros(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, 0, &z);
    if (rc) { craft_tensor_release(g); return rc; }
    int64_t outer, D, inner;
    craft_split_at(z->ndim, z->shape, dim, &outer, &D, &inner);
    float *zp = craft_tensor_data(z);
    const float *gp = craft_tensor_data(g);
    const int64_t *ip = craft_tensor_data(idx);
    if (!inner) outer = 0;   /* empty: the other sizes can be huge, do not walk them */
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            zp[(o * D + ip[o * inner + i]) * inner + i] += gp[o * inner + i];
    craft_tensor_release(g);
    gin[0] = z;
    return CRAFT_OK;
}

static int maxmin(const char *op, int want_max, const craft_tensor *a, int dim, int keepdim, craft_tensor **values,
                  craft_tensor **indices) {
    CRAFT_TRY(craft_check_f32(op, "input", a));
    int d;
    if (a->ndim == 0) return craft_fail(CRAFT_ESHAPE, "%s: needs at least 1 dim", op);
    CRAFT_TRY(craft_normalize_dim(op, dim, a->ndim, &d));
    if (a->shape[d] == 0) return craft_fail(CRAFT_ESHAPE, "%s: dim %d of %s is empty", op, d, craft_shape_str(a));
    craft_tensor *x;
    CRAFT_TRY(craft_contig_f32(a, &x));
    int64_t outer, D, inner;
    craft_split_at(a->ndim, a->shape, d, &outer, &D, &inner);
    int64_t oshape[CRAFT_MAX_DIMS];
    int ond = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i != d) oshape[ond++] = a->shape[i];
        else if (keepdim) oshape[ond++] = 1;
    }
    craft_tensor *v = craft_new_tensor(ond, oshape, CRAFT_F32, 0);
    craft_tensor *ix = craft_new_tensor(ond, oshape, CRAFT_I64, 0);
    if (!v || !ix) { craft_tensor_release(v); craft_tensor_release(ix); craft_tensor_release(x); return craft_last_status(); }
    const float *xp = craft_tensor_data(x);
    float *vp = craft_tensor_data(v);
    int64_t *ip = craft_tensor_data(ix);
    if (!inner) outer = 0;   /* an empty result ([2^40, 1, 0] over dim 2): nothing to walk */
    #pragma omp parallel for if (outer * inner * D >= CRAFT_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *p = xp + o * D * inner + i;
            float best = p[0];
            int64_t bi = 0;
            for (int64_t k = 1; k < D; k++) {
                float c = p[k * inner];
                if (want_max ? (c > best || (c != c && best == best)) : (c < best || (c != c && best == best))) { best = c; bi = k; }
            }
            vp[o * inner + i] = best;
            ip[o * inner + i] = bi;
        }
    craft_tensor_release(x);
    int64_t iarg = d;
    craft_node *node;
    int rc = craft_record(op, 1, &a, v, maxmin_backward, 1, (const craft_tensor *const *)&ix, NULL, 0, &iarg, 1, &node);
    if (rc) { craft_tensor_release(v); craft_tensor_release(ix); return rc; }
    *values = v;
    if (indices) *indices = ix;
    else craft_tensor_release(ix);
    return CRAFT_OK;
}

int craft_max(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_max(a, dim, keepdim, values, indices);
    return maxmin("max", 1, a, dim, keepdim, values, indices);
}
int craft_min(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_min(a, dim, keepdim, values, indices);
    return maxmin("min", 0, a, dim, keepdim, values, indices);
}
int craft_argmax(const craft_tensor *a, int dim, int keepdim, craft_tensor **out) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_argmax(a, dim, keepdim, out);
    craft_tensor *v;
    int prev = craft_set_grad_enabled(0);
    int rc = maxmin("argmax", 1, a, dim, keepdim, &v, out);
    craft_set_grad_enabled(prev);
    if (!rc) craft_tensor_release(v);
    return rc;
}
