/* ops_resize.c: NCHW resampling ops, interpolate (nearest, bilinear) and avg_pool2d, forward
 * and backward. Source indices and weights are computed exactly as PyTorch's CPU kernels do
 * (float32 arithmetic), so that outputs agree to rounding; backward scatter-adds per plane,
 * planes in parallel (they never share input elements). */
#include "core/internal.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* ------------------------------------------------------------- interpolate -- */
/* Per output index along one axis: source indices i0, i1 and weights l0, l1 (bilinear), or
 * only i0 (nearest). */
typedef struct {
    int64_t *i0, *i1;
    float *l0, *l1;
} axis_map;

static void axis_map_free(axis_map *a) {
    free(a->i0); free(a->i1); free(a->l0); free(a->l1);
    memset(a, 0, sizeof *a);
}

/* torch 'nearest': src = min(floor(dst * (in / out)), in - 1) with the scale in float; the
 * same-size and 2x cases are written out by torch, and agree with the formula. */
static int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    float scale = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

static int axis_map_make(int64_t in, int64_t out, int mode, int align_corners, axis_map *a) {
    memset(a, 0, sizeof *a);
    a->i0 = malloc((size_t)out * sizeof(int64_t));
    if (mode == 1) {
        a->i1 = malloc((size_t)out * sizeof(int64_t));
        a->l0 = malloc((size_t)out * sizeof(float));
        a->l1 = malloc((size_t)out * sizeof(float));
    }
    if (!a->i0 || (mode == 1 && (!a->i1 || !a->l0 || !a->l1))) {
        axis_map_free(a);
        return craft_fail(CRAFT_ENOMEM, "interpolate: out of host memory");
    }
    craft_interpolate_axis(in, out, mode, align_corners, a->i0, a->i1, a->l0, a->l1);
    return CRAFT_OK;
}

void craft_interpolate_axis(int64_t in, int64_t out, int mode, int align_corners, int64_t *i0s, int64_t *i1s, float *l0s,
                            float *l1s) {
    if (mode == 0) {
        for (int64_t o = 0; o < out; o++) i0s[o] = nearest_src(o, in, out);
        return;
    }
    /* torch area_pixel_compute_scale / area_pixel_compute_source_index, float32 */
    float scale = align_corners ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        float src;
        if (align_corners) {
            src = scale * (float)o;
        } else {
            src = (float)((double)scale * ((double)o + 0.5) - 0.5);   /* torch computes this in double */
            if (src < 0) src = 0;
        }
        int64_t i0 = (int64_t)src;
        if (i0 > in - 1) i0 = in - 1;
        float l1 = src - (float)i0;
        if (l1 < 0) l1 = 0;
        if (l1 > 1) l1 = 1;
        i0s[o] = i0;
        i1s[o] = i0 + (i0 < in - 1 ? 1 : 0);
        l1s[o] = l1;
        l0s[o] = 1.0f - l1;
    }
}

typedef struct {
    int64_t planes, H, W, OH, OW;
    int mode;
    axis_map mh, mw;
} interp_plan;

static int interp_plan_make(const int64_t *ishape, int64_t oh, int64_t ow, int mode, int align, interp_plan *p) {
    p->planes = ishape[0] * ishape[1];
    p->H = ishape[2];
    p->W = ishape[3];
    p->OH = oh;
    p->OW = ow;
    p->mode = mode;
    CRAFT_TRY(axis_map_make(p->H, oh, mode, align, &p->mh));
    int rc = axis_map_make(p->W, ow, mode, align, &p->mw);
    if (rc) axis_map_free(&p->mh);
    return rc;
}

static void interp_plan_free(interp_plan *p) {
    axis_map_free(&p->mh);
    axis_map_free(&p->mw);
}

static void interp_forward_kernel(const interp_plan *p, const float *x, float *y) {
    const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW;
    const axis_map *mh = &p->mh, *mw = &p->mw;
    #pragma omp parallel for schedule(static) if (p->planes * OH * OW >= CRAFT_PAR_MIN)
    for (int64_t r = 0; r < p->planes * OH; r++) {
        int64_t pl = r / OH, oy = r % OH;
        const float *xp = x + pl * H * W;
        float *yr = y + r * OW;
        if (p->mode == 0) {
            const float *xr = xp + mh->i0[oy] * W;
            for (int64_t ox = 0; ox < OW; ox++) yr[ox] = xr[mw->i0[ox]];
        } else {
            const float *x0 = xp + mh->i0[oy] * W, *x1 = xp + mh->i1[oy] * W;
            float h0 = mh->l0[oy], h1 = mh->l1[oy];
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t a = mw->i0[ox], b = mw->i1[ox];
                float w0 = mw->l0[ox], w1 = mw->l1[ox];
                yr[ox] = h0 * (w0 * x0[a] + w1 * x0[b]) + h1 * (w0 * x1[a] + w1 * x1[b]);
            }
        }
    }
}

