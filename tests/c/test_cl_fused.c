/* test_cl_fused.c: the fused kernels of the OpenCL back end against the compositions they replace
 * (tests/run.sh runs this once per OpenCL device). group_norm + activation (group_norm_act,
 * group_norm_act_grad): on the device, with the fused kernels and without them (the op then
 * records group_norm and the unary op), the output and the gradients of input, weight and bias
 * are bit-identical — the kernels compute the same float expressions in one pass — and the
 * fused forward launches fewer kernels. test_cl_ops compares the fused op with the CPU's. */
#include "check.h"
#include "core/backend.h"
#include <string.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */
#include "cl_check.h"

static craft_tensor *dev_leaf(const craft_tensor *cpu) {
    craft_tensor *d = on_dev(cpu);
    if (d) CHECK_OK(craft_set_requires_grad(d, 1));
    return d;
}

static int64_t launches(void) {
    int64_t n = -1;
    CHECK_OK(craft_cl_launch_count(DEV, &n));
    return n;
}

/* y and the three gradients of group_norm_act(x) on the device, fused or composed; *nfwd: the
 * forward's kernel launches */
static void run(int fused, int act, const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                const craft_tensor *gy, int groups, float **out, int64_t *nfwd) {
    craft_backend_test_disable(DEV, CRAFT_K_group_norm_act, !fused);
    craft_backend_test_disable(DEV, CRAFT_K_group_norm_act_grad, !fused);
    craft_tensor *dx = dev_leaf(x), *dw = w ? dev_leaf(w) : NULL, *db = b ? dev_leaf(b) : NULL,
                 *dg = on_dev(gy), *y = NULL;
    int64_t n0 = launches();
    CHECK_OK(craft_group_norm_act(dx, groups, dw, db, 1e-5, act, &y));
    *nfwd = launches() - n0;
    CHECK_MSG(y && !strcmp(craft_grad_fn_name(y), fused ? "group_norm_act" : craft_unary_name(act)),
              "recorded as %s", y ? craft_grad_fn_name(y) : "(none)");
    if (y) CHECK_OK(craft_backward(y, dg, 0));
    const craft_tensor *r[4] = {y, dx ? dx->grad : NULL, dw ? dw->grad : NULL, db ? db->grad : NULL};
    for (int i = 0; i < 4; i++) out[i] = r[i] ? read_all(r[i]) : NULL;
    release(5, dx, dw, db, dg, y);
    craft_backend_test_disable(DEV, CRAFT_K_group_norm_act, 0);
    craft_backend_test_disable(DEV, CRAFT_K_group_norm_act_grad, 0);
}

static void test_group_norm_act(void) {
    /* x [N, C, H, W], groups, with weight and bias */
    const int64_t shapes[][6] = {{2, 64, 9, 7, 32, 1},
                                 {3, 6, 5, 1, 3, 0},
                                 {1, 12, 33, 17, 1, 1},
                                 {2, 8, 4, 4, 8, 1}};
    const int acts[4] = {CRAFT_SILU, CRAFT_GELU, CRAFT_SIGMOID, CRAFT_TANH};
    for (int si = 0; si < 4; si++)
        for (int ai = 0; ai < 4; ai++) {
            const int64_t *s = shapes[si];
            int64_t xs[4] = {s[0], s[1], s[2], s[3]}, cs[1] = {s[1]}, n = s[0] * s[1] * s[2] * s[3];
            craft_tensor *x = cpu_uniform(4, xs, 10 + si, -2, 3),
                         *w = s[5] ? cpu_uniform(1, cs, 20 + si, 0.5f, 1.5f) : NULL,
                         *b = s[5] ? cpu_uniform(1, cs, 30 + si, -1, 1) : NULL,
                         *gy = cpu_uniform(4, xs, 40 + si, -1, 1);
            float *f[4], *c[4];
            int64_t nf = 0, nc = 0;
            run(1, acts[ai], x, w, b, gy, (int)s[4], f, &nf);
            run(0, acts[ai], x, w, b, gy, (int)s[4], c, &nc);
            int64_t len[4] = {n, n, s[1], s[1]};
            const char *names[4] = {"output", "input gradient", "weight gradient", "bias gradient"};
            for (int i = 0; i < (s[5] ? 4 : 2); i++)
                CHECK_MSG(f[i] && c[i] && !memcmp(f[i], c[i], (size_t)len[i] * sizeof(float)),
                          "%s, shape %lld: %s of the fused kernels differs from group_norm then the op",
                          craft_unary_name(acts[ai]), (long long)si, names[i]);
            CHECK_MSG(nf < nc, "fused forward: %lld launches, composed %lld", (long long)nf, (long long)nc);
            for (int i = 0; i < 4; i++) {
                free(f[i]);
                free(c[i]);
            }
            release(4, x, w, b, gy);
        }
    CHECK(craft_device_supports(DEV, CRAFT_K_group_norm_act, CRAFT_F32));
    CHECK(craft_device_supports(DEV, CRAFT_K_group_norm_act_grad, CRAFT_F32));
}

int main(void) {
    int st = cl_test_open("test_cl_fused");
    if (st >= 0) return st;
    RUN(test_group_norm_act);
    (void)compare_cl; /* cl_check.h's comparison: this file compares bits itself */
    return CHECK_SUMMARY();
}
