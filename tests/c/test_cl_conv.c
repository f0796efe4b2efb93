/* test_cl_conv.c: conv2d, conv_transpose2d, avg_pool2d, interpolate, pad, concat, embedding and
 * timestep embedding on cl:0 against the CPU ops on the same inputs: the output and every input
 * gradient of loss = sum(y * r) (r a fixed random tensor), as max |cl - cpu| <= atol + rtol |cpu|:
 *   exact: avg_pool2d, interpolate (nearest, bilinear), pad (all modes), concat, embedding:
 *          the device kernels replay the CPU's arithmetic and summation order;
 *   rtol 1e-4, atol 2e-5: convolutions (im2col + CLBlast and the direct kernel; another
 *          summation order than oneDNN), also with the column matrix chunked over images;
 *   atol 2e-6: timestep embedding (the device's sin / cos);
 *   rtol 1e-4: the losses of a small conv net trained 20 AdamW steps on both devices from the
 *          same weights, at every step.
 * Without an OpenCL platform or device it prints a "skip" line and counts nothing.
 * `test_cl_conv --bench` instead times conv2d's forward on cl:0, im2col + CLBlast against the
 * direct kernel (docs/opencl.md has the numbers). */
#include "check.h"
#include "cl/cl_internal.h"
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */

#include "cl_check.h"

/* cl result vs cpu result (conv: no NaN is expected, so a NaN anywhere fails) */
static void compare(const char *what, const craft_tensor *cpu, const craft_tensor *dev, double rtol,
                    double atol) {
    compare_cl(what, cpu, dev, rtol, atol, DEV, 0);
}

/* An op under test: y = f(ins) with arguments in ctx. */
typedef int (*op_fn)(const void *ctx, craft_tensor **ins, craft_tensor **y);

/* Runs f on the CPU inputs and on their cl:0 copies (leaves; requires_grad where grad[i]),
 * then backward of sum(y * r) on both; compares y and the gradients. */
static void check_op(const char *what, op_fn f, const void *ctx, int n, craft_tensor **cpu_in,
                     const int *grad, double rtol, double atol) {
    craft_tensor *dev_in[8] = {0}, *cy = NULL, *dy = NULL;
    for (int i = 0; i < n; i++) {
        dev_in[i] = cpu_in[i] ? on_dev(cpu_in[i]) : NULL;
        if (grad[i]) {
            craft_set_requires_grad(cpu_in[i], 1);
            craft_set_requires_grad(dev_in[i], 1);
        }
    }
    int rc = f(ctx, cpu_in, &cy);
    CHECK_MSG(rc == CRAFT_OK, "%s: cpu op: %s", what, craft_last_error());
    rc = f(ctx, dev_in, &dy);
    CHECK_MSG(rc == CRAFT_OK, "%s: cl op: %s", what, craft_last_error());
    char name[160];
    snprintf(name, sizeof name, "%s forward", what);
    if (cy && dy) compare(name, cy, dy, rtol, atol);
    int any = 0;
    for (int i = 0; i < n; i++) any |= grad[i];
    if (cy && dy && any) {
        craft_tensor *r = cpu_uniform(cy->ndim, cy->shape, 991, -1, 1), *dr = on_dev(r), *cp, *dp, *cs, *ds;
        CHECK_OK(craft_binary(CRAFT_MUL, cy, r, &cp));
        CHECK_OK(craft_binary(CRAFT_MUL, dy, dr, &dp));
        CHECK_OK(craft_sum(cp, 0, NULL, 0, &cs));
        CHECK_OK(craft_sum(dp, 0, NULL, 0, &ds));
        CHECK_OK(craft_backward(cs, NULL, 0));
        CHECK_MSG(craft_backward(ds, NULL, 0) == CRAFT_OK, "%s: cl backward: %s", what, craft_last_error());
        for (int i = 0; i < n; i++) {
            if (!grad[i]) continue;
            snprintf(name, sizeof name, "%s grad %d", what, i);
            compare(name, cpu_in[i]->grad, dev_in[i]->grad, rtol, atol);
            craft_zero_grad(cpu_in[i]);
        }
        release(6, r, dr, cp, dp, cs, ds);
    }
    for (int i = 0; i < n; i++) {
        if (grad[i]) craft_set_requires_grad(cpu_in[i], 0);
        craft_tensor_release(dev_in[i]);
    }
    release(2, cy, dy);
}

