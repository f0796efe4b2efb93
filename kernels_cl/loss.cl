/* loss.cl: l2_normalize, cosine_similarity, cross_entropy and mse_loss on cl devices
 * (engine/cl/cl_loss.c), forward and backward, with the formulas of engine/cpu/cpu_loss.c. The
 * reductions along a dim are lines of a dense [outer, n, inner] block (attention.cl's helpers),
 * accumulated in acc_t (double with fp64, as the CPU). */

/* y = x / max(||x||, eps); den = that denominator, negated where the eps clamp is active */
__kernel void l2n_fwd(__global const float *x, const long xoff, __global float *y, __global float *den, const long outer,
                      const long n, const long inner, const float eps, const int LX) {
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(line, ok, outer * inner, LX) {
        long base = (line / inner) * n * inner + line % inner;
        acc_t s = 0;
        if (ok) for (long k = ly; k < n; k += LY) { acc_t v = x[xoff + base + k * inner]; s += v * v; }
        s = nn_line_sum(scr, s, LX);
        if (!ok) continue;
        float nrm = (float)sqrt(s), dd = nrm >= eps ? nrm : eps;
        for (long k = ly; k < n; k += LY) y[base + k * inner] = x[xoff + base + k * inner] / dd;
        if (ly == 0) den[line] = nrm >= eps ? dd : -dd;
    }
}

/* gx = (g - y sum(g y)) / |den|, the sum dropped where the clamp is active (den < 0) */
__kernel void l2n_bwd(__global const float *y, __global const float *den, __global const float *g, const long goff,
                      __global float *gx, const long outer, const long n, const long inner, const int LX) {
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(line, ok, outer * inner, LX) {
        long base = (line / inner) * n * inner + line % inner;
        float d = ok ? den[line] : 0.0f;
        acc_t s = 0;
        if (ok && d > 0) for (long k = ly; k < n; k += LY) s += (acc_t)g[goff + base + k * inner] * (acc_t)y[base + k * inner];
        float sf = (float)nn_line_sum(scr, s, LX);
        if (!ok) continue;
        float inv = 1.0f / fabs(d);
        for (long k = ly; k < n; k += LY) {
            long e = base + k * inner;
            gx[e] = (g[goff + e] - y[e] * sf) * inv;
        }
    }
}

/* cos = sum (a / n_a)(b / n_b), n = sqrt(max(sum x^2, eps^2)); nr gets n_a then n_b ([2][lines]) */
__kernel void cos_fwd(__global const float *a, const long aoff, __global const float *b, const long boff, __global float *y,
                      __global float *nr, const long outer, const long n, const long inner, const float eps2, const int LX) {
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    long lines = outer * inner;
    FOR_LINES(line, ok, lines, LX) {
        long base = (line / inner) * n * inner + line % inner;
        acc_t s1 = 0, s2 = 0;
        if (ok)
            for (long k = ly; k < n; k += LY) {
                acc_t x1 = a[aoff + base + k * inner], x2 = b[boff + base + k * inner];
                s1 += x1 * x1;
                s2 += x2 * x2;
            }
        s1 = nn_line_sum(scr, s1, LX);
        s2 = nn_line_sum(scr, s2, LX);
        float n1 = (float)sqrt(s1 > (acc_t)eps2 ? s1 : (acc_t)eps2), n2 = (float)sqrt(s2 > (acc_t)eps2 ? s2 : (acc_t)eps2);
        acc_t c = 0;
        if (ok)
            for (long k = ly; k < n; k += LY)
                c += (acc_t)(a[aoff + base + k * inner] / n1) * (acc_t)(b[boff + base + k * inner] / n2);
        c = nn_line_sum(scr, c, LX);
        if (ok && ly == 0) {
            y[line] = (float)c;
            nr[line] = n1;
            nr[lines + line] = n2;
        }
    }
}

/* ga = g (u_b - cos u_a) / n_a, gb = g (u_a - cos u_b) / n_b, u = x / n; every element */
__kernel void cos_bwd(__global const float *a, const long aoff, __global const float *b, const long boff,
                      __global const float *y, __global const float *nr, __global const float *g, const long goff,
                      __global float *ga, __global float *gb, const long outer, const long n, const long inner) {
    long lines = outer * inner;
    FOR_EACH(e, lines * n) {
        long i = e % inner, o = e / (n * inner), r = o * inner + i;
        float n1 = nr[r], n2 = nr[lines + r], c = y[r], gg = g[goff + r];
        float u1 = a[aoff + e] / n1, u2 = b[boff + e] / n2;
        ga[e] = gg * (u2 - c * u1) / n1;
        gb[e] = gg * (u1 - c * u2) / n2;
    }
}

/* loss of each position (a, i) of [N, C, inner] log-probabilities: -on lp[target] - off sum_c lp */
__kernel void ce_fwd(__global const float *lp, __global const long *tg, __global float *loss, const long N, const long C,
                     const long inner, const float on, const float off, const int LX) {
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(r, ok, N * inner, LX) {
        long base = (r / inner) * C * inner + r % inner;
        acc_t s = 0;
        if (ok && off != 0.0f) for (long c = ly; c < C; c += LY) s += lp[base + c * inner];
        s = nn_line_sum(scr, s, LX);
        if (ok && ly == 0) loss[r] = (float)(-(acc_t)on * (acc_t)lp[base + tg[r] * inner] - (acc_t)off * s);
    }
}

/* gx = gg (exp(lp) - off) - [c == target] gg on, gg = g (or g[0] when reduced) times gscale */
__kernel void ce_bwd(__global const float *lp, __global const long *tg, __global const float *g, const long goff,
                     __global float *gx, const long N, const long C, const long inner, const float on, const float off,
                     const float gscale, const int reduced) {
    FOR_EACH(e, N * C * inner) {
        long i = e % inner, c = (e / inner) % C, a = e / (C * inner), r = a * inner + i;
        float gg = (reduced ? g[goff] : g[goff + r]) * gscale;
        float v = gg * (exp(lp[e]) - off);
        if (c == tg[r]) v -= gg * on;
        gx[e] = v;
    }
}

/* ga = 2 (a - b) g (g[0] sc when reduced), gb = -ga (when has_gb) */
__kernel void mse_grad(__global const float *a, const long aoff, __global const float *b, const long boff,
                       __global const float *g, const long goff, __global float *ga, __global float *gb, const long n,
                       const float sc, const int reduced, const int has_gb) {
    float g0 = reduced ? g[goff] * sc : 0.0f;
    FOR_EACH(i, n) {
        float v = 2.0f * (a[aoff + i] - b[boff + i]) * (reduced ? g0 : g[goff + i]);
        ga[i] = v;
        if (has_gb) gb[i] = -v;
    }
}
