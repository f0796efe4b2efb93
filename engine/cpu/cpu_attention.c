/* cpu_attention.c: the CPU's memory-efficient scaled dot-product attention kernels
 * (flash-attention style) on oneDNN sgemm tiles; the op is core/op_attention.c.
 *
 * Forward, per (batch matrix, block of BQ query rows): loop over blocks of BK keys,
 *   S = scale Q K^T (+ mask), online softmax (running row max m and sum l, the output
 *   accumulator rescaled by exp(m_old - m_new)), O += P V; at the end O /= l and
 *   lse = m + log(l). Only q, k, v, the output and lse [batch, Lq] are kept for backward:
 *   never the Lq x Lk score matrix.
 * Backward, per (batch matrix, block of BK keys), over the query blocks: S is recomputed,
 *   P = exp(S - lse), dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO * O)),
 *   dK += scale dS^T Q, dQ += scale dS K. dK/dV rows belong to one work unit; dQ is written
 *   directly when each thread owns whole batch matrices, otherwise into per-thread
 *   accumulators that are summed at the end.
 * Parallel over work units with OpenMP; each sgemm then runs on one thread (oneDNN does not
 * nest), so the tiles are sized for one core's caches.
 * is_causal masks key j > query i (top-left aligned, as torch's scaled_dot_product_attention
 * with is_causal=True), and key blocks entirely above the diagonal are skipped. The mask is
 * additive f32, broadcast to [..., Lq, Lk] through strides (no copy); it gets no gradient.
 * A row whose scores are all -inf gives NaN, as in torch.
 * bf16 (cpu_sdpa_bf16, the bf16 compute precisions): q, k and v are converted to bf16 once
 * per call and each probability tile P before P V; both products accumulate in fp32 on oneDNN's
 * bf16 GEMM, and the online softmax, the rescaling and lse stay fp32. Its backward
 * (cpu_sdpa_grad_bf16, mixed precision) converts q, k, v and dO once per call, and P and dS per
 * tile: all five products are bf16 GEMMs accumulating in fp32; P, dP, dS and Di stay fp32. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* Tile sizes: a BQ x BK score tile (128 KiB; two of them in backward) plus the Q, K, V tiles
 * stay in one core's L2. Measured on the 2-core Zen 5 (one thread, CPU time, D=64, L=1024):
 * 128x256 gave 192 GFLOP/s forward, 128x128 177, 64x128 172, 128x64 151; 256x256 was within
 * noise of 128x256 but halves the work units for 2 threads. Overridable at compile time so
 * that tests can exercise many tile edges with small tiles. */
#ifndef SDPA_BQ
#define SDPA_BQ 128
#endif
#ifndef SDPA_BK
#define SDPA_BK 256
#endif
#define BQ ((int64_t)SDPA_BQ)
#define BK ((int64_t)SDPA_BK)

typedef struct {
    int nbd; /* batch dims of the output */
    int64_t bshape[CRAFT_MAX_DIMS];
    int64_t nb, Lq, Lk, D, Dv;
    const float *q, *k, *v, *mask;
    int64_t ldq, ldk, ldv; /* row strides (elements); columns are unit stride */
    int64_t msr, msc;      /* mask row / column strides, 0 when broadcast */
    int64_t *off;          /* [nb][4]: element offsets of q, k, v, mask per matrix */
    float scale;
    int causal;
    uint16_t *q16, *k16, *v16; /* bf16 copies [nb][L][D] (compact) when computing in bf16, else NULL */
    size_t n16;                /* elements in the one block holding them */
    /* the forward's K^T and V packed for cpu_bf16_tile_gemm (AVX512-BF16, even D), else NULL:
     * per matrix kpn / vpn elements, 16-column blocks kbs / vbs elements apart */
    uint16_t *kp, *vp;
    int64_t kpn, vpn, kbs, vbs;
} attn_plan;

static void plan_free(attn_plan *p) {
    free(p->off);
    p->off = NULL;
    if (p->q16) craft_free(p->q16, p->n16 * 2);
    if (p->kp) craft_free(p->kp, (size_t)(p->nb * (p->kpn + p->vpn)) * 2);
    p->q16 = p->k16 = p->v16 = p->kp = p->vp = NULL;
}

