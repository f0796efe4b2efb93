/* cpu_conv.c: the CPU's convolution kernel, on oneDNN 2.6 primitives, and channel sums.
 *
 * The op layer (core/op_conv.c) runs both ops on the three primitives of one convolution
 * "geometry" (src [N, IC, IH, IW] -> dst [N, OC, OH, OW], weights [G, OC/G, IC/G, KH, KW]):
 * conv2d uses forward, backward-data and
 * backward-weights; conv_transpose2d is the same convolution read backwards (its forward is the
 * conv's backward-data, its input gradient the conv's forward, its weight gradient the conv's
 * backward-weights with x and gy swapped; PyTorch's [in, out/G, kh, kw] transposed weight is
 * exactly the conv's goihw weight). So both share one primitive cache and one code path.
 *
 * Layouts (measured, conv 3x3 N=16 C=128 16x16, 2 threads, fwd / bwd-data / bwd-weights):
 * primitives on plain nchw/oihw memory fall back to oneDNN's gemm path, 8.0 / 11.6 / 20.3 ms;
 * created with dnnl_format_tag_any they pick blocked layouts (nChw16c, OIhw16i16o) and run
 * jit:avx512_core at 2.4 / 2.4 / 2.5 ms, while a reorder of a 2 MB activation costs ~0.025 ms.
 * So craft tensors stay plain and every call reorders in and out of the primitive's layout
 * (temporaries from the pool); nothing blocked is kept between forward and backward.
 *
 * Winograd: oneDNN's jit_wino_4x3 does the same 3x3 stride-1 conv in 1.23 / 1.28 / 1.19 ms,
 * with a largest error of 2-4e-6 relative to the largest output (vs direct). It loses to the
 * direct kernel when channels or output pixels are few (C=4: 0.19 vs 0.013 ms; N=1 C=1280 8x8:
 * 12 vs 5.7 ms), hence the rule in want_winograd(), and its scratchpad can be huge, hence
 * winograd_cap(). CRAFT_CONV_WINOGRAD=0 turns it off.
 *
 * Primitives (descriptors, primitives, the reorders around them) are kept in a small LRU table
 * keyed by the geometry; scratchpads are user-managed, in one arena from the pool. */
#include "cpu/cpu_kernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <stdlib.h>

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

typedef struct conv_entry {
    conv_geom g;
    int live, refs, refused; /* refused: bf16 geometry with only a reference kernel */
    uint64_t stamp;
    int ready[3];
    dnnl_primitive_desc_t pd[3];
    dnnl_primitive_t prim[3];
    dnnl_primitive_t reorder[3][3]; /* [dir][tensor]: plain <-> primitive layout; NULL if equal */
    dnnl_memory_desc_t plain[3];
} conv_entry;

#define CACHE_SIZE 96
static conv_entry cache[CACHE_SIZE];
static uint64_t cache_clock;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static _Thread_local dnnl_stream_t stream; /* one per calling thread (kept for the thread's life) */
static dnnl_primitive_attr_t attr_user_scratch;

/* ---- error text ---- */
typedef struct conv_what {
    const char *op;
    const int64_t *x, *w;
} conv_what; /* op name, 4-d shapes */

static int dnnl_fail(const conv_what *wh, const char *step, dnnl_status_t s) {
    return craft_fail(s == dnnl_out_of_memory ? CRAFT_ENOMEM : CRAFT_EUNSUPPORTED,
                      "%s: input %s, weight %s: oneDNN %s failed (%s)", wh->op, craft_dims_str(4, wh->x),
                      craft_dims_str(4, wh->w), step, dnnl_status2str(s));
}

static int init_engine(const conv_what *wh) { /* under cache_mu */
    dnnl_status_t s = dnnl_success;
    if (!engine && (s = dnnl_engine_create(&engine, dnnl_cpu, 0)) != dnnl_success) {
        engine = NULL;
        return dnnl_fail(wh, "engine creation", s);
    }
    if (!stream && (s = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags)) != dnnl_success) {
        stream = NULL;
        return dnnl_fail(wh, "stream creation", s);
    }
    if (!attr_user_scratch) {
        if ((s = dnnl_primitive_attr_create(&attr_user_scratch)) != dnnl_success) {
            attr_user_scratch = NULL;
            return dnnl_fail(wh, "attr creation", s);
        }
        if ((s = dnnl_primitive_attr_set_scratchpad_mode(attr_user_scratch, dnnl_scratchpad_mode_user)) !=
            dnnl_success)
            return dnnl_fail(wh, "attr", s);
    }
    return CRAFT_OK;
}

