/* cl_f16.c: the fp16 compute precision on cl devices (core/precision.c decides when it runs):
 * the gemm_f16, conv_f16 and sdpa_f16 kernels of the back end's table, and the per-device cache
 * of weights converted to f16.
 *
 * f16 storage, fp32 arithmetic: operands are rounded to IEEE half by the copy kernel's
 * conversion (round to nearest even, bit for bit as engine/core/dtype.c), the kernels read them
 * with vload_half (core OpenCL: every device, cl_khr_fp16 or not) and multiply and accumulate
 * in fp32 into f32 results. On a GPU the gain is memory traffic: weights and the activations the
 * tiled kernels re-read move at half the bytes. Half arithmetic (cl_khr_fp16) is not used: one
 * path, testable on every device (none here has the extension).
 *
 * The weight cache: a weight (linear's, conv's) is converted once and kept on its device, keyed
 * by the storage's serial (never reused), its version (bumped by every in-place write), the
 * offset and the layout, so a changed weight (an optimiser step, a LoRA merge) is converted
 * again and its old entry dropped. LRU within CRAFT_F16_CACHE_MB over all devices (default
 * 2048; 0 turns it off; craft_cl_f16_cache_cap_mb sets it at run time); craft_cl_f16_cache_clear
 * empties it (set_precision('fp32') does). The mechanism is core/weight_cache.c's.
 * Activations are converted per call, into a temporary f16 tensor. */
#include "cl/cl_internal.h"
#include "core/weight_cache.h"
#include <stdlib.h>

/* ---- the weight cache (core/weight_cache.c): payloads are device tensors ---- */
static void hfree(void *data, size_t nbytes) {
    (void)nbytes;
    craft_tensor_release(data);
}
static craft_wcache hcache = CRAFT_WCACHE_INIT("CRAFT_F16_CACHE_MB", 2048, hfree);

int cl_f16_weight(const craft_tensor *w, int64_t off, int64_t rows, int64_t cols, int64_t ld,
                  craft_tensor **out) {
    int64_t key[3] = {rows, cols, ld};
    size_t nbytes = (size_t)(rows * cols) * 2;
    craft_wc_key k = craft_wc_key_of(w->storage, w->device, off, key, 3);
    craft_wc_ref ref;
    *out = NULL;
    if (craft_wc_find(&hcache, &k, nbytes, &ref)) { /* the caller holds its own reference */
        *out = craft_tensor_retain(ref.data);
        craft_wc_release(&ref);
        return CRAFT_OK;
    }
    int64_t shape[2] = {rows, cols};
    craft_tensor *h = cl_new(2, shape, CRAFT_F16, w->device), *view = craft_alias(w);
    int rc = h && view ? CRAFT_OK : craft_last_status();
    if (!rc) {
        view->ndim = 2;
        view->shape[0] = rows;
        view->shape[1] = cols;
        view->stride[0] = ld;
        view->stride[1] = 1;
        view->offset = off;
        view->numel = rows * cols;
        rc = craft_cl_copy_(h, view);
    }
    craft_tensor_release(view);
    if (rc) {
        craft_tensor_release(h);
        return rc;
    }
    *out = h;
    craft_wc_insert(&hcache, &k, craft_tensor_retain(h), nbytes, &ref); /* the cache's own reference */
    craft_wc_release(&ref); /* kept: unpinned; not kept: that reference dropped */
    return CRAFT_OK;
}

void craft_cl_f16_cache_stats(int64_t *bytes, int64_t *entries, int64_t *hits, int64_t *misses) {
    craft_wc_stats(&hcache, bytes, entries, hits, misses);
}

void craft_cl_f16_cache_clear(void) { craft_wc_clear(&hcache); }

int64_t craft_cl_f16_cache_cap_mb(int64_t mb) { return craft_wc_cap_mb(&hcache, mb); }

int cl_f16_copy(const craft_tensor *t, craft_tensor **out) {
    craft_tensor *h = cl_new(t->ndim, t->shape, CRAFT_F16, t->device);
    int rc = h ? craft_cl_copy_(h, t) : craft_last_status();
    if (rc) {
        craft_tensor_release(h);
        h = NULL;
    }
    *out = h;
    return rc;
}

/* ---- gemm_f16 ---- */
/* The batch's rows x cols matrices of t (at off[i], row stride ld) as one contiguous f16 tensor
 * [batch, rows, cols]: one conversion when the offsets have a constant stride, else per matrix. */
