/* bench_attention.c: craft_sdpa forward and forward+backward against PyTorch (bench/peer_attention.py,
 * run via popen in the same process run, after craft's timings) and against craft's own
 * unfused path (matmul, softmax, matmul with autograd), at the shapes of the tiny UNet's
 * attention, CLIP's text encoder (causal), an SD-like self-attention and an SD-like
 * cross-attention. Median of REPS runs after WARMUP. GFLOP/s counts 4 Lq Lk D per matrix for
 * the forward and 3x that for forward+backward (the usual accounting; the recomputation of the
 * scores in backward is not counted), halved for causal.
 * Each line gives the median and, in brackets, the minimum (which a shared machine disturbs less).
 * Usage: build/bench_attention [--no-peer] [--big] [--threads N]
 *   --big adds B*heads=16, L=4096, D=40 (craft only: the peer would take minutes);
 *   --threads sets craft's and the peer's thread count (default: craft's default, peer 2).
 * Build: gcc -O2 -march=native -fopenmp -Iengine bench/bench_attention.c build/libcraft.a -ldnnl -lclblast
 *        -lOpenCL -lzip -lz -ljansson -lcsv -lstb -lm -o build/bench_attention
 *        (the library's LIBS from the Makefile; libcraft.a now needs CLBlast/OpenCL too) */
#define _POSIX_C_SOURCE 200809L
#include "bench_common.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARMUP 3
#define REPS 11

typedef struct {
    const char *name;
    int64_t nb, lq, lk, d;
    int causal;
} shape;
static const shape SHAPES[] = {
    {"tiny_unet", 64, 64, 64, 32, 0},      /* B=16 x 4 heads, 8x8 middle block */
    {"clip_text", 48, 77, 77, 64, 1},      /* 4 prompts x 12 heads, causal */
    {"sd_1024", 8, 1024, 1024, 64, 0},     /* SD-like self-attention */
    {"cross_4096x77", 8, 4096, 77, 40, 0}, /* SD 64x64 latent cross-attention to 77 tokens */
};
static const shape BIG = {"sd_4096", 16, 4096, 4096, 40, 0};

static craft_tensor *randt(int64_t a, int64_t b, int64_t c, uint64_t seed) {
    int64_t s[3] = {a, b, c};
    craft_tensor *t = NULL;
    if (craft_empty(3, s, CRAFT_F32, 0, &t)) return NULL;
    craft_randn_(t, seed, 0);
    return t;
}

static int unfused(craft_tensor *q, craft_tensor *k, craft_tensor *v, craft_tensor *cmask, double scale,
                   craft_tensor **out) {
    craft_tensor *kt = NULL, *s = NULL, *ss = NULL, *sm = NULL, *p = NULL;
    int rc = craft_transpose(k, -1, -2, &kt);
    if (!rc) rc = craft_matmul(q, kt, &s);
    if (!rc) rc = craft_binary_scalar(CRAFT_MUL, s, scale, 0, &ss);
    craft_tensor *cur = ss;
    if (!rc && cmask) {
        rc = craft_binary(CRAFT_ADD, ss, cmask, &sm);
        cur = sm;
    }
    if (!rc) rc = craft_softmax(cur, -1, &p);
    if (!rc) rc = craft_matmul(p, v, out);
    craft_tensor_release(kt);
    craft_tensor_release(s);
    craft_tensor_release(ss);
    craft_tensor_release(sm);
    craft_tensor_release(p);
    return rc;
}

