/* cl_softmax.c: the softmax and log_softmax kernels on cl devices (kernels_cl/softmax.cl),
 * forward and backward on a dense [outer, n, inner] block, and the launch of a line kernel
 * that the nn files of the back end share (cl_norm.c, cl_attention.c, cl_loss.c). */
#include "cl/cl_internal.h"

/* ---------------------------------------------------------------- shared ---- */
/* Launches line kernel kid (kernels_cl/attention.cl: lines of n elements, `inner` apart) over
 * `lines` lines: args, then LX. Rows (inner 1) get as many workers per line as fit their
 * length; columns go side by side so that reads coalesce. */
int cl_nn_lines(craft_cl_dev *d, int kid, int nargs, const cl_arg *args, int64_t lines, int64_t n,
                int64_t inner) {
    return cl_nn_lines_geo(d, kid, NULL, 0, nargs, args, lines, n, inner);
}

int cl_nn_lines_geo(craft_cl_dev *d, int kid, const void *geo, size_t gsize, int nargs, const cl_arg *args,
                    int64_t lines, int64_t n, int64_t inner) {
    if (lines <= 0) return CRAFT_OK;
    if (nargs > 15) return craft_fail(CRAFT_EINVAL, "line kernel: %d arguments", nargs);
    size_t local = cl_pow2_local(d, kid, 256), lx, ly = 1;
    if (inner > 1) {
        for (lx = 1; lx < local && (int64_t)lx < inner; lx *= 2) {}
    } else {
        while (ly < local && (int64_t)ly < n) ly *= 2;
        lx = local / ly;
    }
    int64_t groups = (lines + (int64_t)lx - 1) / (int64_t)lx;
    if (groups > 65536) groups = 65536;
    cl_int LX = (cl_int)lx;
    cl_arg all[16];
    memcpy(all, args, (size_t)nargs * sizeof *args);
    all[nargs] = CLA(LX);
    if (geo) return cl_launch_geo(d, kid, geo, gsize, nargs + 1, all, (size_t)groups * local, local);
    return cl_launch(d, kid, nargs + 1, all, (size_t)groups * local, local);
}

/* ---------------------------------------------------------------- softmax ---- */
int craft_cl_softmax(const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, int lg,
                     craft_tensor *y) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, lg ? "log_softmax" : "softmax", &d));
    if (y->numel == 0) return CRAFT_OK;
    cl_mem xm = cl_mem_of(x), ym = cl_mem_of(y);
    cl_long xoff = x->offset, co = outer, cn = n, ci = inner;
    cl_int l = lg;
    cl_arg args[7] = {CLA(xm), CLA(xoff), CLA(ym), CLA(co), CLA(cn), CLA(ci), CLA(l)};
    return cl_nn_lines(d, K_softmax_fwd, 7, args, outer * inner, n, inner);
}

int craft_cl_softmax_grad(const craft_tensor *y, const craft_tensor *g, int64_t outer, int64_t n,
                          int64_t inner, int lg, craft_tensor *gx) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "softmax backward", &d));
    if (y->numel == 0) return CRAFT_OK;
    cl_mem ym = cl_mem_of(y), gm = cl_mem_of(g), xm = cl_mem_of(gx);
    cl_long yoff = y->offset, goff = g->offset, co = outer, cn = n, ci = inner;
    cl_int l = lg;
    cl_arg args[9] = {CLA(ym), CLA(yoff), CLA(gm), CLA(goff), CLA(xm), CLA(co), CLA(cn), CLA(ci), CLA(l)};
    return cl_nn_lines(d, K_softmax_bwd, 9, args, outer * inner, n, inner);
}
