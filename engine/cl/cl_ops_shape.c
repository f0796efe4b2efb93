/* cl_ops_shape.c: avg_pool2d, interpolate, pad, concat, embedding and timestep embedding on
 * cl devices, forward and backward, with the CPU ops' checks (shared through internal.h) and
 * results (the kernels of kernels_cl/shape.cl replay the CPU's arithmetic and summation order).
 * Index tables that the CPU computes on the host (interpolate's axis maps, embedding's rows,
 * the timestep frequencies) are computed by the same host code and uploaded. */
#include "cl/cl_internal.h"
#include <math.h>
#include <stdlib.h>

/* mirror the structs of kernels_cl/shape.cl */
typedef struct { cl_long planes, h, w, oh, ow, k, s, pad; } cl_pool_geo;
typedef struct { cl_long planes, h, w, oh, ow, mode; } cl_interp_geo;
typedef struct { cl_long ish[8], osh[8], before[8]; cl_long ndim, lead, mode; cl_float value; cl_int pad0; } cl_pad_geo;

static int want_dev(const char *op, const char *arg, const craft_tensor *t) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s is %s, expected f32 (convert with :float())", op, arg, craft_shape_str(t));
    return CRAFT_OK;
}

/* gout[0] on the node's device, contiguous */
static int grad_in(craft_node *n, craft_tensor **gout, craft_tensor **out) {
    craft_tensor *g;
    CRAFT_TRY(cl_on_device(gout[0], n->device, &g));
    int rc = craft_contig_f32(g, out);
    craft_tensor_release(g);
    return rc;
}

/* A fresh device tensor holding nbytes of host data (i64 or f32 element count n). */
static int upload(int code, int dtype, int64_t n, const void *host, craft_tensor **out) {
    int64_t len = n ? n : 1;
    craft_tensor *t = cl_new(1, &len, dtype, code);
    if (!t) return craft_last_status();
    int rc = n ? craft_cl_write_bytes(t, 0, host, (size_t)n * craft_dtype_size(dtype)) : CRAFT_OK;
    if (rc) { craft_tensor_release(t); return rc; }
    *out = t;
    return CRAFT_OK;
}

static int finish(const char *op, int rc, craft_tensor *y, int n_in, const craft_tensor *const *ins, craft_backward_kernel bw,
                  int nsave, const craft_tensor *const *save, const double *sargs, int nsargs, const int64_t *iargs, int niargs,
                  craft_tensor **out) {
    if (!rc) rc = craft_record(op, n_in, ins, y, bw, nsave, save, sargs, nsargs, iargs, niargs, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ------------------------------------------------------------ avg_pool2d ---- */
static cl_pool_geo pool_geo(const int64_t *ishape, int64_t oh, int64_t ow, int64_t k, int64_t s, int64_t pad) {
    cl_pool_geo g = {ishape[0] * ishape[1], ishape[2], ishape[3], oh, ow, k, s, pad};
    return g;
}

/* iarg: kernel, stride, padding, oh, ow */
static int pool_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(n->device, "avg_pool2d backward", &d));
    craft_tensor *g, *gx;
    CRAFT_TRY(grad_in(n, gout, &g));
    cl_pool_geo k = pool_geo(n->edges[0].shape, n->iarg[3], n->iarg[4], n->iarg[0], n->iarg[1], n->iarg[2]);
    int rc = (gx = cl_new(4, n->edges[0].shape, CRAFT_F32, n->device)) ? CRAFT_OK : craft_last_status();
    if (!rc && gx->numel) {
        cl_mem gm = cl_mem_of(g), xm = cl_mem_of(gx);
        cl_long goff = g->offset;
        cl_arg args[4] = {CLA(k), CLA(gm), CLA(goff), CLA(xm)};
        rc = cl_launch(d, K_avgpool_bwd, 4, args, cl_global_for(gx->numel), 0);
    }
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_cl_op_avg_pool2d(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor **out) {
    CRAFT_TRY(want_dev("avg_pool2d", "input", x));
    int64_t oh, ow;
    CRAFT_TRY(craft_avg_pool2d_check(x, kernel, &stride, padding, &oh, &ow));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(x->device, "avg_pool2d", &d));
    int64_t oshape[4] = {x->shape[0], x->shape[1], oh, ow};
    craft_tensor *xc = NULL, *y = cl_new(4, oshape, CRAFT_F32, x->device);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc && y->numel) {
        cl_pool_geo k = pool_geo(x->shape, oh, ow, kernel, stride, padding);
        cl_mem xm = cl_mem_of(xc), ym = cl_mem_of(y);
        cl_long xoff = xc->offset;
        cl_arg args[4] = {CLA(k), CLA(xm), CLA(xoff), CLA(ym)};
        rc = cl_launch(d, K_avgpool_fwd, 4, args, cl_global_for(y->numel), 0);
    }
    craft_tensor_release(xc);
    int64_t iargs[5] = {kernel, stride, padding, oh, ow};
    return finish("avg_pool2d", rc, y, 1, &x, pool_backward, 0, NULL, NULL, 0, iargs, 5, out);
}

