/* cpu_conv.c: the CPU's convolution on oneDNN 2.6 primitives: the primitive cache, layouts,
 * scratchpads and Winograd's rule (cpu_conv_ops.c holds the kernels built on them).
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
 * conv_winograd_cap(). CRAFT_CONV_WINOGRAD=0 turns it off.
 *
 * Primitives (descriptors, primitives, the reorders around them) are kept in a small LRU table
 * keyed by the geometry; scratchpads are user-managed, in one arena from the pool. */
#include "cpu/cpu_conv_prim.h"
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct conv_entry {
    conv_geom g;
    int live, refs, refused; /* refused: bf16 geometry with only a reference kernel (bit 1 << dir) */
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
size_t conv_winograd_cap(void) {
    static long long cap = -1;
    if (cap < 0) cap = (long long)cpu_env_mb("CRAFT_CONV_WINOGRAD", 128);
    return (size_t)cap;
}

int conv_want_winograd(const conv_geom *g) {
    return conv_winograd_cap() > 0 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 0 &&
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
    if (alg == dnnl_convolution_winograd && smd && dnnl_memory_desc_get_size(smd) > conv_winograd_cap()) {
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
        return dnnl_unimplemented;
    }
    return dnnl_success;
}

/* A bf16 descriptor that found only oneDNN's reference kernel (slower than fp32) is destroyed:
 * returns 1 then. */
static int refuse_reference(dnnl_primitive_desc_t *pd) {
    const char *impl = NULL;
    if (!dnnl_primitive_desc_query(*pd, dnnl_query_impl_info_str, 0, &impl) && impl && strncmp(impl, "ref", 3))
        return 0;
    dnnl_primitive_desc_destroy(*pd);
    *pd = NULL;
    return 1;
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
    if (!e->pd[DIR_FWD] && !e->refused) {
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
        if (g->bf16 && refuse_reference(&e->pd[DIR_FWD])) e->refused = 1 << DIR_FWD;
    }
    if (dir != DIR_FWD && !e->refused && !e->pd[dir] && !(e->refused & (1 << dir))) {
        /* bf16 backward-data (mixed precision): bf16 weights and output gradient, f32 input gradient */
        dnnl_memory_desc_t dsrc = any[T_SRC], ddst = any[T_DST];
        if (g->bf16 && dir == DIR_BWD_DATA &&
            ((s = dnnl_memory_desc_init_by_tag(&dsrc, 4, sd, dnnl_f32, dnnl_format_tag_any)) ||
             (s = dnnl_memory_desc_init_by_tag(&ddst, 4, dd, dnnl_bf16, dnnl_format_tag_any))))
            return dnnl_fail(wh, "memory descriptor", s);
        for (int a = 0; a < 2; a++) {
            dnnl_convolution_desc_t cd;
            if (dir == DIR_BWD_DATA)
                s = dnnl_dilated_convolution_backward_data_desc_init(&cd, algs[a], &dsrc, &any[T_WEI], &ddst, st,
                                                                     dil, pl, pr);
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
        if (g->bf16 && refuse_reference(&e->pd[dir])) e->refused |= 1 << dir;
    }
    if (e->refused & (1 << dir | 1 << DIR_FWD)) /* the forward is also the backward's hint */
        return craft_fail(CRAFT_EUNSUPPORTED,
                          "%s: input %s, weight %s: oneDNN has only a reference bf16 kernel", wh->op,
                          craft_dims_str(4, wh->x), craft_dims_str(4, wh->w));
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

/* The bf16 weight cache's fill: the entry's weight reorder for direction dir into dst. */
typedef struct {
    conv_entry *e;
    int dir;
    dnnl_memory_t from;
    const conv_what *wh;
} wei_job;
static int fill_weights(void *ctx, void *dst) {
    wei_job *j = ctx;
    dnnl_memory_t to;
    dnnl_status_t s = dnnl_memory_create(&to, pd_md(j->e, j->dir, T_WEI), engine, dst);
    if (s) return dnnl_fail(j->wh, "memory", s);
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, j->from}, {DNNL_ARG_TO, to}};
    s = dnnl_primitive_execute(j->e->reorder[j->dir][T_WEI], stream, 2, ra);
    if (!s) s = dnnl_stream_wait(stream);
    dnnl_memory_destroy(to);
    return s ? dnnl_fail(j->wh, "weight reorder", s) : CRAFT_OK;
}

int conv_exec(const conv_geom *g, int dir, float *src, float *wei, float *dst, float *bias,
              const craft_tensor *wt, const conv_what *wh) {
    return conv_exec_keep(g, dir, src, wei, dst, bias, wt, wh, NULL);
}

/* Runs direction dir of g on plain buffers (cpu_conv_prim.h); a bias gradient that is not
 * wanted goes to a temporary. */
int conv_exec_keep(const conv_geom *g, int dir, float *src, float *wei, float *dst, float *bias,
                   const craft_tensor *wt, const conv_what *wh, conv_keep *keep) {
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
    craft_wc_ref wref = {0}; /* bf16: the weights from the cache (g->bf16 with wt given) */
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
        if (t == T_WEI && g->bf16 && wt) { /* the cached bf16 weights, keyed by geometry and direction */
            wei_job j = {e, dir, mem_user[t], wh};
            int64_t key[GEOM_NARGS + 1];
            memcpy(key, g, sizeof *g);
            key[GEOM_NARGS] = dir;
            if ((rc = cpu_wcache_get(wt, key, GEOM_NARGS + 1, dnnl_memory_desc_get_size(md), fill_weights, &j,
                                     &wref)))
                break;
            if ((s = dnnl_memory_create(&mem_prim[t], md, engine, wref.data))) {
                mem_prim[t] = NULL;
                rc = dnnl_fail(wh, "memory", s);
                break;
            }
            continue;
        }
        if (keep && keep->t == t && keep->have && is_input(dir, t) && dnnl_memory_desc_equal(md, &keep->md)) {
            if ((s = dnnl_memory_create(&mem_prim[t], md, engine, keep->buf))) { /* the kept copy */
                mem_prim[t] = NULL;
                rc = dnnl_fail(wh, "memory", s);
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
            else if (keep && keep->t == t && !keep->have) { /* handed to the caller, freed there */
                keep->buf = tmp[t];
                keep->size = tmp_size[t];
                keep->md = *md;
                keep->have = 1;
                tmp[t] = NULL;
            }
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
    craft_wc_release(&wref);
    cache_put(e);
    return rc;
}

/* Whether the fp32 forward of g really runs Winograd: the rule may want it while the scratchpad
 * cap refuses it (1280 channels at 32x32), and then fp32 is the slow direct kernel. */
int conv_runs_winograd(const conv_geom *g, const conv_what *wh) {
    conv_entry *e;
    if (cache_get(g, DIR_FWD, wh, &e)) return 0; /* the caller's own path will say what is wrong */
    const char *impl = NULL;
    int w = !dnnl_primitive_desc_query(e->pd[DIR_FWD], dnnl_query_impl_info_str, 0, &impl) && impl &&
        strstr(impl, "wino");
    cache_put(e);
    return w;
}
