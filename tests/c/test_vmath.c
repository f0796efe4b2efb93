/* test_vmath.c: the accuracy of the activations that have a vector form (engine/cpu/cpu_vmath.h:
 * exp, sigmoid, SiLU, quick GELU, exact GELU), forward and derivative, against double-precision
 * references over a dense sweep; special values; and that a value's result does not depend on
 * the layout (contiguous or strided) it came in. The bounds are relative errors, scaled by the
 * size of the terms where a derivative crosses zero, with an absolute floor of 1e-30 (below it the
 * intermediate values are denormal floats). */
#include "check.h"
#include <float.h>
#include <string.h>

#define N 400001 /* -100 .. 100 in steps of 1/2000 */

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }
static double Phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }

/* reference value, and the scale its error is measured against (|value|, or the sum of the
 * magnitudes of the terms where they cancel) */
static void reference(int op, float xf, int grad, double *ref, double *scale) {
    double x = xf;
    double ax = (double)(1.702f * xf); /* the op is defined on the float product */
    double s;
    switch (op) {
    case CRAFT_EXP: *ref = *scale = exp(x); return;
    case CRAFT_SIGMOID: /* 1 - s computed as sigm(-x): no cancellation in the reference either */
        s = sigm(x);
        *ref = grad ? s * sigm(-x) : s;
        *scale = fabs(*ref);
        return;
    case CRAFT_SILU:
        s = sigm(x);
        *ref = grad ? s * (1 + x * sigm(-x)) : x * s;
        *scale = grad ? s * (1 + fabs(x) * sigm(-x)) : fabs(*ref);
        return;
    case CRAFT_QUICK_GELU:
        s = sigm(ax);
        *ref = grad ? s + ax * s * sigm(-ax) : x * s;
        *scale = grad ? s + fabs(ax) * s * sigm(-ax) : fabs(*ref);
        return;
    case CRAFT_GELU:
        *ref = grad ? Phi(x) + x * phi(x) : x * Phi(x);
        *scale = grad ? Phi(x) + fabs(x) * phi(x) : fabs(*ref);
        return;
    }
}

/* the bound for op at x: in the negative tail of the GELU the rounding of the float argument
 * z = |x| / sqrt2 moves erfc by about 2 z^2 = x^2 float roundings, so its bound grows with x^2 */
static double bound(int op, float x) {
    switch (op) {
    case CRAFT_EXP: return 4e-7;
    case CRAFT_SIGMOID: return 5e-7;
    case CRAFT_SILU: return 6e-7;
    case CRAFT_QUICK_GELU: return 6e-7;
    case CRAFT_GELU: return 1e-6 + 1.5e-7 * x * x;
    }
    return 0;
}

static const int OPS[] = {CRAFT_EXP, CRAFT_SIGMOID, CRAFT_SILU, CRAFT_QUICK_GELU, CRAFT_GELU};
#define NOPS ((int)(sizeof OPS / sizeof OPS[0]))

static craft_tensor *sweep(void) {
    int64_t n = N;
    craft_tensor *x = NULL;
    if (craft_empty(1, &n, CRAFT_F32, 0, &x)) return NULL;
    float *p = craft_tensor_data(x);
    for (int64_t i = 0; i < n; i++) p[i] = (float)((i - (N - 1) / 2) / 2000.0);
    return x;
}

static void test_accuracy(void) {
    craft_tensor *x = sweep();
    CHECK(x != NULL);
    if (!x) return;
    const float *xp = craft_tensor_data(x);
    for (int k = 0; k < NOPS; k++) {
        int op = OPS[k];
        for (int grad = 0; grad < 2; grad++) {
            craft_tensor *xg = NULL, *y = NULL, *ones = NULL;
            int64_t n = N;
            CHECK_OK(craft_detach(x, &xg));
            CHECK_OK(craft_set_requires_grad(xg, 1));
            CHECK_OK(craft_unary(op, xg, &y));
            if (!y) continue;
            if (grad) {
                CHECK_OK(craft_full(1, &n, CRAFT_F32, 1.0, &ones));
                CHECK_OK(craft_backward(y, ones, 0));
            }
            const float *yp = craft_tensor_data(grad ? xg->grad : y);
            double worst = 0, worst_x = 0, worst_ratio = 0;
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) {
                double ref = 0, scale = 0;
                reference(op, xp[i], grad, &ref, &scale);
                if (!isfinite(ref) || ref > FLT_MAX || scale < FLT_MIN) continue; /* out of float range */
                double rel = fabs(yp[i] - ref) / (scale > 1e-30 ? scale : 1e-30);
                if (rel > worst) worst = rel, worst_x = xp[i];
                if (rel / bound(op, xp[i]) > worst_ratio) worst_ratio = rel / bound(op, xp[i]);
                if (!(rel <= bound(op, xp[i]))) bad++;
            }
            CHECK_MSG(bad == 0, "%s%s: %lld values over the bound; worst relative error %.3g at x = %.4f",
                      craft_unary_name(op), grad ? " derivative" : "", (long long)bad, worst, worst_x);
            fprintf(stderr, "  %-10s %-10s worst relative error %.2e at x = %.4f, %.2f of the bound at worst\n",
                    craft_unary_name(op), grad ? "derivative" : "value", worst, worst_x, worst_ratio);
            craft_tensor_release(ones);
            craft_tensor_release(y);
            craft_tensor_release(xg);
        }
    }
    craft_tensor_release(x);
}

