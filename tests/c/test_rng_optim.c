/* test_rng_optim.c: the Philox-4x32-10 generator (Random123 known answers, the documented
 * element mapping, independence from thread count and call splitting, moments of 1e6 draws),
 * the optimiser kernels against torch.optim (tests/fixtures/ops/optim_ref.bin, made by
 * tests/fixtures/make_shape_misc_fixtures.py), clip_grad_norm, EMA, and thread control.
 * Tolerances vs torch: max|got - ref| <= 1e-5 * max|ref| per tensor (float32 rounding of the
 * same formula); EMA, RNG mapping and thread invariance are exact. */
#include "check.h"
#include "core/internal.h"
#include <string.h>

/* in rng.c, not in craft.h: Philox4x32-10 on a full 128-bit counter, for the KAT vectors */

#include "fixture.h"

/* ---------------------------------------------------------------- fixtures -- */
static double fx_err(const craft_tensor *got, const fx_tensor *ref) {
    if (!got || !ref || got->numel != ref->numel) return 1e30;
    float *g = malloc((size_t)(ref->numel ? ref->numel : 1) * sizeof(float));
    craft_tensor_read(got, CRAFT_F32, g, (size_t)ref->numel * sizeof(float));
    double md = 0, mr = 0;
    for (int64_t i = 0; i < ref->numel; i++) {
        double d = fabs((double)g[i] - ref->data[i]);
        if (d > md || d != d) md = d != d ? 1e30 : d;
        if (fabs(ref->data[i]) > mr) mr = fabs(ref->data[i]);
    }
    free(g);
    return md == 0 ? 0 : md / (mr > 0 ? mr : 1e-30);
}

#define CHECK_FX(got, f, name, tol)                                                                          \
    do {                                                                                                     \
        double e_ = fx_err((got), fx_get((f), (name)));                                                      \
        CHECK_MSG(e_ <= (tol), "%s: relative error %.3g (tol %g)", (name), e_, (double)(tol));               \
    } while (0)

/* ---------------------------------------------------------------- Philox ---- */
static void test_philox_kat(void) {
    /* Random123 tests/kat_vectors, "philox4x32 10" lines: ctr[4] key[2] -> out[4] */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        craft_philox4x32_raw(kat[k], kat[k] + 4, out);
        for (int j = 0; j < 4; j++)
            CHECK_MSG(out[j] == kat[k][6 + j], "KAT %d word %d: %08x vs %08x", k, j, out[j], kat[k][6 + j]);
    }
    /* the public entry point: ctr = (lo, hi, 0, 0), key = (lo, hi) of the 64-bit values */
    uint32_t out[4];
    craft_philox4x32(0, 0, out);
    CHECK(out[0] == 0x6627e8d5 && out[1] == 0xe169c58d && out[2] == 0xbc57ac4c && out[3] == 0x9b00dbd8);
    uint64_t seed = 0x299f31d0a4093822ull, ctr = 0x85a308d3243f6a88ull;
    uint32_t c4[4] = {0x243f6a88, 0x85a308d3, 0, 0}, k2[2] = {0xa4093822, 0x299f31d0}, ref[4];
    craft_philox4x32(seed, ctr, out);
    craft_philox4x32_raw(c4, k2, ref);
    CHECK(memcmp(out, ref, sizeof out) == 0);
    CHECK(out[0] != 0xd16cfe09); /* differs from KAT 3, whose upper counter words are set */
}

/* The element mapping documented in rng.c, recomputed here from craft_philox4x32. */
static float ref_uniform(uint64_t seed, uint64_t e) {
    uint32_t w[4];
    craft_philox4x32(seed, e >> 2, w);
    return (float)(w[e & 3] >> 8) * 0x1p-24f;
}
static float ref_normal(uint64_t seed, uint64_t e) {
    uint32_t w[4];
    craft_philox4x32(seed, e >> 2, w);
    int lane = (int)(e & 3), p = lane >> 1;
    double u1 = ((double)w[2 * p] + 1.0) / 4294967296.0, u2 = (double)w[2 * p + 1] / 4294967296.0;
    double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    return (float)((lane & 1) ? r * sin(th) : r * cos(th));
}

