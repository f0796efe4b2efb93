/* cl_flash.c: the host side of flash attention on cl devices (kernels_cl/flash.cl): the
 * geometry, the tile sizes that fit the device's local memory, and the launch. cl_attention.c
 * calls it first and keeps its GEMM path for the cases this kernel does not serve (an output
 * head dim above FA_T * FA_OU = 256, or tiles that do not fit local memory). */
#include "cl/cl_internal.h"

#define FA_T 16 /* mirrors kernels_cl/flash.cl */
#define FA_SU 4
#define FA_OU 16

/* mirrors flash_geo in kernels_cl/flash.cl */
typedef struct {
    cl_long bshape[8];
    cl_long bst[4][8];
    cl_long off[4];
    cl_long goff[4];
    cl_long ldq, ldk, ldv, msr, msc;
    cl_long Lq, Lk, D, Dv, BK, sq, skv, sv;
    cl_float scale;
    cl_int nbd, has_mask, causal;
    cl_int want_k, want_v, pad0;
} cl_flash_geo;

static int sdpa_algo = -1;
void craft_cl_sdpa_set_algo(int algo) { sdpa_algo = algo; }
static int force_bq, force_bk;
void craft_cl_flash_set_tiles(int bq, int bk) {
    force_bq = bq > 0 ? bq : 0;
    force_bk = bk > 0 ? bk : 0;
}

/* The flash kernels are the default on GPUs; CPU devices (PoCL, llvmpipe) keep the GEMM path,
 * which measured 2.7x (PoCL) and 3.8x (llvmpipe) faster there for a [4, 8, 256, 64] forward +
 * backward (docs/opencl.md), as the convolution keeps its direct / im2col rule there.
 * CRAFT_CL_SDPA=gemm or =flash (or craft_cl_sdpa_set_algo(0 / 1), the tests) picks one. */
static int want_flash(const craft_cl_dev *d) {
    if (sdpa_algo >= 0) return sdpa_algo == 1;
    const char *e = getenv("CRAFT_CL_SDPA");
    if (e && !strcmp(e, "gemm")) return 0;
    if (e && !strcmp(e, "flash")) return 1;
    return d->info.is_gpu;
}

static int64_t odd_at_least(int64_t n) { return n < 1 ? 1 : (n % 2 ? n : n + 1); }

/* Local floats of a work-group of `rows` rows and tiles of `tile` entries, per kernel. */
static int64_t local_floats(int kid, int64_t rows, int64_t tile, int64_t sq, int64_t skv, int64_t sv) {
    if (kid == K_flash_fwd || kid == K_flash_fwd_h) return rows * sq + tile * skv + rows * tile;
    if (kid == K_flash_bwd_kv) return (rows + tile) * (sq + sv) + 2 * rows * tile + 2 * tile;
    return (rows + tile) * (sq + sv) + rows * tile + 2 * rows; /* flash_bwd_q */
}

/* Rows per work-group (*rows) and tile length (*tile, a multiple of FA_T) of kernel kid whose
 * local memory fits the device: the most rows first (each tile read serves them all), then the
 * longest tiles (fewer barriers). 0 when nothing fits. */
static int pick_tiles(craft_cl_dev *d, int kid, int64_t sq, int64_t skv, int64_t sv, int64_t *rows,
                      int64_t *tile) {
    size_t wg = cl_pow2_local(d, kid, 256);
    int64_t budget = d->info.local_mem - 1024; /* room for the implementation's own locals */
    for (int64_t r = (int64_t)wg / FA_T; r >= 1; r /= 2) {
        if (force_bq && r > force_bq) continue;
        for (int64_t t = FA_T * FA_SU; t >= FA_T; t -= FA_T) {
            if (force_bk && t > force_bk) continue;
            if (local_floats(kid, r, t, sq, skv, sv) * (int64_t)sizeof(float) <= budget) {
                *rows = r;
                *tile = t;
                return 1;
            }
        }
    }
    return 0;
}

