/* test_attention_loss.c: softmax / log_softmax, scaled dot-product attention, l2_normalize,
 * cosine_similarity, cross_entropy and mse_loss: gradient checks against finite differences
 * (several shapes, non-contiguous inputs, broadcasting, masks, causal, tile-crossing sizes),
 * values and gradients against PyTorch references (tests/fixtures/ops/attention_*.bin, made by
 * tests/fixtures/make_attention_loss_fixtures.py), the tiled attention against the plain
 * matmul-softmax-matmul composition at sizes with many tiles, and the error messages. */
#include "gradcheck.h"
#include "core/internal.h"
#include <string.h>

#include "fixture.h"

/* ---------------------------------------------------------------- fixtures */
/* The tensor "<prefix>.<name>" (just name when prefix is empty); a missing one is a failed check. */
static const fx_tensor *fx_at(const fx_file *fx, const char *prefix, const char *name) {
    char full[2 * FX_MAX_NAME];
    snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", name);
    return fx_get(fx, full);
}

/* max |got - ref| / max |ref| (norm-wise relative error); 1e9 on a shape mismatch */
static double rel_err(const craft_tensor *got, const fx_tensor *ref) {
    if (!got || !ref || got->numel != ref->numel) return 1e9;
    float *g = malloc((size_t)(got->numel ? got->numel : 1) * sizeof(float));
    craft_tensor_read(got, CRAFT_F32, g, (size_t)got->numel * sizeof(float));
    double md = 0, mr = 1e-30;
    for (int64_t i = 0; i < got->numel; i++) {
        double d = fabs((double)g[i] - ref->data[i]);
        if (!(d <= md)) md = d; /* NaN counts as the worst */
        if (fabs(ref->data[i]) > mr && isfinite(ref->data[i])) mr = fabs(ref->data[i]);
    }
    free(g);
    return md / mr;
}

#define CHECK_REL(got, ref, tol, what)                                                                       \
    do {                                                                                                     \
        double e_ = rel_err(got, ref);                                                                       \
        CHECK_MSG(e_ <= (tol), "%s: relative error %.3g (tol %g)", what, e_, (double)(tol));                 \
    } while (0)

/* ---------------------------------------------------------------- helpers */
typedef struct {
    int dim;
    int log;
    double scale;
    int causal;
    int reduction;
    double eps;
    craft_tensor *aux;
    int variant;
} tctx;

static int f_softmax(craft_tensor **in, void *c, craft_tensor **out) {
    tctx *t = c;
    return t->log ? craft_log_softmax(in[0], t->dim, out) : craft_softmax(in[0], t->dim, out);
}
static int f_softmax_t(craft_tensor **in, void *c, craft_tensor **out) { /* non-contiguous input */
    craft_tensor *tr;
    int rc = craft_transpose(in[0], 0, -1, &tr);
    if (rc) return rc;
    rc = f_softmax(&tr, c, out);
    craft_tensor_release(tr);
    return rc;
}

static void test_softmax_gradcheck(void) {
    int64_t s[3] = {3, 4, 5};
    craft_tensor *x = gc_rand(3, s, -2, 2);
    for (int log = 0; log < 2; log++) {
        int dims[4] = {0, 1, -1, 2};
        for (int i = 0; i < 4; i++) {
            tctx c = {.dim = dims[i], .log = log};
            char name[64];
            snprintf(name, sizeof name, "%s dim %d", log ? "log_softmax" : "softmax", dims[i]);
            gradcheck(name, f_softmax, 1, &x, &c, 1e-3, 2e-3, 2e-2);
            snprintf(name, sizeof name, "%s dim %d of a transposed view", log ? "log_softmax" : "softmax",
                     dims[i]);
            gradcheck(name, f_softmax_t, 1, &x, &c, 1e-3, 2e-3, 2e-2);
        }
    }
    /* rows sum to 1; a column softmax too (dim 0 with a 300-wide inner dim crosses the chunk) */
    int64_t s2[2] = {3, 300};
    craft_tensor *z = gc_rand(2, s2, -30, 30), *y;
    CHECK_OK(craft_softmax(z, 0, &y));
    float *yp = craft_tensor_data(y), *zp = craft_tensor_data(z);
    double worst = 0;
    for (int j = 0; j < 300; j++) {
        double sum = yp[j] + yp[300 + j] + yp[600 + j];
        if (fabs(sum - 1) > worst) worst = fabs(sum - 1);
    }
    CHECK_NEAR(worst, 0, 1e-6);
    /* value against double precision for one column */
    double m = fmax(fmax(zp[7], zp[307]), zp[607]), e0 = exp(zp[7] - m), e1 = exp(zp[307] - m),
           e2 = exp(zp[607] - m);
    CHECK_NEAR(yp[307], e1 / (e0 + e1 + e2), 1e-6);
    craft_tensor_release(y);
    /* huge logits stay finite */
    float big[3] = {1000, 0, -1000};
    int64_t s3[1] = {3};
    craft_tensor *b, *yb;
    craft_from_data(1, s3, CRAFT_F32, big, &b);
    CHECK_OK(craft_log_softmax(b, 0, &yb));
    float o[3];
    craft_tensor_read(yb, CRAFT_F32, o, sizeof o);
    CHECK_NEAR(o[0], 0, 1e-6);
    CHECK_NEAR(o[1], -1000, 1e-3);
    craft_tensor_release(b);
    craft_tensor_release(yb);
    craft_tensor_release(z);
    craft_tensor_release(x);
}

