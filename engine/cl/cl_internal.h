/* cl_internal.h: what the OpenCL back end's files (engine/cl/) share: the table of OpenCL and
 * CLBlast entry points (loaded with dlopen), the per-device state, kernel ids, launch helpers,
 * the elementwise geometry and the back end's kernels (the entries of its table in
 * cl_backend.c). Only these files (and the OpenCL tests) include it and <CL/cl.h>; the rest of
 * the engine reaches the back end through its table (core/backend.h). docs/opencl.md
 * describes the design. */
#ifndef CRAFT_CL_INTERNAL_H
#define CRAFT_CL_INTERNAL_H
#include "core/backend.h"
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <clblast_c.h>
#include <pthread.h>

/* libOpenCL (the ICD loader) and libclblast are opened with dlopen on first use (cl_runtime.c),
 * so that libcraft links and runs without them: a machine with no OpenCL gets a clear
 * CRAFT_EDEVICE instead of a loader error. The calls below go through this table. */
#define CRAFT_CL_FUNCS(X)                                                                                    \
    X(clGetPlatformIDs)                                                                                      \
    X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo) X(clCreateContext) X(clReleaseContext)         \
        X(clCreateCommandQueue) X(clReleaseCommandQueue) X(clCreateProgramWithSource)                        \
            X(clCreateProgramWithBinary) X(clBuildProgram) X(clGetProgramInfo) X(clGetProgramBuildInfo)      \
                X(clReleaseProgram) X(clCreateKernel) X(clReleaseKernel) X(clSetKernelArg)                   \
                    X(clGetKernelWorkGroupInfo) X(clEnqueueNDRangeKernel) X(clCreateBuffer)                  \
                        X(clReleaseMemObject) X(clEnqueueReadBuffer) X(clEnqueueWriteBuffer)                 \
                            X(clEnqueueFillBuffer) X(clFinish) X(clEnqueueMarkerWithWaitList)          \
                                X(clWaitForEvents) X(clGetEventInfo) X(clReleaseEvent)
#define CRAFT_BLAST_FUNCS(X)                                                                                 \
    X(CLBlastSgemm)                                                                                          \
    X(CLBlastSgemmBatched) X(CLBlastSgemmStridedBatched) X(CLBlastHgemm) X(CLBlastHgemmBatched)              \
        X(CLBlastHgemmStridedBatched)
