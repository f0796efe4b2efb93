/* cl_elementwise.c: the host side of the elementwise device kernels (kernels_cl/elementwise.cl):
 * the launch geometry (broadcast, coalesced strides in elements) and the back end's
 * elementwise kernels (core/backend.h), each writing into a given output. */
#include "cl/cl_internal.h"

/* ------------------------------------------------------------- geometry ---- */
int64_t cl_geom_make(cl_geom *g, int nargs, const craft_tensor *const *ts, int ndim,
                     const int64_t *shape_in) {
    memset(g, 0, sizeof *g);
    int64_t in_st[4][CRAFT_MAX_DIMS], shape[CRAFT_MAX_DIMS], st[4][CRAFT_MAX_DIMS];
    for (int a = 0; a < nargs; a++) g->off[a] = ts[a]->offset;
    /* element strides of each operand broadcast to the iteration shape */
    for (int a = 0; a < nargs; a++)
        for (int i = 0; i < ndim; i++) {
            const craft_tensor *t = ts[a];
            int j = i - (ndim - t->ndim);
            in_st[a][i] = (j < 0 || t->shape[j] == 1) ? 0 : t->stride[j];
        }
    int64_t numel = craft_numel_of(ndim, shape_in);
    int nd = craft_coalesce_dims(nargs, ndim, shape_in, in_st, shape, st);
    if (nd == 0) { /* one element */
        g->ndim = 1;
        g->shape[0] = 1;
        return numel;
    }
    g->ndim = nd;
    for (int i = 0; i < nd; i++) {
        g->shape[i] = shape[i];
        for (int a = 0; a < nargs; a++) g->st[a][i] = st[a][i];
    }
    return numel;
}

int cl_elementwise(craft_cl_dev *d, int kid, int nargs, const craft_tensor *const *ts, int ndim,
                   const int64_t *shape, int nextra, const cl_arg *extra) {
    cl_geom g;
    cl_long n = cl_geom_make(&g, nargs, ts, ndim, shape);
    if (n == 0) return CRAFT_OK;
    cl_mem mems[4];
    cl_arg args[16];
    int k = 0;
    args[k++] = CLA(n);
    for (int a = 0; a < nargs; a++) {
        mems[a] = cl_mem_of(ts[a]);
        args[k++] = (cl_arg){sizeof(cl_mem), &mems[a]};
    }
    for (int i = 0; i < nextra; i++) args[k++] = extra[i];
    return cl_launch_geo(d, kid, &g, sizeof g, k, args, cl_global_for(n), 0);
}

/* ------------------------------------------------------------ checking ---- */
static int want_f32(const char *op, const char *arg, const craft_tensor *t, int code) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s is %s, expected f32 (convert with :float())", op, arg,
                          craft_shape_str(t));
    if (t->device != code)
        return craft_fail(CRAFT_EDEVICE, "%s: %s is on device %d, the op runs on device %d", op, arg,
                          t->device, code);
    return CRAFT_OK;
}

/* out must have the broadcast shape of the inputs. */
static int want_shape(const char *op, const craft_tensor *out, int nd, const int64_t *shape) {
    if (out->ndim != nd || craft_numel_of(nd, shape) != out->numel)
        return craft_fail(CRAFT_ESHAPE, "%s: output %s for result shape %s", op, craft_shape_str(out),
                          craft_dims_str(nd, shape));
    for (int i = 0; i < nd; i++)
        if (out->shape[i] != shape[i])
            return craft_fail(CRAFT_ESHAPE, "%s: output %s for result shape %s", op, craft_shape_str(out),
                              craft_dims_str(nd, shape));
    return CRAFT_OK;
}

/* Runs kid over out and ins (all f32 on out's device), ins broadcast to out. */
static int run_into(const char *op, int kid, craft_tensor *out, int nin, const craft_tensor *const *ins,
                    int nextra, const cl_arg *extra) {
    CRAFT_TRY(want_f32(op, "output", out, out->device));
    const craft_tensor *ts[4] = {out};
    int nd = out->ndim;
    int64_t shape[CRAFT_MAX_DIMS];
    memcpy(shape, out->shape, sizeof shape);
    for (int i = 0; i < nin; i++) {
        CRAFT_TRY(want_f32(op, "input", ins[i], out->device));
        ts[i + 1] = ins[i];
        craft_tensor tmp = *out;
        tmp.ndim = nd;
        memcpy(tmp.shape, shape, sizeof shape);
        CRAFT_TRY(craft_broadcast_shape(op, &tmp, ins[i], &nd, shape));
    }
    CRAFT_TRY(want_shape(op, out, nd, shape));
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(out->device, op, &d));
    CRAFT_TRY(cl_elementwise(d, kid, nin + 1, ts, out->ndim, out->shape, nextra, extra));
    out->storage->version++;
    return CRAFT_OK;
}

