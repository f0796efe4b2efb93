/* op_softmax.c: softmax and log_softmax over any dim for every device, forward and backward.
 * The input is made contiguous and seen as [outer, n, inner]; backward works from the saved
 * output:
 *   softmax:      gx = y * (g - sum(g * y))
 *   log_softmax:  gx = g - exp(y) * sum(g) */
#include "core/backend.h"

/* iarg: outer, n, inner, log; saved: y */
static int smx_backward(craft_node *nd, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *y = nd->saved[0], *g, *gx;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(y->device, CRAFT_K_softmax_grad, CRAFT_F32, nd->name, &k));
    CRAFT_TRY(craft_grad_on(gout[0], y->device, &g));
    int rc =
        (gx = craft_new_tensor(y->ndim, y->shape, CRAFT_F32, y->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = k->softmax_grad(y, g, nd->iarg[0], nd->iarg[1], nd->iarg[2], (int)nd->iarg[3], gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

static int smx_op(const char *op, int log, const craft_tensor *x, int dim, craft_tensor **out) {
    if (!x) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    const craft_kernels *k;
    CRAFT_TRY(craft_want(op, "input", x, x->device));
    int d;
    CRAFT_TRY(craft_normalize_dim(op, dim, x->ndim, &d));
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_softmax, CRAFT_F32, op, &k));
    int64_t outer, n, inner;
    craft_split_at(x->ndim, x->shape, d, &outer, &n, &inner);
    craft_tensor *xc;
    CRAFT_TRY(craft_contig_f32(x, &xc));
    craft_tensor *y = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device);
    int rc = y ? k->softmax(xc, outer, n, inner, log, y) : craft_last_status();
    craft_tensor_release(xc);
    int64_t iargs[4] = {outer, n, inner, log};
    const craft_tensor *save[1] = {y};
    if (!rc) rc = craft_record(op, 1, &x, y, smx_backward, 1, save, NULL, 0, iargs, 4, NULL);
    return craft_finish(rc, y, out);
}

int craft_softmax(const craft_tensor *x, int dim, craft_tensor **out) {
    return smx_op("softmax", 0, x, dim, out);
}
int craft_log_softmax(const craft_tensor *x, int dim, craft_tensor **out) {
    return smx_op("log_softmax", 1, x, dim, out);
}
