/* test_data.c: the array loaders (npy, npz: reading, hostile headers, writing) and the real
 * data sets (npz splits, the HAM10000 CSV and JPEGs). CSV, image files and the image transforms
 * are tested in test_data_formats.c.
 *
 * Fixtures in tests/fixtures/data/ come from tests/fixtures/make_data_fixtures.py (numpy, PIL,
 * PyTorch). The real data sets are read from $CRAFT_SHARED_DATA or ../shared/data; their
 * counts are those of each folder's SOURCE.md / README.md, and the pixel sums were computed
 * once with numpy 1.24 (np.load(f)[key].astype(np.uint64).sum(), and per image) and PIL 9.4
 * (np.array(Image.open(jpg)).mean over pixels), independently of this code. */
#include "check.h"
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/data/"

static int msg_has(const char *needle) {
    if (strstr(craft_last_error(), needle)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", craft_last_error(), needle);
    return 0;
}

static const char *shared_dir(void) {
    const char *e = getenv("CRAFT_SHARED_DATA");
    return e && *e ? e : "../shared/data";
}

static int have_shared(void) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/README.md", shared_dir());
    return stat(p, &st) == 0;
}

static const char *shared(const char *rel) {
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, 1024, "%s/%s", shared_dir(), rel);
    return b;
}

static float f32_at(const craft_array *a, int64_t i) { return ((const float *)a->data)[i]; }
static double f64_at(const craft_array *a, int64_t i) { return ((const double *)a->data)[i]; }
static int64_t i64_at(const craft_array *a, int64_t i) { return ((const int64_t *)a->data)[i]; }
static int32_t i32_at(const craft_array *a, int64_t i) { return ((const int32_t *)a->data)[i]; }
static uint8_t u8_at(const craft_array *a, int64_t i) { return ((const uint8_t *)a->data)[i]; }

static uint64_t u8_sum(const craft_array *a, int64_t from, int64_t n) {
    uint64_t s = 0;
    for (int64_t i = from; i < from + n; i++) s += u8_at(a, i);
    return s;
}

/* ------------------------------------------------------------------ npy */
static void test_npy_files(void) {
    craft_array a;
    CHECK_OK(craft_npy_read_file(FIX "small.npy", &a));
    CHECK(a.dtype == CRAFT_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.numel == 6);
    CHECK(a.nbytes == 24 && a.itemsize == 4);
    if (a.data) {
        CHECK(f32_at(&a, 1) == -2.5f && f32_at(&a, 2) == 3.25f && f32_at(&a, 4) == 1e-3f &&
              f32_at(&a, 5) == 7.0f);
    }
    craft_array_free(&a);
    CHECK(a.data == NULL && a.nbytes == 0);
    craft_array_free(&a); /* twice is harmless */

    CHECK_OK(craft_npy_read_file(FIX "be_f8.npy", &a)); /* '>f8': swapped to native */
    CHECK(a.dtype == CRAFT_F64 && a.numel == 4);
    if (a.data)
        CHECK(f64_at(&a, 0) == 0.5 && f64_at(&a, 1) == -1.0 && f64_at(&a, 2) == 2.0 &&
              f64_at(&a, 3) == 1e300);
    craft_array_free(&a);

    CHECK_OK(craft_npy_read_file(FIX "fortran_i32.npy", &a)); /* column-major on disk */
    CHECK(a.dtype == CRAFT_I32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
    if (a.data)
        for (int i = 0; i < 6; i++) CHECK(i32_at(&a, i) == i);
    craft_array_free(&a);
}

/* A version-1 npy in memory with the given header text (padded as numpy pads). */
static size_t make_npy(uint8_t *buf, const char *header, const void *data, size_t dlen) {
    size_t hl = strlen(header), total = (10 + hl + 1 + 63) / 64 * 64, hlen = total - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hlen & 255);
    buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, header, hl);
    memset(buf + 10 + hl, ' ', hlen - hl - 1);
    buf[total - 1] = '\n';
    if (dlen) memcpy(buf + total, data, dlen);
    return total + dlen;
}

