/* npy_write.c: NumPy .npy writing (format version 1.0, little-endian, C order): the header
 * numpy writes, padded to 64 bytes, then the data; npz.c stores these as members. */
#include "core/internal.h"
#include <errno.h>
#include <stdlib.h>

int craft_npy_encode(const craft_array *a, const char *what, void **buf, size_t *len);

static int descr_of(const craft_array *a, char *d, size_t n) {
    switch (a->dtype) {
    case CRAFT_F32: snprintf(d, n, "<f4"); return 1;
    case CRAFT_F64: snprintf(d, n, "<f8"); return 1;
    case CRAFT_F16: snprintf(d, n, "<f2"); return 1;
    case CRAFT_I64: snprintf(d, n, "<i8"); return 1;
    case CRAFT_I32: snprintf(d, n, "<i4"); return 1;
    case CRAFT_U8: snprintf(d, n, "|u1"); return 1;
    case CRAFT_I8: snprintf(d, n, "|i1"); return 1;
    case CRAFT_BOOL: snprintf(d, n, "|b1"); return 1;
    case CRAFT_ARRAY_UNICODE:
        snprintf(d, n, "<U%lld", (long long)(a->itemsize / 4));
        return a->itemsize > 0 && a->itemsize % 4 == 0;
    case CRAFT_ARRAY_BYTES: snprintf(d, n, "|S%lld", (long long)a->itemsize); return a->itemsize > 0;
    }
    return 0;
}

/* The whole .npy (header and data) in one malloc'd buffer. */
int craft_npy_encode(const craft_array *a, const char *what, void **buf, size_t *len) {
    char descr[32], shape[256] = "", hdr[400];
    if (!a || a->ndim < 0 || a->ndim > CRAFT_MAX_DIMS)
        return craft_fail(CRAFT_EINVAL, "%s: bad array (ndim %d)", what, a ? a->ndim : -1);
    if (!descr_of(a, descr, sizeof descr))
        return craft_fail(CRAFT_ETYPE, "%s: dtype %s has no .npy equivalent", what,
                          a->dtype == CRAFT_BF16 ? "bf16 (convert to f32 first)"
                                                 : craft_dtype_name(a->dtype));
    int64_t numel = 1;
    size_t k = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] < 0 || __builtin_mul_overflow(numel, a->shape[d], &numel))
            return craft_fail(CRAFT_EINVAL, "%s: bad shape %s", what,
                              craft_dims_str(a->ndim, a->shape));
        k += (size_t)snprintf(shape + k, sizeof shape - k, "%lld,%s", (long long)a->shape[d],
                              a->ndim > 1 && d < a->ndim - 1 ? " " : "");
    }
    if (a->ndim > 1) shape[k - 1] = 0; /* numpy writes (2, 3) but (5,) */
    int64_t nb;
    if (__builtin_mul_overflow(numel, a->itemsize, &nb) || (uint64_t)nb != a->nbytes || (nb && !a->data))
        return craft_fail(CRAFT_EINVAL, "%s: array of %s x %lld bytes does not match nbytes %zu", what,
                          craft_dims_str(a->ndim, a->shape), (long long)a->itemsize, a->nbytes);
    int hl =
        snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    size_t total_h = ((size_t)hl + 11 + 63) / 64 * 64; /* prefix + header + '\n', 64-aligned */
    size_t hlen = total_h - 10;
    if (hlen > 65535) return craft_fail(CRAFT_EINVAL, "%s: header too long", what);
    uint8_t *o = malloc(total_h + a->nbytes);
    if (!o) return craft_fail(CRAFT_ENOMEM, "%s: no memory for %zu bytes", what, total_h + a->nbytes);
    memcpy(o, "\x93NUMPY\x01\x00", 8);
    o[8] = (uint8_t)(hlen & 255);
    o[9] = (uint8_t)(hlen >> 8);
    memcpy(o + 10, hdr, (size_t)hl);
    memset(o + 10 + hl, ' ', hlen - (size_t)hl - 1);
    o[total_h - 1] = '\n';
    if (a->nbytes) memcpy(o + total_h, a->data, a->nbytes);
    *buf = o;
    *len = total_h + a->nbytes;
    return CRAFT_OK;
}

int craft_npy_write_file(const char *path, const craft_array *a) {
    if (!path) return craft_fail(CRAFT_EINVAL, "npy_write_file: NULL path");
    char w[512];
    snprintf(w, sizeof w, "npy %s", path);
    void *buf;
    size_t len;
    CRAFT_TRY(craft_npy_encode(a, w, &buf, &len));
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return craft_fail(CRAFT_EIO, "cannot open %s for writing: %s", path, strerror(errno));
    }
    size_t k = fwrite(buf, 1, len, f);
    int e = errno;
    free(buf);
    if (fclose(f) != 0 || k != len)
        return craft_fail(CRAFT_EIO, "%s: write failed: %s", w, strerror(e ? e : EIO));
    return CRAFT_OK;
}
