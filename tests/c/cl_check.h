/* cl_check.h: what the OpenCL op tests (test_cl.c, test_cl_conv.c, test_cl_nn.c) share: CPU inputs, copies
 * to the device under test (DEV, which the including file defines), reading results back, and the
 * cl-against-cpu comparison. Include after check.h. */
#ifndef CRAFT_TEST_CL_CHECK_H
#define CRAFT_TEST_CL_CHECK_H
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>

static craft_tensor *cpu_uniform(int nd, const int64_t *shape, uint64_t seed, float lo, float hi) {
    craft_tensor *t, *u, *v;
    if (craft_empty(nd, shape, CRAFT_F32, 0, &t)) return NULL;
    craft_rand_(t, seed, 0);
    craft_binary_scalar(CRAFT_MUL, t, hi - lo, 0, &u);
    craft_binary_scalar(CRAFT_ADD, u, lo, 0, &v);
    craft_tensor_release(t);
    craft_tensor_release(u);
    return v;
}

static craft_tensor *on_dev(const craft_tensor *t) {
    craft_tensor *d = NULL;
    int prev = craft_set_grad_enabled(0);
    if (craft_to_device(t, DEV, &d)) fprintf(stderr, "to_device: %s\n", craft_last_error());
    craft_set_grad_enabled(prev);
    return d;
}

static float *read_all(const craft_tensor *t) {
    float *p = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (p && craft_tensor_read(t, CRAFT_F32, p, (size_t)t->numel * sizeof(float))) {
        fprintf(stderr, "read: %s\n", craft_last_error());
        free(p);
        return NULL;
    }
    return p;
}

/* same shape, dev on device `where`, every |d - c| <= atol + rtol |c|; with nan_equal a NaN in
 * both counts as agreement */
static void compare_cl(const char *what, const craft_tensor *cpu, const craft_tensor *dev, double rtol,
                       double atol, int where, int nan_equal) {
    if (!cpu || !dev) {
        CHECK_MSG(0, "%s: missing result (%s)", what, craft_last_error());
        return;
    }
    int same = cpu->ndim == dev->ndim && cpu->numel == dev->numel;
    for (int i = 0; same && i < cpu->ndim; i++) same = cpu->shape[i] == dev->shape[i];
    CHECK_MSG(same, "%s: shapes %s vs %s", what, craft_shape_str(cpu), craft_shape_str(dev));
    CHECK_MSG(dev->device == where, "%s: result on device %d, expected %d", what, dev->device, where);
    if (!same) return;
    float *a = read_all(cpu), *b = read_all(dev);
    int64_t bad = -1;
    double worst = 0;
    for (int64_t i = 0; a && b && i < cpu->numel; i++) {
        if (nan_equal && a[i] != a[i] && b[i] != b[i]) continue;
        double e = fabs((double)a[i] - (double)b[i]), lim = atol + rtol * fabs((double)a[i]);
        if (!(e <= lim) && (bad < 0 || e - lim > worst)) {
            bad = i;
            worst = e - lim;
        }
    }
    CHECK_MSG(a && b && bad < 0, "%s: element %lld cpu %.9g cl %.9g (rtol %g atol %g)", what, (long long)bad,
              bad >= 0 ? a[bad] : 0.0, bad >= 0 ? b[bad] : 0.0, rtol, atol);
    free(a);
    free(b);
}

/* Points PoCL's and craft's kernel caches at /tmp, picks the device under test (DEV: cl:0, or
 * CRAFT_TEST_DEVICE=cl:N; tests/run.sh runs the OpenCL tests once per device it finds) and
 * checks that it works. Returns -1 when the test should go on, else its exit status: 0
 * (skipped: no OpenCL device; "0 passed" is printed) or 1 (the device is there but unusable). */
