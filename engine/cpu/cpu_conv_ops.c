/* cpu_conv_ops.c: the CPU's convolution kernels (the table's conv and conv_bf16) and channel
 * sums, on cpu_conv.c's oneDNN primitives: the geometry of each call, Winograd in bands of rows
 * for large images, the choice between bf16 and fp32 Winograd, and the bias helpers. */
#include "cpu/cpu_conv_prim.h"
#include <stdlib.h>

/* ---- per-channel helpers (transposed conv's bias, and bias gradients) ---- */
/* out[c] = sum over n and s of g[n, c, s] (accumulated in double). */
static void channel_sums(const float *g, int64_t n, int64_t c, int64_t s, float *out) {
#pragma omp parallel for if (n * c * s >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t ci = 0; ci < c; ci++) {
        double tot = 0;
        for (int64_t ni = 0; ni < n; ni++) {
            const float *p = g + (ni * c + ci) * s;
            float lane[16] = {0};
            int64_t i = 0;
            for (; i + 16 <= s; i += 16)
                for (int j = 0; j < 16; j++) lane[j] += p[i + j];
            double part = 0;
            for (int j = 0; j < 16; j++) part += lane[j];
            for (; i < s; i++) part += p[i];
            tot += part;
        }
        out[ci] = (float)tot;
    }
}

static void add_channel_bias(float *y, const float *b, int64_t n, int64_t c, int64_t s) {
#pragma omp parallel for if (n * c * s >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < n * c; r++) {
        float bv = b[r % c];
        float *p = y + r * s;
#pragma omp simd
        for (int64_t i = 0; i < s; i++) p[i] += bv;
    }
}

/* ---- the kernels ---- */
int cpu_channel_sums(const craft_tensor *g, int64_t n, int64_t c, int64_t s, craft_tensor *out) {
    channel_sums(craft_tensor_data(g), n, c, s, craft_tensor_data(out));
    return CRAFT_OK;
}

static float *fdata(const craft_tensor *t) { return t ? (float *)craft_tensor_data(t) : NULL; }

/* The oneDNN geometry of a convolution (dims as craft_conv_dims_of makes them; fwd_bias: the
 * forward primitive has a bias, so the backward-weights one computes its gradient too). */
static conv_geom geom_of(const craft_conv_dims *cd, int fwd_bias) {
    conv_geom g = {0};
    g.n = cd->n;
    g.ic = cd->ic;
    g.ih = cd->ih;
    g.iw = cd->iw;
    g.oc = cd->oc;
    g.kh = cd->kh;
    g.kw = cd->kw;
    g.groups = cd->groups;
    g.oh = cd->oh;
    g.ow = cd->ow;
    g.sh = cd->sh;
    g.sw = cd->sw;
    g.dh = cd->dh - 1;
    g.dw = cd->dw - 1;
    g.plh = cd->ph;
    g.plw = cd->pw;
    g.prh = (g.oh - 1) * g.sh + (g.dh + 1) * (g.kh - 1) + 1 - g.ih - g.plh;
    g.prw = (g.ow - 1) * g.sw + (g.dw + 1) * (g.kw - 1) + 1 - g.iw - g.plw;
    g.bias = fwd_bias != 0;
    g.wino = conv_want_winograd(&g);
    return g;
}

/* Winograd in bands of output rows, for a large image whose whole-image Winograd scratchpad
 * exceeds the cap (the SD VAE decoder's 128-512 channels at 128-512 px): each band is a conv of
 * its own (input rows with their halo, zero padding only at the image's top and bottom) on
 * strided views of src and dst, so memory stays bounded and the direct kernel, 1.2x (128
 * channels) to 2.7x (512) slower there, is avoided. The band height aims at half the cap for
 * what oneDNN's scratchpad holds: the transformed weights and the transformed input and output
 * tiles (6x6 per 4x4 output block). */
static _Atomic int64_t band_count;
int64_t cpu_conv_band_count(void) { return band_count; }

/* Band b of height hb starting at output row o0 of g; the first input row it reads in *i0. */
static conv_geom band_of(const conv_geom *g, int64_t o0, int64_t hb, int64_t *i0) {
    conv_geom b = *g;
    int64_t o1 = o0 + hb < g->oh ? o0 + hb : g->oh;
    *i0 = o0 - g->plh < 0 ? 0 : o0 - g->plh;
    int64_t i1 = o1 - 1 - g->plh + g->kh; /* one past the last input row it reads */
    if (i1 > g->ih) i1 = g->ih;
    b.oh = o1 - o0;
    b.ih = i1 - *i0;
    b.plh = *i0 - (o0 - g->plh);
    b.prh = (b.oh - 1) + g->kh - b.ih - b.plh;
    b.sih = g->ih;
    b.soh = g->oh;
    return b;
}