/* The forward's own bf16 tile products: K^T ([D, Lk]) and V ([Lk, Dv]) packed once per call.
 * Where they cannot run (no AVX512-BF16, odd D, tiles not in 16s) the tiles go to oneDNN. */
static int plan_pack(attn_plan *p) {
    if (!cpu_bf16_tile_native() || p->D % 2 || BK % 16 || p->Lk == 0) return CRAFT_OK;
    p->kpn = cpu_vnni_size(p->D, p->Lk);
    p->vpn = cpu_vnni_size(p->Lk, p->Dv);
    p->kbs = p->D / 2 * 32;
    p->vbs = (p->Lk + 1) / 2 * 32;
    if (!(p->kp = craft_alloc((size_t)(p->nb * (p->kpn + p->vpn)) * 2))) return craft_last_status();
    p->vp = p->kp + p->nb * p->kpn;
#pragma omp parallel for if (p->nb > 1 && p->nb * p->Lk * (p->D + p->Dv) >= 4 * CRAFT_PAR_MIN) schedule(static)
    for (int64_t b = 0; b < p->nb; b++) {
        const uint16_t *k = p->k16 + b * p->Lk * p->D, *v = p->v16 + b * p->Lk * p->Dv;
        cpu_vnni_pack(k, p->D, p->Lk, 1, p->D, p->kp + b * p->kpn);
        cpu_vnni_pack(v, p->Lk, p->Dv, p->Dv, 1, p->vp + b * p->vpn);
    }
    return CRAFT_OK;
}

/* The bf16 copies of q, k and v, one compact [L, D] matrix per batch matrix. */
static int plan_bf16(attn_plan *p) {
    size_t nq = (size_t)(p->nb * p->Lq * p->D), nk = (size_t)(p->nb * p->Lk * p->D),
           nv = (size_t)(p->nb * p->Lk * p->Dv);
    p->n16 = nq + nk + nv;
    if (!(p->q16 = craft_alloc(p->n16 ? p->n16 * 2 : 2))) return craft_last_status();
    if (!p->n16) p->n16 = 1;
    p->k16 = p->q16 + nq;
    p->v16 = p->k16 + nk;
    for (int64_t b = 0; b < p->nb; b++) {
        cpu_to_bf16(p->q + p->off[4 * b], p->Lq, p->D, p->ldq, p->q16 + (size_t)(b * p->Lq * p->D));
        cpu_to_bf16(p->k + p->off[4 * b + 1], p->Lk, p->D, p->ldk, p->k16 + (size_t)(b * p->Lk * p->D));
        cpu_to_bf16(p->v + p->off[4 * b + 2], p->Lk, p->Dv, p->ldv, p->v16 + (size_t)(b * p->Lk * p->Dv));
    }
    return CRAFT_OK;
}

/* The geometry, and the per-matrix offsets of q, k, v and the mask. q, k, v must be usable. */
static int plan_build(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                      const craft_tensor *mask, double scale, int causal, attn_plan *p) {
    memset(p, 0, sizeof *p);
    craft_sdpa_geom g;
    CRAFT_TRY(craft_sdpa_geom_of(q, k, v, mask, scale, &g));
    p->nbd = g.nbd;
    memcpy(p->bshape, g.bshape, sizeof p->bshape);
    p->nb = g.nb;
    p->Lq = g.Lq;
    p->Lk = g.Lk;
    p->D = g.D;
    p->Dv = g.Dv;
    p->ldq = g.ldq;
    p->ldk = g.ldk;
    p->ldv = g.ldv;
    p->msr = g.msr;
    p->msc = g.msc;
    p->scale = g.scale;
    p->causal = causal ? 1 : 0;
    p->q = craft_tensor_data(q);
    p->k = craft_tensor_data(k);
    p->v = craft_tensor_data(v);
    if (mask) p->mask = craft_tensor_data(mask);
    p->off = malloc((size_t)(p->nb ? p->nb : 1) * 4 * sizeof(int64_t));
    if (!p->off) return craft_fail(CRAFT_ENOMEM, "sdpa: out of host memory");
    for (int64_t b = 0; b < p->nb; b++) {
        int64_t r = b, o[4] = {0, 0, 0, 0};
        for (int d = g.nbd - 1; d >= 0; d--) {
            int64_t c = r % p->bshape[d];
            r /= p->bshape[d];
            for (int i = 0; i < 4; i++) o[i] += c * g.bst[i][d];
        }
        for (int i = 0; i < 4; i++) p->off[4 * b + i] = o[i];
    }
    return CRAFT_OK;
}

