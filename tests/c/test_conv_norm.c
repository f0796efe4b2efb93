/* test_conv_norm.c: conv2d, conv_transpose2d, group_norm and layer_norm.
 *  - forward values and gradients against PyTorch 1.13 (tests/fixtures/ops/<case>.bin, made by
 *    tests/fixtures/make_conv_norm_fixtures.py): relative error (max |diff| / max |ref|) at most
 *    1e-4 on outputs and 1e-3 on gradients;
 *  - larger convolutions (Winograd-sized, channel counts that are not multiples of 16, strides,
 *    dilation, groups, transposed) against a double-precision loop reference, also 1e-4 / 1e-3,
 *    over more shapes than the primitive cache holds;
 *  - finite-difference gradient checks (gradcheck.h; per-op tolerances below);
 *  - shape errors: CRAFT_ESHAPE with the shapes in the message, before oneDNN sees them. */
#include "gradcheck.h"
#include "core/internal.h"
#include "cpu/cpu_kernels.h"
#include "fixture.h"

/* max |a - ref| / max |ref| over n elements of a tensor (read densely) */
static double rel_err_data(const craft_tensor *a, const float *ref, int64_t n) {
    if (!a || a->numel != n) return 1e9;
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    craft_tensor_read(a, CRAFT_F32, buf, (size_t)n * sizeof(float));
    double md = 0, mr = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)buf[i] - ref[i]);
        if (d > md || d != d) md = d != d ? 1e9 : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    free(buf);
    return md / mr;
}

static double rel_err(const craft_tensor *a, const fx_tensor *ref) {
    if (!ref || !a || a->ndim != ref->ndim) return 1e9;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != ref->shape[i]) return 1e9;
    return rel_err_data(a, ref->data, ref->numel);
}

enum { K_CONV, K_CONVT, K_GN, K_LN, K_GN_ACT };

static int run_op(int kind, const float *args, craft_tensor *x, craft_tensor *w, craft_tensor *b,
                  craft_tensor **y) {
    int st[2] = {(int)args[0], (int)args[1]}, pd[2] = {(int)args[2], (int)args[3]},
        dl[2] = {(int)args[4], (int)args[5]};
    int op[2] = {(int)args[7], (int)args[8]};
    switch (kind) {
    case K_CONV: return craft_conv2d(x, w, b, st, pd, dl, (int)args[6], y);
    case K_CONVT: return craft_conv_transpose2d(x, w, b, st, pd, op, dl, (int)args[6], y);
    case K_GN: return craft_group_norm(x, (int)args[0], w, b, args[1], y);
    case K_GN_ACT: return craft_group_norm_act(x, (int)args[0], w, b, args[1], (int)args[2], y);
    default: return craft_layer_norm(x, (int)args[0], w, b, args[1], y);
    }
}

static void check_fixture(const char *name, int kind) {
    fx_file f;
    char file[128];
    snprintf(file, sizeof file, "%s.bin", name);
    if (fx_load(file, &f)) {
        CHECK_MSG(0, "cannot read fixture %s/%s (run from the repository root)", fx_dir(), file);
        return;
    }
    craft_tensor *x = fx_craft(fx_find(&f, "x"), 1), *w = fx_craft(fx_find(&f, "w"), 1),
                 *b = fx_craft(fx_find(&f, "b"), 1);
    craft_tensor *gy = fx_craft(fx_find(&f, "gy"), 0), *y = NULL;
    const fx_tensor *args = fx_find(&f, "args");
    CHECK(x && gy && args);
    if (x && gy && args) {
        float a9[9] = {0}; /* norms store 3 arguments, convs 9 */
        memcpy(a9, args->data, (size_t)(args->numel < 9 ? args->numel : 9) * sizeof(float));
        CHECK_OK(run_op(kind, a9, x, w, b, &y));
        double ey = rel_err(y, fx_get(&f, "y"));
        CHECK_MSG(ey <= 1e-4, "%s: output relative error %.3g", name, ey);
        if (y) CHECK_OK(craft_backward(y, gy, 0));
        double ex = rel_err(x->grad, fx_get(&f, "gx"));
        CHECK_MSG(ex <= 1e-3, "%s: input gradient relative error %.3g", name, ex);
        if (w) {
            double e = rel_err(w->grad, fx_get(&f, "gw"));
            CHECK_MSG(e <= 1e-3, "%s: weight gradient relative error %.3g", name, e);
        }
        if (b) {
            double e = rel_err(b->grad, fx_get(&f, "gb"));
            CHECK_MSG(e <= 1e-3, "%s: bias gradient relative error %.3g", name, e);
        }
    }
    craft_tensor_release(x);
    craft_tensor_release(w);
    craft_tensor_release(b);
    craft_tensor_release(gy);
    craft_tensor_release(y);
    fx_free(&f);
}

static void test_fixtures(void) {
    const char *conv[] = {"conv_basic",     "conv_stride2", "conv_dil2_groups2",
                          "conv_depthwise", "conv_1x1",     "conv_wide"};
    const char *convt[] = {"convt_stride2_outpad", "convt_groups2_dil", "convt_4x4_s2"};
    const char *gn[] = {"gn_g3_affine", "gn_g1_plain", "gn_gC_affine", "gn_32of64", "gn_3d_input"};
    const char *ln[] = {"ln_last1_affine", "ln_last2_plain", "ln_last2_affine"};
    for (size_t i = 0; i < sizeof conv / sizeof *conv; i++) check_fixture(conv[i], K_CONV);
    for (size_t i = 0; i < sizeof convt / sizeof *convt; i++) check_fixture(convt[i], K_CONVT);
    for (size_t i = 0; i < sizeof gn / sizeof *gn; i++) check_fixture(gn[i], K_GN);
    for (size_t i = 0; i < sizeof ln / sizeof *ln; i++) check_fixture(ln[i], K_LN);
}

/* ---- double-precision loop reference for a convolution geometry ----
 * conv input cx [n, ci, hi, wi], conv output cy [n, co, ho, wo], weight [co, ci/g, kh, kw].
 * Accumulates: out_cy += conv(in_cx), out_cx += conv^T(in_cy), out_w += in_cy (x) in_cx2. */
