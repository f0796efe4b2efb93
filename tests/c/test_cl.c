/* test_cl.c: the OpenCL back end against the CPU, in one process (PoCL costs ~0.2 s per process
 * and CLBlast seconds per new kernel variant, so the GEMM shapes are few). Every device kernel
 * runs on the same inputs as its CPU op; tolerances per check, as max |cl - cpu| <= atol +
 * rtol |cpu|:
 *   exact: transfers, dtype conversions (all 81 pairs), fills, copies, Philox uniforms and (fp64
 *          devices) normals, max/min values, indices and gradients, compare, clamp, where,
 *          AdamW / SGD / EMA steps, axpy_ / scale_, binary and tensor-scalar ops except pow, and
 *          the neg / abs / relu / square / sqrt kernels;
 *   rtol 1e-5, atol 1e-6: the other unary ops and all unary gradients, pow (device libm vs glibc);
 *   rtol 1e-5, atol 1e-5: reductions (another summation order, in double), binary gradients;
 *   rtol 1e-4: reduction gradients, GEMM and its gradients (CLBlast's summation order);
 *   atol 4e-6: normals by the float formulas (devices without fp64); f16 matmul: 1e-3.
 * Without an OpenCL platform or device it prints a "skip" line and counts nothing. */
#include "check.h"
#include "cl/cl_internal.h"
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */
static craft_cl_info INFO;

/* ---------------------------------------------------------------- helpers -- */
#include "cl_check.h"

/* cl result vs cpu result: same shape, every |d - c| <= atol + rtol |c| (NaN matches NaN) */
static void compare(const char *what, const craft_tensor *cpu, const craft_tensor *dev, double rtol,
                    double atol) {
    compare_cl(what, cpu, dev, rtol, atol, DEV, 1);
}

/* byte-exact comparison of two tensors of any dtype */
static void compare_bits(const char *what, const craft_tensor *cpu, const craft_tensor *dev) {
    size_t es = craft_dtype_size(cpu->dtype), n = (size_t)cpu->numel * es;
    char *a = malloc(n + 1), *b = malloc(n + 1);
    int ok = a && b && cpu->dtype == dev->dtype && cpu->numel == dev->numel &&
        !craft_tensor_read(cpu, cpu->dtype, a, n) && !craft_tensor_read(dev, dev->dtype, b, n);
    CHECK_MSG(ok && !memcmp(a, b, n), "%s: %s vs %s differ (%s)", what, craft_shape_str(cpu),
              craft_shape_str(dev), craft_last_error());
    free(a);
    free(b);
}

/* ------------------------------------------------------------ discovery -- */
static void test_devices(void) {
    int n = 0;
    CHECK_OK(craft_cl_device_count(&n));
    CHECK(n >= 1);
    CHECK(INFO.name[0] && INFO.platform[0] && INFO.opencl_c_version[0] && INFO.driver_version[0]);
    CHECK(INFO.global_mem > 0 && INFO.max_alloc > 0 && INFO.max_alloc <= INFO.global_mem);
    CHECK(INFO.compute_units >= 1);
    CHECK(INFO.fp16 == 0 || INFO.fp16 == 1);
    CHECK(!strncmp(INFO.opencl_c_version, "OpenCL C ", 9));
    craft_cl_info bad;
    CHECK_ERR(craft_cl_device_info(n, &bad), CRAFT_EDEVICE);
    CHECK(strstr(craft_last_error(), "no OpenCL device") != NULL);
    fprintf(stderr, "  cl:%d %s (%s), %s, fp16 %d fp64 %d\n", DEV - 1, INFO.name, INFO.platform,
            INFO.opencl_c_version, INFO.fp16, INFO.fp64);
    CHECK_OK(craft_cl_synchronize(DEV));
    CHECK_OK(craft_cl_synchronize(0));
}

