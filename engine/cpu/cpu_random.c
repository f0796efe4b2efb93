/* cpu_random.c: the CPU's Philox fill (core/rng.c has the mapping, the contract every device
 * follows). */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>

/* The four values of block c. */
static void block_values(int normal, uint64_t seed, uint64_t c, float v[4]) {
    uint32_t w[4];
    craft_philox4x32(seed, c, w);
    if (!normal) {
        for (int k = 0; k < 4; k++) v[k] = (float)(w[k] >> 8) * 0x1p-24f;
        return;
    }
    for (int p = 0; p < 2; p++) {
        double u1 = ((double)w[2 * p] + 1.0) * 0x1p-32, u2 = (double)w[2 * p + 1] * 0x1p-32;
        double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        v[2 * p] = (float)(r * cos(th));
        v[2 * p + 1] = (float)(r * sin(th));
    }
}

/* dst[i] = value of element offset + i. Chunks are fixed-size, so the split over threads
 * never changes a value. */
static void generate(float *dst, int64_t n, uint64_t seed, uint64_t offset, int normal) {
    const int64_t CH = 4096;
    int64_t nch = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n >= CRAFT_PAR_MIN)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t i = ch * CH, end = i + CH < n ? i + CH : n;
        float v[4];
        uint64_t cur = 0;
        int have = 0;
        for (; i < end; i++) {
            uint64_t e = offset + (uint64_t)i, c = e >> 2;
            if (!have || c != cur) {
                block_values(normal, seed, c, v);
                cur = c;
                have = 1;
            }
            dst[i] = v[e & 3];
        }
    }
}

int cpu_philox(craft_tensor *t, uint64_t seed, uint64_t offset, int normal) {
    generate(craft_tensor_data(t), t->numel, seed, offset, normal);
    return CRAFT_OK;
}