static void test_rng_mapping(void) {
    int64_t s[1] = {37};
    craft_tensor *t;
    craft_empty(1, s, CRAFT_F32, 0, &t);
    const uint64_t seed = 0x0123456789abcdefull;
    uint64_t offsets[3] = {0, 5, 0xfffffffffffffff0ull}; /* the last one wraps around 2^64 */
    for (int k = 0; k < 3; k++) {
        float got[37];
        CHECK_OK(craft_rand_(t, seed, offsets[k]));
        craft_tensor_read(t, CRAFT_F32, got, sizeof got);
        int bad = 0;
        for (int i = 0; i < 37; i++)
            bad += got[i] != ref_uniform(seed, offsets[k] + (uint64_t)i) || !(got[i] >= 0 && got[i] < 1);
        CHECK_MSG(bad == 0, "rand_ offset %llu: %d elements off the documented mapping",
                  (unsigned long long)offsets[k], bad);
        CHECK_OK(craft_randn_(t, seed, offsets[k]));
        craft_tensor_read(t, CRAFT_F32, got, sizeof got);
        bad = 0;
        for (int i = 0; i < 37; i++) bad += got[i] != ref_normal(seed, offsets[k] + (uint64_t)i);
        CHECK_MSG(bad == 0, "randn_ offset %llu: %d elements off the documented mapping",
                  (unsigned long long)offsets[k], bad);
    }
    /* pinned values, so that the mapping cannot drift together with ref_* above */
    uint32_t w[4];
    craft_philox4x32(0, 0, w);
    CHECK_OK(craft_rand_(t, 0, 0));
    float u[37];
    CHECK_OK(craft_tensor_read(t, CRAFT_F32, u, sizeof u));
    CHECK(u[0] == (float)(0x6627e8d5u >> 8) / 16777216.0f && u[3] == (float)(0x9b00dbd8u >> 8) / 16777216.0f);
    int32_t before = t->storage->version;
    CHECK_OK(craft_randn_(t, 1, 0));
    CHECK(t->storage->version != before);
    craft_tensor_release(t);
}

static void test_rng_invariance(void) {
    const int64_t n = (1 << 20) + 3;
    int64_t s[1] = {n};
    craft_tensor *a, *b;
    craft_empty(1, s, CRAFT_F32, 0, &a);
    craft_empty(1, s, CRAFT_F32, 0, &b);
    int prev = craft_num_threads();
    /* 1 thread vs 2 threads */
    craft_set_num_threads(1);
    CHECK(craft_num_threads() == 1);
    CHECK_OK(craft_randn_(a, 42, 11));
    craft_set_num_threads(2);
    CHECK(craft_num_threads() == 2);
    CHECK_OK(craft_randn_(b, 42, 11));
    CHECK(memcmp(craft_tensor_data(a), craft_tensor_data(b), (size_t)n * 4) == 0);
    craft_set_num_threads(1);
    CHECK_OK(craft_rand_(a, 42, 11));
    craft_set_num_threads(2);
    CHECK_OK(craft_rand_(b, 42, 11));
    CHECK(memcmp(craft_tensor_data(a), craft_tensor_data(b), (size_t)n * 4) == 0);
    /* one draw == the same draw split into two calls at an unaligned point */
    CHECK_OK(craft_randn_(a, 7, 3));
    int64_t cut = 333331;
    craft_tensor *p1, *p2;
    CHECK_OK(craft_slice(b, 0, 0, cut, 1, &p1));
    CHECK_OK(craft_slice(b, 0, cut, n, 1, &p2));
    CHECK_OK(craft_randn_(p1, 7, 3));
    CHECK_OK(craft_randn_(p2, 7, 3 + (uint64_t)cut));
    CHECK(memcmp(craft_tensor_data(a), craft_tensor_data(b), (size_t)n * 4) == 0);
    craft_tensor_release(p1);
    craft_tensor_release(p2);
    /* different seeds and offsets give different streams */
    CHECK_OK(craft_randn_(b, 8, 3));
    CHECK(memcmp(craft_tensor_data(a), craft_tensor_data(b), 64) != 0);
    craft_set_num_threads(prev);
    craft_tensor_release(a);
    craft_tensor_release(b);
    /* a strided target is filled in row-major element order; other dtypes get converted values */
    int64_t s2[2] = {6, 5}, s2t[2] = {5, 6};
    craft_tensor *base, *view, *dense, *h;
    craft_zeros(2, s2t, CRAFT_F32, 0, &base);
    CHECK_OK(craft_transpose(base, 0, 1, &view));
    CHECK_OK(craft_randn_(view, 99, 4));
    craft_empty(2, s2, CRAFT_F32, 0, &dense);
    CHECK_OK(craft_randn_(dense, 99, 4));
    float v1[30], v2[30];
    craft_tensor_read(view, CRAFT_F32, v1, sizeof v1);
    craft_tensor_read(dense, CRAFT_F32, v2, sizeof v2);
    CHECK(memcmp(v1, v2, sizeof v1) == 0);
    craft_empty(2, s2, CRAFT_F64, 0, &h);
    CHECK_OK(craft_randn_(h, 99, 4));
    double d[30];
    craft_tensor_read(h, CRAFT_F64, d, sizeof d);
    int bad = 0;
    for (int i = 0; i < 30; i++) bad += d[i] != (double)v2[i];
    CHECK(bad == 0);
    craft_tensor *it;
    craft_empty(2, s2, CRAFT_I64, 0, &it);
    CHECK_ERR(craft_randn_(it, 1, 0), CRAFT_ETYPE);
    CHECK(strstr(craft_last_error(), "randn_") != NULL);
    craft_tensor *arr[5] = {base, view, dense, h, it};
    for (int k = 0; k < 5; k++) craft_tensor_release(arr[k]);
}

