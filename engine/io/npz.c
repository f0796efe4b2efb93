/* npz.c: NumPy .npz archives (a zip of .npy members) through libzip, for reading MedMNIST-style
 * data sets and writing synthetic ones in the same layout.
 *
 * Members are streamed into npy.c's reader, so an array is decompressed straight into its own
 * buffer. The sizes in a zip directory are claims: before anything is allocated a member's
 * uncompressed size is checked against its compressed size and the archive's real size
 * (deflate cannot expand more than 1032:1), so a crafted directory cannot ask for terabytes. */
#include "core/internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

/* npy.c's streaming reader and npy_write.c's encoder (not public). */
typedef long long (*craft_npy_read_fn)(void *ctx, void *dst, size_t n);
int craft_npy_read_stream(craft_npy_read_fn rd, void *ctx, uint64_t total, const char *what, const char *noun,
                          int header_only, craft_array *out);
int craft_npy_encode(const craft_array *a, const char *what, void **buf, size_t *len);

#define DEFLATE_MAX_RATIO 1032u

typedef struct npz_member {
    char *name;
    zip_uint64_t index;
} npz_member;
struct craft_npz {
    zip_t *za;
    char *what; /* "npz /path" */
    uint64_t archive_size;
    int n;
    npz_member *m;
};

static int zip_code_fail(int code, const char *what, int zerr) {
    zip_error_t e;
    zip_error_init_with_code(&e, zerr);
    craft_fail(code, "%s: %s", what, zip_error_strerror(&e));
    zip_error_fini(&e);
    return code;
}

static int build_index(craft_npz *z) {
    zip_int64_t n = zip_get_num_entries(z->za, 0);
    if (n < 0 || n > 1000000)
        return craft_fail(CRAFT_EFORMAT, "%s: implausible member count %lld", z->what, (long long)n);
    z->m = calloc((size_t)n + 1, sizeof *z->m);
    if (!z->m) return craft_fail(CRAFT_ENOMEM, "%s: no memory for the member list", z->what);
    for (zip_int64_t i = 0; i < n; i++) {
        const char *nm = zip_get_name(z->za, (zip_uint64_t)i, 0);
        if (!nm)
            return craft_fail(CRAFT_EFORMAT, "%s: member %lld has no readable name", z->what, (long long)i);
        size_t len = strlen(nm);
        if (len == 0 || nm[len - 1] == '/') continue; /* directories */
        if (len > 4 && !strcmp(nm + len - 4, ".npy")) len -= 4;
        char *s = malloc(len + 1);
        if (!s) return craft_fail(CRAFT_ENOMEM, "%s: no memory for the member list", z->what);
        memcpy(s, nm, len);
        s[len] = 0;
        z->m[z->n].name = s;
        z->m[z->n].index = (zip_uint64_t)i;
        z->n++;
    }
    return CRAFT_OK;
}

static int npz_new(const char *what, craft_npz **out) {
    craft_npz *z = calloc(1, sizeof *z);
    if (!z || !(z->what = malloc(strlen(what) + 5))) {
        free(z);
        return craft_fail(CRAFT_ENOMEM, "npz %s: no memory", what);
    }
    sprintf(z->what, "npz %s", what);
    *out = z;
    return CRAFT_OK;
}

static int npz_finish_open(craft_npz *z, craft_npz **out) {
    int rc = build_index(z);
    if (rc) {
        craft_npz_close(z);
        return rc;
    }
    *out = z;
    return CRAFT_OK;
}

int craft_npz_open(const char *path, craft_npz **out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "npz_open: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return craft_fail(CRAFT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return craft_fail(CRAFT_EIO, "npz %s: not a regular file", path);
    }
    craft_npz *z;
    int rc = npz_new(path, &z);
    if (rc) {
        close(fd);
        return rc;
    }
    z->archive_size = (uint64_t)st.st_size;
    int zerr = 0;
    z->za = zip_fdopen(fd, 0, &zerr); /* owns fd from here on success */
    if (!z->za) {
        close(fd);
        rc = zip_code_fail(zerr == ZIP_ER_NOZIP || zerr == ZIP_ER_INCONS ? CRAFT_EFORMAT : CRAFT_EIO, z->what,
                           zerr);
        craft_npz_close(z);
        return rc;
    }
    return npz_finish_open(z, out);
}