typedef struct {
    int n, ci, hi, wi, co, ho, wo, kh, kw, s[2], p[2], d[2], g;
} rgeom;

static void ref_conv(const rgeom *G, const float *w, const float *in_cx, double *out_cy, const float *in_cy,
                     double *out_cx, const float *in_cx2, double *out_w) {
    int cig = G->ci / G->g, cog = G->co / G->g;
    for (int n = 0; n < G->n; n++)
        for (int o = 0; o < G->co; o++)
            for (int oh = 0; oh < G->ho; oh++)
                for (int ow = 0; ow < G->wo; ow++) {
                    int64_t yi = (((int64_t)n * G->co + o) * G->ho + oh) * G->wo + ow;
                    double acc = 0;
                    for (int c = 0; c < cig; c++)
                        for (int a = 0; a < G->kh; a++) {
                            int ih = oh * G->s[0] - G->p[0] + a * G->d[0];
                            if (ih < 0 || ih >= G->hi) continue;
                            for (int bb = 0; bb < G->kw; bb++) {
                                int iw = ow * G->s[1] - G->p[1] + bb * G->d[1];
                                if (iw < 0 || iw >= G->wi) continue;
                                int64_t xi =
                                    (((int64_t)n * G->ci + (o / cog) * cig + c) * G->hi + ih) * G->wi + iw;
                                int64_t wi = (((int64_t)o * cig + c) * G->kh + a) * G->kw + bb;
                                if (in_cx) acc += (double)in_cx[xi] * w[wi];
                                if (in_cy && out_cx) out_cx[xi] += (double)in_cy[yi] * w[wi];
                                if (in_cy && in_cx2) out_w[wi] += (double)in_cy[yi] * in_cx2[xi];
                            }
                        }
                    if (in_cx) out_cy[yi] += acc;
                }
}

static craft_tensor *rand_t(int nd, const int64_t *shape, int rg) {
    craft_tensor *t = gc_rand(nd, shape, -1, 1);
    if (t && !rg) craft_set_requires_grad(t, 0);
    return t;
}

static double rel_err_d(const craft_tensor *a, const double *ref, int64_t n) {
    float *r = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) r[i] = (float)ref[i];
    double e = rel_err_data(a, r, n);
    free(r);
    return e;
}

/* One conv2d (transposed = 0) or conv_transpose2d case against the loop reference. */
static void check_conv_ref(int transposed, int n, int cin, int cout, int h, int w, int k, int s, int p, int d,
                           int g, int op, int bias) {
    rgeom G;
    int64_t xs[4], ws[4], bs[1] = {cout};
    if (!transposed) {
        int ho = (h + 2 * p - d * (k - 1) - 1) / s + 1, wo = (w + 2 * p - d * (k - 1) - 1) / s + 1;
        G = (rgeom){n, cin, h, w, cout, ho, wo, k, k, {s, s}, {p, p}, {d, d}, g};
        int64_t a[4] = {n, cin, h, w}, b[4] = {cout, cin / g, k, k};
        memcpy(xs, a, sizeof a);
        memcpy(ws, b, sizeof b);
    } else { /* conv geometry: its input is our output */
        int ho = (h - 1) * s - 2 * p + d * (k - 1) + op + 1, wo = (w - 1) * s - 2 * p + d * (k - 1) + op + 1;
        G = (rgeom){n, cout, ho, wo, cin, h, w, k, k, {s, s}, {p, p}, {d, d}, g};
        int64_t a[4] = {n, cin, h, w}, b[4] = {cin, cout / g, k, k};
        memcpy(xs, a, sizeof a);
        memcpy(ws, b, sizeof b);
    }
    craft_tensor *x = rand_t(4, xs, 1), *wt = rand_t(4, ws, 1), *b = bias ? rand_t(1, bs, 1) : NULL,
                 *y = NULL, *gy = NULL;
    int st[2] = {s, s}, pd[2] = {p, p}, dl[2] = {d, d}, opd[2] = {op, op};
    int rc = transposed ? craft_conv_transpose2d(x, wt, b, st, pd, opd, dl, g, &y)
                        : craft_conv2d(x, wt, b, st, pd, dl, g, &y);
    CHECK_MSG(rc == CRAFT_OK, "conv ref case t%d n%d %d->%d %dx%d k%d s%d p%d d%d g%d: %s", transposed, n,
              cin, cout, h, w, k, s, p, d, g, craft_last_error());
    if (rc) goto done;
    gy = rand_t(y->ndim, y->shape, 0);
    CHECK_OK(craft_backward(y, gy, 0));
    int64_t ny = y->numel, nx = x->numel, nw = wt->numel;
    double *ry = calloc((size_t)ny, sizeof(double)), *rgx = calloc((size_t)nx, sizeof(double)),
           *rgw = calloc((size_t)nw, sizeof(double));
    double *rgb = calloc((size_t)cout, sizeof(double));
    const float *xp = craft_tensor_data(x), *wp = craft_tensor_data(wt), *gp = craft_tensor_data(gy);
    if (!transposed) ref_conv(&G, wp, xp, ry, gp, rgx, xp, rgw);
    else {
        ref_conv(&G, wp, NULL, NULL, xp, ry, NULL, NULL); /* y = conv^T(x) */
        ref_conv(&G, wp, gp, rgx, xp, NULL, gp, rgw);     /* gx = conv(gy), gw from (x, gy) */
    }
    int64_t sp = ny / ((int64_t)n * cout);
    for (int64_t i = 0; i < ny; i++) {
        int c = (int)((i / sp) % cout);
        if (b) ry[i] += ((const float *)craft_tensor_data(b))[c];
        rgb[c] += gp[i];
    }
    double ey = rel_err_d(y, ry, ny), ex = rel_err_d(x->grad, rgx, nx), ew = rel_err_d(wt->grad, rgw, nw),
           eb = b ? rel_err_d(b->grad, rgb, cout) : 0;
    CHECK_MSG(ey <= 1e-4 && ex <= 1e-3 && ew <= 1e-3 && eb <= 1e-3,
              "conv ref case t%d n%d %d->%d %dx%d k%d s%d p%d d%d g%d: errors y %.2g gx %.2g gw %.2g gb %.2g",
              transposed, n, cin, cout, h, w, k, s, p, d, g, ey, ex, ew, eb);
    free(ry);
    free(rgx);
    free(rgw);
    free(rgb);
done:
    craft_tensor_release(x);
    craft_tensor_release(wt);
    craft_tensor_release(b);
    craft_tensor_release(y);
    craft_tensor_release(gy);
}

