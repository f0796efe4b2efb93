/* safetensors.c: reading .safetensors files, the format Stable Diffusion / CLIP / DINOv2
 * checkpoints ship in: memory-mapped, every header entry validated before use, tensors loaded
 * zero-copy or converted to a craft dtype. Rules follow the reference implementation: header
 * length <= 100 MB, tensors cover the data area exactly with no gaps or overlaps. Writing
 * (craft_st_save) is in safetensors_write.c. */
#include "io/safetensors_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

enum { K_BOOL, K_UINT, K_SINT, K_FLOAT, K_F16, K_BF16, K_E5M2, K_E4M3 };
const craft_st_dtype_info craft_st_dtypes[] = {
    {"BOOL", 1, K_BOOL, CRAFT_BOOL, CRAFT_BOOL}, {"U8", 1, K_UINT, CRAFT_U8, CRAFT_U8},
    {"I8", 1, K_SINT, CRAFT_I8, CRAFT_I8},       {"F8_E5M2", 1, K_E5M2, -1, CRAFT_F32},
    {"F8_E4M3", 1, K_E4M3, -1, CRAFT_F32},       {"I16", 2, K_SINT, -1, CRAFT_I32},
    {"U16", 2, K_UINT, -1, CRAFT_I32},           {"F16", 2, K_F16, CRAFT_F16, CRAFT_F16},
    {"BF16", 2, K_BF16, CRAFT_BF16, CRAFT_BF16}, {"I32", 4, K_SINT, CRAFT_I32, CRAFT_I32},
    {"U32", 4, K_UINT, -1, CRAFT_I64},           {"F32", 4, K_FLOAT, CRAFT_F32, CRAFT_F32},
    {"F64", 8, K_FLOAT, CRAFT_F64, CRAFT_F64},   {"I64", 8, K_SINT, CRAFT_I64, CRAFT_I64},
    {"U64", 8, K_UINT, -1, CRAFT_I64},
};
const int craft_st_n_dtypes = (int)(sizeof craft_st_dtypes / sizeof craft_st_dtypes[0]);

/* The bytes of a file, shared by the handle and every zero-copy tensor over it. */
typedef struct st_map {
    int refs;
    int is_mmap;
    void *base;
    size_t len;
} st_map;

