/* test_cl_ops.c: one table of op cases, every public op, each run on the CPU and on the device
 * under test (cl_check.h's DEV; tests/run.sh runs this once per OpenCL device) from the same
 * inputs: the output and every input gradient (upstream gradient: a random tensor) must agree
 * within the case's tolerance. Also: the device's back end has every kernel the CPU's has (the
 * seam is complete), and an op whose kernel a device lacks fails with one message naming the
 * op, the kernel and the device, and leaves the process usable. test_cl.c, test_cl_conv.c and
 * test_cl_nn.c check the same ops in depth (odd shapes, strides, chunking, errors). */
#include "check.h"
#include "core/backend.h"
#include <string.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */
#include "cl_check.h"

/* input kinds */
enum { IN_NORMAL, IN_POS, IN_IDX, IN_MASK, IN_WIDE };
typedef struct op_case op_case;
typedef int (*op_fn)(const op_case *c, craft_tensor **in, craft_tensor **out);
struct op_case {
    char name[64];
    op_fn fn;
    int nin;
    struct {
        int nd;
        int64_t shape[5];
        int kind, grad;
        int64_t lim;
    } in[4];
    int a, b; /* op codes, dims, modes */
    double x; /* a scalar argument */
    double rtol, atol;
};

#define MAX_CASES 256
static op_case cases[MAX_CASES];
static int ncases;