/* conv dims of a 3x3 stride-1 convolution with padding p (cpu_conv_fwd_in_bands' input) */
static craft_conv_dims dims3x3(int n, int cin, int cout, int h, int w, int p) {
    craft_conv_dims cd = {n, cin, h, w, cout, h + 2 * p - 2, w + 2 * p - 2, 3, 3, 1, 1, 1, p, p, 1, 1, 0, 0};
    return cd;
}

/* Whether the whole-image fp32 Winograd forward of that convolution fits the scratchpad cap */
static int whole_winograd_fits(int n, int cin, int cout, int h, int w, int p) {
    craft_conv_dims cd = dims3x3(n, cin, cout, h, w, p);
    int64_t xs[4] = {n, cin, h, w}, ws[4] = {cout, cin, 3, 3};
    craft_tensor *x = NULL, *wt = NULL;
    CHECK_OK(craft_empty(4, xs, CRAFT_F32, 0, &x));
    CHECK_OK(craft_empty(4, ws, CRAFT_F32, 0, &wt));
    int fits = x && wt && cpu_conv_fwd_whole_winograd(&cd, 1, x, wt);
    craft_tensor_release(x);
    craft_tensor_release(wt);
    return fits;
}

/* The forward in bands of hb rows (nb bands) equals the whole-image forward: the bands' halos,
 * their zero padding only at the image's top and bottom, the shorter last band. */
static void check_bands(int n, int cin, int cout, int h, int w, int p, int64_t hb, int64_t nb) {
    craft_conv_dims cd = dims3x3(n, cin, cout, h, w, p);
    int64_t xs[4] = {n, cin, h, w}, ws[4] = {cout, cin, 3, 3}, bs[1] = {cout}, ys[4] = {n, cout, cd.oh, cd.ow};
    craft_tensor *x = rand_t(4, xs, 1), *wt = rand_t(4, ws, 1), *b = rand_t(1, bs, 1), *y = NULL, *yb = NULL;
    CHECK_OK(craft_empty(4, ys, CRAFT_F32, 0, &y));
    CHECK_OK(craft_empty(4, ys, CRAFT_F32, 0, &yb));
    int64_t before = cpu_conv_band_count();
    CHECK_OK(cpu_conv(CRAFT_CONV_FWD, &cd, 1, x, wt, y, b));
    CHECK_OK(cpu_conv_fwd_in_bands(&cd, 1, hb, x, wt, yb, b));
    CHECK_MSG(cpu_conv_band_count() - before == nb, "%lld bands of %lld rows, expected %lld",
              (long long)(cpu_conv_band_count() - before), (long long)hb, (long long)nb);
    int64_t ny = n * cout * cd.oh * cd.ow;
    float *ref = malloc((size_t)ny * sizeof(float));
    craft_tensor_read(y, CRAFT_F32, ref, (size_t)ny * sizeof(float));
    double e = rel_err_data(yb, ref, ny);
    CHECK_MSG(e <= 2e-5, "bands of %lld rows vs the whole image: relative error %.2g", (long long)hb, e);
    CHECK_ERR(cpu_conv_fwd_in_bands(&cd, 1, 0, x, wt, yb, b), CRAFT_EINVAL);
    free(ref);
    craft_tensor_release(x);
    craft_tensor_release(wt);
    craft_tensor_release(b);
    craft_tensor_release(y);
    craft_tensor_release(yb);
}

static void test_conv_reference(void) {
    check_conv_ref(0, 2, 32, 48, 16, 16, 3, 1, 1, 1, 1, 0, 1); /* Winograd-sized (N * OH * OW >= 512) */
    check_conv_ref(0, 8, 64, 32, 8, 8, 3, 1, 1, 1, 1, 0, 0);   /* Winograd, no bias */
    check_conv_ref(1, 2, 48, 32, 16, 16, 3, 1, 1, 1, 1, 0, 1); /* transposed, Winograd-sized */
    /* 128 channels, 100 rows: with a 16 MB Winograd cap (tests/run.sh runs this test again with
     * CRAFT_CONV_WINOGRAD=16) their forward runs in bands of rows, the last one shorter */
    int64_t bands0 = cpu_conv_band_count();
    check_conv_ref(0, 1, 128, 128, 100, 64, 3, 1, 1, 1, 1, 0, 1);
    check_conv_ref(0, 2, 128, 96, 100, 40, 3, 1, 0, 1, 1, 0, 0); /* no padding */
    /* the rule bands only where oneDNN's whole-image Winograd does not fit the cap: on hosts
     * whose oneDNN picks a tile-by-tile schedule (bounded scratchpad) it fits whole, and the
     * bands' mechanics are checked directly below instead */
    const char *cap = getenv("CRAFT_CONV_WINOGRAD");
    if (cap && !strcmp(cap, "16") && !whole_winograd_fits(1, 128, 128, 100, 64, 1))
        CHECK_MSG(cpu_conv_band_count() - bands0 >= 5, "banded Winograd ran %lld bands, expected >= 5",
                  (long long)(cpu_conv_band_count() - bands0));
    check_bands(1, 128, 128, 100, 64, 1, 24, 5); /* 24-row bands, the last of 4 rows */
    check_bands(2, 128, 96, 100, 40, 0, 30, 4);  /* no padding: 98 output rows */
    check_conv_ref(0, 2, 24, 40, 11, 11, 3, 2, 1, 1, 1, 0, 1); /* channels padded to 16-blocks */
    check_conv_ref(0, 1, 3, 20, 13, 9, 5, 2, 2, 1, 1, 0, 1);   /* RGB input */
    check_conv_ref(0, 2, 32, 32, 10, 10, 3, 1, 2, 2, 4, 0, 1); /* dilation 2, groups 4 */
    check_conv_ref(0, 2, 32, 32, 9, 9, 3, 1, 1, 1, 32, 0, 1);  /* depthwise */
    check_conv_ref(1, 2, 32, 16, 7, 7, 4, 2, 1, 1, 1, 0, 1);   /* 4x4 stride-2 upsampling */
    check_conv_ref(1, 1, 16, 24, 5, 6, 3, 2, 1, 2, 2, 1,
                   0); /* transposed, dilation, groups, output_padding */
    check_conv_ref(0, 2, 16, 32, 8, 8, 1, 2, 0, 1, 1, 0, 0); /* 1x1 stride-2 shortcut: right padding -1 */
    check_conv_ref(0, 1, 16, 16, 9, 9, 2, 3, 0, 1, 1, 0, 1); /* right padding -1 with stride 3 */
    check_conv_ref(1, 1, 8, 8, 5, 5, 3, 2, 0, 1, 1, 1, 1);   /* transposed, output_padding > padding */
    /* more distinct shapes than the primitive cache holds (48), then the first ones again */
    for (int rep = 0; rep < 2; rep++)
        for (int i = 0; i < 56; i += rep ? 7 : 1)
            check_conv_ref(i % 3 == 0, 1 + i % 2, 4 + i % 5, 3 + i % 4, 5 + i % 6, 6, 1 + 2 * (i % 2),
                           1 + i % 2, i % 2, 1, 1, 0, i % 2);
}

