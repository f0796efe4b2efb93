/* op_attention.c: scaled dot-product attention for every device: checks, the shared geometry
 * (batch broadcasting, mask broadcasting, strides), output allocation, recording and the
 * backward, on the back end's memory-efficient sdpa kernels: only q, k, v, the output and the
 * per-row log-sum-exp are kept for backward, never the Lq x Lk score matrix. is_causal masks
 * key j > query i (top-left aligned, as torch's scaled_dot_product_attention with
 * is_causal=True). The mask is additive f32, broadcast to [..., Lq, Lk] through strides (no
 * copy); it gets no gradient, and a CPU mask next to device q, k, v is copied over. */
#include "core/backend.h"
#include <math.h>

static int sdpa_mat_usable(const craft_tensor *t) {
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

static int sdpa_shapes_check(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v) {
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2)
        return craft_fail(CRAFT_ESHAPE, "sdpa: q %s, k %s and v %s need at least 2 dims ([..., L, D])",
                          craft_shape_str(q), craft_shape_str(k), craft_shape_str(v));
    if (q->shape[q->ndim - 1] != k->shape[k->ndim - 1])
        return craft_fail(CRAFT_ESHAPE, "sdpa: q %s and k %s: head dims %lld and %lld differ",
                          craft_shape_str(q), craft_shape_str(k), (long long)q->shape[q->ndim - 1],
                          (long long)k->shape[k->ndim - 1]);
    if (k->shape[k->ndim - 2] != v->shape[v->ndim - 2])
        return craft_fail(CRAFT_ESHAPE, "sdpa: k %s and v %s: key counts %lld and %lld differ",
                          craft_shape_str(k), craft_shape_str(v), (long long)k->shape[k->ndim - 2],
                          (long long)v->shape[v->ndim - 2]);
    return CRAFT_OK;
}

