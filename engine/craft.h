/* craft.h: the one public header of libcraft.
 *
 * Conventions (every function below follows them):
 *  - Functions that can fail return an int status: CRAFT_OK (0) or a CRAFT_E* code. The
 *    message is kept per thread and read with craft_last_error(); nothing aborts, nothing
 *    prints. Results come back through out-pointers, which are untouched on failure.
 *  - Tensors are reference counted. A function that returns a tensor through `craft_tensor **out`
 *    hands the caller one reference; drop it with craft_tensor_release(). Inputs are borrowed.
 *    A NULL input tensor is refused with an error (test_null_args checks every function); a
 *    required out-pointer must be valid memory.
 *  - Shapes are in PyTorch's dimension order (NCHW images, [out, in] linear weights).
 *  - This file is also the LuaJIT binding's ffi.cdef: the build strips preprocessor lines and
 *    comments and embeds the rest (tools/embed_header.sh). Keep declarations plain C that
 *    LuaJIT's parser accepts: no macros inside declarations, no inline functions, no restrict.
 *    A line marked CRAFT_CDEF_SKIP is left out of the binding.
 */
#ifndef CRAFT_H
#define CRAFT_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" { /* CRAFT_CDEF_SKIP */
#endif

/* ---------------------------------------------------------------- status ---- */
enum {
    CRAFT_OK = 0,
    CRAFT_EINVAL = 1,   /* bad argument */
    CRAFT_ESHAPE = 2,   /* shapes do not fit the op */
    CRAFT_ETYPE = 3,    /* wrong dtype */
    CRAFT_ENOMEM = 4,   /* host or device memory exhausted */
    CRAFT_EIO = 5,      /* file could not be opened, read or written */
    CRAFT_EFORMAT = 6,  /* file content is malformed */
    CRAFT_EDEVICE = 7,  /* device missing or failing */
    CRAFT_EGRAD = 8,    /* autograd misuse (backward of a non-scalar, no graph, ...) */
    CRAFT_ENUMERIC = 9, /* NaN or Inf found by the numeric guard */
    CRAFT_EUNSUPPORTED = 10,
    CRAFT_EDIST = 11 /* a distributed run's collective failed or timed out (engine/dist) */
};
const char *craft_last_error(void); /* message of the last failure on this thread */
int craft_last_status(void);
void craft_clear_error(void);
const char *craft_version(void);
double craft_now(void);            /* monotonic clock, seconds (for timings and progress) */
const char *craft_cdef_text(void); /* CRAFT_CDEF_SKIP (bootstrap: declared by the binding itself) */

/* ---------------------------------------------------------------- distributed runs ---- */
/* engine/dist: one rank of a data-parallel run. With MPI in the build (make MPI=1, the default
 * when mpicc is found) and a process started by an MPI launcher (mpirun, mpiexec, srun: their
 * environment; CRAFT_DIST=0 / 1 overrides the guess), craft_dist_init initialises MPI; otherwise
 * the process is rank 0 of 1 and every collective below is the identity. Under a launcher
 * without MPI in the build, init fails (CRAFT_EDIST): N copies of one job would race on its files.
 * Collectives are called by every rank in the same order, from the thread that called init. Each
 * waits at most the timeout (CRAFT_DIST_TIMEOUT seconds, default 300, or craft_dist_set_timeout);
 * past it, it fails with CRAFT_EDIST naming the operation, this rank and the ranks that did not
 * answer a ping, and the caller ends the job (craft_dist_abort). */
int craft_dist_init(int *rank, int *size, int *local_rank, int *local_size); /* idempotent; NULLs skip */
int craft_dist_has_mpi(void);                                                /* 1 when built with MPI */
int craft_dist_active(void); /* 1 while MPI is initialised (launched, after init) */
int craft_dist_set_timeout(double seconds);
double craft_dist_timeout(void);
int craft_dist_allreduce_f32(float *buf, int64_t n); /* sum over ranks, in place, on every rank */
int craft_dist_allreduce_f64(double *buf, int64_t n);
int craft_dist_broadcast(void *buf, int64_t nbytes, int root); /* root's bytes into every rank's buf */
/* counts[r] = rank r's n, on every rank (counts: one int64 per rank). */
int craft_dist_allgather_counts(int64_t n, int64_t *counts);
/* Every rank's n bytes, in rank order, into `out` on root (sum of counts bytes; NULL elsewhere).
 * counts: from craft_dist_allgather_counts, called just before (a large gather relies on its
 * having seen every rank arrive, and then waits without the deadline). */
int craft_dist_gatherv(const void *buf, int64_t n, void *out, const int64_t *counts, int root);
int craft_dist_barrier(void);
/* Ends every rank of the job with exit code `code` (MPI_Abort); returns only when MPI is not
 * active, doing nothing. */
int craft_dist_abort(int code);
int craft_dist_finalize(void); /* at exit, after the last collective; no-op without MPI */

/* ---------------------------------------------------------------- memory ---- */
/* A caching allocator: blocks are kept for reuse instead of going back to the system
 * (page faults are expensive), as long as in use + cached stays within the most ever in use
 * + 1/16 + CRAFT_POOL_SLACK_MB (default 256); past that the longest-unused blocks go back first.
 * 64-byte aligned. */
void *craft_alloc(size_t nbytes);          /* NULL on failure, with the error set */
void craft_free(void *ptr, size_t nbytes); /* nbytes as passed to craft_alloc */
typedef struct craft_pool_stats {
    int64_t in_use;   /* bytes handed out now */
    int64_t cached;   /* bytes held for reuse */
    int64_t peak;     /* highest in_use so far */
    int64_t n_system; /* blocks obtained from the system */
} craft_pool_stats;
void craft_pool_get_stats(craft_pool_stats *out);
void craft_pool_reset_peak(void);
void craft_pool_trim(void); /* return cached blocks to the system */

/* ---------------------------------------------------------------- tensors --- */
typedef enum craft_dtype {
    CRAFT_F32 = 0,
    CRAFT_F16 = 1,
    CRAFT_BF16 = 2,
    CRAFT_I64 = 3,
    CRAFT_I32 = 4,
    CRAFT_U8 = 5,
    CRAFT_F64 = 6,
    CRAFT_I8 = 7,
    CRAFT_BOOL = 8
} craft_dtype;
/* device codes: 0 is the CPU; 1 + n is OpenCL device n ("cl:n") */