/* ---- finite-difference gradient checks ----
 * Every op: eps 1e-3, atol 2e-3, rtol 2e-2 (as test_core). Measured worst ratios (error /
 * tolerance) are 0.01-0.1 for all cases below, so the checks have a wide margin and would still
 * catch a wrong term (a missing mean or xhat term moves gradients by O(1)). */
typedef struct {
    int kind;
    float args[9];
} op_ctx;

static int op_fn(craft_tensor **in, void *vctx, craft_tensor **out) {
    op_ctx *c = vctx;
    return run_op(c->kind, c->args, in[0], in[1], in[2], out);
}

static void gc_case(const char *name, int kind, const float *args, int nx, const int64_t *xs, int nw,
                    const int64_t *ws, int nb, const int64_t *bs, double atol, double rtol) {
    op_ctx c = {kind, {0}};
    memcpy(c.args, args, sizeof c.args);
    craft_tensor *in[3] = {gc_rand(nx, xs, -1, 1), nw ? gc_rand(nw, ws, -1, 1) : NULL,
                           nb ? gc_rand(nb, bs, -1, 1) : NULL};
    gradcheck(name, op_fn, 3, in, &c, 1e-3, atol, rtol);
    for (int i = 0; i < 3; i++) craft_tensor_release(in[i]);
}

static void test_gradcheck_conv(void) {
    /* args: stride h,w, pad h,w, dilation h,w, groups, output_padding h,w */
    float a_basic[9] = {1, 1, 1, 1, 1, 1, 1, 0, 0}, a_s2[9] = {2, 2, 1, 1, 1, 1, 1, 0, 0},
          a_dil[9] = {1, 1, 2, 2, 2, 2, 1, 0, 0};
    float a_g2[9] = {1, 1, 1, 0, 1, 1, 2, 0, 0}, a_dw[9] = {1, 2, 1, 1, 1, 1, 4, 0, 0},
          a_1x1[9] = {1, 1, 0, 0, 1, 1, 1, 0, 0};
    float a_t[9] = {2, 2, 1, 1, 1, 1, 1, 1, 1}, a_tg[9] = {1, 2, 0, 1, 1, 1, 2, 0, 1};
    int64_t x1[4] = {2, 3, 5, 6}, w1[4] = {4, 3, 3, 3}, b4[1] = {4}, x2[4] = {2, 4, 7, 6},
            w2[4] = {4, 2, 3, 3}, w3[4] = {4, 1, 3, 3};
    int64_t w4[4] = {5, 3, 1, 1}, b5[1] = {5}, xt[4] = {2, 3, 3, 4}, wt[4] = {3, 2, 3, 3}, b2[1] = {2},
            xtg[4] = {1, 4, 3, 3}, wtg[4] = {4, 3, 2, 3}, b6[1] = {6}, w2x[4] = {3, 4, 3, 3};
    gc_case("conv2d 3x3 pad 1", K_CONV, a_basic, 4, x1, 4, w1, 1, b4, 2e-3, 2e-2);
    gc_case("conv2d stride 2", K_CONV, a_s2, 4, x1, 4, w1, 1, b4, 2e-3, 2e-2);
    gc_case("conv2d dilation 2", K_CONV, a_dil, 4, x2, 4, w2x, 0, NULL, 2e-3, 2e-2);
    int64_t x2b[4] = {2, 4, 7, 6}; /* 4 channels */
    gc_case("conv2d groups 2", K_CONV, a_g2, 4, x2b, 4, w2, 1, b4, 2e-3, 2e-2);
    gc_case("conv2d depthwise", K_CONV, a_dw, 4, x2b, 4, w3, 1, b4, 2e-3, 2e-2);
    gc_case("conv2d 1x1", K_CONV, a_1x1, 4, x1, 4, w4, 1, b5, 2e-3, 2e-2);
    gc_case("conv_transpose2d stride 2 output_padding 1", K_CONVT, a_t, 4, xt, 4, wt, 1, b2, 2e-3, 2e-2);
    gc_case("conv_transpose2d groups 2", K_CONVT, a_tg, 4, xtg, 4, wtg, 1, b6, 2e-3, 2e-2);
}

