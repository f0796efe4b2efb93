/* ops_embed.c: embedding lookup (with its scatter-add backward) and diffusers' sinusoidal
 * timestep embedding. */
#include "core/internal.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* ------------------------------------------------------------- embedding ---- */
/* gw[idx[k], :] += g[k, :]. Threads split the D columns, so every row is accumulated by one
 * thread in index order: duplicates need no atomics and the result does not depend on the
 * thread count. */
static int embedding_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    if (!CRAFT_NEEDS_GRAD(n, 0)) return CRAFT_OK;
    const craft_edge *e = &n->edges[0];
    const craft_tensor *idx = n->saved[0];
    craft_tensor *g = NULL, *gw = NULL;
    CRAFT_TRY(craft_contig_f32(gout[0], &g));
    int rc = craft_zeros(2, e->shape, CRAFT_F32, 0, &gw);
    if (rc) { craft_tensor_release(g); return rc; }
    const int64_t *ip = craft_tensor_data(idx);
    const float *gp = craft_tensor_data(g);
    float *wp = craft_tensor_data(gw);
    int64_t K = idx->numel, D = e->shape[1];
    int nt = K * D >= CRAFT_PAR_MIN && D >= 64 ? omp_get_max_threads() : 1;
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = D * t / T, hi = D * (t + 1) / T;
        for (int64_t k = 0; k < K; k++) {
            float *dst = wp + ip[k] * D;
            const float *src = gp + k * D;
            for (int64_t j = lo; j < hi; j++) dst[j] += src[j];
        }
    }
    craft_tensor_release(g);
    gin[0] = gw;
    return CRAFT_OK;
}