static void test_npy_hostile(void) {
    uint8_t buf[4096];
    float d[6] = {1, 2, 3, 4, 5, 6};
    craft_array a;
    size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", d, sizeof d);
    CHECK_OK(craft_npy_parse(buf, n, "ok", &a));
    CHECK(a.numel == 6 && a.data && f32_at(&a, 5) == 6.0f);
    craft_array_free(&a);
    /* truncated data, truncated header, truncated magic */
    CHECK_ERR(craft_npy_parse(buf, n - 1, "cut.npy", &a), CRAFT_EFORMAT);
    CHECK(msg_has("cut.npy") && msg_has("2x3") && msg_has("(24 bytes)") && msg_has("23 bytes"));
    CHECK_ERR(craft_npy_parse(buf, 40, "cut2.npy", &a), CRAFT_EFORMAT);
    CHECK(msg_has("cut2.npy") && msg_has("truncated"));
    CHECK_ERR(craft_npy_parse(buf, 5, "cut3.npy", &a), CRAFT_EFORMAT);
    CHECK(msg_has("cut3.npy"));
    CHECK_ERR(craft_npy_parse("hello world, no magic", 21, "txt", &a), CRAFT_EFORMAT);
    CHECK(msg_has("not a .npy"));
    /* trailing bytes are refused too: the header must account for every byte */
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", d, sizeof d);
    CHECK_ERR(craft_npy_parse(buf, n, "long.npy", &a), CRAFT_EFORMAT);

    static const struct {
        const char *hdr;
        int code;
        const char *msg;
    } bad[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", CRAFT_EUNSUPPORTED,
         "more than 8"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", CRAFT_EFORMAT, "negative"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", CRAFT_EFORMAT,
         "too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", CRAFT_EFORMAT,
         "too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3037000500, 3037000500, 3), }", CRAFT_EFORMAT,
         "too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000), }", CRAFT_EFORMAT,
         "header claims"},
        {"{'descr': '<q7', 'fortran_order': False, 'shape': (2,), }", CRAFT_EFORMAT, "not understood"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", CRAFT_EUNSUPPORTED, "not supported"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", CRAFT_EUNSUPPORTED, "not supported"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", CRAFT_EUNSUPPORTED,
         "structured"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", CRAFT_EFORMAT, "malformed"},
        {"{'descr': '<f4', 'shape': (2,), }", CRAFT_EFORMAT, "fortran_order"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", CRAFT_EFORMAT, "twice"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", CRAFT_EFORMAT, "extra"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", CRAFT_EFORMAT, "malformed"},
        {"['descr']", CRAFT_EFORMAT, "malformed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = make_npy(buf, bad[i].hdr, d, 8);
        int rc = craft_npy_parse(buf, n, "hostile.npy", &a);
        CHECK_MSG(rc == bad[i].code, "case %zu: rc %d, expected %d (%s)", i, rc, bad[i].code,
                  craft_last_error());
        CHECK_MSG(strstr(craft_last_error(), bad[i].msg) && strstr(craft_last_error(), "hostile.npy"),
                  "case %zu: message \"%s\" lacks \"%s\"", i, craft_last_error(), bad[i].msg);
    }
    /* a 0-d array and a zero-size one */
    double v = 2.5;
    n = make_npy(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", &v, 8);
    CHECK_OK(craft_npy_parse(buf, n, "scalar", &a));
    CHECK(a.ndim == 0 && a.numel == 1 && a.data && f64_at(&a, 0) == 2.5);
    craft_array_free(&a);
    n = make_npy(buf, "{'descr': '<f8', 'fortran_order': True, 'shape': (0, 4611686018427387904), }", NULL,
                 0);
    CHECK_OK(craft_npy_parse(buf, n, "empty", &a));
    CHECK(a.numel == 0 && a.nbytes == 0 && a.data == NULL);
    craft_array_free(&a);
    /* versions 2 and 3 (4-byte header length) */
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", d, sizeof d);
    uint8_t v2[4096];
    memcpy(v2, buf, 8);
    v2[6] = 3;
    uint32_t hl = (uint32_t)(buf[8] | buf[9] << 8);
    v2[8] = (uint8_t)hl;
    v2[9] = (uint8_t)(hl >> 8);
    v2[10] = 0;
    v2[11] = 0;
    memcpy(v2 + 12, buf + 10, n - 10);
    CHECK_OK(craft_npy_parse(v2, n + 2, "v3", &a));
    CHECK(a.numel == 6 && a.data && f32_at(&a, 3) == 4.0f);
    craft_array_free(&a);
    v2[6] = 9;
    CHECK_ERR(craft_npy_parse(v2, n + 2, "v9", &a), CRAFT_EUNSUPPORTED);
    CHECK(msg_has("version 9.0"));
    /* missing file */
    CHECK_ERR(craft_npy_read_file("/nonexistent/dir/x.npy", &a), CRAFT_EIO);
    CHECK(msg_has("cannot open /nonexistent/dir/x.npy: No such file or directory"));
}

/* ------------------------------------------------------------------ npz */
static void check_fixture_npz(const char *path) {
    craft_npz *z = NULL;
    craft_array a;
    char s[64];
    CHECK_OK(craft_npz_open(path, &z));
    if (!z) return;
    CHECK(craft_npz_count(z) == 14);
    CHECK(craft_npz_name(z, 0) && !strcmp(craft_npz_name(z, 0), "f32"));
    CHECK(craft_npz_name(z, 14) == NULL && craft_npz_name(z, -1) == NULL);
    CHECK(craft_npz_find(z, "u8") == 2 && craft_npz_find(z, "u8.npy") == 2 &&
          craft_npz_find(z, "nope") == -1);

    CHECK_OK(craft_npz_info(z, "f32", &a));
    CHECK(a.dtype == CRAFT_F32 && a.ndim == 2 && a.shape[1] == 3 && a.nbytes == 24 && a.data == NULL);
    CHECK_OK(craft_npz_read(z, "f32", &a));
    if (a.data)
        for (int i = 0; i < 6; i++) CHECK(f32_at(&a, i) == i * 0.5f - 1);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "i64", &a));
    CHECK(a.dtype == CRAFT_I64 && a.numel == 4);
    if (a.data) CHECK(i64_at(&a, 0) == -3 && i64_at(&a, 3) == ((int64_t)1 << 40));
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "u8", &a));
    CHECK(a.dtype == CRAFT_U8 && a.ndim == 3 && a.shape[2] == 3);
    if (a.data) CHECK(u8_at(&a, 11) == 11 && u8_sum(&a, 0, 12) == 66);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "flag", &a));
    CHECK(a.dtype == CRAFT_BOOL && a.data && u8_at(&a, 0) == 1 && u8_at(&a, 1) == 0 && u8_at(&a, 2) == 1);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "fort", &a)); /* Fortran order, transposed to C */
    CHECK(a.dtype == CRAFT_F64 && a.ndim == 3 && a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4);
    if (a.data)
        for (int i = 0; i < 24; i++) CHECK(f64_at(&a, i) == i * 1.25);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "be", &a));
    CHECK(a.dtype == CRAFT_I32 && a.data && i32_at(&a, 0) == 1 && i32_at(&a, 1) == -2 &&
          i32_at(&a, 2) == 300000);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "u16", &a)); /* widened to i32 */
    CHECK(a.dtype == CRAFT_I32 && a.data && i32_at(&a, 1) == 65535 && i32_at(&a, 2) == 1234);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "i16", &a));
    CHECK(a.dtype == CRAFT_I32 && a.data && i32_at(&a, 0) == -32768 && i32_at(&a, 1) == 5);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "u32", &a)); /* widened to i64 */
    CHECK(a.dtype == CRAFT_I64 && a.data && i64_at(&a, 0) == 4000000000LL);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "f16", &a)); /* IEEE half bits: 1.5 = 0x3E00, -2 = 0xC000 */
    CHECK(a.dtype == CRAFT_F16 && a.data && ((uint16_t *)a.data)[0] == 0x3E00 &&
          ((uint16_t *)a.data)[1] == 0xC000);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "ids", &a));
    CHECK(a.dtype == CRAFT_ARRAY_UNICODE && a.itemsize == 20 && a.numel == 3);
    CHECK_OK(craft_array_string(&a, 0, s, sizeof s));
    CHECK(!strcmp(s, "ISIC"));
    CHECK_OK(craft_array_string(&a, 1, s, sizeof s));
    CHECK(!strcmp(s, "\xc3\xb1\xc3\xa9")); /* "ñé" in UTF-8 */
    CHECK_ERR(craft_array_string(&a, 0, s, 4), CRAFT_EINVAL);
    CHECK_ERR(craft_array_string(&a, 3, s, sizeof s), CRAFT_EINVAL);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "names", &a));
    CHECK(a.dtype == CRAFT_ARRAY_BYTES && a.itemsize == 3);
    CHECK_OK(craft_array_string(&a, 0, s, sizeof s));
    CHECK(!strcmp(s, "ab"));
    CHECK_OK(craft_array_string(&a, 1, s, sizeof s));
    CHECK(!strcmp(s, "cde"));
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "empty", &a));
    CHECK(a.ndim == 2 && a.shape[0] == 0 && a.shape[1] == 3 && a.numel == 0 && a.data == NULL);
    craft_array_free(&a);
    CHECK_OK(craft_npz_read(z, "scalar", &a));
    CHECK(a.ndim == 0 && a.numel == 1 && a.data && f64_at(&a, 0) == 3.5);
    craft_array_free(&a);
    CHECK_ERR(craft_npz_read(z, "train_images", &a), CRAFT_EINVAL);
    CHECK(msg_has(path) && msg_has("no member 'train_images'") && msg_has("f32, i64"));
    craft_npz_close(z);
}