/* ----------------------------------------------------------- interpolate ---- */
/* The axis maps on the device (layout in shape.cl); the backward ranges only when `ranges`. */
static int interp_maps(int code, const int64_t *ishape, int64_t oh, int64_t ow, int mode, int align, int ranges,
                       craft_tensor **im, craft_tensor **lm) {
    int64_t H = ishape[2], W = ishape[3], ni = 2 * (oh + ow) + 2 * (H + W), nl = 2 * (oh + ow);
    int64_t *ib = malloc((size_t)ni * sizeof *ib);
    float *lb = calloc((size_t)nl, sizeof *lb);
    if (!ib || !lb) { free(ib); free(lb); return craft_fail(CRAFT_ENOMEM, "interpolate: out of host memory"); }
    int64_t *hi0 = ib, *hi1 = ib + oh, *wi0 = ib + 2 * oh, *wi1 = wi0 + ow, *lo = wi1 + ow;
    craft_interpolate_axis(H, oh, mode, align, hi0, hi1, lb, lb + oh);
    craft_interpolate_axis(W, ow, mode, align, wi0, wi1, lb + 2 * oh, lb + 2 * oh + ow);
    if (mode == 0) { memcpy(hi1, hi0, (size_t)oh * sizeof *ib); memcpy(wi1, wi0, (size_t)ow * sizeof *ib); }
    /* per input index, the first and last output index that reads it (lo > hi: none) */
    int64_t in[2] = {H, W}, outn[2] = {oh, ow}, *a0[2] = {hi0, wi0}, *a1[2] = {hi1, wi1};
    for (int ax = 0; ax < 2; ax++) {
        int64_t *l = lo + (ax ? 2 * H : 0), *h = l + in[ax];
        for (int64_t i = 0; i < in[ax]; i++) { l[i] = outn[ax]; h[i] = -1; }
        for (int64_t o = 0; o < outn[ax]; o++)
            for (int s = 0; s < 2; s++) {
                int64_t i = s ? a1[ax][o] : a0[ax][o];
                if (o < l[i]) l[i] = o;
                if (o > h[i]) h[i] = o;
            }
    }
    int rc = upload(code, CRAFT_I64, ranges ? ni : 2 * (oh + ow), ib, im);
    if (!rc) {
        rc = upload(code, CRAFT_F32, nl, lb, lm);
        if (rc) craft_tensor_release(*im);
    }
    free(ib);
    free(lb);
    return rc;
}

static int interp_run(int kid, const craft_tensor *src, craft_tensor *dst, const int64_t *ishape, int64_t oh, int64_t ow, int mode,
                      int align) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(dst->device, "interpolate", &d));
    craft_tensor *im, *lm;
    CRAFT_TRY(interp_maps(dst->device, ishape, oh, ow, mode, align, kid == K_interp_bwd, &im, &lm));
    cl_interp_geo k = {ishape[0] * ishape[1], ishape[2], ishape[3], oh, ow, mode};
    cl_mem sm = cl_mem_of(src), dm = cl_mem_of(dst), imm = cl_mem_of(im), lmm = cl_mem_of(lm);
    cl_long soff = src->offset;
    cl_arg args[6] = {CLA(k), CLA(sm), CLA(soff), CLA(dm), CLA(imm), CLA(lmm)};
    int rc = dst->numel ? cl_launch(d, kid, 6, args, cl_global_for(dst->numel), 0) : CRAFT_OK;
    craft_tensor_release(im);
    craft_tensor_release(lm);
    return rc;
}

