/* ops_attention.c: memory-efficient scaled dot-product attention (flash-attention style) on
 * oneDNN sgemm tiles.
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
 * A row whose scores are all -inf gives NaN, as in torch. */
#include "core/internal.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* row kernels from ops_softmax.c */

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
    int nbd;                          /* batch dims of the output */
    int64_t bshape[CRAFT_MAX_DIMS];
    int64_t nb, Lq, Lk, D, Dv;
    const float *q, *k, *v, *mask;
    int64_t ldq, ldk, ldv;            /* row strides (elements); columns are unit stride */
    int64_t msr, msc;                 /* mask row / column strides, 0 when broadcast */
    int64_t *off;                     /* [nb][4]: element offsets of q, k, v, mask per matrix */
    float scale;
    int causal;
} attn_plan;

int craft_sdpa_mat_usable(const craft_tensor *t) {
    int n = t->ndim;
    int64_t rows = t->shape[n - 2], cols = t->shape[n - 1];
    if (cols > 1 && t->stride[n - 1] != 1) return 0;
    if (rows > 1 && t->stride[n - 2] < cols) return 0;
    return 1;
}
static int64_t row_ld(const craft_tensor *t) {
    int n = t->ndim;
    int64_t cols = t->shape[n - 1], ld = t->shape[n - 2] > 1 ? t->stride[n - 2] : cols;
    return ld < 1 ? 1 : ld;
}

int craft_sdpa_shapes_check(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v) {
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2)
        return craft_fail(CRAFT_ESHAPE, "sdpa: q %s, k %s and v %s need at least 2 dims ([..., L, D])",
                          craft_shape_str(q), craft_shape_str(k), craft_shape_str(v));
    if (q->shape[q->ndim - 1] != k->shape[k->ndim - 1])
        return craft_fail(CRAFT_ESHAPE, "sdpa: q %s and k %s: head dims %lld and %lld differ", craft_shape_str(q),
                          craft_shape_str(k), (long long)q->shape[q->ndim - 1], (long long)k->shape[k->ndim - 1]);
    if (k->shape[k->ndim - 2] != v->shape[v->ndim - 2])
        return craft_fail(CRAFT_ESHAPE, "sdpa: k %s and v %s: key counts %lld and %lld differ", craft_shape_str(k),
                          craft_shape_str(v), (long long)k->shape[k->ndim - 2], (long long)v->shape[v->ndim - 2]);
    return CRAFT_OK;
}