static void test_npz_fixtures(void) {
    check_fixture_npz(FIX "stored.npz");  /* np.savez: stored members (zip64 local headers) */
    check_fixture_npz(FIX "deflate.npz"); /* np.savez_compressed: deflate */
}

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

static void test_npz_errors(void) {
    craft_npz *z = NULL;
    craft_array a;
    CHECK_ERR(craft_npz_open("/nonexistent/x.npz", &z), CRAFT_EIO);
    CHECK(msg_has("cannot open /nonexistent/x.npz: No such file or directory"));
    CHECK_ERR(craft_npz_open(FIX "small.npy", &z), CRAFT_EFORMAT); /* not a zip */
    CHECK(msg_has("npz " FIX "small.npy") && msg_has("zip"));
    CHECK_ERR(craft_npz_open_buffer("PK\003\004garbage garbage garbage", 27, "junk.npz", &z), CRAFT_EFORMAT);
    CHECK(msg_has("junk.npz"));

    /* the stored fixture with one byte of the f32 member's data flipped: the CRC catches it */
    uint8_t *buf;
    size_t len;
    if (!read_file_bytes(FIX "stored.npz", &buf, &len)) {
        CHECK(0);
        return;
    }
    const uint8_t needle[4] = {0, 0, 0x80, 0xbf}; /* -1.0f, the f32 member's first value */
    uint8_t *hit = NULL;
    for (size_t i = 0; i + 4 <= len && !hit; i++)
        if (!memcmp(buf + i, needle, 4)) hit = buf + i;
    CHECK(hit != NULL);
    if (hit) {
        hit[3] ^= 0x40;
        CHECK_OK(craft_npz_open_buffer(buf, len, "crc.npz", &z));
        if (z) {
            CHECK_ERR(craft_npz_read(z, "f32", &a), CRAFT_EFORMAT);
            CHECK(msg_has("crc.npz: member f32") && msg_has("CRC"));
            CHECK_OK(craft_npz_read(z, "i64", &a)); /* the other members are intact */
            craft_array_free(&a);
            craft_npz_close(z);
        }
        hit[3] ^= 0x40;
    }
    /* truncated archive: the central directory is gone */
    CHECK_ERR(craft_npz_open_buffer(buf, len / 2, "half.npz", &z), CRAFT_EFORMAT);
    CHECK(msg_has("half.npz"));
    free(buf);
}

