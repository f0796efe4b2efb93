/* json.c: JSON documents for the Lua side (which has no JSON library): diffusers config.json,
 * model_index.json, scheduler_config.json, tokenizer vocab.json. jansson parses; the tree is
 * then flattened into numbered nodes so that Lua walks it with plain integers and every access
 * is bounds-checked (no pointers into the tree ever reach Lua). */
#include "core/internal.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_MAX_FILE (512ull << 20)

typedef struct jnode {
    json_t *j;        /* borrowed from the document's tree */
    const char *key;  /* key in the parent object, NULL otherwise */
    int first, count; /* children: nodes first .. first + count - 1 */
} jnode;

struct craft_json {
    char *what;
    json_t *root;
    jnode *nodes;
    int n, cap;
};

static int push(craft_json *d, json_t *j, const char *key) {
    if (d->n == d->cap) {
        if (d->cap > INT_MAX / 4)
            return craft_fail(CRAFT_EFORMAT, "json %s: more than %d values", d->what, d->cap);
        int nc = d->cap ? d->cap * 2 : 64;
        jnode *nn = realloc(d->nodes, (size_t)nc * sizeof *nn);
        if (!nn) return craft_fail(CRAFT_ENOMEM, "json %s: out of memory for %d values", d->what, nc);
        d->nodes = nn;
        d->cap = nc;
    }
    d->nodes[d->n++] = (jnode){j, key, 0, 0};
    return CRAFT_OK;
}

/* Breadth first, so that each node's children get consecutive numbers. */
static int flatten(craft_json *d) {
    CRAFT_TRY(push(d, d->root, NULL));
    for (int i = 0; i < d->n; i++) {
        json_t *j = d->nodes[i].j;
        int first = d->n;
        if (json_is_array(j)) {
            size_t k;
            json_t *v;
            json_array_foreach(j, k, v) CRAFT_TRY(push(d, v, NULL));
        } else if (json_is_object(j)) {
            const char *k;
            json_t *v;
            json_object_foreach(j, k, v) CRAFT_TRY(push(d, v, k));
        }
        d->nodes[i].first = first; /* d->nodes may have moved: index again */
        d->nodes[i].count = d->n - first;
    }
    return CRAFT_OK;
}

int craft_json_parse_string(const char *text, size_t len, const char *what, craft_json **out) {
    if (!what) what = "(string)";
    if (!out || (!text && len))
        return craft_fail(CRAFT_EINVAL, "json %s: NULL %s", what, out ? "text" : "out");
    craft_json *d = calloc(1, sizeof *d);
    if (!d || !(d->what = strdup(what))) {
        free(d);
        return craft_fail(CRAFT_ENOMEM, "json %s: out of memory", what);
    }
    json_error_t err;
    /* JSON_DECODE_ANY: vocabularies and configs are objects, but a bare value is still JSON */
    d->root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    int rc = d->root
        ? flatten(d)
        : craft_fail(CRAFT_EFORMAT, "json %s: line %d, column %d: %s", what, err.line, err.column, err.text);
    if (rc) {
        craft_json_free(d);
        return rc;
    }
    *out = d;
    return CRAFT_OK;
}

