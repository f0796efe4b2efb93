/* cl_conv.c: the convolution kernel on cl devices: the three directions of one convolution
 * (src -> dst, in conv terms; core/op_conv.c runs conv2d and conv_transpose2d on them):
 *   fwd          dst = W * src (+ bias)      implicit GEMM (conv_igemm_fwd), or im2col + batched
 *                                            CLBlast GEMM, or conv_direct
 *   bwd_data     src = W^T * dst (+ bias)    implicit GEMM (conv_igemm_bwd), or batched GEMM into
 *                                            a column matrix + col2im
 *   bwd_weights  gW = dst (x) src            im2col + one GEMM over every pixel of the batch
 * Bias gradients are channel sums (craft_cl_reduce, double accumulation where the device has
 * fp64).
 * Column matrices can be large (c kh kw x oh ow floats per image): images are processed in
 * chunks whose matrix stays under col_budget(). kernels_cl/conv.cl has the kernels. */
#include "cl/cl_internal.h"
#include <stdlib.h>

#define CONV_OB 16 /* output channels per work-item of conv_direct (kernels_cl/conv.cl) */

/* mirrors conv_geo in kernels_cl/conv.cl */
typedef struct {
    cl_long n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, sn, sr, xoff, coff;
} cl_conv_geo;

static cl_conv_geo geo_of(const craft_conv_dims *g, int64_t nb, int64_t xoff) {
    cl_conv_geo k = {nb,    g->ic, g->ih, g->iw, g->kh, g->kw, g->oh, g->ow, g->sh,
                     g->sw, g->ph, g->pw, g->dh, g->dw, 0,     0,     xoff,  0};
    return k;
}

/* Algorithms. On GPUs, implicit GEMM (conv_igemm_*: tiled in local memory, no column matrix,
 * bias in the epilogue) for the forward and the backward-data. On CPU devices (PoCL, llvmpipe),
 * where local memory and barriers are emulated, it measured 1.5-3x slower than the others
 * (docs/opencl.md), so there the forward keeps the measured rule: the direct kernel while each
 * output sums few products (in/groups x kh x kw <= 320), im2col + CLBlast beyond; the
 * backward-data GEMM + col2im. CRAFT_CL_CONV ("igemm", "im2col", "direct") or
 * craft_cl_conv_set_algo forces one (direct: the forward only). */
enum { ALGO_IM2COL = 0, ALGO_DIRECT = 1, ALGO_IGEMM = 2 };
#define IG_R 4 /* mirrors kernels_cl/conv.cl: a work-group of L x L computes 4L x 4L outputs */
static int conv_algo = -1;
void craft_cl_conv_set_algo(int algo) { conv_algo = algo; }
/* The algorithm for kernel kid (forward or backward-data) of g, and for implicit GEMM the side
 * L of its work-group: 16, else 8 or 4 where the kernel's work-group limit is lower (rusticl's
 * llvmpipe allows 32); below 16 work-items, im2col. */
static int algo_of(craft_cl_dev *d, int kid, const craft_conv_dims *g, int *L) {
    int a = conv_algo;
    if (a < 0) {
        const char *e = getenv("CRAFT_CL_CONV");
        if (e && !strcmp(e, "direct")) a = ALGO_DIRECT;
        else if (e && !strcmp(e, "im2col")) a = ALGO_IM2COL;
        else if ((e && !strcmp(e, "igemm")) || d->info.is_gpu) a = ALGO_IGEMM;
        else
            a = kid == K_conv_igemm_fwd && g->ic / g->groups * g->kh * g->kw <= 320 ? ALGO_DIRECT
                                                                                    : ALGO_IM2COL;
    }
    if (a == ALGO_IGEMM) {
        size_t wg = cl_pow2_local(d, kid, 256);
        *L = wg >= 256 ? 16 : wg >= 64 ? 8 : 4;
        if (wg < 16) a = ALGO_IM2COL;
    }
    return a;
}

