/* test_cl_gemm.c: craft's tiled GEMM and the per-device choice between it and CLBlast
 * (engine/cl/cl_gemm_tiled.c) on the OpenCL device under test (tests/run.sh runs this once per
 * device):
 *  - forced tiled: matmul (tile edges, transposed operands, batches evenly spaced or not),
 *    linear (the bias as beta 1) and a conv through im2col against the CPU, rtol 1e-4 as
 *    CLBlast's products are checked in test_cl;
 *  - tune: the first product of each shape class is timed against CLBlast and the choice
 *    written to the device's file under CRAFT_CL_CACHE; after forgetting, the choices come back
 *    from the file without timing again; lines that do not parse are skipped; results agree
 *    with the CPU whichever way each class went.
 * The choice is timing-dependent, so the test checks the mechanism, not which side won. */
#include "check.h"
#include "core/backend.h"
#include "cl/cl_internal.h"
#include <dirent.h>
#include <string.h>
#include <unistd.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */
#include "cl_check.h"

static char dir[256];

static void matmul_vs_cpu(const char *what, int nda, const int64_t *sa, int ndb, const int64_t *sb,
                          int trans_b, uint64_t seed) {
    craft_tensor *a = cpu_uniform(nda, sa, seed, -1, 1), *b0 = cpu_uniform(ndb, sb, seed + 1, -1, 1),
                 *b = NULL;
    if (trans_b) CHECK_OK(craft_transpose(b0, -1, -2, &b));
    else b = craft_tensor_retain(b0);
    craft_tensor *da = on_dev(a), *db = on_dev(b), *y = NULL, *dy = NULL;
    CHECK_OK(craft_matmul(a, b, &y));
    CHECK_OK(craft_matmul(da, db, &dy));
    compare_cl(what, y, dy, 1e-4, 1e-5, DEV, 0);
    release(7, a, b0, b, da, db, y, dy);
}

static void products(void) {
    int64_t a1[2] = {70, 35}, b1[2] = {35, 67};
    matmul_vs_cpu("matmul 70x35 @ 35x67", 2, a1, 2, b1, 0, 1);
    int64_t a2[2] = {5, 17}, b2[2] = {130, 17};
    matmul_vs_cpu("matmul 5x17 @ (130x17)^T", 2, a2, 2, b2, 1, 3);
    int64_t a3[3] = {3, 33, 20}, b3[2] = {20, 65};
    matmul_vs_cpu("matmul [3,33,20] @ [20,65]", 3, a3, 2, b3, 0, 5);
    int64_t a4[4] = {2, 1, 9, 40}, b4[4] = {1, 3, 40, 18};
    matmul_vs_cpu("matmul [2,1,9,40] @ [1,3,40,18]", 4, a4, 4, b4, 0, 7);
    craft_tensor *x, *at = NULL; /* a transposed left operand */
    int64_t xs[2] = {40, 9}, ws[2] = {40, 31};
    x = cpu_uniform(2, xs, 9, -1, 1);
    CHECK_OK(craft_transpose(x, 0, 1, &at));
    craft_tensor *w = cpu_uniform(2, ws, 10, -1, 1), *dat = NULL, *dw = on_dev(w), *y = NULL, *dy = NULL,
                 *dx = on_dev(x);
    CHECK_OK(craft_transpose(dx, 0, 1, &dat));
    CHECK_OK(craft_matmul(at, w, &y));
    CHECK_OK(craft_matmul(dat, dw, &dy));
    compare_cl("matmul (40x9)^T @ 40x31", y, dy, 1e-4, 1e-5, DEV, 0);
    release(8, x, at, w, dat, dw, y, dy, dx);
    /* linear with a bias: the product adds to C (beta 1) */
    int64_t ls[2] = {37, 70}, lw[2] = {45, 70}, lb[1] = {45};
    craft_tensor *lx = cpu_uniform(2, ls, 11, -1, 1), *lwt = cpu_uniform(2, lw, 12, -1, 1),
                 *lbt = cpu_uniform(1, lb, 13, -1, 1);
    craft_tensor *dlx = on_dev(lx), *dlw = on_dev(lwt), *dlb = on_dev(lbt), *ly = NULL, *dly = NULL;
    CHECK_OK(craft_linear(lx, lwt, lbt, &ly));
    CHECK_OK(craft_linear(dlx, dlw, dlb, &dly));
    compare_cl("linear with bias", ly, dly, 1e-4, 1e-5, DEV, 0);
    release(8, lx, lwt, lbt, dlx, dlw, dlb, ly, dly);
    /* a convolution through im2col + the batched GEMM (offsets per image and group) */
    craft_cl_conv_set_algo(0);
    int64_t cxs[4] = {2, 6, 9, 8}, cws[4] = {8, 3, 3, 3};
    int st[2] = {1, 1}, pd[2] = {1, 1}, dl[2] = {1, 1};
    craft_tensor *cx = cpu_uniform(4, cxs, 14, -1, 1), *cw = cpu_uniform(4, cws, 15, -1, 1),
                 *dcx = on_dev(cx), *dcw = on_dev(cw), *cy = NULL, *dcy = NULL;
    CHECK_OK(craft_conv2d(cx, cw, NULL, st, pd, dl, 2, &cy));
    CHECK_OK(craft_conv2d(dcx, dcw, NULL, st, pd, dl, 2, &dcy));
    compare_cl("conv2d im2col, 2 groups", cy, dcy, 1e-4, 1e-5, DEV, 0);
    craft_cl_conv_set_algo(-1);
    release(6, cx, cw, dcx, dcw, cy, dcy);
}

