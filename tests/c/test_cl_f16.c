/* test_cl_f16.c: the fp16 compute precision (craft_set_compute_precision(CRAFT_PREC_FP16)) on the
 * OpenCL device under test (tests/run.sh runs this once per device): matmul, linear, conv2d and
 * sdpa that record no gradient read f16-rounded operands and compute in fp32.
 *
 * Each op is checked three ways against CPU fp32 results from the same inputs:
 *  1. the model: against the CPU op on the operands rounded to f16 (craft_to_dtype, round to
 *     nearest even, what the device's conversion does bit for bit), within fp32 accumulation
 *     (2 K 2^-24 sum |x w| per output for products; 1e-4 relative for attention, the fp32
 *     sdpa tolerance of test_cl_nn);
 *  2. the stated tolerance (docs/backends.md) against the CPU op on the original operands:
 *     rounding an operand to f16 moves it by at most u |x| + 2^-25 (u = 2^-11; 2^-25 is half
 *     the subnormal spacing), so a dot product over K terms moves by at most
 *     (2u + u^2) sum |x w| + 2^-25 (1 + u) sum (|x| + |w|) (+ fp32 accumulation). Attention:
 *     each score moves by at most delta = scale ((2u + u^2) max sum_d |q k| + 2^-25 (1 + u) D
 *     (max |q| + max |k|)), each softmax weight by a factor within e^(+-2 delta), so each output
 *     by at most (e^(2 delta) - 1) max |v| + u max |v| + 2^-25 (P stays fp32);
 *  3. that f16 really ran: the f16 kernel counter moved by one per call, and the result is much
 *     closer to the rounded-operand reference than to fp32 (8x at least; measured 10^3-10^4x).
 * Also: recorded ops stay fp32 (bit-identical, counter still), the weight cache serves a weight
 * once converted and follows an in-place change, values beyond f16's range become inf, and a
 * geometry the f16 kernels do not serve (sdpa head dim 300) computes fp32, uncounted. */
#include "check.h"
#include "core/backend.h"
#include <string.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */
#include "cl_check.h"

#define U (1.0 / 2048)       /* f16 unit roundoff, 2^-11 */
#define SUB (1.0 / 33554432) /* 2^-25: half the spacing of f16 subnormals */

static int set_prec(int p) {
    int prev = -1;
    craft_set_compute_precision(p, &prev);
    return prev;
}

/* x rounded to f16 and back (CPU) */
static craft_tensor *rounded(const craft_tensor *x) {
    craft_tensor *h = NULL, *r = NULL;
    if (craft_to_dtype(x, CRAFT_F16, &h) || craft_to_dtype(h, CRAFT_F32, &r))
        fprintf(stderr, "%s\n", craft_last_error());
    craft_tensor_release(h);
    return r;
}

static craft_tensor *absolute(const craft_tensor *x) {
    craft_tensor *a = NULL;
    if (craft_unary(CRAFT_ABS, x, &a)) fprintf(stderr, "%s\n", craft_last_error());
    return a;
}

static double maxabs(const craft_tensor *t) {
    float *p = read_all(t);
    double m = 0;
    for (int64_t i = 0; p && i < t->numel; i++)
        if (fabs(p[i]) > m) m = fabs(p[i]);
    free(p);
    return m;
}

/* A product's checks 1-3: y16 (device, f16) against r (CPU on rounded operands; ad_r its sums of
 * |x w|) and y32 (CPU fp32; ad its sums of |x w|, sk a bound on the sums of |x| + |w|) */
