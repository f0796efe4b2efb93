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
#define CRAFT_TRY(expr)                                                                                      \
    do {                                                                                                     \
        int craft_rc_ = (expr);                                                                              \
        if (craft_rc_ != CRAFT_OK) return craft_rc_;                                                         \
    } while (0)

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

/* Writes code point c as UTF-8 to o (room for 4 bytes) and returns the byte count; surrogates
 * and values above U+10FFFF are written as U+FFFD (utf8.c). */
size_t craft_utf8_put(uint32_t c, char *o);

/* ---- broadcasting (broadcast.c) ---- */
/* Drops size-1 dims and merges neighbours that every operand traverses contiguously (strides in
 * any unit); returns the new ndim (0: a single element). Used by the CPU and OpenCL iterators. */
int craft_coalesce_dims(int nargs, int ndim, const int64_t *shape_in, int64_t (*strides_in)[CRAFT_MAX_DIMS],
                        int64_t *shape, int64_t (*st)[CRAFT_MAX_DIMS]);
/* Byte strides of t broadcast to (ndim, shape): size-1 or missing dims get 0. */
void craft_broadcast_strides(const craft_tensor *t, int ndim, const int64_t *shape, int64_t *strides_bytes);
/* Broadcast shape of a and b, or CRAFT_ESHAPE naming op and shapes. */
int craft_broadcast_shape(const char *op, const craft_tensor *a, const craft_tensor *b, int *ndim,
                          int64_t *shape);
char *craft_elem_ptr(const craft_tensor *t); /* address of element 0, as char* */

/* ---- autograd internals (autograd.c) ---- */
typedef struct craft_edge {
    struct craft_node *node; /* producing node of the input (retained), or NULL */
    craft_tensor *leaf;      /* the input itself when it is a leaf requiring grad (retained) */
    int32_t index;           /* output index in node */
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
    int32_t device; /* the outputs' device (zero gradients are made there) */
    int32_t lowp;   /* the forward computed in bf16 (mixed precision): so may the input gradients */
    const char *name;
    craft_edge *edges;                    /* n_in */
    craft_tensor *saved[CRAFT_MAX_SAVED]; /* detached aliases */
    int32_t saved_version[CRAFT_MAX_SAVED];
    int64_t out_shape[4][CRAFT_MAX_DIMS]; /* shapes of (up to 4) outputs */
    int32_t out_ndim[4];
    double sarg[8];   /* scalar arguments for backward */
    int64_t iarg[24]; /* integer arguments for backward */
    void *ctx;
    void (*ctx_free)(void *ctx);
    craft_backward_kernel backward;
    craft_custom_backward_fn custom;
    /* traversal state */
    uint64_t epoch;
    int32_t deps;
    int32_t freed;
    craft_tensor **grads; /* n_out accumulators during backward */
} craft_node;
/* A node for an op with the given inputs, or NULL when no gradient is needed (grad mode off or
 * no input requires grad). NULL inputs are allowed (optional bias). On allocation failure returns
 * NULL with *err set. */
craft_node *craft_node_new(const char *name, int n_in, const craft_tensor *const *inputs, int n_out,
                           craft_backward_kernel backward, int *err);
int craft_node_save(craft_node *n, const craft_tensor *t);           /* index of the saved slot */
void craft_node_attach(craft_node *n, craft_tensor *out, int index); /* sets out->node, requires_grad */
void craft_node_release(craft_node *n);
/* Common op epilogue: if grad needed, build node over inputs, save listed tensors, attach out.
 * Returns status. */
int craft_record(const char *name, int n_in, const craft_tensor *const *inputs, craft_tensor *out,
                 craft_backward_kernel backward, int n_save, const craft_tensor *const *save,
                 const double *sargs, int n_sargs, const int64_t *iargs, int n_iargs, craft_node **node_out);
/* Sum g over broadcast dims so that it has (ndim, shape). New reference. */
int craft_sum_to_shape(const craft_tensor *g, int ndim, const int64_t *shape, craft_tensor **out);
/* Checks outputs for NaN/Inf when the numeric guard is on. */
int craft_guard_check(const char *op, const char *what, const craft_tensor *t);
craft_tensor *craft_alias(const craft_tensor *t); /* new header sharing t's storage, no graph */
/* Backward timing (core/profile.c): around each node's backward, t0 = craft_prof_enter() and
 * craft_prof_leave(name, t0); nothing is timed unless craft_profile_backward(1) was called. */
double craft_prof_enter(void);
void craft_prof_leave(const char *name, double t0);
/* Whether input i of node n needs a gradient. */
#define CRAFT_NEEDS_GRAD(n, i) ((n)->edges[i].node != NULL || (n)->edges[i].leaf != NULL)
/* Philox-4x32-10 on a full 128-bit counter and 64-bit key (rng.c; the known-answer tests need
 * counters the public 64-bit-counter entry point cannot express). */
void craft_philox4x32_raw(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]);

#endif