int craft_sdpa_geom_of(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
                       double scale, craft_sdpa_geom *g) {
    memset(g, 0, sizeof *g);
    const craft_tensor *ts[3] = {q, k, v};
    int nbd = 0;
    for (int i = 0; i < 3; i++) if (ts[i]->ndim - 2 > nbd) nbd = ts[i]->ndim - 2;
    g->nbd = nbd;
    for (int d = 0; d < nbd; d++) {
        int64_t s = 1;
        for (int i = 0; i < 3; i++) {
            int j = d - (nbd - (ts[i]->ndim - 2));
            int64_t e = j >= 0 ? ts[i]->shape[j] : 1;
            if (e != 1 && s != 1 && e != s)
                return craft_fail(CRAFT_ESHAPE, "sdpa: batch dims of q %s, k %s and v %s do not broadcast (dim %d)",
                                  craft_shape_str(q), craft_shape_str(k), craft_shape_str(v), d);
            if (e != 1) s = e;
        }
        g->bshape[d] = s;
    }
    g->nb = craft_numel_of(nbd, g->bshape);
    g->Lq = q->shape[q->ndim - 2];
    g->Lk = k->shape[k->ndim - 2];
    g->D = q->shape[q->ndim - 1];
    g->Dv = v->shape[v->ndim - 1];
    g->ldq = row_ld(q);
    g->ldk = row_ld(k);
    g->ldv = row_ld(v);
    g->scale = scale > 0 ? (float)scale : (g->D > 0 ? (float)(1.0 / sqrt((double)g->D)) : 1.0f);
    for (int i = 0; i < 3; i++)
        for (int d = 0; d < nbd; d++) {
            int j = d - (nbd - (ts[i]->ndim - 2));
            g->bst[i][d] = (j >= 0 && ts[i]->shape[j] != 1) ? ts[i]->stride[j] : 0;
        }
    if (mask) {
        int full = nbd + 2;
        int64_t fshape[CRAFT_MAX_DIMS];
        for (int d = 0; d < nbd; d++) fshape[d] = g->bshape[d];
        fshape[nbd] = g->Lq;
        fshape[nbd + 1] = g->Lk;
        int ok = mask->ndim <= full;
        for (int j = 0; ok && j < mask->ndim; j++) {
            int d = j + (full - mask->ndim);
            if (mask->shape[j] != 1 && mask->shape[j] != fshape[d]) ok = 0;
        }
        if (!ok)
            return craft_fail(CRAFT_ESHAPE, "sdpa: mask %s does not broadcast to the scores %s (q %s, k %s)",
                              craft_shape_str(mask), craft_dims_str(full, fshape), craft_shape_str(q), craft_shape_str(k));
        int64_t st[CRAFT_MAX_DIMS];
        for (int d = 0; d < full; d++) {
            int j = d - (full - mask->ndim);
            st[d] = (j >= 0 && mask->shape[j] != 1) ? mask->stride[j] : 0;
        }
        for (int d = 0; d < nbd; d++) g->bst[3][d] = st[d];
        g->msr = st[nbd];
        g->msc = st[nbd + 1];
    }
    return CRAFT_OK;
}

static void plan_free(attn_plan *p) { free(p->off); p->off = NULL; }

/* The geometry, and the per-matrix offsets of q, k, v and the mask. q, k, v must be usable. */
static int plan_build(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
                      double scale, int causal, attn_plan *p) {
    memset(p, 0, sizeof *p);
    craft_sdpa_geom g;
    CRAFT_TRY(craft_sdpa_geom_of(q, k, v, mask, scale, &g));
    p->nbd = g.nbd;
    memcpy(p->bshape, g.bshape, sizeof p->bshape);
    p->nb = g.nb; p->Lq = g.Lq; p->Lk = g.Lk; p->D = g.D; p->Dv = g.Dv;
    p->ldq = g.ldq; p->ldk = g.ldk; p->ldv = g.ldv;
    p->msr = g.msr; p->msc = g.msc;
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
static void add_mask(float *S, int64_t lds, const float *m, int64_t msr, int64_t msc, int64_t rows, int64_t cols) {
    for (int64_t i = 0; i < rows; i++) {
        float *s = S + i * lds;
        const float *mr = m + i * msr;
        if (msc == 1) for (int64_t j = 0; j < cols; j++) s[j] += mr[j];
        else if (msc == 0) { float c = mr[0]; for (int64_t j = 0; j < cols; j++) s[j] += c; }
        else for (int64_t j = 0; j < cols; j++) s[j] += mr[j * msc];
    }
}

/* Number of keys (from k0, at most bk) that query row qi may see. */
static inline int64_t visible(const attn_plan *p, int64_t qi, int64_t k0, int64_t bk) {
    if (!p->causal) return bk;
    int64_t nv = qi - k0 + 1;
    return nv < 0 ? 0 : (nv > bk ? bk : nv);
}

/* One (matrix b, query block q0) of the forward. S: BQ * BK scratch, st: 3 * BQ scratch. */
static int fwd_unit(const attn_plan *p, int64_t b, int64_t q0, float *out, float *lse, float *S, float *st) {
    int64_t bq = p->Lq - q0 < BQ ? p->Lq - q0 : BQ, D = p->D, Dv = p->Dv;
    const float *Q = p->q + p->off[4 * b] + q0 * p->ldq;
    const float *K = p->k + p->off[4 * b + 1], *V = p->v + p->off[4 * b + 2];
    const float *M = p->mask ? p->mask + p->off[4 * b + 3] + q0 * p->msr : NULL;
    float *O = out + (b * p->Lq + q0) * Dv;
    float *mrow = st, *lrow = st + BQ, *corr = st + 2 * BQ;
    for (int64_t i = 0; i < bq; i++) { mrow[i] = -INFINITY; lrow[i] = 0; }
    int64_t kend = p->causal && q0 + bq < p->Lk ? q0 + bq : p->Lk;
    int first = 1;
    for (int64_t k0 = 0; k0 < kend; k0 += BK) {
        int64_t bk = kend - k0 < BK ? kend - k0 : BK;
        if (craft_sgemm('N', 'T', bq, bk, D, p->scale, Q, p->ldq, K + k0 * p->ldk, p->ldk, 0.0f, S, BK)) return 1;
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
                sum = craft_vexp(s, s, nv, mnew);
            }
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
        if (craft_sgemm('N', 'N', bq, Dv, bk, 1.0f, S, BK, V + k0 * p->ldv, p->ldv, first ? 0.0f : 1.0f, O, Dv)) return 1;
        first = 0;
    }
    if (first) {   /* no keys at all: zeros, as softmax over nothing times an empty V */
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
    if (p->Dv == 0) {   /* an empty output needs no scores (and backward none: its gradients are 0) */
        memset(lse, 0, (size_t)(p->nb * p->Lq) * sizeof(float));
        return CRAFT_OK;
    }
    int T = omp_get_max_threads();
    if (T > units) T = (int)units;
    size_t per = (size_t)(BQ * BK + 3 * BQ);
    float *scratch = craft_alloc((size_t)T * per * sizeof(float));
    if (!scratch) return craft_last_status();
    int err = 0;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        float *S = scratch + (size_t)omp_get_thread_num() * per;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < units; u++)
            if (fwd_unit(p, u / nqb, (u % nqb) * BQ, out, lse, S, S + BQ * BK)) err = 1;
    }
    craft_free(scratch, (size_t)T * per * sizeof(float));
    if (err) return craft_fail(CRAFT_EINVAL, "sdpa: oneDNN sgemm failed");
    return CRAFT_OK;
}