typedef struct {
#define CRAFT_CL_PTR(f) __typeof__(f) *f##_;
    CRAFT_CL_FUNCS(CRAFT_CL_PTR)
    CRAFT_BLAST_FUNCS(CRAFT_CL_PTR)
#undef CRAFT_CL_PTR
} craft_cl_api;
extern craft_cl_api craft_ocl;
#define clGetPlatformIDs craft_ocl.clGetPlatformIDs_
#define clGetPlatformInfo craft_ocl.clGetPlatformInfo_
#define clGetDeviceIDs craft_ocl.clGetDeviceIDs_
#define clGetDeviceInfo craft_ocl.clGetDeviceInfo_
#define clCreateContext craft_ocl.clCreateContext_
#define clReleaseContext craft_ocl.clReleaseContext_
#define clCreateCommandQueue craft_ocl.clCreateCommandQueue_
#define clReleaseCommandQueue craft_ocl.clReleaseCommandQueue_
#define clCreateProgramWithSource craft_ocl.clCreateProgramWithSource_
#define clCreateProgramWithBinary craft_ocl.clCreateProgramWithBinary_
#define clBuildProgram craft_ocl.clBuildProgram_
#define clGetProgramInfo craft_ocl.clGetProgramInfo_
#define clGetProgramBuildInfo craft_ocl.clGetProgramBuildInfo_
#define clReleaseProgram craft_ocl.clReleaseProgram_
#define clCreateKernel craft_ocl.clCreateKernel_
#define clReleaseKernel craft_ocl.clReleaseKernel_
#define clSetKernelArg craft_ocl.clSetKernelArg_
#define clGetKernelWorkGroupInfo craft_ocl.clGetKernelWorkGroupInfo_
#define clEnqueueNDRangeKernel craft_ocl.clEnqueueNDRangeKernel_
#define clCreateBuffer craft_ocl.clCreateBuffer_
#define clReleaseMemObject craft_ocl.clReleaseMemObject_
#define clEnqueueReadBuffer craft_ocl.clEnqueueReadBuffer_
#define clEnqueueWriteBuffer craft_ocl.clEnqueueWriteBuffer_
#define clEnqueueFillBuffer craft_ocl.clEnqueueFillBuffer_
#define clFinish craft_ocl.clFinish_
#define clEnqueueMarkerWithWaitList craft_ocl.clEnqueueMarkerWithWaitList_
#define clWaitForEvents craft_ocl.clWaitForEvents_
#define clGetEventInfo craft_ocl.clGetEventInfo_
#define clReleaseEvent craft_ocl.clReleaseEvent_
#define CLBlastSgemm craft_ocl.CLBlastSgemm_
#define CLBlastSgemmBatched craft_ocl.CLBlastSgemmBatched_
#define CLBlastSgemmStridedBatched craft_ocl.CLBlastSgemmStridedBatched_
#define CLBlastHgemm craft_ocl.CLBlastHgemm_
#define CLBlastHgemmBatched craft_ocl.CLBlastHgemmBatched_
#define CLBlastHgemmStridedBatched craft_ocl.CLBlastHgemmStridedBatched_
/* Loads libclblast once; CRAFT_EDEVICE naming the library when it is missing. */
int cl_blast_load(void);

/* Kernel names, in the order of the craft_unary_op / craft_binary_op enums where they are
 * per op (the host indexes them as K_UNARY + op). They must match kernels_cl/ exactly. */
#define CL_UNARY_OPS(X)                                                                                      \
    X(neg)                                                                                                   \
    X(exp) X(log) X(sqrt) X(rsqrt) X(abs) X(sin) X(cos) X(tanh) X(sigmoid) X(relu) X(silu) X(gelu)           \
        X(gelu_tanh) X(quick_gelu) X(square) X(reciprocal) X(softplus) X(log1p)
#define CL_BINARY_OPS(X) X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum)
#define CL_OTHER_KERNELS(X)                                                                                  \
    X(copy_1)                                                                                                \
    X(copy_2) X(copy_4) X(copy_8) X(convert) X(scalar_grad) X(minmax_mask) X(compare) X(clamp_fwd)           \
        X(clamp_grad) X(where_fwd) X(where_grad) X(axpy) X(scale) X(reduce_rows) X(reduce_rows_seq)          \
            X(maxmin_dim) X(maxmin_scatter) X(philox_fill) X(adamw) X(sgd) X(ema) X(clip_coef) X(clip_apply) CL_CONV_KERNELS(X)         \
                CL_NN_KERNELS(X)
/* convolution, pooling, resize, pad, concat, embedding kernels (kernels_cl/conv.cl, shape.cl) */
#define CL_CONV_KERNELS(X)                                                                                   \
    X(im2col)                                                                                                \
    X(col2im)                                                                                                \
    X(conv_direct) X(conv_igemm_fwd) X(conv_igemm_bwd) X(conv_igemm_fwd_h) X(avgpool_fwd) X(avgpool_bwd)     \
        X(interp_fwd) X(interp_bwd) X(pad_fwd) X(pad_bwd) X(embed_fwd) X(embed_bwd) X(timestep_emb)
