/* test_cl_nn.c: norms, softmax, attention and losses on an OpenCL device against the CPU ops,
 * in one process. Every op runs on the same inputs on the CPU and on cl:0; the forward output
 * and the gradient of every input (upstream gradient: a random weighting of the output, so
 * that no gradient is uniform) must agree as max |cl - cpu| <= atol + rtol |cpu|:
 *   rtol 1e-5: softmax / log_softmax, l2_normalize, cosine_similarity, cross_entropy, mse_loss
 *              (atol 1e-6 forward, 1e-5 gradients), group_norm / layer_norm (atol 1e-5: their
 *              input gradients are sums of cancelling terms);
 *   rtol 1e-4, atol 1e-5: sdpa (CLBlast's summation order).
 * Shapes are odd on purpose: rows that are not powers of two and longer than a work-group,
 * columns (a reduced dim that is not the last), strided views, groups, broadcast batch dims,
 * masks (on the CPU or the device), causal masking, many score chunks, reductions, label
 * smoothing, clamped norms. Without an OpenCL platform or device it prints a "skip" line and
 * counts nothing. */
#include "check.h"
#include "cl/cl_internal.h"
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */

#include "cl_check.h"

/* same shape, every |d - c| <= atol + rtol |c| (NaN matches NaN), dev on device `where` */
static void compare_on(const char *what, const craft_tensor *cpu, const craft_tensor *dev, double rtol,
                       double atol, int where) {
    compare_cl(what, cpu, dev, rtol, atol, where, 1);
}
static void compare(const char *what, const craft_tensor *cpu, const craft_tensor *dev, double rtol,
                    double atol) {
    compare_on(what, cpu, dev, rtol, atol, DEV);
}

/* ------------------------------------------------------------ op harness -- */
/* An op over up to 4 inputs (NULL allowed) with its scalar arguments in ctx. */
typedef int (*op_fn)(craft_tensor **in, const void *ctx, craft_tensor **out);

enum { GRAD = 1, KEEP_CPU = 2 }; /* per input: wants a gradient; stays on the CPU in the cl run */

typedef struct {
    double rtol, atol, grtol, gatol;
} tols;
static const tols T_NORM = {1e-5, 1e-6, 1e-5, 1e-5}, T_ATTN = {1e-4, 1e-5, 1e-4, 1e-5};

/* Runs f on the CPU inputs and on their device copies; compares outputs and every gradient. */
static void check_op(const char *what, op_fn f, const void *ctx, int nin, craft_tensor **in, const int *flags,
                     tols t) {
    craft_tensor *cin[4] = {NULL}, *din[4] = {NULL}, *cy = NULL, *dy = NULL;
    for (int i = 0; i < nin; i++) {
        if (!in[i]) continue;
        CHECK_OK(craft_detach(in[i], &cin[i]));
        din[i] = (flags[i] & KEEP_CPU) ? craft_tensor_retain(cin[i]) : on_dev(in[i]);
        if (flags[i] & GRAD) {
            if (flags[i] & KEEP_CPU) { /* its own leaf, so that the two runs' gradients stay apart */
                craft_tensor_release(din[i]);
                CHECK_OK(craft_detach(in[i], &din[i]));
            }
            craft_set_requires_grad(cin[i], 1);
            craft_set_requires_grad(din[i], 1);
        }
    }
    char msg[160];
    int rc1 = f(cin, ctx, &cy), rc2 = f(din, ctx, &dy);
    CHECK_MSG(rc1 == CRAFT_OK && rc2 == CRAFT_OK, "%s: cpu %d, cl %d: %s", what, rc1, rc2,
              craft_last_error());
    if (rc1 || rc2) goto done;
    snprintf(msg, sizeof msg, "%s forward", what);
    compare(msg, cy, dy, t.rtol, t.atol);
    int any = 0;
    for (int i = 0; i < nin; i++) any |= in[i] && (flags[i] & GRAD);
    if (any) {
        craft_tensor *w = cpu_uniform(cy->ndim, cy->shape, 777, -1.0f, 1.0f), *wd = on_dev(w), *pc = NULL,
                     *pd = NULL, *sc = NULL, *sd = NULL;
        CHECK_OK(craft_binary(CRAFT_MUL, cy, w, &pc));
        CHECK_OK(craft_binary(CRAFT_MUL, dy, wd, &pd));
        CHECK_OK(craft_sum(pc, 0, NULL, 0, &sc));
        CHECK_OK(craft_sum(pd, 0, NULL, 0, &sd));
        CHECK_OK(craft_backward(sc, NULL, 0));
        CHECK_OK(craft_backward(sd, NULL, 0));
        for (int i = 0; i < nin; i++) {
            if (!(flags[i] & GRAD) || !in[i]) continue;
            snprintf(msg, sizeof msg, "%s grad %d", what, i);
            compare_on(msg, cin[i]->grad, din[i]->grad, t.grtol, t.gatol, (flags[i] & KEEP_CPU) ? 0 : DEV);
        }
        release(6, w, wd, pc, pd, sc, sd);
    }
done:
    for (int i = 0; i < nin; i++) release(2, cin[i], din[i]);
    release(2, cy, dy);
}