/* ------------------------------------------------------------ convolutions -- */
typedef struct {
    int transposed, n, cin, cout, h, w, kh, kw, s[2], p[2], op[2], d[2], g, bias;
} conv_case;

static int conv_fn(const void *ctx, craft_tensor **in, craft_tensor **y) {
    const conv_case *c = ctx;
    if (c->transposed) return craft_conv_transpose2d(in[0], in[1], in[2], c->s, c->p, c->op, c->d, c->g, y);
    return craft_conv2d(in[0], in[1], in[2], c->s, c->p, c->d, c->g, y);
}

static void check_conv(const char *what, const conv_case *c) {
    int64_t xs[4] = {c->n, c->cin, c->h, c->w};
    int64_t ws[4] = {c->transposed ? c->cin : c->cout, c->transposed ? c->cout / c->g : c->cin / c->g, c->kh,
                     c->kw},
            bs = c->cout;
    craft_tensor *in[3] = {cpu_uniform(4, xs, 11, -1, 1), cpu_uniform(4, ws, 12, -0.5f, 0.5f),
                           c->bias ? cpu_uniform(1, &bs, 13, -1, 1) : NULL};
    int grad[3] = {1, 1, c->bias};
    /* the forward by im2col + CLBlast, the direct kernel, then implicit GEMM (which also runs the
     * backward-data; the first two give it to GEMM + col2im) */
    static const char *const names[3] = {"im2col", "direct", "igemm"};
    for (int algo = 0; algo < 3; algo++) {
        craft_cl_conv_set_algo(algo);
        char name[128];
        snprintf(name, sizeof name, "%s (%s)", what, names[algo]);
        check_op(name, conv_fn, c, 3, in, grad, 1e-4, 2e-5);
    }
    craft_cl_conv_set_algo(-1);
    release(3, in[0], in[1], in[2]);
}

static void test_conv2d(void) {
    conv_case cs[] = {
        {0, 2, 3, 4, 7, 6, 3, 3, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, 1}, /* 3x3 same padding, bias */
        {0, 1, 3, 5, 9, 8, 3, 2, {2, 2}, {1, 0}, {0, 0}, {1, 1}, 1, 0}, /* stride 2, 3x2 kernel, no bias */
        {0, 2, 4, 6, 9, 8, 3, 3, {1, 1}, {2, 2}, {0, 0}, {2, 2}, 2, 1}, /* dilation 2, groups 2 */
        {0,
         3,
         4,
         8,
         7,
         9,
         3,
         3,
         {2, 1},
         {0, 2},
         {0, 0},
         {1, 2},
         4,
         1}, /* depthwise x2, mixed stride / pad / dilation */
        {0, 2, 6, 3, 5, 5, 1, 1, {1, 1}, {0, 0}, {0, 0}, {1, 1}, 1, 1}, /* 1x1 */
        {0,
         1,
         2,
         19,
         4,
         11,
         2,
         5,
         {1, 3},
         {1, 2},
         {0, 0},
         {1, 1},
         1,
         0}, /* wide; 19 = 16 + 3 output channels (direct: 16 a block) */
    };
    const char *names[] = {"conv2d 3x3",       "conv2d stride 2", "conv2d dilation groups",
                           "conv2d depthwise", "conv2d 1x1",      "conv2d wide"};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) check_conv(names[i], &cs[i]);
}

