/* imgproc.c: the small image transforms of the data pipeline, on dense float CHW planes:
 * resizing (exact area average, PyTorch-compatible bilinear), centre crop, flips, and the
 * u8 HWC <-> f32 CHW conversions with torchvision's arithmetic (so that preprocessing matches
 * the Python pipelines the clinical baselines were trained with). */
#include "core/internal.h"
#include <math.h>
#include <stdlib.h>

static int check_dims(const char *op, const void *src, const void *dst, int c, int h, int w) {
    if (!src || !dst) return craft_fail(CRAFT_EINVAL, "%s: NULL buffer", op);
    if (c <= 0 || h <= 0 || w <= 0)
        return craft_fail(CRAFT_EINVAL, "%s: bad size c=%d h=%d w=%d (all must be positive)", op, c, h, w);
    if ((int64_t)c * h * w > ((int64_t)1 << 40))
        return craft_fail(CRAFT_EINVAL, "%s: %d x %d x %d is too large", op, c, h, w);
    return CRAFT_OK;
}

/* Area weights along one axis: output o covers source [o*n/m, (o+1)*n/m). Working in units of
 * 1/m source pixel makes every overlap an exact integer. */
typedef struct span {
    int first, count;
    double *wt;
} span;

static int area_spans(int n, int m, span **out, double **wbuf) {
    span *sp = calloc((size_t)m, sizeof *sp);
    double *wb = malloc(((size_t)n + (size_t)m) * sizeof *wb); /* total span length <= n + m */
    if (!sp || !wb) {
        free(sp);
        free(wb);
        return 0;
    }
    size_t used = 0;
    for (int o = 0; o < m; o++) {
        int64_t lo = (int64_t)o * n, hi = (int64_t)(o + 1) * n; /* in 1/m units */
        int first = (int)(lo / m), last = (int)((hi - 1) / m);
        sp[o].first = first;
        sp[o].count = last - first + 1;
        sp[o].wt = wb + used;
        for (int i = first; i <= last; i++) {
            int64_t a = (int64_t)i * m > lo ? (int64_t)i * m : lo;
            int64_t b = (int64_t)(i + 1) * m < hi ? (int64_t)(i + 1) * m : hi;
            wb[used++] = (double)(b - a) / (double)n;
        }
    }
    *out = sp;
    *wbuf = wb;
    return 1;
}

int craft_resize_area(const float *src, int c, int h, int w, float *dst, int oh, int ow) {
    CRAFT_TRY(check_dims("resize_area", src, dst, c, h, w));
    CRAFT_TRY(check_dims("resize_area (output)", src, dst, c, oh, ow));
    span *sx = NULL, *sy = NULL;
    double *wx = NULL, *wy = NULL;
    size_t tmp_bytes = (size_t)h * (size_t)ow * sizeof(float);
    float *tmp = NULL;
    int rc = CRAFT_OK;
    if (!area_spans(w, ow, &sx, &wx) || !area_spans(h, oh, &sy, &wy)) {
        rc = craft_fail(CRAFT_ENOMEM, "resize_area: no memory for weights");
        goto done;
    }
    if (!(tmp = craft_alloc(tmp_bytes))) {
        rc = craft_fail_prefix(CRAFT_ENOMEM, "resize_area");
        goto done;
    }
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (size_t)ch * h * w;
        float *d = dst + (size_t)ch * oh * ow;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < ow; x++) {
                const float *row = s + (size_t)y * w + sx[x].first;
                double acc = 0;
                for (int k = 0; k < sx[x].count; k++) acc += sx[x].wt[k] * row[k];
                tmp[(size_t)y * ow + x] = (float)acc;
            }
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double acc = 0;
                for (int k = 0; k < sy[y].count; k++)
                    acc += sy[y].wt[k] * tmp[(size_t)(sy[y].first + k) * ow + x];
                d[(size_t)y * ow + x] = (float)acc;
            }
    }
done:
    if (tmp) craft_free(tmp, tmp_bytes);
    free(sx);
    free(sy);
    free(wx);
    free(wy);
    return rc;
}

/* PyTorch's upsample_bilinear2d (align_corners=False) index arithmetic, in float as its CPU
 * kernel does for float input. */
typedef struct lin {
    int i0, i1;
    float l0, l1;
} lin;

static void linear_coeffs(int n, int m, lin *t) {
    float scale = (float)n / (float)m;
    for (int o = 0; o < m; o++) {
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int i0 = (int)src;
        if (i0 > n - 1) i0 = n - 1;
        float l1 = src - (float)i0;
        if (l1 > 1) l1 = 1;
        t[o].i0 = i0;
        t[o].i1 = i0 < n - 1 ? i0 + 1 : i0;
        t[o].l1 = l1;
        t[o].l0 = 1.0f - l1;
    }
}

