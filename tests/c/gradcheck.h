/* gradcheck.h: compares autograd gradients with central finite differences.
 * The scalar checked is L = sum(f(inputs) * R) for a fixed random R, so that every output
 * element and every input element is exercised. Differences are taken in float32 with a step
 * scaled to each element; the tolerance is |analytic - numeric| <= atol + rtol * |numeric|. */
#ifndef CRAFT_GRADCHECK_H
#define CRAFT_GRADCHECK_H
#include "check.h"
#include <string.h>

typedef int (*gc_fn)(craft_tensor **inputs, void *ctx, craft_tensor **out);

static uint64_t gc_rng_state = 0x1234567;
static double gc_uniform(void) {
    gc_rng_state = gc_rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(gc_rng_state >> 11) * (1.0 / 9007199254740992.0);
}

/* A new f32 tensor with values uniform in [lo, hi), requiring grad. */
static craft_tensor *gc_rand(int ndim, const int64_t *shape, double lo, double hi) {
    craft_tensor *t;
    if (craft_empty(ndim, shape, CRAFT_F32, 0, &t)) return NULL;
    float *p = craft_tensor_data(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = (float)(lo + (hi - lo) * gc_uniform());
    craft_set_requires_grad(t, 1);
    return t;
}

static double gc_loss(gc_fn f, craft_tensor **in, void *ctx, const float *R, int64_t nR, int *ok) {
    craft_tensor *y;
    int prev = craft_set_grad_enabled(0);
    int rc = f(in, ctx, &y);
    craft_set_grad_enabled(prev);
    if (rc) {
        *ok = 0;
        return 0;
    }
    double s = 0;
    float *tmp = malloc((size_t)y->numel * sizeof(float));
    craft_tensor_read(y, CRAFT_F32, tmp, (size_t)y->numel * sizeof(float));
    for (int64_t i = 0; i < y->numel && i < nR; i++) s += (double)tmp[i] * R[i];
    free(tmp);
    craft_tensor_release(y);
    return s;
}

/* Returns the worst violation ratio (<= 1 passes); counts a CHECK. */
static double gradcheck(const char *name, gc_fn f, int n_in, craft_tensor **in, void *ctx, double eps,
                        double atol, double rtol) {
    craft_tensor *y;
    int rc = f(in, ctx, &y);
    if (rc) {
        CHECK_MSG(0, "%s forward failed: %s", name, craft_last_error());
        return 1e9;
    }
    int64_t nR = y->numel;
    float *R = malloc((size_t)(nR ? nR : 1) * sizeof(float));
    for (int64_t i = 0; i < nR; i++) R[i] = (float)(gc_uniform() * 2 - 1);
    craft_tensor *Rt, *prod, *L;
    craft_from_data(y->ndim, y->shape, CRAFT_F32, R, &Rt);
    int ok = 1;
    if (craft_binary(CRAFT_MUL, y, Rt, &prod) || craft_sum(prod, 0, NULL, 0, &L) ||
        craft_backward(L, NULL, 0)) {
        CHECK_MSG(0, "%s backward failed: %s", name, craft_last_error());
        ok = 0;
    } else {
        craft_tensor_release(prod);
        craft_tensor_release(L);
    }
    craft_tensor_release(Rt);
    craft_tensor_release(y);
    double worst = 0;
    for (int k = 0; k < n_in && ok; k++) {
        craft_tensor *x = in[k];
        if (!x || !x->requires_grad) continue;
        float *xp = craft_tensor_data(x);
        float *ga = calloc((size_t)x->numel, sizeof(float));
        if (x->grad) craft_tensor_read(x->grad, CRAFT_F32, ga, (size_t)x->numel * sizeof(float));
        for (int64_t i = 0; i < x->numel && ok; i++) {
            float orig = xp[i];
            double h = eps * (fabs(orig) > 1 ? fabs(orig) : 1);
            xp[i] = (float)(orig + h);
            double lp = gc_loss(f, in, ctx, R, nR, &ok);
            xp[i] = (float)(orig - h);
            double lm = gc_loss(f, in, ctx, R, nR, &ok);
            xp[i] = orig;
            double num = (lp - lm) / (2 * h), an = ga[i];
            double r = fabs(an - num) / (atol + rtol * fabs(num));
            if (r > worst) worst = r;
            if (r > 1 && worst == r)
                fprintf(stderr, "  %s: input %d element %lld: analytic %.6g numeric %.6g\n", name, k,
                        (long long)i, an, num);
        }
        free(ga);
        craft_zero_grad(x);
    }
    free(R);
    CHECK_MSG(ok && worst <= 1, "%s gradcheck: worst ratio %.3g (atol %g rtol %g)", name, worst, atol, rtol);
    return worst;
}
#endif
