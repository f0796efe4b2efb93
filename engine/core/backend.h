/* backend.h: the seam between the op layer and the back ends.
 *
 * Above it (engine/core/op_*.c), written once for every device: the public op functions with
 * their argument and shape contracts, output allocation, autograd recording, the backward
 * functions, and ops composed of other ops. Below it, one table per device kind (the CPU in
 * engine/cpu/, OpenCL in engine/cl/): storage, transfers, fill, and the kernel entry points.
 * The tables are listed in engine/backends.c; docs/backends.md has the checklists for adding
 * an op or a back end.
 *
 * Kernel contract: every tensor argument is on the kernel's device and has been checked by
 * the op layer (dtype f32 unless said otherwise, shapes consistent); outputs are allocated by
 * the op layer, fresh and contiguous unless said otherwise, and a kernel writes all of them.
 * Kernels never record autograd nodes and never bump storage versions (the op layer does).
 * A NULL entry means the back end lacks that kernel: the op fails with a message naming the op,
 * the kernel and the device (craft_kernels_for). */
#ifndef CRAFT_BACKEND_H
#define CRAFT_BACKEND_H
#include "core/internal.h"

/* AdamW's per-step constants, computed once in double by the op layer (torch.optim.AdamW):
 *   p *= decay; m = m b1 + omb1 g; v = v b2 + omb2 g g; p += neg_step m / (sqrt(v) / bc2_sqrt + eps) */
typedef struct craft_adamw_consts {
    float decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step;
} craft_adamw_consts;

/* A convolution's dims in conv terms: src [n, ic, ih, iw] -> dst [n, oc, oh, ow], weight
 * [oc, ic / groups, kh, kw]; conv_transpose2d is the conv whose src is its output and whose dst
 * its input (its [in, out / groups, kh, kw] weight is that conv's weight). Padding is top/left;
 * dilation as torch counts it (1: dense). Filled by core/op_conv.c, which checks the arguments
 * and shapes of both ops. */
typedef struct craft_conv_dims {
    int64_t n, ic, ih, iw, oc, oh, ow, kh, kw, groups;
    int64_t sh, sw, ph, pw, dh, dw, oph, opw;
} craft_conv_dims;
/* sdpa's geometry (core/op_attention.c): q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv] with
 * broadcast batch dims bshape (nb matrices), row strides ld*, the batch-dim strides of q, k, v
 * and the mask (bst[0..3], 0 where broadcast), the mask's row and column strides, and the scale
 * (1/sqrt(D) when scale <= 0). craft_sdpa_geom_of checks the broadcasts. */
typedef struct craft_sdpa_geom {
    int nbd;
    int64_t bshape[CRAFT_MAX_DIMS];
    int64_t nb, Lq, Lk, D, Dv, ldq, ldk, ldv;
    int64_t bst[4][CRAFT_MAX_DIMS];
    int64_t msr, msc;
    float scale;
} craft_sdpa_geom;
int craft_sdpa_geom_of(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, craft_sdpa_geom *g);

/* interpolate's source indices and weights along one axis (core/op_resize.c; PyTorch's float32
 * arithmetic), for every back end: i0 (nearest), or i0, i1, l0, l1 (bilinear); each array has
 * `out` entries. */
void craft_interpolate_axis(int64_t in, int64_t out, int mode, int align_corners, int64_t *i0, int64_t *i1,
                            float *l0, float *l1);

/* pad's plan (core/op_shape.c): the arguments checked against the input shape ish, the output
 * shape osh, and (build set, output not empty) for each padded dim d (the last npairs; dims
 * [0, lead) are untouched) map[d][o], the input index output index o reads (-1: the constant
 * fill). ist: the input's contiguous strides. desc names the input in messages. */
typedef struct craft_pad_plan {
    int nd, lead;
    int64_t ish[CRAFT_MAX_DIMS], osh[CRAFT_MAX_DIMS], ist[CRAFT_MAX_DIMS];
    int64_t *map[CRAFT_MAX_DIMS];
} craft_pad_plan;
int craft_pad_plan_make(int nd, const int64_t *ish, int npairs, const int64_t *pads, int mode,
                        const char *desc, int build, craft_pad_plan *p);