/* Largest Winograd scratchpad accepted, in bytes (0: Winograd off). Its transformed tensors
 * grow with channels^2 and pixels: N=2 C=320 64x64 needs 68 / 100 MB (fwd / bwd-weights) for a
 * 2.5x speed-up, N=2 C=1280 16x16 254 / 728 MB for 1.25x. Default 128 MB; CRAFT_CONV_WINOGRAD=0
 * turns Winograd off, another number sets the cap in MB. */
static size_t winograd_cap(void) {
    static long long cap = -1;
    if (cap < 0) cap = (long long)cpu_env_mb("CRAFT_CONV_WINOGRAD", 128);
    return (size_t)cap;
}

static int want_winograd(const conv_geom *g) {
    return winograd_cap() > 0 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 0 &&
        g->dw == 0 && g->groups == 1 && g->ic >= 32 && g->oc >= 32 && g->ic % 16 == 0 && g->oc % 16 == 0 &&
        g->n * g->oh * g->ow >= 512;
}

static void entry_destroy(conv_entry *e) {
    for (int d = 0; d < 3; d++) {
        for (int t = 0; t < 3; t++)
            if (e->reorder[d][t]) dnnl_primitive_destroy(e->reorder[d][t]);
        if (e->prim[d]) dnnl_primitive_destroy(e->prim[d]);
        if (e->pd[d]) dnnl_primitive_desc_destroy(e->pd[d]);
    }
    memset(e, 0, sizeof *e);
}