typedef struct st_entry {
    const char *name; /* owned by the handle's JSON tree */
    int sdt, ndim;
    int64_t shape[CRAFT_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

struct craft_safetensors {
    char *what;
    st_map *map;
    unsigned char *data; /* first byte after the header */
    uint64_t data_len;
    json_t *root;
    int n, n_meta;
    st_entry *e; /* sorted by data offsets */
    struct st_name {
        const char *name;
        int index;
    } * by_name; /* sorted by name */
    const char **meta_k, **meta_v;
};

static void map_release(st_map *m) {
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (m->is_mmap) munmap(m->base, m->len);
    else free(m->base);
    free(m);
}
static void map_release_cb(void *ctx, void *data, size_t nbytes) {
    (void)data;
    (void)nbytes;
    map_release(ctx);
}

/* Tensor names come from the file: keep messages on one line and of bounded length. */
const char *craft_st_clean(const char *s, char *buf, size_t size) {
    size_t j = 0;
    for (; s && *s && j + 4 < size; s++) buf[j++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    if (s && *s) {
        buf[j++] = '.';
        buf[j++] = '.';
        buf[j++] = '.';
    }
    buf[j] = 0;
    return buf;
}

static int sdt_lookup(const char *name) {
    for (int i = 0; i < craft_st_n_dtypes; i++)
        if (!strcmp(name, craft_st_dtypes[i].name)) return i;
    return -1;
}

static const char *json_kind(const json_t *j) {
    static const char *k[] = {"an object", "an array", "a string", "an integer",
                              "a real",    "true",     "false",    "null"};
    int t = (int)json_typeof(j);
    return t >= 0 && t < 8 ? k[t] : "?";
}

/* Reads a non-negative JSON integer. */
static int get_u64(const json_t *j, uint64_t *out) {
    if (!json_is_integer(j) || json_integer_value(j) < 0) return -1;
    *out = (uint64_t)json_integer_value(j);
    return 0;
}

static int parse_entry(craft_safetensors *f, const char *name, json_t *v, st_entry *e) {
    char nb[160];
    const char *w = f->what;
#define BAD(...)                                                                                             \
    do {                                                                                                     \
        char mb_[512];                                                                                       \
        snprintf(mb_, sizeof mb_, __VA_ARGS__);                                                              \
        return craft_fail(CRAFT_EFORMAT, "safetensors %s: tensor \"%s\": %s", w,                             \
                          craft_st_clean(name, nb, sizeof nb), mb_);                                         \
    } while (0)
    if (!json_is_object(v))
        BAD("entry is %s, expected an object with dtype, shape, data_offsets", json_kind(v));
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo) BAD("missing \"%s\"", !jd ? "dtype" : !js ? "shape" : "data_offsets");
    if (!json_is_string(jd)) BAD("dtype is %s, expected a string", json_kind(jd));
    e->name = name;
    e->sdt = sdt_lookup(json_string_value(jd));
    if (e->sdt < 0)
        BAD("unknown dtype \"%s\" (known: BOOL U8 I8 I16 U16 I32 U32 I64 U64 F16 BF16 F32 F64 F8_E5M2 F8_E4M3)",
            craft_st_clean(json_string_value(jd), nb + 80, 80));
    if (!json_is_array(js)) BAD("shape is %s, expected an array", json_kind(js));
    size_t nd = json_array_size(js);
    if (nd > CRAFT_MAX_DIMS) BAD("shape has %zu dims, craft supports at most %d", nd, CRAFT_MAX_DIMS);
    e->ndim = (int)nd;
    uint64_t count = 1;
    int overflow = 0;
    for (size_t d = 0; d < nd; d++) {
        uint64_t s;
        json_t *x = json_array_get(js, d);
        if (get_u64(x, &s))
            BAD("shape entry %zu is %s, expected a non-negative integer", d,
                json_is_integer(x) ? "negative" : json_kind(x));
        e->shape[d] = (int64_t)s;
        overflow |= __builtin_mul_overflow(count, s, &count);
    }
    uint64_t nbytes;
    overflow |= __builtin_mul_overflow(count, (uint64_t)craft_st_dtypes[e->sdt].size, &nbytes);
    /* a zero anywhere makes the tensor empty, however large the other entries */
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] == 0) {
            overflow = 0;
            nbytes = 0;
        }
    if (overflow)
        BAD("shape %s of %s overflows a 64-bit byte count", craft_dims_str(e->ndim, e->shape),
            craft_st_dtypes[e->sdt].name);
    if (!json_is_array(jo) || json_array_size(jo) != 2) BAD("data_offsets is not a [begin, end] pair");
    if (get_u64(json_array_get(jo, 0), &e->begin) || get_u64(json_array_get(jo, 1), &e->end))
        BAD("data_offsets must be non-negative integers");
    if (e->end < e->begin)
        BAD("data_offsets [%llu, %llu] end before begin", (unsigned long long)e->begin,
            (unsigned long long)e->end);
    if (e->end > f->data_len)
        BAD("data_offsets [%llu, %llu] end beyond the file's %llu data bytes", (unsigned long long)e->begin,
            (unsigned long long)e->end, (unsigned long long)f->data_len);
    if (e->end - e->begin != nbytes)
        BAD("shape %s of %s needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
            craft_dims_str(e->ndim, e->shape), craft_st_dtypes[e->sdt].name, (unsigned long long)nbytes,
            (unsigned long long)e->begin, (unsigned long long)e->end,
            (unsigned long long)(e->end - e->begin));
#undef BAD
    return CRAFT_OK;
}

static int cmp_offsets(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}
static int cmp_names(const void *a, const void *b) {
    return strcmp(((const struct st_name *)a)->name, ((const struct st_name *)b)->name);
}

