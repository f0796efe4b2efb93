/* test_bf16_mixed.c: mixed-precision training (CRAFT_PREC_BF16_MIXED) on the CPU.
 *
 * Under bf16-mixed, recorded linear / conv2d / matmul / sdpa compute their forward in bf16 and
 * their backward's input gradients too; weight gradients stay fp32. Checked per op:
 *  - the forward and the input gradient against the bf16 dot-product bound (bf16_bounds.h) from
 *    each element's own terms (the input gradient of linear is g w, of conv2d the transposed
 *    convolution of g with w: dot products of bf16-rounded g and w);
 *  - the weight gradient bit-identical to fp32's from the same output gradient (the fp32 product
 *    of the saved fp32 input and g);
 *  - that bf16 ran: the kernel counter moves, and the results differ from fp32 by more than fp32
 *    rounding could;
 *  - that the backward follows the forward: a bf16 forward gets a bf16 backward whatever the
 *    setting when backward runs, an fp32 forward an fp32 one.
 * Attention's gradients pass through the softmax's derivative, whose terms cancel; their
 * tolerance is stated as measured (relative to the largest gradient element: max error 2e-2,
 * root-mean-square error 4e-3; seen on this Zen 5: 1.4e-2 and 1.5e-3).
 * On a CPU without AVX512-BF16 everything is bit-identical to fp32 and the counter stays. */
#include "bf16_bounds.h"

static int native;

static craft_tensor *clone_grad(const craft_tensor *t) {
    craft_tensor *c;
    if (craft_clone(t, &c) || craft_set_requires_grad(c, 1)) return NULL;
    return c;
}

/* an op of x, w and b (conv's geometry in ctx) */
typedef int (*weighted_op)(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, const void *ctx,
                           craft_tensor **y);
static int linear_op(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, const void *ctx,
                     craft_tensor **y) {
    (void)ctx;
    return craft_linear(x, w, b, y);
}
typedef struct {
    int stride[2], pad[2];
} conv_geo;
static int conv_op(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, const void *ctx,
                   craft_tensor **y) {
    const conv_geo *c = ctx;
    int dil[2] = {1, 1};
    return craft_conv2d(x, w, b, c->stride, c->pad, dil, 1, y);
}

/* y = op(x, w, b) with x and w requiring grad under prec, backward from g under back_prec:
 * returns y, gx, gw */
static void grad_run(weighted_op op, const void *ctx, int prec, int back_prec, craft_tensor *x, craft_tensor *w,
                     craft_tensor *b, craft_tensor *g, craft_tensor **y, craft_tensor **gx, craft_tensor **gw) {
    craft_tensor *xg = clone_grad(x), *wg = clone_grad(w);
    set_prec(prec);
    CHECK_OK(op(xg, wg, b, ctx, y));
    set_prec(back_prec);
    CHECK_OK(craft_backward(*y, g, 0));
    set_prec(CRAFT_PREC_FP32);
    *gx = craft_tensor_retain(xg->grad);
    *gw = craft_tensor_retain(wg->grad);
    craft_tensor_release(xg);
    craft_tensor_release(wg);
}