static void test_softmax_vs_torch(void) {
    fx_file fx;
    if (fx_load("attention_softmax.bin", &fx)) {
        CHECK(0);
        return;
    }
    craft_tensor *x = fx_craft(fx_at(&fx, "", "x"), 1);
    const char *names[4] = {"sm0", "sm2", "lsm1", "lsm2"};
    int dims[4] = {0, -1, 1, 2}, logs[4] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++) {
        craft_tensor *y, *go = fx_craft(fx_at(&fx, names[i], "go"), 0);
        CHECK_OK(logs[i] ? craft_log_softmax(x, dims[i], &y) : craft_softmax(x, dims[i], &y));
        CHECK_REL(y, fx_at(&fx, names[i], "y"), 1e-4, names[i]);
        CHECK_OK(craft_backward(y, go, 0));
        CHECK_REL(x->grad, fx_at(&fx, names[i], "dx"), 1e-3, names[i]);
        craft_zero_grad(x);
        craft_tensor_release(y);
        craft_tensor_release(go);
    }
    craft_tensor_release(x);
    fx_free(&fx);
}

/* ---------------------------------------------------------------- attention */
static int f_sdpa(craft_tensor **in, void *c, craft_tensor **out) {
    tctx *t = c;
    return craft_sdpa(in[0], in[1], in[2], t->aux, t->scale, t->causal, out);
}
/* q, k, v stored as [B, L, H, D] and viewed as [B, H, L, D] (the usual head split) */
static int f_sdpa_heads(craft_tensor **in, void *c, craft_tensor **out) {
    tctx *t = c;
    craft_tensor *v[3] = {NULL, NULL, NULL};
    int rc = CRAFT_OK;
    for (int i = 0; i < 3 && !rc; i++) rc = craft_transpose(in[i], 1, 2, &v[i]);
    if (!rc) rc = craft_sdpa(v[0], v[1], v[2], t->aux, t->scale, t->causal, out);
    for (int i = 0; i < 3; i++) craft_tensor_release(v[i]);
    return rc;
}

/* Reference: softmax(q k^T * scale + mask) v composed from craft ops, causal as a -inf mask. */
static int naive_attention(craft_tensor *q, craft_tensor *k, craft_tensor *v, craft_tensor *mask,
                           double scale, int causal, craft_tensor **out) {
    craft_tensor *kt = NULL, *s = NULL, *ss = NULL, *sm = NULL, *p = NULL, *cm = NULL, *sc = NULL;
    int64_t Lq = q->shape[q->ndim - 2], Lk = k->shape[k->ndim - 2], D = q->shape[q->ndim - 1];
    if (scale <= 0) scale = 1.0 / sqrt((double)D);
    int rc = craft_transpose(k, -1, -2, &kt);
    if (!rc) rc = craft_matmul(q, kt, &s);
    if (!rc) rc = craft_binary_scalar(CRAFT_MUL, s, scale, 0, &ss);
    craft_tensor *cur = ss;
    if (!rc && mask) {
        rc = craft_binary(CRAFT_ADD, cur, mask, &sm);
        cur = sm;
    }
    if (!rc && causal) {
        int64_t cs[2] = {Lq, Lk};
        rc = craft_zeros(2, cs, CRAFT_F32, 0, &cm);
        float *cp = rc ? NULL : craft_tensor_data(cm);
        for (int64_t i = 0; cp && i < Lq; i++)
            for (int64_t j = i + 1; j < Lk; j++) cp[i * Lk + j] = -INFINITY;
        if (!rc) rc = craft_binary(CRAFT_ADD, cur, cm, &sc);
        cur = sc;
    }
    if (!rc) rc = craft_softmax(cur, -1, &p);
    if (!rc) rc = craft_matmul(p, v, out);
    craft_tensor *all[7] = {kt, s, ss, sm, p, cm, sc};
    for (int i = 0; i < 7; i++) craft_tensor_release(all[i]);
    return rc;
}