int craft_resize_bilinear(const float *src, int c, int h, int w, float *dst, int oh, int ow) {
    CRAFT_TRY(check_dims("resize_bilinear", src, dst, c, h, w));
    CRAFT_TRY(check_dims("resize_bilinear (output)", src, dst, c, oh, ow));
    lin *tx = malloc((size_t)ow * sizeof *tx), *ty = malloc((size_t)oh * sizeof *ty);
    if (!tx || !ty) {
        free(tx);
        free(ty);
        return craft_fail(CRAFT_ENOMEM, "resize_bilinear: no memory");
    }
    linear_coeffs(w, ow, tx);
    linear_coeffs(h, oh, ty);
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (size_t)ch * h * w;
        float *d = dst + (size_t)ch * oh * ow;
        for (int y = 0; y < oh; y++) {
            const float *r0 = s + (size_t)ty[y].i0 * w, *r1 = s + (size_t)ty[y].i1 * w;
            for (int x = 0; x < ow; x++) {
                const lin *q = &tx[x];
                d[(size_t)y * ow + x] = ty[y].l0 * (q->l0 * r0[q->i0] + q->l1 * r0[q->i1]) +
                    ty[y].l1 * (q->l0 * r1[q->i0] + q->l1 * r1[q->i1]);
            }
        }
    }
    free(tx);
    free(ty);
    return CRAFT_OK;
}

/* Python's round() of d / 2 (ties to even), as torchvision's center_crop computes offsets. */
static int half_round_even(int d) {
    int k = d / 2;
    if (d % 2 == 0) return k;
    return k % 2 == 0 ? k : k + 1;
}

int craft_center_crop(const float *src, int c, int h, int w, float *dst, int oh, int ow) {
    CRAFT_TRY(check_dims("center_crop", src, dst, c, h, w));
    CRAFT_TRY(check_dims("center_crop (output)", src, dst, c, oh, ow));
    if (oh > h || ow > w)
        return craft_fail(CRAFT_ESHAPE, "center_crop: crop %dx%d is larger than the image %dx%d", oh, ow, h,
                          w);
    int top = half_round_even(h - oh), left = half_round_even(w - ow);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++)
            memcpy(dst + ((size_t)ch * oh + y) * ow, src + ((size_t)ch * h + top + y) * w + left,
                   (size_t)ow * sizeof(float));
    return CRAFT_OK;
}

int craft_flip_horizontal(const float *src, int c, int h, int w, float *dst) {
    CRAFT_TRY(check_dims("flip_horizontal", src, dst, c, h, w));
    for (size_t r = 0; r < (size_t)c * h; r++) {
        const float *s = src + r * w;
        float *d = dst + r * w;
        for (int a = 0, b = w - 1; a <= b; a++, b--) { /* swap pairs: safe in place */
            float x = s[a], y = s[b];
            d[a] = y;
            d[b] = x;
        }
    }
    return CRAFT_OK;
}

int craft_flip_vertical(const float *src, int c, int h, int w, float *dst) {
    CRAFT_TRY(check_dims("flip_vertical", src, dst, c, h, w));
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (size_t)ch * h * w;
        float *d = dst + (size_t)ch * h * w;
        for (int a = 0, b = h - 1; a <= b; a++, b--)
            for (int x = 0; x < w; x++) {
                float p = s[(size_t)a * w + x], q = s[(size_t)b * w + x];
                d[(size_t)a * w + x] = q;
                d[(size_t)b * w + x] = p;
            }
    }
    return CRAFT_OK;
}

int craft_u8_hwc_to_f32_chw(const uint8_t *src, int h, int w, int c, const float *mean, const float *std,
                            float *dst) {
    CRAFT_TRY(check_dims("u8_hwc_to_f32_chw", src, dst, c, h, w));
    for (int ch = 0; ch < c; ch++) {
        float m = mean ? mean[ch] : 0.0f, s = std ? std[ch] : 1.0f;
        if (!(s != 0.0f) || !isfinite(s) || !isfinite(m))
            return craft_fail(
                CRAFT_EINVAL,
                "u8_hwc_to_f32_chw: channel %d has mean %g, std %g (std must be finite and non-zero)", ch,
                (double)m, (double)s);
    }
    size_t hw = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        float m = mean ? mean[ch] : 0.0f, s = std ? std[ch] : 1.0f;
        float *d = dst + (size_t)ch * hw;
        for (size_t i = 0; i < hw; i++) {
            float v = (float)src[i * c + ch] / 255.0f;
            d[i] = (v - m) / s;
        }
    }
    return CRAFT_OK;
}

int craft_f32_chw_to_u8_hwc(const float *src, int c, int h, int w, float lo, float hi, uint8_t *dst) {
    CRAFT_TRY(check_dims("f32_chw_to_u8_hwc", src, dst, c, h, w));
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi))
        return craft_fail(CRAFT_EINVAL, "f32_chw_to_u8_hwc: range [%g, %g] is empty or not finite",
                          (double)lo, (double)hi);
    size_t hw = (size_t)h * w;
    int unit = lo == 0.0f && hi == 1.0f; /* skip the rescale so [0, 1] matches save_image bit for bit */
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (size_t)ch * hw;
        for (size_t i = 0; i < hw; i++) {
            float v = unit ? s[i] : (s[i] - lo) / (hi - lo);
            float q = v * 255.0f + 0.5f;
            uint8_t o;
            if (!(q >= 0.0f)) o = 0; /* also NaN */
            else if (q >= 255.0f) o = 255;
            else o = (uint8_t)q;
            dst[i * c + ch] = o;
        }
    }
    return CRAFT_OK;
}