/* norm, softmax, attention, loss kernels (kernels_cl/norm.cl, softmax.cl, attention.cl, loss.cl) */
#define CL_NN_KERNELS(X)                                                                                     \
    X(attn_softmax)                                                                                          \
    X(attn_prob)                                                                                             \
    X(attn_dscore) X(row_dot) X(softmax_fwd) X(softmax_bwd) X(norm_fwd) X(norm_bwd_x) X(gn_chan_sums)        \
        X(gn_wb) X(ln_wb) X(l2n_fwd) X(l2n_bwd) X(cos_fwd) X(cos_bwd) X(ce_fwd) X(ce_bwd) X(mse_grad)        \
            X(flash_fwd) X(flash_bwd_kv) X(flash_bwd_q) X(flash_fwd_h) X(gemm_f16) X(gn_act_pre)             \
                X(gemm_tiled)

enum {
#define CL_K_U(name) K_unary_##name,
#define CL_K_UG(name) K_unary_grad_##name,
#define CL_K_B(name) K_binary_##name,
#define CL_K_S(name) K_scalar_##name,
#define CL_K_O(name) K_##name,
    CL_UNARY_OPS(CL_K_U) CL_UNARY_OPS(CL_K_UG) CL_BINARY_OPS(CL_K_B) CL_BINARY_OPS(CL_K_S)
        CL_OTHER_KERNELS(CL_K_O) K_COUNT
#undef CL_K_U
#undef CL_K_UG
#undef CL_K_B
#undef CL_K_S
#undef CL_K_O
};
#define K_UNARY K_unary_neg
#define K_UNARY_GRAD K_unary_grad_neg
#define K_BINARY K_binary_add
#define K_SCALAR K_scalar_add

typedef struct cl_pool cl_pool; /* cl_memory.c */

/* Device codes 1 .. CRAFT_CL_MAX_DEVICES are cl:0 .. (the table in cl_backend.c). */
#define CRAFT_CL_MAX_DEVICES 4096

/* The back end's memory half (cl_memory.c, cl_transfer.c), in its table. Storages of cl
 * tensors hold a cl_mem in `data`: never dereference it on the host. */
int craft_cl_storage_init(craft_storage *s, int device, size_t nbytes);
int craft_cl_copy_(craft_tensor *dst, const craft_tensor *src); /* either side on the device */
int craft_cl_fill_(craft_tensor *t, double value);
int craft_cl_axpy_(craft_tensor *dst, double alpha, const craft_tensor *src);
int craft_cl_scale_(craft_tensor *t, double s);
/* nbytes at element offset elem_offset of t's storage (blocking). */
int craft_cl_read_bytes(const craft_tensor *t, int64_t elem_offset, void *buf, size_t nbytes);
int craft_cl_write_bytes(craft_tensor *t, int64_t elem_offset, const void *buf, size_t nbytes);
/* The elementwise kernels (cl_elementwise.c; core/backend.h's contracts; outputs f32 on the
 * inputs' device shaped like their broadcast, any strides). */
int craft_cl_unary(int op, const craft_tensor *a, craft_tensor *out);
int craft_cl_unary_grad(int op, const craft_tensor *x, const craft_tensor *g,
                        craft_tensor *out); /* g * op'(x) */
int craft_cl_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *out);
int craft_cl_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor *out);
int craft_cl_scalar_grad(int op, double s, int reverse, const craft_tensor *x, const craft_tensor *g,
                         craft_tensor *gx);
int craft_cl_compare(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *out);
int craft_cl_clamp(const craft_tensor *x, double lo, double hi, craft_tensor *y);
int craft_cl_clamp_grad(const craft_tensor *x, const craft_tensor *g, double lo, double hi, craft_tensor *gx);
int craft_cl_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor *y);
int craft_cl_where_grad(int side, const craft_tensor *cond, const craft_tensor *g, craft_tensor *gx);
int craft_cl_minmax_grad(int op, int which, const craft_tensor *a, const craft_tensor *b,
                         const craft_tensor *g, craft_tensor *gx);
/* kind 0 sum, 1 mean, 2 var, 3 sum of squares over dims (ndims 0: all); a new tensor. */
int craft_cl_reduce(int kind, const craft_tensor *a, int ndims, const int *dims, int correction, int keepdim,
                    craft_tensor **out);
