/* fuzz_api.c: the engine's argument checking, as the Lua binding reaches it. The input bytes
 * are a program: each step picks an op of the public API and its arguments (shapes, dims,
 * starts/ends/steps, paddings, strides, groups, dtype and device codes, op codes, scalars
 * including NaN and infinities, index lists; small values most of the time, any int64 or int
 * now and then) and applies it to tensors made so far. Every call must either succeed with a
 * well-formed tensor or fail with a status and a non-empty message: no crash, no sanitizer
 * report, no leak. Results join a small pool that later steps use; some tensors require grad,
 * so that ops record graphs and backward runs on them (with wrong gradients too).
 *
 * Bounded work: the engine runs with CRAFT_POOL_LIMIT_MB=64, so a legal but huge result fails
 * with craft's ENOMEM error instead of being allocated; ops that compute (not views) run only
 * on inputs of at most 4096 elements, row-wise ops also not beside a huge size of an empty
 * tensor (cheap()), and the few whose cost grows with an argument (convolution windows,
 * interpolation sizes, padding) skip arguments that would take seconds. No OpenCL platform is
 * visible (OCL_ICD_VENDORS=/dev/null): every device code other than 0 must fail cleanly.
 *
 * Byte format: an op byte below 242 selects one of the first 22 ops (byte % 22: the format
 * the regression inputs in tests/fuzz/crashes/api/ were found with); 242..255 select one of
 * the later ops by the next byte. FUZZ_API_TRACE=1 prints each call's status and result shape. */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "craft.h"

/* a request the allocator cannot serve must come back as craft's ENOMEM error, not an ASan abort */
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static int trace_on;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    setenv("CRAFT_POOL_LIMIT_MB", "64", 1);
    setenv("CRAFT_POOL_CACHE_MB", "16", 1);
    setenv("OCL_ICD_VENDORS", "/dev/null", 1); /* the ICD loader then finds no platform */
    trace_on = getenv("FUZZ_API_TRACE") != NULL;
    craft_set_num_threads(1);
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t n, i;
} reader;
static unsigned u8(reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static int64_t i64(reader *r) {
    int64_t v = 0;
    for (int k = 0; k < 8; k++) v = (int64_t)((uint64_t)v << 8 | u8(r));
    return v;
}
/* mostly small (-3..12), sometimes any int64 */
static int64_t num(reader *r) {
    unsigned b = u8(r);
    if (b < 240) return (int64_t)(b % 16) - 3;
    return i64(r);
}
static int small_int(reader *r) {
    unsigned b = u8(r);
    if (b < 248) return (int)(b % 12) - 4;
    return (int)(uint32_t)i64(r);
}
/* a scalar argument: ordinary values, the edges of the float and integer ranges, NaN, any bits */
static double dbl(reader *r) {
    static const double tab[] = {0.0,    1.0,  -1.0, 0.5,    2.0,     -0.0,         1e-12,       1e300,
                                 -1e300, 3e38, 1e39, 9.3e18, -9.3e18, 2147483648.0, 4294967296.5};
    unsigned b = u8(r) % 18;
    if (b < 15) return tab[b];
    if (b == 15) return INFINITY;
    if (b == 16) return NAN;
    int64_t v = i64(r);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}
static int device_code(reader *r) { /* never 0 here: 1 + n is cl:n, none exists */
    unsigned b = u8(r);
    if (b < 100) return 50 + (int)(b % 50);
    if (b < 200) return 1 + (int)(b - 100);
    if (b < 254) return -(int)(b - 199);
    return b == 254 ? INT32_MAX : INT32_MIN;
}

#define POOL 8
static craft_tensor *pool[POOL];
static int npool;
static int auto_grad; /* after a requires_grad op, new float tensors require grad: graphs get recorded */

static void failed(int rc) {
    /* a failure must say why: a non-empty message */
    const char *m = craft_last_error();
    if (rc != CRAFT_OK && (!m || !m[0])) __builtin_trap();
}
static int well_formed(const craft_tensor *t) {
    if (t->ndim < 0 || t->ndim > 8 || t->numel < 0 || t->refcount < 1 || !t->storage) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) return t->numel == 0;
    for (int i = 0; i < t->ndim; i++)
        if (__builtin_mul_overflow(n, t->shape[i], &n)) return 0;
    return n == t->numel;
}
static void keep(int rc, craft_tensor *t) {
    if (trace_on) {
        fprintf(stderr, "T rc=%d", rc);
        if (!rc && t) {
            fprintf(stderr, " nd=%d n=%lld dt=%d", t->ndim, (long long)t->numel, t->dtype);
            for (int i = 0; i < t->ndim; i++) fprintf(stderr, " %lld", (long long)t->shape[i]);
        }
        fprintf(stderr, "\n");
    }
    failed(rc);
    if (rc != CRAFT_OK || !t) return;
    if (!well_formed(t)) __builtin_trap();
    if (npool == POOL) {
        craft_tensor_release(pool[0]);
        memmove(pool, pool + 1, (POOL - 1) * sizeof *pool);
        npool--;
    }
    pool[npool++] = t;
}
/* a call that returns no tensor */
static void status(int rc) {
    if (trace_on) fprintf(stderr, "S rc=%d\n", rc);
    failed(rc);
}
/* A tensor from the pool; byte 255 gives NULL (every tensor argument must be checked for it) */
static craft_tensor *pick(reader *r) {
    unsigned b = u8(r);
    return npool && b != 255 ? pool[b % npool] : NULL;
}
/* NULL is cheap: the engine must refuse it at once */
static int computable(const craft_tensor *t) { return !t || t->numel <= 4096; }
/* ... and without a huge size beside a 0: ops that keep per-row state or loop over rows
 * (normalisations, softmax, attention, losses) do work in the product of the other sizes even
 * when the result is empty: [2^31, 0] takes seconds, legitimately */