typedef struct craft_storage {
    void *data;
    size_t nbytes;
    int32_t refcount;
    int32_t device;
    int32_t version; /* bumped by in-place writes; autograd checks saved tensors */
    int32_t pad_;
    void (*release)(void *ctx, void *data, size_t nbytes); /* NULL: pool memory */
    void *release_ctx;
    /* unique in the process, never reused: with version, a key for caches of converted data
     * (the bf16 weight cache) that a freed and reallocated address cannot fool */
    uint64_t serial;
} craft_storage;

struct craft_node;
typedef struct craft_tensor {
    int32_t refcount;
    int32_t ndim;  /* 0 .. 8 */
    int32_t dtype; /* craft_dtype */
    int32_t device;
    int64_t shape[8];
    int64_t stride[8]; /* in elements */
    int64_t offset;    /* in elements, into storage */
    int64_t numel;
    craft_storage *storage;
    struct craft_tensor *grad; /* gradient accumulated by backward (leaves) */
    struct craft_node *node;   /* the op that produced it; NULL for leaves */
    int32_t out_index;         /* which output of node this is */
    int32_t requires_grad;
} craft_tensor;

craft_tensor *craft_tensor_retain(craft_tensor *t);
void craft_tensor_release(craft_tensor *t);
size_t craft_dtype_size(int dtype);
const char *craft_dtype_name(int dtype);
int craft_dtype_from_name(const char *name, int *dtype_out);
/* "[2, 3, 4] f32" into buf (always NUL-terminated); returns buf. */
const char *craft_tensor_describe(const craft_tensor *t, char *buf, size_t bufsize);

int craft_empty(int ndim, const int64_t *shape, int dtype, int device, craft_tensor **out);
int craft_zeros(int ndim, const int64_t *shape, int dtype, int device, craft_tensor **out);
int craft_full(int ndim, const int64_t *shape, int dtype, double value, craft_tensor **out);
int craft_empty_like(const craft_tensor *t, craft_tensor **out);
int craft_zeros_like(const craft_tensor *t, craft_tensor **out);
/* Copies `data` (dense, row-major, of dtype) into a new CPU tensor. */
int craft_from_data(int ndim, const int64_t *shape, int dtype, const void *data, craft_tensor **out);
/* Wraps memory the caller owns (an mmap, say) without copying; `release` is called with
 * (ctx, data, nbytes) when the last reference goes. */
int craft_from_external(int ndim, const int64_t *shape, int dtype, void *data, size_t nbytes,
                        void (*release)(void *ctx, void *data, size_t nbytes), void *release_ctx,
                        craft_tensor **out);
int craft_arange(double start, double end, double step, int dtype, craft_tensor **out);
int craft_is_contiguous(const craft_tensor *t);
void *craft_tensor_data(const craft_tensor *t); /* address of element 0 (CPU tensors) */
/* Dense row-major copy of t's elements, converted to dtype, into buf (nbytes at least
 * numel * dtype size). */
int craft_tensor_read(const craft_tensor *t, int dtype, void *buf, size_t nbytes);
/* Copies buf (dense, dtype) into t's elements, in place. */
int craft_tensor_write(craft_tensor *t, int dtype, const void *buf, size_t nbytes);
int craft_item(const craft_tensor *t, double *out); /* one-element tensors */
int craft_get(const craft_tensor *t, const int64_t *index, double *out);
int craft_set(craft_tensor *t, const int64_t *index, double value);

/* Views: share storage when the strides allow it, otherwise copy (reshape). All are
 * differentiable. */
int craft_reshape(const craft_tensor *t, int ndim, const int64_t *shape, craft_tensor **out);
int craft_permute(const craft_tensor *t, const int *perm, craft_tensor **out);
int craft_transpose(const craft_tensor *t, int d0, int d1, craft_tensor **out);
int craft_slice(const craft_tensor *t, int dim, int64_t start, int64_t end, int64_t step, craft_tensor **out);
int craft_expand(const craft_tensor *t, int ndim, const int64_t *shape, craft_tensor **out);
int craft_unsqueeze(const craft_tensor *t, int dim, craft_tensor **out);
int craft_squeeze(const craft_tensor *t, int dim, craft_tensor **out); /* dim -1000: all size-1 dims */
int craft_contiguous(const craft_tensor *t, craft_tensor **out);
int craft_clone(const craft_tensor *t, craft_tensor **out);
int craft_detach(const craft_tensor *t, craft_tensor **out); /* same storage, no graph */
int craft_to_dtype(const craft_tensor *t, int dtype, craft_tensor **out);
/* In-place: dst[...] = src (broadcast), dtype converted. Not recorded by autograd. */
int craft_copy_(craft_tensor *dst, const craft_tensor *src);
int craft_fill_(craft_tensor *t, double value);
/* In place, not recorded: dst += alpha * src (src broadcast to dst); t *= s. */
int craft_axpy_(craft_tensor *dst, double alpha, const craft_tensor *src);
int craft_scale_(craft_tensor *t, double s);

/* ---------------------------------------------------------------- autograd -- */
/* Define-by-run reverse mode. Ops record a node on their output when grad mode is on and an
 * input requires grad. backward() walks the graph once and frees each node's saved tensors as
 * soon as it has run (unless retain_graph). */
int craft_set_requires_grad(craft_tensor *t, int flag);
int craft_grad_enabled(void);
int craft_set_grad_enabled(int flag); /* returns the previous setting */
/* grad may be NULL for a one-element t (gradient 1). */
int craft_backward(craft_tensor *t, const craft_tensor *grad, int retain_graph);
/* Per-op backward timing, for profilers (craft.profile): on 1 starts timing each node's backward
 * by its op name, 0 stops, -1 forgets the rows. Row i: the op, its calls and seconds (an error past
 * the last row). */
