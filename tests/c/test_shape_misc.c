/* test_shape_misc.c: concat, pad, interpolate, avg_pool2d, embedding and timestep_embedding.
 * Forward values and input gradients are compared with PyTorch 1.13 references
 * (tests/fixtures/ops/shape_*.bin, made by tests/fixtures/make_shape_misc_fixtures.py), with
 * contiguous and with strided inputs; every differentiable op is also gradient-checked against
 * finite differences on several shapes and non-contiguous views; bad arguments must fail with
 * the right status and a message naming the op.
 * Tolerances: max|got - ref| <= tol * max|ref| per tensor, tol 1e-4 forward, 1e-3 gradient;
 * pure data movement (concat, pad, nearest, embedding forward) must match exactly. */
#include "gradcheck.h"
#include "core/internal.h"

#include "fixture.h"

/* ---------------------------------------------------------------- fixtures -- */
/* max|got - ref| / max|ref| (0 when both are all zero); shape must match. */
static double fx_err(const craft_tensor *got, const fx_tensor *ref) {
    if (!got || !ref) return 1e30;
    if (got->ndim != ref->ndim) return 1e30;
    for (int i = 0; i < ref->ndim; i++)
        if (got->shape[i] != ref->shape[i]) return 1e30;
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

#define CHECK_FX(got, ref, tol, what)                                                                        \
    do {                                                                                                     \
        double e_ = fx_err((got), (ref));                                                                    \
        CHECK_MSG(e_ <= (tol), "%s: relative error %.3g (tol %g)", (what), e_, (double)(tol));               \
    } while (0)

/* Input k as a strided view: a leaf B with the last dim doubled holds the values at even
 * positions; the op sees B[..., ::2]. */
static craft_tensor *strided_input(const fx_tensor *r, craft_tensor **leaf) {
    int64_t shape[8];
    for (int i = 0; i < r->ndim; i++) shape[i] = r->shape[i];
    shape[r->ndim - 1] *= 2;
    craft_tensor *b, *v;
    craft_zeros(r->ndim, shape, CRAFT_F32, 0, &b);
    float *p = craft_tensor_data(b);
    for (int64_t i = 0; i < r->numel; i++) p[2 * i] = r->data[i];
    craft_set_requires_grad(b, 1);
    craft_slice(b, -1, 0, shape[r->ndim - 1], 2, &v);
    *leaf = b;
    return v;
}

/* Runs fixture case `cs`: inputs cs.<name> (all differentiable), compares cs.y and, after
 * backward with cs.g, cs.d<name>; once with dense inputs and once with strided ones. */
static void fx_case(const fx_file *f, const char *cs, int nin, const char *const *names, gc_fn fn, void *ctx,
                    int exact) {
    char key[96];
    for (int strided = 0; strided < 2; strided++) {
        craft_tensor *in[8], *leaf[8];
        for (int k = 0; k < nin; k++) {
            snprintf(key, sizeof key, "%s.%s", cs, names[k]);
            const fx_tensor *r = fx_get(f, key);
            if (!r) return;
            if (strided) in[k] = strided_input(r, &leaf[k]);
            else {
                in[k] = fx_craft(r, 1);
                leaf[k] = in[k];
            }
        }
        craft_tensor *y = NULL;
        int rc = fn(in, ctx, &y);
        CHECK_MSG(rc == CRAFT_OK, "%s forward: %s", cs, craft_last_error());
        if (rc) return;
        snprintf(key, sizeof key, "%s.y", cs);
        char what[128];
        snprintf(what, sizeof what, "%s forward (%s)", cs, strided ? "strided" : "dense");
        CHECK_FX(y, fx_get(f, key), exact ? 0.0 : 1e-4, what);
        snprintf(key, sizeof key, "%s.g", cs);
        craft_tensor *g = fx_craft(fx_get(f, key), 0);
        CHECK_OK(craft_backward(y, g, 0));
        for (int k = 0; k < nin; k++) {
            craft_tensor *gr = leaf[k]->grad, *view = NULL;
            if (strided && gr) craft_slice(gr, -1, 0, gr->shape[gr->ndim - 1], 2, &view);
            snprintf(key, sizeof key, "%s.d%s", cs, names[k]);
            snprintf(what, sizeof what, "%s grad of %s (%s)", cs, names[k], strided ? "strided" : "dense");
            CHECK_FX(strided ? view : gr, fx_get(f, key), 1e-3, what);
            craft_tensor_release(view);
            if (strided) craft_tensor_release(in[k]);
            craft_tensor_release(leaf[k]);
        }
        craft_tensor_release(g);
        craft_tensor_release(y);
    }
}

/* ---------------------------------------------------------------- op wrappers */
typedef struct {
    int n, dim;
    int64_t pads[16];
    int npairs, mode;
    double value;
    int64_t oh, ow;
    int align;
    int k, s, p;
    craft_tensor *idx;
    int transpose;
} op_args;

/* transposes the last two dims of inputs listed in a->transpose (bit k: input k) */
static craft_tensor *maybe_t(craft_tensor *x, const op_args *a, int k, int *own) {
    *own = 0;
    if (!(a->transpose >> k & 1)) return x;
    craft_tensor *t;
    if (craft_transpose(x, -1, -2, &t)) return x;
    *own = 1;
    return t;
}

static int op_concat(craft_tensor **in, void *ctx, craft_tensor **out) {
    op_args *a = ctx;
    craft_tensor *v[8];
    int own[8];
    for (int k = 0; k < a->n; k++) v[k] = maybe_t(in[k], a, k, &own[k]);
    int rc = craft_concat(a->n, v, a->dim, out);
    for (int k = 0; k < a->n; k++)
        if (own[k]) craft_tensor_release(v[k]);
    return rc;
}
static int op_pad(craft_tensor **in, void *ctx, craft_tensor **out) {
    op_args *a = ctx;
    int own;
    craft_tensor *x = maybe_t(in[0], a, 0, &own);
    int rc = craft_pad(x, a->npairs, a->pads, a->mode, a->value, out);
    if (own) craft_tensor_release(x);
    return rc;
}
static int op_interp(craft_tensor **in, void *ctx, craft_tensor **out) {
    op_args *a = ctx;
    int own;
    craft_tensor *x = maybe_t(in[0], a, 0, &own);
    int rc = craft_interpolate(x, a->oh, a->ow, a->mode, a->align, out);
    if (own) craft_tensor_release(x);
    return rc;
}
static int op_pool(craft_tensor **in, void *ctx, craft_tensor **out) {
    op_args *a = ctx;
    int own;
    craft_tensor *x = maybe_t(in[0], a, 0, &own);
    int rc = craft_avg_pool2d(x, a->k, a->s, a->p, out);
    if (own) craft_tensor_release(x);
    return rc;
}
static int op_embed(craft_tensor **in, void *ctx, craft_tensor **out) {
    op_args *a = ctx;
    int own;
    craft_tensor *w = maybe_t(in[0], a, 0, &own);
    int rc = craft_embedding(w, a->idx, out);
    if (own) craft_tensor_release(w);
    return rc;
}

/* ---------------------------------------------------------------- fixture tests */
static void test_concat_pad_vs_torch(void) {
    fx_file f;
    if (fx_load("shape_ops.bin", &f)) {
        CHECK_MSG(0, "shape_ops.bin unreadable");
        return;
    }
    const char *abc[3] = {"a", "b", "c"}, *x[1] = {"x"};
    op_args a = {.n = 3, .dim = 1};
    fx_case(&f, "cat0", 3, abc, op_concat, &a, 1);
    a.n = 2;
    a.dim = -1;
    fx_case(&f, "cat1", 2, abc, op_concat, &a, 1);
    op_args p1 = {.npairs = 2, .pads = {1, 2, 0, 1}, .mode = 0, .value = 0.5};
    fx_case(&f, "padc", 1, x, op_pad, &p1, 1);
    op_args p2 = {.npairs = 1, .pads = {-1, 2}, .mode = 0, .value = -1.0};
    fx_case(&f, "padcn", 1, x, op_pad, &p2, 1);
    op_args p3 = {.npairs = 2, .pads = {2, 1, 1, 3}, .mode = 1};
    fx_case(&f, "padr", 1, x, op_pad, &p3, 1);
    op_args p4 = {.npairs = 1, .pads = {3, 2}, .mode = 1};
    fx_case(&f, "padr1", 1, x, op_pad, &p4, 1);
    op_args p5 = {.npairs = 2, .pads = {1, 2, 3, 1}, .mode = 2};
    fx_case(&f, "padp", 1, x, op_pad, &p5, 1);
    op_args p6 = {.npairs = 3, .pads = {1, 1, 2, 0, 1, 2}, .mode = 2};
    fx_case(&f, "padp3", 1, x, op_pad, &p6, 1);
    fx_free(&f);
}

static void test_resize_vs_torch(void) {
    fx_file f;
    if (fx_load("shape_resize.bin", &f)) {
        CHECK_MSG(0, "shape_resize.bin unreadable");
        return;
    }
    const char *x[1] = {"x"};
    struct {
        const char *cs;
        int mode, align;
        int64_t oh, ow;
    } ic[] = {{"nn0", 0, 0, 8, 4},  {"nn1", 0, 0, 8, 10}, {"nn2", 0, 0, 4, 5}, {"bl0", 1, 0, 9, 4},
              {"bl1", 1, 1, 9, 11}, {"bl2", 1, 0, 3, 3},  {"bl3", 1, 0, 8, 8}};
    for (size_t i = 0; i < sizeof ic / sizeof ic[0]; i++) {
        op_args a = {.mode = ic[i].mode, .align = ic[i].align, .oh = ic[i].oh, .ow = ic[i].ow};
        fx_case(&f, ic[i].cs, 1, x, op_interp, &a, ic[i].mode == 0);
    }
    struct {
        const char *cs;
        int k, s, p;
    } pc[] = {{"ap0", 3, 2, 1}, {"ap1", 2, 2, 0}, {"ap2", 3, 1, 0}};
    for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
        op_args a = {.k = pc[i].k, .s = pc[i].s, .p = pc[i].p};
        fx_case(&f, pc[i].cs, 1, x, op_pool, &a, 0);
    }
    fx_free(&f);
}

