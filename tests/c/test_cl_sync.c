/* test_cl_sync.c: host round-trips on an OpenCL device (craft_cl_sync_count): the counter
 * itself, uploads through the staging ring (the caller's memory is free at once, the data
 * arrive intact across many laps of the ring, and the host waits far less than once per
 * upload), clip_grad_norm on the device (every case against the CPU, and no read at all when
 * the total is not asked for), and a whole training step: linear -> silu -> linear -> mse with
 * CPU targets uploaded each step, backward, clip_grad_norm, AdamW: the host waits only for the
 * two values the trainer reads (the loss and the gradient norm). */
#include "check.h"
#include "cl/cl_internal.h"
#include "core/backend.h"
#include <string.h>

static int DEV = 1; /* cl:0, or CRAFT_TEST_DEVICE (cl_test_open) */
#include "cl_check.h"

static int64_t syncs(void) {
    int64_t n = -1;
    CHECK_OK(craft_cl_sync_count(DEV, &n));
    return n;
}

static void test_counter(void) {
    int64_t c = -1;
    CHECK_OK(craft_cl_sync_count(CRAFT_DEVICE_CPU, &c));
    CHECK(c == 0);
    CHECK_ERR(craft_cl_sync_count(DEV, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_cl_sync_count(1 + 4096, &c), CRAFT_EDEVICE);
    int64_t s0 = syncs();
    CHECK_OK(craft_cl_synchronize(DEV));
    CHECK(syncs() == s0 + 1);
    int64_t one = 1;
    craft_tensor *t = NULL;
    CHECK_OK(craft_zeros(1, &one, CRAFT_F32, DEV, &t));
    float v = 1;
    s0 = syncs();
    CHECK_OK(craft_tensor_read(t, CRAFT_F32, &v, sizeof v)); /* a read waits */
    CHECK(syncs() == s0 + 1 && v == 0);
    craft_tensor_release(t);
}

/* the staging ring's halves on a 1 KiB ring of 256-byte takes: each half is filled to its very
 * end, and leaving it must still mark it (a lost marker let the geometry ring overwrite host
 * copies that queued writes had yet to read) and entering the other must consume that one's */
static void test_stage_halves(void) {
    craft_cl_dev *d = NULL;
    CHECK_OK(cl_dev_get(DEV, "test", &d));
    if (!d) return;
    cl_stage st;
    CHECK_OK(cl_stage_init(&st, 1024, "a test ring"));
    size_t off[6] = {0}, want[6] = {0, 256, 512, 768, 0, 256};
    int marked0_after3 = 0, marked1_after5 = 0, consumed0_after5 = 0;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < 6; i++) {
        CHECK_OK(cl_stage_take(d, &st, 256, &off[i]));
        if (i == 2) marked0_after3 = st.mark[0] != NULL;
        if (i == 4) {
            marked1_after5 = st.mark[1] != NULL;
            consumed0_after5 = st.mark[0] == NULL;
        }
    }
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; i < 6; i++)
        CHECK_MSG(off[i] == want[i], "take %d at %zu, expected %zu", i, off[i], want[i]);
    CHECK(marked0_after3 && marked1_after5 && consumed0_after5);
    for (int h = 0; h < 2; h++)
        if (st.mark[h]) clReleaseEvent(st.mark[h]);
    free(st.host);
}

/* 40 uploads of 1.5 MB (the ring holds 8 MiB: several laps), each from a buffer overwritten at
 * once; every row must arrive as written */
