/* test_core.c: tensors, views, dtype conversion, autograd engine, elementwise, reductions and
 * matmul, each op gradient-checked against finite differences. */
#include "gradcheck.h"
#include "core/backend.h"

static craft_tensor *from(int nd, const int64_t *shape, const float *v) {
    craft_tensor *t = NULL;
    craft_from_data(nd, shape, CRAFT_F32, v, &t);
    return t;
}

static void test_create_and_views(void) {
    int64_t s[2] = {2, 3};
    float v[6] = {0, 1, 2, 3, 4, 5};
    craft_tensor *t = from(2, s, v), *tt, *c, *sl, *r;
    CHECK(t && t->numel == 6 && craft_is_contiguous(t));
    CHECK_OK(craft_transpose(t, 0, 1, &tt));
    CHECK(tt->shape[0] == 3 && tt->shape[1] == 2 && !craft_is_contiguous(tt));
    double x;
    int64_t idx[2] = {2, 1};
    CHECK_OK(craft_get(tt, idx, &x));
    CHECK_NEAR(x, 5, 0);
    CHECK_OK(craft_contiguous(tt, &c));
    float out[6];
    CHECK_OK(craft_tensor_read(c, CRAFT_F32, out, sizeof out));
    CHECK(out[0] == 0 && out[1] == 3 && out[2] == 1 && out[5] == 5);
    CHECK_OK(craft_slice(t, 1, 1, 3, 1, &sl));
    CHECK(sl->shape[1] == 2 && sl->storage == t->storage);
    int64_t ns[1] = {-1};
    CHECK_OK(craft_reshape(tt, 1, ns, &r)); /* non-contiguous: must copy */
    CHECK(r->storage != t->storage && r->shape[0] == 6);
    CHECK_OK(craft_tensor_read(r, CRAFT_F32, out, sizeof out));
    CHECK(out[1] == 3 && out[4] == 2);
    int64_t bad[1] = {7};
    craft_tensor *e;
    CHECK_ERR(craft_reshape(t, 1, bad, &e), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "[2, 3]") != NULL);
    craft_tensor_release(t);
    craft_tensor_release(tt);
    craft_tensor_release(c);
    craft_tensor_release(sl);
    craft_tensor_release(r);
}

static void test_dtypes(void) {
    float v[5] = {1.0f, -2.5f, 65504.0f, 1e-7f, 3.14159f};
    uint16_t h[5] = {0x3c00, 0xc100, 0x7bff, 0x0002, 0x4248}; /* torch.tensor(v).half() */
    for (int i = 0; i < 5; i++) CHECK(craft_float_to_half(v[i]) == h[i]);
    CHECK(craft_half_to_float(0x0001) == 5.960464477539063e-08f);
    CHECK(craft_float_to_bf16(3.14159f) == 0x4049);
    CHECK(craft_bf16_to_float(0x4049) == 3.140625f);
    int64_t s[1] = {5};
    craft_tensor *t = from(1, s, v), *t16, *back;
    CHECK_OK(craft_to_dtype(t, CRAFT_F16, &t16));
    CHECK_OK(craft_to_dtype(t16, CRAFT_F32, &back));
    float o[5];
    craft_tensor_read(back, CRAFT_F32, o, sizeof o);
    CHECK_NEAR(o[4], 3.140625, 1e-6);
    CHECK_NEAR(o[2], 65504, 0);
    craft_tensor_release(t);
    craft_tensor_release(t16);
    craft_tensor_release(back);
}

