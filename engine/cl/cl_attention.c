/* cl_attention.c: the scaled dot-product attention kernels on cl devices, forward and backward,
 * with the op's semantics (core/op_attention.c: broadcast batch dims, an additive f32 mask
 * broadcast through strides, top-left causal masking, a row of -inf scores giving NaN).
 * The products are CLBlast batched GEMMs over chunks of (matrix, block of query rows) whose
 * score block stays under a budget, with a row kernel between them (kernels_cl/attention.cl):
 *   forward   S = scale Q K^T; P = softmax(S + mask) in place, lse = m + log(sum); O = P V
 *   backward  Di = rowsum(dO O); per chunk S again, P = exp(S + mask - lse); dV += P^T dO;
 *             dP = dO V^T; dS = P (dP - Di); dK += scale dS^T Q; dQ = scale dS K
 * Like the CPU op only q, k, v, the output and lse are kept for backward, never the scores:
 * memory is the chunk's score block (two in backward), not batch x Lq x Lk. */
#include "cl/cl_internal.h"
#include <math.h>
#include <stdlib.h>

/* mirrors attn_geo in kernels_cl/attention.cl */
typedef struct {
    cl_long bshape[8], mst[8];
    cl_long moff, msr, msc, Lq, Lk, b0, q0, bq;
    cl_int nbd, has_mask, causal, pad0;
} cl_attn_geo;

typedef struct {
    int nbd;
    int64_t bshape[CRAFT_MAX_DIMS];
    int64_t nb, Lq, Lk, D, Dv, ldq, ldk, ldv;
    int64_t *off;    /* [3][nb]: element offsets of each matrix of q, k, v */
    cl_attn_geo geo; /* chunk fields filled per chunk */
    float scale;
} attn_plan;

/* The shared geometry (craft_sdpa_geom_of) in the kernels' terms, and the per-matrix offsets
 * of q, k and v (their own offsets included). q, k, v must be usable by CLBlast. */
static int plan_build(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                      const craft_tensor *mask, double scale, int causal, attn_plan *p) {
    memset(p, 0, sizeof *p);
    craft_sdpa_geom gm;
    CRAFT_TRY(craft_sdpa_geom_of(q, k, v, mask, scale, &gm));
    const craft_tensor *ts[3] = {q, k, v};
    int nbd = gm.nbd;
    p->nbd = nbd;
    memcpy(p->bshape, gm.bshape, sizeof p->bshape);
    p->nb = gm.nb;
    p->Lq = gm.Lq;
    p->Lk = gm.Lk;
    p->D = gm.D;
    p->Dv = gm.Dv;
    p->ldq = gm.ldq;
    p->ldk = gm.ldk;
    p->ldv = gm.ldv;
    p->scale = gm.scale;
    cl_attn_geo *g = &p->geo;
    g->nbd = nbd;
    g->Lq = p->Lq;
    g->Lk = p->Lk;
    g->causal = causal ? 1 : 0;
    for (int d = 0; d < nbd; d++) g->bshape[d] = p->bshape[d];
    if (mask) {
        for (int d = 0; d < nbd; d++) g->mst[d] = gm.bst[3][d];
        g->msr = gm.msr;
        g->msc = gm.msc;
        g->moff = mask->offset;
        g->has_mask = 1;
    }
    p->off = malloc((size_t)(p->nb ? p->nb : 1) * 3 * sizeof(int64_t));
    if (!p->off) return craft_fail(CRAFT_ENOMEM, "sdpa: out of host memory");
    for (int64_t b = 0; b < p->nb; b++) {
        int64_t r = b, o[3] = {ts[0]->offset, ts[1]->offset, ts[2]->offset};
        for (int d = nbd - 1; d >= 0; d--) {
            int64_t c = r % p->bshape[d];
            r /= p->bshape[d];
            for (int i = 0; i < 3; i++) o[i] += c * gm.bst[i][d];
        }
        for (int i = 0; i < 3; i++) p->off[i * p->nb + b] = o[i];
    }
    return CRAFT_OK;
}