static inline int cl_test_open(const char *name) {
    setenv("POCL_CACHE_DIR", "/tmp/craft-pocl-cache", 0);
    setenv("CRAFT_CL_CACHE", "/tmp/craft-cl-cache", 0);
    mkdir("/tmp/craft-pocl-cache", 0777);
    int n = 0, want = 0;
    const char *e = getenv("CRAFT_TEST_DEVICE");
    if (e && *e && sscanf(e, "cl:%d", &want) != 1 && sscanf(e, "%d", &want) != 1) {
        fprintf(stderr, "FAIL %s: CRAFT_TEST_DEVICE=%s is not cl:N\n", name, e);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    if (craft_cl_device_count(&n) != CRAFT_OK || n == 0) {
        fprintf(stderr, "skip %s: %s\n", name,
                n == 0 && !craft_last_status() ? "no OpenCL device" : craft_last_error());
        printf("0 passed, 0 failed\n");
        return 0;
    }
    if (want < 0 || want >= n) {
        fprintf(stderr, "FAIL %s: CRAFT_TEST_DEVICE=cl:%d, but there %s %d OpenCL device%s\n", name, want,
                n == 1 ? "is" : "are", n, n == 1 ? "" : "s");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    DEV = 1 + want;
    int64_t one = 1;
    craft_tensor *probe;
    if (craft_empty(1, &one, CRAFT_F32, DEV, &probe)) { /* context, queue and kernel program */
        fprintf(stderr, "FAIL cl:%d is unusable: %s\n", want, craft_last_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    craft_tensor_release(probe);
    return -1;
}

static void release(int n, ...);

/* A few AdamW steps (lr; betas 0.9 / 0.999, eps 1e-8, weight decay 0.01) of the same np (at
 * most 16) parameters on the CPU (cp) and on DEV (dp), all leaves that require grad, with
 * loss(p, x, target): (x, tg) on the CPU, (dx, dtg) on DEV. Each step's two losses are compared
 * (relative difference), and DEV's gradients must stay on DEV. Gives the CPU's first and last
 * loss, the worst relative difference and the steps that agree to 1e-4. */
typedef int (*cl_train_loss)(craft_tensor **p, const craft_tensor *x, const craft_tensor *target,
                             craft_tensor **loss);
typedef struct {
    double first, last, worst;
    int agree;
    int64_t syncs; /* the most host waits on DEV in one step (loss, its item, backward, AdamW) */
} cl_train_result;
static inline cl_train_result cl_train_pair(const char *what, int np, craft_tensor **cp, craft_tensor **dp,
                                            int steps, double lr, cl_train_loss loss, const craft_tensor *x,
                                            const craft_tensor *tg, const craft_tensor *dx,
                                            const craft_tensor *dtg) {
    cl_train_result r = {0, 0, 0, 0, 0};
    craft_tensor *m[2][16] = {{0}}, *v[2][16] = {{0}};
    CHECK(np <= 16);
    for (int i = 0; i < np && i < 16; i++)
        for (int s = 0; s < 2; s++) {
            const craft_tensor *p = s ? dp[i] : cp[i];
            craft_zeros(p->ndim, p->shape, CRAFT_F32, p->device, &m[s][i]);
            craft_zeros(p->ndim, p->shape, CRAFT_F32, p->device, &v[s][i]);
        }
    for (int step = 1; step <= steps && np <= 16; step++) {
        craft_tensor *cl = NULL, *dl = NULL;
        double lc = 0, ld = 0;
        int ok = loss(cp, x, tg, &cl) == CRAFT_OK;
        CHECK_MSG(ok, "%s: cpu step %d: %s", what, step, craft_last_error());
        int64_t s0 = 0, s1 = 0;
        craft_cl_sync_count(DEV, &s0);
        int okd = loss(dp, dx, dtg, &dl) == CRAFT_OK;
        CHECK_MSG(okd, "%s: cl step %d: %s", what, step, craft_last_error());
        if (!ok || !okd) {
            release(2, cl, dl);
            break;
        }
        craft_item(cl, &lc);
        craft_item(dl, &ld);
        double rel = fabs(lc - ld) / fabs(lc);
        if (rel > r.worst) r.worst = rel;
        r.agree += rel <= 1e-4;
        if (step == 1) r.first = lc;
        r.last = lc;
        CHECK_OK(craft_backward(cl, NULL, 0));
        CHECK_OK(craft_backward(dl, NULL, 0));
        for (int i = 0; i < np; i++) {
            CHECK(dp[i]->grad && dp[i]->grad->device == DEV);
            CHECK_OK(
                craft_adamw_step(cp[i], cp[i]->grad, m[0][i], v[0][i], lr, 0.9, 0.999, 1e-8, 0.01, step));
            CHECK_OK(
                craft_adamw_step(dp[i], dp[i]->grad, m[1][i], v[1][i], lr, 0.9, 0.999, 1e-8, 0.01, step));
            craft_zero_grad(cp[i]);
            craft_zero_grad(dp[i]);
        }
        craft_cl_sync_count(DEV, &s1);
        if (s1 - s0 > r.syncs) r.syncs = s1 - s0;
        release(2, cl, dl);
    }
    for (int i = 0; i < np && i < 16; i++) release(4, m[0][i], v[0][i], m[1][i], v[1][i]);
    return r;
}

static void release(int n, ...) {
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) craft_tensor_release(va_arg(ap, craft_tensor *));
    va_end(ap);
}
#endif