static void test_sdpa_gradcheck(void) {
    struct {
        int64_t q[4], k[4], v[4];
        int nd, knd;
        int64_t m[4];
        int mnd;
        int causal;
        double scale;
        int heads;
        const char *name;
    } cs[] = {
        {{2, 5, 4}, {2, 5, 4}, {2, 5, 4}, 3, 3, {0}, 0, 0, 0, 0, "plain"},
        {{2, 6, 4}, {2, 9, 4}, {2, 9, 3}, 3, 3, {6, 9}, 2, 0, 0.7, 0, "mask, Lq != Lk, D != Dv"},
        {{1, 7, 3}, {1, 7, 3}, {1, 7, 5}, 3, 3, {0}, 0, 1, 0, 0, "causal"},
        {{2, 5, 3}, {2, 8, 3}, {2, 8, 3}, 3, 3, {2, 1, 8}, 3, 1, 0, 0, "causal, Lq < Lk, padding mask"},
        {{2, 3, 6, 4}, {3, 8, 4}, {1, 3, 8, 2}, 4, 3, {3, 1, 8}, 3, 0, 0, 0, "broadcast batch dims"},
        {{2, 6, 3, 4}, {2, 7, 3, 4}, {2, 7, 3, 4}, 4, 4, {0}, 0, 0, 0, 1, "strided head views"},
        {{1, 150, 2}, {1, 150, 2}, {1, 150, 3}, 3, 3, {0}, 0, 1, 0, 0, "L=150 causal across 128-tiles"},
        {{1, 140, 2},
         {1, 135, 2},
         {1, 135, 2},
         3,
         3,
         {140, 135},
         2,
         0,
         0,
         0,
         "L=140x135 with mask across tiles"},
        {{1, 20, 2},
         {1, 270, 2},
         {1, 270, 2},
         3,
         3,
         {20, 270},
         2,
         0,
         0,
         0,
         "Lk=270 with mask across 256-key tiles"},
        {{1, 260, 1}, {1, 260, 1}, {1, 260, 2}, 3, 3, {0}, 0, 1, 0, 0, "L=260 causal across both tiles"},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        craft_tensor *in[3] = {gc_rand(cs[i].nd, cs[i].q, -1, 1), gc_rand(cs[i].knd, cs[i].k, -1, 1),
                               gc_rand(cs[i].nd, cs[i].v, -1, 1)};
        tctx c = {.scale = cs[i].scale, .causal = cs[i].causal};
        if (cs[i].mnd) {
            c.aux = gc_rand(cs[i].mnd, cs[i].m, -1, 1);
            craft_set_requires_grad(c.aux, 0);
            if (cs[i].causal) { /* a padding mask: the last keys of the last batch entry masked */
                float *mp = craft_tensor_data(c.aux);
                int64_t Lk = cs[i].m[cs[i].mnd - 1];
                for (int64_t j = Lk - 2; j < Lk; j++) mp[c.aux->numel - Lk + j] = -INFINITY;
            }
        }
        char name[96];
        snprintf(name, sizeof name, "sdpa %s", cs[i].name);
        gradcheck(name, cs[i].heads ? f_sdpa_heads : f_sdpa, 3, in, &c, 5e-3, 3e-3, 2e-2);
        for (int j = 0; j < 3; j++) craft_tensor_release(in[j]);
        craft_tensor_release(c.aux);
    }
}