/* ---------------------------------------------------------------- softmax -- */
typedef struct {
    int dim, log;
} smx_ctx;
static int run_smx(craft_tensor **in, const void *c, craft_tensor **out) {
    const smx_ctx *s = c;
    return s->log ? craft_log_softmax(in[0], s->dim, out) : craft_softmax(in[0], s->dim, out);
}

static void test_softmax(void) {
    static const struct {
        int nd;
        int64_t shape[3];
        int dim;
    } cases[] = {
        {2, {7, 33}, -1},    /* short rows */
        {2, {3, 300}, 1},    /* a row longer than a work-group */
        {3, {4, 5, 6}, 1},   /* columns */
        {3, {5, 3, 7}, 0},   /* columns, outer 1 */
        {3, {2, 700, 3}, 1}, /* long columns */
        {1, {1}, 0},
    };
    int flags[1] = {GRAD};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int lg = 0; lg < 2; lg++) {
            craft_tensor *x = cpu_uniform(cases[c].nd, cases[c].shape, 10 + c, -6.0f, 6.0f);
            smx_ctx ctx = {cases[c].dim, lg};
            char what[64];
            snprintf(what, sizeof what, "%s %s dim %d", lg ? "log_softmax" : "softmax", craft_shape_str(x),
                     cases[c].dim);
            check_op(what, run_smx, &ctx, 1, &x, flags, T_NORM);
            craft_tensor_release(x);
        }
    /* a transposed (strided) input; a row of -inf gives NaN as on the CPU, a large row no overflow */
    int64_t s[2] = {9, 40};
    craft_tensor *x = cpu_uniform(2, s, 3, -50.0f, 80.0f), *xt;
    CHECK_OK(craft_transpose(x, 0, 1, &xt));
    smx_ctx ctx = {-1, 0};
    check_op("softmax of a transposed view", run_smx, &ctx, 1, &xt, flags, T_NORM);
    ctx.log = 1;
    /* log_softmax = x - (m + log s): its error is absolute, an ulp of the largest |x| (80 here) */
    tols big = {1e-5, 2e-5, 1e-5, 1e-5};
    check_op("log_softmax of a transposed view", run_smx, &ctx, 1, &xt, flags, big);
    for (int j = 0; j < 40; j++) CHECK_OK(craft_set(x, (int64_t[]){2, j}, -INFINITY));
    int nograd[1] = {0};
    check_op("softmax with a -inf row", run_smx, &ctx, 1, &x, nograd, T_NORM);
    craft_tensor *dx = on_dev(x), *y;
    CHECK_OK(craft_softmax(dx, 1, &y));
    double v;
    CHECK_OK(craft_get(y, (int64_t[]){2, 5}, &v));
    CHECK(v != v);
    release(4, x, xt, dx, y);
}

/* ------------------------------------------------------------------ norms -- */
typedef struct {
    int groups;
    double eps;
} norm_ctx;
static int run_gn(craft_tensor **in, const void *c, craft_tensor **out) {
    const norm_ctx *n = c;
    return craft_group_norm(in[0], n->groups, in[1], in[2], n->eps, out);
}
static int run_ln(craft_tensor **in, const void *c, craft_tensor **out) {
    const norm_ctx *n = c;
    return craft_layer_norm(in[0], n->groups, in[1], in[2], n->eps, out);
}

