/* cl_shape.c: the avg_pool2d, interpolate, pad, embedding and timestep embedding kernels on
 * cl devices, forward and backward (the ops are core/op_resize.c, op_shape.c, op_embed.c).
 * The kernels of kernels_cl/shape.cl gather instead of scatter-adding, in the CPU's arithmetic
 * and summation order. Index tables that the CPU computes on the host (interpolate's axis
 * maps, embedding's rows, the timestep frequencies) are computed by the same host code and
 * uploaded. */
#include "cl/cl_internal.h"
#include <math.h>
#include <stdlib.h>

/* mirror the structs of kernels_cl/shape.cl */
typedef struct {
    cl_long planes, h, w, oh, ow, k, s, pad;
} cl_pool_geo;
typedef struct {
    cl_long planes, h, w, oh, ow, mode;
} cl_interp_geo;
typedef struct {
    cl_long ish[8], osh[8], before[8];
    cl_long ndim, lead, mode;
    cl_float value;
    cl_int pad0;
} cl_pad_geo;

/* A fresh device tensor holding nbytes of host data (i64 or f32 element count n). */
static int upload(int code, int dtype, int64_t n, const void *host, craft_tensor **out) {
    int64_t len = n ? n : 1;
    craft_tensor *t = cl_new(1, &len, dtype, code);
    if (!t) return craft_last_status();
    int rc = n ? craft_cl_write_bytes(t, 0, host, (size_t)n * craft_dtype_size(dtype)) : CRAFT_OK;
    if (rc) {
        craft_tensor_release(t);
        return rc;
    }
    *out = t;
    return CRAFT_OK;
}

/* ------------------------------------------------------------ avg_pool2d ---- */
static cl_pool_geo pool_geo(const int64_t *ishape, int64_t oh, int64_t ow, int64_t k, int64_t s,
                            int64_t pad) {
    cl_pool_geo g = {ishape[0] * ishape[1], ishape[2], ishape[3], oh, ow, k, s, pad};
    return g;
}

static int pool_run(int kid, const craft_tensor *src, craft_tensor *dst, const int64_t *ishape, int64_t oh,
                    int64_t ow, int k, int st, int pad) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(dst->device, "avg_pool2d", &d));
    if (!dst->numel) return CRAFT_OK;
    cl_pool_geo g = pool_geo(ishape, oh, ow, k, st, pad);
    cl_mem sm = cl_mem_of(src), dm = cl_mem_of(dst);
    cl_long soff = src->offset;
    cl_arg args[3] = {CLA(sm), CLA(soff), CLA(dm)};
    return cl_launch_geo(d, kid, &g, sizeof g, 3, args, cl_global_for(dst->numel), 0);
}

int craft_cl_avg_pool(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor *y) {
    return pool_run(K_avgpool_fwd, x, y, x->shape, y->shape[2], y->shape[3], kernel, stride, padding);
}

int craft_cl_avg_pool_grad(const craft_tensor *g, int kernel, int stride, int padding, craft_tensor *gx) {
    return pool_run(K_avgpool_bwd, g, gx, gx->shape, g->shape[2], g->shape[3], kernel, stride, padding);
}

