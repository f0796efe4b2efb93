/* cpu_shape.c: the CPU's pad kernels: a gather through the index maps of craft_pad_plan
 * (core/op_shape.c) and its scatter-add. */
#include "cpu/cpu_kernels.h"
#include <omp.h>

/* Input offset of output row r (a row: all output dims but the last), or -1 for a row that
 * lies wholly in the constant fill. */
static int64_t pad_row_offset(const craft_pad_plan *p, int64_t r) {
    int64_t off = 0;
    for (int d = p->nd - 2; d >= 0; d--) {
        int64_t idx = r % p->osh[d];
        r /= p->osh[d];
        int64_t s = d >= p->lead ? p->map[d][idx] : idx;
        if (s < 0) return -1;
        off += s * p->ist[d];
    }
    return off;
}

static void pad_forward_kernel(const craft_pad_plan *p, const float *x, float *y, float value) {
    int64_t W = p->osh[p->nd - 1], rows = craft_numel_of(p->nd - 1, p->osh);
    if (W == 0 || rows == 0) return;
    const int64_t *m = p->map[p->nd - 1];
#pragma omp parallel for schedule(static) if (rows * W >= CRAFT_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = pad_row_offset(p, r);
        float *o = y + r * W;
        if (off < 0) {
            for (int64_t w = 0; w < W; w++) o[w] = value;
        } else {
            const float *xr = x + off;
            for (int64_t w = 0; w < W; w++) o[w] = m[w] < 0 ? value : xr[m[w]];
        }
    }
}

/* Scatter-add: several outputs may read one input (reflect, replicate), so threads split
 * only over the unpadded leading dims, whose input blocks are disjoint. */
static void pad_backward_kernel(const craft_pad_plan *p, const float *g, float *gx) {
    int64_t W = p->osh[p->nd - 1], outer = craft_numel_of(p->lead, p->osh);
    int64_t rows_per = craft_numel_of(p->nd - 1 - p->lead, p->osh + p->lead);
    if (W == 0 || outer == 0 || rows_per == 0) return; /* an empty output: its other sizes can be huge */
    const int64_t *m = p->map[p->nd - 1];
#pragma omp parallel for schedule(static) if (outer > 1 && outer * rows_per * W >= CRAFT_PAR_MIN)
    for (int64_t b = 0; b < outer; b++) {
        for (int64_t rr = 0; rr < rows_per; rr++) {
            int64_t r = b * rows_per + rr, off = pad_row_offset(p, r);
            if (off < 0) continue;
            const float *gr = g + r * W;
            float *xr = gx + off;
            for (int64_t w = 0; w < W; w++)
                if (m[w] >= 0) xr[m[w]] += gr[w];
        }
    }
}

int cpu_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value, craft_tensor *y) {
    craft_pad_plan p;
    CRAFT_TRY(craft_pad_plan_make(x->ndim, x->shape, npairs, pads, mode, craft_shape_str(x), 1, &p));
    pad_forward_kernel(&p, craft_tensor_data(x), craft_tensor_data(y), (float)value);
    craft_pad_plan_free(&p);
    return CRAFT_OK;
}

/* gx = 0, then the scatter */
int cpu_pad_grad(const craft_tensor *g, int npairs, const int64_t *pads, int mode, craft_tensor *gx) {
    craft_pad_plan p;
    CRAFT_TRY(craft_pad_plan_make(gx->ndim, gx->shape, npairs, pads, mode,
                                  craft_dims_str(gx->ndim, gx->shape), 1, &p));
    if (gx->numel) memset(craft_tensor_data(gx), 0, (size_t)gx->numel * sizeof(float));
    pad_backward_kernel(&p, craft_tensor_data(g), craft_tensor_data(gx));
    craft_pad_plan_free(&p);
    return CRAFT_OK;
}