int craft_npz_open_buffer(const void *buf, size_t len, const char *what, craft_npz **out) {
    if ((!buf && len) || !out) return craft_fail(CRAFT_EINVAL, "npz_open_buffer: NULL argument");
    craft_npz *z;
    CRAFT_TRY(npz_new(what ? what : "(buffer)", &z));
    z->archive_size = len;
    void *copy = NULL; /* libzip ignores (and would leak) a buffer of length 0 */
    if (len && !(copy = malloc(len))) {
        craft_npz_close(z);
        return craft_fail(CRAFT_ENOMEM, "npz: no memory for %zu bytes", len);
    }
    if (len) memcpy(copy, buf, len);
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t *src = zip_source_buffer_create(copy, len, copy != NULL, &err);
    if (!src) {
        free(copy);
        int rc = craft_fail(CRAFT_ENOMEM, "%s: %s", z->what, zip_error_strerror(&err));
        zip_error_fini(&err);
        craft_npz_close(z);
        return rc;
    }
    z->za = zip_open_from_source(src, ZIP_RDONLY, &err);
    if (!z->za) {
        zip_source_free(src);
        int ze = zip_error_code_zip(&err);
        int rc = craft_fail(ze == ZIP_ER_MEMORY ? CRAFT_ENOMEM : CRAFT_EFORMAT, "%s: %s", z->what,
                            zip_error_strerror(&err));
        zip_error_fini(&err);
        craft_npz_close(z);
        return rc;
    }
    zip_error_fini(&err);
    return npz_finish_open(z, out);
}

int craft_npz_count(const craft_npz *z) { return z ? z->n : 0; }

const char *craft_npz_name(const craft_npz *z, int i) {
    return z && i >= 0 && i < z->n ? z->m[i].name : NULL;
}

int craft_npz_find(const craft_npz *z, const char *name) {
    if (!z || !name) return -1;
    size_t len = strlen(name);
    if (len > 4 && !strcmp(name + len - 4, ".npy")) len -= 4;
    for (int i = 0; i < z->n; i++)
        if (strlen(z->m[i].name) == len && !memcmp(z->m[i].name, name, len)) return i;
    return -1;
}

typedef struct zsrc {
    zip_file_t *f;
    const char *what;
} zsrc;
static long long zip_read_cb(void *ctx, void *dst, size_t n) {
    zsrc *s = ctx;
    zip_int64_t r = zip_fread(s->f, dst, n);
    if (r < 0)
        return craft_fail(CRAFT_EFORMAT, "%s: %s", s->what, zip_error_strerror(zip_file_get_error(s->f))), -1;
    return (long long)r;
}

static int npz_load(craft_npz *z, const char *name, int header_only, craft_array *out) {
    if (!z || !name || !out) return craft_fail(CRAFT_EINVAL, "npz_read: NULL argument");
    int i = craft_npz_find(z, name);
    if (i < 0) {
        char list[400];
        size_t k = 0;
        list[0] = 0;
        for (int j = 0; j < z->n && k + 4 < sizeof list; j++)
            k += (size_t)snprintf(list + k, sizeof list - k, j ? ", %s" : "%s", z->m[j].name);
        return craft_fail(CRAFT_EINVAL, "%s: no member '%s' (members: %s)", z->what, name,
                          z->n ? list : "none");
    }
    char what[600];
    snprintf(what, sizeof what, "%s: member %s", z->what, z->m[i].name);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z->za, z->m[i].index, 0, &st) != 0)
        return craft_fail(CRAFT_EFORMAT, "%s: %s", what, zip_strerror(z->za));
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
    if ((st.valid & need) != need) return craft_fail(CRAFT_EFORMAT, "%s: directory entry lacks sizes", what);
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
        return craft_fail(CRAFT_EUNSUPPORTED, "%s: encrypted members are not supported", what);
    if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
        return craft_fail(CRAFT_EUNSUPPORTED, "%s: compression method %d not supported (stored or deflate)",
                          what, (int)st.comp_method);
    if (st.comp_size > z->archive_size)
        return craft_fail(CRAFT_EFORMAT, "%s: claims %llu compressed bytes but the archive has %llu", what,
                          (unsigned long long)st.comp_size, (unsigned long long)z->archive_size);
    if (st.comp_method == ZIP_CM_STORE ? st.size != st.comp_size
                                       : st.size / DEFLATE_MAX_RATIO > st.comp_size + 1)
        return craft_fail(CRAFT_EFORMAT, "%s: claims %llu bytes from %llu %s bytes, which is impossible",
                          what, (unsigned long long)st.size, (unsigned long long)st.comp_size,
                          st.comp_method == ZIP_CM_STORE ? "stored" : "deflated");
    zip_file_t *f = zip_fopen_index(z->za, z->m[i].index, 0);
    if (!f) return craft_fail(CRAFT_EFORMAT, "%s: %s", what, zip_strerror(z->za));
    zsrc s = {f, what};
    craft_array a;
    int rc = craft_npy_read_stream(zip_read_cb, &s, st.size, what, "member", header_only, &a);
    if (rc == CRAFT_OK && !header_only) {
        /* One more read: confirms the end and makes libzip verify the CRC. */
        uint8_t extra;
        long long r = zip_read_cb(&s, &extra, 1);
        if (r != 0) {
            craft_array_free(&a);
            rc = r < 0
                ? craft_last_status()
                : craft_fail(CRAFT_EFORMAT, "%s: data continues past the %llu bytes the directory claims",
                             what, (unsigned long long)st.size);
        }
    }
    zip_fclose(f);
    if (rc == CRAFT_OK) *out = a;
    return rc;
}