static const dnnl_memory_desc_t *pd_md(const conv_entry *e, int dir, int t) {
    static const int q[3][3] = {{dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
                                {dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md},
                                {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md}};
    return dnnl_primitive_desc_query_md(e->pd[dir], (dnnl_query_t)q[dir][t], 0);
}

/* Whether tensor t is read (1) or written (0) by direction dir. */
static int is_input(int dir, int t) {
    return dir == DIR_FWD ? t != T_DST : dir == DIR_BWD_DATA ? t != T_SRC : t != T_WEI;
}

/* Makes *pd from op descriptor cd; a Winograd one whose scratchpad exceeds the cap is refused. */
static dnnl_status_t make_pd(dnnl_primitive_desc_t *pd, const void *cd, dnnl_alg_kind_t alg,
                             const_dnnl_primitive_desc_t hint) {
    dnnl_status_t s = dnnl_primitive_desc_create(pd, cd, attr_user_scratch, engine, hint);
    if (s) {
        *pd = NULL;
        return s;
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(*pd, dnnl_query_scratchpad_md, 0);
    if (alg == dnnl_convolution_winograd && smd && dnnl_memory_desc_get_size(smd) > winograd_cap()) {
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
        return dnnl_unimplemented;
    }
    return dnnl_success;
}

/* Creates what direction dir needs (and the forward descriptor, its hint). Under cache_mu. */
static int entry_prepare(conv_entry *e, int dir, const conv_what *wh) {
    if (e->ready[dir]) return CRAFT_OK;
    const conv_geom *g = &e->g;
    dnnl_memory_desc_t any[3], bias_md;
    dnnl_dims_t sd = {g->n, g->ic, g->ih, g->iw}, dd = {g->n, g->oc, g->oh, g->ow}, bd = {g->oc};
    dnnl_dims_t wd = {g->groups, g->oc / g->groups, g->ic / g->groups, g->kh, g->kw};
    dnnl_dims_t wd4 = {g->oc, g->ic, g->kh, g->kw};
    dnnl_dims_t st = {g->sh, g->sw}, dil = {g->dh, g->dw}, pl = {g->plh, g->plw}, pr = {g->prh, g->prw};
    int wnd = g->groups > 1 ? 5 : 4;
    const int64_t *wdims = g->groups > 1 ? wd : wd4;
    dnnl_status_t s;
    dnnl_data_type_t cdt = g->bf16 ? dnnl_bf16 : dnnl_f32; /* what the primitive computes on */
    int64_t sih = g->sih ? g->sih : g->ih, soh = g->soh ? g->soh : g->oh;
    dnnl_dims_t sst = {g->ic * sih * g->iw, sih * g->iw, g->iw, 1}, dst_st = {g->oc * soh * g->ow, soh * g->ow, g->ow, 1};
    if ((s = dnnl_memory_desc_init_by_strides(&e->plain[T_SRC], 4, sd, dnnl_f32, sst)) ||
        (s = dnnl_memory_desc_init_by_tag(&e->plain[T_WEI], wnd, wdims, dnnl_f32,
                                          wnd == 5 ? dnnl_goihw : dnnl_oihw)) ||
        (s = dnnl_memory_desc_init_by_strides(&e->plain[T_DST], 4, dd, dnnl_f32, dst_st)) ||
        (s = dnnl_memory_desc_init_by_tag(&any[T_SRC], 4, sd, cdt, dnnl_format_tag_any)) ||
        (s = dnnl_memory_desc_init_by_tag(&any[T_WEI], wnd, wdims, cdt, dnnl_format_tag_any)) ||
        (s = dnnl_memory_desc_init_by_tag(&any[T_DST], 4, dd, dnnl_f32, dnnl_format_tag_any)) ||
        (s = dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_x)))
        return dnnl_fail(wh, "memory descriptor", s);
    const dnnl_memory_desc_t *bmd = g->bias ? &bias_md : NULL;
    /* winograd first when the rule wants it, direct as the fallback */
    dnnl_alg_kind_t algs[2] = {g->wino ? dnnl_convolution_winograd : dnnl_convolution_direct,
                               dnnl_convolution_direct};
    if (!e->pd[DIR_FWD]) {
        for (int a = 0; a < 2; a++) {
            dnnl_convolution_desc_t cd;
            s = dnnl_dilated_convolution_forward_desc_init(&cd,
                                                           g->bf16 ? dnnl_forward_inference
                                                                   : dnnl_forward_training,
                                                           algs[a], &any[T_SRC], &any[T_WEI], bmd,
                                                           &any[T_DST], st, dil, pl, pr);
            if (!s) s = make_pd(&e->pd[DIR_FWD], &cd, algs[a], NULL);
            if (!s) break;
        }
        if (s) return dnnl_fail(wh, "forward convolution descriptor", s);
        const char *impl = NULL;
        if (g->bf16 &&
            (dnnl_primitive_desc_query(e->pd[DIR_FWD], dnnl_query_impl_info_str, 0, &impl) || !impl ||
             !strncmp(impl, "ref", 3))) {
            dnnl_primitive_desc_destroy(e->pd[DIR_FWD]);
            e->pd[DIR_FWD] = NULL;
            e->refused = 1;
        }
    }
    if (e->refused)
        return craft_fail(CRAFT_EUNSUPPORTED,
                          "%s: input %s, weight %s: oneDNN has only a reference bf16 kernel", wh->op,
                          craft_dims_str(4, wh->x), craft_dims_str(4, wh->w));
    if (dir != DIR_FWD && !e->pd[dir]) {
        for (int a = 0; a < 2; a++) {
            dnnl_convolution_desc_t cd;
            if (dir == DIR_BWD_DATA)
                s = dnnl_dilated_convolution_backward_data_desc_init(&cd, algs[a], &any[T_SRC], &any[T_WEI],
                                                                     &any[T_DST], st, dil, pl, pr);
            else
                s = dnnl_dilated_convolution_backward_weights_desc_init(&cd, algs[a], &any[T_SRC],
                                                                        &any[T_WEI], bmd, &any[T_DST], st,
                                                                        dil, pl, pr);
            if (!s) s = make_pd(&e->pd[dir], &cd, algs[a], e->pd[DIR_FWD]);
            if (!s) break;
        }
        if (s)
            return dnnl_fail(wh,
                             dir == DIR_BWD_DATA ? "backward-data descriptor" : "backward-weights descriptor",
                             s);
    }
    if (!e->prim[dir] && (s = dnnl_primitive_create(&e->prim[dir], e->pd[dir]))) {
        e->prim[dir] = NULL;
        return dnnl_fail(wh, "primitive creation", s);
    }
    for (int t = 0; t < 3; t++) {
        const dnnl_memory_desc_t *md = pd_md(e, dir, t);
        if (e->reorder[dir][t] || dnnl_memory_desc_equal(md, &e->plain[t])) continue;
        dnnl_primitive_desc_t rpd;
        const dnnl_memory_desc_t *from = is_input(dir, t) ? &e->plain[t] : md,
                                 *to = is_input(dir, t) ? md : &e->plain[t];
        s = dnnl_reorder_primitive_desc_create(&rpd, from, engine, to, engine, NULL);
        if (!s) {
            s = dnnl_primitive_create(&e->reorder[dir][t], rpd);
            if (s) e->reorder[dir][t] = NULL;
            dnnl_primitive_desc_destroy(rpd);
        }
        if (s) return dnnl_fail(wh, "reorder creation", s);
    }
    e->ready[dir] = 1;
    return CRAFT_OK;
}

/* Finds or makes the entry for g, prepared for dir, with a reference held. */
static int cache_get(const conv_geom *g, int dir, const conv_what *wh, conv_entry **out) {
    pthread_mutex_lock(&cache_mu);
    int rc = init_engine(wh);
    conv_entry *e = NULL;
    for (int i = 0; i < CACHE_SIZE && !rc; i++)
        if (cache[i].live && !memcmp(&cache[i].g, g, sizeof *g)) {
            e = &cache[i];
            break;
        }
    if (!e && !rc) {
        conv_entry *victim = NULL;
        for (int i = 0; i < CACHE_SIZE; i++) {
            if (!cache[i].live) {
                victim = &cache[i];
                break;
            }
            if (!cache[i].refs && (!victim || cache[i].stamp < victim->stamp)) victim = &cache[i];
        }
        if (!victim)
            rc = craft_fail(CRAFT_ENOMEM, "%s: all %d oneDNN primitive cache slots are in use", wh->op,
                            CACHE_SIZE);
        else {
            if (victim->live) entry_destroy(victim);
            victim->g = *g;
            victim->live = 1;
            e = victim;
        }
    }
    if (!rc) rc = entry_prepare(e, dir, wh);
    if (!rc) {
        e->refs++;
        e->stamp = ++cache_clock;
        *out = e;
    }
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

static void cache_put(conv_entry *e) {
    pthread_mutex_lock(&cache_mu);
    e->refs--;
    pthread_mutex_unlock(&cache_mu);
}

/* Scratchpads: one arena, grown to the largest size seen, serves every call, so that the
 * pool does not keep a cached block per scratchpad size (Winograd's run to tens of MB). A call
 * that finds the arena in use (another thread) takes a block of its own from the pool. */
static void *arena;
static size_t arena_size;
static int arena_busy;

static void *scratch_get(size_t n) {
    void *p = NULL;
    pthread_mutex_lock(&cache_mu);
    if (!arena_busy) {
        if (arena_size < n) {
            if (arena) craft_free(arena, arena_size);
            arena_size = (arena = craft_alloc(n)) ? n : 0;
        }
        if (arena) {
            arena_busy = 1;
            p = arena;
        }
    }
    pthread_mutex_unlock(&cache_mu);
    return p ? p : craft_alloc(n);
}

static void scratch_put(void *p, size_t n) {
    pthread_mutex_lock(&cache_mu);
    int mine = p == arena;
    if (mine) arena_busy = 0;
    pthread_mutex_unlock(&cache_mu);
    if (!mine) craft_free(p, n);
}

/* Runs direction dir of geometry g on plain buffers: src [N, IC, IH, IW], wei (goihw), dst
 * [N, OC, OH, OW] and bias [OC] (fwd: read; bwd-weights: written; NULL when g->bias is 0, or
 * when the bias gradient is not wanted: then it goes to a temporary). */
/* The bf16 weight cache's fill: the entry's weight reorder into dst. */
typedef struct {
    conv_entry *e;
    dnnl_memory_t from;
    const conv_what *wh;
} wei_job;
static int fill_weights(void *ctx, void *dst) {
    wei_job *j = ctx;
    dnnl_memory_t to;
    dnnl_status_t s = dnnl_memory_create(&to, pd_md(j->e, DIR_FWD, T_WEI), engine, dst);
    if (s) return dnnl_fail(j->wh, "memory", s);
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, j->from}, {DNNL_ARG_TO, to}};
    s = dnnl_primitive_execute(j->e->reorder[DIR_FWD][T_WEI], stream, 2, ra);
    if (!s) s = dnnl_stream_wait(stream);
    dnnl_memory_destroy(to);
    return s ? dnnl_fail(j->wh, "weight reorder", s) : CRAFT_OK;
}

