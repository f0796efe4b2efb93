/* cl_flash.c: the host side of flash attention on cl devices (kernels_cl/flash.cl): the
 * geometry, the tile sizes that fit the device's local memory, and the launch. cl_attention.c
 * calls it first and keeps its GEMM path for the cases this kernel does not serve (an output
 * head dim above FA_T * FA_OU = 256, or tiles that do not fit local memory). */
#include "cl/cl_internal.h"

#define FA_T 16  /* mirrors kernels_cl/flash.cl */
#define FA_SU 4
#define FA_OU 16

/* mirrors flash_geo in kernels_cl/flash.cl */
typedef struct {
    cl_long bshape[8];
    cl_long bst[4][8];
    cl_long off[4];
    cl_long ldq, ldk, ldv, msr, msc;
    cl_long Lq, Lk, D, Dv, BK, sq, skv;
    cl_float scale;
    cl_int nbd, has_mask, causal;
} cl_flash_geo;

static int sdpa_algo = -1;
void craft_cl_sdpa_set_algo(int algo) { sdpa_algo = algo; }
static int force_bq, force_bk;
void craft_cl_flash_set_tiles(int bq, int bk) {
    force_bq = bq > 0 ? bq : 0;
    force_bk = bk > 0 ? bk : 0;
}

/* The flash kernel is the default; CRAFT_CL_SDPA=gemm (or craft_cl_sdpa_set_algo(0)) picks the
 * GEMM path, for comparison. */
static int want_flash(void) {
    if (sdpa_algo >= 0) return sdpa_algo == 1;
    const char *e = getenv("CRAFT_CL_SDPA");
    return !(e && !strcmp(e, "gemm"));
}

static int64_t odd_at_least(int64_t n) { return n < 1 ? 1 : (n % 2 ? n : n + 1); }

/* Query rows per work-group (bq) and keys per tile (bk, a multiple of FA_T) whose local
 * memory fits the device: the most rows first (each K / V tile serves them all), then the
 * longest tiles (fewer barriers). 0 when nothing fits. */
static int pick_tiles(craft_cl_dev *d, int64_t sq, int64_t skv, int64_t *bq, int64_t *bk) {
    size_t wg = cl_pow2_local(d, K_flash_fwd, 256);
    int64_t budget = d->info.local_mem - 1024; /* room for the implementation's own locals */
    for (int64_t q = (int64_t)wg / FA_T; q >= 1; q /= 2) {
        if (force_bq && q > force_bq) continue;
        for (int64_t k = FA_T * FA_SU; k >= FA_T; k -= FA_T) {
            if (force_bk && k > force_bk) continue;
            if ((q * sq + k * skv + q * k) * (int64_t)sizeof(float) <= budget) {
                *bq = q;
                *bk = k;
                return 1;
            }
        }
    }
    return 0;
}

int cl_flash_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
                  double scale, int causal, craft_tensor *y, craft_tensor *lse, int *served) {
    *served = 0;
    if (!want_flash()) return CRAFT_OK;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "sdpa", &d));
    craft_sdpa_geom gm;
    CRAFT_TRY(craft_sdpa_geom_of(q, k, v, mask, scale, &gm));
    if (gm.Dv > FA_T * FA_OU) return CRAFT_OK;
    cl_flash_geo g;
    memset(&g, 0, sizeof g);
    int64_t bq, bk;
    g.sq = odd_at_least(gm.D);
    g.skv = odd_at_least(gm.D > gm.Dv ? gm.D : gm.Dv);
    if (!pick_tiles(d, g.sq, g.skv, &bq, &bk)) return CRAFT_OK;
    *served = 1;
    if (gm.nb == 0 || gm.Lq == 0) return CRAFT_OK;
    g.nbd = gm.nbd;
    for (int i = 0; i < gm.nbd; i++) {
        g.bshape[i] = gm.bshape[i];
        for (int j = 0; j < 4; j++) g.bst[j][i] = gm.bst[j][i];
    }
    g.off[0] = q->offset;
    g.off[1] = k->offset;
    g.off[2] = v->offset;
    g.off[3] = mask ? mask->offset : 0;
    g.ldq = gm.ldq;
    g.ldk = gm.ldk;
    g.ldv = gm.ldv;
    g.msr = gm.msr;
    g.msc = gm.msc;
    g.Lq = gm.Lq;
    g.Lk = gm.Lk;
    g.D = gm.D;
    g.Dv = gm.Dv;
    g.BK = bk;
    g.scale = gm.scale;
    g.has_mask = mask != NULL;
    g.causal = causal ? 1 : 0;
    cl_mem qm = cl_mem_of(q), km = cl_mem_of(k), vm = cl_mem_of(v), mm = mask ? cl_mem_of(mask) : qm,
           ym = cl_mem_of(y), lm = cl_mem_of(lse);
    cl_arg args[9] = {CLA(qm), CLA(km), CLA(vm), CLA(mm), CLA(ym), CLA(lm),
                      {(size_t)(bq * g.sq) * sizeof(float), NULL},
                      {(size_t)(bk * g.skv) * sizeof(float), NULL},
                      {(size_t)(bq * bk) * sizeof(float), NULL}};
    int64_t groups = gm.nb * ((gm.Lq + bq - 1) / bq);
    size_t local = (size_t)(bq * FA_T);
    return cl_launch_geo(d, K_flash_fwd, &g, sizeof g, 9, args, (size_t)groups * local, local);
}