/* indices from a float fixture tensor, as dtype */
static craft_tensor *fx_indices(const fx_tensor *r, int dtype) {
    int64_t *v = malloc((size_t)r->numel * sizeof(int64_t));
    for (int64_t i = 0; i < r->numel; i++) v[i] = (int64_t)r->data[i];
    craft_tensor *t64, *t;
    craft_from_data(r->ndim, r->shape, CRAFT_I64, v, &t64);
    free(v);
    if (dtype == CRAFT_I64) return t64;
    craft_to_dtype(t64, dtype, &t);
    craft_tensor_release(t64);
    return t;
}

static void test_embed_vs_torch(void) {
    fx_file f;
    if (fx_load("shape_embed.bin", &f)) {
        CHECK_MSG(0, "shape_embed.bin unreadable");
        return;
    }
    const char *wt[1] = {"wt"};
    const char *cases[2] = {"emb0", "emb1"};
    for (int c = 0; c < 2; c++) {
        char key[64];
        snprintf(key, sizeof key, "%s.idx", cases[c]);
        for (int dt = 0; dt < 2; dt++) {
            op_args a = {.idx = fx_indices(fx_get(&f, key), dt ? CRAFT_I32 : CRAFT_I64)};
            fx_case(&f, cases[c], 1, wt, op_embed, &a, 1);
            craft_tensor_release(a.idx);
        }
    }
    /* timestep embeddings: forward only */
    struct {
        const char *cs;
        int dim, flip;
        double shift, scale, mp;
    } tc[] = {{"ts0", 64, 1, 0.0, 1.0, 10000},
              {"ts1", 33, 0, 1.0, 2.5, 1000},
              {"ts2", 320, 1, 0.0, 1.0, 10000}};
    for (int i = 0; i < 3; i++) {
        char key[64], what[64];
        snprintf(key, sizeof key, "%s.t", tc[i].cs);
        craft_tensor *t = fx_craft(fx_get(&f, key), 0), *y = NULL;
        CHECK_OK(craft_timestep_embedding(t, tc[i].dim, tc[i].flip, tc[i].shift, tc[i].scale, tc[i].mp, &y));
        snprintf(key, sizeof key, "%s.y", tc[i].cs);
        snprintf(what, sizeof what, "timestep embedding %s", tc[i].cs);
        CHECK_FX(y, fx_get(&f, key), 1e-4, what);
        craft_tensor_release(y);
        if (i == 0) { /* integer timesteps: the same as their float values */
            craft_tensor *ti, *tf, *y1 = NULL, *y2 = NULL;
            CHECK_OK(craft_to_dtype(t, CRAFT_I64, &ti));
            CHECK_OK(craft_to_dtype(ti, CRAFT_F32, &tf));
            CHECK_OK(craft_timestep_embedding(ti, 64, 1, 0, 1, 10000, &y1));
            CHECK_OK(craft_timestep_embedding(tf, 64, 1, 0, 1, 10000, &y2));
            float b1[5 * 64], b2[5 * 64];
            CHECK_OK(craft_tensor_read(y1, CRAFT_F32, b1, sizeof b1));
            CHECK_OK(craft_tensor_read(y2, CRAFT_F32, b2, sizeof b2));
            CHECK(memcmp(b1, b2, sizeof b1) == 0);
            craft_tensor_release(y1);
            craft_tensor_release(y2);
            craft_tensor_release(tf);
            craft_tensor_release(ti);
        }
        craft_tensor_release(t);
    }
    fx_free(&f);
}

