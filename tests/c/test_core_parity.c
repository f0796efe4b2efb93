/* test_core_parity.c: the engine-core ops against PyTorch 1.13 references
 * (tests/fixtures/ops/core_ops.bin, made by tests/fixtures/make_core_fixtures.py): every unary
 * op, every binary op with broadcasting and its scalar form, clamp, where, sum/mean/var/max over dims, batched
 * and broadcast matmul, linear. Forward outputs and the input gradients of sum(y * gy) are
 * compared per tensor as max|got - ref| / max|ref|: at most 1e-4 forward, 1e-3 gradient. */
#include "fixture.h"
#include "core/internal.h"
#include <string.h>

static fx_file F;

static double rel_err(const craft_tensor *got, const fx_tensor *ref) {
    if (!got || !ref || got->numel != ref->numel) return 1e9;
    float *g = malloc((size_t)(ref->numel ? ref->numel : 1) * sizeof(float));
    craft_tensor_read(got, CRAFT_F32, g, (size_t)ref->numel * sizeof(float));
    double md = 0, mr = 0;
    for (int64_t i = 0; i < ref->numel; i++) {
        double d = fabs((double)g[i] - ref->data[i]);
        if (d != d) d = 1e9;
        if (d > md) md = d;
        if (fabs(ref->data[i]) > mr) mr = fabs(ref->data[i]);
    }
    free(g);
    return md / (mr > 0 ? mr : 1);
}

typedef int (*op_fn)(craft_tensor **x, craft_tensor **y, const void *ctx);

static void run_case(const char *name, int n_in, op_fn fn, const void *ctx) {
    char key[96];
    craft_tensor *x[3] = {0}, *y = NULL;
    for (int i = 0; i < n_in; i++) {
        snprintf(key, sizeof key, "%s.x%d", name, i);
        x[i] = fx_craft(fx_get(&F, key), 1);
        if (!x[i]) return;
    }
    int rc = fn(x, &y, ctx);
    CHECK_MSG(rc == CRAFT_OK, "%s: %s", name, craft_last_error());
    if (rc == CRAFT_OK) {
        snprintf(key, sizeof key, "%s.y", name);
        double e = rel_err(y, fx_get(&F, key));
        CHECK_MSG(e <= 1e-4, "%s forward: relative error %.3g", name, e);
        snprintf(key, sizeof key, "%s.gy", name);
        craft_tensor *gy = fx_craft(fx_get(&F, key), 0);
        CHECK_OK(craft_backward(y, gy, 0));
        for (int i = 0; i < n_in; i++) {
            snprintf(key, sizeof key, "%s.g%d", name, i);
            double eg = rel_err(x[i]->grad, fx_get(&F, key));
            CHECK_MSG(eg <= 1e-3, "%s gradient of input %d: relative error %.3g", name, i, eg);
        }
        craft_tensor_release(gy);
    }
    craft_tensor_release(y);
    for (int i = 0; i < n_in; i++) craft_tensor_release(x[i]);
}

static int f_unary(craft_tensor **x, craft_tensor **y, const void *c) {
    return craft_unary(*(const int *)c, x[0], y);
}
static int f_binary(craft_tensor **x, craft_tensor **y, const void *c) {
    return craft_binary(*(const int *)c, x[0], x[1], y);
}
static int f_scalar(craft_tensor **x, craft_tensor **y, const void *c) {
    return craft_binary_scalar(*(const int *)c, x[0], 1.7, 0, y);
}
static int f_clamp(craft_tensor **x, craft_tensor **y, const void *c) {
    return craft_clamp(x[0], -0.3, 0.4, y);
}
static int f_where(craft_tensor **x, craft_tensor **y, const void *c) {
    /* torch.where(a > 0, a, b): the condition is data, not differentiated */
    craft_tensor *zero, *cond;
    int64_t one = 1;
    int rc = craft_full(0, &one, CRAFT_F32, 0.0, &zero);
    if (rc) return rc;
    rc = craft_compare(CRAFT_GT, x[0], zero, &cond);
    craft_tensor_release(zero);
    if (rc) return rc;
    rc = craft_where(cond, x[0], x[1], y);
    craft_tensor_release(cond);
    return rc;
}
static int f_sum_all(craft_tensor **x, craft_tensor **y, const void *c) {
    return craft_sum(x[0], 0, NULL, 0, y);
}
static int f_sum_d1(craft_tensor **x, craft_tensor **y, const void *c) {
    int d = 1;
    return craft_sum(x[0], 1, &d, 0, y);
}
static int f_mean_d02k(craft_tensor **x, craft_tensor **y, const void *c) {
    int d[2] = {0, 2};
    return craft_mean(x[0], 2, d, 1, y);
}
static int f_var_d1(craft_tensor **x, craft_tensor **y, const void *c) {
    int d = 1;
    return craft_var(x[0], 1, &d, 1, 0, y);
}
static int f_max_d2(craft_tensor **x, craft_tensor **y, const void *c) {
    return craft_max(x[0], 2, 0, y, NULL);
}
static int f_matmul(craft_tensor **x, craft_tensor **y, const void *c) { return craft_matmul(x[0], x[1], y); }
static int f_linear(craft_tensor **x, craft_tensor **y, const void *c) {
    return craft_linear(x[0], x[1], x[2], y);
}

static void test_unary(void) {
    for (int op = 0; op < CRAFT_UNARY_COUNT; op++) {
        char name[64];
        snprintf(name, sizeof name, "unary.%s", craft_unary_name(op));
        run_case(name, 1, f_unary, &op);
    }
}

static void test_binary_and_scalar(void) {
    for (int op = 0; op < CRAFT_BINARY_COUNT; op++) {
        char name[64];
        snprintf(name, sizeof name, "binary.%s", craft_binary_name(op));
        run_case(name, 2, f_binary, &op);
        snprintf(name, sizeof name, "scalar.%s", craft_binary_name(op));
        run_case(name, 1, f_scalar, &op);
    }
}

static void test_clamp_where(void) {
    run_case("clamp", 1, f_clamp, NULL);
    run_case("where", 2, f_where, NULL);
}

static void test_reductions(void) {
    run_case("reduce.sum_all", 1, f_sum_all, NULL);
    run_case("reduce.sum_d1", 1, f_sum_d1, NULL);
    run_case("reduce.mean_d02k", 1, f_mean_d02k, NULL);
    run_case("reduce.var_d1", 1, f_var_d1, NULL);
    run_case("reduce.max_d2", 1, f_max_d2, NULL);
}

static void test_matmul_linear(void) {
    run_case("matmul.batched", 2, f_matmul, NULL);
    run_case("matmul.broadcast", 2, f_matmul, NULL);
    run_case("linear", 3, f_linear, NULL);
}

int main(void) {
    if (fx_load("core_ops.bin", &F)) {
        CHECK_MSG(0, "cannot load core_ops.bin (run from the repository root)");
        return CHECK_SUMMARY();
    }
    RUN(test_unary);
    RUN(test_binary_and_scalar);
    RUN(test_clamp_where);
    RUN(test_reductions);
    RUN(test_matmul_linear);
    fx_free(&F);
    return CHECK_SUMMARY();
}