/* Bytes of score blocks one call may hold (0: the default below); tests make it small. */
static int64_t chunk_bytes;
void craft_cl_sdpa_set_chunk_bytes(int64_t bytes) { chunk_bytes = bytes > 0 ? bytes : 0; }

/* Score chunks: bq query rows of nbc matrices at a time, the nbuf blocks within the budget:
 * large enough for few, large GEMMs, small next to the device's memory. */
static void chunk_sizes(const craft_cl_dev *d, const attn_plan *p, int nbuf, int64_t *bq, int64_t *nbc) {
    int64_t budget = d->info.max_alloc / 8;
    if (budget > ((int64_t)128 << 20)) budget = (int64_t)128 << 20;
    if (budget < ((int64_t)8 << 20)) budget = (int64_t)8 << 20;
    if (chunk_bytes) budget = chunk_bytes;
    budget /= nbuf;
    int64_t row = (p->Lk > 0 ? p->Lk : 1) * (int64_t)sizeof(float);
    *bq = budget / row;
    if (*bq < 1) *bq = 1;
    if (*bq > p->Lq) *bq = p->Lq;
    *nbc = 1;
    if (*bq == p->Lq && p->Lq > 0) *nbc = budget / (row * p->Lq);
    if (*nbc < 1) *nbc = 1;
    if (*nbc > p->nb) *nbc = p->nb;
}

/* offset lists of one chunk: o[0..n) = base[b0 + i] + add, or (when base is NULL) start + i step */
static void offsets(int64_t *o, int64_t n, const int64_t *base, int64_t b0, int64_t add, int64_t start,
                    int64_t step) {
    for (int64_t i = 0; i < n; i++) o[i] = base ? base[b0 + i] + add : start + i * step;
}

/* the row kernel over the rows of one chunk (geo's chunk fields set) */
static int launch_rows(craft_cl_dev *d, int kid, attn_plan *p, craft_tensor *S, craft_tensor *S2,
                       const craft_tensor *mask, const craft_tensor *vec, int64_t rows) {
    cl_mem sm = cl_mem_of(S), mm = mask ? cl_mem_of(mask) : sm, vm = cl_mem_of(vec);
    cl_long r = rows;
    if (kid == K_attn_softmax) {
        cl_arg args[4] = {CLA(sm), CLA(r), CLA(mm), CLA(vm)};
        return cl_nn_lines_geo(d, kid, &p->geo, sizeof p->geo, 4, args, rows, p->Lk, 1);
    }
    if (kid == K_attn_prob) {
        cl_arg args[4] = {CLA(sm), CLA(r), CLA(mm), CLA(vm)};
        return cl_launch_geo(d, kid, &p->geo, sizeof p->geo, 4, args, cl_global_for(rows * p->Lk), 0);
    }
    cl_mem s2 = cl_mem_of(S2);
    cl_arg args[4] = {CLA(sm), CLA(s2), CLA(r), CLA(vm)};
    return cl_launch_geo(d, kid, &p->geo, sizeof p->geo, 4, args, cl_global_for(rows * p->Lk), 0);
}

