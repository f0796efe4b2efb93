/* cpu_norm.c: the CPU's group_norm and layer_norm kernels, forward and backward, in plain C
 * with OpenMP.
 *
 * Each op normalises independent rows (group_norm: one (n, group) block of C/G * spatial
 * elements; layer_norm: one row of the last dims), which are contiguous after
 * craft_contig_f32, small enough to stay in L1/L2 between passes. Statistics are two-pass
 * (mean, then the centred sum of squares) with 16 float lanes per block of 2048 elements and
 * the blocks summed in double, so the inner loops vectorise without -ffast-math and the result
 * does not drift on long rows. Only the per-row mean and 1/std (small tensors) are saved for
 * backward, never a normalised copy. oneDNN 2.6 has no group normalisation primitive, so there
 * is nothing to compare for group_norm; layer_norm uses the same row kernels. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#define LANES 16
#define BLOCK 2048

/* sum of p[0..m) */
static double row_sum(const float *p, int64_t m) {
    double tot = 0;
    for (int64_t b0 = 0; b0 < m; b0 += BLOCK) {
        int64_t e = b0 + BLOCK < m ? b0 + BLOCK : m, i = b0;
        float lane[LANES] = {0};
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) lane[j] += p[i + j];
        double part = 0;
        for (; i < e; i++) part += p[i];
        for (int j = 0; j < LANES; j++) part += lane[j];
        tot += part;
    }
    return tot;
}

/* sum of (p - c)^2 */
static double row_sqdev(const float *p, int64_t m, float c) {
    double tot = 0;
    for (int64_t b0 = 0; b0 < m; b0 += BLOCK) {
        int64_t e = b0 + BLOCK < m ? b0 + BLOCK : m, i = b0;
        float lane[LANES] = {0};
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = p[i + j] - c;
                lane[j] += d * d;
            }
        double part = 0;
        for (; i < e; i++) {
            double d = p[i] - c;
            part += d * d;
        }
        for (int j = 0; j < LANES; j++) part += lane[j];
        tot += part;
    }
    return tot;
}

/* *sa = sum a, *sab = sum a * b */
static void row_sum_dot(const float *a, const float *b, int64_t m, double *sa, double *sab) {
    double t1 = 0, t2 = 0;
    for (int64_t b0 = 0; b0 < m; b0 += BLOCK) {
        int64_t e = b0 + BLOCK < m ? b0 + BLOCK : m, i = b0;
        float l1[LANES] = {0}, l2[LANES] = {0};
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) {
                l1[j] += a[i + j];
                l2[j] += a[i + j] * b[i + j];
            }
        double p1 = 0, p2 = 0;
        for (; i < e; i++) {
            p1 += a[i];
            p2 += (double)a[i] * b[i];
        }
        for (int j = 0; j < LANES; j++) {
            p1 += l1[j];
            p2 += l2[j];
        }
        t1 += p1;
        t2 += p2;
    }
    *sa = t1;
    *sab = t2;
}

/* mean and 1/sqrt(var + eps) of one row (biased variance, as PyTorch normalises) */
static void row_stats(const float *p, int64_t m, double eps, float *mean, float *rstd) {
    double mu = row_sum(p, m) / (double)m;
    float mf = (float)mu;
    double var = row_sqdev(p, m, mf) / (double)m - (mu - mf) * (mu - mf);
    if (var < 0) var = 0;
    *mean = mf;
    *rstd = (float)(1.0 / sqrt(var + eps));
}

static float *fdata(const craft_tensor *t) { return t ? (float *)craft_tensor_data(t) : NULL; }

