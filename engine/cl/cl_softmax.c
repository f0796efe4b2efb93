/* cl_softmax.c: the softmax and log_softmax kernels on cl devices (kernels_cl/softmax.cl),
 * forward and backward on a dense [outer, n, inner] block, and the launch of a line kernel
 * that the nn files of the back end share (cl_norm.c, cl_attention.c, cl_loss.c). */
#include "cl/cl_internal.h"

/* ---------------------------------------------------------------- shared ---- */
/* Launches line kernel kid (kernels_cl/attention.cl: lines of n elements, `inner` apart) over
 * `lines` lines: args, then LX. Rows (inner 1) get as many workers per line as fit their
 * length; columns go side by side so that reads coalesce. */
int cl_nn_lines(craft_cl_dev *d, int kid, int nargs, const cl_arg *args, int64_t lines, int64_t n, int64_t inner) {
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
    return cl_launch(d, kid, nargs + 1, all, (size_t)groups * local, local);
}

/* t must be an f32 tensor on device code (arg names it in the message). */
int cl_nn_want(const char *op, const char *arg, const craft_tensor *t, int code) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s is %s, expected f32 (convert with :float())", op, arg, craft_shape_str(t));
    if (t->device != code)
        return craft_fail(CRAFT_EDEVICE, "%s: %s %s is on device %d but the input is on device %d; move it with :to()", op, arg,
                          craft_shape_str(t), t->device, code);
    return CRAFT_OK;
}

/* t on device code: retained when there, copied over (differentiably) from the CPU; a tensor
 * on another cl device is refused. */
int cl_nn_bring(const char *op, const char *arg, const craft_tensor *t, int code, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->device == code) { *out = craft_tensor_retain((craft_tensor *)t); return CRAFT_OK; }
    if (t->device != CRAFT_DEVICE_CPU)
        return craft_fail(CRAFT_EDEVICE, "%s: %s is on cl:%d, the input on cl:%d; move one with :to()", op, arg, t->device - 1,
                          code - 1);
    return craft_to_device(t, code, out);
}

/* g (a gradient, maybe on the CPU) as a contiguous f32 tensor on device code */
int cl_nn_grad(const craft_tensor *g, int code, craft_tensor **out) {
    craft_tensor *gd;
    CRAFT_TRY(cl_on_device(g, code, &gd));
    int rc = craft_contig_f32(gd, out);
    craft_tensor_release(gd);
    return rc;
}

/* ---------------------------------------------------------------- softmax ---- */
int craft_cl_softmax(const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, int lg, craft_tensor *y) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, lg ? "log_softmax" : "softmax", &d));
    if (y->numel == 0) return CRAFT_OK;
    cl_mem xm = cl_mem_of(x), ym = cl_mem_of(y);
    cl_long xoff = x->offset, co = outer, cn = n, ci = inner;
    cl_int l = lg;
    cl_arg args[7] = {CLA(xm), CLA(xoff), CLA(ym), CLA(co), CLA(cn), CLA(ci), CLA(l)};
    return cl_nn_lines(d, K_softmax_fwd, 7, args, outer * inner, n, inner);
}

int craft_cl_softmax_grad(const craft_tensor *y, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner, int lg,
                          craft_tensor *gx) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "softmax backward", &d));
    if (y->numel == 0) return CRAFT_OK;
    cl_mem ym = cl_mem_of(y), gm = cl_mem_of(g), xm = cl_mem_of(gx);
    cl_long yoff = y->offset, goff = g->offset, co = outer, cn = n, ci = inner;
    cl_int l = lg;
    cl_arg args[9] = {CLA(ym), CLA(yoff), CLA(gm), CLA(goff), CLA(xm), CLA(co), CLA(cn), CLA(ci), CLA(l)};
    return cl_nn_lines(d, K_softmax_bwd, 9, args, outer * inner, n, inner);
}
