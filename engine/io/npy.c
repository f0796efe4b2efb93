/* npy.c: NumPy .npy reading (format versions 1, 2 and 3); npy_write.c writes.
 *
 * The reader is streaming (craft_npy_read_stream): it pulls the fixed prefix, then the header,
 * checks the claimed shape and dtype against the bytes that are really there, and only then
 * allocates and reads the data straight into the result, so that npz members (npz.c) need no
 * second copy. Files are untrusted: the header is parsed by a small, bounded parser of the
 * Python dict literal numpy writes, every product is overflow-checked, and nothing is
 * allocated before the byte count confirms it. */
#include "core/internal.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

/* numpy itself refuses headers over 10000 bytes unless told otherwise; we only need to be
 * bounded, and structured dtypes (the reason for long headers) are not supported anyway. */
#define NPY_MAX_HEADER (1u << 20)
#define NPY_MAX_TEXT_ITEM (1 << 20)

/* Reader callback: bytes read (0 at the end), or -1 with the error set. */
typedef long long (*craft_npy_read_fn)(void *ctx, void *dst, size_t n);
int craft_npy_read_stream(craft_npy_read_fn rd, void *ctx, uint64_t total, const char *what, const char *noun,
                          int header_only, craft_array *out);

typedef struct npy_type {
    int kind;        /* 'b' 'i' 'u' 'f' 'U' 'S' */
    int64_t srcsize; /* bytes per element in the file */
    int swap;        /* file is big-endian */
    int dtype;       /* craft dtype of the result */
    int64_t outsize; /* bytes per element in the result */
} npy_type;

typedef struct npy_header {
    npy_type t;
    int fortran, ndim, seen;
    int64_t shape[CRAFT_MAX_DIMS];
    char descr[32];
} npy_header;

/* "4708x28x28" (or "scalar") for messages. */
static const char *dims_x(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    if (ndim == 0) {
        snprintf(buf, n, "scalar");
        return buf;
    }
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? "x%lld" : "%lld", (long long)shape[i]);
    return buf;
}

static int parse_descr(const char *d, const char *what, npy_type *t) {
    char order = d[0];
    const char *p = d;
    if (order == '<' || order == '>' || order == '|' || order == '=') p++;
    else order = '=';
    int kind = *p++;
    if (!kind || !strchr("biufcUSaOMmV?", kind))
        return craft_fail(CRAFT_EFORMAT, "%s: dtype '%s' not understood", what, d);
    if (kind == 'O' || kind == 'V' || kind == 'M' || kind == 'm' || kind == 'c')
        return craft_fail(CRAFT_EUNSUPPORTED,
                          "%s: dtype '%s' not supported (bool, int, uint, float, "
                          "'U' and 'S' strings are)",
                          what, d);
    long long n = 0;
    if (kind == '?' && !*p) {
        kind = 'b';
        n = 1;
    } /* '?' alone means bool */
    if (kind == 'a') kind = 'S';
    if (!n && (*p < '0' || *p > '9'))
        return craft_fail(CRAFT_EFORMAT, "%s: dtype '%s' not understood", what, d);
    while (*p >= '0' && *p <= '9' && n <= NPY_MAX_TEXT_ITEM) n = n * 10 + (*p++ - '0');
    if (*p || n <= 0 || n > NPY_MAX_TEXT_ITEM)
        return craft_fail(CRAFT_EFORMAT, "%s: dtype '%s' not understood", what, d);
    t->kind = kind;
    t->srcsize = n;
    t->swap = order == '>' && n > 1;
    t->outsize = n;
    switch (kind) {
    case 'b':
        t->dtype = CRAFT_BOOL;
        if (n == 1) return CRAFT_OK;
        break;
    case 'i':
        if (n == 1) {
            t->dtype = CRAFT_I8;
            return CRAFT_OK;
        }
        if (n == 2 || n == 4) {
            t->dtype = CRAFT_I32;
            t->outsize = 4;
            return CRAFT_OK;
        }
        if (n == 8) {
            t->dtype = CRAFT_I64;
            return CRAFT_OK;
        }
        break;
    case 'u':
        if (n == 1) {
            t->dtype = CRAFT_U8;
            return CRAFT_OK;
        }
        if (n == 2) {
            t->dtype = CRAFT_I32;
            t->outsize = 4;
            return CRAFT_OK;
        }
        if (n == 4 || n == 8) {
            t->dtype = CRAFT_I64;
            t->outsize = 8;
            return CRAFT_OK;
        }
        break;
    case 'f':
        if (n == 2) {
            t->dtype = CRAFT_F16;
            return CRAFT_OK;
        }
        if (n == 4) {
            t->dtype = CRAFT_F32;
            return CRAFT_OK;
        }
        if (n == 8) {
            t->dtype = CRAFT_F64;
            return CRAFT_OK;
        }
        break;
    case 'U': /* n code points of 4 bytes */
        t->srcsize = t->outsize = 4 * n;
        t->swap = order == '>';
        t->dtype = CRAFT_ARRAY_UNICODE;
        return CRAFT_OK;
    case 'S':
        t->swap = 0;
        t->dtype = CRAFT_ARRAY_BYTES;
        return CRAFT_OK;
    }
    return craft_fail(CRAFT_EUNSUPPORTED,
                      "%s: dtype '%s' not supported (bool, int, uint, float, "
                      "'U' and 'S' strings are)",
                      what, d);
}

