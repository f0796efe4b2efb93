/* op_digest.c: prints one line per CPU op case: a 64-bit FNV-1a hash of the bytes of its output
 * and of every input gradient (upstream gradient: a fixed random tensor). Built against two
 * versions of libcraft, the two outputs must be identical line for line when a refactor is to
 * leave the CPU kernels' results bit for bit unchanged (docs/backends.md says how it was used).
 * The hashes depend on the machine (oneDNN picks kernels per CPU) and on OMP_NUM_THREADS, so
 * they are compared on one machine, never committed.
 *     make build/op_digest && OMP_NUM_THREADS=2 build/op_digest > a.txt */
#include "craft.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t seed_counter = 1;
static int failures;

#define OK(expr) do { int rc_ = (expr); if (rc_) { fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, craft_last_error()); failures++; return; } } while (0)

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) { h ^= c[i]; h *= 0x100000001b3ULL; }
    return h;
}

static uint64_t hash_tensor(const craft_tensor *t) {
    if (!t) return 0;
    int dt = t->dtype == CRAFT_I64 ? CRAFT_I64 : CRAFT_F32;
    size_t n = (size_t)t->numel * craft_dtype_size(dt);
    void *buf = malloc(n ? n : 1);
    uint64_t h = 0xcbf29ce484222325ULL;
    if (craft_tensor_read(t, dt, buf, n) == 0) h = hash_bytes(buf, n, h);
    else h = 1;
    h = hash_bytes(&t->ndim, sizeof t->ndim, h);
    h = hash_bytes(t->shape, sizeof(int64_t) * (size_t)t->ndim, h);
    free(buf);
    return h;
}

static craft_tensor *randn(int nd, const int64_t *shape, int grad) {
    craft_tensor *t = NULL;
    if (craft_empty(nd, shape, CRAFT_F32, 0, &t) || craft_randn_(t, 1234, seed_counter)) { failures++; return NULL; }
    seed_counter += 1000003;
    if (grad) craft_set_requires_grad(t, 1);
    return t;
}

static craft_tensor *randu(int nd, const int64_t *shape, double lo, double hi, int grad) {
    craft_tensor *t = NULL, *s = NULL;
    if (craft_empty(nd, shape, CRAFT_F32, 0, &t) || craft_rand_(t, 99, seed_counter)) { failures++; return NULL; }
    seed_counter += 1000003;
    craft_scale_(t, hi - lo);
    craft_binary_scalar(CRAFT_ADD, t, lo, 0, &s);
    craft_tensor_release(t);
    if (grad) craft_set_requires_grad(s, 1);
    return s;
}

/* output hash, then backward with a random upstream gradient and the inputs' grad hashes */
static void report(const char *name, craft_tensor *y, int nin, craft_tensor **ins) {
    printf("%-40s out %016llx", name, (unsigned long long)hash_tensor(y));
    if (y && y->requires_grad && y->dtype == CRAFT_F32) {
        craft_tensor *g = randn(y->ndim, y->shape, 0);
        if (craft_backward(y, g, 0)) { printf(" backward failed: %s", craft_last_error()); failures++; }
        craft_tensor_release(g);
        for (int i = 0; i < nin; i++) {
            printf(" g%d %016llx", i, (unsigned long long)hash_tensor(ins[i] ? ins[i]->grad : NULL));
            if (ins[i]) craft_zero_grad(ins[i]);
        }
    }
    printf("\n");
}

static void release_all(int n, craft_tensor **ts) { for (int i = 0; i < n; i++) craft_tensor_release(ts[i]); }

