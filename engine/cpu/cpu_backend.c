/* cpu_backend.c: the CPU back end's table (engine/core/backend.h) and its memory half:
 * storages from the caching pool, element reads and writes, copies with broadcasting and
 * dtype conversion, and fills. The kernels are in the other cpu_*.c files. */
#include "cpu/cpu_kernels.h"
#include <math.h>
#include <stdio.h>

static int storage_init(craft_storage *s, int device, size_t nbytes) {
    (void)device;
    s->data = craft_alloc(nbytes ? nbytes : 1);
    return s->data ? CRAFT_OK : craft_last_status();
}

static int bytes_at(const char *op, const craft_tensor *t, int64_t elem_offset, size_t nbytes, size_t *off) {
    size_t es = craft_dtype_size(t->dtype), start;
    if (elem_offset < 0 || __builtin_mul_overflow((size_t)elem_offset, es, &start) ||
        start > t->storage->nbytes || nbytes > t->storage->nbytes - start)
        return craft_fail(CRAFT_EINVAL, "%s: bytes [%lld elements, +%zu) outside the %zu-byte storage of %s",
                          op, (long long)elem_offset, nbytes, t->storage->nbytes, craft_shape_str(t));
    *off = start;
    return CRAFT_OK;
}

static int read_bytes(const craft_tensor *t, int64_t elem_offset, void *buf, size_t nbytes) {
    size_t off;
    CRAFT_TRY(bytes_at("read", t, elem_offset, nbytes, &off));
    if (nbytes) memcpy(buf, (const char *)t->storage->data + off, nbytes);
    return CRAFT_OK;
}

static int write_bytes(craft_tensor *t, int64_t elem_offset, const void *buf, size_t nbytes) {
    size_t off;
    CRAFT_TRY(bytes_at("write", t, elem_offset, nbytes, &off));
    if (nbytes) memcpy((char *)t->storage->data + off, buf, nbytes);
    return CRAFT_OK;
}

typedef struct {
    int src, dst;
} conv_ctx;

static void copy_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    conv_ctx *c = vctx;
    char *d = p[0], *x = p[1];
    size_t es = craft_dtype_size(c->dst);
    if (c->src == c->dst) {
        if (s[0] == (int64_t)es && s[1] == (int64_t)es) {
            memcpy(d, x, (size_t)n * es);
            return;
        }
        if (es == 4) {
            for (int64_t i = 0; i < n; i++) *(uint32_t *)(d + i * s[0]) = *(const uint32_t *)(x + i * s[1]);
            return;
        }
        if (es == 2) {
            for (int64_t i = 0; i < n; i++) *(uint16_t *)(d + i * s[0]) = *(const uint16_t *)(x + i * s[1]);
            return;
        }
        if (es == 8) {
            for (int64_t i = 0; i < n; i++) *(uint64_t *)(d + i * s[0]) = *(const uint64_t *)(x + i * s[1]);
            return;
        }
        for (int64_t i = 0; i < n; i++) memcpy(d + i * s[0], x + i * s[1], es);
        return;
    }
    if (c->dst == CRAFT_F32 && c->src == CRAFT_F16) {
        for (int64_t i = 0; i < n; i++)
            *(float *)(d + i * s[0]) = craft_half_to_float(*(const uint16_t *)(x + i * s[1]));
        return;
    }
    if (c->dst == CRAFT_F32 && c->src == CRAFT_BF16) {
        for (int64_t i = 0; i < n; i++)
            *(float *)(d + i * s[0]) = craft_bf16_to_float(*(const uint16_t *)(x + i * s[1]));
        return;
    }
    for (int64_t i = 0; i < n; i++)
        craft_store_double(d + i * s[0], c->dst, craft_load_double(x + i * s[1], c->src));
}

/* both on the CPU (a device tensor with a CPU one is its own back end's copy) */
static int copy(craft_tensor *dst, const craft_tensor *src) {
    int nd = dst->ndim;
    int64_t st[2][CRAFT_MAX_DIMS];
    craft_broadcast_strides(dst, nd, dst->shape, st[0]);
    craft_broadcast_strides(src, nd, dst->shape, st[1]);
    char *base[2] = {craft_elem_ptr(dst), craft_elem_ptr(src)};
    conv_ctx c = {src->dtype, dst->dtype};
    craft_iter(2, nd, dst->shape, base, st, copy_loop, &c, 1);
    return CRAFT_OK;
}

