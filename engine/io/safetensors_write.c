/* safetensors_write.c: crash-safe writing of .safetensors files (craft_st_save): the header
 * padded with spaces to 8 bytes, tensors ordered by element size so each one is aligned, data
 * written to "<path>.tmp", fsync'ed and renamed over the target. Reading is in safetensors.c. */
#include "io/safetensors_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static int st_dtype_of(int dt) {
    for (int i = 0; i < craft_st_n_dtypes; i++)
        if (craft_st_dtypes[i].direct == dt) return i;
    return -1;
}

typedef struct save_item {
    const char *name;
    craft_tensor *t;
    int s;
    uint64_t nbytes;
} save_item;

/* The reference's order: dtypes from the end of its list first (craft_st_dtypes follows it, so
 * larger elements come first and every tensor stays aligned), then names bytewise. */
static int cmp_save(const void *a, const void *b) {
    const save_item *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return strcmp(x->name, y->name);
}
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_tensor(int fd, const save_item *it) {
    const craft_tensor *t = it->t;
    if (!it->nbytes) return 0;
    if (t->device == CRAFT_DEVICE_CPU && craft_is_contiguous(t))
        return write_all(fd, craft_tensor_data(t), (size_t)it->nbytes);
    void *buf = craft_alloc((size_t)it->nbytes);
    if (!buf) return -2;
    int rc =
        craft_tensor_read(t, t->dtype, buf, (size_t)it->nbytes) ? -2 : write_all(fd, buf, (size_t)it->nbytes);
    craft_free(buf, (size_t)it->nbytes);
    return rc;
}