void craft_profile_backward(int on);
int craft_profile_backward_row(int i, const char **name, int64_t *calls, double *seconds);
/* Several roots at once, each with its gradient (checkpoint segments use this). */
int craft_backward_multi(int n, craft_tensor **roots, craft_tensor **grads, int retain_graph);
int craft_zero_grad(craft_tensor *t);                    /* drops t->grad */
int craft_set_grad(craft_tensor *t, craft_tensor *grad); /* replaces t->grad (may be NULL) */
/* Name of the op that made t ("" for a leaf). */
const char *craft_grad_fn_name(const craft_tensor *t);
/* Marks t's storage written (bumps its version) after a write that bypassed the engine (through
 * craft_tensor_data): autograd's saved-tensor checks and the bf16 weight cache key on it. */
int craft_tensor_mark_written(craft_tensor *t);

/* ---------------------------------------------------------------- compute precision -- */
/* The precision the matrix products compute in, per thread (as torch's autocast): under
 * CRAFT_PREC_BF16 an op that records no gradient (grad mode off, or no input requires grad)
 * among matmul, linear, conv2d and scaled_dot_product_attention rounds its operands to bfloat16
 * and accumulates and returns fp32, on a device whose back end has bf16 kernels; tensors stay
 * f32. Recorded ops, every backward pass and all other ops compute in fp32, and so does a device
 * without bf16 kernels (craft_precision_kernels).
 * CRAFT_PREC_BF16_MIXED (mixed-precision training) also runs those ops' forward in bf16 when they
 * record a gradient, and their backward's input gradients (conv2d's data gradient, linear's and
 * matmul's products, attention's gradients) in bf16 with fp32 accumulation when the forward did;
 * the weight gradients of linear and conv2d stay fp32. docs/backends.md states the tolerances.
 * CRAFT_PREC_FP16 is CRAFT_PREC_BF16's rule with IEEE half operands (f16 storage, fp32 arithmetic
 * and accumulation) on devices with f16 kernels: OpenCL devices (any: vload_half is core
 * OpenCL); the CPU has none and computes fp32. */
enum { CRAFT_PREC_FP32 = 0, CRAFT_PREC_BF16 = 1, CRAFT_PREC_BF16_MIXED = 2, CRAFT_PREC_FP16 = 3 };
/* *previous (may be NULL) gets the setting it replaces; an unknown precision is refused. */
int craft_set_compute_precision(int precision, int *previous);
int craft_compute_precision(void);
/* Kernel calls that computed in bf16 since the process started (a test and benchmark counter). */
int64_t craft_bf16_kernel_calls(void);
/* *kernels = the number of kernels device runs in `precision` under that setting: CRAFT_PREC_BF16
 * and CRAFT_PREC_BF16_MIXED 0..4 (gemm, conv, sdpa, sdpa_grad), CRAFT_PREC_FP16 0..3 (gemm, conv,
 * sdpa), CRAFT_PREC_FP32 3; 0 means that device computes fp32 (the CPU without AVX512-BF16). */
int craft_precision_kernels(int device, int precision, int *kernels);
/* Kernel calls that computed in f16 since the process started (a test and benchmark counter). */
int64_t craft_f16_kernel_calls(void);
/* The OpenCL devices' caches of weights converted to f16 (keyed like the CPU's bf16 cache, per
 * device; CRAFT_F16_CACHE_MB caps each, default 2048): bytes held, entries, hits, misses over
 * all devices; and dropping them (set_precision('fp32') does). */
void craft_cl_f16_cache_stats(int64_t *bytes, int64_t *entries, int64_t *hits, int64_t *misses);
void craft_cl_f16_cache_clear(void);
/* The cap of that cache in MiB (CRAFT_F16_CACHE_MB, default 2048): mb >= 0 sets it (entries not
 * in use leave until the rest fits), mb < 0 only reads it; returns the cap before the call. */
int64_t craft_cl_f16_cache_cap_mb(int64_t mb);
/* The CPU's bf16 state: "avx512_core_bf16" (native), or why the CPU computes fp32 instead. */
const char *craft_cpu_bf16_info(void);
/* How many times faster this CPU multiplies and adds in bf16 (vdpbf16ps) than in fp32
 * (vfmadd231ps), measured once per process (a few ms, on every thread): about 2 where bf16
 * pays, below 1 where every bf16 kernel is slower than fp32's; 0 without native bf16.
 * CRAFT_BF16_SPEEDUP (a number > 0) replaces the measurement. */
double craft_cpu_bf16_speedup(void);
/* The CPU's cache of weights converted to bf16 (keyed by storage serial, version, offset and
 * layout, so a changed weight is converted again): bytes held, entries, hits and misses. */
void craft_cpu_bf16_cache_stats(int64_t *bytes, int64_t *entries, int64_t *hits, int64_t *misses);
/* Drops the cache (the binding's set_precision('fp32') does). */
void craft_cpu_bf16_cache_clear(void);
/* The cap of that cache in MiB (CRAFT_BF16_CACHE_MB, default 4096), as craft_cl_f16_cache_cap_mb. */
int64_t craft_cpu_bf16_cache_cap_mb(int64_t mb);

/* Custom differentiable ops (Lua-defined ops, gradient checkpointing): the caller computed
 * outputs from inputs with grad mode off; craft_custom_attach records one node on them. When
 * backward reaches it, `backward` is called with the output gradients (entries may be NULL:
 * no gradient flowed there) and must store a new reference (or NULL) in each grad_inputs[i]. */
typedef int (*craft_custom_backward_fn)(void *ud, int n_out, craft_tensor **grad_outputs, int n_in,
                                        craft_tensor **grad_inputs);
int craft_custom_attach(const char *name, int n_in, craft_tensor **inputs, int n_out, craft_tensor **outputs,
                        craft_custom_backward_fn backward, void *ud, void (*ud_free)(void *ud));
/* For bindings that keep the backward's state on their side (Lua): pass craft_custom_note_freed
 * as ud_free with ud an integer id; craft_custom_take_freed() then hands back (up to max) the
 * ids of nodes that were freed since the last call, so the binding can drop their state
 * without being called back from a destructor. */
void craft_custom_note_freed(void *ud);
int craft_custom_take_freed(int64_t *ids, int max);
/* Sets this thread's error (for errors raised by a binding's callback). Returns code. */
int craft_set_error(int code, const char *message);