static int run_forward(craft_cl_dev *d, attn_plan *p, const craft_tensor *q, const craft_tensor *k,
                       const craft_tensor *v, const craft_tensor *mask, craft_tensor *y, craft_tensor *lse) {
    if (p->nb == 0 || p->Lq == 0) return CRAFT_OK;
    int64_t bq, nbc;
    chunk_sizes(d, p, 1, &bq, &nbc);
    int64_t ns = nbc * bq * (p->Lk > 0 ? p->Lk : 1);
    craft_tensor *S = cl_new(1, &ns, CRAFT_F32, y->device);
    int64_t *o = malloc((size_t)nbc * 6 * sizeof *o);
    int rc = !S ? craft_last_status() : !o ? craft_fail(CRAFT_ENOMEM, "sdpa: out of host memory") : CRAFT_OK;
    for (int64_t b0 = 0; b0 < p->nb && !rc; b0 += nbc) {
        int64_t nbb = p->nb - b0 < nbc ? p->nb - b0 : nbc;
        for (int64_t q0 = 0; q0 < p->Lq && !rc; q0 += bq) {
            int64_t bqe = p->Lq - q0 < bq ? p->Lq - q0 : bq, blk = bqe * p->Lk;
            int64_t *oq = o, *ok = o + nbb, *os = o + 2 * nbb, *ov = o + 3 * nbb, *oy = o + 4 * nbb;
            offsets(oq, nbb, p->off, b0, q0 * p->ldq, 0, 0);
            offsets(ok, nbb, p->off + p->nb, b0, 0, 0, 0);
            offsets(ov, nbb, p->off + 2 * p->nb, b0, 0, 0, 0);
            offsets(os, nbb, NULL, 0, 0, 0, blk);
            offsets(oy, nbb, NULL, 0, 0, b0 * p->Lq * p->Dv + q0 * p->Dv, p->Lq * p->Dv);
            p->geo.b0 = b0;
            p->geo.q0 = q0;
            p->geo.bq = bqe;
            rc = craft_cl_gemm_batched('N', 'T', bqe, p->Lk, p->D, p->scale, q, oq, p->ldq, k, ok, p->ldk,
                                       0.0f, S, os, p->Lk, nbb);
            if (!rc) rc = launch_rows(d, K_attn_softmax, p, S, NULL, mask, lse, nbb * bqe);
            if (!rc)
                rc = craft_cl_gemm_batched('N', 'N', bqe, p->Dv, p->Lk, 1.0f, S, os, p->Lk, v, ov, p->ldv,
                                           0.0f, y, oy, p->Dv, nbb);
        }
    }
    free(o);
    craft_tensor_release(S);
    return rc;
}

typedef struct {
    const craft_tensor *q, *k, *v, *mask, *o, *lse, *g;
    craft_tensor *dq, *dk, *dv; /* NULL when not needed */
} bwd_args;