/* Builds the padded header text; the caller frees *text. */
static int build_header(const char *path, int n, save_item *it, int n_meta, const char **mk, const char **mv,
                        char **text, size_t *len) {
    json_t *root = json_object(), *meta = n_meta ? json_object() : NULL;
    int rc = CRAFT_OK;
    char nb[160];
    if (!root || (n_meta && !meta)) {
        rc = craft_fail(CRAFT_ENOMEM, "safetensors save %s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < n_meta && !rc; i++) {
        json_t *v = json_string(mv[i]);
        int bad = !mk[i] || !v || json_object_get(meta, mk[i]);
        if (bad) json_decref(v);
        else bad = json_object_set_new(meta, mk[i], v); /* consumes v either way */
        if (bad) {
            rc = craft_fail(
                CRAFT_EINVAL,
                "safetensors save %s: metadata \"%s\": key or value missing, repeated or not UTF-8", path,
                craft_st_clean(mk[i], nb, sizeof nb));
        }
    }
    if (!rc && meta) {
        rc = json_object_set_new(root, "__metadata__", meta) ? CRAFT_ENOMEM : CRAFT_OK;
        meta = NULL;
    }
    uint64_t at = 0;
    for (int i = 0; i < n && !rc; i++) {
        json_t *e = json_object(), *shape = json_array();
        for (int d = 0; shape && d < it[i].t->ndim; d++)
            json_array_append_new(shape, json_integer(it[i].t->shape[d]));
        int bad = !e || !shape;
        if (bad) {
            json_decref(e);
            json_decref(shape);
        } else { /* each set_new consumes its value, even when it fails */
            bad = json_object_set_new(e, "dtype", json_string(craft_st_dtypes[it[i].s].name));
            bad |= json_object_set_new(e, "shape", shape);
            bad |= json_object_set_new(e, "data_offsets",
                                       json_pack("[II]", (json_int_t)at, (json_int_t)(at + it[i].nbytes)));
            if (bad) json_decref(e);
            else bad = json_object_set_new(root, it[i].name, e);
        }
        at += it[i].nbytes;
        if (bad)
            rc = craft_fail(CRAFT_EINVAL,
                            "safetensors save %s: tensor \"%s\": name is not UTF-8 (or out of memory)", path,
                            craft_st_clean(it[i].name, nb, sizeof nb));
    }
    if (rc) goto done;
    char *s = json_dumps(root, JSON_COMPACT);
    if (!s) {
        rc = craft_fail(CRAFT_ENOMEM, "safetensors save %s: out of memory for the header", path);
        goto done;
    }
    size_t l = strlen(s), padded = (l + 7) & ~(size_t)7;
    if (padded > ST_MAX_HEADER) {
        free(s);
        rc = craft_fail(CRAFT_EINVAL, "safetensors save %s: header of %zu bytes exceeds the 100 MB limit",
                        path, padded);
        goto done;
    }
    char *p = realloc(s, padded + 1);
    if (!p) {
        free(s);
        rc = craft_fail(CRAFT_ENOMEM, "safetensors save %s: out of memory", path);
        goto done;
    }
    memset(p + l, ' ', padded - l);
    p[padded] = 0;
    *text = p;
    *len = padded;
done:
    json_decref(meta);
    json_decref(root);
    return rc;
}

/* Test hook for the crash-safety test (tests/crash_resume.sh): with
 * CRAFT_TEST_SAVE_STALL="<phase>:<n>:<marker path>", the n-th save of this process that reaches
 * <phase> ("mid": half of its tensors written to the .tmp file; "rename": written and fsynced,
 * not yet renamed) creates the marker file and sleeps, so that the test can SIGKILL the process
 * exactly there. Unset (always, outside that test) it costs one getenv per save. */
static void test_stall(const char *phase) {
    static int count[2];
    const char *e = getenv("CRAFT_TEST_SAVE_STALL");
    if (!e) return;
    size_t n = strlen(phase);
    if (strncmp(e, phase, n) || e[n] != ':') return;
    char *rest = NULL;
    long want = strtol(e + n + 1, &rest, 10);
    if (!rest || *rest != ':') return;
    int k = phase[0] == 'm' ? 0 : 1;
    if (++count[k] != want) return;
    int fd = open(rest + 1, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
    sleep(120);
}

int craft_st_save(const char *path, int n, const char **names, craft_tensor **tensors, int n_meta,
                  const char **meta_keys, const char **meta_values) {
    if (!path || n < 0 || n_meta < 0 || (n && (!names || !tensors)) ||
        (n_meta && (!meta_keys || !meta_values)))
        return craft_fail(CRAFT_EINVAL, "safetensors save %s: bad arguments (n %d, n_meta %d)",
                          path ? path : "(null)", n, n_meta);
    save_item *it = calloc((size_t)n + 1, sizeof *it);
    if (!it) return craft_fail(CRAFT_ENOMEM, "safetensors save %s: out of memory", path);
    int rc = CRAFT_OK;
    char nb[160];
    for (int i = 0; i < n && !rc; i++) {
        it[i] = (save_item){names[i], tensors[i], -1, 0};
        if (!names[i] || !tensors[i] || !strcmp(names[i], "__metadata__"))
            rc = craft_fail(CRAFT_EINVAL, "safetensors save %s: entry %d: %s", path, i,
                            !names[i]         ? "NULL name"
                                : !tensors[i] ? "NULL tensor"
                                              : "the name __metadata__ is reserved");
        else if ((it[i].s = st_dtype_of(tensors[i]->dtype)) < 0)
            rc = craft_fail(CRAFT_ETYPE,
                            "safetensors save %s: tensor \"%s\": dtype %d has no safetensors name", path,
                            craft_st_clean(names[i], nb, sizeof nb), tensors[i]->dtype);
        else it[i].nbytes = (uint64_t)tensors[i]->numel * (uint64_t)craft_st_dtypes[it[i].s].size;
    }
    if (!rc && n > 1) { /* names must be unique: sort a copy by name and compare neighbours */
        const char **sorted = malloc((size_t)n * sizeof *sorted);
        if (!sorted) rc = craft_fail(CRAFT_ENOMEM, "safetensors save %s: out of memory", path);
        for (int i = 0; i < n && sorted; i++) sorted[i] = names[i];
        if (sorted) qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
        for (int i = 1; i < n && !rc; i++)
            if (!strcmp(sorted[i - 1], sorted[i]))
                rc = craft_fail(CRAFT_EINVAL, "safetensors save %s: tensor name \"%s\" given twice", path,
                                craft_st_clean(sorted[i], nb, sizeof nb));
        free(sorted);
    }
    if (!rc) qsort(it, (size_t)n, sizeof *it, cmp_save);
    char *hdr = NULL;
    size_t hlen = 0;
    if (!rc) rc = build_header(path, n, it, n_meta, meta_keys, meta_values, &hdr, &hlen);
    if (rc) {
        free(it);
        return rc;
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    int fd = -1, failed_at = 0;
    if (!tmp) {
        rc = craft_fail(CRAFT_ENOMEM, "safetensors save %s: out of memory", path);
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = craft_fail(CRAFT_EIO, "safetensors save %s: cannot create %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if (write_all(fd, lenb, 8) || write_all(fd, hdr, hlen)) failed_at = 1;
    for (int i = 0; i < n && !failed_at; i++) {
        if (i == n / 2) test_stall("mid");
        int w = write_tensor(fd, &it[i]);
        if (w == -2) {
            rc = craft_fail_prefix(craft_last_status() ? craft_last_status() : CRAFT_ENOMEM,
                                   "safetensors save %s: tensor \"%s\"", path,
                                   craft_st_clean(it[i].name, nb, sizeof nb));
            failed_at = 2;
        } else if (w) failed_at = 1;
    }
    if (!failed_at && fsync(fd)) failed_at = 1;
    if (failed_at == 1)
        rc = craft_fail(CRAFT_EIO, "safetensors save %s: writing %s failed: %s", path, tmp, strerror(errno));
    if (close(fd) && !rc)
        rc = craft_fail(CRAFT_EIO, "safetensors save %s: closing %s failed: %s", path, tmp, strerror(errno));
    if (!rc) test_stall("rename");
    if (!rc && rename(tmp, path))
        rc = craft_fail(CRAFT_EIO, "safetensors save %s: rename from %s failed: %s", path, tmp,
                        strerror(errno));
    if (rc) unlink(tmp);
    else { /* make the rename itself durable */
        char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
        if (dir) {
            if (slash) *(slash == dir ? slash + 1 : slash) = 0;
            int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
out:
    free(tmp);
    free(hdr);
    free(it);
    return rc;
}