/* ------------------------------------------------------------ transfers -- */
static void test_transfers(void) {
    /* every dtype round trips bit for bit, in both directions */
    int64_t shape[3] = {3, 5, 7};
    for (int dt = 0; dt <= CRAFT_BOOL; dt++) {
        craft_tensor *f = cpu_uniform(3, shape, 11 + dt, -300, 300), *c = NULL, *d = NULL, *back = NULL;
        CHECK_OK(craft_to_dtype(f, dt, &c));
        d = on_dev(c);
        CHECK(d && d->device == DEV && d->dtype == dt);
        CHECK_OK(craft_to_device(d, 0, &back));
        if (back) compare_bits(craft_dtype_name(dt), c, back);
        release(4, f, c, d, back);
    }
    /* a transposed CPU view goes up; a transposed device view comes down */
    int64_t s2[2] = {6, 9};
    craft_tensor *a = cpu_uniform(2, s2, 3, -1, 1), *at, *d, *dt_, *h, *hc, *ac;
    CHECK_OK(craft_transpose(a, 0, 1, &at));
    d = on_dev(at);
    compare("upload transposed", at, d, 0, 0);
    CHECK_OK(craft_transpose(d, 0, 1, &dt_));
    CHECK_OK(craft_to_device(dt_, 0, &h));
    compare_bits("download transposed view", a, h);
    /* device -> device copy into a strided destination, with broadcasting */
    craft_tensor *row = on_dev(a), *dst, *sl, *srow;
    int64_t s3[2] = {9, 6};
    CHECK_OK(craft_zeros(2, s3, CRAFT_F32, DEV, &dst));
    CHECK_OK(craft_slice(dst, 0, 2, 9, 3, &sl));   /* rows 2, 5, 8 */
    CHECK_OK(craft_slice(row, 0, 1, 2, 1, &srow)); /* [1, 9] */
    craft_tensor *srow_t;
    CHECK_OK(craft_reshape(srow, 1, &s2[1], &srow_t));
    int64_t s4[2] = {3, 6};
    craft_tensor *src6 = cpu_uniform(2, s4, 5, -2, 2), *src6d = on_dev(src6);
    CHECK_OK(craft_copy_(sl, src6d));
    float out[54];
    CHECK_OK(craft_tensor_read(dst, CRAFT_F32, out, sizeof out));
    float ref[18];
    CHECK_OK(craft_tensor_read(src6, CRAFT_F32, ref, sizeof ref));
    int ok = 1;
    for (int r = 0; r < 9; r++)
        for (int k = 0; k < 6; k++) ok &= out[r * 6 + k] == ((r % 3 == 2) ? ref[(r / 3) * 6 + k] : 0.0f);
    CHECK(ok);
    /* broadcast [6] -> every row of a device tensor, from the CPU */
    int64_t s6 = 6;
    craft_tensor *vec = cpu_uniform(1, &s6, 8, -1, 1);
    CHECK_OK(craft_copy_(dst, vec));
    CHECK_OK(craft_tensor_read(dst, CRAFT_F32, out, sizeof out));
    float v6[6];
    CHECK_OK(craft_tensor_read(vec, CRAFT_F32, v6, sizeof v6));
    ok = 1;
    for (int i = 0; i < 54; i++) ok &= out[i] == v6[i % 6];
    CHECK(ok);
    /* get / set / item / tensor_write on device tensors */
    int64_t idx[2] = {4, 5};
    double v;
    CHECK_OK(craft_set(dst, idx, 2.5));
    CHECK_OK(craft_get(dst, idx, &v));
    CHECK(v == 2.5);
    craft_tensor *one;
    CHECK_OK(craft_slice(sl, 0, 1, 2, 1, &hc));
    CHECK_OK(craft_slice(hc, 1, 3, 4, 1, &one));
    CHECK_OK(craft_set(one, (int64_t[]){0, 0}, -7.0));
    CHECK_OK(craft_item(one, &v));
    CHECK(v == -7.0);
    CHECK_OK(craft_get(dst, (int64_t[]){5, 3}, &v));
    CHECK(v == -7.0);
    float w[54];
    for (int i = 0; i < 54; i++) w[i] = (float)i;
    CHECK_OK(craft_tensor_write(dst, CRAFT_F32, w, sizeof w));
    int32_t outi[54];
    CHECK_OK(craft_tensor_read(dst, CRAFT_I32, outi, sizeof outi));
    ok = 1;
    for (int i = 0; i < 54; i++) ok &= outi[i] == i;
    CHECK(ok);
    CHECK_OK(craft_contiguous(dt_, &ac)); /* clone on the device */
    CHECK(ac->device == DEV && craft_is_contiguous(ac));
    compare_bits("contiguous on device", a, ac);
    release(17, a, at, d, dt_, h, hc, ac, row, dst, sl, srow, srow_t, src6, src6d, vec, one, NULL);
}

/* every dtype pair converted on the device equals the CPU conversion */
static void test_convert(void) {
    int64_t n = 97;
    craft_tensor *f = cpu_uniform(1, &n, 21, -400, 400);
    float *fp = read_all(f);
    /* a few special values: NaN, inf, ties for f16/bf16 rounding, negative zero */
    float special[8] = {NAN,   INFINITY,      -INFINITY, 65520.0f, 1.0f + 0x1p-11f, 1.0f + 0x1p-8f,
                        -0.0f, 5.9604645e-08f};
    for (int i = 0; i < 8; i++) fp[i] = special[i];
    craft_tensor *g, *g8, *gi;
    CHECK_OK(craft_from_data(1, &n, CRAFT_F32, fp, &g));
    free(fp);
    /* float -> integer of NaN, inf or out-of-range values is undefined in C: those pairs use
     * the finite part, clamped */
    CHECK_OK(craft_slice(g, 0, 8, n, 1, &g8));
    CHECK_OK(craft_clamp(g8, -100, 100, &gi));
    int bad = 0;
    for (int s = 0; s <= CRAFT_BOOL; s++) {
        craft_tensor *cs, *ds;
        CHECK_OK(craft_to_dtype(g, s, &cs));
        ds = on_dev(cs);
        for (int t = 0; t <= CRAFT_BOOL; t++) {
            craft_tensor *ct = NULL, *dt_ = NULL;
            if ((s == CRAFT_F32 || s == CRAFT_F64 || s == CRAFT_F16 || s == CRAFT_BF16) &&
                (t == CRAFT_I64 || t == CRAFT_I32 || t == CRAFT_U8 || t == CRAFT_I8)) {
                craft_tensor *cs2, *ds2;
                CHECK_OK(craft_to_dtype(gi, s, &cs2));
                ds2 = on_dev(cs2);
                CHECK_OK(craft_to_dtype(cs2, t, &ct));
                CHECK_OK(craft_to_dtype(ds2, t, &dt_));
                release(2, cs2, ds2);
            } else {
                CHECK_OK(craft_to_dtype(cs, t, &ct));
                CHECK_OK(craft_to_dtype(ds, t, &dt_));
            }
            if (ct && dt_) {
                size_t es = craft_dtype_size(t), nb = (size_t)ct->numel * es;
                char *a = malloc(nb), *b = malloc(nb);
                craft_tensor_read(ct, t, a, nb);
                craft_tensor_read(dt_, t, b, nb);
                if (memcmp(a, b, nb)) {
                    bad++;
                    fprintf(stderr, "  convert %s -> %s differs\n", craft_dtype_name(s), craft_dtype_name(t));
                }
                free(a);
                free(b);
            }
            release(2, ct, dt_);
        }
        release(2, cs, ds);
    }
    CHECK_MSG(bad == 0, "%d dtype pairs convert differently on the device", bad);
    release(4, f, g, g8, gi);
}