static void test_rng_moments(void) {
    const int64_t n = 1000000;
    int64_t s[1] = {n};
    craft_tensor *t;
    craft_empty(1, s, CRAFT_F32, 0, &t);
    CHECK_OK(craft_randn_(t, 2024, 0));
    const float *p = craft_tensor_data(t);
    double m = 0, v = 0, m3 = 0, m4 = 0, mx = 0;
    int64_t tail = 0;
    for (int64_t i = 0; i < n; i++) m += p[i];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = p[i] - m;
        v += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
        if (fabs(p[i]) > 3) tail++;
        if (fabs(p[i]) > mx) mx = fabs(p[i]);
    }
    v /= (double)n;
    m3 /= (double)n;
    m4 /= (double)n;
    /* 5-sigma bounds: sd(mean) = 1e-3, sd(var) = 1.4e-3, sd(skew) = 2.4e-3, sd(kurt) = 4.9e-3 */
    CHECK_NEAR(m, 0.0, 0.005);
    CHECK_NEAR(v, 1.0, 0.007);
    CHECK_NEAR(m3, 0.0, 0.013);
    CHECK_NEAR(m4 / (v * v), 3.0, 0.025);
    CHECK_NEAR((double)tail / (double)n, 0.0026998, 0.00026); /* P(|z| > 3), sd 5.2e-5 */
    CHECK(mx > 4.0 && mx < 6.7);
    CHECK_OK(craft_rand_(t, 2024, 0));
    m = 0;
    v = 0;
    double lo = 1, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        m += p[i];
        if (p[i] < lo) lo = p[i];
        if (p[i] > hi) hi = p[i];
    }
    m /= (double)n;
    for (int64_t i = 0; i < n; i++) v += (p[i] - m) * (p[i] - m);
    v /= (double)n;
    CHECK_NEAR(m, 0.5, 0.0015);      /* sd 2.9e-4 */
    CHECK_NEAR(v, 1.0 / 12, 0.0005); /* sd 7.5e-5 */
    CHECK(lo >= 0 && lo < 1e-4 && hi < 1 && hi > 1 - 1e-4);
    craft_tensor_release(t);
}

/* ---------------------------------------------------------------- optimisers */
static void test_adamw_vs_torch(const fx_file *f) {
    struct {
        const char *name;
        int np;
        double lr, b1, b2, eps, wd;
    } cs[2] = {{"adamw0", 2, 1e-2, 0.9, 0.999, 1e-8, 1e-2}, {"adamw1", 1, 1e-3, 0.8, 0.99, 1e-6, 0.1}};
    char key[64];
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < cs[c].np; i++) {
            snprintf(key, sizeof key, "%s.p%d", cs[c].name, i);
            craft_tensor *p = fx_craft(fx_get(f, key), 0), *m, *v;
            if (!p) return;
            craft_zeros_like(p, &m);
            craft_zeros_like(p, &v);
            craft_set_requires_grad(p, 1);
            for (int k = 0; k < 5; k++) {
                snprintf(key, sizeof key, "%s.g%d.%d", cs[c].name, i, k);
                craft_tensor *g = fx_craft(fx_get(f, key), 0);
                int32_t ver = p->storage->version;
                CHECK_OK(
                    craft_adamw_step(p, g, m, v, cs[c].lr, cs[c].b1, cs[c].b2, cs[c].eps, cs[c].wd, k + 1));
                CHECK(p->storage->version != ver);
                snprintf(key, sizeof key, "%s.p%d.%d", cs[c].name, i, k);
                CHECK_FX(p, f, key, 1e-5);
                craft_tensor_release(g);
            }
            if (c == 0) {
                snprintf(key, sizeof key, "%s.m%d", cs[c].name, i);
                CHECK_FX(m, f, key, 1e-5);
                snprintf(key, sizeof key, "%s.v%d", cs[c].name, i);
                CHECK_FX(v, f, key, 1e-5);
            }
            CHECK(p->node == NULL); /* never recorded */
            craft_tensor_release(p);
            craft_tensor_release(m);
            craft_tensor_release(v);
        }
    }
}

