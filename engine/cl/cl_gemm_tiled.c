/* cl_gemm_tiled.c: craft's own tiled GEMM on cl devices (kernels_cl/gemm.cl: gemm_tiled over f32
 * operands, gemm_f16 over f16 ones), and the per-device choice between it and CLBlast for f32
 * products (cl_gemm.c asks cl_gemm_pick before each CLBlast call).
 *
 * The choice is made per shape class (transposes, each of M, N, K rounded up to a power of two,
 * batched or not) by timing both on the call's own operands the first time a class is met, and
 * kept in a per-device file under the kernel cache folder (CRAFT_CL_CACHE, else
 * XDG_CACHE_HOME/craft, else ~/.cache/craft), named by a hash of the device's name, platform and
 * driver, so later processes on the same device do not time again. CRAFT_CL_GEMM picks the mode:
 * "clblast" (always CLBlast, the default), "tiled" (always ours), "tune" (the per-class
 * choice). Tuning is opt-in: timing costs host waits the first time a class is met (the tests'
 * one-wait-per-step counts assume none), and neither the choice nor the kernel has been timed
 * on a GPU here (none was available); on PoCL CLBlast won all 53 classes test_cl_conv meets. */
#include "cl/cl_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* mirrors gemm_h_geo in kernels_cl/gemm.cl */
typedef struct {
    cl_long M, N, K, lda, ldb, ldc, aoff, boff, coff, sa, sb, sc;
    cl_float alpha, beta;
    cl_int ta, tb;
} cl_gemm_geo;
#define GH_R 4 /* mirrors kernels_cl/gemm.cl */

/* The stride of evenly spaced offsets (>= 0; C's > 0 unless one matrix), or -1. */
static int64_t even_stride(const int64_t *off, int64_t batch, int strict) {
    if (batch < 2) return 0;
    int64_t s = off[1] - off[0];
    if (s < 0 || (strict && s == 0)) return -1;
    for (int64_t i = 2; i < batch; i++)
        if (off[i] - off[i - 1] != s) return -1;
    return s;
}

int cl_gemm_tiled_ok(craft_cl_dev *d, int half) {
    return cl_pow2_local(d, half ? K_gemm_f16 : K_gemm_tiled, 256) >= 16;
}

int cl_gemm_tiled(craft_cl_dev *d, int half, char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const craft_tensor *A, const int64_t *aoff, int64_t lda, const craft_tensor *B,
                  const int64_t *boff, int64_t ldb, float beta, craft_tensor *C, const int64_t *coff,
                  int64_t ldc, int64_t batch) {
    if (M == 0 || N == 0 || batch == 0) return CRAFT_OK;
    int kid = half ? K_gemm_f16 : K_gemm_tiled;
    size_t wg = cl_pow2_local(d, kid, 256);
    int L = wg >= 256 ? 16 : wg >= 64 ? 8 : 4;
    int64_t T = GH_R * L, tiles = ((M + T - 1) / T) * ((N + T - 1) / T);
    int64_t sa = even_stride(aoff, batch, 0), sb = even_stride(boff, batch, 0),
            sc = even_stride(coff, batch, 1);
    int even = sa >= 0 && sb >= 0 && sc >= 0;
    cl_gemm_geo g = {M,       N,  K,  lda, ldb,   ldc,  aoff[0],   boff[0],
                     coff[0], sa, sb, sc,  alpha, beta, ta == 'T', tb == 'T'};
    cl_mem am = cl_mem_of(A), bm = cl_mem_of(B), cm = cl_mem_of(C);
    cl_arg args[3] = {CLA(am), CLA(bm), CLA(cm)};
    size_t local = (size_t)(L * L);
    int rc = CRAFT_OK;
    /* one launch over the batch when every operand's matrices are evenly spaced, else one each */
    for (int64_t i = 0; !rc && i < (even ? 1 : batch); i++) {
        if (!even) {
            g.aoff = aoff[i];
            g.boff = boff[i];
            g.coff = coff[i];
        }
        rc =
            cl_launch_geo(d, kid, &g, sizeof g, 3, args, (size_t)((even ? batch : 1) * tiles) * local, local);
    }
    return rc;
}

/* ---- the per-device choice ---- */
enum { MODE_ENV = -1, MODE_CLBLAST = 0, MODE_TILED = 1, MODE_TUNE = 2 };
static int mode_set = MODE_ENV;
void craft_cl_gemm_set_mode(int mode) {
    mode_set = mode >= MODE_CLBLAST && mode <= MODE_TUNE ? mode : MODE_ENV;
}

typedef struct {
    int device, key[6], choice;
    double us_blast, us_tiled;
} tune_entry;
static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static tune_entry *ttab;
static int tn, tcap;
static int loaded[CRAFT_CL_MAX_DEVICES + 1];
static int timed_count;

static int log2_up(int64_t n) {
    int b = 0;
    while (b < 62 && ((int64_t)1 << b) < n) b++;
    return b;
}

static void tune_path(const craft_cl_dev *d, char *path, size_t n) {
    char dir[400];
    path[0] = 0;
    if (!cl_cache_dir(dir, sizeof dir)) return;
    uint64_t h = 0xcbf29ce484222325ull;
    const char *parts[3] = {d->info.name, d->info.platform, d->info.driver_version};
    for (int i = 0; i < 3; i++)
        for (const unsigned char *c = (const unsigned char *)parts[i];; c++) {
            h = (h ^ *c) * 0x100000001b3ull;
            if (!*c) break;
        }
    snprintf(path, n, "%s/gemm-tune-%016llx.txt", dir, (unsigned long long)h);
}

static int find(int device, const int *key) { /* under tmu */
    for (int i = 0; i < tn; i++)
        if (ttab[i].device == device && !memcmp(ttab[i].key, key, sizeof ttab[i].key)) return i;
    return -1;
}