static void elementwise(void) {
    int64_t s[3] = {3, 17, 33}, sb[2] = {1, 33};
    for (int op = 0; op < CRAFT_UNARY_COUNT; op++) {
        craft_tensor *x = op == CRAFT_LOG || op == CRAFT_SQRT || op == CRAFT_RSQRT || op == CRAFT_LOG1P || op == CRAFT_RECIPROCAL
                              ? randu(3, s, 0.1, 3.0, 1) : randn(3, s, 1), *y = NULL, *xt = NULL, *y2 = NULL;
        char name[64];
        snprintf(name, sizeof name, "unary %s", craft_unary_name(op));
        OK(craft_unary(op, x, &y));
        report(name, y, 1, &x);
        OK(craft_transpose(x, 0, 2, &xt));
        OK(craft_unary(op, xt, &y2));
        snprintf(name, sizeof name, "unary %s strided", craft_unary_name(op));
        report(name, y2, 1, &x);
        craft_tensor *r[4] = {x, y, xt, y2};
        release_all(4, r);
    }
    for (int op = 0; op < CRAFT_BINARY_COUNT; op++) {
        craft_tensor *a = op == CRAFT_POW ? randu(3, s, 0.5, 2.0, 1) : randn(3, s, 1), *b = randn(2, sb, 1), *y = NULL;
        char name[64];
        snprintf(name, sizeof name, "binary %s bcast", craft_binary_name(op));
        OK(craft_binary(op, a, b, &y));
        craft_tensor *ins[2] = {a, b};
        report(name, y, 2, ins);
        craft_tensor *c = op == CRAFT_POW ? randu(3, s, 0.5, 2.0, 1) : randn(3, s, 1), *y2 = NULL;
        OK(craft_binary(op, a, c, &y2));
        snprintf(name, sizeof name, "binary %s same", craft_binary_name(op));
        craft_tensor *ins2[2] = {a, c};
        report(name, y2, 2, ins2);
        for (int rev = 0; rev < 2; rev++) {
            craft_tensor *y3 = NULL;
            OK(craft_binary_scalar(op, a, op == CRAFT_POW ? 1.7 : -0.3, rev, &y3));
            snprintf(name, sizeof name, "scalar %s rev %d", craft_binary_name(op), rev);
            report(name, y3, 1, &a);
            craft_tensor_release(y3);
        }
        craft_tensor *r[5] = {a, b, y, c, y2};
        release_all(5, r);
    }
    {
        craft_tensor *a = randn(3, s, 0), *b = randn(2, sb, 0), *y = NULL;
        for (int op = CRAFT_EQ; op <= CRAFT_GE; op++) {
            char name[64];
            snprintf(name, sizeof name, "compare %d", op);
            OK(craft_compare(op, a, b, &y));
            report(name, y, 0, NULL);
            craft_tensor_release(y);
        }
        craft_tensor_release(a);
        craft_tensor_release(b);
    }
    craft_tensor *a = randn(3, s, 1), *b = randn(2, sb, 1), *c = randn(3, s, 0), *y = NULL, *cond = NULL;
    OK(craft_clamp(a, -0.5, 0.7, &y));
    report("clamp", y, 1, &a);
    craft_tensor_release(y);
    OK(craft_compare(CRAFT_GT, c, b, &cond));
    OK(craft_where(cond, a, b, &y));
    craft_tensor *ins[2] = {a, b};
    report("where", y, 2, ins);
    craft_tensor_release(y);
    OK(craft_lerp(a, b, 0.3, &y));
    report("lerp", y, 2, ins);
    craft_tensor_release(y);
    /* in place */
    craft_tensor *d = randn(3, s, 0);
    OK(craft_axpy_(d, 0.37, b));
    report("axpy_", d, 0, NULL);
    OK(craft_scale_(d, -1.3));
    report("scale_", d, 0, NULL);
    craft_tensor *r[5] = {a, b, c, cond, d};
    release_all(5, r);
}