static void interp_backward_kernel(const interp_plan *p, const float *g, float *gx) {
    const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW;
    const axis_map *mh = &p->mh, *mw = &p->mw;
    #pragma omp parallel for schedule(static) if (p->planes > 1 && p->planes * OH * OW >= CRAFT_PAR_MIN)
    for (int64_t pl = 0; pl < p->planes; pl++) {
        float *xp = gx + pl * H * W;
        for (int64_t oy = 0; oy < OH; oy++) {
            const float *gr = g + (pl * OH + oy) * OW;
            if (p->mode == 0) {
                float *xr = xp + mh->i0[oy] * W;
                for (int64_t ox = 0; ox < OW; ox++) xr[mw->i0[ox]] += gr[ox];
            } else {
                float *x0 = xp + mh->i0[oy] * W, *x1 = xp + mh->i1[oy] * W;
                float h0 = mh->l0[oy], h1 = mh->l1[oy];
                for (int64_t ox = 0; ox < OW; ox++) {
                    int64_t a = mw->i0[ox], b = mw->i1[ox];
                    float w0 = mw->l0[ox], w1 = mw->l1[ox], v = gr[ox];
                    x0[a] += h0 * w0 * v;
                    x0[b] += h0 * w1 * v;
                    x1[a] += h1 * w0 * v;
                    x1[b] += h1 * w1 * v;
                }
            }
        }
    }
}

static int interp_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    const craft_edge *e = &n->edges[0];
    interp_plan p;
    CRAFT_TRY(interp_plan_make(e->shape, n->iarg[2], n->iarg[3], (int)n->iarg[0], (int)n->iarg[1], &p));
    craft_tensor *g = NULL, *gx = NULL;
    int rc = craft_contig_f32(gout[0], &g);
    if (!rc) rc = craft_zeros(4, e->shape, CRAFT_F32, 0, &gx);
    if (!rc) interp_backward_kernel(&p, craft_tensor_data(g), craft_tensor_data(gx));
    interp_plan_free(&p);
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_interpolate_check(const craft_tensor *x, int64_t out_h, int64_t out_w, int mode, int *align_corners) {
    if (mode != 0 && mode != 1) return craft_fail(CRAFT_EINVAL, "interpolate: unknown mode %d (0 nearest, 1 bilinear)", mode);
    if (x->ndim != 4) return craft_fail(CRAFT_ESHAPE, "interpolate: input %s must be 4-d NCHW", craft_shape_str(x));
    if (x->shape[2] < 1 || x->shape[3] < 1)
        return craft_fail(CRAFT_ESHAPE, "interpolate: input %s has an empty spatial dim", craft_shape_str(x));
    if (out_h < 1 || out_w < 1 || out_h > ((int64_t)1 << 31) || out_w > ((int64_t)1 << 31))
        return craft_fail(CRAFT_ESHAPE, "interpolate: output size %lldx%lld for input %s (sizes must be 1 .. 2^31)",
                          (long long)out_h, (long long)out_w, craft_shape_str(x));
    *align_corners = mode == 0 ? 0 : *align_corners ? 1 : 0;
    return CRAFT_OK;
}

