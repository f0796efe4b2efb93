/* bench_conv_norm.c: conv2d, conv_transpose2d, group_norm and layer_norm, forward and
 * forward + backward through craft's autograd, against PyTorch (bench/peer_conv_norm.py, run by
 * popen in the same run, so both numbers come from the same machine at the same time).
 * Median of 25 runs after 5 warm-up runs (and the minimum, the steadier number when the machine
 * is shared); OMP_NUM_THREADS defaults to 2 for both sides.
 *
 * Build: gcc -O2 -march=native -fopenmp -Iengine bench/bench_conv_norm.c build/libcraft.a \
 *            -ldnnl -lclblast -lOpenCL -lzip -lz -ljansson -lcsv -lstb -lm -o build/bench_conv_norm
 * (the Makefile's LIBS: libcraft.a now holds the OpenCL backend too)
 * Run from the repository root: build/bench_conv_norm [--no-peer] [--steps N] */
#define _POSIX_C_SOURCE 200809L
#include "bench_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int steps = 25, warmup = 5;

static uint64_t rng = 88172645463325252ull;
static craft_tensor *rnd(int nd, const int64_t *shape, int grad) {
    craft_tensor *t;
    if (craft_empty(nd, shape, CRAFT_F32, 0, &t)) bench_die("bench_conv_norm", "alloc");
    float *p = craft_tensor_data(t);
    for (int64_t i = 0; i < t->numel; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        p[i] = (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2 - 1);
    }
    if (grad) craft_set_requires_grad(t, 1);
    return t;
}

typedef struct bcase {
    const char *name;
    int kind; /* 0 conv, 1 conv_transpose, 2 group_norm, 3 layer_norm */
    int backward;
    craft_tensor *x, *w, *b, *gy;
} bcase;

static void run_once(bcase *c) {
    int one[2] = {1, 1}, two[2] = {2, 2}, zero[2] = {0, 0};
    craft_tensor *y = NULL;
    int prev = craft_set_grad_enabled(c->backward);
    int rc;
    switch (c->kind) {
    case 0: rc = craft_conv2d(c->x, c->w, c->b, one, one, one, 1, &y); break;
    case 1: rc = craft_conv_transpose2d(c->x, c->w, c->b, two, one, zero, one, 1, &y); break;
    case 2: rc = craft_group_norm(c->x, 32, c->w, c->b, 1e-5, &y); break;
    default: rc = craft_layer_norm(c->x, 1, c->w, c->b, 1e-5, &y); break;
    }
    craft_set_grad_enabled(prev);
    if (rc) bench_die("bench_conv_norm", c->name);
    if (c->backward) {
        craft_zero_grad(c->x);
        craft_zero_grad(c->w);
        craft_zero_grad(c->b);
        if (craft_backward(y, c->gy, 0)) bench_die("bench_conv_norm", c->name);
    }
    craft_tensor_release(y);
}

/* median and minimum in ms (the minimum is the better estimate when the machine is shared) */
static void time_case(bcase *c, double *med, double *mn) {
    for (int i = 0; i < warmup; i++) run_once(c);
    double *t = malloc((size_t)steps * sizeof *t);
    for (int i = 0; i < steps; i++) {
        double t0 = craft_now();
        run_once(c);
        t[i] = craft_now() - t0;
    }
    bench_timing bt = bench_summarize(t, steps);
    *med = bt.med * 1e3;
    *mn = bt.min * 1e3;
    free(t);
}

/* Runs the peer; returns its JSON document (NULL if python/torch is missing). */
static craft_json *run_peer(void) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "'%s' bench/peer_conv_norm.py --json --tuned-malloc --steps %d --warmup %d 2>/dev/null",
             bench_peer_python(), steps, warmup);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    int rc = pclose(p);
    craft_json *doc = NULL;
    if (rc != 0 || n == 0 || craft_json_parse_string(buf, n, "peer_conv_norm.py output", &doc)) return NULL;
    return doc;
}

