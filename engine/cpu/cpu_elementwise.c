/* cpu_elementwise.c: the CPU's elementwise kernels (core/backend.h's contracts) on the
 * strided iterator (cpu_iter.c): every operand is broadcast to the output's shape through byte
 * strides, dims are coalesced and the work split over OpenMP threads. Compute is float32. */
#include "cpu/cpu_kernels.h"
#include "cpu/cpu_vmath.h"
#include <math.h>
#include <omp.h>

#define GELU_TANH_C 0.7978845608028654f /* sqrt(2/pi) */

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
/* s = sigmoid(x) and *c = 1 - s from one exp, c without the cancellation where s rounds toward 1
 * (the scalar twin of cpu_vmath.h's vm_sigmoid2) */
static inline float sigmoid2_(float x, float *c) {
    float e = expf(-x), s = 1.0f / (1.0f + e);
    *c = x > 0 ? e * s : 1.0f - s;
    return s;
}
/* Phi(x) through erfc, which keeps its relative accuracy in the negative tail (1 + erf cancels) */
static inline float normal_cdf(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }

static inline float unary_f(int op, float x) {
    switch (op) {
    case CRAFT_NEG: return -x;
    case CRAFT_EXP: return expf(x);
    case CRAFT_LOG: return logf(x);
    case CRAFT_SQRT: return sqrtf(x);
    case CRAFT_RSQRT: return 1.0f / sqrtf(x);
    case CRAFT_ABS: return fabsf(x);
    case CRAFT_SIN: return sinf(x);
    case CRAFT_COS: return cosf(x);
    case CRAFT_TANH: return tanhf(x);
    case CRAFT_SIGMOID: return sigmoidf_(x);
    case CRAFT_RELU: return x > 0 ? x : 0;
    case CRAFT_SILU: return x * sigmoidf_(x);
    case CRAFT_GELU: return x * normal_cdf(x);
    case CRAFT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(GELU_TANH_C * (x + 0.044715f * x * x * x)));
    case CRAFT_QUICK_GELU: return x * sigmoidf_(1.702f * x);
    case CRAFT_SQUARE: return x * x;
    case CRAFT_RECIPROCAL: return 1.0f / x;
    case CRAFT_SOFTPLUS: return x > 20.0f ? x : log1pf(expf(x));
    case CRAFT_LOG1P: return log1pf(x);
    }
    return 0;
}

/* d op(x) / dx */
static inline float unary_df(int op, float x) {
    switch (op) {
    case CRAFT_NEG: return -1;
    case CRAFT_EXP: return expf(x);
    case CRAFT_LOG: return 1.0f / x;
    case CRAFT_SQRT: return 0.5f / sqrtf(x);
    case CRAFT_RSQRT: return -0.5f / (x * sqrtf(x));
    case CRAFT_ABS: return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f);
    case CRAFT_SIN: return cosf(x);
    case CRAFT_COS: return -sinf(x);
    case CRAFT_TANH: {
        float t = tanhf(x);
        return 1 - t * t;
    }
    case CRAFT_SIGMOID: {
        float c, s = sigmoid2_(x, &c);
        return s * c;
    }
    case CRAFT_RELU: return x > 0 ? 1.0f : 0.0f;
    case CRAFT_SILU: {
        float c, s = sigmoid2_(x, &c);
        return s * (1 + x * c);
    }
    case CRAFT_GELU: return normal_cdf(x) + x * 0.3989422804014327f * expf(-0.5f * x * x);
    case CRAFT_GELU_TANH: {
        float u = GELU_TANH_C * (x + 0.044715f * x * x * x), t = tanhf(u);
        return 0.5f * (1 + t) + 0.5f * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715f * x * x);
    }
    case CRAFT_QUICK_GELU: {
        float c, ax = 1.702f * x, s = sigmoid2_(ax, &c);
        return s + ax * s * c;
    }
    case CRAFT_SQUARE: return 2 * x;
    case CRAFT_RECIPROCAL: return -1.0f / (x * x);
    case CRAFT_SOFTPLUS: return sigmoidf_(x);
    case CRAFT_LOG1P: return 1.0f / (1.0f + x);
    }
    return 0;
}

