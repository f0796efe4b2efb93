/* test_data_formats.c: the CSV reader and writer, image decoding and PNG writing, and the image
 * transforms (area / bilinear resize, centre crop, flips, u8 <-> f32 conversion). The npy / npz
 * loaders and the real data sets are tested in test_data.c.
 *
 * Fixtures in tests/fixtures/data/ come from tests/fixtures/make_data_fixtures.py (numpy, PIL,
 * PyTorch). */
#include "check.h"
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/data/"

static int msg_has(const char *needle) {
    if (strstr(craft_last_error(), needle)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", craft_last_error(), needle);
    return 0;
}

static float f32_at(const craft_array *a, int64_t i) { return ((const float *)a->data)[i]; }
static int32_t i32_at(const craft_array *a, int64_t i) { return ((const int32_t *)a->data)[i]; }
static uint8_t u8_at(const craft_array *a, int64_t i) { return ((const uint8_t *)a->data)[i]; }

static int read_file_bytes(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 1);
    *len = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n;
}

/* ------------------------------------------------------------------ csv */
#define CSV_PARSE(s, name, hdr, out) craft_csv_parse((s), strlen(s), (name), (hdr), (out))

static craft_csv *parse(const char *s, int has_header) {
    craft_csv *c = NULL;
    int rc = craft_csv_parse(s, strlen(s), "t.csv", has_header, &c);
    return rc == CRAFT_OK ? c : NULL;
}