/* torch_tiny_unet's embedding (cos then sin, exp(-ln(P) * i / half)) is flip=1, shift=0:
 * check the structure directly too. */
static void test_timestep_structure(void) {
    float tv[3] = {0.0f, 3.0f, 700.0f};
    int64_t s[1] = {3};
    craft_tensor *t, *y;
    craft_from_data(1, s, CRAFT_F32, tv, &t);
    CHECK_OK(craft_timestep_embedding(t, 8, 1, 0.0, 1.0, 10000, &y));
    CHECK(y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 8);
    float o[24];
    craft_tensor_read(y, CRAFT_F32, o, sizeof o);
    for (int n = 0; n < 3; n++)
        for (int i = 0; i < 4; i++) {
            double fr = exp(-log(10000.0) * i / 4.0), a = tv[n] * fr;
            CHECK_NEAR(o[n * 8 + i], cos(a), 2e-4);
            CHECK_NEAR(o[n * 8 + 4 + i], sin(a), 2e-4);
        }
    CHECK(o[0] == 1.0f && o[4] == 0.0f); /* t = 0: cos 0, sin 0 */
    craft_tensor_release(y);
    CHECK_OK(craft_timestep_embedding(t, 7, 0, 1.0, 1.0, 10000, &y)); /* odd: last column zero */
    CHECK(y->shape[1] == 7);
    float o7[21];
    craft_tensor_read(y, CRAFT_F32, o7, sizeof o7);
    CHECK(o7[6] == 0.0f && o7[13] == 0.0f && o7[20] == 0.0f);
    CHECK(o7[0] == 0.0f && o7[3] == 1.0f); /* t = 0: sin block then cos block */
    craft_tensor_release(y);
    craft_tensor_release(t);
    /* an empty batch gives the empty [0, dim] result whatever dim is (it used to build the
     * dim / 2 frequency table first: 4 GB for INT_MAX; fuzz seed regress-timestep-empty-batch-huge-dim) */
    int64_t s0[1] = {0};
    craft_tensor *e = NULL;
    CHECK_OK(craft_empty(1, s0, CRAFT_F32, CRAFT_DEVICE_CPU, &e));
    y = NULL;
    CHECK_OK(craft_timestep_embedding(e, INT32_MAX, 1, 0.0, 1.0, 10000, &y));
    CHECK(y && y->ndim == 2 && y->shape[0] == 0 && y->shape[1] == INT32_MAX && y->numel == 0);
    craft_tensor_release(y);
    CHECK(craft_timestep_embedding(e, 0, 1, 0.0, 1.0, 10000, &y) == CRAFT_EINVAL); /* still checked */
    craft_tensor_release(e);
}