static void test_gradcheck_norm(void) {
    float g1[9] = {1, 1e-5f}, gC[9] = {6, 1e-5f}, g3[9] = {3, 1e-5f}, g32[9] = {32, 1e-5f},
          l1[9] = {1, 1e-5f}, l2[9] = {2, 1e-5f};
    int64_t x[4] = {2, 6, 3, 3}, c6[1] = {6}, x64[4] = {2, 64, 2, 1}, c64[1] = {64}, xl[3] = {3, 4, 7},
            d1[1] = {7}, d2[2] = {4, 7};
    gc_case("group_norm G=1 affine", K_GN, g1, 4, x, 1, c6, 1, c6, 2e-3, 2e-2);
    gc_case("group_norm G=C", K_GN, gC, 4, x, 1, c6, 1, c6, 2e-3, 2e-2);
    gc_case("group_norm G=3 no affine", K_GN, g3, 4, x, 0, NULL, 0, NULL, 2e-3, 2e-2);
    gc_case("group_norm 32 groups of 64 channels", K_GN, g32, 4, x64, 1, c64, 1, c64, 2e-3, 2e-2);
    float s3[9] = {3, 1e-5f, CRAFT_SILU}, g2[9] = {2, 1e-5f, CRAFT_GELU}, q3[9] = {3, 1e-5f, CRAFT_QUICK_GELU},
          t3[9] = {3, 1e-5f, CRAFT_TANH};
    gc_case("group_norm + silu G=3 affine", K_GN_ACT, s3, 4, x, 1, c6, 1, c6, 2e-3, 2e-2);
    gc_case("group_norm + silu G=3 no affine", K_GN_ACT, s3, 4, x, 0, NULL, 0, NULL, 2e-3, 2e-2);
    gc_case("group_norm + gelu G=2 weight only", K_GN_ACT, g2, 4, x, 1, c6, 0, NULL, 2e-3, 2e-2);
    gc_case("group_norm + quick_gelu G=3 affine", K_GN_ACT, q3, 4, x, 1, c6, 1, c6, 2e-3, 2e-2);
    gc_case("group_norm + tanh G=3 affine", K_GN_ACT, t3, 4, x, 1, c6, 1, c6, 2e-3, 2e-2);
    gc_case("layer_norm last dim affine", K_LN, l1, 3, xl, 1, d1, 1, d1, 2e-3, 2e-2);
    gc_case("layer_norm last 2 dims affine", K_LN, l2, 3, xl, 2, d2, 2, d2, 2e-3, 2e-2);
    gc_case("layer_norm last 2 dims no affine", K_LN, l2, 3, xl, 0, NULL, 0, NULL, 2e-3, 2e-2);
    gc_case("layer_norm weight only", K_LN, l1, 3, xl, 1, d1, 0, NULL, 2e-3, 2e-2);
}

/* Non-contiguous inputs (a transposed view) give the same values and gradients as their
 * contiguous copies; gradcheck through the view as well. */
static int conv_of_transposed(craft_tensor **in, void *vctx, craft_tensor **out) {
    craft_tensor *v;
    CRAFT_TRY(craft_transpose(in[0], 2, 3, &v));
    int st[2] = {1, 2}, pd[2] = {1, 1}, dl[2] = {1, 1};
    int rc = craft_conv2d(v, in[1], in[2], st, pd, dl, 1, out);
    craft_tensor_release(v);
    return rc;
}

static int norm_of_transposed(craft_tensor **in, void *vctx, craft_tensor **out) {
    craft_tensor *v, *y1;
    CRAFT_TRY(craft_transpose(in[0], 1, 3, &v));
    int rc = craft_group_norm(v, 2, in[1], in[2], 1e-5, &y1);
    if (!rc) {
        rc = craft_layer_norm(y1, 1, NULL, NULL, 1e-5, out);
        craft_tensor_release(y1);
    }
    craft_tensor_release(v);
    return rc;
}

static void test_noncontiguous(void) {
    int64_t xs[4] = {2, 3, 6, 5}, ws[4] = {4, 3, 3, 3}, bs[1] = {4};
    craft_tensor *in[3] = {gc_rand(4, xs, -1, 1), gc_rand(4, ws, -1, 1), gc_rand(1, bs, -1, 1)};
    craft_tensor *v, *c, *y1, *y2;
    CHECK_OK(craft_transpose(in[0], 2, 3, &v));
    CHECK(!craft_is_contiguous(v));
    CHECK_OK(craft_contiguous(v, &c));
    int st[2] = {1, 2}, pd[2] = {1, 1}, dl[2] = {1, 1};
    CHECK_OK(craft_conv2d(v, in[1], in[2], st, pd, dl, 1, &y1));
    CHECK_OK(craft_conv2d(c, in[1], in[2], st, pd, dl, 1, &y2));
    float *b1 = malloc((size_t)y1->numel * 4);
    craft_tensor_read(y2, CRAFT_F32, b1, (size_t)y1->numel * 4);
    CHECK(rel_err_data(y1, b1, y1->numel) == 0);
    free(b1);
    craft_tensor_release(v);
    craft_tensor_release(c);
    craft_tensor_release(y1);
    craft_tensor_release(y2);
    gradcheck("conv2d of a transposed view", conv_of_transposed, 3, in, NULL, 1e-3, 2e-3, 2e-2);
    for (int i = 0; i < 3; i++) craft_tensor_release(in[i]);
    int64_t xn[4] = {2, 5, 3, 4}, cn[1] = {4}; /* viewed as [2, 4, 3, 5] */
    craft_tensor *nin[3] = {gc_rand(4, xn, -1, 1), gc_rand(1, cn, 0.5, 1.5), gc_rand(1, cn, -1, 1)};
    gradcheck("group_norm + layer_norm of a transposed view", norm_of_transposed, 3, nin, NULL, 1e-3, 2e-3,
              2e-2);
    for (int i = 0; i < 3; i++) craft_tensor_release(nin[i]);
}