/* Numeric guard: when on, every op checks its outputs (forward) and input gradients
 * (backward) for NaN/Inf and fails with CRAFT_ENUMERIC naming the op. Off by default. */
void craft_set_numeric_guard(int on);
int craft_numeric_guard(void);

/* ---------------------------------------------------------------- ops ------- */
/* Elementwise, with NumPy/PyTorch broadcasting, on any strided input. */
typedef enum craft_unary_op {
    CRAFT_NEG = 0,
    CRAFT_EXP,
    CRAFT_LOG,
    CRAFT_SQRT,
    CRAFT_RSQRT,
    CRAFT_ABS,
    CRAFT_SIN,
    CRAFT_COS,
    CRAFT_TANH,
    CRAFT_SIGMOID,
    CRAFT_RELU,
    CRAFT_SILU,
    CRAFT_GELU,
    CRAFT_GELU_TANH,
    CRAFT_QUICK_GELU,
    CRAFT_SQUARE,
    CRAFT_RECIPROCAL,
    CRAFT_SOFTPLUS,
    CRAFT_LOG1P,
    CRAFT_UNARY_COUNT
} craft_unary_op;
typedef enum craft_binary_op {
    CRAFT_ADD = 0,
    CRAFT_SUB,
    CRAFT_MUL,
    CRAFT_DIV,
    CRAFT_POW,
    CRAFT_MAXIMUM,
    CRAFT_MINIMUM,
    CRAFT_BINARY_COUNT
} craft_binary_op;
typedef enum craft_compare_op {
    CRAFT_EQ = 0,
    CRAFT_NE,
    CRAFT_LT,
    CRAFT_LE,
    CRAFT_GT,
    CRAFT_GE
} craft_compare_op;
const char *craft_unary_name(int op);
const char *craft_binary_name(int op);
int craft_unary(int op, const craft_tensor *a, craft_tensor **out);
int craft_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor **out);
/* a op s with a scalar s; `reverse` computes s op a (for s - a, s / a, s ^ a). */
int craft_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor **out);
int craft_compare(int op, const craft_tensor *a, const craft_tensor *b,
                  craft_tensor **out); /* f32 0/1, no grad */
int craft_clamp(const craft_tensor *a, double lo, double hi, craft_tensor **out);
int craft_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor **out);
int craft_lerp(const craft_tensor *a, const craft_tensor *b, double w, craft_tensor **out);

/* Reductions over the listed dims (ndims = 0: all dims). */
int craft_sum(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out);
int craft_mean(const craft_tensor *a, int ndims, const int *dims, int keepdim, craft_tensor **out);
int craft_var(const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim,
              craft_tensor **out);
/* Max over one dim: values (differentiable) and int64 indices (indices may be NULL). */
int craft_max(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices);
int craft_min(const craft_tensor *a, int dim, int keepdim, craft_tensor **values, craft_tensor **indices);
int craft_argmax(const craft_tensor *a, int dim, int keepdim, craft_tensor **out);

/* Linear algebra: matmul broadcasts batch dims like torch.matmul (1-d operands allowed). */
int craft_matmul(const craft_tensor *a, const craft_tensor *b, craft_tensor **out);
/* y = x w^T + b, w is [out, in], b may be NULL. */
int craft_linear(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, craft_tensor **out);

/* Convolutions (NCHW, OIHW weights; transposed conv weights are [in, out/groups, kh, kw]). */
int craft_conv2d(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, const int *stride,
                 const int *padding, const int *dilation, int groups, craft_tensor **out);
int craft_conv_transpose2d(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                           const int *stride, const int *padding, const int *output_padding,
                           const int *dilation, int groups, craft_tensor **out);

/* Normalisation. weight/bias may be NULL. layer_norm normalises the last `nnorm` dims. */
int craft_group_norm(const craft_tensor *x, int groups, const craft_tensor *w, const craft_tensor *b,
                     double eps, craft_tensor **out);
/* act(group_norm(x)) for a craft_unary_op act (SiLU in diffusion models' ResNet blocks) in one pass
 * where the device has the fused kernel (the backward recomputes the normalised values instead of
 * keeping them), else the two ops; the same numbers either way. */
int craft_group_norm_act(const craft_tensor *x, int groups, const craft_tensor *w, const craft_tensor *b,
                         double eps, int act, craft_tensor **out);
int craft_layer_norm(const craft_tensor *x, int nnorm, const craft_tensor *w, const craft_tensor *b,
                     double eps, craft_tensor **out);
/* GEGLU (diffusers' feed-forward gate): with a = the first and g = the second half of x's last dim
 * (even), a * gelu(g) (exact GELU), in one pass where the device has the fused kernel (the backward
 * recomputes gelu(g)), else the same three ops (slices, gelu, mul); the same numbers either way. */
int craft_geglu(const craft_tensor *x, craft_tensor **out);
int craft_softmax(const craft_tensor *x, int dim, craft_tensor **out);
int craft_log_softmax(const craft_tensor *x, int dim, craft_tensor **out);

/* Scaled dot-product attention, q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv].
 * mask (additive, broadcastable to [..., Lq, Lk]) may be NULL; scale <= 0 means 1/sqrt(D).
 * Memory efficient: keeps only the per-row log-sum-exp for backward, never the score matrix. */
int craft_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
               double scale, int is_causal, craft_tensor **out);

/* Shape ops. */
int craft_concat(int n, craft_tensor **ts, int dim, craft_tensor **out);
/* pads: pairs (before, after) starting from the LAST dim, like torch.nn.functional.pad.
 * mode 0 constant, 1 reflect, 2 replicate. */
int craft_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value,
              craft_tensor **out);
/* mode 0 nearest, 1 bilinear; NCHW. align_corners as in PyTorch. */
int craft_interpolate(const craft_tensor *x, int64_t out_h, int64_t out_w, int mode, int align_corners,
                      craft_tensor **out);
