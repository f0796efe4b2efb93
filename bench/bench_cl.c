/* bench_cl.c: the OpenCL back end's rows of `make bench`: the same ops timed on the CPU (oneDNN)
 * and on every OpenCL device (cl:N), forward + backward, median of `steps` runs after a warm-up
 * that also compiles the kernels. On this machine the only device is PoCL, the CPU itself
 * through OpenCL: a correctness device, so its ratios say nothing about GPUs (docs/opencl.md).
 * Without an OpenCL platform it prints one "skip" line. */
#include "bench_common.h"
#include <stdio.h>
#include <stdlib.h>

static int steps = 7, warmup = 2;

/* inputs made on the CPU from a fixed seed, then moved to the device */
static craft_tensor *input(int nd, const int64_t *shape, uint64_t seed, int device) {
    craft_tensor *t, *d;
    if (craft_empty(nd, shape, CRAFT_F32, 0, &t) || craft_randn_(t, seed, 0)) bench_die("bench_cl", "input");
    if (device == 0) d = t;
    else {
        if (craft_to_device(t, device, &d)) bench_die("bench_cl", "to_device");
        craft_tensor_release(t);
    }
    if (craft_set_requires_grad(d, 1)) bench_die("bench_cl", "requires_grad");
    return d;
}

enum { CONV, GEMM, ATTN, GNORM, SOFTMAX };
static const char *names[] = {
    "conv2d 3x3 [8,64,32,32] -> 64, fwd+bwd",
    "matmul [512,512] @ [512,512], fwd+bwd",
    "sdpa [4,8,256,64], fwd+bwd",
    "group_norm 32 groups [8,128,32,32], fwd+bwd",
    "softmax [64,4096] last dim, fwd+bwd",
};

/* one forward + backward of case k on device dev; returns seconds */
static double run(int k, int dev) {
    craft_tensor *a = NULL, *b = NULL, *c = NULL, *y = NULL, *s = NULL;
    int one[2] = {1, 1}, zero[2] = {0, 0};
    switch (k) {
    case CONV: {
        int64_t xs[4] = {8, 64, 32, 32}, ws[4] = {64, 64, 3, 3};
        a = input(4, xs, 1, dev);
        b = input(4, ws, 2, dev);
        break;
    }
    case GEMM: {
        int64_t sh[2] = {512, 512};
        a = input(2, sh, 3, dev);
        b = input(2, sh, 4, dev);
        break;
    }
    case ATTN: {
        int64_t sh[4] = {4, 8, 256, 64};
        a = input(4, sh, 5, dev);
        b = input(4, sh, 6, dev);
        c = input(4, sh, 7, dev);
        break;
    }
    case GNORM: {
        int64_t sh[4] = {8, 128, 32, 32};
        a = input(4, sh, 8, dev);
        break;
    }
    case SOFTMAX: {
        int64_t sh[2] = {64, 4096};
        a = input(2, sh, 9, dev);
        break;
    }
    }
    if (dev) craft_cl_synchronize(dev);
    double t0 = craft_now();
    int rc = 0;
    switch (k) {
    case CONV:
        rc = craft_conv2d(a, b, NULL, one, one, one, 1, &y);
        (void)zero;
        break;
    case GEMM: rc = craft_matmul(a, b, &y); break;
    case ATTN: rc = craft_sdpa(a, b, c, NULL, 0, 0, &y); break;
    case GNORM: rc = craft_group_norm(a, 32, NULL, NULL, 1e-5, &y); break;
    case SOFTMAX: rc = craft_softmax(a, -1, &y); break;
    }
    if (rc) bench_die("bench_cl", names[k]);
    if (craft_sum(y, 0, NULL, 0, &s) || craft_backward(s, NULL, 0)) bench_die("bench_cl", "backward");
    if (dev) craft_cl_synchronize(dev);
    double t = craft_now() - t0;
    craft_tensor_release(s);
    craft_tensor_release(y);
    craft_tensor_release(a);
    craft_tensor_release(b);
    craft_tensor_release(c);
    return t;
}

static double median(int k, int dev) {
    double ts[32];
    for (int i = 0; i < warmup; i++) run(k, dev);
    for (int i = 0; i < steps; i++) ts[i] = run(k, dev);
    return bench_summarize(ts, steps).med;
}

int main(void) {
    int n = 0;
    if (craft_cl_device_count(&n) || n == 0) {
        printf("skip: no OpenCL device (%s)\n",
               n == 0 && !craft_last_error()[0] ? "none found" : craft_last_error());
        return 0;
    }
    printf("OpenCL rows: median of %d fwd+bwd runs after %d warm-up runs (the first compiles kernels)\n",
           steps, warmup);
    for (int d = 0; d < n; d++) {
        craft_cl_info info;
        if (craft_cl_device_info(d, &info)) bench_die("bench_cl", "device info");
        printf("cl:%d = %s (%s)%s\n", d, info.name, info.platform,
               info.is_gpu ? "" : ": a CPU device, for correctness; its ratio is not a GPU figure");
    }
    printf("%-46s %12s", "op", "cpu (oneDNN)");
    for (int d = 0; d < n; d++) printf("  %9s:%d %7s", "cl", d, "cpu/cl");
    printf("\n");
    for (int k = 0; k <= SOFTMAX; k++) {
        double tc = median(k, 0);
        printf("%-46s %9.2f ms", names[k], tc * 1e3);
        for (int d = 0; d < n; d++) {
            double td = median(k, 1 + d);
            printf("  %9.2f ms %6.2fx", td * 1e3, tc / td);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