/* The geometry common to the three kernels (tile and strides set by the callers). */
static int geo_fill(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                    const craft_tensor *mask, double scale, int causal, craft_sdpa_geom *gm,
                    cl_flash_geo *g) {
    CRAFT_TRY(craft_sdpa_geom_of(q, k, v, mask, scale, gm));
    memset(g, 0, sizeof *g);
    g->nbd = gm->nbd;
    for (int i = 0; i < gm->nbd; i++) {
        g->bshape[i] = gm->bshape[i];
        for (int j = 0; j < 4; j++) g->bst[j][i] = gm->bst[j][i];
    }
    g->off[0] = q->offset;
    g->off[1] = k->offset;
    g->off[2] = v->offset;
    g->off[3] = mask ? mask->offset : 0;
    g->ldq = gm->ldq;
    g->ldk = gm->ldk;
    g->ldv = gm->ldv;
    g->msr = gm->msr;
    g->msc = gm->msc;
    g->Lq = gm->Lq;
    g->Lk = gm->Lk;
    g->D = gm->D;
    g->Dv = gm->Dv;
    g->scale = gm->scale;
    g->has_mask = mask != NULL;
    g->causal = causal ? 1 : 0;
    g->sq = odd_at_least(gm->D);
    g->sv = odd_at_least(gm->Dv);
    g->skv = odd_at_least(gm->D > gm->Dv ? gm->D : gm->Dv);
    return CRAFT_OK;
}

#define LOCAL_ARG(n) ((cl_arg){(size_t)(n) * sizeof(float), NULL})

/* The forward launch: kernel kid (flash_fwd on f32 operands, flash_fwd_h on f16 ones); *served
 * is 0 when the tiles do not fit the device (the caller's other path runs). */
static int flash_forward(int kid, const char *op, int flash_only, const craft_tensor *q, const craft_tensor *k,
                         const craft_tensor *v, const craft_tensor *mask, double scale, int causal,
                         craft_tensor *y, craft_tensor *lse, int *served) {
    *served = 0;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, op, &d));
    if (flash_only && !want_flash(d)) return CRAFT_OK;
    craft_sdpa_geom gm;
    cl_flash_geo g;
    CRAFT_TRY(geo_fill(q, k, v, mask, scale, causal, &gm, &g));
    int64_t bq, bk;
    if (gm.Dv > FA_T * FA_OU || !pick_tiles(d, kid, g.sq, g.skv, g.sv, &bq, &bk)) return CRAFT_OK;
    *served = 1;
    if (gm.nb == 0 || gm.Lq == 0) return CRAFT_OK;
    g.BK = bk;
    cl_mem qm = cl_mem_of(q), km = cl_mem_of(k), vm = cl_mem_of(v), mm = mask ? cl_mem_of(mask) : qm,
           ym = cl_mem_of(y), lm = cl_mem_of(lse);
    cl_arg args[9] = {CLA(qm),
                      CLA(km),
                      CLA(vm),
                      CLA(mm),
                      CLA(ym),
                      CLA(lm),
                      LOCAL_ARG(bq * g.sq),
                      LOCAL_ARG(bk * g.skv),
                      LOCAL_ARG(bq * bk)};
    int64_t groups = gm.nb * ((gm.Lq + bq - 1) / bq);
    size_t local = (size_t)(bq * FA_T);
    return cl_launch_geo(d, kid, &g, sizeof g, 9, args, (size_t)groups * local, local);
}

int cl_flash_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                  const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse,
                  int *served) {
    return flash_forward(K_flash_fwd, "sdpa", 1, q, k, v, mask, scale, causal, y, lse, served);
}

/* f16 operands: flash on every device (f16 has no GEMM path: where flash cannot serve, fp32 runs) */
int cl_flash_sdpa_f16(const craft_tensor *qh, const craft_tensor *kh, const craft_tensor *vh,
                      const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse,
                      int *served) {
    return flash_forward(K_flash_fwd_h, "sdpa (f16)", 0, qh, kh, vh, mask, scale, causal, y, lse, served);
}