/* S[i, j] += mask[i * msr + j * msc] */
static void add_mask(float *S, int64_t lds, const float *m, int64_t msr, int64_t msc, int64_t rows,
                     int64_t cols) {
    for (int64_t i = 0; i < rows; i++) {
        float *s = S + i * lds;
        const float *mr = m + i * msr;
        if (msc == 1)
            for (int64_t j = 0; j < cols; j++) s[j] += mr[j];
        else if (msc == 0) {
            float c = mr[0];
            for (int64_t j = 0; j < cols; j++) s[j] += c;
        } else
            for (int64_t j = 0; j < cols; j++) s[j] += mr[j * msc];
    }
}

/* Number of keys (from k0, at most bk) that query row qi may see. */
static inline int64_t visible(const attn_plan *p, int64_t qi, int64_t k0, int64_t bk) {
    if (!p->causal) return bk;
    int64_t nv = qi - k0 + 1;
    return nv < 0 ? 0 : (nv > bk ? bk : nv);
}

/* One (matrix b, query block q0) of the forward. S: BQ * BK scratch, st: 3 * BQ scratch, P16:
 * BQ * BK bf16 scratch when computing in bf16 (the probabilities go there, not back into S),
 * else NULL. */
static int fwd_unit(const attn_plan *p, int64_t b, int64_t q0, float *out, float *lse, float *S, float *st,
                    uint16_t *P16) {
    int64_t bq = p->Lq - q0 < BQ ? p->Lq - q0 : BQ, D = p->D, Dv = p->Dv;
    const float *Q = p->q + p->off[4 * b] + q0 * p->ldq;
    const float *K = p->k + p->off[4 * b + 1], *V = p->v + p->off[4 * b + 2];
    const float *M = p->mask ? p->mask + p->off[4 * b + 3] + q0 * p->msr : NULL;
    float *O = out + (b * p->Lq + q0) * Dv;
    float *mrow = st, *lrow = st + BQ, *corr = st + 2 * BQ;
    for (int64_t i = 0; i < bq; i++) {
        mrow[i] = -INFINITY;
        lrow[i] = 0;
    }
    int64_t kend = p->causal && q0 + bq < p->Lk ? q0 + bq : p->Lk;
    int first = 1;
    for (int64_t k0 = 0; k0 < kend; k0 += BK) {
        int64_t bk = kend - k0 < BK ? kend - k0 : BK;
        if (p->kp)
            cpu_bf16_tile_gemm(bq, bk, D, p->scale, p->q16 + (b * p->Lq + q0) * D, D,
                               p->kp + b * p->kpn + k0 / 16 * p->kbs, p->kbs, S, BK, 0);
        else if (p->q16) {
            if (craft_gemm_bf16('N', 'T', bq, bk, D, p->scale, p->q16 + (b * p->Lq + q0) * D, D,
                                p->k16 + (b * p->Lk + k0) * D, D, 0.0f, S, BK))
                return 1;
        } else if (craft_sgemm('N', 'T', bq, bk, D, p->scale, Q, p->ldq, K + k0 * p->ldk, p->ldk, 0.0f, S,
                               BK))
            return 1;
        if (M) add_mask(S, BK, M + k0 * p->msc, p->msr, p->msc, bq, bk);
        for (int64_t i = 0; i < bq; i++) {
            float *s = S + i * BK;
            int64_t nv = visible(p, q0 + i, k0, bk);
            float mx = craft_vmax(s, nv), mold = mrow[i];
            float mnew = (mx > mold || mx != mx) ? mx : mold;
            float c = 1.0f, sum = 0.0f;
            if (mnew == -INFINITY) nv = 0;
            else {
                c = mold == -INFINITY ? 0.0f : expf(mold - mnew);
                sum = P16 ? craft_vexp_bf16(P16 + i * BK, s, nv, mnew) : craft_vexp(s, s, nv, mnew);
            }
            if (P16) /* the packed product reads keys in pairs: one more zero after an odd bk */
                for (int64_t j = nv; j < bk + (p->kp && (bk & 1)); j++) P16[i * BK + j] = 0;
            else
                for (int64_t j = nv; j < bk; j++) s[j] = 0.0f;
            lrow[i] = lrow[i] * c + sum;
            mrow[i] = mnew;
            corr[i] = c;
        }
        if (!first)
            for (int64_t i = 0; i < bq; i++)
                if (corr[i] != 1.0f) {
                    float c = corr[i], *o = O + i * Dv;
                    for (int64_t j = 0; j < Dv; j++) o[j] *= c;
                }
        if (p->kp)
            cpu_bf16_tile_gemm(bq, Dv, bk, 1.0f, P16, BK, p->vp + b * p->vpn + k0 * 16, p->vbs, O, Dv, !first);
        else if (P16) {
            if (craft_gemm_bf16('N', 'N', bq, Dv, bk, 1.0f, P16, BK, p->v16 + (b * p->Lk + k0) * Dv, Dv,
                                first ? 0.0f : 1.0f, O, Dv))
                return 1;
        } else if (craft_sgemm('N', 'N', bq, Dv, bk, 1.0f, S, BK, V + k0 * p->ldv, p->ldv,
                               first ? 0.0f : 1.0f, O, Dv))
            return 1;
        first = 0;
    }
    if (first) { /* no keys at all: zeros, as softmax over nothing times an empty V */
        memset(O, 0, (size_t)(bq * Dv) * sizeof(float));
        for (int64_t i = 0; i < bq; i++) lse[b * p->Lq + q0 + i] = -INFINITY;
        return 0;
    }
    for (int64_t i = 0; i < bq; i++) {
        float inv = 1.0f / lrow[i], *o = O + i * Dv;
        for (int64_t j = 0; j < Dv; j++) o[j] *= inv;
        lse[b * p->Lq + q0 + i] = mrow[i] + logf(lrow[i]);
    }
    return 0;
}