static void test_autograd_basics(void) {
    int64_t s[2] = {2, 3};
    craft_tensor *x = gc_rand(2, s, -1, 1), *y, *l;
    CHECK_OK(craft_binary(CRAFT_MUL, x, x, &y));
    CHECK_OK(craft_sum(y, 0, NULL, 0, &l));
    CHECK_OK(craft_backward(l, NULL, 0));
    float xv[6], gv[6];
    craft_tensor_read(x, CRAFT_F32, xv, sizeof xv);
    craft_tensor_read(x->grad, CRAFT_F32, gv, sizeof gv);
    for (int i = 0; i < 6; i++) CHECK_NEAR(gv[i], 2 * xv[i], 1e-6);
    /* second backward through freed graph is an error, not a crash */
    CHECK_ERR(craft_backward(l, NULL, 0), CRAFT_EGRAD);
    /* backward of a non-scalar */
    CHECK_ERR(craft_backward(y, NULL, 0), CRAFT_EGRAD);
    CHECK(strstr(craft_last_error(), "not a scalar") != NULL);
    /* accumulation */
    craft_tensor *y2, *l2;
    craft_zero_grad(x);
    for (int k = 0; k < 2; k++) {
        CHECK_OK(craft_binary_scalar(CRAFT_MUL, x, 3.0, 0, &y2));
        CHECK_OK(craft_sum(y2, 0, NULL, 0, &l2));
        CHECK_OK(craft_backward(l2, NULL, 0));
        craft_tensor_release(y2);
        craft_tensor_release(l2);
    }
    craft_tensor_read(x->grad, CRAFT_F32, gv, sizeof gv);
    CHECK_NEAR(gv[3], 6, 1e-6);
    /* no_grad */
    int prev = craft_set_grad_enabled(0);
    CHECK_OK(craft_binary(CRAFT_MUL, x, x, &y2));
    CHECK(y2->node == NULL && !y2->requires_grad);
    craft_set_grad_enabled(prev);
    craft_tensor_release(y2);
    /* in-place modification of a saved tensor is detected */
    craft_tensor *z = gc_rand(2, s, -1, 1), *w, *lw;
    CHECK_OK(craft_unary(CRAFT_EXP, z, &w));
    CHECK_OK(craft_sum(w, 0, NULL, 0, &lw));
    CHECK_OK(craft_fill_(z, 0.5));
    CHECK_ERR(craft_backward(lw, NULL, 0), CRAFT_EGRAD);
    craft_tensor_release(z);
    craft_tensor_release(w);
    craft_tensor_release(lw);
    craft_tensor_release(x);
    craft_tensor_release(y);
    craft_tensor_release(l);
}

/* ---- gradchecks ---- */
typedef struct {
    int op;
    double s;
    int rev;
    int dims[4];
    int nd;
    int keep;
} opctx;
static int f_unary(craft_tensor **in, void *c, craft_tensor **out) {
    return craft_unary(((opctx *)c)->op, in[0], out);
}
static int f_binary(craft_tensor **in, void *c, craft_tensor **out) {
    return craft_binary(((opctx *)c)->op, in[0], in[1], out);
}
static int f_scalar(craft_tensor **in, void *c, craft_tensor **out) {
    opctx *o = c;
    return craft_binary_scalar(o->op, in[0], o->s, o->rev, out);
}
static int f_sum(craft_tensor **in, void *c, craft_tensor **out) {
    opctx *o = c;
    return craft_sum(in[0], o->nd, o->dims, o->keep, out);
}
static int f_mean(craft_tensor **in, void *c, craft_tensor **out) {
    opctx *o = c;
    return craft_mean(in[0], o->nd, o->dims, o->keep, out);
}
static int f_var(craft_tensor **in, void *c, craft_tensor **out) {
    opctx *o = c;
    return craft_var(in[0], o->nd, o->dims, 1, o->keep, out);
}
static int f_max(craft_tensor **in, void *c, craft_tensor **out) {
    opctx *o = c;
    return craft_max(in[0], o->dims[0], o->keep, out, NULL);
}
static int f_matmul(craft_tensor **in, void *c, craft_tensor **out) {
    return craft_matmul(in[0], in[1], out);
}
static int f_matmul_t(craft_tensor **in, void *c, craft_tensor **out) { /* non-contiguous operand */
    craft_tensor *t;
    int rc = craft_transpose(in[1], -1, -2, &t);
    if (rc) return rc;
    rc = craft_matmul(in[0], t, out);
    craft_tensor_release(t);
    return rc;
}
static int f_linear(craft_tensor **in, void *c, craft_tensor **out) {
    return craft_linear(in[0], in[1], in[2], out);
}
static int f_clamp(craft_tensor **in, void *c, craft_tensor **out) {
    return craft_clamp(in[0], -0.3, 0.4, out);
}
static int f_where(craft_tensor **in, void *c, craft_tensor **out) {
    return craft_where(in[0], in[1], in[2], out);
}
static int f_views(craft_tensor **in, void *c, craft_tensor **out) {
    /* permute -> slice(step 2) -> expand -> reshape, then a product to make it non-linear */
    craft_tensor *p = NULL, *s = NULL, *e = NULL, *r = NULL, *u = NULL;
    int perm[3] = {2, 0, 1};
    int64_t es[4] = {2, 2, 3, 2}, rs[2] = {4, 6};
    int rc = craft_permute(in[0], perm, &p);
    if (!rc) rc = craft_slice(p, 0, 0, 4, 2, &s);
    if (!rc) rc = craft_unsqueeze(s, 0, &u);
    if (!rc) rc = craft_expand(u, 4, es, &e);
    if (!rc) rc = craft_reshape(e, 2, rs, &r);
    if (!rc) rc = craft_binary(CRAFT_MUL, r, r, out);
    craft_tensor_release(p);
    craft_tensor_release(s);
    craft_tensor_release(u);
    craft_tensor_release(e);
    craft_tensor_release(r);
    return rc;
}

