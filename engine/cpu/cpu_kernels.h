/* cpu_kernels.h: the CPU back end's kernels (engine/cpu/cpu_*.c), in the table of
 * cpu_backend.c. Their contracts are core/backend.h's. */
#ifndef CRAFT_CPU_KERNELS_H
#define CRAFT_CPU_KERNELS_H
#include "core/backend.h"
#include "core/weight_cache.h"
#include <stdlib.h>

/* ---- strided iteration (cpu_iter.c) ----
 * Runs `fn` over the elements of up to 4 same-shaped strided operands. Strides are in BYTES
 * (0 for broadcast dims). Dims are coalesced where the layout allows, so the inner loop is as
 * long as possible; `fn` gets the inner count, the base pointers and the inner byte strides.
 * Work is split across OpenMP threads when numel >= CRAFT_PAR_MIN and `parallel` is set. */
#define CRAFT_PAR_MIN 32768
typedef void (*craft_loop_fn)(int64_t n, char **ptrs, const int64_t *strides, void *ctx);
void craft_iter(int nargs, int ndim, const int64_t *shape, char **base, int64_t (*strides)[CRAFT_MAX_DIMS],
                craft_loop_fn fn, void *ctx, int parallel);
/* A size from the environment in MiB, as bytes: unset or empty gives dflt_mb, a negative
 * value 0 (the cap of cpu_conv.c's Winograd scratchpad). */
static inline size_t cpu_env_mb(const char *name, long long dflt_mb) {
    const char *e = getenv(name);
    long long v = e && *e ? atoll(e) : dflt_mb;
    return v < 0 ? 0 : (size_t)v << 20;
}
/* Row-major sgemm through oneDNN: C = alpha op(A) op(B) + beta C (cpu_gemm.c). */
int craft_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* ---- bf16 (cpu_bf16.c) ---- */
/* 1 when oneDNN runs native bf16 kernels here (effective ISA avx512_core_bf16 or above). */
int cpu_bf16_native(void);
/* dst [rows, cols] (compact) = src [rows, cols] with row stride ld, rounded to bf16 (nearest even). */
void cpu_to_bf16(const float *src, int64_t rows, int64_t cols, int64_t ld, uint16_t *dst);
/* Row-major C = alpha op(A) op(B) + beta C with bf16 A, B and f32 C (oneDNN's bf16 GEMM). */
int craft_gemm_bf16(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                    int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* ---- bf16 tiles in cache (cpu_bf16_tile.c) ---- */
/* 1 when cpu_bf16_tile_gemm runs on AVX512-BF16 here (the build and the CPU have it). */
int cpu_bf16_tile_native(void);
/* Elements of B [K, N] packed for cpu_bf16_tile_gemm: 16-column blocks of [ceil(K/2)][16][2]. */
int64_t cpu_vnni_size(int64_t K, int64_t N);
/* Packs bf16 B [K, N] (element (k, n) at src[k * sk + n * sn]) into dst, zero past K and N. */
void cpu_vnni_pack(const uint16_t *src, int64_t K, int64_t N, int64_t sk, int64_t sn, uint16_t *dst);
/* C [M, N] (row stride ldc) = alpha A . B (+ C when acc): A bf16 [M, K] row stride lda (for odd K
 * the element after each row's last must be 0), Bp packed (16-column blocks bstride elements
 * apart; + kbase * 16 starts at reduction row kbase, kbase even), fp32 sums. */
void cpu_bf16_tile_gemm(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                        const uint16_t *Bp, int64_t bstride, float *C, int64_t ldc, int acc);
/* The weight cache (core/weight_cache.h): the converted form of t's data under a layout key of
 * nkey int64s (at most CRAFT_WC_KEY), nbytes long; fill(ctx, dst) makes it on a miss. The
 * reference is handed back with craft_wc_release (a result too big to cache, or made with the
 * cache off, is freed there). */
typedef int (*cpu_wfill)(void *ctx, void *dst);
int cpu_wcache_get(const craft_tensor *t, const int64_t *key, int nkey, size_t nbytes, cpu_wfill fill,
                   void *ctx, craft_wc_ref *out);
int cpu_gemm_bf16(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                  const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,
                  float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch, int keep_b);
int cpu_conv_grad(const craft_conv_dims *cd, int fwd_bias, craft_tensor *x, craft_tensor *w, craft_tensor *g,
                  craft_tensor *gx, craft_tensor *gw, craft_tensor *gb);
int cpu_conv_bf16(int dir, const craft_conv_dims *d, int fwd_bias, craft_tensor *src, craft_tensor *wei,
                  craft_tensor *dst, craft_tensor *bias);
int cpu_sdpa_bf16(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                  const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse);
int cpu_sdpa_grad_bf16(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                       const craft_tensor *lse, const craft_tensor *g, craft_tensor *dq, craft_tensor *dk,
                       craft_tensor *dv);

/* Vectorised row helpers (cpu_softmax.c), shared by softmax and attention:
 * dst = exp(src - sub) returning the sum; the max of x; the dot product of a and b. */
float craft_vexp(float *dst, const float *src, int64_t n, float sub);
float craft_vexp_bf16(uint16_t *dst, const float *src, int64_t n, float sub); /* the same, stored as bf16 */
void craft_vexp_dual(float *dst, uint16_t *dst16, const float *src, int64_t n, float sub); /* both */
void craft_vds_bf16(uint16_t *dst16, const float *p, const float *dp, float d, int64_t n); /* p (dp - d) */
float craft_vmax(const float *x, int64_t n);
float craft_vdot(const float *a, const float *b, int64_t n);

/* cpu_elementwise.c */
int cpu_unary(int op, const craft_tensor *x, craft_tensor *y);
int cpu_unary_grad(int op, const craft_tensor *x, const craft_tensor *g, craft_tensor *gx);
/* y = op(x) and gx = g op'(x) over n contiguous floats, as cpu_unary computes them (y may alias x, gx
 * x or g): for kernels that fuse an activation */
void cpu_unary_contig(int op, const float *x, float *y, int64_t n);
void cpu_unary_grad_contig(int op, const float *x, const float *g, float *gx, int64_t n);
int cpu_geglu(const craft_tensor *x, int64_t rows, int64_t n, craft_tensor *y);
int cpu_geglu_grad(const craft_tensor *x, const craft_tensor *g, int64_t rows, int64_t n, craft_tensor *gx);
int cpu_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *y);
int cpu_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor *y);
int cpu_scalar_grad(int op, double s, int reverse, const craft_tensor *x, const craft_tensor *g,
                    craft_tensor *gx);