static void reductions(void) {
    int64_t s[4] = {3, 5, 7, 40};
    int dims_sets[4][3] = {{0}, {1, 3}, {3}, {0, 2}};
    int nds[4] = {1, 2, 1, 2};
    craft_tensor *x = randn(4, s, 1);
    for (int k = 0; k < 4; k++) {
        for (int keep = 0; keep < 2; keep++) {
            craft_tensor *y = NULL;
            char name[64];
            snprintf(name, sizeof name, "sum set%d keep%d", k, keep);
            OK(craft_sum(x, nds[k], dims_sets[k], keep, &y));
            report(name, y, 1, &x);
            craft_tensor_release(y);
            snprintf(name, sizeof name, "mean set%d keep%d", k, keep);
            OK(craft_mean(x, nds[k], dims_sets[k], keep, &y));
            report(name, y, 1, &x);
            craft_tensor_release(y);
            snprintf(name, sizeof name, "var set%d keep%d", k, keep);
            OK(craft_var(x, nds[k], dims_sets[k], 1, keep, &y));
            report(name, y, 1, &x);
            craft_tensor_release(y);
        }
    }
    craft_tensor *y = NULL, *ix = NULL;
    OK(craft_sum(x, 0, NULL, 0, &y));
    report("sum all", y, 1, &x);
    craft_tensor_release(y);
    int64_t big = 70000;
    craft_tensor *xb = randn(1, &big, 1);
    OK(craft_mean(xb, 0, NULL, 0, &y));
    report("mean all big", y, 1, &xb);
    craft_tensor_release(y);
    OK(craft_var(xb, 0, NULL, 1, 0, &y));
    report("var all big", y, 1, &xb);
    craft_tensor_release(y);
    for (int d = 0; d < 4; d++) {
        char name[64];
        snprintf(name, sizeof name, "max dim%d", d);
        OK(craft_max(x, d, d & 1, &y, &ix));
        report(name, y, 1, &x);
        snprintf(name, sizeof name, "max idx dim%d", d);
        report(name, ix, 0, NULL);
        craft_tensor_release(y);
        craft_tensor_release(ix);
        snprintf(name, sizeof name, "min dim%d", d);
        OK(craft_min(x, d, 0, &y, NULL));
        report(name, y, 1, &x);
        craft_tensor_release(y);
        snprintf(name, sizeof name, "argmax dim%d", d);
        OK(craft_argmax(x, d, 1, &ix));
        report(name, ix, 0, NULL);
        craft_tensor_release(ix);
    }
    craft_tensor_release(x);
    craft_tensor_release(xb);
}

static void matmuls(void) {
    int64_t sa[3] = {4, 13, 21}, sb[2] = {21, 9}, sv[1] = {21}, sw[2] = {11, 21}, sbias[1] = {11}, sx[3] = {2, 5, 21};
    craft_tensor *a = randn(3, sa, 1), *b = randn(2, sb, 1), *v = randn(1, sv, 1), *y = NULL;
    craft_tensor *ins[2] = {a, b};
    OK(craft_matmul(a, b, &y));
    report("matmul 3x2", y, 2, ins);
    craft_tensor_release(y);
    craft_tensor *at = NULL;
    int64_t sat[3] = {4, 21, 13};
    craft_tensor *a2 = randn(3, sat, 1);
    OK(craft_transpose(a2, 1, 2, &at));
    craft_tensor *ins2[2] = {a2, b};
    OK(craft_matmul(at, b, &y));
    report("matmul transposed", y, 2, ins2);
    craft_tensor_release(y);
    craft_tensor *ins3[2] = {a, v};
    OK(craft_matmul(a, v, &y));
    report("matmul vec", y, 2, ins3);
    craft_tensor_release(y);
    craft_tensor *x = randn(3, sx, 1), *w = randn(2, sw, 1), *bias = randn(1, sbias, 1);
    craft_tensor *li[3] = {x, w, bias};
    OK(craft_linear(x, w, bias, &y));
    report("linear bias", y, 3, li);
    craft_tensor_release(y);
    OK(craft_linear(x, w, NULL, &y));
    report("linear", y, 2, li);
    craft_tensor_release(y);
    int64_t sbig[2] = {40000, 3}, swb[2] = {1, 3}, sb1[1] = {1};
    craft_tensor *xb = randn(2, sbig, 1), *wb = randn(2, swb, 1), *bb = randn(1, sb1, 1);
    craft_tensor *lb[3] = {xb, wb, bb};
    OK(craft_linear(xb, wb, bb, &y));
    report("linear N=1 big", y, 3, lb);
    craft_tensor_release(y);
    craft_tensor *r[11] = {a, b, v, at, a2, x, w, bias, xb, wb, bb};
    release_all(11, r);
}

