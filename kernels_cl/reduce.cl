/* reduce.cl: row reductions (sum, mean, var, sum of squares) over a contiguous [rows, rowlen]
 * f32 block, accumulating in acc_t (double when the device has fp64, as the CPU does), and
 * max/min with indices over one dim of a contiguous [outer, D, inner] block, plus its
 * backward scatter. */

#define R_SUM 0
#define R_MEAN 1
#define R_VAR 2
#define R_SUMSQ 3

static inline float finish_row(int kind, acc_t total, long rowlen, int correction) {
    if (kind == R_MEAN) return (float)(total / (acc_t)rowlen);
    if (kind == R_VAR) return (float)(total / (acc_t)(rowlen - correction));
    return (float)total;
}

/* One work-item per row, in the CPU's order (short rows, many of them). */
__kernel void reduce_rows_seq(__global const float *x, const long xoff, __global float *y, const long yoff,
                              const long rows, const long rowlen, const int kind, const int correction) {
    FOR_EACH(r, rows) {
        __global const float *row = x + xoff + r * rowlen;
        acc_t s = 0;
        for (long i = 0; i < rowlen; i++) s += kind == R_SUMSQ ? (acc_t)row[i] * (acc_t)row[i] : (acc_t)row[i];
        if (kind == R_VAR) {
            acc_t m = s / (acc_t)rowlen, v = 0;
            for (long i = 0; i < rowlen; i++) { acc_t d = (acc_t)row[i] - m; v += d * d; }
            s = v;
        }
        y[yoff + r] = finish_row(kind, s, rowlen, correction);
    }
}

/* Tree sum of scr[0 .. ls) (ls a power of two); every work-item gets the total. */
static inline acc_t group_sum(__local acc_t *scr, acc_t v) {
    int lid = get_local_id(0), ls = get_local_size(0);
    scr[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = ls / 2; w > 0; w >>= 1) {
        if (lid < w) scr[lid] += scr[lid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    acc_t t = scr[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return t;
}

/* One work-group per row (long rows). */
__kernel void reduce_rows(__global const float *x, const long xoff, __global float *y, const long yoff,
                          const long rows, const long rowlen, const int kind, const int correction,
                          __local acc_t *scr) {
    int lid = get_local_id(0), ls = get_local_size(0);
    for (long r = get_group_id(0); r < rows; r += get_num_groups(0)) {
        __global const float *row = x + xoff + r * rowlen;
        acc_t s = 0;
        for (long i = lid; i < rowlen; i += ls) s += kind == R_SUMSQ ? (acc_t)row[i] * (acc_t)row[i] : (acc_t)row[i];
        acc_t total = group_sum(scr, s);
        if (kind == R_VAR) {
            acc_t m = total / (acc_t)rowlen, v = 0;
            for (long i = lid; i < rowlen; i += ls) { acc_t d = (acc_t)row[i] - m; v += d * d; }
            total = group_sum(scr, v);
        }
        if (lid == 0) y[yoff + r] = finish_row(kind, total, rowlen, correction);
    }
}

/* values and int64 indices of the max (want_max) or min over D; NaN wins, first index on ties,
 * as engine/cpu/cpu_reduce.c */
__kernel void maxmin_dim(__global const float *x, const long xoff, __global float *vals, __global long *idx,
                         const long outer, const long D, const long inner, const int want_max) {
    FOR_EACH(k, outer * inner) {
        long o = k / inner, i = k % inner;
        __global const float *p = x + xoff + o * D * inner + i;
        float best = p[0];
        long bi = 0;
        for (long j = 1; j < D; j++) {
            float c = p[j * inner];
            int better = want_max ? (c > best || (c != c && best == best)) : (c < best || (c != c && best == best));
            if (better) { best = c; bi = j; }
        }
        vals[k] = best;
        idx[k] = bi;
    }
}

/* z (zeros, [outer, D, inner]) gets g at the saved indices; each (o, i) writes its own place */
__kernel void maxmin_scatter(__global float *z, __global const float *g, const long goff, __global const long *idx,
                             const long ioff, const long outer, const long D, const long inner) {
    FOR_EACH(k, outer * inner) {
        long o = k / inner, i = k % inner;
        z[(o * D + idx[ioff + k]) * inner + i] += g[goff + k];
    }
}