static void test_conv_transpose2d(void) {
    conv_case cs[] = {
        {1, 2, 4, 3, 5, 4, 3, 3, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1, 1}, /* stride 2, output_padding 1 */
        {1, 1, 4, 6, 5, 6, 3, 3, {1, 1}, {1, 0}, {0, 0}, {2, 2}, 2, 0}, /* groups 2, dilation 2 */
        {1, 2, 3, 5, 4, 4, 4, 4, {2, 2}, {1, 1}, {0, 0}, {1, 1}, 1, 1}, /* the 4x4 stride-2 upsampler */
        {1, 1, 2, 3, 3, 5, 2, 3, {3, 2}, {0, 1}, {2, 1}, {1, 1}, 1, 1}, /* non-square stride / kernel */
    };
    const char *names[] = {"conv_t stride 2 outpad", "conv_t groups dilation", "conv_t 4x4 s2",
                           "conv_t non-square"};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) check_conv(names[i], &cs[i]);
}

/* implicit GEMM's tile edges: more output channels (per group) than one 64-row tile, pixel
 * counts and inner dimensions that are no multiple of the tiles (64 pixels, 16 inner), in both
 * kernels (the transposed conv's forward is the backward-data kernel) */
static void test_conv_tiles(void) {
    conv_case cs[] = {
        {0, 2, 20, 70, 9, 10, 3, 3, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, 1}, /* M 70, N 180, K 180 */
        {0, 1, 12, 140, 5, 5, 3, 3, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 2, 1}, /* 70 channels per group */
        {1, 2, 24, 70, 5, 4, 3, 3, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1, 1},  /* transposed, stride 2 */
    };
    const char *names[] = {"conv2d tiles", "conv2d tiles, groups", "conv_t tiles"};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) check_conv(names[i], &cs[i]);
}

/* the column matrix split over images (a few KiB per call), and a batch of zero images */
static void test_conv_chunks(void) {
    craft_cl_conv_set_col_budget(4096);
    conv_case c = {0, 5, 3, 4, 6, 6, 3, 3, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, 1};
    check_conv("conv2d chunked", &c);
    conv_case t = {1, 5, 4, 3, 4, 4, 3, 3, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1, 1};
    check_conv("conv_t chunked", &t);
    craft_cl_conv_set_col_budget(0);
    conv_case e = {0, 0, 3, 4, 5, 5, 3, 3, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, 1};
    check_conv("conv2d empty batch", &e);
}

/* strided (permuted, sliced) device inputs are made contiguous on the device first */
static void test_strided_inputs(void) {
    int64_t xs[4] = {2, 6, 5, 3}, ws[4] = {4, 3, 3, 3};
    int perm[4] = {0, 3, 1, 2};
    craft_tensor *x = cpu_uniform(4, xs, 71, -1, 1), *w = cpu_uniform(4, ws, 72, -1, 1), *dx = on_dev(x),
                 *dw = on_dev(w);
    craft_tensor *xp, *dxp, *cy, *dy, *cp, *dp, *ci, *di, *cs, *ds;
    CHECK_OK(craft_permute(x, perm, &xp)); /* [2, 3, 6, 5], channels last in memory */
    CHECK_OK(craft_permute(dx, perm, &dxp));
    CHECK(!craft_is_contiguous(dxp));
    CHECK_OK(craft_conv2d(xp, w, NULL, NULL, NULL, NULL, 1, &cy));
    CHECK_OK(craft_conv2d(dxp, dw, NULL, NULL, NULL, NULL, 1, &dy));
    compare("conv2d of a permuted input", cy, dy, 1e-4, 2e-5);
    CHECK_OK(craft_slice(xp, 3, 1, 5, 1, &cs)); /* a narrower window, offset into the storage */
    CHECK_OK(craft_slice(dxp, 3, 1, 5, 1, &ds));
    CHECK_OK(craft_avg_pool2d(cs, 2, 1, 0, &cp));
    CHECK_OK(craft_avg_pool2d(ds, 2, 1, 0, &dp));
    compare("avg_pool2d of a sliced input", cp, dp, 0, 0);
    CHECK_OK(craft_interpolate(cs, 7, 3, 1, 0, &ci));
    CHECK_OK(craft_interpolate(ds, 7, 3, 1, 0, &di));
    compare("interpolate of a sliced input", ci, di, 0, 0);
    release(14, x, w, dx, dw, xp, dxp, cy, dy, cs, ds, cp, dp, ci, di);
}