static void convs(void) {
    struct { int64_t n, c, h, w, o, k; int s, p, d, g, bias; } cs[] = {
        {2, 4, 9, 11, 6, 3, 1, 1, 1, 1, 1}, {2, 4, 9, 11, 6, 3, 2, 0, 1, 2, 0}, {1, 6, 8, 8, 6, 3, 1, 2, 2, 6, 1},
        {2, 32, 8, 8, 32, 3, 1, 1, 1, 1, 1}, {3, 5, 7, 6, 4, 1, 1, 0, 1, 1, 1}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int64_t xs[4] = {cs[i].n, cs[i].c, cs[i].h, cs[i].w}, ws[4] = {cs[i].o, cs[i].c / cs[i].g, cs[i].k, cs[i].k}, bs[1] = {cs[i].o};
        int st[2] = {cs[i].s, cs[i].s}, pd[2] = {cs[i].p, cs[i].p}, dl[2] = {cs[i].d, cs[i].d};
        craft_tensor *x = randn(4, xs, 1), *w = randn(4, ws, 1), *b = cs[i].bias ? randn(1, bs, 1) : NULL, *y = NULL;
        craft_tensor *ins[3] = {x, w, b};
        char name[64];
        snprintf(name, sizeof name, "conv2d case%zu", i);
        OK(craft_conv2d(x, w, b, st, pd, dl, cs[i].g, &y));
        report(name, y, b ? 3 : 2, ins);
        craft_tensor_release(y);
        /* transposed: weight [in, out / g, k, k] */
        int64_t wts[4] = {cs[i].c, cs[i].o / cs[i].g, cs[i].k, cs[i].k}, bts[1] = {cs[i].o};
        craft_tensor *wt = randn(4, wts, 1), *bt = cs[i].bias ? randn(1, bts, 1) : NULL;
        int op[2] = {cs[i].s > 1 ? 1 : 0, 0};
        craft_tensor *tins[3] = {x, wt, bt};
        snprintf(name, sizeof name, "conv_transpose2d case%zu", i);
        OK(craft_conv_transpose2d(x, wt, bt, st, pd, op, dl, cs[i].g, &y));
        report(name, y, bt ? 3 : 2, tins);
        craft_tensor_release(y);
        craft_tensor *r[5] = {x, w, b, wt, bt};
        release_all(5, r);
    }
}

static void shapes(void) {
    int64_t s[4] = {2, 3, 9, 10};
    craft_tensor *x = randn(4, s, 1), *y = NULL;
    for (int mode = 0; mode < 2; mode++)
        for (int ac = 0; ac < 2; ac++) {
            int64_t oh[3] = {18, 5, 13}, ow[3] = {20, 7, 4};
            for (int k = 0; k < 3; k++) {
                char name[64];
                snprintf(name, sizeof name, "interpolate m%d ac%d %lldx%lld", mode, ac, (long long)oh[k], (long long)ow[k]);
                OK(craft_interpolate(x, oh[k], ow[k], mode, ac, &y));
                report(name, y, 1, &x);
                craft_tensor_release(y);
            }
        }
    int ks[3][3] = {{2, 2, 0}, {3, 1, 1}, {3, 2, 1}};
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "avg_pool2d %d %d %d", ks[k][0], ks[k][1], ks[k][2]);
        OK(craft_avg_pool2d(x, ks[k][0], ks[k][1], ks[k][2], &y));
        report(name, y, 1, &x);
        craft_tensor_release(y);
    }
    int64_t pads[3][4] = {{1, 2, 3, 0}, {2, 1, 1, 2}, {-1, 2, 0, 1}};
    int modes[3] = {1, 2, 0};
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "pad mode%d", modes[k]);
        OK(craft_pad(x, 2, pads[k], modes[k], 0.25, &y));
        report(name, y, 1, &x);
        craft_tensor_release(y);
    }
    int64_t s2[4] = {2, 5, 9, 10};
    craft_tensor *x2 = randn(4, s2, 1);
    craft_tensor *cat[2] = {x, x2};
    OK(craft_concat(2, cat, 1, &y));
    report("concat", y, 2, cat);
    craft_tensor_release(y);
    int64_t ws[2] = {17, 12}, is[2] = {3, 4};
    craft_tensor *w = randn(2, ws, 1), *idx = NULL;
    int64_t ivals[12] = {0, 3, 16, 3, 5, 5, 5, 1, 0, 16, 2, 3};
    OK(craft_from_data(2, is, CRAFT_I64, ivals, &idx));
    OK(craft_embedding(w, idx, &y));
    report("embedding", y, 1, &w);
    craft_tensor_release(y);
    double tv[5] = {0, 1, 10, 500, 999};
    int64_t tn = 5;
    craft_tensor *t = NULL;
    OK(craft_from_data(1, &tn, CRAFT_F64, tv, &t));
    OK(craft_timestep_embedding(t, 33, 1, 1.0, 1.0, 10000, &y));
    report("timestep_embedding", y, 0, NULL);
    craft_tensor_release(y);
    OK(craft_timestep_embedding(t, 32, 0, 0.0, 2.0, 10000, &y));
    report("timestep_embedding 2", y, 0, NULL);
    craft_tensor_release(y);
    craft_tensor *r[5] = {x, x2, w, idx, t};
    release_all(5, r);
}

