/* tokenizer_unicode.c: the CLIP tokenizer's Unicode side: UTF-8 decoding (ill-formed input
 * replaced as Python and Rust do), the character classes its split regex uses, and the HF
 * normalizer chain (NFC, whitespace runs to one space, per-character lower-casing), all from the
 * generated tables of unicode_tables.c. tokenizer.c splits, merges, encodes and decodes. */
#include "text/tokenizer_internal.h"
#include <stdlib.h>

/* Tables from unicode_tables.c (see the comment at its top for the layouts). */
extern const uint32_t craft_uc_class[], craft_uc_lower[], craft_uc_ccc[], craft_uc_decomp[],
    craft_uc_decomp_pool[], craft_uc_compose[];
extern const int craft_uc_class_n, craft_uc_lower_n, craft_uc_ccc_n, craft_uc_decomp_n, craft_uc_compose_n;

int craft_tok_u32_push(u32v *a, uint32_t x) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        uint32_t *p = realloc(a->v, nc * sizeof *p);
        if (!p) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
        a->v = p;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return CRAFT_OK;
}

/* Decodes s[*i..n) one scalar; ill-formed input gives U+FFFD per maximal subpart (Unicode's
 * recommended practice, which Python's errors="replace" and Rust's from_utf8_lossy follow).
 * Returns 0 when the code point was replaced. */
int craft_tok_utf8_next(const unsigned char *s, size_t n, size_t *i, uint32_t *cp) {
    unsigned b = s[*i];
    size_t j = *i + 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    uint32_t c;
    if (b < 0x80) {
        *cp = b;
        *i = j;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        c = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        c = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        *cp = 0xFFFD;
        *i = j;
        return 0;
    }
    for (int k = 0; k < need; k++, lo = 0x80, hi = 0xBF) {
        if (j >= n || s[j] < lo || s[j] > hi) {
            *cp = 0xFFFD;
            *i = j;
            return 0;
        }
        c = c << 6 | (s[j++] & 0x3F);
    }
    *cp = c;
    *i = j;
    return 1;
}
int craft_tok_utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    uint32_t c;
    while (i < n)
        if (!craft_tok_utf8_next((const unsigned char *)s, n, &i, &c)) return 0;
    return 1;
}

/* ------------------------------------------------------------------ unicode */
static const uint32_t *uc_find(const uint32_t *tab, int n, uint32_t c, int ranged) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uint32_t *r = tab + 3 * mid;
        if (c < r[0]) hi = mid - 1;
        else if (c > (ranged ? r[1] : r[0])) lo = mid + 1;
        else return r;
    }
    return NULL;
}
unsigned craft_tok_uc_class(uint32_t c) {
    const uint32_t *r = uc_find(craft_uc_class, craft_uc_class_n, c, 1);
    return r ? r[2] : 0;
}
static unsigned uc_ccc(uint32_t c) {
    if (c < 0x300) return 0;
    const uint32_t *r = uc_find(craft_uc_ccc, craft_uc_ccc_n, c, 1);
    return r ? r[2] : 0;
}
enum {
    SBASE = 0xAC00,
    LBASE = 0x1100,
    VBASE = 0x1161,
    TBASE = 0x11A7,
    LCOUNT = 19,
    VCOUNT = 21,
    TCOUNT = 28,
    NCOUNT = VCOUNT * TCOUNT,
    SCOUNT = LCOUNT * NCOUNT
};