int craft_avg_pool2d(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor **out);
int craft_embedding(const craft_tensor *weight, const craft_tensor *indices, craft_tensor **out);
/* Sinusoidal timestep embedding as diffusers' get_timestep_embedding. */
int craft_timestep_embedding(const craft_tensor *t, int dim, int flip_sin_to_cos, double downscale_freq_shift,
                             double scale, double max_period, craft_tensor **out);
int craft_l2_normalize(const craft_tensor *x, int dim, double eps, craft_tensor **out);
int craft_cosine_similarity(const craft_tensor *a, const craft_tensor *b, int dim, double eps,
                            craft_tensor **out);
/* reduction: 0 none, 1 mean, 2 sum. targets are int64 class indices. */
int craft_cross_entropy(const craft_tensor *logits, const craft_tensor *targets, int reduction,
                        double label_smoothing, craft_tensor **out);
int craft_mse_loss(const craft_tensor *a, const craft_tensor *b, int reduction, craft_tensor **out);

/* ---------------------------------------------------------------- random ---- */
/* Philox-4x32-10, counter based: element i of a draw with (seed, offset) depends only on
 * (seed, offset + i), never on threads or device. */
int craft_randn_(craft_tensor *t, uint64_t seed, uint64_t offset); /* N(0, 1), in place */
int craft_rand_(craft_tensor *t, uint64_t seed, uint64_t offset);  /* U[0, 1), in place */
void craft_philox4x32(uint64_t seed, uint64_t counter, uint32_t *out4);

/* ---------------------------------------------------------------- training -- */
int craft_adamw_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *m, craft_tensor *v,
                     double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step);
int craft_sgd_step(craft_tensor *param, const craft_tensor *grad, craft_tensor *momentum_buf, double lr,
                   double momentum, double weight_decay, int nesterov);
/* Scales the grads so their global L2 norm is at most max_norm; returns the norm before. */
int craft_clip_grad_norm(int n, craft_tensor **grads, double max_norm, double *total_norm);
int craft_ema_update(craft_tensor *ema, const craft_tensor *param, double decay);

/* ---------------------------------------------------------------- threads --- */
int craft_num_threads(void);
void craft_set_num_threads(int n);

/* ---------------------------------------------------------------- opencl ---- */
/* (section: opencl) */
/* The OpenCL back end (engine/cl/, kernels in kernels_cl/, docs/opencl.md). Device code
 * 1 + n is OpenCL device n, "cl:n": devices are numbered across every platform the ICD loader
 * finds, platforms sorted by name (then vendor, version), devices in their platform's order.
 * A cl tensor's storage holds a cl_mem in `data` (never dereference it; read with
 * craft_tensor_read / craft_item); craft_empty / craft_zeros / craft_copy_ / craft_fill_ and
 * craft_tensor_read / craft_tensor_write accept cl tensors. Each device has one in-order
 * queue: results are ready for any later command; craft_cl_synchronize waits for the device. */
typedef struct craft_cl_info {
    char name[256];
    char vendor[256];
    char platform[256]; /* platform name */
    char driver_version[128];
    char device_version[128];   /* "OpenCL 3.0 ..." */
    char opencl_c_version[128]; /* "OpenCL C 1.2 ..." */
    int64_t global_mem;         /* bytes */
    int64_t max_alloc;          /* bytes in one buffer at most */
    int64_t local_mem;          /* bytes per work-group */
    int32_t compute_units;
    int32_t max_work_group;
    int32_t fp16;           /* 1: cl_khr_fp16 (half compute); f16 storage works everywhere */
    int32_t fp64;           /* 1: cl_khr_fp64 */
    int32_t is_gpu;         /* CL_DEVICE_TYPE_GPU */
    int32_t platform_index; /* in craft's platform order */
} craft_cl_info;
/* Number of OpenCL devices (0 is not an error). No ICD loader platform at all (nothing
 * installed, or OCL_ICD_VENDORS pointing at an empty folder) is CRAFT_EDEVICE. */
int craft_cl_device_count(int *n);
int craft_cl_device_info(int index, craft_cl_info *out); /* index n of "cl:n" */
/* A copy of t on `device` (0 cpu, 1 + n cl:n), contiguous, same dtype; t itself (one more
 * reference) when it is already there. Differentiable: the gradient goes back to t's device. */
int craft_to_device(const craft_tensor *t, int device, craft_tensor **out);
/* Waits until every command queued on `device` (a device code; 0, the CPU, returns at once)
 * has finished. Errors a kernel met while running surface here. */
int craft_cl_synchronize(int device);
/* Work launched on `device` (a device code) since the process started: every craft kernel
 * enqueued plus every CLBlast routine call (one each, whatever CLBlast enqueues inside).
 * 0 for the CPU, whose kernels are plain calls. */
int craft_cl_launch_count(int device, int64_t *out);
/* Host round-trips on `device` since the process started: every time the host waited for the
 * device's queue (a blocking read or write, a synchronize, a wait of the back end's own). 0 for
 * the CPU. A training step should add none beyond the values the caller reads. */
int craft_cl_sync_count(int device, int64_t *out);
/* The device buffer pool of `device` (a device code), like craft_pool_get_stats; trim gives
 * its cached buffers back to the driver. */
int craft_cl_pool_stats(int device, craft_pool_stats *out);
int craft_cl_pool_trim(int device);

/* ============ sections below are filled by their subsystems (one each) ============ */

/* ---------------------------------------------------------------- io: json, safetensors */
/* (section: io) */
/* safetensors (engine/safetensors.c). A file is an 8-byte little-endian header length N, N bytes
 * of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
 * then the data area, which the tensors must cover exactly, back to back. Opening validates
 * every entry (dtype, <= 8 dims, byte counts, offsets, overlaps, gaps; header <= 100 MB) and
 * fails with CRAFT_EFORMAT naming the file and the tensor, or CRAFT_EIO when it cannot be read.
 * Known file dtypes: BOOL U8 I8 I16 U16 I32 U32 I64 U64 F16 BF16 F32 F64 F8_E5M2 F8_E4M3. */
typedef struct craft_safetensors craft_safetensors; /* opaque; holds the mapping */
/* Maps the file (private copy-on-write: writing into a zero-copy tensor never touches the
 * file). Free the handle with craft_st_close. */
