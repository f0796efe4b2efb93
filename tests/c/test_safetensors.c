/* test_safetensors.c: safetensors read/write (round trips, reference-written fixtures, zero
 * copy, conversions equal to torch's, hostile files) and the JSON document API. Fixtures are in
 * tests/fixtures/safetensors (made by tests/fixtures/make_safetensors_fixtures.py); run from the
 * repository root (or build/tests) or set CRAFT_SRC_DIR. Hostile files are written to a temp dir under /tmp. */
#define _GNU_SOURCE
#include "check.h"
#include "core/internal.h" /* craft_half_to_float etc., the reference for the conversions */
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, 256, "%s/%s", tmpdir, name);
    return b;
}
static const char *fixture(const char *name) {
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ & 3];
    const char *env = getenv("CRAFT_SRC_DIR"), *roots[3] = {".", "../..", ".."};
    for (int i = 0; i < 3; i++) { /* the repository root, or run from build/tests */
        snprintf(b, 512, "%s/tests/fixtures/safetensors/%s", env ? env : roots[i], name);
        if (env || access(b, R_OK) == 0) break;
    }
    return b;
}
static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(2);
    }
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
}
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}
/* A file with the given header text (padded with spaces to 8 bytes) and `ndata` data bytes. */
static size_t build(unsigned char *buf, const char *hdr, size_t ndata) {
    size_t h = strlen(hdr), hp = (h + 7) & ~(size_t)7;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(buf + 8, hdr, h);
    memset(buf + 8 + h, ' ', hp - h);
    for (size_t i = 0; i < ndata; i++) buf[8 + hp + i] = (unsigned char)(i * 7 + 1);
    return 8 + hp + ndata;
}
static int same_bits32(float a, float b) { return !memcmp(&a, &b, 4); }

