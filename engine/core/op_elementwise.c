/* op_elementwise.c: unary, binary, tensor-scalar, compare, clamp, where and lerp, written once
 * for every device: argument checks, broadcasting, output allocation, autograd recording and
 * the backward formulas, on the back end's elementwise kernels (core/backend.h). Compute is
 * float32; inputs may be any strided view. A CPU operand next to a device one is copied over
 * (differentiably): that also serves the gradients the autograd engine makes on the CPU. */
#include "core/backend.h"

static const char *unary_names[CRAFT_UNARY_COUNT] = {"neg",        "exp",       "log",        "sqrt",
                                                     "rsqrt",      "abs",       "sin",        "cos",
                                                     "tanh",       "sigmoid",   "relu",       "silu",
                                                     "gelu",       "gelu_tanh", "quick_gelu", "square",
                                                     "reciprocal", "softplus",  "log1p"};
static const char *binary_names[CRAFT_BINARY_COUNT] = {"add", "sub",     "mul",    "div",
                                                       "pow", "maximum", "minimum"};
const char *craft_unary_name(int op) { return op >= 0 && op < CRAFT_UNARY_COUNT ? unary_names[op] : "?"; }
const char *craft_binary_name(int op) { return op >= 0 && op < CRAFT_BINARY_COUNT ? binary_names[op] : "?"; }

/* The broadcast shape of ts[0..n), folded left to right. */
static int bcast_shape(const char *op, int n, const craft_tensor *const *ts, int *nd, int64_t *shape) {
    *nd = ts[0]->ndim;
    memcpy(shape, ts[0]->shape, sizeof(int64_t) * CRAFT_MAX_DIMS);
    for (int i = 1; i < n; i++) {
        craft_tensor acc = *ts[0];
        acc.ndim = *nd;
        memcpy(acc.shape, shape, sizeof acc.shape);
        CRAFT_TRY(craft_broadcast_shape(op, &acc, ts[i], nd, shape));
    }
    return CRAFT_OK;
}

/* A fresh f32 output of the broadcast shape of ins, on device. */
static int new_out(const char *op, int n, const craft_tensor *const *ins, int device, craft_tensor **out) {
    int nd;
    int64_t shape[CRAFT_MAX_DIMS];
    CRAFT_TRY(bcast_shape(op, n, ins, &nd, shape));
    *out = craft_new_tensor(nd, shape, CRAFT_F32, device);
    return *out ? CRAFT_OK : craft_last_status();
}

/* The operands of an op on one device (new references in m; CPU ones copied over), each an
 * f32 tensor there (args name them in messages). */
static int operands(const char *op, int n, const craft_tensor *const *in, const char *const *args,
                    craft_tensor **m, int *device) {
    for (int i = 0; i < n; i++) {
        m[i] = NULL;
        if (!in[i]) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, args[i]);
    }
    CRAFT_TRY(craft_op_device(op, n, in, device));
    int rc = CRAFT_OK;
    for (int i = 0; i < n && !rc; i++) {
        rc = craft_bring(op, args[i], in[i], *device, &m[i]);
        if (!rc) rc = craft_want(op, args[i], m[i], *device);
    }
    if (rc)
        for (int i = 0; i < n; i++) {
            craft_tensor_release(m[i]);
            m[i] = NULL;
        }
    return rc;
}
static void release_n(int n, craft_tensor **m) {
    for (int i = 0; i < n; i++) craft_tensor_release(m[i]);
}

static int reduce_into(craft_tensor *t, const craft_edge *e, craft_tensor **gin) {
    int rc = craft_sum_to_shape(t, e->ndim, e->shape, gin);
    craft_tensor_release(t);
    return rc;
}