static void test_conv_errors(void) {
    int64_t xs[4] = {1, 3, 5, 5}, ws[4] = {4, 3, 3, 3}, wbad[4] = {4, 2, 3, 3};
    craft_tensor *x = cpu_uniform(4, xs, 1, -1, 1), *w = cpu_uniform(4, ws, 2, -1, 1),
                 *wb = cpu_uniform(4, wbad, 3, -1, 1);
    craft_tensor *dx = on_dev(x), *dwb = on_dev(wb), *y = NULL;
    CHECK_ERR(craft_conv2d(dx, w, NULL, NULL, NULL, NULL, 1, &y), CRAFT_EDEVICE); /* weight left on the CPU */
    CHECK(strstr(craft_last_error(), "weight") != NULL);
    CHECK_ERR(craft_conv2d(x, dwb, NULL, NULL, NULL, NULL, 1, &y), CRAFT_EDEVICE); /* input left on the CPU */
    CHECK_ERR(craft_conv2d(dx, dwb, NULL, NULL, NULL, NULL, 1, &y), CRAFT_ESHAPE); /* the CPU's shape check */
    CHECK(strstr(craft_last_error(), "groups") != NULL);
    int st0[2] = {0, 1};
    CHECK_ERR(craft_conv2d(dx, dwb, NULL, st0, NULL, NULL, 1, &y), CRAFT_EINVAL);
    release(5, x, w, wb, dx, dwb);
}

/* ---------------------------------------------------------- pool, resize ---- */
typedef struct {
    int k, s, p;
} pool_case;
static int pool_fn(const void *ctx, craft_tensor **in, craft_tensor **y) {
    const pool_case *c = ctx;
    return craft_avg_pool2d(in[0], c->k, c->s, c->p, y);
}

static void test_avg_pool2d(void) {
    int64_t xs[4] = {2, 3, 7, 6};
    craft_tensor *x = cpu_uniform(4, xs, 21, -2, 2);
    int grad[1] = {1};
    pool_case cs[] = {{2, 2, 0}, {3, 2, 1}, {3, 0, 1}, {2, 1, 1}, {4, 3, 2}};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        char name[64];
        snprintf(name, sizeof name, "avg_pool2d k%d s%d p%d", cs[i].k, cs[i].s, cs[i].p);
        check_op(name, pool_fn, &cs[i], 1, &x, grad, 0, 0);
    }
    craft_tensor *dx = on_dev(x), *y = NULL;
    CHECK_ERR(craft_avg_pool2d(dx, 2, 2, 2, &y),
              CRAFT_EINVAL); /* padding over half the kernel, as on the CPU */
    release(2, x, dx);
}

typedef struct {
    int64_t oh, ow;
    int mode, align;
} interp_case;
static int interp_fn(const void *ctx, craft_tensor **in, craft_tensor **y) {
    const interp_case *c = ctx;
    return craft_interpolate(in[0], c->oh, c->ow, c->mode, c->align, y);
}

static void test_interpolate(void) {
    int64_t xs[4] = {2, 3, 5, 4};
    craft_tensor *x = cpu_uniform(4, xs, 31, -2, 2);
    int grad[1] = {1};
    interp_case cs[] = {{10, 8, 0, 0}, {3, 7, 0, 0}, {9, 11, 1, 0}, {3, 8, 1, 1},
                        {5, 4, 1, 0},  {1, 1, 1, 1}, {12, 3, 1, 0}};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        char name[64];
        snprintf(name, sizeof name, "interpolate %s%s %lldx%lld", cs[i].mode ? "bilinear" : "nearest",
                 cs[i].align ? " align" : "", (long long)cs[i].oh, (long long)cs[i].ow);
        check_op(name, interp_fn, &cs[i], 1, &x, grad, 0, 0);
    }
    craft_tensor *dx = on_dev(x), *y = NULL;
    CHECK_ERR(craft_interpolate(dx, 4, 4, 2, 0, &y), CRAFT_EINVAL);
    release(2, x, dx);
}