int cpu_compare(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *y);
int cpu_clamp(const craft_tensor *x, double lo, double hi, craft_tensor *y);
int cpu_clamp_grad(const craft_tensor *x, const craft_tensor *g, double lo, double hi, craft_tensor *gx);
int cpu_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor *y);
int cpu_where_grad(int side, const craft_tensor *cond, const craft_tensor *g, craft_tensor *gx);
int cpu_minmax_grad(int op, int which, const craft_tensor *a, const craft_tensor *b, const craft_tensor *g,
                    craft_tensor *gx);
int cpu_axpy(craft_tensor *dst, double alpha, const craft_tensor *src);
int cpu_scale(craft_tensor *t, double s);

/* cpu_reduce.c */
int cpu_reduce(int kind, const craft_tensor *x, int64_t rows, int64_t rowlen, int correction,
               craft_tensor *y);
int cpu_maxmin(int want_max, const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, craft_tensor *v,
               craft_tensor *ix);
int cpu_maxmin_grad(const craft_tensor *idx, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner,
                    craft_tensor *gx);

/* cpu_gemm.c */
int cpu_gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
             const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,
             float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch);
int cpu_sum_rows(const craft_tensor *x, int64_t rows, int64_t cols, craft_tensor *y);

/* cpu_conv.c */
/* Bands of rows the forward convolution has run as separate Winograd convs (cpu_conv.c; tests) */
int64_t cpu_conv_band_count(void);
/* The forward convolution in bands of hb output rows whatever the rule says (tests: on hosts
 * where oneDNN's Winograd fits the cap whole, the rule never bands) */
/* Whether the rule wants the forward's fp32 Winograd and the whole image runs it under the cap */
int cpu_conv_fwd_whole_winograd(const craft_conv_dims *d, int fwd_bias, const craft_tensor *src,
                                const craft_tensor *wei);
int cpu_conv_fwd_in_bands(const craft_conv_dims *d, int fwd_bias, int64_t hb, craft_tensor *src, craft_tensor *wei,
                          craft_tensor *dst, craft_tensor *bias);
int cpu_conv(int dir, const craft_conv_dims *d, int fwd_bias, craft_tensor *src, craft_tensor *wei,
             craft_tensor *dst, craft_tensor *bias);
