/* cpu_bf16.c: what the CPU's bf16 kernels share (core/precision.c decides when they run):
 * whether this CPU has native bf16 dot products, the f32 -> bf16 conversion, the cache of
 * weights converted to bf16, and the gemm_bf16 kernel on oneDNN's bf16 GEMM.
 *
 * Native or not: oneDNN 2.6 runs bf16 convolutions and GEMMs on avx512_core_bf16 (Zen 4/5,
 * Cooper Lake, Sapphire Rapids) at about twice its fp32 rate; on plain avx512_core it emulates
 * the bf16 dot products (slower than fp32) and below that it has no bf16 GEMM. So the CPU offers
 * the bf16 kernels only when oneDNN's effective ISA includes avx512_core_bf16 (capped by
 * ONEDNN_MAX_CPU_ISA); elsewhere the ops compute in fp32 and craft_cpu_bf16_info says why.
 *
 * The weight cache: converting a weight costs a read of its f32 data and a write of half as
 * much on every call, which for an 860 M-parameter UNet is about 5 GB of memory traffic per
 * forward. Converted weights are kept, keyed by the storage's serial (never reused), its version
 * (bumped by every in-place write the engine makes, and by craft_tensor_mark_written for writes
 * around it), the element offset and the layout the kernel asked for, so a changed weight (an
 * optimiser step, a LoRA merge) is converted again and its old entry dropped. The cache is LRU
 * within CRAFT_BF16_CACHE_MB (default 4096; 0 turns it off; craft_cpu_bf16_cache_cap_mb sets it
 * at run time) and lives in pool memory; the mechanism is core/weight_cache.c's. */
#include "cpu/cpu_kernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdlib.h>

/* oneDNN 2.6 exports its row-major bf16 GEMM (C = alpha op(A) op(B) + beta C, A and B bf16, C
 * f32) with C linkage but leaves it out of the installed header. */
dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K,
                                    float alpha, const uint16_t *A, dnnl_dim_t lda, const uint16_t *B,
                                    dnnl_dim_t ldb, float beta, float *C, dnnl_dim_t ldc);

int cpu_bf16_native(void) {
    static int native = -1;
    if (native < 0) {
        dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        native = ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
            (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    }
    return native;
}

const char *craft_cpu_bf16_info(void) {
    return cpu_bf16_native()
        ? "avx512_core_bf16 (oneDNN bf16 kernels)"
        : "no avx512_core_bf16 on this CPU (or ONEDNN_MAX_CPU_ISA caps it): bf16 requests "
          "compute in fp32";
}

/* Round to nearest even, NaN kept quiet (core/dtype.c's craft_float_to_bf16, vectorisable). */
static inline uint16_t to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    return (x & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((x >> 16) | 0x40u) : (uint16_t)r;
}

void cpu_to_bf16(const float *src, int64_t rows, int64_t cols, int64_t ld, uint16_t *dst) {
#pragma omp parallel for if (rows * cols >= 4 * CRAFT_PAR_MIN && !omp_in_parallel()) schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *s = src + i * ld;
        uint16_t *d = dst + i * cols;
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) d[j] = to_bf16(s[j]);
    }
}

/* ---- the weight cache (core/weight_cache.c), in pool memory ---- */
static void wfree(void *data, size_t nbytes) { craft_free(data, nbytes ? nbytes : 1); }
static craft_wcache wcache = CRAFT_WCACHE_INIT("CRAFT_BF16_CACHE_MB", 4096, wfree);

int cpu_wcache_get(const craft_tensor *t, const int64_t *key, int nkey, size_t nbytes, cpu_wfill fill,
                   void *ctx, craft_wc_ref *out) {
    craft_wc_key k = craft_wc_key_of(t->storage, CRAFT_DEVICE_CPU, t->offset, key, nkey);
    if (craft_wc_find(&wcache, &k, nbytes, out)) return CRAFT_OK;
    void *data = craft_alloc(nbytes ? nbytes : 1);
    if (!data) return craft_last_status();
    int rc = fill(ctx, data);
    if (rc) {
        wfree(data, nbytes);
        return rc;
    }
    craft_wc_insert(&wcache, &k, data, nbytes, out);
    return CRAFT_OK;
}

