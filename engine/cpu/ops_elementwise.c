/* ops_elementwise.c: unary and binary elementwise ops with broadcasting, forward and backward
 * side by side. Compute is float32; inputs may be any strided view. */
#include "core/internal.h"
#include <math.h>

static const char *unary_names[CRAFT_UNARY_COUNT] = {
    "neg", "exp", "log", "sqrt", "rsqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "silu",
    "gelu", "gelu_tanh", "quick_gelu", "square", "reciprocal", "softplus", "log1p"};
static const char *binary_names[CRAFT_BINARY_COUNT] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
const char *craft_unary_name(int op) { return op >= 0 && op < CRAFT_UNARY_COUNT ? unary_names[op] : "?"; }
const char *craft_binary_name(int op) { return op >= 0 && op < CRAFT_BINARY_COUNT ? binary_names[op] : "?"; }

#define GELU_TANH_C 0.7978845608028654f   /* sqrt(2/pi) */

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline float unary_f(int op, float x) {
    switch (op) {
    case CRAFT_NEG: return -x;
    case CRAFT_EXP: return expf(x);
    case CRAFT_LOG: return logf(x);
    case CRAFT_SQRT: return sqrtf(x);
    case CRAFT_RSQRT: return 1.0f / sqrtf(x);
    case CRAFT_ABS: return fabsf(x);
    case CRAFT_SIN: return sinf(x);
    case CRAFT_COS: return cosf(x);
    case CRAFT_TANH: return tanhf(x);
    case CRAFT_SIGMOID: return sigmoidf_(x);
    case CRAFT_RELU: return x > 0 ? x : 0;
    case CRAFT_SILU: return x * sigmoidf_(x);
    case CRAFT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case CRAFT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(GELU_TANH_C * (x + 0.044715f * x * x * x)));
    case CRAFT_QUICK_GELU: return x * sigmoidf_(1.702f * x);
    case CRAFT_SQUARE: return x * x;
    case CRAFT_RECIPROCAL: return 1.0f / x;
    case CRAFT_SOFTPLUS: return x > 20.0f ? x : log1pf(expf(x));
    case CRAFT_LOG1P: return log1pf(x);
    }
    return 0;
}

/* d op(x) / dx */
static inline float unary_df(int op, float x) {
    switch (op) {
    case CRAFT_NEG: return -1;
    case CRAFT_EXP: return expf(x);
    case CRAFT_LOG: return 1.0f / x;
    case CRAFT_SQRT: return 0.5f / sqrtf(x);
    case CRAFT_RSQRT: return -0.5f / (x * sqrtf(x));
    case CRAFT_ABS: return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f);
    case CRAFT_SIN: return cosf(x);
    case CRAFT_COS: return -sinf(x);
    case CRAFT_TANH: { float t = tanhf(x); return 1 - t * t; }
    case CRAFT_SIGMOID: { float s = sigmoidf_(x); return s * (1 - s); }
    case CRAFT_RELU: return x > 0 ? 1.0f : 0.0f;
    case CRAFT_SILU: { float s = sigmoidf_(x); return s * (1 + x * (1 - s)); }
    case CRAFT_GELU: return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.3989422804014327f * expf(-0.5f * x * x);
    case CRAFT_GELU_TANH: {
        float u = GELU_TANH_C * (x + 0.044715f * x * x * x), t = tanhf(u);
        return 0.5f * (1 + t) + 0.5f * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715f * x * x);
    }
    case CRAFT_QUICK_GELU: { float s = sigmoidf_(1.702f * x); return s + 1.702f * x * s * (1 - s); }
    case CRAFT_SQUARE: return 2 * x;
    case CRAFT_RECIPROCAL: return -1.0f / (x * x);
    case CRAFT_SOFTPLUS: return sigmoidf_(x);
    case CRAFT_LOG1P: return 1.0f / (1.0f + x);
    }
    return 0;
}

typedef struct { int op; } op_ctx;

