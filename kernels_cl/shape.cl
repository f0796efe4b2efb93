/* shape.cl: avg_pool2d, interpolate, pad and embedding / timestep embedding kernels for
 * engine/cl/cl_shape.c. Every backward is a gather (one work-item per input element, no
 * atomics) that adds its terms in the order the CPU's scatter-add does (engine/cpu/cpu_resize.c,
 * ops_shape.c, ops_embed.c), so forward and backward agree with the CPU bit for bit; only the
 * timestep embedding's sin / cos come from the device's libm. */

/* --------------------------------------------------------------- avg_pool2d */
/* mirrors cl_pool_geo in engine/cl/cl_shape.c; count_include_pad, floor mode */
typedef struct { long planes, h, w, oh, ow, k, s, pad; } pool_geo;

__kernel void avgpool_fwd(GEO_ARGS, __global const float *x, const long xoff, __global float *y) {
    const pool_geo g = *GEO(pool_geo);
    const float div = (float)(g.k * g.k);
    FOR_EACH(i, g.planes * g.oh * g.ow) {
        long ox = i % g.ow, t = i / g.ow, oy = t % g.oh, pl = t / g.oh;
        __global const float *xp = x + xoff + pl * g.h * g.w;
        long y0 = oy * g.s - g.pad, y1 = y0 + g.k, x0 = ox * g.s - g.pad, x1 = x0 + g.k;
        y0 = max(y0, 0L); y1 = min(y1, g.h); x0 = max(x0, 0L); x1 = min(x1, g.w);
        float acc = 0.0f;
        for (long r = y0; r < y1; r++)
            for (long c = x0; c < x1; c++) acc += xp[r * g.w + c];
        y[i] = acc / div;
    }
}

/* The windows holding input row iy: oy * s - pad <= iy < oy * s - pad + k. */
static inline void pool_range(long i, long s, long pad, long k, long n_out, long *lo, long *hi) {
    long a = i + pad - k + 1;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    *hi = min((i + pad) / s, n_out - 1);
}

__kernel void avgpool_bwd(GEO_ARGS, __global const float *gy, const long goff, __global float *gx) {
    const pool_geo g = *GEO(pool_geo);
    const float div = (float)(g.k * g.k);
    FOR_EACH(i, g.planes * g.h * g.w) {
        long ix = i % g.w, t = i / g.w, iy = t % g.h, pl = t / g.h, ylo, yhi, xlo, xhi;
        pool_range(iy, g.s, g.pad, g.k, g.oh, &ylo, &yhi);
        pool_range(ix, g.s, g.pad, g.k, g.ow, &xlo, &xhi);
        __global const float *gp = gy + goff + pl * g.oh * g.ow;
        float acc = 0.0f;
        for (long oy = ylo; oy <= yhi; oy++)
            for (long ox = xlo; ox <= xhi; ox++) acc += gp[oy * g.ow + ox] / div;
        gx[i] = acc;
    }
}

/* ------------------------------------------------------------- interpolate */
/* Axis maps made on the host by the CPU's code (craft_interpolate_axis), in one long buffer:
 * i0 [oh] i1 [oh] i0 [ow] i1 [ow], then for backward the first and last output index that
 * reads each input index: lo [h] hi [h] lo [w] hi [w]; weights in one float buffer: l0 [oh]
 * l1 [oh] l0 [ow] l1 [ow]. Nearest (mode 0) uses i0 only. */
typedef struct { long planes, h, w, oh, ow, mode; } interp_geo;