/* ---- group_norm: x [N, C, *], rows are (n, g) blocks of C/G channels ---- */
int cpu_group_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                        const craft_tensor *rstd, const craft_tensor *g, int64_t G, craft_tensor *gxt,
                        craft_tensor *gwt, craft_tensor *gbt) {
    const float *xp = fdata(x), *wp = fdata(w), *mp = fdata(mean), *rp = fdata(rstd);
    int64_t N = x->shape[0], C = x->shape[1], S = craft_numel_of(x->ndim - 2, x->shape + 2), Cg = C / G;
    double M = (double)craft_mul_sat(Cg, S);
    int need_x = gxt != NULL, need_w = gwt != NULL, need_b = gbt != NULL;
    const float *gp = fdata(g);
    size_t nb = (size_t)(N * C) * 2 * sizeof(double);
    double *ds = craft_alloc(nb ? nb : 16), *db = ds + N * C; /* per (n, c): sum gy * x, sum gy */
    int rc = ds ? CRAFT_OK : craft_last_status();
    if (!rc) {
        float *gx = need_x ? fdata(gxt) : NULL;
/* one (n, group) block at a time: its sums, then its gx while gy and x are still in cache
         * (one pass over memory instead of two: fwd+bwd of N=16 C=128 32x32 G=32 went from 0.91
         * to 0.48 ms with 2 threads) */
#pragma omp parallel for schedule(static) if (x->numel >= CRAFT_PAR_MIN)
        for (int64_t r = 0; r < N * G; r++) {
            int64_t ni = r / G, c0 = (r % G) * Cg;
            double A = 0, B = 0, mu = mp[r], rs = rp[r];
            for (int64_t c = c0; c < c0 + Cg; c++) {
                int64_t row = ni * C + c;
                row_sum_dot(gp + row * S, xp + row * S, S, &db[row], &ds[row]);
                double wc = wp ? wp[c] : 1.0;
                A += wc * db[row];
                B += wc * ds[row];
            }
            if (!gx) continue;
            double c2 = (A * mu - B) * rs * rs * rs / M, c3 = -c2 * mu - rs * A / M;
            for (int64_t c = c0; c < c0 + Cg; c++) {
                float k1 = (float)(rs * (wp ? wp[c] : 1.0)), k2 = (float)c2, k3 = (float)c3;
                const float *gr = gp + (ni * C + c) * S, *xr = xp + (ni * C + c) * S;
                float *o = gx + (ni * C + c) * S;
#pragma omp simd
                for (int64_t i = 0; i < S; i++) o[i] = k1 * gr[i] + k2 * xr[i] + k3;
            }
        }
    }
    if (!rc && (need_w || need_b)) {
        for (int64_t c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            for (int64_t ni = 0; ni < N; ni++) {
                int64_t r = ni * G + c / Cg;
                sw += rp[r] * (ds[ni * C + c] - mp[r] * db[ni * C + c]);
                sb += db[ni * C + c];
            }
            if (need_w) fdata(gwt)[c] = (float)sw;
            if (need_b) fdata(gbt)[c] = (float)sb;
        }
    }
    if (ds) craft_free(ds, nb ? nb : 16);
    return rc;
}

/* group_norm, then the unary op act on each channel row while it is in cache (act < 0: none) */
static int group_norm_impl(const craft_tensor *xc, const craft_tensor *wc, const craft_tensor *bc, int64_t G,
                           double eps, int act, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd) {
    const craft_tensor *x = xc;
    int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, S = craft_numel_of(x->ndim - 2, x->shape + 2);
    int64_t M = craft_mul_sat(Cg, S);
    if (M > 0) {
        const float *xp = fdata(xc), *wp = fdata(wc), *bp = fdata(bc);
        float *yp = fdata(y), *mp = fdata(mean), *rp = fdata(rstd);
#pragma omp parallel for schedule(static) if (x->numel >= CRAFT_PAR_MIN)
        for (int64_t r = 0; r < N * G; r++) {
            row_stats(xp + r * M, M, eps, &mp[r], &rp[r]);
            for (int64_t cj = 0; cj < Cg; cj++) {
                int64_t c = (r % G) * Cg + cj;
                float a = rp[r] * (wp ? wp[c] : 1.0f), sh = (bp ? bp[c] : 0.0f) - mp[r] * a;
                const float *xr = xp + r * M + cj * S;
                float *yr = yp + r * M + cj * S;
#pragma omp simd
                for (int64_t i = 0; i < S; i++) yr[i] = xr[i] * a + sh;
                if (act >= 0) cpu_unary_contig(act, yr, yr, S);
            }
        }
    } else { /* empty groups: statistics 0 so that backward stays finite */
        memset(fdata(mean), 0, (size_t)(N * G) * sizeof(float));
        memset(fdata(rstd), 0, (size_t)(N * G) * sizeof(float));
    }
    return CRAFT_OK;
}

int cpu_group_norm(const craft_tensor *xc, const craft_tensor *wc, const craft_tensor *bc, int64_t G,
                   double eps, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd) {
    return group_norm_impl(xc, wc, bc, G, eps, -1, y, mean, rstd);
}