static void nn(void) {
    int64_t s[4] = {2, 8, 5, 7}, c[1] = {8};
    craft_tensor *x = randn(4, s, 1), *w = randn(1, c, 1), *b = randn(1, c, 1), *y = NULL;
    craft_tensor *ins[3] = {x, w, b};
    OK(craft_group_norm(x, 4, w, b, 1e-5, &y));
    report("group_norm", y, 3, ins);
    craft_tensor_release(y);
    OK(craft_group_norm(x, 2, NULL, NULL, 1e-5, &y));
    report("group_norm plain", y, 1, ins);
    craft_tensor_release(y);
    int64_t ls[3] = {4, 6, 35}, lw[1] = {35}, lw2[2] = {6, 35};
    craft_tensor *lx = randn(3, ls, 1), *lwt = randn(1, lw, 1), *lb = randn(1, lw, 1), *lw2t = randn(2, lw2, 1);
    craft_tensor *lins[3] = {lx, lwt, lb};
    OK(craft_layer_norm(lx, 1, lwt, lb, 1e-5, &y));
    report("layer_norm", y, 3, lins);
    craft_tensor_release(y);
    craft_tensor *lins2[3] = {lx, lw2t, NULL};
    OK(craft_layer_norm(lx, 2, lw2t, NULL, 1e-5, &y));
    report("layer_norm 2d weight", y, 2, lins2);
    craft_tensor_release(y);
    for (int d = 0; d < 3; d++) {
        char name[64];
        snprintf(name, sizeof name, "softmax dim%d", d);
        OK(craft_softmax(lx, d, &y));
        report(name, y, 1, &lx);
        craft_tensor_release(y);
        snprintf(name, sizeof name, "log_softmax dim%d", d);
        OK(craft_log_softmax(lx, d, &y));
        report(name, y, 1, &lx);
        craft_tensor_release(y);
    }
    /* attention */
    int64_t qs[4] = {2, 3, 37, 16}, ks_[4] = {2, 3, 300, 16}, vs[4] = {2, 3, 300, 24}, ms[2] = {37, 300};
    craft_tensor *q = randn(4, qs, 1), *k = randn(4, ks_, 1), *v = randn(4, vs, 1), *m = randn(2, ms, 0);
    craft_tensor *qkv[3] = {q, k, v};
    OK(craft_sdpa(q, k, v, NULL, 0, 0, &y));
    report("sdpa", y, 3, qkv);
    craft_tensor_release(y);
    OK(craft_sdpa(q, k, v, m, 0.2, 0, &y));
    report("sdpa mask", y, 3, qkv);
    craft_tensor_release(y);
    OK(craft_sdpa(q, k, v, NULL, 0, 1, &y));
    report("sdpa causal", y, 3, qkv);
    craft_tensor_release(y);
    int64_t q1s[3] = {1, 300, 16}, k1s[3] = {1, 300, 16};
    craft_tensor *q1 = randn(3, q1s, 1), *k1 = randn(3, k1s, 1), *v1 = randn(3, k1s, 1);
    craft_tensor *qkv1[3] = {q1, k1, v1};
    OK(craft_sdpa(q1, k1, v1, NULL, 0, 1, &y));
    report("sdpa one matrix causal", y, 3, qkv1);
    craft_tensor_release(y);
    /* losses */
    OK(craft_l2_normalize(lx, 2, 1e-12, &y));
    report("l2_normalize", y, 1, &lx);
    craft_tensor_release(y);
    OK(craft_l2_normalize(lx, 1, 1e-12, &y));
    report("l2_normalize dim1", y, 1, &lx);
    craft_tensor_release(y);
    int64_t cb[2] = {6, 35};
    craft_tensor *c2 = randn(2, cb, 1);
    craft_tensor *cins[2] = {lx, c2};
    OK(craft_cosine_similarity(lx, c2, 2, 1e-8, &y));
    report("cosine_similarity", y, 2, cins);
    craft_tensor_release(y);
    int64_t lg[3] = {4, 7, 3}, tg[2] = {4, 3};
    int64_t tv[12] = {0, 6, 3, 2, 2, 2, 5, 1, 0, 4, 6, 1};
    craft_tensor *logits = randn(3, lg, 1), *targets = NULL;
    OK(craft_from_data(2, tg, CRAFT_I64, tv, &targets));
    for (int red = 0; red < 3; red++)
        for (int sm = 0; sm < 2; sm++) {
            char name[64];
            snprintf(name, sizeof name, "cross_entropy red%d smooth%d", red, sm);
            OK(craft_cross_entropy(logits, targets, red, sm ? 0.1 : 0.0, &y));
            report(name, y, 1, &logits);
            craft_tensor_release(y);
        }
    craft_tensor *ma = randn(3, ls, 1), *mb = randn(3, ls, 1), *mc = randn(2, lw2, 1);
    craft_tensor *mins[2] = {ma, mb}, *mins2[2] = {ma, mc};
    for (int red = 0; red < 3; red++) {
        char name[64];
        snprintf(name, sizeof name, "mse_loss red%d", red);
        OK(craft_mse_loss(ma, mb, red, &y));
        report(name, y, 2, mins);
        craft_tensor_release(y);
        snprintf(name, sizeof name, "mse_loss bcast red%d", red);
        OK(craft_mse_loss(ma, mc, red, &y));
        report(name, y, 2, mins2);
        craft_tensor_release(y);
    }
    craft_tensor *r[20] = {x, w, b, lx, lwt, lb, lw2t, q, k, v, m, q1, k1, v1, c2, logits, targets, ma, mb, mc};
    release_all(20, r);
}