static int conv_exec(const conv_geom *g, int dir, float *src, float *wei, float *dst, float *bias,
                     const craft_tensor *wt, const conv_what *wh) {
    float *user[3] = {src, wei, dst};
    if (g->n == 0) { /* nothing to convolve: weight (and bias) gradients are zero */
        if (dir == DIR_BWD_WEIGHTS) {
            memset(wei, 0, (size_t)(g->oc * (g->ic / g->groups) * g->kh * g->kw) * sizeof(float));
            if (bias) memset(bias, 0, (size_t)g->oc * sizeof(float));
        }
        return CRAFT_OK;
    }
    conv_entry *e;
    CRAFT_TRY(cache_get(g, dir, wh, &e));
    dnnl_memory_t mem_user[3] = {0}, mem_prim[3] = {0}, mem_bias = NULL, mem_scratch = NULL;
    void *tmp[3] = {0}, *scratch = NULL, *btmp = NULL;
    cpu_wref wref = {0}; /* bf16: the weights from the cache (g->bf16 with wt given) */
    size_t tmp_size[3] = {0}, scratch_size = 0, bsize = (size_t)g->oc * sizeof(float);
    int rc = CRAFT_OK;
    dnnl_status_t s = dnnl_success;
    for (int t = 0; t < 3 && !rc; t++) {
        if ((s = dnnl_memory_create(&mem_user[t], &e->plain[t], engine, user[t]))) {
            mem_user[t] = NULL;
            rc = dnnl_fail(wh, "memory", s);
            break;
        }
        if (!e->reorder[dir][t]) {
            mem_prim[t] = mem_user[t];
            continue;
        }
        const dnnl_memory_desc_t *md = pd_md(e, dir, t);
        if (t == T_WEI && g->bf16 && wt) { /* the cached bf16 weights, keyed by the geometry */
            wei_job j = {e, mem_user[t], wh};
            if ((rc = cpu_wcache_get(wt, (const int64_t *)g, GEOM_NARGS, dnnl_memory_desc_get_size(md),
                                     fill_weights, &j, &wref)))
                break;
            if ((s = dnnl_memory_create(&mem_prim[t], md, engine, wref.data))) {
                mem_prim[t] = NULL;
                rc = dnnl_fail(wh, "memory", s);
                break;
            }
            continue;
        }
        tmp_size[t] = dnnl_memory_desc_get_size(md);
        if (!(tmp[t] = craft_alloc(tmp_size[t]))) {
            rc = craft_fail_prefix(CRAFT_ENOMEM, "%s", wh->op);
            break;
        }
        if ((s = dnnl_memory_create(&mem_prim[t], md, engine, tmp[t]))) {
            mem_prim[t] = NULL;
            rc = dnnl_fail(wh, "memory", s);
            break;
        }
        if (is_input(dir, t)) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, mem_user[t]}, {DNNL_ARG_TO, mem_prim[t]}};
            if ((s = dnnl_primitive_execute(e->reorder[dir][t], stream, 2, ra)))
                rc = dnnl_fail(wh, "reorder", s);
        }
    }
    if (!rc && g->bias) {
        if (!bias && dir == DIR_BWD_WEIGHTS && !(bias = btmp = craft_alloc(bsize)))
            rc = craft_fail_prefix(CRAFT_ENOMEM, "%s", wh->op);
        if (!rc &&
            (s = dnnl_memory_create(&mem_bias,
                                    dnnl_primitive_desc_query_md(e->pd[dir],
                                                                 dir == DIR_FWD ? dnnl_query_weights_md
                                                                                : dnnl_query_diff_weights_md,
                                                                 1),
                                    engine, bias))) {
            mem_bias = NULL;
            rc = dnnl_fail(wh, "memory", s);
        }
    }
    if (!rc) {
        const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(e->pd[dir], dnnl_query_scratchpad_md, 0);
        scratch_size = smd ? dnnl_memory_desc_get_size(smd) : 0;
        if (scratch_size && !(scratch = scratch_get(scratch_size)))
            rc = craft_fail_prefix(CRAFT_ENOMEM, "%s", wh->op);
        if (!rc && smd && (s = dnnl_memory_create(&mem_scratch, smd, engine, scratch))) {
            mem_scratch = NULL;
            rc = dnnl_fail(wh, "memory", s);
        }
    }
    if (!rc) {
        static const int argid[3][3] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                                        {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
                                        {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST}};
        dnnl_exec_arg_t args[5];
        int na = 0;
        for (int t = 0; t < 3; t++) args[na++] = (dnnl_exec_arg_t){argid[dir][t], mem_prim[t]};
        if (mem_bias)
            args[na++] = (dnnl_exec_arg_t){dir == DIR_FWD ? DNNL_ARG_BIAS : DNNL_ARG_DIFF_BIAS, mem_bias};
        if (mem_scratch) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem_scratch};
        if ((s = dnnl_primitive_execute(e->prim[dir], stream, na, args)))
            rc = dnnl_fail(wh,
                           dir == DIR_FWD            ? "forward"
                               : dir == DIR_BWD_DATA ? "backward-data"
                                                     : "backward-weights",
                           s);
    }
    for (int t = 0; t < 3 && !rc; t++) {
        if (!e->reorder[dir][t] || is_input(dir, t)) continue;
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, mem_prim[t]}, {DNNL_ARG_TO, mem_user[t]}};
        if ((s = dnnl_primitive_execute(e->reorder[dir][t], stream, 2, ra))) rc = dnnl_fail(wh, "reorder", s);
    }
    if (!rc && (s = dnnl_stream_wait(stream))) rc = dnnl_fail(wh, "stream wait", s);
    for (int t = 0; t < 3; t++) {
        if (mem_prim[t] && mem_prim[t] != mem_user[t]) dnnl_memory_destroy(mem_prim[t]);
        if (mem_user[t]) dnnl_memory_destroy(mem_user[t]);
        if (tmp[t]) craft_free(tmp[t], tmp_size[t]);
    }
    if (mem_bias) dnnl_memory_destroy(mem_bias);
    if (mem_scratch) dnnl_memory_destroy(mem_scratch);
    if (scratch) scratch_put(scratch, scratch_size);
    if (btmp) craft_free(btmp, bsize);
    cpu_wcache_put(&wref);
    cache_put(e);
    return rc;
}