int main(int argc, char **argv) {
    int peer = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-peer")) peer = 0;
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]) > 0 ? atoi(argv[i]) : steps;
    }
    setenv("OMP_NUM_THREADS", "2", 0); /* before the first OpenMP region; the peer inherits it */
    int64_t xs[4] = {16, 128, 16, 16}, ws[4] = {128, 128, 3, 3}, cs[1] = {128};
    int64_t wts[4] = {128, 64, 4, 4}, yts[4] = {16, 64, 32, 32}, c64[1] = {64};
    int64_t gs[4] = {16, 128, 32, 32}, ls[3] = {16, 256, 512}, l512[1] = {512};
    craft_tensor *x = rnd(4, xs, 1), *w = rnd(4, ws, 1), *b = rnd(1, cs, 1), *gy = rnd(4, xs, 0);
    craft_tensor *wt = rnd(4, wts, 1), *bt = rnd(1, c64, 1), *gyt = rnd(4, yts, 0);
    craft_tensor *xg = rnd(4, gs, 1), *wg = rnd(1, cs, 1), *bg = rnd(1, cs, 1), *gyg = rnd(4, gs, 0);
    craft_tensor *xl = rnd(3, ls, 1), *wl = rnd(1, l512, 1), *bl = rnd(1, l512, 1), *gyl = rnd(3, ls, 0);
    bcase cases[] = {
        {"conv3x3 fwd", 0, 0, x, w, b, gy},           {"conv3x3 fwd+bwd", 0, 1, x, w, b, gy},
        {"convT4x4s2 fwd+bwd", 1, 1, x, wt, bt, gyt}, {"groupnorm fwd", 2, 0, xg, wg, bg, gyg},
        {"groupnorm fwd+bwd", 2, 1, xg, wg, bg, gyg}, {"layernorm fwd+bwd", 3, 1, xl, wl, bl, gyl},
    };
    int nc = (int)(sizeof cases / sizeof *cases);
    double ms[8], mn[8];
    for (int i = 0; i < nc; i++) time_case(&cases[i], &ms[i], &mn[i]);
    craft_json *doc = peer ? run_peer() : NULL;
    const char *env_ct = getenv("OPENBLAS_CORETYPE"), *env_l2 = getenv("OPENBLAS_L2_SIZE");
    printf(
        "conv/norm, OMP_NUM_THREADS=%s, median of %d after %d warm-up; OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
        getenv("OMP_NUM_THREADS"), steps, warmup, env_ct ? env_ct : "unset", env_l2 ? env_l2 : "unset");
    if (peer && !doc) printf("(no PyTorch peer: %s with torch not available)\n", bench_peer_python());
    int med_node = doc ? craft_json_get(doc, 0, "median") : -1,
        min_node = doc ? craft_json_get(doc, 0, "min") : -1;
    for (int i = 0; i < nc; i++) {
        double t = -1, tm = -1;
        int n1 = med_node >= 0 ? craft_json_get(doc, med_node, cases[i].name) : -1;
        int n2 = min_node >= 0 ? craft_json_get(doc, min_node, cases[i].name) : -1;
        if (n1 >= 0 && n2 >= 0 && craft_json_number(doc, n1, &t) == CRAFT_OK &&
            craft_json_number(doc, n2, &tm) == CRAFT_OK && t > 0)
            printf(
                "%-20s craft %7.2f ms  torch %7.2f ms  ratio %.2fx   (min: craft %.2f torch %.2f ratio %.2fx)\n",
                cases[i].name, ms[i], t, t / ms[i], mn[i], tm, tm / mn[i]);
        else printf("%-20s craft %7.2f ms   (min %.2f)\n", cases[i].name, ms[i], mn[i]);
    }
    craft_json_free(doc);
    craft_tensor *all[] = {x, w, b, gy, wt, bt, gyt, xg, wg, bg, gyg, xl, wl, bl, gyl};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) craft_tensor_release(all[i]);
    return 0;
}
