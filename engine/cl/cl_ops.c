/* cl_ops.c: the host side of the elementwise device kernels (kernels_cl/elementwise.cl): the
 * launch geometry (broadcast, coalesced strides in elements), the raw kernels writing into a
 * given output (craft_cl_unary, ...), and whole differentiable ops with the public functions'
 * signatures (craft_cl_op_unary, ...) that engine/ops_elementwise.c dispatches to when an
 * input is on a cl device. Backward formulas are the CPU's, run on the device. */
#include "cl/cl_internal.h"

/* ------------------------------------------------------------- geometry ---- */
int64_t cl_geom_make(cl_geom *g, int nargs, const craft_tensor *const *ts, int ndim, const int64_t *shape_in) {
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
    if (nd == 0) {   /* one element */
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
    args[k++] = CLA(g);
    args[k++] = CLA(n);
    for (int a = 0; a < nargs; a++) {
        mems[a] = cl_mem_of(ts[a]);
        args[k++] = (cl_arg){sizeof(cl_mem), &mems[a]};
    }
    for (int i = 0; i < nextra; i++) args[k++] = extra[i];
    return cl_launch(d, kid, k, args, cl_global_for(n), 0);
}

/* ------------------------------------------------------------ checking ---- */
static int want_f32(const char *op, const char *arg, const craft_tensor *t, int code) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s is %s, expected f32 (convert with :float())", op, arg, craft_shape_str(t));
    if (t->device != code)
        return craft_fail(CRAFT_EDEVICE, "%s: %s is on device %d, the op runs on device %d", op, arg, t->device, code);
    return CRAFT_OK;
}

/* out must have the broadcast shape of the inputs. */
static int want_shape(const char *op, const craft_tensor *out, int nd, const int64_t *shape) {
    if (out->ndim != nd || craft_numel_of(nd, shape) != out->numel)
        return craft_fail(CRAFT_ESHAPE, "%s: output %s for result shape %s", op, craft_shape_str(out), craft_dims_str(nd, shape));
    for (int i = 0; i < nd; i++)
        if (out->shape[i] != shape[i])
            return craft_fail(CRAFT_ESHAPE, "%s: output %s for result shape %s", op, craft_shape_str(out), craft_dims_str(nd, shape));
    return CRAFT_OK;
}

/* Runs kid over out and ins (all f32 on out's device), ins broadcast to out. */
static int run_into(const char *op, int kid, craft_tensor *out, int nin, const craft_tensor *const *ins, int nextra,
                    const cl_arg *extra) {
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
    if (op < 0 || op >= CRAFT_UNARY_COUNT) return craft_fail(CRAFT_EINVAL, "unary backward: unknown op %d", op);
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
    CRAFT_TRY(want_f32("axpy_", "destination", dst, dst->device));
    craft_tensor *s;
    CRAFT_TRY(cl_on_device(src, dst->device, &s));   /* a CPU source is copied over */
    cl_float a = (cl_float)alpha;
    cl_arg extra[1] = {CLA(a)};
    const craft_tensor *ins[1] = {s};
    int rc = run_into("axpy_", K_axpy, dst, 1, ins, 1, extra);
    craft_tensor_release(s);
    return rc;
}

int craft_cl_scale_(craft_tensor *t, double sc) {
    cl_float s = (cl_float)sc;
    cl_arg extra[1] = {CLA(s)};
    return run_into("scale_", K_scale, t, 0, NULL, 1, extra);
}

/* --------------------------------------------------- differentiable ops ---- */
/* The device of an op's operands: they must share one cl device; CPU operands are copied over
 * (differentiably). Besides scalars, that serves gradients the autograd engine makes on the CPU
 * (zeros for unused outputs, slice backward). New references in m[]. */
static int operands(const char *op, int n, const craft_tensor *const *in, craft_tensor **m, int *code) {
    int dev = 0;
    for (int i = 0; i < n; i++) {
        if (!in[i]) return craft_fail(CRAFT_EINVAL, "%s: operand %d is missing", op, i + 1);
        if (in[i]->device == CRAFT_DEVICE_CPU) continue;
        if (dev && in[i]->device != dev)
            return craft_fail(CRAFT_EDEVICE, "%s: operands on cl:%d and cl:%d; move one with :to()", op, dev - 1, in[i]->device - 1);
        dev = in[i]->device;
    }
    if (!dev) return craft_fail(CRAFT_EDEVICE, "%s: no operand is on an OpenCL device", op);
    for (int i = 0; i < n; i++) m[i] = NULL;
    for (int i = 0; i < n; i++) {
        int rc = in[i]->device == dev ? (m[i] = craft_tensor_retain((craft_tensor *)in[i]), CRAFT_OK)
                                       : craft_to_device(in[i], dev, &m[i]);
        if (rc) { for (int k = 0; k < n; k++) craft_tensor_release(m[k]); return rc; }
    }
    *code = dev;
    return CRAFT_OK;
}
static void release_all(int n, craft_tensor **m) { for (int i = 0; i < n; i++) craft_tensor_release(m[i]); }