/* ---- the header: a Python dict literal such as
 *      {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }                       */
typedef struct hp {
    const char *s, *e;
} hp;

static void skip_ws(hp *p) {
    while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}
static int eat(hp *p, char c) {
    skip_ws(p);
    if (p->s < p->e && *p->s == c) {
        p->s++;
        return 1;
    }
    return 0;
}
static int read_str(hp *p, char *buf, size_t n) {
    skip_ws(p);
    if (p->s >= p->e || (*p->s != '\'' && *p->s != '"')) return 0;
    char q = *p->s++;
    size_t k = 0;
    while (p->s < p->e && *p->s != q) {
        if (*p->s == '\\' || *p->s == 0 || k + 1 >= n) return 0;
        buf[k++] = *p->s++;
    }
    if (p->s >= p->e) return 0;
    p->s++;
    buf[k] = 0;
    return 1;
}
static int read_word(hp *p, const char *w) {
    size_t n = strlen(w);
    skip_ws(p);
    if ((size_t)(p->e - p->s) >= n && !memcmp(p->s, w, n)) {
        p->s += n;
        return 1;
    }
    return 0;
}

static int parse_header(const char *s, size_t n, const char *what, npy_header *h) {
    hp p = {s, s + n};
    char key[32];
    if (!eat(&p, '{')) goto bad;
    for (;;) {
        if (eat(&p, '}')) break;
        if (!read_str(&p, key, sizeof key) || !eat(&p, ':')) goto bad;
        skip_ws(&p);
        if (!strcmp(key, "descr")) {
            if (h->seen & 1) goto dup;
            if (p.s < p.e && *p.s == '[')
                return craft_fail(CRAFT_EUNSUPPORTED, "%s: structured dtypes are not supported", what);
            if (!read_str(&p, h->descr, sizeof h->descr)) goto bad;
            h->seen |= 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (h->seen & 2) goto dup;
            if (read_word(&p, "True")) h->fortran = 1;
            else if (read_word(&p, "False")) h->fortran = 0;
            else goto bad;
            h->seen |= 2;
        } else if (!strcmp(key, "shape")) {
            if (h->seen & 4) goto dup;
            if (!eat(&p, '(')) goto bad;
            h->ndim = 0;
            for (;;) {
                if (eat(&p, ')')) break;
                skip_ws(&p);
                if (p.s < p.e && *p.s == '-')
                    return craft_fail(CRAFT_EFORMAT, "%s: negative dimension in shape", what);
                if (p.s >= p.e || *p.s < '0' || *p.s > '9') goto bad;
                if (h->ndim == CRAFT_MAX_DIMS)
                    return craft_fail(CRAFT_EUNSUPPORTED, "%s: more than %d dimensions", what,
                                      CRAFT_MAX_DIMS);
                int64_t v = 0;
                while (p.s < p.e && *p.s >= '0' && *p.s <= '9') {
                    if (v > (INT64_MAX - 9) / 10)
                        return craft_fail(CRAFT_EFORMAT, "%s: dimension too large in shape", what);
                    v = v * 10 + (*p.s++ - '0');
                }
                if (p.s < p.e && *p.s == 'L') p.s++; /* Python 2 long */
                h->shape[h->ndim++] = v;
                if (eat(&p, ')')) break;
                if (!eat(&p, ',')) goto bad;
            }
            h->seen |= 4;
        } else {
            return craft_fail(CRAFT_EFORMAT, "%s: unexpected key '%s' in header", what, key);
        }
        if (eat(&p, '}')) break;
        if (!eat(&p, ',')) goto bad;
    }
    skip_ws(&p);
    if (p.s != p.e) goto bad;
    if (h->seen != 7)
        return craft_fail(CRAFT_EFORMAT, "%s: header lacks '%s'", what,
                          !(h->seen & 1)       ? "descr"
                              : !(h->seen & 2) ? "fortran_order"
                                               : "shape");
    return parse_descr(h->descr, what, &h->t);
dup:
    return craft_fail(CRAFT_EFORMAT, "%s: key '%s' twice in header", what, key);
bad:
    return craft_fail(CRAFT_EFORMAT, "%s: malformed header near offset %d: \"%.40s\"", what, (int)(p.s - s),
                      p.s < p.e ? p.s : "");
}