/* ---------------------------------------------------------------- unary ---- */
static int unary_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g, *gx;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_unary_grad, CRAFT_F32, n->name, &k));
    CRAFT_TRY(craft_on_device(gout[0], x->device, &g));
    int rc =
        (gx = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = k->unary_grad((int)n->iarg[0], x, g, gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

int craft_unary(int op, const craft_tensor *a, craft_tensor **out) {
    if (op < 0 || op >= CRAFT_UNARY_COUNT) return craft_fail(CRAFT_EINVAL, "unary: unknown op %d", op);
    if (!a) return craft_fail(CRAFT_EINVAL, "%s: input is missing", unary_names[op]);
    const craft_kernels *k;
    CRAFT_TRY(craft_want(unary_names[op], "input", a, a->device));
    CRAFT_TRY(craft_kernels_for(a->device, CRAFT_K_unary, CRAFT_F32, unary_names[op], &k));
    craft_tensor *y = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int64_t iarg = op;
    int rc = k->unary(op, a, y);
    if (!rc) rc = craft_record(unary_names[op], 1, &a, y, unary_backward, 1, &a, NULL, 0, &iarg, 1, NULL);
    return craft_finish(rc, y, out);
}

/* ---------------------------------------------------------------- binary ---- */
/* t = x op y and t = x op s, fresh, not recorded (backward formulas) */
static int bin(const craft_kernels *k, int op, const craft_tensor *x, const craft_tensor *y,
               craft_tensor **t) {
    const craft_tensor *ins[2] = {x, y};
    CRAFT_TRY(new_out(binary_names[op], 2, ins, x->device, t));
    return craft_finish(k->binary(op, x, y, *t), *t, t);
}
static int scal(const craft_kernels *k, int op, const craft_tensor *x, double s, craft_tensor **t) {
    if (!(*t = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device))) return craft_last_status();
    return craft_finish(k->binary_scalar(op, x, s, 0, *t), *t, t);
}

/* d(a op b)/da (which 0) or /db (which 1) times g, before the sum to the operand's shape */
static int binary_grad(const craft_kernels *k, int op, int which, craft_tensor *a, craft_tensor *b,
                       craft_tensor *g, craft_tensor **t) {
    craft_tensor *u = NULL, *v = NULL, *w = NULL;
    int rc = CRAFT_OK;
    switch (op) {
    case CRAFT_ADD: *t = craft_tensor_retain(g); return CRAFT_OK;
    case CRAFT_SUB:
        if (which == 0) {
            *t = craft_tensor_retain(g);
            return CRAFT_OK;
        }
        return scal(k, CRAFT_MUL, g, -1.0, t);
    case CRAFT_MUL: return bin(k, CRAFT_MUL, g, which == 0 ? b : a, t);
    case CRAFT_DIV:
        if (which == 0) return bin(k, CRAFT_DIV, g, b, t);
        rc = bin(k, CRAFT_DIV, a, b, &u); /* -g a / b^2 */
        if (!rc) rc = bin(k, CRAFT_DIV, u, b, &v);
        if (!rc) rc = bin(k, CRAFT_MUL, g, v, &w);
        if (!rc) rc = k->scale(w, -1.0);
        break;
    case CRAFT_POW:
        if (which == 0) { /* g b a^(b-1) */
            rc = scal(k, CRAFT_SUB, b, 1.0, &u);
            if (!rc) rc = bin(k, CRAFT_POW, a, u, &v);
            craft_tensor_release(u);
            u = NULL;
            if (!rc) rc = bin(k, CRAFT_MUL, v, b, &u);
        } else { /* g a^b log a */
            craft_tensor *la = NULL;
            rc = bin(k, CRAFT_POW, a, b, &v);
            if (!rc)
                rc = (la = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device)) ? CRAFT_OK
                                                                                      : craft_last_status();
            if (!rc) rc = k->unary(CRAFT_LOG, a, la);
            if (!rc) rc = bin(k, CRAFT_MUL, v, la, &u);
            craft_tensor_release(la);
        }
        if (!rc) rc = bin(k, CRAFT_MUL, g, u, &w);
        break;
    default: { /* maximum / minimum */
        const craft_tensor *ins[2] = {a, b};
        rc = new_out("minmax backward", 2, ins, a->device, &w);
        if (!rc) rc = k->minmax_grad(op, which, a, b, g, w);
    }
    }
    craft_tensor_release(u);
    craft_tensor_release(v);
    return craft_finish(rc, w, t);
}

static int binary_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    int op = (int)n->iarg[0], device = n->device;
    const craft_kernels *k;
    static const int kids[5] = {CRAFT_K_binary, CRAFT_K_binary_scalar, CRAFT_K_unary, CRAFT_K_scale,
                                CRAFT_K_minmax_grad};
    CRAFT_TRY(craft_kernels_all(device, CRAFT_F32, n->name, 5, kids, &k));
    craft_tensor *g;
    CRAFT_TRY(craft_on_device(gout[0], device, &g));
    int rc = CRAFT_OK;
    for (int which = 0; which < 2 && !rc; which++) {
        if (!CRAFT_NEEDS_GRAD(n, which)) continue;
        craft_tensor *t;
        rc = binary_grad(k, op, which, n->saved[0], n->saved[1], g, &t);
        if (!rc) rc = reduce_into(t, &n->edges[which], &gin[which]);
    }
    craft_tensor_release(g);
    return rc;
}