/* ---------------------------------------------------------------- gradchecks */
static void test_gradchecks(void) {
    /* concat: three inputs, along dim 0 and 2, one of them a transposed view */
    {
        int64_t s0[3] = {2, 3, 4}, s1[3] = {1, 3, 4}, s2[3] = {3, 3, 4};
        craft_tensor *in[3] = {gc_rand(3, s0, -1, 1), gc_rand(3, s1, -1, 1), gc_rand(3, s2, -1, 1)};
        op_args a = {.n = 3, .dim = 0, .transpose = 2}; /* input 1 is stored [1, 4, 3] */
        int64_t s1t[3] = {1, 4, 3};
        craft_tensor_release(in[1]);
        in[1] = gc_rand(3, s1t, -1, 1);
        gradcheck("concat dim 0", op_concat, 3, in, &a, 1e-2, 1e-3, 1e-2);
        for (int k = 0; k < 3; k++) craft_tensor_release(in[k]);
        int64_t t0[3] = {2, 3, 2}, t1[3] = {2, 3, 5};
        craft_tensor *in2[2] = {gc_rand(3, t0, -1, 1), gc_rand(3, t1, -1, 1)};
        op_args b = {.n = 2, .dim = 2};
        gradcheck("concat dim 2", op_concat, 2, in2, &b, 1e-2, 1e-3, 1e-2);
        for (int k = 0; k < 2; k++) craft_tensor_release(in2[k]);
    }
    /* pad: every mode, 3-d and 4-d, dense and transposed */
    {
        struct {
            int nd;
            int64_t shape[4];
            int npairs;
            int64_t pads[6];
            int mode, tr;
        } pc[] = {
            {3, {2, 3, 5}, 1, {2, 1}, 0, 0},
            {4, {1, 2, 4, 5}, 2, {1, 2, 2, 0}, 0, 1},
            {4, {1, 2, 4, 5}, 2, {-1, 2, 1, -1}, 0, 0},
            {3, {2, 2, 5}, 1, {3, 4}, 1, 0},
            {4, {1, 2, 4, 5}, 2, {2, 1, 3, 3}, 1, 1},
            {4, {2, 1, 3, 4}, 2, {1, 3, 2, 1}, 2, 0},
            {4, {1, 2, 5, 4}, 2, {2, 2, 1, 3}, 2, 1},
            {3, {3, 4, 5}, 3, {1, 1, 0, 2, 1, 0}, 2, 0},
        };
        for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
            op_args a = {.npairs = pc[i].npairs, .mode = pc[i].mode, .value = 0.25, .transpose = pc[i].tr};
            for (int k = 0; k < 2 * pc[i].npairs; k++) a.pads[k] = pc[i].pads[k];
            int64_t shape[4];
            for (int d = 0; d < pc[i].nd; d++) shape[d] = pc[i].shape[d];
            char name[64];
            snprintf(name, sizeof name, "pad case %zu (mode %d)", i, pc[i].mode);
            craft_tensor *x = gc_rand(pc[i].nd, shape, -1, 1);
            gradcheck(name, op_pad, 1, &x, &a, 1e-2, 1e-3, 1e-2);
            craft_tensor_release(x);
        }
    }
    /* interpolate: nearest and bilinear (both align_corners), up and down */
    {
        struct {
            int64_t shape[4];
            int64_t oh, ow;
            int mode, align, tr;
        } ic[] = {
            {{1, 2, 3, 4}, 7, 5, 0, 0, 0}, {{2, 1, 5, 4}, 3, 2, 0, 0, 1}, {{1, 2, 3, 4}, 6, 8, 0, 0, 0},
            {{1, 2, 3, 4}, 7, 5, 1, 0, 0}, {{2, 1, 5, 4}, 3, 2, 1, 0, 1}, {{1, 2, 3, 4}, 7, 9, 1, 1, 0},
            {{1, 1, 4, 5}, 2, 3, 1, 1, 1}, {{1, 1, 3, 3}, 1, 1, 1, 1, 0},
        };
        for (size_t i = 0; i < sizeof ic / sizeof ic[0]; i++) {
            op_args a = {.oh = ic[i].oh,
                         .ow = ic[i].ow,
                         .mode = ic[i].mode,
                         .align = ic[i].align,
                         .transpose = ic[i].tr};
            char name[64];
            snprintf(name, sizeof name, "interpolate case %zu (mode %d, align %d)", i, ic[i].mode,
                     ic[i].align);
            craft_tensor *x = gc_rand(4, ic[i].shape, -1, 1);
            gradcheck(name, op_interp, 1, &x, &a, 1e-2, 1e-3, 1e-2);
            craft_tensor_release(x);
        }
    }
    /* avg_pool2d */
    {
        struct {
            int64_t shape[4];
            int k, s, p, tr;
        } pc[] = {
            {{1, 2, 5, 6}, 3, 2, 1, 0},
            {{2, 1, 6, 4}, 2, 2, 0, 1},
            {{1, 1, 5, 5}, 3, 1, 0, 0},
            {{1, 2, 7, 5}, 4, 3, 2, 1},
        };
        for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
            op_args a = {.k = pc[i].k, .s = pc[i].s, .p = pc[i].p, .transpose = pc[i].tr};
            char name[64];
            snprintf(name, sizeof name, "avg_pool2d case %zu", i);
            craft_tensor *x = gc_rand(4, pc[i].shape, -1, 1);
            gradcheck(name, op_pool, 1, &x, &a, 1e-2, 1e-3, 1e-2);
            craft_tensor_release(x);
        }
    }
    /* embedding: duplicate indices, weight dense and as a transposed view; 3-d indices */
    {
        int64_t iv[6] = {2, 0, 2, 4, 4, 4}, is[2] = {2, 3};
        craft_tensor *idx;
        craft_from_data(2, is, CRAFT_I64, iv, &idx);
        int64_t ws[2] = {5, 3}, wst[2] = {3, 5};
        op_args a = {.idx = idx};
        craft_tensor *w = gc_rand(2, ws, -1, 1);
        gradcheck("embedding", op_embed, 1, &w, &a, 1e-2, 1e-3, 1e-2);
        craft_tensor_release(w);
        a.transpose = 1;
        w = gc_rand(2, wst, -1, 1);
        gradcheck("embedding (transposed weight)", op_embed, 1, &w, &a, 1e-2, 1e-3, 1e-2);
        craft_tensor_release(w);
        craft_tensor_release(idx);
        int32_t jv[8] = {1, 1, 0, 3, 3, 3, 2, 1};
        int64_t js[3] = {2, 2, 2}, ws2[2] = {4, 70}; /* wide enough for the column split */
        craft_from_data(3, js, CRAFT_I32, jv, &idx);
        op_args b = {.idx = idx};
        w = gc_rand(2, ws2, -1, 1);
        gradcheck("embedding (i32, 3-d indices)", op_embed, 1, &w, &b, 1e-2, 1e-3, 1e-2);
        craft_tensor_release(w);
        craft_tensor_release(idx);
    }
}

