/* cpu_resize.c: the CPU's NCHW resampling kernels, interpolate (nearest, bilinear) and
 * avg_pool2d, forward and backward. Source indices and weights come from
 * craft_interpolate_axis (core/op_resize.c: PyTorch's float32 arithmetic); backward
 * scatter-adds per plane, planes in parallel (they never share input elements). */
#include "cpu/cpu_kernels.h"
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
    free(a->i0);
    free(a->i1);
    free(a->l0);
    free(a->l1);
    memset(a, 0, sizeof *a);
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

typedef struct {
    int64_t planes, H, W, OH, OW;
    int mode;
    axis_map mh, mw;
} interp_plan;

static int interp_plan_make(const int64_t *ishape, int64_t oh, int64_t ow, int mode, int align,
                            interp_plan *p) {
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

/* Nearest: an output row whose source row is the previous output row's is a copy of it, so the
 * gather runs once per source row and the repeats are memcpy'd in a second pass; an exact 2x
 * column map (the diffusion models' upsamplers) duplicates each value without a gather. */
static void nearest_forward(const interp_plan *p, const float *x, float *y) {
    const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW;
    const int64_t *ih = p->mh.i0, *iw = p->mw.i0;
    int twice = OW == 2 * W;
    for (int64_t ox = 0; twice && ox < OW; ox++) twice = iw[ox] == ox / 2;
#pragma omp parallel for schedule(static) if (p->planes * OH * OW >= CRAFT_PAR_MIN)
    for (int64_t r = 0; r < p->planes * OH; r++) {
        int64_t pl = r / OH, oy = r % OH;
        if (oy > 0 && ih[oy] == ih[oy - 1]) continue;
        const float *xr = x + pl * H * W + ih[oy] * W;
        float *yr = y + r * OW;
        if (twice)
            for (int64_t i = 0; i < W; i++) yr[2 * i] = yr[2 * i + 1] = xr[i];
        else
            for (int64_t ox = 0; ox < OW; ox++) yr[ox] = xr[iw[ox]];
    }
#pragma omp parallel for schedule(static) if (p->planes * OH * OW >= CRAFT_PAR_MIN)
    for (int64_t r = 0; r < p->planes * OH; r++) {
        int64_t oy = r % OH, src = oy;
        while (src > 0 && ih[src] == ih[src - 1]) src--;
        if (src != oy) memcpy(y + r * OW, y + (r - (oy - src)) * OW, (size_t)OW * sizeof(float));
    }
}

static void interp_forward_kernel(const interp_plan *p, const float *x, float *y) {
    const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW;
    const axis_map *mh = &p->mh, *mw = &p->mw;
    if (p->mode == 0) {
        nearest_forward(p, x, y);
        return;
    }
#pragma omp parallel for schedule(static) if (p->planes * OH * OW >= CRAFT_PAR_MIN)
    for (int64_t r = 0; r < p->planes * OH; r++) {
        int64_t pl = r / OH, oy = r % OH;
        const float *xp = x + pl * H * W;
        float *yr = y + r * OW;
        {
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

int cpu_interpolate(const craft_tensor *x, int mode, int align_corners, craft_tensor *y) {
    interp_plan p;
    CRAFT_TRY(interp_plan_make(x->shape, y->shape[2], y->shape[3], mode, align_corners, &p));
    interp_forward_kernel(&p, craft_tensor_data(x), craft_tensor_data(y));
    interp_plan_free(&p);
    return CRAFT_OK;
}

/* gx = 0, then the scatter */
int cpu_interpolate_grad(const craft_tensor *g, int mode, int align_corners, craft_tensor *gx) {
    interp_plan p;
    CRAFT_TRY(interp_plan_make(gx->shape, g->shape[2], g->shape[3], mode, align_corners, &p));
    if (gx->numel) memset(craft_tensor_data(gx), 0, (size_t)gx->numel * sizeof(float));
    interp_backward_kernel(&p, craft_tensor_data(g), craft_tensor_data(gx));
    interp_plan_free(&p);
    return CRAFT_OK;
}

/* ------------------------------------------------------------- avg_pool2d --- */
/* count_include_pad=True, ceil_mode=False: every window lies inside the padded input, so the
 * divisor is always kernel * kernel. */
typedef struct {
    int64_t planes, H, W, OH, OW, k, s, pad;
} pool_plan;

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
#pragma omp parallel for schedule(static) if (p->planes > 1 &&                                               \
                                              p->planes * p->OH * p->OW * p->k * p->k >= CRAFT_PAR_MIN)
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

int cpu_avg_pool(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor *y) {
    pool_plan p;
    pool_plan_make(x->shape, kernel, stride, padding, &p);
    pool_forward_kernel(&p, craft_tensor_data(x), craft_tensor_data(y));
    return CRAFT_OK;
}

/* gx = 0, then the scatter */
int cpu_avg_pool_grad(const craft_tensor *g, int kernel, int stride, int padding, craft_tensor *gx) {
    pool_plan p;
    pool_plan_make(gx->shape, kernel, stride, padding, &p);
    if (gx->numel) memset(craft_tensor_data(gx), 0, (size_t)gx->numel * sizeof(float));
    pool_backward_kernel(&p, craft_tensor_data(g), craft_tensor_data(gx));
    return CRAFT_OK;
}