/* Many tiles, both backward schedules (2 and 3 matrices), against the composed reference. */
static void test_sdpa_vs_naive(void) {
    struct {
        int64_t b, lq, lk, d, dv;
        int causal, mask;
    } cs[] = {
        {2, 300, 300, 40, 40, 0, 0},
        {3, 300, 260, 24, 32, 1, 1},
        {3, 77, 77, 64, 64, 1, 0},
        {5, 64, 64, 32, 32, 0, 1},
        {1, 129, 400, 16, 8, 0, 1},
        {2, 40, 30, 8, 0, 1, 1}, /* empty values: an empty output, zero gradients, no scores computed */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int64_t sq[3] = {cs[i].b, cs[i].lq, cs[i].d}, sk[3] = {cs[i].b, cs[i].lk, cs[i].d},
                sv[3] = {cs[i].b, cs[i].lk, cs[i].dv};
        int64_t sm[3] = {cs[i].b, 1, cs[i].lk}, so[3] = {cs[i].b, cs[i].lq, cs[i].dv};
        craft_tensor *q = gc_rand(3, sq, -2, 2), *k = gc_rand(3, sk, -2, 2), *v = gc_rand(3, sv, -1, 1);
        craft_tensor *m = cs[i].mask ? gc_rand(3, sm, -3, 0) : NULL, *go = gc_rand(3, so, -1, 1);
        if (m) craft_set_requires_grad(m, 0);
        craft_set_requires_grad(go, 0);
        craft_tensor *y1, *y2, *g1[3], *g2[3];
        CHECK_OK(craft_sdpa(q, k, v, m, 0, cs[i].causal, &y1));
        CHECK_OK(craft_backward(y1, go, 0));
        craft_tensor *ins[3] = {q, k, v};
        for (int j = 0; j < 3; j++) {
            g1[j] = craft_tensor_retain(ins[j]->grad);
            craft_zero_grad(ins[j]);
        }
        CHECK_OK(naive_attention(q, k, v, m, 0, cs[i].causal, &y2));
        CHECK_OK(craft_backward(y2, go, 0));
        for (int j = 0; j < 3; j++) {
            g2[j] = craft_tensor_retain(ins[j]->grad);
            craft_zero_grad(ins[j]);
        }
        /* compare through the fixture helper: wrap the reference as an fx_tensor */
        craft_tensor *pairs[4][2] = {{y1, y2}, {g1[0], g2[0]}, {g1[1], g2[1]}, {g1[2], g2[2]}};
        const char *what[4] = {"out", "dq", "dk", "dv"};
        for (int j = 0; j < 4; j++) {
            fx_tensor ref = {.numel = pairs[j][1] ? pairs[j][1]->numel : 0};
            ref.data = malloc((size_t)(ref.numel ? ref.numel : 1) * sizeof(float));
            if (pairs[j][1])
                craft_tensor_read(pairs[j][1], CRAFT_F32, ref.data, (size_t)ref.numel * sizeof(float));
            char name[96];
            snprintf(name, sizeof name, "sdpa %lldx%lldx%lld causal %d mask %d: %s", (long long)cs[i].b,
                     (long long)cs[i].lq, (long long)cs[i].lk, cs[i].causal, cs[i].mask, what[j]);
            CHECK_REL(pairs[j][0], &ref, j == 0 ? 1e-5 : 1e-4, name);
            free(ref.data);
        }
        craft_tensor_release(y1);
        craft_tensor_release(y2);
        for (int j = 0; j < 3; j++) {
            craft_tensor_release(g1[j]);
            craft_tensor_release(g2[j]);
        }
        craft_tensor_release(q);
        craft_tensor_release(k);
        craft_tensor_release(v);
        craft_tensor_release(m);
        craft_tensor_release(go);
    }
    /* no score matrix is kept: memory in use after the forward is inputs + output + lse */
    int64_t s[3] = {4, 1024, 32};
    craft_tensor *q = gc_rand(3, s, -1, 1), *k = gc_rand(3, s, -1, 1), *v = gc_rand(3, s, -1, 1), *y;
    craft_pool_stats a, b;
    craft_pool_get_stats(&a);
    CHECK_OK(craft_sdpa(q, k, v, NULL, 0, 0, &y));
    craft_pool_get_stats(&b);
    int64_t grown = b.in_use - a.in_use, scores = 4LL * 1024 * 1024 * 4;
    CHECK_MSG(grown < scores / 8, "sdpa kept %lld bytes after the forward (the score matrix would be %lld)",
              (long long)grown, (long long)scores);
    craft_tensor_release(y);
    craft_tensor_release(q);
    craft_tensor_release(k);
    craft_tensor_release(v);
}