static void test_upload_ring(void) {
    enum { ROWS = 40, COLS = 393216 };
    int64_t shape[2] = {ROWS, COLS};
    craft_tensor *d = NULL;
    CHECK_OK(craft_empty(2, shape, CRAFT_F32, DEV, &d));
    float *buf = malloc(COLS * sizeof(float));
    if (!d || !buf) {
        CHECK(0);
        free(buf);
        craft_tensor_release(d);
        return;
    }
    int64_t s0 = syncs();
    for (int r = 0; r < ROWS; r++) {
        craft_tensor *row = NULL;
        CHECK_OK(craft_slice(d, 0, r, r + 1, 1, &row));
        for (int i = 0; i < COLS; i++) buf[i] = (float)(r * 7 + i % 1000);
        CHECK_OK(craft_tensor_write(row, CRAFT_F32, buf, COLS * sizeof(float)));
        memset(buf, 0xff, COLS * sizeof(float)); /* NaNs: the copy must already be taken */
        craft_tensor_release(row);
    }
    int64_t waits = syncs() - s0;
    CHECK_MSG(waits < ROWS / 2, "%lld host waits for %d uploads", (long long)waits, ROWS);
    float *all = read_all(d);
    int bad = 0;
    for (int r = 0; all && r < ROWS && !bad; r++)
        for (int i = 0; i < COLS && !bad; i++) bad = all[(size_t)r * COLS + i] != (float)(r * 7 + i % 1000);
    CHECK(all && !bad);
    free(all);
    free(buf);
    craft_tensor_release(d);
}

/* clip_grad_norm over several device tensors (a NULL entry, an empty one, a strided view)
 * against the CPU: the norm, the clipped values, a case that needs no clipping (bits kept) and a
 * non-finite norm (grads untouched) */
static void test_clip(void) {
    int64_t s1[2] = {5, 7}, s2 = 300, s0 = 0, s3[2] = {6, 4};
    craft_tensor *c[4] = {cpu_uniform(2, s1, 1, -2, 2), cpu_uniform(1, &s2, 2, -1, 1), NULL,
                          cpu_uniform(2, s3, 3, -3, 3)};
    CHECK_OK(craft_empty(1, &s0, CRAFT_F32, 0, &c[2]));
    craft_tensor *d[4], *ct, *dt;
    for (int i = 0; i < 4; i++) d[i] = on_dev(c[i]);
    CHECK_OK(craft_transpose(c[3], 0, 1, &ct)); /* strided: [4, 6] */
    CHECK_OK(craft_transpose(d[3], 0, 1, &dt));
    craft_tensor *cl5[5] = {c[0], NULL, c[1], c[2], ct}, *dl5[5] = {d[0], NULL, d[1], d[2], dt};
    for (int round = 0; round < 2; round++) {
        double max_norm = round ? 1e6 : 1.5, nc = 0, nd = 0;
        CHECK_OK(craft_clip_grad_norm(5, cl5, max_norm, &nc));
        CHECK_OK(craft_clip_grad_norm(5, dl5, max_norm, &nd));
        CHECK_NEAR(nd, nc, 2e-6 * nc);
        for (int i = 0; i < 4; i++) {
            char what[64];
            snprintf(what, sizeof what, "clip_grad_norm %s tensor %d", round ? "unclipped" : "clipped", i);
            compare_cl(what, c[i], d[i], round ? 0 : 1e-6, round ? 0 : 1e-7, DEV, 0);
        }
    }
    /* the total not asked for: no host wait at all */
    int64_t w0 = syncs();
    CHECK_OK(craft_clip_grad_norm(5, dl5, 0.5, NULL));
    CHECK(syncs() == w0);
    CHECK_OK(craft_clip_grad_norm(5, cl5, 0.5, NULL));
    compare_cl("clip_grad_norm without the total", c[0], d[0], 1e-6, 1e-7, DEV, 0);
    /* a non-finite norm leaves the grads as they are, and is returned */
    float inf = INFINITY;
    CHECK_OK(craft_set(d[1], (int64_t[]){3}, inf));
    CHECK_OK(craft_set(c[1], (int64_t[]){3}, inf));
    double nd = 0;
    CHECK_OK(craft_clip_grad_norm(5, dl5, 0.5, &nd));
    CHECK(isinf(nd));
    compare_cl("clip_grad_norm with an inf grad", c[0], d[0], 0, 0, DEV, 0);
    release(10, c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3], ct, dt);
}