static void test_norms(void) {
    static const struct {
        int nd;
        int64_t shape[4];
        int groups, affine;
    } gn[] = {
        {4, {2, 6, 5, 7}, 3, 3},   /* weight and bias */
        {3, {3, 8, 17}, 8, 3},     /* one channel per group */
        {3, {2, 5, 9}, 1, 1},      /* one group, weight only */
        {4, {2, 4, 20, 20}, 2, 3}, /* rows of 800 > a work-group */
        {4, {2, 6, 3, 3}, 2, 0},   /* no affine */
        {2, {4, 6}, 2, 2},         /* no spatial dims, bias only */
    };
    for (size_t c = 0; c < sizeof gn / sizeof gn[0]; c++) {
        int64_t C = gn[c].shape[1];
        craft_tensor *in[3] = {cpu_uniform(gn[c].nd, gn[c].shape, 20 + c, -3.0f, 5.0f),
                               (gn[c].affine & 1) ? cpu_uniform(1, &C, 30 + c, 0.5f, 1.5f) : NULL,
                               (gn[c].affine & 2) ? cpu_uniform(1, &C, 40 + c, -1.0f, 1.0f) : NULL};
        int flags[3] = {GRAD, GRAD, GRAD};
        norm_ctx ctx = {gn[c].groups, 1e-5};
        char what[64];
        snprintf(what, sizeof what, "group_norm %s G %d", craft_shape_str(in[0]), gn[c].groups);
        check_op(what, run_gn, &ctx, 3, in, flags, T_NORM);
        release(3, in[0], in[1], in[2]);
    }
    static const struct {
        int nd;
        int64_t shape[4];
        int nnorm, affine;
    } ln[] = {
        {2, {6, 37}, 1, 3},      {3, {3, 4, 300}, 1, 3}, /* rows longer than a work-group */
        {4, {2, 3, 5, 7}, 2, 3},                         /* two normalised dims */
        {2, {5, 19}, 1, 0},      {2, {70, 3}, 1, 1},     /* many short rows, weight only */
        {3, {2, 3, 33}, 3, 2},                           /* everything one row, bias only */
    };
    for (size_t c = 0; c < sizeof ln / sizeof ln[0]; c++) {
        const int64_t *ns = ln[c].shape + ln[c].nd - ln[c].nnorm;
        craft_tensor *in[3] = {cpu_uniform(ln[c].nd, ln[c].shape, 50 + c, -2.0f, 4.0f),
                               (ln[c].affine & 1) ? cpu_uniform(ln[c].nnorm, ns, 60 + c, 0.5f, 1.5f) : NULL,
                               (ln[c].affine & 2) ? cpu_uniform(ln[c].nnorm, ns, 70 + c, -1.0f, 1.0f) : NULL};
        int flags[3] = {GRAD, GRAD, GRAD};
        norm_ctx ctx = {ln[c].nnorm, 1e-5};
        char what[64];
        snprintf(what, sizeof what, "layer_norm %s last %d", craft_shape_str(in[0]), ln[c].nnorm);
        check_op(what, run_ln, &ctx, 3, in, flags, T_NORM);
        release(3, in[0], in[1], in[2]);
    }
    /* a strided input, only the weight wanting a gradient */
    int64_t s[3] = {4, 3, 10}, C = 3;
    craft_tensor *x = cpu_uniform(3, s, 80, -1.0f, 1.0f), *xt, *w = cpu_uniform(1, &C, 81, 0.5f, 2.0f);
    CHECK_OK(craft_transpose(x, 0, 2, &xt)); /* [10, 3, 4] */
    craft_tensor *in[3] = {xt, w, NULL};
    int flags[3] = {0, GRAD, 0};
    norm_ctx ctx = {3, 1e-6};
    check_op("group_norm of a transposed view", run_gn, &ctx, 3, in, flags, T_NORM);
    /* parameters must be on the input's device */
    craft_tensor *dx = on_dev(x), *y = NULL;
    CHECK_ERR(craft_group_norm(dx, 3, w, NULL, 1e-5, &y), CRAFT_EDEVICE);
    CHECK(strstr(craft_last_error(), "weight") != NULL);
    craft_tensor *dw = on_dev(w);
    CHECK_ERR(craft_group_norm(x, 3, dw, NULL, 1e-5, &y), CRAFT_EDEVICE);
    CHECK_ERR(craft_group_norm(dx, 2, NULL, NULL, 1e-5, &y), CRAFT_ESHAPE);
    CHECK_ERR(craft_layer_norm(dx, 4, NULL, NULL, 1e-5, &y), CRAFT_ESHAPE);
    release(5, x, xt, w, dx, dw);
}

/* -------------------------------------------------------------- attention -- */
typedef struct {
    double scale;
    int causal;
} attn_ctx;
static int run_sdpa(craft_tensor **in, const void *c, craft_tensor **out) {
    const attn_ctx *a = c;
    return craft_sdpa(in[0], in[1], in[2], in[3], a->scale, a->causal, out);
}

static void attn_case(const char *what, int nq, const int64_t *sq, int nk, const int64_t *sk, int nv,
                      const int64_t *sv, int nm, const int64_t *sm, int mask_cpu, double scale, int causal,
                      uint64_t seed) {
    craft_tensor *in[4] = {cpu_uniform(nq, sq, seed, -1.5f, 1.5f), cpu_uniform(nk, sk, seed + 1, -1.5f, 1.5f),
                           cpu_uniform(nv, sv, seed + 2, -1.0f, 1.0f),
                           nm ? cpu_uniform(nm, sm, seed + 3, -2.0f, 1.0f) : NULL};
    if (in[3]) { /* some keys hidden outright (never a whole row) */
        float *m = read_all(in[3]);
        for (int64_t i = 0; m && i < in[3]->numel; i += 5)
            if (i % sm[nm - 1]) m[i] = -INFINITY;
        craft_tensor_write(in[3], CRAFT_F32, m, (size_t)in[3]->numel * sizeof(float));
        free(m);
    }
    int flags[4] = {GRAD, GRAD, GRAD, mask_cpu ? KEEP_CPU : 0};
    attn_ctx ctx = {scale, causal};
    check_op(what, run_sdpa, &ctx, 4, in, flags, T_ATTN);
    release(4, in[0], in[1], in[2], in[3]);
}