static void test_gradcheck_unary(void) {
    int64_t s[2] = {3, 4};
    for (int op = 0; op < CRAFT_UNARY_COUNT; op++) {
        int positive = op == CRAFT_LOG || op == CRAFT_SQRT || op == CRAFT_RSQRT || op == CRAFT_RECIPROCAL ||
            op == CRAFT_LOG1P;
        craft_tensor *x = gc_rand(2, s, positive ? 0.5 : -2, 2);
        if (op == CRAFT_ABS || op == CRAFT_RELU) { /* keep away from the kink */
            float *p = craft_tensor_data(x);
            for (int i = 0; i < 12; i++)
                if (fabsf(p[i]) < 0.05f) p[i] = 0.3f;
        }
        opctx c = {.op = op};
        gradcheck(craft_unary_name(op), f_unary, 1, &x, &c, 1e-3, 2e-3, 2e-2);
        craft_tensor_release(x);
    }
}

static void test_gradcheck_binary(void) {
    int64_t sa[3] = {2, 3, 4}, sb[2] = {1, 4}; /* broadcasting */
    for (int op = 0; op < CRAFT_BINARY_COUNT; op++) {
        craft_tensor *in[2] = {gc_rand(3, sa, 0.5, 2), gc_rand(2, sb, 0.5, 2)};
        opctx c = {.op = op};
        gradcheck(craft_binary_name(op), f_binary, 2, in, &c, 1e-3, 2e-3, 2e-2);
        c.s = 1.7;
        gradcheck("scalar", f_scalar, 1, in, &c, 1e-3, 2e-3, 2e-2);
        c.rev = 1;
        gradcheck("scalar reversed", f_scalar, 1, in, &c, 1e-3, 2e-3, 2e-2);
        craft_tensor_release(in[0]);
        craft_tensor_release(in[1]);
    }
    int64_t s[2] = {3, 4};
    craft_tensor *x = gc_rand(2, s, -1, 1);
    gradcheck("clamp", f_clamp, 1, &x, NULL, 1e-3, 2e-3, 2e-2);
    craft_tensor *w[3] = {gc_rand(2, s, 0, 1), gc_rand(2, s, -1, 1), gc_rand(1, s + 1, -1, 1)};
    float *cp = craft_tensor_data(w[0]);
    for (int i = 0; i < 12; i++) cp[i] = cp[i] > 0.5f;
    craft_set_requires_grad(w[0], 0);
    gradcheck("where", f_where, 3, w, NULL, 1e-3, 2e-3, 2e-2);
    int64_t vs[3] = {3, 2, 4};
    craft_tensor *v = gc_rand(3, vs, -1, 1);
    gradcheck("views", f_views, 1, &v, NULL, 1e-3, 2e-3, 2e-2);
    craft_tensor_release(x);
    craft_tensor_release(v);
    for (int i = 0; i < 3; i++) craft_tensor_release(w[i]);
}