static void test_sdpa_vs_torch(void) {
    fx_file fx;
    if (fx_load("attention_sdpa.bin", &fx)) {
        CHECK(0);
        return;
    }
    const char *cases[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        const char *n = cases[i];
        craft_tensor *q = fx_craft(fx_at(&fx, n, "q"), 1), *k = fx_craft(fx_at(&fx, n, "k"), 1);
        craft_tensor *v = fx_craft(fx_at(&fx, n, "v"), 1), *go = fx_craft(fx_at(&fx, n, "go"), 0);
        char mk[2 * FX_MAX_NAME];
        snprintf(mk, sizeof mk, "%s.mask", n);
        craft_tensor *m = fx_craft(fx_find(&fx, mk), 0), *y = NULL; /* the mask is optional */
        const fx_tensor *args = fx_at(&fx, n, "args");
        if (!q || !k || !v || !go || !args) {
            CHECK_MSG(0, "case %s incomplete", n);
            continue;
        }
        char what[64];
        CHECK_OK(craft_sdpa(q, k, v, m, args->data[0], (int)args->data[1], &y));
        snprintf(what, sizeof what, "sdpa case %s out", n);
        CHECK_REL(y, fx_at(&fx, n, "o"), 1e-4, what);
        CHECK_OK(craft_backward(y, go, 0));
        const char *gn[3] = {"dq", "dk", "dv"};
        craft_tensor *ins[3] = {q, k, v};
        for (int j = 0; j < 3; j++) {
            snprintf(what, sizeof what, "sdpa case %s %s", n, gn[j]);
            CHECK_REL(ins[j]->grad, fx_at(&fx, n, gn[j]), 1e-3, what);
        }
        craft_tensor_release(q);
        craft_tensor_release(k);
        craft_tensor_release(v);
        craft_tensor_release(go);
        craft_tensor_release(m);
        craft_tensor_release(y);
    }
    fx_free(&fx);
}

/* ---------------------------------------------------------------- losses */
static int f_ce(craft_tensor **in, void *c, craft_tensor **out) {
    tctx *t = c;
    return craft_cross_entropy(in[0], t->aux, t->reduction, t->eps, out);
}
static int f_l2n(craft_tensor **in, void *c, craft_tensor **out) {
    tctx *t = c;
    if (!t->variant) return craft_l2_normalize(in[0], t->dim, t->eps, out);
    craft_tensor *tr;
    int rc = craft_transpose(in[0], 0, 1, &tr);
    if (rc) return rc;
    rc = craft_l2_normalize(tr, t->dim, t->eps, out);
    craft_tensor_release(tr);
    return rc;
}
static int f_cos(craft_tensor **in, void *c, craft_tensor **out) {
    tctx *t = c;
    return craft_cosine_similarity(in[0], in[1], t->dim, t->eps, out);
}
static int f_mse(craft_tensor **in, void *c, craft_tensor **out) {
    tctx *t = c;
    return craft_mse_loss(in[0], in[1], t->reduction, out);
}