/* Flash attention's tile edges: with 2 query rows per work-group and 16-key tiles, shapes
 * that are no multiple of either cross many edges; then the device's own tiles (up to 64 keys)
 * on long key runs, one key, SD-like head dims, a row hidden entirely (NaN, as the CPU), and an
 * output head dim above the kernel's 256 (the GEMM path serves it). */
static void test_flash_tiles(void) {
    int64_t q[4] = {2, 3, 17, 8}, k[4] = {2, 3, 23, 8}, v[4] = {2, 3, 23, 5}, m4[4] = {2, 1, 17, 23};
    int64_t c[4] = {2, 2, 19, 6}, qw[3] = {3, 29, 8}, kw[3] = {3, 13, 8}, mc[1] = {19};
    craft_cl_flash_set_tiles(2, 16);
    attn_case("flash 2x16 tiles", 4, q, 4, k, 4, v, 0, NULL, 0, 0, 0, 700);
    attn_case("flash 2x16 tiles, per-batch mask", 4, q, 4, k, 4, v, 4, m4, 0, 0, 0, 701);
    attn_case("flash 2x16 tiles, causal", 4, c, 4, c, 4, c, 0, NULL, 0, 0.3, 1, 702);
    attn_case("flash 2x16 tiles, causal Lq > Lk", 3, qw, 3, kw, 3, kw, 0, NULL, 0, 0, 1, 703);
    attn_case("flash 2x16 tiles, causal + column mask", 4, c, 4, c, 4, c, 1, mc, 0, 0, 1, 704);
    int64_t ql[3] = {2, 37, 8}, kl[3] = {2, 70, 8}, vl[3] = {2, 70, 3};
    craft_cl_flash_set_tiles(1, 16);
    attn_case("flash 1x16 tiles, causal Lk > Lq", 3, ql, 3, kl, 3, vl, 0, NULL, 0, 0, 1, 705);
    craft_cl_flash_set_tiles(0, 0);
    int64_t q1[3] = {2, 9, 4}, k1[3] = {2, 1, 4}, v1[3] = {2, 1, 6}, m1[3] = {2, 9, 1};
    attn_case("flash one key", 3, q1, 3, k1, 3, v1, 0, NULL, 0, 0, 0, 710);
    attn_case("flash one key, causal, mask", 3, q1, 3, k1, 3, v1, 3, m1, 0, 0, 1, 711);
    int64_t qL[3] = {2, 33, 16}, kL[3] = {2, 333, 16}, vL[3] = {2, 333, 19}, mL[2] = {33, 333};
    attn_case("flash long Lk", 3, qL, 3, kL, 3, vL, 2, mL, 0, 0, 0, 712);
    attn_case("flash long Lk, causal", 3, kL, 3, kL, 3, vL, 0, NULL, 0, 0, 1, 713);
    int64_t qs[4] = {1, 2, 70, 40}, ks[4] = {1, 2, 77, 40};
    attn_case("flash head dim 40", 4, qs, 4, ks, 4, ks, 0, NULL, 0, 0, 0, 714);
    int64_t qv[3] = {1, 5, 4}, kv[3] = {1, 7, 4}, vv[3] = {1, 7, 300};
    attn_case("sdpa Dv 300 (GEMM path)", 3, qv, 3, kv, 3, vv, 0, NULL, 0, 0, 0, 715);
    /* a row whose every key is hidden: NaN output (and gradients), as on the CPU */
    int64_t mh[2] = {5, 7};
    craft_tensor *in[4] = {cpu_uniform(3, qv, 720, -1, 1), cpu_uniform(3, kv, 721, -1, 1),
                           cpu_uniform(3, kv, 722, -1, 1), cpu_uniform(2, mh, 723, -1, 0)};
    float *m = read_all(in[3]);
    for (int j = 0; m && j < 7; j++) m[2 * 7 + j] = -INFINITY;
    craft_tensor_write(in[3], CRAFT_F32, m, 35 * sizeof(float));
    free(m);
    int flags[4] = {GRAD, GRAD, GRAD, 0};
    attn_ctx ctx = {0, 0};
    check_op("flash hidden row", run_sdpa, &ctx, 4, in, flags, T_ATTN);
    craft_tensor *dq = on_dev(in[0]), *dk = on_dev(in[1]), *dv = on_dev(in[2]), *dm = on_dev(in[3]), *y = NULL;
    float out[20];
    CHECK_OK(craft_sdpa(dq, dk, dv, dm, 0, 0, &y));
    if (y) {
        CHECK_OK(craft_tensor_read(y, CRAFT_F32, out, sizeof out));
        CHECK(isfinite(out[0]) && isfinite(out[19])); /* rows 0 and 4 finite, row 2 NaN */
        CHECK(isnan(out[8]) && isnan(out[11]));
    }
    /* the forward is one kernel launch: no score matrix, no GEMMs */
    int64_t before = 0, after = 0;
    craft_tensor *y2 = NULL;
    CHECK_OK(craft_cl_launch_count(DEV, &before));
    CHECK_OK(craft_sdpa(dq, dk, dv, dm, 0, 0, &y2));
    CHECK_OK(craft_cl_launch_count(DEV, &after));
    CHECK(after - before == 1);
    /* the backward: Di (row_dot), then one kernel for dK and dV and one for dQ, where the GEMM
     * path launches row_dot, 5 GEMMs and 2 row kernels per chunk (the rest, the same in both, is
     * the leaves' gradients) */
    int64_t gs[3] = {1, 5, 4}, n[2] = {0, 0};
    craft_tensor *gq = cpu_uniform(3, gs, 730, -1, 1), *gd = on_dev(gq);
    craft_tensor *lv[3] = {on_dev(in[0]), on_dev(in[1]), on_dev(in[2])};
    for (int i = 0; i < 3; i++) craft_set_requires_grad(lv[i], 1);
    for (int algo = 0; algo < 2; algo++) {
        craft_tensor *y3 = NULL;
        craft_cl_sdpa_set_algo(algo);
        CHECK_OK(craft_sdpa(lv[0], lv[1], lv[2], NULL, 0, 1, &y3));
        CHECK_OK(craft_cl_launch_count(DEV, &before));
        if (y3) CHECK_OK(craft_backward(y3, gd, 0));
        CHECK_OK(craft_cl_launch_count(DEV, &after));
        n[algo] = after - before;
        craft_tensor_release(y3);
    }
    CHECK(n[0] - n[1] == 5);
    release(5, gq, gd, lv[0], lv[1], lv[2]);
    release(4, in[0], in[1], in[2], in[3]);
    release(6, dq, dk, dv, dm, y, y2);
}

