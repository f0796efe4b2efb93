/* test_bf16.c: the bf16 compute precision (craft_set_compute_precision) on the CPU.
 *
 * Tolerances come from bf16's 8-bit significand: rounding an operand to bf16 changes it by at
 * most u = 2^-9 of itself, so a product of two rounded operands is off by at most 2u + u^2 of
 * |x w|, and a dot product over K terms by at most (2u + u^2) sum |x_k w_k|, plus fp32
 * accumulation (K 2^-24 sum |x_k w_k|, doubled for the fp32 reference). Each output element is
 * checked against that bound computed from its own terms (in double). Attention: each score is
 * off by at most delta = scale (2u + u^2) max_j sum_d |q_d k_jd|, which moves each softmax
 * weight by a factor in [e^-2delta, e^2delta], so the output by at most (e^2delta - 1) max |v|;
 * rounding P and V adds 2u + u^2 of sum p |v| and the row sum's rounding u: the bound is
 * (e^2delta - 1 + 3u + u^2) max_j |v_j| per output column, plus fp32 noise.
 * That bf16 really ran is checked too: the bf16 kernel counter moves, and the result differs
 * from fp32 by more than fp32 rounding could (bf16 rounding is 2^15 times coarser).
 * Recorded ops (an input requiring grad, grad mode on) and backward stay bit-identical to fp32.
 * On a CPU without AVX512-BF16 the bf16 setting computes fp32: then everything is checked to be
 * bit-identical to fp32 and the counter not to move. */
#include "bf16_bounds.h"

static int native;

/* y = x w^T + b: fp32, bf16, bf16 again (the cached weight), a recorded call, and the weight
 * changed in place (the cache must not serve the old one) */