static void byteswap(uint8_t *d, int64_t count, int64_t unit) {
    for (int64_t i = 0; i < count; i++, d += unit)
        for (int64_t a = 0, b = unit - 1; a < b; a++, b--) {
            uint8_t x = d[a];
            d[a] = d[b];
            d[b] = x;
        }
}

/* Raw file elements (already in native byte order) sit at the start of buf; widen them in
 * place, last element first, so that no unread element is overwritten. */
static int widen(uint8_t *buf, int64_t n, const npy_type *t, const char *what) {
    if (t->kind == 'b') {
        for (int64_t i = 0; i < n; i++) buf[i] = buf[i] != 0;
        return CRAFT_OK;
    }
    if (t->kind == 'u' && t->srcsize == 8) {
        for (int64_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, buf + 8 * i, 8);
            if (v > (uint64_t)INT64_MAX)
                return craft_fail(CRAFT_EUNSUPPORTED, "%s: u64 element %lld = %llu does not fit i64", what,
                                  (long long)i, (unsigned long long)v);
        }
        return CRAFT_OK;
    }
    if (t->srcsize == t->outsize) return CRAFT_OK;
    for (int64_t i = n - 1; i >= 0; i--) {
        if (t->kind == 'i' && t->srcsize == 2) {
            int16_t v;
            memcpy(&v, buf + 2 * i, 2);
            int32_t o = v;
            memcpy(buf + 4 * i, &o, 4);
        } else if (t->kind == 'u' && t->srcsize == 2) {
            uint16_t v;
            memcpy(&v, buf + 2 * i, 2);
            int32_t o = v;
            memcpy(buf + 4 * i, &o, 4);
        } else { /* u4 */
            uint32_t v;
            memcpy(&v, buf + 4 * i, 4);
            int64_t o = v;
            memcpy(buf + 8 * i, &o, 8);
        }
    }
    return CRAFT_OK;
}

/* Fortran (column-major) to C order. */
static void fortran_to_c(const uint8_t *src, uint8_t *dst, int ndim, const int64_t *shape, int64_t numel,
                         size_t es) {
    int64_t fstride[CRAFT_MAX_DIMS], idx[CRAFT_MAX_DIMS] = {0};
    int64_t s = 1;
    for (int d = 0; d < ndim; d++) {
        fstride[d] = s;
        s *= shape[d];
    }
    int64_t off = 0;
    for (int64_t i = 0; i < numel; i++) {
        memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
        for (int d = ndim - 1; d >= 0; d--) {
            off += fstride[d];
            if (++idx[d] < shape[d]) break;
            off -= fstride[d] * shape[d];
            idx[d] = 0;
        }
    }
}

static int read_exact(craft_npy_read_fn rd, void *ctx, void *dst, size_t n, size_t *got) {
    *got = 0;
    while (*got < n) {
        long long r = rd(ctx, (uint8_t *)dst + *got, n - *got);
        if (r < 0) return -1;
        if (r == 0) return 0;
        *got += (size_t)r;
    }
    return 1;
}