int craft_sdpa_geom_of(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                       const craft_tensor *mask, double scale, craft_sdpa_geom *g) {
    memset(g, 0, sizeof *g);
    const craft_tensor *ts[3] = {q, k, v};
    int nbd = 0;
    for (int i = 0; i < 3; i++)
        if (ts[i]->ndim - 2 > nbd) nbd = ts[i]->ndim - 2;
    g->nbd = nbd;
    for (int d = 0; d < nbd; d++) {
        int64_t s = 1;
        for (int i = 0; i < 3; i++) {
            int j = d - (nbd - (ts[i]->ndim - 2));
            int64_t e = j >= 0 ? ts[i]->shape[j] : 1;
            if (e != 1 && s != 1 && e != s)
                return craft_fail(CRAFT_ESHAPE,
                                  "sdpa: batch dims of q %s, k %s and v %s do not broadcast (dim %d)",
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
                              craft_shape_str(mask), craft_dims_str(full, fshape), craft_shape_str(q),
                              craft_shape_str(k));
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

static craft_tensor *full_tensor(const craft_sdpa_geom *g, int64_t L, int64_t W, int device) {
    int64_t shape[CRAFT_MAX_DIMS];
    for (int d = 0; d < g->nbd; d++) shape[d] = g->bshape[d];
    shape[g->nbd] = L;
    shape[g->nbd + 1] = W;
    return craft_new_tensor(g->nbd + 2, shape, CRAFT_F32, device);
}

/* saved: q, k, v (as used), mask (on the device, or NULL), output, lse; sarg: scale; iarg: causal.
 * After a bf16 forward (mixed precision) the gradients are bf16 products too. */
static int sdpa_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *q = n->saved[0], *k = n->saved[1], *v = n->saved[2], *mask = n->saved[3], *o = n->saved[4],
                 *lse = n->saved[5];
    int device = o->device, bf16 = craft_bf16_grad_for(n, CRAFT_K_sdpa_grad_bf16);
    const craft_kernels *kt;
    CRAFT_TRY(craft_kernels_for(device, bf16 ? CRAFT_K_sdpa_grad_bf16 : CRAFT_K_sdpa_grad, CRAFT_F32, n->name,
                                &kt));
    craft_sdpa_geom geo;
    CRAFT_TRY(craft_sdpa_geom_of(q, k, v, mask, n->sarg[0], &geo));
    craft_tensor *g = NULL, *full[3] = {NULL, NULL, NULL};
    int rc = craft_grad_on(gout[0], device, &g);
    int64_t L[3] = {geo.Lq, geo.Lk, geo.Lk}, W[3] = {geo.D, geo.D, geo.Dv};
    for (int i = 0; i < 3 && !rc; i++)
        if (CRAFT_NEEDS_GRAD(n, i) && !(full[i] = full_tensor(&geo, L[i], W[i], device)))
            rc = craft_last_status();
    if (!rc)
        rc = (bf16 ? kt->sdpa_grad_bf16 : kt->sdpa_grad)(q, k, v, mask, geo.scale, (int)n->iarg[0], o, lse, g,
                                                         full[0], full[1], full[2]);
    for (int i = 0; i < 3 && !rc; i++)
        if (full[i]) rc = craft_sum_to_shape(full[i], n->edges[i].ndim, n->edges[i].shape, &gin[i]);
    for (int i = 0; i < 3; i++) craft_tensor_release(full[i]);
    craft_tensor_release(g);
    return rc;
}

int craft_sdpa(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v, const craft_tensor *mask,
               double scale, int is_causal, craft_tensor **out) {
    if (!q) return craft_fail(CRAFT_EINVAL, "sdpa: q is missing");
    int device = q->device;
    const craft_kernels *kt;
    CRAFT_TRY(craft_want("sdpa", "q", q, device));
    CRAFT_TRY(craft_want("sdpa", "k", k, device));
    CRAFT_TRY(craft_want("sdpa", "v", v, device));
    if (mask && mask->device != CRAFT_DEVICE_CPU) CRAFT_TRY(craft_want("sdpa", "mask", mask, device));
    else if (mask) CRAFT_TRY(craft_want("sdpa", "mask", mask, CRAFT_DEVICE_CPU));
    CRAFT_TRY(sdpa_shapes_check(q, k, v));
    /* layouts a gemm cannot take directly are copied once (and that copy is what backward uses) */
    const craft_tensor *in[3] = {q, k, v};
    int bf16 = craft_bf16_for(device, CRAFT_K_sdpa_bf16, 3, in); /* the bf16 precisions (core/precision.c) */
    int f16 = !bf16 && craft_f16_for(device, CRAFT_K_sdpa_f16, 3, in); /* fp16, unrecorded */
    CRAFT_TRY(craft_kernels_for(device,
                                bf16      ? CRAFT_K_sdpa_bf16
                                    : f16 ? CRAFT_K_sdpa_f16
                                          : CRAFT_K_sdpa,
                                CRAFT_F32, "sdpa", &kt));
    craft_tensor *use[3] = {NULL, NULL, NULL}, *m = NULL, *y = NULL, *lse = NULL;
    int rc = CRAFT_OK;
    for (int i = 0; i < 3 && !rc; i++) {
        if (sdpa_mat_usable(in[i])) {
            if (!(use[i] = craft_alias(in[i]))) rc = craft_last_status();
        } else rc = craft_contig_f32(in[i], &use[i]);
    }
    if (!rc && mask) rc = craft_on_device(mask, device, &m);
    craft_sdpa_geom geo;
    if (!rc) rc = craft_sdpa_geom_of(use[0], use[1], use[2], m, scale, &geo);
    if (!rc) {
        int64_t nl = craft_mul_sat(geo.nb, geo.Lq);
        y = full_tensor(&geo, geo.Lq, geo.Dv, device);
        lse = craft_new_tensor(1, &nl, CRAFT_F32, device);
        if (!y || !lse) rc = craft_last_status();
    }
    if (!rc)
        rc = (bf16      ? kt->sdpa_bf16
                  : f16 ? kt->sdpa_f16
                        : kt->sdpa)(use[0], use[1], use[2], m, geo.scale, is_causal ? 1 : 0, y, lse);
    if (!rc) {
        const craft_tensor *save[6] = {use[0], use[1], use[2], m, y, lse};
        double sarg = geo.scale;
        int64_t iarg = is_causal ? 1 : 0;
        craft_node *node;
        rc = craft_record("sdpa", 3, in, y, sdpa_backward, 6, save, &sarg, 1, &iarg, 1, &node);
        if (!rc && node) node->lowp = bf16;
    }
    for (int i = 0; i < 3; i++) craft_tensor_release(use[i]);
    craft_tensor_release(m);
    craft_tensor_release(lse);
    return craft_finish(rc, y, out);
}
