/* image.c: PNG / JPEG / BMP files <-> u8 (or 16-bit in i32) HWC arrays through stb_image and
 * stb_image_write.
 *
 * Debian's libstb already holds the implementations, so only the headers are included here.
 * Decoding always goes through memory: files are read whole, and the claimed dimensions are
 * checked (stbi_info) before stb allocates the pixels, so a tiny hostile header cannot make
 * it ask for gigabytes. */
#include "core/internal.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stb_image.h>
#include <stb_image_write.h>

#define IMAGE_MAX_BYTES ((int64_t)1 << 30)
#define IMAGE_MAX_FILE ((int64_t)1 << 30)

/* stb_image 2.27 (Debian's libstb) decodes JPEG scans whose Huffman or quantisation tables
 * were never defined, reading uninitialised memory (stb issue 1289), and the library is built
 * with its asserts on, so such a file can even abort the process. Real encoders always define
 * their tables, so files that do not are refused here, before stb sees them. Markers are
 * walked the way stb walks them; anything this walk cannot follow is left to stb to reject. */
static const char *jpeg_tables_problem(const uint8_t *d, size_t n) {
    unsigned huff = 0, quant = 0; /* bit (class * 4 + id) / bit id: defined */
    int progressive = 0, ncomp = 0;
    uint8_t comp_id[4], comp_tq[4];
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xFF) {
            i++;
            continue;
        } /* entropy-coded data */
        uint8_t m = d[i + 1];
        if (m == 0xFF) {
            i++;
            continue;
        }
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) {
            i += 2;
            continue;
        }
        if (m == 0xD9) break;
        size_t L = (size_t)d[i + 2] << 8 | d[i + 3];
        if (L < 2 || L > n - i - 2) break;
        const uint8_t *s = d + i + 4;
        size_t sl = L - 2;
        if (m == 0xC4) {
            for (size_t j = 0; j + 17 <= sl;) {
                unsigned tc = s[j] >> 4, th = s[j] & 15, cnt = 0;
                for (int k = 1; k <= 16; k++) cnt += s[j + k];
                if (tc <= 1 && th <= 3 && j + 17 + cnt <= sl) huff |= 1u << (tc * 4 + th);
                j += 17 + cnt;
            }
        } else if (m == 0xDB) {
            for (size_t j = 0; j < sl;) {
                unsigned pq = s[j] >> 4, tq = s[j] & 15;
                size_t sz = 1 + (pq ? 128 : 64);
                if (j + sz > sl) break;
                if (tq <= 3) quant |= 1u << tq;
                j += sz;
            }
        } else if (m >= 0xC0 && m <= 0xC2) {
            progressive = m == 0xC2;
            ncomp = sl >= 6 ? s[5] : 0;
            if (ncomp > 4 || sl < 6 + 3 * (size_t)ncomp) ncomp = 0;
            for (int k = 0; k < ncomp; k++) {
                comp_id[k] = s[6 + 3 * k];
                comp_tq[k] = s[8 + 3 * k];
            }
        } else if (m == 0xDA && sl >= 1) {
            int ns = s[0];
            if (sl < 1 + 2 * (size_t)ns + 3) break;
            int ss = s[1 + 2 * ns], ah = s[3 + 2 * ns] >> 4;
            for (int k = 0; k < ns; k++) {
                unsigned td = s[2 + 2 * k] >> 4, ta = s[2 + 2 * k] & 15;
                if ((!progressive || (ss == 0 && ah == 0)) && (td > 3 || !(huff & (1u << td))))
                    return "scan uses an undefined DC Huffman table";
                if ((!progressive || ss != 0) && (ta > 3 || !(huff & (1u << (4 + ta)))))
                    return "scan uses an undefined AC Huffman table";
                for (int c = 0; c < ncomp; c++)
                    if (comp_id[c] == s[1 + 2 * k] && (comp_tq[c] > 3 || !(quant & (1u << comp_tq[c]))))
                        return "scan uses an undefined quantisation table";
            }
        }
        i += 2 + L;
    }
    return NULL;
}