int craft_npy_read_stream(craft_npy_read_fn rd, void *ctx, uint64_t total, const char *what, const char *noun,
                          int header_only, craft_array *out) {
    uint8_t pre[12];
    size_t got;
    int r = read_exact(rd, ctx, pre, 10, &got);
    if (r < 0) return craft_last_status();
    if (r == 0 || memcmp(pre, "\x93NUMPY", 6))
        return craft_fail(CRAFT_EFORMAT, "%s: not a .npy (%s)", what,
                          got < 6 ? "too short for the magic" : "no \\x93NUMPY magic");
    int major = pre[6];
    if ((major != 1 && major != 2 && major != 3) || pre[7] != 0)
        return craft_fail(CRAFT_EUNSUPPORTED,
                          "%s: npy format version %d.%d not supported (1.0, 2.0, 3.0 are)", what, pre[6],
                          pre[7]);
    uint64_t hlen, prefix = major == 1 ? 10 : 12;
    if (major == 1) hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
    else {
        r = read_exact(rd, ctx, pre + 10, 2, &got);
        if (r < 0) return craft_last_status();
        if (r == 0) return craft_fail(CRAFT_EFORMAT, "%s: truncated in the npy prefix", what);
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    }
    if (hlen > NPY_MAX_HEADER)
        return craft_fail(CRAFT_EFORMAT, "%s: npy header length %llu is implausible", what,
                          (unsigned long long)hlen);
    if (prefix + hlen > total)
        return craft_fail(CRAFT_EFORMAT, "%s: truncated: header needs %llu bytes but the %s has %llu", what,
                          (unsigned long long)(prefix + hlen), noun, (unsigned long long)total);
    char *hs = malloc(hlen + 1);
    if (!hs) return craft_fail(CRAFT_ENOMEM, "%s: no memory for the header", what);
    r = read_exact(rd, ctx, hs, hlen, &got);
    if (r <= 0) {
        free(hs);
        return r < 0 ? craft_last_status()
                     : craft_fail(CRAFT_EFORMAT, "%s: truncated inside the header", what);
    }
    hs[hlen] = 0;
    npy_header h;
    memset(&h, 0, sizeof h);
    int rc = parse_header(hs, hlen, what, &h);
    free(hs);
    if (rc) return rc;

    int64_t numel = 1;
    int overflow = 0, zero = 0;
    for (int d = 0; d < h.ndim; d++) {
        zero |= h.shape[d] == 0;
        overflow |= __builtin_mul_overflow(numel, h.shape[d], &numel);
    }
    if (zero) {
        numel = 0;
        overflow = 0;
    }
    int64_t src_bytes, out_bytes;
    char dbuf[200];
    if (overflow || __builtin_mul_overflow(numel, h.t.srcsize, &src_bytes) ||
        __builtin_mul_overflow(numel, h.t.outsize, &out_bytes) || (uint64_t)out_bytes > SIZE_MAX / 2)
        return craft_fail(CRAFT_EFORMAT, "%s: shape %s of '%s' is too large", what,
                          dims_x(h.ndim, h.shape, dbuf, sizeof dbuf), h.descr);
    uint64_t data_len = total - prefix - hlen;
    if ((uint64_t)src_bytes != data_len)
        return craft_fail(CRAFT_EFORMAT,
                          "%s: header claims %s '%s' (%lld bytes) but the %s has %llu bytes of data", what,
                          dims_x(h.ndim, h.shape, dbuf, sizeof dbuf), h.descr, (long long)src_bytes, noun,
                          (unsigned long long)data_len);

    craft_array a;
    memset(&a, 0, sizeof a);
    a.dtype = h.t.dtype;
    a.ndim = h.ndim;
    memcpy(a.shape, h.shape, sizeof h.shape);
    a.numel = numel;
    a.itemsize = h.t.outsize;
    a.nbytes = (size_t)out_bytes;
    if (header_only || out_bytes == 0) {
        *out = a;
        return CRAFT_OK;
    }

    uint8_t *buf = craft_alloc((size_t)out_bytes);
    if (!buf) return craft_fail_prefix(CRAFT_ENOMEM, "%s", what);
    r = read_exact(rd, ctx, buf, (size_t)src_bytes, &got);
    if (r <= 0) {
        craft_free(buf, (size_t)out_bytes);
        if (r < 0) return craft_last_status();
        return craft_fail(CRAFT_EFORMAT, "%s: truncated: data ends after %zu of %lld bytes", what, got,
                          (long long)src_bytes);
    }
    if (h.t.swap)
        byteswap(buf, h.t.kind == 'U' ? numel * h.t.srcsize / 4 : numel, h.t.kind == 'U' ? 4 : h.t.srcsize);
    rc = widen(buf, numel, &h.t, what);
    if (rc == CRAFT_OK && h.fortran && h.ndim > 1) {
        uint8_t *c = craft_alloc((size_t)out_bytes);
        if (!c) rc = craft_fail_prefix(CRAFT_ENOMEM, "%s: fortran_order transpose", what);
        else {
            fortran_to_c(buf, c, h.ndim, h.shape, numel, (size_t)h.t.outsize);
            craft_free(buf, (size_t)out_bytes);
            buf = c;
        }
    }
    if (rc) {
        craft_free(buf, (size_t)out_bytes);
        return rc;
    }
    a.data = buf;
    *out = a;
    return CRAFT_OK;
}