static void test_fill(void) {
    int64_t s[2] = {5, 8};
    for (int dt = 0; dt <= CRAFT_BOOL; dt++) {
        craft_tensor *c, *d, *cv, *dv;
        CHECK_OK(craft_zeros(2, s, dt, 0, &c));
        CHECK_OK(craft_zeros(2, s, dt, DEV, &d));
        compare_bits("zeros", c, d);
        CHECK_OK(craft_fill_(c, -3.75));
        CHECK_OK(craft_fill_(d, -3.75));
        compare_bits("fill_ contiguous", c, d);
        CHECK_OK(craft_slice(c, 1, 1, 8, 3, &cv));
        CHECK_OK(craft_slice(d, 1, 1, 8, 3, &dv));
        CHECK_OK(craft_fill_(cv, 1e3));
        CHECK_OK(craft_fill_(dv, 1e3));
        compare_bits("fill_ strided", c, d);
        release(4, c, d, cv, dv);
    }
}

/* ------------------------------------------------------------ elementwise -- */
/* inputs kept inside every op's domain */
static void test_unary(void) {
    int64_t s[2] = {7, 33};
    craft_tensor *x = cpu_uniform(2, s, 5, 0.05f, 3.0f), *xn = cpu_uniform(2, s, 6, -4.0f, 4.0f);
    for (int op = 0; op < CRAFT_UNARY_COUNT; op++) {
        int positive = op == CRAFT_LOG || op == CRAFT_SQRT || op == CRAFT_RSQRT || op == CRAFT_LOG1P ||
            op == CRAFT_RECIPROCAL;
        craft_tensor *src = positive ? x : xn, *xt, *cx, *dx, *cy, *dy, *cs, *ds;
        CHECK_OK(craft_transpose(src, 0, 1, &xt)); /* strided input */
        CHECK_OK(craft_detach(xt, &cx));
        craft_set_requires_grad(cx, 1);
        dx = on_dev(xt);
        craft_set_requires_grad(dx, 1);
        CHECK_OK(craft_unary(op, cx, &cy));
        CHECK_OK(craft_unary(op, dx, &dy));
        int exact =
            op == CRAFT_NEG || op == CRAFT_ABS || op == CRAFT_RELU || op == CRAFT_SQUARE || op == CRAFT_SQRT;
        char what[64];
        snprintf(what, sizeof what, "unary %s", craft_unary_name(op));
        compare(what, cy, dy, exact ? 0 : 1e-5, exact ? 0 : 1e-6);
        CHECK_OK(craft_sum(cy, 0, NULL, 0, &cs));
        CHECK_OK(craft_sum(dy, 0, NULL, 0, &ds));
        CHECK_OK(craft_backward(cs, NULL, 0));
        CHECK_OK(craft_backward(ds, NULL, 0));
        snprintf(what, sizeof what, "unary %s backward", craft_unary_name(op));
        CHECK(dx->grad && dx->grad->device == DEV);
        compare(what, cx->grad, dx->grad, 1e-5, 1e-6);
        release(7, xt, cx, dx, cy, dy, cs, ds);
    }
    release(2, x, xn);
}

static void test_binary(void) {
    int64_t sa[3] = {3, 1, 5}, sb[2] = {4, 5};
    for (int op = 0; op < CRAFT_BINARY_COUNT; op++) {
        craft_tensor *a = cpu_uniform(3, sa, 30 + op, op == CRAFT_POW ? 0.2f : -2.0f, 2.0f);
        craft_tensor *b = cpu_uniform(2, sb, 40 + op, op == CRAFT_DIV ? 0.5f : -2.0f, 2.0f);
        craft_tensor *da = on_dev(a), *db = on_dev(b), *cy, *dy, *cs, *ds;
        craft_set_requires_grad(a, 1);
        craft_set_requires_grad(b, 1);
        craft_set_requires_grad(da, 1);
        craft_set_requires_grad(db, 1);
        CHECK_OK(craft_binary(op, a, b, &cy));
        CHECK_OK(craft_binary(op, da, db, &dy));
        char what[64];
        snprintf(what, sizeof what, "binary %s", craft_binary_name(op));
        compare(what, cy, dy, op == CRAFT_POW ? 1e-5 : 0, op == CRAFT_POW ? 1e-6 : 0);
        CHECK_OK(craft_sum(cy, 0, NULL, 0, &cs));
        CHECK_OK(craft_sum(dy, 0, NULL, 0, &ds));
        CHECK_OK(craft_backward(cs, NULL, 0));
        CHECK_OK(craft_backward(ds, NULL, 0));
        snprintf(what, sizeof what, "binary %s grad a", craft_binary_name(op));
        compare(what, a->grad, da->grad, 1e-5, 1e-5);
        snprintf(what, sizeof what, "binary %s grad b", craft_binary_name(op));
        compare(what, b->grad, db->grad, 1e-5, 1e-5);
        release(8, a, b, da, db, cy, dy, cs, ds);
    }
    /* ties of maximum split the gradient; a one-element CPU operand joins a device op */
    int64_t s4 = 4;
    float av[4] = {1, 2, 3, 4}, bv[4] = {1, 0, 3, 5};
    craft_tensor *a, *b, *da, *db, *y, *s, *one, *y2;
    craft_from_data(1, &s4, CRAFT_F32, av, &a);
    craft_from_data(1, &s4, CRAFT_F32, bv, &b);
    da = on_dev(a);
    db = on_dev(b);
    craft_set_requires_grad(da, 1);
    CHECK_OK(craft_binary(CRAFT_MAXIMUM, da, db, &y));
    CHECK_OK(craft_sum(y, 0, NULL, 0, &s));
    CHECK_OK(craft_backward(s, NULL, 0));
    float g[4];
    CHECK_OK(craft_tensor_read(da->grad, CRAFT_F32, g, sizeof g));
    CHECK(g[0] == 0.5f && g[1] == 1 && g[2] == 0.5f && g[3] == 0);
    CHECK_OK(craft_full(0, NULL, CRAFT_F32, 2.0, &one));
    CHECK_OK(craft_binary(CRAFT_MUL, da, one, &y2));
    CHECK(y2->device == DEV);
    CHECK_OK(craft_tensor_read(y2, CRAFT_F32, g, sizeof g));
    CHECK(g[0] == 2 && g[3] == 8);
    craft_tensor *y3;
    CHECK_OK(craft_binary(CRAFT_SUB, da, b, &y3)); /* a CPU operand is copied over */
    float r[4];
    CHECK_OK(craft_tensor_read(y3, CRAFT_F32, r, sizeof r));
    CHECK(y3->device == DEV && r[0] == 0 && r[1] == 2 && r[2] == 0 && r[3] == -1);
    release(9, a, b, da, db, y, s, one, y2, y3);
}