static void check_products(const char *what, const craft_tensor *y16, const craft_tensor *r,
                           const craft_tensor *ad_r, const craft_tensor *y32, const craft_tensor *ad,
                           int64_t K, double sk) {
    CHECK_MSG(y16 && r && ad_r && y32 && ad && y16->numel == y32->numel, "%s: missing results (%s)", what,
              craft_last_error());
    if (!(y16 && r && ad_r && y32 && ad) || y16->numel != y32->numel) return;
    CHECK_MSG(y16->device == DEV && y16->dtype == CRAFT_F32, "%s: result on %d as %d", what, y16->device,
              y16->dtype);
    float *a = read_all(y16), *b = read_all(r), *c = read_all(y32), *abr = read_all(ad_r), *ab = read_all(ad);
    double fp32 = 2.0 * (double)(K + 2) * ldexp(1.0, -24), e_model = 0, e_fp32 = 0;
    int64_t bad_model = 0, bad_stated = 0;
    for (int64_t i = 0; a && b && c && abr && ab && i < y16->numel; i++) {
        double em = fabs((double)a[i] - b[i]), es = fabs((double)a[i] - c[i]);
        if (!(em <= fp32 * abr[i] * 1.01 + 1e-30)) bad_model++;
        double stated = (2 * U + U * U + fp32) * ab[i] * 1.01 + SUB * (1 + U) * sk;
        if (!(es <= stated)) bad_stated++;
        if (em > e_model) e_model = em;
        if (es > e_fp32) e_fp32 = es;
    }
    CHECK_MSG(bad_model == 0, "%s: %lld of %lld outside fp32 accumulation of the rounded-operand result",
              what, (long long)bad_model, (long long)y16->numel);
    CHECK_MSG(bad_stated == 0, "%s: %lld of %lld outside the stated f16 bound", what, (long long)bad_stated,
              (long long)y16->numel);
    CHECK_MSG(e_fp32 > 8 * e_model, "%s: f16 did not run? |y - fp32| %.3g, |y - model| %.3g", what, e_fp32,
              e_model);
    fprintf(stderr, "  %s: largest |f16 - fp32| %.3g, |f16 - rounded-operand fp32| %.3g\n", what, e_fp32,
            e_model);
    free(a);
    free(b);
    free(c);
    free(abr);
    free(ab);
}

/* matmul (a [.., M, K] @ b [.., K, N]) on the device under fp16, against the CPU; one f16 call */
static void matmul_case(const char *what, int nda, const int64_t *sa, int ndb, const int64_t *sb, int trans_b,
                        uint64_t seed) {
    craft_tensor *a = cpu_uniform(nda, sa, seed, -1, 1), *b0 = cpu_uniform(ndb, sb, seed + 1, -2, 2),
                 *b = NULL;
    if (trans_b) CHECK_OK(craft_transpose(b0, -1, -2, &b)); /* a transposed view: the 'T' flag */
    else b = craft_tensor_retain(b0);
    craft_tensor *da = on_dev(a), *db = on_dev(b), *y16 = NULL, *y32 = NULL, *r = NULL, *ad = NULL,
                 *adr = NULL;
    craft_tensor *ra = rounded(a), *rb = rounded(b), *aa = absolute(a), *ab = absolute(b),
                 *ara = absolute(ra), *arb = absolute(rb);
    int prev = set_prec(CRAFT_PREC_FP16);
    int64_t c0 = craft_f16_kernel_calls();
    CHECK_OK(craft_matmul(da, db, &y16));
    CHECK_MSG(craft_f16_kernel_calls() - c0 == 1, "%s: %lld f16 kernel calls", what,
              (long long)(craft_f16_kernel_calls() - c0));
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_matmul(a, b, &y32)); /* the CPU under fp16 would compute fp32 anyway */
    CHECK_OK(craft_matmul(ra, rb, &r));
    CHECK_OK(craft_matmul(aa, ab, &ad));
    CHECK_OK(craft_matmul(ara, arb, &adr));
    int64_t K = sa[nda - 1];
    check_products(what, y16, r, adr, y32, ad, K, (double)K * (1.0 + 2.0) * 1.01);
    set_prec(prev);
    release(15, a, b0, b, da, db, y16, y32, r, ad, adr, ra, rb, aa, ab, ara);
    release(1, arb);
}