/* ----------------------------------------------------------- pad, concat ---- */
typedef struct {
    int npairs;
    int64_t pads[6];
    int mode;
    double value;
} pad_case;
static int pad_fn(const void *ctx, craft_tensor **in, craft_tensor **y) {
    const pad_case *c = ctx;
    return craft_pad(in[0], c->npairs, c->pads, c->mode, c->value, y);
}

static void test_pad(void) {
    int64_t xs[4] = {2, 3, 5, 4};
    craft_tensor *x = cpu_uniform(4, xs, 41, -2, 2);
    int grad[1] = {1};
    pad_case cs[] = {
        {2, {1, 2, 0, 3}, 0, 0.5},     {2, {-1, 2, 2, -2}, 0, 0},     {1, {3, 3}, 0, -1},
        {3, {1, 1, 2, 0, 1, 2}, 0, 0}, {2, {3, 2, 4, 1}, 1, 0},       {1, {1, 0}, 1, 0},
        {2, {2, 3, 1, 4}, 2, 0},       {3, {5, 1, 0, 6, 2, 2}, 2, 0}, {0, {0}, 1, 0},
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        char name[64];
        snprintf(name, sizeof name, "pad %d: mode %d, %d pairs", (int)i, cs[i].mode, cs[i].npairs);
        check_op(name, pad_fn, &cs[i], 1, &x, grad, 0, 0);
    }
    craft_tensor *dx = on_dev(x), *y = NULL;
    int64_t bad[2] = {4, 0};
    CHECK_ERR(craft_pad(dx, 1, bad, 1, 0, &y), CRAFT_ESHAPE); /* reflect padding as large as the dim */
    release(2, x, dx);
}

static int concat_fn(const void *ctx, craft_tensor **in, craft_tensor **y) {
    return craft_concat(3, in, *(const int *)ctx, y);
}

static void test_concat(void) {
    int64_t s0[3] = {2, 3, 4}, s1[3] = {2, 1, 4}, s2[3] = {2, 5, 4};
    craft_tensor *in[3] = {cpu_uniform(3, s0, 51, -1, 1), cpu_uniform(3, s1, 52, -1, 1),
                           cpu_uniform(3, s2, 53, -1, 1)};
    int grad[3] = {1, 0, 1}, dim = 1;
    check_op("concat dim 1", concat_fn, &dim, 3, in, grad, 0, 0);
    release(3, in[0], in[1], in[2]);
    int64_t t0[2] = {3, 2}, t1[2] = {3, 5};
    craft_tensor *lt[3] = {cpu_uniform(2, t0, 54, -1, 1), cpu_uniform(2, t1, 55, -1, 1),
                           cpu_uniform(2, t0, 56, -1, 1)};
    int g3[3] = {1, 1, 1}, dlast = -1;
    check_op("concat dim -1", concat_fn, &dlast, 3, lt, g3, 0, 0);
    /* a CPU operand is copied over and gets its gradient back on the CPU; i64 tensors concat too */
    craft_tensor *d0 = on_dev(lt[0]), *y = NULL, *s = NULL;
    craft_set_requires_grad(lt[1], 1);
    craft_tensor *mixed[3] = {d0, lt[1], d0};
    CHECK_OK(craft_concat(3, mixed, -1, &y));
    CHECK(y && y->device == DEV && y->shape[1] == 9);
    CHECK_OK(craft_sum(y, 0, NULL, 0, &s));
    CHECK_OK(craft_backward(s, NULL, 0));
    CHECK(lt[1]->grad && lt[1]->grad->device == 0);
    double v = 0;
    int64_t at[2] = {2, 4};
    if (lt[1]->grad) {
        CHECK_OK(craft_get(lt[1]->grad, at, &v));
        CHECK(v == 1.0);
    }
    craft_tensor *i1, *i2, *di1, *di2, *ci, *dci;
    CHECK_OK(craft_to_dtype(lt[0], CRAFT_I64, &i1));
    CHECK_OK(craft_to_dtype(lt[2], CRAFT_I64, &i2));
    di1 = on_dev(i1);
    di2 = on_dev(i2);
    craft_tensor *ci_in[2] = {i1, i2}, *di_in[2] = {di1, di2};
    CHECK_OK(craft_concat(2, ci_in, 0, &ci));
    CHECK_OK(craft_concat(2, di_in, 0, &dci));
    CHECK(dci && dci->dtype == CRAFT_I64 && dci->device == DEV);
    if (ci && dci) compare("concat i64", ci, dci, 0, 0);
    release(13, lt[0], lt[1], lt[2], d0, y, s, i1, i2, di1, di2, ci, dci, NULL);
}