/* the reduction kernels (cl_reduce.c) */
int craft_cl_reduce_rows(int kind, const craft_tensor *x, int64_t rows, int64_t rowlen, int correction,
                         craft_tensor *y);
int craft_cl_maxmin(int want_max, const craft_tensor *x, int64_t outer, int64_t n, int64_t inner,
                    craft_tensor *v, craft_tensor *ix);
int craft_cl_maxmin_grad(const craft_tensor *idx, const craft_tensor *g, int64_t outer, int64_t n,
                         int64_t inner, craft_tensor *gx);
/* random fills and optimisers (cl_train.c); craft_cl_philox_'s mode: 0 uniform, 1 normal
 * (double formulas; the float ones where the device lacks fp64), 2 normal with the float
 * formulas (tests of the no-fp64 path); t any f32 / f64 / f16 / bf16 tensor on the device. */
int craft_cl_philox_(craft_tensor *t, uint64_t seed, uint64_t offset, int mode);
int craft_cl_philox(craft_tensor *t, uint64_t seed, uint64_t offset, int normal);
int craft_cl_adamw(craft_tensor *p, const craft_tensor *g, craft_tensor *m, craft_tensor *v,
                   const craft_adamw_consts *c);
int craft_cl_sgd(craft_tensor *p, const craft_tensor *g, craft_tensor *buf, float neg_lr, float momentum,
                 float weight_decay, int nesterov);
int craft_cl_ema(craft_tensor *ema, const craft_tensor *p, float decay, float one_minus_decay);
int craft_cl_sum_squares(const craft_tensor *x, double *out);
int craft_cl_clip_grad_norm(int n, craft_tensor *const *grads, double max_norm, double *total);
/* Row-major SGEMM through CLBlast on C's device; offsets in elements into the storages. The
 * batched form takes one offset per matrix (a constant stride becomes a strided-batched call). */
int craft_cl_gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                  int64_t aoff, int64_t lda, const craft_tensor *B, int64_t boff, int64_t ldb, float beta,
                  craft_tensor *C, int64_t coff, int64_t ldc);
int craft_cl_gemm_batched(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const craft_tensor *A, const int64_t *aoff, int64_t lda, const craft_tensor *B,
                          const int64_t *boff, int64_t ldb, float beta, craft_tensor *C, const int64_t *coff,
                          int64_t ldc, int64_t batch);

int craft_cl_sum_rows(const craft_tensor *x, int64_t M, int64_t N, craft_tensor *y);
/* convolution (cl_conv.c) */
int craft_cl_conv(int dir, const craft_conv_dims *d, int fwd_bias, craft_tensor *src, craft_tensor *wei,
                  craft_tensor *dst, craft_tensor *bias);
int craft_cl_channel_sums(const craft_tensor *g, int64_t n, int64_t c, int64_t s, craft_tensor *out);
/* How conv2d's forward runs on cl devices: 0 im2col + CLBlast GEMM, 1 the direct kernel, 2 the
 * implicit GEMM kernel (also the backward-data's: with 0 or 1 that is a GEMM + col2im); -1 (the
 * default) reads CRAFT_CL_CONV ("im2col", "direct" or "igemm"), else implicit GEMM wherever the
 * device runs its 256-work-item groups. Tests and the timing program set it. */
void craft_cl_conv_set_algo(int algo);
/* Caps the column matrix of one conv call at `bytes` (0: the default, from the device's
 * largest buffer); tests use a small cap to exercise the chunking over images. */