static void test_gradcheck_reduce(void) {
    int64_t s[3] = {3, 4, 5};
    craft_tensor *x = gc_rand(3, s, -1, 1);
    opctx all = {.nd = 0}, d1 = {.dims = {1}, .nd = 1}, d02 = {.dims = {0, 2}, .nd = 2, .keep = 1};
    gradcheck("sum all", f_sum, 1, &x, &all, 1e-3, 2e-3, 2e-2);
    gradcheck("sum dim 1", f_sum, 1, &x, &d1, 1e-3, 2e-3, 2e-2);
    gradcheck("mean dims 0,2 keepdim", f_mean, 1, &x, &d02, 1e-3, 2e-3, 2e-2);
    gradcheck("var dim 1", f_var, 1, &x, &d1, 1e-3, 2e-3, 2e-2);
    gradcheck("max dim 1", f_max, 1, &x, &d1, 1e-3, 2e-3, 2e-2);
    /* values */
    craft_tensor *m;
    CHECK_OK(craft_mean(x, 0, NULL, 0, &m));
    double mv, ref = 0;
    craft_item(m, &mv);
    float *p = craft_tensor_data(x);
    for (int i = 0; i < 60; i++) ref += p[i];
    CHECK_NEAR(mv, ref / 60, 1e-6);
    craft_tensor_release(m);
    craft_tensor_release(x);
}

static void test_matmul(void) {
    int64_t sa[3] = {2, 3, 4}, sb[2] = {4, 5};
    craft_tensor *in[2] = {gc_rand(3, sa, -1, 1), gc_rand(2, sb, -1, 1)}, *y;
    CHECK_OK(craft_matmul(in[0], in[1], &y));
    CHECK(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 5);
    float *a = craft_tensor_data(in[0]), *b = craft_tensor_data(in[1]), *yp = craft_tensor_data(y);
    double ref = 0;
    for (int k = 0; k < 4; k++) ref += a[12 + 2 * 4 + k] * b[k * 5 + 3]; /* y[1, 2, 3] */
    CHECK_NEAR(yp[15 + 2 * 5 + 3], ref, 1e-5);
    gradcheck("matmul batched broadcast", f_matmul, 2, in, NULL, 1e-3, 2e-3, 2e-2);
    int64_t sbt[2] = {5, 4};
    craft_tensor *in2[2] = {in[0], gc_rand(2, sbt, -1, 1)};
    gradcheck("matmul transposed operand", f_matmul_t, 2, in2, NULL, 1e-3, 2e-3, 2e-2);
    int64_t sx[3] = {2, 3, 4}, sw[2] = {6, 4}, sbias[1] = {6};
    craft_tensor *lin[3] = {gc_rand(3, sx, -1, 1), gc_rand(2, sw, -1, 1), gc_rand(1, sbias, -1, 1)};
    gradcheck("linear", f_linear, 3, lin, NULL, 1e-3, 2e-3, 2e-2);
    craft_tensor *bad;
    CHECK_ERR(craft_matmul(in[0], in[0], &bad), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "matmul") && strstr(craft_last_error(), "[2, 3, 4]"));
    for (int i = 0; i < 3; i++) craft_tensor_release(lin[i]);
    craft_tensor_release(in[0]);
    craft_tensor_release(in[1]);
    craft_tensor_release(in2[1]);
    craft_tensor_release(y);
}

static void test_pool(void) {
    craft_pool_stats a, b;
    craft_pool_get_stats(&a);
    for (int i = 0; i < 100; i++) {
        void *p = craft_alloc(1 << 20);
        craft_free(p, 1 << 20);
    }
    craft_pool_get_stats(&b);
    CHECK(b.n_system - a.n_system <= 1); /* reused, not re-obtained */
    CHECK(b.in_use == a.in_use);
}

/* Blocks whose sizes grow stage by stage (a decoder): each stage's freed blocks cannot serve the
 * next, and the cache must give them back rather than let the footprint grow past the most in
 * use + 1/16 + the slack (CRAFT_POOL_SLACK_MB, 256 MiB by default; without that rule these
 * stages would leave 1056 MiB cached). */
