/* bf16_bounds.h: what the bf16 tests share (test_bf16.c, test_bf16_mixed.c): random tensors,
 * the precision setting, and the per-element bound of a bf16 dot product (test_bf16.c's header
 * derives it). */
#ifndef CRAFT_BF16_BOUNDS_H
#define CRAFT_BF16_BOUNDS_H
#include "check.h"
#include <string.h>

#define U (1.0 / 512) /* bf16 unit roundoff, 2^-9 */

/* whether the CPU computes in bf16 (printed, for the log) */
static int bf16_native(void) {
    int k = 0;
    craft_precision_kernels(0, CRAFT_PREC_BF16, &k);
    printf("bf16 on this CPU: %s\n", craft_cpu_bf16_info());
    return k > 0;
}

static craft_tensor *randn(int nd, const int64_t *shape, uint64_t seed) {
    craft_tensor *t;
    if (craft_empty(nd, shape, CRAFT_F32, 0, &t) || craft_randn_(t, seed, 0)) return NULL;
    return t;
}

static float *fdata(const craft_tensor *t) { return (float *)craft_tensor_data(t); }

static int set_prec(int p) {
    int prev = -1;
    craft_set_compute_precision(p, &prev);
    return prev;
}

/* the largest |a - b| over n elements, and whether a and b are bit-identical */
static double maxdiff(const float *a, const float *b, int64_t n, int *same) {
    double m = 0;
    *same = !memcmp(a, b, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* y16 vs y32 (both [M, N]) within (2u + u^2 + 2 K 2^-24) * absdot[i] each; returns the largest
 * ratio of the error to (fp32 rounding alone: 2 K 2^-24 absdot) seen, which is > 1 only when
 * bf16 rounding happened. */
static double check_dots(const float *y16, const float *y32, const double *absdot, int64_t n, int64_t K,
                         const char *what) {
    double fp32 = 2.0 * (double)K * ldexp(1.0, -24), bound = 2 * U + U * U + fp32, worst = 0, seen = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)y16[i] - y32[i]);
        if (e > bound * absdot[i] + 1e-30) bad++;
        if (absdot[i] > 0 && e / (bound * absdot[i]) > worst) worst = e / (bound * absdot[i]);
        if (absdot[i] > 0 && e / (fp32 * absdot[i]) > seen) seen = e / (fp32 * absdot[i]);
    }
    CHECK_MSG(bad == 0, "%s: %d of %lld elements outside the bf16 bound (worst %.3g of it)", what, bad,
              (long long)n, worst);
    return seen;
}

#endif