/* ---- per-channel helpers (transposed conv's bias, and bias gradients) ---- */
/* out[c] = sum over n and s of g[n, c, s] (accumulated in double). */
static void channel_sums(const float *g, int64_t n, int64_t c, int64_t s, float *out) {
#pragma omp parallel for if (n * c * s >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t ci = 0; ci < c; ci++) {
        double tot = 0;
        for (int64_t ni = 0; ni < n; ni++) {
            const float *p = g + (ni * c + ci) * s;
            float lane[16] = {0};
            int64_t i = 0;
            for (; i + 16 <= s; i += 16)
                for (int j = 0; j < 16; j++) lane[j] += p[i + j];
            double part = 0;
            for (int j = 0; j < 16; j++) part += lane[j];
            for (; i < s; i++) part += p[i];
            tot += part;
        }
        out[ci] = (float)tot;
    }
}

static void add_channel_bias(float *y, const float *b, int64_t n, int64_t c, int64_t s) {
#pragma omp parallel for if (n * c * s >= CRAFT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < n * c; r++) {
        float bv = b[r % c];
        float *p = y + r * s;
#pragma omp simd
        for (int64_t i = 0; i < s; i++) p[i] += bv;
    }
}

/* ---- the kernels ---- */
int cpu_channel_sums(const craft_tensor *g, int64_t n, int64_t c, int64_t s, craft_tensor *out) {
    channel_sums(craft_tensor_data(g), n, c, s, craft_tensor_data(out));
    return CRAFT_OK;
}

