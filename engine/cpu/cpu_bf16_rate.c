/* cpu_bf16_rate.c: how fast this CPU's bf16 dot products are against its fp32 multiply-adds,
 * measured once per process.
 *
 * Why: having AVX512-BF16 does not make bf16 fast. On some hosts vdpbf16ps (32 bf16 products
 * summed pairwise into 16 fp32 lanes) retires at twice the multiply-add rate of vfmadd231ps, on
 * others at half of it, and there every bf16 kernel is slower than its fp32 twin
 * (docs/performance.md has both hosts). The ISA flags cannot tell the two apart, so the
 * binding's set_precision asks this rate and says so in one line where bf16 will be slower; it
 * never switches the precision by itself (results would then depend on the host's timings).
 *
 * The measurement: two register-only loops on every OpenMP thread at once, twelve independent
 * accumulators each (more than latency x throughput needs), alternated and repeated, the
 * fastest round of each kept; a few milliseconds. The functions carry their own target
 * attributes, so a generic build measures too; they run only where cpu_bf16_native() says the
 * CPU has the instruction. CRAFT_BF16_SPEEDUP (a number > 0) replaces the measurement: tests
 * use it, and so can a user who has measured better. */
#include "cpu/cpu_kernels.h"
#include <immintrin.h>
#include <pthread.h>

#define NACC 12
#define ITERS 100000
#define ROUNDS 5

static volatile float rate_sink;

__attribute__((target("avx512f"))) static double time_fma(void) {
    __m512 acc[NACC], a = _mm512_set1_ps(rate_sink + 0.5f), b = _mm512_set1_ps(rate_sink + 0.25f);
    for (int r = 0; r < NACC; r++) acc[r] = _mm512_set1_ps((float)r);
    double t0 = craft_now();
    for (int i = 0; i < ITERS; i++) {
#pragma GCC unroll 12 /* the accumulators stay in registers only when unrolled */
        for (int r = 0; r < NACC; r++) acc[r] = _mm512_fmadd_ps(acc[r], a, b);
    }
    double t = craft_now() - t0;
    __m512 s = acc[0];
    for (int r = 1; r < NACC; r++) s = _mm512_add_ps(s, acc[r]);
    rate_sink = _mm512_reduce_add_ps(s) * 0.0f;
    return t;
}

__attribute__((target("avx512f,avx512bf16"))) static double time_dpbf16(void) {
    __m512i one = _mm512_set1_epi16((short)0x3f80); /* bf16 1.0 */
    __m512bh a = (__m512bh)one, b = (__m512bh)_mm512_add_epi16(one, _mm512_set1_epi16((short)(rate_sink != 0)));
    __m512 acc[NACC];
    for (int r = 0; r < NACC; r++) acc[r] = _mm512_set1_ps((float)r);
    double t0 = craft_now();
    for (int i = 0; i < ITERS; i++) {
#pragma GCC unroll 12
        for (int r = 0; r < NACC; r++) acc[r] = _mm512_dpbf16_ps(acc[r], a, b);
    }
    double t = craft_now() - t0;
    __m512 s = acc[0];
    for (int r = 1; r < NACC; r++) s = _mm512_add_ps(s, acc[r]);
    rate_sink = _mm512_reduce_add_ps(s) * 0.0f;
    return t;
}

static double speedup;

static void measure(void) {
    const char *env = getenv("CRAFT_BF16_SPEEDUP");
    char *end = NULL;
    double v = env && *env ? strtod(env, &end) : 0;
    if (env && end && *end == '\0' && v > 0 && v < 1e6) {
        speedup = v;
        return;
    }
    if (!cpu_bf16_native()) return;
    /* on every thread at once: two virtual cores may be one physical core's two hyperthreads,
     * which share its execution ports, and the kernels run on all threads */
    double best_fma = 1e30, best_dp = 1e30;
    for (int k = 0; k < ROUNDS; k++) {
        double f = 0, d = 0;
#pragma omp parallel reduction(max : f, d)
        {
            f = time_fma();
#pragma omp barrier
            d = time_dpbf16();
        }
        if (f < best_fma) best_fma = f;
        if (d < best_dp) best_dp = d;
    }
    /* one vdpbf16ps is 32 multiply-adds, one vfmadd231ps 16 */
    if (best_dp > 0 && best_fma > 0) speedup = 2.0 * best_fma / best_dp;
}

double craft_cpu_bf16_speedup(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, measure);
    return speedup;
}