int cpu_channel_sums(const craft_tensor *g, int64_t n, int64_t c, int64_t s, craft_tensor *out);

/* cpu_resize.c, cpu_shape.c, cpu_embed.c */
int cpu_interpolate(const craft_tensor *x, int mode, int align_corners, craft_tensor *y);
int cpu_interpolate_grad(const craft_tensor *g, int mode, int align_corners, craft_tensor *gx);
int cpu_avg_pool(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor *y);
int cpu_avg_pool_grad(const craft_tensor *g, int kernel, int stride, int padding, craft_tensor *gx);
int cpu_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value, craft_tensor *y);
int cpu_pad_grad(const craft_tensor *g, int npairs, const int64_t *pads, int mode, craft_tensor *gx);
int cpu_embedding(const craft_tensor *w, const craft_tensor *idx, craft_tensor *y);
int cpu_embedding_grad(const craft_tensor *g, const craft_tensor *idx, craft_tensor *gw);
int cpu_timestep_embedding(const craft_tensor *t, const float *freq, int dim, int flip_sin_to_cos,
                           double scale, craft_tensor *y);

/* cpu_norm.c, cpu_softmax.c */
int cpu_group_norm(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t groups,
                   double eps, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd);
int cpu_group_norm_act(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t groups,
                       double eps, int act, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd);
int cpu_group_norm_act_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                            const craft_tensor *mean, const craft_tensor *rstd, const craft_tensor *g, int64_t groups,
                            int act, craft_tensor *gx, craft_tensor *gw, craft_tensor *gb);
int cpu_group_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                        const craft_tensor *rstd, const craft_tensor *g, int64_t groups, craft_tensor *gx,
                        craft_tensor *gw, craft_tensor *gb);
int cpu_layer_norm(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t D, double eps,
                   craft_tensor *y, craft_tensor *mean, craft_tensor *rstd);
int cpu_layer_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                        const craft_tensor *rstd, const craft_tensor *g, int64_t D, craft_tensor *gx,
                        craft_tensor *gw, craft_tensor *gb);
int cpu_softmax(const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, int log, craft_tensor *y);
int cpu_softmax_grad(const craft_tensor *y, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner,
                     int log, craft_tensor *gx);

/* cpu_attention.c */
int cpu_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
             double scale, int causal, craft_tensor *y, craft_tensor *lse);
int cpu_sdpa_grad(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                  const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                  const craft_tensor *lse, const craft_tensor *g, craft_tensor *dq, craft_tensor *dk,
                  craft_tensor *dv);

/* cpu_loss.c */
int cpu_l2_normalize(const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, double eps,
                     craft_tensor *y, craft_tensor *den);
int cpu_l2_normalize_grad(const craft_tensor *y, const craft_tensor *den, const craft_tensor *g,
                          int64_t outer, int64_t n, int64_t inner, craft_tensor *gx);
int cpu_cosine(const craft_tensor *a, const craft_tensor *b, int64_t outer, int64_t n, int64_t inner,
               double eps, craft_tensor *y, craft_tensor *norms);
int cpu_cosine_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *y,
                    const craft_tensor *norms, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner,
                    craft_tensor *ga, craft_tensor *gb);
int cpu_cross_entropy(const craft_tensor *lp, const craft_tensor *targets, int64_t N, int64_t C,
                      int64_t inner, int reduction, double smoothing, craft_tensor *y);
int cpu_cross_entropy_grad(const craft_tensor *lp, const craft_tensor *targets, const craft_tensor *g,
                           int64_t N, int64_t C, int64_t inner, int reduction, double smoothing,
                           double gscale, craft_tensor *gx);
int cpu_mse(const craft_tensor *a, const craft_tensor *b, int reduction, craft_tensor *y);
int cpu_mse_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *g, int reduction,
                 double scale, craft_tensor *ga, craft_tensor *gb);

/* cpu_random.c, cpu_optim.c */
int cpu_philox(craft_tensor *t, uint64_t seed, uint64_t offset, int normal);
int cpu_adamw(craft_tensor *p, const craft_tensor *g, craft_tensor *m, craft_tensor *v,
              const craft_adamw_consts *c);
int cpu_sgd(craft_tensor *p, const craft_tensor *g, craft_tensor *buf, float neg_lr, float momentum,
            float weight_decay, int nesterov);
int cpu_ema(craft_tensor *ema, const craft_tensor *p, float decay, float one_minus_decay);
int cpu_sum_squares(const craft_tensor *x, double *out);

#endif