static void test_scalar_and_friends(void) {
    int64_t s[2] = {6, 10};
    craft_tensor *x = cpu_uniform(2, s, 50, 0.3f, 2.0f), *dx = on_dev(x);
    for (int op = 0; op < CRAFT_BINARY_COUNT; op++)
        for (int rev = 0; rev < 2; rev++) {
            craft_tensor *cx, *ddx, *cy, *dy, *cs, *ds;
            CHECK_OK(craft_detach(x, &cx));
            CHECK_OK(craft_detach(dx, &ddx));
            craft_set_requires_grad(cx, 1);
            craft_set_requires_grad(ddx, 1);
            CHECK_OK(craft_binary_scalar(op, cx, 1.25, rev, &cy));
            CHECK_OK(craft_binary_scalar(op, ddx, 1.25, rev, &dy));
            char what[64];
            snprintf(what, sizeof what, "scalar %s rev %d", craft_binary_name(op), rev);
            compare(what, cy, dy, op == CRAFT_POW ? 1e-5 : 0, op == CRAFT_POW ? 1e-6 : 0);
            CHECK_OK(craft_sum(cy, 0, NULL, 0, &cs));
            CHECK_OK(craft_sum(dy, 0, NULL, 0, &ds));
            CHECK_OK(craft_backward(cs, NULL, 0));
            CHECK_OK(craft_backward(ds, NULL, 0));
            compare(what, cx->grad, ddx->grad, 1e-5, 1e-6);
            release(6, cx, ddx, cy, dy, cs, ds);
        }
    craft_tensor *y = cpu_uniform(1, &s[1], 51, 0.3f, 2.0f), *dy = on_dev(y), *c1, *c2;
    for (int op = CRAFT_EQ; op <= CRAFT_GE; op++) {
        CHECK_OK(craft_compare(op, x, y, &c1));
        CHECK_OK(craft_compare(op, dx, dy, &c2));
        compare("compare", c1, c2, 0, 0);
        release(2, c1, c2);
    }
    /* clamp and where, with gradients */
    craft_tensor *cx, *ddx, *cc, *dc, *cs, *ds, *cond, *dcond, *cw, *dw;
    CHECK_OK(craft_detach(x, &cx));
    CHECK_OK(craft_detach(dx, &ddx));
    craft_set_requires_grad(cx, 1);
    craft_set_requires_grad(ddx, 1);
    CHECK_OK(craft_clamp(cx, 0.7, 1.5, &cc));
    CHECK_OK(craft_clamp(ddx, 0.7, 1.5, &dc));
    compare("clamp", cc, dc, 0, 0);
    CHECK_OK(craft_compare(CRAFT_GT, x, y, &cond));
    dcond = on_dev(cond);
    CHECK_OK(craft_where(cond, cc, cx, &cw));
    CHECK_OK(craft_where(dcond, dc, ddx, &dw));
    compare("where", cw, dw, 0, 0);
    CHECK_OK(craft_sum(cw, 0, NULL, 0, &cs));
    CHECK_OK(craft_sum(dw, 0, NULL, 0, &ds));
    CHECK_OK(craft_backward(cs, NULL, 0));
    CHECK_OK(craft_backward(ds, NULL, 0));
    compare("clamp + where backward", cx->grad, ddx->grad, 0, 0);
    /* in-place axpy_ / scale_ */
    CHECK_OK(craft_axpy_(dx, -0.5, dy));
    CHECK_OK(craft_scale_(dx, 3.0));
    craft_tensor *xc;
    CHECK_OK(craft_clone(x, &xc));
    CHECK_OK(craft_axpy_(xc, -0.5, y));
    CHECK_OK(craft_scale_(xc, 3.0));
    compare("axpy_ + scale_", xc, dx, 0, 0);
    release(15, x, dx, y, dy, cx, ddx, cc, dc, cs, ds, cond, dcond, cw, dw, xc);
}