int craft_embedding(const craft_tensor *weight, const craft_tensor *indices, craft_tensor **out) {
    if ((weight && weight->device != CRAFT_DEVICE_CPU) || (indices && indices->device != CRAFT_DEVICE_CPU)) return craft_cl_op_embedding(weight, indices, out);
    CRAFT_TRY(craft_check_f32("embedding", "weight", weight));
    if (!indices) return craft_fail(CRAFT_EINVAL, "embedding: indices are missing");
    if (weight->ndim != 2) return craft_fail(CRAFT_ESHAPE, "embedding: weight %s must be 2-d [V, D]", craft_shape_str(weight));
    if (indices->dtype != CRAFT_I64 && indices->dtype != CRAFT_I32)
        return craft_fail(CRAFT_ETYPE, "embedding: indices %s must be i64 or i32", craft_shape_str(indices));
    if (indices->device != CRAFT_DEVICE_CPU)
        return craft_fail(CRAFT_EDEVICE, "embedding: indices are on device %d; this op runs on the CPU only", indices->device);
    if (indices->ndim >= CRAFT_MAX_DIMS)
        return craft_fail(CRAFT_ESHAPE, "embedding: indices %s have too many dims (at most %d)", craft_shape_str(indices), CRAFT_MAX_DIMS - 1);
    int64_t V = weight->shape[0], D = weight->shape[1];
    /* a dense int64 copy (or the tensor itself): it is also what backward keeps */
    craft_tensor *idx;
    if (indices->dtype == CRAFT_I64 && craft_is_contiguous(indices)) {
        idx = craft_alias(indices);
        if (!idx) return craft_last_status();
    } else {
        idx = craft_new_tensor(indices->ndim, indices->shape, CRAFT_I64, CRAFT_DEVICE_CPU);
        if (!idx) return craft_last_status();
        int rc = craft_copy_(idx, indices);
        if (rc) { craft_tensor_release(idx); return rc; }
    }
    const int64_t *ip = craft_tensor_data(idx);
    for (int64_t k = 0; k < idx->numel; k++) {
        if (ip[k] < 0 || ip[k] >= V) {
            int64_t bad = ip[k];
            craft_tensor_release(idx);
            return craft_fail(CRAFT_EINVAL, "embedding: index %lld (element %lld of indices %s) is out of range for %lld rows (weight %s)",
                              (long long)bad, (long long)k, craft_shape_str(indices), (long long)V, craft_shape_str(weight));
        }
    }
    int64_t oshape[CRAFT_MAX_DIMS];
    for (int i = 0; i < indices->ndim; i++) oshape[i] = indices->shape[i];
    oshape[indices->ndim] = D;
    craft_tensor *wc = NULL, *y = craft_new_tensor(indices->ndim + 1, oshape, CRAFT_F32, CRAFT_DEVICE_CPU);
    int rc = y ? craft_contig_f32(weight, &wc) : craft_last_status();
    if (rc) { craft_tensor_release(y); craft_tensor_release(idx); return rc; }
    const float *wp = craft_tensor_data(wc);
    float *yp = craft_tensor_data(y);
    int64_t K = idx->numel;
    #pragma omp parallel for schedule(static) if (K * D >= CRAFT_PAR_MIN)
    for (int64_t k = 0; k < K; k++) memcpy(yp + k * D, wp + ip[k] * D, (size_t)D * sizeof(float));
    craft_tensor_release(wc);
    const craft_tensor *ins[1] = {weight}, *save[1] = {idx};
    rc = craft_record("embedding", 1, ins, y, embedding_backward, 1, save, NULL, 0, NULL, 0, NULL);
    craft_tensor_release(idx);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

/* ------------------------------------------------------ timestep embedding --- */
/* diffusers get_timestep_embedding, in its float32 operation order:
 *   half = dim / 2
 *   freq[i] = exp((-ln(max_period) * i) / (half - downscale_freq_shift))     i < half
 *   arg[n, i] = scale * (t[n] * freq[i])
 *   out[n] = [sin(arg) | cos(arg)], or [cos(arg) | sin(arg)] with flip_sin_to_cos,
 *            then one zero column when dim is odd.
 * No gradient flows to t (it is an index-like input). */
int craft_timestep_check(const craft_tensor *t, int dim, double downscale_freq_shift, double scale, double max_period) {
    if (!t) return craft_fail(CRAFT_EINVAL, "timestep_embedding: timesteps are missing");
    if (t->ndim != 1) return craft_fail(CRAFT_ESHAPE, "timestep_embedding: timesteps %s must be 1-d", craft_shape_str(t));
    if (t->dtype == CRAFT_BOOL)
        return craft_fail(CRAFT_ETYPE, "timestep_embedding: timesteps %s must be numeric", craft_shape_str(t));
    if (dim < 1) return craft_fail(CRAFT_EINVAL, "timestep_embedding: dim %d must be >= 1", dim);
    if (!(max_period > 0) || !isfinite(max_period) || !isfinite(scale) || !isfinite(downscale_freq_shift))
        return craft_fail(CRAFT_EINVAL, "timestep_embedding: max_period %g must be positive, scale %g and shift %g finite",
                          max_period, scale, downscale_freq_shift);
    int64_t half = dim / 2;
    if (half > 0 && (float)((double)half - downscale_freq_shift) == 0.0f)
        return craft_fail(CRAFT_EINVAL, "timestep_embedding: dim %d with downscale_freq_shift %g divides by zero", dim,
                          downscale_freq_shift);
    return CRAFT_OK;
}

int craft_timestep_freqs(int dim, double downscale_freq_shift, double max_period, float **freq) {
    int64_t half = dim / 2;
    *freq = NULL;
    if (half == 0) return CRAFT_OK;
    float *f = malloc((size_t)half * sizeof(float));
    if (!f) return craft_fail(CRAFT_ENOMEM, "timestep_embedding: out of host memory for %lld frequencies", (long long)half);
    const float c = (float)(-log(max_period)), div = (float)((double)half - downscale_freq_shift);
    for (int64_t i = 0; i < half; i++) f[i] = expf((c * (float)i) / div);
    *freq = f;
    return CRAFT_OK;
}

int craft_timestep_embedding(const craft_tensor *t, int dim, int flip_sin_to_cos, double downscale_freq_shift,
                             double scale, double max_period, craft_tensor **out) {
    if (t && t->device != CRAFT_DEVICE_CPU) return craft_cl_op_timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift, scale, max_period, out);
    CRAFT_TRY(craft_timestep_check(t, dim, downscale_freq_shift, scale, max_period));
    int64_t N = t->shape[0], oshape[2] = {N, dim}, half = dim / 2;
    craft_tensor *y = craft_new_tensor(2, oshape, CRAFT_F32, CRAFT_DEVICE_CPU);
    if (!y) return craft_last_status();
    if (N == 0) { *out = y; return CRAFT_OK; }   /* before the table: an empty batch needs none */
    craft_tensor *tc = NULL;
    float *freq = NULL;
    int rc = craft_contig_f32(t, &tc);
    if (!rc) rc = craft_timestep_freqs(dim, downscale_freq_shift, max_period, &freq);
    if (rc) { craft_tensor_release(tc); craft_tensor_release(y); return rc; }
    const float sc = (float)scale;
    const float *tp = craft_tensor_data(tc);
    float *yp = craft_tensor_data(y);
    #pragma omp parallel for schedule(static) if (N * dim >= CRAFT_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        float *row = yp + n * dim;
        float *first = row, *second = row + half;   /* sin block, cos block */
        if (flip_sin_to_cos) { first = row + half; second = row; }
        for (int64_t i = 0; i < half; i++) {
            float a = sc * (tp[n] * freq[i]);
            first[i] = sinf(a);
            second[i] = cosf(a);
        }
        if (dim & 1) row[dim - 1] = 0.0f;
    }
    free(freq);
    craft_tensor_release(tc);
    *out = y;
    return CRAFT_OK;
}
