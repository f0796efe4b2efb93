/* internal.h: helpers shared by the engine's C files (not part of the public API). */
#ifndef CRAFT_INTERNAL_H
#define CRAFT_INTERNAL_H
#include "craft.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CRAFT_MAX_DIMS 8
#define CRAFT_DEVICE_CPU 0

/* Set the thread's error message (printf-style) and return `code`, so that callers can write
 * `return craft_fail(CRAFT_ESHAPE, "matmul: ...")`. */
int craft_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "ctx: " (for errors passed up through a layer). */
int craft_fail_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "[2, 3] f32" of a tensor, in one of a few rotating static-per-thread buffers, so that
 * several can appear in one error message. */
const char *craft_shape_str(const craft_tensor *t);
const char *craft_dims_str(int ndim, const int64_t *shape);

/* Early return on failure. */
#define CRAFT_TRY(expr) do { int craft_rc_ = (expr); if (craft_rc_ != CRAFT_OK) return craft_rc_; } while (0)

/* Checks that a tensor argument is a usable CPU float32 input. */
int craft_check_f32(const char *op, const char *arg, const craft_tensor *t);

/* Allocate a fresh contiguous tensor (pool memory, uninitialised). */
craft_tensor *craft_new_tensor(int ndim, const int64_t *shape, int dtype, int device);
/* Contiguous float32 version of t: a new reference to t itself when it already is one. */
int craft_contig_f32(const craft_tensor *t, craft_tensor **out);
/* The product of ndim sizes: 0 when any of them is 0, INT64_MAX when it overflows. Ops that
 * split a tensor into [outer, n, inner] or [rows, rowlen] use it (or craft_mul_sat) for those
 * counts: an empty tensor may have other sizes whose product is past int64 (each size is at
 * most 2^46), so the plain product is undefined there; the saturated one fails any allocation
 * it sizes. */
int64_t craft_numel_of(int ndim, const int64_t *shape);
/* A shape seen as [outer, n, inner] around dim d (all 1 for 0 dims), saturating as above. */
void craft_split_at(int ndim, const int64_t *shape, int d, int64_t *outer, int64_t *n, int64_t *inner);
static inline int64_t craft_mul_sat(int64_t a, int64_t b) {
    int64_t r;
    if (a == 0 || b == 0) return 0;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}
int craft_normalize_dim(const char *op, int dim, int ndim, int *out);

/* float16 / bfloat16 conversion (round to nearest even). */
float craft_half_to_float(uint16_t h);
uint16_t craft_float_to_half(float f);
float craft_bf16_to_float(uint16_t h);
uint16_t craft_float_to_bf16(float f);

/* One element of dtype dt at p as a double, and a double stored into dtype dt at p, as every
 * device stores it: floats round to nearest even; float to integer is toward zero, NaN to 0,
 * saturating at the type's range (a plain C cast of NaN or of an out-of-range value is
 * undefined); u8 and i8 wrap from the saturated int32, as OpenCL's convert_int_sat then a
 * narrowing cast (kernels_cl/copy.cl does the same). */
static inline double craft_load_double(const char *p, int dt) {
    switch (dt) {
    case CRAFT_F32: return *(const float *)p;
    case CRAFT_F16: return craft_half_to_float(*(const uint16_t *)p);
    case CRAFT_BF16: return craft_bf16_to_float(*(const uint16_t *)p);
    case CRAFT_I64: return (double)*(const int64_t *)p;
    case CRAFT_I32: return *(const int32_t *)p;
    case CRAFT_U8: return *(const uint8_t *)p;
    case CRAFT_F64: return *(const double *)p;
    case CRAFT_I8: return *(const int8_t *)p;
    case CRAFT_BOOL: return *(const uint8_t *)p != 0;
    }
    return 0;
}
static inline int64_t craft_sat_i64(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}
static inline int32_t craft_sat_i32(double v) {
    if (v != v) return 0;
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483648.0) return INT32_MIN;
    return (int32_t)v;
}
static inline void craft_store_double(char *p, int dt, double v) {
    switch (dt) {
    case CRAFT_F32: *(float *)p = (float)v; break;
    case CRAFT_F16: *(uint16_t *)p = craft_float_to_half((float)v); break;
    case CRAFT_BF16: *(uint16_t *)p = craft_float_to_bf16((float)v); break;
    case CRAFT_I64: *(int64_t *)p = craft_sat_i64(v); break;
    case CRAFT_I32: *(int32_t *)p = craft_sat_i32(v); break;
    case CRAFT_U8: *(uint8_t *)p = (uint8_t)craft_sat_i32(v); break;
    case CRAFT_F64: *(double *)p = v; break;
    case CRAFT_I8: *(int8_t *)p = (int8_t)craft_sat_i32(v); break;
    case CRAFT_BOOL: *(uint8_t *)p = v != 0; break;
    }
}