__kernel void interp_fwd(GEO_ARGS, __global const float *x, const long xoff, __global float *y,
                         __global const long *im, __global const float *lm) {
    const interp_geo g = *GEO(interp_geo);
    __global const long *hi0 = im, *hi1 = im + g.oh, *wi0 = im + 2 * g.oh, *wi1 = wi0 + g.ow;
    __global const float *hl0 = lm, *hl1 = lm + g.oh, *wl0 = lm + 2 * g.oh, *wl1 = wl0 + g.ow;
    FOR_EACH(i, g.planes * g.oh * g.ow) {
        long ox = i % g.ow, t = i / g.ow, oy = t % g.oh, pl = t / g.oh;
        __global const float *xp = x + xoff + pl * g.h * g.w;
        if (g.mode == 0) {
            y[i] = xp[hi0[oy] * g.w + wi0[ox]];
        } else {
            __global const float *x0 = xp + hi0[oy] * g.w, *x1 = xp + hi1[oy] * g.w;
            long a = wi0[ox], b = wi1[ox];
            float h0 = hl0[oy], h1 = hl1[oy], w0 = wl0[ox], w1 = wl1[ox];
            y[i] = h0 * (w0 * x0[a] + w1 * x0[b]) + h1 * (w0 * x1[a] + w1 * x1[b]);
        }
    }
}

/* the CPU's order: output pixels row-major, and within one the terms (i0,i0) (i0,i1) (i1,i0) (i1,i1) */
__kernel void interp_bwd(GEO_ARGS, __global const float *gy, const long goff, __global float *gx,
                         __global const long *im, __global const float *lm) {
    const interp_geo g = *GEO(interp_geo);
    __global const long *hi0 = im, *hi1 = im + g.oh, *wi0 = im + 2 * g.oh, *wi1 = wi0 + g.ow;
    __global const long *hlo = wi1 + g.ow, *hhi = hlo + g.h, *wlo = hhi + g.h, *whi = wlo + g.w;
    __global const float *hl0 = lm, *hl1 = lm + g.oh, *wl0 = lm + 2 * g.oh, *wl1 = wl0 + g.ow;
    int bil = g.mode != 0;
    FOR_EACH(i, g.planes * g.h * g.w) {
        long ix = i % g.w, t = i / g.w, iy = t % g.h, pl = t / g.h;
        __global const float *gp = gy + goff + pl * g.oh * g.ow;
        float acc = 0.0f;
        for (long oy = hlo[iy]; oy <= hhi[iy]; oy++) {
            int a0 = hi0[oy] == iy, a1 = bil && hi1[oy] == iy;
            if (!a0 && !a1) continue;
            for (long ox = wlo[ix]; ox <= whi[ix]; ox++) {
                int b0 = wi0[ox] == ix, b1 = bil && wi1[ox] == ix;
                if (!b0 && !b1) continue;
                float v = gp[oy * g.ow + ox];
                if (!bil) { acc += v; continue; }
                float h0 = hl0[oy], h1 = hl1[oy], w0 = wl0[ox], w1 = wl1[ox];
                if (a0 && b0) acc += h0 * w0 * v;
                if (a0 && b1) acc += h0 * w1 * v;
                if (a1 && b0) acc += h1 * w0 * v;
                if (a1 && b1) acc += h1 * w1 * v;
            }
        }
        gx[i] = acc;
    }
}

/* --------------------------------------------------------------------- pad */
/* mirrors cl_pad_geo in engine/cl/cl_shape.c: dims [lead, ndim) are padded (before may be
 * negative in constant mode); mode 0 constant, 1 reflect, 2 replicate; x is contiguous */
typedef struct { long ish[8], osh[8], before[8]; long ndim, lead, mode; float value; int pad0; } pad_geo;

__kernel void pad_fwd(GEO_ARGS, __global const float *x, const long xoff, __global float *y, const long n) {
    const pad_geo g = *GEO(pad_geo);
    FOR_EACH(i, n) {
        long r = i, off = 0, st = 1;
        int fill = 0;
        for (int d = (int)g.ndim - 1; d >= 0; d--) {
            long o = r % g.osh[d], j = o;
            r /= g.osh[d];
            if (d >= g.lead) {
                long m = g.ish[d];
                j = o - g.before[d];
                if (g.mode == 0) fill |= j < 0 || j >= m;
                else if (g.mode == 1) j = j < 0 ? -j : (j >= m ? 2 * (m - 1) - j : j);
                else j = j < 0 ? 0 : (j >= m ? m - 1 : j);
            }
            off += j * st;
            st *= g.ish[d];
        }
        y[i] = fill ? g.value : x[xoff + off];
    }
}

