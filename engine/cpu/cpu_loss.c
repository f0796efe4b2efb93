/* cpu_loss.c: the CPU's loss kernels (l2_normalize, cosine_similarity, cross_entropy,
 * mse_loss), forward and backward, over contiguous [outer, n, inner] blocks, accumulating in
 * double; the ops and their semantics are core/op_loss.c's. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>

int cpu_l2_normalize(const craft_tensor *xc, int64_t outer, int64_t n, int64_t inner, double eps,
                     craft_tensor *y, craft_tensor *den) {
    const float *xp = craft_tensor_data(xc);
    float *yp = craft_tensor_data(y), *dp = craft_tensor_data(den);
#pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
    for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = a * n * inner + i;
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += (double)xp[base + k * inner] * xp[base + k * inner];
            float nrm = (float)sqrt(s), dd = nrm >= (float)eps ? nrm : (float)eps;
            for (int64_t k = 0; k < n; k++) yp[base + k * inner] = xp[base + k * inner] / dd;
            dp[a * inner + i] = nrm >= (float)eps ? dd : -dd;
        }
    return CRAFT_OK;
}

int cpu_l2_normalize_grad(const craft_tensor *y, const craft_tensor *den, const craft_tensor *g,
                          int64_t outer, int64_t n, int64_t inner, craft_tensor *gx) {
    const float *yp = craft_tensor_data(y), *dp = craft_tensor_data(den), *gp = craft_tensor_data(g);
    float *o = craft_tensor_data(gx);
#pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
    for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = a * n * inner + i;
            float d = dp[a * inner + i];
            double s = 0;
            if (d > 0)
                for (int64_t k = 0; k < n; k++) s += (double)gp[base + k * inner] * yp[base + k * inner];
            float inv = 1.0f / fabsf(d), sf = (float)s;
            for (int64_t k = 0; k < n; k++)
                o[base + k * inner] = (gp[base + k * inner] - yp[base + k * inner] * sf) * inv;
        }
    return CRAFT_OK;
}

int cpu_cosine(const craft_tensor *ac, const craft_tensor *bc, int64_t outer, int64_t n, int64_t inner,
               double eps, craft_tensor *y, craft_tensor *nr) {
    const float *ap = craft_tensor_data(ac), *bp = craft_tensor_data(bc);
    float *yp = craft_tensor_data(y), *np = craft_tensor_data(nr);
    int64_t m = outer * inner;
    double e2 = eps * eps;
#pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i, r = o * inner + i;
            double s1 = 0, s2 = 0;
            for (int64_t k = 0; k < n; k++) {
                double x1 = ap[base + k * inner], x2 = bp[base + k * inner];
                s1 += x1 * x1;
                s2 += x2 * x2;
            }
            float n1 = (float)sqrt(s1 > e2 ? s1 : e2), n2 = (float)sqrt(s2 > e2 ? s2 : e2);
            double c = 0;
            for (int64_t k = 0; k < n; k++)
                c += (double)(ap[base + k * inner] / n1) * (bp[base + k * inner] / n2);
            yp[r] = (float)c;
            np[r] = n1;
            np[m + r] = n2;
        }
    return CRAFT_OK;
}

int cpu_cosine_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *y,
                    const craft_tensor *nr, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner,
                    craft_tensor *ga, craft_tensor *gb) {
    int64_t m = outer * inner;
    const float *ap = craft_tensor_data(a), *bp = craft_tensor_data(b), *yp = craft_tensor_data(y);
    const float *np = craft_tensor_data(nr), *gp = craft_tensor_data(g);
    float *oa = craft_tensor_data(ga), *ob = craft_tensor_data(gb);
#pragma omp parallel for collapse(2) if (outer * n * inner >= CRAFT_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i, r = o * inner + i;
            float n1 = np[r], n2 = np[m + r], c = yp[r], gg = gp[r];
            for (int64_t k = 0; k < n; k++) {
                float u1 = ap[base + k * inner] / n1, u2 = bp[base + k * inner] / n2;
                oa[base + k * inner] = gg * (u2 - c * u1) / n1;
                ob[base + k * inner] = gg * (u1 - c * u2) / n2;
            }
        }
    return CRAFT_OK;
}

int cpu_cross_entropy(const craft_tensor *lp, const craft_tensor *tg, int64_t N, int64_t C, int64_t inner,
                      int reduction, double label_smoothing, craft_tensor *y) {
    const int64_t *tp = craft_tensor_data(tg);
    int64_t count = craft_mul_sat(N, inner);
    const float *lpp = craft_tensor_data(lp);
    float *yp = craft_tensor_data(y);
    double on = 1.0 - label_smoothing, off = label_smoothing / (double)C, total = 0;
#pragma omp parallel for collapse(2) reduction(+ : total) if (N * C * inner >= CRAFT_PAR_MIN)
    for (int64_t a = 0; a < N; a++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = a * C * inner + i, r = a * inner + i;
            double l = -on * lpp[base + tp[r] * inner];
            if (off != 0) {
                double s = 0;
                for (int64_t c = 0; c < C; c++) s += lpp[base + c * inner];
                l -= off * s;
            }
            if (reduction == 0) yp[r] = (float)l;
            total += l;
        }
    if (reduction == 1) yp[0] = (float)(total / (double)count);
    else if (reduction == 2) yp[0] = (float)total;
    return CRAFT_OK;
}

int cpu_cross_entropy_grad(const craft_tensor *lp, const craft_tensor *tg, const craft_tensor *g, int64_t N,
                           int64_t C, int64_t inner, int reduction, double smoothing, double gscale_d,
                           craft_tensor *gx) {
    float eps = (float)smoothing, gscale = (float)gscale_d;
    const float *lpp = craft_tensor_data(lp), *gp = craft_tensor_data(g);
    const int64_t *tp = craft_tensor_data(tg);
    float *o = craft_tensor_data(gx);
    float on = 1.0f - eps, off = eps / (float)C;
#pragma omp parallel for collapse(2) if (N * C * inner >= CRAFT_PAR_MIN)
    for (int64_t a = 0; a < N; a++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = a * C * inner + i, r = a * inner + i;
            float gg = (reduction == 0 ? gp[r] : gp[0]) * gscale;
            for (int64_t c = 0; c < C; c++) o[base + c * inner] = gg * (expf(lpp[base + c * inner]) - off);
            o[base + tp[r] * inner] -= gg * on;
        }
    return CRAFT_OK;
}

int cpu_mse(const craft_tensor *ac, const craft_tensor *bc, int reduction, craft_tensor *y) {
    const craft_tensor *a = ac;
    const float *ap = craft_tensor_data(ac), *bp = craft_tensor_data(bc);
    float *yp = craft_tensor_data(y);
    int64_t n = a->numel;
    if (reduction == 0) {
#pragma omp parallel for if (n >= CRAFT_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float d = ap[i] - bp[i];
            yp[i] = d * d;
        }
    } else {
        double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= CRAFT_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double d = (double)ap[i] - bp[i];
            s += d * d;
        }
        yp[0] = (float)(reduction == 1 ? s / (double)n : s);
    }
    return CRAFT_OK;
}

int cpu_mse_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *g, int reduction,
                 double scale, craft_tensor *ga, craft_tensor *gb) {
    float sc = (float)scale;
    const float *ap = craft_tensor_data(a), *bp = craft_tensor_data(b), *gp = craft_tensor_data(g);
    float *oa = craft_tensor_data(ga), *ob = gb ? craft_tensor_data(gb) : NULL;
    int64_t n = a->numel;
    float g0 = reduction == 0 ? 0.0f : gp[0] * sc;
#pragma omp parallel for if (n >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) oa[i] = 2.0f * (ap[i] - bp[i]) * (reduction == 0 ? gp[i] : g0);
    if (ob) {
#pragma omp parallel for if (n >= CRAFT_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) ob[i] = -oa[i];
    }
    return CRAFT_OK;
}