void craft_cpu_bf16_cache_stats(int64_t *bytes, int64_t *entries, int64_t *hits, int64_t *misses) {
    craft_wc_stats(&wcache, bytes, entries, hits, misses);
}

void craft_cpu_bf16_cache_clear(void) { craft_wc_clear(&wcache); }

int64_t craft_cpu_bf16_cache_cap_mb(int64_t mb) { return craft_wc_cap_mb(&wcache, mb); }

/* ---- gemm_bf16 ---- */
int craft_gemm_bf16(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                    int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0 || K == 0)
        return craft_sgemm(ta, tb, M, N, 0, alpha, NULL, 1, NULL, 1, beta, C, ldc);
    dnnl_status_t s = dnnl_gemm_bf16bf16f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (s != dnnl_success)
        return craft_fail(CRAFT_EINVAL, "bf16 gemm %lldx%lldx%lld failed in oneDNN (status %d)", (long long)M,
                          (long long)N, (long long)K, (int)s);
    return CRAFT_OK;
}

typedef struct {
    const float *src;
    int64_t rows, cols, ld;
} conv_job;

static int fill_bf16(void *ctx, void *dst) {
    const conv_job *j = ctx;
    cpu_to_bf16(j->src, j->rows, j->cols, j->ld, dst);
    return CRAFT_OK;
}

int cpu_gemm_bf16(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                  const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,
                  float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch, int keep_b) {
    if (M == 0 || N == 0 || K == 0 || batch == 0)
        return cpu_gemm(ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, beta, C, coff, ldc, batch);
    const float *ap = A->storage->data, *bp = B->storage->data;
    float *cp = C->storage->data;
    /* the stored matrices, converted compactly: A is M x K (ta 'N') or K x M, B K x N or N x K */
    int64_t ar = ta == 'N' ? M : K, ac = ta == 'N' ? K : M, br = tb == 'N' ? K : N, bc = tb == 'N' ? N : K;
    size_t asz = (size_t)(ar * ac), bsz = (size_t)(br * bc);
    int cache_b = keep_b && batch == 1;
    size_t tmp_elems = (size_t)batch * asz + (cache_b ? 0 : (size_t)batch * bsz);
    uint16_t *tmp = craft_alloc(tmp_elems * 2);
    if (!tmp) return craft_last_status();
    uint16_t *abf = tmp, *bbf = tmp + (size_t)batch * asz;
    craft_wc_ref bref = {0};
    int rc = CRAFT_OK;
    if (cache_b) {
        int64_t key[5] = {1 /* gemm operand, plain rows (either transposition) */, boff[0], br, bc, ldb};
        conv_job j = {bp + boff[0], br, bc, ldb};
        rc = cpu_wcache_get(B, key, 5, bsz * 2, fill_bf16, &j, &bref);
        bbf = bref.data;
    }
    if (rc) {
        craft_free(tmp, tmp_elems * 2);
        return rc;
    }
    int par = batch >= 2 && M * N * K < (1 << 21);
    int err = 0;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t bi = 0; bi < batch; bi++) {
        uint16_t *a16 = abf + (size_t)bi * asz, *b16 = cache_b ? bbf : bbf + (size_t)bi * bsz;
        cpu_to_bf16(ap + aoff[bi], ar, ac, lda, a16);
        if (!cache_b) cpu_to_bf16(bp + boff[bi], br, bc, ldb, b16);
        if (craft_gemm_bf16(ta, tb, M, N, K, alpha, a16, ac, b16, bc, beta, cp + coff[bi], ldc)) err = 1;
    }
    craft_wc_release(&bref);
    craft_free(tmp, tmp_elems * 2);
    if (err)
        return craft_fail(CRAFT_EINVAL, "gemm %lldx%lldx%lld (batch %lld): oneDNN bf16 gemm failed",
                          (long long)M, (long long)N, (long long)K, (long long)batch);
    craft_bf16_count();
    return CRAFT_OK;
}