static int parse_header(craft_safetensors *f, const unsigned char *base, size_t len) {
    const char *w = f->what;
    if (len < 8)
        return craft_fail(CRAFT_EFORMAT,
                          "safetensors %s: file is %zu bytes, shorter than the 8-byte header length", w, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | base[i];
    if (n < 2)
        return craft_fail(CRAFT_EFORMAT, "safetensors %s: header length %llu is too small for a JSON object",
                          w, (unsigned long long)n);
    if (n > ST_MAX_HEADER)
        return craft_fail(CRAFT_EFORMAT, "safetensors %s: header length %llu exceeds the 100 MB limit", w,
                          (unsigned long long)n);
    if (n > len - 8)
        return craft_fail(
            CRAFT_EFORMAT,
            "safetensors %s: header length %llu is larger than the %zu bytes after the length field", w,
            (unsigned long long)n, len - 8);
    f->data = (unsigned char *)base + 8 + n;
    f->data_len = len - 8 - n;
    json_error_t err;
    f->root = json_loadb((const char *)base + 8, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!f->root)
        return craft_fail(CRAFT_EFORMAT, "safetensors %s: header JSON invalid at line %d, column %d: %s", w,
                          err.line, err.column, err.text);
    if (!json_is_object(f->root))
        return craft_fail(CRAFT_EFORMAT, "safetensors %s: header is %s, expected a JSON object", w,
                          json_kind(f->root));

    json_t *meta = json_object_get(f->root, "__metadata__");
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta))
            return craft_fail(CRAFT_EFORMAT,
                              "safetensors %s: __metadata__ is %s, expected an object of strings", w,
                              json_kind(meta));
        size_t nm = json_object_size(meta);
        f->meta_k = calloc(nm + 1, sizeof *f->meta_k);
        f->meta_v = calloc(nm + 1, sizeof *f->meta_v);
        if (!f->meta_k || !f->meta_v) return craft_fail(CRAFT_ENOMEM, "safetensors %s: out of memory", w);
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) {
            char kb[160];
            if (!json_is_string(v))
                return craft_fail(CRAFT_EFORMAT,
                                  "safetensors %s: __metadata__ \"%s\" is %s, expected a string", w,
                                  craft_st_clean(k, kb, sizeof kb), json_kind(v));
            f->meta_k[f->n_meta] = k;
            f->meta_v[f->n_meta++] = json_string_value(v);
        }
    }
    size_t nt = json_object_size(f->root) - (meta ? 1 : 0);
    if (nt > (size_t)INT_MAX / 2)
        return craft_fail(CRAFT_EFORMAT, "safetensors %s: %zu tensors is too many", w, nt);
    f->e = calloc(nt + 1, sizeof *f->e);
    f->by_name = calloc(nt + 1, sizeof *f->by_name);
    if (!f->e || !f->by_name)
        return craft_fail(CRAFT_ENOMEM, "safetensors %s: out of memory for %zu entries", w, nt);
    const char *k;
    json_t *v;
    json_object_foreach(f->root, k, v) {
        if (v == meta) continue;
        CRAFT_TRY(parse_entry(f, k, v, &f->e[f->n]));
        f->n++;
    }
    qsort(f->e, (size_t)f->n, sizeof *f->e, cmp_offsets);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        char nb[160], pb[160];
        if (e->begin < at)
            return craft_fail(
                CRAFT_EFORMAT,
                "safetensors %s: tensor \"%s\": data_offsets [%llu, %llu] overlap tensor \"%s\" [%llu, %llu]",
                w, craft_st_clean(e->name, nb, sizeof nb), (unsigned long long)e->begin,
                (unsigned long long)e->end, craft_st_clean(f->e[i - 1].name, pb, sizeof pb),
                (unsigned long long)f->e[i - 1].begin, (unsigned long long)f->e[i - 1].end);
        if (e->begin > at)
            return craft_fail(
                CRAFT_EFORMAT,
                "safetensors %s: tensor \"%s\": data_offsets [%llu, %llu] leave a gap after byte %llu "
                "(tensors must be contiguous)",
                w, craft_st_clean(e->name, nb, sizeof nb), (unsigned long long)e->begin,
                (unsigned long long)e->end, (unsigned long long)at);
        at = e->end;
    }
    if (at != f->data_len)
        return craft_fail(
            CRAFT_EFORMAT,
            "safetensors %s: tensors cover %llu of the %llu data bytes (trailing bytes after the last tensor)",
            w, (unsigned long long)at, (unsigned long long)f->data_len);
    for (int i = 0; i < f->n; i++) f->by_name[i] = (struct st_name){f->e[i].name, i};
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_names);
    return CRAFT_OK;
}