static void test_pool_footprint(void) {
    const char *e = getenv("CRAFT_POOL_SLACK_MB");
    int64_t slack = (e && atoll(e) >= 0 ? atoll(e) : 256) << 20;
    craft_pool_trim();
    craft_pool_stats st;
    craft_pool_get_stats(&st);
    int64_t hwm = st.in_use, worst_over = INT64_MIN;
    for (int stage = 1; stage <= 12; stage++) {
        size_t size = (size_t)stage << 23; /* 8, 16, ... 96 MiB */
        void *p[2];
        for (int k = 0; k < 2; k++) {
            p[k] = craft_alloc(size);
            CHECK(p[k] != NULL);
            if (p[k]) memset(p[k], stage, size);
            craft_pool_get_stats(&st);
            if (st.in_use > hwm) hwm = st.in_use;
            int64_t over = st.in_use + st.cached - (hwm + hwm / 16 + slack);
            if (over > worst_over) worst_over = over;
        }
        for (int k = 0; k < 2; k++) craft_free(p[k], size);
    }
    CHECK_MSG(worst_over <= 0, "footprint over its cap by %lld bytes", (long long)worst_over);
    craft_pool_get_stats(&st);
    /* frees never shrink the cache: the last stage's blocks stay for the next request */
    CHECK(st.cached >= 192ll << 20 && st.in_use + st.cached <= hwm + hwm / 16 + slack);
    craft_pool_trim();
}

/* Empty tensors whose other sizes multiply past int64: the count is 0 in any order of the
 * sizes, strides saturate, and ops that split them into rows get 0 rows, never an overflowed
 * count (fuzz_api found both: regress-slice-empty-numel-saturated, regress-sum-empty-huge-rows). */
static void test_empty_huge_sizes(void) {
    const int64_t big = (int64_t)1 << 40;
    int64_t orders[3][3] = {{0, big, big}, {big, 0, big}, {big, big, 0}};
    for (int o = 0; o < 3; o++) {
        craft_tensor *t = NULL, *s = NULL;
        CHECK_OK(craft_empty(3, orders[o], CRAFT_F32, CRAFT_DEVICE_CPU, &t));
        CHECK(t && t->numel == 0 && craft_numel_of(3, orders[o]) == 0);
        int all[3] = {0, 1, 2};
        CHECK_OK(craft_sum(t, 3, all, 0, &s)); /* one sum of nothing */
        float v = -1;
        if (s) {
            craft_tensor_read(s, CRAFT_F32, &v, sizeof v);
            craft_tensor_release(s);
            s = NULL;
        }
        CHECK(v == 0.0f);
        int zd = o; /* reduce the empty dim: the kept sizes (2^80 elements) cannot be allocated */
        CHECK(craft_sum(t, 1, &zd, 0, &s) != CRAFT_OK && s == NULL);
        int64_t outer, n, inner;
        craft_split_at(3, orders[o], 1, &outer, &n, &inner);
        CHECK(o == 0       ? outer == 0 && n == big && inner == big
                  : o == 1 ? outer == big && n == 0 && inner == big
                           : outer == big && n == big && inner == 0);
        if (o == 0) { /* a slice far into it: a saturated offset, still a usable empty view */
            craft_tensor *sl = NULL, *c = NULL;
            CHECK_OK(craft_slice(t, 1, big - 1, big, 1, &sl));
            CHECK(sl && sl->numel == 0 && craft_tensor_data(sl) != NULL);
            CHECK_OK(craft_contiguous(sl, &c));
            CHECK(c && c->numel == 0);
            craft_tensor_release(c);
            craft_tensor_release(sl);
        }
        craft_tensor *parts[2] = {t, t}, *cat = NULL; /* empty slabs: no offsets into saturated strides */
        CHECK_OK(craft_concat(2, parts, o == 0 ? 1 : 0, &cat));
        CHECK(cat && cat->numel == 0);
        craft_tensor_release(cat);
        craft_tensor_release(t);
    }
    int64_t full[2] = {big, big}; /* not empty: too large, refused */
    craft_tensor *t = NULL;
    CHECK(craft_empty(2, full, CRAFT_F32, CRAFT_DEVICE_CPU, &t) == CRAFT_ESHAPE && t == NULL);
    CHECK(craft_numel_of(2, full) == INT64_MAX);
    CHECK(craft_mul_sat(INT64_MAX, 0) == 0 && craft_mul_sat(big, big) == INT64_MAX &&
          craft_mul_sat(3, 4) == 12);
}