/* Only the gradients that are asked for are made. */
static void test_partial_grads(void) {
    int64_t xs[4] = {1, 2, 4, 4}, ws[4] = {3, 2, 3, 3}, bs[1] = {3};
    craft_tensor *x = rand_t(4, xs, 0), *w = rand_t(4, ws, 0), *b = rand_t(1, bs, 1), *y, *l;
    int st[2] = {1, 1}, pd[2] = {1, 1}, dl[2] = {1, 1};
    CHECK_OK(craft_conv2d(x, w, b, st, pd, dl, 1, &y));
    CHECK_OK(craft_sum(y, 0, NULL, 0, &l));
    CHECK_OK(craft_backward(l, NULL, 0));
    CHECK(x->grad == NULL && w->grad == NULL && b->grad != NULL);
    float gb[3];
    craft_tensor_read(b->grad, CRAFT_F32, gb, sizeof gb);
    for (int i = 0; i < 3; i++) CHECK_NEAR(gb[i], 16, 1e-5);
    craft_tensor_release(y);
    craft_tensor_release(l);
    /* no grad mode: no graph */
    int prev = craft_set_grad_enabled(0);
    CHECK_OK(craft_conv2d(x, w, b, st, pd, dl, 1, &y));
    CHECK(y->node == NULL);
    craft_set_grad_enabled(prev);
    craft_tensor_release(y);
    /* an empty batch works and gives zero weight gradients */
    int64_t xe[4] = {0, 2, 4, 4};
    craft_tensor *xz = rand_t(4, xe, 1);
    craft_set_requires_grad(w, 1);
    CHECK_OK(craft_conv2d(xz, w, b, st, pd, dl, 1, &y));
    CHECK(y && y->shape[0] == 0 && y->shape[1] == 3);
    if (y) {
        craft_tensor *gy;
        craft_zeros(4, y->shape, CRAFT_F32, 0, &gy);
        CHECK_OK(craft_backward(y, gy, 0));
        double s = 1;
        if (w->grad) {
            craft_tensor *sm;
            craft_sum(w->grad, 0, NULL, 0, &sm);
            craft_item(sm, &s);
            craft_tensor_release(sm);
        }
        CHECK(w->grad && s == 0);
        craft_tensor_release(gy);
    }
    craft_tensor_release(y);
    craft_tensor_release(xz);
    craft_tensor_release(x);
    craft_tensor_release(w);
    craft_tensor_release(b);
}

/* Frozen weights (LoRA) or a frozen input: the other gradient is unchanged, and the tensor only
 * the missing gradient would need is not kept alive by the graph. */
static void test_frozen_inputs(void) {
    int64_t xs[4] = {2, 4, 6, 6}, ws[4] = {4, 4, 3, 3};
    int st[2] = {2, 2}, pd[2] = {1, 1}, dl[2] = {1, 1}, op[2] = {1, 1};
    for (int tr = 0; tr < 2; tr++) {
        craft_tensor *x = rand_t(4, xs, 1), *w = rand_t(4, ws, 1), *y, *gy = NULL, *ref_gx = NULL,
                     *ref_gw = NULL;
        int rc = tr ? craft_conv_transpose2d(x, w, NULL, st, pd, op, dl, 1, &y)
                    : craft_conv2d(x, w, NULL, st, pd, dl, 1, &y);
        CHECK_OK(rc);
        if (rc) continue;
        gy = rand_t(y->ndim, y->shape, 0);
        CHECK_OK(craft_backward(y, gy, 0));
        craft_tensor_release(y);
        ref_gx = craft_tensor_retain(x->grad);
        ref_gw = craft_tensor_retain(w->grad);
        for (int frozen = 0; frozen < 2; frozen++) { /* 0: weight frozen, 1: input frozen */
            craft_zero_grad(x);
            craft_zero_grad(w);
            craft_set_requires_grad(frozen ? x : w, 0);
            craft_set_requires_grad(frozen ? w : x, 1);
            CHECK_OK(tr ? craft_conv_transpose2d(x, w, NULL, st, pd, op, dl, 1, &y)
                        : craft_conv2d(x, w, NULL, st, pd, dl, 1, &y));
            CHECK(y->node && y->node->saved[frozen ? 1 : 0] == NULL &&
                  y->node->saved[frozen ? 0 : 1] != NULL);
            CHECK_OK(craft_backward(y, gy, 0));
            craft_tensor *got = frozen ? w->grad : x->grad, *ref = frozen ? ref_gw : ref_gx;
            float *rb = malloc((size_t)ref->numel * sizeof(float));
            craft_tensor_read(ref, CRAFT_F32, rb, (size_t)ref->numel * sizeof(float));
            CHECK(got && rel_err_data(got, rb, ref->numel) == 0);
            CHECK((frozen ? x : w)->grad == NULL);
            free(rb);
            craft_tensor_release(y);
        }
        craft_tensor_release(x);
        craft_tensor_release(w);
        craft_tensor_release(gy);
        craft_tensor_release(ref_gx);
        craft_tensor_release(ref_gw);
    }
}

