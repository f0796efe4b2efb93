/* elementwise.cl: unary, binary, tensor-scalar, compare, clamp and where kernels, forward and
 * backward, on strided broadcasting f32 operands (geometry in common.cl). The formulas are
 * engine/cpu/cpu_elementwise.c's, one function per op; the UNARY / BINARY macros below generate a
 * kernel per op from one template, named unary_<op>, unary_grad_<op>, binary_<op> and
 * scalar_<op> (the host looks them up by those names, in craft_unary_op order). */

#define GELU_TANH_C 0.7978845608028654f

static inline float sigm(float x) { return 1.0f / (1.0f + exp(-x)); }

static inline float f_neg(float x) { return -x; }
static inline float f_exp(float x) { return exp(x); }
static inline float f_log(float x) { return log(x); }
static inline float f_sqrt(float x) { return sqrt(x); }
static inline float f_rsqrt(float x) { return 1.0f / sqrt(x); }
static inline float f_abs(float x) { return fabs(x); }
static inline float f_sin(float x) { return sin(x); }
static inline float f_cos(float x) { return cos(x); }
static inline float f_tanh(float x) { return tanh(x); }
static inline float f_sigmoid(float x) { return sigm(x); }
static inline float f_relu(float x) { return x > 0 ? x : 0.0f; }
static inline float f_silu(float x) { return x * sigm(x); }
static inline float f_gelu(float x) { return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f)); }
static inline float f_gelu_tanh(float x) { return 0.5f * x * (1.0f + tanh(GELU_TANH_C * (x + 0.044715f * x * x * x))); }
static inline float f_quick_gelu(float x) { return x * sigm(1.702f * x); }
static inline float f_square(float x) { return x * x; }
static inline float f_reciprocal(float x) { return 1.0f / x; }
static inline float f_softplus(float x) { return x > 20.0f ? x : log1p(exp(x)); }
static inline float f_log1p(float x) { return log1p(x); }

static inline float df_neg(float x) { return -1.0f; }
static inline float df_exp(float x) { return exp(x); }
static inline float df_log(float x) { return 1.0f / x; }
static inline float df_sqrt(float x) { return 0.5f / sqrt(x); }
static inline float df_rsqrt(float x) { return -0.5f / (x * sqrt(x)); }
static inline float df_abs(float x) { return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f); }
static inline float df_sin(float x) { return cos(x); }
static inline float df_cos(float x) { return -sin(x); }
static inline float df_tanh(float x) { float t = tanh(x); return 1 - t * t; }
static inline float df_sigmoid(float x) { float s = sigm(x); return s * (1 - s); }
static inline float df_relu(float x) { return x > 0 ? 1.0f : 0.0f; }
static inline float df_silu(float x) { float s = sigm(x); return s * (1 + x * (1 - s)); }
static inline float df_gelu(float x) {
    return 0.5f * (1.0f + erf(x * 0.70710678118654752f)) + x * 0.3989422804014327f * exp(-0.5f * x * x);
}
static inline float df_gelu_tanh(float x) {
    float u = GELU_TANH_C * (x + 0.044715f * x * x * x), t = tanh(u);
    return 0.5f * (1 + t) + 0.5f * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715f * x * x);
}
static inline float df_quick_gelu(float x) { float s = sigm(1.702f * x); return s + 1.702f * x * s * (1 - s); }
static inline float df_square(float x) { return 2 * x; }
static inline float df_reciprocal(float x) { return -1.0f / (x * x); }
static inline float df_softplus(float x) { return sigm(x); }
static inline float df_log1p(float x) { return 1.0f / (1.0f + x); }

/* f and f' of the unary op with craft_unary_op code `op` (engine/craft.h's order, as
 * CL_UNARY_OPS in engine/cl/cl_internal.h): the fused kernels' activations (norm.cl) */
