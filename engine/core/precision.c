/* precision.c: the compute-precision setting (fp32; bf16 for the no-grad matrix products;
 * bf16-mixed for recorded ones and their input gradients too; fp16 for the no-grad ones on
 * devices with f16 kernels) and the op layer's rule for when a bf16 or f16 kernel may run. The
 * kernels are the back ends' (gemm_bf16, conv_bf16, sdpa_bf16; gemm_f16, conv_f16, sdpa_f16 in
 * core/backend.h). */
#include "core/backend.h"

static _Thread_local int precision; /* CRAFT_PREC_FP32 unless set */
static _Thread_local int suppress;  /* > 0 inside a backward pass: fp32 under CRAFT_PREC_BF16 */
static int64_t bf16_calls, f16_calls;

static int known_precision(int p) {
    return p == CRAFT_PREC_FP32 || p == CRAFT_PREC_BF16 || p == CRAFT_PREC_BF16_MIXED || p == CRAFT_PREC_FP16;
}

int craft_set_compute_precision(int p, int *previous) {
    if (!known_precision(p))
        return craft_fail(CRAFT_EINVAL,
                          "set_compute_precision: unknown precision %d (expected %d fp32, %d bf16, %d "
                          "bf16-mixed or %d fp16)",
                          p, CRAFT_PREC_FP32, CRAFT_PREC_BF16, CRAFT_PREC_BF16_MIXED, CRAFT_PREC_FP16);
    if (previous) *previous = precision;
    precision = p;
    return CRAFT_OK;
}

int craft_compute_precision(void) { return precision; }

int64_t craft_bf16_kernel_calls(void) { return __atomic_load_n(&bf16_calls, __ATOMIC_RELAXED); }
void craft_bf16_count(void) { __atomic_add_fetch(&bf16_calls, 1, __ATOMIC_RELAXED); }

void craft_precision_suppress(int on) { suppress += on ? 1 : -1; }

/* Mixed precision lets recorded ops (and the recomputation of a checkpoint, which runs inside
 * backward) compute in bf16; their backward follows what the forward did (craft_bf16_grad_for),
 * not the setting at backward time. */
/* The no-grad precisions' rule (bf16, fp16): the setting is p, no backward pass runs, the op
 * records no gradient (grad mode off or no input requires grad) and device has kernel kid. */
static int unrecorded_under(int p, int device, int kid, int n, const craft_tensor *const *ins) {
    if (precision != p || suppress > 0) return 0;
    if (craft_grad_enabled())
        for (int i = 0; i < n; i++)
            if (ins[i] && ins[i]->requires_grad) return 0;
    return craft_device_supports(device, kid, CRAFT_F32);
}

int craft_bf16_for(int device, int kid, int n, const craft_tensor *const *ins) {
    if (precision == CRAFT_PREC_BF16_MIXED) return craft_device_supports(device, kid, CRAFT_F32);
    return unrecorded_under(CRAFT_PREC_BF16, device, kid, n, ins);
}

int craft_bf16_grad_for(const craft_node *n, int kid) {
    return n->lowp && craft_device_supports(n->device, kid, CRAFT_F32);
}

int craft_precision_kernels(int device, int p, int *kernels) {
    if (!kernels) return craft_fail(CRAFT_EINVAL, "precision_kernels: kernels is NULL");
    *kernels = 0;
    if (!known_precision(p)) return craft_fail(CRAFT_EINVAL, "precision_kernels: unknown precision %d", p);
    if (!craft_backend_of(device, "precision_kernels")) return craft_last_status();
    /* each precision's kernels (-1 ends a row): bf16's include the attention gradient that
     * mixed precision runs */
    static const int kids[3][5] = {{CRAFT_K_gemm, CRAFT_K_conv, CRAFT_K_sdpa, -1},
                                   {CRAFT_K_gemm_bf16, CRAFT_K_conv_bf16, CRAFT_K_sdpa_bf16, CRAFT_K_sdpa_grad_bf16, -1},
                                   {CRAFT_K_gemm_f16, CRAFT_K_conv_f16, CRAFT_K_sdpa_f16, -1}};
    int row = p == CRAFT_PREC_FP32 ? 0 : p == CRAFT_PREC_FP16 ? 2 : 1;
    for (int i = 0; kids[row][i] >= 0; i++) *kernels += craft_device_supports(device, kids[row][i], CRAFT_F32);
    return CRAFT_OK;
}

int64_t craft_f16_kernel_calls(void) { return __atomic_load_n(&f16_calls, __ATOMIC_RELAXED); }
void craft_f16_count(void) { __atomic_add_fetch(&f16_calls, 1, __ATOMIC_RELAXED); }

/* fp16 keeps bf16's no-grad rule: recorded ops and backward passes compute fp32 */
int craft_f16_for(int device, int kid, int n, const craft_tensor *const *ins) {
    return unrecorded_under(CRAFT_PREC_FP16, device, kid, n, ins);
}
