/* cpu_reduce.c: the CPU's reduction kernels: rows of a contiguous [rows, rowlen] block
 * accumulated in double (one output per row), and max / min over one dim with their
 * gradient's scatter. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>

/* kind: 0 sum, 1 mean, 2 var (correction), 3 sum of squares */
int cpu_reduce(int kind, const craft_tensor *xt, int64_t rows, int64_t R, int correction, craft_tensor *y) {
    const float *x = craft_tensor_data(xt);
    float *o = craft_tensor_data(y);
    if (kind == 3) {
#pragma omp parallel for if (rows * R >= CRAFT_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + r * R;
            double s = 0;
            for (int64_t i = 0; i < R; i++) s += (double)row[i] * (double)row[i];
            o[r] = (float)s;
        }
        return CRAFT_OK;
    }
    if (rows == 1 && R >= CRAFT_PAR_MIN) {
        double s = 0;
#pragma omp parallel for reduction(+ : s)
        for (int64_t i = 0; i < R; i++) s += x[i];
        if (kind == 0) o[0] = (float)s;
        else if (kind == 1) o[0] = (float)(s / (double)R);
        else {
            double m = s / (double)R, v = 0;
#pragma omp parallel for reduction(+ : v)
            for (int64_t i = 0; i < R; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
            o[0] = (float)(v / (double)(R - correction));
        }
    } else {
#pragma omp parallel for if (rows * R >= CRAFT_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + r * R;
            double s = 0;
            for (int64_t i = 0; i < R; i++) s += row[i];
            if (kind == 0) o[r] = (float)s;
            else if (kind == 1) o[r] = (float)(s / (double)R);
            else {
                double m = s / (double)R, v = 0;
                for (int64_t i = 0; i < R; i++) v += ((double)row[i] - m) * ((double)row[i] - m);
                o[r] = (float)(v / (double)(R - correction));
            }
        }
    }
    return CRAFT_OK;
}

int cpu_maxmin(int want_max, const craft_tensor *x, int64_t outer, int64_t D, int64_t inner, craft_tensor *v,
               craft_tensor *ix) {
    const float *xp = craft_tensor_data(x);
    float *vp = craft_tensor_data(v);
    int64_t *ip = craft_tensor_data(ix);
    if (!inner) outer = 0; /* an empty result ([2^40, 1, 0] over dim 2): nothing to walk */
#pragma omp parallel for if (outer * inner * D >= CRAFT_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *p = xp + o * D * inner + i;
            float best = p[0];
            int64_t bi = 0;
            for (int64_t k = 1; k < D; k++) {
                float c = p[k * inner];
                if (want_max ? (c > best || (c != c && best == best))
                             : (c < best || (c != c && best == best))) {
                    best = c;
                    bi = k;
                }
            }
            vp[o * inner + i] = best;
            ip[o * inner + i] = bi;
        }
    return CRAFT_OK;
}

/* gx = 0, then gx[o, idx, i] += g[o, i] */
int cpu_maxmin_grad(const craft_tensor *idx, const craft_tensor *g, int64_t outer, int64_t D, int64_t inner,
                    craft_tensor *z) {
    float *zp = craft_tensor_data(z);
    const float *gp = craft_tensor_data(g);
    const int64_t *ip = craft_tensor_data(idx);
    if (z->numel) memset(zp, 0, (size_t)z->numel * sizeof(float));
    if (!inner) outer = 0; /* empty: the other sizes can be huge, do not walk them */
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) zp[(o * D + ip[o * inner + i]) * inner + i] += gp[o * inner + i];
    return CRAFT_OK;
}