static int run_forward(const attn_plan *p, float *out, float *lse) {
    int64_t nqb = (p->Lq + BQ - 1) / BQ, units = p->nb * nqb;
    if (units == 0) return CRAFT_OK;
    if (p->Dv == 0) { /* an empty output needs no scores (and backward none: its gradients are 0) */
        memset(lse, 0, (size_t)(p->nb * p->Lq) * sizeof(float));
        return CRAFT_OK;
    }
    int T = omp_get_max_threads();
    if (T > units) T = (int)units;
    size_t per = (size_t)(BQ * BK + 3 * BQ + (p->q16 ? BQ * BK / 2 + 1 : 0));
    float *scratch = craft_alloc((size_t)T * per * sizeof(float));
    if (!scratch) return craft_last_status();
    int err = 0;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        float *S = scratch + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < units; u++)
            if (fwd_unit(p, u / nqb, (u % nqb) * BQ, out, lse, S, S + BQ * BK,
                         p->q16 ? (uint16_t *)(S + BQ * BK + 3 * BQ) : NULL))
                err = 1;
    }
    craft_free(scratch, (size_t)T * per * sizeof(float));
    if (err) return craft_fail(CRAFT_EINVAL, "sdpa: oneDNN %s failed", p->q16 ? "bf16 gemm" : "sgemm");
    return CRAFT_OK;
}

/* ---- backward ---- */
typedef struct {
    const attn_plan *p;
    const float *dO, *O, *lse;
    float *Di;      /* rowsum(dO * O), [nb, Lq], filled by run_backward */
    float *dk, *dv; /* full-batch-shape gradients, [nb, Lk, D] / [nb, Lk, Dv] */
    int need_q, need_k, need_v;
    uint16_t *do16; /* bf16 dO [nb, Lq, Dv] when computing in bf16 (p->q16 too), else NULL */
} bwd_ctx;

/* C (+)= alpha op(A) op(B), on fp32 operands (A32, B32 with lda32, ldb32) or, in bf16, on their
 * bf16 forms (A16, B16 compact with lda16, ldb16) */