void craft_cl_conv_set_col_budget(int64_t bytes);
/* resampling, padding, lookups (cl_shape.c) */
int craft_cl_interpolate(const craft_tensor *x, int mode, int align_corners, craft_tensor *y);
int craft_cl_interpolate_grad(const craft_tensor *g, int mode, int align_corners, craft_tensor *gx);
int craft_cl_avg_pool(const craft_tensor *x, int kernel, int stride, int padding, craft_tensor *y);
int craft_cl_avg_pool_grad(const craft_tensor *g, int kernel, int stride, int padding, craft_tensor *gx);
int craft_cl_pad(const craft_tensor *x, int npairs, const int64_t *pads, int mode, double value,
                 craft_tensor *y);
int craft_cl_pad_grad(const craft_tensor *g, int npairs, const int64_t *pads, int mode, craft_tensor *gx);
int craft_cl_embedding(const craft_tensor *w, const craft_tensor *idx, craft_tensor *y);
int craft_cl_embedding_grad(const craft_tensor *g, const craft_tensor *idx, craft_tensor *gw);
int craft_cl_timestep_embedding(const craft_tensor *t, const float *freq, int dim, int flip_sin_to_cos,
                                double scale, craft_tensor *y);
/* norms, softmax (cl_norm.c, cl_softmax.c) */
int craft_cl_group_norm(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t groups,
                        double eps, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd);
int craft_cl_group_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                             const craft_tensor *rstd, const craft_tensor *g, int64_t groups,
                             craft_tensor *gx, craft_tensor *gw, craft_tensor *gb);
int craft_cl_group_norm_act(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                            int64_t groups, double eps, int act, craft_tensor *y, craft_tensor *mean,
                            craft_tensor *rstd);
int craft_cl_group_norm_act_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                                 const craft_tensor *mean, const craft_tensor *rstd, const craft_tensor *g,
                                 int64_t groups, int act, craft_tensor *gx, craft_tensor *gw,
                                 craft_tensor *gb);
int craft_cl_layer_norm(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t D,
                        double eps, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd);
int craft_cl_layer_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                             const craft_tensor *rstd, const craft_tensor *g, int64_t D, craft_tensor *gx,
                             craft_tensor *gw, craft_tensor *gb);
int craft_cl_softmax(const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, int log,
                     craft_tensor *y);
int craft_cl_softmax_grad(const craft_tensor *y, const craft_tensor *g, int64_t outer, int64_t n,
                          int64_t inner, int log, craft_tensor *gx);
/* attention (cl_attention.c) */
int craft_cl_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                  const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse);
int craft_cl_sdpa_grad(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                       const craft_tensor *lse, const craft_tensor *g, craft_tensor *dq, craft_tensor *dk,
                       craft_tensor *dv);
/* The bytes of score blocks sdpa on a cl device may hold at once (0: min(max_alloc / 8,
 * 128 MiB), at least 8 MiB); tests make it small to run many chunks. */
void craft_cl_sdpa_set_chunk_bytes(int64_t bytes);
/* Flash attention (cl_flash.c, kernels_cl/flash.cl): the forward when it serves the geometry
 * (*served 1), else *served 0 and nothing done. */
int cl_flash_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
                  double scale, int causal, craft_tensor *y, craft_tensor *lse, int *served);
/* ... and its backward (sdpa_grad's contract), likewise */
int cl_flash_sdpa_grad(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                       const craft_tensor *lse, const craft_tensor *gy, craft_tensor *dq, craft_tensor *dk,
                       craft_tensor *dv, int *served);
/* sdpa's algorithm on cl devices: 0 the GEMM path, 1 flash where it serves (the default),
 * -1 CRAFT_CL_SDPA ("gemm" or "flash") else the default. Tests and the timing program set it. */
void craft_cl_sdpa_set_algo(int algo);
/* Caps the flash kernel's query rows per work-group and keys per tile (0: no cap), so that
 * tests cross many tile edges with small shapes. */
void craft_cl_flash_set_tiles(int bq, int bk);
/* The fp16 compute precision (cl_f16.c; core/backend.h's gemm_f16, conv_f16, sdpa_f16). */
int craft_cl_gemm_f16(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                      const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff,
                      int64_t ldb, float beta, craft_tensor *C, const int64_t *coff, int64_t ldc,
                      int64_t batch, int keep_b);