static void test_matmul(void) {
    check_test_name_ = "matmul";
    int64_t a1[2] = {70, 35}, b1[2] = {35, 67};
    matmul_case("matmul 70x35 @ 35x67", 2, a1, 2, b1, 0, 11);
    int64_t a2[2] = {1, 17}, b2[2] = {130, 17}; /* b as a transposed view: [17, 130] */
    matmul_case("matmul 1x17 @ (130x17)^T", 2, a2, 2, b2, 1, 13);
    int64_t a3[3] = {3, 33, 20}, b3[2] = {20, 65}; /* batched, b broadcast */
    matmul_case("matmul [3,33,20] @ [20,65]", 3, a3, 2, b3, 0, 15);
    int64_t a4[4] = {2, 1, 9, 40}, b4[4] = {1, 3, 40, 18}; /* offsets with no constant stride */
    matmul_case("matmul [2,1,9,40] @ [1,3,40,18]", 4, a4, 4, b4, 0, 17);
    int64_t a5[2] = {64, 300}, b5[2] = {300, 129};
    matmul_case("matmul 64x300 @ 300x129", 2, a5, 2, b5, 0, 19);
}

/* linear: bias or not, the weight cache (a hit, an in-place change), a recorded call */
static void test_linear(void) {
    check_test_name_ = "linear";
    int64_t M = 37, K = 300, N = 70, xs[2] = {M, K}, ws[2] = {N, K}, bs[1] = {N};
    craft_tensor *x = cpu_uniform(2, xs, 21, -1, 1), *w = cpu_uniform(2, ws, 22, -0.5f, 0.5f),
                 *b = cpu_uniform(1, bs, 23, -1, 1);
    craft_tensor *dx = on_dev(x), *dw = on_dev(w), *db = on_dev(b);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        craft_tensor *bb = with_bias ? b : NULL, *dbb = with_bias ? db : NULL;
        craft_tensor *y16 = NULL, *y16b = NULL, *y32 = NULL, *r = NULL, *ad = NULL, *adr = NULL;
        craft_tensor *rx = rounded(x), *rw = rounded(w), *ax = absolute(x), *aw = absolute(w),
                     *arx = absolute(rx), *arw = absolute(rw), *ab = bb ? absolute(bb) : NULL;
        int64_t h0, m0, h1, m1, e1;
        craft_cl_f16_cache_stats(NULL, NULL, &h0, &m0);
        int prev = set_prec(CRAFT_PREC_FP16);
        int64_t c0 = craft_f16_kernel_calls();
        CHECK_OK(craft_linear(dx, dw, dbb, &y16));
        CHECK_OK(craft_linear(dx, dw, dbb, &y16b)); /* the cached weight */
        CHECK(craft_f16_kernel_calls() - c0 == 2);
        craft_cl_f16_cache_stats(NULL, &e1, &h1, &m1);
        CHECK_MSG(m1 - m0 == (with_bias ? 0 : 1) && h1 - h0 == (with_bias ? 2 : 1) && e1 >= 1,
                  "cache: %lld misses, %lld hits", (long long)(m1 - m0), (long long)(h1 - h0));
        set_prec(CRAFT_PREC_FP32);
        CHECK_OK(craft_linear(x, w, bb, &y32));
        CHECK_OK(craft_linear(rx, rw, bb, &r));
        CHECK_OK(craft_linear(ax, aw, ab, &ad));
        CHECK_OK(craft_linear(arx, arw, ab, &adr));
        check_products(with_bias ? "linear with bias" : "linear", y16, r, adr, y32, ad, K, K * 1.5 * 1.01);
        compare_cl("the cached weight gives the same result", y16, y16b, 0, 0, DEV, 0);
        set_prec(prev);
        release(14, y16, y16b, y32, r, ad, adr, rx, rw, ax, aw, arx, arw, ab, NULL);
    }
    /* an in-place change of the weight: converted again, the result follows it */
    CHECK_OK(craft_scale_(dw, -0.5));
    CHECK_OK(craft_scale_(w, -0.5));
    int64_t m0, m1;
    craft_cl_f16_cache_stats(NULL, NULL, NULL, &m0);
    craft_tensor *y16 = NULL, *y32 = NULL, *r = NULL, *ad = NULL, *adr = NULL, *rx = rounded(x),
                 *rw = rounded(w), *ax = absolute(x), *aw = absolute(w), *arx = absolute(rx),
                 *arw = absolute(rw), *ab = absolute(b);
    int prev = set_prec(CRAFT_PREC_FP16);
    CHECK_OK(craft_linear(dx, dw, db, &y16));
    craft_cl_f16_cache_stats(NULL, NULL, NULL, &m1);
    CHECK(m1 - m0 == 1);
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_linear(x, w, b, &y32));
    CHECK_OK(craft_linear(rx, rw, b, &r));
    CHECK_OK(craft_linear(ax, aw, ab, &ad));
    CHECK_OK(craft_linear(arx, arw, ab, &adr));
    check_products("linear after an in-place weight change", y16, r, adr, y32, ad, K, K * 1.5 * 1.01);
    /* recorded (x requires grad, grad mode on): fp32, bit-identical to the fp32 device result */
    craft_tensor *xg = NULL, *yg = NULL, *yd32 = NULL;
    CHECK_OK(craft_linear(dx, dw, db, &yd32));
    CHECK_OK(craft_clone(dx, &xg));
    CHECK_OK(craft_set_requires_grad(xg, 1));
    set_prec(CRAFT_PREC_FP16);
    int64_t c0 = craft_f16_kernel_calls();
    CHECK_OK(craft_linear(xg, dw, db, &yg));
    CHECK(craft_f16_kernel_calls() == c0);
    CHECK_OK(craft_backward(yg, yd32, 0));
    CHECK(craft_f16_kernel_calls() == c0); /* backward: fp32 */
    float *p = read_all(yg), *q = read_all(yd32);
    CHECK_MSG(p && q && !memcmp(p, q, (size_t)(M * N) * sizeof(float)), "a recorded linear is fp32");
    free(p);
    free(q);
    set_prec(prev);
    /* the cap at run time: 0 frees the entries (nothing in use) and keeps no new one; restored,
     * a weight is kept again; then clearing the cache */
    int64_t bytes = -1, entries = -1, cap = craft_cl_f16_cache_cap_mb(0);
    CHECK(cap >= 0 && craft_cl_f16_cache_cap_mb(-1) == 0);
    craft_cl_f16_cache_stats(&bytes, &entries, NULL, NULL);
    CHECK(bytes == 0 && entries == 0);
    craft_tensor *yc = NULL;
    set_prec(CRAFT_PREC_FP16);
    CHECK_OK(craft_linear(dx, dw, db, &yc));
    craft_cl_f16_cache_stats(&bytes, &entries, NULL, NULL);
    CHECK(bytes == 0 && entries == 0);
    CHECK(craft_cl_f16_cache_cap_mb(cap) == 0);
    craft_tensor_release(yc);
    CHECK_OK(craft_linear(dx, dw, db, &yc));
    set_prec(prev);
    craft_cl_f16_cache_stats(&bytes, &entries, NULL, NULL);
    CHECK_MSG(entries == 1 && bytes == N * K * 2, "%lld entries, %lld bytes", (long long)entries, (long long)bytes);
    craft_tensor_release(yc);
    craft_cl_f16_cache_clear();
    craft_cl_f16_cache_stats(&bytes, &entries, NULL, NULL);
    CHECK(bytes == 0 && entries == 0);
    release(15, x, w, b, dx, dw, db, y16, y32, r, ad, adr, rx, rw, ax, aw);
    release(6, arx, arw, ab, xg, yg, yd32);
}