static int tile_gemm(int bf16, char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A32,
                     int64_t lda32, const uint16_t *A16, int64_t lda16, const float *B32, int64_t ldb32,
                     const uint16_t *B16, int64_t ldb16, float beta, float *C, int64_t ldc) {
    return bf16 ? craft_gemm_bf16(ta, tb, M, N, K, alpha, A16, lda16, B16, ldb16, beta, C, ldc)
                : craft_sgemm(ta, tb, M, N, K, alpha, A32, lda32, B32, ldb32, beta, C, ldc);
}

/* Key block k0 of matrix b over all query blocks; dQ accumulates into dq ([nb, Lq, D]). P, dP:
 * BQ * BK scratch each; T16: 2 * BQ * BK bf16 scratch (the tiles P and dS) in bf16, else NULL. */
static int bwd_unit(const bwd_ctx *c, int64_t b, int64_t k0, float *dq, float *P, float *dP, uint16_t *T16) {
    const attn_plan *p = c->p;
    int64_t bk = p->Lk - k0 < BK ? p->Lk - k0 : BK, D = p->D, Dv = p->Dv, Lq = p->Lq;
    const float *K = p->k + p->off[4 * b + 1] + k0 * p->ldk, *V = p->v + p->off[4 * b + 2] + k0 * p->ldv;
    const float *M = p->mask ? p->mask + p->off[4 * b + 3] + k0 * p->msc : NULL;
    float *dK = c->dk + (b * p->Lk + k0) * D, *dV = c->dv + (b * p->Lk + k0) * Dv;
    int first = 1, need_dp = c->need_q || c->need_k, h = T16 != NULL;
    const uint16_t *K16 = h ? p->k16 + (b * p->Lk + k0) * D : NULL, *V16 = h ? p->v16 + (b * p->Lk + k0) * Dv : NULL;
    uint16_t *P16 = T16, *dS16 = h ? T16 + BQ * BK : NULL;
    for (int64_t q0 = p->causal ? (k0 / BQ) * BQ : 0; q0 < Lq; q0 += BQ) {
        int64_t bq = Lq - q0 < BQ ? Lq - q0 : BQ;
        const float *Q = p->q + p->off[4 * b] + q0 * p->ldq;
        const float *dO = c->dO + (b * Lq + q0) * Dv, *lse = c->lse + b * Lq + q0, *Di = c->Di + b * Lq + q0;
        const uint16_t *Q16 = h ? p->q16 + (b * Lq + q0) * D : NULL, *dO16 = h ? c->do16 + (b * Lq + q0) * Dv : NULL;
        if (tile_gemm(h, 'N', 'T', bq, bk, D, p->scale, Q, p->ldq, Q16, D, K, p->ldk, K16, D, 0.0f, P, BK)) return 1;
        if (M) add_mask(P, BK, M + q0 * p->msr, p->msr, p->msc, bq, bk);
        for (int64_t i = 0; i < bq; i++) {
            float *s = P + i * BK;
            int64_t nv = visible(p, q0 + i, k0, bk);
            if (h) craft_vexp_dual(s, P16 + i * bk, s, nv, lse[i]);
            else craft_vexp(s, s, nv, lse[i]);
            for (int64_t j = nv; j < bk; j++) s[j] = 0.0f;
            if (h)
                for (int64_t j = nv; j < bk; j++) P16[i * bk + j] = 0;
        }
        float beta = first ? 0.0f : 1.0f;
        if (c->need_v && tile_gemm(h, 'T', 'N', bk, Dv, bq, 1.0f, P, BK, P16, bk, dO, Dv, dO16, Dv, beta, dV, Dv))
            return 1;
        if (need_dp) {
            if (tile_gemm(h, 'N', 'T', bq, bk, Dv, 1.0f, dO, Dv, dO16, Dv, V, p->ldv, V16, Dv, 0.0f, dP, BK))
                return 1;
            for (int64_t i = 0; i < bq; i++) {
                float *d = dP + i * BK;
                const float *pr = P + i * BK;
                float di = Di[i];
                if (h) craft_vds_bf16(dS16 + i * bk, pr, d, di, bk);
                else
                    for (int64_t j = 0; j < bk; j++) d[j] = pr[j] * (d[j] - di);
            }
            if (c->need_k &&
                tile_gemm(h, 'T', 'N', bk, D, bq, p->scale, dP, BK, dS16, bk, Q, p->ldq, Q16, D, beta, dK, D))
                return 1;
            if (c->need_q && tile_gemm(h, 'N', 'N', bq, D, bk, p->scale, dP, BK, dS16, bk, K, p->ldk, K16, D, 1.0f,
                                       dq + (b * Lq + q0) * D, D))
                return 1;
        }
        first = 0;
    }
    if (first) { /* no query sees these keys */
        if (c->need_k) memset(dK, 0, (size_t)(bk * D) * sizeof(float));
        if (c->need_v) memset(dV, 0, (size_t)(bk * Dv) * sizeof(float));
    }
    return 0;
}