int craft_interpolate(const craft_tensor *x, int64_t out_h, int64_t out_w, int mode, int align_corners,
                      craft_tensor **out) {
    if (x && x->device != CRAFT_DEVICE_CPU) return craft_cl_op_interpolate(x, out_h, out_w, mode, align_corners, out);
    CRAFT_TRY(craft_check_f32("interpolate", "input", x));
    CRAFT_TRY(craft_interpolate_check(x, out_h, out_w, mode, &align_corners));
    int64_t oshape[4] = {x->shape[0], x->shape[1], out_h, out_w};
    interp_plan p;
    CRAFT_TRY(interp_plan_make(x->shape, out_h, out_w, mode, align_corners ? 1 : 0, &p));
    craft_tensor *xc = NULL, *y = craft_new_tensor(4, oshape, CRAFT_F32, CRAFT_DEVICE_CPU);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc) interp_forward_kernel(&p, craft_tensor_data(xc), craft_tensor_data(y));
    interp_plan_free(&p);
    craft_tensor_release(xc);
    if (rc) { craft_tensor_release(y); return rc; }
    int64_t iargs[4] = {mode, align_corners ? 1 : 0, out_h, out_w};
    rc = craft_record(mode ? "interpolate_bilinear" : "interpolate_nearest", 1, &x, y, interp_backward, 0, NULL,
                      NULL, 0, iargs, 4, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ------------------------------------------------------------- avg_pool2d --- */
/* count_include_pad=True, ceil_mode=False: every window lies inside the padded input, so the
 * divisor is always kernel * kernel. */
typedef struct { int64_t planes, H, W, OH, OW, k, s, pad; } pool_plan;

static void pool_forward_kernel(const pool_plan *p, const float *x, float *y) {
    const float div = (float)(p->k * p->k);
    #pragma omp parallel for schedule(static) if (p->planes * p->OH * p->OW * p->k * p->k >= CRAFT_PAR_MIN)
    for (int64_t r = 0; r < p->planes * p->OH; r++) {
        int64_t pl = r / p->OH, oy = r % p->OH;
        const float *xp = x + pl * p->H * p->W;
        int64_t y0 = oy * p->s - p->pad, y1 = y0 + p->k;
        if (y0 < 0) y0 = 0;
        if (y1 > p->H) y1 = p->H;
        for (int64_t ox = 0; ox < p->OW; ox++) {
            int64_t x0 = ox * p->s - p->pad, x1 = x0 + p->k;
            if (x0 < 0) x0 = 0;
            if (x1 > p->W) x1 = p->W;
            float acc = 0;
            for (int64_t i = y0; i < y1; i++)
                for (int64_t j = x0; j < x1; j++) acc += xp[i * p->W + j];
            y[r * p->OW + ox] = acc / div;
        }
    }
}

static void pool_backward_kernel(const pool_plan *p, const float *g, float *gx) {
    const float div = (float)(p->k * p->k);
    #pragma omp parallel for schedule(static) if (p->planes > 1 && p->planes * p->OH * p->OW * p->k * p->k >= CRAFT_PAR_MIN)
    for (int64_t pl = 0; pl < p->planes; pl++) {
        float *xp = gx + pl * p->H * p->W;
        for (int64_t oy = 0; oy < p->OH; oy++) {
            int64_t y0 = oy * p->s - p->pad, y1 = y0 + p->k;
            if (y0 < 0) y0 = 0;
            if (y1 > p->H) y1 = p->H;
            for (int64_t ox = 0; ox < p->OW; ox++) {
                int64_t x0 = ox * p->s - p->pad, x1 = x0 + p->k;
                if (x0 < 0) x0 = 0;
                if (x1 > p->W) x1 = p->W;
                float v = g[(pl * p->OH + oy) * p->OW + ox] / div;
                for (int64_t i = y0; i < y1; i++)
                    for (int64_t j = x0; j < x1; j++) xp[i * p->W + j] += v;
            }
        }
    }
}

static void pool_plan_make(const int64_t *ishape, int64_t k, int64_t s, int64_t pad, pool_plan *p) {
    p->planes = ishape[0] * ishape[1];
    p->H = ishape[2];
    p->W = ishape[3];
    p->k = k;
    p->s = s;
    p->pad = pad;
    p->OH = (p->H + 2 * pad - k) / s + 1;
    p->OW = (p->W + 2 * pad - k) / s + 1;
}

static int pool_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    const craft_edge *e = &n->edges[0];
    pool_plan p;
    pool_plan_make(e->shape, n->iarg[0], n->iarg[1], n->iarg[2], &p);
    craft_tensor *g = NULL, *gx = NULL;
    int rc = craft_contig_f32(gout[0], &g);
    if (!rc) rc = craft_zeros(4, e->shape, CRAFT_F32, 0, &gx);
    if (!rc) pool_backward_kernel(&p, craft_tensor_data(g), craft_tensor_data(gx));
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_avg_pool2d_check(const craft_tensor *x, int kernel, int *stride, int padding, int64_t *oh, int64_t *ow) {
    if (x->ndim != 4) return craft_fail(CRAFT_ESHAPE, "avg_pool2d: input %s must be 4-d NCHW", craft_shape_str(x));
    if (*stride <= 0) *stride = kernel;   /* torch: stride=None means the kernel size */
    if (kernel < 1 || padding < 0)
        return craft_fail(CRAFT_EINVAL, "avg_pool2d: kernel %d, padding %d (kernel must be >= 1, padding >= 0)", kernel, padding);
    if ((int64_t)2 * padding > kernel)
        return craft_fail(CRAFT_EINVAL, "avg_pool2d: padding %d must be at most half the kernel %d", padding, kernel);
    if (x->shape[2] + (int64_t)2 * padding < kernel || x->shape[3] + (int64_t)2 * padding < kernel)
        return craft_fail(CRAFT_ESHAPE, "avg_pool2d: input %s with padding %d is smaller than the kernel %d",
                          craft_shape_str(x), padding, kernel);
    *oh = (x->shape[2] + 2 * (int64_t)padding - kernel) / *stride + 1;
    *ow = (x->shape[3] + 2 * (int64_t)padding - kernel) / *stride + 1;
    return CRAFT_OK;
}

int craft_avg_pool2d(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor **out) {
    if (x && x->device != CRAFT_DEVICE_CPU) return craft_cl_op_avg_pool2d(x, kernel, stride, padding, out);
    CRAFT_TRY(craft_check_f32("avg_pool2d", "input", x));
    int64_t oh, ow;
    CRAFT_TRY(craft_avg_pool2d_check(x, kernel, &stride, padding, &oh, &ow));
    pool_plan p;
    pool_plan_make(x->shape, kernel, stride, padding, &p);
    int64_t oshape[4] = {x->shape[0], x->shape[1], p.OH, p.OW};
    craft_tensor *xc = NULL, *y = craft_new_tensor(4, oshape, CRAFT_F32, CRAFT_DEVICE_CPU);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc) pool_forward_kernel(&p, craft_tensor_data(xc), craft_tensor_data(y));
    craft_tensor_release(xc);
    if (rc) { craft_tensor_release(y); return rc; }
    int64_t iargs[3] = {kernel, stride, padding};
    rc = craft_record("avg_pool2d", 1, &x, y, pool_backward, 0, NULL, NULL, 0, iargs, 3, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