static float *fdata(const craft_tensor *t) { return t ? (float *)craft_tensor_data(t) : NULL; }

/* The oneDNN geometry of a convolution (dims as craft_conv_dims_of makes them; fwd_bias: the
 * forward primitive has a bias, so the backward-weights one computes its gradient too). */
static conv_geom geom_of(const craft_conv_dims *cd, int fwd_bias) {
    conv_geom g = {0};
    g.n = cd->n;
    g.ic = cd->ic;
    g.ih = cd->ih;
    g.iw = cd->iw;
    g.oc = cd->oc;
    g.kh = cd->kh;
    g.kw = cd->kw;
    g.groups = cd->groups;
    g.oh = cd->oh;
    g.ow = cd->ow;
    g.sh = cd->sh;
    g.sw = cd->sw;
    g.dh = cd->dh - 1;
    g.dw = cd->dw - 1;
    g.plh = cd->ph;
    g.plw = cd->pw;
    g.prh = (g.oh - 1) * g.sh + (g.dh + 1) * (g.kh - 1) + 1 - g.ih - g.plh;
    g.prw = (g.ow - 1) * g.sw + (g.dw + 1) * (g.kw - 1) + 1 - g.iw - g.plw;
    g.bias = fwd_bias != 0;
    g.wino = want_winograd(&g);
    return g;
}