static float unary1(int op, float v) {
    int64_t one = 1;
    craft_tensor *x = NULL, *y = NULL;
    float out = -12345;
    if (craft_from_data(1, &one, CRAFT_F32, &v, &x) == CRAFT_OK && craft_unary(op, x, &y) == CRAFT_OK)
        out = *(const float *)craft_tensor_data(y);
    craft_tensor_release(x);
    craft_tensor_release(y);
    return out;
}

static void test_special_values(void) {
    const float inf = INFINITY;
    CHECK(unary1(CRAFT_EXP, 0) == 1.0f);
    CHECK(unary1(CRAFT_EXP, inf) == inf);
    CHECK(unary1(CRAFT_EXP, -inf) == 0.0f);
    CHECK(unary1(CRAFT_EXP, 89.0f) == inf);
    CHECK(isfinite(unary1(CRAFT_EXP, 88.7f)) && unary1(CRAFT_EXP, 88.7f) > 3.2e38f);
    CHECK(unary1(CRAFT_EXP, -88.0f) >= 0 && unary1(CRAFT_EXP, -88.0f) < 1.2e-38f);
    CHECK(isnan(unary1(CRAFT_EXP, NAN)));
    for (int k = 1; k < NOPS; k++) CHECK_MSG(isnan(unary1(OPS[k], NAN)), "%s(NaN)", craft_unary_name(OPS[k]));
    CHECK(unary1(CRAFT_SIGMOID, inf) == 1.0f);
    CHECK(unary1(CRAFT_SIGMOID, -inf) == 0.0f);
    CHECK(unary1(CRAFT_SIGMOID, 0) == 0.5f);
    CHECK(unary1(CRAFT_SILU, 0) == 0.0f && unary1(CRAFT_GELU, 0) == 0.0f && unary1(CRAFT_QUICK_GELU, 0) == 0.0f);
    CHECK(unary1(CRAFT_GELU, inf) == inf);
    CHECK(unary1(CRAFT_SILU, 200.0f) == 200.0f && unary1(CRAFT_GELU, 200.0f) == 200.0f);
    CHECK(unary1(CRAFT_SILU, -200.0f) <= 0 && unary1(CRAFT_SILU, -200.0f) > -1e-30f);
    CHECK(unary1(CRAFT_GELU, -200.0f) <= 0 && unary1(CRAFT_GELU, -200.0f) > -1e-30f);
}

/* a [n/2, 2] tensor transposed: the same values, strided, must give the same bits */
static void test_layout_independent(void) {
    int64_t shape[2] = {1000, 2};
    craft_tensor *x = NULL, *xt = NULL, *xc = NULL;
    CHECK_OK(craft_empty(2, shape, CRAFT_F32, 0, &x));
    if (!x) return;
    float *p = craft_tensor_data(x);
    for (int i = 0; i < 2000; i++) p[i] = (float)((i * 7919 % 2000) - 1000) / 97.0f;
    CHECK_OK(craft_transpose(x, 0, 1, &xt));
    CHECK_OK(craft_contiguous(xt, &xc));
    for (int k = 0; k < NOPS; k++) {
        craft_tensor *ys = NULL, *yc = NULL, *ysc = NULL;
        CHECK_OK(craft_unary(OPS[k], xt, &ys));
        CHECK_OK(craft_unary(OPS[k], xc, &yc));
        CHECK_OK(craft_contiguous(ys, &ysc));
        if (ysc && yc)
            CHECK_MSG(!memcmp(craft_tensor_data(ysc), craft_tensor_data(yc), 2000 * sizeof(float)), "%s",
                      craft_unary_name(OPS[k]));
        craft_tensor_release(ys);
        craft_tensor_release(yc);
        craft_tensor_release(ysc);
    }
    craft_tensor_release(xc);
    craft_tensor_release(xt);
    craft_tensor_release(x);
}

int main(void) {
    RUN(test_accuracy);
    RUN(test_special_values);
    RUN(test_layout_independent);
    return CHECK_SUMMARY();
}