/* One implicit-GEMM launch: dir 0 dst = W * src (+ bias), 1 src = W^T * dst (+ bias) */
static int igemm(craft_cl_dev *d, const craft_conv_dims *g, int dir, int L, const craft_tensor *in,
                 const craft_tensor *w, const craft_tensor *b, craft_tensor *out) {
    int64_t G = g->groups, M = dir ? g->ic / G : g->oc / G, T = IG_R * L;
    int64_t N = g->n * (dir ? g->ih * g->iw : g->oh * g->ow);
    int64_t groups = G * ((M + T - 1) / T) * ((N + T - 1) / T);
    cl_conv_geo k = geo_of(g, g->n, dir ? out->offset : in->offset);
    cl_long oc = g->oc, ng = G, woff = w->offset, boff = b ? b->offset : 0, ioff = in->offset,
            ooff = out->offset;
    cl_int hb = b != NULL;
    cl_mem im = cl_mem_of(in), wm = cl_mem_of(w), bm = b ? cl_mem_of(b) : wm, om = cl_mem_of(out);
    size_t local = (size_t)(L * L);
    if (!dir) {
        cl_arg args[10] = {CLA(oc), CLA(ng),   CLA(im), CLA(wm), CLA(woff),
                           CLA(bm), CLA(boff), CLA(hb), CLA(om), CLA(ooff)};
        return cl_launch_geo(d, K_conv_igemm_fwd, &k, sizeof k, 10, args, (size_t)groups * local, local);
    }
    cl_arg args[10] = {CLA(oc), CLA(ng), CLA(im), CLA(ioff), CLA(wm), CLA(woff), CLA(bm), CLA(boff), CLA(hb),
                       CLA(om)};
    return cl_launch_geo(d, K_conv_igemm_bwd, &k, sizeof k, 10, args, (size_t)groups * local, local);
}

/* conv_f16's forward (cl_f16.c): implicit GEMM over f16 copies of x and w, whatever the device
 * type (the kernel designed for GPUs; the rule above is about fp32 speed on CPU devices). */
int cl_conv_igemm_f16(const craft_conv_dims *g, const craft_tensor *xh, const craft_tensor *wh,
                      const craft_tensor *b, craft_tensor *dst, int *served) {
    craft_cl_dev *d;
    *served = 0;
    CRAFT_TRY(cl_dev_get(dst->device, "conv2d (f16)", &d));
    size_t wg = cl_pow2_local(d, K_conv_igemm_fwd_h, 256);
    if (wg < 16) return CRAFT_OK;
    *served = 1;
    int L = wg >= 256 ? 16 : wg >= 64 ? 8 : 4;
    int64_t G = g->groups, M = g->oc / G, T = IG_R * L, N = g->n * g->oh * g->ow;
    int64_t groups = G * ((M + T - 1) / T) * ((N + T - 1) / T);
    cl_conv_geo k = geo_of(g, g->n, xh->offset);
    cl_long oc = g->oc, ng = G, woff = wh->offset, boff = b ? b->offset : 0, ooff = dst->offset;
    cl_int hb = b != NULL;
    cl_mem xm = cl_mem_of(xh), wm = cl_mem_of(wh), bm = b ? cl_mem_of(b) : wm, om = cl_mem_of(dst);
    size_t local = (size_t)(L * L);
    cl_arg args[10] = {CLA(oc), CLA(ng),   CLA(xm), CLA(wm), CLA(woff),
                       CLA(bm), CLA(boff), CLA(hb), CLA(om), CLA(ooff)};
    return cl_launch_geo(d, K_conv_igemm_fwd_h, &k, sizeof k, 10, args, (size_t)groups * local, local);
}

/* Bytes of column matrix one call may use: big enough for few, large GEMMs, small next to the
 * device's memory (the pool counts it like any tensor). */
static int64_t budget_override;
void craft_cl_conv_set_col_budget(int64_t bytes) { budget_override = bytes > 0 ? bytes : 0; }
static int64_t col_budget(const craft_cl_dev *d) {
    if (budget_override) return budget_override;
    int64_t b = d->info.max_alloc / 8;
    if (b > ((int64_t)256 << 20)) b = (int64_t)256 << 20;
    if (b < ((int64_t)16 << 20)) b = (int64_t)16 << 20;
    return b;
}