static void test_shape_errors(void) {
    int64_t xs[4] = {2, 3, 5, 5}, ws[4] = {4, 3, 3, 3}, wbad[4] = {4, 2, 3, 3}, b4[1] = {4}, b5[1] = {5},
            w3[3] = {4, 3, 3}, wbig[4] = {4, 3, 9, 9};
    craft_tensor *x = rand_t(4, xs, 0), *w = rand_t(4, ws, 0), *wb = rand_t(4, wbad, 0),
                 *bb = rand_t(1, b5, 0), *bok = rand_t(1, b4, 0);
    craft_tensor *w3d = rand_t(3, w3, 0), *wbg = rand_t(4, wbig, 0), *y = NULL;
    int st[2] = {1, 1}, pd[2] = {1, 1}, dl[2] = {1, 1}, neg[2] = {0, 1};
    CHECK_ERR(craft_conv2d(x, wb, NULL, st, pd, dl, 1, &y), CRAFT_ESHAPE); /* channel mismatch */
    CHECK(strstr(craft_last_error(), "conv2d") && strstr(craft_last_error(), "[2, 3, 5, 5]") &&
          strstr(craft_last_error(), "[4, 2, 3, 3]"));
    CHECK_ERR(craft_conv2d(x, w, NULL, st, pd, dl, 2, &y), CRAFT_ESHAPE); /* groups do not divide 3 */
    CHECK(strstr(craft_last_error(), "groups 2") != NULL);
    CHECK_ERR(craft_conv2d(x, w, bb, st, pd, dl, 1, &y), CRAFT_ESHAPE); /* bias [5] for 4 outputs */
    CHECK(strstr(craft_last_error(), "[5]") != NULL);
    CHECK_ERR(craft_conv2d(x, w3d, NULL, st, pd, dl, 1, &y), CRAFT_ESHAPE); /* 3-d weight */
    CHECK_ERR(craft_conv2d(w3d, w, NULL, st, pd, dl, 1, &y), CRAFT_ESHAPE); /* 3-d input */
    CHECK_ERR(craft_conv2d(x, wbg, NULL, st, pd, dl, 1, &y), CRAFT_ESHAPE); /* 9x9 kernel on 5+2 */
    CHECK(strstr(craft_last_error(), "[4, 3, 9, 9]") != NULL);
    CHECK_ERR(craft_conv2d(x, w, NULL, neg, pd, dl, 1, &y), CRAFT_EINVAL); /* stride 0 */
    CHECK_ERR(craft_conv2d(x, w, NULL, st, pd, dl, 0, &y), CRAFT_EINVAL);  /* groups 0 */
    /* transposed: weight [in, out/g, kh, kw] must have in = 3 */
    int64_t wtb[4] = {4, 2, 3, 3};
    craft_tensor *wt = rand_t(4, wtb, 0);
    int64_t wt3s[4] = {3, 2, 3, 3};
    craft_tensor *wt3 = rand_t(4, wt3s, 0);
    int op2[2] = {2, 2}, op0[2] = {0, 0};
    CHECK_ERR(craft_conv_transpose2d(x, wt, NULL, st, pd, op0, dl, 1, &y), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "conv_transpose2d") && strstr(craft_last_error(), "[4, 2, 3, 3]"));
    CHECK_ERR(craft_conv_transpose2d(x, wt3, bok, st, pd, op0, dl, 1, &y),
              CRAFT_ESHAPE); /* bias [4] for 2 outputs */
    CHECK(strstr(craft_last_error(), "bias [4]") && strstr(craft_last_error(), "expected [2]"));
    CHECK_ERR(craft_conv_transpose2d(x, wt3, NULL, st, pd, op2, dl, 1, &y),
              CRAFT_EINVAL); /* output_padding >= stride */
    /* sizes whose products pass int64 (empty tensors may have sizes up to 2^46): refused, not overflowed */
    {
        const int64_t big = (int64_t)1 << 40;
        int64_t xe[4] = {0, 3, big, 1}, w1[4] = {3, 1, 1, 1};
        craft_tensor *xemp = NULL, *wone = rand_t(4, w1, 0);
        CHECK_OK(craft_empty(4, xe, CRAFT_F32, 0, &xemp));
        int str[2] = {1 << 30, 1}, nopad[2] = {0, 0};
        CHECK_ERR(craft_conv_transpose2d(xemp, wone, NULL, str, nopad, op0, dl, 1, &y),
                  CRAFT_ESHAPE); /* 2^40 x 2^30 */
        CHECK(strstr(craft_last_error(), "output size is too large") != NULL);
        craft_tensor_release(xemp);
        craft_tensor_release(wone);
    }
    /* norms */
    CHECK_ERR(craft_group_norm(x, 2, NULL, NULL, 1e-5, &y), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "[2, 3, 5, 5]") != NULL);
    CHECK_ERR(craft_group_norm(x, 3, bok, NULL, 1e-5, &y), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "[4]") != NULL);
    CHECK_ERR(craft_group_norm(bok, 1, NULL, NULL, 1e-5, &y), CRAFT_ESHAPE); /* 1-d input */
    CHECK_ERR(craft_layer_norm(x, 5, NULL, NULL, 1e-5, &y), CRAFT_ESHAPE);
    CHECK_ERR(craft_layer_norm(x, 0, NULL, NULL, 1e-5, &y), CRAFT_ESHAPE);
    CHECK_ERR(craft_layer_norm(x, 1, bok, NULL, 1e-5, &y), CRAFT_ESHAPE); /* weight [4] for last dim 5 */
    CHECK(strstr(craft_last_error(), "layer_norm") && strstr(craft_last_error(), "[4]") &&
          strstr(craft_last_error(), "[5]"));
    CHECK(y == NULL);
    craft_tensor *t[] = {x, w, wb, bb, bok, w3d, wbg, wt, wt3};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) craft_tensor_release(t[i]);
}

/* Statistics stay exact for rows with a large mean (two-pass variance). */
static void test_norm_large_mean(void) {
    int64_t s[2] = {2, 4096};
    craft_tensor *x = rand_t(2, s, 0), *xs, *y;
    CHECK_OK(craft_binary_scalar(CRAFT_ADD, x, 1000.0, 0, &xs));
    CHECK_OK(craft_layer_norm(xs, 1, NULL, NULL, 0.0, &y));
    float *xv = malloc(2 * 4096 * 4), *yv = malloc(2 * 4096 * 4);
    craft_tensor_read(xs, CRAFT_F32, xv, 2 * 4096 * 4);
    craft_tensor_read(y, CRAFT_F32, yv, 2 * 4096 * 4);
    double worst = 0;
    for (int r = 0; r < 2; r++) {
        double m = 0, v = 0;
        for (int i = 0; i < 4096; i++) m += xv[r * 4096 + i];
        m /= 4096;
        for (int i = 0; i < 4096; i++) v += (xv[r * 4096 + i] - m) * (xv[r * 4096 + i] - m);
        v /= 4096;
        for (int i = 0; i < 4096; i++) {
            double e = fabs(yv[r * 4096 + i] - (xv[r * 4096 + i] - m) / sqrt(v));
            if (e > worst) worst = e;
        }
    }
    CHECK_MSG(worst < 2e-4, "layer_norm with mean 1000: worst error %.3g", worst);
    free(xv);
    free(yv);
    craft_tensor_release(x);
    craft_tensor_release(xs);
    craft_tensor_release(y);
}

/* a new leaf requiring grad with t's values */
static craft_tensor *leaf_copy(const craft_tensor *t) {
    craft_tensor *d = NULL, *c = NULL;
    CHECK_OK(craft_detach(t, &d));
    if (d) CHECK_OK(craft_clone(d, &c));
    if (c) CHECK_OK(craft_set_requires_grad(c, 1));
    craft_tensor_release(d);
    return c;
}

/* The fused group_norm + activation gives exactly group_norm then the activation, forward and
 * backward, with the fused kernels and without them (the op's fallback for devices that lack
 * them); unknown activations are refused. */