/* A new f32 tensor of the broadcast shape of ins on device code. */
static int new_bcast(const char *op, int n, const craft_tensor *const *ins, int code, craft_tensor **out) {
    int nd = ins[0]->ndim;
    int64_t shape[CRAFT_MAX_DIMS];
    memcpy(shape, ins[0]->shape, sizeof shape);
    for (int i = 1; i < n; i++) {
        craft_tensor tmp = *ins[0];
        tmp.ndim = nd;
        memcpy(tmp.shape, shape, sizeof shape);
        CRAFT_TRY(craft_broadcast_shape(op, &tmp, ins[i], &nd, shape));
    }
    *out = cl_new(nd, shape, CRAFT_F32, code);
    return *out ? CRAFT_OK : craft_last_status();
}

/* the backward's gradient on the node's device */
static int grad_here(craft_tensor *g, const craft_tensor *like, craft_tensor **out) {
    return cl_on_device(g, like->device, out);
}

static int unary_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g, *y;
    CRAFT_TRY(grad_here(gout[0], x, &g));
    int rc = (y = cl_new(x->ndim, x->shape, CRAFT_F32, x->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = craft_cl_unary_grad((int)n->iarg[0], x, g, y);
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(y); return rc; }
    gin[0] = y;
    return CRAFT_OK;
}