/* ---- backward ---- */
typedef struct {
    const attn_plan *p;
    const float *dO, *O, *lse;
    float *Di;                   /* rowsum(dO * O), [nb, Lq], filled by run_backward */
    float *dk, *dv;              /* full-batch-shape gradients, [nb, Lk, D] / [nb, Lk, Dv] */
    int need_q, need_k, need_v;
} bwd_ctx;

/* Key block k0 of matrix b over all query blocks; dQ accumulates into dq ([nb, Lq, D]). */
static int bwd_unit(const bwd_ctx *c, int64_t b, int64_t k0, float *dq, float *P, float *dP) {
    const attn_plan *p = c->p;
    int64_t bk = p->Lk - k0 < BK ? p->Lk - k0 : BK, D = p->D, Dv = p->Dv, Lq = p->Lq;
    const float *K = p->k + p->off[4 * b + 1] + k0 * p->ldk, *V = p->v + p->off[4 * b + 2] + k0 * p->ldv;
    const float *M = p->mask ? p->mask + p->off[4 * b + 3] + k0 * p->msc : NULL;
    float *dK = c->dk + (b * p->Lk + k0) * D, *dV = c->dv + (b * p->Lk + k0) * Dv;
    int first = 1, need_dp = c->need_q || c->need_k;
    for (int64_t q0 = p->causal ? (k0 / BQ) * BQ : 0; q0 < Lq; q0 += BQ) {
        int64_t bq = Lq - q0 < BQ ? Lq - q0 : BQ;
        const float *Q = p->q + p->off[4 * b] + q0 * p->ldq;
        const float *dO = c->dO + (b * Lq + q0) * Dv, *lse = c->lse + b * Lq + q0, *Di = c->Di + b * Lq + q0;
        if (craft_sgemm('N', 'T', bq, bk, D, p->scale, Q, p->ldq, K, p->ldk, 0.0f, P, BK)) return 1;
        if (M) add_mask(P, BK, M + q0 * p->msr, p->msr, p->msc, bq, bk);
        for (int64_t i = 0; i < bq; i++) {
            float *s = P + i * BK;
            int64_t nv = visible(p, q0 + i, k0, bk);
            craft_vexp(s, s, nv, lse[i]);
            for (int64_t j = nv; j < bk; j++) s[j] = 0.0f;
        }
        float beta = first ? 0.0f : 1.0f;
        if (c->need_v && craft_sgemm('T', 'N', bk, Dv, bq, 1.0f, P, BK, dO, Dv, beta, dV, Dv)) return 1;
        if (need_dp) {
            if (craft_sgemm('N', 'T', bq, bk, Dv, 1.0f, dO, Dv, V, p->ldv, 0.0f, dP, BK)) return 1;
            for (int64_t i = 0; i < bq; i++) {
                float *d = dP + i * BK;
                const float *pr = P + i * BK;
                float di = Di[i];
                for (int64_t j = 0; j < bk; j++) d[j] = pr[j] * (d[j] - di);
            }
            if (c->need_k && craft_sgemm('T', 'N', bk, D, bq, p->scale, dP, BK, Q, p->ldq, beta, dK, D)) return 1;
            if (c->need_q && craft_sgemm('N', 'N', bq, D, bk, p->scale, dP, BK, K, p->ldk, 1.0f, dq + (b * Lq + q0) * D, D))
                return 1;
        }
        first = 0;
    }
    if (first) {   /* no query sees these keys */
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
    if (p->Dv == 0) {   /* an empty output: dP = dO V^T and Di are 0, so dS, dQ and dK are 0 */
        if (c->need_k) memset(c->dk, 0, (size_t)(nb * p->Lk * p->D) * sizeof(float));
        return CRAFT_OK;
    }
    int T = omp_get_max_threads();
    /* Whole matrices per thread when that balances; otherwise (matrix, key block) units with
     * a private dQ per thread. */
    int whole = nkb == 1 || T == 1 || nb % T == 0 || nb >= 4 * T;
    int64_t units = whole ? nb : nb * nkb;
    if (T > units) T = (int)units;
    size_t per = (size_t)(2 * BQ * BK);
    int priv = !whole && c->need_q && T > 1;
    size_t sbytes = (size_t)T * per * sizeof(float), pbytes = priv ? (size_t)T * (size_t)nq * sizeof(float) : 0;
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
                    if (bwd_unit(c, u, kb * BK, mydq, P, dP)) err = 1;
            } else if (bwd_unit(c, u / nkb, (u % nkb) * BK, mydq, P, dP)) {
                err = 1;
            }
        }
        if (priv) {   /* implicit barrier above: every private dQ is complete */
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
    if (err) return craft_fail(CRAFT_EINVAL, "sdpa backward: oneDNN sgemm failed");
    return CRAFT_OK;
}