static void unary_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    float *y = (float *)p[0];
    if (s[1] == 4) {
        const float *x = (const float *)p[1];
        for (int64_t i = 0; i < n; i++) y[i] = unary_f(op, x[i]);
    } else {
        for (int64_t i = 0; i < n; i++) y[i] = unary_f(op, *(const float *)(p[1] + i * s[1]));
    }
}

/* gx = g * f'(x), all contiguous-by-iterator */
static void unary_grad_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    for (int64_t i = 0; i < n; i++) {
        float x = *(const float *)(p[1] + i * s[1]), g = *(const float *)(p[2] + i * s[2]);
        *(float *)(p[0] + i * s[0]) = g * unary_df(op, x);
    }
}

/* Runs a same-shape elementwise loop writing a fresh contiguous f32 tensor. */
static int map_new(const craft_tensor *shape_of, int nin, const craft_tensor **ins, craft_loop_fn fn, void *ctx,
                   craft_tensor **out) {
    craft_tensor *y = craft_new_tensor(shape_of->ndim, shape_of->shape, CRAFT_F32, shape_of->device);
    if (!y) return craft_last_status();
    int64_t st[4][CRAFT_MAX_DIMS];
    char *base[4];
    craft_broadcast_strides(y, y->ndim, y->shape, st[0]);
    base[0] = craft_elem_ptr(y);
    for (int i = 0; i < nin; i++) {
        craft_broadcast_strides(ins[i], y->ndim, y->shape, st[i + 1]);
        base[i + 1] = craft_elem_ptr(ins[i]);
    }
    craft_iter(nin + 1, y->ndim, y->shape, base, st, fn, ctx, 1);
    *out = y;
    return CRAFT_OK;
}

static int unary_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    op_ctx c = {(int)n->iarg[0]};
    const craft_tensor *ins[2] = {n->saved[0], gout[0]};
    return map_new(n->saved[0], 2, ins, unary_grad_loop, &c, &gin[0]);
}

int craft_unary(int op, const craft_tensor *a, craft_tensor **out) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_unary(op, a, out);
    if (op < 0 || op >= CRAFT_UNARY_COUNT) return craft_fail(CRAFT_EINVAL, "unary: unknown op %d", op);
    CRAFT_TRY(craft_check_f32(unary_names[op], "input", a));
    op_ctx c = {op};
    craft_tensor *y;
    const craft_tensor *ins[1] = {a};
    CRAFT_TRY(map_new(a, 1, ins, unary_loop, &c, &y));
    int64_t iarg = op;
    int rc = craft_record(unary_names[op], 1, &a, y, unary_backward, 1, &a, NULL, 0, &iarg, 1, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---- binary ---- */
static inline float binary_f(int op, float a, float b) {
    switch (op) {
    case CRAFT_ADD: return a + b;
    case CRAFT_SUB: return a - b;
    case CRAFT_MUL: return a * b;
    case CRAFT_DIV: return a / b;
    case CRAFT_POW: return powf(a, b);
    case CRAFT_MAXIMUM: return a > b || a != a ? a : b;
    case CRAFT_MINIMUM: return a < b || a != a ? a : b;
    }
    return 0;
}

static void binary_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    float *y = (float *)p[0];
    if (s[1] == 4 && s[2] == 4) {
        const float *a = (const float *)p[1], *b = (const float *)p[2];
        switch (op) {   /* the common cases, written out so that they vectorise */
        case CRAFT_ADD: for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i]; return;
        case CRAFT_SUB: for (int64_t i = 0; i < n; i++) y[i] = a[i] - b[i]; return;
        case CRAFT_MUL: for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i]; return;
        case CRAFT_DIV: for (int64_t i = 0; i < n; i++) y[i] = a[i] / b[i]; return;
        }
    } else if (s[1] == 4 && s[2] == 0) {
        const float *a = (const float *)p[1];
        float b = *(const float *)p[2];
        switch (op) {
        case CRAFT_ADD: for (int64_t i = 0; i < n; i++) y[i] = a[i] + b; return;
        case CRAFT_MUL: for (int64_t i = 0; i < n; i++) y[i] = a[i] * b; return;
        }
    }
    for (int64_t i = 0; i < n; i++)
        *(float *)(p[0] + i * s[0]) = binary_f(op, *(const float *)(p[1] + i * s[1]), *(const float *)(p[2] + i * s[2]));
}