static op_case *add(const char *name, op_fn fn, double rtol, double atol) {
    op_case *c = &cases[ncases++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fn = fn;
    c->rtol = rtol;
    c->atol = atol;
    return c;
}
static void in(op_case *c, int kind, int grad, int nd, int64_t s0, int64_t s1, int64_t s2, int64_t s3) {
    int i = c->nin++;
    int64_t s[4] = {s0, s1, s2, s3};
    c->in[i].nd = nd;
    for (int k = 0; k < nd; k++) c->in[i].shape[k] = s[k];
    c->in[i].kind = kind;
    c->in[i].grad = grad;
    c->in[i].lim = 5; /* IN_IDX: indices in [0, lim) */
}

static craft_tensor *make_input(const op_case *c, int i, uint64_t seed) {
    int nd = c->in[i].nd;
    const int64_t *s = c->in[i].shape;
    craft_tensor *t = NULL, *u = NULL;
    switch (c->in[i].kind) {
    case IN_NORMAL:
        craft_empty(nd, s, CRAFT_F32, 0, &t);
        craft_randn_(t, seed, 0);
        return t;
    case IN_POS: return cpu_uniform(nd, s, seed, 0.5f, 2.0f);
    case IN_WIDE: return cpu_uniform(nd, s, seed, -300.0f, 300.0f);
    case IN_MASK: { /* 0 / 1 */
        craft_tensor *half;
        u = cpu_uniform(nd, s, seed, 0, 1);
        craft_full(0, NULL, CRAFT_F32, 0.5, &half);
        craft_compare(CRAFT_GT, u, half, &t);
        release(2, u, half);
        return t;
    }
    case IN_IDX: {
        u = cpu_uniform(nd, s, seed, 0, (float)c->in[i].lim - 0.01f);
        craft_to_dtype(u, CRAFT_I64, &t);
        craft_tensor_release(u);
        return t;
    }
    }
    return NULL;
}

/* --------------------------------------------------------------- the ops */
static int f_unary(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_unary(c->a, x[0], y);
}
static int f_binary(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_binary(c->a, x[0], x[1], y);
}
static int f_scalar(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_binary_scalar(c->a, x[0], c->x, c->b, y);
}
static int f_compare(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_compare(c->a, x[0], x[1], y);
}
static int f_clamp(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_clamp(x[0], -0.5, 0.7, y);
}
static int f_where(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_where(x[0], x[1], x[2], y);
}
static int f_lerp(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_lerp(x[0], x[1], 0.3, y);
}
static int f_reduce(const op_case *c, craft_tensor **x, craft_tensor **y) {
    int dims[2] = {c->b, c->b + 1};
    if (c->a == 0) return craft_sum(x[0], 2, dims, 1, y);
    if (c->a == 1) return craft_mean(x[0], 1, dims, 0, y);
    if (c->a == 2) return craft_var(x[0], 2, dims, 1, 0, y);
    return craft_sum(x[0], 0, NULL, 0, y);
}
static int f_max(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_max(x[0], c->b, 1, y, NULL);
}
static int f_min(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_min(x[0], c->b, 0, y, NULL);
}
static int f_argmax(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_argmax(x[0], c->b, 0, y);
}
static int f_matmul(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_matmul(x[0], x[1], y);
}
static int f_linear(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_linear(x[0], x[1], c->nin > 2 ? x[2] : NULL, y);
}
static int f_conv(const op_case *c, craft_tensor **x, craft_tensor **y) {
    int st[2] = {c->a, c->a}, pd[2] = {1, 1}, dl[2] = {1, 1};
    return craft_conv2d(x[0], x[1], c->nin > 2 ? x[2] : NULL, st, pd, dl, c->b, y);
}
static int f_convt(const op_case *c, craft_tensor **x, craft_tensor **y) {
    int st[2] = {c->a, c->a}, pd[2] = {1, 1}, op[2] = {c->a - 1, c->a - 1}, dl[2] = {1, 1};
    return craft_conv_transpose2d(x[0], x[1], c->nin > 2 ? x[2] : NULL, st, pd, op, dl, c->b, y);
}
static int f_group_norm(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_group_norm(x[0], c->a, c->nin > 1 ? x[1] : NULL, c->nin > 2 ? x[2] : NULL, 1e-5, y);
}
static int f_group_norm_silu(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_group_norm_act(x[0], c->a, x[1], x[2], 1e-5, CRAFT_SILU, y);
}
static int f_geglu(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_geglu(x[0], y);
}
static int f_layer_norm(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_layer_norm(x[0], c->a, c->nin > 1 ? x[1] : NULL, c->nin > 2 ? x[2] : NULL, 1e-5, y);
}
static int f_softmax(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return c->a ? craft_log_softmax(x[0], c->b, y) : craft_softmax(x[0], c->b, y);
}
static int f_sdpa(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_sdpa(x[0], x[1], x[2], c->nin > 3 ? x[3] : NULL, 0, c->a, y);
}
static int f_concat(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_concat(2, x, c->b, y);
}
static int f_pad(const op_case *c, craft_tensor **x, craft_tensor **y) {
    int64_t pads[4] = {1, 2, 2, 1};
    if (c->a == 0) pads[0] = -1;
    return craft_pad(x[0], 2, pads, c->a, 0.25, y);
}
static int f_interp(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_interpolate(x[0], 11, 7, c->a, c->b, y);
}
static int f_pool(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_avg_pool2d(x[0], 3, 2, 1, y);
}
static int f_embedding(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_embedding(x[0], x[1], y);
}
static int f_timestep(const op_case *c, craft_tensor **x, craft_tensor **y) {
    craft_tensor *t;
    int rc = craft_to_dtype(x[0], CRAFT_F32, &t);
    if (!rc) rc = craft_timestep_embedding(t, 33, 1, 1.0, 1.0, 10000, y);
    craft_tensor_release(t);
    return rc;
}
static int f_l2n(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_l2_normalize(x[0], c->b, 1e-12, y);
}
static int f_cos(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_cosine_similarity(x[0], x[1], c->b, 1e-8, y);
}
static int f_ce(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_cross_entropy(x[0], x[1], c->a, c->x, y);
}
static int f_mse(const op_case *c, craft_tensor **x, craft_tensor **y) {
    return craft_mse_loss(x[0], x[1], c->a, y);
}
static int f_to_dtype(const op_case *c, craft_tensor **x, craft_tensor **y) {
    craft_tensor *t;
    int rc = craft_to_dtype(x[0], c->a, &t);
    if (!rc) rc = craft_to_dtype(t, CRAFT_F32, y);
    craft_tensor_release(t);
    return rc;
}
static int f_contiguous(const op_case *c, craft_tensor **x, craft_tensor **y) {
    craft_tensor *t;
    int rc = craft_transpose(x[0], 0, 1, &t);
    if (!rc) rc = craft_contiguous(t, y);
    craft_tensor_release(t);
    return rc;
}
/* the in-place functions, on a copy of x[0] (the copy is the result) */
static int fresh(craft_tensor *x, craft_tensor **y) {
    int prev = craft_set_grad_enabled(0);
    int rc = craft_clone(x, y);
    craft_set_grad_enabled(prev);
    return rc;
}
static int f_inplace(const op_case *c, craft_tensor **x, craft_tensor **y) {
    craft_tensor *t;
    CRAFT_TRY(fresh(x[0], &t));
    int rc = CRAFT_OK;
    switch (c->a) {
    case 0: rc = craft_copy_(t, x[1]); break;
    case 1: rc = craft_fill_(t, -2.5); break;
    case 2: rc = craft_axpy_(t, 0.7, x[1]); break;
    case 3: rc = craft_scale_(t, -1.3); break;
    case 4: rc = craft_randn_(t, 17, 3); break;
    case 5: rc = craft_rand_(t, 17, 5); break;
    }
    return craft_finish(rc, t, y);
}
static int f_optim(const op_case *c, craft_tensor **x, craft_tensor **y) {
    craft_tensor *p = NULL, *m = NULL, *v = NULL, *g = x[1];
    int rc = fresh(x[0], &p);
    if (!rc) rc = craft_zeros(p->ndim, p->shape, CRAFT_F32, p->device, &m);
    if (!rc) rc = craft_zeros(p->ndim, p->shape, CRAFT_F32, p->device, &v);
    for (int step = 1; step <= 3 && !rc; step++) {
        if (c->a == 0) rc = craft_adamw_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, step);
        else if (c->a == 1) rc = craft_sgd_step(p, g, m, 0.1, 0.9, 1e-3, step & 1);
        else rc = craft_ema_update(p, g, 0.9);
    }
    if (!rc && c->a == 3) { /* clip a copy of the gradient; its norm too */
        craft_tensor *gc = NULL;
        double norm = 0;
        rc = fresh(g, &gc);
        if (!rc) rc = craft_clip_grad_norm(1, &gc, 0.5, &norm);
        craft_tensor_release(p);
        p = gc;
        if (!rc) rc = craft_scale_(p, norm);
    }
    craft_tensor_release(m);
    craft_tensor_release(v);
    return craft_finish(rc, p, y);
}