static int cheap(const craft_tensor *t) {
    if (!computable(t)) return 0;
    if (!t) return 1;
    int64_t s = 1;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > 1 && __builtin_mul_overflow(s, t->shape[i], &s)) return 0;
    return s <= (1 << 20);
}

static void make(reader *r) {
    int nd = (int)(u8(r) % 6);
    int64_t shape[8] = {0};
    for (int i = 0; i < nd; i++) shape[i] = (u8(r) < 250) ? (int64_t)(u8(r) % 7) : num(r);
    int dtype = (u8(r) < 240) ? CRAFT_F32 : small_int(r);
    int device = (u8(r) < 250) ? 0 : device_code(r);
    craft_tensor *t = NULL;
    /* a request past what fits must fail cleanly; a legal big one is not worth the memory */
    int64_t numel = 1;
    int empty = 0;
    for (int i = 0; i < nd; i++) {
        if (shape[i] == 0) empty = 1;
        else if (shape[i] > 0 && __builtin_mul_overflow(numel, shape[i], &numel)) numel = INT64_MAX;
    }
    if (empty) numel = 0; /* an empty tensor costs nothing, whatever its other sizes */
    if (numel > ((int64_t)1 << 40)) keep(craft_empty(nd, shape, dtype, device, &t), t); /* must fail */
    else if (numel <= (1 << 20)) keep(craft_zeros(nd, shape, dtype, device, &t), t);
    else return;
    if (t && t->numel > (1 << 20)) __builtin_trap(); /* 2^40 elements cannot have been allocated */
    if (t && auto_grad && t->dtype == CRAFT_F32) status(craft_set_requires_grad(t, 1));
    if (t && t->dtype == CRAFT_F32 && t->numel > 0 && t->numel <= 4096) craft_rand_(t, u8(r), 0);
}

/* a 1-d int64 tensor of n fuzzed values (indices, class targets) */
static craft_tensor *index_tensor(reader *r) {
    int64_t v[8];
    int64_t n = u8(r) % 9;
    for (int i = 0; i < n; i++) v[i] = num(r);
    craft_tensor *t = NULL;
    status(craft_from_data(1, &n, CRAFT_I64, v, &t));
    return t;
}