static int binary_raw(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    int nd;
    int64_t shape[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_broadcast_shape(binary_names[op], a, b, &nd, shape));
    craft_tensor *y = craft_new_tensor(nd, shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int64_t st[3][CRAFT_MAX_DIMS];
    craft_broadcast_strides(y, nd, shape, st[0]);
    craft_broadcast_strides(a, nd, shape, st[1]);
    craft_broadcast_strides(b, nd, shape, st[2]);
    char *base[3] = {craft_elem_ptr(y), craft_elem_ptr(a), craft_elem_ptr(b)};
    op_ctx c = {op};
    craft_iter(3, nd, shape, base, st, binary_loop, &c, 1);
    *out = y;
    return CRAFT_OK;
}

/* t = op(x, y) without recording, as a helper for backward formulas */
#define BIN(op, x, y, t) CRAFT_TRY(binary_raw(op, x, y, &(t)))

static int reduce_into(craft_tensor *g, const craft_edge *e, craft_tensor **gin) {
    int rc = craft_sum_to_shape(g, e->ndim, e->shape, gin);
    craft_tensor_release(g);
    return rc;
}

typedef struct { int op; float a; int which; } mask_ctx;
/* gradient routing for maximum/minimum: out = g where (a wins) for which=0, else where b wins */
static void minmax_mask_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    mask_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * s[1]), b = *(const float *)(p[2] + i * s[2]), g = *(const float *)(p[3] + i * s[3]);
        int a_wins = c->op == CRAFT_MAXIMUM ? (a > b) : (a < b);
        float share = a == b ? 0.5f : (float)(c->which == 0 ? a_wins : !a_wins);
        *(float *)(p[0] + i * s[0]) = g * share;
    }
}

static int binary_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    int op = (int)n->iarg[0];
    craft_tensor *a = n->saved[0], *b = n->saved[1], *g = gout[0], *t, *u;
    for (int which = 0; which < 2; which++) {
        if (!CRAFT_NEEDS_GRAD(n, which)) continue;
        switch (op) {
        case CRAFT_ADD: t = craft_tensor_retain(g); break;
        case CRAFT_SUB:
            if (which == 0) t = craft_tensor_retain(g);
            else CRAFT_TRY(craft_binary_scalar(CRAFT_MUL, g, -1.0, 0, &t));
            break;
        case CRAFT_MUL: BIN(CRAFT_MUL, g, which == 0 ? b : a, t); break;
        case CRAFT_DIV:
            if (which == 0) BIN(CRAFT_DIV, g, b, t);
            else {   /* -g a / b^2 */
                BIN(CRAFT_DIV, a, b, u);
                craft_tensor *v;
                int rc = binary_raw(CRAFT_DIV, u, b, &v);
                craft_tensor_release(u);
                if (rc) return rc;
                rc = binary_raw(CRAFT_MUL, g, v, &t);
                craft_tensor_release(v);
                if (rc) return rc;
                CRAFT_TRY(craft_scale_(t, -1.0));
            }
            break;
        case CRAFT_POW: {
            craft_tensor *v;
            if (which == 0) {   /* g b a^(b-1) */
                craft_tensor *bm1;
                CRAFT_TRY(craft_binary_scalar(CRAFT_SUB, b, 1.0, 0, &bm1));
                int rc = binary_raw(CRAFT_POW, a, bm1, &u);
                craft_tensor_release(bm1);
                if (rc) return rc;
                rc = binary_raw(CRAFT_MUL, u, b, &v);
                craft_tensor_release(u);
                if (rc) return rc;
            } else {            /* g a^b log a */
                craft_tensor *la;
                BIN(CRAFT_POW, a, b, u);
                int rc = craft_unary(CRAFT_LOG, a, &la);
                if (rc) { craft_tensor_release(u); return rc; }
                rc = binary_raw(CRAFT_MUL, u, la, &v);
                craft_tensor_release(u);
                craft_tensor_release(la);
                if (rc) return rc;
            }
            int rc = binary_raw(CRAFT_MUL, g, v, &t);
            craft_tensor_release(v);
            if (rc) return rc;
            break;
        }
        default: {   /* maximum / minimum */
            int nd;
            int64_t shape[CRAFT_MAX_DIMS];
            CRAFT_TRY(craft_broadcast_shape("minmax backward", a, b, &nd, shape));
            t = craft_new_tensor(nd, shape, CRAFT_F32, a->device);
            if (!t) return craft_last_status();
            int64_t st[4][CRAFT_MAX_DIMS];
            craft_broadcast_strides(t, nd, shape, st[0]);
            craft_broadcast_strides(a, nd, shape, st[1]);
            craft_broadcast_strides(b, nd, shape, st[2]);
            craft_broadcast_strides(g, nd, shape, st[3]);
            char *base[4] = {craft_elem_ptr(t), craft_elem_ptr(a), craft_elem_ptr(b), craft_elem_ptr(g)};
            mask_ctx c = {op, 0, which};
            craft_iter(4, nd, shape, base, st, minmax_mask_loop, &c, 1);
        }
        }
        CRAFT_TRY(reduce_into(t, &n->edges[which], &gin[which]));
    }
    return CRAFT_OK;
}

