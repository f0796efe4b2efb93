/* cl_backend.c: the OpenCL back end's table (engine/core/backend.h): device codes 1 + n for
 * OpenCL device n ("cl:n"), its memory and transfer functions and its kernels. */
#include "cl/cl_internal.h"
#include <stdio.h>

static int device_check(int device, const char *op) {
    craft_cl_dev *d;
    return cl_dev_get(device, op, &d);
}

static const char *device_name(int device, char *buf, size_t n) {
    craft_cl_dev *d = cl_dev_entry(device - 1);
    if (d) snprintf(buf, n, "cl:%d (%s)", device - 1, d->info.name);
    else snprintf(buf, n, "cl:%d", device - 1);
    return buf;
}

/* every kernel takes f32 (the f16 compute kernels too: their operands are f32 tensors read as
 * f16 copies, which every device can do); gemm also f16 tensors where the device has
 * cl_khr_fp16 (CLBlast's HGEMM) */
static int supports(int device, int kid, int dtype) {
    if (dtype == CRAFT_F32) return 1;
    if (kid != CRAFT_K_gemm || dtype != CRAFT_F16) return 0;
    craft_cl_dev *d = cl_dev_entry(device - 1);
    return d && d->info.fp16;
}

const craft_backend craft_cl_backend = {
    .name = "opencl",
    .code_base = 1,
    .code_count = CRAFT_CL_MAX_DEVICES,
    .device_check = device_check,
    .device_name = device_name,
    .supports = supports,
    .storage_init = craft_cl_storage_init,
    .read = craft_cl_read_bytes,
    .write = craft_cl_write_bytes,
    .copy = craft_cl_copy_,
    .fill = craft_cl_fill_,
    .k =
        {
            .unary = craft_cl_unary,
            .unary_grad = craft_cl_unary_grad,
            .binary = craft_cl_binary,
            .binary_scalar = craft_cl_binary_scalar,
            .scalar_grad = craft_cl_scalar_grad,
            .compare = craft_cl_compare,
            .clamp = craft_cl_clamp,
            .clamp_grad = craft_cl_clamp_grad,
            .where = craft_cl_where,
            .where_grad = craft_cl_where_grad,
            .minmax_grad = craft_cl_minmax_grad,
            .axpy = craft_cl_axpy_,
            .scale = craft_cl_scale_,
            .reduce = craft_cl_reduce_rows,
            .maxmin = craft_cl_maxmin,
            .maxmin_grad = craft_cl_maxmin_grad,
            .gemm = craft_cl_gemm_batched,
            .sum_rows = craft_cl_sum_rows,
            .conv = craft_cl_conv,
            .channel_sums = craft_cl_channel_sums,
            .interpolate = craft_cl_interpolate,
            .interpolate_grad = craft_cl_interpolate_grad,
            .avg_pool = craft_cl_avg_pool,
            .avg_pool_grad = craft_cl_avg_pool_grad,
            .pad = craft_cl_pad,
            .pad_grad = craft_cl_pad_grad,
            .embedding = craft_cl_embedding,
            .embedding_grad = craft_cl_embedding_grad,
            .timestep_embedding = craft_cl_timestep_embedding,
            .group_norm = craft_cl_group_norm,
            .group_norm_grad = craft_cl_group_norm_grad,
            .group_norm_act = craft_cl_group_norm_act,
            .group_norm_act_grad = craft_cl_group_norm_act_grad,
            .layer_norm = craft_cl_layer_norm,
            .layer_norm_grad = craft_cl_layer_norm_grad,
            .softmax = craft_cl_softmax,
            .softmax_grad = craft_cl_softmax_grad,
            .sdpa = craft_cl_sdpa,
            .sdpa_grad = craft_cl_sdpa_grad,
            .gemm_f16 = craft_cl_gemm_f16,
            .conv_f16 = craft_cl_conv_f16,
            .sdpa_f16 = craft_cl_sdpa_f16,
            .l2_normalize = craft_cl_l2_normalize,
            .l2_normalize_grad = craft_cl_l2_normalize_grad,
            .cosine = craft_cl_cosine,
            .cosine_grad = craft_cl_cosine_grad,
            .cross_entropy = craft_cl_cross_entropy,
            .cross_entropy_grad = craft_cl_cross_entropy_grad,
            .mse = craft_cl_mse,
            .mse_grad = craft_cl_mse_grad,
            .philox = craft_cl_philox,
            .adamw = craft_cl_adamw,
            .sgd = craft_cl_sgd,
            .ema = craft_cl_ema,
            .sum_squares = craft_cl_sum_squares,
            .clip_grad_norm = craft_cl_clip_grad_norm,
        },
};