int craft_json_parse_file(const char *path, craft_json **out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "json: NULL %s", path ? "out" : "path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return craft_fail(CRAFT_EIO, "json %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return craft_fail(CRAFT_EIO, "json %s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > JSON_MAX_FILE) {
        close(fd);
        return craft_fail(CRAFT_EFORMAT, "json %s: %lld bytes is beyond the 512 MB limit", path,
                          (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *buf = malloc(len + 1);
    if (!buf) {
        close(fd);
        return craft_fail(CRAFT_ENOMEM, "json %s: out of memory for %zu bytes", path, len);
    }
    while (got < len) {
        ssize_t k = read(fd, buf + got, len - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    int err = errno;
    close(fd);
    if (got < len) {
        free(buf);
        return craft_fail(CRAFT_EIO, "json %s: read %zu of %zu bytes: %s", path, got, len, strerror(err));
    }
    int rc = craft_json_parse_string(buf, len, path, out);
    free(buf);
    return rc;
}

void craft_json_free(craft_json *d) {
    if (!d) return;
    if (d->root) json_decref(d->root);
    free(d->nodes);
    free(d->what);
    free(d);
}

static const jnode *node(const craft_json *d, int i) { return d && i >= 0 && i < d->n ? &d->nodes[i] : NULL; }

int craft_json_node_count(const craft_json *d) { return d ? d->n : 0; }

int craft_json_type(const craft_json *d, int i) {
    const jnode *x = node(d, i);
    if (!x) return -1;
    switch (json_typeof(x->j)) {
    case JSON_OBJECT: return CRAFT_JSON_OBJECT;
    case JSON_ARRAY: return CRAFT_JSON_ARRAY;
    case JSON_STRING: return CRAFT_JSON_STRING;
    case JSON_INTEGER: return CRAFT_JSON_INTEGER;
    case JSON_REAL: return CRAFT_JSON_REAL;
    case JSON_TRUE: return CRAFT_JSON_TRUE;
    case JSON_FALSE: return CRAFT_JSON_FALSE;
    default: return CRAFT_JSON_NULL;
    }
}

int64_t craft_json_length(const craft_json *d, int i) {
    const jnode *x = node(d, i);
    if (!x) return -1;
    if (json_is_string(x->j)) return (int64_t)json_string_length(x->j);
    return x->count;
}

int craft_json_child(const craft_json *d, int i, int k) {
    const jnode *x = node(d, i);
    return x && k >= 0 && k < x->count ? x->first + k : -1;
}

const char *craft_json_key(const craft_json *d, int i, int k) {
    const jnode *x = node(d, i);
    return x && json_is_object(x->j) && k >= 0 && k < x->count ? d->nodes[x->first + k].key : NULL;
}

int craft_json_get(const craft_json *d, int i, const char *key) {
    const jnode *x = node(d, i);
    if (!x || !key || !json_is_object(x->j)) return -1;
    for (int k = 0; k < x->count; k++) /* configs are small; vocabularies are walked, not searched */
        if (!strcmp(d->nodes[x->first + k].key, key)) return x->first + k;
    return -1;
}

const char *craft_json_string(const craft_json *d, int i) {
    const jnode *x = node(d, i);
    return x && json_is_string(x->j) ? json_string_value(x->j) : NULL;
}

static int wrong(const craft_json *d, int i, const char *want) {
    static const char *names[] = {"null",   "false",    "true",     "an integer",
                                  "a real", "a string", "an array", "an object"};
    int t = craft_json_type(d, i);
    if (t < 0)
        return craft_fail(CRAFT_EINVAL, "json %s: no node %d (the document has %d)", d ? d->what : "(null)",
                          i, d ? d->n : 0);
    const char *key = d->nodes[i].key;
    return craft_fail(CRAFT_ETYPE, "json %s: node %d%s%s%s is %s, expected %s", d->what, i, key ? " (\"" : "",
                      key ? key : "", key ? "\")" : "", names[t], want);
}

int craft_json_number(const craft_json *d, int i, double *out) {
    const jnode *x = node(d, i);
    if (!x || !json_is_number(x->j)) return wrong(d, i, "a number");
    if (out) *out = json_number_value(x->j);
    return CRAFT_OK;
}

int craft_json_integer(const craft_json *d, int i, int64_t *out) {
    const jnode *x = node(d, i);
    if (x && json_is_integer(x->j)) {
        if (out) *out = json_integer_value(x->j);
        return CRAFT_OK;
    }
    if (x && json_is_real(x->j)) { /* 64.0 in a config means 64 */
        double v = json_real_value(x->j);
        if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
            if (out) *out = (int64_t)v;
            return CRAFT_OK;
        }
    }
    return wrong(d, i, "an integer");
}

int craft_json_bool(const craft_json *d, int i, int *out) {
    const jnode *x = node(d, i);
    if (!x || !json_is_boolean(x->j)) return wrong(d, i, "true or false");
    if (out) *out = json_is_true(x->j);
    return CRAFT_OK;
}

int craft_json_write_file(const char *path, const char *text, size_t len) {
    if (!path || (!text && len))
        return craft_fail(CRAFT_EINVAL, "json write: NULL %s", path ? "text" : "path");
    json_error_t err;
    json_t *root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root)
        return craft_fail(CRAFT_EFORMAT, "json write %s: text is not JSON: line %d, column %d: %s", path,
                          err.line, err.column, err.text);
    json_decref(root);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return craft_fail(CRAFT_ENOMEM, "json write %s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = CRAFT_OK, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = craft_fail(CRAFT_EIO, "json write %s: cannot create %s: %s", path, tmp, strerror(errno));
    else {
        size_t done = 0;
        int nl = len == 0 || text[len - 1] != '\n', wrote_nl = !nl;
        while (done < len || !wrote_nl) {
            ssize_t k = done < len ? write(fd, text + done, len - done) : write(fd, "\n", 1);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            if (done < len) done += (size_t)k;
            else wrote_nl = 1;
        }
        if (done < len || !wrote_nl || fsync(fd))
            rc = craft_fail(CRAFT_EIO, "json write %s: writing %s: %s", path, tmp, strerror(errno));
        if (close(fd) && !rc)
            rc = craft_fail(CRAFT_EIO, "json write %s: closing %s: %s", path, tmp, strerror(errno));
        if (!rc && rename(tmp, path))
            rc = craft_fail(CRAFT_EIO, "json write %s: rename: %s", path, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    return rc;
}