void craft_pad_plan_free(craft_pad_plan *p);

/* The directions of a convolution (the conv kernel). */
enum { CRAFT_CONV_FWD = 0, CRAFT_CONV_BWD_DATA = 1, CRAFT_CONV_BWD_WEIGHTS = 2 };

/* The kernel entry points: X(name, parameters). Shapes in the comments are the tensors'. */
#define CRAFT_KERNELS(X)                                                                                                    \
    /* ---- elementwise: inputs broadcast to the output's shape, any strides ---- */                                        \
    /* op: craft_unary_op; y = op(x); gx = g op'(x) */                                                                      \
    X(unary, (int op, const craft_tensor *x, craft_tensor *y))                                                              \
    X(unary_grad, (int op, const craft_tensor *x, const craft_tensor *g, craft_tensor *gx))                                 \
    /* op: craft_binary_op; y = a op b; y = a op s, or s op a when reverse; gx = g d(x op s)/dx */                          \
    X(binary, (int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *y))                                      \
    X(binary_scalar, (int op, const craft_tensor *a, double s, int reverse, craft_tensor *y))                               \
    X(scalar_grad,                                                                                                          \
      (int op, double s, int reverse, const craft_tensor *x, const craft_tensor *g, craft_tensor *gx))                      \
    /* op: craft_compare_op; y = 1 or 0 */                                                                                  \
    X(compare, (int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *y))                                     \
    /* y = min(max(x, lo), hi) in float; gx = g where lo <= x <= hi, else 0 */                                              \
    X(clamp, (const craft_tensor *x, double lo, double hi, craft_tensor *y))                                                \
    X(clamp_grad, (const craft_tensor *x, const craft_tensor *g, double lo, double hi, craft_tensor *gx))                   \
    /* y = cond != 0 ? a : b; gx = g where (cond != 0) == (side == 0), else 0 */                                            \
    X(where, (const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor *y))                     \
    X(where_grad, (int side, const craft_tensor *cond, const craft_tensor *g, craft_tensor *gx))                            \
    /* maximum / minimum's gradient for operand `which`: g where it wins, g / 2 on ties */                                  \
    X(minmax_grad,                                                                                                          \
      (int op, int which, const craft_tensor *a, const craft_tensor *b, const craft_tensor *g,                              \
       craft_tensor *gx))                                                                                                   \
    /* in place, any strides: dst += alpha src (src broadcast to dst); t *= s */                                            \
    X(axpy, (craft_tensor * dst, double alpha, const craft_tensor *src))                                                    \
    X(scale, (craft_tensor * t, double s))                                                                                  \
    /* ---- reductions ---- */                                                                                              \
    /* y[r] = sum (kind 0), mean (1), var with correction (2) or sum of squares (3) of row r of x, a contiguous          \
     * [rows, rowlen] block; y has rows elements */  \
    X(reduce,                                                                                                               \
      (int kind, const craft_tensor *x, int64_t rows, int64_t rowlen, int correction, craft_tensor *y))                     \
    /* over dim n of a contiguous [outer, n, inner] x: values (f32) and indices (i64), [outer, inner]; NaN wins, the    \
     * first of ties; the gradient scatters g [outer, inner] into a zeroed gx [outer, n, inner] */   \
    X(maxmin,                                                                                                               \
      (int want_max, const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, craft_tensor *values,                  \
       craft_tensor *indices))                                                                                              \
    X(maxmin_grad,                                                                                                          \
      (const craft_tensor *indices, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner,                         \
       craft_tensor *gx))                                                                                                   \
    /* ---- matrix products ---- */                                                                                         \
    /* C[i] = alpha op(A[i]) op(B[i]) + beta C[i] for i < batch: row-major, op transposes for 'T', offsets in elements   \
     * into the storages, C distinct from A and B. dtype f32, or f16 where supports() says so */  \
    X(gemm,                                                                                                                 \
      (char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,                               \
       const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,                           \
       float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch))                                       \
    /* y[j] = sum over i of x[i, j] for a contiguous [rows, cols] x, in double where the device can */                      \
    X(sum_rows, (const craft_tensor *x, int64_t rows, int64_t cols, craft_tensor *y))                                       \
    /* ---- convolution ---- */                                                                                             \
    /* direction dir of the convolution d, all tensors contiguous: FWD dst = W * src (+ bias); BWD_DATA src =            \
     * W^T * dst (+ bias, per src channel); BWD_WEIGHTS wei = the weight gradient (wei may be NULL) and bias, when       \
     * given, the bias gradient (dst's channel sums). fwd_bias: the forward conv of this geometry has a bias (a back end \
     * may keep one primitive set for the three directions) */  \
    X(conv,                                                                                                                 \
      (int dir, const craft_conv_dims *d, int fwd_bias, craft_tensor *src, craft_tensor *wei,                               \
       craft_tensor *dst, craft_tensor *bias))                                                                              \
    /* optional: conv2d's three gradients in one call from the forward's input x, weight w and output gradient g            \
     * (gx, gw, gb each NULL when not wanted; gb for a forward with or without bias), so that a back end can                \
     * share work between the two directions. Without it the op runs conv's BWD_DATA and BWD_WEIGHTS */                     \
    X(conv_grad,                                                                                                            \
      (const craft_conv_dims *d, int fwd_bias, craft_tensor *x, craft_tensor *w, craft_tensor *g,                           \
       craft_tensor *gx, craft_tensor *gw, craft_tensor *gb))                                                               \
    /* out[c] = sum over n and s of a contiguous g [n, c, s] */                                                             \
    X(channel_sums, (const craft_tensor *g, int64_t n, int64_t c, int64_t s, craft_tensor *out))                            \
    /* ---- resampling, padding, lookups (NCHW, contiguous) ---- */                                                         \
    /* y [N, C, oh, ow] from x [N, C, H, W] (mode 0 nearest, 1 bilinear; craft_interpolate_axis's indices and weights), \
     * and the gradient gx [N, C, H, W] of g [N, C, oh, ow] */   \
    X(interpolate, (const craft_tensor *x, int mode, int align_corners, craft_tensor *y))                                   \
    X(interpolate_grad, (const craft_tensor *g, int mode, int align_corners, craft_tensor *gx))                             \
    /* avg_pool2d with count_include_pad, floor mode: y [N, C, oh, ow]; gx [N, C, H, W] */                                  \
    X(avg_pool, (const craft_tensor *x, int kernel, int stride, int padding, craft_tensor *y))                              \
    X(avg_pool_grad, (const craft_tensor *g, int kernel, int stride, int padding, craft_tensor *gx))                        \
    /* craft_pad's pad of x into y (shape checked by craft_pad_plan_make) and its gradient (pads: npairs pairs, the     \
     * last dim first; mode 0 constant, 1 reflect, 2 replicate) */   \
    X(pad,                                                                                                                  \
      (const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value, craft_tensor *y))                    \
    X(pad_grad, (const craft_tensor *g, int npairs, const int64_t *pads, int mode, craft_tensor *gx))                       \
    /* y[k, :] = w[idx[k], :]; gw[v, :] = sum of g[k, :] over idx[k] == v. idx: a dense CPU i64 tensor, every index      \
     * checked against w's rows */  \
    X(embedding, (const craft_tensor *w, const craft_tensor *idx, craft_tensor *y))                                         \
    X(embedding_grad, (const craft_tensor *g, const craft_tensor *idx, craft_tensor *gw))                                   \
    /* y [N, dim] = sin / cos of scale * t[n] * freq[i] (freq: dim / 2 floats on the host, craft_timestep_freqs) */         \
    X(timestep_embedding,                                                                                                   \
      (const craft_tensor *t, const float *freq, int dim, int flip_sin_to_cos, double scale,                                \
       craft_tensor *y))                                                                                                    \
    /* ---- normalisation ---- */                                                                                           \
    /* group_norm over [N, C, ...] in `groups` groups / layer_norm over rows of D, all contiguous: y, and mean and 1/std \
     * per row ([N, groups] / [rows]); w, b may be NULL. The gradients gx, gw, gb: each may be NULL (not wanted) */  \
    X(group_norm,                                                                                                           \
      (const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t groups, double eps,                     \
       craft_tensor *y, craft_tensor *mean, craft_tensor *rstd))                                                            \
    X(group_norm_grad,                                                                                                      \
      (const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean, const craft_tensor *rstd,                    \
       const craft_tensor *g, int64_t groups, craft_tensor *gx, craft_tensor *gw, craft_tensor *gb))                        \
    /* group_norm followed by the unary op `act` (craft_unary_op) in one pass: y = act(group_norm(x)), mean, rstd as \
     * group_norm's; the gradient recomputes the pre-activation from x, mean, rstd, w and b */                          \
    X(group_norm_act,                                                                                                       \
      (const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t groups, double eps, int act,            \
       craft_tensor *y, craft_tensor *mean, craft_tensor *rstd))                                                            \
    X(group_norm_act_grad,                                                                                                  \
      (const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, const craft_tensor *mean,                       \
       const craft_tensor *rstd, const craft_tensor *g, int64_t groups, int act, craft_tensor *gx, craft_tensor *gw,        \
       craft_tensor *gb))                                                                                                   \
    /* optional: GEGLU over the rows of a contiguous x [rows, 2n]: y [rows, n] = x[:, :n] * gelu(x[:, n:]); its gradient    \
     * gx [rows, 2n] from g [rows, n]. Without them craft_geglu composes slices, gelu and mul */                            \
    X(geglu, (const craft_tensor *x, int64_t rows, int64_t n, craft_tensor *y))                                             \
    X(geglu_grad, (const craft_tensor *x, const craft_tensor *g, int64_t rows, int64_t n, craft_tensor *gx))                \
    X(layer_norm,                                                                                                           \
      (const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t D, double eps,                          \
       craft_tensor *y, craft_tensor *mean, craft_tensor *rstd))                                                            \
    X(layer_norm_grad,                                                                                                      \
      (const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean, const craft_tensor *rstd,                    \
       const craft_tensor *g, int64_t D, craft_tensor *gx, craft_tensor *gw, craft_tensor *gb))                             \
    /* softmax (log 0) or log_softmax (log 1) over dim n of a contiguous [outer, n, inner] x; the gradient from the       \
     * output y */ \
    X(softmax, (const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, int log, craft_tensor *y))                  \
    X(softmax_grad,                                                                                                         \
      (const craft_tensor *y, const craft_tensor *g, int64_t outer, int64_t n, int64_t inner, int log,                      \
       craft_tensor *gx))                                                                                                   \
    /* ---- attention ---- */                                                                                               \
    /* y [batch..., Lq, Dv] = softmax(scale q k^T + mask, causal) v and lse [nb * Lq] its rows' log-sum-exp, for q, k, v \
     * with unit column strides and non-overlapping rows and a mask (or NULL) on the device (craft_sdpa_geom_of's geometry); the       \
     * gradient from o = y and lse: dq, dk, dv with the full batch shape, each NULL when not wanted */  \
    X(sdpa,                                                                                                                 \
      (const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,                       \
       double scale, int causal, craft_tensor *y, craft_tensor *lse))                                                       \
    X(sdpa_grad,                                                                                                            \
      (const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,                       \
       double scale, int causal, const craft_tensor *o, const craft_tensor *lse, const craft_tensor *g,                     \
       craft_tensor *dq, craft_tensor *dk, craft_tensor *dv))                                                               \
    /* ---- bf16 compute (core/precision.c: the bf16 precisions' forward products and input gradients) ---- */              \
    /* operands rounded to bfloat16 (nearest even), products accumulated in fp32, f32 results; each calls                   \
     * craft_bf16_count() when it really computed in bf16. gemm_bf16: as gemm; keep_b: B is a weight that outlives          \
     * the call (a back end may cache its conversion, keyed by storage serial and version). conv_bf16: conv's FWD or        \
     * BWD_DATA direction (wei may be cached likewise; BWD_DATA has no bias). sdpa_bf16 / sdpa_grad_bf16: as sdpa /         \
     * sdpa_grad, the softmax and its gradient's row terms in fp32 */                                                       \
    X(gemm_bf16,                                                                                                            \
      (char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,                               \
       const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,                           \
       float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch, int keep_b))                           \
    X(conv_bf16,                                                                                                            \
      (int dir, const craft_conv_dims *d, int fwd_bias, craft_tensor *src, craft_tensor *wei, craft_tensor *dst,            \
       craft_tensor *bias))                                                                                                 \
    X(sdpa_bf16,                                                                                                            \
      (const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,                       \
       double scale, int causal, craft_tensor *y, craft_tensor *lse))                                                       \
    X(sdpa_grad_bf16,                                                                                                       \
      (const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,                       \
       double scale, int causal, const craft_tensor *o, const craft_tensor *lse, const craft_tensor *g,                     \
       craft_tensor *dq, craft_tensor *dk, craft_tensor *dv))                                                               \
    /* ---- fp16 compute (core/precision.c: run only for ops that record no gradient) ---- */                               \
    /* as the bf16 entries, with operands rounded to IEEE half (nearest even; beyond +-65504: inf): f16 storage,    \
     * fp32 arithmetic and accumulation, f32 results; each calls craft_f16_count() when it really computed in f16. \
     * A weight (keep_b, conv's wei) may be cached in f16 per device, keyed by storage serial and version */        \
    X(gemm_f16,                                                                                                             \
      (char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,                               \
       const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff, int64_t ldb,                           \
       float beta, craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch, int keep_b))                           \
    X(conv_f16,                                                                                                             \
      (const craft_conv_dims *d, int fwd_bias, craft_tensor *src, craft_tensor *wei, craft_tensor *dst,                     \
       craft_tensor *bias))                                                                                                 \
    X(sdpa_f16,                                                                                                             \
      (const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,                       \
       double scale, int causal, craft_tensor *y, craft_tensor *lse))                                                       \
    /* ---- losses (contiguous [outer, n, inner] blocks reduced over n) ---- */                                             \
    /* y = x / max(||x||, eps) and den [outer * inner] (negative where the clamp is active); its gradient from y, den */    \
    X(l2_normalize,                                                                                                         \
      (const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, double eps, craft_tensor *y,                         \
       craft_tensor *den))                                                                                                  \
    X(l2_normalize_grad,                                                                                                    \
      (const craft_tensor *y, const craft_tensor *den, const craft_tensor *g, int64_t outer, int64_t n,                     \
       int64_t inner, craft_tensor *gx))                                                                                    \
    /* y [outer * inner] = cos(a, b) with the norms clamped at eps, norms [2, outer * inner]; both gradients */             \
    X(cosine,                                                                                                               \
      (const craft_tensor *a, const craft_tensor *b, int64_t outer, int64_t n, int64_t inner, double eps,                   \
       craft_tensor *y, craft_tensor *norms))                                                                               \
    X(cosine_grad,                                                                                                          \
      (const craft_tensor *a, const craft_tensor *b, const craft_tensor *y, const craft_tensor *norms,                      \
       const craft_tensor *g, int64_t outer, int64_t n, int64_t inner, craft_tensor *ga, craft_tensor *gb))                 \
    /* cross entropy of log-probabilities lp [N, C, inner] with checked i64 targets [N * inner] on the device: y per    \
     * position (reduction 0) or its mean (1) / sum (2); the gradient (g scaled by gscale, the mean's 1 / count) */   \
    X(cross_entropy,                                                                                                        \
      (const craft_tensor *lp, const craft_tensor *targets, int64_t N, int64_t C, int64_t inner,                            \
       int reduction, double smoothing, craft_tensor *y))                                                                   \
    X(cross_entropy_grad,                                                                                                   \
      (const craft_tensor *lp, const craft_tensor *targets, const craft_tensor *g, int64_t N, int64_t C,                    \
       int64_t inner, int reduction, double smoothing, double gscale, craft_tensor *gx))                                    \
    /* (a - b)^2 of same-shaped a, b: per element (reduction 0), mean (1) or sum (2); gradients (gb may be NULL; g      \
     * scaled by scale, the mean's 1 / n) */   \
    X(mse, (const craft_tensor *a, const craft_tensor *b, int reduction, craft_tensor *y))                                  \
    X(mse_grad,                                                                                                             \
      (const craft_tensor *a, const craft_tensor *b, const craft_tensor *g, int reduction, double scale,                    \
       craft_tensor *ga, craft_tensor *gb))                                                                                 \
    /* ---- random and training ---- */                                                                                     \
    /* t (contiguous f32) = the Philox draw (seed, offset) of core/rng.c: uniform, or normal when normal is set */          \
    X(philox, (craft_tensor * t, uint64_t seed, uint64_t offset, int normal))                                               \
    /* in place over same-shaped strided tensors: torch.optim.AdamW; SGD (buf NULL: no momentum); EMA */                    \
    X(adamw,                                                                                                                \
      (craft_tensor * p, const craft_tensor *g, craft_tensor *m, craft_tensor *v,                                           \
       const craft_adamw_consts *c))                                                                                        \
    X(sgd,                                                                                                                  \
      (craft_tensor * p, const craft_tensor *g, craft_tensor *buf, float neg_lr, float momentum,                            \
       float weight_decay, int nesterov))                                                                                   \
    X(ema, (craft_tensor * ema, const craft_tensor *p, float decay, float one_minus_decay))                                 \
    /* the sum of squares of a contiguous x, in double where the device can */                                              \
    X(sum_squares, (const craft_tensor *x, double *out))                                                                    \
    /* optional: clip_grad_norm's formula over n f32 tensors on this device (NULL entries skipped), in place,   \
     * without the host waiting for the device; *total (when not NULL) gets the norm, one read. Without it, the op \
     * runs sum_squares per tensor and scale */                                                                  \
    X(clip_grad_norm, (int n, craft_tensor *const *grads, double max_norm, double *total))