static void test_npz_write(void) {
    char path[256];
    float fv[6] = {1, 2, 3, 4, 5, 6};
    uint8_t lab[4] = {0, 1, 1, 0};
    craft_array x = {
        .dtype = CRAFT_F32, .ndim = 2, .shape = {2, 3}, .numel = 6, .itemsize = 4, .data = fv, .nbytes = 24};
    craft_array y = {
        .dtype = CRAFT_U8, .ndim = 2, .shape = {4, 1}, .numel = 4, .itemsize = 1, .data = lab, .nbytes = 4};
    for (int compress = 0; compress < 2; compress++) {
        snprintf(path, sizeof path, "/tmp/craft_test_data_%d_%d.npz", (int)getpid(), compress);
        craft_npz_writer *w = NULL;
        CHECK_OK(craft_npz_writer_open(path, compress, &w));
        if (!w) continue;
        CHECK_OK(craft_npz_writer_add(w, "train_images", &x));
        CHECK_OK(craft_npz_writer_add(w, "train_labels", &y));
        CHECK_ERR(craft_npz_writer_add(w, "train_labels", &y), CRAFT_EINVAL);
        craft_array bad = x;
        bad.dtype = CRAFT_BF16;
        CHECK_ERR(craft_npz_writer_add(w, "bf", &bad), CRAFT_ETYPE);
        CHECK_OK(craft_npz_writer_close(w));
        craft_npz *z = NULL;
        craft_array a;
        CHECK_OK(craft_npz_open(path, &z));
        if (!z) continue;
        CHECK(craft_npz_count(z) == 2);
        CHECK_OK(craft_npz_read(z, "train_images", &a));
        CHECK(a.dtype == CRAFT_F32 && a.ndim == 2 && a.shape[0] == 2 && a.data && !memcmp(a.data, fv, 24));
        craft_array_free(&a);
        CHECK_OK(craft_npz_read(z, "train_labels", &a));
        CHECK(a.dtype == CRAFT_U8 && a.shape[0] == 4 && a.shape[1] == 1 && a.data && !memcmp(a.data, lab, 4));
        craft_array_free(&a);
        craft_npz_close(z);
        unlink(path);
    }
    snprintf(path, sizeof path, "/tmp/craft_test_data_%d.npy", (int)getpid());
    CHECK_OK(craft_npy_write_file(path, &y));
    craft_array a;
    CHECK_OK(craft_npy_read_file(path, &a));
    CHECK(a.dtype == CRAFT_U8 && a.ndim == 2 && a.shape[1] == 1 && a.data && !memcmp(a.data, lab, 4));
    craft_array_free(&a);
    craft_array sc = {.dtype = CRAFT_F32, .ndim = 0, .numel = 1, .itemsize = 4, .data = fv + 2, .nbytes = 4};
    CHECK_OK(craft_npy_write_file(path, &sc)); /* 0-d: shape () */
    CHECK_OK(craft_npy_read_file(path, &a));
    CHECK(a.ndim == 0 && a.numel == 1 && a.data && f32_at(&a, 0) == 3.0f);
    craft_array_free(&a);
    CHECK_ERR(craft_npy_write_file("/nonexistent/dir/x.npy", &sc), CRAFT_EIO);
    CHECK(msg_has("/nonexistent/dir/x.npy"));
    unlink(path);
}

