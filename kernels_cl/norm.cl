/* norm.cl: group_norm and layer_norm on cl devices (engine/cl/cl_norm.c), with the formulas of
 * engine/cpu/cpu_norm.c. Both normalise contiguous rows of M elements (lines of attention.cl's
 * helpers with inner 1): group_norm's row r is the (n, g) block of Cg channels of S elements
 * each, so element k has channel (r % G) Cg + k / S; layer_norm is the case G = 1, Cg = M,
 * S = 1 (channel = k). ln selects layer_norm's rounding of the affine step.
 * Statistics are two-pass in acc_t: mean, then the sum of squares around the float mean,
 * corrected by (mu - mean_f)^2 as the CPU does.
 * group_norm + activation (act >= 0, a craft_unary_op; elementwise.cl's unary_f / unary_df):
 * norm_fwd applies it to each output as it writes it (one pass over memory instead of two), and
 * gn_act_pre makes the backward's pre-activation gradient g act'(x a + sh) from x and the
 * statistics (the normalised values are recomputed, never kept), which norm_bwd_x and the
 * weight / bias kernels then take as group_norm's gradient: the numbers of group_norm then the
 * unary op, bit for bit. */

typedef struct {            /* mirrors cl_norm_geo in engine/cl/cl_norm.c */
    long rows, M, G, Cg, S;
    long xoff, woff, boff, goff;
    float eps;
    int has_w, has_b, ln, act; /* act: -1, or the fused activation's craft_unary_op */
} norm_geo;

static inline long norm_chan(const norm_geo *p, long r, long k) { return (r % p->G) * p->Cg + k / p->S; }

/* y, mean and rstd of each row */
__kernel void norm_fwd(GEO_ARGS, __global const float *x, __global const float *w, __global const float *b,
                       __global float *y, __global float *mean, __global float *rstd, const int LX) {
    const norm_geo p = *GEO(norm_geo);
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(r, ok, p.rows, LX) {
        __global const float *xr = x + p.xoff + r * p.M;
        acc_t s = 0;
        if (ok) for (long k = ly; k < p.M; k += LY) s += xr[k];
        acc_t mu = nn_line_sum(scr, s, LX) / (acc_t)p.M;
        float mf = (float)mu;
        acc_t q = 0;
        if (ok) for (long k = ly; k < p.M; k += LY) { acc_t d = (acc_t)xr[k] - (acc_t)mf; q += d * d; }
        acc_t var = nn_line_sum(scr, q, LX) / (acc_t)p.M - (mu - (acc_t)mf) * (mu - (acc_t)mf);
        if (!ok) continue;
        if (var < 0) var = 0;
        float rs = (float)((acc_t)1 / sqrt(var + (acc_t)p.eps));
        if (ly == 0) { mean[r] = mf; rstd[r] = rs; }
        __global float *yr = y + r * p.M;
        for (long k = ly; k < p.M; k += LY) {
            long c = norm_chan(&p, r, k);
            float wc = p.has_w ? w[p.woff + c] : 1.0f, bc = p.has_b ? b[p.boff + c] : 0.0f;
            if (p.ln) {
                yr[k] = (xr[k] - mf) * rs * wc + bc;
            } else {
                float a = rs * wc, sh = bc - mf * a, v = xr[k] * a + sh;
                yr[k] = p.act >= 0 ? unary_f(p.act, v) : v;
            }
        }
    }
}

/* gx of each row: with g' = g w, A = sum g', Bx = sum g' x,
 * gx = rs w g + k2 x + k3, k2 = (A mu - Bx) rs^3 / M, k3 = -k2 mu - rs A / M */