/* Whether the fp32 forward of g really runs Winograd: the rule may want it while the scratchpad
 * cap refuses it (1280 channels at 32x32), and then fp32 is the slow direct kernel. */
static int runs_winograd(const conv_geom *g, const conv_what *wh) {
    conv_entry *e;
    if (cache_get(g, DIR_FWD, wh, &e)) return 0; /* the caller's own path will say what is wrong */
    const char *impl = NULL;
    int w = !dnnl_primitive_desc_query(e->pd[DIR_FWD], dnnl_query_impl_info_str, 0, &impl) && impl &&
        strstr(impl, "wino");
    cache_put(e);
    return w;
}

/* Winograd in bands of output rows, for a large image whose whole-image Winograd scratchpad
 * exceeds the cap (the SD VAE decoder's 128-512 channels at 128-512 px): each band is a conv of
 * its own (input rows with their halo, zero padding only at the image's top and bottom) on
 * strided views of src and dst, so memory stays bounded and the direct kernel, 1.2x (128
 * channels) to 2.7x (512) slower there, is avoided. The band height aims at half the cap for
 * what oneDNN's scratchpad holds: the transformed weights and the transformed input and output
 * tiles (6x6 per 4x4 output block). */
static _Atomic int64_t band_count;
int64_t cpu_conv_band_count(void) { return band_count; }

/* Band b of height hb starting at output row o0 of g; the first input row it reads in *i0. */
static conv_geom band_of(const conv_geom *g, int64_t o0, int64_t hb, int64_t *i0) {
    conv_geom b = *g;
    int64_t o1 = o0 + hb < g->oh ? o0 + hb : g->oh;
    *i0 = o0 - g->plh < 0 ? 0 : o0 - g->plh;
    int64_t i1 = o1 - 1 - g->plh + g->kh; /* one past the last input row it reads */
    if (i1 > g->ih) i1 = g->ih;
    b.oh = o1 - o0;
    b.ih = i1 - *i0;
    b.plh = *i0 - (o0 - g->plh);
    b.prh = (b.oh - 1) + g->kh - b.ih - b.plh;
    b.sih = g->ih;
    b.soh = g->oh;
    return b;
}

/* The band height for g's forward, or 0 when g runs whole (Winograd fits the cap, or Winograd
 * is not wanted, or bands would be too thin or would not run Winograd either). */
static int64_t band_rows(const conv_geom *g, const conv_what *wh) {
    if (!g->wino || g->sh != 1 || g->dh != 0 || g->sih || g->soh || g->bf16) return 0;
    double per4 = (double)g->n * (double)((g->ow + 3) / 4) * 36.0 * (double)(g->ic + g->oc) * sizeof(float);
    double wts = 36.0 * (double)g->ic * (double)g->oc * sizeof(float);
    int64_t hb = 4 * (int64_t)(((double)winograd_cap() / 2 - wts) / per4), i0;
    if (hb < 8 || hb >= g->oh || runs_winograd(g, wh)) return 0;
    conv_geom first = band_of(g, 0, hb, &i0);
    return runs_winograd(&first, wh) ? hb : 0;
}

static int conv_fwd_banded(const conv_geom *g, int64_t hb, float *src, float *wei, float *dst, float *bias,
                           const conv_what *wh) {
    for (int64_t o0 = 0, i0; o0 < g->oh; o0 += hb) {
        conv_geom b = band_of(g, o0, hb, &i0);
        CRAFT_TRY(conv_exec(&b, DIR_FWD, src + i0 * g->iw, wei, dst + o0 * g->ow, bias, NULL, wh));
        band_count++;
    }
    return CRAFT_OK;
}