static void test_csv(void) {
    craft_csv *c =
        parse("name,note\r\n\"Doe, J\",\"said \"\"hi\"\"\"\r\nx,\"two\r\nlines\"\r\n p , y \r\n", 1);
    CHECK(c != NULL);
    if (c) {
        CHECK(craft_csv_rows(c) == 3 && craft_csv_cols(c) == 2);
        CHECK(!strcmp(craft_csv_header(c, 1), "note"));
        CHECK(!strcmp(craft_csv_cell(c, 0, 0), "Doe, J") && !strcmp(craft_csv_cell(c, 0, 1), "said \"hi\""));
        CHECK(!strcmp(craft_csv_cell(c, 1, 1), "two\r\nlines"));
        CHECK(!strcmp(craft_csv_cell(c, 2, 0), " p ") && !strcmp(craft_csv_cell(c, 2, 1), " y "));
        CHECK(craft_csv_row_line(c, 0) == 2 && craft_csv_row_line(c, 1) == 3 &&
              craft_csv_row_line(c, 2) == 5);
        CHECK(craft_csv_cell(c, 3, 0) == NULL && craft_csv_cell(c, 0, 2) == NULL &&
              craft_csv_cell(c, -1, 0) == NULL);
        craft_csv_free(c);
    }
    /* missing last newline, blank lines, BOM */
    c = parse("\xEF\xBB\xBF"
              "a,b\n1,2\n\n\n3,4",
              1);
    CHECK(c && craft_csv_rows(c) == 2 && !strcmp(craft_csv_header(c, 0), "a"));
    if (c) {
        CHECK(!strcmp(craft_csv_cell(c, 1, 1), "4") && craft_csv_row_line(c, 1) == 5);
        craft_csv_free(c);
    }
    /* ragged rows: the message names the line */
    CHECK_ERR(CSV_PARSE("a,b,c\n1,2,3\n4,5\n", "ragged.csv", 1, &c), CRAFT_EFORMAT);
    CHECK(msg_has("csv ragged.csv: line 3: row has 2 fields, expected 3"));
    CHECK_ERR(CSV_PARSE("a,b\n\"multi\nline\",2\n1,2,3", "r2.csv", 0, &c), CRAFT_EFORMAT);
    CHECK(msg_has("r2.csv: line 4:"));
    /* bad quoting */
    CHECK_ERR(CSV_PARSE("a,b\n1,x\"y\"z\n", "q.csv", 1, &c), CRAFT_EFORMAT);
    CHECK(msg_has("q.csv: line 2"));
    CHECK_ERR(CSV_PARSE("a,b\n1,2\n\n\"open,3\n4\n", "open.csv", 1, &c), CRAFT_EFORMAT);
    CHECK(msg_has("open.csv: line 4: quoted field not closed"));
    /* empty input: no header is an error when one is expected, an empty table otherwise */
    CHECK_ERR(craft_csv_parse("", 0, "empty.csv", 1, &c), CRAFT_EFORMAT);
    CHECK(msg_has("empty.csv") && msg_has("header"));
    c = parse("\n\r\n", 0);
    CHECK(c && craft_csv_rows(c) == 0 && craft_csv_cols(c) == 0);
    craft_csv_free(c);
    c = parse("x;1\ny;2\n", 0); /* no header: no names */
    int col;
    CHECK(c && craft_csv_header(c, 0) == NULL && craft_csv_rows(c) == 2);
    CHECK_ERR(craft_csv_column_index(c, "x", &col), CRAFT_EINVAL);
    int64_t iv;
    CHECK_ERR(craft_csv_cell_int64(c, 1, 0, &iv), CRAFT_EFORMAT);
    CHECK(msg_has("t.csv: line 2, column 1: \"y;2\" is not an integer"));
    craft_csv_free(c);
    CHECK_ERR(craft_csv_read_file("/nonexistent/l.csv", 1, &c), CRAFT_EIO);
    CHECK(msg_has("cannot open /nonexistent/l.csv: No such file or directory"));

    /* writer round trip, including every character that needs quoting */
    char path[256];
    snprintf(path, sizeof path, "/tmp/craft_test_data_%d.csv", (int)getpid());
    craft_csv_writer *w = NULL;
    const char *h[3] = {"id", "text", "n"};
    const char *r1[3] = {"a,b", "say \"x\"\nnext", " pad"};
    const char *r2[3] = {"", NULL, "7"};
    const char *one[1] = {""};
    CHECK_OK(craft_csv_writer_open(path, &w));
    if (w) {
        CHECK_OK(craft_csv_writer_row(w, 3, h));
        CHECK_OK(craft_csv_writer_row(w, 3, r1));
        CHECK_OK(craft_csv_writer_row(w, 3, r2));
        CHECK_ERR(craft_csv_writer_row(w, 1, one), CRAFT_EINVAL);
        CHECK_OK(craft_csv_writer_close(w));
        CHECK_OK(craft_csv_read_file(path, 1, &c));
        if (c) {
            CHECK(craft_csv_rows(c) == 2);
            for (int j = 0; j < 3; j++) CHECK(!strcmp(craft_csv_cell(c, 0, j), r1[j]));
            CHECK(!strcmp(craft_csv_cell(c, 1, 0), "") && !strcmp(craft_csv_cell(c, 1, 1), "") &&
                  !strcmp(craft_csv_cell(c, 1, 2), "7"));
            CHECK(craft_csv_row_line(c, 1) == 4);
            craft_csv_free(c);
        }
    }
    CHECK_OK(craft_csv_writer_open(path, &w)); /* a lone empty field must not vanish */
    if (w) {
        CHECK_OK(craft_csv_writer_row(w, 1, one));
        CHECK_OK(craft_csv_writer_close(w));
        CHECK_OK(craft_csv_read_file(path, 0, &c));
        CHECK(c && craft_csv_rows(c) == 1 && !strcmp(craft_csv_cell(c, 0, 0), ""));
        craft_csv_free(c);
    }
    unlink(path);
}