#define UNARY_CASES(F) \
    switch (op) { \
    case 0: return F##neg(x); case 1: return F##exp(x); case 2: return F##log(x); case 3: return F##sqrt(x); \
    case 4: return F##rsqrt(x); case 5: return F##abs(x); case 6: return F##sin(x); case 7: return F##cos(x); \
    case 8: return F##tanh(x); case 9: return F##sigmoid(x); case 10: return F##relu(x); \
    case 11: return F##silu(x); case 12: return F##gelu(x); case 13: return F##gelu_tanh(x); \
    case 14: return F##quick_gelu(x); case 15: return F##square(x); case 16: return F##reciprocal(x); \
    case 17: return F##softplus(x); default: return F##log1p(x); \
    }
static inline float unary_f(int op, float x) { UNARY_CASES(f_) }
static inline float unary_df(int op, float x) { UNARY_CASES(df_) }

/* y = f(x); gx = gy * f'(x) */
#define UNARY(name) \
__kernel void unary_##name(GEO_ARGS, const long n, __global float *y, __global const float *x) { \
    FOR_EACH(i, n) { long o[2]; geom_offsets(GEO(craft_geom), i, o, 2); y[o[0]] = f_##name(x[o[1]]); } \
} \
__kernel void unary_grad_##name(GEO_ARGS, const long n, __global float *gx, __global const float *x, \
                                __global const float *gy) { \
    FOR_EACH(i, n) { long o[3]; geom_offsets(GEO(craft_geom), i, o, 3); gx[o[0]] = gy[o[2]] * df_##name(x[o[1]]); } \
}
UNARY(neg) UNARY(exp) UNARY(log) UNARY(sqrt) UNARY(rsqrt) UNARY(abs) UNARY(sin) UNARY(cos)
UNARY(tanh) UNARY(sigmoid) UNARY(relu) UNARY(silu) UNARY(gelu) UNARY(gelu_tanh)
UNARY(quick_gelu) UNARY(square) UNARY(reciprocal) UNARY(softplus) UNARY(log1p)

static inline float b_add(float a, float b) { return a + b; }
static inline float b_sub(float a, float b) { return a - b; }
static inline float b_mul(float a, float b) { return a * b; }
static inline float b_div(float a, float b) { return a / b; }
static inline float b_pow(float a, float b) { return pow(a, b); }
static inline float b_maximum(float a, float b) { return a > b || a != a ? a : b; }
static inline float b_minimum(float a, float b) { return a < b || a != a ? a : b; }

/* y = a op b; y = a op s, or s op a when reverse */
#define BINARY(name) \
__kernel void binary_##name(GEO_ARGS, const long n, __global float *y, __global const float *a, \
                            __global const float *b) { \
    FOR_EACH(i, n) { long o[3]; geom_offsets(GEO(craft_geom), i, o, 3); y[o[0]] = b_##name(a[o[1]], b[o[2]]); } \
} \
__kernel void scalar_##name(GEO_ARGS, const long n, __global float *y, __global const float *a, \
                            const float s, const int reverse) { \
    FOR_EACH(i, n) { \
        long o[2]; geom_offsets(GEO(craft_geom), i, o, 2); \
        float v = a[o[1]]; \
        y[o[0]] = reverse ? b_##name(s, v) : b_##name(v, s); \
    } \
}
BINARY(add) BINARY(sub) BINARY(mul) BINARY(div) BINARY(pow) BINARY(maximum) BINARY(minimum)

/* d/da of (a op s) or (s op a), times g */
__kernel void scalar_grad(GEO_ARGS, const long n, __global float *gx, __global const float *a,
                          __global const float *gy, const int op, const float s, const int reverse) {
    FOR_EACH(i, n) {
        long o[3];
        geom_offsets(GEO(craft_geom), i, o, 3);
        float x = a[o[1]], d = 0;
        switch (op) {
        case 0: d = 1; break;
        case 1: d = reverse ? -1.0f : 1.0f; break;
        case 2: d = s; break;
        case 3: d = reverse ? -s / (x * x) : 1.0f / s; break;
        case 4: d = reverse ? pow(s, x) * log(s) : (s == 0 ? 0 : s * pow(x, s - 1)); break;
        case 5: d = x > s ? 1.0f : (x == s ? 0.5f : 0.0f); break;
        case 6: d = x < s ? 1.0f : (x == s ? 0.5f : 0.0f); break;
        }
        gx[o[0]] = gy[o[2]] * d;
    }
}

