/* op_embed.c: embedding lookup (with its scatter-add backward) and diffusers' sinusoidal
 * timestep embedding, for every device. Embedding indices are checked on the host (read back
 * when they are on a device) before any kernel uses one; they may stay on the CPU next to a
 * device weight. */
#include "core/backend.h"
#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------- embedding ---- */
/* saved: the indices, a dense CPU i64 tensor */
static int embedding_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    if (!CRAFT_NEEDS_GRAD(n, 0)) return CRAFT_OK;
    const craft_kernels *k;
    CRAFT_TRY(craft_kernels_for(n->device, CRAFT_K_embedding_grad, CRAFT_F32, n->name, &k));
    craft_tensor *g = NULL, *gw = NULL;
    int rc = craft_grad_on(gout[0], n->device, &g);
    if (!rc && !(gw = craft_new_tensor(2, n->edges[0].shape, CRAFT_F32, n->device))) rc = craft_last_status();
    if (!rc) rc = k->embedding_grad(g, n->saved[0], gw);
    craft_tensor_release(g);
    return craft_finish(rc, gw, &gin[0]);
}

int craft_embedding(const craft_tensor *weight, const craft_tensor *indices, craft_tensor **out) {
    const craft_kernels *k;
    if (!weight) return craft_fail(CRAFT_EINVAL, "embedding: weight is missing");
    CRAFT_TRY(craft_want("embedding", "weight", weight, weight->device));
    if (!indices) return craft_fail(CRAFT_EINVAL, "embedding: indices are missing");
    if (weight->ndim != 2)
        return craft_fail(CRAFT_ESHAPE, "embedding: weight %s must be 2-d [V, D]", craft_shape_str(weight));
    if (indices->dtype != CRAFT_I64 && indices->dtype != CRAFT_I32)
        return craft_fail(CRAFT_ETYPE, "embedding: indices %s must be i64 or i32", craft_shape_str(indices));
    if (indices->device != CRAFT_DEVICE_CPU && indices->device != weight->device)
        return craft_fail(CRAFT_EDEVICE, "embedding: indices on %s, weight on %s; move one with :to()",
                          craft_device_str(indices->device), craft_device_str(weight->device));
    if (indices->ndim >= CRAFT_MAX_DIMS)
        return craft_fail(CRAFT_ESHAPE, "embedding: indices %s have too many dims (at most %d)",
                          craft_shape_str(indices), CRAFT_MAX_DIMS - 1);
    CRAFT_TRY(craft_kernels_for(weight->device, CRAFT_K_embedding, CRAFT_F32, "embedding", &k));
    int64_t V = weight->shape[0], D = weight->shape[1];
    /* a dense int64 copy on the host (or the tensor itself): it is also what backward keeps */
    craft_tensor *idx;
    if (indices->dtype == CRAFT_I64 && indices->device == CRAFT_DEVICE_CPU && craft_is_contiguous(indices)) {
        idx = craft_alias(indices);
        if (!idx) return craft_last_status();
    } else {
        idx = craft_new_tensor(indices->ndim, indices->shape, CRAFT_I64, CRAFT_DEVICE_CPU);
        if (!idx) return craft_last_status();
        int rc = craft_copy_(idx, indices);
        if (rc) {
            craft_tensor_release(idx);
            return rc;
        }
    }
    const int64_t *ip = craft_tensor_data(idx);
    for (int64_t i = 0; i < idx->numel; i++) {
        if (ip[i] < 0 || ip[i] >= V) {
            int64_t bad = ip[i];
            craft_tensor_release(idx);
            return craft_fail(
                CRAFT_EINVAL,
                "embedding: index %lld (element %lld of indices %s) is out of range for %lld rows (weight %s)",
                (long long)bad, (long long)i, craft_shape_str(indices), (long long)V,
                craft_shape_str(weight));
        }
    }
    int64_t oshape[CRAFT_MAX_DIMS];
    for (int i = 0; i < indices->ndim; i++) oshape[i] = indices->shape[i];
    oshape[indices->ndim] = D;
    craft_tensor *wc = NULL, *y = craft_new_tensor(indices->ndim + 1, oshape, CRAFT_F32, weight->device);
    int rc = y ? craft_contig_f32(weight, &wc) : craft_last_status();
    if (!rc) rc = k->embedding(wc, idx, y);
    craft_tensor_release(wc);
    const craft_tensor *ins[1] = {weight}, *save[1] = {idx};
    if (!rc) rc = craft_record("embedding", 1, ins, y, embedding_backward, 1, save, NULL, 0, NULL, 0, NULL);
    craft_tensor_release(idx);
    return craft_finish(rc, y, out);
}