int craft_npz_read(craft_npz *z, const char *name, craft_array *out) { return npz_load(z, name, 0, out); }
int craft_npz_info(craft_npz *z, const char *name, craft_array *out) { return npz_load(z, name, 1, out); }

void craft_npz_close(craft_npz *z) {
    if (!z) return;
    if (z->za) zip_discard(z->za); /* read-only: nothing to write back */
    for (int i = 0; i < z->n; i++) free(z->m[i].name);
    free(z->m);
    free(z->what);
    free(z);
}

/* ---- writing */
struct craft_npz_writer {
    zip_t *za;
    char *what;
    int compress;
};

int craft_npz_writer_open(const char *path, int compress, craft_npz_writer **out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "npz_writer_open: NULL argument");
    craft_npz_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->what = malloc(strlen(path) + 5))) {
        free(w);
        return craft_fail(CRAFT_ENOMEM, "npz %s: no memory", path);
    }
    sprintf(w->what, "npz %s", path);
    w->compress = compress != 0;
    int zerr = 0;
    w->za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!w->za) {
        int rc = zip_code_fail(CRAFT_EIO, w->what, zerr);
        free(w->what);
        free(w);
        return rc;
    }
    *out = w;
    return CRAFT_OK;
}

int craft_npz_writer_add(craft_npz_writer *w, const char *name, const craft_array *a) {
    if (!w || !name || !a) return craft_fail(CRAFT_EINVAL, "npz_writer_add: NULL argument");
    size_t nl = strlen(name);
    if (nl == 0 || nl > 1000 || strchr(name, '/'))
        return craft_fail(CRAFT_EINVAL, "%s: bad member name '%s'", w->what, name);
    char what[1200], member[1010];
    snprintf(what, sizeof what, "%s: member %s", w->what, name);
    snprintf(member, sizeof member, "%s.npy", name);
    if (zip_name_locate(w->za, member, 0) >= 0) return craft_fail(CRAFT_EINVAL, "%s: added twice", what);
    void *buf;
    size_t len;
    CRAFT_TRY(craft_npy_encode(a, what, &buf, &len));
    zip_source_t *src = zip_source_buffer(w->za, buf, len, 1); /* libzip frees buf */
    if (!src) {
        free(buf);
        return craft_fail(CRAFT_ENOMEM, "%s: %s", what, zip_strerror(w->za));
    }
    zip_int64_t idx = zip_file_add(w->za, member, src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
        zip_source_free(src);
        return craft_fail(CRAFT_EIO, "%s: %s", what, zip_strerror(w->za));
    }
    if (zip_set_file_compression(w->za, (zip_uint64_t)idx, w->compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0))
        return craft_fail(CRAFT_EIO, "%s: %s", what, zip_strerror(w->za));
    return CRAFT_OK;
}

int craft_npz_writer_close(craft_npz_writer *w) {
    if (!w) return CRAFT_OK;
    int rc = CRAFT_OK;
    if (zip_close(w->za) != 0) {
        rc = craft_fail(CRAFT_EIO, "%s: cannot write: %s", w->what, zip_strerror(w->za));
        zip_discard(w->za);
    }
    free(w->what);
    free(w);
    return rc;
}
