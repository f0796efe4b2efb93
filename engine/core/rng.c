/* rng.c: counter-based random numbers (Philox-4x32-10, Random123's constants) for craft_rand_
 * and craft_randn_. Every element is a pure function of (seed, offset + i), so results do not
 * depend on the thread count or on how a draw is split into calls, and the OpenCL back end can
 * reproduce them. THE MAPPING BELOW IS A CONTRACT: change it only together with the kernels
 * (cpu/cpu_random.c, kernels_cl/random.cl) and the tests.
 *
 * Block function: philox4x32_10(ctr, key) with
 *     key = (lo32(seed), hi32(seed))
 *     ctr = (lo32(c), hi32(c), 0, 0) for a 64-bit block counter c
 * gives four 32-bit words w[0..3] (craft_philox4x32(seed, c, w)). A round maps
 * (x0, x1, x2, x3) to (hi(M1*x2) ^ x1 ^ k0, lo(M1*x2), hi(M0*x0) ^ x3 ^ k1, lo(M0*x0)) with
 * M0 = 0xD2511F53, M1 = 0xCD9E8D57; the key is bumped by (0x9E3779B9, 0xBB67AE85) between
 * rounds (10 rounds, 9 bumps).
 *
 * Element i of a draw with (seed, offset):
 *     e = offset + i (mod 2^64),  block c = e >> 2,  lane = e & 3,  w = philox(seed, c)
 * rand_ (uniform in [0, 1)):
 *     u = (float)(w[lane] >> 8) * 2^-24            (the 24 high bits; exact in float)
 * randn_ (standard normal, Box-Muller; lanes 0,1 share words w[0],w[1], lanes 2,3 w[2],w[3]):
 *     p = lane >> 1,  a = w[2p],  b = w[2p + 1]
 *     u1 = ((double)a + 1) * 2^-32   in (0, 1]     (never 0, so log is finite)
 *     u2 = (double)b * 2^-32         in [0, 1)
 *     r = sqrt(-2 * log(u1)),  theta = 6.283185307179586 * u2
 *     value = (float)(r * cos(theta)) for an even lane, (float)(r * sin(theta)) for an odd lane
 *   all in double precision, rounded once to float. |value| <= sqrt(64 ln 2) ~= 6.66.
 * A device whose double log/sin/cos differ from glibc's by a few double ulps gives the same
 * float except when the double result lies within those ulps of a float rounding boundary
 * (about 1e-8 per element). Uniforms are exact everywhere.
 * rand_ and randn_ with the same (seed, offset) read the same words; use different seeds or
 * disjoint offsets for independent streams. Tensors that are not f32 get the f32 values
 * converted; non-contiguous tensors are filled in row-major element order. */
#include "core/backend.h"

/* Random123's philox4x32 with R = 10 on a full 128-bit counter. Not in craft.h: the tests use
 * it for the published known-answer vectors, which need counter words craft never sets. */

void craft_philox4x32_raw(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
    uint32_t x0 = ctr_in[0], x1 = ctr_in[1], x2 = ctr_in[2], x3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * x0, p1 = (uint64_t)0xCD9E8D57u * x2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32),
                 lo1 = (uint32_t)p1;
        x0 = hi1 ^ x1 ^ k0;
        x1 = lo1;
        x2 = hi0 ^ x3 ^ k1;
        x3 = lo0;
    }
    out[0] = x0;
    out[1] = x1;
    out[2] = x2;
    out[3] = x3;
}

void craft_philox4x32(uint64_t seed, uint64_t counter, uint32_t *out4) {
    uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    craft_philox4x32_raw(ctr, key, out4);
}

static int fill_random(const char *op, craft_tensor *t, uint64_t seed, uint64_t offset, int normal) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: tensor is missing", op);
    if (t->dtype != CRAFT_F32 && t->dtype != CRAFT_F64 && t->dtype != CRAFT_F16 && t->dtype != CRAFT_BF16)
        return craft_fail(CRAFT_ETYPE, "%s: tensor %s must be a float dtype (f32, f64, f16, bf16)", op,
                          craft_shape_str(t));
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(t->device, CRAFT_K_philox, CRAFT_F32, op, &k));
    if (t->dtype == CRAFT_F32 && craft_is_contiguous(t)) {
        CRAFT_TRY(k->philox(t, seed, offset, normal));
        t->storage->version++;
        return CRAFT_OK;
    }
    craft_tensor *tmp = craft_new_tensor(t->ndim, t->shape, CRAFT_F32, t->device);
    if (!tmp) return craft_last_status();
    int rc = k->philox(tmp, seed, offset, normal);
    if (!rc) rc = craft_copy_(t, tmp); /* bumps t's version */
    craft_tensor_release(tmp);
    return rc;
}

int craft_randn_(craft_tensor *t, uint64_t seed, uint64_t offset) {
    return fill_random("randn_", t, seed, offset, 1);
}
int craft_rand_(craft_tensor *t, uint64_t seed, uint64_t offset) {
    return fill_random("rand_", t, seed, offset, 0);
}
