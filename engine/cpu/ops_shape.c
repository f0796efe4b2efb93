/* ops_shape.c: concat and pad (constant / reflect / replicate), forward and backward.
 * Both are pure data movement: forward gathers, backward slices (concat) or scatter-adds (pad). */
#include "core/internal.h"
#include <omp.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ concat -- */
/* Each input's gradient is its slice of the output gradient, made contiguous. The slice
 * bounds come from the input shapes kept in the edges. */
static int concat_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    int d = (int)n->iarg[0];
    int64_t start = 0;
    for (int i = 0; i < n->n_in; i++) {
        int64_t len = n->edges[i].shape[d];
        if (CRAFT_NEEDS_GRAD(n, i)) {
            craft_tensor *s;
            CRAFT_TRY(craft_slice(gout[0], d, start, start + len, 1, &s));
            int rc = craft_contig_f32(s, &gin[i]);
            craft_tensor_release(s);
            if (rc) return rc;
        }
        start += len;
    }
    return CRAFT_OK;
}

int craft_concat(int n, craft_tensor **ts, int dim, craft_tensor **out) {
    for (int i = 0; ts && i < n; i++) if (ts[i] && ts[i]->device != CRAFT_DEVICE_CPU) return craft_cl_op_concat(n, ts, dim, out);
    if (n < 1 || !ts) return craft_fail(CRAFT_EINVAL, "concat: needs at least one tensor (got %d)", n);
    for (int i = 0; i < n; i++)
        if (!ts[i]) return craft_fail(CRAFT_EINVAL, "concat: tensor %d of %d is missing", i, n);
    const craft_tensor *t0 = ts[0];
    if (t0->ndim == 0) return craft_fail(CRAFT_ESHAPE, "concat: tensor 0 is 0-d (%s); concat needs at least 1 dim", craft_shape_str(t0));
    int d;
    CRAFT_TRY(craft_normalize_dim("concat", dim, t0->ndim, &d));
    int64_t shape[CRAFT_MAX_DIMS];
    for (int k = 0; k < t0->ndim; k++) shape[k] = t0->shape[k];
    shape[d] = 0;
    for (int i = 0; i < n; i++) {
        const craft_tensor *t = ts[i];
        if (t->device != CRAFT_DEVICE_CPU)
            return craft_fail(CRAFT_EDEVICE, "concat: tensor %d is on device %d; this op runs on the CPU only", i, t->device);
        if (t->dtype != t0->dtype)
            return craft_fail(CRAFT_ETYPE, "concat: tensor %d is %s but tensor 0 is %s (dtypes must match)", i,
                              craft_shape_str(t), craft_shape_str(t0));
        int bad = t->ndim != t0->ndim;
        for (int k = 0; k < t0->ndim && !bad; k++) bad = k != d && t->shape[k] != t0->shape[k];
        if (bad)
            return craft_fail(CRAFT_ESHAPE, "concat: tensor %d %s does not match tensor 0 %s outside dim %d", i,
                              craft_shape_str(t), craft_shape_str(t0), d);
        if (__builtin_add_overflow(shape[d], t->shape[d], &shape[d]))
            return craft_fail(CRAFT_ESHAPE, "concat: dim %d of the result is too large", d);
    }
    craft_tensor *y = craft_new_tensor(t0->ndim, shape, t0->dtype, CRAFT_DEVICE_CPU);
    if (!y) return craft_last_status();
    int64_t start = 0;
    /* an empty result has nothing to copy (and its strides may be saturated: no offsets) */
    for (int i = 0; i < n && y->numel > 0; i++) {
        /* copy each input through a view of its slab of the output */
        craft_tensor *v = craft_alias(y);
        if (!v) { craft_tensor_release(y); return craft_last_status(); }
        v->shape[d] = ts[i]->shape[d];
        v->offset = start * y->stride[d];
        v->numel = ts[i]->numel;
        int rc = craft_copy_(v, ts[i]);
        craft_tensor_release(v);
        if (rc) { craft_tensor_release(y); return rc; }
        start += ts[i]->shape[d];
    }
    int64_t iarg = d;
    int rc = craft_record("concat", n, (const craft_tensor *const *)ts, y, concat_backward, 0, NULL, NULL, 0, &iarg, 1, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ------------------------------------------------------------------ pad ----- */
/* The padded dims are the last npairs; dims [0, lead) are untouched. For each padded dim d,
 * map[d][o] is the input index that output index o reads (-1: the constant fill). */
typedef struct {
    int nd, lead;
    int64_t ish[CRAFT_MAX_DIMS], osh[CRAFT_MAX_DIMS], ist[CRAFT_MAX_DIMS];
    int64_t *map[CRAFT_MAX_DIMS];
} pad_plan;

static const char *pad_mode_names[3] = {"constant", "reflect", "replicate"};

static void pad_plan_free(pad_plan *p) {
    for (int d = 0; d < CRAFT_MAX_DIMS; d++) { free(p->map[d]); p->map[d] = NULL; }
}

/* Validates the arguments against the input shape and builds the index maps (pad_plan_make
 * frees the maps already built when a later dim fails). */
static int pad_plan_fill(int nd, const int64_t *ish, int npairs, const int64_t *pads, int mode, const char *desc,
                         int build, pad_plan *p) {
    memset(p, 0, sizeof *p);
    if (mode < 0 || mode > 2) return craft_fail(CRAFT_EINVAL, "pad: unknown mode %d (0 constant, 1 reflect, 2 replicate)", mode);
    if (npairs < 0 || npairs > nd)
        return craft_fail(CRAFT_EINVAL, "pad: %d (before, after) pairs for the %d dims of %s", npairs, nd, desc);
    if (npairs > 0 && !pads) return craft_fail(CRAFT_EINVAL, "pad: pads is NULL");
    p->nd = nd;
    p->lead = nd - npairs;
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) { p->ish[d] = ish[d]; p->osh[d] = ish[d]; p->ist[d] = s; s = craft_mul_sat(s, ish[d]); }
    for (int d = p->lead; d < nd; d++) {
        int k = nd - 1 - d;
        int64_t before = pads[2 * k], after = pads[2 * k + 1], n = ish[d];
        const int64_t lim = (int64_t)1 << 40;
        if (before <= -lim || before >= lim || after <= -lim || after >= lim)
            return craft_fail(CRAFT_EINVAL, "pad: padding (%lld, %lld) of dim %d is out of range", (long long)before, (long long)after, d);
        if (mode != 0 && (before < 0 || after < 0))
            return craft_fail(CRAFT_EINVAL, "pad: negative padding (%lld, %lld) of dim %d needs mode constant, not %s",
                              (long long)before, (long long)after, d, pad_mode_names[mode]);
        if (mode == 1 && (before >= n || after >= n))
            return craft_fail(CRAFT_ESHAPE, "pad: reflect padding (%lld, %lld) of dim %d must be smaller than its size %lld (input %s)",
                              (long long)before, (long long)after, d, (long long)n, desc);
        if (mode == 2 && n == 0 && (before > 0 || after > 0))
            return craft_fail(CRAFT_ESHAPE, "pad: replicate padding of dim %d, which is empty (input %s)", d, desc);
        int64_t o = n + before + after;
        if (o < 0)
            return craft_fail(CRAFT_ESHAPE, "pad: padding (%lld, %lld) leaves dim %d of %s with negative size %lld",
                              (long long)before, (long long)after, d, desc, (long long)o);
        p->osh[d] = o;
    }
    /* the maps only when asked (the caller has allocated the output, so a huge padding has
     * already failed there), and not for an empty output, which no kernel reads through them */
    if (!build || craft_numel_of(nd, p->osh) == 0) return CRAFT_OK;
    for (int d = p->lead; d < nd; d++) {
        int k = nd - 1 - d;
        int64_t before = pads[2 * k], n = ish[d], o = p->osh[d];
        p->map[d] = malloc((size_t)(o ? o : 1) * sizeof(int64_t));
        if (!p->map[d]) { pad_plan_free(p); return craft_fail(CRAFT_ENOMEM, "pad: out of host memory"); }
        for (int64_t j = 0; j < o; j++) {
            int64_t i = j - before;
            if (mode == 0) i = (i >= 0 && i < n) ? i : -1;
            else if (mode == 1) i = i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i);
            else i = i < 0 ? 0 : (i >= n ? n - 1 : i);
            p->map[d][j] = i;
        }
    }
    return CRAFT_OK;
}