/* ---- sources: memory and FILE */
typedef struct mem_src {
    const uint8_t *p;
    size_t left;
} mem_src;
static long long mem_read(void *ctx, void *dst, size_t n) {
    mem_src *m = ctx;
    if (n > m->left) n = m->left;
    memcpy(dst, m->p, n);
    m->p += n;
    m->left -= n;
    return (long long)n;
}

typedef struct file_src {
    FILE *f;
    const char *what;
} file_src;
static long long file_read(void *ctx, void *dst, size_t n) {
    file_src *s = ctx;
    size_t k = fread(dst, 1, n, s->f);
    if (k == 0 && ferror(s->f))
        return craft_fail(CRAFT_EIO, "%s: read error: %s", s->what, strerror(errno)), -1;
    return (long long)k;
}

int craft_npy_parse(const void *buf, size_t len, const char *what, craft_array *out) {
    char w[512];
    if (!out || (!buf && len)) return craft_fail(CRAFT_EINVAL, "npy_parse: NULL argument");
    snprintf(w, sizeof w, "npy %s", what ? what : "(buffer)");
    mem_src m = {buf, len};
    return craft_npy_read_stream(mem_read, &m, len, w, "buffer", 0, out);
}

int craft_npy_read_file(const char *path, craft_array *out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "npy_read_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return craft_fail(CRAFT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return craft_fail(CRAFT_EIO, "npy %s: not a regular file", path);
    }
    char w[512];
    snprintf(w, sizeof w, "npy %s", path);
    file_src s = {f, w};
    int rc = craft_npy_read_stream(file_read, &s, (uint64_t)st.st_size, w, "file", 0, out);
    fclose(f);
    return rc;
}

void craft_array_free(craft_array *a) {
    if (!a) return;
    if (a->data) craft_free(a->data, a->nbytes);
    memset(a, 0, sizeof *a);
}

static void release_pool(void *ctx, void *data, size_t nbytes) {
    (void)ctx;
    craft_free(data, nbytes);
}

int craft_array_to_tensor(craft_array *a, craft_tensor **out) {
    if (!a) return craft_fail(CRAFT_EINVAL, "array_to_tensor: no array");
    if (a->dtype == CRAFT_ARRAY_UNICODE || a->dtype == CRAFT_ARRAY_BYTES)
        return craft_fail(CRAFT_ETYPE, "array_to_tensor: a text array cannot become a tensor");
    if (!a->data) { /* empty: a fresh (zero-size) tensor */
        int rc = craft_empty(a->ndim, a->shape, a->dtype, 0, out);
        if (!rc) craft_array_free(a);
        return rc;
    }
    CRAFT_TRY(craft_from_external(a->ndim, a->shape, a->dtype, a->data, a->nbytes, release_pool, NULL, out));
    memset(a, 0, sizeof *a); /* the tensor owns the memory now */
    return CRAFT_OK;
}

int craft_array_string(const craft_array *a, int64_t i, char *buf, size_t bufsize) {
    if (!a || !buf || !bufsize) return craft_fail(CRAFT_EINVAL, "array_string: NULL argument");
    if (a->dtype != CRAFT_ARRAY_UNICODE && a->dtype != CRAFT_ARRAY_BYTES)
        return craft_fail(CRAFT_ETYPE, "array_string: not a text array (dtype %d)", a->dtype);
    if (i < 0 || i >= a->numel || !a->data)
        return craft_fail(CRAFT_EINVAL, "array_string: index %lld out of range [0, %lld)", (long long)i,
                          (long long)a->numel);
    const uint8_t *e = (const uint8_t *)a->data + (size_t)(i * a->itemsize);
    size_t k = 0;
    if (a->dtype == CRAFT_ARRAY_BYTES) {
        int64_t n = a->itemsize;
        while (n > 0 && e[n - 1] == 0) n--;
        for (int64_t j = 0; j < n; j++) {
            if (k + 1 >= bufsize) goto small;
            buf[k++] = (char)e[j];
        }
    } else {
        int64_t n = a->itemsize / 4;
        uint32_t c;
        while (n > 0 && (memcpy(&c, e + 4 * (n - 1), 4), c == 0)) n--;
        for (int64_t j = 0; j < n; j++) {
            char tmp[4];
            memcpy(&c, e + 4 * j, 4);
            size_t m = craft_utf8_put(c, tmp);
            if (k + m >= bufsize) goto small;
            memcpy(buf + k, tmp, m);
            k += m;
        }
    }
    buf[k] = 0;
    return CRAFT_OK;
small:
    buf[0] = 0;
    return craft_fail(CRAFT_EINVAL, "array_string: element %lld does not fit %zu bytes", (long long)i,
                      bufsize);
}
