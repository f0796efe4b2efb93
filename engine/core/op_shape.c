/* op_shape.c: concat and pad (constant / reflect / replicate) for every device, forward and
 * backward. concat is composed of copies (any dtype); pad validates and sizes here and runs on
 * the back end's pad kernels (the CPU's gather from index maps, craft_pad_plan). */
#include "core/backend.h"
#include <stdlib.h>

/* ------------------------------------------------------------------ concat -- */
/* Each input's gradient is its slice of the output gradient, made contiguous. The slice
 * bounds come from the input shapes kept in the edges. */
static int concat_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    int d = (int)n->iarg[0];
    craft_tensor *g;
    CRAFT_TRY(craft_on_device(gout[0], n->device, &g));
    int64_t start = 0;
    int rc = CRAFT_OK;
    for (int i = 0; i < n->n_in && !rc; i++) {
        int64_t len = n->edges[i].shape[d];
        if (CRAFT_NEEDS_GRAD(n, i)) {
            craft_tensor *s = NULL;
            rc = craft_slice(g, d, start, start + len, 1, &s);
            if (!rc) rc = craft_contig_f32(s, &gin[i]);
            craft_tensor_release(s);
        }
        start += len;
    }
    craft_tensor_release(g);
    return rc;
}

int craft_concat(int n, craft_tensor **ts, int dim, craft_tensor **out) {
    if (n < 1 || !ts) return craft_fail(CRAFT_EINVAL, "concat: needs at least one tensor (got %d)", n);
    for (int i = 0; i < n; i++)
        if (!ts[i]) return craft_fail(CRAFT_EINVAL, "concat: tensor %d of %d is missing", i, n);
    int device;
    CRAFT_TRY(craft_op_device("concat", n, (const craft_tensor *const *)ts, &device));
    /* tensors elsewhere are copied over (differentiably), as for elementwise ops */
    craft_tensor **m = calloc((size_t)n, sizeof *m);
    if (!m) return craft_fail(CRAFT_ENOMEM, "concat: out of host memory");
    int rc = CRAFT_OK;
    for (int i = 0; i < n && !rc; i++) rc = craft_bring("concat", "a tensor", ts[i], device, &m[i]);
    const craft_tensor *t0 = m[0];
    int d = 0;
    int64_t shape[CRAFT_MAX_DIMS];
    if (!rc && t0->ndim == 0)
        rc = craft_fail(CRAFT_ESHAPE, "concat: tensor 0 is 0-d (%s); concat needs at least 1 dim",
                        craft_shape_str(t0));
    if (!rc) rc = craft_normalize_dim("concat", dim, t0->ndim, &d);
    if (!rc) {
        memcpy(shape, t0->shape, sizeof shape);
        shape[d] = 0;
    }
    for (int i = 0; i < n && !rc; i++) {
        const craft_tensor *t = m[i];
        int bad = t->ndim != t0->ndim;
        for (int k = 0; k < t0->ndim && !bad; k++) bad = k != d && t->shape[k] != t0->shape[k];
        if (t->dtype != t0->dtype)
            rc = craft_fail(CRAFT_ETYPE, "concat: tensor %d is %s but tensor 0 is %s (dtypes must match)", i,
                            craft_shape_str(t), craft_shape_str(t0));
        else if (bad)
            rc = craft_fail(CRAFT_ESHAPE, "concat: tensor %d %s does not match tensor 0 %s outside dim %d", i,
                            craft_shape_str(t), craft_shape_str(t0), d);
        else if (__builtin_add_overflow(shape[d], t->shape[d], &shape[d]))
            rc = craft_fail(CRAFT_ESHAPE, "concat: dim %d of the result is too large", d);
    }
    craft_tensor *y = NULL;
    if (!rc && !(y = craft_new_tensor(t0->ndim, shape, t0->dtype, device))) rc = craft_last_status();
    /* each input through a view of its slab of the output; an empty result has nothing to
     * copy (and its strides may be saturated: no offsets) */
    for (int64_t i = 0, start = 0; i < n && !rc && y->numel > 0; start += m[i]->shape[d], i++) {
        craft_tensor *v = craft_alias(y);
        if (!v) {
            rc = craft_last_status();
            break;
        }
        v->shape[d] = m[i]->shape[d];
        v->offset = start * y->stride[d];
        v->numel = m[i]->numel;
        rc = craft_copy_(v, m[i]);
        craft_tensor_release(v);
    }
    int64_t iarg = d;
    if (!rc)
        rc = craft_record("concat", n, (const craft_tensor *const *)m, y, concat_backward, 0, NULL, NULL, 0,
                          &iarg, 1, NULL);
    for (int i = 0; i < n; i++) craft_tensor_release(m[i]);
    free(m);
    return craft_finish(rc, y, out);
}

/* ------------------------------------------------------------------ pad ----- */
static const char *pad_mode_names[3] = {"constant", "reflect", "replicate"};

void craft_pad_plan_free(craft_pad_plan *p) {
    for (int d = 0; d < CRAFT_MAX_DIMS; d++) {
        free(p->map[d]);
        p->map[d] = NULL;
    }
}

/* Validates the arguments against the input shape and builds the index maps (craft_pad_plan_make
 * frees the maps already built when a later dim fails). */