static int open_map(st_map *m, const char *what, craft_safetensors **out) {
    craft_safetensors *f = calloc(1, sizeof *f);
    char *w = strdup(what ? what : "(memory)");
    if (!f || !w) {
        free(f);
        free(w);
        map_release(m);
        return craft_fail(CRAFT_ENOMEM, "safetensors: out of memory");
    }
    f->what = w;
    f->map = m;
    int rc = parse_header(f, m->base, m->len);
    if (rc) {
        craft_st_close(f);
        return rc;
    }
    *out = f;
    return CRAFT_OK;
}

int craft_st_open(const char *path, craft_safetensors **out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "safetensors open: NULL %s", path ? "out" : "path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return craft_fail(CRAFT_EIO, "safetensors %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return craft_fail(CRAFT_EIO, "safetensors %s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return craft_fail(CRAFT_EFORMAT,
                          "safetensors %s: file is %lld bytes, shorter than the 8-byte header length", path,
                          (long long)st.st_size);
    }
    /* private and writable: in-place ops on zero-copy weights get copy-on-write pages
     * instead of a fault, and the file itself is never modified */
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (base == MAP_FAILED)
        return craft_fail(CRAFT_EIO, "safetensors %s: mmap failed: %s", path, strerror(err));
    st_map *m = malloc(sizeof *m);
    if (!m) {
        munmap(base, (size_t)st.st_size);
        return craft_fail(CRAFT_ENOMEM, "safetensors %s: out of memory", path);
    }
    *m = (st_map){1, 1, base, (size_t)st.st_size};
    return open_map(m, path, out);
}

int craft_st_open_memory(const void *buf, size_t len, const char *what, craft_safetensors **out) {
    if (!out || (!buf && len))
        return craft_fail(CRAFT_EINVAL, "safetensors open_memory: NULL %s", out ? "buffer" : "out");
    if (len < 8)
        return craft_fail(CRAFT_EFORMAT,
                          "safetensors %s: buffer is %zu bytes, shorter than the 8-byte header length",
                          what ? what : "(memory)", len);
    st_map *m = malloc(sizeof *m);
    void *copy = malloc(len);
    if (!m || !copy) {
        free(m);
        free(copy);
        return craft_fail(CRAFT_ENOMEM, "safetensors: out of memory copying %zu bytes", len);
    }
    memcpy(copy, buf, len);
    *m = (st_map){1, 0, copy, len};
    return open_map(m, what, out);
}

void craft_st_close(craft_safetensors *f) {
    if (!f) return;
    free(f->e);
    free(f->by_name);
    free(f->meta_k);
    free(f->meta_v);
    if (f->root) json_decref(f->root);
    map_release(f->map);
    free(f->what);
    free(f);
}

int craft_st_count(const craft_safetensors *f) { return f ? f->n : 0; }

static const st_entry *entry(const craft_safetensors *f, int i) {
    return f && i >= 0 && i < f->n ? &f->e[i] : NULL;
}

const char *craft_st_name(const craft_safetensors *f, int i) {
    const st_entry *e = entry(f, i);
    return e ? e->name : NULL;
}

int craft_st_find(const craft_safetensors *f, const char *name) {
    if (!f || !name) return -1;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, f->by_name[mid].name);
        if (!c) return f->by_name[mid].index;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

int craft_st_info(const craft_safetensors *f, int i, int *dtype, int *ndim, int64_t *shape8) {
    const st_entry *e = entry(f, i);
    if (!e)
        return craft_fail(CRAFT_EINVAL, "safetensors %s: no tensor %d (the file has %d)",
                          f ? f->what : "(null)", i, f ? f->n : 0);
    if (dtype) *dtype = craft_st_dtypes[e->sdt].natural;
    if (ndim) *ndim = e->ndim;
    if (shape8) memcpy(shape8, e->shape, (size_t)e->ndim * sizeof *shape8);
    return CRAFT_OK;
}

