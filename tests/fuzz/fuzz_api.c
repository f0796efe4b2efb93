/* fuzz_api.c: the engine's argument checking, as the Lua binding reaches it. The input bytes
 * are a program: each step picks an op of the public API and its arguments (shapes, dims,
 * starts/ends/steps, paddings, strides, groups, dtype and device codes; small values most of the
 * time, any int64 or int now and then) and applies it to tensors made so far. Every call must
 * either succeed with a well-formed tensor or fail with a status and a non-empty message: no
 * crash, no sanitizer report, no leak. Results join a small pool that later steps use.
 * Bounded work: ops that compute (not views) run only on inputs of at most 4096 elements, so a
 * legal but enormous view (a huge expand) is checked for its shape but never materialised. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "craft.h"

/* a request the allocator cannot serve must come back as craft's ENOMEM error, not an ASan abort */
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

typedef struct { const uint8_t *p; size_t n, i; } reader;
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

#define POOL 8
static craft_tensor *pool[POOL];
static int npool;

static void failed(int rc) {
    /* a failure must say why: a non-empty message */
    const char *m = craft_last_error();
    if (rc != CRAFT_OK && (!m || !m[0])) __builtin_trap();
}
static void keep(int rc, craft_tensor *t) {
    failed(rc);
    if (rc != CRAFT_OK || !t) return;
    if (t->ndim < 0 || t->ndim > 8 || t->numel < 0) __builtin_trap();
    if (npool == POOL) {
        craft_tensor_release(pool[0]);
        memmove(pool, pool + 1, (POOL - 1) * sizeof *pool);
        npool--;
    }
    pool[npool++] = t;
}
static craft_tensor *pick(reader *r) { return npool ? pool[u8(r) % npool] : NULL; }
static int computable(const craft_tensor *t) { return t && t->numel <= 4096; }

static void make(reader *r) {
    int nd = (int)(u8(r) % 6);
    int64_t shape[8] = { 0 };
    for (int i = 0; i < nd; i++) shape[i] = (u8(r) < 250) ? (int64_t)(u8(r) % 7) : num(r);
    int dtype = (u8(r) < 240) ? CRAFT_F32 : small_int(r);
    int device = (u8(r) < 250) ? 0 : 50 + (int)(u8(r) % 50);   /* never cl:0: no OpenCL here */
    craft_tensor *t = NULL;
    /* a request past what fits must fail cleanly; a big one that fits is made but not filled */
    int64_t numel = 1;
    for (int i = 0; i < nd; i++)
        if (shape[i] > 0 && __builtin_mul_overflow(numel, shape[i], &numel)) numel = INT64_MAX;
    if (numel > ((int64_t)1 << 40)) keep(craft_empty(nd, shape, dtype, device, &t), t);   /* must fail */
    else if (numel <= (1 << 20)) keep(craft_zeros(nd, shape, dtype, device, &t), t);
    else return;   /* legal and big: not worth the fuzzer's memory */
    if (t && t->numel > (1 << 20)) __builtin_trap();   /* 2^40 elements cannot have been allocated */
    if (t && t->dtype == CRAFT_F32 && t->numel > 0 && t->numel <= 4096) craft_rand_(t, u8(r), 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader rd = { data, size, 0 }, *r = &rd;
    npool = 0;
    for (int k = 0; k < 3; k++) make(r);
    int steps = 0;
    while (r->i < r->n && steps++ < 64) {
        craft_tensor *a = pick(r), *b = pick(r), *out = NULL, *out2 = NULL;
        if (!a) { make(r); continue; }
        int64_t sh[8] = { 0 };
        int dims[8] = { 0 };
        int nd = (int)(u8(r) % 7);
        for (int i = 0; i < nd; i++) { sh[i] = num(r); dims[i] = small_int(r); }
        switch (u8(r) % 22) {
        case 0: make(r); break;
        case 1: keep(craft_reshape(a, nd, sh, &out), out); break;
        case 2: keep(craft_permute(a, dims, &out), out); break;   /* reads a->ndim entries */
        case 3: keep(craft_transpose(a, small_int(r), small_int(r), &out), out); break;
        case 4: keep(craft_slice(a, small_int(r), num(r), num(r), num(r), &out), out); break;
        case 5: keep(craft_expand(a, nd, sh, &out), out); break;
        case 6: keep(craft_unsqueeze(a, small_int(r), &out), out); break;
        case 7: keep(craft_squeeze(a, u8(r) < 200 ? small_int(r) : -1000, &out), out); break;
        case 8: if (computable(a)) keep(craft_contiguous(a, &out), out); break;
        case 9: if (computable(a)) keep(craft_to_dtype(a, small_int(r), &out), out); break;
        case 10: if (computable(a)) keep(craft_sum(a, nd, dims, u8(r) & 1, &out), out); break;
        case 11: if (computable(a)) keep(craft_mean(a, nd, dims, u8(r) & 1, &out), out); break;
        case 12:
            if (computable(a)) {
                int rc = craft_max(a, small_int(r), u8(r) & 1, &out, &out2);
                keep(rc, out);
                if (rc == CRAFT_OK) keep(rc, out2);
            }
            break;
        case 13: if (computable(a) && computable(b)) keep(craft_matmul(a, b, &out), out); break;
        case 14: if (computable(a) && computable(b)) keep(craft_binary(u8(r) % 9, a, b, &out), out); break;
        case 15:
            if (computable(a) && computable(b)) {
                int st[2] = { small_int(r), small_int(r) }, pd[2] = { small_int(r), small_int(r) },
                    dl[2] = { small_int(r), small_int(r) };
                keep(craft_conv2d(a, b, u8(r) & 1 ? NULL : pick(r), st, pd, dl, small_int(r), &out), out);
            }
            break;
        case 16:
            if (computable(a) && computable(b)) {
                craft_tensor *ts[3] = { a, b, pick(r) };
                keep(craft_concat(1 + (int)(u8(r) % 3), ts, small_int(r), &out), out);
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
                if (grow < 64) keep(craft_pad(a, np, pads, small_int(r), 0.5, &out), out);
            }
            break;
        case 18:
            if (computable(a)) {
                int64_t h = num(r), w = num(r);
                if (h < 64 && w < 64) keep(craft_interpolate(a, h, w, small_int(r), u8(r) & 1, &out), out);
            }
            break;
        case 19: if (computable(a)) keep(craft_avg_pool2d(a, small_int(r), small_int(r), small_int(r), &out), out); break;
        case 20: if (computable(a)) keep(craft_softmax(a, small_int(r), &out), out); break;
        case 21:
            if (computable(a) && computable(b)) keep(craft_group_norm(a, small_int(r), u8(r) & 1 ? NULL : b, NULL, 1e-5, &out), out);
            break;
        }
    }
    for (int i = 0; i < npool; i++) craft_tensor_release(pool[i]);
    npool = 0;
    craft_pool_trim();   /* the caching allocator would otherwise hold every size it has seen */
    return 0;
}