int cpu_group_norm_act(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t G,
                       double eps, int act, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd) {
    return group_norm_impl(x, w, b, G, eps, act, y, mean, rstd);
}

/* The pre-activation's gradient g act'(x a + sh), row by row into a temporary, then group_norm's
 * backward on it: the normalised values are recomputed, never saved. */
int cpu_group_norm_act_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                            const craft_tensor *mean, const craft_tensor *rstd, const craft_tensor *g, int64_t G,
                            int act, craft_tensor *gx, craft_tensor *gw, craft_tensor *gb) {
    int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, S = craft_numel_of(x->ndim - 2, x->shape + 2);
    int64_t M = craft_mul_sat(Cg, S);
    craft_tensor *gpre = craft_new_tensor(x->ndim, x->shape, CRAFT_F32, x->device);
    if (!gpre) return craft_last_status();
    if (M > 0) {
        const float *xp = fdata(x), *wp = fdata(w), *bp = fdata(b), *mp = fdata(mean), *rp = fdata(rstd),
                    *gp = fdata(g);
        float *op = fdata(gpre);
#pragma omp parallel for schedule(static) if (x->numel >= CRAFT_PAR_MIN)
        for (int64_t r = 0; r < N * G; r++)
            for (int64_t cj = 0; cj < Cg; cj++) {
                int64_t c = (r % G) * Cg + cj, off = r * M + cj * S;
                float a = rp[r] * (wp ? wp[c] : 1.0f), sh = (bp ? bp[c] : 0.0f) - mp[r] * a;
                float *orow = op + off;
#pragma omp simd
                for (int64_t i = 0; i < S; i++) orow[i] = xp[off + i] * a + sh;
                cpu_unary_grad_contig(act, orow, gp + off, orow, S);
            }
    }
    int rc = cpu_group_norm_grad(x, w, mean, rstd, gpre, G, gx, gw, gb);
    craft_tensor_release(gpre);
    return rc;
}

/* ---- layer_norm: rows of the last nnorm dims ---- */
/* Backward pass 1 over one row, specialised on the flags at each call site (always inlined):
 * *A = sum g', *Bx = sum g' x with g' = gy * w, and when do_wb the row's contributions to the
 * weight / bias gradients into the thread's float accumulators fw, fb. */
static inline __attribute__((always_inline)) void
ln_row_pass1(const float *restrict gr, const float *restrict xr, const float *restrict wp, int64_t D,
             float mu, float rs, float *restrict fw, float *restrict fb, int has_w, int do_wb, double *A,
             double *Bx) {
    double ta = 0, tb = 0;
    for (int64_t b0 = 0; b0 < D; b0 += BLOCK) {
        int64_t e = b0 + BLOCK < D ? b0 + BLOCK : D, i = b0;
        float la[LANES] = {0}, lb[LANES] = {0};
        for (; i + LANES <= e; i += LANES)
#pragma omp simd
            for (int j = 0; j < LANES; j++) {
                float g = gr[i + j], xv = xr[i + j], gw = has_w ? g * wp[i + j] : g;
                la[j] += gw;
                lb[j] += gw * xv;
                if (do_wb) {
                    fw[i + j] += g * ((xv - mu) * rs);
                    fb[i + j] += g;
                }
            }
        for (; i < e; i++) {
            float g = gr[i], xv = xr[i], gw = has_w ? g * wp[i] : g;
            ta += gw;
            tb += (double)gw * xv;
            if (do_wb) {
                fw[i] += g * ((xv - mu) * rs);
                fb[i] += g;
            }
        }
        for (int j = 0; j < LANES; j++) {
            ta += la[j];
            tb += lb[j];
        }
    }
    *A = ta;
    *Bx = tb;
}

#define LN_FLUSH_ROWS 32 /* float partial sums of the weight / bias gradients go to double this often */