/* Each input element sums the outputs that read it, in increasing output order (the CPU's):
 * per padded dim up to three runs of output indices (reflect: the mirror before, itself, the
 * mirror after; replicate: a run at either edge), combined row-major. */
__kernel void pad_bwd(GEO_ARGS, __global const float *gy, const long goff, __global float *gx, const long n) {
    const pad_geo g = *GEO(pad_geo);
    FOR_EACH(i, n) {
        long lo[8][3], len[8][3], cnt[8], r = i;
        int nr[8];
        long total = 1;
        for (int d = (int)g.ndim - 1; d >= 0; d--) {
            long j = r % g.ish[d], m = g.ish[d], b = g.before[d], o = g.osh[d];
            r /= g.ish[d];
            nr[d] = 0;
            if (d < g.lead) {
                lo[d][0] = j; len[d][0] = 1; nr[d] = 1;
            } else if (g.mode == 0) {
                if (j + b >= 0 && j + b < o) { lo[d][0] = j + b; len[d][0] = 1; nr[d] = 1; }
            } else if (g.mode == 1) {
                if (j >= 1 && j <= b) { lo[d][nr[d]] = b - j; len[d][nr[d]++] = 1; }
                lo[d][nr[d]] = j + b; len[d][nr[d]++] = 1;
                if (j <= m - 2 && b + 2 * (m - 1) - j < o) { lo[d][nr[d]] = b + 2 * (m - 1) - j; len[d][nr[d]++] = 1; }
            } else {
                long a = j == 0 ? 0 : j + b, e = j == m - 1 ? o - 1 : j + b;
                lo[d][0] = a; len[d][0] = e - a + 1; nr[d] = 1;
            }
            cnt[d] = 0;
            for (int k = 0; k < nr[d]; k++) cnt[d] += len[d][k];
            total *= cnt[d];
        }
        float acc = 0.0f;
        for (long q = 0; q < total; q++) {
            long rem = q, off = 0, st = 1;
            for (int d = (int)g.ndim - 1; d >= 0; d--) {
                long t = rem % cnt[d];
                rem /= cnt[d];
                int k = 0;
                while (t >= len[d][k]) { t -= len[d][k]; k++; }
                off += (lo[d][k] + t) * st;
                st *= g.osh[d];
            }
            acc += gy[goff + off];
        }
        gx[i] = acc;
    }
}

/* --------------------------------------------------------------- embedding */
__kernel void embed_fwd(__global const float *w, const long woff, __global const long *idx, __global float *y, const long K,
                        const long D) {
    FOR_EACH(i, K * D) y[i] = w[woff + idx[i / D] * D + i % D];
}

/* gw[v, j] = sum of g[k, j] over the k with idx[k] == v, k increasing (the CPU's order): csr
 * holds the k sorted by row (K entries), then each row's start (V + 1 entries). */
__kernel void embed_bwd(__global const float *g, const long goff, __global const long *csr, __global float *gw, const long V,
                        const long K, const long D) {
    __global const long *start = csr + K;
    FOR_EACH(i, V * D) {
        long v = i / D, j = i % D;
        float acc = 0.0f;
        for (long p = start[v]; p < start[v + 1]; p++) acc += g[goff + csr[p] * D + j];
        gw[i] = acc;
    }
}

/* diffusers get_timestep_embedding with the host's freq table (exactly the CPU's): a = scale
 * (t[n] freq[i]), [sin | cos] or [cos | sin], a zero column when dim is odd */
__kernel void timestep_emb(__global const float *t, const long toff, __global const float *freq, __global float *y,
                           const long N, const long dim, const long nhalf, const float scale, const int flip) {
    FOR_EACH(i, N * dim) {
        long n = i / dim, c = i % dim;
        if (c >= 2 * nhalf) { y[i] = 0.0f; continue; }
        long k = c < nhalf ? c : c - nhalf;
        float a = scale * (t[toff + n] * freq[k]);
        int want_sin = (c < nhalf) != (flip != 0);
        y[i] = want_sin ? sin(a) : cos(a);
    }
}