/* ------------------------------------------------------------- embedding ---- */
static craft_tensor *IDX; /* the indices of the embedding case (CPU or device) */
static int embed_fn(const void *ctx, craft_tensor **in, craft_tensor **y) {
    craft_tensor *idx = IDX;
    if (in[0]->device != CRAFT_DEVICE_CPU && *(const int *)ctx)
        idx = on_dev(IDX); /* indices on the device too */
    else craft_tensor_retain(idx);
    int rc = craft_embedding(in[0], idx, y);
    craft_tensor_release(idx);
    return rc;
}

static void test_embedding(void) {
    int64_t ws[2] = {10, 5}, is[2] = {3, 4};
    int64_t iv[12] = {3, 0, 9, 3, 7, 3, 1, 1, 0, 9, 4, 3}; /* duplicates: gradient rows accumulate */
    craft_tensor *w = cpu_uniform(2, ws, 61, -1, 1), *i64, *i32;
    CHECK_OK(craft_from_data(2, is, CRAFT_I64, iv, &i64));
    CHECK_OK(craft_to_dtype(i64, CRAFT_I32, &i32));
    int grad[1] = {1}, dev_idx = 0;
    IDX = i64;
    check_op("embedding (i64 indices on the CPU)", embed_fn, &dev_idx, 1, &w, grad, 0, 0);
    dev_idx = 1;
    check_op("embedding (i64 indices on cl:0)", embed_fn, &dev_idx, 1, &w, grad, 0, 0);
    IDX = i32;
    check_op("embedding (i32 indices on cl:0)", embed_fn, &dev_idx, 1, &w, grad, 0, 0);
    craft_tensor *dw = on_dev(w), *y = NULL, *bad;
    int64_t bv[2] = {2, 10}, bs = 2;
    CHECK_OK(craft_from_data(1, &bs, CRAFT_I64, bv, &bad));
    CHECK_ERR(craft_embedding(dw, bad, &y), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "out of range") != NULL);
    craft_tensor *dbad = on_dev(bad);
    CHECK_ERR(craft_embedding(w, dbad, &y), CRAFT_EDEVICE); /* weight left on the CPU */
    release(6, w, i64, i32, dw, bad, dbad);
}

static void test_timestep_embedding(void) {
    float tv[6] = {0, 1, 10, 250.5f, 500, 999};
    int64_t n = 6;
    craft_tensor *t, *dt, *ti, *dti;
    CHECK_OK(craft_from_data(1, &n, CRAFT_F32, tv, &t));
    dt = on_dev(t);
    CHECK_OK(craft_to_dtype(t, CRAFT_I64, &ti));
    dti = on_dev(ti);
    struct {
        int dim, flip;
        double shift, scale;
        const craft_tensor *c, *d;
    } cs[] = {
        {32, 0, 1, 1, t, dt},
        {33, 1, 0, 2, t, dt},
        {8, 1, 1, 1, ti, dti},
        {1, 0, 1, 1, t, dt},
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        craft_tensor *cy = NULL, *dy = NULL;
        CHECK_OK(
            craft_timestep_embedding(cs[i].c, cs[i].dim, cs[i].flip, cs[i].shift, cs[i].scale, 10000, &cy));
        CHECK_OK(
            craft_timestep_embedding(cs[i].d, cs[i].dim, cs[i].flip, cs[i].shift, cs[i].scale, 10000, &dy));
        char name[64];
        snprintf(name, sizeof name, "timestep_embedding dim %d flip %d", cs[i].dim, cs[i].flip);
        compare(name, cy, dy, 0, 2e-6);
        release(2, cy, dy);
    }
    craft_tensor *y = NULL;
    CHECK_ERR(craft_timestep_embedding(dt, 0, 0, 1, 1, 10000, &y), CRAFT_EINVAL);
    release(4, t, dt, ti, dti);
}