static int f_geglu(craft_tensor **in, void *c, craft_tensor **out) {
    (void)c;
    return craft_geglu(in[0], out);
}

/* GEGLU: gradient-checked, and the fused kernels give exactly the composed slices, gelu and mul
 * (the op's path on a device without them), forward and backward, over rows long enough to split
 * across threads and a non-contiguous input; an odd last dim is refused. */
static void test_geglu(void) {
    int64_t s[3] = {2, 3, 10};
    craft_tensor *x = gc_rand(3, s, -3, 3);
    gradcheck("geglu", f_geglu, 1, &x, NULL, 1e-3, 2e-3, 2e-2);
    craft_tensor_release(x);
    int64_t tb[2] = {2 * 83, 700};
    craft_tensor *raw = gc_rand(2, tb, -4, 4), *xt = NULL;
    CHECK_OK(craft_transpose(raw, 0, 1, &xt)); /* [700, 166], not contiguous */
    craft_tensor *gy = gc_rand(2, (int64_t[]){700, 83}, -1, 1);
    craft_tensor *y[2] = {NULL, NULL}, *gx[2] = {NULL, NULL};
    for (int fused = 1; fused >= 0; fused--) {
        craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_geglu, !fused);
        craft_tensor *d = NULL, *xx = NULL;
        CHECK_OK(craft_detach(xt, &d));
        CHECK_OK(craft_set_requires_grad(d, 1)); /* the strided view itself, as a leaf */
        xx = d;
        CHECK_OK(craft_geglu(xx, &y[fused]));
        if (y[fused]) CHECK_OK(craft_backward(y[fused], gy, 0));
        gx[fused] = xx && xx->grad ? craft_tensor_retain(xx->grad) : NULL;
        craft_tensor_release(xx);
    }
    craft_backend_test_disable(CRAFT_DEVICE_CPU, CRAFT_K_geglu, 0);
    for (int k = 0; k < 2; k++) {
        craft_tensor *a = k ? gx[1] : y[1], *b = k ? gx[0] : y[0], *ac = NULL, *bc = NULL;
        CHECK(a && b && a->numel == b->numel);
        if (!a || !b) continue;
        CHECK_OK(craft_contiguous(a, &ac));
        CHECK_OK(craft_contiguous(b, &bc));
        CHECK_MSG(!memcmp(craft_tensor_data(ac), craft_tensor_data(bc), (size_t)a->numel * sizeof(float)),
                  "geglu %s: fused differs from the composed ops", k ? "gradient" : "forward");
        craft_tensor_release(ac);
        craft_tensor_release(bc);
    }
    for (int f = 0; f < 2; f++) {
        craft_tensor_release(y[f]);
        craft_tensor_release(gx[f]);
    }
    craft_tensor *odd = gc_rand(2, (int64_t[]){2, 5}, -1, 1), *yo = NULL;
    CHECK_ERR(craft_geglu(odd, &yo), CRAFT_ESHAPE);
    CHECK(strstr(craft_last_error(), "geglu") && strstr(craft_last_error(), "[2, 5]") && !yo);
    craft_tensor *all[] = {raw, xt, gy, odd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
}

int main(void) {
    RUN(test_create_and_views);
    RUN(test_dtypes);
    RUN(test_autograd_basics);
    RUN(test_gradcheck_unary);
    RUN(test_gradcheck_binary);
    RUN(test_gradcheck_reduce);
    RUN(test_geglu);
    RUN(test_matmul);
    RUN(test_pool);
    RUN(test_pool_footprint);
    RUN(test_empty_huge_sizes);
    return CHECK_SUMMARY();
}