/* ------------------------------------------------------------------ real data sets */
static void check_split(craft_npz *z, const char *split, int64_t n, const int64_t *per_class, int ncls,
                        int64_t hwc, uint64_t pixel_sum, uint64_t first_sum, uint64_t last_sum) {
    char key[64];
    craft_array im, lab;
    snprintf(key, sizeof key, "%s_images", split);
    CHECK_OK(craft_npz_read(z, key, &im));
    snprintf(key, sizeof key, "%s_labels", split);
    CHECK_OK(craft_npz_read(z, key, &lab));
    CHECK_MSG(im.shape[0] == n && im.numel == n * hwc && im.dtype == CRAFT_U8, "%s: %lld images", split,
              (long long)im.shape[0]);
    CHECK(lab.ndim == 2 && lab.shape[0] == n && lab.shape[1] == 1 && lab.dtype == CRAFT_U8);
    if (im.data && lab.data && im.numel == n * hwc && lab.numel == n) {
        int64_t cnt[8] = {0};
        for (int64_t i = 0; i < n; i++)
            if (u8_at(&lab, i) < 8) cnt[u8_at(&lab, i)]++;
        for (int c = 0; c < ncls; c++)
            CHECK_MSG(cnt[c] == per_class[c], "%s class %d: %lld, expected %lld", split, c, (long long)cnt[c],
                      (long long)per_class[c]);
        CHECK(u8_sum(&im, 0, im.numel) == pixel_sum);
        CHECK(u8_sum(&im, 0, hwc) == first_sum);
        CHECK(u8_sum(&im, (n - 1) * hwc, hwc) == last_sum);
    }
    craft_array_free(&im);
    craft_array_free(&lab);
}