/* mode 0: sdpa forward (no grad), 1: sdpa fwd+bwd, 2: unfused fwd (no grad), 3: unfused fwd+bwd */
static bench_timing time_one(const shape *sh, int mode) {
    craft_tensor *q = randt(sh->nb, sh->lq, sh->d, 1), *k = randt(sh->nb, sh->lk, sh->d, 2);
    craft_tensor *v = randt(sh->nb, sh->lk, sh->d, 3), *go = randt(sh->nb, sh->lq, sh->d, 4), *cmask = NULL;
    if (!q || !k || !v || !go) {
        fprintf(stderr, "bench: allocation failed: %s\n", craft_last_error());
        exit(1);
    }
    if (sh->causal && mode >= 2) {
        int64_t s[2] = {sh->lq, sh->lk};
        craft_zeros(2, s, CRAFT_F32, 0, &cmask);
        float *m = craft_tensor_data(cmask);
        for (int64_t i = 0; i < sh->lq; i++)
            for (int64_t j = i + 1; j < sh->lk; j++) m[i * sh->lk + j] = -INFINITY;
    }
    int bwd = mode == 1 || mode == 3;
    if (bwd) {
        craft_set_requires_grad(q, 1);
        craft_set_requires_grad(k, 1);
        craft_set_requires_grad(v, 1);
    }
    double scale = 1.0 / sqrt((double)sh->d), t[REPS];
    int prev = craft_set_grad_enabled(bwd);
    for (int r = 0; r < WARMUP + REPS; r++) {
        double t0 = craft_now();
        craft_tensor *y = NULL;
        int rc =
            mode < 2 ? craft_sdpa(q, k, v, NULL, scale, sh->causal, &y) : unfused(q, k, v, cmask, scale, &y);
        if (!rc && bwd) rc = craft_backward(y, go, 0);
        if (rc) {
            fprintf(stderr, "bench %s mode %d: %s\n", sh->name, mode, craft_last_error());
            exit(1);
        }
        craft_tensor_release(y);
        if (bwd) {
            craft_zero_grad(q);
            craft_zero_grad(k);
            craft_zero_grad(v);
        }
        if (r >= WARMUP) t[r - WARMUP] = (craft_now() - t0) * 1e3;
    }
    craft_set_grad_enabled(prev);
    craft_tensor_release(q);
    craft_tensor_release(k);
    craft_tensor_release(v);
    craft_tensor_release(go);
    craft_tensor_release(cmask);
    return bench_summarize(t, REPS);
}

static double gflops(const shape *sh, int bwd, double ms) {
    double f = 4.0 * (double)sh->nb * (double)sh->lq * (double)sh->lk * (double)sh->d * (bwd ? 3 : 1);
    if (sh->causal) f *= 0.5;
    return f / (ms * 1e6);
}

/* Runs the peer; returns its parsed JSON (NULL when it is unavailable). */
static json_t *run_peer(const char *argv0, int threads) {
    const char *candidates[2] = {"bench/peer_attention.py", NULL};
    char alt[1024];
    const char *slash = strrchr(argv0, '/');
    if (slash) { /* build/bench_attention -> build/../bench/peer_attention.py */
        snprintf(alt, sizeof alt, "%.*s/../bench/peer_attention.py", (int)(slash - argv0), argv0);
        candidates[1] = alt;
    }
    const char *script = NULL;
    for (int i = 0; i < 2; i++) {
        FILE *f = candidates[i] ? fopen(candidates[i], "r") : NULL;
        if (f) {
            fclose(f);
            script = candidates[i];
            break;
        }
    }
    if (!script) {
        printf("peer: bench/peer_attention.py not found (run from the repository root)\n");
        return NULL;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "'%s' %s --json --tuned-malloc --threads %d --reps %d --warmup %d 2>/dev/null", bench_peer_python(),
             script, threads, REPS, WARMUP);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("peer: cannot start %s\n", cmd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - 1 - len, p)) > 0) {
        len += got;
        if (len + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else buf = nb;
        }
    }
    int st = pclose(p);
    if (!buf) return NULL;
    buf[len] = 0;
    json_error_t e;
    json_t *j = st == 0 ? json_loads(buf, 0, &e) : NULL;
    if (!j) printf("peer: no result (exit status %d; does %s have torch? sh tools/setup.sh --bench)\n", st,
                   bench_peer_python());
    free(buf);
    return j;
}