/* Larger tensors take the threaded paths; values must not depend on the thread count. */
static void test_threaded_paths(void) {
    int64_t s[4] = {4, 16, 40, 48};
    craft_tensor *x = gc_rand(4, s, -1, 1);
    int prev = craft_num_threads();
    float *res[2] = {NULL, NULL};
    int64_t n = 0;
    for (int th = 1; th <= 2; th++) {
        craft_set_num_threads(th);
        craft_tensor *a, *b, *c, *d, *sum1, *sum2, *l;
        int64_t pads[4] = {3, 2, 1, 3};
        CHECK_OK(craft_pad(x, 2, pads, 1, 0, &a));
        CHECK_OK(craft_interpolate(a, 70, 90, 1, 0, &b));
        CHECK_OK(craft_avg_pool2d(b, 3, 2, 1, &c));
        CHECK_OK(craft_interpolate(c, 71, 33, 0, 0, &d));
        CHECK_OK(craft_sum(d, 0, NULL, 0, &sum1));
        CHECK_OK(craft_binary(CRAFT_MUL, d, d, &sum2));
        CHECK_OK(craft_sum(sum2, 0, NULL, 0, &l));
        CHECK_OK(craft_backward(l, NULL, 0));
        n = x->numel;
        res[th - 1] = malloc((size_t)n * sizeof(float));
        craft_tensor_read(x->grad, CRAFT_F32, res[th - 1], (size_t)n * sizeof(float));
        craft_zero_grad(x);
        craft_tensor *arr[5] = {a, b, c, d, sum1};
        for (int k = 0; k < 5; k++) craft_tensor_release(arr[k]);
        craft_tensor_release(sum2);
        craft_tensor_release(l);
    }
    craft_set_num_threads(prev);
    CHECK(memcmp(res[0], res[1], (size_t)n * sizeof(float)) == 0);
    free(res[0]);
    free(res[1]);
    craft_tensor_release(x);
}