/* ---- strided iteration (iter.c) ----
 * Runs `fn` over the elements of up to 4 same-shaped strided operands. Strides are in BYTES
 * (0 for broadcast dims). Dims are coalesced where the layout allows, so the inner loop is as
 * long as possible; `fn` gets the inner count, the base pointers and the inner byte strides.
 * Work is split across OpenMP threads when numel >= CRAFT_PAR_MIN and `parallel` is set. */
#define CRAFT_PAR_MIN 32768
typedef void (*craft_loop_fn)(int64_t n, char **ptrs, const int64_t *strides, void *ctx);
void craft_iter(int nargs, int ndim, const int64_t *shape, char **base, int64_t (*strides)[CRAFT_MAX_DIMS],
                craft_loop_fn fn, void *ctx, int parallel);
/* Drops size-1 dims and merges neighbours that every operand traverses contiguously (strides in
 * any unit); returns the new ndim (0: a single element). Used by the CPU and OpenCL iterators. */
int craft_coalesce_dims(int nargs, int ndim, const int64_t *shape_in, int64_t (*strides_in)[CRAFT_MAX_DIMS],
                        int64_t *shape, int64_t (*st)[CRAFT_MAX_DIMS]);
/* Byte strides of t broadcast to (ndim, shape): size-1 or missing dims get 0. */
void craft_broadcast_strides(const craft_tensor *t, int ndim, const int64_t *shape, int64_t *strides_bytes);
/* Broadcast shape of a and b, or CRAFT_ESHAPE naming op and shapes. */
int craft_broadcast_shape(const char *op, const craft_tensor *a, const craft_tensor *b, int *ndim, int64_t *shape);
char *craft_elem_ptr(const craft_tensor *t);   /* address of element 0, as char* */

/* ---- autograd internals (autograd.c) ---- */
typedef struct craft_edge {
    struct craft_node *node;   /* producing node of the input (retained), or NULL */
    craft_tensor *leaf;        /* the input itself when it is a leaf requiring grad (retained) */
    int32_t index;             /* output index in node */
    int32_t ndim;
    int64_t shape[CRAFT_MAX_DIMS];
} craft_edge;
struct craft_node;
/* Computes grad_in[i] (new references, NULL allowed) from grad_out (never NULL: zeros are
 * substituted for outputs that received no gradient). Runs with grad mode off. */
typedef int (*craft_backward_kernel)(struct craft_node *n, craft_tensor **grad_out, craft_tensor **grad_in);
#define CRAFT_MAX_SAVED 8
typedef struct craft_node {
    int32_t refcount;
    int32_t n_in, n_out;
    int32_t n_saved;
    int32_t device;                        /* the outputs' device (zero gradients are made there) */
    const char *name;
    craft_edge *edges;                     /* n_in */
    craft_tensor *saved[CRAFT_MAX_SAVED];  /* detached aliases */
    int32_t saved_version[CRAFT_MAX_SAVED];
    int64_t out_shape[4][CRAFT_MAX_DIMS];  /* shapes of (up to 4) outputs */
    int32_t out_ndim[4];
    double sarg[8];                        /* scalar arguments for backward */
    int64_t iarg[24];                      /* integer arguments for backward */
    void *ctx;
    void (*ctx_free)(void *ctx);
    craft_backward_kernel backward;
    craft_custom_backward_fn custom;
    /* traversal state */
    uint64_t epoch;
    int32_t deps;
    int32_t freed;
    craft_tensor **grads;                  /* n_out accumulators during backward */
} craft_node;
/* A node for an op with the given inputs, or NULL when no gradient is needed (grad mode off or
 * no input requires grad). NULL inputs are allowed (optional bias). On allocation failure returns
 * NULL with *err set. */
