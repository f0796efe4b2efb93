/* op_norm.c: group_norm (alone or fused with an activation) and layer_norm for every device: shape checks, output and statistics
 * allocation, recording and the backward, on the back end's norm kernels. Each op normalises
 * independent rows (group_norm: one (n, group) block of C/G * spatial elements; layer_norm: one
 * row of the last dims); only the per-row mean and 1/std are saved for backward, never a
 * normalised copy. The weight and bias must be on the input's device (they are parameters: a
 * silent copy per step would hide a model left behind). */
#include "core/backend.h"

static int norm_affine_check(const char *op, const char *arg, const craft_tensor *p, int ndim,
                             const int64_t *shape, const craft_tensor *x) {
    if (!p) return CRAFT_OK;
    int ok = p->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = p->shape[i] == shape[i];
    if (!ok)
        return craft_fail(CRAFT_ESHAPE, "%s: %s %s for input %s (expected %s)", op, arg, craft_shape_str(p),
                          craft_shape_str(x), craft_dims_str(ndim, shape));
    return CRAFT_OK;
}

static int group_norm_check(const craft_tensor *x, int groups) {
    if (x->ndim < 2)
        return craft_fail(CRAFT_ESHAPE, "group_norm: input %s must have at least 2 dims [N, C, ...]",
                          craft_shape_str(x));
    int64_t C = x->shape[1];
    if (groups < 1 || C % groups)
        return craft_fail(CRAFT_ESHAPE, "group_norm: %d groups do not divide the %lld channels of input %s",
                          groups, (long long)C, craft_shape_str(x));
    return CRAFT_OK;
}

static int layer_norm_check(const craft_tensor *x, int nnorm) {
    if (nnorm < 1 || nnorm > x->ndim)
        return craft_fail(CRAFT_ESHAPE, "layer_norm: cannot normalise the last %d dims of input %s", nnorm,
                          craft_shape_str(x));
    return CRAFT_OK;
}

/* an affine parameter: an f32 tensor on x's device with the given shape, or NULL */
static int check_affine(const char *op, const char *arg, const craft_tensor *p, int ndim,
                        const int64_t *shape, const craft_tensor *x) {
    if (!p) return CRAFT_OK;
    CRAFT_TRY(craft_want(op, arg, p, x->device));
    return norm_affine_check(op, arg, p, ndim, shape, x);
}

/* Contiguous copies (or aliases) of x, w, b; w, b may be NULL. */
static int contig3(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, craft_tensor **xc,
                   craft_tensor **wc, craft_tensor **bc) {
    *xc = *wc = *bc = NULL;
    int rc = craft_contig_f32(x, xc);
    if (!rc && w) rc = craft_contig_f32(w, wc);
    if (!rc && b) rc = craft_contig_f32(b, bc);
    if (rc) {
        craft_tensor_release(*xc);
        craft_tensor_release(*wc);
        craft_tensor_release(*bc);
        *xc = *wc = *bc = NULL;
    }
    return rc;
}

/* gin[i] for each of the (x, w, b) inputs that needs a gradient, on device */
static int alloc_grads(craft_node *n, int device, craft_tensor **gin) {
    for (int i = 0; i < 3; i++)
        if (CRAFT_NEEDS_GRAD(n, i) &&
            !(gin[i] = craft_new_tensor(n->edges[i].ndim, n->edges[i].shape, CRAFT_F32, device)))
            return craft_last_status();
    return CRAFT_OK;
}

/* the backward of both ops: saved x, w (or NULL), mean, rstd; iarg: G (group_norm) or D */
static int norm_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin, int ln) {
    craft_tensor *x = n->saved[0], *w = n->saved[1], *g;
    int device = x->device;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(device, ln ? CRAFT_K_layer_norm_grad : CRAFT_K_group_norm_grad, CRAFT_F32,
                                n->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], device, &g));
    int rc = alloc_grads(n, device, gin);
    if (!rc && ln)
        rc = k->layer_norm_grad(x, w, n->saved[2], n->saved[3], g, n->iarg[0], gin[0], gin[1], gin[2]);
    else if (!rc)
        rc = k->group_norm_grad(x, w, n->saved[2], n->saved[3], g, n->iarg[0], gin[0], gin[1], gin[2]);
    craft_tensor_release(g);
    return rc;
}
static int group_norm_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return norm_backward(n, gout, gin, 0);
}
static int layer_norm_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return norm_backward(n, gout, gin, 1);
}

/* Runs the forward kernel, records the node: inputs (x, w, b), saved (x, w, mean, rstd). */
static int norm_op(const char *op, int ln, const craft_tensor *x, const craft_tensor *w,
                   const craft_tensor *b, double eps, int64_t param, int nst, const int64_t *st_shape,
                   craft_tensor **out) {
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(x->device, ln ? CRAFT_K_layer_norm : CRAFT_K_group_norm, CRAFT_F32, op, &k));
    craft_tensor *xc, *wc, *bc, *y = NULL, *mean = NULL, *rstd = NULL;
    CRAFT_TRY(contig3(x, w, b, &xc, &wc, &bc));
    int rc = CRAFT_OK;
    if (!(y = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device)) ||
        !(mean = craft_new_tensor(nst, st_shape, CRAFT_F32, x->device)) ||
        !(rstd = craft_new_tensor(nst, st_shape, CRAFT_F32, x->device)))
        rc = craft_last_status();
    if (!rc)
        rc = ln ? k->layer_norm(xc, wc, bc, param, eps, y, mean, rstd)
                : k->group_norm(xc, wc, bc, param, eps, y, mean, rstd);
    if (!rc) {
        const craft_tensor *ins[3] = {x, w, b}, *save[4] = {xc, wc, mean, rstd};
        rc = craft_record(op, 3, ins, y, ln ? layer_norm_backward : group_norm_backward, 4, save, NULL, 0,
                          &param, 1, NULL);
    }
    craft_tensor_release(xc);
    craft_tensor_release(wc);
    craft_tensor_release(bc);
    craft_tensor_release(mean);
    craft_tensor_release(rstd);
    return craft_finish(rc, y, out);
}