static craft_tensor *full_grad(const attn_plan *p, int64_t L, int64_t W) {
    int64_t shape[CRAFT_MAX_DIMS];
    for (int d = 0; d < p->nbd; d++) shape[d] = p->bshape[d];
    shape[p->nbd] = L;
    shape[p->nbd + 1] = W;
    return craft_new_tensor(p->nbd + 2, shape, CRAFT_F32, 0);
}

static int sdpa_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *q = n->saved[0], *k = n->saved[1], *v = n->saved[2], *mask = n->saved[3];
    craft_tensor *o = n->saved[4], *lse = n->saved[5];
    attn_plan p;
    CRAFT_TRY(plan_build(q, k, v, mask, n->sarg[0], (int)n->iarg[0], &p));
    craft_tensor *g = NULL, *dq = NULL, *dk = NULL, *dv = NULL;
    float *Di = NULL;
    size_t dibytes = (size_t)(p.nb * p.Lq) * sizeof(float);
    int rc = craft_contig_f32(gout[0], &g);
    if (!rc) {
        dq = full_grad(&p, p.Lq, p.D);
        dk = full_grad(&p, p.Lk, p.D);
        dv = full_grad(&p, p.Lk, p.Dv);
        Di = craft_alloc(dibytes ? dibytes : 4);
        if (!dq || !dk || !dv || !Di) rc = craft_last_status();
    }
    if (!rc) {
        bwd_ctx c = {&p, craft_tensor_data(g), craft_tensor_data(o), craft_tensor_data(lse), Di, craft_tensor_data(dk), craft_tensor_data(dv),
                     CRAFT_NEEDS_GRAD(n, 0), CRAFT_NEEDS_GRAD(n, 1), CRAFT_NEEDS_GRAD(n, 2)};
        rc = run_backward(&c, craft_tensor_data(dq));
    }
    craft_tensor *full[3] = {dq, dk, dv};
    for (int i = 0; i < 3 && !rc; i++)
        if (CRAFT_NEEDS_GRAD(n, i)) rc = craft_sum_to_shape(full[i], n->edges[i].ndim, n->edges[i].shape, &gin[i]);
    for (int i = 0; i < 3; i++) craft_tensor_release(full[i]);
    if (Di) craft_free(Di, dibytes ? dibytes : 4);
    craft_tensor_release(g);
    plan_free(&p);
    return rc;
}