int craft_cl_conv_f16(const craft_conv_dims *d, int fwd_bias, craft_tensor *src, craft_tensor *wei,
                      craft_tensor *dst, craft_tensor *bias);
int craft_cl_sdpa_f16(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                      const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse);
/* A weight's f16 copy from the device's cache: rows x cols at element off of w (row stride ld)
 * as a contiguous f16 tensor on w's device (*out: one reference), converted on a miss. */
int cl_f16_weight(const craft_tensor *w, int64_t off, int64_t rows, int64_t cols, int64_t ld,
                  craft_tensor **out);
/* A contiguous f16 copy of t on its device (one conversion pass; *out: one reference). */
int cl_f16_copy(const craft_tensor *t, craft_tensor **out);
/* conv_f16's launch (cl_conv.c): the implicit-GEMM forward over f16 x and w; *served 0 (nothing
 * done) where the device's work-groups are too small for it. */
int cl_conv_igemm_f16(const craft_conv_dims *g, const craft_tensor *xh, const craft_tensor *wh,
                      const craft_tensor *b, craft_tensor *dst, int *served);
/* flash_fwd_h's launch (cl_flash.c) over f16 q, k, v: *served 0 (nothing done) where the flash
 * kernel does not serve the geometry (head dim above 256, tiles that do not fit). */
int cl_flash_sdpa_f16(const craft_tensor *qh, const craft_tensor *kh, const craft_tensor *vh,
                      const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse,
                      int *served);
/* losses (cl_loss.c) */
int craft_cl_l2_normalize(const craft_tensor *x, int64_t outer, int64_t n, int64_t inner, double eps,
                          craft_tensor *y, craft_tensor *den);
int craft_cl_l2_normalize_grad(const craft_tensor *y, const craft_tensor *den, const craft_tensor *g,
                               int64_t outer, int64_t n, int64_t inner, craft_tensor *gx);
int craft_cl_cosine(const craft_tensor *a, const craft_tensor *b, int64_t outer, int64_t n, int64_t inner,
                    double eps, craft_tensor *y, craft_tensor *norms);
int craft_cl_cosine_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *y,
                         const craft_tensor *norms, const craft_tensor *g, int64_t outer, int64_t n,
                         int64_t inner, craft_tensor *ga, craft_tensor *gb);
int craft_cl_cross_entropy(const craft_tensor *lp, const craft_tensor *targets, int64_t N, int64_t C,
                           int64_t inner, int reduction, double smoothing, craft_tensor *y);
int craft_cl_cross_entropy_grad(const craft_tensor *lp, const craft_tensor *targets, const craft_tensor *g,
                                int64_t N, int64_t C, int64_t inner, int reduction, double smoothing,
                                double gscale, craft_tensor *gx);
int craft_cl_mse(const craft_tensor *a, const craft_tensor *b, int reduction, craft_tensor *y);
int craft_cl_mse_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *g, int reduction,
                      double scale, craft_tensor *ga, craft_tensor *gb);
/* Builds an OpenCL C source on device code `device` and drops it: CRAFT_EDEVICE with the
 * build log in the message when it does not compile (tests). */
int craft_cl_build_check(int device, const char *source);

/* A host staging ring (cl_stage.c): host copies that non-blocking writes read from, so that the
 * caller's memory is free at once and the host does not wait for the queue. Its two halves are
 * reused in turn: entering a half waits for a marker enqueued when that half was last left
 * (long done, unless the host runs a half-ring of work ahead of the device). */
struct craft_cl_dev;
typedef struct {
    char *host;
    size_t size, head;
    int cur; /* the half head is in (head may sit at its end) */
    cl_event mark[2];
} cl_stage;
#define CL_UPLOAD_RING ((size_t)8 << 20)
/* Allocates st's host memory (size bytes); CRAFT_ENOMEM naming what. */
int cl_stage_init(cl_stage *st, size_t size, const char *what);
/* n bytes (at most half the ring) of st for the next write; *off their offset. d->lock held. */
int cl_stage_take(struct craft_cl_dev *d, cl_stage *st, size_t n, size_t *off);