/* iarg: mode, align_corners, out_h, out_w */
static int interp_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *g, *gx;
    CRAFT_TRY(grad_in(n, gout, &g));
    int rc = (gx = cl_new(4, n->edges[0].shape, CRAFT_F32, n->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = interp_run(K_interp_bwd, g, gx, n->edges[0].shape, n->iarg[2], n->iarg[3], (int)n->iarg[0], (int)n->iarg[1]);
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_cl_op_interpolate(const craft_tensor *x, int64_t out_h, int64_t out_w, int mode, int align_corners, craft_tensor **out) {
    CRAFT_TRY(want_dev("interpolate", "input", x));
    CRAFT_TRY(craft_interpolate_check(x, out_h, out_w, mode, &align_corners));
    int64_t oshape[4] = {x->shape[0], x->shape[1], out_h, out_w};
    craft_tensor *xc = NULL, *y = cl_new(4, oshape, CRAFT_F32, x->device);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc) rc = interp_run(K_interp_fwd, xc, y, x->shape, out_h, out_w, mode, align_corners);
    craft_tensor_release(xc);
    int64_t iargs[4] = {mode, align_corners, out_h, out_w};
    return finish(mode ? "interpolate_bilinear" : "interpolate_nearest", rc, y, 1, &x, interp_backward, 0, NULL, NULL, 0, iargs, 4,
                  out);
}

/* ------------------------------------------------------------------- pad ---- */
static cl_pad_geo pad_geo(int nd, const int64_t *ish, const int64_t *osh, int npairs, const int64_t *pads, int mode, double value) {
    cl_pad_geo g;
    memset(&g, 0, sizeof g);
    g.ndim = nd;
    g.lead = nd - npairs;
    g.mode = mode;
    g.value = (cl_float)value;
    for (int dd = 0; dd < nd; dd++) {
        g.ish[dd] = ish[dd];
        g.osh[dd] = osh[dd];
        g.before[dd] = dd >= g.lead ? pads[2 * (nd - 1 - dd)] : 0;
    }
    return g;
}

static int pad_run(int kid, const cl_pad_geo *k, const craft_tensor *src, craft_tensor *dst) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(dst->device, "pad", &d));
    if (!dst->numel) return CRAFT_OK;
    cl_mem sm = cl_mem_of(src), dm = cl_mem_of(dst);
    cl_long soff = src->offset, n = dst->numel;
    cl_arg args[5] = {{sizeof *k, k}, CLA(sm), CLA(soff), CLA(dm), CLA(n)};
    return cl_launch(d, kid, 5, args, cl_global_for(n), 0);
}

/* iarg: mode, npairs, pads...; sarg: value */
static int pad_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    const craft_edge *e = &n->edges[0];
    int npairs = (int)n->iarg[1];
    craft_tensor *g, *gx;
    CRAFT_TRY(grad_in(n, gout, &g));
    cl_pad_geo k = pad_geo(e->ndim, e->shape, g->shape, npairs, &n->iarg[2], (int)n->iarg[0], 0.0);
    int rc = (gx = cl_new(e->ndim, e->shape, CRAFT_F32, n->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = pad_run(K_pad_bwd, &k, g, gx);
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_cl_op_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value, craft_tensor **out) {
    CRAFT_TRY(want_dev("pad", "input", x));
    if (npairs == 0 && mode >= 0 && mode <= 2) return craft_clone(x, out);
    int64_t osh[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_pad_check(x, npairs, pads, mode, osh));
    craft_tensor *xc = NULL, *y = cl_new(x->ndim, osh, CRAFT_F32, x->device);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    cl_pad_geo k = pad_geo(x->ndim, x->shape, osh, npairs, pads, mode, value);
    if (!rc) rc = pad_run(K_pad_fwd, &k, xc, y);
    craft_tensor_release(xc);
    int64_t iargs[2 + 2 * CRAFT_MAX_DIMS];
    iargs[0] = mode;
    iargs[1] = npairs;
    for (int i = 0; i < 2 * npairs; i++) iargs[2 + i] = pads[i];
    return finish("pad", rc, y, 1, &x, pad_backward, 0, NULL, &value, 1, iargs, 2 + 2 * npairs, out);
}

/* ---------------------------------------------------------------- concat ---- */
/* Each input's gradient is its slab of the output gradient, copied out on the device. */
static int concat_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    int dd = (int)n->iarg[0];
    craft_tensor *g;
    CRAFT_TRY(cl_on_device(gout[0], n->device, &g));
    int64_t start = 0;
    int rc = CRAFT_OK;
    for (int i = 0; i < n->n_in && !rc; i++) {
        int64_t len = n->edges[i].shape[dd];
        if (CRAFT_NEEDS_GRAD(n, i)) {
            craft_tensor *s = NULL;
            rc = craft_slice(g, dd, start, start + len, 1, &s);
            if (!rc) rc = craft_contig_f32(s, &gin[i]);
            craft_tensor_release(s);
        }
        start += len;
    }
    craft_tensor_release(g);
    return rc;
}