int cpu_layer_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                        const craft_tensor *rstd, const craft_tensor *g, int64_t D, craft_tensor *gxt,
                        craft_tensor *gwt, craft_tensor *gbt) {
    const float *xp = fdata(x), *wp = fdata(w), *mp = fdata(mean), *rp = fdata(rstd);
    int64_t R = D ? x->numel / D : 0;
    int need_x = gxt != NULL, need_w = gwt != NULL, need_b = gbt != NULL, need_wb = need_w || need_b;
    const float *gp = fdata(g);
    int par = x->numel >= CRAFT_PAR_MIN, nt = par ? omp_get_max_threads() : 1;
    /* per thread: double sums (dw, db) and float partials (fw, fb) of the weight / bias gradients */
    size_t per_thread = (size_t)D * (2 * sizeof(double) + 2 * sizeof(float)),
           acc_bytes = (size_t)nt * per_thread + 64;
    char *acc = craft_alloc(acc_bytes);
    int rc = acc ? CRAFT_OK : craft_last_status();
    if (!rc) {
        memset(acc, 0, (size_t)nt * per_thread);
        float *gx = need_x ? fdata(gxt) : NULL;
#pragma omp parallel num_threads(nt) if (par)
        {
            int t = omp_get_thread_num();
            double *dw = (double *)(acc + (size_t)t * per_thread), *db = dw + D;
            float *fw = (float *)(db + D), *fb = fw + D;
            int64_t since_flush = 0;
#pragma omp for schedule(static)
            for (int64_t r = 0; r < R; r++) {
                const float *xr = xp + r * D, *gr = gp + r * D;
                float mu = mp[r], rs = rp[r];
                double A, Bx; /* sum g', sum g' x */
                if (wp && need_wb) ln_row_pass1(gr, xr, wp, D, mu, rs, fw, fb, 1, 1, &A, &Bx);
                else if (wp) ln_row_pass1(gr, xr, wp, D, mu, rs, fw, fb, 1, 0, &A, &Bx);
                else if (need_wb) ln_row_pass1(gr, xr, wp, D, mu, rs, fw, fb, 0, 1, &A, &Bx);
                else ln_row_pass1(gr, xr, wp, D, mu, rs, fw, fb, 0, 0, &A, &Bx);
                if (need_x) { /* gx = rs * (g' - A / D - xhat * B / D), B = sum g' xhat */
                    double B = rs * (Bx - mu * A);
                    float k2 = (float)(-rs * rs * B / D), k3 = (float)(-rs * A / D - k2 * (double)mu);
                    float *o = gx + r * D;
                    if (wp) {
#pragma omp simd
                        for (int64_t j = 0; j < D; j++) o[j] = rs * (gr[j] * wp[j]) + k2 * xr[j] + k3;
                    } else {
#pragma omp simd
                        for (int64_t j = 0; j < D; j++) o[j] = rs * gr[j] + k2 * xr[j] + k3;
                    }
                }
                if (need_wb && ++since_flush == LN_FLUSH_ROWS) {
                    since_flush = 0;
#pragma omp simd
                    for (int64_t j = 0; j < D; j++) {
                        dw[j] += fw[j];
                        db[j] += fb[j];
                        fw[j] = 0;
                        fb[j] = 0;
                    }
                }
            }
            if (need_wb)
                for (int64_t j = 0; j < D; j++) {
                    dw[j] += fw[j];
                    db[j] += fb[j];
                }
        }
    }
    if (!rc && need_wb) {
        for (int64_t j = 0; j < D; j++) {
            double sw = 0, sb = 0;
            for (int t = 0; t < nt; t++) {
                const double *dw = (const double *)(acc + (size_t)t * per_thread);
                sw += dw[j];
                sb += dw[D + j];
            }
            if (need_w) fdata(gwt)[j] = (float)sw;
            if (need_b) fdata(gbt)[j] = (float)sb;
        }
    }
    if (acc) craft_free(acc, acc_bytes);
    return rc;
}

int cpu_layer_norm(const craft_tensor *xc, const craft_tensor *wc, const craft_tensor *bc, int64_t D,
                   double eps, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd) {
    const craft_tensor *x = xc;
    int64_t R = D ? x->numel / D : 0;
    int rc = CRAFT_OK;
    if (!rc && D > 0) {
        const float *xp = fdata(xc), *wp = fdata(wc), *bp = fdata(bc);
        float *yp = fdata(y), *mp = fdata(mean), *rp = fdata(rstd);
#pragma omp parallel for schedule(static) if (x->numel >= CRAFT_PAR_MIN)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = xp + r * D;
            float *yr = yp + r * D;
            row_stats(xr, D, eps, &mp[r], &rp[r]);
            float mu = mp[r], rs = rp[r];
#pragma omp simd
            for (int64_t j = 0; j < D; j++)
                yr[j] = (xr[j] - mu) * rs * (wp ? wp[j] : 1.0f) + (bp ? bp[j] : 0.0f);
        }
    }
    return rc;
}