/* The band height for g's forward, or 0 when g runs whole (Winograd fits the cap, or Winograd
 * is not wanted, or bands would be too thin or would not run Winograd either). */
static int64_t band_rows(const conv_geom *g, const conv_what *wh) {
    if (!g->wino || g->sh != 1 || g->dh != 0 || g->sih || g->soh || g->bf16) return 0;
    double per4 = (double)g->n * (double)((g->ow + 3) / 4) * 36.0 * (double)(g->ic + g->oc) * sizeof(float);
    double wts = 36.0 * (double)g->ic * (double)g->oc * sizeof(float);
    int64_t hb = 4 * (int64_t)(((double)conv_winograd_cap() / 2 - wts) / per4), i0;
    if (hb < 8 || hb >= g->oh || conv_runs_winograd(g, wh)) return 0;
    conv_geom first = band_of(g, 0, hb, &i0);
    return conv_runs_winograd(&first, wh) ? hb : 0;
}

static int conv_fwd_banded(const conv_geom *g, int64_t hb, float *src, float *wei, float *dst, float *bias,
                           const conv_what *wh) {
    for (int64_t o0 = 0, i0; o0 < g->oh; o0 += hb) {
        conv_geom b = band_of(g, o0, hb, &i0);
        CRAFT_TRY(conv_exec(&b, DIR_FWD, src + i0 * g->iw, wei, dst + o0 * g->ow, bias, NULL, wh));
        band_count++;
    }
    return CRAFT_OK;
}

int cpu_conv_fwd_whole_winograd(const craft_conv_dims *cd, int fwd_bias, const craft_tensor *src,
                                const craft_tensor *wei) {
    conv_geom g = geom_of(cd, fwd_bias);
    conv_what wh = {"conv forward", src->shape, wei->shape};
    return g.wino && conv_runs_winograd(&g, &wh);
}

int cpu_conv_fwd_in_bands(const craft_conv_dims *cd, int fwd_bias, int64_t hb, craft_tensor *src, craft_tensor *wei,
                          craft_tensor *dst, craft_tensor *bias) {
    conv_geom g = geom_of(cd, fwd_bias);
    conv_what wh = {"conv forward (bands)", src->shape, wei->shape};
    if (hb < 1 || g.sh != 1 || g.dh != 0)
        return craft_fail(CRAFT_EINVAL, "conv forward in bands: %lld rows, stride %lld, dilation %lld (needs >= 1, 1, 1)",
                          (long long)hb, (long long)g.sh, (long long)(g.dh + 1));
    return conv_fwd_banded(&g, hb, fdata(src), fdata(wei), fdata(dst), g.bias ? fdata(bias) : NULL, &wh);
}

/* Backward-weights into wei and, when bias is given, the bias gradient: from the primitive when
 * the forward had a bias, else from channel sums of dst. */
static int bwd_weights(const conv_geom *g, craft_tensor *src, craft_tensor *wei, craft_tensor *dst, craft_tensor *bias,
                       const conv_what *wh, conv_keep *keep) {
    CRAFT_TRY(conv_exec_keep(g, DIR_BWD_WEIGHTS, fdata(src), fdata(wei), fdata(dst),
                             bias && g->bias ? fdata(bias) : NULL, NULL, wh, keep));
    return bias && !g->bias ? cpu_channel_sums(dst, g->n, g->oc, g->oh * g->ow, bias) : CRAFT_OK;
}

int cpu_conv(int dir, const craft_conv_dims *cd, int fwd_bias, craft_tensor *src, craft_tensor *wei,
             craft_tensor *dst, craft_tensor *bias) {
    conv_geom g = geom_of(cd, fwd_bias);
    const char *op = dir == CRAFT_CONV_FWD ? "conv forward"
        : dir == CRAFT_CONV_BWD_DATA       ? "conv backward-data"
                                           : "conv backward-weights";
    conv_what wh = {op, src->shape, wei ? wei->shape : dst->shape};
    /* right padding: the transposed conv's output_padding can make it -stride or less, which oneDNN refuses */
    if (g.prh + g.sh <= 0 || g.prw + g.sw <= 0)
        return craft_fail(
            CRAFT_EUNSUPPORTED,
            "conv_transpose2d: input %s, weight %s: output_padding %lld,%lld exceeds padding %lld,%lld + "
            "stride %lld,%lld - 1 (the CPU's oneDNN convolutions)",
            craft_shape_str(dst), craft_shape_str(wei), (long long)cd->oph, (long long)cd->opw,
            (long long)cd->ph, (long long)cd->pw, (long long)cd->sh, (long long)cd->sw);
    int64_t hb = dir == CRAFT_CONV_FWD ? band_rows(&g, &wh) : 0;
    if (hb) return conv_fwd_banded(&g, hb, fdata(src), fdata(wei), fdata(dst), g.bias ? fdata(bias) : NULL, &wh);
    if (dir == CRAFT_CONV_FWD)
        return conv_exec(&g, DIR_FWD, fdata(src), fdata(wei), fdata(dst), g.bias ? fdata(bias) : NULL, NULL,
                         &wh);
    if (dir == CRAFT_CONV_BWD_DATA) {
        CRAFT_TRY(conv_exec(&g, DIR_BWD_DATA, fdata(src), fdata(wei), fdata(dst), NULL, NULL, &wh));
        if (bias) add_channel_bias(fdata(src), fdata(bias), g.n, g.ic, g.ih * g.iw);
        return CRAFT_OK;
    }
    if (!wei) return bias ? cpu_channel_sums(dst, g.n, g.oc, g.oh * g.ow, bias) : CRAFT_OK;
    return bwd_weights(&g, src, wei, dst, bias, &wh, NULL);
}