typedef struct craft_cl_dev {
    int index; /* n of cl:n */
    cl_platform_id platform;
    cl_device_id id;
    craft_cl_info info;
    int correct_div_sqrt; /* -cl-fp32-correctly-rounded-divide-sqrt is allowed */
    size_t max_wg;        /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    /* made on first use (cl_dev_get), under lock */
    int ready;
    cl_context ctx;
    cl_command_queue queue;
    cl_program program;
    cl_kernel kernels[K_COUNT];
    size_t kernel_wg[K_COUNT]; /* CL_KERNEL_WORK_GROUP_SIZE, 0 until asked */
    pthread_mutex_t lock;      /* setup, kernel arguments + enqueue, CLBlast calls */
    cl_pool *pool;
    cl_mem geo_ring;   /* kernel geometries (cl_launch_geo): CL_GEO_RING bytes */
    cl_stage geo_host; /* their host copies, read by non-blocking writes */
    cl_stage upload;   /* host copies of small uploads (craft_cl_write_bytes) */
    int64_t launches; /* kernels enqueued + CLBlast routine calls (craft_cl_launch_count) */
    int64_t syncs;    /* host waits on the queue (craft_cl_sync_count); under lock */
} craft_cl_dev;
#define CL_GEO_RING ((size_t)1 << 18)

/* The device with craft device code `code` (1 + n), its context, queue and program ready.
 * `op` names the caller in messages. */
int cl_dev_get(int code, const char *op, craft_cl_dev **out);
/* Device n's entry (discovery only, nothing built), or NULL with the error set. */
craft_cl_dev *cl_dev_entry(int n);
/* craft_fail(CRAFT_EDEVICE or CRAFT_ENOMEM, "<what> on cl:n: <CL error name> (<code>)"). */
int cl_fail(cl_int err, const craft_cl_dev *d, const char *what);
const char *cl_err_name(cl_int err);

/* Kernel arguments: a value (size, &value) or local memory (size, NULL). */
typedef struct {
    size_t size;
    const void *ptr;
} cl_arg;
#define CLA(x) ((cl_arg){sizeof(x), &(x)})
/* Sets the arguments and enqueues kid over `global` work-items (local 0: the runtime picks). */
int cl_launch(craft_cl_dev *d, int kid, int nargs, const cl_arg *args, size_t global, size_t local);
/* cl_launch for a kernel whose first two arguments are its geometry (gsize bytes at geo, a
 * struct of long / int / float fields mirrored in kernels_cl/), passed through the device's
 * geometry ring instead of by value (kernels_cl/common.cl says why), then args. */
int cl_launch_geo(craft_cl_dev *d, int kid, const void *geo, size_t gsize, int nargs, const cl_arg *args,
                  size_t global, size_t local);
/* The largest power of two <= min(cap, kernel kid's work-group limit). */
size_t cl_pow2_local(craft_cl_dev *d, int kid, size_t cap);
/* A global size for grid-stride loops over n items. */
size_t cl_global_for(int64_t n);

/* Counts one host wait on d's queue (craft_cl_sync_count). */
void cl_count_sync(craft_cl_dev *d);

/* Builds `source` for d (tests use it to see a build failure's message). */
int cl_build_program(craft_cl_dev *d, const char *const *sources, int nsources, const char *options,
                     cl_program *out);

/* Buffers (cl_memory.c). The storage of a cl tensor holds a cl_mem in `data`. */
int cl_pool_alloc(craft_cl_dev *d, size_t nbytes, cl_mem *out);
void cl_pool_free(craft_cl_dev *d, cl_mem m, size_t nbytes);
void cl_pool_destroy(craft_cl_dev *d);
static inline cl_mem cl_mem_of(const craft_tensor *t) { return (cl_mem)t->storage->data; }