int craft_cl_op_unary(int op, const craft_tensor *a, craft_tensor **out) {
    if (op < 0 || op >= CRAFT_UNARY_COUNT) return craft_fail(CRAFT_EINVAL, "unary: unknown op %d", op);
    CRAFT_TRY(want_f32(craft_unary_name(op), "input", a, a->device));
    craft_tensor *y = cl_new(a->ndim, a->shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int64_t iarg = op;
    int rc = craft_cl_unary(op, a, y);
    if (!rc) rc = craft_record(craft_unary_name(op), 1, &a, y, unary_backward, 1, &a, NULL, 0, &iarg, 1, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* t = a op b, a fresh tensor */
static int bin_new(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    const craft_tensor *ins[2] = {a, b};
    CRAFT_TRY(new_bcast(craft_binary_name(op), 2, ins, a->device, out));
    int rc = craft_cl_binary(op, a, b, *out);
    if (rc) { craft_tensor_release(*out); *out = NULL; }
    return rc;
}
static int scal_new(int op, const craft_tensor *a, double s, craft_tensor **out) {
    *out = cl_new(a->ndim, a->shape, CRAFT_F32, a->device);
    if (!*out) return craft_last_status();
    int rc = craft_cl_binary_scalar(op, a, s, 0, *out);
    if (rc) { craft_tensor_release(*out); *out = NULL; }
    return rc;
}

/* d(a op b)/da or /db times g, before reduction to the operand's shape */
static int binary_grad(int op, int which, craft_tensor *a, craft_tensor *b, craft_tensor *g, craft_tensor **t) {
    craft_tensor *u = NULL, *v = NULL, *w = NULL;
    int rc = CRAFT_OK;
    switch (op) {
    case CRAFT_ADD: *t = craft_tensor_retain(g); return CRAFT_OK;
    case CRAFT_SUB: if (which == 0) { *t = craft_tensor_retain(g); return CRAFT_OK; }
                    return scal_new(CRAFT_MUL, g, -1.0, t);
    case CRAFT_MUL: return bin_new(CRAFT_MUL, g, which == 0 ? b : a, t);
    case CRAFT_DIV:
        if (which == 0) return bin_new(CRAFT_DIV, g, b, t);
        rc = bin_new(CRAFT_DIV, a, b, &u);                      /* -g a / b^2 */
        if (!rc) rc = bin_new(CRAFT_DIV, u, b, &v);
        if (!rc) rc = bin_new(CRAFT_MUL, g, v, &w);
        if (!rc) rc = craft_cl_scale_(w, -1.0);
        break;
    case CRAFT_POW:
        if (which == 0) {                                        /* g b a^(b-1) */
            rc = scal_new(CRAFT_SUB, b, 1.0, &u);
            if (!rc) rc = bin_new(CRAFT_POW, a, u, &v);
            craft_tensor_release(u);
            u = NULL;
            if (!rc) rc = bin_new(CRAFT_MUL, v, b, &u);
        } else {                                                 /* g a^b log a */
            craft_tensor *la = NULL;
            rc = bin_new(CRAFT_POW, a, b, &v);
            if (!rc) rc = (la = cl_new(a->ndim, a->shape, CRAFT_F32, a->device)) ? CRAFT_OK : craft_last_status();
            if (!rc) rc = craft_cl_unary(CRAFT_LOG, a, la);
            if (!rc) rc = bin_new(CRAFT_MUL, v, la, &u);
            craft_tensor_release(la);
        }
        if (!rc) rc = bin_new(CRAFT_MUL, g, u, &w);
        break;
    default: {                                                   /* maximum / minimum */
        const craft_tensor *ins[2] = {a, b};
        rc = new_bcast("minmax backward", 2, ins, a->device, &w);
        craft_cl_dev *d;
        if (!rc) rc = cl_dev_get(a->device, "minmax backward", &d);
        if (!rc) {
            const craft_tensor *ts[4] = {w, a, b, g};
            cl_int o = op, wh = which;
            cl_arg extra[2] = {CLA(o), CLA(wh)};
            rc = cl_elementwise(d, K_minmax_mask, 4, ts, w->ndim, w->shape, 2, extra);
        }
    }
    }
    craft_tensor_release(u);
    craft_tensor_release(v);
    if (rc) { craft_tensor_release(w); return rc; }
    *t = w;
    return CRAFT_OK;
}

static int binary_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    int op = (int)n->iarg[0], code = (int)n->iarg[1];
    craft_tensor *g;
    CRAFT_TRY(cl_on_device(gout[0], code, &g));
    int rc = CRAFT_OK;
    for (int which = 0; which < 2 && !rc; which++) {
        if (!CRAFT_NEEDS_GRAD(n, which)) continue;
        craft_tensor *t;
        rc = binary_grad(op, which, n->saved[0], n->saved[1], g, &t);
        if (rc) break;
        rc = cl_sum_to_shape(t, n->edges[which].ndim, n->edges[which].shape, &gin[which]);
        craft_tensor_release(t);
    }
    craft_tensor_release(g);
    return rc;
}

int craft_cl_op_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    const char *name = craft_binary_name(op);
    const craft_tensor *in[2] = {a, b};
    craft_tensor *m[2], *y = NULL;
    int code;
    CRAFT_TRY(operands(name, 2, in, m, &code));
    int rc = want_f32(name, "left operand", m[0], code);
    if (!rc) rc = want_f32(name, "right operand", m[1], code);
    if (!rc) rc = bin_new(op, m[0], m[1], &y);
    if (!rc) {
        const craft_tensor *ins[2] = {m[0], m[1]};
        int nsave = (op == CRAFT_ADD || op == CRAFT_SUB) ? 0 : 2;
        int64_t iargs[2] = {op, code};
        rc = craft_record(name, 2, ins, y, binary_backward, nsave, ins, NULL, 0, iargs, 2, NULL);
    }
    release_all(2, m);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static int scalar_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g, *y;
    CRAFT_TRY(grad_here(gout[0], x, &g));
    int rc = (y = cl_new(x->ndim, x->shape, CRAFT_F32, x->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) {
        cl_int op = (cl_int)n->iarg[0], rev = (cl_int)n->iarg[1];
        cl_float s = (cl_float)n->sarg[0];
        cl_arg extra[3] = {CLA(op), CLA(s), CLA(rev)};
        const craft_tensor *ins[2] = {x, g};
        rc = run_into("scalar backward", K_scalar_grad, y, 2, ins, 3, extra);
    }
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(y); return rc; }
    gin[0] = y;
    return CRAFT_OK;
}

int craft_cl_op_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor **out) {
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    CRAFT_TRY(want_f32(craft_binary_name(op), "tensor operand", a, a->device));
    craft_tensor *y = cl_new(a->ndim, a->shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int rc = craft_cl_binary_scalar(op, a, s, reverse, y);
    int64_t iargs[2] = {op, reverse ? 1 : 0};
    if (!rc) rc = craft_record(craft_binary_name(op), 1, &a, y, scalar_backward, 1, &a, &s, 1, iargs, 2, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

int craft_cl_op_compare(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    const craft_tensor *in[2] = {a, b};
    craft_tensor *m[2], *y = NULL;
    int code;
    CRAFT_TRY(operands("compare", 2, in, m, &code));
    const craft_tensor *ins[2] = {m[0], m[1]};
    int rc = new_bcast("compare", 2, ins, code, &y);
    if (!rc) rc = craft_cl_compare(op, m[0], m[1], y);
    release_all(2, m);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static int clamp_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g, *y;
    CRAFT_TRY(grad_here(gout[0], x, &g));
    int rc = (y = cl_new(x->ndim, x->shape, CRAFT_F32, x->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) {
        cl_float lo = (cl_float)n->sarg[0], hi = (cl_float)n->sarg[1];
        cl_arg extra[2] = {CLA(lo), CLA(hi)};
        const craft_tensor *ins[2] = {x, g};
        rc = run_into("clamp backward", K_clamp_grad, y, 2, ins, 2, extra);
    }
    craft_tensor_release(g);
    if (rc) { craft_tensor_release(y); return rc; }
    gin[0] = y;
    return CRAFT_OK;
}

int craft_cl_op_clamp(const craft_tensor *a, double lo, double hi, craft_tensor **out) {
    CRAFT_TRY(want_f32("clamp", "input", a, a->device));
    if (lo > hi) return craft_fail(CRAFT_EINVAL, "clamp: min %g is above max %g", lo, hi);
    craft_tensor *y = cl_new(a->ndim, a->shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    cl_float flo = (cl_float)lo, fhi = (cl_float)hi;
    cl_arg extra[2] = {CLA(flo), CLA(fhi)};
    int rc = run_into("clamp", K_clamp_fwd, y, 1, &a, 2, extra);
    double s[2] = {lo, hi};
    if (!rc) rc = craft_record("clamp", 1, &a, y, clamp_backward, 1, &a, s, 2, NULL, 0, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static int where_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *c = n->saved[0], *g;
    CRAFT_TRY(grad_here(gout[0], c, &g));
    int rc = CRAFT_OK;
    for (int side = 0; side < 2 && !rc; side++) {
        if (!CRAFT_NEEDS_GRAD(n, side + 1)) continue;
        craft_tensor *t = cl_new(g->ndim, g->shape, CRAFT_F32, g->device);
        if (!t) { rc = craft_last_status(); break; }
        cl_int sd = side;
        cl_arg extra[1] = {CLA(sd)};
        const craft_tensor *ins[2] = {c, g};
        rc = run_into("where backward", K_where_grad, t, 2, ins, 1, extra);
        if (!rc) rc = cl_sum_to_shape(t, n->edges[side + 1].ndim, n->edges[side + 1].shape, &gin[side + 1]);
        craft_tensor_release(t);
    }
    craft_tensor_release(g);
    return rc;
}

int craft_cl_op_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    const craft_tensor *in[3] = {cond, a, b};
    craft_tensor *m[3], *y = NULL;
    int code;
    CRAFT_TRY(operands("where", 3, in, m, &code));
    const craft_tensor *ins[3] = {m[0], m[1], m[2]};
    int rc = want_f32("where", "condition", m[0], code);
    if (!rc) rc = want_f32("where", "first value", m[1], code);
    if (!rc) rc = want_f32("where", "second value", m[2], code);
    if (!rc) rc = new_bcast("where", 3, ins, code, &y);
    if (!rc) rc = run_into("where", K_where_fwd, y, 3, ins, 0, NULL);
    if (!rc) rc = craft_record("where", 3, ins, y, where_backward, 1, ins, NULL, 0, NULL, 0, NULL);
    release_all(3, m);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* The numeric guard for device tensors: read back, then scan. */
int craft_cl_guard_check(const char *op, const char *what, const craft_tensor *t) {
    if (!craft_numeric_guard() || !t || t->dtype != CRAFT_F32) return CRAFT_OK;
    craft_tensor *h = craft_new_tensor(t->ndim, t->shape, CRAFT_F32, CRAFT_DEVICE_CPU);
    if (!h) return craft_last_status();
    int rc = craft_cl_copy_(h, t);
    const float *p = craft_tensor_data(h);
    for (int64_t i = 0; !rc && i < h->numel; i++)
        if (!__builtin_isfinite(p[i]))
            rc = craft_fail(CRAFT_ENUMERIC, "numeric guard: %s produced %s in its %s %s on cl:%d (element %lld)", op,
                            p[i] != p[i] ? "NaN" : "Inf", what, craft_shape_str(t), t->device - 1, (long long)i);
    craft_tensor_release(h);
    return rc;
}