/* ------------------------------------------------------------ reductions -- */
static void test_reduce(void) {
    int64_t s[3] = {4, 70, 6}, big = 100003;
    craft_tensor *x = cpu_uniform(3, s, 60, -2, 2), *xb = cpu_uniform(1, &big, 61, -1, 1);
    struct {
        int nd;
        int dims[2];
        int keep;
    } cases[] = {{0, {0}, 0}, {1, {1}, 0}, {1, {-1}, 1}, {2, {0, 2}, 0}, {1, {0}, 1}};
    for (int kind = 0; kind < 3; kind++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            craft_tensor *cx, *dx, *cy, *dy, *cs, *ds;
            CHECK_OK(craft_detach(x, &cx));
            dx = on_dev(x);
            craft_set_requires_grad(cx, 1);
            craft_set_requires_grad(dx, 1);
            int rc1, rc2;
            if (kind == 0) {
                rc1 = craft_sum(cx, cases[k].nd, cases[k].dims, cases[k].keep, &cy);
                rc2 = craft_sum(dx, cases[k].nd, cases[k].dims, cases[k].keep, &dy);
            } else if (kind == 1) {
                rc1 = craft_mean(cx, cases[k].nd, cases[k].dims, cases[k].keep, &cy);
                rc2 = craft_mean(dx, cases[k].nd, cases[k].dims, cases[k].keep, &dy);
            } else {
                rc1 = craft_var(cx, cases[k].nd, cases[k].dims, 1, cases[k].keep, &cy);
                rc2 = craft_var(dx, cases[k].nd, cases[k].dims, 1, cases[k].keep, &dy);
            }
            CHECK(rc1 == 0 && rc2 == 0);
            if (rc1 || rc2) continue;
            char what[64];
            snprintf(what, sizeof what, "reduce kind %d case %zu", kind, k);
            compare(what, cy, dy, 1e-5, 1e-5);
            /* a non-uniform upstream gradient: sum(y * y) */
            craft_tensor *cq, *dq;
            CHECK_OK(craft_binary(CRAFT_MUL, cy, cy, &cq));
            CHECK_OK(craft_binary(CRAFT_MUL, dy, dy, &dq));
            CHECK_OK(craft_sum(cq, 0, NULL, 0, &cs));
            CHECK_OK(craft_sum(dq, 0, NULL, 0, &ds));
            CHECK_OK(craft_backward(cs, NULL, 0));
            CHECK_OK(craft_backward(ds, NULL, 0));
            compare(what, cx->grad, dx->grad, 1e-4, 1e-5);
            release(8, cx, dx, cy, dy, cq, dq, cs, ds);
        }
    /* one long row (the work-group kernel) and var of it */
    craft_tensor *dxb = on_dev(xb), *c1, *d1;
    CHECK_OK(craft_sum(xb, 0, NULL, 0, &c1));
    CHECK_OK(craft_sum(dxb, 0, NULL, 0, &d1));
    compare("sum of 100003", c1, d1, 1e-6, 1e-5);
    release(2, c1, d1);
    CHECK_OK(craft_var(xb, 0, NULL, 0, 0, &c1));
    CHECK_OK(craft_var(dxb, 0, NULL, 0, 0, &d1));
    compare("var of 100003", c1, d1, 1e-6, 1e-7);
    release(2, c1, d1);
    /* max / min / argmax: exact values and indices (ties and NaN included), scattered backward */
    float v[12] = {1, 5, 5, -2, NAN, 0, 3, 3, 3, -1, -7, 2};
    int64_t s2[2] = {3, 4};
    craft_tensor *m, *dm;
    CHECK_OK(craft_from_data(2, s2, CRAFT_F32, v, &m));
    dm = on_dev(m);
    for (int dim = 0; dim < 2; dim++)
        for (int want_max = 0; want_max < 2; want_max++) {
            craft_tensor *cv, *ci, *dv, *di, *cxx, *dxx, *cs, *ds;
            CHECK_OK(craft_detach(x, &cxx));
            dxx = on_dev(x);
            craft_set_requires_grad(cxx, 1);
            craft_set_requires_grad(dxx, 1);
            if (want_max) {
                CHECK_OK(craft_max(cxx, dim + 1, dim, &cv, &ci));
                CHECK_OK(craft_max(dxx, dim + 1, dim, &dv, &di));
            } else {
                CHECK_OK(craft_min(cxx, dim + 1, dim, &cv, &ci));
                CHECK_OK(craft_min(dxx, dim + 1, dim, &dv, &di));
            }
            compare("max/min values", cv, dv, 0, 0);
            compare_bits("max/min indices", ci, di);
            CHECK_OK(craft_sum(cv, 0, NULL, 0, &cs));
            CHECK_OK(craft_sum(dv, 0, NULL, 0, &ds));
            CHECK_OK(craft_backward(cs, NULL, 0));
            CHECK_OK(craft_backward(ds, NULL, 0));
            compare("max/min backward", cxx->grad, dxx->grad, 0, 0);
            release(8, cv, ci, dv, di, cxx, dxx, cs, ds);
            craft_tensor *ca, *da;
            CHECK_OK(craft_argmax(m, dim, 0, &ca));
            CHECK_OK(craft_argmax(dm, dim, 0, &da));
            compare_bits("argmax with ties and NaN", ca, da);
            release(2, ca, da);
        }
    release(5, x, xb, dxb, m, dm);
}

/* ------------------------------------------------------------ GEMM -- */
static void check_matmul(const char *what, int na, const int64_t *sa, int nb, const int64_t *sb,
                         int transpose_b) {
    craft_tensor *a = cpu_uniform(na, sa, 70, -1, 1), *b0 = cpu_uniform(nb, sb, 71, -1, 1), *da = on_dev(a),
                 *db0 = on_dev(b0);
    craft_tensor *b = NULL, *db = NULL, *cy = NULL, *dy = NULL, *cs = NULL, *ds = NULL;
    craft_set_requires_grad(a, 1);
    craft_set_requires_grad(da, 1);
    craft_set_requires_grad(b0, 1);
    craft_set_requires_grad(db0, 1);
    if (transpose_b) {
        CHECK_OK(craft_transpose(b0, -1, -2, &b));
        CHECK_OK(craft_transpose(db0, -1, -2, &db));
    } else {
        b = craft_tensor_retain(b0);
        db = craft_tensor_retain(db0);
    }
    int rc = craft_matmul(a, b, &cy), rc2 = rc ? rc : craft_matmul(da, db, &dy);
    CHECK_MSG(rc == 0 && rc2 == 0, "%s: %s", what, craft_last_error());
    if (!rc && !rc2) {
        compare(what, cy, dy, 1e-4, 1e-4);
        CHECK_OK(craft_sum(cy, 0, NULL, 0, &cs));
        CHECK_OK(craft_sum(dy, 0, NULL, 0, &ds));
        CHECK_OK(craft_backward(cs, NULL, 0));
        CHECK_OK(craft_backward(ds, NULL, 0));
        compare("matmul grad a", a->grad, da->grad, 1e-4, 1e-4);
        compare("matmul grad b", b0->grad, db0->grad, 1e-4, 1e-4);
    }
    release(10, a, b0, da, db0, b, db, cy, dy, cs, ds);
}