/* ------------------------------------------------------------ raw kernels ---- */
int craft_cl_unary(int op, const craft_tensor *a, craft_tensor *out) {
    if (op < 0 || op >= CRAFT_UNARY_COUNT) return craft_fail(CRAFT_EINVAL, "unary: unknown op %d", op);
    return run_into(craft_unary_name(op), K_UNARY + op, out, 1, &a, 0, NULL);
}

int craft_cl_unary_grad(int op, const craft_tensor *x, const craft_tensor *g, craft_tensor *out) {
    if (op < 0 || op >= CRAFT_UNARY_COUNT)
        return craft_fail(CRAFT_EINVAL, "unary backward: unknown op %d", op);
    const craft_tensor *ins[2] = {x, g};
    return run_into(craft_unary_name(op), K_UNARY_GRAD + op, out, 2, ins, 0, NULL);
}

int craft_cl_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *out) {
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    const craft_tensor *ins[2] = {a, b};
    return run_into(craft_binary_name(op), K_BINARY + op, out, 2, ins, 0, NULL);
}

int craft_cl_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor *out) {
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    cl_float fs = (cl_float)s;
    cl_int rev = reverse ? 1 : 0;
    cl_arg extra[2] = {CLA(fs), CLA(rev)};
    return run_into(craft_binary_name(op), K_SCALAR + op, out, 1, &a, 2, extra);
}

int craft_cl_compare(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *out) {
    if (op < CRAFT_EQ || op > CRAFT_GE) return craft_fail(CRAFT_EINVAL, "compare: unknown op %d", op);
    const craft_tensor *ins[2] = {a, b};
    cl_int o = op;
    cl_arg extra[1] = {CLA(o)};
    return run_into("compare", K_compare, out, 2, ins, 1, extra);
}

int craft_cl_axpy_(craft_tensor *dst, double alpha, const craft_tensor *src) {
    cl_float a = (cl_float)alpha;
    cl_arg extra[1] = {CLA(a)};
    return run_into("axpy_", K_axpy, dst, 1, &src, 1, extra);
}

int craft_cl_scale_(craft_tensor *t, double sc) {
    cl_float s = (cl_float)sc;
    cl_arg extra[1] = {CLA(s)};
    return run_into("scale_", K_scale, t, 0, NULL, 1, extra);
}

int craft_cl_scalar_grad(int op, double s, int reverse, const craft_tensor *x, const craft_tensor *g,
                         craft_tensor *gx) {
    cl_int o = op, rev = reverse ? 1 : 0;
    cl_float fs = (cl_float)s;
    cl_arg extra[3] = {CLA(o), CLA(fs), CLA(rev)};
    const craft_tensor *ins[2] = {x, g};
    return run_into("scalar backward", K_scalar_grad, gx, 2, ins, 3, extra);
}

int craft_cl_clamp(const craft_tensor *x, double lo, double hi, craft_tensor *y) {
    cl_float flo = (cl_float)lo, fhi = (cl_float)hi;
    cl_arg extra[2] = {CLA(flo), CLA(fhi)};
    return run_into("clamp", K_clamp_fwd, y, 1, &x, 2, extra);
}

int craft_cl_clamp_grad(const craft_tensor *x, const craft_tensor *g, double lo, double hi,
                        craft_tensor *gx) {
    cl_float flo = (cl_float)lo, fhi = (cl_float)hi;
    cl_arg extra[2] = {CLA(flo), CLA(fhi)};
    const craft_tensor *ins[2] = {x, g};
    return run_into("clamp backward", K_clamp_grad, gx, 2, ins, 2, extra);
}

int craft_cl_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor *y) {
    const craft_tensor *ins[3] = {cond, a, b};
    return run_into("where", K_where_fwd, y, 3, ins, 0, NULL);
}

int craft_cl_where_grad(int side, const craft_tensor *cond, const craft_tensor *g, craft_tensor *gx) {
    cl_int sd = side;
    cl_arg extra[1] = {CLA(sd)};
    const craft_tensor *ins[2] = {cond, g};
    return run_into("where backward", K_where_grad, gx, 2, ins, 1, extra);
}

int craft_cl_minmax_grad(int op, int which, const craft_tensor *a, const craft_tensor *b,
                         const craft_tensor *g, craft_tensor *gx) {
    cl_int o = op, wh = which;
    cl_arg extra[2] = {CLA(o), CLA(wh)};
    const craft_tensor *ins[3] = {a, b, g};
    return run_into("minmax backward", K_minmax_mask, gx, 3, ins, 2, extra);
}