/* Rough cost of a conv2d forward (multiply-adds), from the arguments as the engine will read
 * them; 0 where they are invalid anyway. Saturates. */
static int64_t conv_cost(const craft_tensor *x, const craft_tensor *w, const int *st, const int *pd,
                         const int *dl) {
    if (!x || !w || x->ndim != 4 || w->ndim != 4) return 0;
    double c = (double)x->shape[0]; /* in double: sizes up to 2^46 times dilations up to 2^31 */
    for (int k = 0; k < 2; k++) {
        double s = st[k] > 0 ? st[k] : 1, p = pd[k] > 0 ? pd[k] : 0, d = dl[k] > 0 ? dl[k] : 1;
        double o = floor(((double)x->shape[2 + k] + 2 * p - d * ((double)w->shape[2 + k] - 1) - 1) / s) + 1;
        if (o <= 0) return 0;
        c *= o;
    }
    c *= (double)w->numel;
    return c >= 9.2e18 ? INT64_MAX : (int64_t)c;
}

/* The ops reached through op bytes 242..255 (format note at the top). */
#define N_MORE 32
static void more(reader *r, craft_tensor *a, craft_tensor *b) {
    craft_tensor *out = NULL, *out2 = NULL;
    unsigned op = u8(r) % N_MORE;
    if (trace_on) fprintf(stderr, "op+%u\n", op);
    switch (op) {
    case 0:
        if (cheap(a)) {
            int k = (int)(u8(r) % 24) - 2;
            keep(craft_unary(k, a, &out), out);
        }
        break;
    case 1:
        if (cheap(a)) {
            int k = (int)(u8(r) % 10) - 1;
            double s = dbl(r);
            keep(craft_binary_scalar(k, a, s, u8(r) & 1, &out), out);
        }
        break;
    case 2:
        if (cheap(a) && cheap(b)) {
            int k = (int)(u8(r) % 8) - 1;
            keep(craft_compare(k, a, b, &out), out);
        }
        break;
    case 3:
        if (cheap(a)) {
            double lo = dbl(r), hi = dbl(r);
            keep(craft_clamp(a, lo, hi, &out), out);
        }
        break;
    case 4: {
        craft_tensor *c = pick(r);
        if (cheap(a) && cheap(b) && cheap(c)) keep(craft_where(c, a, b, &out), out);
        break;
    }
    case 5:
        if (cheap(a)) {
            int dims[8], nd = (int)(u8(r) % 4);
            for (int i = 0; i < nd; i++) dims[i] = small_int(r);
            int corr = small_int(r);
            keep(craft_var(a, nd, dims, corr, u8(r) & 1, &out), out);
        }
        break;
    case 6:
        if (cheap(a)) {
            int d = small_int(r), kd = u8(r) & 1, want_idx = u8(r) & 1;
            int rc = craft_min(a, d, kd, &out, want_idx ? &out2 : NULL);
            keep(rc, out);
            if (rc == CRAFT_OK && want_idx) keep(rc, out2);
        }
        break;
    case 7:
        if (cheap(a)) {
            int d = small_int(r);
            keep(craft_argmax(a, d, u8(r) & 1, &out), out);
        }
        break;
    case 8: {
        craft_tensor *bias = u8(r) & 1 ? NULL : pick(r);
        if (cheap(a) && cheap(b) && (!bias || cheap(bias))) keep(craft_linear(a, b, bias, &out), out);
        break;
    }
    case 9: {
        int st[2] = {small_int(r), small_int(r)}, pd[2] = {small_int(r), small_int(r)},
            op_[2] = {small_int(r), small_int(r)}, dl[2] = {small_int(r), small_int(r)};
        int groups = small_int(r);
        craft_tensor *bias = u8(r) & 1 ? NULL : pick(r);
        /* the cost is input x weight: both bounded; the output size is left to the pool limit */
        if (cheap(a) && cheap(b) && (!bias || cheap(bias)))
            keep(craft_conv_transpose2d(a, b, bias, st, pd, op_, dl, groups, &out), out);
        break;
    }
    case 10: {
        int nn = small_int(r);
        craft_tensor *w = u8(r) & 1 ? NULL : b, *bb = u8(r) & 1 ? NULL : pick(r);
        double eps = dbl(r);
        if (cheap(a) && (!w || cheap(w)) && (!bb || cheap(bb)))
            keep(craft_layer_norm(a, nn, w, bb, eps, &out), out);
        break;
    }
    case 11:
        if (cheap(a)) {
            int d = small_int(r);
            keep(craft_log_softmax(a, d, &out), out);
        }
        break;
    case 12: {
        craft_tensor *v = pick(r), *mask = u8(r) & 1 ? NULL : pick(r);
        double scale = dbl(r);
        int causal = u8(r) & 1;
        if (cheap(a) && cheap(b) && cheap(v) && (!mask || cheap(mask)))
            keep(craft_sdpa(a, b, v, mask, scale, causal, &out), out);
        break;
    }
    case 13: {
        craft_tensor *idx = index_tensor(r);
        if (idx && cheap(a)) keep(craft_embedding(a, idx, &out), out);
        craft_tensor_release(idx);
        break;
    }
    case 14: {
        craft_tensor *tg = index_tensor(r);
        int red = small_int(r);
        double ls = dbl(r);
        if (tg && cheap(a)) keep(craft_cross_entropy(a, tg, red, ls, &out), out);
        craft_tensor_release(tg);
        break;
    }
    case 15:
        if (cheap(a) && cheap(b)) {
            int red = small_int(r);
            keep(craft_mse_loss(a, b, red, &out), out);
        }
        break;
    case 16:
        if (cheap(a)) {
            int d = small_int(r);
            double eps = dbl(r);
            keep(craft_l2_normalize(a, d, eps, &out), out);
        }
        break;
    case 17:
        if (cheap(a) && cheap(b)) {
            int d = small_int(r);
            double eps = dbl(r);
            keep(craft_cosine_similarity(a, b, d, eps, &out), out);
        }
        break;
    case 18: { /* element access with a fuzzed index of a->ndim entries */
        int64_t idx[8];
        for (int i = 0; i < 8; i++) idx[i] = num(r);
        double v = 0;
        status(craft_get(a, idx, &v));
        if (u8(r) & 1) status(craft_set(a, idx, dbl(r)));
        status(craft_item(a, &v));
        break;
    }
    case 19: {
        double s = dbl(r), e = dbl(r), st = dbl(r);
        int dt = small_int(r);
        keep(craft_arange(s, e, st, dt, &out), out);
        break;
    }
    case 20: {
        int nd = (int)(u8(r) % 5);
        int64_t shape[8];
        for (int i = 0; i < nd; i++) shape[i] = num(r);
        int dt = small_int(r);
        keep(craft_full(nd, shape, dt, dbl(r), &out), out);
        break;
    }
    case 21: {
        int dev = u8(r) & 1 ? 0 : device_code(r);
        keep(craft_to_device(a, dev, &out), out);
        break;
    }
    case 22:
        if (cheap(a)) keep((u8(r) & 1) ? craft_clone(a, &out) : craft_detach(a, &out), out);
        break;
    case 23:
        if (cheap(a)) {
            int dim = small_int(r), flip = u8(r) & 1;
            double sh = dbl(r), sc = dbl(r), mp = dbl(r);
            keep(craft_timestep_embedding(a, dim, flip, sh, sc, mp, &out), out);
        }
        break;
    case 24:
        status(craft_set_requires_grad(a, u8(r) & 1));
        auto_grad = 1;
        break;
    case 25: /* backward from a (its sum when it has more than one element), with a wrong gradient sometimes */
        if (a->node && cheap(a)) {
            int with = u8(r) & 1, retain = u8(r) & 1;
            if (with) status(craft_backward(a, b, retain));
            else if (a->numel == 1) status(craft_backward(a, NULL, retain));
            else {
                craft_tensor *s = NULL;
                int rc = craft_sum(a, 0, NULL, 0, &s);
                status(rc);
                if (!rc) {
                    status(craft_backward(s, NULL, retain));
                    craft_tensor_release(s);
                }
            }
        }
        break;
    case 26:
        if (cheap(a)) status(craft_copy_(a, b));
        break;
    case 27: {
        double v = dbl(r);
        int k = u8(r) % 3;
        if (!cheap(a)) break;
        if (k == 0) status(craft_fill_(a, v));
        else if (k == 1) status(craft_scale_(a, v));
        else status(craft_axpy_(a, v, b));
        break;
    }
    case 28: { /* dense read/write with a fuzzed dtype and a buffer of a fuzzed size (exact, so ASan sees overruns) */
        int dt = small_int(r), w = u8(r) & 1;
        size_t nb =
            (size_t)(u8(r) % 4) * (size_t)(a->numel > 0 && a->numel <= 4096 ? a->numel : 1) * 2 + u8(r) % 9;
        if (!cheap(a)) break;
        void *buf = malloc(nb ? nb : 1);
        if (!buf) break;
        memset(buf, 0, nb ? nb : 1);
        status(w ? craft_tensor_write(a, dt, buf, nb) : craft_tensor_read(a, dt, buf, nb));
        free(buf);
        break;
    }
    case 29: {
        craft_tensor *m = pick(r), *v = pick(r);
        double lr = dbl(r), b1 = dbl(r), b2 = dbl(r);
        int64_t step = num(r);
        if (cheap(a) && cheap(b) && cheap(m) && cheap(v))
            status(craft_adamw_step(a, b, m, v, lr, b1, b2, 1e-8, 0.01, step));
        break;
    }
    case 30: {
        craft_tensor *gs[3] = {a, b, pick(r)};
        int n = (int)(u8(r) % 4);
        double mx = dbl(r), tot = 0;
        if (cheap(gs[0]) && cheap(gs[1]) && cheap(gs[2])) status(craft_clip_grad_norm(n, gs, mx, &tot));
        break;
    }
    case 31: {
        double d = dbl(r);
        if (cheap(a) && cheap(b)) status(craft_ema_update(a, b, d));
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader rd = {data, size, 0}, *r = &rd;
    npool = 0;
    auto_grad = 0;
    for (int k = 0; k < 3; k++) make(r);
    int steps = 0;
    while (r->i < r->n && steps++ < 64) {
        craft_tensor *a = pick(r), *b = pick(r), *out = NULL, *out2 = NULL;
        if (!a) {
            make(r);
            continue;
        }
        int64_t sh[8] = {0};
        int dims[8] = {0};
        int nd = (int)(u8(r) % 7);
        for (int i = 0; i < nd; i++) {
            sh[i] = num(r);
            dims[i] = small_int(r);
        }
        unsigned sel = u8(r);
        if (trace_on) fprintf(stderr, "op %u (byte %zu: %u)\n", sel < 242 ? sel % 22 : 22, r->i - 1, sel);
        if (sel >= 242) {
            more(r, a, b);
            continue;
        }
        /* the arguments are read left to right, as the calls below were first written */
        switch (sel % 22) {
        case 0: make(r); break;
        case 1: keep(craft_reshape(a, nd, sh, &out), out); break;
        case 2: keep(craft_permute(a, dims, &out), out); break; /* reads a->ndim entries */
        case 3: {
            int d0 = small_int(r), d1 = small_int(r);
            keep(craft_transpose(a, d0, d1, &out), out);
            break;
        }
        case 4: {
            int d = small_int(r);
            int64_t s = num(r), e = num(r), st = num(r);
            keep(craft_slice(a, d, s, e, st, &out), out);
            break;
        }
        case 5: keep(craft_expand(a, nd, sh, &out), out); break;
        case 6: keep(craft_unsqueeze(a, small_int(r), &out), out); break;
        case 7: keep(craft_squeeze(a, u8(r) < 200 ? small_int(r) : -1000, &out), out); break;
        case 8:
            if (computable(a)) keep(craft_contiguous(a, &out), out);
            break;
        case 9:
            if (computable(a)) keep(craft_to_dtype(a, small_int(r), &out), out);
            break;
        case 10:
            if (computable(a)) {
                int kd = u8(r) & 1;
                keep(craft_sum(a, nd, dims, kd, &out), out);
            }
            break;
        case 11:
            if (computable(a)) {
                int kd = u8(r) & 1;
                keep(craft_mean(a, nd, dims, kd, &out), out);
            }
            break;
        case 12:
            if (computable(a)) {
                int d = small_int(r), kd = u8(r) & 1;
                int rc = craft_max(a, d, kd, &out, &out2);
                keep(rc, out);
                if (rc == CRAFT_OK) keep(rc, out2);
            }
            break;
        case 13:
            if (computable(a) && computable(b)) keep(craft_matmul(a, b, &out), out);
            break;
        case 14:
            if (computable(a) && computable(b)) {
                int k = (int)(u8(r) % 9);
                keep(craft_binary(k, a, b, &out), out);
            }
            break;
        case 15:
            if (computable(a) && computable(b)) {
                int st[2] = {small_int(r), small_int(r)}, pd[2] = {small_int(r), small_int(r)},
                    dl[2] = {small_int(r), small_int(r)};
                craft_tensor *bias = u8(r) & 1 ? NULL : pick(r);
                int groups = small_int(r);
                /* a huge padding or dilation on a big kernel is legal but takes minutes: skip it */
                if (conv_cost(a, b, st, pd, dl) <= ((int64_t)1 << 24))
                    keep(craft_conv2d(a, b, bias, st, pd, dl, groups, &out), out);
            }
            break;
        case 16:
            if (computable(a) && computable(b)) {
                craft_tensor *ts[3] = {a, b, pick(r)};
                int n = 1 + (int)(u8(r) % 3), d = small_int(r);
                keep(craft_concat(n, ts, d, &out), out);
            }
            break;
        case 17:
            if (computable(a)) {
                int64_t pads[8];
                int np = (int)(u8(r) % 5);
                for (int i = 0; i < 2 * np; i++) pads[i] = num(r);
                /* bounded output: skip pads that would make a huge tensor, the rest must be checked */
                int64_t grow = 0;
                for (int i = 0; i < 2 * np; i++) grow += pads[i] > 64 ? 64 : pads[i] > 0 ? pads[i] : 0;
                if (grow < 64) {
                    int mode = small_int(r);
                    keep(craft_pad(a, np, pads, mode, 0.5, &out), out);
                }
            }
            break;
        case 18:
            if (cheap(a)) {
                int64_t h = num(r), w = num(r);
                if (h < 64 && w < 64) {
                    int mode = small_int(r), ac = u8(r) & 1;
                    keep(craft_interpolate(a, h, w, mode, ac, &out), out);
                }
            }
            break;
        case 19:
            if (cheap(a)) {
                int k = small_int(r), s = small_int(r), p = small_int(r);
                keep(craft_avg_pool2d(a, k, s, p, &out), out);
            }
            break;
        case 20:
            if (cheap(a)) keep(craft_softmax(a, small_int(r), &out), out);
            break;
        case 21:
            if (cheap(a) && cheap(b)) {
                int g = small_int(r);
                keep(craft_group_norm(a, g, u8(r) & 1 ? NULL : b, NULL, 1e-5, &out), out);
            }
            break;
        }
    }
    for (int i = 0; i < npool; i++) craft_tensor_release(pool[i]);
    npool = 0;
    craft_pool_trim(); /* the caching allocator would otherwise hold every size it has seen */
    return 0;
}