static void test_gemm(void) {
    double t0 = craft_now();
    int64_t a2[2] = {20, 30}, b2[2] = {10, 30};
    check_matmul("matmul 2d (b transposed view)", 2, a2, 2, b2, 1);
    int64_t a3[3] = {3, 20, 30}, b3[2] = {30, 10};
    check_matmul("matmul batched, b broadcast", 3, a3, 2, b3, 0);
    int64_t a4[4] = {2, 1, 5, 7}, b4[3] = {3, 7, 4};
    check_matmul("matmul broadcast batch dims", 4, a4, 3, b4, 0);
    int64_t v1 = 30;
    check_matmul("matrix @ vector", 2, a2, 1, &v1, 0);
    /* linear with bias */
    int64_t sx[3] = {2, 5, 30}, sw[2] = {10, 30}, sbias = 10;
    craft_tensor *x = cpu_uniform(3, sx, 80, -1, 1), *w = cpu_uniform(2, sw, 81, -1, 1),
                 *bb = cpu_uniform(1, &sbias, 82, -1, 1);
    craft_tensor *dx = on_dev(x), *dw = on_dev(w), *dbb = on_dev(bb), *cy, *dy, *cs, *ds;
    craft_tensor *all[6] = {x, w, bb, dx, dw, dbb};
    for (int i = 0; i < 6; i++) craft_set_requires_grad(all[i], 1);
    CHECK_OK(craft_linear(x, w, bb, &cy));
    CHECK_OK(craft_linear(dx, dw, dbb, &dy));
    compare("linear", cy, dy, 1e-4, 1e-4);
    CHECK_OK(craft_sum(cy, 0, NULL, 0, &cs));
    CHECK_OK(craft_sum(dy, 0, NULL, 0, &ds));
    CHECK_OK(craft_backward(cs, NULL, 0));
    CHECK_OK(craft_backward(ds, NULL, 0));
    compare("linear grad x", x->grad, dx->grad, 1e-4, 1e-4);
    compare("linear grad w", w->grad, dw->grad, 1e-4, 1e-4);
    compare("linear grad b", bb->grad, dbb->grad, 1e-4, 1e-4);
    release(10, x, w, bb, dx, dw, dbb, cy, dy, cs, ds);
    /* f16 @ f16: HGEMM with cl_khr_fp16, else fp32 compute on converted copies (PoCL); within
     * one f16 rounding of the CPU's f32 product rounded to f16 */
    craft_tensor *ha = cpu_uniform(2, a2, 83, -1, 1), *hb = cpu_uniform(2, (int64_t[]){30, 10}, 84, -1, 1),
                 *ha16, *hb16, *dha, *dhb;
    craft_tensor *c32, *c16, *dy16;
    CHECK_OK(craft_to_dtype(ha, CRAFT_F16, &ha16));
    CHECK_OK(craft_to_dtype(hb, CRAFT_F16, &hb16));
    dha = on_dev(ha16);
    dhb = on_dev(hb16);
    craft_tensor *ha32, *hb32;
    CHECK_OK(craft_to_dtype(ha16, CRAFT_F32, &ha32));
    CHECK_OK(craft_to_dtype(hb16, CRAFT_F32, &hb32));
    CHECK_OK(craft_matmul(ha32, hb32, &c32));
    CHECK_OK(craft_to_dtype(c32, CRAFT_F16, &c16));
    CHECK_OK(craft_matmul(dha, dhb, &dy16));
    CHECK(dy16 && dy16->dtype == CRAFT_F16 && dy16->device == DEV);
    compare("f16 matmul", c16, dy16, INFO.fp16 ? 1e-2 : 1e-3, 1e-3);
    release(12, ha, hb, ha16, hb16, dha, dhb, ha32, hb32, c32, c16, dy16, NULL);
    fprintf(stderr, "  gemm tests took %.1f s (CLBlast compiles its kernels on first use)\n",
            craft_now() - t0);
}