craft_node *craft_node_new(const char *name, int n_in, const craft_tensor *const *inputs,
                           int n_out, craft_backward_kernel backward, int *err);
int craft_node_save(craft_node *n, const craft_tensor *t);   /* index of the saved slot */
void craft_node_attach(craft_node *n, craft_tensor *out, int index);  /* sets out->node, requires_grad */
void craft_node_release(craft_node *n);
/* Common op epilogue: if grad needed, build node over inputs, save listed tensors, attach out.
 * Returns status. */
int craft_record(const char *name, int n_in, const craft_tensor *const *inputs, craft_tensor *out,
                 craft_backward_kernel backward, int n_save, const craft_tensor *const *save,
                 const double *sargs, int n_sargs, const int64_t *iargs, int n_iargs, craft_node **node_out);
/* Sum g over broadcast dims so that it has (ndim, shape). New reference. */
int craft_sum_to_shape(const craft_tensor *g, int ndim, const int64_t *shape, craft_tensor **out);
/* matmul with a 1-d operand (core/op_matmul.c) */
int craft_matmul_vec(const craft_tensor *a, const craft_tensor *b, craft_tensor **out);
/* Checks outputs for NaN/Inf when the numeric guard is on. */
int craft_guard_check(const char *op, const char *what, const craft_tensor *t);
craft_tensor *craft_alias(const craft_tensor *t);   /* new header sharing t's storage, no graph */
/* Whether input i of node n needs a gradient. */
#define CRAFT_NEEDS_GRAD(n, i) ((n)->edges[i].node != NULL || (n)->edges[i].leaf != NULL)
/* Row-major sgemm through oneDNN: C = alpha op(A) op(B) + beta C. */
int craft_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* Philox-4x32-10 on a full 128-bit counter and 64-bit key (rng.c; the known-answer tests need
 * counters the public 64-bit-counter entry point cannot express). */
void craft_philox4x32_raw(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]);

/* ---- OpenCL back end (cl_*.c; docs/opencl.md): what the op files still reach directly ---- */
/* Whole ops for cl inputs, with the public functions' signatures (being replaced by the op
 * layer on the back-end seam, core/backend.h). */
/* -- cl: convolution, pooling, resize, pad, concat, embedding (cl_ops_conv.c, cl_ops_shape.c) -- */
/* The shared checks of avg_pool2d (stride 0 becomes the kernel; output size out), interpolate
 * (mode, sizes; align_corners cleared for nearest) and pad (output shape osh), as the CPU ops
 * make them. Dtypes and devices are the caller's. */
int craft_avg_pool2d_check(const craft_tensor *x, int kernel, int *stride, int padding, int64_t *oh, int64_t *ow);
int craft_interpolate_check(const craft_tensor *x, int64_t out_h, int64_t out_w, int mode, int *align_corners);
int craft_pad_check(const craft_tensor *x, int npairs, const int64_t *pads, int mode, int64_t *osh);
/* timestep_embedding's checks (t 1-d and numeric, dim >= 1, finite parameters, no zero divisor)
 * and its frequency table: freq[i] = exp(-ln(max_period) * i / (half - shift)), i < dim / 2, in
 * the CPU kernel's float32 order. The table is the caller's to free (NULL when dim is 1). */
int craft_timestep_check(const craft_tensor *t, int dim, double downscale_freq_shift, double scale, double max_period);
int craft_timestep_freqs(int dim, double downscale_freq_shift, double max_period, float **freq);
/* The shared shape checks of the norms (ops_norm.c; the cl ops call them too). Dtypes and
 * devices are the caller's. group_norm: input [N, C, ...] with groups dividing C; layer_norm:
 * 1..ndim trailing dims; an affine parameter p (may be NULL) must have the given shape. */