int main(int argc, char **argv) {
    int peer = 1, big = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-peer")) peer = 0;
        else if (!strcmp(argv[i], "--big")) big = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--no-peer] [--big] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    if (threads > 0) craft_set_num_threads(threads);
    const char *ob = getenv("OPENBLAS_CORETYPE"), *ol = getenv("OPENBLAS_L2_SIZE"),
               *omp = getenv("OMP_NUM_THREADS");
    printf("bench_attention: craft %d threads (OMP_NUM_THREADS=%s), median of %d after %d warm-up; "
           "env OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
           craft_num_threads(), omp ? omp : "unset", REPS, WARMUP, ob ? ob : "unset", ol ? ol : "unset");
    int ns = (int)(sizeof SHAPES / sizeof SHAPES[0]);
    bench_timing ms[8][4];
    for (int i = 0; i < ns; i++) {
        const shape *sh = &SHAPES[i];
        for (int m = 0; m < 4; m++) ms[i][m] = time_one(sh, m);
        printf(
            "craft %-14s [%lld x %lld x %lld, D=%lld%s]\n  sdpa fwd %8.2f ms [%8.2f] (%5.1f GFLOP/s)  fwd+bwd %8.2f ms [%8.2f] (%5.1f GFLOP/s)"
            "  | unfused fwd %8.2f [%8.2f]  fwd+bwd %8.2f [%8.2f] ms\n",
            sh->name, (long long)sh->nb, (long long)sh->lq, (long long)sh->lk, (long long)sh->d,
            sh->causal ? ", causal" : "", ms[i][0].med, ms[i][0].min, gflops(sh, 0, ms[i][0].med),
            ms[i][1].med, ms[i][1].min, gflops(sh, 1, ms[i][1].med), ms[i][2].med, ms[i][2].min, ms[i][3].med,
            ms[i][3].min);
        fflush(stdout);
    }
    if (big) {
        bench_timing f = time_one(&BIG, 0), fb = time_one(&BIG, 1);
        printf(
            "craft %-14s [%lld x %lld x %lld, D=%lld]\n  sdpa fwd %8.2f ms [%8.2f] (%5.1f GFLOP/s)  fwd+bwd %8.2f ms [%8.2f] (%5.1f GFLOP/s)\n",
            BIG.name, (long long)BIG.nb, (long long)BIG.lq, (long long)BIG.lk, (long long)BIG.d, f.med, f.min,
            gflops(&BIG, 0, f.med), fb.med, fb.min, gflops(&BIG, 1, fb.med));
    }
    json_t *pj = peer ? run_peer(argv[0], threads > 0 ? threads : 2) : NULL;
    json_t *shapes = pj ? json_object_get(pj, "shapes") : NULL;
    if (pj) {
        json_t *tv = json_object_get(pj, "torch"), *th = json_object_get(pj, "num_threads"),
               *pa = json_object_get(pj, "path");
        int fused = json_is_string(pa) && !strcmp(json_string_value(pa), "sdpa");
        printf("peer: torch %s, %lld threads, %s\n", json_is_string(tv) ? json_string_value(tv) : "?",
               json_is_integer(th) ? (long long)json_integer_value(th) : -1LL,
               fused ? "torch.nn.functional.scaled_dot_product_attention (fused)"
                     : "naive softmax(q k^T) v with autograd (this torch has no fused attention)");
    }
    for (int i = 0; i < ns; i++) {
        const shape *sh = &SHAPES[i];
        json_t *s = shapes ? json_object_get(shapes, sh->name) : NULL;
        const char *keys[2][2] = {{"fwd_ms", "fwd_min_ms"}, {"fwdbwd_ms", "fwdbwd_min_ms"}};
        const char *label = sh->lq == 1024 && sh->lk == 1024 ? "L=1024" : sh->name;
        for (int m = 0; m < 2; m++) {
            double tm = s ? json_number_value(json_object_get(s, keys[m][0])) : 0;
            double tmin = s ? json_number_value(json_object_get(s, keys[m][1])) : 0;
            if (tm > 0 && tmin > 0)
                printf(
                    "attention %-14s %-8s craft %8.2f ms  torch %8.2f ms  ratio %5.2f   (min: craft %8.2f  torch %8.2f  ratio %5.2f)\n",
                    label, m ? "fwd+bwd" : "fwd", ms[i][m].med, tm, tm / ms[i][m].med, ms[i][m].min, tmin,
                    tmin / ms[i][m].min);
            else
                printf("attention %-14s %-8s craft %8.2f ms  torch     n/a\n", label, m ? "fwd+bwd" : "fwd",
                       ms[i][m].med);
        }
    }
    json_decref(pj);
    return 0;
}