/* craft_cl_launch_count: one per kernel enqueued and per CLBlast call; 0 on the CPU */
static void test_launch_count(void) {
    int64_t n0 = -1, n1 = -1, n2 = -1, c = -1;
    CHECK_OK(craft_cl_launch_count(CRAFT_DEVICE_CPU, &c));
    CHECK(c == 0);
    CHECK_ERR(craft_cl_launch_count(DEV, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_cl_launch_count(1 + 4096, &c), CRAFT_EDEVICE);
    int64_t s2[2] = {8, 8};
    craft_tensor *x = cpu_uniform(2, s2, 90, -1, 1), *dx = on_dev(x), *y, *z;
    CHECK_OK(craft_cl_launch_count(DEV, &n0));
    CHECK_OK(craft_unary(1, dx, &y)); /* exp: one kernel */
    CHECK_OK(craft_cl_launch_count(DEV, &n1));
    CHECK(n1 == n0 + 1);
    CHECK_OK(craft_matmul(dx, dx, &z)); /* one CLBlast call at least */
    CHECK_OK(craft_cl_launch_count(DEV, &n2));
    CHECK(n2 > n1);
    release(4, x, dx, y, z);
}

/* ------------------------------------------------------------ random -- */
static void test_random(void) {
    int64_t n = 200003;
    craft_tensor *c, *d;
    for (int normal = 0; normal < 2; normal++)
        for (int k = 0; k < 2; k++) {
            uint64_t seed = k ? 0xDEADBEEFCAFEull : 7, off = k ? 13 : 0;
            CHECK_OK(craft_empty(1, &n, CRAFT_F32, 0, &c));
            CHECK_OK(craft_empty(1, &n, CRAFT_F32, DEV, &d));
            if (normal) {
                CHECK_OK(craft_randn_(c, seed, off));
                CHECK_OK(craft_randn_(d, seed, off));
            } else {
                CHECK_OK(craft_rand_(c, seed, off));
                CHECK_OK(craft_rand_(d, seed, off));
            }
            if (!normal || INFO.fp64) compare_bits(normal ? "randn bit for bit" : "rand bit for bit", c, d);
            else compare("randn (no fp64: float formulas)", c, d, 0, 4e-6);
            release(2, c, d);
        }
    /* the float formulas (devices without fp64) stay within 4e-6 of the double ones */
    CHECK_OK(craft_empty(1, &n, CRAFT_F32, 0, &c));
    CHECK_OK(craft_empty(1, &n, CRAFT_F32, DEV, &d));
    CHECK_OK(craft_randn_(c, 99, 5));
    CHECK_OK(craft_cl_philox_(d, 99, 5, 2));
    compare("randn float formulas", c, d, 0, 4e-6);
    release(2, c, d);
    /* strided f16 targets get the same values as on the CPU */
    int64_t s[2] = {33, 17};
    craft_tensor *ch, *dh, *cv, *dv;
    CHECK_OK(craft_zeros(2, s, CRAFT_F16, 0, &ch));
    CHECK_OK(craft_zeros(2, s, CRAFT_F16, DEV, &dh));
    CHECK_OK(craft_transpose(ch, 0, 1, &cv));
    CHECK_OK(craft_transpose(dh, 0, 1, &dv));
    CHECK_OK(craft_randn_(cv, 3, 1));
    CHECK_OK(craft_randn_(dv, 3, 1));
    if (INFO.fp64) compare_bits("randn into a strided f16 view", ch, dh);
    release(4, ch, dh, cv, dv);
}

/* ------------------------------------------------------------ optimisers -- */
static void test_optim(void) {
    int64_t s[2] = {13, 29};
    craft_tensor *p = cpu_uniform(2, s, 90, -1, 1), *m, *v, *dp = on_dev(p), *dm, *dv, *buf, *dbuf, *e, *de;
    CHECK_OK(craft_zeros(2, s, CRAFT_F32, 0, &m));
    CHECK_OK(craft_zeros(2, s, CRAFT_F32, 0, &v));
    CHECK_OK(craft_zeros(2, s, CRAFT_F32, DEV, &dm));
    CHECK_OK(craft_zeros(2, s, CRAFT_F32, DEV, &dv));
    for (int step = 1; step <= 3; step++) {
        craft_tensor *g = cpu_uniform(2, s, 100 + step, -1, 1), *dg = on_dev(g);
        CHECK_OK(craft_adamw_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, step));
        CHECK_OK(craft_adamw_step(dp, dg, dm, dv, 1e-2, 0.9, 0.999, 1e-8, 0.01, step));
        release(2, g, dg);
    }
    double tol = 0; /* exact with correctly rounded divide/sqrt; PoCL and most GPUs offer them */
    compare("adamw param", p, dp, tol, tol);
    compare("adamw m", m, dm, 0, 0);
    compare("adamw v", v, dv, 0, 0);
    CHECK_OK(craft_zeros(2, s, CRAFT_F32, 0, &buf));
    CHECK_OK(craft_zeros(2, s, CRAFT_F32, DEV, &dbuf));
    for (int step = 1; step <= 3; step++) {
        craft_tensor *g = cpu_uniform(2, s, 200 + step, -1, 1), *dg = on_dev(g);
        CHECK_OK(craft_sgd_step(p, g, buf, 0.1, 0.9, 1e-3, 1));
        CHECK_OK(craft_sgd_step(dp, dg, dbuf, 0.1, 0.9, 1e-3, 1));
        release(2, g, dg);
    }
    compare("sgd nesterov param", p, dp, 0, 0);
    compare("sgd momentum buffer", buf, dbuf, 0, 0);
    e = cpu_uniform(2, s, 300, -1, 1);
    de = on_dev(e);
    CHECK_OK(craft_ema_update(e, p, 0.99));
    CHECK_OK(craft_ema_update(de, dp, 0.99));
    compare("ema", e, de, 0, 0);
    /* clip_grad_norm over device grads */
    craft_tensor *g1 = cpu_uniform(2, s, 400, -3, 3), *g2 = on_dev(g1), *gs[1] = {g1}, *gd[1] = {g2};
    double n1 = 0, n2 = 0;
    CHECK_OK(craft_clip_grad_norm(1, gs, 1.0, &n1));
    CHECK_OK(craft_clip_grad_norm(1, gd, 1.0, &n2));
    CHECK_NEAR(n2, n1, 1e-6 * n1);
    compare("clip_grad_norm scaled grads", g1, g2, 1e-6, 1e-7);
    CHECK_ERR(craft_adamw_step(dp, g1, dm, dv, 1e-2, 0.9, 0.999, 1e-8, 0, 4), CRAFT_EDEVICE);
    release(13, p, m, v, dp, dm, dv, buf, dbuf, e, de, g1, g2, NULL);
}

/* ------------------------------------------------------------ autograd across devices -- */
static void test_to_device_grad(void) {
    int64_t s = 9;
    craft_tensor *x = cpu_uniform(1, &s, 500, -1, 1), *y, *z, *t, *back;
    craft_set_requires_grad(x, 1);
    CHECK_OK(craft_to_device(x, DEV, &y));
    CHECK(y && y->device == DEV && y->requires_grad);
    CHECK_OK(craft_binary(CRAFT_MUL, y, y, &z));
    CHECK_OK(craft_to_device(z, 0, &back)); /* and back to the CPU */
    CHECK_OK(craft_sum(back, 0, NULL, 0, &t));
    CHECK_OK(craft_backward(t, NULL, 0));
    CHECK(x->grad && x->grad->device == 0);
    craft_tensor *two;
    CHECK_OK(craft_binary_scalar(CRAFT_MUL, x, 2.0, 0, &two));
    if (x->grad) compare_bits("d sum(x^2) / dx through cl", two, x->grad);
    craft_tensor *same;
    CHECK_OK(craft_to_device(y, DEV, &same));
    CHECK(same == y);
    release(6, x, y, z, t, back, two);
    craft_tensor_release(same);
}