int craft_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
               double scale, int is_causal, craft_tensor **out) {
    if ((q && q->device != CRAFT_DEVICE_CPU) || (k && k->device != CRAFT_DEVICE_CPU) || (v && v->device != CRAFT_DEVICE_CPU) || (mask && mask->device != CRAFT_DEVICE_CPU)) return craft_cl_op_sdpa(q, k, v, mask, scale, is_causal, out);
    CRAFT_TRY(craft_check_f32("sdpa", "q", q));
    CRAFT_TRY(craft_check_f32("sdpa", "k", k));
    CRAFT_TRY(craft_check_f32("sdpa", "v", v));
    if (mask) CRAFT_TRY(craft_check_f32("sdpa", "mask", mask));
    CRAFT_TRY(craft_sdpa_shapes_check(q, k, v));
    /* layouts sgemm cannot take directly are copied once (and that copy is what backward uses) */
    const craft_tensor *in[3] = {q, k, v};
    craft_tensor *use[3] = {NULL, NULL, NULL};
    int rc = CRAFT_OK;
    for (int i = 0; i < 3 && !rc; i++) {
        if (craft_sdpa_mat_usable(in[i])) { use[i] = craft_alias(in[i]); if (!use[i]) rc = craft_last_status(); }
        else rc = craft_contig_f32(in[i], &use[i]);
    }
    attn_plan p;
    memset(&p, 0, sizeof p);
    if (!rc) rc = plan_build(use[0], use[1], use[2], mask, scale, is_causal, &p);
    craft_tensor *y = NULL, *lse = NULL;
    if (!rc) {
        int64_t nl = craft_mul_sat(p.nb, p.Lq);
        y = full_grad(&p, p.Lq, p.Dv);
        lse = craft_new_tensor(1, &nl, CRAFT_F32, 0);
        if (!y || !lse) rc = craft_last_status();
    }
    if (!rc) rc = run_forward(&p, craft_tensor_data(y), craft_tensor_data(lse));
    if (!rc) {
        const craft_tensor *save[6] = {use[0], use[1], use[2], mask, y, lse};
        double sarg = p.scale;
        int64_t iarg = p.causal;
        rc = craft_record("sdpa", 3, in, y, sdpa_backward, 6, save, &sarg, 1, &iarg, 1, NULL);
    }
    plan_free(&p);
    for (int i = 0; i < 3; i++) craft_tensor_release(use[i]);
    craft_tensor_release(lse);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}