int craft_cl_op_concat(int n, craft_tensor **ts, int dim, craft_tensor **out) {
    if (n < 1 || !ts) return craft_fail(CRAFT_EINVAL, "concat: needs at least one tensor (got %d)", n);
    int code = 0;
    for (int i = 0; i < n; i++) {
        if (!ts[i] || ts[i]->device == CRAFT_DEVICE_CPU) continue;
        if (code && ts[i]->device != code)
            return craft_fail(CRAFT_EDEVICE, "concat: tensors on cl:%d and cl:%d; move one with :to()", code - 1, ts[i]->device - 1);
        code = ts[i]->device;
    }
    /* CPU tensors are copied over (differentiably), as for elementwise ops */
    craft_tensor **m = calloc((size_t)n, sizeof *m);
    if (!m) return craft_fail(CRAFT_ENOMEM, "concat: out of host memory");
    int rc = CRAFT_OK;
    for (int i = 0; i < n && !rc; i++) {
        if (!ts[i]) rc = craft_fail(CRAFT_EINVAL, "concat: tensor %d of %d is missing", i, n);
        else if (ts[i]->device == code) m[i] = craft_tensor_retain(ts[i]);
        else rc = craft_to_device(ts[i], code, &m[i]);
    }
    const craft_tensor *t0 = m[0];
    int dd = 0;
    int64_t shape[CRAFT_MAX_DIMS];
    if (!rc && t0->ndim == 0)
        rc = craft_fail(CRAFT_ESHAPE, "concat: tensor 0 is 0-d (%s); concat needs at least 1 dim", craft_shape_str(t0));
    if (!rc) rc = craft_normalize_dim("concat", dim, t0->ndim, &dd);
    if (!rc) {
        memcpy(shape, t0->shape, sizeof shape);
        shape[dd] = 0;
    }
    for (int i = 0; i < n && !rc; i++) {
        const craft_tensor *t = m[i];
        int bad = t->ndim != t0->ndim;
        for (int k = 0; k < t0->ndim && !bad; k++) bad = k != dd && t->shape[k] != t0->shape[k];
        if (t->dtype != t0->dtype)
            rc = craft_fail(CRAFT_ETYPE, "concat: tensor %d is %s but tensor 0 is %s (dtypes must match)", i, craft_shape_str(t),
                            craft_shape_str(t0));
        else if (bad)
            rc = craft_fail(CRAFT_ESHAPE, "concat: tensor %d %s does not match tensor 0 %s outside dim %d", i, craft_shape_str(t),
                            craft_shape_str(t0), dd);
        else if (__builtin_add_overflow(shape[dd], t->shape[dd], &shape[dd]))
            rc = craft_fail(CRAFT_ESHAPE, "concat: dim %d of the result is too large", dd);
    }
    craft_tensor *y = NULL;
    if (!rc && !(y = cl_new(t0->ndim, shape, t0->dtype, code))) rc = craft_last_status();
    for (int64_t i = 0, start = 0; i < n && !rc && y->numel > 0; start += m[i]->shape[dd], i++) {   /* empty: no copies */
        craft_tensor *v = craft_alias(y);   /* this input's slab of the output */
        if (!v) { rc = craft_last_status(); break; }
        v->shape[dd] = m[i]->shape[dd];
        v->offset = start * y->stride[dd];
        v->numel = m[i]->numel;
        rc = v->numel ? craft_cl_copy_(v, m[i]) : CRAFT_OK;
        craft_tensor_release(v);
    }
    int64_t iarg = dd;
    if (!rc) rc = craft_record("concat", n, (const craft_tensor *const *)m, y, concat_backward, 0, NULL, NULL, 0, &iarg, 1, NULL);
    for (int i = 0; i < n; i++) craft_tensor_release(m[i]);
    free(m);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ------------------------------------------------------------- embedding ---- */
/* saved: the csr table (shape.cl: k sorted by row, then row starts); iarg: V, K */
static int embedding_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    if (!CRAFT_NEEDS_GRAD(n, 0)) return CRAFT_OK;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(n->device, "embedding backward", &d));
    craft_tensor *g, *gw, *csr = n->saved[0];
    CRAFT_TRY(grad_in(n, gout, &g));
    int rc = (gw = cl_new(2, n->edges[0].shape, CRAFT_F32, n->device)) ? CRAFT_OK : craft_last_status();
    if (!rc && gw->numel) {
        cl_mem gm = cl_mem_of(g), cm = cl_mem_of(csr), wm = cl_mem_of(gw);
        cl_long goff = g->offset, V = n->iarg[0], K = n->iarg[1], D = n->edges[0].shape[1];
        cl_arg args[7] = {CLA(gm), CLA(goff), CLA(cm), CLA(wm), CLA(V), CLA(K), CLA(D)};
        rc = cl_launch(d, K_embed_bwd, 7, args, cl_global_for(gw->numel), 0);
    }
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gw); return rc; }
    gin[0] = gw;
    return CRAFT_OK;
}