static void build_cases(void) {
    char nm[64];
    for (int op = 0; op < CRAFT_UNARY_COUNT; op++) {
        int pos = op == CRAFT_LOG || op == CRAFT_SQRT || op == CRAFT_RSQRT || op == CRAFT_RECIPROCAL ||
            op == CRAFT_LOG1P;
        snprintf(nm, sizeof nm, "unary %s", craft_unary_name(op));
        op_case *c = add(nm, f_unary, 1e-5, 1e-6);
        c->a = op;
        in(c, pos ? IN_POS : IN_NORMAL, 1, 3, 3, 7, 33, 0);
    }
    for (int op = 0; op < CRAFT_BINARY_COUNT; op++) {
        snprintf(nm, sizeof nm, "binary %s", craft_binary_name(op));
        op_case *c = add(nm, f_binary, 1e-5, 1e-6);
        c->a = op;
        in(c, op == CRAFT_POW ? IN_POS : IN_NORMAL, 1, 3, 3, 7, 33, 0);
        in(c, op == CRAFT_POW || op == CRAFT_DIV ? IN_POS : IN_NORMAL, 1, 2, 1, 33, 0, 0);
        for (int rev = 0; rev < 2; rev++) {
            snprintf(nm, sizeof nm, "scalar %s%s", craft_binary_name(op), rev ? " reversed" : "");
            op_case *s = add(nm, f_scalar, 1e-5, 1e-6);
            s->a = op;
            s->b = rev;
            s->x = op == CRAFT_POW ? 1.5 : -0.7;
            in(s, op == CRAFT_POW || (op == CRAFT_DIV && rev) ? IN_POS : IN_NORMAL, 1, 2, 9, 17, 0, 0);
        }
    }
    for (int op = CRAFT_EQ; op <= CRAFT_GE; op++) {
        snprintf(nm, sizeof nm, "compare %d", op);
        op_case *c = add(nm, f_compare, 0, 0);
        c->a = op;
        in(c, IN_NORMAL, 0, 2, 5, 9, 0, 0);
        in(c, IN_NORMAL, 0, 1, 9, 0, 0, 0);
    }
    op_case *c = add("clamp", f_clamp, 0, 0);
    in(c, IN_NORMAL, 1, 2, 6, 11, 0, 0);
    c = add("where", f_where, 1e-5, 1e-6); /* the broadcast operand's gradient is a sum */
    in(c, IN_MASK, 0, 2, 6, 11, 0, 0);
    in(c, IN_NORMAL, 1, 2, 6, 11, 0, 0);
    in(c, IN_NORMAL, 1, 1, 11, 0, 0, 0);
    c = add("lerp", f_lerp, 1e-5, 1e-6);
    in(c, IN_NORMAL, 1, 2, 6, 11, 0, 0);
    in(c, IN_NORMAL, 1, 2, 6, 11, 0, 0);
    const char *rnames[4] = {"sum dims 1,2 keepdim", "mean dim 1", "var dims 0,1", "sum all"};
    for (int k = 0; k < 4; k++) {
        c = add(rnames[k], f_reduce, 1e-4, 1e-5);
        c->a = k;
        c->b = k == 2 ? 0 : 1;
        in(c, IN_NORMAL, 1, 4, 3, 5, 6, 41);
    }
    c = add("max dim 1", f_max, 0, 0);
    c->b = 1;
    in(c, IN_NORMAL, 1, 3, 4, 9, 5, 0);
    c = add("min dim 2", f_min, 0, 0);
    c->b = 2;
    in(c, IN_NORMAL, 1, 3, 4, 9, 5, 0);
    c = add("argmax dim 0", f_argmax, 0, 0);
    in(c, IN_NORMAL, 0, 3, 4, 9, 5, 0);
    c = add("matmul batched", f_matmul, 1e-4, 1e-5);
    in(c, IN_NORMAL, 1, 3, 3, 13, 21, 0);
    in(c, IN_NORMAL, 1, 2, 21, 9, 0, 0);
    c = add("matmul vector", f_matmul, 1e-4, 1e-5);
    in(c, IN_NORMAL, 1, 2, 13, 21, 0, 0);
    in(c, IN_NORMAL, 1, 1, 21, 0, 0, 0);
    c = add("linear", f_linear, 1e-4, 1e-5);
    in(c, IN_NORMAL, 1, 3, 2, 5, 21, 0);
    in(c, IN_NORMAL, 1, 2, 11, 21, 0, 0);
    in(c, IN_NORMAL, 1, 1, 11, 0, 0, 0);
    c = add("linear no bias", f_linear, 1e-4, 1e-5);
    in(c, IN_NORMAL, 1, 2, 7, 21, 0, 0);
    in(c, IN_NORMAL, 1, 2, 11, 21, 0, 0);
    c = add("conv2d", f_conv, 1e-4, 1e-5);
    c->a = 1;
    c->b = 1;
    in(c, IN_NORMAL, 1, 4, 2, 4, 9, 11);
    in(c, IN_NORMAL, 1, 4, 6, 4, 3, 3);
    in(c, IN_NORMAL, 1, 1, 6, 0, 0, 0);
    c = add("conv2d stride 2 groups 2", f_conv, 1e-4, 1e-5);
    c->a = 2;
    c->b = 2;
    in(c, IN_NORMAL, 1, 4, 2, 4, 9, 11);
    in(c, IN_NORMAL, 1, 4, 6, 2, 3, 3);
    c = add("conv_transpose2d", f_convt, 1e-4, 1e-5);
    c->a = 2;
    c->b = 1;
    in(c, IN_NORMAL, 1, 4, 2, 4, 5, 6);
    in(c, IN_NORMAL, 1, 4, 4, 3, 3, 3);
    in(c, IN_NORMAL, 1, 1, 3, 0, 0, 0);
    c = add("group_norm", f_group_norm, 1e-4, 1e-5);
    c->a = 4;
    in(c, IN_NORMAL, 1, 4, 2, 8, 5, 7);
    in(c, IN_NORMAL, 1, 1, 8, 0, 0, 0);
    in(c, IN_NORMAL, 1, 1, 8, 0, 0, 0);
    c = add("group_norm + silu", f_group_norm_silu, 1e-4, 1e-5);
    c->a = 4;
    in(c, IN_NORMAL, 1, 4, 2, 8, 5, 7);
    in(c, IN_NORMAL, 1, 1, 8, 0, 0, 0);
    in(c, IN_NORMAL, 1, 1, 8, 0, 0, 0);
    c = add("group_norm plain", f_group_norm, 1e-4, 1e-5);
    c->a = 2;
    in(c, IN_NORMAL, 1, 3, 3, 6, 13, 0);
    c = add("geglu", f_geglu, 1e-4, 1e-5);
    in(c, IN_NORMAL, 1, 3, 2, 5, 2 * 19, 0);
    c = add("layer_norm", f_layer_norm, 1e-4, 1e-5);
    c->a = 1;
    in(c, IN_NORMAL, 1, 3, 4, 6, 35, 0);
    in(c, IN_NORMAL, 1, 1, 35, 0, 0, 0);
    in(c, IN_NORMAL, 1, 1, 35, 0, 0, 0);
    for (int lg = 0; lg < 2; lg++)
        for (int d = 1; d < 3; d++) {
            snprintf(nm, sizeof nm, "%s dim %d", lg ? "log_softmax" : "softmax", d);
            c = add(nm, f_softmax, 1e-4, 1e-6);
            c->a = lg;
            c->b = d;
            in(c, IN_NORMAL, 1, 3, 4, 6, 35, 0);
        }
    c = add("sdpa", f_sdpa, 1e-4, 1e-5);
    in(c, IN_NORMAL, 1, 4, 2, 3, 17, 16);
    in(c, IN_NORMAL, 1, 4, 2, 3, 29, 16);
    in(c, IN_NORMAL, 1, 4, 2, 3, 29, 8);
    in(c, IN_NORMAL, 0, 2, 17, 29, 0, 0);
    c = add("sdpa causal", f_sdpa, 1e-4, 1e-5);
    c->a = 1;
    in(c, IN_NORMAL, 1, 3, 2, 19, 16, 0);
    in(c, IN_NORMAL, 1, 3, 2, 19, 16, 0);
    in(c, IN_NORMAL, 1, 3, 2, 19, 16, 0);
    c = add("concat", f_concat, 0, 0);
    c->b = 1;
    in(c, IN_NORMAL, 1, 3, 2, 3, 5, 0);
    in(c, IN_NORMAL, 1, 3, 2, 4, 5, 0);
    const char *pnames[3] = {"pad constant", "pad reflect", "pad replicate"};
    for (int m = 0; m < 3; m++) {
        c = add(pnames[m], f_pad, 1e-6, 1e-6);
        c->a = m;
        in(c, IN_NORMAL, 1, 4, 2, 3, 6, 7);
    }
    for (int m = 0; m < 2; m++)
        for (int ac = 0; ac < 2 - (m == 0); ac++) {
            snprintf(nm, sizeof nm, "interpolate %s%s", m ? "bilinear" : "nearest",
                     ac ? " align_corners" : "");
            c = add(nm, f_interp, 1e-5, 1e-6);
            c->a = m;
            c->b = ac;
            in(c, IN_NORMAL, 1, 4, 2, 3, 6, 5);
        }
    c = add("avg_pool2d", f_pool, 1e-5, 1e-6);
    in(c, IN_NORMAL, 1, 4, 2, 3, 9, 8);
    c = add("embedding", f_embedding, 0, 0);
    in(c, IN_NORMAL, 1, 2, 17, 12, 0, 0);
    in(c, IN_IDX, 0, 2, 3, 4, 17, 0);
    c->in[1].lim = 17;
    c = add("timestep_embedding", f_timestep, 1e-5, 2e-6);
    in(c, IN_POS, 0, 1, 6, 0, 0, 0);
    c = add("l2_normalize", f_l2n, 1e-5, 1e-6);
    c->b = 2;
    in(c, IN_NORMAL, 1, 3, 3, 4, 21, 0);
    c = add("cosine_similarity", f_cos, 1e-5, 1e-6);
    c->b = 1;
    in(c, IN_NORMAL, 1, 3, 3, 21, 4, 0);
    in(c, IN_NORMAL, 1, 2, 21, 4, 0, 0);
    for (int red = 0; red < 3; red++) {
        snprintf(nm, sizeof nm, "cross_entropy reduction %d", red);
        c = add(nm, f_ce, 1e-5, 1e-6);
        c->a = red;
        c->x = red == 1 ? 0.1 : 0.0;
        in(c, IN_NORMAL, 1, 3, 4, 7, 3, 0);
        in(c, IN_IDX, 0, 2, 4, 3, 7, 0);
        c->in[1].lim = 7;
        snprintf(nm, sizeof nm, "mse_loss reduction %d", red);
        c = add(nm, f_mse, 1e-5, 1e-6);
        c->a = red;
        in(c, IN_NORMAL, 1, 3, 3, 4, 21, 0);
        in(c, IN_NORMAL, 1, 3, 3, 4, 21, 0);
    }
    c = add("mse_loss broadcast", f_mse, 1e-5, 1e-6);
    c->a = 1;
    in(c, IN_NORMAL, 1, 3, 3, 4, 21, 0);
    in(c, IN_NORMAL, 1, 1, 21, 0, 0, 0);
    int dts[8] = {CRAFT_F16, CRAFT_BF16, CRAFT_I64, CRAFT_I32, CRAFT_U8, CRAFT_F64, CRAFT_I8, CRAFT_BOOL};
    for (int k = 0; k < 8; k++) {
        snprintf(nm, sizeof nm, "to_dtype %s", craft_dtype_name(dts[k]));
        c = add(nm, f_to_dtype, 0, 0);
        c->a = dts[k];
        in(c, IN_WIDE, 0, 2, 7, 9, 0, 0);
    }
    c = add("contiguous of a transpose", f_contiguous, 0, 0);
    in(c, IN_NORMAL, 0, 2, 7, 9, 0, 0);
    const char *inames[6] = {"copy_", "fill_", "axpy_", "scale_", "randn_", "rand_"};
    for (int k = 0; k < 6; k++) {
        c = add(inames[k], f_inplace, k == 4 ? 1e-6 : 0,
                k == 4 ? 4e-6 : 0); /* normals: float formulas without fp64 */
        c->a = k;
        in(c, IN_NORMAL, 0, 2, 7, 9, 0, 0);
        in(c, IN_NORMAL, 0, 1, 9, 0, 0, 0);
    }
    const char *onames[4] = {"adamw_step", "sgd_step", "ema_update", "clip_grad_norm"};
    for (int k = 0; k < 4; k++) {
        c = add(onames[k], f_optim, 1e-6, 1e-7);
        c->a = k;
        in(c, IN_NORMAL, 0, 2, 7, 9, 0, 0);
        in(c, IN_NORMAL, 0, 2, 7, 9, 0, 0);
    }
}