static void add(int device, const int *key, int choice, double ub, double ut) { /* under tmu */
    int i = find(device, key);
    if (i < 0) {
        if (tn == tcap) {
            int nc = tcap ? 2 * tcap : 64;
            tune_entry *nt = realloc(ttab, (size_t)nc * sizeof *nt);
            if (!nt) return;
            ttab = nt;
            tcap = nc;
        }
        i = tn++;
    }
    tune_entry e = {device, {key[0], key[1], key[2], key[3], key[4], key[5]}, choice, ub, ut};
    ttab[i] = e;
}

/* Reads the device's file once: lines "v1 ta tb mb nb kb bb choice us_clblast us_tiled"; lines
 * that do not parse or hold values out of range are skipped (the file is outside craft's hands). */
static void load(craft_cl_dev *d) { /* under tmu */
    if (loaded[d->index + 1]) return;
    loaded[d->index + 1] = 1;
    char path[512], line[256];
    tune_path(d, path, sizeof path);
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        int k[6], choice;
        double ub, ut;
        char tail;
        if (sscanf(line, "v1 %d %d %d %d %d %d %d %lf %lf %c", &k[0], &k[1], &k[2], &k[3], &k[4], &k[5],
                   &choice, &ub, &ut, &tail) != 9)
            continue;
        int ok = choice == 0 || choice == 1;
        for (int i = 0; i < 6; i++) ok = ok && k[i] >= 0 && k[i] <= (i < 2 || i == 5 ? 1 : 62);
        if (ok) add(d->index, k, choice, ub, ut);
    }
    fclose(f);
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int cl_gemm_mode(craft_cl_dev *d) {
    if (mode_set != MODE_ENV) return mode_set;
    const char *e = getenv("CRAFT_CL_GEMM");
    if (e && !strcmp(e, "clblast")) return MODE_CLBLAST;
    if (e && !strcmp(e, "tiled")) return MODE_TILED;
    if (e && !strcmp(e, "tune")) return MODE_TUNE;
    return MODE_CLBLAST;
}

int cl_gemm_pick(craft_cl_dev *d, char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const craft_tensor *A, const int64_t *aoff, int64_t lda, const craft_tensor *B,
                 const int64_t *boff, int64_t ldb, int64_t batch, cl_gemm_blast_fn blast, int *tiled) {
    *tiled = 0;
    int mode = cl_gemm_mode(d);
    if (mode == MODE_CLBLAST || !cl_gemm_tiled_ok(d, 0)) return CRAFT_OK;
    if (mode == MODE_TILED) {
        *tiled = 1;
        return CRAFT_OK;
    }
    int key[6] = {ta == 'T', tb == 'T', log2_up(M), log2_up(N), log2_up(K), batch > 1};
    pthread_mutex_lock(&tmu);
    load(d);
    int i = find(d->index, key);
    if (i >= 0) *tiled = ttab[i].choice;
    pthread_mutex_unlock(&tmu);
    if (i >= 0) return CRAFT_OK;
    /* time both on this call's operands into a scratch C [batch, M, N] (beta 0): one warm-up
     * (CLBlast compiles its kernels on first use) and the best of three */
    int64_t n = batch * M * N;
    craft_tensor *S = cl_new(1, &n, CRAFT_F32, A->device);
    int64_t *soff = malloc((size_t)batch * sizeof *soff);
    int rc = S && soff ? CRAFT_OK
        : S            ? craft_fail(CRAFT_ENOMEM, "gemm tuning: out of host memory")
                       : craft_last_status();
    for (int64_t b = 0; soff && b < batch; b++) soff[b] = b * M * N;
    double best[2] = {1e300, 1e300};
    for (int rep = 0; !rc && rep < 4; rep++)
        for (int which = 0; !rc && which < 2; which++) {
            cl_int err = clFinish(d->queue);
            if (err != CL_SUCCESS) rc = cl_fail(err, d, "gemm tuning");
            double t0 = now_us();
            if (!rc)
                rc = which
                    ? cl_gemm_tiled(d, 0, ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, 0.0f, S, soff,
                                    N, batch)
                    : blast(ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, 0.0f, S, soff, N, batch);
            if (!rc && (err = clFinish(d->queue)) != CL_SUCCESS) rc = cl_fail(err, d, "gemm tuning");
            double t = now_us() - t0;
            if (rep > 0 && t < best[which]) best[which] = t;
        }
    craft_tensor_release(S);
    free(soff);
    if (rc) return rc;
    *tiled = best[1] < best[0];
    cl_count_sync(d); /* the timing's waits, counted as one */
    pthread_mutex_lock(&tmu);
    add(d->index, key, *tiled, best[0], best[1]);
    timed_count++;
    char path[512];
    tune_path(d, path, sizeof path);
    FILE *f = path[0] ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "v1 %d %d %d %d %d %d %d %.1f %.1f\n", key[0], key[1], key[2], key[3], key[4], key[5],
                *tiled, best[0], best[1]);
        fclose(f);
    }
    pthread_mutex_unlock(&tmu);
    return CRAFT_OK;
}

void cl_gemm_tune_stats(int device, int *classes, int *timed) {
    pthread_mutex_lock(&tmu);
    int c = 0;
    for (int i = 0; i < tn; i++) c += ttab[i].device == device - 1;
    if (classes) *classes = c;
    if (timed) *timed = timed_count;
    pthread_mutex_unlock(&tmu);
}

void cl_gemm_tune_forget(void) {
    pthread_mutex_lock(&tmu);
    free(ttab);
    ttab = NULL;
    tn = tcap = 0;
    timed_count = 0;
    memset(loaded, 0, sizeof loaded);
    pthread_mutex_unlock(&tmu);
}