/* ------------------------------------------------------ timestep embedding --- */
/* diffusers get_timestep_embedding, in its float32 operation order:
 *   half = dim / 2
 *   freq[i] = exp((-ln(max_period) * i) / (half - downscale_freq_shift))     i < half
 *   arg[n, i] = scale * (t[n] * freq[i])
 *   out[n] = [sin(arg) | cos(arg)], or [cos(arg) | sin(arg)] with flip_sin_to_cos,
 *            then one zero column when dim is odd.
 * No gradient flows to t (it is an index-like input). */
static int timestep_check(const craft_tensor *t, int dim, double downscale_freq_shift, double scale,
                          double max_period) {
    if (!t) return craft_fail(CRAFT_EINVAL, "timestep_embedding: timesteps are missing");
    if (t->ndim != 1)
        return craft_fail(CRAFT_ESHAPE, "timestep_embedding: timesteps %s must be 1-d", craft_shape_str(t));
    if (t->dtype == CRAFT_BOOL)
        return craft_fail(CRAFT_ETYPE, "timestep_embedding: timesteps %s must be numeric",
                          craft_shape_str(t));
    if (dim < 1) return craft_fail(CRAFT_EINVAL, "timestep_embedding: dim %d must be >= 1", dim);
    if (!(max_period > 0) || !isfinite(max_period) || !isfinite(scale) || !isfinite(downscale_freq_shift))
        return craft_fail(CRAFT_EINVAL,
                          "timestep_embedding: max_period %g must be positive, scale %g and shift %g finite",
                          max_period, scale, downscale_freq_shift);
    int64_t half = dim / 2;
    if (half > 0 && (float)((double)half - downscale_freq_shift) == 0.0f)
        return craft_fail(CRAFT_EINVAL,
                          "timestep_embedding: dim %d with downscale_freq_shift %g divides by zero", dim,
                          downscale_freq_shift);
    return CRAFT_OK;
}

static int timestep_freqs(int dim, double downscale_freq_shift, double max_period, float **freq) {
    int64_t half = dim / 2;
    *freq = NULL;
    if (half == 0) return CRAFT_OK;
    float *f = malloc((size_t)half * sizeof(float));
    if (!f)
        return craft_fail(CRAFT_ENOMEM, "timestep_embedding: out of host memory for %lld frequencies",
                          (long long)half);
    const float c = (float)(-log(max_period)), div = (float)((double)half - downscale_freq_shift);
    for (int64_t i = 0; i < half; i++) f[i] = expf((c * (float)i) / div);
    *freq = f;
    return CRAFT_OK;
}

int craft_timestep_embedding(const craft_tensor *t, int dim, int flip_sin_to_cos, double downscale_freq_shift,
                             double scale, double max_period, craft_tensor **out) {
    const craft_kernels *k;
    CRAFT_TRY(timestep_check(t, dim, downscale_freq_shift, scale, max_period));
    CRAFT_TRY(craft_kernels_for(t->device, CRAFT_K_timestep_embedding, CRAFT_F32, "timestep_embedding", &k));
    int64_t N = t->shape[0], oshape[2] = {N, dim};
    craft_tensor *y = craft_new_tensor(2, oshape, CRAFT_F32, t->device);
    if (!y) return craft_last_status();
    if (N == 0) {
        *out = y;
        return CRAFT_OK;
    } /* before the table: an empty batch needs none */
    craft_tensor *tc = NULL;
    float *freq = NULL;
    int rc = craft_contig_f32(t, &tc);
    if (!rc) rc = timestep_freqs(dim, downscale_freq_shift, max_period, &freq);
    if (!rc) rc = k->timestep_embedding(tc, freq, dim, flip_sin_to_cos ? 1 : 0, scale, y);
    free(freq);
    craft_tensor_release(tc);
    return craft_finish(rc, y, out);
}