static int run_backward(bwd_ctx *c, float *dq) {
    const attn_plan *p = c->p;
    int64_t nkb = (p->Lk + BK - 1) / BK, nb = p->nb;
    int64_t nq = nb * p->Lq * p->D, rows = nb * p->Lq;
    if (c->need_q) memset(dq, 0, (size_t)nq * sizeof(float));
    if (nb == 0 || nkb == 0) return CRAFT_OK;
    if (p->Dv == 0) { /* an empty output: dP = dO V^T and Di are 0, so dS, dQ and dK are 0 */
        if (c->need_k) memset(c->dk, 0, (size_t)(nb * p->Lk * p->D) * sizeof(float));
        return CRAFT_OK;
    }
    int T = omp_get_max_threads();
    /* Whole matrices per thread when that balances; otherwise (matrix, key block) units with
     * a private dQ per thread. */
    int whole = nkb == 1 || T == 1 || nb % T == 0 || nb >= 4 * T;
    int64_t units = whole ? nb : nb * nkb;
    if (T > units) T = (int)units;
    int h = c->do16 != NULL;
    size_t per = (size_t)((h ? 3 : 2) * BQ * BK); /* P, dP (+ the bf16 P and dS tiles) */
    int priv = !whole && c->need_q && T > 1;
    size_t sbytes = (size_t)T * per * sizeof(float),
           pbytes = priv ? (size_t)T * (size_t)nq * sizeof(float) : 0;
    float *scratch = craft_alloc(sbytes), *acc = pbytes ? craft_alloc(pbytes) : NULL;
    if (!scratch || (pbytes && !acc)) {
        if (scratch) craft_free(scratch, sbytes);
        return craft_last_status();
    }
    int err = 0;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = omp_get_thread_num();
        float *P = scratch + (size_t)t * per, *dP = P + BQ * BK;
        uint16_t *T16 = h ? (uint16_t *)(dP + BQ * BK) : NULL;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) c->Di[r] = craft_vdot(c->dO + r * p->Dv, c->O + r * p->Dv, p->Dv);
        float *mydq = dq;
        if (priv) {
            mydq = acc + (size_t)t * (size_t)nq;
            memset(mydq, 0, (size_t)nq * sizeof(float));
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < units; u++) {
            if (whole) {
                for (int64_t kb = 0; kb < nkb; kb++)
                    if (bwd_unit(c, u, kb * BK, mydq, P, dP, T16)) err = 1;
            } else if (bwd_unit(c, u / nkb, (u % nkb) * BK, mydq, P, dP, T16)) {
                err = 1;
            }
        }
        if (priv) { /* implicit barrier above: every private dQ is complete */
#pragma omp for schedule(static)
            for (int64_t i = 0; i < nq; i++) {
                float s = 0;
                for (int tt = 0; tt < T; tt++) s += acc[(size_t)tt * (size_t)nq + i];
                dq[i] = s;
            }
        }
    }
    craft_free(scratch, sbytes);
    if (acc) craft_free(acc, pbytes);
    if (err) return craft_fail(CRAFT_EINVAL, "sdpa backward: oneDNN %s failed", h ? "bf16 gemm" : "sgemm");
    return CRAFT_OK;
}