int craft_st_open(const char *path, craft_safetensors **out);
/* The same from a buffer, which is copied (the caller keeps `buf`); `what` names it in
 * messages (may be NULL). */
int craft_st_open_memory(const void *buf, size_t len, const char *what, craft_safetensors **out);
/* Drops the handle; tensors loaded zero-copy keep the mapping alive until they are released. */
void craft_st_close(craft_safetensors *f);
int craft_st_count(const craft_safetensors *f);
/* Tensor i, 0 <= i < count, in file order (ascending data offsets); NULL when out of range.
 * Strings returned by craft_st_* live as long as the handle. */
const char *craft_st_name(const craft_safetensors *f, int i);
int craft_st_find(const craft_safetensors *f, const char *name); /* index or -1 */
/* dtype: the craft dtype that loading "as stored" gives (the stored one, except I16/U16 -> i32,
 * U32/U64 -> i64, F8_* -> f32); shape8 gets ndim entries. Any out-pointer may be NULL. */
int craft_st_info(const craft_safetensors *f, int i, int *dtype, int *ndim, int64_t *shape8);
const char *craft_st_dtype_name(const craft_safetensors *f, int i); /* as in the file: "F16" */
int64_t craft_st_nbytes(const craft_safetensors *f, int i); /* bytes in the file; -1 if out of range */
/* Address of tensor i's bytes inside the mapping (NULL if out of range), valid while the handle
 * is open: for checksums, and to tell zero-copy tensors from copies. */
const void *craft_st_raw(const craft_safetensors *f, int i);
const char *craft_st_metadata(const craft_safetensors *f, const char *key); /* NULL if absent */
int craft_st_metadata_count(const craft_safetensors *f);
const char *craft_st_metadata_key(const craft_safetensors *f, int i); /* NULL if out of range */
/* Loads tensor i as a craft_tensor: zero-copy (over the mapping) when the file dtype is
 * want_dtype (or want_dtype < 0, "as stored") and the data is aligned to the element size;
 * otherwise a converted copy (floats round to nearest even, floats to integers truncate toward
 * zero with NaN -> 0 and saturation, integers wrap, anything -> bool is != 0). */
int craft_st_load(craft_safetensors *f, int i, int want_dtype, craft_tensor **out);
/* Writes n named tensors (any craft dtype, any strides) and n_meta metadata pairs (n_meta 0: no
 * "__metadata__"), ordered like the reference writer (larger elements first, then by name), so
 * every tensor is aligned. Writes path.tmp, fsyncs it, then renames it over path. */
int craft_st_save(const char *path, int n, const char **names, craft_tensor **tensors, int n_meta,
                  const char **meta_keys, const char **meta_values);

/* JSON documents (engine/json.c) for model configs, scheduler configs and vocabularies: parsed
 * once, then walked by node number (0 is the root; children of a node are numbered
 * consecutively). Every accessor checks its node and index and answers -1 / NULL / an error
 * instead of reading out of bounds. Object keys keep the file's order; duplicate keys, integers
 * beyond int64 and files over 512 MB are CRAFT_EFORMAT (with line and column where it applies). */
typedef struct craft_json craft_json; /* a parsed document; free with craft_json_free */
enum {
    CRAFT_JSON_NULL = 0,
    CRAFT_JSON_FALSE = 1,
    CRAFT_JSON_TRUE = 2,
    CRAFT_JSON_INTEGER = 3,
    CRAFT_JSON_REAL = 4,
    CRAFT_JSON_STRING = 5,
    CRAFT_JSON_ARRAY = 6,
    CRAFT_JSON_OBJECT = 7
};
int craft_json_parse_file(const char *path, craft_json **out);
int craft_json_parse_string(const char *text, size_t len, const char *what, craft_json **out);
void craft_json_free(craft_json *doc);
int craft_json_node_count(const craft_json *doc);
int craft_json_type(const craft_json *doc, int node); /* CRAFT_JSON_*, -1: no such node */
/* Entries of an array or object, bytes of a string, 0 for scalars, -1: no such node. */
int64_t craft_json_length(const craft_json *doc, int node);
int craft_json_child(const craft_json *doc, int node, int i);          /* entry i's node, or -1 */
const char *craft_json_key(const craft_json *doc, int node, int i);    /* object key i, or NULL */
int craft_json_get(const craft_json *doc, int node, const char *key);  /* member's node, or -1 */
const char *craft_json_string(const craft_json *doc, int node);        /* NULL unless a string */
int craft_json_number(const craft_json *doc, int node, double *out);   /* integer or real */
int craft_json_integer(const craft_json *doc, int node, int64_t *out); /* integral values only */
int craft_json_bool(const craft_json *doc, int node, int *out);
/* Checks that `text` is JSON (CRAFT_EFORMAT with line and column if not), then writes it as
 * given, plus a final newline if missing, through path.tmp, fsync and a rename. */
int craft_json_write_file(const char *path, const char *text, size_t len);

/* ---------------------------------------------------------------- data: npy/npz, csv, images */
/* (section: data) */
/* Dense n-d arrays read from .npy / .npz files and images. `data` (row-major, C order) comes
 * from craft_alloc and belongs to the array: craft_array_free() gives it back and zeroes the
 * struct (freeing a zeroed array does nothing). dtype is a craft_dtype; npy types that craft
 * lacks are widened without loss (i16/u16 -> i32, u32 -> i64, u64 -> i64 when every value
 * fits), big-endian data is byte-swapped and Fortran-order data transposed into C order.
 * Text arrays keep numpy's fixed-width elements: CRAFT_ARRAY_UNICODE ('U': itemsize / 4
 * UCS-4 code points in native byte order, NUL padded) and CRAFT_ARRAY_BYTES ('S'). */
enum { CRAFT_ARRAY_UNICODE = 100, CRAFT_ARRAY_BYTES = 101 };
typedef struct craft_array {
    int32_t dtype; /* craft_dtype, or CRAFT_ARRAY_UNICODE / CRAFT_ARRAY_BYTES */
    int32_t ndim;  /* 0 .. 8 */
    int64_t shape[8];
    int64_t numel;
    int64_t itemsize; /* bytes per element */
    void *data;       /* NULL when nbytes is 0 (and for header-only reads) */
    size_t nbytes;    /* numel * itemsize */
} craft_array;
void craft_array_free(craft_array *a);
/* Moves a numeric array into a new tensor without copying (the tensor now owns the memory and
 * `a` is emptied). Text arrays are refused. */