typedef struct {
    int op;
} op_ctx;

/* y = op(x) over n contiguous floats (y may be x): the vector forms of cpu_vmath.h where they
 * exist, else one loop per op so that the op is not re-dispatched per element */
void cpu_unary_contig(int op, const float *x, float *y, int64_t n) {
#ifdef CRAFT_HAVE_VMATH
    if (vm_has(op)) {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, vm_activation(op, _mm512_loadu_ps(x + i)));
        if (i < n) {
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            _mm512_mask_storeu_ps(y + i, m, vm_activation(op, _mm512_maskz_loadu_ps(m, x + i)));
        }
        return;
    }
#endif
    switch (op) {
#define EACH(OP)                                                                                             \
    case OP:                                                                                                 \
        for (int64_t i = 0; i < n; i++) y[i] = unary_f(OP, x[i]);                                            \
        return;
        EACH(CRAFT_NEG) EACH(CRAFT_EXP) EACH(CRAFT_LOG) EACH(CRAFT_SQRT) EACH(CRAFT_RSQRT) EACH(CRAFT_ABS)
        EACH(CRAFT_SIN) EACH(CRAFT_COS) EACH(CRAFT_TANH) EACH(CRAFT_SIGMOID) EACH(CRAFT_RELU) EACH(CRAFT_SILU)
        EACH(CRAFT_GELU) EACH(CRAFT_GELU_TANH) EACH(CRAFT_QUICK_GELU) EACH(CRAFT_SQUARE) EACH(CRAFT_RECIPROCAL)
        EACH(CRAFT_SOFTPLUS) EACH(CRAFT_LOG1P)
#undef EACH
    }
}

/* gx = g * op'(x) over n contiguous floats (gx may alias x or g) */
void cpu_unary_grad_contig(int op, const float *x, const float *g, float *gx, int64_t n) {
#ifdef CRAFT_HAVE_VMATH
    if (vm_has(op)) {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(gx + i, vm_activation_grad(op, _mm512_loadu_ps(x + i), _mm512_loadu_ps(g + i)));
        if (i < n) {
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            __m512 v = vm_activation_grad(op, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, g + i));
            _mm512_mask_storeu_ps(gx + i, m, v);
        }
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) gx[i] = g[i] * unary_df(op, x[i]);
}


/* GEGLU over rows of a contiguous x [rows, 2n]: y = a * gelu(g) and its gradient, each row in one
 * pass with cpu_unary_contig's GELU, so that the numbers are those of the slices, gelu and mul ops
 * (the product commutes exactly; the zeros the slices' gradients add to are exact). */
int cpu_geglu(const craft_tensor *x, int64_t rows, int64_t n, craft_tensor *y) {
    const float *xp = craft_tensor_data(x);
    float *yp = craft_tensor_data(y);
#pragma omp parallel for if (rows * n >= CRAFT_PAR_MIN && !omp_in_parallel()) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *a = xp + r * 2 * n;
        float *o = yp + r * n;
        cpu_unary_contig(CRAFT_GELU, a + n, o, n);
        for (int64_t j = 0; j < n; j++) o[j] = a[j] * o[j];
    }
    return CRAFT_OK;
}

int cpu_geglu_grad(const craft_tensor *x, const craft_tensor *g, int64_t rows, int64_t n, craft_tensor *gx) {
    const float *xp = craft_tensor_data(x), *gp = craft_tensor_data(g);
    float *op = craft_tensor_data(gx);
#pragma omp parallel for if (rows * n >= CRAFT_PAR_MIN && !omp_in_parallel()) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *a = xp + r * 2 * n, *gr = gp + r * n;
        float *ga = op + r * 2 * n, *gg = ga + n;
        cpu_unary_contig(CRAFT_GELU, a + n, ga, n); /* d/da = gelu(g) */
        for (int64_t j = 0; j < n; j++) {
            ga[j] = gr[j] * ga[j];
            gg[j] = gr[j] * a[j];
        }
        cpu_unary_grad_contig(CRAFT_GELU, a + n, gg, gg, n); /* d/dg = g a gelu'(g) */
    }
    return CRAFT_OK;
}

/* Strided operands go through a small buffer, so that a value's result does not depend on the
 * layout it came in. */