typedef struct craft_kernels {
#define CRAFT_K_FIELD(name, params) int(*name) params;
    CRAFT_KERNELS(CRAFT_K_FIELD)
#undef CRAFT_K_FIELD
} craft_kernels;

enum {
#define CRAFT_K_ID(name, params) CRAFT_K_##name,
    CRAFT_KERNELS(CRAFT_K_ID)
#undef CRAFT_K_ID
        CRAFT_K_COUNT
};

/* One back end: a device kind serving the device codes [code_base, code_base + code_count). */
typedef struct craft_backend {
    const char *name; /* "cpu", "opencl": in messages */
    int code_base, code_count;
    /* The device exists and can be used (set up on first use); the error names op otherwise. */
    int (*device_check)(int device, const char *op);
    /* "cpu", "cl:0 (pthread-znver4)": for messages; into buf, returns buf. */
    const char *(*device_name)(int device, char *buf, size_t n);
    /* Whether kernel kid runs on `device` for operands of `dtype` beyond being present in the
     * table (NULL: every present kernel runs on f32 only). */
    int (*supports)(int device, int kid, int dtype);
    /* storage: s->data, s->release and s->release_ctx for nbytes on device (release NULL means
     * pool memory, craft_free'd) */
    int (*storage_init)(craft_storage *s, int device, size_t nbytes);
    /* nbytes at element offset elem_offset of t's storage, from / into host memory (blocking) */
    int (*read)(const craft_tensor *t, int64_t elem_offset, void *buf, size_t nbytes);
    int (*write)(craft_tensor *t, int64_t elem_offset, const void *buf, size_t nbytes);
    /* dst = src, broadcast (src's shape broadcasts to dst's: checked) and converted between
     * any dtypes. One of them is on this back end, the other on it or on the CPU. */
    int (*copy)(craft_tensor *dst, const craft_tensor *src);
    /* every element of t (any strides) = value, stored as the CPU stores it in t's dtype */
    int (*fill)(craft_tensor *t, double value);
    craft_kernels k;
} craft_backend;