static void test_group_norm_act_matches_composition(void) {
    int64_t xs[4] = {2, 64, 9, 7}, cs[1] = {64};
    int acts[3] = {CRAFT_SILU, CRAFT_GELU, CRAFT_SIGMOID};
    for (int fused = 1; fused >= 0; fused--)
        for (int ai = 0; ai < 3; ai++) {
            int act = acts[ai];
            if (!fused) {
                craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_group_norm_act, 1);
                craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_group_norm_act_grad, 1);
            }
            craft_tensor *x = rand_t(4, xs, 1), *w = rand_t(1, cs, 1), *b = rand_t(1, cs, 1);
            craft_tensor *x2 = NULL, *w2 = NULL, *b2 = NULL, *y = NULL, *h = NULL, *y2 = NULL, *gy = rand_t(4, xs, 0);
            x2 = leaf_copy(x);
            w2 = leaf_copy(w);
            b2 = leaf_copy(b);
            CHECK_OK(craft_group_norm_act(x, 32, w, b, 1e-6, act, &y));
            CHECK_OK(craft_group_norm(x2, 32, w2, b2, 1e-6, &h));
            CHECK_OK(craft_unary(act, h, &y2));
            if (y && y2) {
                CHECK_MSG(!memcmp(craft_tensor_data(y), craft_tensor_data(y2), (size_t)y->numel * 4),
                          "group_norm_act(%s) fused=%d: forward differs from group_norm then the op",
                          craft_unary_name(act), fused);
                CHECK_OK(craft_backward(y, gy, 0));
                CHECK_OK(craft_backward(y2, gy, 0));
                const craft_tensor *ga[3] = {x->grad, w->grad, b->grad}, *gb[3] = {x2->grad, w2->grad, b2->grad};
                for (int i = 0; i < 3; i++) {
                    double e = ga[i] && gb[i] ? rel_err_data(ga[i], craft_tensor_data(gb[i]), ga[i]->numel) : 1;
                    CHECK_MSG(e <= 1e-6, "group_norm_act(%s) fused=%d: gradient %d differs by %.3g",
                              craft_unary_name(act), fused, i, e);
                }
            }
            craft_tensor *t[9] = {x, w, b, x2, w2, b2, y, h, y2};
            for (int i = 0; i < 9; i++) craft_tensor_release(t[i]);
            craft_tensor_release(gy);
            craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_group_norm_act, 0);
            craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_group_norm_act_grad, 0);
        }
    craft_tensor *x = rand_t(4, xs, 0), *y = NULL;
    CHECK(craft_group_norm_act(x, 32, NULL, NULL, 1e-5, CRAFT_UNARY_COUNT, &y) == CRAFT_EINVAL && !y);
    CHECK(strstr(craft_last_error(), "unknown activation") != NULL);
    CHECK(craft_group_norm_act(x, 5, NULL, NULL, 1e-5, CRAFT_SILU, &y) == CRAFT_ESHAPE && !y);
    craft_tensor_release(x);
}

/* conv2d's gradients through the back end's conv_grad (both directions in one call, the output
 * gradient reordered once) are exactly those of its two single-direction calls (the kernel
 * hidden): Winograd, strided, 1x1 and grouped geometries, with and without bias. */
static void test_conv_grad_matches_directions(void) {
    struct {
        int64_t n, c, h, w, o, k, stride, groups, bias;
    } cs[] = {{4, 64, 16, 16, 64, 3, 1, 1, 1}, {2, 24, 13, 11, 40, 3, 2, 1, 1}, {3, 32, 9, 9, 48, 1, 1, 1, 0},
              {2, 32, 10, 10, 32, 3, 1, 2, 1}, {2, 16, 8, 8, 16, 3, 1, 1, 0}};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        int64_t xs[4] = {cs[i].n, cs[i].c, cs[i].h, cs[i].w}, ws[4] = {cs[i].o, cs[i].c / cs[i].groups, cs[i].k, cs[i].k},
                bs[1] = {cs[i].o};
        int st[2] = {(int)cs[i].stride, (int)cs[i].stride}, pd[2] = {(int)(cs[i].k / 2), (int)(cs[i].k / 2)},
            dl[2] = {1, 1};
        craft_tensor *x = rand_t(4, xs, 1), *w = rand_t(4, ws, 1), *b = cs[i].bias ? rand_t(1, bs, 1) : NULL;
        craft_tensor *g[2][3] = {{NULL}}, *gy = NULL;
        for (int fused = 1; fused >= 0; fused--) {
            craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_conv_grad, !fused);
            craft_tensor *xx = leaf_copy(x), *ww = leaf_copy(w), *bb = b ? leaf_copy(b) : NULL, *y = NULL;
            CHECK_OK(craft_conv2d(xx, ww, bb, st, pd, dl, (int)cs[i].groups, &y));
            if (!gy && y) gy = rand_t(y->ndim, y->shape, 0);
            if (y) CHECK_OK(craft_backward(y, gy, 0));
            g[fused][0] = xx ? craft_tensor_retain(xx->grad) : NULL;
            g[fused][1] = ww ? craft_tensor_retain(ww->grad) : NULL;
            g[fused][2] = bb ? craft_tensor_retain(bb->grad) : NULL;
            craft_tensor *t[4] = {xx, ww, bb, y};
            for (int k = 0; k < 4; k++) craft_tensor_release(t[k]);
        }
        craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_conv_grad, 0);
        for (int k = 0; k < (b ? 3 : 2); k++) {
            const craft_tensor *a = g[1][k], *r = g[0][k];
            CHECK_MSG(a && r && a->numel == r->numel &&
                          !memcmp(craft_tensor_data(a), craft_tensor_data(r), (size_t)a->numel * sizeof(float)),
                      "case %zu: gradient %d through conv_grad differs from the two directions", i, k);
        }
        for (int f = 0; f < 2; f++)
            for (int k = 0; k < 3; k++) craft_tensor_release(g[f][k]);
        craft_tensor_release(gy);
        craft_tensor_release(x);
        craft_tensor_release(w);
        craft_tensor_release(b);
    }
}

int main(void) {
    RUN(test_fixtures);
    RUN(test_conv_reference);
    RUN(test_gradcheck_conv);
    RUN(test_gradcheck_norm);
    RUN(test_group_norm_act_matches_composition);
    RUN(test_conv_grad_matches_directions);
    RUN(test_noncontiguous);
    RUN(test_partial_grads);
    RUN(test_frozen_inputs);
    RUN(test_shape_errors);
    RUN(test_norm_large_mean);
    return CHECK_SUMMARY();
}