static void test_linear(void) {
    check_test_name_ = "linear";
    int64_t M = 37, K = 300, N = 45, xs[2] = {M, K}, ws[2] = {N, K}, bs[1] = {N};
    craft_tensor *x = randn(2, xs, 1), *w = randn(2, ws, 2), *b = randn(1, bs, 3), *y32, *y16, *y16b, *yg,
                 *y2;
    CHECK(x && w && b);
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_linear(x, w, b, &y32));
    CHECK(set_prec(CRAFT_PREC_BF16) == CRAFT_PREC_FP32);
    CHECK(craft_compute_precision() == CRAFT_PREC_BF16);
    int64_t c0 = craft_bf16_kernel_calls(), h0, m0, h1, m1;
    craft_cpu_bf16_cache_stats(NULL, NULL, &h0, &m0);
    CHECK_OK(craft_linear(x, w, b, &y16));
    CHECK_OK(craft_linear(x, w, b, &y16b));
    craft_cpu_bf16_cache_stats(NULL, NULL, &h1, &m1);
    int same;
    double *ad = malloc((size_t)(M * N) * sizeof *ad);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = fabs(fdata(b)[j]);
            for (int64_t k = 0; k < K; k++) s += fabs((double)fdata(x)[i * K + k] * fdata(w)[j * K + k]);
            ad[i * N + j] = s;
        }
    if (native) {
        CHECK(craft_bf16_kernel_calls() - c0 == 2);
        double seen = check_dots(fdata(y16), fdata(y32), ad, M * N, K, "linear");
        CHECK_MSG(seen > 4, "linear: bf16 result within fp32 rounding of fp32 (%.3g): bf16 did not run",
                  seen);
        maxdiff(fdata(y16), fdata(y16b), M * N, &same);
        CHECK_MSG(same, "the cached weight gives the same result");
        CHECK(m1 - m0 == 1 && h1 - h0 == 1); /* converted once, then served from the cache */
    } else {
        CHECK(craft_bf16_kernel_calls() == c0);
        maxdiff(fdata(y16), fdata(y32), M * N, &same);
        CHECK_MSG(same, "without native bf16 the setting computes fp32");
    }
    /* recorded: x requires grad, grad mode on -> fp32, bit-identical, and so is the backward */
    craft_tensor *xg;
    CHECK_OK(craft_clone(x, &xg));
    CHECK_OK(craft_set_requires_grad(xg, 1));
    c0 = craft_bf16_kernel_calls();
    CHECK_OK(craft_linear(xg, w, b, &yg));
    maxdiff(fdata(yg), fdata(y32), M * N, &same);
    CHECK_MSG(same, "a recorded linear is bit-identical to fp32");
    CHECK(craft_bf16_kernel_calls() == c0);
    craft_tensor *gx32 = NULL;
    CHECK_OK(craft_backward(yg, y32, 0));   /* any gradient: y32 itself */
    CHECK(craft_bf16_kernel_calls() == c0); /* backward: fp32 */
    set_prec(CRAFT_PREC_FP32);
    craft_tensor *xg2, *yg2;
    CHECK_OK(craft_clone(x, &xg2));
    CHECK_OK(craft_set_requires_grad(xg2, 1));
    CHECK_OK(craft_linear(xg2, w, b, &yg2));
    CHECK_OK(craft_backward(yg2, y32, 0));
    gx32 = xg2->grad;
    CHECK(xg->grad && gx32);
    if (xg->grad && gx32) {
        maxdiff(fdata(xg->grad), fdata(gx32), M * K, &same);
        CHECK_MSG(same, "the gradient under the bf16 setting is bit-identical to fp32's");
    }
    /* a weight changed in place: the next bf16 call follows it */
    CHECK_OK(craft_scale_(w, -0.5));
    craft_tensor *yw32;
    CHECK_OK(craft_linear(x, w, b, &yw32));
    set_prec(CRAFT_PREC_BF16);
    CHECK_OK(craft_linear(x, w, b, &y2));
    for (int64_t i = 0; i < M * N; i++) ad[i] = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = fabs(fdata(b)[j]);
            for (int64_t k = 0; k < K; k++) s += fabs((double)fdata(x)[i * K + k] * fdata(w)[j * K + k]);
            ad[i * N + j] = s;
        }
    check_dots(fdata(y2), fdata(yw32), ad, M * N, K, "linear after an in-place weight change");
    set_prec(CRAFT_PREC_FP32);
    free(ad);
    craft_tensor *all[] = {x, w, b, y32, y16, y16b, yg, xg, xg2, yg2, yw32, y2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* batched matmul with a broadcast operand and a transposed view */
static void test_matmul(void) {
    check_test_name_ = "matmul";
    int64_t B = 3, M = 20, K = 130, N = 17, as[3] = {B, M, K}, bs[2] = {N, K};
    craft_tensor *a = randn(3, as, 4), *bt = randn(2, bs, 5), *b, *y32, *y16;
    CHECK_OK(craft_transpose(bt, 0, 1, &b)); /* [K, N], a transposed view */
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_matmul(a, b, &y32));
    set_prec(CRAFT_PREC_BF16);
    int64_t c0 = craft_bf16_kernel_calls();
    CHECK_OK(craft_matmul(a, b, &y16));
    set_prec(CRAFT_PREC_FP32);
    double *ad = malloc((size_t)(B * M * N) * sizeof *ad);
    for (int64_t p = 0; p < B; p++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += fabs((double)fdata(a)[(p * M + i) * K + k] * fdata(bt)[j * K + k]);
                ad[(p * M + i) * N + j] = s;
            }
    int same;
    if (native) {
        CHECK(craft_bf16_kernel_calls() - c0 == 1);
        double seen = check_dots(fdata(y16), fdata(y32), ad, B * M * N, K, "matmul");
        CHECK_MSG(seen > 4, "matmul: within fp32 rounding of fp32 (%.3g): bf16 did not run", seen);
    } else {
        maxdiff(fdata(y16), fdata(y32), B * M * N, &same);
        CHECK(same);
    }
    free(ad);
    craft_tensor *all[] = {a, bt, b, y32, y16};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* conv2d, 3x3 stride 2 with padding (a direct kernel: Winograd stays fp32), bias; checked
 * against per-output sums of |x w| */
static void test_conv(void) {
    check_test_name_ = "conv2d";
    int64_t N = 2, C = 24, H = 13, W = 11, O = 40, KH = 3, KW = 3;
    int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C, KH, KW}, bs[1] = {O};
    int stride[2] = {2, 2}, pad[2] = {1, 1}, dil[2] = {1, 1};
    craft_tensor *x = randn(4, xs, 6), *w = randn(4, ws, 7), *b = randn(1, bs, 8), *y32, *y16, *y16b;
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_conv2d(x, w, b, stride, pad, dil, 1, &y32));
    set_prec(CRAFT_PREC_BF16);
    int64_t c0 = craft_bf16_kernel_calls();
    CHECK_OK(craft_conv2d(x, w, b, stride, pad, dil, 1, &y16));
    CHECK_OK(craft_conv2d(x, w, b, stride, pad, dil, 1, &y16b)); /* the cached weights */
    set_prec(CRAFT_PREC_FP32);
    int64_t OH = y32->shape[2], OW = y32->shape[3], n = N * O * OH * OW;
    double *ad = malloc((size_t)n * sizeof *ad);
    const float *xp = fdata(x), *wp = fdata(w);
    for (int64_t ni = 0; ni < N; ni++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double s = fabs(fdata(b)[o]);
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += fabs((double)xp[((ni * C + c) * H + ih) * W + iw] *
                                          wp[((o * C + c) * KH + kh) * KW + kw]);
                            }
                    ad[((ni * O + o) * OH + oh) * OW + ow] = s;
                }
    int same;
    if (native) {
        CHECK(craft_bf16_kernel_calls() - c0 == 2);
        double seen = check_dots(fdata(y16), fdata(y32), ad, n, C * KH * KW, "conv2d");
        CHECK_MSG(seen > 4, "conv2d: within fp32 rounding of fp32 (%.3g): bf16 did not run", seen);
        maxdiff(fdata(y16), fdata(y16b), n, &same);
        CHECK_MSG(same, "the cached conv weights give the same result");
    } else {
        maxdiff(fdata(y16), fdata(y32), n, &same);
        CHECK(same);
    }
    free(ad);
    craft_tensor *all[] = {x, w, b, y32, y16, y16b};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* attention over several key blocks (Lk > the 256-key tile), causal and not, with an additive
 * [L, L] mask broadcast over batch and heads (added in fp32: it does not change the bound); an
 * odd L (the packed tile product's last key pair half empty), a head dim that is not a multiple
 * of 16 and an odd one (oneDNN's tiles instead of the packed product) */
static void test_sdpa(int causal, int masked, int64_t L, int64_t D) {
    check_test_name_ = causal ? "sdpa causal" : masked ? "sdpa masked" : "sdpa";
    int64_t B = 2, Hh = 3, s4[4] = {B, Hh, L, D}, ms[2] = {L, L};
    craft_tensor *q = randn(4, s4, 9), *k = randn(4, s4, 10), *v = randn(4, s4, 11), *y32, *y16;
    craft_tensor *mask = masked ? randn(2, ms, 12) : NULL;
    CHECK_OK(craft_scale_(q, 0.7)); /* scores of a few units: softmax neither flat nor one-hot */
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_sdpa(q, k, v, mask, 0, causal, &y32));
    set_prec(CRAFT_PREC_BF16);
    int64_t c0 = craft_bf16_kernel_calls();
    CHECK_OK(craft_sdpa(q, k, v, mask, 0, causal, &y16));
    set_prec(CRAFT_PREC_FP32);
    const float *qp = fdata(q), *kp = fdata(k), *vp = fdata(v), *a = fdata(y16), *r = fdata(y32);
    double scale = 1 / sqrt((double)D), worst = 0, seen = 0;
    int bad = 0;
    for (int64_t m = 0; m < B * Hh; m++) {
        double vmax[128] = {0}; /* D <= 128 */
        for (int64_t j = 0; j < L; j++)
            for (int64_t d = 0; d < D; d++) vmax[d] = fmax(vmax[d], fabs(vp[(m * L + j) * D + d]));
        for (int64_t i = 0; i < L; i++) {
            double delta = 0;
            for (int64_t j = 0; j < (causal ? i + 1 : L); j++) {
                double s = 0;
                for (int64_t d = 0; d < D; d++)
                    s += fabs((double)qp[(m * L + i) * D + d] * kp[(m * L + j) * D + d]);
                delta = fmax(delta, scale * (2 * U + U * U + 2 * D * ldexp(1.0, -24)) * s);
            }
            for (int64_t d = 0; d < D; d++) {
                double bound = (exp(2 * delta) - 1 + 3 * U + U * U) * vmax[d] + 1e-6;
                double e = fabs((double)a[(m * L + i) * D + d] - r[(m * L + i) * D + d]);
                if (e > bound) bad++;
                worst = fmax(worst, e / bound);
                seen = fmax(seen, e / (1e-6 * vmax[d] + 1e-30));
            }
        }
    }
    int same;
    if (native) {
        CHECK(craft_bf16_kernel_calls() - c0 == 1);
        CHECK_MSG(bad == 0, "%d outputs outside the bf16 attention bound (worst %.3g of it)", bad, worst);
        CHECK_MSG(seen > 10, "sdpa within 1e-6 of fp32 (%.3g): bf16 did not run", seen);
    } else {
        maxdiff(a, r, B * Hh * L * D, &same);
        CHECK(same);
    }
    craft_tensor *all[] = {q, k, v, y32, y16, mask};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

/* a 3x3 stride-1 conv the Winograd rule takes: it stays on fp32 Winograd (bit-identical, not
 * counted), or, when the scratchpad cap refuses Winograd, runs bf16 direct (counted, in bound) */
static void test_conv_winograd(void) {
    check_test_name_ = "conv2d winograd";
    int64_t xs[4] = {2, 32, 16, 16}, ws[4] = {32, 32, 3, 3};
    int one[2] = {1, 1};
    craft_tensor *x = randn(4, xs, 13), *w = randn(4, ws, 14), *y32, *y16;
    set_prec(CRAFT_PREC_FP32);
    CHECK_OK(craft_conv2d(x, w, NULL, one, one, one, 1, &y32));
    set_prec(CRAFT_PREC_BF16);
    int64_t c0 = craft_bf16_kernel_calls();
    CHECK_OK(craft_conv2d(x, w, NULL, one, one, one, 1, &y16));
    set_prec(CRAFT_PREC_FP32);
    int same, n = 2 * 32 * 16 * 16;
    double d = maxdiff(fdata(y16), fdata(y32), n, &same), scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(fdata(y32)[i]));
    int counted = craft_bf16_kernel_calls() != c0;
    CHECK_MSG((same && !counted) || (!same && counted && d <= 0.02 * scale),
              "winograd conv under bf16: same %d, counted %d, max diff %.3g of %.3g", same, counted, d, scale);
    craft_tensor *all[] = {x, w, y32, y16};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

static void test_setting(void) {
    check_test_name_ = "setting";
    int prev = 7, kernels = -1;
    CHECK_ERR(craft_set_compute_precision(5, &prev), CRAFT_EINVAL);
    CHECK(prev == 7 && craft_compute_precision() == CRAFT_PREC_FP32);
    CHECK(strstr(craft_last_error(), "unknown precision 5") != NULL);
    CHECK_OK(craft_precision_kernels(0, CRAFT_PREC_BF16, &kernels));
    CHECK(kernels == (native ? 4 : 0));
    CHECK_OK(craft_precision_kernels(0, CRAFT_PREC_BF16_MIXED, &kernels));
    CHECK(kernels == (native ? 4 : 0));
    CHECK_ERR(craft_precision_kernels(0, CRAFT_PREC_BF16, NULL), CRAFT_EINVAL);
}

/* The measured bf16 / fp32 multiply-add rate: 0 without native bf16 (the suite's second run caps
 * oneDNN at avx512_core), else a rate within what any x86 core does (vdpbf16ps at 1/4 to 4 times
 * the vfmadd231ps rate per multiply-add), measured once: a second call returns the same value. */
static void test_speedup(void) {
    check_test_name_ = "bf16_speedup";
    double s = craft_cpu_bf16_speedup();
    if (getenv("CRAFT_BF16_SPEEDUP")) return; /* replaced: the Lua suite checks that */
    if (!native)
        CHECK(s == 0);
    else
        CHECK(s > 0.25 && s < 4);
    CHECK(craft_cpu_bf16_speedup() == s);
    printf("bf16 speedup measured: %.2f\n", s);
}

/* The weight cache's cap set at run time: 0 keeps nothing (every call converts, the result the
 * same), a cap that fits keeps the weight (one miss, then hits), shrinking it to 0 frees the
 * entry at once; each call returns the cap it replaced. */
static void test_cache_cap(void) {
    check_test_name_ = "cache cap";
    int64_t xs[2] = {8, 64}, ws[2] = {32, 64};
    craft_tensor *x = randn(2, xs, 21), *w = randn(2, ws, 22), *y0 = NULL, *y1 = NULL, *y2 = NULL;
    set_prec(CRAFT_PREC_BF16);
    craft_cpu_bf16_cache_clear();
    int64_t prev = craft_cpu_bf16_cache_cap_mb(0), bytes, entries, h0, m0, h1, m1;
    CHECK(prev >= 0);
    CHECK(craft_cpu_bf16_cache_cap_mb(-1) == 0); /* reading leaves it */
    craft_cpu_bf16_cache_stats(NULL, NULL, &h0, &m0);
    CHECK_OK(craft_linear(x, w, NULL, &y0));
    CHECK_OK(craft_linear(x, w, NULL, &y1));
    craft_cpu_bf16_cache_stats(&bytes, &entries, &h1, &m1);
    int same;
    maxdiff(fdata(y0), fdata(y1), 8 * 32, &same);
    CHECK_MSG(same, "converted each time, the same result");
    CHECK(bytes == 0 && entries == 0 && h1 == h0);
    CHECK(m1 - m0 == (native ? 2 : 0));
    CHECK(craft_cpu_bf16_cache_cap_mb(1) == 0);
    CHECK_OK(craft_linear(x, w, NULL, &y2));
    craft_tensor_release(y2);
    CHECK_OK(craft_linear(x, w, NULL, &y2));
    int64_t h2, m2;
    craft_cpu_bf16_cache_stats(&bytes, &entries, &h2, &m2);
    if (native) {
        CHECK_MSG(entries == 1 && bytes == 32 * 64 * 2, "%lld entries, %lld bytes", (long long)entries,
                  (long long)bytes);
        CHECK(m2 - m1 == 1 && h2 - h1 == 1);
        maxdiff(fdata(y0), fdata(y2), 8 * 32, &same);
        CHECK_MSG(same, "the cached weight, the same result");
    }
    CHECK(craft_cpu_bf16_cache_cap_mb(0) == 1); /* shrinking frees the unused entry */
    craft_cpu_bf16_cache_stats(&bytes, &entries, NULL, NULL);
    CHECK(bytes == 0 && entries == 0);
    /* a cap beyond what 64 bits of bytes hold is the largest that they do, not an overflow */
    CHECK(craft_cpu_bf16_cache_cap_mb(INT64_MAX) == 0);
    CHECK(craft_cpu_bf16_cache_cap_mb(-1) == INT64_MAX >> 20);
    CHECK(craft_cpu_bf16_cache_cap_mb(prev) == INT64_MAX >> 20);
    set_prec(CRAFT_PREC_FP32);
    craft_tensor *all[] = {x, w, y0, y1, y2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

int main(void) {
    native = bf16_native();
    test_cache_cap();
    test_setting();
    test_speedup();
    test_linear();
    test_matmul();
    test_conv();
    test_conv_winograd();
    test_sdpa(0, 0, 300, 40);
    test_sdpa(1, 0, 300, 40);
    test_sdpa(0, 1, 300, 40);
    test_sdpa(0, 0, 301, 72);
    test_sdpa(1, 1, 263, 15);
    return CHECK_SUMMARY();
}