int craft_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if ((a && a->device != CRAFT_DEVICE_CPU) || (b && b->device != CRAFT_DEVICE_CPU)) return craft_cl_op_binary(op, a, b, out);
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    CRAFT_TRY(craft_check_f32(binary_names[op], "left operand", a));
    CRAFT_TRY(craft_check_f32(binary_names[op], "right operand", b));
    craft_tensor *y;
    CRAFT_TRY(binary_raw(op, a, b, &y));
    const craft_tensor *ins[2] = {a, b};
    /* add/sub need no saved tensors, only shapes (kept in the edges) */
    int nsave = (op == CRAFT_ADD || op == CRAFT_SUB) ? 0 : 2;
    int64_t iarg = op;
    int rc = craft_record(binary_names[op], 2, ins, y, binary_backward, nsave, ins, NULL, 0, &iarg, 1, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---- tensor op scalar ---- */
typedef struct { int op; float s; int reverse; } scalar_ctx;

static void scalar_loop(int64_t n, char **p, const int64_t *st, void *vctx) {
    scalar_ctx *c = vctx;
    float s = c->s;
    if (st[1] == 4 && !c->reverse) {
        float *y = (float *)p[0];
        const float *a = (const float *)p[1];
        switch (c->op) {
        case CRAFT_ADD: for (int64_t i = 0; i < n; i++) y[i] = a[i] + s; return;
        case CRAFT_SUB: for (int64_t i = 0; i < n; i++) y[i] = a[i] - s; return;
        case CRAFT_MUL: for (int64_t i = 0; i < n; i++) y[i] = a[i] * s; return;
        case CRAFT_DIV: for (int64_t i = 0; i < n; i++) y[i] = a[i] / s; return;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * st[1]);
        *(float *)(p[0] + i * st[0]) = c->reverse ? binary_f(c->op, s, a) : binary_f(c->op, a, s);
    }
}

/* d/da of (a op s) or (s op a) */
static void scalar_grad_loop(int64_t n, char **p, const int64_t *st, void *vctx) {
    scalar_ctx *c = vctx;
    float s = c->s;
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * st[1]), g = *(const float *)(p[2] + i * st[2]), d = 0;
        switch (c->op) {
        case CRAFT_ADD: d = 1; break;
        case CRAFT_SUB: d = c->reverse ? -1.0f : 1.0f; break;
        case CRAFT_MUL: d = s; break;
        case CRAFT_DIV: d = c->reverse ? -s / (a * a) : 1.0f / s; break;
        case CRAFT_POW: d = c->reverse ? powf(s, a) * logf(s) : (s == 0 ? 0 : s * powf(a, s - 1)); break;
        case CRAFT_MAXIMUM: d = a > s ? 1.0f : (a == s ? 0.5f : 0.0f); break;
        case CRAFT_MINIMUM: d = a < s ? 1.0f : (a == s ? 0.5f : 0.0f); break;
        }
        *(float *)(p[0] + i * st[0]) = g * d;
    }
}

