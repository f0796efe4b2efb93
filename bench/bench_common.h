/* bench_common.h: the timing helpers every bench program shares. Times come from the engine's
 * monotonic clock (craft_now); a series of timings is summarised by its median and minimum
 * (the minimum is the better estimate on a shared machine). */
#ifndef CRAFT_BENCH_COMMON_H
#define CRAFT_BENCH_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "craft.h"

typedef struct {
    double med, min;
} bench_timing;

static int bench_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
/* Sorts v[0..n) (n >= 1) and returns its median (the mean of the middle two for even n) and minimum. */
static inline bench_timing bench_summarize(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
    bench_timing t = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0]};
    return t;
}
/* The python the PyTorch peers run on: CRAFT_PEER_PYTHON (bench/run.sh sets it), else the venv
 * `sh tools/setup.sh --bench` makes (PyTorch 2.x from PyPI), else /usr/bin/python3. */
static inline const char *bench_peer_python(void) {
    const char *py = getenv("CRAFT_PEER_PYTHON");
    if (py && *py) return py;
    return access(".venv-bench/bin/python", X_OK) == 0 ? ".venv-bench/bin/python" : "/usr/bin/python3";
}
/* Ends the program with the engine's last error: prog: what: message. */
static inline void bench_die(const char *prog, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, craft_last_error());
    exit(1);
}
#endif
