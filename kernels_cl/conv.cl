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

/* Implicit GEMM: the convolution as a GEMM per group whose B operand is gathered from the image
 * on the fly, tile by tile, into local memory, so the column matrix never exists. A work-group
 * of L x L work-items (L = 16 where the device allows 256, else 8 or 4) computes a TM x TN
 * block (TM = TN = IG_R L) of the output (channels x pixels of every image of the batch, so
 * small images still fill tiles), each work-item an IG_R x IG_R micro-tile (rows ty + L i,
 * columns tx + L j: neighbouring work-items, neighbouring pixels, so gathers and stores
 * coalesce and local reads are conflict-free); per step IG_TK of the inner dimension are staged
 * for A (weights, row stride TM + 1 against bank conflicts) and B. The bias is added in the
 * epilogue.
 *   forward    (dir 0): dst[n, o, p] = sum over (c, ky, kx) of W[o, c, ky, kx] x[n, c, at(p)] + b[o]
 *   backward-data (1): src[n, c, q] = sum over (o, ky, kx) of W[o, c, ky, kx] dy[n, o, at'(q)]
 *                      (+ b[c]), at' the output pixel that reads q through (ky, kx), if any:
 *                      the conv transposed, as a gather (no atomics, no col2im).
 * h = 1 (conv_igemm_fwd_h, the fp16 compute precision): in and w are f16 (the pointers are cast;
 * offsets count their elements), read through vload_half; the arithmetic stays fp32. */
#define IG_TK 16
#define IG_R 4
#define IG_LMAX 16