int craft_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    const char *name = binary_names[op], *args[2] = {"left operand", "right operand"};
    const craft_tensor *in[2] = {a, b};
    craft_tensor *m[2], *y = NULL;
    const craft_kernels *k;
    int device;
    CRAFT_TRY(operands(name, 2, in, args, m, &device));
    int rc = craft_kernels_for(device, CRAFT_K_binary, CRAFT_F32, name, &k);
    if (!rc) rc = bin(k, op, m[0], m[1], &y);
    if (!rc) {
        const craft_tensor *ins[2] = {m[0], m[1]};
        /* add / sub need no saved tensors, only shapes (kept in the edges) */
        int nsave = (op == CRAFT_ADD || op == CRAFT_SUB) ? 0 : 2;
        int64_t iarg = op;
        rc = craft_record(name, 2, ins, y, binary_backward, nsave, ins, NULL, 0, &iarg, 1, NULL);
    }
    release_n(2, m);
    return craft_finish(rc, y, out);
}

/* --------------------------------------------------------- tensor op scalar ---- */
static int scalar_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g, *gx;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_scalar_grad, CRAFT_F32, n->name, &k));
    CRAFT_TRY(craft_on_device(gout[0], x->device, &g));
    int rc =
        (gx = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = k->scalar_grad((int)n->iarg[0], n->sarg[0], (int)n->iarg[1], x, g, gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

int craft_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor **out) {
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    if (!a) return craft_fail(CRAFT_EINVAL, "%s: tensor operand is missing", binary_names[op]);
    const craft_kernels *k;
    CRAFT_TRY(craft_want(binary_names[op], "tensor operand", a, a->device));
    CRAFT_TRY(craft_kernels_for(a->device, CRAFT_K_binary_scalar, CRAFT_F32, binary_names[op], &k));
    craft_tensor *y = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int rc = k->binary_scalar(op, a, s, reverse ? 1 : 0, y);
    int64_t iargs[2] = {op, reverse ? 1 : 0};
    if (!rc) rc = craft_record(binary_names[op], 1, &a, y, scalar_backward, 1, &a, &s, 1, iargs, 2, NULL);
    return craft_finish(rc, y, out);
}

/* ------------------------------------------------- compare, clamp, where ---- */
int craft_compare(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if (op < CRAFT_EQ || op > CRAFT_GE) return craft_fail(CRAFT_EINVAL, "compare: unknown op %d", op);
    const char *args[2] = {"left operand", "right operand"};
    const craft_tensor *in[2] = {a, b};
    craft_tensor *m[2], *y = NULL;
    const craft_kernels *k;
    int device;
    CRAFT_TRY(operands("compare", 2, in, args, m, &device));
    const craft_tensor *ins[2] = {m[0], m[1]};
    int rc = craft_kernels_for(device, CRAFT_K_compare, CRAFT_F32, "compare", &k);
    if (!rc) rc = new_out("compare", 2, ins, device, &y);
    if (!rc) rc = k->compare(op, m[0], m[1], y);
    release_n(2, m);
    return craft_finish(rc, y, out);
}

static int clamp_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *g, *gx;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(x->device, CRAFT_K_clamp_grad, CRAFT_F32, n->name, &k));
    CRAFT_TRY(craft_on_device(gout[0], x->device, &g));
    int rc =
        (gx = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device)) ? CRAFT_OK : craft_last_status();
    if (!rc) rc = k->clamp_grad(x, g, n->sarg[0], n->sarg[1], gx);
    craft_tensor_release(g);
    return craft_finish(rc, gx, &gin[0]);
}