static int decode(const void *buf, size_t len, const char *name, int want, int bits16, craft_array *out) {
    char what[600];
    snprintf(what, sizeof what, "image %s", name ? name : "(buffer)");
    if ((!buf && len) || !out) return craft_fail(CRAFT_EINVAL, "image_decode: NULL argument");
    if (want < 0 || want > 4)
        return craft_fail(CRAFT_EINVAL, "%s: want_channels %d (expected 0 = as stored, or 1..4)", what, want);
    if (len > INT_MAX)
        return craft_fail(CRAFT_EUNSUPPORTED, "%s: %zu bytes is too large to decode", what, len);
    /* Only the formats the data sets use: every other stb_image parser is attack surface. */
    const uint8_t *d = buf;
    int png = len >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8);
    int jpeg = len >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF;
    int bmp = len >= 2 && d[0] == 'B' && d[1] == 'M';
    if (!png && !jpeg && !bmp)
        return craft_fail(CRAFT_EFORMAT, "%s: cannot decode: not a PNG, JPEG or BMP file", what);
    const char *problem = jpeg ? jpeg_tables_problem(d, len) : NULL;
    if (problem) return craft_fail(CRAFT_EFORMAT, "%s: cannot decode: corrupt JPEG (%s)", what, problem);
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &comp))
        return craft_fail(CRAFT_EFORMAT, "%s: cannot decode: %s", what, stbi_failure_reason());
    int c = want ? want : comp;
    /* check the header's numbers before multiplying them: a hostile header can carry any int */
    int64_t bytes = (w > 0 && h > 0 && c >= 1 && c <= 4) ? (int64_t)w * h * c * (bits16 ? 2 : 1) : 0;
    if (w <= 0 || h <= 0 || c < 1 || c > 4 || bytes > IMAGE_MAX_BYTES)
        return craft_fail(CRAFT_EUNSUPPORTED, "%s: %dx%d with %d channels is over the %lld MiB decode limit",
                          what, w, h, c, (long long)(IMAGE_MAX_BYTES >> 20));
    int dw = 0, dh = 0, dc = 0;
    void *px = bits16 ? (void *)stbi_load_16_from_memory(buf, (int)len, &dw, &dh, &dc, c)
                      : (void *)stbi_load_from_memory(buf, (int)len, &dw, &dh, &dc, c);
    if (!px) return craft_fail(CRAFT_EFORMAT, "%s: cannot decode: %s", what, stbi_failure_reason());
    if (dw != w || dh != h) {
        stbi_image_free(px);
        return craft_fail(CRAFT_EFORMAT, "%s: cannot decode: size changed from %dx%d to %dx%d", what, w, h,
                          dw, dh);
    }
    craft_array a;
    memset(&a, 0, sizeof a);
    a.dtype = bits16 ? CRAFT_I32 : CRAFT_U8;
    a.ndim = 3;
    a.shape[0] = h;
    a.shape[1] = w;
    a.shape[2] = c;
    a.numel = (int64_t)h * w * c;
    a.itemsize = bits16 ? 4 : 1;
    a.nbytes = (size_t)(a.numel * a.itemsize);
    a.data = craft_alloc(a.nbytes);
    if (!a.data) {
        stbi_image_free(px);
        return craft_fail_prefix(CRAFT_ENOMEM, "%s", what);
    }
    if (bits16) {
        const uint16_t *s = px;
        int32_t *o = a.data;
        for (int64_t i = 0; i < a.numel; i++) o[i] = s[i];
    } else {
        memcpy(a.data, px, a.nbytes);
    }
    stbi_image_free(px);
    *out = a;
    return CRAFT_OK;
}

int craft_image_decode(const void *buf, size_t len, const char *what, int want_channels, craft_array *out) {
    return decode(buf, len, what, want_channels, 0, out);
}

int craft_image_decode16(const void *buf, size_t len, const char *what, int want_channels, craft_array *out) {
    return decode(buf, len, what, want_channels, 1, out);
}

static int read_whole(const char *path, void **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return craft_fail(CRAFT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > IMAGE_MAX_FILE) {
        fclose(f);
        return craft_fail(CRAFT_EIO, "image %s: not a regular file of at most %lld MiB", path,
                          (long long)(IMAGE_MAX_FILE >> 20));
    }
    size_t n = (size_t)st.st_size;
    void *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return craft_fail(CRAFT_ENOMEM, "image %s: no memory for %zu bytes", path, n);
    }
    size_t got = fread(b, 1, n, f);
    int e = errno, bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        free(b);
        return craft_fail(CRAFT_EIO, "image %s: read error: %s", path,
                          bad ? strerror(e) : "file shrank while reading");
    }
    *buf = b;
    *len = n;
    return CRAFT_OK;
}

static int read_file(const char *path, int want, int bits16, craft_array *out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "image_read: NULL argument");
    void *buf;
    size_t len;
    CRAFT_TRY(read_whole(path, &buf, &len));
    int rc = decode(buf, len, path, want, bits16, out);
    free(buf);
    return rc;
}

int craft_image_read(const char *path, int want_channels, craft_array *out) {
    return read_file(path, want_channels, 0, out);
}

int craft_image_read16(const char *path, int want_channels, craft_array *out) {
    return read_file(path, want_channels, 1, out);
}

int craft_image_write_png(const char *path, int h, int w, int c, const uint8_t *hwc) {
    if (!path || !hwc) return craft_fail(CRAFT_EINVAL, "image_write_png: NULL argument");
    if (h <= 0 || w <= 0 || c < 1 || c > 4 || (int64_t)w * c > INT_MAX ||
        (int64_t)h * w * c > IMAGE_MAX_BYTES)
        return craft_fail(CRAFT_EINVAL,
                          "png %s: cannot write %dx%d with %d channels (1..4 channels, at most %lld MiB)",
                          path, h, w, c, (long long)(IMAGE_MAX_BYTES >> 20));
    errno = 0;
    if (!stbi_write_png(path, w, h, c, hwc, w * c))
        return craft_fail(CRAFT_EIO, "png %s: cannot write: %s", path,
                          errno ? strerror(errno) : "encoder failed");
    return CRAFT_OK;
}