#define CHUNK 256

static void unary_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    if (s[0] == 4 && s[1] == 4) {
        cpu_unary_contig(op, (const float *)p[1], (float *)p[0], n);
        return;
    }
    float buf[CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        int64_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (int64_t j = 0; j < m; j++) buf[j] = *(const float *)(p[1] + (i0 + j) * s[1]);
        cpu_unary_contig(op, buf, buf, m);
        for (int64_t j = 0; j < m; j++) *(float *)(p[0] + (i0 + j) * s[0]) = buf[j];
    }
}

static void unary_grad_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    if (s[0] == 4 && s[1] == 4 && s[2] == 4) {
        cpu_unary_grad_contig(op, (const float *)p[1], (const float *)p[2], (float *)p[0], n);
        return;
    }
    float xb[CHUNK], gb[CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        int64_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (int64_t j = 0; j < m; j++) {
            xb[j] = *(const float *)(p[1] + (i0 + j) * s[1]);
            gb[j] = *(const float *)(p[2] + (i0 + j) * s[2]);
        }
        cpu_unary_grad_contig(op, xb, gb, gb, m);
        for (int64_t j = 0; j < m; j++) *(float *)(p[0] + (i0 + j) * s[0]) = gb[j];
    }
}

static inline float binary_f(int op, float a, float b) {
    switch (op) {
    case CRAFT_ADD: return a + b;
    case CRAFT_SUB: return a - b;
    case CRAFT_MUL: return a * b;
    case CRAFT_DIV: return a / b;
    case CRAFT_POW: return powf(a, b);
    case CRAFT_MAXIMUM: return a > b || a != a ? a : b;
    case CRAFT_MINIMUM: return a < b || a != a ? a : b;
    }
    return 0;
}

static void binary_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    float *y = (float *)p[0];
    if (s[1] == 4 && s[2] == 4) {
        const float *a = (const float *)p[1], *b = (const float *)p[2];
        switch (op) { /* the common cases, written out so that they vectorise */
        case CRAFT_ADD:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
            return;
        case CRAFT_SUB:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] - b[i];
            return;
        case CRAFT_MUL:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
            return;
        case CRAFT_DIV:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] / b[i];
            return;
        }
    } else if (s[1] == 4 && s[2] == 0) {
        const float *a = (const float *)p[1];
        float b = *(const float *)p[2];
        switch (op) {
        case CRAFT_ADD:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] + b;
            return;
        case CRAFT_MUL:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] * b;
            return;
        }
    }
    for (int64_t i = 0; i < n; i++)
        *(float *)(p[0] + i * s[0]) =
            binary_f(op, *(const float *)(p[1] + i * s[1]), *(const float *)(p[2] + i * s[2]));
}

typedef struct {
    int op;
    float a;
    int which;
} mask_ctx;
/* gradient routing for maximum/minimum: out = g where (a wins) for which=0, else where b wins */
static void minmax_mask_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    mask_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * s[1]), b = *(const float *)(p[2] + i * s[2]),
              g = *(const float *)(p[3] + i * s[3]);
        int a_wins = c->op == CRAFT_MAXIMUM ? (a > b) : (a < b);
        float share = a == b ? 0.5f : (float)(c->which == 0 ? a_wins : !a_wins);
        *(float *)(p[0] + i * s[0]) = g * share;
    }
}

typedef struct {
    int op;
    float s;
    int reverse;
} scalar_ctx;

static void scalar_loop(int64_t n, char **p, const int64_t *st, void *vctx) {
    scalar_ctx *c = vctx;
    float s = c->s;
    if (st[1] == 4 && !c->reverse) {
        float *y = (float *)p[0];
        const float *a = (const float *)p[1];
        switch (c->op) {
        case CRAFT_ADD:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] + s;
            return;
        case CRAFT_SUB:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] - s;
            return;
        case CRAFT_MUL:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] * s;
            return;
        case CRAFT_DIV:
            for (int64_t i = 0; i < n; i++) y[i] = a[i] / s;
            return;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * st[1]);
        *(float *)(p[0] + i * st[0]) = c->reverse ? binary_f(c->op, s, a) : binary_f(c->op, a, s);
    }
}