static void training(void) {
    int64_t s[2] = {37, 41};
    craft_tensor *p = randn(2, s, 0), *g = randn(2, s, 0), *m = NULL, *v = NULL, *buf = NULL, *e = NULL;
    OK(craft_zeros(2, s, CRAFT_F32, 0, &m));
    OK(craft_zeros(2, s, CRAFT_F32, 0, &v));
    OK(craft_zeros(2, s, CRAFT_F32, 0, &buf));
    OK(craft_clone(p, &e));
    for (int step = 1; step <= 3; step++) {
        OK(craft_adamw_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, step));
        OK(craft_sgd_step(e, g, buf, 0.1, 0.9, 1e-4, step & 1));
        OK(craft_ema_update(e, p, 0.99));
    }
    report("adamw p", p, 0, NULL);
    report("adamw m", m, 0, NULL);
    report("adamw v", v, 0, NULL);
    report("sgd+ema", e, 0, NULL);
    int64_t s2[1] = {100000};
    craft_tensor *g2 = randn(1, s2, 0);
    craft_tensor *gs[3] = {g, NULL, g2};
    double norm = 0;
    OK(craft_clip_grad_norm(3, gs, 0.5, &norm));
    printf("%-40s norm %.17g\n", "clip_grad_norm", norm);
    report("clip g", g, 0, NULL);
    report("clip g2", g2, 0, NULL);
    craft_tensor *r[7] = {p, g, m, v, buf, e, g2};
    release_all(7, r);
    /* random fills: contiguous, strided, other dtypes */
    int64_t rs[2] = {33, 65};
    craft_tensor *t = NULL, *tt = NULL, *h = NULL;
    OK(craft_empty(2, rs, CRAFT_F32, 0, &t));
    OK(craft_randn_(t, 7, 3));
    report("randn", t, 0, NULL);
    OK(craft_rand_(t, 7, 5));
    report("rand", t, 0, NULL);
    OK(craft_transpose(t, 0, 1, &tt));
    OK(craft_randn_(tt, 8, 1));
    report("randn strided", t, 0, NULL);
    OK(craft_empty(2, rs, CRAFT_F16, 0, &h));
    OK(craft_randn_(h, 9, 2));
    report("randn f16", h, 0, NULL);
    craft_tensor *r2[3] = {t, tt, h};
    release_all(3, r2);
}