/* gradient routing of maximum (op 5) / minimum (op 6): g where a wins (which 0) or b wins
 * (which 1), half each on ties */
__kernel void minmax_mask(GEO_ARGS, const long n, __global float *out, __global const float *a,
                          __global const float *b, __global const float *gy, const int op, const int which) {
    FOR_EACH(i, n) {
        long o[4];
        geom_offsets(GEO(craft_geom), i, o, 4);
        float x = a[o[1]], y = b[o[2]];
        int a_wins = op == 5 ? (x > y) : (x < y);
        float share = x == y ? 0.5f : (float)(which == 0 ? a_wins : !a_wins);
        out[o[0]] = gy[o[3]] * share;
    }
}

/* craft_compare_op: eq ne lt le gt ge -> 0/1 as f32 */
__kernel void compare(GEO_ARGS, const long n, __global float *y, __global const float *a,
                      __global const float *b, const int op) {
    FOR_EACH(i, n) {
        long o[3];
        geom_offsets(GEO(craft_geom), i, o, 3);
        float x = a[o[1]], z = b[o[2]];
        int r = 0;
        switch (op) {
        case 0: r = x == z; break;
        case 1: r = x != z; break;
        case 2: r = x < z; break;
        case 3: r = x <= z; break;
        case 4: r = x > z; break;
        case 5: r = x >= z; break;
        }
        y[o[0]] = (float)r;
    }
}

__kernel void clamp_fwd(GEO_ARGS, const long n, __global float *y, __global const float *x,
                        const float lo, const float hi) {
    FOR_EACH(i, n) {
        long o[2];
        geom_offsets(GEO(craft_geom), i, o, 2);
        float v = x[o[1]];
        y[o[0]] = v < lo ? lo : (v > hi ? hi : v);
    }
}

__kernel void clamp_grad(GEO_ARGS, const long n, __global float *gx, __global const float *x,
                         __global const float *gy, const float lo, const float hi) {
    FOR_EACH(i, n) {
        long o[3];
        geom_offsets(GEO(craft_geom), i, o, 3);
        float v = x[o[1]];
        gx[o[0]] = (v >= lo && v <= hi) ? gy[o[2]] : 0.0f;
    }
}

/* y = c != 0 ? a : b */
__kernel void where_fwd(GEO_ARGS, const long n, __global float *y, __global const float *c,
                        __global const float *a, __global const float *b) {
    FOR_EACH(i, n) {
        long o[4];
        geom_offsets(GEO(craft_geom), i, o, 4);
        y[o[0]] = c[o[1]] != 0 ? a[o[2]] : b[o[3]];
    }
}

/* gradient of where for side 0 (a) or 1 (b) */
__kernel void where_grad(GEO_ARGS, const long n, __global float *out, __global const float *c,
                         __global const float *gy, const int side) {
    FOR_EACH(i, n) {
        long o[3];
        geom_offsets(GEO(craft_geom), i, o, 3);
        out[o[0]] = ((c[o[1]] != 0) == (side == 0)) ? gy[o[2]] : 0.0f;
    }
}

/* in place: d += alpha * s (axpy_), d *= s (scale_) */
__kernel void axpy(GEO_ARGS, const long n, __global float *d, __global const float *s, const float alpha) {
    FOR_EACH(i, n) { long o[2]; geom_offsets(GEO(craft_geom), i, o, 2); d[o[0]] += alpha * s[o[1]]; }
}

__kernel void scale(GEO_ARGS, const long n, __global float *d, const float s) {
    FOR_EACH(i, n) { long o[1]; geom_offsets(GEO(craft_geom), i, o, 1); d[o[0]] *= s; }
}
