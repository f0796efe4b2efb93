/* cpu_conv_prim.h: between the CPU convolution's oneDNN primitive layer (cpu_conv.c: the
 * primitive cache, layouts, scratchpads, Winograd's cap) and its kernels (cpu_conv_ops.c: the
 * table's conv and conv_bf16 entry points, Winograd in bands, channel sums). Private to both. */
#ifndef CRAFT_CPU_CONV_PRIM_H
#define CRAFT_CPU_CONV_PRIM_H
#include "cpu/cpu_kernels.h"
#include <oneapi/dnnl/dnnl.h>

enum { DIR_FWD = 0, DIR_BWD_DATA = 1, DIR_BWD_WEIGHTS = 2 };
enum { T_SRC = 0, T_WEI = 1, T_DST = 2 };

/* The cache key: all int64 so that memcmp is exact (no padding bytes). */
typedef struct conv_geom {
    int64_t n, ic, ih, iw, oc, oh, ow, kh, kw, groups;
    int64_t sh, sw, dh, dw;     /* dilation as oneDNN counts it: torch's minus one */
    int64_t plh, plw, prh, prw; /* padding left / right (right may be negative) */
    int64_t bias, wino;
    int64_t bf16;     /* forward inference with bf16 src and weights (cpu_conv_bf16) */
    int64_t sih, soh; /* a band of rows (conv_fwd_banded): the stored heights of src and dst, whose
                       * rows the band's plain memory strides over; 0 when dense */
} conv_geom;
#define GEOM_NARGS ((int)(sizeof(conv_geom) / sizeof(int64_t)))
_Static_assert(sizeof(conv_geom) % sizeof(int64_t) == 0, "conv_geom must be int64 only");

typedef struct conv_what {
    const char *op;
    const int64_t *x, *w;
} conv_what; /* op name, 4-d shapes */

/* Largest Winograd scratchpad accepted, in bytes (0: Winograd off; CRAFT_CONV_WINOGRAD in MB) */
size_t conv_winograd_cap(void);
/* Whether the rule wants Winograd for g (3x3, stride 1, enough channels and pixels) */
int conv_want_winograd(const conv_geom *g);
/* Whether g's fp32 forward really runs Winograd (the rule may want it while the cap refuses it) */
int conv_runs_winograd(const conv_geom *g, const conv_what *wh);
/* Runs direction dir (DIR_*) of g on plain buffers: src [N, IC, IH, IW], wei (goihw), dst
 * [N, OC, OH, OW] and bias [OC] (fwd: read; bwd-weights: written; NULL when g->bias is 0, or
 * when the bias gradient is not wanted). wt: the weight tensor when g->bf16 (its bf16 copy is
 * cached), else NULL. */
int conv_exec(const conv_geom *g, int dir, float *src, float *wei, float *dst, float *bias,
              const craft_tensor *wt, const conv_what *wh);
/* A tensor's primitive-layout copy carried from one direction's call to the next (the backward's
 * output gradient, read by both backward-data and backward-weights): set t, have 0 before the
 * first call, which keeps its reordered copy of tensor t; a later call whose primitive wants the
 * same layout reads it instead of reordering again. The caller frees buf (craft_free, size). */
typedef struct conv_keep {
    int t, have;
    void *buf;
    size_t size;
    dnnl_memory_desc_t md;
} conv_keep;
int conv_exec_keep(const conv_geom *g, int dir, float *src, float *wei, float *dst, float *bias,
                   const craft_tensor *wt, const conv_what *wh, conv_keep *keep);
#endif