static int scalar_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    scalar_ctx c = {(int)n->iarg[0], (float)n->sarg[0], (int)n->iarg[1]};
    const craft_tensor *ins[2] = {n->saved[0], gout[0]};
    return map_new(n->saved[0], 2, ins, scalar_grad_loop, &c, &gin[0]);
}

int craft_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor **out) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_binary_scalar(op, a, s, reverse, out);
    if (op < 0 || op >= CRAFT_BINARY_COUNT) return craft_fail(CRAFT_EINVAL, "binary: unknown op %d", op);
    CRAFT_TRY(craft_check_f32(binary_names[op], "tensor operand", a));
    scalar_ctx c = {op, (float)s, reverse ? 1 : 0};
    craft_tensor *y;
    const craft_tensor *ins[1] = {a};
    CRAFT_TRY(map_new(a, 1, ins, scalar_loop, &c, &y));
    int64_t iargs[2] = {op, c.reverse};
    double sarg = s;
    int rc = craft_record(binary_names[op], 1, &a, y, scalar_backward, 1, &a, &sarg, 1, iargs, 2, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ---- comparisons, clamp, where, lerp ---- */
static void compare_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * s[1]), b = *(const float *)(p[2] + i * s[2]);
        int r = 0;
        switch (op) {
        case CRAFT_EQ: r = a == b; break;
        case CRAFT_NE: r = a != b; break;
        case CRAFT_LT: r = a < b; break;
        case CRAFT_LE: r = a <= b; break;
        case CRAFT_GT: r = a > b; break;
        case CRAFT_GE: r = a >= b; break;
        }
        *(float *)(p[0] + i * s[0]) = (float)r;
    }
}

int craft_compare(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if ((a && a->device != CRAFT_DEVICE_CPU) || (b && b->device != CRAFT_DEVICE_CPU)) return craft_cl_op_compare(op, a, b, out);
    if (op < CRAFT_EQ || op > CRAFT_GE) return craft_fail(CRAFT_EINVAL, "compare: unknown op %d", op);
    CRAFT_TRY(craft_check_f32("compare", "left operand", a));
    CRAFT_TRY(craft_check_f32("compare", "right operand", b));
    int nd;
    int64_t shape[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_broadcast_shape("compare", a, b, &nd, shape));
    craft_tensor *y = craft_new_tensor(nd, shape, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int64_t st[3][CRAFT_MAX_DIMS];
    craft_broadcast_strides(y, nd, shape, st[0]);
    craft_broadcast_strides(a, nd, shape, st[1]);
    craft_broadcast_strides(b, nd, shape, st[2]);
    char *base[3] = {craft_elem_ptr(y), craft_elem_ptr(a), craft_elem_ptr(b)};
    op_ctx c = {op};
    craft_iter(3, nd, shape, base, st, compare_loop, &c, 1);
    *out = y;
    return CRAFT_OK;
}

typedef struct { float lo, hi; } clamp_ctx;
static void clamp_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    clamp_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float x = *(const float *)(p[1] + i * s[1]);
        *(float *)(p[0] + i * s[0]) = x < c->lo ? c->lo : (x > c->hi ? c->hi : x);
    }
}
static void clamp_grad_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    clamp_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float x = *(const float *)(p[1] + i * s[1]), g = *(const float *)(p[2] + i * s[2]);
        *(float *)(p[0] + i * s[0]) = (x >= c->lo && x <= c->hi) ? g : 0.0f;
    }
}
static int clamp_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    clamp_ctx c = {(float)n->sarg[0], (float)n->sarg[1]};
    const craft_tensor *ins[2] = {n->saved[0], gout[0]};
    return map_new(n->saved[0], 2, ins, clamp_grad_loop, &c, &gin[0]);
}