static int uc_decompose(uint32_t c, u32v *out) {
    if (c >= SBASE && c < SBASE + SCOUNT) {
        uint32_t s = c - SBASE, t = s % TCOUNT;
        CRAFT_TRY(craft_tok_u32_push(out, LBASE + s / NCOUNT));
        CRAFT_TRY(craft_tok_u32_push(out, VBASE + (s % NCOUNT) / TCOUNT));
        return t ? craft_tok_u32_push(out, TBASE + t) : CRAFT_OK;
    }
    const uint32_t *r = c < 0xC0 ? NULL : uc_find(craft_uc_decomp, craft_uc_decomp_n, c, 0);
    if (!r) return craft_tok_u32_push(out, c);
    for (uint32_t k = 0; k < r[2]; k++) CRAFT_TRY(craft_tok_u32_push(out, craft_uc_decomp_pool[r[1] + k]));
    return CRAFT_OK;
}
static uint32_t uc_compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = craft_uc_compose_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uint32_t *r = craft_uc_compose + 3 * mid;
        if (a < r[0] || (a == r[0] && b < r[1])) hi = mid - 1;
        else if (a > r[0] || b > r[1]) lo = mid + 1;
        else return r[2];
    }
    return 0;
}
static int sort_by_ccc(uint32_t *v, size_t n) {
    size_t count[257] = {0};
    uint32_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n; i++) count[uc_ccc(v[i]) + 1]++;
    for (int k = 1; k < 257; k++) count[k] += count[k - 1];
    for (size_t i = 0; i < n; i++) tmp[count[uc_ccc(v[i])]++] = v[i];
    memcpy(v, tmp, n * sizeof *tmp);
    free(tmp);
    return CRAFT_OK;
}
/* NFC, then whitespace runs -> " ", then per-character lower-case: the HF normalizer chain. */
int craft_tok_normalize(const uint32_t *in, size_t n, u32v *out) {
    u32v d = {0};
    int rc = CRAFT_OK;
    for (size_t i = 0; i < n && rc == CRAFT_OK; i++) rc = uc_decompose(in[i], &d);
    /* canonical ordering: each run of non-starters stably sorted by combining class
     * (insertion sort for short runs, counting sort for long ones: no quadratic input) */
    for (size_t i = 0; i < d.n && rc == CRAFT_OK;) {
        size_t j = i;
        while (j < d.n && uc_ccc(d.v[j])) j++;
        if (j - i > 32) rc = sort_by_ccc(d.v + i, j - i);
        else
            for (size_t a = i + 1; a < j; a++) {
                uint32_t c = d.v[a];
                unsigned cc = uc_ccc(c);
                size_t b = a;
                while (b > i && uc_ccc(d.v[b - 1]) > cc) {
                    d.v[b] = d.v[b - 1];
                    b--;
                }
                d.v[b] = c;
            }
        i = j > i ? j : i + 1;
    }
    /* canonical composition: c joins the last starter unless a character between them is a
     * starter or has a combining class >= c's (blocked) */
    size_t w = 0, starter = SIZE_MAX;
    unsigned last_cc = 0;
    for (size_t i = 0; i < d.n && rc == CRAFT_OK; i++) {
        uint32_t c = d.v[i];
        unsigned cc = uc_ccc(c);
        if (starter != SIZE_MAX && (w == starter + 1 || (last_cc != 0 && last_cc < cc))) {
            uint32_t comp = uc_compose(d.v[starter], c);
            if (comp) {
                d.v[starter] = comp;
                continue;
            }
        }
        if (cc == 0) starter = w;
        last_cc = cc;
        d.v[w++] = c;
    }
    int in_ws = 0;
    for (size_t i = 0; i < w && rc == CRAFT_OK; i++) {
        uint32_t c = d.v[i];
        if (craft_tok_uc_class(c) & UC_WS) {
            if (!in_ws) rc = craft_tok_u32_push(out, ' ');
            in_ws = 1;
            continue;
        }
        in_ws = 0;
        const uint32_t *r = uc_find(craft_uc_lower, craft_uc_lower_n, c, 0);
        if (!r) {
            rc = craft_tok_u32_push(out, c);
            continue;
        }
        rc = craft_tok_u32_push(out, r[1]);
        if (r[2] && rc == CRAFT_OK) rc = craft_tok_u32_push(out, r[2]);
    }
    free(d.v);
    return rc;
}