/* ----------------------------------------------------------- interpolate ---- */
/* The axis maps on the device (layout in shape.cl); the backward ranges only when `ranges`. */
static int interp_maps(int code, const int64_t *ishape, int64_t oh, int64_t ow, int mode, int align,
                       int ranges, craft_tensor **im, craft_tensor **lm) {
    int64_t H = ishape[2], W = ishape[3], ni = 2 * (oh + ow) + 2 * (H + W), nl = 2 * (oh + ow);
    int64_t *ib = malloc((size_t)ni * sizeof *ib);
    float *lb = calloc((size_t)nl, sizeof *lb);
    if (!ib || !lb) {
        free(ib);
        free(lb);
        return craft_fail(CRAFT_ENOMEM, "interpolate: out of host memory");
    }
    int64_t *hi0 = ib, *hi1 = ib + oh, *wi0 = ib + 2 * oh, *wi1 = wi0 + ow, *lo = wi1 + ow;
    craft_interpolate_axis(H, oh, mode, align, hi0, hi1, lb, lb + oh);
    craft_interpolate_axis(W, ow, mode, align, wi0, wi1, lb + 2 * oh, lb + 2 * oh + ow);
    if (mode == 0) {
        memcpy(hi1, hi0, (size_t)oh * sizeof *ib);
        memcpy(wi1, wi0, (size_t)ow * sizeof *ib);
    }
    /* per input index, the first and last output index that reads it (lo > hi: none) */
    int64_t in[2] = {H, W}, outn[2] = {oh, ow}, *a0[2] = {hi0, wi0}, *a1[2] = {hi1, wi1};
    for (int ax = 0; ax < 2; ax++) {
        int64_t *l = lo + (ax ? 2 * H : 0), *h = l + in[ax];
        for (int64_t i = 0; i < in[ax]; i++) {
            l[i] = outn[ax];
            h[i] = -1;
        }
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

static int interp_run(int kid, const craft_tensor *src, craft_tensor *dst, const int64_t *ishape, int64_t oh,
                      int64_t ow, int mode, int align) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(dst->device, "interpolate", &d));
    craft_tensor *im, *lm;
    CRAFT_TRY(interp_maps(dst->device, ishape, oh, ow, mode, align, kid == K_interp_bwd, &im, &lm));
    cl_interp_geo k = {ishape[0] * ishape[1], ishape[2], ishape[3], oh, ow, mode};
    cl_mem sm = cl_mem_of(src), dm = cl_mem_of(dst), imm = cl_mem_of(im), lmm = cl_mem_of(lm);
    cl_long soff = src->offset;
    cl_arg args[5] = {CLA(sm), CLA(soff), CLA(dm), CLA(imm), CLA(lmm)};
    int rc =
        dst->numel ? cl_launch_geo(d, kid, &k, sizeof k, 5, args, cl_global_for(dst->numel), 0) : CRAFT_OK;
    craft_tensor_release(im);
    craft_tensor_release(lm);
    return rc;
}

int craft_cl_interpolate(const craft_tensor *x, int mode, int align_corners, craft_tensor *y) {
    return interp_run(K_interp_fwd, x, y, x->shape, y->shape[2], y->shape[3], mode, align_corners);
}

int craft_cl_interpolate_grad(const craft_tensor *g, int mode, int align_corners, craft_tensor *gx) {
    return interp_run(K_interp_bwd, g, gx, gx->shape, g->shape[2], g->shape[3], mode, align_corners);
}

/* ------------------------------------------------------------------- pad ---- */
static cl_pad_geo pad_geo(int nd, const int64_t *ish, const int64_t *osh, int npairs, const int64_t *pads,
                          int mode, double value) {
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
    cl_arg args[4] = {CLA(sm), CLA(soff), CLA(dm), CLA(n)};
    return cl_launch_geo(d, kid, k, sizeof *k, 4, args, cl_global_for(n), 0);
}

int craft_cl_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value,
                 craft_tensor *y) {
    cl_pad_geo k = pad_geo(x->ndim, x->shape, y->shape, npairs, pads, mode, value);
    return pad_run(K_pad_fwd, &k, x, y);
}

int craft_cl_pad_grad(const craft_tensor *g, int npairs, const int64_t *pads, int mode, craft_tensor *gx) {
    cl_pad_geo k = pad_geo(gx->ndim, gx->shape, g->shape, npairs, pads, mode, 0.0);
    return pad_run(K_pad_bwd, &k, g, gx);
}