/* ---------------------------------------------------------- the runner */
static void run_case(const op_case *c, int index) {
    craft_tensor *ci[4] = {NULL}, *di[4] = {NULL}, *cy = NULL, *dy = NULL;
    for (int i = 0; i < c->nin; i++) {
        ci[i] = make_input(c, i, 1000 + 7 * (uint64_t)index + (uint64_t)i);
        di[i] = on_dev(ci[i]);
        if (c->in[i].grad) {
            craft_set_requires_grad(ci[i], 1);
            craft_set_requires_grad(di[i], 1);
        }
    }
    int rc = c->fn(c, ci, &cy);
    CHECK_MSG(rc == CRAFT_OK, "%s on the cpu: %s", c->name, craft_last_error());
    int rd = c->fn(c, di, &dy);
    CHECK_MSG(rd == CRAFT_OK, "%s on cl:%d: %s", c->name, DEV - 1, craft_last_error());
    if (!rc && !rd) {
        compare_cl(c->name, cy, dy, c->rtol, c->atol, DEV, 1);
        if (cy->requires_grad && cy->dtype == CRAFT_F32) {
            craft_tensor *g = NULL, *dg;
            craft_empty(cy->ndim, cy->shape, CRAFT_F32, 0, &g);
            craft_randn_(g, 77, (uint64_t)index);
            dg = on_dev(g);
            CHECK_OK(craft_backward(cy, g, 0));
            CHECK_OK(craft_backward(dy, dg, 0));
            for (int i = 0; i < c->nin; i++) {
                if (!c->in[i].grad) continue;
                char what[160];
                snprintf(what, sizeof what, "%.64s: gradient of input %d", c->name, i);
                compare_cl(what, ci[i]->grad, di[i]->grad, c->rtol * 10, c->atol * 10, DEV, 1);
            }
            release(2, g, dg);
        }
    }
    for (int i = 0; i < c->nin; i++) release(2, ci[i], di[i]);
    release(2, cy, dy);
}