static void test_adamw_strided(const fx_file *f) {
    /* adamw0's [3, 5] param, held as a transposed view of [5, 3] storage, state strided too */
    const fx_tensor *r = fx_get(f, "adamw0.p1");
    if (!r) return;
    int64_t st[2] = {5, 3};
    craft_tensor *store, *p, *ms, *vs, *m, *v;
    craft_empty(2, st, CRAFT_F32, 0, &store);
    float *sp = craft_tensor_data(store);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) sp[j * 3 + i] = r->data[i * 5 + j];
    craft_transpose(store, 0, 1, &p);
    craft_zeros(2, st, CRAFT_F32, 0, &ms);
    craft_zeros(2, st, CRAFT_F32, 0, &vs);
    craft_transpose(ms, 0, 1, &m);
    craft_transpose(vs, 0, 1, &v);
    char key[64];
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof key, "adamw0.g1.%d", k);
        craft_tensor *g = fx_craft(fx_get(f, key), 0);
        CHECK_OK(craft_adamw_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 1e-2, k + 1));
        craft_tensor_release(g);
    }
    CHECK_FX(p, f, "adamw0.p1.4", 1e-5);
    CHECK_FX(v, f, "adamw0.v1", 1e-5);
    craft_tensor *arr[6] = {store, p, ms, vs, m, v};
    for (int k = 0; k < 6; k++) craft_tensor_release(arr[k]);
}

/* The dense path (vectorised, threaded) against the strided one (the same values held as
 * transposed views): bit-identical, over a size that is not a multiple of 16 lanes and large
 * enough to be split across threads, for several steps. */
static void test_adamw_dense_matches_strided(void) {
    int64_t R = 389, Cc = 401, s[2] = {R, Cc}, st[2] = {Cc, R}; /* 155989 elements */
    craft_tensor *t[4], *u[4], *ut[4];
    for (int k = 0; k < 4; k++) {
        CHECK_OK(craft_empty(2, s, CRAFT_F32, 0, &t[k]));
        CHECK_OK(k == 3 ? craft_rand_(t[k], 40 + k, 0) : craft_randn_(t[k], 40 + k, 0)); /* v >= 0 */
        CHECK_OK(craft_empty(2, st, CRAFT_F32, 0, &u[k]));
        CHECK_OK(craft_transpose(u[k], 0, 1, &ut[k]));
        CHECK_OK(craft_copy_(ut[k], t[k]));
    }
    for (int step = 1; step <= 3; step++) {
        CHECK_OK(craft_adamw_step(t[0], t[1], t[2], t[3], 1e-2, 0.9, 0.999, 1e-8, 1e-2, step));
        CHECK_OK(craft_adamw_step(ut[0], ut[1], ut[2], ut[3], 1e-2, 0.9, 0.999, 1e-8, 1e-2, step));
    }
    static const int outs[3] = {0, 2, 3}; /* p, m, v */
    for (int o = 0; o < 3; o++) {
        int k = outs[o];
        int64_t n = R * Cc;
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        craft_tensor *c;
        CHECK_OK(craft_contiguous(ut[k], &c));
        craft_tensor_read(t[k], CRAFT_F32, a, (size_t)n * sizeof *a);
        craft_tensor_read(c, CRAFT_F32, b, (size_t)n * sizeof *b);
        CHECK_MSG(memcmp(a, b, (size_t)n * sizeof *a) == 0, "adamw dense vs strided: tensor %d differs", k);
        craft_tensor_release(c);
        free(a);
        free(b);
    }
    for (int k = 0; k < 4; k++) {
        craft_tensor_release(t[k]);
        craft_tensor_release(u[k]);
        craft_tensor_release(ut[k]);
    }
}