/* d/da of (a op s) or (s op a) */
static void scalar_grad_loop(int64_t n, char **p, const int64_t *st, void *vctx) {
    scalar_ctx *c = vctx;
    float s = c->s;
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * st[1]), g = *(const float *)(p[2] + i * st[2]), d = 0;
        switch (c->op) {
        case CRAFT_ADD: d = 1; break;
        case CRAFT_SUB: d = c->reverse ? -1.0f : 1.0f; break;
        case CRAFT_MUL: d = s; break;
        case CRAFT_DIV: d = c->reverse ? -s / (a * a) : 1.0f / s; break;
        case CRAFT_POW: d = c->reverse ? powf(s, a) * logf(s) : (s == 0 ? 0 : s * powf(a, s - 1)); break;
        case CRAFT_MAXIMUM: d = a > s ? 1.0f : (a == s ? 0.5f : 0.0f); break;
        case CRAFT_MINIMUM: d = a < s ? 1.0f : (a == s ? 0.5f : 0.0f); break;
        }
        *(float *)(p[0] + i * st[0]) = g * d;
    }
}

static void compare_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int op = ((op_ctx *)vctx)->op;
    for (int64_t i = 0; i < n; i++) {
        float a = *(const float *)(p[1] + i * s[1]), b = *(const float *)(p[2] + i * s[2]);
        int r = 0;
        switch (op) {
        case CRAFT_EQ: r = a == b; break;
        case CRAFT_NE: r = a != b; break;
        case CRAFT_LT: r = a < b; break;
        case CRAFT_LE: r = a <= b; break;
        case CRAFT_GT: r = a > b; break;
        case CRAFT_GE: r = a >= b; break;
        }
        *(float *)(p[0] + i * s[0]) = (float)r;
    }
}

typedef struct {
    float lo, hi;
} clamp_ctx;
static void clamp_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    clamp_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float x = *(const float *)(p[1] + i * s[1]);
        *(float *)(p[0] + i * s[0]) = x < c->lo ? c->lo : (x > c->hi ? c->hi : x);
    }
}
static void clamp_grad_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    clamp_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        float x = *(const float *)(p[1] + i * s[1]), g = *(const float *)(p[2] + i * s[2]);
        *(float *)(p[0] + i * s[0]) = (x >= c->lo && x <= c->hi) ? g : 0.0f;
    }
}
static void where_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    int side = ((op_ctx *)vctx)->op; /* -1: forward select; 0/1: gradient routing */
    for (int64_t i = 0; i < n; i++) {
        float c = *(const float *)(p[1] + i * s[1]);
        float v;
        if (side < 0) v = c != 0 ? *(const float *)(p[2] + i * s[2]) : *(const float *)(p[3] + i * s[3]);
        else v = ((c != 0) == (side == 0)) ? *(const float *)(p[2] + i * s[2]) : 0.0f;
        *(float *)(p[0] + i * s[0]) = v;
    }
}

/* Runs fn over y (written) and ins (read), every operand broadcast to y's shape. */
static int run(craft_tensor *y, int nin, const craft_tensor *const *ins, craft_loop_fn fn, void *ctx) {
    int64_t st[4][CRAFT_MAX_DIMS];
    char *base[4];
    craft_broadcast_strides(y, y->ndim, y->shape, st[0]);
    base[0] = craft_elem_ptr(y);
    for (int i = 0; i < nin; i++) {
        craft_broadcast_strides(ins[i], y->ndim, y->shape, st[i + 1]);
        base[i + 1] = craft_elem_ptr(ins[i]);
    }
    craft_iter(nin + 1, y->ndim, y->shape, base, st, fn, ctx, 1);
    return CRAFT_OK;
}

int cpu_unary(int op, const craft_tensor *x, craft_tensor *y) {
    op_ctx c = {op};
    return run(y, 1, &x, unary_loop, &c);
}

int cpu_unary_grad(int op, const craft_tensor *x, const craft_tensor *g, craft_tensor *gx) {
    op_ctx c = {op};
    const craft_tensor *ins[2] = {x, g};
    return run(gx, 2, ins, unary_grad_loop, &c);
}