/* ---------------------------------------------------------------- errors ---- */
static void test_errors(void) {
    int64_t s1[2] = {2, 3}, s2[2] = {3, 3}, s4[4] = {1, 1, 3, 3};
    craft_tensor *a, *b, *c, *x4, *out = NULL, *i64;
    craft_zeros(2, s1, CRAFT_F32, 0, &a);
    craft_zeros(2, s2, CRAFT_F32, 0, &b);
    craft_zeros(2, s1, CRAFT_I64, 0, &c);
    craft_zeros(4, s4, CRAFT_F32, 0, &x4);
    craft_tensor *ab[2] = {a, b}, *ac[2] = {a, c};
    CHECK_ERR(craft_concat(2, ab, 1, &out), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "concat") && strstr(craft_last_error(), "[3, 3]") &&
          strstr(craft_last_error(), "[2, 3]"));
    CHECK_OK(craft_concat(2, ab, 0, &out)); /* fine along dim 0 */
    CHECK(out && out->shape[0] == 5);
    craft_tensor_release(out);
    CHECK_ERR(craft_concat(2, ac, 0, &out), CRAFT_ETYPE);
    CHECK_ERR(craft_concat(2, ab, 2, &out), CRAFT_EINVAL);
    CHECK_ERR(craft_concat(0, ab, 0, &out), CRAFT_EINVAL);
    int64_t pads[4] = {3, 3, 0, 0};
    CHECK_ERR(craft_pad(x4, 1, pads, 1, 0, &out), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "pad") && strstr(craft_last_error(), "reflect") &&
          strstr(craft_last_error(), "size 3"));
    CHECK_ERR(craft_pad(x4, 5, pads, 0, 0, &out), CRAFT_EINVAL);
    CHECK_ERR(craft_pad(x4, 1, pads, 3, 0, &out), CRAFT_EINVAL);
    int64_t neg[2] = {-4, 0};
    CHECK_ERR(craft_pad(x4, 1, neg, 0, 0, &out), CRAFT_ESHAPE);
    CHECK_ERR(craft_pad(x4, 1, neg, 2, 0, &out), CRAFT_EINVAL);
    CHECK_ERR(craft_pad(c, 1, pads, 0, 0, &out), CRAFT_ETYPE);
    CHECK_ERR(craft_interpolate(a, 4, 4, 0, 0, &out), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "interpolate") != NULL);
    CHECK_ERR(craft_interpolate(x4, 0, 4, 1, 0, &out), CRAFT_ESHAPE);
    CHECK_ERR(craft_interpolate(x4, 4, 4, 2, 0, &out), CRAFT_EINVAL);
    CHECK_ERR(craft_avg_pool2d(x4, 2, 2, 2, &out), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "avg_pool2d") != NULL);
    CHECK_ERR(craft_avg_pool2d(x4, 5, 1, 0, &out), CRAFT_ESHAPE);
    CHECK_ERR(craft_avg_pool2d(a, 2, 2, 0, &out), CRAFT_ESHAPE);
    /* embedding: out-of-range and negative indices name the index and the row count */
    int64_t iv[3] = {0, 10, 1}, is[1] = {3};
    int64_t ws[2] = {10, 4};
    craft_tensor *w;
    craft_zeros(2, ws, CRAFT_F32, 0, &w);
    craft_from_data(1, is, CRAFT_I64, iv, &i64);
    CHECK_ERR(craft_embedding(w, i64, &out), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "embedding") && strstr(craft_last_error(), "index 10") &&
          strstr(craft_last_error(), "10 rows"));
    craft_tensor_release(i64);
    iv[1] = -1;
    craft_from_data(1, is, CRAFT_I64, iv, &i64);
    CHECK_ERR(craft_embedding(w, i64, &out), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "index -1") != NULL);
    CHECK_ERR(craft_embedding(w, a, &out), CRAFT_ETYPE);
    CHECK_ERR(craft_embedding(a, i64, &out), CRAFT_EINVAL); /* a is [2, 3]: -1 still out of range */
    CHECK_ERR(craft_embedding(x4, i64, &out), CRAFT_ESHAPE);
    CHECK_ERR(craft_timestep_embedding(a, 8, 1, 0, 1, 10000, &out), CRAFT_ESHAPE);
    CHECK_ERR(craft_timestep_embedding(i64, 0, 1, 0, 1, 10000, &out), CRAFT_EINVAL);
    CHECK_ERR(craft_timestep_embedding(i64, 2, 1, 1.0, 1, 10000, &out), CRAFT_EINVAL); /* half - shift = 0 */
    craft_tensor_release(i64);
    craft_tensor *arr[5] = {a, b, c, x4, w};
    for (int k = 0; k < 5; k++) craft_tensor_release(arr[k]);
}