int craft_clamp(const craft_tensor *a, double lo, double hi, craft_tensor **out) {
    if (a && a->device != CRAFT_DEVICE_CPU) return craft_cl_op_clamp(a, lo, hi, out);
    CRAFT_TRY(craft_check_f32("clamp", "input", a));
    if (lo > hi) return craft_fail(CRAFT_EINVAL, "clamp: min %g is above max %g", lo, hi);
    clamp_ctx c = {(float)lo, (float)hi};
    craft_tensor *y;
    const craft_tensor *ins[1] = {a};
    CRAFT_TRY(map_new(a, 1, ins, clamp_loop, &c, &y));
    double s[2] = {lo, hi};
    int rc = craft_record("clamp", 1, &a, y, clamp_backward, 1, &a, s, 2, NULL, 0, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static void where_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int side = ((op_ctx *)vctx)->op;   /* -1: forward select; 0/1: gradient routing */
    for (int64_t i = 0; i < n; i++) {
        float c = *(const float *)(p[1] + i * s[1]);
        float v;
        if (side < 0) v = c != 0 ? *(const float *)(p[2] + i * s[2]) : *(const float *)(p[3] + i * s[3]);
        else v = ((c != 0) == (side == 0)) ? *(const float *)(p[2] + i * s[2]) : 0.0f;
        *(float *)(p[0] + i * s[0]) = v;
    }
}

static int where_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    for (int which = 0; which < 2; which++) {
        if (!CRAFT_NEEDS_GRAD(n, which + 1)) continue;
        op_ctx c = {which};
        const craft_tensor *ins[2] = {n->saved[0], gout[0]};
        craft_tensor *t;
        CRAFT_TRY(map_new(gout[0], 2, ins, where_loop, &c, &t));
        CRAFT_TRY(reduce_into(t, &n->edges[which + 1], &gin[which + 1]));
    }
    return CRAFT_OK;
}

int craft_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor **out) {
    if ((cond && cond->device != CRAFT_DEVICE_CPU) || (a && a->device != CRAFT_DEVICE_CPU) || (b && b->device != CRAFT_DEVICE_CPU)) return craft_cl_op_where(cond, a, b, out);
    CRAFT_TRY(craft_check_f32("where", "condition", cond));
    CRAFT_TRY(craft_check_f32("where", "first value", a));
    CRAFT_TRY(craft_check_f32("where", "second value", b));
    int nd, nd2;
    int64_t s1[CRAFT_MAX_DIMS], s2[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_broadcast_shape("where", a, b, &nd, s1));
    craft_tensor *tmp = craft_new_tensor(nd, s1, CRAFT_F32, 0);   /* shape carrier only */
    if (!tmp) return craft_last_status();
    int rc = craft_broadcast_shape("where", cond, tmp, &nd2, s2);
    craft_tensor_release(tmp);
    if (rc) return rc;
    craft_tensor *y = craft_new_tensor(nd2, s2, CRAFT_F32, a->device);
    if (!y) return craft_last_status();
    int64_t st[4][CRAFT_MAX_DIMS];
    craft_broadcast_strides(y, nd2, s2, st[0]);
    craft_broadcast_strides(cond, nd2, s2, st[1]);
    craft_broadcast_strides(a, nd2, s2, st[2]);
    craft_broadcast_strides(b, nd2, s2, st[3]);
    char *base[4] = {craft_elem_ptr(y), craft_elem_ptr(cond), craft_elem_ptr(a), craft_elem_ptr(b)};
    op_ctx c = {-1};
    craft_iter(4, nd2, s2, base, st, where_loop, &c, 1);
    const craft_tensor *ins[3] = {cond, a, b};
    rc = craft_record("where", 3, ins, y, where_backward, 1, &cond, NULL, 0, NULL, 0, NULL);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
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