/* ---------------------------------------------------------------- round trip */
static void test_roundtrip_all_dtypes(void) {
    float f32[6] = {1.5f, -2.25f, 0.0f, 1e-30f, 3.0e38f, -7.0f};
    double f64[3] = {1.0 / 3.0, -1e300, 4.9e-324};
    uint16_t f16[4] = {0x3c00, 0x8001, 0x7bff, 0xfc00}, bf16[3] = {0x3f80, 0xc2f7, 0x0001};
    int64_t i64[2] = {INT64_MIN, INT64_MAX};
    int32_t i32[3] = {INT32_MIN, -1, INT32_MAX};
    uint8_t u8[5] = {0, 1, 127, 128, 255}, bl[3] = {1, 0, 1};
    int8_t i8[4] = {-128, -1, 0, 127};
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s2[1] = {2}, s5[1] = {5}, s0[2] = {0, 3};
    craft_tensor *t[12] = {0};
    const char *names[12] = {"w.f32", "d.f64", "h.f16", "b.bf16", "ids",   "i32",
                             "bytes", "i8",    "mask",  "scalar", "empty", "transposed"};
    CHECK_OK(craft_from_data(2, s23, CRAFT_F32, f32, &t[0]));
    CHECK_OK(craft_from_data(1, s3, CRAFT_F64, f64, &t[1]));
    CHECK_OK(craft_from_data(1, s4, CRAFT_F16, f16, &t[2]));
    CHECK_OK(craft_from_data(1, s3, CRAFT_BF16, bf16, &t[3]));
    CHECK_OK(craft_from_data(1, s2, CRAFT_I64, i64, &t[4]));
    CHECK_OK(craft_from_data(1, s3, CRAFT_I32, i32, &t[5]));
    CHECK_OK(craft_from_data(1, s5, CRAFT_U8, u8, &t[6]));
    CHECK_OK(craft_from_data(1, s4, CRAFT_I8, i8, &t[7]));
    CHECK_OK(craft_from_data(1, s3, CRAFT_BOOL, bl, &t[8]));
    float sc = 42.0f;
    CHECK_OK(craft_from_data(0, NULL, CRAFT_F32, &sc, &t[9]));
    CHECK_OK(craft_empty(2, s0, CRAFT_I64, 0, &t[10]));
    CHECK_OK(craft_transpose(t[0], 0, 1, &t[11])); /* [3, 2], not contiguous */
    const char *mk[2] = {"format", "comment"}, *mv[2] = {"pt", "caf\xc3\xa9 \"quoted\"\n"};
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(craft_st_save(path, 12, names, t, 2, mk, mv));
    CHECK(access(tmp_path("rt.safetensors.tmp"), F_OK) != 0);

    size_t n;
    unsigned char *raw = read_bytes(path, &n);
    CHECK(raw != NULL && n > 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | raw[i];
    CHECK(hl % 8 == 0 && raw[8] == '{' && hl < n);
    free(raw);

    craft_safetensors *f = NULL;
    CHECK_OK(craft_st_open(path, &f));
    if (!f) return;
    CHECK(craft_st_count(f) == 12);
    /* the reference's order: I64 then F64 (8 bytes) first, by name within a dtype; I8, U8, BOOL last */
    CHECK(!strcmp(craft_st_name(f, 0), "empty") && !strcmp(craft_st_name(f, 1), "ids") &&
          !strcmp(craft_st_name(f, 2), "d.f64"));
    CHECK(!strcmp(craft_st_name(f, 9), "i8") && !strcmp(craft_st_name(f, 10), "bytes") &&
          !strcmp(craft_st_name(f, 11), "mask"));
    CHECK(!strcmp(craft_st_metadata(f, "format"), "pt"));
    CHECK(!strcmp(craft_st_metadata(f, "comment"), mv[1]));
    CHECK(craft_st_metadata(f, "absent") == NULL);
    CHECK(craft_st_metadata_count(f) == 2);
    CHECK(craft_st_metadata_key(f, 2) == NULL && craft_st_metadata_key(f, -1) == NULL);
    for (int k = 0; k < 12; k++) {
        int i = craft_st_find(f, names[k]);
        CHECK_MSG(i >= 0, "%s not found", names[k]);
        if (i < 0) continue;
        const void *p = craft_st_raw(f, i);
        CHECK_MSG(((uintptr_t)p) % craft_dtype_size(t[k]->dtype) == 0, "%s misaligned", names[k]);
        craft_tensor *u = NULL;
        CHECK_OK(craft_st_load(f, i, -1, &u));
        if (!u) continue;
        CHECK(u->dtype == t[k]->dtype && u->ndim == t[k]->ndim && u->numel == t[k]->numel);
        for (int d = 0; d < u->ndim; d++) CHECK(u->shape[d] == t[k]->shape[d]);
        size_t nb = (size_t)t[k]->numel * craft_dtype_size(t[k]->dtype);
        void *want = malloc(nb + 1), *got = malloc(nb + 1);
        CHECK_OK(craft_tensor_read(t[k], t[k]->dtype, want, nb));
        CHECK_OK(craft_tensor_read(u, u->dtype, got, nb));
        CHECK_MSG(!memcmp(want, got, nb), "%s data differs", names[k]);
        CHECK(craft_st_nbytes(f, i) == (int64_t)nb);
        free(want);
        free(got);
        craft_tensor_release(u);
    }
    int dt = -1, nd = -1;
    int64_t sh[8];
    CHECK_OK(craft_st_info(f, craft_st_find(f, "transposed"), &dt, &nd, sh));
    CHECK(dt == CRAFT_F32 && nd == 2 && sh[0] == 3 && sh[1] == 2);
    CHECK_OK(craft_st_info(f, craft_st_find(f, "scalar"), &dt, &nd, NULL));
    CHECK(nd == 0);
    craft_tensor *tr = NULL;
    CHECK_OK(craft_st_load(f, craft_st_find(f, "transposed"), CRAFT_F32, &tr));
    if (tr) {
        const float *p = craft_tensor_data(tr); /* transpose of [[1.5,-2.25,0],[1e-30,3e38,-7]] */
        CHECK(p[0] == 1.5f && p[1] == 1e-30f && p[2] == -2.25f && p[5] == -7.0f);
        craft_tensor_release(tr);
    }
    craft_st_close(f);
    /* no tensors, no metadata: the reference writes {} padded to 8 bytes */
    CHECK_OK(craft_st_save(tmp_path("none.safetensors"), 0, NULL, NULL, 0, NULL, NULL));
    raw = read_bytes(tmp_path("none.safetensors"), &n);
    CHECK(raw && n == 16 && raw[0] == 8 && !memcmp(raw + 8, "{}      ", 8));
    free(raw);
    CHECK_OK(craft_st_open(tmp_path("none.safetensors"), &f));
    CHECK(craft_st_count(f) == 0 && craft_st_name(f, 0) == NULL);
    craft_st_close(f);
    for (int k = 0; k < 12; k++) craft_tensor_release(t[k]);
}

/* ---------------------------------------------------------------- zero copy */
static void test_zero_copy(void) {
    const char *path = tmp_path("zc.safetensors");
    float v[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4};
    craft_tensor *t, *u = NULL, *c = NULL;
    const char *name = "w";
    CHECK_OK(craft_from_data(1, s4, CRAFT_F32, v, &t));
    CHECK_OK(craft_st_save(path, 1, &name, &t, 0, NULL, NULL));
    craft_safetensors *f = NULL;
    CHECK_OK(craft_st_open(path, &f));
    if (!f) return;
    CHECK_OK(craft_st_load(f, 0, CRAFT_F32, &u));
    CHECK_OK(craft_st_load(f, 0, CRAFT_F64, &c));
    if (!u || !c) return;
    CHECK(craft_tensor_data(u) == craft_st_raw(f, 0)); /* inside the mapping */
    CHECK(craft_tensor_data(c) != craft_st_raw(f, 0)); /* a converted copy */
    CHECK(((double *)craft_tensor_data(c))[3] == 4.0);
    craft_st_close(f); /* u keeps the mapping alive */
    CHECK(((float *)craft_tensor_data(u))[2] == 3.0f);
    /* writes land in private copy-on-write pages, never in the file */
    CHECK_OK(craft_fill_(u, 9.0));
    CHECK(((float *)craft_tensor_data(u))[0] == 9.0f);
    /* saving over a file that is still mapped replaces it (rename): the old mapping is intact */
    float w[4] = {-1, -2, -3, -4};
    craft_tensor *t2;
    CHECK_OK(craft_from_data(1, s4, CRAFT_F32, w, &t2));
    CHECK_OK(craft_st_open(path, &f));
    craft_tensor *old = NULL;
    CHECK_OK(craft_st_load(f, 0, -1, &old));
    craft_st_close(f);
    CHECK_OK(craft_st_save(path, 1, &name, &t2, 0, NULL, NULL));
    CHECK(old && ((float *)craft_tensor_data(old))[1] == 2.0f);
    CHECK_OK(craft_st_open(path, &f));
    craft_tensor *nw = NULL;
    CHECK_OK(craft_st_load(f, 0, -1, &nw));
    CHECK(nw && ((float *)craft_tensor_data(nw))[1] == -2.0f);
    craft_st_close(f);
    craft_tensor_release(nw);
    craft_tensor_release(old);
    craft_tensor_release(u);
    craft_tensor_release(c);
    craft_tensor_release(t);
    craft_tensor_release(t2);
}

/* ---------------------------------------------------------------- reference fixtures */
static craft_tensor *load_named(craft_safetensors *f, const char *name, int dtype) {
    craft_tensor *t = NULL;
    int i = craft_st_find(f, name);
    CHECK_MSG(i >= 0, "no tensor %s", name);
    if (i >= 0) CHECK_OK(craft_st_load(f, i, dtype, &t));
    return t;
}

static void test_fixture_f32(void) {
    craft_safetensors *f = NULL;
    CHECK_OK(craft_st_open(fixture("f32.safetensors"), &f));
    if (!f) return;
    CHECK(craft_st_count(f) == 4);
    CHECK(!strcmp(craft_st_metadata(f, "format"), "pt") &&
          !strcmp(craft_st_metadata(f, "note"), "craft fixture"));
    for (int i = 1; i < craft_st_count(f); i++) /* file order: ascending offsets */
        CHECK((const char *)craft_st_raw(f, i) >= (const char *)craft_st_raw(f, i - 1));
    craft_tensor *w = load_named(f, "unet.conv_in.weight", -1), *s = load_named(f, "scalar", -1),
                 *e = load_named(f, "empty", -1), *b = load_named(f, "unet.conv_in.bias", CRAFT_F32);
    if (w) {
        CHECK(w->ndim == 4 && w->shape[0] == 2 && w->shape[1] == 3 && w->shape[2] == 2 && w->shape[3] == 2);
        const float *p = craft_tensor_data(w);
        int ok = 1;
        for (int i = 0; i < 24; i++) ok &= p[i] == (float)i * 0.25f - 3.0f;
        CHECK(ok);
        CHECK(craft_tensor_data(w) == craft_st_raw(f, craft_st_find(f, "unet.conv_in.weight")));
    }
    double v = 0;
    if (s) {
        CHECK(s->ndim == 0);
        CHECK_OK(craft_item(s, &v));
        CHECK(v == 3.5);
    }
    if (e) CHECK(e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 5 && e->numel == 0);
    if (b) CHECK(((float *)craft_tensor_data(b))[1] == -0.5f);
    craft_tensor_release(w), craft_tensor_release(s), craft_tensor_release(e), craft_tensor_release(b);
    craft_st_close(f);
}

/* file `fx` holds `lo` (16-bit), `lo_f32` (torch's float32 of it), `x32` and `x32_lo` (torch's
 * 16-bit of x32): craft's conversions must give the same bits. */
static void check_16bit(const char *fx, const char *lo, const char *lo_f32, const char *x32_lo, int dt16) {
    craft_safetensors *f = NULL;
    CHECK_OK(craft_st_open(fixture(fx), &f));
    if (!f) return;
    craft_tensor *a = load_named(f, lo, CRAFT_F32), *ref = load_named(f, lo_f32, -1),
                 *raw = load_named(f, lo, -1);
    craft_tensor *down = load_named(f, "x32", dt16), *ref16 = load_named(f, x32_lo, -1);
    if (a && ref && raw) {
        CHECK(raw->dtype == dt16 && craft_tensor_data(raw) == craft_st_raw(f, craft_st_find(f, lo)));
        CHECK(a->numel == ref->numel && a->numel > 60);
        int bad = 0;
        for (int64_t i = 0; i < a->numel && i < ref->numel; i++)
            bad += !same_bits32(((float *)craft_tensor_data(a))[i], ((float *)craft_tensor_data(ref))[i]);
        CHECK_MSG(bad == 0, "%s: %d values differ from torch's float()", fx, bad);
    }
    if (down && ref16) {
        CHECK(down->dtype == dt16 && down->numel == ref16->numel && down->numel > 100);
        int bad = 0;
        for (int64_t i = 0; i < down->numel; i++) {
            uint16_t x = ((uint16_t *)craft_tensor_data(down))[i],
                     y = ((uint16_t *)craft_tensor_data(ref16))[i];
            int xnan = dt16 == CRAFT_F16 ? (x & 0x7c00) == 0x7c00 && (x & 0x3ff)
                                         : (x & 0x7f80) == 0x7f80 && (x & 0x7f);
            int ynan = dt16 == CRAFT_F16 ? (y & 0x7c00) == 0x7c00 && (y & 0x3ff)
                                         : (y & 0x7f80) == 0x7f80 && (y & 0x7f);
            bad += xnan ? !ynan : x != y;
        }
        CHECK_MSG(bad == 0, "%s: %d values differ from torch's rounding", fx, bad);
    }
    craft_tensor_release(a), craft_tensor_release(ref), craft_tensor_release(raw);
    craft_tensor_release(down), craft_tensor_release(ref16);
    craft_st_close(f);
}
static void test_fixture_f16(void) {
    check_16bit("f16.safetensors", "h", "h_as_f32", "x32_as_f16", CRAFT_F16);
}
static void test_fixture_bf16(void) {
    check_16bit("bf16.safetensors", "b", "b_as_f32", "x32_as_bf16", CRAFT_BF16);
}

static void test_fixture_mixed(void) {
    craft_safetensors *f = NULL;
    CHECK_OK(craft_st_open(fixture("mixed.safetensors"), &f));
    if (!f) return;
    craft_tensor *ids = load_named(f, "ids", -1), *i32 = load_named(f, "i32", -1),
                 *i8 = load_named(f, "i8", -1), *u8 = load_named(f, "u8", CRAFT_F32),
                 *mask = load_named(f, "mask", -1), *f64 = load_named(f, "f64", CRAFT_F32),
                 *f64r = load_named(f, "f64_as_f32", -1), *idsf = load_named(f, "ids", CRAFT_F64);
    if (ids) {
        const int64_t *p = craft_tensor_data(ids);
        CHECK(ids->dtype == CRAFT_I64 && ids->shape[0] == 2 && ids->shape[1] == 3);
        CHECK(p[2] == -1 && p[3] == (int64_t)1 << 40 && p[4] == -((int64_t)1 << 62) && p[5] == INT64_MAX);
    }
    if (idsf) CHECK(((double *)craft_tensor_data(idsf))[3] == 1099511627776.0);
    if (i32)
        CHECK(((int32_t *)craft_tensor_data(i32))[0] == INT32_MIN &&
              ((int32_t *)craft_tensor_data(i32))[3] == INT32_MAX);
    if (i8) CHECK(((int8_t *)craft_tensor_data(i8))[0] == -128);
    if (u8) CHECK(((float *)craft_tensor_data(u8))[3] == 255.0f);
    if (mask)
        CHECK(mask->dtype == CRAFT_BOOL && ((uint8_t *)craft_tensor_data(mask))[1] == 0 &&
              ((uint8_t *)craft_tensor_data(mask))[2] == 1);
    if (f64 && f64r)
        for (int i = 0; i < 3; i++)
            CHECK(same_bits32(((float *)craft_tensor_data(f64))[i], ((float *)craft_tensor_data(f64r))[i]));
    craft_tensor_release(ids), craft_tensor_release(i32), craft_tensor_release(i8), craft_tensor_release(u8);
    craft_tensor_release(mask), craft_tensor_release(f64), craft_tensor_release(f64r),
        craft_tensor_release(idsf);

    /* craft's writer gives the reference writer's bytes */
    int n = craft_st_count(f);
    const char *names[16];
    craft_tensor *ts[16] = {0};
    for (int i = 0; i < n && i < 16; i++) {
        names[n - 1 - i] = craft_st_name(f, i); /* reversed: the writer must reorder */
        CHECK_OK(craft_st_load(f, i, -1, &ts[n - 1 - i]));
    }
    const char *mk = "format", *mv = "pt";
    CHECK_OK(craft_st_save(tmp_path("mixed_again.safetensors"), n, names, ts, 1, &mk, &mv));
    size_t na = 0, nb = 0;
    unsigned char *a = read_bytes(fixture("mixed.safetensors"), &na),
                  *b = read_bytes(tmp_path("mixed_again.safetensors"), &nb);
    CHECK(a && b && na == nb && !memcmp(a, b, na));
    free(a), free(b);
    for (int i = 0; i < n && i < 16; i++) craft_tensor_release(ts[i]);
    craft_st_close(f);

    CHECK_OK(craft_st_open(fixture("i16.safetensors"), &f));
    if (!f) return;
    int dt = -1;
    CHECK_OK(craft_st_info(f, 0, &dt, NULL, NULL));
    CHECK(dt == CRAFT_I32 && !strcmp(craft_st_dtype_name(f, 0), "I16"));
    craft_tensor *w = load_named(f, "i16", -1);
    if (w)
        CHECK(w->dtype == CRAFT_I32 && ((int32_t *)craft_tensor_data(w))[0] == -32768 &&
              ((int32_t *)craft_tensor_data(w))[1] == -1);
    craft_tensor_release(w);
    craft_st_close(f);
}

/* ---------------------------------------------------------------- conversions */
static void test_conversions(void) {
    unsigned char buf[1024];
    /* hand-made: U8[1] then F32[2] at offset 1 (misaligned), float8 and unsigned wide types */
    const char *hdr = "{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
                      "\"e4\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[9,13]},"
                      "\"e5\":{\"dtype\":\"F8_E5M2\",\"shape\":[3],\"data_offsets\":[13,16]},"
                      "\"u16\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[16,18]},"
                      "\"u32\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[18,22]},"
                      "\"u64\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[22,30]}}";
    size_t n = build(buf, hdr, 30), d = n - 30;
    float f2[2] = {-1.75f, 2.5e9f};
    memcpy(buf + d + 1, f2, 8);
    const unsigned char e4[4] = {0x38, 0x7e, 0xb0, 0x7f}, e5[3] = {0x3c, 0xc2, 0x7c};
    memcpy(buf + d + 9, e4, 4);
    memcpy(buf + d + 13, e5, 3);
    uint16_t u16 = 65535;
    uint32_t u32 = 4000000000u;
    uint64_t u64 = UINT64_MAX;
    memcpy(buf + d + 16, &u16, 2), memcpy(buf + d + 18, &u32, 4), memcpy(buf + d + 22, &u64, 8);
    craft_safetensors *f = NULL;
    CHECK_OK(craft_st_open_memory(buf, n, "conv.safetensors", &f));
    if (!f) return;
    CHECK(!strcmp(craft_st_name(f, 0), "u") && !strcmp(craft_st_name(f, 6), "u64"));
    craft_tensor *t = load_named(f, "f", -1);
    if (t) {
        CHECK(craft_tensor_data(t) != craft_st_raw(f, 1)); /* misaligned: copied */
        CHECK(((float *)craft_tensor_data(t))[0] == -1.75f && ((float *)craft_tensor_data(t))[1] == 2.5e9f);
    }
    craft_tensor_release(t);
    t = load_named(f, "f", CRAFT_I32); /* truncation toward zero, saturation */
    if (t)
        CHECK(((int32_t *)craft_tensor_data(t))[0] == -1 &&
              ((int32_t *)craft_tensor_data(t))[1] == (int32_t)(uint32_t)2500000000u);
    craft_tensor_release(t);
    t = load_named(f, "f", CRAFT_I64);
    if (t) CHECK(((int64_t *)craft_tensor_data(t))[1] == 2500000000);
    craft_tensor_release(t);
    t = load_named(f, "f", CRAFT_BOOL);
    if (t) CHECK(((uint8_t *)craft_tensor_data(t))[0] == 1);
    craft_tensor_release(t);
    t = load_named(f, "e4", -1); /* 1.0, 448 (the largest), -0.5, NaN */
    if (t) {
        const float *p = craft_tensor_data(t);
        CHECK(t->dtype == CRAFT_F32 && p[0] == 1.0f && p[1] == 448.0f && p[2] == -0.5f && isnan(p[3]));
    }
    craft_tensor_release(t);
    t = load_named(f, "e5", -1); /* 1.0, -3.0, inf */
    if (t)
        CHECK(((float *)craft_tensor_data(t))[0] == 1.0f && ((float *)craft_tensor_data(t))[1] == -3.0f &&
              isinf(((float *)craft_tensor_data(t))[2]));
    craft_tensor_release(t);
    t = load_named(f, "u16", -1);
    if (t) CHECK(t->dtype == CRAFT_I32 && ((int32_t *)craft_tensor_data(t))[0] == 65535);
    craft_tensor_release(t);
    t = load_named(f, "u32", -1);
    if (t) CHECK(t->dtype == CRAFT_I64 && ((int64_t *)craft_tensor_data(t))[0] == 4000000000);
    craft_tensor_release(t);
    t = NULL;
    CHECK_ERR(craft_st_load(f, 6, -1, &t), CRAFT_EUNSUPPORTED); /* UINT64_MAX does not fit int64 */
    CHECK(t == NULL && strstr(craft_last_error(), "conv.safetensors") && strstr(craft_last_error(), "u64"));
    CHECK_ERR(craft_st_load(f, 7, -1, &t), CRAFT_EINVAL);
    CHECK_ERR(craft_st_load(f, -1, -1, &t), CRAFT_EINVAL);
    CHECK_ERR(craft_st_load(f, 0, 99, &t), CRAFT_ETYPE);
    CHECK_ERR(craft_st_info(f, 7, NULL, NULL, NULL), CRAFT_EINVAL);
    CHECK(craft_st_find(f, "nope") == -1 && craft_st_find(f, NULL) == -1 && craft_st_name(f, 7) == NULL);
    CHECK(craft_st_raw(f, 7) == NULL && craft_st_nbytes(f, -1) == -1 && craft_st_dtype_name(f, 9) == NULL);
    craft_st_close(f);
}

/* Big enough for the parallel conversion path: every half bit pattern, eight times over. */
static void test_large_conversion(void) {
    int64_t shape[2] = {8, 65536};
    craft_tensor *t = NULL, *u = NULL, *b = NULL;
    CHECK_OK(craft_empty(2, shape, CRAFT_F16, 0, &t));
    if (!t) return;
    uint16_t *p = craft_tensor_data(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = (uint16_t)(i * 40503u);
    const char *name = "big", *path = tmp_path("big.safetensors");
    CHECK_OK(craft_st_save(path, 1, &name, &t, 0, NULL, NULL));
    craft_safetensors *f = NULL;
    CHECK_OK(craft_st_open(path, &f));
    if (f) CHECK_OK(craft_st_load(f, 0, CRAFT_F32, &u));
    if (f) CHECK_OK(craft_st_load(f, 0, CRAFT_BF16, &b)); /* generic path: f16 -> f32 -> bf16 */
    if (u && b) {
        const float *q = craft_tensor_data(u);
        const uint16_t *r = craft_tensor_data(b);
        int64_t bad = 0;
        for (int64_t i = 0; i < t->numel; i++) {
            float want = craft_half_to_float(p[i]);
            bad += !same_bits32(q[i], want) || r[i] != craft_float_to_bf16(want);
        }
        CHECK_MSG(bad == 0, "%lld of %lld elements differ", (long long)bad, (long long)t->numel);
    }
    craft_tensor_release(u), craft_tensor_release(b), craft_tensor_release(t);
    craft_st_close(f);
}

/* ---------------------------------------------------------------- hostile files */
static void expect_bad(const char *name, const unsigned char *bytes, size_t n, const char *fragment) {
    const char *path = tmp_path(name);
    write_bytes(path, bytes, n);
    craft_safetensors *f = (craft_safetensors *)1;
    int rc = craft_st_open(path, &f);
    CHECK_MSG(rc == CRAFT_EFORMAT, "%s: rc %d (%s)", name, rc, craft_last_error());
    CHECK_MSG(f == (craft_safetensors *)1, "%s: out written on failure", name);
    CHECK_MSG(strstr(craft_last_error(), path) != NULL, "%s: message does not name the file: %s", name,
              craft_last_error());
    CHECK_MSG(!fragment || strstr(craft_last_error(), fragment), "%s: message lacks \"%s\": %s", name,
              fragment, craft_last_error());
    CHECK_MSG(!strchr(craft_last_error(), '\n'), "%s: message has more than one line", name);
    rc = craft_st_open_memory(bytes, n, name, &f); /* same verdict from memory */
    CHECK_MSG(rc == CRAFT_EFORMAT && strstr(craft_last_error(), name), "%s (memory): rc %d: %s", name, rc,
              craft_last_error());
}

#define T1(dt, shape, offs) "{\"t\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static void test_hostile(void) {
    static unsigned char buf[4096];
    size_t n;
    craft_safetensors *f = NULL;
    CHECK_ERR(craft_st_open(tmp_path("missing.safetensors"), &f), CRAFT_EIO);
    CHECK(strstr(craft_last_error(), "missing.safetensors") != NULL);
    CHECK_ERR(craft_st_open(tmpdir, &f), CRAFT_EIO);
    expect_bad("short", (const unsigned char *)"\x08\0\0", 3, "shorter than");
    expect_bad("zero", (const unsigned char *)"", 0, "shorter than");
    n = build(buf, T1("F32", "[2]", "[0,8]"), 8);
    expect_bad("truncated", buf, n - 3, "end beyond the file's 5 data bytes");
    unsigned char h[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    expect_bad("hdr_beyond_file", h, 16, "larger than");
    uint64_t big = 200000000;
    for (int i = 0; i < 8; i++) h[i] = (unsigned char)(big >> (8 * i));
    expect_bad("hdr_200mb", h, 16, "100 MB");
    memset(h, 0xff, 8);
    expect_bad("hdr_2^64", h, 16, "100 MB");
    memset(h, 0, 8);
    h[0] = 1;
    expect_bad("hdr_1", h, 16, "too small");
    n = build(buf, "{\"t\":{\"dtype\":\"F32\",", 0);
    expect_bad("bad_json", buf, n, "line 1");
    n = build(buf, "[1,2]", 0);
    expect_bad("array_header", buf, n, "expected a JSON object");
    n = build(buf, "{\"a\":1} xx", 0);
    expect_bad("trailing_garbage", buf, n, "header JSON invalid");
    memcpy(buf, "\x08\0\0\0\0\0\0\0{\"\xff\":1}", 16);
    expect_bad("not_utf8", buf, 16, "header JSON invalid");
    n = build(buf, T1("F33", "[1]", "[0,4]"), 4);
    expect_bad("unknown_dtype", buf, n, "unknown dtype \"F33\"");
    n = build(buf, T1("F32", "[2,3]", "[0,20]"), 20);
    expect_bad("size_mismatch", buf, n, "needs 24 bytes but data_offsets [0, 20] hold 20");
    n = build(buf,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              12);
    expect_bad("overlap", buf, n, "overlap tensor \"a\"");
    n = build(buf,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
              8);
    expect_bad("same_offsets", buf, n, "overlap");
    n = build(buf,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
              12);
    expect_bad("gap", buf, n, "gap after byte 4");
    n = build(buf, T1("F32", "[1]", "[0,4]"), 12);
    expect_bad("trailing_data", buf, n, "cover 4 of the 12");
    n = build(buf, T1("F32", "[-1]", "[0,4]"), 4);
    expect_bad("negative_shape", buf, n, "negative");
    n = build(buf, T1("F32", "[1099511627776,1099511627776]", "[0,4]"), 4);
    expect_bad("overflow_shape", buf, n, "overflows");
    n = build(buf, T1("U8", "[4294967296,4294967296]", "[0,0]"), 0);
    expect_bad("overflow_u8", buf, n, "overflows");
    n = build(buf, T1("F32", "[99999999999999999999]", "[0,4]"), 4);
    expect_bad("shape_too_big_for_json", buf, n, "header JSON invalid");
    n = build(buf, T1("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4);
    expect_bad("nine_dims", buf, n, "at most 8");
    n = build(buf, T1("F32", "[1.0]", "[0,4]"), 4);
    expect_bad("real_shape", buf, n, "non-negative integer");
    n = build(buf, T1("F32", "[1]", "[0,4096]"), 1024);
    expect_bad("beyond_end", buf, n, "data_offsets [0, 4096] end beyond the file's 1024 data bytes");
    n = build(buf, T1("F32", "[1]", "[8,4]"), 8);
    expect_bad("end_before_begin", buf, n, "end before begin");
    n = build(buf, T1("F32", "[1]", "[0,4,4]"), 4);
    expect_bad("three_offsets", buf, n, "pair");
    n = build(buf, T1("F32", "[1]", "[-4,0]"), 4);
    expect_bad("negative_offset", buf, n, "non-negative");
    n = build(buf, "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4);
    expect_bad("no_shape", buf, n, "missing \"shape\"");
    n = build(buf, "{\"t\":[1]}", 0);
    expect_bad("entry_not_object", buf, n, "expected an object");
    n = build(
        buf,
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        4);
    expect_bad("duplicate_name", buf, n, "duplicate");
    n = build(buf, "{\"__metadata__\":{\"k\":1}}", 0);
    expect_bad("meta_not_string", buf, n, "__metadata__ \"k\"");
    n = build(buf, "{\"__metadata__\":[]}", 0);
    expect_bad("meta_not_object", buf, n, "__metadata__ is an array");
    n = build(buf, "{\"bad\\nname\":{\"dtype\":\"X\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_bad("newline_in_name", buf, n, "bad?name");

    /* what the reference accepts, craft accepts: unpadded header, leading space, null metadata */
    n = build(
        buf,
        " {\"__metadata__\":null,\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}",
        4);
    CHECK_OK(craft_st_open_memory(buf, n, "lenient", &f));
    CHECK(f && craft_st_count(f) == 1 && craft_st_metadata_count(f) == 0);
    craft_st_close(f);
    f = NULL;
    const char *u = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,1099511627776],\"data_offsets\":[0,0]}}";
    uint64_t ul = strlen(u);
    memcpy(buf, &ul, 8), memcpy(buf + 8, u, ul);
    CHECK_OK(craft_st_open_memory(buf, 8 + ul, "unpadded_empty", &f));
    craft_tensor *t = NULL;
    if (f) CHECK_OK(craft_st_load(f, 0, -1, &t));
    CHECK(t && t->numel == 0 && t->shape[1] == 1099511627776LL);
    craft_tensor_release(t);
    craft_st_close(f);
    CHECK_ERR(craft_st_open(NULL, &f), CRAFT_EINVAL);
    CHECK_ERR(craft_st_open_memory(NULL, 10, "x", &f), CRAFT_EINVAL);
}

static void test_save_errors(void) {
    float v = 1;
    craft_tensor *t;
    CHECK_OK(craft_from_data(0, NULL, CRAFT_F32, &v, &t));
    craft_tensor *two[2] = {t, t}, *nul[1] = {NULL};
    const char *dup[2] = {"a", "a"}, *meta[1] = {"__metadata__"}, *bad_utf8[1] = {"\xc3("}, *ok[1] = {"a"};
    const char *path = tmp_path("err.safetensors");
    CHECK_ERR(craft_st_save(path, 2, dup, two, 0, NULL, NULL), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), path) && strstr(craft_last_error(), "twice"));
    CHECK_ERR(craft_st_save(path, 1, meta, two, 0, NULL, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_st_save(path, 1, ok, nul, 0, NULL, NULL), CRAFT_EINVAL);
    CHECK_ERR(craft_st_save(path, 1, bad_utf8, two, 0, NULL, NULL), CRAFT_EINVAL);
    const char *mk[2] = {"k", "k"}, *mv[2] = {"1", "2"};
    CHECK_ERR(craft_st_save(path, 1, ok, two, 2, mk, mv), CRAFT_EINVAL);
    CHECK_ERR(craft_st_save(path, -1, ok, two, 0, NULL, NULL), CRAFT_EINVAL);
    CHECK(access(path, F_OK) != 0); /* nothing written by failed saves */
    CHECK_ERR(craft_st_save(tmp_path("no/such/dir.safetensors"), 1, ok, two, 0, NULL, NULL), CRAFT_EIO);
    CHECK(strstr(craft_last_error(), "dir.safetensors") != NULL);
    craft_tensor_release(t);
}

/* ---------------------------------------------------------------- JSON */
static void test_json(void) {
    const char *cfg =
        "{\"_class_name\": \"UNet2DConditionModel\", \"sample_size\": 64, \"block_out_channels\": [320, 640, 1280],\n"
        " \"beta_start\": 0.00085, \"center_input_sample\": false, \"flip\": true, \"norm\": null,\n"
        " \"nested\": {\"a\": {\"b\": [[]]}}, \"ten\": 10.0, \"\xe4\xb8\xad\": \"\\u00e9\"}";
    craft_json *d = NULL;
    CHECK_OK(craft_json_parse_string(cfg, strlen(cfg), "unet/config.json", &d));
    if (!d) return;
    CHECK(craft_json_type(d, 0) == CRAFT_JSON_OBJECT && craft_json_length(d, 0) == 10);
    CHECK(!strcmp(craft_json_key(d, 0, 0), "_class_name") &&
          !strcmp(craft_json_key(d, 0, 9), "\xe4\xb8\xad"));
    CHECK(!strcmp(craft_json_string(d, craft_json_get(d, 0, "\xe4\xb8\xad")), "\xc3\xa9"));
    int64_t iv = 0;
    double dv = 0;
    int bv = -1;
    CHECK_OK(craft_json_integer(d, craft_json_get(d, 0, "sample_size"), &iv));
    CHECK(iv == 64);
    CHECK_OK(craft_json_integer(d, craft_json_get(d, 0, "ten"), &iv));
    CHECK(iv == 10);
    CHECK_OK(craft_json_number(d, craft_json_get(d, 0, "beta_start"), &dv));
    CHECK(dv == 0.00085);
    CHECK_ERR(craft_json_integer(d, craft_json_get(d, 0, "beta_start"), &iv), CRAFT_ETYPE);
    CHECK(strstr(craft_last_error(), "unet/config.json") && strstr(craft_last_error(), "beta_start"));
    CHECK_OK(craft_json_bool(d, craft_json_get(d, 0, "center_input_sample"), &bv));
    CHECK(bv == 0);
    CHECK(craft_json_type(d, craft_json_get(d, 0, "flip")) == CRAFT_JSON_TRUE);
    CHECK(craft_json_type(d, craft_json_get(d, 0, "norm")) == CRAFT_JSON_NULL);
    CHECK_ERR(craft_json_number(d, craft_json_get(d, 0, "_class_name"), &dv), CRAFT_ETYPE);
    CHECK_ERR(craft_json_bool(d, 0, &bv), CRAFT_ETYPE);
    int boc = craft_json_get(d, 0, "block_out_channels");
    CHECK(craft_json_type(d, boc) == CRAFT_JSON_ARRAY && craft_json_length(d, boc) == 3);
    CHECK_OK(craft_json_integer(d, craft_json_child(d, boc, 2), &iv));
    CHECK(iv == 1280);
    CHECK(craft_json_child(d, boc, 3) == -1 && craft_json_child(d, boc, -1) == -1);
    CHECK(craft_json_key(d, boc, 0) == NULL); /* arrays have no keys */
    int nested = craft_json_get(d, craft_json_get(d, craft_json_get(d, 0, "nested"), "a"), "b");
    CHECK(craft_json_type(d, nested) == CRAFT_JSON_ARRAY &&
          craft_json_length(d, craft_json_child(d, nested, 0)) == 0);
    CHECK(craft_json_length(d, craft_json_get(d, 0, "_class_name")) == 20);
    /* out of range everywhere: answers, not reads */
    int nn = craft_json_node_count(d);
    CHECK(nn == 17);
    CHECK(craft_json_type(d, nn) == -1 && craft_json_type(d, -1) == -1 && craft_json_length(d, nn) == -1);
    CHECK(craft_json_string(d, nn) == NULL && craft_json_get(d, nn, "a") == -1 &&
          craft_json_get(d, 0, "zz") == -1);
    CHECK_ERR(craft_json_number(d, nn, &dv), CRAFT_EINVAL);
    CHECK(craft_json_type(NULL, 0) == -1 && craft_json_child(NULL, 0, 0) == -1 &&
          craft_json_node_count(NULL) == 0);
    craft_json_free(d);
    craft_json_free(NULL);

    d = (craft_json *)1;
    const char *bad = "{\n  \"a\": 1,\n  \"b\": [1, 2,\n}";
    CHECK_ERR(craft_json_parse_string(bad, strlen(bad), "scheduler_config.json", &d), CRAFT_EFORMAT);
    CHECK(d == (craft_json *)1 && strstr(craft_last_error(), "scheduler_config.json") &&
          strstr(craft_last_error(), "line 4"));
    CHECK_ERR(craft_json_parse_string("{\"a\":1,\"a\":2}", 13, "dup.json", &d), CRAFT_EFORMAT);
    CHECK_ERR(craft_json_parse_string("", 0, "empty.json", &d), CRAFT_EFORMAT);
    CHECK_ERR(craft_json_parse_file(tmp_path("absent.json"), &d), CRAFT_EIO);
    CHECK(strstr(craft_last_error(), "absent.json") != NULL);
    CHECK_OK(craft_json_parse_string("[1, \"x\"]", 8, NULL, &d)); /* any top-level value */
    CHECK(craft_json_type(d, 0) == CRAFT_JSON_ARRAY && craft_json_type(d, 2) == CRAFT_JSON_STRING);
    craft_json_free(d);

    /* vocab.json-like: many keys, walked by index */
    const char *vocab = "{\"!\": 0, \"\\\"\": 1, \"hello</w>\": 2, \"\\u0120the\": 3}";
    const char *vp = tmp_path("vocab.json");
    CHECK_OK(craft_json_write_file(vp, vocab, strlen(vocab)));
    CHECK(access(tmp_path("vocab.json.tmp"), F_OK) != 0);
    CHECK_OK(craft_json_parse_file(vp, &d));
    if (d) {
        CHECK(craft_json_length(d, 0) == 4 && !strcmp(craft_json_key(d, 0, 1), "\"") &&
              !strcmp(craft_json_key(d, 0, 3), "\xc4\xa0the"));
        CHECK_OK(craft_json_integer(d, craft_json_child(d, 0, 2), &iv));
        CHECK(iv == 2);
        craft_json_free(d);
    }
    size_t n;
    unsigned char *raw = read_bytes(vp, &n);
    CHECK(raw && n == strlen(vocab) + 1 && raw[n - 1] == '\n' && !memcmp(raw, vocab, n - 1));
    free(raw);
    CHECK_ERR(craft_json_write_file(vp, "{oops}", 6), CRAFT_EFORMAT);
    CHECK(strstr(craft_last_error(), "vocab.json") && strstr(craft_last_error(), "column"));
    CHECK_OK(craft_json_parse_file(vp, &d)); /* the old file survived the failed write */
    craft_json_free(d);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/craft_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_roundtrip_all_dtypes);
    RUN(test_zero_copy);
    RUN(test_fixture_f32);
    RUN(test_fixture_f16);
    RUN(test_fixture_bf16);
    RUN(test_fixture_mixed);
    RUN(test_conversions);
    RUN(test_large_conversion);
    RUN(test_hostile);
    RUN(test_save_errors);
    RUN(test_json);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return CHECK_SUMMARY();
}