/* ------------------------------------------------------ training on cl:0 ---- */
/* conv(3->8, 3x3) -> silu -> conv(8->8, 3x3, stride 2) -> avg_pool 2 -> linear(32->4) -> mse,
 * 20 AdamW steps from the same weights on the CPU and on cl:0; returns the final loss */
#define NPARAM 6
static int net_loss(craft_tensor **p, const craft_tensor *x, const craft_tensor *target,
                    craft_tensor **loss) {
    int one[2] = {1, 1}, two[2] = {2, 2};
    craft_tensor *h1 = NULL, *a1 = NULL, *h2 = NULL, *pl = NULL, *fl = NULL, *o = NULL, *df = NULL,
                 *sq = NULL;
    int64_t fs[2] = {x->shape[0], 32};
    int rc = craft_conv2d(x, p[0], p[1], one, one, one, 1, &h1);
    if (!rc) rc = craft_unary(CRAFT_SILU, h1, &a1);
    if (!rc) rc = craft_conv2d(a1, p[2], p[3], two, one, one, 1, &h2);
    if (!rc) rc = craft_avg_pool2d(h2, 2, 2, 0, &pl);
    if (!rc) rc = craft_reshape(pl, 2, fs, &fl);
    if (!rc) rc = craft_linear(fl, p[4], p[5], &o);
    if (!rc) rc = craft_binary(CRAFT_SUB, o, target, &df);
    if (!rc) rc = craft_unary(CRAFT_SQUARE, df, &sq);
    if (!rc) rc = craft_mean(sq, 0, NULL, 0, loss);
    release(8, h1, a1, h2, pl, fl, o, df, sq);
    return rc;
}

static void test_train_net(void) {
    double t0 = craft_now();
    int64_t shapes[NPARAM][4] = {{8, 3, 3, 3}, {8}, {8, 8, 3, 3}, {8}, {4, 32}, {4}};
    int nds[NPARAM] = {4, 1, 4, 1, 2, 1};
    float scales[NPARAM] = {0.3f, 0.1f, 0.15f, 0.1f, 0.2f, 0.1f};
    craft_tensor *cp[NPARAM], *dp[NPARAM];
    for (int i = 0; i < NPARAM; i++) {
        cp[i] = cpu_uniform(nds[i], shapes[i], 700 + i, -scales[i], scales[i]);
        dp[i] = on_dev(cp[i]);
        craft_set_requires_grad(cp[i], 1);
        craft_set_requires_grad(dp[i], 1);
    }
    int64_t xs[4] = {4, 3, 8, 8}, ts[2] = {4, 4};
    craft_tensor *x = cpu_uniform(4, xs, 801, -1, 1), *tg = cpu_uniform(2, ts, 802, -1, 1), *dx = on_dev(x),
                 *dtg = on_dev(tg);
    cl_train_result r = cl_train_pair("conv net", NPARAM, cp, dp, 20, 1e-2, net_loss, x, tg, dx, dtg);
    CHECK_MSG(r.agree == 20, "losses agree to 1e-4 relative at %d of 20 steps (worst %.3g)", r.agree,
              r.worst);
    CHECK_MSG(r.syncs == 1, "host waits per step: %lld, expected 1 (the loss's item)", (long long)r.syncs);
    CHECK_MSG(r.last < 0.7 * r.first, "the net did not learn: loss %.6g -> %.6g", r.first, r.last);
    fprintf(stderr,
            "  conv net, 20 AdamW steps: loss %.6f -> %.6f, worst relative cpu/cl difference %.2g (%.2f s), "
            "host waits per step %lld\n",
            r.first, r.last, r.worst, craft_now() - t0, (long long)r.syncs);
    for (int i = 0; i < NPARAM; i++) release(2, cp[i], dp[i]);
    release(4, x, tg, dx, dtg);
}