int cpu_binary(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *y) {
    op_ctx c = {op};
    const craft_tensor *ins[2] = {a, b};
    return run(y, 2, ins, binary_loop, &c);
}

int cpu_binary_scalar(int op, const craft_tensor *a, double s, int reverse, craft_tensor *y) {
    scalar_ctx c = {op, (float)s, reverse ? 1 : 0};
    return run(y, 1, &a, scalar_loop, &c);
}

int cpu_scalar_grad(int op, double s, int reverse, const craft_tensor *x, const craft_tensor *g,
                    craft_tensor *gx) {
    scalar_ctx c = {op, (float)s, reverse ? 1 : 0};
    const craft_tensor *ins[2] = {x, g};
    return run(gx, 2, ins, scalar_grad_loop, &c);
}

int cpu_compare(int op, const craft_tensor *a, const craft_tensor *b, craft_tensor *y) {
    op_ctx c = {op};
    const craft_tensor *ins[2] = {a, b};
    return run(y, 2, ins, compare_loop, &c);
}

int cpu_clamp(const craft_tensor *x, double lo, double hi, craft_tensor *y) {
    clamp_ctx c = {(float)lo, (float)hi};
    return run(y, 1, &x, clamp_loop, &c);
}

int cpu_clamp_grad(const craft_tensor *x, const craft_tensor *g, double lo, double hi, craft_tensor *gx) {
    clamp_ctx c = {(float)lo, (float)hi};
    const craft_tensor *ins[2] = {x, g};
    return run(gx, 2, ins, clamp_grad_loop, &c);
}

int cpu_where(const craft_tensor *cond, const craft_tensor *a, const craft_tensor *b, craft_tensor *y) {
    op_ctx c = {-1};
    const craft_tensor *ins[3] = {cond, a, b};
    return run(y, 3, ins, where_loop, &c);
}

int cpu_where_grad(int side, const craft_tensor *cond, const craft_tensor *g, craft_tensor *gx) {
    op_ctx c = {side};
    const craft_tensor *ins[2] = {cond, g};
    return run(gx, 2, ins, where_loop, &c);
}

int cpu_minmax_grad(int op, int which, const craft_tensor *a, const craft_tensor *b, const craft_tensor *g,
                    craft_tensor *gx) {
    mask_ctx c = {op, 0, which};
    const craft_tensor *ins[3] = {a, b, g};
    return run(gx, 3, ins, minmax_mask_loop, &c);
}

typedef struct {
    float alpha;
} axpy_ctx;
static void axpy_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    float a = ((axpy_ctx *)vctx)->alpha;
    if (s[0] == 4 && s[1] == 4) {
        float *d = (float *)p[0];
        const float *x = (const float *)p[1];
        for (int64_t i = 0; i < n; i++) d[i] += a * x[i];
        return;
    }
    for (int64_t i = 0; i < n; i++) *(float *)(p[0] + i * s[0]) += a * *(const float *)(p[1] + i * s[1]);
}

int cpu_axpy(craft_tensor *dst, double alpha, const craft_tensor *src) {
    int64_t st[2][CRAFT_MAX_DIMS];
    craft_broadcast_strides(dst, dst->ndim, dst->shape, st[0]);
    craft_broadcast_strides(src, dst->ndim, dst->shape, st[1]);
    char *base[2] = {craft_elem_ptr(dst), craft_elem_ptr(src)};
    axpy_ctx c = {(float)alpha};
    craft_iter(2, dst->ndim, dst->shape, base, st, axpy_loop, &c, 1);
    return CRAFT_OK;
}

static void scale_loop(int64_t n, char **p, const int64_t *s, void *vctx) {
    float a = ((axpy_ctx *)vctx)->alpha;
    for (int64_t i = 0; i < n; i++) *(float *)(p[0] + i * s[0]) *= a;
}

int cpu_scale(craft_tensor *t, double sc) {
    int64_t st[1][CRAFT_MAX_DIMS];
    craft_broadcast_strides(t, t->ndim, t->shape, st[0]); /* byte strides, saturating */
    char *base[1] = {craft_elem_ptr(t)};
    axpy_ctx c = {(float)sc};
    craft_iter(1, t->ndim, t->shape, base, st, scale_loop, &c, 1);
    return CRAFT_OK;
}