const char *craft_st_dtype_name(const craft_safetensors *f, int i) {
    const st_entry *e = entry(f, i);
    return e ? craft_st_dtypes[e->sdt].name : NULL;
}

int64_t craft_st_nbytes(const craft_safetensors *f, int i) {
    const st_entry *e = entry(f, i);
    return e ? (int64_t)(e->end - e->begin) : -1;
}

const void *craft_st_raw(const craft_safetensors *f, int i) {
    const st_entry *e = entry(f, i);
    return e ? f->data + e->begin : NULL;
}

const char *craft_st_metadata(const craft_safetensors *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_k[i], key)) return f->meta_v[i];
    return NULL;
}
int craft_st_metadata_count(const craft_safetensors *f) { return f ? f->n_meta : 0; }
const char *craft_st_metadata_key(const craft_safetensors *f, int i) {
    return f && i >= 0 && i < f->n_meta ? f->meta_k[i] : NULL;
}

/* ---- conversion of file elements into craft dtypes ---- */

static float e4m3_to_float(uint8_t b) { /* float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN */
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    float v = e ? ldexpf(1.0f + (float)m / 8.0f, e - 7) : ldexpf((float)m / 8.0f, -6);
    return s ? -v : v;
}

static int is_float_kind(int k) { return k >= K_FLOAT; }

static double load_f(const unsigned char *p, int s) {
    uint16_t h;
    switch (craft_st_dtypes[s].kind) {
    case K_F16: memcpy(&h, p, 2); return craft_half_to_float(h);
    case K_BF16: memcpy(&h, p, 2); return craft_bf16_to_float(h);
    case K_E5M2: return craft_half_to_float((uint16_t)(p[0] << 8)); /* the top byte of a half */
    case K_E4M3: return e4m3_to_float(p[0]);
    default:
        if (craft_st_dtypes[s].size == 4) {
            float x;
            memcpy(&x, p, 4);
            return x;
        }
        double x;
        memcpy(&x, p, 8);
        return x;
    }
}

static int64_t load_i(const unsigned char *p, int s) {
    int sz = craft_st_dtypes[s].size, sgn = craft_st_dtypes[s].kind == K_SINT;
    if (sz == 1) return sgn ? (int64_t)(int8_t)p[0] : (int64_t)p[0];
    if (sz == 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        return sgn ? (int64_t)(int16_t)v : (int64_t)v;
    }
    if (sz == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return sgn ? (int64_t)(int32_t)v : (int64_t)v;
    }
    uint64_t v;
    memcpy(&v, p, 8);
    return (int64_t)v; /* U64 is range-checked before conversion */
}

static int64_t f_to_i(double d) {
    if (d != d) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

static void store(unsigned char *q, int dt, int isf, double d, int64_t i) {
    switch (dt) {
    case CRAFT_F32: {
        float v = isf ? (float)d : (float)i;
        memcpy(q, &v, 4);
        break;
    }
    case CRAFT_F64: {
        double v = isf ? d : (double)i;
        memcpy(q, &v, 8);
        break;
    }
    case CRAFT_F16: {
        uint16_t v = craft_float_to_half(isf ? (float)d : (float)i);
        memcpy(q, &v, 2);
        break;
    }
    case CRAFT_BF16: {
        uint16_t v = craft_float_to_bf16(isf ? (float)d : (float)i);
        memcpy(q, &v, 2);
        break;
    }
    case CRAFT_BOOL: *q = isf ? d != 0 : i != 0; break;
    default: {
        int64_t v = isf ? f_to_i(d) : i;
        if (dt == CRAFT_I64) memcpy(q, &v, 8);
        else if (dt == CRAFT_I32) {
            int32_t w = (int32_t)(uint32_t)(uint64_t)v;
            memcpy(q, &w, 4);
        } else *q = (unsigned char)(uint64_t)v;
    }
    }
}

static void convert_range(const unsigned char *src, int s, unsigned char *dst, int dt, int64_t lo,
                          int64_t hi) {
    size_t ss = (size_t)craft_st_dtypes[s].size, ds = craft_dtype_size(dt);
    int kind = craft_st_dtypes[s].kind;
    if (dt == CRAFT_F32 && (kind == K_F16 || kind == K_BF16)) { /* the common checkpoint case */
        float *o = (float *)dst;
        for (int64_t k = lo; k < hi; k++) {
            uint16_t h;
            memcpy(&h, src + 2 * k, 2);
            o[k] = kind == K_F16 ? craft_half_to_float(h) : craft_bf16_to_float(h);
        }
        return;
    }
    int isf = is_float_kind(kind);
    for (int64_t k = lo; k < hi; k++) {
        const unsigned char *p = src + (size_t)k * ss;
        store(dst + (size_t)k * ds, dt, isf, isf ? load_f(p, s) : 0, isf ? 0 : load_i(p, s));
    }
}

static void convert(const unsigned char *src, int s, unsigned char *dst, int dt, int64_t n) {
    const int64_t chunk = 1 << 16;
    int64_t nchunks = (n + chunk - 1) / chunk;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nchunks > 4)
#endif
    for (int64_t c = 0; c < nchunks; c++)
        convert_range(src, s, dst, dt, c * chunk, c + 1 < nchunks ? (c + 1) * chunk : n);
}