int craft_group_norm_check(const craft_tensor *x, int groups);
int craft_layer_norm_check(const craft_tensor *x, int nnorm);
int craft_norm_affine_check(const char *op, const char *arg, const craft_tensor *p, int ndim, const int64_t *shape,
                            const craft_tensor *x);
/* The shared checks of the losses (ops_loss.c; the cl ops call them too). Dtypes and devices
 * are the caller's. cross_entropy: reduction, targets (present, integer, the logits' shape
 * without the class dim cdim), label smoothing; fills cdim and the [N, C, inner] split.
 * craft_cross_entropy_targets reads the targets into tp (numel int64) and checks each against C. */
int craft_loss_reduction_check(const char *op, int reduction);
int craft_cross_entropy_check(const craft_tensor *logits, const craft_tensor *targets, int reduction, double label_smoothing,
                              int *cdim, int64_t *N, int64_t *C, int64_t *inner);
int craft_cross_entropy_targets(const craft_tensor *logits, const craft_tensor *targets, int64_t C, int64_t *tp);
/* cosine_similarity's operands: a and b broadcast to (nd, shape), checked (not 0-d; dim
 * normalised into d) and copied contiguous, outside autograd (the op records its own node). */
int craft_cosine_operands(const craft_tensor *a, const craft_tensor *b, int dim, int *nd, int64_t *shape, int *d,
                          craft_tensor **ac, craft_tensor **bc);
/* sdpa's geometry, shared by the CPU and cl ops (ops_attention.c): q [..., Lq, D], k [..., Lk, D],
 * v [..., Lk, Dv] with broadcast batch dims bshape (nb matrices), row strides ld*, the batch-dim
 * strides of q, k, v and the mask (bst[0..3], 0 where broadcast), the mask's row and column
 * strides, and the scale (1/sqrt(D) when scale <= 0). craft_sdpa_shapes_check checks the dims and
 * sizes (not dtypes or devices: the caller's); craft_sdpa_geom_of checks the broadcasts.
 * craft_sdpa_mat_usable: unit column stride and non-overlapping rows (GEMM takes it as is). */
typedef struct craft_sdpa_geom {
    int nbd;
    int64_t bshape[CRAFT_MAX_DIMS];
    int64_t nb, Lq, Lk, D, Dv, ldq, ldk, ldv;
    int64_t bst[4][CRAFT_MAX_DIMS];
    int64_t msr, msc;
    float scale;
} craft_sdpa_geom;
int craft_sdpa_shapes_check(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v);
int craft_sdpa_geom_of(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
                       double scale, craft_sdpa_geom *g);
int craft_sdpa_mat_usable(const craft_tensor *t);
/* interpolate's source indices and weights along one axis, as the CPU kernel uses them: i0
 * (nearest), or i0, i1, l0, l1 (bilinear); each array has `out` entries. */
void craft_interpolate_axis(int64_t in, int64_t out, int mode, int align_corners, int64_t *i0, int64_t *i1, float *l0,
                            float *l1);
/* The whole ops on cl tensors (the public functions dispatch here; same signatures). */
/* -- end cl conv -- */
/* -- cl: norms, softmax, attention, losses (cl_ops_norm.c, cl_ops_softmax.c, ...) -- */
/* The whole ops on cl tensors (the public functions dispatch here; same signatures). Norm
 * weights / biases and sdpa's q, k, v must be on the input's device; an sdpa mask, cross_entropy
 * targets and a CPU operand of mse_loss or cosine_similarity are copied over. */
/* -- end cl nn -- */
/* Vectorised row helpers (ops_softmax.c), shared by softmax and attention:
 * dst = exp(src - sub) returning the sum; the max of x; the dot product of a and b. */
float craft_vexp(float *dst, const float *src, int64_t n, float sub);
float craft_vmax(const float *x, int64_t n);
float craft_vdot(const float *a, const float *b, int64_t n);

#endif