__kernel void norm_bwd_x(GEO_ARGS, __global const float *x, __global const float *w, __global const float *g,
                         __global const float *mean, __global const float *rstd, __global float *gx, const int LX) {
    const norm_geo p = *GEO(norm_geo);
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(r, ok, p.rows, LX) {
        __global const float *xr = x + p.xoff + r * p.M, *gr = g + p.goff + r * p.M;
        acc_t sa = 0, sb = 0;
        if (ok)
            for (long k = ly; k < p.M; k += LY) {
                float gw = p.has_w ? gr[k] * w[p.woff + norm_chan(&p, r, k)] : gr[k];
                sa += gw;
                sb += (acc_t)gw * (acc_t)xr[k];
            }
        acc_t A = nn_line_sum(scr, sa, LX), Bx = nn_line_sum(scr, sb, LX);
        if (!ok) continue;
        acc_t mu = mean[r], rs = rstd[r], M = (acc_t)p.M;
        float k2 = (float)((A * mu - Bx) * rs * rs * rs / M);
        float k3 = p.ln ? (float)(-rs * A / M - (acc_t)k2 * mu) : (float)(-(acc_t)k2 * mu - rs * A / M);
        float rsf = (float)rs;
        __global float *o = gx + r * p.M;
        for (long k = ly; k < p.M; k += LY) {
            float wc = p.has_w ? w[p.woff + norm_chan(&p, r, k)] : 1.0f;
            o[k] = p.ln ? rsf * (gr[k] * wc) + k2 * xr[k] + k3 : (float)(rs * (acc_t)wc) * gr[k] + k2 * xr[k] + k3;
        }
    }
}

/* group_norm: per (n, c) line of S elements, ds = sum g x and db = sum g (acc_t, [2][N C]) */
__kernel void gn_chan_sums(GEO_ARGS, __global const float *x, __global const float *g, __global acc_t *sums,
                           const long NC, const int LX) {
    const norm_geo p = *GEO(norm_geo);
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(l, ok, NC, LX) {
        __global const float *xr = x + p.xoff + l * p.S, *gr = g + p.goff + l * p.S;
        acc_t s1 = 0, s2 = 0;
        if (ok) for (long k = ly; k < p.S; k += LY) { s1 += (acc_t)gr[k] * (acc_t)xr[k]; s2 += gr[k]; }
        s1 = nn_line_sum(scr, s1, LX);
        s2 = nn_line_sum(scr, s2, LX);
        if (ok && ly == 0) { sums[l] = s1; sums[NC + l] = s2; }
    }
}

/* group_norm: gw[c] = sum_n rs (ds - mu db), gb[c] = sum_n db (rows are (n, g) blocks) */
__kernel void gn_wb(__global const acc_t *sums, __global const float *mean, __global const float *rstd,
                    __global float *gw, __global float *gb, const long N, const long C, const long G) {
    long NC = N * C, Cg = C / G;
    FOR_EACH(c, C) {
        acc_t sw = 0, sb = 0;
        for (long n = 0; n < N; n++) {
            long r = n * G + c / Cg, i = n * C + c;
            sw += (acc_t)rstd[r] * (sums[i] - (acc_t)mean[r] * sums[NC + i]);
            sb += sums[NC + i];
        }
        gw[c] = (float)sw;
        gb[c] = (float)sb;
    }
}

/* layer_norm: gw[j] = sum_r g (x - mu) rs, gb[j] = sum_r g, over the R rows of column j
 * (lines of a [1, R, D] block: adjacent columns side by side) */
__kernel void ln_wb(GEO_ARGS, __global const float *x, __global const float *g, __global const float *mean,
                    __global const float *rstd, __global float *gw, __global float *gb, const int LX) {
    const norm_geo p = *GEO(norm_geo);
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    long D = p.M;
    FOR_LINES(j, ok, D, LX) {
        acc_t s1 = 0, s2 = 0;
        if (ok)
            for (long r = ly; r < p.rows; r += LY) {
                float gv = g[p.goff + r * D + j];
                s1 += gv * ((x[p.xoff + r * D + j] - mean[r]) * rstd[r]);
                s2 += gv;
            }
        s1 = nn_line_sum(scr, s1, LX);
        s2 = nn_line_sum(scr, s2, LX);
        if (ok && ly == 0) { gw[j] = (float)s1; gb[j] = (float)s2; }
    }
}

/* group_norm + activation's backward, first step: gpre = g act'(x a + sh) per element of the
 * contiguous x (rows of M), a = rstd w, sh = b - mean a as the forward computed them */
__kernel void gn_act_pre(GEO_ARGS, __global const float *x, __global const float *w, __global const float *b,
                         __global const float *g, __global const float *mean, __global const float *rstd,
                         __global float *gpre) {
    const norm_geo p = *GEO(norm_geo);
    FOR_EACH(i, p.rows * p.M) {
        long r = i / p.M, c = norm_chan(&p, r, i % p.M);
        float a = rstd[r] * (p.has_w ? w[p.woff + c] : 1.0f), sh = (p.has_b ? b[p.boff + c] : 0.0f) - mean[r] * a;
        gpre[i] = g[p.goff + i] * unary_df(p.act, x[p.xoff + i] * a + sh);
    }
}