/* The indices as host int64 (read back from a device), checked against V. */
static int host_indices(const craft_tensor *indices, int64_t V, const craft_tensor *weight, int64_t **out) {
    int64_t K = indices->numel;
    int64_t *ip = malloc((size_t)(K ? K : 1) * sizeof *ip);
    if (!ip) return craft_fail(CRAFT_ENOMEM, "embedding: out of host memory for %lld indices", (long long)K);
    int rc = craft_tensor_read(indices, CRAFT_I64, ip, (size_t)K * sizeof *ip);
    for (int64_t k = 0; k < K && !rc; k++)
        if (ip[k] < 0 || ip[k] >= V)
            rc = craft_fail(CRAFT_EINVAL, "embedding: index %lld (element %lld of indices %s) is out of range for %lld rows (weight %s)",
                            (long long)ip[k], (long long)k, craft_shape_str(indices), (long long)V, craft_shape_str(weight));
    if (rc) { free(ip); return rc; }
    *out = ip;
    return CRAFT_OK;
}

int craft_cl_op_embedding(const craft_tensor *weight, const craft_tensor *indices, craft_tensor **out) {
    CRAFT_TRY(want_dev("embedding", "weight", weight));
    if (!indices) return craft_fail(CRAFT_EINVAL, "embedding: indices are missing");
    if (weight->device == CRAFT_DEVICE_CPU)
        return craft_fail(CRAFT_EDEVICE, "embedding: weight %s is on the CPU but the indices are on cl:%d; move the weight with :to()",
                          craft_shape_str(weight), indices->device - 1);
    if (weight->ndim != 2) return craft_fail(CRAFT_ESHAPE, "embedding: weight %s must be 2-d [V, D]", craft_shape_str(weight));
    if (indices->dtype != CRAFT_I64 && indices->dtype != CRAFT_I32)
        return craft_fail(CRAFT_ETYPE, "embedding: indices %s must be i64 or i32", craft_shape_str(indices));
    if (indices->device != CRAFT_DEVICE_CPU && indices->device != weight->device)
        return craft_fail(CRAFT_EDEVICE, "embedding: indices on cl:%d, weight on cl:%d", indices->device - 1, weight->device - 1);
    if (indices->ndim >= CRAFT_MAX_DIMS)
        return craft_fail(CRAFT_ESHAPE, "embedding: indices %s have too many dims (at most %d)", craft_shape_str(indices), CRAFT_MAX_DIMS - 1);
    int code = weight->device;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, "embedding", &d));
    int64_t V = weight->shape[0], D = weight->shape[1], K = indices->numel, *ip = NULL;
    CRAFT_TRY(host_indices(indices, V, weight, &ip));
    /* csr for backward: counting sort of k by row, stable, so each row keeps k increasing */
    int64_t *csr = malloc((size_t)(2 * K + V + 1) * sizeof *csr);
    if (!csr) { free(ip); return craft_fail(CRAFT_ENOMEM, "embedding: out of host memory"); }
    int64_t *ord = csr + K, *start = csr + 2 * K;   /* ip copy at csr[0..K) for the forward upload */
    memcpy(csr, ip, (size_t)K * sizeof *csr);
    memset(start, 0, (size_t)(V + 1) * sizeof *start);
    for (int64_t k = 0; k < K; k++) start[ip[k] + 1]++;
    for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];
    for (int64_t k = 0; k < K; k++) ord[start[ip[k]]++] = k;
    for (int64_t v = V; v > 0; v--) start[v] = start[v - 1];   /* the fill moved each start to the next row's */
    start[0] = 0;
    free(ip);
    craft_tensor *idx = NULL, *tab = NULL, *wc = NULL, *y = NULL;
    int rc = upload(code, CRAFT_I64, K, csr, &idx);
    if (!rc && craft_grad_enabled() && weight->requires_grad) rc = upload(code, CRAFT_I64, K + V + 1, ord, &tab);
    free(csr);
    int64_t oshape[CRAFT_MAX_DIMS];
    for (int i = 0; i < indices->ndim; i++) oshape[i] = indices->shape[i];
    oshape[indices->ndim] = D;
    if (!rc && !(y = cl_new(indices->ndim + 1, oshape, CRAFT_F32, code))) rc = craft_last_status();
    if (!rc) rc = craft_contig_f32(weight, &wc);
    if (!rc && y->numel) {
        cl_mem wm = cl_mem_of(wc), im = cl_mem_of(idx), ym = cl_mem_of(y);
        cl_long woff = wc->offset, cK = K, cD = D;
        cl_arg args[6] = {CLA(wm), CLA(woff), CLA(im), CLA(ym), CLA(cK), CLA(cD)};
        rc = cl_launch(d, K_embed_fwd, 6, args, cl_global_for(y->numel), 0);
    }
    craft_tensor_release(wc);
    craft_tensor_release(idx);
    const craft_tensor *save[1] = {tab};
    int64_t iargs[2] = {V, K};
    rc = finish("embedding", rc, y, 1, &weight, embedding_backward, 1, save, NULL, 0, iargs, 2, out);
    craft_tensor_release(tab);
    return rc;
}

