/* test_phantom.c: the clinical phantom generator and the oracle auditor.
 *
 *   build/tests/test_phantom              the checks (about 10 s on 2 cores)
 *   build/tests/test_phantom --curve [N]  markdown table of oracle agreement under blur and
 *                                         noise, N phantoms per modality (default 1000)
 *   build/tests/test_phantom --grid PATH [UP]  PNG grid: 6 phantoms of every class, 64 px,
 *                                         magnified UP times (default 1) */
#include "check.h"
#include <omp.h>
#include <stb_image_write.h>
#include <stdint.h>
#include <string.h>

#define SIZE 64

typedef struct batch {
    int m, n, size, np, nm, ni;
    float *img, *prm, *ms;
    int32_t *lab, *olab;
    uint8_t *items;
} batch;

static void batch_free(batch *b) {
    free(b->img);
    free(b->prm);
    free(b->ms);
    free(b->lab);
    free(b->olab);
    free(b->items);
    memset(b, 0, sizeof *b);
}

/* n phantoms of modality m (random classes), optionally degraded, then audited */
static int batch_run(batch *b, int m, int n, int size, uint64_t seed, double blur, double noise) {
    memset(b, 0, sizeof *b);
    b->m = m;
    b->n = n;
    b->size = size;
    b->np = craft_phantom_param_count(m);
    b->nm = craft_oracle_measure_count(m);
    b->ni = craft_oracle_item_count(m);
    b->img = malloc(sizeof(float) * 3 * (size_t)size * size * n);
    b->prm = malloc(sizeof(float) * (size_t)b->np * n);
    b->ms = malloc(sizeof(float) * (size_t)b->nm * n);
    b->lab = malloc(sizeof(int32_t) * n);
    b->olab = malloc(sizeof(int32_t) * n);
    b->items = malloc((size_t)b->ni * n);
    int rc = craft_phantom_generate(m, n, size, seed, 0, -1, b->img, b->lab, b->prm);
    if (rc == CRAFT_OK && (blur > 0.0 || noise > 0.0))
        rc = craft_phantom_degrade(n, size, b->img, blur, noise, seed + 1);
    if (rc == CRAFT_OK) rc = craft_oracle_audit(m, n, size, b->img, b->ms, b->olab, b->items);
    return rc;
}

static double agreement(const batch *b) {
    int a = 0;
    for (int k = 0; k < b->n; k++) a += b->lab[k] == b->olab[k];
    return (double)a / b->n;
}

static int find_param(int m, const char *name) {
    for (int i = 0; i < craft_phantom_param_count(m); i++)
        if (!strcmp(craft_phantom_param_name(m, i), name)) return i;
    return -1;
}
static int find_measure(int m, const char *name) {
    for (int i = 0; i < craft_oracle_measure_count(m); i++)
        if (!strcmp(craft_oracle_measure_name(m, i), name)) return i;
    return -1;
}
static int cmpd(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}
/* median |measured - truth| of a quantity over the images of class cls (-1: all) */
static double median_err(const batch *b, const char *name, int cls) {
    int p = find_param(b->m, name), q = find_measure(b->m, name);
    if (p < 0 || q < 0) return 1e9;
    double *e = malloc(sizeof(double) * b->n);
    int n = 0;
    for (int k = 0; k < b->n; k++)
        if (cls < 0 || b->lab[k] == cls) e[n++] = fabs((double)b->ms[k * b->nm + q] - b->prm[k * b->np + p]);
    qsort(e, (size_t)n, sizeof(double), cmpd);
    double med = n ? e[n / 2] : 1e9;
    free(e);
    return med;
}
/* agreement of (truth >= t) with (measured >= t) */
static double thresh_agreement(const batch *b, const char *name, double t) {
    int p = find_param(b->m, name), q = find_measure(b->m, name), a = 0;
    if (p < 0 || q < 0) return 0.0;
    for (int k = 0; k < b->n; k++) a += (b->prm[k * b->np + p] >= t) == (b->ms[k * b->nm + q] >= t);
    return (double)a / b->n;
}