int cpu_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
             double scale, int causal, craft_tensor *y, craft_tensor *lse) {
    attn_plan p;
    int rc = plan_build(q, k, v, mask, scale, causal, &p);
    if (!rc) rc = run_forward(&p, craft_tensor_data(y), craft_tensor_data(lse));
    plan_free(&p);
    return rc;
}

int cpu_sdpa_bf16(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                  const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse) {
    attn_plan p;
    int rc = plan_build(q, k, v, mask, scale, causal, &p);
    int work = !rc && p.nb * p.Lq > 0 && p.Dv > 0;
    if (work) rc = plan_bf16(&p);
    if (work && !rc) rc = plan_pack(&p);
    if (!rc) rc = run_forward(&p, craft_tensor_data(y), craft_tensor_data(lse));
    plan_free(&p);
    if (!rc && work) craft_bf16_count();
    return rc;
}

/* dq, dk, dv with the full batch shapes, each NULL when not wanted (a scratch stands in); bf16:
 * the products in bf16 (cpu_sdpa_grad_bf16) */
static int sdpa_grad(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
                     double scale, int causal, const craft_tensor *o, const craft_tensor *lse,
                     const craft_tensor *g, craft_tensor *dq, craft_tensor *dk, craft_tensor *dv, int bf16) {
    attn_plan p;
    CRAFT_TRY(plan_build(q, k, v, mask, scale, causal, &p));
    size_t sizes[3] = {(size_t)(p.nb * p.Lq * p.D), (size_t)(p.nb * p.Lk * p.D),
                       (size_t)(p.nb * p.Lk * p.Dv)};
    craft_tensor *given[3] = {dq, dk, dv};
    float *buf[3] = {NULL, NULL, NULL}, *tmp[3] = {NULL, NULL, NULL};
    size_t dibytes = (size_t)(p.nb * p.Lq) * sizeof(float), n16 = 0;
    float *Di = craft_alloc(dibytes ? dibytes : 4);
    uint16_t *do16 = NULL;
    int rc = Di ? CRAFT_OK : craft_last_status();
    bf16 = bf16 && p.nb * p.Lq > 0 && p.Lk > 0 && p.Dv > 0; /* else nothing is multiplied */
    if (!rc && bf16) rc = plan_bf16(&p);
    if (!rc && bf16) {
        n16 = (size_t)(p.nb * p.Lq * p.Dv);
        if (!(do16 = craft_alloc(n16 * 2))) rc = craft_last_status();
        else cpu_to_bf16(craft_tensor_data(g), p.nb * p.Lq, p.Dv, p.Dv, do16);
    }
    for (int i = 0; i < 3 && !rc; i++) {
        if (given[i]) buf[i] = craft_tensor_data(given[i]);
        else if (!(buf[i] = tmp[i] = craft_alloc(sizes[i] ? sizes[i] * sizeof(float) : 4)))
            rc = craft_last_status();
    }
    if (!rc) {
        bwd_ctx c = {&p,        craft_tensor_data(g), craft_tensor_data(o), craft_tensor_data(lse), Di, buf[1],
                     buf[2],    dq != NULL,           dk != NULL,           dv != NULL,             do16};
        rc = run_backward(&c, buf[0]);
    }
    for (int i = 0; i < 3; i++)
        if (tmp[i]) craft_free(tmp[i], sizes[i] ? sizes[i] * sizeof(float) : 4);
    if (Di) craft_free(Di, dibytes ? dibytes : 4);
    if (do16) craft_free(do16, n16 * 2);
    plan_free(&p);
    if (!rc && bf16) craft_bf16_count();
    return rc;
}

int cpu_sdpa_grad(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                  const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                  const craft_tensor *lse, const craft_tensor *g, craft_tensor *dq, craft_tensor *dk,
                  craft_tensor *dv) {
    return sdpa_grad(q, k, v, mask, scale, causal, o, lse, g, dq, dk, dv, 0);
}

int cpu_sdpa_grad_bf16(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                       const craft_tensor *lse, const craft_tensor *g, craft_tensor *dq, craft_tensor *dk,
                       craft_tensor *dv) {
    return sdpa_grad(q, k, v, mask, scale, causal, o, lse, g, dq, dk, dv, 1);
}