/* ------------------------------------------------------- a training step ---- */
enum { NPARAM = 4 };
static int step_loss(craft_tensor **p, const craft_tensor *x, const craft_tensor *tg, craft_tensor **loss) {
    craft_tensor *h = NULL, *a = NULL, *o = NULL;
    int rc = craft_linear(x, p[0], p[1], &h);
    if (!rc) rc = craft_unary(CRAFT_SILU, h, &a);
    if (!rc) rc = craft_linear(a, p[2], p[3], &o);
    if (!rc) rc = craft_mse_loss(o, tg, 1, loss);
    release(3, h, a, o);
    return rc;
}

static void test_train_step(void) {
    int64_t shapes[NPARAM][2] = {{32, 16}, {32, 0}, {8, 32}, {8, 0}};
    int nds[NPARAM] = {2, 1, 2, 1};
    craft_tensor *p[NPARAM], *m[NPARAM], *v[NPARAM];
    for (int i = 0; i < NPARAM; i++) {
        craft_tensor *c = cpu_uniform(nds[i], shapes[i], 40 + i, -0.3f, 0.3f);
        p[i] = on_dev(c);
        craft_tensor_release(c);
        craft_set_requires_grad(p[i], 1);
        CHECK_OK(craft_zeros(nds[i], shapes[i], CRAFT_F32, DEV, &m[i]));
        CHECK_OK(craft_zeros(nds[i], shapes[i], CRAFT_F32, DEV, &v[i]));
    }
    int64_t xs[2] = {64, 16}, ts[2] = {64, 8};
    craft_tensor *x = cpu_uniform(2, xs, 50, -1, 1), *dx = on_dev(x);
    double first = 0, last = 0;
    int64_t worst = 0, old_way = 0;
    for (int step = 1; step <= 13; step++) {
        /* the last step without the back end's clip kernel: a read per tensor, as before */
        if (step == 13) craft_backend_test_disable(DEV, CRAFT_K_clip_grad_norm, 1);
        craft_tensor *tg = cpu_uniform(2, ts, 60, -1, 1), *loss = NULL, *grads[NPARAM];
        int64_t s0 = syncs();
        CHECK_OK(step_loss(p, dx, tg, &loss)); /* CPU targets: uploaded through the ring */
        double lv = 0, gn = 0;
        CHECK_OK(craft_item(loss, &lv)); /* wait 1: the loss, which the trainer logs */
        CHECK_OK(craft_backward(loss, NULL, 0));
        for (int i = 0; i < NPARAM; i++) grads[i] = p[i]->grad;
        CHECK_OK(craft_clip_grad_norm(NPARAM, grads, 0.5, &gn)); /* wait 2: the norm, likewise */
        for (int i = 0; i < NPARAM; i++) {
            CHECK_OK(craft_adamw_step(p[i], p[i]->grad, m[i], v[i], 1e-2, 0.9, 0.999, 1e-8, 0.01, step));
            craft_zero_grad(p[i]);
        }
        int64_t w = syncs() - s0;
        if (step == 13) {
            old_way = w;
            craft_backend_test_disable(DEV, CRAFT_K_clip_grad_norm, 0);
        } else if (w > worst) worst = w;
        if (step == 1) first = lv;
        last = lv;
        release(2, tg, loss);
    }
    CHECK_MSG(worst == 2, "host waits per training step: %lld, expected 2 (the loss and the norm)",
              (long long)worst);
    CHECK_MSG(old_way == 1 + NPARAM, "without the clip kernel: %lld waits, expected %d", (long long)old_way,
              1 + NPARAM); /* the loss, and a sum of squares per tensor */
    CHECK_MSG(last < first, "loss %g -> %g", first, last);
    fprintf(stderr,
            "  linear-silu-linear, 13 steps: loss %.4f -> %.4f, host waits per step %lld (%lld without the "
            "clip kernel)\n",
            first, last, (long long)worst, (long long)old_way);
    for (int i = 0; i < NPARAM; i++) release(3, p[i], m[i], v[i]);
    release(2, x, dx);
}

int main(void) {
    int st = cl_test_open("test_cl_sync");
    if (st >= 0) return st;
    RUN(test_counter);
    RUN(test_stage_halves);
    RUN(test_upload_ring);
    RUN(test_clip);
    RUN(test_train_step);
    return CHECK_SUMMARY();
}