/* ------------------------------------------------------------ --bench ---- */
/* conv2d forward on cl:0, im2col + CLBlast (algo 0), the direct kernel (1), implicit GEMM (2):
 * best of reps */
static int bench(void) {
    struct {
        int n, c, o, hw, k, s;
    } cs[] = {{16, 32, 32, 16, 3, 1}, {16, 128, 128, 16, 3, 1}, {4, 64, 64, 32, 3, 1},
              {8, 64, 128, 32, 3, 2}, {16, 64, 64, 16, 1, 1},   {1, 4, 64, 64, 3, 1}};
    printf("%-26s %20s %20s %20s\n", "conv2d forward (N C->O HxW k s)", "im2col ms", "direct ms", "igemm ms");
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        int64_t xs[4] = {cs[i].n, cs[i].c, cs[i].hw, cs[i].hw}, ws[4] = {cs[i].o, cs[i].c, cs[i].k, cs[i].k},
                bs = cs[i].o;
        craft_tensor *x = cpu_uniform(4, xs, 1, -1, 1), *w = cpu_uniform(4, ws, 2, -1, 1),
                     *b = cpu_uniform(1, &bs, 3, -1, 1);
        craft_tensor *dx = on_dev(x), *dw = on_dev(w), *db = on_dev(b);
        int st[2] = {cs[i].s, cs[i].s}, pd[2] = {cs[i].k / 2, cs[i].k / 2};
        double best[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r < 7;
             r++) /* interleaved (the machine is shared); the first run compiles and warms the pool */
            for (int algo = 0; algo < 3; algo++) {
                craft_cl_conv_set_algo(algo);
                craft_tensor *y = NULL;
                double t = craft_now();
                if (craft_conv2d(dx, dw, db, st, pd, NULL, 1, &y) || craft_cl_synchronize(DEV)) {
                    fprintf(stderr, "%s\n", craft_last_error());
                    return 1;
                }
                t = craft_now() - t;
                if (r && t < best[algo]) best[algo] = t;
                craft_tensor_release(y);
            }
        char what[64];
        snprintf(what, sizeof what, "%d %d->%d %dx%d k%d s%d", cs[i].n, cs[i].c, cs[i].o, cs[i].hw, cs[i].hw,
                 cs[i].k, cs[i].s);
        double gf = 2.0 * cs[i].n * cs[i].o * cs[i].c * cs[i].k * cs[i].k * (double)(cs[i].hw / cs[i].s) *
            (cs[i].hw / cs[i].s) / 1e9;
        printf("%-26s %8.2f (%3.0f GF/s) %8.2f (%3.0f GF/s) %8.2f (%3.0f GF/s)\n", what, best[0] * 1e3,
               gf / best[0], best[1] * 1e3, gf / best[1], best[2] * 1e3, gf / best[2]);
        release(6, x, w, b, dx, dw, db);
    }
    craft_cl_conv_set_algo(-1);
    return 0;
}

int main(int argc, char **argv) {
    int st = cl_test_open("test_cl_conv");
    if (st >= 0) return st;
    if (argc > 1 && !strcmp(argv[1], "--bench")) return bench();
    RUN(test_conv2d);
    RUN(test_conv_transpose2d);
    RUN(test_conv_tiles);
    RUN(test_conv_chunks);
    RUN(test_strided_inputs);
    RUN(test_conv_errors);
    RUN(test_avg_pool2d);
    RUN(test_interpolate);
    RUN(test_pad);
    RUN(test_concat);
    RUN(test_embedding);
    RUN(test_timestep_embedding);
    RUN(test_train_net);
    return CHECK_SUMMARY();
}