int craft_group_norm(const craft_tensor *x, int groups, const craft_tensor *w, const craft_tensor *b,
                     double eps, craft_tensor **out) {
    const char *op = "group_norm";
    if (!x) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    CRAFT_TRY(craft_want(op, "input", x, x->device));
    CRAFT_TRY(group_norm_check(x, groups));
    int64_t N = x->shape[0], C = x->shape[1], st_shape[2] = {N, groups};
    CRAFT_TRY(check_affine(op, "weight", w, 1, &C, x));
    CRAFT_TRY(check_affine(op, "bias", b, 1, &C, x));
    return norm_op(op, 0, x, w, b, eps, groups, 2, st_shape, out);
}

int craft_layer_norm(const craft_tensor *x, int nnorm, const craft_tensor *w, const craft_tensor *b,
                     double eps, craft_tensor **out) {
    const char *op = "layer_norm";
    if (!x) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    CRAFT_TRY(craft_want(op, "input", x, x->device));
    CRAFT_TRY(layer_norm_check(x, nnorm));
    const int64_t *nshape = x->shape + (x->ndim - nnorm);
    CRAFT_TRY(check_affine(op, "weight", w, nnorm, nshape, x));
    CRAFT_TRY(check_affine(op, "bias", b, nnorm, nshape, x));
    int64_t D = craft_numel_of(nnorm, nshape), R = D ? x->numel / D : 0;
    return norm_op(op, 1, x, w, b, eps, D, 1, &R, out);
}

/* ---- group_norm + activation ---- */
/* saved x, w, b (each may be NULL but x), mean, rstd; iarg: G, act */
static int group_norm_act_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g;
    int device = x->device;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(device, CRAFT_K_group_norm_act_grad, CRAFT_F32, n->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], device, &g));
    int rc = alloc_grads(n, device, gin);
    if (!rc)
        rc = k->group_norm_act_grad(x, n->saved[1], n->saved[2], n->saved[3], n->saved[4], g, n->iarg[0],
                                    (int)n->iarg[1], gin[0], gin[1], gin[2]);
    craft_tensor_release(g);
    return rc;
}

int craft_group_norm_act(const craft_tensor *x, int groups, const craft_tensor *w, const craft_tensor *b,
                         double eps, int act, craft_tensor **out) {
    const char *op = "group_norm_act";
    if (!x) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    if (act < 0 || act >= CRAFT_UNARY_COUNT) return craft_fail(CRAFT_EINVAL, "%s: unknown activation %d", op, act);
    CRAFT_TRY(craft_want(op, "input", x, x->device));
    CRAFT_TRY(group_norm_check(x, groups));
    int64_t N = x->shape[0], C = x->shape[1], st_shape[2] = {N, groups};
    CRAFT_TRY(check_affine(op, "weight", w, 1, &C, x));
    CRAFT_TRY(check_affine(op, "bias", b, 1, &C, x));
    if (!craft_device_supports(x->device, CRAFT_K_group_norm_act, CRAFT_F32) ||
        !craft_device_supports(x->device, CRAFT_K_group_norm_act_grad, CRAFT_F32)) {
        /* a device without the fused kernels: the same two ops, recorded one by one */
        craft_tensor *h = NULL;
        CRAFT_TRY(craft_group_norm(x, groups, w, b, eps, &h));
        int rc = craft_unary(act, h, out);
        craft_tensor_release(h);
        return rc;
    }
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_group_norm_act, CRAFT_F32, op, &k));
    craft_tensor *xc, *wc, *bc, *y = NULL, *mean = NULL, *rstd = NULL;
    CRAFT_TRY(contig3(x, w, b, &xc, &wc, &bc));
    int rc = CRAFT_OK;
    if (!(y = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device)) ||
        !(mean = craft_new_tensor(2, st_shape, CRAFT_F32, x->device)) ||
        !(rstd = craft_new_tensor(2, st_shape, CRAFT_F32, x->device)))
        rc = craft_last_status();
    if (!rc) rc = k->group_norm_act(xc, wc, bc, groups, eps, act, y, mean, rstd);
    if (!rc) {
        const craft_tensor *ins[3] = {x, w, b}, *save[5] = {xc, wc, bc, mean, rstd};
        int64_t iargs[2] = {groups, act};
        rc = craft_record(op, 3, ins, y, group_norm_act_backward, 5, save, NULL, 0, iargs, 2, NULL);
    }
    craft_tensor_release(xc);
    craft_tensor_release(wc);
    craft_tensor_release(bc);
    craft_tensor_release(mean);
    craft_tensor_release(rstd);
    return craft_finish(rc, y, out);
}
