/* conv.cl: the convolution kernels of engine/cl/cl_conv.c, in conv terms (src [n, c, h, w] ->
 * dst [n, oc, oh, ow]): im2col (src -> the GEMM's column matrix), col2im (its adjoint, the
 * backward-data scatter written as a gather, so no atomics and one fixed summation order), and
 * a direct forward kernel (conv_direct) that the host may use instead of im2col + CLBlast.
 *
 * Column matrix: element (image n, row r = (c * kh + ky) * kw + kx, pixel p = oy * ow + ox) lives
 * at coff + n * sn + r * sr + p, so one kernel writes both layouts the host uses:
 * [n][c kh kw][oh ow] (sn = rows * oh * ow, sr = oh * ow) and [c kh kw][n][oh ow]
 * (sn = oh * ow, sr = n * oh * ow). */

/* mirrors cl_conv_geo in engine/cl/cl_conv.c; padding is top/left, dilation 1 = dense */
typedef struct {
    long n, c, h, w;        /* src images in this launch, channels, height, width */
    long kh, kw, oh, ow;
    long sh, sw, ph, pw, dh, dw;
    long sn, sr;            /* column-matrix strides of an image and of a row */
    long xoff, coff;        /* element offsets of src and of the column matrix */
} conv_geo;

__kernel void im2col(GEO_ARGS, __global const float *x, __global float *col) {
    const conv_geo g = *GEO(conv_geo);
    long ohw = g.oh * g.ow, kk = g.kh * g.kw, rows = g.c * kk;
    FOR_EACH(i, g.n * rows * ohw) {
        long p = i % ohw, t = i / ohw, r = t % rows, n = t / rows;
        long ox = p % g.ow, oy = p / g.ow;
        long kx = r % g.kw, ky = (r / g.kw) % g.kh, c = r / kk;
        long iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
        float v = 0.0f;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = x[g.xoff + ((n * g.c + c) * g.h + iy) * g.w + ix];
        col[g.coff + n * g.sn + r * g.sr + p] = v;
    }
}

/* x[n, c, iy, ix] = bias[c] (if any) + the sum of the column entries that read it */
__kernel void col2im(GEO_ARGS, __global const float *col, __global float *x, __global const float *bias,
                     const long boff, const int has_bias) {
    const conv_geo g = *GEO(conv_geo);
    long kk = g.kh * g.kw;
    FOR_EACH(i, g.n * g.c * g.h * g.w) {
        long ix = i % g.w, t = i / g.w, iy = t % g.h;
        t /= g.h;
        long c = t % g.c, n = t / g.c;
        __global const float *cn = col + g.coff + n * g.sn + c * kk * g.sr;
        float acc = 0.0f;
        for (long ky = 0; ky < g.kh; ky++) {
            long ty = iy + g.ph - ky * g.dh;
            if (ty < 0 || ty % g.sh) continue;
            long oy = ty / g.sh;
            if (oy >= g.oh) continue;
            for (long kx = 0; kx < g.kw; kx++) {
                long tx = ix + g.pw - kx * g.dw;
                if (tx < 0 || tx % g.sw) continue;
                long ox = tx / g.sw;
                if (ox >= g.ow) continue;
                acc += cn[(ky * g.kw + kx) * g.sr + oy * g.ow + ox];
            }
        }
        if (has_bias) acc += bias[boff + c];
        x[g.xoff + i] = acc;
    }
}

/* Direct forward: each work-item computes CONV_OB output channels (of one group) at one output
 * pixel, so every input value loaded serves CONV_OB multiply-adds (on PoCL 16 channels ran 3-4x
 * faster than 4); neighbouring work-items are neighbouring pixels (coalesced loads of x and
 * stores of y) and read the same weights. y is [n, oc, oh, ow] at yoff. */
#define CONV_OB 16
__kernel void conv_direct(GEO_ARGS, const long oc, const long groups, __global const float *x,
                          __global const float *w, const long woff, __global const float *bias, const long boff,
                          const int has_bias, __global float *y, const long yoff) {
    const conv_geo g = *GEO(conv_geo);
    long ohw = g.oh * g.ow, kk = g.kh * g.kw, cg = g.c / groups, og = oc / groups;
    long blocks = (og + CONV_OB - 1) / CONV_OB;
    FOR_EACH(i, g.n * groups * blocks * ohw) {
        long p = i % ohw, t = i / ohw, blk = t % blocks;
        t /= blocks;
        long grp = t % groups, n = t / groups;
        long o0 = grp * og + blk * CONV_OB, cnt = min((long)CONV_OB, og - blk * CONV_OB);
        long ox = p % g.ow, oy = p / g.ow;
        float acc[CONV_OB] = {0.0f};
        __global const float *xn = x + g.xoff + (n * g.c + grp * cg) * g.h * g.w;
        __global const float *wb = w + woff + o0 * cg * kk;
        for (long c = 0; c < cg; c++) {
            for (long ky = 0; ky < g.kh; ky++) {
                long iy = oy * g.sh - g.ph + ky * g.dh;
                if (iy < 0 || iy >= g.h) continue;
                for (long kx = 0; kx < g.kw; kx++) {
                    long ix = ox * g.sw - g.pw + kx * g.dw;
                    if (ix < 0 || ix >= g.w) continue;
                    float xv = xn[(c * g.h + iy) * g.w + ix];
                    long wo = (c * g.kh + ky) * g.kw + kx;
                    for (int j = 0; j < CONV_OB; j++)
                        if (j < cnt) acc[j] += wb[j * cg * kk + wo] * xv;
                }
            }
        }
        for (int j = 0; j < CONV_OB; j++)
            if (j < cnt) y[yoff + (n * oc + o0 + j) * ohw + p] = acc[j] + (has_bias ? bias[boff + o0 + j] : 0.0f);
    }
}
