/* bench/bench_gemm.c: float32 GEMM through craft_matmul (oneDNN sgemm) in GFLOP/s and as a share
 * of the machine's MEASURED fp32 peak, with torch.mm from the same run as the peer. The peak is
 * measured here with a register-only FMA loop on every thread (12 independent accumulators, enough
 * to keep two FMA pipes busy), since the clock the cores really run at is not what /proc/cpuinfo
 * says. CRAFT_PEAK_GFLOPS overrides it. */
#include "bench_common.h"
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

/* The vector the FMA loop runs on: AVX-512 where the build has it, else AVX2. */
#if defined(__AVX512F__)
#define LANES 16
typedef __m512 vec;
#define VSET1 _mm512_set1_ps
#define VFMA _mm512_fmadd_ps
#define VSTORE _mm512_storeu_ps
#else
#define LANES 8
typedef __m256 vec;
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VSTORE _mm256_storeu_ps
#endif

/* One thread's share of the peak loops: twelve independent accumulators (fully unrolled, so they
 * stay in registers), enough to keep two FMA pipes busy; returns a sum that keeps the loop
 * alive. */
static float fma_loop(long iters) {
    vec m = VSET1(0.999999f), c = VSET1(1e-7f), a[12];
    for (int j = 0; j < 12; j++) a[j] = VSET1((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) a[j] = VFMA(a[j], m, c);
    }
    float tmp[LANES], sink = 0;
    for (int j = 0; j < 12; j++) {
        VSTORE(tmp, a[j]);
        for (int l = 0; l < LANES; l++) sink += tmp[l];
    }
    return sink;
}

/* The bf16 rate the same way: AVX512-BF16's pair dot product (vdpbf16ps, 64 flops per
 * instruction); not built without AVX512-BF16. The SD 1.5 figures in docs/performance.md are
 * shares of these two peaks. */
#if defined(__AVX512BF16__)
static float dp_loop(long iters) {
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x33d633d6);
    __m512 a[12];
    for (int j = 0; j < 12; j++) a[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) a[j] = _mm512_dpbf16_ps(a[j], x, y);
        __asm__ volatile("" : "+v"(x), "+v"(y)); /* keeps the operands in registers */
    }
    float sink = 0;
    for (int j = 0; j < 12; j++) sink += _mm512_reduce_add_ps(a[j]);
    return sink;
}
#endif

/* GFLOP/s of loop on every thread, the best of three; flops: per iteration and thread. */
static double best_rate(float (*loop)(long), double flops) {
    const long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = craft_now();
        float sink = 0;
        int nt = 1;
#pragma omp parallel reduction(+ : sink)
        {
            nt = omp_get_num_threads();
            sink += loop(iters);
        }
        double gf = (double)nt * iters * flops / (craft_now() - t0) / 1e9;
        if (sink == 12345.0f) printf(" "); /* keeps the loops alive */
        if (gf > best) best = gf;
    }
    return best;
}

static double measure_peak(void) { return best_rate(fma_loop, 12.0 * LANES * 2); }

static double measure_peak_bf16(void) {
#if defined(__AVX512BF16__)
    return best_rate(dp_loop, 12.0 * 64);
#else
    return 0;
#endif
}

static double median_ms(int n, double *t) { return bench_summarize(t, n).med * 1e3; }

static double peer_ms(int n) {
    char cmd[1400];
    snprintf(
        cmd, sizeof cmd,
        "'%s' -c \"import torch,time;torch.set_num_threads(2);a=torch.randn(%d,%d);b=torch.randn(%d,%d);"
        "[torch.mm(a,b) for _ in range(3)];ts=[];"
        "exec('for _ in range(9):\\n t=time.perf_counter();torch.mm(a,b);ts.append(time.perf_counter()-t)');"
        "print(sorted(ts)[4]*1e3)\" 2>/dev/null",
        bench_peer_python(), n, n, n, n);
    FILE *p = popen(cmd, "r");
    double ms = -1;
    if (p) {
        if (fscanf(p, "%lf", &ms) != 1) ms = -1;
        pclose(p);
    }
    return ms;
}

int main(void) {
    const char *pk = getenv("CRAFT_PEAK_GFLOPS");
    double peak = pk ? atof(pk) : measure_peak();
    int sizes[] = {512, 1024, 2048};
    double peak16 = measure_peak_bf16();
    printf("GEMM f32, %d threads, median of 9 after 3 warm-up; measured FMA peak %.0f GFLOP/s\n",
           craft_num_threads(), peak);
    if (peak16 > 0) printf("measured bf16 dot-product peak (vdpbf16ps) %.0f GFLOP/s\n", peak16);
    else printf("no AVX512-BF16 in this build: no bf16 peak\n");
    for (int s = 0; s < 3; s++) {
        int n = sizes[s];
        int64_t shape[2] = {n, n};
        craft_tensor *a, *b, *c;
        if (craft_empty(2, shape, CRAFT_F32, 0, &a) || craft_empty(2, shape, CRAFT_F32, 0, &b)) {
            fprintf(stderr, "bench_gemm: %s\n", craft_last_error());
            return 1;
        }
        craft_randn_(a, 1, 0);
        craft_randn_(b, 2, 0);
        double t[9];
        for (int i = 0; i < 12; i++) {
            double t0 = craft_now();
            if (craft_matmul(a, b, &c)) {
                fprintf(stderr, "bench_gemm: %s\n", craft_last_error());
                return 1;
            }
            if (i >= 3) t[i - 3] = craft_now() - t0;
            craft_tensor_release(c);
        }
        double ms = median_ms(9, t), gf = 2.0 * n * n * (double)n / (ms * 1e-3) / 1e9;
        double tms = peer_ms(n);
        if (tms > 0)
            printf(
                "gemm %4d  craft %8.2f ms %6.1f GFLOP/s (%3.0f%% of peak)   torch %8.2f ms %6.1f GFLOP/s   ratio %.2fx\n",
                n, ms, gf, 100 * gf / peak, tms, 2.0 * n * n * (double)n / (tms * 1e-3) / 1e9, tms / ms);
        else
            printf("gemm %4d  craft %8.2f ms %6.1f GFLOP/s (%3.0f%% of peak)   (no torch peer)\n", n, ms, gf,
                   100 * gf / peak);
        craft_tensor_release(a);
        craft_tensor_release(b);
    }
    return 0;
}