int cl_flash_sdpa_grad(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                       const craft_tensor *lse, const craft_tensor *gy, craft_tensor *dq, craft_tensor *dk,
                       craft_tensor *dv, int *served) {
    *served = 0;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(o->device, "sdpa backward", &d));
    if (!want_flash(d)) return CRAFT_OK;
    craft_sdpa_geom gm;
    cl_flash_geo g;
    CRAFT_TRY(geo_fill(q, k, v, mask, scale, causal, &gm, &g));
    int64_t rkv = 0, tkv = 0, rq = 0, tq = 0;
    if (gm.D > FA_T * FA_OU || gm.Dv > FA_T * FA_OU) return CRAFT_OK;
    if ((dk || dv) && !pick_tiles(d, K_flash_bwd_kv, g.sq, g.skv, g.sv, &rkv, &tkv)) return CRAFT_OK;
    if (dq && !pick_tiles(d, K_flash_bwd_q, g.sq, g.skv, g.sv, &rq, &tq)) return CRAFT_OK;
    *served = 1;
    if (gm.nb == 0) return CRAFT_OK;
    if (gm.Lk == 0) return dq ? craft_cl_fill_(dq, 0.0) : CRAFT_OK; /* no key: dQ = 0, dK / dV empty */
    int64_t rows = gm.nb * gm.Lq;
    g.goff[0] = gy->offset;
    g.goff[1] = dq ? dq->offset : 0;
    g.goff[2] = dk ? dk->offset : 0;
    g.goff[3] = dv ? dv->offset : 0;
    craft_tensor *Di = rows ? cl_new(1, &rows, CRAFT_F32, o->device) : NULL;
    int rc = rows && !Di ? craft_last_status() : CRAFT_OK;
    if (!rc && rows) { /* Di = rowsum(dO * O) */
        cl_mem gmm = cl_mem_of(gy), om = cl_mem_of(o), dm = cl_mem_of(Di);
        cl_long goff = gy->offset, ooff = o->offset, r = rows, n = gm.Dv;
        cl_arg args[7] = {CLA(gmm), CLA(goff), CLA(om), CLA(ooff), CLA(dm), CLA(r), CLA(n)};
        rc = cl_nn_lines(d, K_row_dot, 7, args, rows, gm.Dv, 1);
    }
    cl_mem qm = cl_mem_of(q), km = cl_mem_of(k), vm = cl_mem_of(v), mm = mask ? cl_mem_of(mask) : qm,
           lm = cl_mem_of(lse), dim = Di ? cl_mem_of(Di) : qm, gmm = cl_mem_of(gy);
    if (!rc && (dk || dv)) {
        g.BK = tkv;
        cl_mem dkm = dk ? cl_mem_of(dk) : qm, dvm = dv ? cl_mem_of(dv) : qm;
        g.want_k = dk != NULL;
        g.want_v = dv != NULL;
        cl_arg args[16] = {CLA(qm),
                           CLA(km),
                           CLA(vm),
                           CLA(mm),
                           CLA(lm),
                           CLA(dim),
                           CLA(gmm),
                           CLA(dkm),
                           CLA(dvm),
                           LOCAL_ARG(rkv * g.sq),
                           LOCAL_ARG(rkv * g.sv),
                           LOCAL_ARG(tkv * g.sq),
                           LOCAL_ARG(tkv * g.sv),
                           LOCAL_ARG(rkv * tkv),
                           LOCAL_ARG(rkv * tkv),
                           LOCAL_ARG(2 * tkv)};
        int64_t groups = gm.nb * ((gm.Lk + rkv - 1) / rkv);
        size_t local = (size_t)(rkv * FA_T);
        rc = cl_launch_geo(d, K_flash_bwd_kv, &g, sizeof g, 16, args, (size_t)groups * local, local);
    }
    if (!rc && dq && gm.Lq > 0) {
        g.BK = tq;
        cl_mem dqm = cl_mem_of(dq);
        cl_arg args[14] = {CLA(qm),
                           CLA(km),
                           CLA(vm),
                           CLA(mm),
                           CLA(lm),
                           CLA(dim),
                           CLA(gmm),
                           CLA(dqm),
                           LOCAL_ARG(rq * g.sq),
                           LOCAL_ARG(rq * g.sv),
                           LOCAL_ARG(tq * g.sq),
                           LOCAL_ARG(tq * g.sv),
                           LOCAL_ARG(rq * tq),
                           LOCAL_ARG(2 * rq)};
        int64_t groups = gm.nb * ((gm.Lq + rq - 1) / rq);
        size_t local = (size_t)(rq * FA_T);
        rc = cl_launch_geo(d, K_flash_bwd_q, &g, sizeof g, 14, args, (size_t)groups * local, local);
    }
    craft_tensor_release(Di);
    return rc;
}