static int64_t chunk_of(const craft_cl_dev *d, const craft_conv_dims *g) {
    int64_t per = g->ic * g->kh * g->kw * g->oh * g->ow * (int64_t)sizeof(float);
    int64_t nb = col_budget(d) / (per ? per : 1);
    if (nb < 1) nb = 1;
    return nb < g->n ? nb : g->n;
}

/* im2col of images [n0, n0 + nb) of src into col; layout 0: [n][rows][pixels], 1: [rows][n][pixels] */
static int im2col(craft_cl_dev *d, const craft_conv_dims *g, const craft_tensor *src, int64_t n0, int64_t nb,
                  craft_tensor *col, int layout) {
    int64_t ohw = g->oh * g->ow, rows = g->ic * g->kh * g->kw;
    cl_conv_geo k = geo_of(g, nb, src->offset + n0 * g->ic * g->ih * g->iw);
    k.sn = layout ? ohw : rows * ohw;
    k.sr = layout ? nb * ohw : ohw;
    cl_mem xm = cl_mem_of(src), cm = cl_mem_of(col);
    cl_arg args[2] = {CLA(xm), CLA(cm)};
    return cl_launch_geo(d, K_im2col, &k, sizeof k, 2, args, cl_global_for(nb * rows * ohw), 0);
}

/* dst = W * src (+ bias): dst [n, oc, oh, ow] fresh and contiguous */
static int conv_fwd(craft_cl_dev *d, const craft_conv_dims *g, const craft_tensor *src, const craft_tensor *w,
                    const craft_tensor *b, craft_tensor *dst) {
    int64_t G = g->groups, og = g->oc / G, cgkk = g->ic / G * g->kh * g->kw, ohw = g->oh * g->ow;
    if (g->n == 0) return CRAFT_OK;
    int L = 0, algo = algo_of(d, K_conv_igemm_fwd, g, &L);
    if (algo == ALGO_IGEMM) return igemm(d, g, 0, L, src, w, b, dst);
    if (algo == ALGO_DIRECT) {
        cl_conv_geo k = geo_of(g, g->n, src->offset);
        cl_long oc = g->oc, groups = G, woff = w->offset, boff = b ? b->offset : 0, yoff = dst->offset;
        cl_int hb = b != NULL;
        cl_mem xm = cl_mem_of(src), wm = cl_mem_of(w), bm = b ? cl_mem_of(b) : wm, ym = cl_mem_of(dst);
        cl_arg args[10] = {CLA(oc), CLA(groups), CLA(xm), CLA(wm), CLA(woff),
                           CLA(bm), CLA(boff),   CLA(hb), CLA(ym), CLA(yoff)};
        return cl_launch_geo(d, K_conv_direct, &k, sizeof k, 10, args,
                             cl_global_for(g->n * G * ((og + CONV_OB - 1) / CONV_OB) * ohw), 0);
    }
    int rc = CRAFT_OK;
    if (b) { /* dst starts as the bias; the GEMMs add to it */
        craft_tensor *bv = craft_alias(b);
        if (!bv) return craft_last_status();
        bv->ndim = 3;
        bv->shape[0] = g->oc;
        bv->shape[1] = 1;
        bv->shape[2] = 1;
        bv->stride[0] = b->stride[0];
        bv->stride[1] = 1;
        bv->stride[2] = 1;
        rc = craft_cl_copy_(dst, bv);
        craft_tensor_release(bv);
        if (rc) return rc;
    }
    int64_t nbmax = chunk_of(d, g), rows = g->ic * g->kh * g->kw, shp = nbmax * rows * ohw;
    craft_tensor *col = cl_new(1, &shp, CRAFT_F32, dst->device);
    int64_t *offs = malloc((size_t)(nbmax * G) * 3 * sizeof *offs);
    if (!col || !offs)
        rc = col ? craft_fail(CRAFT_ENOMEM, "conv2d: out of host memory") : craft_last_status();
    for (int64_t n0 = 0; n0 < g->n && !rc; n0 += nbmax) {
        int64_t nb = g->n - n0 < nbmax ? g->n - n0 : nbmax, batch = nb * G;
        rc = im2col(d, g, src, n0, nb, col, 0);
        for (int64_t i = 0; i < nb; i++)
            for (int64_t gi = 0; gi < G; gi++) {
                int64_t k = i * G + gi;
                offs[k] = w->offset + gi * og * cgkk;
                offs[batch + k] = i * rows * ohw + gi * cgkk * ohw;
                offs[2 * batch + k] = dst->offset + ((n0 + i) * g->oc + gi * og) * ohw;
            }
        if (!rc)
            rc = craft_cl_gemm_batched('N', 'N', og, ohw, cgkk, 1.0f, w, offs, cgkk, col, offs + batch, ohw,
                                       b ? 1.0f : 0.0f, dst, offs + 2 * batch, ohw, batch);
    }
    free(offs);
    craft_tensor_release(col);
    return rc;
}