static void test_every_op(void) {
    build_cases();
    for (int i = 0; i < ncases; i++) run_case(&cases[i], i);
    fprintf(stderr, "  %d op cases on cl:%d against the cpu\n", ncases, DEV - 1);
}

/* the device's back end offers every kernel the CPU's does, except the bf16 ones: OpenCL has
 * none, so under the bf16 compute precision its ops compute fp32 (docs/backends.md), conv_grad
 * (the op runs conv's two backward directions there) and geglu (slices, gelu and mul); and it
 * has clip_grad_norm, the optional kernel that spares a device a read per tensor, and the f16
 * compute kernels (the fp16 precision: OpenCL only, the CPU computes fp32 under it) */
static void test_kernel_table(void) {
    for (int k = 0; k < CRAFT_K_COUNT; k++) {
        if (k == CRAFT_K_clip_grad_norm || k == CRAFT_K_gemm_f16 || k == CRAFT_K_conv_f16 ||
            k == CRAFT_K_sdpa_f16) {
            CHECK(craft_device_supports(DEV, k, CRAFT_F32) && !craft_device_supports(0, k, CRAFT_F32));
            continue;
        }
        if (k == CRAFT_K_gemm_bf16 || k == CRAFT_K_conv_bf16 || k == CRAFT_K_sdpa_bf16 ||
            k == CRAFT_K_sdpa_grad_bf16 || k == CRAFT_K_conv_grad || k == CRAFT_K_geglu ||
            k == CRAFT_K_geglu_grad) {
            CHECK(!craft_device_supports(DEV, k, CRAFT_F32));
            continue;
        }
        CHECK_MSG(craft_device_supports(DEV, k, CRAFT_F32) == craft_device_supports(0, k, CRAFT_F32),
                  "kernel %s: cpu %d, cl:%d %d", craft_kernel_name(k), craft_device_supports(0, k, CRAFT_F32),
                  DEV - 1, craft_device_supports(DEV, k, CRAFT_F32));
    }
    int nk = -1;
    CHECK_OK(craft_precision_kernels(DEV, CRAFT_PREC_BF16, &nk));
    CHECK(nk == 0);
    CHECK_OK(craft_precision_kernels(DEV, CRAFT_PREC_FP16, &nk));
    CHECK(nk == 3);
    CHECK_OK(craft_precision_kernels(0, CRAFT_PREC_FP16, &nk));
    CHECK(nk == 0);
    CHECK_OK(craft_precision_kernels(DEV, CRAFT_PREC_FP32, &nk));
    CHECK(nk == 3);
    CHECK_ERR(craft_precision_kernels(DEV, 7, &nk), CRAFT_EINVAL);
    craft_cl_info info;
    CHECK_OK(craft_cl_device_info(DEV - 1, &info));
    CHECK(craft_device_supports(DEV, CRAFT_K_gemm, CRAFT_F16) == info.fp16);
    CHECK(!craft_device_supports(0, CRAFT_K_gemm, CRAFT_F16));
    CHECK(!craft_device_supports(70000, CRAFT_K_gemm, CRAFT_F32));
}