static void test_tables(void) {
    CHECK(craft_phantom_modality_count() == 4);
    const char *names[4] = {"cxr", "fundus", "derm", "histo"};
    const int ncls[4] = {3, 3, 2, 3};
    for (int m = 0; m < 4; m++) {
        int mm = -1;
        CHECK(craft_phantom_modality_name(m) && !strcmp(craft_phantom_modality_name(m), names[m]));
        CHECK_OK(craft_phantom_modality_from_name(names[m], &mm));
        CHECK(mm == m);
        CHECK(craft_phantom_class_count(m) == ncls[m]);
        for (int c = 0; c < ncls[m]; c++) CHECK(craft_phantom_class_name(m, c) != NULL);
        CHECK(craft_phantom_param_count(m) > 4);
        for (int i = 0; i < craft_phantom_param_count(m); i++) CHECK(craft_phantom_param_name(m, i) != NULL);
        CHECK(craft_oracle_measure_count(m) > 4);
        for (int i = 0; i < craft_oracle_measure_count(m); i++)
            CHECK(craft_oracle_measure_name(m, i) != NULL);
        /* every class has at least one checklist item */
        int per_class[3] = {0, 0, 0};
        for (int i = 0; i < craft_oracle_item_count(m); i++) {
            CHECK(craft_oracle_item_name(m, i) != NULL);
            int c = craft_oracle_item_class(m, i);
            CHECK(c >= 0 && c < ncls[m]);
            if (c >= 0 && c < 3) per_class[c]++;
        }
        for (int c = 0; c < ncls[m]; c++) CHECK(per_class[c] >= 1);
    }
    CHECK(!strcmp(craft_phantom_class_name(0, 1), "cardiomegaly"));
    CHECK(!strcmp(craft_phantom_class_name(2, 1), "melanoma"));
    CHECK(find_measure(1, "cdr") >= 0 && find_param(1, "cdr") >= 0);
}