/* ------------------------------------------------------------- embedding ---- */
int craft_cl_embedding(const craft_tensor *wc, const craft_tensor *idx, craft_tensor *y) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "embedding", &d));
    int64_t K = idx->numel, D = wc->shape[1];
    craft_tensor *di = NULL;
    int rc = upload(y->device, CRAFT_I64, K, craft_tensor_data(idx), &di);
    if (!rc && y->numel) {
        cl_mem wm = cl_mem_of(wc), im = cl_mem_of(di), ym = cl_mem_of(y);
        cl_long woff = wc->offset, cK = K, cD = D;
        cl_arg args[6] = {CLA(wm), CLA(woff), CLA(im), CLA(ym), CLA(cK), CLA(cD)};
        rc = cl_launch(d, K_embed_fwd, 6, args, cl_global_for(y->numel), 0);
    }
    craft_tensor_release(di);
    return rc;
}

/* each row of gw gathers the rows of g that index it, in increasing k (the CPU's scatter
 * order): a csr table (shape.cl: k sorted by row, then the row starts), made on the host */
int craft_cl_embedding_grad(const craft_tensor *g, const craft_tensor *idx, craft_tensor *gw) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(gw->device, "embedding backward", &d));
    if (!gw->numel) return CRAFT_OK;
    int64_t V = gw->shape[0], K = idx->numel, D = gw->shape[1];
    const int64_t *ip = craft_tensor_data(idx);
    int64_t *csr = malloc((size_t)(K + V + 1) * sizeof *csr);
    if (!csr) return craft_fail(CRAFT_ENOMEM, "embedding backward: out of host memory");
    int64_t *ord = csr, *start = csr + K; /* counting sort of k by row, stable */
    memset(start, 0, (size_t)(V + 1) * sizeof *start);
    for (int64_t k = 0; k < K; k++) start[ip[k] + 1]++;
    for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];
    for (int64_t k = 0; k < K; k++) ord[start[ip[k]]++] = k;
    for (int64_t v = V; v > 0; v--) start[v] = start[v - 1]; /* the fill moved each start to the next row's */
    start[0] = 0;
    craft_tensor *tab = NULL;
    int rc = upload(gw->device, CRAFT_I64, K + V + 1, csr, &tab);
    free(csr);
    if (!rc) {
        cl_mem gm = cl_mem_of(g), cm = cl_mem_of(tab), wm = cl_mem_of(gw);
        cl_long goff = g->offset, cV = V, cK = K, cD = D;
        cl_arg args[7] = {CLA(gm), CLA(goff), CLA(cm), CLA(wm), CLA(cV), CLA(cK), CLA(cD)};
        rc = cl_launch(d, K_embed_bwd, 7, args, cl_global_for(gw->numel), 0);
    }
    craft_tensor_release(tab);
    return rc;
}

/* ---------------------------------------------------- timestep embedding ---- */
int craft_cl_timestep_embedding(const craft_tensor *tc, const float *freq, int dim, int flip_sin_to_cos,
                                double scale, craft_tensor *y) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "timestep_embedding", &d));
    int64_t N = tc->shape[0], half = dim / 2;
    craft_tensor *fr = NULL;
    int rc = upload(y->device, CRAFT_F32, half, freq, &fr); /* the CPU's table */
    if (!rc) {
        cl_mem tm = cl_mem_of(tc), fm = cl_mem_of(fr), ym = cl_mem_of(y);
        cl_long toff = tc->offset, cN = N, cdim = dim, chalf = half;
        cl_float sc = (cl_float)scale;
        cl_int flip = flip_sin_to_cos ? 1 : 0;
        cl_arg args[9] = {CLA(tm),   CLA(toff),  CLA(fm), CLA(ym),  CLA(cN),
                          CLA(cdim), CLA(chalf), CLA(sc), CLA(flip)};
        rc = cl_launch(d, K_timestep_emb, 9, args, cl_global_for(y->numel), 0);
    }
    craft_tensor_release(fr);
    return rc;
}