int craft_clamp(const craft_tensor *a, double lo, double hi, craft_tensor **out) {
    if (!a) return craft_fail(CRAFT_EINVAL, "clamp: input is missing");
    const craft_kernels *k;
    CRAFT_TRY(craft_want("clamp", "input", a, a->device));
    if (lo > hi) return craft_fail(CRAFT_EINVAL, "clamp: min %g is above max %g", lo, hi);
    CRAFT_TRY(craft_kernels_for(a->device, CRAFT_K_clamp, CRAFT_F32, "clamp", &k));
    craft_tensor *y = craft_new_tensor(a->ndim, a->shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int rc = k->clamp(a, lo, hi, y);
    double s[2] = {lo, hi};
    if (!rc) rc = craft_record("clamp", 1, &a, y, clamp_backward, 1, &a, s, 2, NULL, 0, NULL);
    return craft_finish(rc, y, out);
}

static int where_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *c = n->saved[0], *g;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(c->device, CRAFT_K_where_grad, CRAFT_F32, n->name, &k));
    CRAFT_TRY(craft_on_device(gout[0], c->device, &g));
    int rc = CRAFT_OK;
    for (int side = 0; side < 2 && !rc; side++) {
        if (!CRAFT_NEEDS_GRAD(n, side + 1)) continue;
        craft_tensor *t = craft_new_tensor(g->ndim, g->shape, CRAFT_F32, g->device);
        if (!t) {
            rc = craft_last_status();
            break;
        }
        rc = k->where_grad(side, c, g, t);
        if (rc) craft_tensor_release(t);
        else rc = reduce_into(t, &n->edges[side + 1], &gin[side + 1]);
    }
    craft_tensor_release(g);
    return rc;
}

int craft_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    const char *args[3] = {"condition", "first value", "second value"};
    const craft_tensor *in[3] = {cond, a, b};
    craft_tensor *m[3], *y = NULL;
    const craft_kernels *k;
    int device;
    CRAFT_TRY(operands("where", 3, in, args, m, &device));
    const craft_tensor *ins[3] = {m[0], m[1], m[2]}, *order[3] = {m[1], m[2], m[0]};
    int rc = craft_kernels_for(device, CRAFT_K_where, CRAFT_F32, "where", &k);
    if (!rc) rc = new_out("where", 3, order, device, &y);
    if (!rc) rc = k->where(m[0], m[1], m[2], y);
    if (!rc) rc = craft_record("where", 3, ins, y, where_backward, 1, ins, NULL, 0, NULL, 0, NULL);
    release_n(3, m);
    return craft_finish(rc, y, out);
}

int craft_lerp(const craft_tensor *a, const craft_tensor *b, double w, craft_tensor **out) {
    /* a + w (b - a), composed so that autograd follows */
    craft_tensor *d, *wd;
    CRAFT_TRY(craft_binary(CRAFT_SUB, b, a, &d));
    int rc = craft_binary_scalar(CRAFT_MUL, d, w, 0, &wd);
    craft_tensor_release(d);
    if (rc) return rc;
    rc = craft_binary(CRAFT_ADD, a, wd, out);
    craft_tensor_release(wd);
    return rc;
}

/* ------------------------------------------------------------ in place ---- */
int craft_axpy_(craft_tensor *dst, double alpha, const craft_tensor *src) {
    if (!dst) return craft_fail(CRAFT_EINVAL, "axpy_: the destination tensor is NULL");
    if (!src) return craft_fail(CRAFT_EINVAL, "axpy_: the source tensor is NULL");
    const craft_kernels *k;
    CRAFT_TRY(craft_want("axpy_", "destination", dst, dst->device));
    if (src->dtype != CRAFT_F32) return craft_want("axpy_", "source", src, dst->device);
    int nd;
    int64_t shape[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_broadcast_shape("axpy_", dst, src, &nd, shape));
    if (nd != dst->ndim || craft_numel_of(nd, shape) != dst->numel)
        return craft_fail(CRAFT_ESHAPE, "axpy_: %s does not broadcast to %s", craft_shape_str(src),
                          craft_shape_str(dst));
    CRAFT_TRY(craft_kernels_for(dst->device, CRAFT_K_axpy, CRAFT_F32, "axpy_", &k));
    craft_tensor *s; /* a source elsewhere (a gradient made on the CPU) is copied over */
    CRAFT_TRY(craft_on_device(src, dst->device, &s));
    int rc = k->axpy(dst, alpha, s);
    craft_tensor_release(s);
    if (!rc) dst->storage->version++;
    return rc;
}

int craft_scale_(craft_tensor *t, double sc) {
    if (!t) return craft_fail(CRAFT_EINVAL, "scale_: the input tensor is NULL");
    const craft_kernels *k;
    CRAFT_TRY(craft_want("scale_", "tensor", t, t->device));
    CRAFT_TRY(craft_kernels_for(t->device, CRAFT_K_scale, CRAFT_F32, "scale_", &k));
    CRAFT_TRY(k->scale(t, sc));
    t->storage->version++;
    return CRAFT_OK;
}