/* conv2d under fp16 on the device: geometry g = {N, C, H, W, O, k, stride, pad, dil, groups, bias} */
static void conv_case(const char *what, const int64_t *g, uint64_t seed) {
    int64_t xs[4] = {g[0], g[1], g[2], g[3]}, ws[4] = {g[4], g[1] / g[9], g[5], g[5]}, bs[1] = {g[4]};
    int stride[2] = {(int)g[6], (int)g[6]}, pad[2] = {(int)g[7], (int)g[7]}, dil[2] = {(int)g[8], (int)g[8]};
    int groups = (int)g[9];
    craft_tensor *x = cpu_uniform(4, xs, seed, -1, 1), *w = cpu_uniform(4, ws, seed + 1, -0.5f, 0.5f),
                 *b = g[10] ? cpu_uniform(1, bs, seed + 2, -1, 1) : NULL;
    craft_tensor *dx = on_dev(x), *dw = on_dev(w), *db = b ? on_dev(b) : NULL, *y16 = NULL, *y32 = NULL,
                 *r = NULL, *ad = NULL, *adr = NULL;
    craft_tensor *rx = rounded(x), *rw = rounded(w), *ax = absolute(x), *aw = absolute(w),
                 *arx = absolute(rx), *arw = absolute(rw), *ab = b ? absolute(b) : NULL;
    int prev = set_prec(CRAFT_PREC_FP16);
    int64_t c0 = craft_f16_kernel_calls();
    CHECK_OK(craft_conv2d(dx, dw, db, stride, pad, dil, groups, &y16));
    CHECK_MSG(craft_f16_kernel_calls() - c0 == 1, "%s: f16 kernel calls %lld", what,
              (long long)(craft_f16_kernel_calls() - c0));
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_conv2d(x, w, b, stride, pad, dil, groups, &y32));
    CHECK_OK(craft_conv2d(rx, rw, b, stride, pad, dil, groups, &r));
    CHECK_OK(craft_conv2d(ax, aw, ab, stride, pad, dil, groups, &ad));
    CHECK_OK(craft_conv2d(arx, arw, ab, stride, pad, dil, groups, &adr));
    int64_t K = g[1] / groups * g[5] * g[5];
    check_products(what, y16, r, adr, y32, ad, K, K * 1.5 * 1.01);
    set_prec(prev);
    release(15, x, w, b, dx, dw, db, y16, y32, r, ad, adr, rx, rw, ax, aw);
    release(3, arx, arw, ab);
}