static void test_linear(void) {
    check_test_name_ = "linear";
    int64_t M = 37, K = 300, N = 45, xs[2] = {M, K}, ws[2] = {N, K}, bs[1] = {N}, gs[2] = {M, N};
    craft_tensor *x = randn(2, xs, 1), *w = randn(2, ws, 2), *b = randn(1, bs, 3), *g = randn(2, gs, 4);
    craft_tensor *y32, *gx32, *gw32, *y16, *gx16, *gw16;
    grad_run(linear_op, NULL, CRAFT_PREC_FP32, CRAFT_PREC_FP32, x, w, b, g, &y32, &gx32, &gw32);
    int64_t c0 = craft_bf16_kernel_calls();
    grad_run(linear_op, NULL, CRAFT_PREC_BF16_MIXED, CRAFT_PREC_FP32, x, w, b, g, &y16, &gx16, &gw16);
    int64_t calls = craft_bf16_kernel_calls() - c0;
    double *ady = malloc((size_t)(M * N) * sizeof *ady), *adx = malloc((size_t)(M * K) * sizeof *adx);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = fabs(fdata(b)[j]);
            for (int64_t k = 0; k < K; k++) s += fabs((double)fdata(x)[i * K + k] * fdata(w)[j * K + k]);
            ady[i * N + j] = s;
        }
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t j = 0; j < N; j++) s += fabs((double)fdata(g)[i * N + j] * fdata(w)[j * K + k]);
            adx[i * K + k] = s;
        }
    }
    int same;
    maxdiff(fdata(gw16), fdata(gw32), N * K, &same);
    CHECK_MSG(same, "the weight gradient is fp32's, bit for bit");
    if (native) {
        CHECK_MSG(calls == 2, "forward and input gradient in bf16: %lld calls", (long long)calls);
        double sy = check_dots(fdata(y16), fdata(y32), ady, M * N, K, "linear forward");
        double sx = check_dots(fdata(gx16), fdata(gx32), adx, M * K, N, "linear input gradient");
        CHECK_MSG(sy > 4 && sx > 4, "within fp32 rounding of fp32 (%.3g, %.3g): bf16 did not run", sy, sx);
    } else {
        CHECK(calls == 0);
        maxdiff(fdata(gx16), fdata(gx32), M * K, &same);
        CHECK(same);
    }
    /* the backward follows the forward: an fp32 forward, backward under the mixed setting */
    craft_tensor *y3, *gx3, *gw3;
    c0 = craft_bf16_kernel_calls();
    grad_run(linear_op, NULL, CRAFT_PREC_FP32, CRAFT_PREC_BF16_MIXED, x, w, b, g, &y3, &gx3, &gw3);
    CHECK(craft_bf16_kernel_calls() == c0);
    maxdiff(fdata(gx3), fdata(gx32), M * K, &same);
    CHECK_MSG(same, "an fp32 forward's backward is fp32 under any setting");
    free(ady);
    free(adx);
    craft_tensor *all[] = {x, w, b, g, y32, gx32, gw32, y16, gx16, gw16, y3, gx3, gw3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* conv2d 3x3 stride 2 (a direct kernel; Winograd geometries stay fp32), bias */
static void test_conv(void) {
    check_test_name_ = "conv2d";
    int64_t N = 2, C = 24, H = 13, W = 11, O = 40, KH = 3, KW = 3, OH = 7, OW = 6;
    int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C, KH, KW}, bs[1] = {O}, gs[4] = {N, O, OH, OW};
    const conv_geo geo = {{2, 2}, {1, 1}};
    craft_tensor *x = randn(4, xs, 6), *w = randn(4, ws, 7), *b = randn(1, bs, 8), *g = randn(4, gs, 9);
    craft_tensor *y32, *gx32, *gw32, *y16, *gx16, *gw16;
    grad_run(conv_op, &geo, CRAFT_PREC_FP32, CRAFT_PREC_FP32, x, w, b, g, &y32, &gx32, &gw32);
    int64_t c0 = craft_bf16_kernel_calls();
    grad_run(conv_op, &geo, CRAFT_PREC_BF16_MIXED, CRAFT_PREC_BF16_MIXED, x, w, b, g, &y16, &gx16, &gw16);
    int64_t calls = craft_bf16_kernel_calls() - c0;
    CHECK(y32->shape[2] == OH && y32->shape[3] == OW);
    int64_t ny = N * O * OH * OW, nx = N * C * H * W;
    double *ady = calloc((size_t)ny, sizeof *ady), *adx = calloc((size_t)nx, sizeof *adx);
    const float *xp = fdata(x), *wp = fdata(w), *gp = fdata(g);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t yi = ((n * O + o) * OH + oh) * OW + ow;
                    ady[yi] = fabs(fdata(b)[o]);
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                int64_t xi = ((n * C + c) * H + ih) * W + iw, wi = ((o * C + c) * KH + kh) * KW + kw;
                                ady[yi] += fabs((double)xp[xi] * wp[wi]);
                                adx[xi] += fabs((double)gp[yi] * wp[wi]);
                            }
                }
    int same;
    maxdiff(fdata(gw16), fdata(gw32), O * C * KH * KW, &same);
    CHECK_MSG(same, "the weight gradient is fp32's, bit for bit");
    if (native) {
        CHECK_MSG(calls == 2, "forward and data gradient in bf16: %lld calls", (long long)calls);
        double sy = check_dots(fdata(y16), fdata(y32), ady, ny, C * KH * KW, "conv2d forward");
        double sx = check_dots(fdata(gx16), fdata(gx32), adx, nx, O * KH * KW, "conv2d data gradient");
        CHECK_MSG(sy > 4 && sx > 4, "within fp32 rounding of fp32 (%.3g, %.3g): bf16 did not run", sy, sx);
    } else {
        CHECK(calls == 0);
        maxdiff(fdata(gx16), fdata(gx32), nx, &same);
        CHECK(same);
    }
    free(ady);
    free(adx);
    craft_tensor *all[] = {x, w, b, g, y32, gx32, gw32, y16, gx16, gw16};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* a 3x3 stride-1 conv the Winograd rule takes: its data gradient stays fp32 Winograd (exactly
 * fp32's, not counted) unless the scratchpad cap refuses Winograd (then bf16, counted) */
static void test_conv_winograd(void) {
    check_test_name_ = "conv2d winograd";
    int64_t xs[4] = {2, 32, 16, 16}, ws[4] = {32, 32, 3, 3}, gs[4] = {2, 32, 16, 16};
    const conv_geo geo = {{1, 1}, {1, 1}};
    craft_tensor *x = randn(4, xs, 13), *w = randn(4, ws, 14), *g = randn(4, gs, 15);
    craft_tensor *y32, *gx32, *gw32, *y16, *gx16, *gw16;
    grad_run(conv_op, &geo, CRAFT_PREC_FP32, CRAFT_PREC_FP32, x, w, NULL, g, &y32, &gx32, &gw32);
    int64_t c0 = craft_bf16_kernel_calls();
    grad_run(conv_op, &geo, CRAFT_PREC_BF16_MIXED, CRAFT_PREC_BF16_MIXED, x, w, NULL, g, &y16, &gx16, &gw16);
    int64_t calls = craft_bf16_kernel_calls() - c0;
    int same, n = 2 * 32 * 16 * 16;
    double d = maxdiff(fdata(gx16), fdata(gx32), n, &same), scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(fdata(gx32)[i]));
    CHECK_MSG((same && calls == 0) || (!same && calls == 2 && d <= 0.02 * scale),
              "winograd conv under bf16-mixed: gradient same %d, %lld bf16 calls, max diff %.3g of %.3g", same,
              (long long)calls, d, scale);
    craft_tensor *all[] = {x, w, g, y32, gx32, gw32, y16, gx16, gw16};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* a @ b, both requiring grad: under bf16-mixed both gradients are bf16 products */
static void test_matmul(void) {
    check_test_name_ = "matmul";
    int64_t B = 3, M = 20, K = 130, N = 17, as[3] = {B, M, K}, bs[2] = {K, N}, gs[3] = {B, M, N};
    craft_tensor *a = randn(3, as, 16), *b = randn(2, bs, 17), *g = randn(3, gs, 18);
    craft_tensor *ga[2], *gb[2], *y[2];
    int64_t calls = 0;
    for (int r = 0; r < 2; r++) {
        craft_tensor *ag = clone_grad(a), *bg = clone_grad(b);
        int64_t c0 = craft_bf16_kernel_calls();
        set_prec(r ? CRAFT_PREC_BF16_MIXED : CRAFT_PREC_FP32);
        CHECK_OK(craft_matmul(ag, bg, &y[r]));
        CHECK_OK(craft_backward(y[r], g, 0));
        set_prec(CRAFT_PREC_FP32);
        calls = craft_bf16_kernel_calls() - c0;
        ga[r] = craft_tensor_retain(ag->grad);
        gb[r] = craft_tensor_retain(bg->grad);
        craft_tensor_release(ag);
        craft_tensor_release(bg);
    }
    /* ga = g b^T (dots over N), gb = sum over the batch of a^T g (dots over B M) */
    double *ada = malloc((size_t)(B * M * K) * sizeof *ada), *adb = calloc((size_t)(K * N), sizeof *adb);
    for (int64_t p = 0; p < B; p++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++) {
                double s = 0;
                for (int64_t j = 0; j < N; j++) {
                    s += fabs((double)fdata(g)[(p * M + i) * N + j] * fdata(b)[k * N + j]);
                    adb[k * N + j] += fabs((double)fdata(a)[(p * M + i) * K + k] * fdata(g)[(p * M + i) * N + j]);
                }
                ada[(p * M + i) * K + k] = s;
            }
    int same;
    if (native) {
        CHECK_MSG(calls == 3, "forward and both gradients in bf16: %lld calls", (long long)calls);
        check_dots(fdata(ga[1]), fdata(ga[0]), ada, B * M * K, N, "matmul left gradient");
        /* the batch sum adds B fp32 partial products: B more fp32 roundings, inside the bound's 2x slack */
        check_dots(fdata(gb[1]), fdata(gb[0]), adb, K * N, B * M, "matmul right gradient");
    } else {
        CHECK(calls == 0);
        maxdiff(fdata(ga[1]), fdata(ga[0]), B * M * K, &same);
        CHECK(same);
    }
    free(ada);
    free(adb);
    craft_tensor *all[] = {a, b, g, ga[0], ga[1], gb[0], gb[1], y[0], y[1]};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* the largest |a - b| and the root-mean-square difference, relative to the largest |b| */
static void rel_err(const float *a, const float *b, int64_t n, double *mx, double *rms) {
    double m = 0, s = 0, big = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = fmax(m, d);
        s += d * d;
        big = fmax(big, fabs(b[i]));
    }
    *mx = m / big;
    *rms = sqrt(s / (double)n) / big;
}

static void test_sdpa(int causal, int masked) {
    check_test_name_ = causal ? "sdpa causal" : masked ? "sdpa masked" : "sdpa";
    int64_t B = 2, Hh = 3, L = 300, D = 40, s4[4] = {B, Hh, L, D}, ms[2] = {L, L};
    craft_tensor *q = randn(4, s4, 19), *k = randn(4, s4, 20), *v = randn(4, s4, 21), *g = randn(4, s4, 22);
    craft_tensor *mask = masked ? randn(2, ms, 23) : NULL;
    CHECK_OK(craft_scale_(q, 0.7));
    craft_tensor *grad[2][3], *y[2];
    int64_t calls = 0;
    for (int r = 0; r < 2; r++) {
        craft_tensor *in[3] = {clone_grad(q), clone_grad(k), clone_grad(v)};
        int64_t c0 = craft_bf16_kernel_calls();
        set_prec(r ? CRAFT_PREC_BF16_MIXED : CRAFT_PREC_FP32);
        CHECK_OK(craft_sdpa(in[0], in[1], in[2], mask, 0, causal, &y[r]));
        set_prec(CRAFT_PREC_FP32); /* backward outside the setting: it follows the forward */
        CHECK_OK(craft_backward(y[r], g, 0));
        calls = craft_bf16_kernel_calls() - c0;
        for (int i = 0; i < 3; i++) {
            grad[r][i] = craft_tensor_retain(in[i]->grad);
            craft_tensor_release(in[i]);
        }
    }
    int64_t n = B * Hh * L * D;
    if (native) {
        CHECK_MSG(calls == 2, "forward and backward in bf16: %lld calls", (long long)calls);
        static const char *names[3] = {"dq", "dk", "dv"};
        for (int i = 0; i < 3; i++) {
            double mx, rms;
            rel_err(fdata(grad[1][i]), fdata(grad[0][i]), n, &mx, &rms);
            CHECK_MSG(mx <= 2e-2 && rms <= 4e-3, "%s: max %.3g, rms %.3g of the largest element", names[i], mx,
                      rms);
            CHECK_MSG(mx > 1e-5, "%s within fp32 rounding of fp32 (%.3g): bf16 did not run", names[i], mx);
        }
    } else {
        int same;
        CHECK(calls == 0);
        maxdiff(fdata(grad[1][0]), fdata(grad[0][0]), n, &same);
        CHECK(same);
    }
    craft_tensor *all[] = {q, k, v, g, mask, y[0], y[1]};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++) craft_tensor_release(grad[r][i]);
}

static void test_setting(void) {
    check_test_name_ = "setting";
    int prev = -1;
    CHECK_OK(craft_set_compute_precision(CRAFT_PREC_BF16_MIXED, &prev));
    CHECK(prev == CRAFT_PREC_FP32 && craft_compute_precision() == CRAFT_PREC_BF16_MIXED);
    CHECK_ERR(craft_set_compute_precision(4, &prev), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "2 bf16-mixed") != NULL);
    CHECK(craft_compute_precision() == CRAFT_PREC_BF16_MIXED);
    set_prec(CRAFT_PREC_FP32);
}

int main(void) {
    native = bf16_native();
    test_setting();
    test_linear();
    test_conv();
    test_conv_winograd();
    test_matmul();
    test_sdpa(0, 0);
    test_sdpa(1, 0);
    test_sdpa(0, 1);
    return CHECK_SUMMARY();
}