/* Small hand-computed values, independent of the fixtures. */
static void test_small_values(void) {
    float v[4] = {1, 2, 3, 4};
    int64_t s[4] = {1, 1, 2, 2};
    craft_tensor *x, *y;
    craft_from_data(4, s, CRAFT_F32, v, &x);
    int64_t pads[2] = {2, 1};
    CHECK_ERR(craft_pad(x, 1, pads, 1, 0, &y), CRAFT_ESHAPE); /* reflect by 2 needs a dim larger than 2 */
    float o[10];
    int64_t p2[2] = {1, 1};
    CHECK_OK(craft_pad(x, 1, p2, 1, 0, &y));
    craft_tensor_read(y, CRAFT_F32, o, 8 * sizeof(float));
    float want[8] = {2, 1, 2, 1, 4, 3, 4, 3};
    CHECK(memcmp(o, want, sizeof want) == 0);
    craft_tensor_release(y);
    CHECK_OK(craft_avg_pool2d(x, 2, 2, 1, &y)); /* corners: each window sees one element, divisor 4 */
    CHECK(y->shape[2] == 2 && y->shape[3] == 2);
    craft_tensor_read(y, CRAFT_F32, o, 4 * sizeof(float));
    CHECK(o[0] == 0.25f && o[1] == 0.5f && o[2] == 0.75f && o[3] == 1.0f);
    craft_tensor_release(y);
    CHECK_OK(craft_interpolate(x, 3, 3, 1, 1, &y)); /* align_corners: centre is the mean */
    craft_tensor_read(y, CRAFT_F32, o, 9 * sizeof(float));
    CHECK(o[0] == 1 && o[2] == 2 && o[4] == 2.5f && o[8] == 4);
    craft_tensor_release(y);
    craft_tensor_release(x);
}

int main(void) {
    craft_set_num_threads(2);
    RUN(test_concat_pad_vs_torch);
    RUN(test_resize_vs_torch);
    RUN(test_embed_vs_torch);
    RUN(test_timestep_structure);
    RUN(test_gradchecks);
    RUN(test_threaded_paths);
    RUN(test_errors);
    RUN(test_small_values);
    return CHECK_SUMMARY();
}