static craft_tensor *targets(int nd, const int64_t *shape, int64_t C) {
    craft_tensor *t;
    if (craft_empty(nd, shape, CRAFT_I64, 0, &t)) return NULL;
    int64_t *p = craft_tensor_data(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = (int64_t)(gc_uniform() * (double)C) % C;
    return t;
}

static void test_losses_gradcheck(void) {
    int64_t s2[2] = {5, 7}, t1[1] = {5}, s4[4] = {3, 4, 2, 3}, t3[3] = {3, 2, 3};
    craft_tensor *x2 = gc_rand(2, s2, -2, 2), *x4 = gc_rand(4, s4, -2, 2);
    for (int red = 0; red < 3; red++)
        for (int sm = 0; sm < 2; sm++) {
            tctx c = {.reduction = red, .eps = sm ? 0.15 : 0.0, .aux = targets(1, t1, 7)};
            char name[64];
            snprintf(name, sizeof name, "cross_entropy [5, 7] reduction %d smoothing %g", red, c.eps);
            gradcheck(name, f_ce, 1, &x2, &c, 1e-3, 2e-3, 2e-2);
            craft_tensor_release(c.aux);
            c.aux = targets(3, t3, 4);
            snprintf(name, sizeof name, "cross_entropy [3, 4, 2, 3] reduction %d smoothing %g", red, c.eps);
            gradcheck(name, f_ce, 1, &x4, &c, 1e-3, 2e-3, 2e-2);
            craft_tensor_release(c.aux);
        }
    /* value: mean of -log p[target] by hand */
    {
        tctx c = {.reduction = 1, .aux = targets(1, t1, 7)};
        craft_tensor *y;
        CHECK_OK(craft_cross_entropy(x2, c.aux, 1, 0.0, &y));
        const float *xp = craft_tensor_data(x2);
        const int64_t *tp = craft_tensor_data(c.aux);
        double ref = 0, v;
        for (int n = 0; n < 5; n++) {
            double s = 0;
            for (int j = 0; j < 7; j++) s += exp(xp[n * 7 + j]);
            ref += log(s) - xp[n * 7 + tp[n]];
        }
        craft_item(y, &v);
        CHECK_NEAR(v, ref / 5, 1e-5);
        craft_tensor_release(y);
        craft_tensor_release(c.aux);
    }
    int64_t s3[3] = {3, 4, 5};
    craft_tensor *x3 = gc_rand(3, s3, -1, 1);
    int dims[3] = {0, -1, 1};
    for (int i = 0; i < 3; i++)
        for (int var = 0; var < 2; var++) {
            tctx c = {.dim = dims[i], .eps = 1e-12, .variant = var};
            char name[64];
            snprintf(name, sizeof name, "l2_normalize dim %d%s", dims[i], var ? " of a transposed view" : "");
            gradcheck(name, f_l2n, 1, &x3, &c, 1e-3, 2e-3, 2e-2);
        }
    int64_t sa[3] = {2, 3, 5}, sb[2] = {1, 5};
    craft_tensor *cin[2] = {gc_rand(3, sa, -1, 1), gc_rand(2, sb, -1, 1)};
    tctx cc = {.dim = -1, .eps = 1e-8};
    gradcheck("cosine_similarity broadcast dim -1", f_cos, 2, cin, &cc, 1e-3, 2e-3, 2e-2);
    craft_tensor *cin2[2] = {gc_rand(3, sa, -1, 1), gc_rand(3, sa, -1, 1)};
    cc.dim = 1;
    gradcheck("cosine_similarity dim 1", f_cos, 2, cin2, &cc, 1e-3, 2e-3, 2e-2);
    craft_tensor *min[2] = {gc_rand(3, s3, -1, 1), gc_rand(3, s3, -1, 1)};
    for (int red = 0; red < 3; red++) {
        tctx c = {.reduction = red};
        char name[64];
        snprintf(name, sizeof name, "mse_loss reduction %d", red);
        gradcheck(name, f_mse, 2, min, &c, 1e-3, 2e-3, 2e-2);
    }
    int64_t sbb[2] = {4, 5};
    craft_tensor *mb[2] = {gc_rand(3, s3, -1, 1), gc_rand(2, sbb, -1, 1)};
    tctx cm = {.reduction = 1};
    gradcheck("mse_loss broadcast", f_mse, 2, mb, &cm, 1e-3, 2e-3, 2e-2);
    craft_tensor *all[] = {x2, x4, x3, cin[0], cin[1], cin2[0], cin2[1], min[0], min[1], mb[0], mb[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) craft_tensor_release(all[i]);
}

static void test_losses_vs_torch(void) {
    fx_file fx;
    if (fx_load("attention_loss.bin", &fx)) {
        CHECK(0);
        return;
    }
    char what[64];
    const char *ce[4] = {"ce1", "ce2", "ce3", "ce4"};
    for (int i = 0; i < 4; i++) {
        const fx_tensor *tf = fx_at(&fx, ce[i], "t"), *args = fx_at(&fx, ce[i], "args");
        craft_tensor *x = fx_craft(fx_at(&fx, ce[i], "x"), 1), *go = fx_craft(fx_at(&fx, ce[i], "go"), 0), *t,
                     *y;
        if (!tf || !args || !x || !go) {
            CHECK_MSG(0, "case %s incomplete", ce[i]);
            continue;
        }
        craft_empty(tf->ndim, tf->shape, CRAFT_I64, 0, &t);
        for (int64_t j = 0; j < tf->numel; j++) ((int64_t *)craft_tensor_data(t))[j] = (int64_t)tf->data[j];
        CHECK_OK(craft_cross_entropy(x, t, (int)args->data[0], args->data[1], &y));
        snprintf(what, sizeof what, "%s value", ce[i]);
        CHECK_REL(y, fx_at(&fx, ce[i], "y"), 1e-4, what);
        CHECK_OK(craft_backward(y, go, 0));
        snprintf(what, sizeof what, "%s grad", ce[i]);
        CHECK_REL(x->grad, fx_at(&fx, ce[i], "dx"), 1e-3, what);
        craft_tensor_release(x);
        craft_tensor_release(go);
        craft_tensor_release(t);
        craft_tensor_release(y);
    }
    const char *l2[2] = {"l2a", "l2b"};
    for (int i = 0; i < 2; i++) {
        const fx_tensor *args = fx_at(&fx, l2[i], "args");
        craft_tensor *x = fx_craft(fx_at(&fx, l2[i], "x"), 1), *go = fx_craft(fx_at(&fx, l2[i], "go"), 0), *y;
        if (!args || !x || !go) {
            CHECK_MSG(0, "case %s incomplete", l2[i]);
            continue;
        }
        CHECK_OK(craft_l2_normalize(x, (int)args->data[0], args->data[1], &y));
        snprintf(what, sizeof what, "%s value", l2[i]);
        CHECK_REL(y, fx_at(&fx, l2[i], "y"), 1e-4, what);
        CHECK_OK(craft_backward(y, go, 0));
        snprintf(what, sizeof what, "%s grad", l2[i]);
        CHECK_REL(x->grad, fx_at(&fx, l2[i], "dx"), 1e-3, what);
        craft_tensor_release(x);
        craft_tensor_release(go);
        craft_tensor_release(y);
    }
    const char *cs[3] = {"cosa", "cosb", "cosc"};
    for (int i = 0; i < 3; i++) {
        const fx_tensor *args = fx_at(&fx, cs[i], "args");
        craft_tensor *a = fx_craft(fx_at(&fx, cs[i], "a"), 1), *b = fx_craft(fx_at(&fx, cs[i], "b"), 1);
        craft_tensor *go = fx_craft(fx_at(&fx, cs[i], "go"), 0), *y;
        if (!args || !a || !b || !go) {
            CHECK_MSG(0, "case %s incomplete", cs[i]);
            continue;
        }
        CHECK_OK(craft_cosine_similarity(a, b, (int)args->data[0], args->data[1], &y));
        snprintf(what, sizeof what, "%s value", cs[i]);
        CHECK_REL(y, fx_at(&fx, cs[i], "y"), 1e-4, what);
        CHECK_OK(craft_backward(y, go, 0));
        snprintf(what, sizeof what, "%s grad a", cs[i]);
        CHECK_REL(a->grad, fx_at(&fx, cs[i], "da"), 1e-3, what);
        snprintf(what, sizeof what, "%s grad b", cs[i]);
        CHECK_REL(b->grad, fx_at(&fx, cs[i], "db"), 1e-3, what);
        craft_tensor_release(a);
        craft_tensor_release(b);
        craft_tensor_release(go);
        craft_tensor_release(y);
    }
    const char *ms[3] = {"msen", "msem", "mses"};
    for (int i = 0; i < 3; i++) {
        const fx_tensor *args = fx_at(&fx, ms[i], "args");
        craft_tensor *a = fx_craft(fx_at(&fx, ms[i], "a"), 1), *b = fx_craft(fx_at(&fx, ms[i], "b"), 1);
        craft_tensor *go = fx_craft(fx_at(&fx, ms[i], "go"), 0), *y;
        if (!args || !a || !b || !go) {
            CHECK_MSG(0, "case %s incomplete", ms[i]);
            continue;
        }
        CHECK_OK(craft_mse_loss(a, b, (int)args->data[0], &y));
        snprintf(what, sizeof what, "%s value", ms[i]);
        CHECK_REL(y, fx_at(&fx, ms[i], "y"), 1e-4, what);
        CHECK_OK(craft_backward(y, go, 0));
        snprintf(what, sizeof what, "%s grad a", ms[i]);
        CHECK_REL(a->grad, fx_at(&fx, ms[i], "da"), 1e-3, what);
        snprintf(what, sizeof what, "%s grad b", ms[i]);
        CHECK_REL(b->grad, fx_at(&fx, ms[i], "db"), 1e-3, what);
        craft_tensor_release(a);
        craft_tensor_release(b);
        craft_tensor_release(go);
        craft_tensor_release(y);
    }
    fx_free(&fx);
}

/* ---------------------------------------------------------------- errors */
static int has(const char *needle) { return strstr(craft_last_error(), needle) != NULL; }

static void test_errors(void) {
    int64_t sq[3] = {2, 5, 8}, sk[3] = {2, 6, 4}, sv[3] = {2, 7, 8}, sk8[3] = {2, 6, 8}, sv8[3] = {2, 6, 8};
    craft_tensor *q = gc_rand(3, sq, -1, 1), *k = gc_rand(3, sk, -1, 1), *v = gc_rand(3, sv, -1, 1);
    craft_tensor *k8 = gc_rand(3, sk8, -1, 1), *v8 = gc_rand(3, sv8, -1, 1), *y = NULL;
    CHECK_ERR(craft_sdpa(q, k, v8, NULL, 0, 0, &y), CRAFT_ESHAPE);
    CHECK_MSG(has("sdpa") && has("[2, 5, 8]") && has("[2, 6, 4]") && has("head dims"), "%s",
              craft_last_error());
    CHECK_ERR(craft_sdpa(q, k8, v, NULL, 0, 0, &y), CRAFT_ESHAPE);
    CHECK_MSG(has("sdpa") && has("[2, 7, 8]") && has("key counts"), "%s", craft_last_error());
    int64_t sm[2] = {4, 6};
    craft_tensor *m = gc_rand(2, sm, -1, 1);
    CHECK_ERR(craft_sdpa(q, k8, v8, m, 0, 0, &y), CRAFT_ESHAPE);
    CHECK_MSG(has("sdpa") && has("mask [4, 6]") && has("[2, 5, 6]"), "%s", craft_last_error());
    int64_t sq3[3] = {3, 5, 8};
    craft_tensor *q3 = gc_rand(3, sq3, -1, 1);
    CHECK_ERR(craft_sdpa(q3, k8, v8, NULL, 0, 0, &y), CRAFT_ESHAPE);
    CHECK_MSG(has("sdpa") && has("broadcast"), "%s", craft_last_error());
    CHECK(y == NULL);
    /* cross entropy */
    int64_t sl[2] = {4, 5}, st[1] = {4};
    craft_tensor *lg = gc_rand(2, sl, -1, 1), *t;
    craft_empty(1, st, CRAFT_I64, 0, &t);
    int64_t *tp = craft_tensor_data(t);
    tp[0] = 1;
    tp[1] = 4;
    tp[2] = 7;
    tp[3] = 0;
    CHECK_ERR(craft_cross_entropy(lg, t, 1, 0.0, &y), CRAFT_EINVAL);
    CHECK_MSG(has("cross_entropy") && has("target 7") && has("index 2") && has("5 classes"), "%s",
              craft_last_error());
    tp[2] = -100; /* torch's ignore_index is not supported: an error, not a silent skip */
    CHECK_ERR(craft_cross_entropy(lg, t, 1, 0.0, &y), CRAFT_EINVAL);
    CHECK_MSG(has("target -100"), "%s", craft_last_error());
    tp[2] = 2;
    CHECK_ERR(craft_cross_entropy(lg, t, 3, 0.0, &y), CRAFT_EINVAL);
    CHECK_MSG(has("cross_entropy") && has("reduction 3"), "%s", craft_last_error());
    CHECK_ERR(craft_cross_entropy(lg, t, 1, 1.5, &y), CRAFT_EINVAL);
    CHECK_ERR(craft_cross_entropy(lg, lg, 1, 0.0, &y), CRAFT_ETYPE);
    int64_t st2[1] = {3};
    craft_tensor *t2;
    craft_zeros(1, st2, CRAFT_I64, 0, &t2);
    CHECK_ERR(craft_cross_entropy(lg, t2, 1, 0.0, &y), CRAFT_ESHAPE);
    CHECK_MSG(has("cross_entropy") && has("[3]") && has("[4, 5]"), "%s", craft_last_error());
    /* the others */
    CHECK_ERR(craft_softmax(lg, 2, &y), CRAFT_EINVAL);
    CHECK_MSG(has("softmax") && has("dim 2"), "%s", craft_last_error());
    CHECK_ERR(craft_mse_loss(lg, q, 1, &y), CRAFT_ESHAPE);
    CHECK_MSG(has("[4, 5]") && has("[2, 5, 8]"), "%s", craft_last_error());
    CHECK_ERR(craft_cosine_similarity(lg, q, 1, 1e-8, &y), CRAFT_ESHAPE);
    CHECK_ERR(craft_l2_normalize(lg, -3, 1e-12, &y), CRAFT_EINVAL);
    CHECK(y == NULL);
    craft_tensor *all[] = {q, k, v, k8, v8, m, q3, lg, t, t2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) craft_tensor_release(all[i]);
}

int main(int argc, char **argv) {
    (void)argc;
    RUN(test_softmax_gradcheck);
    RUN(test_softmax_vs_torch);
    RUN(test_sdpa_gradcheck);
    RUN(test_sdpa_vs_naive);
    RUN(test_sdpa_vs_torch);
    RUN(test_losses_gradcheck);
    RUN(test_losses_vs_torch);
    RUN(test_errors);
    return CHECK_SUMMARY();
}
