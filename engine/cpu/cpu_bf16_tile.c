/* cpu_bf16_tile.c: a small bf16 product for tiles that are already in cache, on AVX512-BF16's
 * pair dot product (vdpbf16ps: two bf16 products summed into an fp32 lane).
 *
 * Why not oneDNN's bf16 GEMM: attention's tiles are small (a 128 x 256 score tile from a
 * 40-deep reduction) and oneDNN packs both operands on every call, which costs more than the
 * products at that size. Here B is packed once per call of the op into the pair-interleaved
 * ("VNNI") layout the instruction reads, A is read in place (one 32-bit broadcast per row and
 * pair), and a 6-row x 64-column register tile accumulates in fp32.
 *
 * Packed B: 16-column blocks, each [ceil(K/2)][16][2] (column c, pair p: elements 2p and 2p + 1
 * of its K), zero past N and past K, blocks ceil(K/2) * 32 elements apart. A caller that uses
 * rows kbase.. of the reduction passes Bp + kbase * 16 (kbase even).
 *
 * Results: each output is an fp32 sum of exact bf16 x bf16 products, as oneDNN's bf16 GEMM
 * computes it, in a different summation order. Only CPUs with AVX512-BF16 (and builds for them)
 * have it: cpu_bf16_tile_native() says, and callers keep their oneDNN path for the others. */
#include "cpu/cpu_kernels.h"
#include <string.h>
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define TILE_BF16 1
#endif

int cpu_bf16_tile_native(void) {
#ifdef TILE_BF16
    return cpu_bf16_native();
#else
    return 0;
#endif
}

int64_t cpu_vnni_size(int64_t K, int64_t N) { return ((N + 15) / 16) * ((K + 1) / 2) * 32; }

void cpu_vnni_pack(const uint16_t *src, int64_t K, int64_t N, int64_t sk, int64_t sn, uint16_t *dst) {
    int64_t kp = (K + 1) / 2, nblk = (N + 15) / 16;
    for (int64_t b = 0; b < nblk; b++) {
        uint16_t *d = dst + b * kp * 32;
        for (int64_t p = 0; p < kp; p++)
            for (int64_t c = 0; c < 16; c++) {
                int64_t n = b * 16 + c, k = 2 * p;
                d[p * 32 + 2 * c] = n < N ? src[k * sk + n * sn] : 0;
                d[p * 32 + 2 * c + 1] = n < N && k + 1 < K ? src[(k + 1) * sk + n * sn] : 0;
            }
    }
}

#ifdef TILE_BF16
#define UMR 6 /* rows of the register tile: 6 x 4 accumulators + 4 B vectors + 1 broadcast */

/* One UMR-row (mr valid) x nb-block tile: C = alpha * A . Bp (+ C when acc), n valid columns. */
static inline __attribute__((always_inline)) void ukernel(int64_t kp, const uint16_t *A, int64_t lda,
                                                          const uint16_t *Bp, int64_t bstride, float *C,
                                                          int64_t ldc, int mr, const int nb, int64_t n,
                                                          float alpha, int acc) {
    __m512 c[UMR][4];
    const uint16_t *a[UMR];
#pragma GCC unroll 6
    for (int r = 0; r < UMR; r++) {
        a[r] = A + (r < mr ? r : 0) * lda; /* rows past mr repeat row 0; their sums are dropped */
#pragma GCC unroll 4
        for (int j = 0; j < nb; j++) c[r][j] = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < kp; p++) {
        __m512bh b[4];
#pragma GCC unroll 4
        for (int j = 0; j < nb; j++) b[j] = (__m512bh)_mm512_loadu_si512(Bp + j * bstride + p * 32);
#pragma GCC unroll 6
        for (int r = 0; r < UMR; r++) {
            int32_t av;
            memcpy(&av, a[r] + 2 * p, 4);
            __m512bh ab = (__m512bh)_mm512_set1_epi32(av);
#pragma GCC unroll 4
            for (int j = 0; j < nb; j++) c[r][j] = _mm512_dpbf16_ps(c[r][j], ab, b[j]);
        }
    }
    const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) {
        int64_t left = n - 16 * j;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            float *o = C + r * ldc + 16 * j;
            __m512 v = _mm512_mul_ps(c[r][j], al);
            if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, o));
            _mm512_mask_storeu_ps(o, m, v);
        }
    }
}

void cpu_bf16_tile_gemm(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                        const uint16_t *Bp, int64_t bstride, float *C, int64_t ldc, int acc) {
    int64_t kp = (K + 1) / 2;
    for (int64_t c0 = 0; c0 < N; c0 += 64) {
        int64_t n = N - c0 < 64 ? N - c0 : 64;
        int nb = (int)((n + 15) / 16);
        const uint16_t *B = Bp + (c0 / 16) * bstride;
        for (int64_t r0 = 0; r0 < M; r0 += UMR) {
            int mr = M - r0 < UMR ? (int)(M - r0) : UMR;
            const uint16_t *Ar = A + r0 * lda;
            float *Cr = C + r0 * ldc + c0;
            switch (nb) { /* one specialised loop per block count */
            case 4: ukernel(kp, Ar, lda, B, bstride, Cr, ldc, mr, 4, n, alpha, acc); break;
            case 3: ukernel(kp, Ar, lda, B, bstride, Cr, ldc, mr, 3, n, alpha, acc); break;
            case 2: ukernel(kp, Ar, lda, B, bstride, Cr, ldc, mr, 2, n, alpha, acc); break;
            default: ukernel(kp, Ar, lda, B, bstride, Cr, ldc, mr, 1, n, alpha, acc); break;
            }
        }
    }
}
#else
void cpu_bf16_tile_gemm(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                        const uint16_t *Bp, int64_t bstride, float *C, int64_t ldc, int acc) {
    /* never called where cpu_bf16_tile_native() is 0; a plain loop keeps the contract anyway */
    int64_t kp = (K + 1) / 2;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            const uint16_t *b = Bp + (j / 16) * bstride + 2 * (j % 16);
            float s = 0;
            for (int64_t p = 0; p < kp; p++) {
                uint32_t x0 = (uint32_t)A[i * lda + 2 * p] << 16, x1 = (uint32_t)A[i * lda + 2 * p + 1] << 16,
                         y0 = (uint32_t)b[p * 32] << 16, y1 = (uint32_t)b[p * 32 + 1] << 16;
                float f[4];
                memcpy(&f[0], &x0, 4);
                memcpy(&f[1], &x1, 4);
                memcpy(&f[2], &y0, 4);
                memcpy(&f[3], &y1, 4);
                s += f[0] * f[2] + f[1] * f[3];
            }
            C[i * ldc + j] = alpha * s + (acc ? C[i * ldc + j] : 0.0f);
        }
}
#endif