static void test_conv(void) {
    check_test_name_ = "conv2d";
    /* N, C, H, W, O, k, stride, pad, dil, groups, bias */
    const int64_t cases[][11] = {
        {2, 24, 13, 11, 70, 3, 1, 1, 1, 1, 1}, /* more output channels than a 64-row tile, odd pixels */
        {2, 24, 13, 11, 40, 3, 2, 1, 1, 1, 0}, /* stride 2, no bias */
        {1, 8, 9, 17, 12, 3, 1, 0, 2, 2, 1},   /* dilation, groups, no padding */
        {3, 16, 7, 7, 16, 3, 1, 1, 1, 16, 1},  /* depthwise */
        {2, 70, 6, 5, 33, 1, 1, 0, 1, 1, 1},   /* 1x1, inner dim not a multiple of 16 */
    };
    const char *names[] = {"conv 3x3 24->70", "conv 3x3 stride 2 no bias", "conv dilated grouped",
                           "conv depthwise", "conv 1x1 70->33"};
    for (int i = 0; i < 5; i++) conv_case(names[i], cases[i], 100 + 10 * i);
}

/* sdpa under fp16: q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv], a mask [Lq, Lk] or none */
static void sdpa_case(const char *what, int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv,
                      int with_mask, int causal, uint64_t seed) {
    int64_t qs[4] = {B, 2, Lq, D}, ks[4] = {B, 2, Lk, D}, vs[4] = {B, 2, Lk, Dv}, ms[2] = {Lq, Lk};
    craft_tensor *q = cpu_uniform(4, qs, seed, -2, 2), *k = cpu_uniform(4, ks, seed + 1, -2, 2),
                 *v = cpu_uniform(4, vs, seed + 2, -1, 1),
                 *m = with_mask ? cpu_uniform(2, ms, seed + 3, -1, 0) : NULL;
    craft_tensor *dq = on_dev(q), *dk = on_dev(k), *dv = on_dev(v), *dm = m ? on_dev(m) : NULL;
    craft_tensor *rq = rounded(q), *rk = rounded(k), *rv = rounded(v), *y16 = NULL, *y32 = NULL, *r = NULL,
                 *yd32 = NULL;
    int prev = set_prec(CRAFT_PREC_FP16);
    int64_t c0 = craft_f16_kernel_calls();
    CHECK_OK(craft_sdpa(dq, dk, dv, dm, 0, causal, &y16));
    int served = Dv <= 256;
    CHECK_MSG(craft_f16_kernel_calls() - c0 == served, "%s: f16 kernel calls %lld", what,
              (long long)(craft_f16_kernel_calls() - c0));
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_sdpa(q, k, v, m, 0, causal, &y32));
    CHECK_OK(craft_sdpa(rq, rk, rv, m, 0, causal, &r));
    if (!served) { /* computed fp32: the device's fp32 result, bit for bit */
        CHECK_OK(craft_sdpa(dq, dk, dv, dm, 0, causal, &yd32));
        float *p = read_all(y16), *pq = read_all(yd32);
        CHECK_MSG(p && pq && !memcmp(p, pq, (size_t)y16->numel * sizeof(float)), "%s: not fp32", what);
        free(p);
        free(pq);
    } else {
        /* the bound of the header, from global maxima */
        float *qp = read_all(q), *kp = read_all(k);
        double mq = maxabs(q), mk = maxabs(k), mv = maxabs(v), mdot = 0, scale = 1 / sqrt((double)D);
        for (int64_t bh = 0; bh < B * 2; bh++)
            for (int64_t i = 0; i < Lq; i++)
                for (int64_t j = 0; j < Lk; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < D; d++)
                        s += fabs((double)qp[(bh * Lq + i) * D + d] * kp[(bh * Lk + j) * D + d]);
                    if (s > mdot) mdot = s;
                }
        free(qp);
        free(kp);
        double delta = scale * ((2 * U + U * U) * mdot + SUB * (1 + U) * D * (mq + mk)),
               bound = (exp(2 * delta) - 1 + U) * mv + SUB + 1e-5 * mv;
        float *a = read_all(y16), *bm = read_all(r), *c = read_all(y32);
        double e_model = 0, e_fp32 = 0;
        int64_t bad_model = 0, bad_stated = 0;
        for (int64_t i = 0; a && bm && c && i < y16->numel; i++) {
            double em = fabs((double)a[i] - bm[i]), es = fabs((double)a[i] - c[i]);
            if (!(em <= 1e-4 * fabs(bm[i]) + 1e-5 * mv)) bad_model++;
            if (!(es <= bound)) bad_stated++;
            if (em > e_model) e_model = em;
            if (es > e_fp32) e_fp32 = es;
        }
        CHECK_MSG(bad_model == 0,
                  "%s: %lld outside fp32 tolerance of the rounded-operand result (worst %.3g)", what,
                  (long long)bad_model, e_model);
        CHECK_MSG(bad_stated == 0, "%s: %lld outside the stated bound %.3g (worst %.3g)", what,
                  (long long)bad_stated, bound, e_fp32);
        CHECK_MSG(e_fp32 > 8 * e_model, "%s: f16 did not run? |y - fp32| %.3g, |y - model| %.3g", what,
                  e_fp32, e_model);
        fprintf(stderr, "  %s: largest |f16 - fp32| %.3g (bound %.3g), |f16 - rounded-operand fp32| %.3g\n",
                what, e_fp32, bound, e_model);
        free(a);
        free(bm);
        free(c);
    }
    set_prec(prev);
    release(15, q, k, v, m, dq, dk, dv, dm, rq, rk, rv, y16, y32, r, yd32);
}