int cpu_conv(int dir, const craft_conv_dims *cd, int fwd_bias, craft_tensor *src, craft_tensor *wei,
             craft_tensor *dst, craft_tensor *bias) {
    conv_geom g = geom_of(cd, fwd_bias);
    const char *op = dir == CRAFT_CONV_FWD ? "conv forward"
        : dir == CRAFT_CONV_BWD_DATA       ? "conv backward-data"
                                           : "conv backward-weights";
    conv_what wh = {op, src->shape, wei ? wei->shape : dst->shape};
    /* right padding: the transposed conv's output_padding can make it -stride or less, which oneDNN refuses */
    if (g.prh + g.sh <= 0 || g.prw + g.sw <= 0)
        return craft_fail(
            CRAFT_EUNSUPPORTED,
            "conv_transpose2d: input %s, weight %s: output_padding %lld,%lld exceeds padding %lld,%lld + "
            "stride %lld,%lld - 1 (the CPU's oneDNN convolutions)",
            craft_shape_str(dst), craft_shape_str(wei), (long long)cd->oph, (long long)cd->opw,
            (long long)cd->ph, (long long)cd->pw, (long long)cd->sh, (long long)cd->sw);
    int64_t hb = dir == CRAFT_CONV_FWD ? band_rows(&g, &wh) : 0;
    if (hb) return conv_fwd_banded(&g, hb, fdata(src), fdata(wei), fdata(dst), g.bias ? fdata(bias) : NULL, &wh);
    if (dir == CRAFT_CONV_FWD)
        return conv_exec(&g, DIR_FWD, fdata(src), fdata(wei), fdata(dst), g.bias ? fdata(bias) : NULL, NULL,
                         &wh);
    if (dir == CRAFT_CONV_BWD_DATA) {
        CRAFT_TRY(conv_exec(&g, DIR_BWD_DATA, fdata(src), fdata(wei), fdata(dst), NULL, NULL, &wh));
        if (bias) add_channel_bias(fdata(src), fdata(bias), g.n, g.ic, g.ih * g.iw);
        return CRAFT_OK;
    }
    if (!wei) return bias ? cpu_channel_sums(dst, g.n, g.oc, g.oh * g.ow, bias) : CRAFT_OK;
    if (bias && !g.bias) { /* a forward without bias: the gradient from channel sums */
        CRAFT_TRY(conv_exec(&g, DIR_BWD_WEIGHTS, fdata(src), fdata(wei), fdata(dst), NULL, NULL, &wh));
        return cpu_channel_sums(dst, g.n, g.oc, g.oh * g.ow, bias);
    }
    return conv_exec(&g, DIR_BWD_WEIGHTS, fdata(src), fdata(wei), fdata(dst), fdata(bias), NULL, &wh);
}

/* The forward convolution with bf16 src and weights (cached), fp32 accumulation and output.
 * Geometries that run fp32 Winograd stay there, which is both faster here (320 channels at
 * 64x64: 10 ms against 16 ms for bf16 direct) and closer to exact, and so do those that run it in
 * bands with 256 channels or more (512 channels at 128x128: 1.5x faster than bf16 direct; 128
 * channels at 512x512 are 1.3x faster in bf16 direct, 256 about even); geometries for which oneDNN
 * has only a reference bf16 kernel stay fp32 too. Neither counts as a bf16 call. */
int cpu_conv_bf16(const craft_conv_dims *cd, int fwd_bias, craft_tensor *src, craft_tensor *wei,
                  craft_tensor *dst, craft_tensor *bias) {
    conv_geom g = geom_of(cd, fwd_bias);
    conv_what wh = {"conv forward (bf16)", src->shape, wei->shape};
    if (g.n == 0 || g.prh + g.sh <= 0 || g.prw + g.sw <= 0 ||
        (g.wino && (runs_winograd(&g, &wh) || (g.ic >= 256 && g.oc >= 256 && band_rows(&g, &wh)))))
        return cpu_conv(CRAFT_CONV_FWD, cd, fwd_bias, src, wei, dst, bias);
    g.bf16 = 1;
    g.wino = 0; /* the key of the bf16 entry: direct whatever the rule said */
    int rc =
        conv_exec(&g, DIR_FWD, fdata(src), fdata(wei), fdata(dst), g.bias ? fdata(bias) : NULL, wei, &wh);
    if (rc == CRAFT_EUNSUPPORTED) return cpu_conv(CRAFT_CONV_FWD, cd, fwd_bias, src, wei, dst, bias);
    if (!rc) craft_bf16_count();
    return rc;
}