/* an op whose kernel the device lacks: one clear error (op, kernel, device), nothing else */
static void test_missing_kernel(void) {
    int64_t s[2] = {3, 5};
    craft_tensor *x = cpu_uniform(2, s, 5, -1, 1), *dx = on_dev(x), *y = NULL;
    craft_backend_test_disable(DEV, CRAFT_K_softmax, 1);
    CHECK_ERR(craft_softmax(dx, 1, &y), CRAFT_EUNSUPPORTED);
    const char *msg = craft_last_error();
    CHECK_MSG(strstr(msg, "softmax:") == msg && strstr(msg, "opencl back end has no softmax kernel") &&
                  strstr(msg, "cl:"),
              "message: %s", msg);
    CHECK(y == NULL);
    CHECK_OK(craft_softmax(x, 1, &y)); /* the CPU still has it */
    release(1, y);
    y = NULL;
    craft_backend_test_disable(DEV, CRAFT_K_softmax, 0);
    CHECK_OK(craft_softmax(dx, 1, &y));
    CHECK_ERR(craft_kernels_for(70000, CRAFT_K_softmax, CRAFT_F32, "softmax", &(const craft_kernels *){NULL}),
              CRAFT_EDEVICE);
    CHECK(strstr(craft_last_error(), "no back end serves device code 70000") != NULL);
    release(3, x, dx, y);
}