/* src = W^T * dst (+ bias): src [n, ic, ih, iw] fresh and contiguous */
static int conv_bwd_data(craft_cl_dev *d, const craft_conv_dims *g, const craft_tensor *dst,
                         const craft_tensor *w, const craft_tensor *b, craft_tensor *src) {
    int64_t G = g->groups, og = g->oc / G, cgkk = g->ic / G * g->kh * g->kw, ohw = g->oh * g->ow,
            rows = g->ic * g->kh * g->kw;
    if (g->n == 0) return CRAFT_OK;
    int L = 0;
    if (algo_of(d, K_conv_igemm_bwd, g, &L) == ALGO_IGEMM) return igemm(d, g, 1, L, dst, w, b, src);
    int64_t nbmax = chunk_of(d, g), shp = nbmax * rows * ohw;
    int rc = CRAFT_OK;
    craft_tensor *col = cl_new(1, &shp, CRAFT_F32, src->device);
    int64_t *offs = malloc((size_t)(nbmax * G) * 3 * sizeof *offs);
    if (!col || !offs)
        rc = col ? craft_fail(CRAFT_ENOMEM, "conv backward: out of host memory") : craft_last_status();
    for (int64_t n0 = 0; n0 < g->n && !rc; n0 += nbmax) {
        int64_t nb = g->n - n0 < nbmax ? g->n - n0 : nbmax, batch = nb * G;
        for (int64_t i = 0; i < nb; i++)
            for (int64_t gi = 0; gi < G; gi++) {
                int64_t k = i * G + gi;
                offs[k] = w->offset + gi * og * cgkk;
                offs[batch + k] = dst->offset + ((n0 + i) * g->oc + gi * og) * ohw;
                offs[2 * batch + k] = i * rows * ohw + gi * cgkk * ohw;
            }
        rc = craft_cl_gemm_batched('T', 'N', cgkk, ohw, og, 1.0f, w, offs, cgkk, dst, offs + batch, ohw, 0.0f,
                                   col, offs + 2 * batch, ohw, batch);
        if (!rc) {
            cl_conv_geo k = geo_of(g, nb, src->offset + n0 * g->ic * g->ih * g->iw);
            k.sn = rows * ohw;
            k.sr = ohw;
            cl_mem cm = cl_mem_of(col), xm = cl_mem_of(src), bm = b ? cl_mem_of(b) : cm;
            cl_long boff = b ? b->offset : 0;
            cl_int hb = b != NULL;
            cl_arg args[5] = {CLA(cm), CLA(xm), CLA(bm), CLA(boff), CLA(hb)};
            rc = cl_launch_geo(d, K_col2im, &k, sizeof k, 5, args, cl_global_for(nb * g->ic * g->ih * g->iw),
                               0);
        }
    }
    free(offs);
    craft_tensor_release(col);
    return rc;
}

/* gw [oc, ic / groups, kh, kw] = sum over images and pixels of dst (x) src, per group: gy moved
 * to [oc][n][pixels] and src to [rows][n][pixels] make it one GEMM per group with every pixel
 * of the chunk in its inner dimension. */