static void test_sgd_vs_torch(const fx_file *f) {
    struct {
        const char *name;
        int np;
        double lr, mom, wd;
        int nest;
    } cs[3] = {{"sgd0", 2, 0.05, 0.9, 1e-3, 0},
               {"sgd1", 1, 0.05, 0.9, 1e-3, 1},
               {"sgd2", 1, 0.1, 0.0, 0.0, 0}};
    char key[64];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < cs[c].np; i++) {
            snprintf(key, sizeof key, "%s.p%d", cs[c].name, i);
            craft_tensor *p = fx_craft(fx_get(f, key), 0), *buf = NULL;
            if (!p) return;
            if (cs[c].mom != 0) craft_zeros_like(p, &buf);
            for (int k = 0; k < 5; k++) {
                snprintf(key, sizeof key, "%s.g%d.%d", cs[c].name, i, k);
                craft_tensor *g = fx_craft(fx_get(f, key), 0);
                CHECK_OK(craft_sgd_step(p, g, buf, cs[c].lr, cs[c].mom, cs[c].wd, cs[c].nest));
                snprintf(key, sizeof key, "%s.p%d.%d", cs[c].name, i, k);
                CHECK_FX(p, f, key, 1e-5);
                craft_tensor_release(g);
            }
            craft_tensor_release(p);
            craft_tensor_release(buf);
        }
}

static void test_clip_vs_torch(const fx_file *f) {
    const char *names[2] = {"clip0", "clip1"};
    double max_norm[2] = {1.0, 100.0};
    char key[64];
    for (int c = 0; c < 2; c++) {
        craft_tensor *g[4] = {NULL, NULL, NULL, NULL};
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "%s.g%d", names[c], i);
            g[i == 2 ? 3 : i] =
                fx_craft(fx_get(f, key), 0); /* slot 2 stays NULL: skipped like a param without grad */
        }
        double total = -1;
        CHECK_OK(craft_clip_grad_norm(4, g, max_norm[c], &total));
        snprintf(key, sizeof key, "%s.total", names[c]);
        const fx_tensor *rt = fx_get(f, key);
        if (rt) CHECK_NEAR(total, rt->data[0], 2e-6 * rt->data[0]);
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "%s.c%d", names[c], i);
            CHECK_FX(g[i == 2 ? 3 : i], f, key, 2e-6);
        }
        if (c == 1) { /* not clipped: untouched bit for bit */
            snprintf(key, sizeof key, "%s.g0", names[c]);
            CHECK(fx_err(g[0], fx_get(f, key)) == 0);
        }
        for (int i = 0; i < 4; i++) craft_tensor_release(g[i]);
    }
}

static void test_optim_vs_torch(void) {
    fx_file f;
    if (fx_load("optim_ref.bin", &f)) {
        CHECK_MSG(0, "optim_ref.bin unreadable");
        return;
    }
    test_adamw_vs_torch(&f);
    test_adamw_strided(&f);
    test_adamw_dense_matches_strided();
    test_sgd_vs_torch(&f);
    test_clip_vs_torch(&f);
    fx_free(&f);
}

static void test_ema(void) {
    int64_t s[2] = {3, 7};
    craft_tensor *e, *p;
    craft_empty(2, s, CRAFT_F32, 0, &e);
    craft_empty(2, s, CRAFT_F32, 0, &p);
    CHECK_OK(craft_randn_(e, 1, 0));
    CHECK_OK(craft_randn_(p, 2, 0));
    float ev[21], pv[21], out[21];
    craft_tensor_read(e, CRAFT_F32, ev, sizeof ev);
    craft_tensor_read(p, CRAFT_F32, pv, sizeof pv);
    const double decay = 0.9999;
    CHECK_OK(craft_ema_update(e, p, decay));
    craft_tensor_read(e, CRAFT_F32, out, sizeof out);
    int bad = 0;
    for (int i = 0; i < 21; i++) {
        volatile float a = (float)decay * ev[i], b = (float)(1.0 - decay) * pv[i];
        bad += out[i] != a + b;
    }
    CHECK(bad == 0);
    CHECK_OK(craft_ema_update(e, p, 0.0)); /* decay 0: a copy */
    craft_tensor_read(e, CRAFT_F32, out, sizeof out);
    CHECK(memcmp(out, pv, sizeof out) == 0);
    craft_tensor *w;
    int64_t s2[2] = {7, 3};
    craft_empty(2, s2, CRAFT_F32, 0, &w);
    CHECK_ERR(craft_ema_update(e, w, 0.5), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "ema_update") && strstr(craft_last_error(), "[7, 3]"));
    CHECK_ERR(craft_ema_update(e, p, 1.5), CRAFT_EINVAL);
    craft_tensor_release(w);
    craft_tensor_release(e);
    craft_tensor_release(p);
}