static void conversions(void) {
    int64_t s[2] = {19, 23};
    craft_tensor *x = randn(2, s, 0);
    craft_scale_(x, 300.0);
    int dts[8] = {CRAFT_F16, CRAFT_BF16, CRAFT_I64, CRAFT_I32, CRAFT_U8, CRAFT_F64, CRAFT_I8, CRAFT_BOOL};
    for (int i = 0; i < 8; i++) {
        craft_tensor *y = NULL, *z = NULL;
        OK(craft_to_dtype(x, dts[i], &y));
        OK(craft_to_dtype(y, CRAFT_F32, &z));
        char name[64];
        snprintf(name, sizeof name, "convert %s", craft_dtype_name(dts[i]));
        report(name, z, 0, NULL);
        craft_tensor_release(y);
        craft_tensor_release(z);
    }
    craft_tensor *xt = NULL, *c = NULL;
    OK(craft_transpose(x, 0, 1, &xt));
    OK(craft_contiguous(xt, &c));
    report("contiguous of transpose", c, 0, NULL);
    craft_tensor *r[3] = {x, xt, c};
    release_all(3, r);
}

/* the clinical phantoms and the oracle: images, labels, parameters and audits */
static void clinical(void) {
    int sizes[6] = {32, 48, 64, 96, 128, 256};
    for (int m = 0; m < craft_phantom_modality_count(); m++)
        for (int si = 0; si < 6; si++) {
            int n = 24, size = sizes[si], np = craft_phantom_param_count(m), nm = craft_oracle_measure_count(m);
            int ni = craft_oracle_item_count(m);
            size_t npx = (size_t)n * 3 * (size_t)size * (size_t)size;
            float *img = malloc(npx * sizeof(float)), *prm = malloc((size_t)(n * np) * sizeof(float));
            float *ms = malloc((size_t)(n * nm) * sizeof(float));
            int32_t lab[24], olab[24];
            uint8_t *items = malloc((size_t)(n * ni));
            if (craft_phantom_generate(m, n, size, 42 + (uint64_t)si, 7, -1, img, lab, prm) ||
                craft_oracle_audit(m, n, size, img, ms, olab, items)) {
                fprintf(stderr, "clinical %d: %s\n", m, craft_last_error());
                failures++;
            } else {
                uint64_t h = 0xcbf29ce484222325ULL;
                printf("%-40s img %016llx lab %016llx prm %016llx audit %016llx %016llx %016llx\n",
                       craft_phantom_modality_name(m), (unsigned long long)hash_bytes(img, npx * sizeof(float), h),
                       (unsigned long long)hash_bytes(lab, sizeof lab, h),
                       (unsigned long long)hash_bytes(prm, (size_t)(n * np) * sizeof(float), h),
                       (unsigned long long)hash_bytes(ms, (size_t)(n * nm) * sizeof(float), h),
                       (unsigned long long)hash_bytes(olab, sizeof olab, h), (unsigned long long)hash_bytes(items, (size_t)(n * ni), h));
            }
            free(img);
            free(prm);
            free(ms);
            free(items);
        }
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "clinical")) {
        clinical();
        return failures ? 1 : 0;
    }
    elementwise();
    reductions();
    matmuls();
    convs();
    shapes();
    nn();
    training();
    conversions();
    clinical();
    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