static void test_attention(void) {
    int64_t q[4] = {2, 3, 17, 8}, k[4] = {2, 3, 23, 8}, v[4] = {2, 3, 23, 5};
    attn_case("sdpa heads, Lq != Lk", 4, q, 4, k, 4, v, 0, NULL, 0, 0, 0, 100);
    int64_t c[4] = {2, 2, 19, 6};
    attn_case("sdpa causal", 4, c, 4, c, 4, c, 0, NULL, 0, 0.3, 1, 110);
    int64_t qw[3] = {3, 29, 8}, kw[3] = {3, 13, 8};
    attn_case("sdpa causal, Lq > Lk", 3, qw, 3, kw, 3, kw, 0, NULL, 0, 0, 1, 115);
    int64_t m2[2] = {17, 23};
    attn_case("sdpa 2-d mask on the device", 4, q, 4, k, 4, v, 2, m2, 0, 0, 0, 120);
    int64_t m4[4] = {2, 1, 17, 23};
    attn_case("sdpa per-batch mask on the CPU", 4, q, 4, k, 4, v, 4, m4, 1, 0, 0, 130);
    int64_t mc[1] = {19};
    attn_case("sdpa causal with a column mask", 4, c, 4, c, 4, c, 1, mc, 0, 0, 1, 135);
    int64_t qb[4] = {2, 4, 9, 8}, kb[2] = {13, 8}, vb[4] = {1, 4, 13, 7};
    attn_case("sdpa broadcast k and v", 4, qb, 2, kb, 4, vb, 0, NULL, 0, 0, 0, 140);
    /* the GEMM path (the fallback of the flash kernel), in many chunks: a tiny score budget
     * splits both the matrices and their query rows */
    craft_cl_sdpa_set_algo(0);
    attn_case("sdpa heads, GEMM path", 4, q, 4, k, 4, v, 0, NULL, 0, 0, 0, 100);
    craft_cl_sdpa_set_chunk_bytes(1024);
    attn_case("sdpa in chunks", 4, q, 4, k, 4, v, 4, m4, 0, 0, 0, 150);
    attn_case("sdpa causal in chunks", 4, c, 4, c, 4, c, 0, NULL, 0, 0, 1, 160);
    craft_cl_sdpa_set_chunk_bytes(0);
    craft_cl_sdpa_set_algo(1);
    /* a transposed q (column stride != 1) is copied for CLBlast */
    int64_t qt[4] = {2, 3, 8, 17};
    craft_tensor *qq = cpu_uniform(4, qt, 170, -1, 1), *qv, *kk = cpu_uniform(4, k, 171, -1, 1),
                 *vv = cpu_uniform(4, v, 172, -1, 1);
    CHECK_OK(craft_transpose(qq, -1, -2, &qv));
    craft_tensor *in[4] = {qv, kk, vv, NULL};
    int flags[4] = {GRAD, 0, GRAD, 0};
    attn_ctx ctx = {0, 0};
    check_op("sdpa transposed q, no k grad", run_sdpa, &ctx, 4, in, flags, T_ATTN);
    /* q, k and v on one device */
    craft_tensor *dq = on_dev(qv), *y = NULL;
    CHECK_ERR(craft_sdpa(dq, kk, vv, NULL, 0, 0, &y), CRAFT_EDEVICE);
    release(5, qq, qv, kk, vv, dq);
}