int craft_array_to_tensor(craft_array *a, craft_tensor **out);
/* Element i (flat index) of a text array as NUL-terminated UTF-8, padding dropped. */
int craft_array_string(const craft_array *a, int64_t i, char *buf, size_t bufsize);

/* .npy (versions 1, 2, 3). `what` names the buffer in messages. */
int craft_npy_read_file(const char *path, craft_array *out);
int craft_npy_parse(const void *buf, size_t len, const char *what, craft_array *out);
/* Writes version 1.0, little-endian. bf16 has no numpy type and is refused. */
int craft_npy_write_file(const char *path, const craft_array *a);

/* .npz: a zip of .npy members (stored or deflate; zip64 fine). A handle is not thread safe. */
typedef struct craft_npz craft_npz;
int craft_npz_open(const char *path, craft_npz **out);
/* Reads from memory (copied; the caller may free buf at once). */
int craft_npz_open_buffer(const void *buf, size_t len, const char *what, craft_npz **out);
int craft_npz_count(const craft_npz *z);
/* Member i's name with the ".npy" suffix dropped ("train_images"); NULL if out of range.
 * Valid until craft_npz_close. */
const char *craft_npz_name(const craft_npz *z, int i);
int craft_npz_find(const craft_npz *z, const char *name); /* index, or -1 */
/* Member `name` ("train_images" or "train_images.npy"). craft_npz_info reads only the
 * header: dtype, ndim, shape, numel, itemsize and nbytes are set, data stays NULL. */
int craft_npz_read(craft_npz *z, const char *name, craft_array *out);
int craft_npz_info(craft_npz *z, const char *name, craft_array *out);
void craft_npz_close(craft_npz *z);
/* Writing: members are kept in memory and written by close (which frees w, also on
 * failure). compress: 0 stored (np.savez), 1 deflate (np.savez_compressed). */
typedef struct craft_npz_writer craft_npz_writer;
int craft_npz_writer_open(const char *path, int compress, craft_npz_writer **out);
int craft_npz_writer_add(craft_npz_writer *w, const char *name, const craft_array *a);
int craft_npz_writer_close(craft_npz_writer *w);

/* CSV (RFC 4180 quoting, CRLF or LF, optional UTF-8 BOM; blank lines are skipped). Every
 * row must have as many fields as the first. Cells are strings, valid until craft_csv_free. */
typedef struct craft_csv craft_csv;
int craft_csv_read_file(const char *path, int has_header, craft_csv **out);
int craft_csv_parse(const char *buf, size_t len, const char *what, int has_header, craft_csv **out);
int craft_csv_rows(const craft_csv *c); /* data rows, header excluded */
int craft_csv_cols(const craft_csv *c);
const char *craft_csv_header(const craft_csv *c, int col); /* NULL without a header */
int craft_csv_column_index(const craft_csv *c, const char *name, int *col);
const char *craft_csv_cell(const craft_csv *c, int row, int col); /* NULL if out of range */
int craft_csv_row_line(const craft_csv *c, int row);              /* 1-based line where the row starts */
/* Whole-cell numbers; the message names file, line and column. */
int craft_csv_cell_double(const craft_csv *c, int row, int col, double *out);
int craft_csv_cell_int64(const craft_csv *c, int row, int col, int64_t *out);
void craft_csv_free(craft_csv *c);
/* Writer: fields are quoted when they need it; every row must have the first row's width.
 * A NULL cell is written empty. close flushes and frees w (also on failure). */
typedef struct craft_csv_writer craft_csv_writer;
int craft_csv_writer_open(const char *path, craft_csv_writer **out);
int craft_csv_writer_row(craft_csv_writer *w, int n, const char **cells);
int craft_csv_writer_close(craft_csv_writer *w);

/* Images (PNG, JPEG, BMP; other formats are refused) into u8 [h, w, c].
 * want_channels 0 keeps the file's channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA); 1-4
 * converts. The 16-bit variants give i32 [h, w, c] in 0..65535 (8-bit files are scaled by
 * 257). Decoded images are capped at 1 GiB. */
int craft_image_read(const char *path, int want_channels, craft_array *out);
int craft_image_decode(const void *buf, size_t len, const char *what, int want_channels, craft_array *out);
int craft_image_read16(const char *path, int want_channels, craft_array *out);
int craft_image_decode16(const void *buf, size_t len, const char *what, int want_channels, craft_array *out);
int craft_image_write_png(const char *path, int h, int w, int c, const uint8_t *hwc);

/* Image processing on float CHW planes (c, h, w), dense, caller-owned; dst must not overlap
 * src unless said. area: exact box average with fractional pixel coverage (any scale).
 * bilinear: PyTorch interpolate(mode="bilinear", align_corners=False, antialias=False). */
int craft_resize_area(const float *src, int c, int h, int w, float *dst, int oh, int ow);
int craft_resize_bilinear(const float *src, int c, int h, int w, float *dst, int oh, int ow);
/* torchvision CenterCrop offsets: round((h - oh) / 2) with ties to even; oh <= h, ow <= w. */
int craft_center_crop(const float *src, int c, int h, int w, float *dst, int oh, int ow);
/* Flips; dst may be src (in place). */
int craft_flip_horizontal(const float *src, int c, int h, int w, float *dst);
int craft_flip_vertical(const float *src, int c, int h, int w, float *dst);
/* u8 HWC -> f32 CHW: x / 255, then (x - mean[ch]) / std[ch] in float32, as torchvision's
 * ToTensor + Normalize. mean / std may be NULL (0 / 1). */
int craft_u8_hwc_to_f32_chw(const uint8_t *src, int h, int w, int c, const float *mean, const float *std,
                            float *dst);
/* f32 CHW -> u8 HWC: maps [lo, hi] to [0, 255], floor(x * 255 + 0.5) clamped (NaN -> 0),
 * as torchvision's save_image does for [0, 1]. */
