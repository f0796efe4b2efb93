/* op_glu.c: GEGLU, the gated feed-forward of diffusion transformers: a * gelu(g) over the two
 * halves of the last dim, as one recorded op on a back end's fused kernels (one pass forward, one
 * backward that recomputes gelu(g) instead of keeping it), or composed from slices, gelu and mul
 * where the device lacks them: the same numbers either way (tests/c/test_core.c). */
#include "core/backend.h"

/* saved: x (contiguous); iarg: rows, n */
static int geglu_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_geglu_grad, CRAFT_F32, n->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], x->device, &g));
    int rc = CRAFT_OK;
    if (!(gin[0] = craft_new_tensor(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, x->device)))
        rc = craft_last_status();
    else rc = k->geglu_grad(x, g, n->iarg[0], n->iarg[1], gin[0]);
    craft_tensor_release(g);
    return rc;
}

/* a device without the fused kernels: the three ops, recorded one by one */
static int geglu_composed(const craft_tensor *x, int64_t n, craft_tensor **out) {
    int d = x->ndim - 1;
    craft_tensor *a = NULL, *h = NULL, *gh = NULL;
    int rc = craft_slice(x, d, 0, n, 1, &a);
    if (!rc) rc = craft_slice(x, d, n, 2 * n, 1, &h);
    if (!rc) rc = craft_unary(CRAFT_GELU, h, &gh);
    if (!rc) rc = craft_binary(CRAFT_MUL, a, gh, out);
    craft_tensor_release(a);
    craft_tensor_release(h);
    craft_tensor_release(gh);
    return rc;
}

int craft_geglu(const craft_tensor *x, craft_tensor **out) {
    const char *op = "geglu";
    if (!x) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    CRAFT_TRY(craft_want(op, "input", x, x->device));
    if (x->ndim < 1 || x->shape[x->ndim - 1] % 2)
        return craft_fail(CRAFT_ESHAPE, "%s: input %s: the last dim must be even (value and gate halves)", op,
                          craft_shape_str(x));
    int64_t n = x->shape[x->ndim - 1] / 2, rows = n ? x->numel / (2 * n) : 0;
    if (!craft_device_supports(x->device, CRAFT_K_geglu, CRAFT_F32) ||
        !craft_device_supports(x->device, CRAFT_K_geglu_grad, CRAFT_F32))
        return geglu_composed(x, n, out);
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_geglu, CRAFT_F32, op, &k));
    int64_t yshape[CRAFT_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) yshape[i] = x->shape[i];
    yshape[x->ndim - 1] = n;
    craft_tensor *xc = NULL, *y = NULL;
    int rc = craft_contig_f32(x, &xc);
    if (!rc && !(y = craft_new_tensor(x->ndim, yshape, CRAFT_F32, x->device))) rc = craft_last_status();
    if (!rc) rc = k->geglu(xc, rows, n, y);
    if (!rc) {
        const craft_tensor *ins[1] = {x}, *save[1] = {xc};
        int64_t iargs[2] = {rows, n};
        rc = craft_record(op, 1, ins, y, geglu_backward, 1, save, NULL, 0, iargs, 2, NULL);
    }
    craft_tensor_release(xc);
    return craft_finish(rc, y, out);
}