/* ----------------------------------------------------------------- losses -- */
typedef struct {
    int dim, reduction;
    double eps;
} loss_ctx;
static int run_l2n(craft_tensor **in, const void *c, craft_tensor **out) {
    const loss_ctx *l = c;
    return craft_l2_normalize(in[0], l->dim, l->eps, out);
}
static int run_cos(craft_tensor **in, const void *c, craft_tensor **out) {
    const loss_ctx *l = c;
    return craft_cosine_similarity(in[0], in[1], l->dim, l->eps, out);
}
static int run_mse(craft_tensor **in, const void *c, craft_tensor **out) {
    return craft_mse_loss(in[0], in[1], ((const loss_ctx *)c)->reduction, out);
}
static int run_ce(craft_tensor **in, const void *c, craft_tensor **out) {
    const loss_ctx *l = c;
    return craft_cross_entropy(in[0], in[1], l->reduction, l->eps, out);
}

static void test_l2_cos(void) {
    int64_t s1[2] = {6, 300}, s2[3] = {4, 5, 6};
    int flags[2] = {GRAD, GRAD};
    craft_tensor *x = cpu_uniform(2, s1, 200, -1, 1), *x3 = cpu_uniform(3, s2, 201, -1, 1);
    for (int c = 0; c < 6; c++) CHECK_OK(craft_set(x, (int64_t[]){4, c * 50}, 0.0));
    loss_ctx l = {-1, 0, 1e-12};
    check_op("l2_normalize rows", run_l2n, &l, 1, &x, flags, T_NORM);
    l.dim = 1;
    check_op("l2_normalize columns", run_l2n, &l, 1, &x3, flags, T_NORM);
    /* a zero row: the eps clamp is active, no norm gradient */
    int64_t sz[2] = {3, 10};
    craft_tensor *z;
    CHECK_OK(craft_zeros(2, sz, CRAFT_F32, 0, &z));
    CHECK_OK(craft_set(z, (int64_t[]){1, 3}, 1e-14));
    l.dim = 1;
    l.eps = 1e-12;
    check_op("l2_normalize clamped", run_l2n, &l, 1, &z, flags, T_NORM);
    /* cosine_similarity: rows, columns, broadcasting, a CPU operand, a clamped norm */
    craft_tensor *y = cpu_uniform(2, s1, 202, -1, 1), *y3 = cpu_uniform(3, s2, 203, -1, 1);
    craft_tensor *in[2] = {x, y};
    l.dim = 1;
    l.eps = 1e-8;
    check_op("cosine_similarity rows", run_cos, &l, 2, in, flags, T_NORM);
    in[0] = x3;
    in[1] = y3;
    l.dim = 0;
    check_op("cosine_similarity dim 0", run_cos, &l, 2, in, flags, T_NORM);
    int64_t sa[3] = {4, 1, 16}, sb[2] = {3, 16};
    craft_tensor *a = cpu_uniform(3, sa, 204, -1, 1), *b = cpu_uniform(2, sb, 205, -1, 1);
    in[0] = a;
    in[1] = b;
    l.dim = -1;
    check_op("cosine_similarity broadcast", run_cos, &l, 2, in, flags, T_NORM);
    int mixed[2] = {GRAD, GRAD | KEEP_CPU};
    check_op("cosine_similarity with a CPU operand", run_cos, &l, 2, in, mixed, T_NORM);
    in[0] = z;
    in[1] = x3;
    int64_t s310[2] = {3, 10};
    craft_tensor *w = cpu_uniform(2, s310, 206, -1, 1);
    in[1] = w;
    check_op("cosine_similarity clamped", run_cos, &l, 2, in, flags, T_NORM);
    release(8, x, x3, z, y, y3, a, b, w);
}

static void test_mse(void) {
    int64_t s[2] = {5, 37}, s1 = 37;
    craft_tensor *a = cpu_uniform(2, s, 300, -2, 2), *b = cpu_uniform(2, s, 301, -2, 2),
                 *bb = cpu_uniform(1, &s1, 302, -2, 2);
    int flags[2] = {GRAD, GRAD};
    for (int r = 0; r < 3; r++) {
        loss_ctx l = {0, r, 0};
        char what[64];
        craft_tensor *in[2] = {a, b};
        snprintf(what, sizeof what, "mse_loss reduction %d", r);
        check_op(what, run_mse, &l, 2, in, flags, T_NORM);
        in[1] = bb;
        snprintf(what, sizeof what, "mse_loss broadcast, reduction %d", r);
        check_op(what, run_mse, &l, 2, in, flags, T_NORM);
    }
    loss_ctx l = {0, 1, 0};
    craft_tensor *in[2] = {a, b};
    int mixed[2] = {GRAD | KEEP_CPU, GRAD};
    check_op("mse_loss with a CPU input", run_mse, &l, 2, in, mixed, T_NORM);
    int one[2] = {GRAD, 0};
    check_op("mse_loss, only the input's gradient", run_mse, &l, 2, in, one, T_NORM);
    release(3, a, b, bb);
}