/* ------------------------------------------------------------ errors and memory -- */
static void test_errors(void) {
    int n = 0;
    craft_cl_device_count(&n);
    int64_t s = 4;
    craft_tensor *t = NULL, *u = NULL;
    CHECK_ERR(craft_empty(1, &s, CRAFT_F32, 1 + n, &t), CRAFT_EDEVICE);
    CHECK(strstr(craft_last_error(), "no OpenCL device") != NULL);
    /* too big for one buffer, then too big for the memory limit (64 MiB, set in main) */
    int64_t huge = INFO.max_alloc / 4 + 1024;
    CHECK_ERR(craft_empty(1, &huge, CRAFT_F32, DEV, &t), CRAFT_ENOMEM);
    CHECK(strstr(craft_last_error(), "asked for") && strstr(craft_last_error(), "free of"));
    int64_t m40 = 10 << 20; /* 40 MiB of f32 */
    CHECK_OK(craft_empty(1, &m40, CRAFT_F32, DEV, &t));
    CHECK_ERR(craft_empty(1, &m40, CRAFT_F32, DEV, &u), CRAFT_ENOMEM);
    fprintf(stderr, "  expected: %s\n", craft_last_error());
    CHECK(strstr(craft_last_error(), "asked for 40.0 MiB") &&
          strstr(craft_last_error(), "CRAFT_CL_MEM_LIMIT_MB"));
    craft_tensor_release(t);
    t = NULL;
    CHECK_OK(craft_empty(1, &m40, CRAFT_F32, DEV, &u)); /* usable again, from the cache */
    craft_pool_stats st;
    CHECK_OK(craft_cl_pool_stats(DEV, &st));
    CHECK(st.in_use >= (int64_t)(40 << 20) && st.peak >= st.in_use);
    craft_tensor_release(u);
    CHECK_OK(craft_cl_pool_stats(DEV, &st));
    CHECK(st.cached >= (int64_t)(40 << 20));
    CHECK_OK(craft_cl_pool_trim(DEV));
    CHECK_OK(craft_cl_pool_stats(DEV, &st));
    CHECK(st.cached == 0);
    /* a kernel that does not compile: the build log is in the message */
    CHECK_ERR(craft_cl_build_check(DEV, "__kernel void broken(__global float *x) { x[0] = undefined_name; }"),
              CRAFT_EDEVICE);
    fprintf(stderr, "  expected: %.200s...\n", craft_last_error());
    CHECK(strstr(craft_last_error(), "build log") && strstr(craft_last_error(), "undefined_name"));
    CHECK_OK(craft_cl_build_check(DEV, "__kernel void fine(__global float *x) { x[0] = 1.0f; }"));
    /* wrong dtype and devices are refused clearly; the device still works after all this */
    craft_tensor *i64, *a, *b;
    CHECK_OK(craft_zeros(1, &s, CRAFT_I64, DEV, &i64));
    CHECK_ERR(craft_unary(CRAFT_EXP, i64, &t), CRAFT_ETYPE);
    CHECK_ERR(craft_to_device(i64, -3, &t), CRAFT_EDEVICE);
    CHECK_OK(craft_zeros(1, &s, CRAFT_F32, DEV, &a));
    CHECK_OK(craft_unary(CRAFT_EXP, a, &b));
    double v = 0;
    int64_t i0 = 2;
    CHECK_OK(craft_get(b, &i0, &v));
    CHECK(v == 1.0);
    release(3, i64, a, b);
}

/* the binary program cache: a file in CRAFT_CL_CACHE after the first build */
static void test_cache(void) {
    const char *dir = getenv("CRAFT_CL_CACHE");
    DIR *dd = dir ? opendir(dir) : NULL;
    int found = 0;
    for (struct dirent *e; dd && (e = readdir(dd));)
        found |= !strncmp(e->d_name, "cl-", 3) && strstr(e->d_name, ".bin") != NULL;
    if (dd) closedir(dd);
    CHECK_MSG(found, "no cl-*.bin program binary in %s", dir ? dir : "(unset)");
}

/* run in a child with OCL_ICD_VENDORS at an empty folder: no platform, a clear error */
static int child_no_platform(void) {
    int n = 5, fails = 0;
    int rc = craft_cl_device_count(&n);
    if (rc != CRAFT_EDEVICE || n != 5) fails++;
    if (!strstr(craft_last_error(), "OCL_ICD_VENDORS")) fails++;
    fprintf(stderr, "  expected (no platform): %s\n", craft_last_error());
    craft_tensor *t;
    int64_t s = 3;
    if (craft_empty(1, &s, CRAFT_F32, 1, &t) != CRAFT_EDEVICE) fails++;
    if (craft_zeros(1, &s, CRAFT_F32, 0, &t) != CRAFT_OK) fails++; /* the CPU is unaffected */
    else craft_tensor_release(t);
    return fails ? 1 : 0;
}

static const char *SELF;
static void test_no_platform(void) {
    const char *self = SELF;
    char dir[] = "/tmp/craft-no-icd-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("OCL_ICD_VENDORS", dir, 1);
        execl(self, self, "--no-platform-child", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "no-platform child exit status %d", status);
    rmdir(dir);
}

int main(int argc, char **argv) {
    setenv("POCL_CACHE_DIR", "/tmp/craft-pocl-cache", 0);
    setenv("CRAFT_CL_CACHE", "/tmp/craft-cl-cache", 0);
    setenv("CRAFT_CL_MEM_LIMIT_MB", "64", 1);
    mkdir("/tmp/craft-pocl-cache", 0777);
    if (argc > 1 && !strcmp(argv[1], "--no-platform-child")) return child_no_platform();
    int st = cl_test_open("test_cl");
    if (st >= 0) return st;
    if (craft_cl_device_info(DEV - 1, &INFO)) {
        fprintf(stderr, "FAIL device info: %s\n", craft_last_error());
        return 1;
    }
    RUN(test_devices);
    RUN(test_transfers);
    RUN(test_convert);
    RUN(test_fill);
    RUN(test_unary);
    RUN(test_binary);
    RUN(test_scalar_and_friends);
    RUN(test_reduce);
    RUN(test_gemm);
    RUN(test_launch_count);
    RUN(test_random);
    RUN(test_optim);
    RUN(test_to_device_grad);
    RUN(test_errors);
    RUN(test_cache);
    SELF = argv[0];
    RUN(test_no_platform);
    return CHECK_SUMMARY();
}