static void test_sdpa(void) {
    check_test_name_ = "sdpa";
    sdpa_case("sdpa 2x2x37x29 D 40", 2, 37, 29, 40, 40, 0, 0, 201);
    sdpa_case("sdpa masked, Dv 24", 1, 50, 70, 32, 24, 1, 0, 211);
    sdpa_case("sdpa causal, Lq > Lk", 2, 45, 33, 16, 16, 0, 1, 221);
    sdpa_case("sdpa causal + mask", 1, 70, 70, 64, 64, 1, 1, 231);
    sdpa_case("sdpa Dv 300 (fp32: no f16 kernel serves it)", 1, 5, 9, 8, 300, 0, 0, 241);
}

/* beyond f16's range (+-65504) an operand becomes inf, and so do the products that use it */
static void test_range(void) {
    check_test_name_ = "range";
    int64_t s[2] = {2, 3};
    float xv[6] = {7e4f, 1, 1, 1, 1, 1}, wv[6] = {1, 0, 0, 0, 1, 0};
    craft_tensor *x = NULL, *w = NULL, *dx, *dw, *y = NULL;
    CHECK_OK(craft_from_data(2, s, CRAFT_F32, xv, &x));
    CHECK_OK(craft_from_data(2, s, CRAFT_F32, wv, &w));
    dx = on_dev(x);
    dw = on_dev(w);
    int prev = set_prec(CRAFT_PREC_FP16);
    CHECK_OK(craft_linear(dx, dw, NULL, &y));
    set_prec(prev);
    float *p = y ? read_all(y) : NULL;
    /* y[0, 1] = inf * 0 + ...: NaN, as IEEE arithmetic has it */
    CHECK_MSG(p && isinf(p[0]) && p[0] > 0 && isnan(p[1]) && p[2] == 1 && p[3] == 1,
              "70000 in f16: %g %g %g %g", p ? p[0] : 0, p ? p[1] : 0, p ? p[2] : 0, p ? p[3] : 0);
    free(p);
    release(5, x, w, dx, dw, y);
}