static void test_shared_npz(void) {
    if (!have_shared()) {
        printf("skip test_shared_npz: no shared data at %s\n", shared_dir());
        return;
    }
    craft_npz *z = NULL;
    /* pneumoniamnist: 4708 / 524 / 624; classes from SOURCE.md (normal / pneumonia) */
    CHECK_OK(craft_npz_open(shared("pneumoniamnist/pneumoniamnist.npz"), &z));
    if (z) {
        CHECK(craft_npz_count(z) == 6);
        check_split(z, "train", 4708, (int64_t[]){1214, 3494}, 2, 784, 538305934, 80212, 114309);
        check_split(z, "val", 524, (int64_t[]){135, 389}, 2, 784, 59624090, 100369, 120380);
        check_split(z, "test", 624, (int64_t[]){234, 390}, 2, 784, 70355184, 105737, 118026);
        craft_npz_close(z);
    }
    /* retinamnist: DR grades 0-4 */
    CHECK_OK(craft_npz_open(shared("retinamnist/retinamnist.npz"), &z));
    if (z) {
        check_split(z, "train", 1080, (int64_t[]){486, 128, 206, 194, 66}, 5, 2352, 172486755, 120376,
                    141667);
        check_split(z, "val", 120, (int64_t[]){54, 12, 28, 20, 6}, 5, 2352, 18819325, 52332, 127097);
        check_split(z, "test", 400, (int64_t[]){174, 46, 92, 68, 20}, 5, 2352, 61494456, 281795, 117446);
        craft_npz_close(z);
    }
    /* ham10000 28x28 npz: nv (0) / mel (1), plus ISIC ids as '<U12' */
    CHECK_OK(craft_npz_open(shared("ham10000-mel-nv/ham10000_mel_nv_28.npz"), &z));
    if (z) {
        CHECK(craft_npz_count(z) == 9);
        check_split(z, "train", 1543, (int64_t[]){758, 785}, 2, 2352, 560452198, 363446, 473144);
        check_split(z, "val", 252, (int64_t[]){139, 113}, 2, 2352, 92081691, 473056, 323165);
        check_split(z, "test", 431, (int64_t[]){216, 215}, 2, 2352, 156168540, 359004, 366784);
        craft_array ids;
        char s[32];
        CHECK_OK(craft_npz_read(z, "train_ids", &ids));
        CHECK(ids.dtype == CRAFT_ARRAY_UNICODE && ids.numel == 1543 && ids.itemsize == 48);
        CHECK_OK(craft_array_string(&ids, 1, s, sizeof s));
        CHECK(!strcmp(s, "ISIC_0024323"));
        craft_array_free(&ids);
        craft_npz_close(z);
    }
}

