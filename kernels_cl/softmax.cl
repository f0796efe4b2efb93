/* softmax.cl: softmax and log_softmax along the middle dim of a dense [outer, n, inner] block,
 * forward and backward (engine/cl/cl_softmax.c), as lines of attention.cl's helpers: rows
 * (inner 1) reduce along memory, columns side by side. Formulas of engine/cpu/cpu_softmax.c:
 *   forward:      m = max (NaN kept; an all -inf line uses 0, giving NaN as torch), s = sum exp(x - m)
 *                 softmax y = exp(x - m) / s, log_softmax y = x - (m + log s)
 *   softmax:      gx = y (g - sum(g y))
 *   log_softmax:  gx = g - exp(y) sum(g)
 * Sums accumulate in acc_t. */

__kernel void softmax_fwd(__global const float *x, const long xoff, __global float *y, const long outer, const long n,
                          const long inner, const int lg, const int LX) {
    __local float smax[NN_LOCAL];
    __local acc_t ssum[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(line, ok, outer * inner, LX) {
        long base = (line / inner) * n * inner + line % inner;
        __global const float *xr = x + xoff + base;
        __global float *yr = y + base;
        float m = -INFINITY;
        if (ok) for (long k = ly; k < n; k += LY) m = nn_max_nan(m, xr[k * inner]);
        m = nn_line_max(smax, m, LX);
        if (m == -INFINITY) m = 0.0f;
        acc_t s = 0;
        if (ok) for (long k = ly; k < n; k += LY) s += exp(xr[k * inner] - m);
        float sum = (float)nn_line_sum(ssum, s, LX);
        if (!ok) continue;
        if (lg) {
            float c = m + log(sum);
            for (long k = ly; k < n; k += LY) yr[k * inner] = xr[k * inner] - c;
        } else {
            float inv = 1.0f / sum;
            for (long k = ly; k < n; k += LY) yr[k * inner] = exp(xr[k * inner] - m) * inv;
        }
    }
}

/* y: the forward's output; g, gx dense like it (g at goff) */
__kernel void softmax_bwd(__global const float *y, const long yoff, __global const float *g, const long goff,
                          __global float *gx, const long outer, const long n, const long inner, const int lg,
                          const int LX) {
    __local acc_t ssum[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(line, ok, outer * inner, LX) {
        long base = (line / inner) * n * inner + line % inner;
        __global const float *yr = y + yoff + base, *gr = g + goff + base;
        acc_t s = 0;
        if (ok)
            for (long k = ly; k < n; k += LY) s += lg ? (acc_t)gr[k * inner] : (acc_t)gr[k * inner] * (acc_t)yr[k * inner];
        float d = (float)nn_line_sum(ssum, s, LX);
        if (!ok) continue;
        for (long k = ly; k < n; k += LY) {
            long e = base + k * inner;
            gx[e] = lg ? gr[k * inner] - exp(yr[k * inner]) * d : yr[k * inner] * (gr[k * inner] - d);
        }
    }
}