/* ------------------------------------------------------------------ images */
static void test_images(void) {
    craft_npz *z = NULL;
    craft_array ref, im;
    CHECK_OK(craft_npz_open(FIX "images_ref.npz", &z));
    if (!z) return;
    CHECK_OK(craft_npz_read(z, "rgb", &ref));
    CHECK_OK(craft_image_read(FIX "rgb.png", 0, &im));
    CHECK(im.ndim == 3 && im.shape[0] == 4 && im.shape[1] == 5 && im.shape[2] == 3 &&
          im.nbytes == ref.nbytes);
    CHECK(im.data && ref.data && im.nbytes == 60 && !memcmp(im.data, ref.data, 60));
    craft_array_free(&im);
    CHECK_OK(craft_image_read(FIX "rgb.bmp", 0, &im));
    CHECK(im.shape[2] == 3 && im.data && ref.data && im.nbytes == 60 && !memcmp(im.data, ref.data, 60));
    craft_array_free(&im);
    CHECK_OK(craft_image_read(FIX "rgb.png", 4, &im)); /* alpha added: opaque */
    CHECK(im.shape[2] == 4 && im.data && u8_at(&im, 3) == 255 && u8_at(&im, 4) == u8_at(&ref, 3));
    craft_array_free(&im);
    craft_array_free(&ref);
    CHECK_OK(craft_npz_read(z, "rgb_as_grey", &ref));
    CHECK_OK(craft_image_read(FIX "rgb.png", 1, &im));
    CHECK(im.shape[2] == 1 && im.data && ref.data && im.nbytes == 20 && !memcmp(im.data, ref.data, 20));
    craft_array_free(&im);
    craft_array_free(&ref);
    CHECK_OK(craft_npz_read(z, "rgba", &ref));
    CHECK_OK(craft_image_read(FIX "rgba.png", 0, &im));
    CHECK(im.shape[0] == 3 && im.shape[1] == 2 && im.shape[2] == 4 && im.data && ref.data &&
          !memcmp(im.data, ref.data, 24));
    craft_array_free(&im);
    craft_array_free(&ref);
    CHECK_OK(craft_npz_read(z, "gray16", &ref)); /* u16 in the npz: widened to i32 */
    CHECK_OK(craft_image_read16(FIX "gray16.png", 0, &im));
    CHECK(im.dtype == CRAFT_I32 && im.shape[0] == 2 && im.shape[1] == 3 && im.shape[2] == 1);
    if (im.data && ref.data)
        for (int i = 0; i < 6; i++) CHECK(i32_at(&im, i) == i32_at(&ref, i));
    craft_array_free(&im);
    CHECK_OK(craft_image_read(FIX "gray16.png", 0, &im)); /* 8-bit view: high byte */
    if (im.data && ref.data)
        for (int i = 0; i < 6; i++) CHECK(u8_at(&im, i) == i32_at(&ref, i) >> 8);
    craft_array_free(&im);
    craft_array_free(&ref);
    craft_npz_close(z);

    /* PNG write round trip */
    char path[256];
    uint8_t px[2 * 3 * 2] = {0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    snprintf(path, sizeof path, "/tmp/craft_test_data_%d.png", (int)getpid());
    CHECK_OK(craft_image_write_png(path, 2, 3, 2, px));
    CHECK_OK(craft_image_read(path, 0, &im));
    CHECK(im.shape[0] == 2 && im.shape[1] == 3 && im.shape[2] == 2 && im.data && !memcmp(im.data, px, 12));
    craft_array_free(&im);
    unlink(path);
    CHECK_ERR(craft_image_write_png("/nonexistent/dir/x.png", 2, 3, 2, px), CRAFT_EIO);
    CHECK(msg_has("/nonexistent/dir/x.png"));
    CHECK_ERR(craft_image_write_png(path, 2, 3, 5, px), CRAFT_EINVAL);

    /* bad input */
    CHECK_ERR(craft_image_read("/nonexistent/a.png", 0, &im), CRAFT_EIO);
    CHECK(msg_has("cannot open /nonexistent/a.png: No such file or directory"));
    CHECK_ERR(craft_image_read(FIX "small.npy", 0, &im), CRAFT_EFORMAT);
    CHECK(msg_has("image " FIX "small.npy: cannot decode: "));
    CHECK_ERR(craft_image_decode("GIF89a\001\000\001\000", 10, "x.gif", 0, &im), CRAFT_EFORMAT);
    CHECK(msg_has("image x.gif: cannot decode: not a PNG, JPEG or BMP"));
    /* a fuzzer-found progressive JPEG whose AC scan names a Huffman table that was never
     * defined: stb 2.27 would decode it from uninitialised memory */
    CHECK_ERR(craft_image_read("tests/fuzz/corpus/image/regress-jpeg-undefined-huffman.jpg", 0, &im),
              CRAFT_EFORMAT);
    CHECK(msg_has(
        "regress-jpeg-undefined-huffman.jpg: cannot decode: corrupt JPEG (scan uses an undefined AC Huffman table)"));
    uint8_t *buf;
    size_t len;
    if (read_file_bytes(FIX "rgb.png", &buf, &len)) {
        CHECK_ERR(craft_image_decode(buf, len / 2, "half.png", 0, &im), CRAFT_EFORMAT);
        CHECK(msg_has("image half.png: cannot decode"));
        CHECK_ERR(craft_image_decode(buf, len, "x.png", 7, &im), CRAFT_EINVAL);
        /* a header claiming 65535 x 65535: refused before decoding */
        buf[16] = buf[17] = buf[20] = buf[21] = 0;
        buf[18] = buf[19] = buf[22] = buf[23] = 0xff;
        int rc = craft_image_decode(buf, len, "huge.png", 0, &im);
        CHECK(rc == CRAFT_EUNSUPPORTED || rc == CRAFT_EFORMAT);
        CHECK(msg_has("huge.png"));
        free(buf);
    } else CHECK(0);
}

/* ------------------------------------------------------------------ image processing */
static void test_resize(void) {
    float src[4 * 4], dst[64];
    for (int i = 0; i < 16; i++) src[i] = 0.625f;
    CHECK_OK(craft_resize_area(src, 1, 4, 4, dst, 3, 3)); /* constant stays constant */
    for (int i = 0; i < 9; i++) CHECK_NEAR(dst[i], 0.625, 1e-7);
    CHECK_OK(craft_resize_area(src, 1, 4, 4, dst, 7, 5));
    for (int i = 0; i < 35; i++) CHECK_NEAR(dst[i], 0.625, 1e-7);
    for (int i = 0; i < 16; i++) src[i] = (float)i; /* 2x down: means of 2x2 boxes */
    CHECK_OK(craft_resize_area(src, 1, 4, 4, dst, 2, 2));
    CHECK(dst[0] == 2.5f && dst[1] == 4.5f && dst[2] == 10.5f && dst[3] == 12.5f);
    /* 3 -> 2 by hand: out0 = (x0 + x1 / 2) / 1.5, out1 = (x1 / 2 + x2) / 1.5 */
    float row[3] = {3, 6, 12};
    CHECK_OK(craft_resize_area(row, 1, 1, 3, dst, 1, 2));
    CHECK_NEAR(dst[0], 4.0, 1e-6);
    CHECK_NEAR(dst[1], 10.0, 1e-6);
    CHECK_OK(craft_resize_bilinear(src, 1, 4, 4, dst, 4, 4)); /* same size: identity */
    for (int i = 0; i < 16; i++) CHECK(dst[i] == src[i]);
    CHECK_OK(craft_resize_bilinear(row, 1, 1, 3, dst, 1, 6)); /* by hand: 2x up of 3, 6, 12 */
    static const float up[6] = {3, 3.75f, 5.25f, 7.5f, 10.5f, 12};
    for (int i = 0; i < 6; i++) CHECK_NEAR(dst[i], up[i], 1e-6);
    CHECK_ERR(craft_resize_area(src, 1, 4, 4, dst, 0, 2), CRAFT_EINVAL);
    CHECK_ERR(craft_resize_bilinear(NULL, 1, 4, 4, dst, 2, 2), CRAFT_EINVAL);

    /* against PyTorch (bilinear, and area at integer factors) and a float64 numpy reference of
     * the exact fractional-coverage average */
    craft_npz *z = NULL;
    CHECK_OK(craft_npz_open(FIX "resize_ref.npz", &z));
    if (!z) return;
    craft_array s, r;
    CHECK_OK(craft_npz_read(z, "src", &s));
    static const struct {
        const char *key;
        int oh, ow, area;
    } cases[] = {
        {"bilinear_9x11", 9, 11, 0}, {"bilinear_3x4", 3, 4, 0}, {"bilinear_4x13", 4, 13, 0},
        {"bilinear_5x7", 5, 7, 0},   {"area_3x4", 3, 4, 1},     {"area_8x10", 8, 10, 1},
    };
    float out[2 * 9 * 13];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0] && s.data; k++) {
        CHECK_OK(craft_npz_read(z, cases[k].key, &r));
        int n = 2 * cases[k].oh * cases[k].ow;
        CHECK(r.numel == n);
        int rc = cases[k].area ? craft_resize_area(s.data, 2, 5, 7, out, cases[k].oh, cases[k].ow)
                               : craft_resize_bilinear(s.data, 2, 5, 7, out, cases[k].oh, cases[k].ow);
        CHECK(rc == CRAFT_OK);
        double worst = 0;
        for (int i = 0; i < n && r.data && r.numel == n; i++)
            worst = fmax(worst, fabs(out[i] - f32_at(&r, i)));
        CHECK_MSG(worst < 1e-6, "%s: max diff %g", cases[k].key, worst);
        craft_array_free(&r);
    }
    craft_array_free(&s);
    CHECK_OK(craft_npz_read(z, "src_int", &s));
    CHECK_OK(craft_npz_read(z, "area_torch_3x3", &r));
    if (s.data && r.data) {
        CHECK_OK(craft_resize_area(s.data, 2, 6, 9, out, 3, 3));
        for (int i = 0; i < 18; i++) CHECK_NEAR(out[i], f32_at(&r, i), 1e-6);
    }
    craft_array_free(&s);
    craft_array_free(&r);
    craft_npz_close(z);
}