/* The back ends (engine/backends.c). */
extern const craft_backend *const craft_backends[];
extern const int craft_backend_count;

/* The back end serving `device`, or NULL with the error set ("op: no back end serves device
 * code 70000"). */
const craft_backend *craft_backend_of(int device, const char *op);
/* The kernels of `device` when it has kernel kid (for operands of dtype): else
 * CRAFT_EUNSUPPORTED, "op: the opencl back end has no conv_fwd kernel (device cl:0 (...))". */
int craft_kernels_for(int device, int kid, int dtype, const char *op, const craft_kernels **out);
/* craft_kernels_for for each of kids[0..n) (a formula that runs several kernels). */
int craft_kernels_all(int device, int dtype, const char *op, int n, const int *kids,
                      const craft_kernels **out);
/* Whether device has kernel kid for dtype (no error set). */
int craft_device_supports(int device, int kid, int dtype);
const char *craft_kernel_name(int kid);
/* Tests: hide (off 1) or restore (off 0) kernel kid of device's back end, as if the table
 * lacked it. */
void craft_backend_test_disable(int device, int kid, int off);
/* "cpu", "cl:0 (name)" in one of a few rotating per-thread buffers (several per message). */
const char *craft_device_str(int device);

/* ---- operand helpers of the op layer ---- */
/* The device an op runs on: the one non-CPU device among ts (NULL entries skipped), else the
 * CPU; two different non-CPU devices are refused ("op: operands on cl:0 and cl:1; ..."). */