static void test_tiled(void) {
    craft_cl_gemm_set_mode(1);
    products();
    craft_cl_gemm_set_mode(-1);
}

/* the device's tuning file in dir, or "" */
static void tune_file(char *path, size_t n) {
    path[0] = 0;
    DIR *dd = opendir(dir);
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (!strncmp(e->d_name, "gemm-tune-", 10)) snprintf(path, n, "%s/%s", dir, e->d_name);
    if (dd) closedir(dd);
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

static void test_tune(void) {
    craft_cl_gemm_set_mode(2);
    cl_gemm_tune_forget();
    int classes = -1, timed = -1;
    products(); /* every class met for the first time is timed, and the results are right */
    cl_gemm_tune_stats(DEV, &classes, &timed);
    CHECK_MSG(classes >= 6 && timed == classes, "tuned %d classes, timed %d", classes, timed);
    char path[600];
    tune_file(path, sizeof path);
    CHECK_MSG(path[0] && count_lines(path) == classes, "the file %s has %d lines for %d classes", path,
              path[0] ? count_lines(path) : 0, classes);
    /* a second pass: every class known, nothing timed */
    products();
    int c2 = -1, t2 = -1;
    cl_gemm_tune_stats(DEV, &c2, &t2);
    CHECK(c2 == classes && t2 == timed);
    /* forgotten: the choices come back from the file; junk lines are skipped */
    FILE *f = path[0] ? fopen(path, "a") : NULL;
    if (f) {
        fputs(
            "v1 0 0 3 3\nnot a line\nv1 0 0 3 3 3 0 7 1.0 2.0\nv1 9 0 3 3 3 0 1 1.0 2.0\nv1 0 0 99 3 3 0 1 1 2\n",
            f);
        fclose(f);
    }
    cl_gemm_tune_forget();
    products();
    int c3 = -1, t3 = -1;
    cl_gemm_tune_stats(DEV, &c3, &t3);
    CHECK_MSG(c3 == classes && t3 == 0, "after forgetting: %d classes (%d before), %d timed", c3, classes,
              t3);
    craft_cl_gemm_set_mode(-1);
    cl_gemm_tune_forget();
}

int main(void) {
    int st = cl_test_open("test_cl_gemm");
    if (st >= 0) return st;
    snprintf(dir, sizeof dir, "/tmp/craft-gemm-tune-test-%d", (int)getpid());
    setenv("CRAFT_CL_CACHE", dir, 1); /* after cl_test_open: the program binaries were loaded */
    RUN(test_tiled);
    RUN(test_tune);
    char path[600];
    tune_file(path, sizeof path);
    if (path[0]) unlink(path);
    rmdir(dir);
    return CHECK_SUMMARY();
}