static craft_tensor *targets(int nd, const int64_t *shape, int64_t C, uint64_t seed, int dtype) {
    craft_tensor *u = cpu_uniform(nd, shape, seed, 0.0f, (float)C - 0.01f), *t; /* truncation: floor */
    CHECK_OK(craft_to_dtype(u, dtype, &t));
    craft_tensor_release(u);
    return t;
}

static void test_cross_entropy(void) {
    static const struct {
        int nd;
        int64_t shape[4];
    } cases[] = {
        {2, {6, 11}},
        {4, {3, 5, 4, 3}},
        {2, {4, 300}},
        {1, {7}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int nd = cases[c].nd, cdim = nd == 1 ? 0 : 1;
        int64_t C = cases[c].shape[cdim], ts[3];
        int tnd = 0;
        for (int i = 0; i < nd; i++)
            if (i != cdim) ts[tnd++] = cases[c].shape[i];
        craft_tensor *x = cpu_uniform(nd, cases[c].shape, 400 + c, -4, 4),
                     *t = targets(tnd, ts, C, 410 + c, CRAFT_I64);
        for (int r = 0; r < 3; r++)
            for (int sm = 0; sm < 2; sm++) {
                loss_ctx l = {0, r, sm ? 0.1 : 0.0};
                craft_tensor *in[2] = {x, t};
                int flags[2] = {GRAD, (r + sm) % 2 ? KEEP_CPU : 0}; /* targets on either device */
                char what[96];
                snprintf(what, sizeof what, "cross_entropy %s reduction %d smoothing %g", craft_shape_str(x),
                         r, l.eps);
                check_op(what, run_ce, &l, 2, in, flags, T_NORM);
            }
        release(2, x, t);
    }
    /* int32 targets on the device; an out-of-range target is refused before any kernel */
    int64_t s[2] = {5, 9}, n5 = 5;
    craft_tensor *x = cpu_uniform(2, s, 420, -3, 3), *t = targets(1, &n5, 9, 421, CRAFT_I32);
    craft_tensor *in[2] = {x, t};
    int flags[2] = {GRAD, 0};
    loss_ctx l = {0, 1, 0.2};
    check_op("cross_entropy int32 targets", run_ce, &l, 2, in, flags, T_NORM);
    craft_tensor *dx = on_dev(x), *y = NULL;
    CHECK_OK(craft_set(t, (int64_t[]){3}, 9));
    CHECK_ERR(craft_cross_entropy(dx, t, 1, 0, &y), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "out of range") != NULL);
    release(3, x, t, dx);
}

/* empty dims and no keys: the same results (zeros, NaN means) and no launch over nothing */
static void test_empty(void) {
    int flags[4] = {GRAD, GRAD, GRAD, 0};
    int64_t e1[2] = {0, 5}, e2[3] = {3, 0, 4}, e3[3] = {2, 4, 0}, C = 4;
    craft_tensor *a = cpu_uniform(2, e1, 500, -1, 1), *b = cpu_uniform(3, e2, 501, -1, 1),
                 *c = cpu_uniform(3, e3, 502, -1, 1);
    smx_ctx sc = {1, 0};
    check_op("softmax of [0, 5]", run_smx, &sc, 1, &a, flags, T_NORM);
    check_op("softmax over an empty dim", run_smx, &sc, 1, &b, flags, T_NORM);
    craft_tensor *gin[3] = {c, cpu_uniform(1, &C, 503, 0.5f, 1.5f), cpu_uniform(1, &C, 504, -1, 1)};
    norm_ctx nc = {2, 1e-5};
    check_op("group_norm without pixels", run_gn, &nc, 3, gin, flags, T_NORM);
    nc.groups = 1;
    craft_tensor *lin[3] = {a, NULL, NULL};
    check_op("layer_norm of no rows", run_ln, &nc, 3, lin, flags, T_NORM);
    loss_ctx l = {1, 1, 1e-12};
    check_op("l2_normalize over an empty dim", run_l2n, &l, 1, &b, flags, T_NORM);
    craft_tensor *min[2] = {a, a};
    check_op("mse_loss mean of nothing", run_mse, &l, 2, min, flags, T_NORM);
    int64_t q[3] = {2, 3, 4}, k0[3] = {2, 0, 4}, v0[3] = {2, 0, 3}, q0[3] = {2, 0, 4}, k[3] = {2, 5, 4},
            v[3] = {2, 5, 3};
    craft_tensor *ain[4] = {cpu_uniform(3, q, 505, -1, 1), cpu_uniform(3, k0, 506, -1, 1),
                            cpu_uniform(3, v0, 507, -1, 1), NULL};
    attn_ctx ac = {0, 0};
    check_op("sdpa without keys", run_sdpa, &ac, 4, ain, flags, T_ATTN);
    release(3, ain[0], ain[1], ain[2]);
    craft_tensor *bin[4] = {cpu_uniform(3, q0, 508, -1, 1), cpu_uniform(3, k, 509, -1, 1),
                            cpu_uniform(3, v, 510, -1, 1), NULL};
    check_op("sdpa without queries", run_sdpa, &ac, 4, bin, flags, T_ATTN);
    release(3, bin[0], bin[1], bin[2]);
    release(5, a, b, c, gin[1], gin[2]);
}