int craft_st_load(craft_safetensors *f, int i, int want_dtype, craft_tensor **out) {
    const st_entry *e = entry(f, i);
    char nb[160];
    if (!e || !out)
        return craft_fail(CRAFT_EINVAL, "safetensors %s: load of tensor %d (the file has %d)%s",
                          f ? f->what : "(null)", i, f ? f->n : 0, out ? "" : " with NULL out");
    int s = e->sdt, dt = want_dtype < 0 ? craft_st_dtypes[s].natural : want_dtype;
    if (!craft_dtype_size(dt))
        return craft_fail(CRAFT_ETYPE, "safetensors %s: tensor \"%s\": unknown target dtype %d", f->what,
                          craft_st_clean(e->name, nb, sizeof nb), want_dtype);
    unsigned char *src = f->data + e->begin;
    uint64_t nbytes = e->end - e->begin;
    int64_t n = (int64_t)(nbytes / (uint64_t)craft_st_dtypes[s].size);
    if (craft_st_dtypes[s].direct == dt && n > 0 &&
        (uintptr_t)src % (uintptr_t)craft_st_dtypes[s].size == 0) {
        __atomic_add_fetch(&f->map->refs, 1, __ATOMIC_RELAXED);
        int rc = craft_from_external(e->ndim, e->shape, dt, src, (size_t)nbytes, map_release_cb, f->map, out);
        if (rc) map_release(f->map);
        return rc ? craft_fail_prefix(rc, "safetensors %s: tensor \"%s\"", f->what,
                                      craft_st_clean(e->name, nb, sizeof nb))
                  : CRAFT_OK;
    }
    if (craft_st_dtypes[s].kind == K_UINT && craft_st_dtypes[s].size == 8 && !(dt == CRAFT_BOOL))
        for (int64_t k = 0; k < n; k++) {
            uint64_t v;
            memcpy(&v, src + 8 * k, 8);
            if (v > (uint64_t)INT64_MAX)
                return craft_fail(
                    CRAFT_EUNSUPPORTED,
                    "safetensors %s: tensor \"%s\": U64 value %llu at element %lld does not fit int64",
                    f->what, craft_st_clean(e->name, nb, sizeof nb), (unsigned long long)v, (long long)k);
        }
    craft_tensor *t;
    int rc = craft_empty(e->ndim, e->shape, dt, CRAFT_DEVICE_CPU, &t);
    if (rc)
        return craft_fail_prefix(rc, "safetensors %s: tensor \"%s\"", f->what,
                                 craft_st_clean(e->name, nb, sizeof nb));
    unsigned char *dst = craft_tensor_data(t);
    if (craft_st_dtypes[s].direct == dt) memcpy(dst, src, (size_t)nbytes); /* misaligned: copy as is */
    else convert(src, s, dst, dt, n);
    *out = t;
    return CRAFT_OK;
}