/* ---------------------------------------------------- timestep embedding ---- */
int craft_cl_op_timestep_embedding(const craft_tensor *t, int dim, int flip_sin_to_cos, double downscale_freq_shift,
                                   double scale, double max_period, craft_tensor **out) {
    CRAFT_TRY(craft_timestep_check(t, dim, downscale_freq_shift, scale, max_period));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(t->device, "timestep_embedding", &d));
    int64_t N = t->shape[0], half = dim / 2, oshape[2] = {N, dim};
    craft_tensor *y = cl_new(2, oshape, CRAFT_F32, t->device);
    if (!y) return craft_last_status();
    if (N == 0) { *out = y; return CRAFT_OK; }   /* before the table: an empty batch needs none */
    float *freq = NULL;
    craft_tensor *fr = NULL, *tc = NULL;
    int rc = craft_timestep_freqs(dim, downscale_freq_shift, max_period, &freq);   /* the CPU's table */
    if (!rc) rc = upload(t->device, CRAFT_F32, half, freq, &fr);
    free(freq);
    if (!rc) rc = craft_contig_f32(t, &tc);
    if (!rc) {
        cl_mem tm = cl_mem_of(tc), fm = cl_mem_of(fr), ym = cl_mem_of(y);
        cl_long toff = tc->offset, cN = N, cdim = dim, chalf = half;
        cl_float sc = (cl_float)scale;
        cl_int flip = flip_sin_to_cos ? 1 : 0;
        cl_arg args[9] = {CLA(tm), CLA(toff), CLA(fm), CLA(ym), CLA(cN), CLA(cdim), CLA(chalf), CLA(sc), CLA(flip)};
        rc = cl_launch(d, K_timestep_emb, 9, args, cl_global_for(y->numel), 0);
    }
    craft_tensor_release(fr);
    craft_tensor_release(tc);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