static int pad_fill(int nd, const int64_t *ish, int npairs, const int64_t *pads, int mode, const char *desc,
                    int build, craft_pad_plan *p) {
    memset(p, 0, sizeof *p);
    if (mode < 0 || mode > 2)
        return craft_fail(CRAFT_EINVAL, "pad: unknown mode %d (0 constant, 1 reflect, 2 replicate)", mode);
    if (npairs < 0 || npairs > nd)
        return craft_fail(CRAFT_EINVAL, "pad: %d (before, after) pairs for the %d dims of %s", npairs, nd,
                          desc);
    if (npairs > 0 && !pads) return craft_fail(CRAFT_EINVAL, "pad: pads is NULL");
    p->nd = nd;
    p->lead = nd - npairs;
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        p->ish[d] = ish[d];
        p->osh[d] = ish[d];
        p->ist[d] = s;
        s = craft_mul_sat(s, ish[d]);
    }
    for (int d = p->lead; d < nd; d++) {
        int k = nd - 1 - d;
        int64_t before = pads[2 * k], after = pads[2 * k + 1], n = ish[d];
        const int64_t lim = (int64_t)1 << 40;
        if (before <= -lim || before >= lim || after <= -lim || after >= lim)
            return craft_fail(CRAFT_EINVAL, "pad: padding (%lld, %lld) of dim %d is out of range",
                              (long long)before, (long long)after, d);
        if (mode != 0 && (before < 0 || after < 0))
            return craft_fail(CRAFT_EINVAL,
                              "pad: negative padding (%lld, %lld) of dim %d needs mode constant, not %s",
                              (long long)before, (long long)after, d, pad_mode_names[mode]);
        if (mode == 1 && (before >= n || after >= n))
            return craft_fail(
                CRAFT_ESHAPE,
                "pad: reflect padding (%lld, %lld) of dim %d must be smaller than its size %lld (input %s)",
                (long long)before, (long long)after, d, (long long)n, desc);
        if (mode == 2 && n == 0 && (before > 0 || after > 0))
            return craft_fail(CRAFT_ESHAPE, "pad: replicate padding of dim %d, which is empty (input %s)", d,
                              desc);
        int64_t o = n + before + after;
        if (o < 0)
            return craft_fail(CRAFT_ESHAPE,
                              "pad: padding (%lld, %lld) leaves dim %d of %s with negative size %lld",
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
        if (!p->map[d]) {
            craft_pad_plan_free(p);
            return craft_fail(CRAFT_ENOMEM, "pad: out of host memory");
        }
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

int craft_pad_plan_make(int nd, const int64_t *ish, int npairs, const int64_t *pads, int mode,
                        const char *desc, int build, craft_pad_plan *p) {
    int rc = pad_fill(nd, ish, npairs, pads, mode, desc, build, p);
    if (rc) craft_pad_plan_free(p);
    return rc;
}

/* iarg: mode, npairs, pads...; sarg: value */
static int pad_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    const craft_edge *e = &n->edges[0];
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(n->device, CRAFT_K_pad_grad, CRAFT_F32, n->name, &k));
    craft_tensor *g = NULL, *gx = NULL;
    int rc = craft_grad_on(gout[0], n->device, &g);
    if (!rc && !(gx = craft_new_tensor(e->ndim, e->shape, CRAFT_F32, n->device))) rc = craft_last_status();
    if (!rc) rc = k->pad_grad(g, (int)n->iarg[1], &n->iarg[2], (int)n->iarg[0], gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

static int pad_check(const craft_tensor *x, int npairs, const int64_t *pads, int mode, int64_t *osh) {
    craft_pad_plan p;
    CRAFT_TRY(craft_pad_plan_make(x->ndim, x->shape, npairs, pads, mode, craft_shape_str(x), 0, &p));
    memcpy(osh, p.osh, sizeof p.osh);
    craft_pad_plan_free(&p);
    return CRAFT_OK;
}

int craft_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value,
              craft_tensor **out) {
    if (!x) return craft_fail(CRAFT_EINVAL, "pad: input is missing");
    const craft_kernels *k;
    CRAFT_TRY(craft_want("pad", "input", x, x->device));
    if (npairs == 0 && mode >= 0 && mode <= 2) return craft_clone(x, out);
    /* validate and size the output first, allocate it, then the kernel builds what it needs */
    int64_t osh[CRAFT_MAX_DIMS];
    CRAFT_TRY(pad_check(x, npairs, pads, mode, osh));
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_pad, CRAFT_F32, "pad", &k));
    craft_tensor *xc = NULL, *y = craft_new_tensor(x->ndim, osh, CRAFT_F32, x->device);
    int rc = y ? craft_contig_f32(x, &xc) : craft_last_status();
    if (!rc) rc = k->pad(xc, npairs, pads, mode, value, y);
    craft_tensor_release(xc);
    int64_t iargs[2 + 2 * CRAFT_MAX_DIMS];
    iargs[0] = mode;
    iargs[1] = npairs;
    for (int i = 0; i < 2 * npairs; i++) iargs[2 + i] = pads[i];
    if (!rc)
        rc = craft_record("pad", 1, &x, y, pad_backward, 0, NULL, &value, 1, iargs, 2 + 2 * npairs, NULL);
    return craft_finish(rc, y, out);
}