/* the CPU has no f16 kernels: under fp16 it computes fp32, bit for bit, and counts nothing */
static void test_cpu_fp32(void) {
    check_test_name_ = "cpu";
    int64_t sa[2] = {9, 33}, sb[2] = {33, 7};
    craft_tensor *a = cpu_uniform(2, sa, 6, -1, 1), *b = cpu_uniform(2, sb, 7, -1, 1), *y32 = NULL,
                 *y16 = NULL;
    CHECK_OK(craft_matmul(a, b, &y32));
    int prev = set_prec(CRAFT_PREC_FP16);
    CHECK(craft_compute_precision() == CRAFT_PREC_FP16);
    int64_t c0 = craft_f16_kernel_calls();
    CHECK_OK(craft_matmul(a, b, &y16));
    CHECK(craft_f16_kernel_calls() == c0);
    set_prec(prev);
    CHECK(!memcmp(craft_tensor_data(y32), craft_tensor_data(y16), 9 * 7 * sizeof(float)));
    CHECK_ERR(craft_set_compute_precision(7, NULL), CRAFT_EINVAL);
    release(4, a, b, y32, y16);
}

int main(void) {
    int st = cl_test_open("test_cl_f16");
    if (st >= 0) return st;
    RUN(test_cpu_fp32);
    RUN(test_matmul);
    RUN(test_linear);
    RUN(test_conv);
    RUN(test_sdpa);
    RUN(test_range);
    return CHECK_SUMMARY();
}