static int fill(craft_tensor *t, double value) {
    if (value == 0 && !signbit(value) && craft_is_contiguous(t)) { /* zero bytes in every dtype */
        if (t->numel) memset(craft_elem_ptr(t), 0, (size_t)t->numel * craft_dtype_size(t->dtype));
        return CRAFT_OK;
    }
    char buf[8];
    craft_store_double(buf, t->dtype, value);
    craft_tensor *s;
    int64_t one = 1;
    CRAFT_TRY(craft_from_data(0, &one, t->dtype, buf, &s));
    int rc = copy(t, s);
    craft_tensor_release(s);
    return rc;
}

static const char *device_name(int device, char *buf, size_t n) {
    (void)device;
    snprintf(buf, n, "cpu");
    return buf;
}

/* every kernel takes f32; the bf16 ones run only where oneDNN has native bf16 (cpu_bf16.c) */
static int supports(int device, int kid, int dtype) {
    (void)device;
    if (dtype != CRAFT_F32) return 0;
    if (kid == CRAFT_K_gemm_bf16 || kid == CRAFT_K_conv_bf16 || kid == CRAFT_K_sdpa_bf16 ||
        kid == CRAFT_K_sdpa_grad_bf16)
        return cpu_bf16_native();
    return 1;
}

const craft_backend craft_cpu_backend = {
    .name = "cpu",
    .code_base = CRAFT_DEVICE_CPU,
    .code_count = 1,
    .supports = supports,
    .device_name = device_name,
    .storage_init = storage_init,
    .read = read_bytes,
    .write = write_bytes,
    .copy = copy,
    .fill = fill,
    .k =
        {
            .unary = cpu_unary,
            .unary_grad = cpu_unary_grad,
            .binary = cpu_binary,
            .binary_scalar = cpu_binary_scalar,
            .scalar_grad = cpu_scalar_grad,
            .compare = cpu_compare,
            .clamp = cpu_clamp,
            .clamp_grad = cpu_clamp_grad,
            .where = cpu_where,
            .where_grad = cpu_where_grad,
            .minmax_grad = cpu_minmax_grad,
            .axpy = cpu_axpy,
            .scale = cpu_scale,
            .reduce = cpu_reduce,
            .maxmin = cpu_maxmin,
            .maxmin_grad = cpu_maxmin_grad,
            .gemm = cpu_gemm,
            .sum_rows = cpu_sum_rows,
            .conv = cpu_conv,
            .conv_grad = cpu_conv_grad,
            .geglu = cpu_geglu,
            .geglu_grad = cpu_geglu_grad,
            .channel_sums = cpu_channel_sums,
            .interpolate = cpu_interpolate,
            .interpolate_grad = cpu_interpolate_grad,
            .avg_pool = cpu_avg_pool,
            .avg_pool_grad = cpu_avg_pool_grad,
            .pad = cpu_pad,
            .pad_grad = cpu_pad_grad,
            .embedding = cpu_embedding,
            .embedding_grad = cpu_embedding_grad,
            .timestep_embedding = cpu_timestep_embedding,
            .group_norm = cpu_group_norm,
            .group_norm_grad = cpu_group_norm_grad,
            .group_norm_act = cpu_group_norm_act,
            .group_norm_act_grad = cpu_group_norm_act_grad,
            .layer_norm = cpu_layer_norm,
            .layer_norm_grad = cpu_layer_norm_grad,
            .softmax = cpu_softmax,
            .softmax_grad = cpu_softmax_grad,
            .sdpa = cpu_sdpa,
            .sdpa_grad = cpu_sdpa_grad,
            .l2_normalize = cpu_l2_normalize,
            .l2_normalize_grad = cpu_l2_normalize_grad,
            .cosine = cpu_cosine,
            .cosine_grad = cpu_cosine_grad,
            .cross_entropy = cpu_cross_entropy,
            .cross_entropy_grad = cpu_cross_entropy_grad,
            .mse = cpu_mse,
            .mse_grad = cpu_mse_grad,
            .philox = cpu_philox,
            .adamw = cpu_adamw,
            .sgd = cpu_sgd,
            .ema = cpu_ema,
            .sum_squares = cpu_sum_squares,
            .gemm_bf16 = cpu_gemm_bf16,
            .conv_bf16 = cpu_conv_bf16,
            .sdpa_bf16 = cpu_sdpa_bf16,
            .sdpa_grad_bf16 = cpu_sdpa_grad_bf16,
        },
};
