/* fixture.h: the op-fixture reader shared by the C tests (tests/fixtures/ops/<name>.bin, made by
 * tests/fixtures/make_*_fixtures.py). A file is a sequence of records, each a header line
 * "name ndim d0 d1 ...\n" followed by numel float32 values, little-endian (as is the host).
 * Directory: $CRAFT_FIXTURES_OPS if set, else tests/fixtures/ops (tests run from the repository
 * root). Every field is bounds-checked; each tensor gets its own aligned copy of its data. */
#ifndef CRAFT_FIXTURE_H
#define CRAFT_FIXTURE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

#define FX_MAX_NAME 64 /* including the terminating NUL */
#define FX_MAX_DIM 8
#define FX_MAX_EXTENT ((int64_t)1 << 24) /* per dimension */
#define FX_MAX_HEADER 1024               /* bytes in one header line */

typedef struct {
    char name[FX_MAX_NAME];
    int ndim;
    int64_t shape[FX_MAX_DIM];
    int64_t numel;
    float *data;
} fx_tensor;
typedef struct {
    fx_tensor *t;
    int n, cap;
} fx_file;

static const char *fx_dir(void) {
    const char *env = getenv("CRAFT_FIXTURES_OPS");
    return env && *env ? env : "tests/fixtures/ops";
}

static void fx_free(fx_file *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].data);
    free(f->t);
    memset(f, 0, sizeof *f);
}

/* Parses one header line (NUL-terminated, without its '\n') into t; 0 on success. */
static int fx_parse_header_(char *line, fx_tensor *t) {
    char *sp = strchr(line, ' '), *p, *end;
    if (!sp || sp == line || sp - line >= FX_MAX_NAME) return -1;
    memset(t, 0, sizeof *t);
    memcpy(t->name, line, (size_t)(sp - line));
    long nd = strtol(sp, &end, 10);
    if (end == sp || nd < 0 || nd > FX_MAX_DIM) return -1;
    t->ndim = (int)nd;
    t->numel = 1;
    p = end;
    for (int i = 0; i < t->ndim; i++) {
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 0 || d > FX_MAX_EXTENT) return -1;
        t->shape[i] = d;
        t->numel *= d; /* <= 2^24 * 2^31 before the check below: no overflow */
        if (t->numel > INT32_MAX) return -1;
        p = end;
    }
    while (*p == ' ' || *p == '\r' || *p == '\t') p++;
    return *p ? -1 : 0;
}

/* Reads <fx_dir()>/<file> into f; 0 on success, -1 (with a message on stderr) on a missing,
 * empty, truncated or malformed file. f is zeroed first and is always safe to fx_free. */
static int fx_load(const char *file, fx_file *f) {
    char path[1024];
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "%s/%s", fx_dir(), file);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot open fixture %s (run from the repository root or set CRAFT_FIXTURES_OPS)\n",
                path);
        return -1;
    }
    char *buf = NULL;
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, fp) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(fp);
    if (!buf) {
        fprintf(stderr, "cannot read fixture %s\n", path);
        return -1;
    }
    const char *why = NULL;
    long pos = 0;
    while (pos < len && !why) {
        long room = len - pos;
        char *nl = memchr(buf + pos, '\n', (size_t)(room < FX_MAX_HEADER ? room : FX_MAX_HEADER));
        if (!nl) {
            why = "header line without a newline";
            break;
        }
        *nl = 0;
        if (memchr(buf + pos, 0, (size_t)(nl - (buf + pos)))) {
            why = "NUL in a header line";
            break;
        }
        fx_tensor t;
        if (fx_parse_header_(buf + pos, &t)) {
            why = "malformed header line";
            break;
        }
        pos = nl + 1 - buf;
        if (t.numel > (len - pos) / (long)sizeof(float)) {
            why = "data shorter than its shape";
            break;
        }
        if (f->n == f->cap) {
            int cap = f->cap ? 2 * f->cap : 32;
            fx_tensor *nt = realloc(f->t, (size_t)cap * sizeof *nt);
            if (!nt) {
                why = "out of memory";
                break;
            }
            f->t = nt;
            f->cap = cap;
        }
        t.data = malloc((size_t)(t.numel ? t.numel : 1) * sizeof(float)); /* aligned copy */
        if (!t.data) {
            why = "out of memory";
            break;
        }
        memcpy(t.data, buf + pos, (size_t)t.numel * sizeof(float));
        pos += (long)t.numel * (long)sizeof(float);
        f->t[f->n++] = t;
    }
    free(buf);
    if (!why && f->n == 0) why = "no tensors";
    if (why) {
        fprintf(stderr, "fixture %s: %s (after %d tensors)\n", path, why, f->n);
        fx_free(f);
        return -1;
    }
    return 0;
}

/* The tensor called name, or NULL (for optional entries). */
static const fx_tensor *fx_find(const fx_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

/* The tensor called name; a missing one is a failed check. */
static const fx_tensor *fx_get(const fx_file *f, const char *name) {
    const fx_tensor *t = fx_find(f, name);
    if (!t) CHECK_MSG(0, "fixture tensor %s missing", name);
    return t;
}

/* A new dense f32 craft_tensor holding r's values; NULL when r is NULL or creation fails. */
static craft_tensor *fx_craft(const fx_tensor *r, int requires_grad) {
    craft_tensor *t = NULL;
    if (!r || craft_from_data(r->ndim, r->shape, CRAFT_F32, r->data, &t) != CRAFT_OK) return NULL;
    if (requires_grad) craft_set_requires_grad(t, 1);
    return t;
}
#endif