int craft_op_device(const char *op, int n, const craft_tensor *const *ts, int *device);
/* t must be an f32 tensor on device (arg names it: "op: weight [3] f32 is on cpu but the input
 * is on cl:0 (...); move it with :to()"). */
int craft_want(const char *op, const char *arg, const craft_tensor *t, int device);
/* t on device: retained when there, else copied over (differentiably); missing: an error. */
int craft_bring(const char *op, const char *arg, const craft_tensor *t, int device, craft_tensor **out);
/* A gradient on device (moved without recording when elsewhere), contiguous f32. */
int craft_grad_on(const craft_tensor *g, int device, craft_tensor **out);
/* t on device without recording (gradients the autograd engine made elsewhere). */
int craft_on_device(const craft_tensor *t, int device, craft_tensor **out);
/* ---- compute precision (core/precision.c) ---- */
/* 1 when the op about to run on device should use bf16 kernel kid: device has the kernel and
 * either the setting is bf16, no backward pass is running and the op records no gradient (grad
 * mode off or no input in ins[0..n) requires grad), or the setting is bf16-mixed. An op that
 * records a node after a bf16 forward marks it (craft_node.lowp) for its backward. */
int craft_bf16_for(int device, int kid, int n, const craft_tensor *const *ins);
/* 1 when the backward of node n should compute its input gradients on bf16 kernel kid: its
 * forward ran in bf16 (n->lowp) and device has the kernel. */
int craft_bf16_grad_for(const struct craft_node *n, int kid);
/* A bf16 kernel computed in bf16 (craft_bf16_kernel_calls counts these). */
void craft_bf16_count(void);
/* craft_bf16_for's rule for the fp16 setting (CRAFT_PREC_FP16) and an f16 kernel kid. */
int craft_f16_for(int device, int kid, int n, const craft_tensor *const *ins);
/* An f16 kernel computed in f16 (craft_f16_kernel_calls counts these). */
void craft_f16_count(void);
/* Backward passes compute in fp32 under CRAFT_PREC_BF16 (and fp16): on 1 enters such a region, 0
 * leaves. */
void craft_precision_suppress(int on);

/* Op epilogue: on rc == OK hands y to *out, else releases it; returns rc. */
int craft_finish(int rc, craft_tensor *y, craft_tensor **out);

#endif