static int run_backward(craft_cl_dev *d, attn_plan *p, const bwd_args *a) {
    int code = a->o->device, rc = CRAFT_OK;
    if (p->nb == 0) return CRAFT_OK;
    if (p->Lq == 0) { /* no query sees any key */
        if (a->dk) rc = craft_cl_fill_(a->dk, 0.0);
        if (!rc && a->dv) rc = craft_cl_fill_(a->dv, 0.0);
        return rc;
    }
    int64_t bq, nbc, rows = p->nb * p->Lq;
    chunk_sizes(d, p, 2, &bq, &nbc);
    int64_t ns = nbc * bq * (p->Lk > 0 ? p->Lk : 1);
    craft_tensor *P = cl_new(1, &ns, CRAFT_F32, code), *dP = cl_new(1, &ns, CRAFT_F32, code),
                 *Di = cl_new(1, &rows, CRAFT_F32, code);
    int64_t *o = malloc((size_t)nbc * 10 * sizeof *o);
    if (!P || !dP || !Di) rc = craft_last_status();
    else if (!o) rc = craft_fail(CRAFT_ENOMEM, "sdpa backward: out of host memory");
    if (!rc) { /* Di = rowsum(dO * O) */
        cl_mem gm = cl_mem_of(a->g), om = cl_mem_of(a->o), dm = cl_mem_of(Di);
        cl_long goff = a->g->offset, ooff = a->o->offset, r = rows, n = p->Dv;
        cl_arg args[7] = {CLA(gm), CLA(goff), CLA(om), CLA(ooff), CLA(dm), CLA(r), CLA(n)};
        rc = cl_nn_lines(d, K_row_dot, 7, args, rows, p->Dv, 1);
    }
    const craft_tensor *q = a->q, *k = a->k, *v = a->v, *g = a->g;
    for (int64_t b0 = 0; b0 < p->nb && !rc; b0 += nbc) {
        int64_t nbb = p->nb - b0 < nbc ? p->nb - b0 : nbc;
        for (int64_t q0 = 0; q0 < p->Lq && !rc; q0 += bq) {
            int64_t bqe = p->Lq - q0 < bq ? p->Lq - q0 : bq, blk = bqe * p->Lk, Lk = p->Lk;
            int64_t *oq = o, *ok = o + nbb, *ov = o + 2 * nbb, *os = o + 3 * nbb, *og = o + 4 * nbb;
            int64_t *odq = o + 5 * nbb, *odk = o + 6 * nbb, *odv = o + 7 * nbb;
            offsets(oq, nbb, p->off, b0, q0 * p->ldq, 0, 0);
            offsets(ok, nbb, p->off + p->nb, b0, 0, 0, 0);
            offsets(ov, nbb, p->off + 2 * p->nb, b0, 0, 0, 0);
            offsets(os, nbb, NULL, 0, 0, 0, blk);
            offsets(og, nbb, NULL, 0, 0, g->offset + (b0 * p->Lq + q0) * p->Dv, p->Lq * p->Dv);
            offsets(odq, nbb, NULL, 0, 0, (b0 * p->Lq + q0) * p->D, p->Lq * p->D);
            offsets(odk, nbb, NULL, 0, 0, b0 * Lk * p->D, Lk * p->D);
            offsets(odv, nbb, NULL, 0, 0, b0 * Lk * p->Dv, Lk * p->Dv);
            p->geo.b0 = b0;
            p->geo.q0 = q0;
            p->geo.bq = bqe;
            float beta = q0 == 0 ? 0.0f : 1.0f; /* dK, dV sum over the query blocks */
            rc = craft_cl_gemm_batched('N', 'T', bqe, Lk, p->D, p->scale, q, oq, p->ldq, k, ok, p->ldk, 0.0f,
                                       P, os, Lk, nbb);
            if (!rc) rc = launch_rows(d, K_attn_prob, p, P, NULL, a->mask, a->lse, nbb * bqe);
            if (!rc && a->dv)
                rc = craft_cl_gemm_batched('T', 'N', Lk, p->Dv, bqe, 1.0f, P, os, Lk, g, og, p->Dv, beta,
                                           a->dv, odv, p->Dv, nbb);
            if (rc || (!a->dq && !a->dk)) continue;
            rc = craft_cl_gemm_batched('N', 'T', bqe, Lk, p->Dv, 1.0f, g, og, p->Dv, v, ov, p->ldv, 0.0f, dP,
                                       os, Lk, nbb);
            if (!rc) rc = launch_rows(d, K_attn_dscore, p, P, dP, NULL, Di, nbb * bqe);
            if (!rc && a->dk)
                rc = craft_cl_gemm_batched('T', 'N', Lk, p->D, bqe, p->scale, dP, os, Lk, q, oq, p->ldq, beta,
                                           a->dk, odk, p->D, nbb);
            if (!rc && a->dq)
                rc = craft_cl_gemm_batched('N', 'N', bqe, p->D, Lk, p->scale, dP, os, Lk, k, ok, p->ldk, 0.0f,
                                           a->dq, odq, p->D, nbb);
        }
    }
    free(o);
    craft_tensor_release(P);
    craft_tensor_release(dP);
    craft_tensor_release(Di);
    return rc;
}

int craft_cl_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                  const craft_tensor *mask, double scale, int causal, craft_tensor *y, craft_tensor *lse) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "sdpa", &d));
    int served;
    CRAFT_TRY(cl_flash_sdpa(q, k, v, mask, scale, causal, y, lse, &served));
    if (served) return CRAFT_OK;
    attn_plan p;
    int rc = plan_build(q, k, v, mask, scale, causal, &p);
    if (!rc) rc = run_forward(d, &p, q, k, v, mask, y, lse);
    free(p.off);
    return rc;
}

int craft_cl_sdpa_grad(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, int causal, const craft_tensor *o,
                       const craft_tensor *lse, const craft_tensor *g, craft_tensor *dq, craft_tensor *dk,
                       craft_tensor *dv) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(o->device, "sdpa backward", &d));
    int served;
    CRAFT_TRY(cl_flash_sdpa_grad(q, k, v, mask, scale, causal, o, lse, g, dq, dk, dv, &served));
    if (served) return CRAFT_OK;
    attn_plan p;
    int rc = plan_build(q, k, v, mask, scale, causal, &p);
    bwd_args a = {q, k, v, mask, o, lse, g, dq, dk, dv};
    if (!rc) rc = run_backward(d, &p, &a);
    free(p.off);
    return rc;
}