static void test_transforms(void) {
    float src[2 * 3 * 4], dst[24], back[24];
    for (int i = 0; i < 24; i++) src[i] = (float)i;
    /* crop 3x4 -> 1x2: torchvision offsets top round(2 / 2) = 1, left round(2 / 2) = 1 */
    CHECK_OK(craft_center_crop(src, 2, 3, 4, dst, 1, 2));
    CHECK(dst[0] == 5 && dst[1] == 6 && dst[2] == 17 && dst[3] == 18);
    CHECK_OK(craft_center_crop(src, 1, 3, 4, dst, 2, 1)); /* top round(0.5) = 0, left round(1.5) = 2 */
    CHECK(dst[0] == 2 && dst[1] == 6);
    CHECK_ERR(craft_center_crop(src, 1, 3, 4, dst, 4, 1), CRAFT_ESHAPE);
    CHECK_OK(craft_flip_horizontal(src, 2, 3, 4, dst));
    CHECK(dst[0] == 3 && dst[3] == 0 && dst[4] == 7 && dst[23] == 20);
    CHECK_OK(craft_flip_horizontal(dst, 2, 3, 4, dst)); /* in place, back again */
    CHECK(!memcmp(dst, src, sizeof src));
    CHECK_OK(craft_flip_vertical(src, 2, 3, 4, dst));
    CHECK(dst[0] == 8 && dst[8] == 0 && dst[4] == 4 && dst[12] == 20);
    CHECK_OK(craft_flip_vertical(dst, 2, 3, 4, dst));
    CHECK(!memcmp(dst, src, sizeof src));

    /* u8 HWC -> f32 CHW with ImageNet-style statistics: (x / 255 - m) / s in float32 */
    uint8_t hwc[2 * 2 * 3] = {0, 128, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90};
    float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    CHECK_OK(craft_u8_hwc_to_f32_chw(hwc, 2, 2, 3, mean, sd, dst));
    CHECK(dst[0] == (0.0f / 255.0f - 0.485f) / 0.229f);
    CHECK(dst[4] == (128.0f / 255.0f - 0.456f) / 0.224f);
    CHECK(dst[8 + 3] == (90.0f / 255.0f - 0.406f) / 0.225f);
    CHECK_NEAR(dst[8], (1.0 - 0.406) / 0.225, 1e-6);
    float zero_sd[3] = {1, 0, 1};
    CHECK_ERR(craft_u8_hwc_to_f32_chw(hwc, 2, 2, 3, mean, zero_sd, dst), CRAFT_EINVAL);
    /* back to u8: exact for the plain [0, 1] conversion */
    uint8_t again[12];
    CHECK_OK(craft_u8_hwc_to_f32_chw(hwc, 2, 2, 3, NULL, NULL, back));
    CHECK_OK(craft_f32_chw_to_u8_hwc(back, 3, 2, 2, 0.0f, 1.0f, again));
    CHECK(!memcmp(again, hwc, 12));
    float odd[4] = {-3.0f, 2.0f, NAN, 0.0f}; /* [-1, 1] range: -3 clamps, 2 clamps, NaN -> 0, 0 -> 128 */
    CHECK_OK(craft_f32_chw_to_u8_hwc(odd, 1, 2, 2, -1.0f, 1.0f, again));
    CHECK(again[0] == 0 && again[1] == 255 && again[2] == 0 && again[3] == 128);
    CHECK_ERR(craft_f32_chw_to_u8_hwc(odd, 1, 2, 2, 1.0f, 1.0f, again), CRAFT_EINVAL);
}

int main(void) {
    RUN(test_csv);
    RUN(test_images);
    RUN(test_resize);
    RUN(test_transforms);
    return CHECK_SUMMARY();
}