static void test_bad_args(void) {
    float buf[3 * 32 * 32];
    int32_t lab;
    uint8_t it[16];
    int m;
    CHECK_ERR(craft_phantom_modality_from_name("mri", &m), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "mri") != NULL);
    CHECK_ERR(craft_phantom_modality_from_name(NULL, &m), CRAFT_EINVAL);
    CHECK(craft_phantom_modality_name(4) == NULL);
    CHECK(craft_phantom_class_count(-1) == -1);
    CHECK(craft_phantom_class_name(2, 2) == NULL);
    CHECK(craft_phantom_param_name(0, 99) == NULL);
    CHECK(craft_oracle_item_name(3, -1) == NULL);
    CHECK(craft_oracle_item_class(7, 0) == -1);
    CHECK_ERR(craft_phantom_generate(4, 1, 32, 1, 0, 0, buf, &lab, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_phantom_generate(0, 1, 31, 1, 0, 0, buf, &lab, NULL), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "size 31") != NULL);
    CHECK_ERR(craft_phantom_generate(0, 1, 257, 1, 0, 0, buf, &lab, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_phantom_generate(0, 1, 32, 1, 0, 3, buf, &lab, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_phantom_generate(0, -1, 32, 1, 0, 0, buf, &lab, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_phantom_generate(0, 1, 32, 1, 0, 0, NULL, &lab, NULL), CRAFT_EINVAL);
    CHECK_OK(craft_phantom_generate(0, 0, 32, 1, 0, 0, NULL, NULL, NULL)); /* nothing to do */
    CHECK_ERR(craft_oracle_audit(-1, 1, 32, buf, NULL, &lab, it), CRAFT_EINVAL);
    CHECK_ERR(craft_oracle_audit(1, 1, 16, buf, NULL, &lab, it), CRAFT_EINVAL);
    CHECK_ERR(craft_oracle_audit(1, 1, 32, NULL, NULL, &lab, it), CRAFT_EINVAL);
    CHECK_ERR(craft_phantom_degrade(1, 32, buf, -1.0, 0.0, 1), CRAFT_EINVAL);
    CHECK_ERR(craft_phantom_degrade(1, 32, NULL, 1.0, 0.0, 1), CRAFT_EINVAL);
}

static void test_determinism(void) {
    const int n = 6, sz = 48;
    size_t img = 3 * (size_t)sz * sz;
    float *a = malloc(sizeof(float) * img * n), *b = malloc(sizeof(float) * img * n);
    float *one = malloc(sizeof(float) * img);
    for (int m = 0; m < 4; m++) {
        int32_t la[6], lb[6], l1;
        int np = craft_phantom_param_count(m);
        float pa[6 * 32], pb[6 * 32];
        CHECK_OK(craft_phantom_generate(m, n, sz, 42, 100, -1, a, la, pa));
        int old = omp_get_max_threads();
        omp_set_num_threads(1); /* threads must not matter */
        CHECK_OK(craft_phantom_generate(m, n, sz, 42, 100, -1, b, lb, pb));
        omp_set_num_threads(old);
        CHECK(memcmp(a, b, sizeof(float) * img * n) == 0);
        CHECK(memcmp(la, lb, sizeof la) == 0);
        CHECK(memcmp(pa, pb, sizeof(float) * (size_t)np * n) == 0);
        /* an image depends on (seed, index, class) only, not on its batch */
        CHECK_OK(craft_phantom_generate(m, 1, sz, 42, 103, la[3], one, &l1, NULL));
        CHECK(memcmp(one, a + 3 * img, sizeof(float) * img) == 0);
        /* another index, another seed: other pixels */
        CHECK(memcmp(a, a + img, sizeof(float) * img) != 0);
        CHECK_OK(craft_phantom_generate(m, 1, sz, 43, 100, la[0], one, &l1, NULL));
        CHECK(memcmp(one, a, sizeof(float) * img) != 0);
        /* values in [0, 1], every class drawn among a few hundred */
        float lo = 1, hi = 0;
        for (size_t k = 0; k < img * n; k++) {
            if (a[k] < lo) lo = a[k];
            if (a[k] > hi) hi = a[k];
        }
        CHECK(lo >= 0.0f && hi <= 1.0f && hi > 0.5f);
    }
    free(a);
    free(b);
    free(one);
    /* cxr is grey: three equal planes */
    float *g = malloc(sizeof(float) * 3 * 64 * 64);
    CHECK_OK(craft_phantom_generate(0, 1, 64, 5, 0, 0, g, NULL, NULL));
    CHECK(memcmp(g, g + 64 * 64, sizeof(float) * 64 * 64) == 0 &&
          memcmp(g, g + 2 * 64 * 64, sizeof(float) * 64 * 64) == 0);
    free(g);
    int32_t labs[300];
    float *big = malloc(sizeof(float) * 3 * 32 * 32 * 300);
    CHECK_OK(craft_phantom_generate(2, 300, 32, 9, 0, -1, big, labs, NULL));
    int cnt[2] = {0, 0};
    for (int k = 0; k < 300; k++) cnt[labs[k]]++;
    CHECK(cnt[0] > 100 && cnt[1] > 100);
    free(big);
}

/* label agreement on 1000 clean phantoms per modality, and measurement tolerances */
static void test_agreement(void) {
    batch b;
    for (int m = 0; m < 4; m++) {
        CHECK_OK(batch_run(&b, m, 1000, SIZE, 2024, 0.0, 0.0));
        double a = agreement(&b);
        fprintf(stderr, "  %-6s agreement %.3f\n", craft_phantom_modality_name(m), a);
        CHECK_MSG(a >= 0.95, "%s agreement %.3f", craft_phantom_modality_name(m), a);
        if (m == 0) {
            CHECK_MSG(median_err(&b, "ctr", -1) <= 0.015, "ctr %.4f", median_err(&b, "ctr", -1));
            CHECK(median_err(&b, "thorax_width", -1) <= 0.01);
            CHECK(median_err(&b, "heart_width", -1) <= 0.01);
            CHECK_MSG(median_err(&b, "consolidation_area", 2) <= 0.03, "area %.4f",
                      median_err(&b, "consolidation_area", 2));
            int zq = find_measure(0, "consolidation_zone"), zp = find_param(0, "consolidation_zone"), ok = 0,
                n = 0;
            for (int k = 0; k < b.n; k++)
                if (b.lab[k] == 2) {
                    n++;
                    ok += b.ms[k * b.nm + zq] == b.prm[k * b.np + zp];
                }
            CHECK_MSG(ok >= 0.9 * n, "zone %d/%d", ok, n);
        } else if (m == 1) {
            CHECK_MSG(median_err(&b, "cdr", -1) <= 0.03, "cdr %.4f", median_err(&b, "cdr", -1));
            CHECK(median_err(&b, "disc_radius", -1) <= 0.006);
            CHECK(thresh_agreement(&b, "n_exudates", 1.0) >= 0.95);
            CHECK(thresh_agreement(&b, "n_haemorrhages", 1.0) >= 0.9);
            CHECK(thresh_agreement(&b, "n_microaneurysms", 1.0) >= 0.8);
            CHECK(median_err(&b, "n_exudates", 2) <= 1.0);
            CHECK(median_err(&b, "n_haemorrhages", 2) <= 1.0);
        } else if (m == 2) {
            CHECK(median_err(&b, "asymmetry", -1) <= 0.02);
            CHECK(median_err(&b, "border_irregularity", -1) <= 0.02);
            CHECK(median_err(&b, "diameter_frac", -1) <= 0.02);
            CHECK(thresh_agreement(&b, "asymmetry", 0.06) >= 0.95);
            CHECK(thresh_agreement(&b, "border_irregularity", 0.04) >= 0.95);
            CHECK(thresh_agreement(&b, "n_colours", 3.0) >= 0.93);
            CHECK(thresh_agreement(&b, "blue_white", 0.5) >= 0.95);
            CHECK(thresh_agreement(&b, "diameter_frac", 0.4) >= 0.97);
        } else {
            CHECK_MSG(median_err(&b, "nuclear_density", -1) <= 0.05, "density %.4f",
                      median_err(&b, "nuclear_density", -1));
            CHECK_MSG(median_err(&b, "nuclear_size_cv", -1) <= 0.05, "cv %.4f",
                      median_err(&b, "nuclear_size_cv", -1));
            CHECK_MSG(median_err(&b, "mucin_fraction", 2) <= 0.04, "mucin %.4f",
                      median_err(&b, "mucin_fraction", 2));
            CHECK(thresh_agreement(&b, "nuclear_size_cv", 0.25) >= 0.95);
            CHECK(thresh_agreement(&b, "n_glands", 1.0) >= 0.95);
        }
        batch_free(&b);
    }
}

/* mild corruptions keep the labels; other sizes still work */
static void test_robustness(void) {
    batch b;
    for (int m = 0; m < 4; m++) {
        CHECK_OK(batch_run(&b, m, 300, SIZE, 77, 0.5, 0.0));
        double a1 = agreement(&b);
        batch_free(&b);
        CHECK_OK(batch_run(&b, m, 300, SIZE, 78, 0.0, 0.02));
        double a2 = agreement(&b);
        batch_free(&b);
        CHECK_OK(batch_run(&b, m, 150, 32, 79, 0.0, 0.0));
        double a3 = agreement(&b);
        batch_free(&b);
        CHECK_OK(batch_run(&b, m, 60, 128, 80, 0.0, 0.0));
        double a4 = agreement(&b);
        batch_free(&b);
        fprintf(stderr, "  %-6s blur 0.5: %.3f  noise 0.02: %.3f  32 px: %.3f  128 px: %.3f\n",
                craft_phantom_modality_name(m), a1, a2, a3, a4);
        CHECK_MSG(a1 >= 0.85, "blur 0.5 %.3f", a1);
        CHECK_MSG(a2 >= 0.85, "noise 0.02 %.3f", a2);
        CHECK_MSG(a3 >= 0.8, "32 px %.3f", a3); /* micro-aneurysms barely survive 32 px */
        CHECK_MSG(a4 >= 0.9, "128 px %.3f", a4);
    }
    /* the largest sizes run */
    float *img = malloc(sizeof(float) * 3 * 256 * 256 * 2);
    int32_t lab[2], ol[2];
    for (int m = 0; m < 4; m++) {
        CHECK_OK(craft_phantom_generate(m, 2, 256, 3, 0, -1, img, lab, NULL));
        CHECK_OK(craft_oracle_audit(m, 2, 256, img, NULL, ol, NULL));
        CHECK(ol[0] >= 0 && ol[0] < craft_phantom_class_count(m));
    }
    free(img);
}

static void print_curve(int n) {
    const double blur[7] = {0, 0.5, 1, 2, 0, 0, 0}, noise[7] = {0, 0, 0, 0, 0.02, 0.05, 0.1};
    printf("| modality | clean | blur 0.5 | blur 1 | blur 2 | noise 0.02 | noise 0.05 | noise 0.1 |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int m = 0; m < 4; m++) {
        printf("| %s |", craft_phantom_modality_name(m));
        for (int c = 0; c < 7; c++) {
            batch b;
            if (batch_run(&b, m, n, SIZE, 2024, blur[c], noise[c]) != CRAFT_OK) {
                printf(" error |");
                continue;
            }
            printf(" %.3f |", agreement(&b));
            fflush(stdout);
            batch_free(&b);
        }
        printf("\n");
    }
    printf("\n(oracle label agreement with the generator's label, %d phantoms of %d px per cell, "
           "seed 2024; blur sigma and noise sd in pixels / intensity units)\n",
           n, SIZE);
}

static int write_grid(const char *path, int up) {
    if (up < 1 || up > 8) up = 1;
    const int per = 6, tile = SIZE * up + 4;
    int rows = 0;
    for (int m = 0; m < 4; m++) rows += craft_phantom_class_count(m);
    int W = per * tile, H = rows * tile;
    unsigned char *png = calloc((size_t)W * H * 3, 1);
    float *img = malloc(sizeof(float) * 3 * SIZE * SIZE * per);
    int row = 0;
    for (int m = 0; m < 4; m++)
        for (int c = 0; c < craft_phantom_class_count(m); c++, row++) {
            if (craft_phantom_generate(m, per, SIZE, 11, 0, c, img, NULL, NULL) != CRAFT_OK) return 1;
            for (int e = 0; e < per; e++)
                for (int y = 0; y < SIZE * up; y++)
                    for (int x = 0; x < SIZE * up; x++)
                        for (int ch = 0; ch < 3; ch++) {
                            float v =
                                img[((size_t)e * 3 + ch) * SIZE * SIZE + (size_t)(y / up) * SIZE + x / up];
                            png[((size_t)(row * tile + 2 + y) * W + (size_t)(e * tile + 2 + x)) * 3 + ch] =
                                (unsigned char)(v * 255.0f + 0.5f);
                        }
        }
    int ok = stbi_write_png(path, W, H, 3, png, W * 3);
    free(png);
    free(img);
    if (!ok) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    printf("wrote %s (%d x %d): rows are classes (cxr normal, cardiomegaly, pneumonia; fundus normal, "
           "glaucoma, DR; derm nevus, melanoma; histo benign, ductal, mucinous)\n",
           path, W, H);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--curve")) {
        print_curve(argc > 2 ? atoi(argv[2]) : 1000);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "--grid")) return write_grid(argv[2], argc > 3 ? atoi(argv[3]) : 1);
    RUN(test_tables);
    RUN(test_bad_args);
    RUN(test_determinism);
    RUN(test_agreement);
    RUN(test_robustness);
    return CHECK_SUMMARY();
}