int craft_f32_chw_to_u8_hwc(const float *src, int c, int h, int w, float lo, float hi, uint8_t *dst);

/* ---------------------------------------------------------------- phantoms and oracle */
/* (section: phantom) */
/* Procedural "clinical phantoms" whose findings are set by continuous parameters, and an oracle
 * auditor that measures those findings back from pixels only. See docs/phantoms.md.
 * Modalities: 0 "cxr", 1 "fundus", 2 "derm", 3 "histo". Images are CHW float32 planar RGB in
 * [0,1] (3 x size x size floats per image, images back to back: an NCHW tensor's data), any
 * size 32..256 (generator) or 32..512 (oracle). Class 0 is normal / benign / nevus.
 * Name getters return NULL (counts -1) for bad indices, with the error set. Strings are static. */
int craft_phantom_modality_count(void);
const char *craft_phantom_modality_name(int m);
int craft_phantom_modality_from_name(const char *name, int *m);
int craft_phantom_class_count(int m);
const char *craft_phantom_class_name(int m, int cls);
int craft_phantom_param_count(int m);
const char *craft_phantom_param_name(int m, int i);
/* n images into out (caller-owned, n*3*size*size floats); image k is a pure function of
 * (m, seed, first_index + k, class). cls < 0 draws each image's class uniformly from
 * (seed, index). labels (n) and params (n * param_count) may be NULL. */
int craft_phantom_generate(int m, int n, int size, uint64_t seed, uint64_t first_index, int cls, float *out,
                           int32_t *labels, float *params);
/* In-place corruption for robustness checks: Gaussian blur (sigma in pixels, 0 = none), then
 * additive Gaussian noise of sd noise_sd (keyed by seed and image position), clamped to [0,1]. */
int craft_phantom_degrade(int n, int size, float *images, double blur_sigma, double noise_sd, uint64_t seed);
int craft_oracle_measure_count(int m);
const char *craft_oracle_measure_name(int m, int i);
int craft_oracle_item_count(int m);
const char *craft_oracle_item_name(int m, int i);
int craft_oracle_item_class(int m, int i); /* the class whose checklist item i belongs to */
/* Measures n images (CHW float32 in [0,1], size >= 32; inputs under 64 px are resampled to 64).
 * Outputs, each may be NULL: measures (n * measure_count), labels (n), items (n * item_count,
 * 0/1 verdicts). A label is CRAFT_ORACLE_UNDETERMINED (-1) when the oracle could not measure
 * the image (no lung fields, no lesion, no fundus disc): it never turns that into a class, and
 * such an image satisfies no checklist item. */
#define CRAFT_ORACLE_UNDETERMINED (-1)
int craft_oracle_audit(int m, int n, int size, const float *images, float *measures, int32_t *labels,
                       uint8_t *items);

/* ---------------------------------------------------------------- tokenizer */
/* (section: tokenizer) */
/* CLIP byte-level BPE tokenizer. Gives the ids of transformers' CLIPTokenizer (5.x, backed by
 * HF tokenizers; the same as CLIPTokenizerFast of 4.x): NFC, whitespace runs to one space,
 * lower-case (per character), CLIP's regex split, byte-to-unicode mapping, BPE with "</w>".
 * No ftfy and no HTML unescaping (that reference does neither). Invalid UTF-8 in the text is
 * read as Python's bytes.decode("utf-8", "replace") would: one U+FFFD per maximal bad subpart.
 * A tokenizer owns all its memory (craft_tokenizer_free); it is not safe to encode from two
 * threads at once (the per-word BPE cache is shared). */
typedef struct craft_tokenizer craft_tokenizer;
/* vocab.json + merges.txt as transformers saves them; start/end tokens "<|startoftext|>" and
 * "<|endoftext|>" (looked up by string), pad = end token. */
int craft_tokenizer_load(const char *vocab_json, const char *merges_txt, craft_tokenizer **out);
/* open_clip / OpenAI CLIP bpe_simple_vocab_16e6.txt.gz: merges only; the vocabulary is the 256
 * byte symbols, their "</w>" forms, the first 48894 merges and the two special tokens. */
int craft_tokenizer_load_bpe_gz(const char *path, craft_tokenizer **out);
/* A diffusers tokenizer/ folder: vocab.json, merges.txt, and when present tokenizer_config.json
 * and special_tokens_map.json (bos/eos/unk/pad tokens, added_tokens_decoder). A pad token
 * named there (SD 2.x: "!") is, as in transformers, also matched as a special token in text. */
int craft_tokenizer_load_dir(const char *dir, craft_tokenizer **out);
void craft_tokenizer_free(craft_tokenizer *t);
int craft_tokenizer_set_pad(craft_tokenizer *t, int pad_id);               /* padding id only */
int craft_tokenizer_vocab_size(const craft_tokenizer *t);                  /* highest id + 1 */
int craft_tokenizer_token_id(const craft_tokenizer *t, const char *token); /* -1 if absent */
const char *craft_tokenizer_token(const craft_tokenizer *t, int id);       /* owned by t; NULL if none */
int craft_tokenizer_start_id(const craft_tokenizer *t);
int craft_tokenizer_end_id(const craft_tokenizer *t);
int craft_tokenizer_pad_id(const craft_tokenizer *t);
/* ids: max_len (>= 2) slots; writes start, tokens, end, then pad up to max_len (if pad != 0),
 * truncating so that the end token is kept; *n_out = count before padding. */
int craft_tokenizer_encode(craft_tokenizer *t, const char *text, int max_len, int pad, int32_t *ids,
                           int *n_out);
/* As transformers' decode(ids, skip_special_tokens=True): special tokens dropped, bytes decoded
 * (bad UTF-8 replaced by U+FFFD), "</w>" to a space, outer whitespace stripped. buf gets a
 * NUL-terminated string; CRAFT_EINVAL if it does not fit. */
int craft_tokenizer_decode(const craft_tokenizer *t, const int32_t *ids, int n, char *buf, size_t bufsize);

#ifdef __cplusplus
} /* CRAFT_CDEF_SKIP */
#endif
#endif /* CRAFT_H */