/* Elementwise geometry; mirrors craft_geom in kernels_cl/common.cl. */
typedef struct {
    cl_long shape[8];
    cl_long st[4][8];
    cl_long off[4];
    cl_int ndim;
    cl_int pad[3];
} cl_geom;
/* Geometry of nargs tensors broadcast to (ndim, shape), coalesced; returns the element count. */
int64_t cl_geom_make(cl_geom *g, int nargs, const craft_tensor *const *ts, int ndim, const int64_t *shape);
/* Runs elementwise kernel kid: arguments (geom, n, buffers of ts[0..nargs), extra...). */
int cl_elementwise(craft_cl_dev *d, int kid, int nargs, const craft_tensor *const *ts, int ndim,
                   const int64_t *shape, int nextra, const cl_arg *extra);

/* A fresh contiguous tensor on device code; NULL with the error set. */
craft_tensor *cl_new(int ndim, const int64_t *shape, int dtype, int code);

/* Shared by the row-wise kernels (norms, softmax, attention, losses; cl_softmax.c). */
/* Launches line kernel kid over `lines` lines of n elements, `inner` apart: args, then LX. */
int cl_nn_lines(craft_cl_dev *d, int kid, int nargs, const cl_arg *args, int64_t lines, int64_t n,
                int64_t inner);
/* ... for a kernel with a geometry (cl_launch_geo) */
int cl_nn_lines_geo(craft_cl_dev *d, int kid, const void *geo, size_t gsize, int nargs, const cl_arg *args,
                    int64_t lines, int64_t n, int64_t inner);
/* craft's tiled GEMM (cl_gemm_tiled.c, kernels_cl/gemm.cl): gemm's contract (core/backend.h)
 * over f32 operands, or f16 ones (half), on d. cl_gemm_tiled_ok: d's work-groups can hold it. */
int cl_gemm_tiled_ok(craft_cl_dev *d, int half);
int cl_gemm_tiled(craft_cl_dev *d, int half, char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const craft_tensor *A, const int64_t *aoff, int64_t lda, const craft_tensor *B,
                  const int64_t *boff, int64_t ldb, float beta, craft_tensor *C, const int64_t *coff,
                  int64_t ldc, int64_t batch);
/* The f32 GEMM's choice on d (cl_gemm_tiled.c): *tiled 1 for craft's kernel, 0 for CLBlast (`blast`,
 * timed against it on these operands the first time a shape class is met, in tune mode). */
typedef int (*cl_gemm_blast_fn)(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha,
                                const craft_tensor *A, const int64_t *aoff, int64_t lda,
                                const craft_tensor *B, const int64_t *boff, int64_t ldb, float beta,
                                craft_tensor *C, const int64_t *coff, int64_t ldc, int64_t batch);
int cl_gemm_pick(craft_cl_dev *d, char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const craft_tensor *A, const int64_t *aoff, int64_t lda, const craft_tensor *B,
                 const int64_t *boff, int64_t ldb, int64_t batch, cl_gemm_blast_fn blast, int *tiled);
/* 0 CLBlast, 1 tiled, 2 tune: craft_cl_gemm_set_mode's, else CRAFT_CL_GEMM, else CLBlast. */
int cl_gemm_mode(craft_cl_dev *d);
/* Tests: force a mode (-1: back to CRAFT_CL_GEMM / the default); the shape classes known for
 * device code `device` and the timings made since the last forget; forget every class (the
 * files are read again on next use). */
void craft_cl_gemm_set_mode(int mode);
void cl_gemm_tune_stats(int device, int *classes, int *timed);
void cl_gemm_tune_forget(void);
/* The folder of craft's OpenCL caches (cl_runtime.c), made if missing; 0 when off or impossible. */
int cl_cache_dir(char *buf, size_t n);
#endif
