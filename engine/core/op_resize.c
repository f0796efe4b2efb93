/* op_resize.c: NCHW resampling ops for every device: interpolate (nearest, bilinear) and
 * avg_pool2d, forward and backward. Source indices and weights are PyTorch's CPU kernels'
 * (float32 arithmetic; craft_interpolate_axis, which every back end uses), so that outputs
 * agree to rounding. */
#include "core/backend.h"
#include <math.h>

/* torch 'nearest': src = min(floor(dst * (in / out)), in - 1) with the scale in float; the
 * same-size and 2x cases are written out by torch, and agree with the formula. */
static int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    float scale = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void craft_interpolate_axis(int64_t in, int64_t out, int mode, int align_corners, int64_t *i0s, int64_t *i1s,
                            float *l0s, float *l1s) {
    if (mode == 0) {
        for (int64_t o = 0; o < out; o++) i0s[o] = nearest_src(o, in, out);
        return;
    }
    /* torch area_pixel_compute_scale / area_pixel_compute_source_index, float32 */
    float scale =
        align_corners ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        float src;
        if (align_corners) {
            src = scale * (float)o;
        } else {
            src = (float)((double)scale * ((double)o + 0.5) - 0.5); /* torch computes this in double */
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

/* ------------------------------------------------------------- interpolate -- */
/* iarg: mode, align_corners, out_h, out_w */
static int interp_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    const craft_edge *e = &n->edges[0];
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(n->device, CRAFT_K_interpolate_grad, CRAFT_F32, n->name, &k));
    craft_tensor *g = NULL, *gx = NULL;
    int rc = craft_grad_on(gout[0], n->device, &g);
    if (!rc && !(gx = craft_new_tensor(4, e->shape, CRAFT_F32, n->device))) rc = craft_last_status();
    if (!rc) rc = k->interpolate_grad(g, (int)n->iarg[0], (int)n->iarg[1], gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

static int interpolate_check(const craft_tensor *x, int64_t out_h, int64_t out_w, int mode,
                             int *align_corners) {
    if (mode != 0 && mode != 1)
        return craft_fail(CRAFT_EINVAL, "interpolate: unknown mode %d (0 nearest, 1 bilinear)", mode);
    if (x->ndim != 4)
        return craft_fail(CRAFT_ESHAPE, "interpolate: input %s must be 4-d NCHW", craft_shape_str(x));
    if (x->shape[2] < 1 || x->shape[3] < 1)
        return craft_fail(CRAFT_ESHAPE, "interpolate: input %s has an empty spatial dim", craft_shape_str(x));
    if (out_h < 1 || out_w < 1 || out_h > ((int64_t)1 << 31) || out_w > ((int64_t)1 << 31))
        return craft_fail(CRAFT_ESHAPE,
                          "interpolate: output size %lldx%lld for input %s (sizes must be 1 .. 2^31)",
                          (long long)out_h, (long long)out_w, craft_shape_str(x));
    *align_corners = mode == 0 ? 0 : *align_corners ? 1 : 0;
    return CRAFT_OK;
}

int craft_interpolate(const craft_tensor *x, int64_t out_h, int64_t out_w, int mode, int align_corners,
                      craft_tensor **out) {
    if (!x) return craft_fail(CRAFT_EINVAL, "interpolate: input is missing");
    const craft_kernels *k;
    CRAFT_TRY(craft_want("interpolate", "input", x, x->device));
    CRAFT_TRY(interpolate_check(x, out_h, out_w, mode, &align_corners));
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_interpolate, CRAFT_F32, "interpolate", &k));
    int64_t oshape[4] = {x->shape[0], x->shape[1], out_h, out_w};
    craft_tensor *xc = NULL, *y = craft_new_tensor(4, oshape, CRAFT_F32, x->device);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc) rc = k->interpolate(xc, mode, align_corners, y);
    craft_tensor_release(xc);
    int64_t iargs[4] = {mode, align_corners, out_h, out_w};
    if (!rc)
        rc = craft_record(mode ? "interpolate_bilinear" : "interpolate_nearest", 1, &x, y, interp_backward, 0,
                          NULL, NULL, 0, iargs, 4, NULL);
    return craft_finish(rc, y, out);
}

/* ------------------------------------------------------------- avg_pool2d --- */
/* count_include_pad=True, ceil_mode=False. iarg: kernel, stride, padding */
static int pool_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    const craft_edge *e = &n->edges[0];
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(n->device, CRAFT_K_avg_pool_grad, CRAFT_F32, n->name, &k));
    craft_tensor *g = NULL, *gx = NULL;
    int rc = craft_grad_on(gout[0], n->device, &g);
    if (!rc && !(gx = craft_new_tensor(4, e->shape, CRAFT_F32, n->device))) rc = craft_last_status();
    if (!rc) rc = k->avg_pool_grad(g, (int)n->iarg[0], (int)n->iarg[1], (int)n->iarg[2], gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

static int avg_pool2d_check(const craft_tensor *x, int kernel, int *stride, int padding, int64_t *oh,
                            int64_t *ow) {
    if (x->ndim != 4)
        return craft_fail(CRAFT_ESHAPE, "avg_pool2d: input %s must be 4-d NCHW", craft_shape_str(x));
    if (*stride <= 0) *stride = kernel; /* torch: stride=None means the kernel size */
    if (kernel < 1 || padding < 0)
        return craft_fail(CRAFT_EINVAL,
                          "avg_pool2d: kernel %d, padding %d (kernel must be >= 1, padding >= 0)", kernel,
                          padding);
    if ((int64_t)2 * padding > kernel)
        return craft_fail(CRAFT_EINVAL, "avg_pool2d: padding %d must be at most half the kernel %d", padding,
                          kernel);
    if (x->shape[2] + (int64_t)2 * padding < kernel || x->shape[3] + (int64_t)2 * padding < kernel)
        return craft_fail(CRAFT_ESHAPE, "avg_pool2d: input %s with padding %d is smaller than the kernel %d",
                          craft_shape_str(x), padding, kernel);
    *oh = (x->shape[2] + 2 * (int64_t)padding - kernel) / *stride + 1;
    *ow = (x->shape[3] + 2 * (int64_t)padding - kernel) / *stride + 1;
    return CRAFT_OK;
}

int craft_avg_pool2d(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor **out) {
    if (!x) return craft_fail(CRAFT_EINVAL, "avg_pool2d: input is missing");
    const craft_kernels *k;
    CRAFT_TRY(craft_want("avg_pool2d", "input", x, x->device));
    int64_t oh = 0, ow = 0;
    CRAFT_TRY(avg_pool2d_check(x, kernel, &stride, padding, &oh, &ow));
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_avg_pool, CRAFT_F32, "avg_pool2d", &k));
    int64_t oshape[4] = {x->shape[0], x->shape[1], oh, ow};
    craft_tensor *xc = NULL, *y = craft_new_tensor(4, oshape, CRAFT_F32, x->device);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc) rc = k->avg_pool(xc, kernel, stride, padding, y);
    craft_tensor_release(xc);
    int64_t iargs[3] = {kernel, stride, padding};
    if (!rc) rc = craft_record("avg_pool2d", 1, &x, y, pool_backward, 0, NULL, NULL, 0, iargs, 3, NULL);
    return craft_finish(rc, y, out);
}