/* conv2d's gradients in one call (the table's conv_grad): with both the input and the weight
 * gradient wanted, backward-weights reads the output gradient in the layout backward-data
 * reordered it to (conv_keep) instead of reordering it again; otherwise cpu_conv per direction. */
int cpu_conv_grad(const craft_conv_dims *cd, int fwd_bias, craft_tensor *x, craft_tensor *w, craft_tensor *g,
                  craft_tensor *gx, craft_tensor *gw, craft_tensor *gb) {
    conv_geom geo = geom_of(cd, fwd_bias);
    if (!gx || !gw || geo.n == 0 || geo.prh + geo.sh <= 0 || geo.prw + geo.sw <= 0) {
        if (gx) CRAFT_TRY(cpu_conv(CRAFT_CONV_BWD_DATA, cd, fwd_bias, gx, w, g, NULL));
        return gw || gb ? cpu_conv(CRAFT_CONV_BWD_WEIGHTS, cd, fwd_bias, x, gw, g, gb) : CRAFT_OK;
    }
    conv_what whd = {"conv backward-data", gx->shape, w->shape}, whw = {"conv backward-weights", x->shape, w->shape};
    conv_keep keep = {.t = T_DST};
    int rc = conv_exec_keep(&geo, DIR_BWD_DATA, fdata(gx), fdata(w), fdata(g), NULL, NULL, &whd, &keep);
    if (!rc) rc = bwd_weights(&geo, x, gw, g, gb, &whw, &keep);
    if (keep.buf) craft_free(keep.buf, keep.size);
    return rc;
}

/* The forward convolution with bf16 src and weights (cached), fp32 accumulation and output, or
 * (mixed precision) the backward-data direction with bf16 weights and output gradient, fp32
 * accumulation and input gradient (bias NULL).
 * Geometries that run fp32 Winograd stay there, which is both faster here (320 channels at
 * 64x64: 10 ms against 16 ms for bf16 direct) and closer to exact, and so do forwards that run it
 * in bands (512 channels at 128x128: 1.5x faster than bf16 direct; the whole SD VAE decode took
 * 6.0 s this way against 6.3 s with its 128-channel convs in bf16 direct; fp32 backward-data has no
 * bands, so there bf16 direct runs); geometries for which oneDNN has only a reference bf16 kernel
 * stay fp32 too. Neither counts as a bf16 call. */
int cpu_conv_bf16(int dir, const craft_conv_dims *cd, int fwd_bias, craft_tensor *src, craft_tensor *wei,
                  craft_tensor *dst, craft_tensor *bias) {
    if (dir != CRAFT_CONV_FWD && dir != CRAFT_CONV_BWD_DATA)
        return craft_fail(CRAFT_EINVAL, "conv (bf16): direction %d (expected forward or backward-data)", dir);
    int fwd = dir == CRAFT_CONV_FWD;
    conv_geom g = geom_of(cd, fwd_bias);
    conv_what wh = {fwd ? "conv forward (bf16)" : "conv backward-data (bf16)", src->shape, wei->shape};
    if (g.n == 0 || g.prh + g.sh <= 0 || g.prw + g.sw <= 0 || (!fwd && bias) ||
        (g.wino && (conv_runs_winograd(&g, &wh) || (fwd && band_rows(&g, &wh)))))
        return cpu_conv(dir, cd, fwd_bias, src, wei, dst, bias);
    g.bf16 = 1;
    g.wino = 0; /* the key of the bf16 entry: direct whatever the rule said */
    int rc = conv_exec(&g, fwd ? DIR_FWD : DIR_BWD_DATA, fdata(src), fdata(wei), fdata(dst),
                       fwd && g.bias ? fdata(bias) : NULL, wei, &wh);
    if (rc == CRAFT_EUNSUPPORTED) return cpu_conv(dir, cd, fwd_bias, src, wei, dst, bias);
    if (!rc) craft_bf16_count();
    return rc;
}