/* the bf16 compute precision on a device without bf16 kernels: the op computes fp32, unchanged */
static void test_bf16_setting_computes_fp32(void) {
    int64_t sa[2] = {9, 33}, sb[2] = {33, 7};
    craft_tensor *a = cpu_uniform(2, sa, 6, -1, 1), *b = cpu_uniform(2, sb, 7, -1, 1), *da = on_dev(a),
                 *db = on_dev(b), *y32 = NULL, *y16 = NULL, *h32 = NULL, *h16 = NULL;
    CHECK_OK(craft_matmul(da, db, &y32));
    int prev = -1;
    CHECK_OK(craft_set_compute_precision(CRAFT_PREC_BF16, &prev));
    int64_t c0 = craft_bf16_kernel_calls();
    CHECK_OK(craft_matmul(da, db, &y16));
    CHECK(craft_bf16_kernel_calls() == c0);
    CHECK_OK(craft_set_compute_precision(prev, NULL));
    CHECK_OK(craft_to_device(y32, 0, &h32));
    CHECK_OK(craft_to_device(y16, 0, &h16));
    if (h32 && h16) CHECK(!memcmp(craft_tensor_data(h32), craft_tensor_data(h16), 9 * 7 * sizeof(float)));
    release(8, a, b, da, db, y32, y16, h32, h16);
}

int main(void) {
    int st = cl_test_open("test_cl_ops");
    if (st >= 0) return st;
    RUN(test_kernel_table);
    RUN(test_missing_kernel);
    RUN(test_bf16_setting_computes_fp32);
    RUN(test_every_op);
    return CHECK_SUMMARY();
}
