/* random.cl: Philox-4x32-10 draws, the mapping of engine/core/rng.c's top comment bit for bit:
 * element e = offset + i of a draw reads block e >> 2 (key = seed, counter = (lo, hi, 0, 0)),
 * lane e & 3. Uniforms are exact. Normals use the same double formulas as the CPU
 * (philox_normal, needs fp64); philox_normal_f32 is the float version for devices without
 * fp64 (within 4e-6 of the double result, see docs/opencl.md). */

static inline void philox4x32_10(uint c0, uint c1, uint k0, uint k1, uint *w) {
    uint x0 = c0, x1 = c1, x2 = 0, x3 = 0;
    for (int r = 0; r < 10; r++) {
        if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        uint hi0 = mul_hi(0xD2511F53u, x0), lo0 = 0xD2511F53u * x0;
        uint hi1 = mul_hi(0xCD9E8D57u, x2), lo1 = 0xCD9E8D57u * x2;
        x0 = hi1 ^ x1 ^ k0;
        x1 = lo1;
        x2 = hi0 ^ x3 ^ k1;
        x3 = lo0;
    }
    w[0] = x0; w[1] = x1; w[2] = x2; w[3] = x3;
}

/* Block j of the draw is block (offset >> 2) + j; its lanes land at i = e - offset when that is
 * in [0, n) (unsigned arithmetic wraps like the CPU's). mode 0: uniform, 1: normal (double),
 * 2: normal (float). y is contiguous f32 at y + yoff. */
static inline void philox_block(__global float *y, long yoff, ulong n, ulong seed, ulong offset, ulong j, int mode) {
    ulong c = (offset >> 2) + j;
    uint w[4];
    philox4x32_10((uint)c, (uint)(c >> 32), (uint)seed, (uint)(seed >> 32), w);
    float v[4];
    if (mode == 0) {
        for (int k = 0; k < 4; k++) v[k] = (float)(w[k] >> 8) * 0x1p-24f;
    } else {
        for (int p = 0; p < 2; p++) {
#ifdef CRAFT_FP64
            if (mode == 1) {
                double u1 = ((double)w[2 * p] + 1.0) * 0x1p-32, u2 = (double)w[2 * p + 1] * 0x1p-32;
                double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
                v[2 * p] = (float)(r * cos(th));
                v[2 * p + 1] = (float)(r * sin(th));
                continue;
            }
#endif
            /* log(u1) with u1 = (a + 1) 2^-32: for u1 <= 1/2 directly, above through
             * log1p(-(1 - u1)) with 1 - u1 = (2^32 - 1 - a) 2^-32, so that float rounding of the
             * integers costs a relative 6e-8 either way; the angle goes through sinpi/cospi. */
            uint a = w[2 * p];
            float lg = a < 0x80000000u ? log((float)(a + 1u) * 0x1p-32f) : log1p(-((float)(0xFFFFFFFFu - a) * 0x1p-32f));
            float r = sqrt(-2.0f * lg);
            float t = (float)(w[2 * p + 1] >> 8) * 0x1p-23f + (float)(w[2 * p + 1] & 0xFFu) * 0x1p-31f;
            v[2 * p] = r * cospi(t);
            v[2 * p + 1] = r * sinpi(t);
        }
    }
    for (int k = 0; k < 4; k++) {
        ulong e = (c << 2) + (ulong)k;
        ulong i = e - offset;
        if (i < n) y[yoff + (long)i] = v[k];
    }
}

__kernel void philox_fill(__global float *y, const long yoff, const long n, const ulong seed, const ulong offset,
                          const int mode) {
    ulong nblocks = (((offset & 3) + (ulong)n + 3) >> 2);
    for (ulong j = get_global_id(0); j < nblocks; j += get_global_size(0))
        philox_block(y, yoff, (ulong)n, seed, offset, j, mode);
}