static void test_shared_csv_images(void) {
    if (!have_shared()) {
        printf("skip test_shared_csv_images: no shared data at %s\n", shared_dir());
        return;
    }
    craft_csv *c = NULL;
    CHECK_OK(craft_csv_read_file(shared("ham10000-mel-nv/labels.csv"), 1, &c));
    if (!c) return;
    CHECK(craft_csv_rows(c) == 2226 && craft_csv_cols(c) == 10);
    int split = -1, label = -1, file = -1, age = -1;
    CHECK_OK(craft_csv_column_index(c, "split", &split));
    CHECK_OK(craft_csv_column_index(c, "label", &label));
    CHECK_OK(craft_csv_column_index(c, "file", &file));
    CHECK_OK(craft_csv_column_index(c, "age", &age));
    CHECK_ERR(craft_csv_column_index(c, "diagnosis", &split), CRAFT_EINVAL);
    CHECK(msg_has("labels.csv") && msg_has("image_id, lesion_id"));
    /* SOURCE.md: train 785 mel / 758 nv, val 113 / 139, test 215 / 216 */
    static const char *splits[3] = {"train", "val", "test"};
    static const int expect[3][2] = {{758, 785}, {139, 113}, {216, 215}};
    int cnt[3][2] = {{0}};
    for (int r = 0; r < craft_csv_rows(c); r++) {
        int64_t l = -1;
        if (craft_csv_cell_int64(c, r, label, &l) != CRAFT_OK || l < 0 || l > 1) {
            CHECK(0);
            break;
        }
        for (int s = 0; s < 3; s++)
            if (!strcmp(craft_csv_cell(c, r, split), splits[s])) cnt[s][l]++;
    }
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < 2; l++)
            CHECK_MSG(cnt[s][l] == expect[s][l], "%s/%d: %d", splits[s], l, cnt[s][l]);
    CHECK(!strcmp(craft_csv_cell(c, 0, 0), "ISIC_0024310") && craft_csv_row_line(c, 0) == 2);
    CHECK(!strcmp(craft_csv_cell(c, 3, 7), "lower extremity"));
    CHECK(craft_csv_row_line(c, 2225) == 2227);
    double agev = 0;
    int64_t agei = 0;
    CHECK_OK(craft_csv_cell_double(c, 0, age, &agev));
    CHECK(agev == 60.0);
    CHECK_OK(craft_csv_cell_int64(c, 0, age, &agei)); /* "60.0" is integral */
    CHECK(agei == 60);
    CHECK_ERR(craft_csv_cell_double(c, 0, split, &agev), CRAFT_EFORMAT);
    CHECK(msg_has("labels.csv: line 2, column split: \"train\" is not a number"));

    /* the JPEGs: size from SOURCE.md, channel means against PIL (libjpeg; stb_image's IDCT
     * and chroma upsampling differ slightly, hence the tolerance) */
    static const struct {
        const char *file;
        double mean[3];
    } jp[] = {
        {"ham10000-mel-nv/jpeg_200x150/mel/ISIC_0024310.jpg",
         {201.08896666666666, 133.7214, 131.01566666666668}},
        {"ham10000-mel-nv/jpeg_200x150/nv/ISIC_0034302.jpg",
         {238.75293333333335, 196.33193333333332, 191.84906666666666}},
    };
    for (int k = 0; k < 2; k++) {
        craft_array im;
        CHECK_OK(craft_image_read(shared(jp[k].file), 0, &im));
        CHECK(im.ndim == 3 && im.shape[0] == 150 && im.shape[1] == 200 && im.shape[2] == 3 &&
              im.dtype == CRAFT_U8);
        if (im.data && im.numel == 90000)
            for (int ch = 0; ch < 3; ch++) {
                double s = 0;
                for (int64_t i = ch; i < im.numel; i += 3) s += u8_at(&im, i);
                CHECK_NEAR(s / 30000, jp[k].mean[ch], 1.0);
            }
        craft_array_free(&im);
    }
    craft_csv_free(c);

    /* The npz's first training image is ISIC_0024310: centre crop 150x150, then Lanczos to
     * 28x28. Our crop + area resize of the same JPEG must land close to it (1.7 levels on
     * average when this was written). */
    craft_array im, ref;
    craft_npz *z = NULL;
    CHECK_OK(craft_image_read(shared(jp[0].file), 3, &im));
    CHECK_OK(craft_npz_open(shared("ham10000-mel-nv/ham10000_mel_nv_28.npz"), &z));
    if (z && im.data) {
        CHECK_OK(craft_npz_read(z, "train_images", &ref));
        float *chw = malloc(sizeof(float) * 90000), *crop = malloc(sizeof(float) * 3 * 150 * 150),
              *small = malloc(sizeof(float) * 3 * 28 * 28);
        CHECK_OK(craft_u8_hwc_to_f32_chw(im.data, 150, 200, 3, NULL, NULL, chw));
        CHECK_OK(craft_center_crop(chw, 3, 150, 200, crop, 150, 150));
        CHECK_OK(craft_resize_area(crop, 3, 150, 150, small, 28, 28));
        double mad = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 784; i++)
                mad += fabs(small[ch * 784 + i] * 255.0 - u8_at(&ref, (int64_t)i * 3 + ch));
        mad /= 3 * 784;
        CHECK_MSG(mad < 2.5, "mean |area - lanczos| = %.3f levels", mad);
        free(chw);
        free(crop);
        free(small);
        craft_array_free(&ref);
    }
    craft_npz_close(z);
    craft_array_free(&im);
}

int main(void) {
    RUN(test_npy_files);
    RUN(test_npy_hostile);
    RUN(test_npz_fixtures);
    RUN(test_npz_errors);
    RUN(test_npz_write);
    RUN(test_shared_npz);
    RUN(test_shared_csv_images);
    return CHECK_SUMMARY();
}