static int half_mats(const craft_tensor *t, const int64_t *off, int64_t batch, int64_t rows, int64_t cols,
                     int64_t ld, craft_tensor **out) {
    int64_t shape[3] = {batch, rows, cols}, st = batch > 1 ? off[1] - off[0] : 0;
    int strided = st >= 0;
    for (int64_t i = 2; i < batch && strided; i++) strided = off[i] - off[i - 1] == st;
    craft_tensor *h = cl_new(3, shape, CRAFT_F16, t->device), *view = craft_alias(t), *dst = NULL;
    int rc = h && view ? CRAFT_OK : craft_last_status();
    if (!rc && !strided && !(dst = craft_alias(h))) rc = craft_last_status();
    for (int64_t i = 0; !rc && i < (strided ? 1 : batch); i++) {
        int64_t vshape[3] = {strided ? batch : 1, rows, cols}, vst[3] = {st, ld, 1};
        view->ndim = 3;
        memcpy(view->shape, vshape, sizeof vshape);
        memcpy(view->stride, vst, sizeof vst);
        view->offset = off[i];
        view->numel = vshape[0] * rows * cols;
        if (strided) rc = craft_cl_copy_(h, view);
        else {
            dst->ndim = 3;
            memcpy(dst->shape, vshape, sizeof vshape);
            dst->stride[0] = rows * cols;
            dst->stride[1] = cols;
            dst->stride[2] = 1;
            dst->offset = i * rows * cols;
            dst->numel = rows * cols;
            rc = craft_cl_copy_(dst, view);
        }
    }
    craft_tensor_release(view);
    craft_tensor_release(dst);
    if (rc) {
        craft_tensor_release(h);
        h = NULL;
    }
    *out = h;
    return rc;
}

int craft_cl_gemm_f16(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const craft_tensor *A,
                      const int64_t *aoff, int64_t lda, const craft_tensor *B, const int64_t *boff,
                      int64_t ldb, float beta, craft_tensor *C, const int64_t *coff, int64_t ldc,
                      int64_t batch, int keep_b) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(C->device, "gemm (f16)", &d));
    /* nothing to round, or a device whose work-groups cannot hold the tiles: fp32, uncounted */
    if (M == 0 || N == 0 || K == 0 || batch == 0 || !cl_gemm_tiled_ok(d, 1))
        return craft_cl_gemm_batched(ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, beta, C, coff, ldc,
                                     batch);
    int64_t ar = ta == 'N' ? M : K, ac = ta == 'N' ? K : M, br = tb == 'N' ? K : N, bc = tb == 'N' ? N : K;
    int keep = keep_b && batch == 1;
    craft_tensor *ah = NULL, *bh = NULL;
    int64_t *offs = malloc((size_t)batch * 2 * sizeof *offs);
    int rc = offs ? CRAFT_OK : craft_fail(CRAFT_ENOMEM, "gemm (f16): out of host memory");
    if (!rc) rc = half_mats(A, aoff, batch, ar, ac, lda, &ah);
    if (!rc)
        rc = keep ? cl_f16_weight(B, boff[0], br, bc, ldb, &bh) : half_mats(B, boff, batch, br, bc, ldb, &bh);
    for (int64_t i = 0; !rc && i < batch; i++) { /* the f16 copies are dense [batch, rows, cols] */
        offs[i] = i * ar * ac;
        offs[batch + i] = keep ? 0 : i * br * bc;
    }
    if (!rc)
        rc = cl_gemm_tiled(d, 1, ta, tb, M, N, K, alpha, ah, offs, ac, bh, offs + batch, bc, beta, C, coff,
                           ldc, batch);
    free(offs);
    craft_tensor_release(ah);
    craft_tensor_release(bh);
    if (!rc) craft_f16_count();
    return rc;
}

/* ---- conv_f16 ---- */
int craft_cl_conv_f16(const craft_conv_dims *cd, int fwd_bias, craft_tensor *src, craft_tensor *wei,
                      craft_tensor *dst, craft_tensor *bias) {
    if (cd->n == 0 || cd->oc == 0 || dst->numel == 0)
        return craft_cl_conv(CRAFT_CONV_FWD, cd, fwd_bias, src, wei, dst, bias);
    craft_tensor *xh = NULL, *wh = NULL;
    int64_t wn = wei->numel;
    int rc = cl_f16_copy(src, &xh);
    if (!rc) rc = cl_f16_weight(wei, wei->offset, 1, wn, wn, &wh);
    int served = 0;
    if (!rc) rc = cl_conv_igemm_f16(cd, xh, wh, bias, dst, &served);
    craft_tensor_release(xh);
    craft_tensor_release(wh);
    if (!rc && !served) return craft_cl_conv(CRAFT_CONV_FWD, cd, fwd_bias, src, wei, dst, bias);
    if (!rc) craft_f16_count();
    return rc;
}

/* ---- sdpa_f16 ---- */
int craft_cl_sdpa_f16(const craft_tensor *q, const craft_tensor *k, const craft_tensor *v,
                      const craft_tensor *mask, double scale, int causal, craft_tensor *y,
                      craft_tensor *lse) {
    craft_tensor *h[3] = {NULL, NULL, NULL};
    const craft_tensor *in[3] = {q, k, v};
    int rc = CRAFT_OK, served = 0;
    for (int i = 0; i < 3 && !rc; i++) rc = cl_f16_copy(in[i], &h[i]);
    if (!rc) rc = cl_flash_sdpa_f16(h[0], h[1], h[2], mask, scale, causal, y, lse, &served);
    for (int i = 0; i < 3; i++) craft_tensor_release(h[i]);
    if (!rc && !served) return craft_cl_sdpa(q, k, v, mask, scale, causal, y, lse);
    if (!rc) craft_f16_count();
    return rc;
}