static int conv_bwd_weights(craft_cl_dev *d, const craft_conv_dims *g, const craft_tensor *src,
                            const craft_tensor *dst, craft_tensor *gw) {
    int64_t G = g->groups, og = g->oc / G, cgkk = g->ic / G * g->kh * g->kw, ohw = g->oh * g->ow,
            rows = g->ic * g->kh * g->kw;
    if (g->n == 0) return craft_cl_fill_(gw, 0.0);
    int64_t nbmax = chunk_of(d, g), shp = nbmax * rows * ohw, pshp = nbmax * g->oc * ohw;
    int rc = CRAFT_OK;
    craft_tensor *col = cl_new(1, &shp, CRAFT_F32, gw->device), *gp = cl_new(1, &pshp, CRAFT_F32, gw->device);
    int64_t *offs = malloc((size_t)G * 3 * sizeof *offs);
    if (!col || !gp || !offs)
        rc = col && gp ? craft_fail(CRAFT_ENOMEM, "conv backward: out of host memory") : craft_last_status();
    for (int64_t n0 = 0; n0 < g->n && !rc; n0 += nbmax) {
        int64_t nb = g->n - n0 < nbmax ? g->n - n0 : nbmax;
        rc = im2col(d, g, src, n0, nb, col, 1);
        craft_tensor *pv = NULL,
                     *dv = NULL; /* gp as [oc, nb, pixels] <- dst chunk read as [oc, nb, pixels] */
        if (!rc && (!(pv = craft_alias(gp)) || !(dv = craft_alias(dst)))) rc = craft_last_status();
        if (!rc) {
            int64_t shape[3] = {g->oc, nb, ohw}, pst[3] = {nb * ohw, ohw, 1},
                    dst_st[3] = {ohw, g->oc * ohw, 1};
            pv->ndim = dv->ndim = 3;
            for (int i = 0; i < 3; i++) {
                pv->shape[i] = dv->shape[i] = shape[i];
                pv->stride[i] = pst[i];
                dv->stride[i] = dst_st[i];
            }
            pv->numel = dv->numel = g->oc * nb * ohw;
            dv->offset = dst->offset + n0 * g->oc * ohw;
            rc = craft_cl_copy_(pv, dv);
        }
        craft_tensor_release(pv);
        craft_tensor_release(dv);
        for (int64_t gi = 0; gi < G; gi++) {
            offs[gi] = gi * og * nb * ohw;
            offs[G + gi] = gi * cgkk * nb * ohw;
            offs[2 * G + gi] = gw->offset + gi * og * cgkk;
        }
        if (!rc)
            rc = craft_cl_gemm_batched('N', 'T', og, cgkk, nb * ohw, 1.0f, gp, offs, nb * ohw, col, offs + G,
                                       nb * ohw, n0 ? 1.0f : 0.0f, gw, offs + 2 * G, cgkk, G);
    }
    free(offs);
    craft_tensor_release(col);
    craft_tensor_release(gp);
    return rc;
}

/* out [c] = sums of g [n, c, s] (contiguous) over n and s */
int craft_cl_channel_sums(const craft_tensor *g, int64_t n, int64_t c, int64_t sp, craft_tensor *out) {
    craft_tensor *v = craft_alias(g), *s = NULL;
    if (!v) return craft_last_status();
    int64_t shape[3] = {n, c, sp};
    v->ndim = 3;
    for (int i = 0; i < 3; i++) v->shape[i] = shape[i];
    v->stride[2] = 1;
    v->stride[1] = sp;
    v->stride[0] = c * sp;
    v->numel = n * c * sp;
    int dims[2] = {0, 2}, rc = craft_cl_reduce(0, v, 2, dims, 0, 0, &s);
    if (!rc) rc = craft_cl_copy_(out, s);
    craft_tensor_release(v);
    craft_tensor_release(s);
    return rc;
}

int craft_cl_conv(int dir, const craft_conv_dims *cd, int fwd_bias, craft_tensor *src, craft_tensor *wei,
                  craft_tensor *dst, craft_tensor *bias) {
    (void)fwd_bias;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get((wei ? wei : dst)->device, "conv", &d));
    if (dir == CRAFT_CONV_FWD) return conv_fwd(d, cd, src, wei, bias, dst);
    if (dir == CRAFT_CONV_BWD_DATA) return conv_bwd_data(d, cd, dst, wei, bias, src);
    if (wei) CRAFT_TRY(conv_bwd_weights(d, cd, src, dst, wei));
    return bias ? craft_cl_channel_sums(dst, cd->n, cd->oc, cd->oh * cd->ow, bias) : CRAFT_OK;
}