/* ----------------------------------------------------------- a tiny block -- */
/* layer_norm -> one linear into q | k | v (row-strided slices, used as they are) -> causal sdpa
 * -> linear + residual -> cross_entropy over 16 classes + 0.1 mse; p: ln w, ln b, Wqkv, Wo */
enum { NP = 4 };
static int block_loss(craft_tensor **p, const craft_tensor *x, const craft_tensor *tg, craft_tensor **loss) {
    craft_tensor *h = NULL, *qkv = NULL, *q = NULL, *k = NULL, *v = NULL, *a = NULL, *o = NULL, *r = NULL,
                 *l2 = NULL;
    craft_tensor *ce = NULL, *mse = NULL, *ms = NULL;
    int64_t s2[2] = {16, 16};
    int rc = craft_layer_norm(x, 1, p[0], p[1], 1e-5, &h);
    if (!rc) rc = craft_linear(h, p[2], NULL, &qkv);
    if (!rc) rc = craft_slice(qkv, 2, 0, 16, 1, &q);
    if (!rc) rc = craft_slice(qkv, 2, 16, 32, 1, &k);
    if (!rc) rc = craft_slice(qkv, 2, 32, 48, 1, &v);
    if (!rc) rc = craft_sdpa(q, k, v, NULL, 0, 1, &a);
    if (!rc) rc = craft_linear(a, p[3], NULL, &o);
    if (!rc) rc = craft_binary(CRAFT_ADD, o, x, &r);
    if (!rc) rc = craft_reshape(r, 2, s2, &l2);
    if (!rc) rc = craft_cross_entropy(l2, tg, 1, 0.05, &ce);
    if (!rc) rc = craft_mse_loss(o, x, 1, &mse);
    if (!rc) rc = craft_binary_scalar(CRAFT_MUL, mse, 0.1, 0, &ms);
    if (!rc) rc = craft_binary(CRAFT_ADD, ce, ms, loss);
    release(12, h, qkv, q, k, v, a, o, r, l2, ce, mse, ms);
    return rc;
}

static void test_train_block(void) {
    int64_t shapes[NP][2] = {{16, 0}, {16, 0}, {48, 16}, {16, 16}};
    int nds[NP] = {1, 1, 2, 2};
    craft_tensor *cp[NP], *dp[NP];
    for (int i = 0; i < NP; i++) {
        cp[i] = cpu_uniform(nds[i], shapes[i], 600 + i, i == 0 ? 0.8f : -0.3f, i == 0 ? 1.2f : 0.3f);
        dp[i] = on_dev(cp[i]);
        craft_set_requires_grad(cp[i], 1);
        craft_set_requires_grad(dp[i], 1);
    }
    int64_t xs[3] = {2, 8, 16}, n16 = 16;
    craft_tensor *x = cpu_uniform(3, xs, 610, -1, 1), *tg = targets(1, &n16, 16, 611, CRAFT_I64),
                 *dx = on_dev(x);
    enum { STEPS = 10 };
    /* the targets stay on the CPU for both */
    cl_train_result r = cl_train_pair("attention block", NP, cp, dp, STEPS, 2e-2, block_loss, x, tg, dx, tg);
    CHECK_MSG(r.agree == STEPS, "losses agree to 1e-4 relative at %d of %d steps (worst %.3g)", r.agree,
              STEPS, r.worst);
    CHECK_MSG(r.syncs == 1, "host waits per step: %lld, expected 1 (the loss's item)", (long long)r.syncs);
    CHECK_MSG(r.last < 0.9 * r.first, "the block did not learn: loss %.6g -> %.6g", r.first, r.last);
    fprintf(stderr,
            "  attention block, %d AdamW steps: loss %.6f -> %.6f, worst relative cpu/cl difference %.2g, "
            "host waits per step %lld\n",
            STEPS, r.first, r.last, r.worst, (long long)r.syncs);
    for (int i = 0; i < NP; i++) release(2, cp[i], dp[i]);
    release(3, x, tg, dx);
}

int main(void) {
    int st = cl_test_open("test_cl_nn");
    if (st >= 0) return st;
    RUN(test_softmax);
    RUN(test_norms);
    RUN(test_attention);
    RUN(test_flash_tiles);
    RUN(test_l2_cos);
    RUN(test_mse);
    RUN(test_cross_entropy);
    RUN(test_empty);
    RUN(test_train_block);
    return CHECK_SUMMARY();
}