static int pad_plan_make(int nd, const int64_t *ish, int npairs, const int64_t *pads, int mode, const char *desc,
                         int build, pad_plan *p) {
    int rc = pad_plan_fill(nd, ish, npairs, pads, mode, desc, build, p);
    if (rc) pad_plan_free(p);
    return rc;
}

/* Input offset of output row r (a row: all output dims but the last), or -1 for a row that
 * lies wholly in the constant fill. */
static int64_t pad_row_offset(const pad_plan *p, int64_t r) {
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

static void pad_forward_kernel(const pad_plan *p, const float *x, float *y, float value) {
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
static void pad_backward_kernel(const pad_plan *p, const float *g, float *gx) {
    int64_t W = p->osh[p->nd - 1], outer = craft_numel_of(p->lead, p->osh);
    int64_t rows_per = craft_numel_of(p->nd - 1 - p->lead, p->osh + p->lead);
    if (W == 0 || outer == 0 || rows_per == 0) return;   /* an empty output: its other sizes can be huge */
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

static int pad_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    const craft_edge *e = &n->edges[0];
    int npairs = (int)n->iarg[1];
    pad_plan p;
    CRAFT_TRY(pad_plan_make(e->ndim, e->shape, npairs, &n->iarg[2], (int)n->iarg[0], craft_dims_str(e->ndim, e->shape), 1, &p));
    craft_tensor *g = NULL, *gx = NULL;
    int rc = craft_contig_f32(gout[0], &g);
    if (!rc) rc = craft_zeros(e->ndim, e->shape, CRAFT_F32, 0, &gx);
    if (!rc) pad_backward_kernel(&p, craft_tensor_data(g), craft_tensor_data(gx));
    pad_plan_free(&p);
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(gx); return rc; }
    gin[0] = gx;
    return CRAFT_OK;
}

int craft_pad_check(const craft_tensor *x, int npairs, const int64_t *pads, int mode, int64_t *osh) {
    pad_plan p;
    CRAFT_TRY(pad_plan_make(x->ndim, x->shape, npairs, pads, mode, craft_shape_str(x), 0, &p));
    memcpy(osh, p.osh, sizeof p.osh);
    pad_plan_free(&p);
    return CRAFT_OK;
}

int craft_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value, craft_tensor **out) {
    if (x && x->device != CRAFT_DEVICE_CPU) return craft_cl_op_pad(x, npairs, pads, mode, value, out);
    CRAFT_TRY(craft_check_f32("pad", "input", x));
    if (npairs == 0 && mode >= 0 && mode <= 2) return craft_clone(x, out);
    pad_plan p;
    /* validate and size the output first, allocate it, then build the index maps */
    CRAFT_TRY(pad_plan_make(x->ndim, x->shape, npairs, pads, mode, craft_shape_str(x), 0, &p));
    craft_tensor *xc = NULL, *y = craft_new_tensor(p.nd, p.osh, CRAFT_F32, CRAFT_DEVICE_CPU);
    if (!y) return craft_last_status();
    int rc = pad_plan_make(x->ndim, x->shape, npairs, pads, mode, craft_shape_str(x), 1, &p);
    if (!rc) rc = craft_contig_f32(x, &xc);
    if (!rc) pad_forward_kernel(&p, craft_tensor_data(xc), craft_tensor_data(y), (float)value);
    pad_plan_free(&p);
    craft_tensor_release(xc);
    if (rc) { craft_tensor_release(y); return rc; }
    int64_t iargs[2 + 2 * CRAFT_MAX_DIMS];
    iargs[0] = mode;
    iargs[1] = npairs;
    for (int i = 0; i < 2 * npairs; i++) iargs[2 + i] = pads[i];
    double sarg = value;
    rc = craft_record("pad", 1, &x, y, pad_backward, 0, NULL, &sarg, 1, iargs, 2 + 2 * npairs, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