static void test_optim_errors(void) {
    int64_t s[2] = {2, 3}, s2[2] = {3, 2};
    craft_tensor *p, *g, *m, *v, *bad, *gi;
    craft_zeros(2, s, CRAFT_F32, 0, &p);
    craft_zeros(2, s, CRAFT_F32, 0, &g);
    craft_zeros(2, s, CRAFT_F32, 0, &m);
    craft_zeros(2, s, CRAFT_F32, 0, &v);
    craft_zeros(2, s2, CRAFT_F32, 0, &bad);
    craft_zeros(2, s, CRAFT_I64, 0, &gi);
    CHECK_ERR(craft_adamw_step(p, bad, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, 1), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "adamw_step") && strstr(craft_last_error(), "grad [3, 2]") &&
          strstr(craft_last_error(), "[2, 3]"));
    CHECK_ERR(craft_adamw_step(p, g, bad, v, 1e-3, 0.9, 0.999, 1e-8, 0, 1), CRAFT_ESHAPE);
    CHECK_ERR(craft_adamw_step(p, gi, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, 1), CRAFT_ETYPE);
    CHECK_ERR(craft_adamw_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, 0), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "step 0") != NULL);
    CHECK_ERR(craft_adamw_step(p, g, m, v, 1e-3, 1.0, 0.999, 1e-8, 0, 1), CRAFT_EINVAL);
    CHECK_ERR(craft_adamw_step(p, g, m, m, 1e-3, 0.9, 0.999, 1e-8, 0, 1), CRAFT_EINVAL);
    CHECK_ERR(craft_sgd_step(p, g, NULL, 0.1, 0.9, 0, 0), CRAFT_EINVAL);
    CHECK_ERR(craft_sgd_step(p, g, bad, 0.1, 0.9, 0, 0), CRAFT_ESHAPE);
    CHECK_ERR(craft_sgd_step(p, g, m, 0.1, 0.0, 0, 1), CRAFT_EINVAL);
    CHECK_ERR(craft_sgd_step(p, bad, m, 0.1, 0.9, 0, 0), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "sgd_step") != NULL);
    craft_tensor *gs[2] = {g, gi};
    CHECK_ERR(craft_clip_grad_norm(2, gs, 1.0, NULL), CRAFT_ETYPE);
    CHECK_ERR(craft_clip_grad_norm(1, gs, -1.0, NULL), CRAFT_EINVAL);
    double tn = -1;
    CHECK_OK(craft_clip_grad_norm(0, NULL, 1.0, &tn));
    CHECK(tn == 0);
    /* an optimiser step on a tensor that a graph saved invalidates that graph */
    craft_tensor *y, *l;
    craft_set_requires_grad(p, 1);
    CHECK_OK(craft_binary(CRAFT_MUL, p, p, &y));
    CHECK_OK(craft_sum(y, 0, NULL, 0, &l));
    CHECK_OK(craft_adamw_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, 1));
    CHECK_ERR(craft_backward(l, NULL, 0), CRAFT_EGRAD);
    craft_tensor_release(y);
    craft_tensor_release(l);
    craft_tensor *arr[6] = {p, g, m, v, bad, gi};
    for (int k = 0; k < 6; k++) craft_tensor_release(arr[k]);
}

static void test_threads(void) {
    int prev = craft_num_threads();
    CHECK(prev >= 1);
    craft_set_num_threads(3);
    CHECK(craft_num_threads() == 3);
    craft_set_num_threads(0); /* back to one per processor */
    CHECK(craft_num_threads() >= 1);
    craft_set_num_threads(prev);
    CHECK(craft_num_threads() == prev);
}

int main(void) {
    RUN(test_philox_kat);
    RUN(test_rng_mapping);
    RUN(test_rng_invariance);
    RUN(test_rng_moments);
    RUN(test_optim_vs_torch);
    RUN(test_ema);
    RUN(test_optim_errors);
    RUN(test_threads);
    return CHECK_SUMMARY();
}