#define IG_LD(h, p, i) ((h) ? vload_half((i), (__global const half *)(p)) : (p)[i])
static inline void conv_igemm_body(const int dir, const int h, __global const conv_geo *g, const long oc, const long groups,
                                   __global const float *in, const long inoff, __global const float *w,
                                   const long woff, __global const float *bias, const long boff,
                                   const int has_bias, __global float *out, const long outoff, __local float *As,
                                   __local float *Bs) {
    const int ls = get_local_size(0), L = ls >= 256 ? 16 : ls >= 64 ? 8 : 4, TM = IG_R * L, TN = IG_R * L;
    const long kk = g->kh * g->kw, cg = g->c / groups, og = oc / groups;
    const long ohw = g->oh * g->ow, ihw = g->h * g->w;
    /* the GEMM per group: M rows (output channels of the direction), N columns (pixels of the
     * batch), K inner; pix: pixels per image of the output, ch: its channels per image */
    const long M = dir ? cg : og, K = dir ? og * kk : cg * kk, pix = dir ? ihw : ohw, ch = dir ? g->c : oc;
    const long N = g->n * pix;
    const long ntn = (N + TN - 1) / TN, ntm = (M + TM - 1) / TM;
    const long gid = get_group_id(0), nt = gid % ntn, mt = (gid / ntn) % ntm, gi = gid / (ntn * ntm);
    const long m0 = mt * TM, n0 = nt * TN;
    const int lid = get_local_id(0), tx = lid % L, ty = lid / L;
    /* this work-item's B column: the same for every step (L * L is a multiple of TN) */
    const int bn = lid % TN, bk0 = lid / TN, bstep = ls / TN;
    const long col = n0 + bn, img = col / pix, pp = col % pix, py = pp / (dir ? g->w : g->ow),
               px = pp % (dir ? g->w : g->ow);
    const int col_ok = col < N;
    float acc[IG_R][IG_R];
    for (int i = 0; i < IG_R; i++)
        for (int j = 0; j < IG_R; j++) acc[i][j] = 0.0f;
    for (long k0 = 0; k0 < K; k0 += IG_TK) {
        for (int e = lid; e < TM * IG_TK; e += ls) {
            int am = e / IG_TK, ak = e % IG_TK;
            long m = m0 + am, r = k0 + ak;
            float a = 0.0f;
            if (m < M && r < K) {
                if (!dir) a = IG_LD(h, w, woff + (gi * og + m) * cg * kk + r);
                else a = IG_LD(h, w, woff + ((gi * og + r / kk) * cg + m) * kk + r % kk);
            }
            As[ak * (TM + 1) + am] = a;
        }
        for (int bk = bk0; bk < IG_TK; bk += bstep) {
            long r = k0 + bk;
            float b = 0.0f;
            if (col_ok && r < K) {
                long c = r / kk, ky = (r % kk) / g->kw, kx = r % g->kw;
                if (!dir) {
                    long iy = py * g->sh - g->ph + ky * g->dh, ix = px * g->sw - g->pw + kx * g->dw;
                    if (iy >= 0 && iy < g->h && ix >= 0 && ix < g->w)
                        b = IG_LD(h, in, inoff + ((img * g->c + gi * cg + c) * g->h + iy) * g->w + ix);
                } else {
                    long ty2 = py + g->ph - ky * g->dh, tx2 = px + g->pw - kx * g->dw;
                    if (ty2 >= 0 && tx2 >= 0 && ty2 % g->sh == 0 && tx2 % g->sw == 0) {
                        long oy = ty2 / g->sh, ox = tx2 / g->sw;
                        if (oy < g->oh && ox < g->ow)
                            b = IG_LD(h, in, inoff + ((img * oc + gi * og + c) * g->oh + oy) * g->ow + ox);
                    }
                }
            }
            Bs[bk * TN + bn] = b;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < IG_TK; k++) {
            float a[IG_R], b[IG_R];
            for (int i = 0; i < IG_R; i++) a[i] = As[k * (TM + 1) + ty + L * i];
            for (int j = 0; j < IG_R; j++) b[j] = Bs[k * TN + tx + L * j];
            for (int i = 0; i < IG_R; i++)
                for (int j = 0; j < IG_R; j++) acc[i][j] += a[i] * b[j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < IG_R; i++) {
        long m = m0 + ty + L * i;
        if (m >= M) continue;
        float bv = has_bias ? bias[boff + gi * M + m] : 0.0f;
        for (int j = 0; j < IG_R; j++) {
            long cc = n0 + tx + L * j;
            if (cc < N) out[outoff + ((cc / pix) * ch + gi * M + m) * pix + cc % pix] = acc[i][j] + bv;
        }
    }
}

/* x: src (forward) at the geometry's xoff; y: dst at yoff */
__kernel void conv_igemm_fwd(GEO_ARGS, const long oc, const long groups, __global const float *x,
                             __global const float *w, const long woff, __global const float *bias, const long boff,
                             const int has_bias, __global float *y, const long yoff) {
    __local float As[IG_TK * (IG_R * IG_LMAX + 1)], Bs[IG_TK * IG_R * IG_LMAX];
    __global const conv_geo *g = GEO(conv_geo);
    conv_igemm_body(0, 0, g, oc, groups, x, g->xoff, w, woff, bias, boff, has_bias, y, yoff, As, Bs);
}

/* conv_igemm_fwd over f16 copies of x (at the geometry's xoff) and w */
__kernel void conv_igemm_fwd_h(GEO_ARGS, const long oc, const long groups, __global const half *x,
                               __global const half *w, const long woff, __global const float *bias, const long boff,
                               const int has_bias, __global float *y, const long yoff) {
    __local float As[IG_TK * (IG_R * IG_LMAX + 1)], Bs[IG_TK * IG_R * IG_LMAX];
    __global const conv_geo *g = GEO(conv_geo);
    conv_igemm_body(0, 1, g, oc, groups, (__global const float *)x, g->xoff, (__global const float *)w, woff, bias,
                    boff, has_bias, y, yoff, As, Bs);
}

/* dy: dst-shaped [n, oc, oh, ow] at dyoff; dx: src-shaped at the geometry's xoff */
__kernel void conv_igemm_bwd(GEO_ARGS, const long oc, const long groups, __global const float *dy,
                             const long dyoff, __global const float *w, const long woff, __global const float *bias,
                             const long boff, const int has_bias, __global float *dx) {
    __local float As[IG_TK * (IG_R * IG_LMAX + 1)], Bs[IG_TK * IG_R * IG_LMAX];
    __global const conv_geo *g = GEO(conv_geo);
    conv_igemm_body(1, 0, g, oc, groups, dy, dyoff, w, woff, bias, boff, has_bias, dx, g->xoff, As, Bs);
}
