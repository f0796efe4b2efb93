/* tokenizer.c: the CLIP byte-level BPE tokenizer's text side (text normalisation, regex split,
 * BPE with a per-word cache, encode/decode, getters); tokenizer_load.c builds the tables. It
 * reproduces transformers' CLIPTokenizer as built on HF tokenizers: added special tokens are cut
 * out of the raw text first, the rest is NFC-normalised, whitespace runs become one space, each
 * character is lower-cased on its own (so no final-sigma rule), then CLIP's split regex runs,
 * each piece is mapped byte-to-unicode and merged by rank. The Unicode side (UTF-8, classes,
 * normalisation) is tokenizer_unicode.c. */
#include "text/tokenizer_internal.h"
#include <stdlib.h>

#define CACHE_MAX 16384
#define CACHE_MAX_WORD 256

struct cache_ent {
    struct cache_ent *next, *all;
    uint64_t h;
    uint32_t len, nids;
    int32_t *ids;
    char key[];
};

/* ------------------------------------------------------------------ small helpers */
int craft_tok_bytes_put(bytev *b, const void *src, size_t n) {
    if (n > SIZE_MAX / 2 - b->n) return craft_fail(CRAFT_ENOMEM, "tokenizer: text too large");
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *p = realloc(b->v, nc);
        if (!p) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
        b->v = p;
        b->cap = nc;
    }
    memcpy(b->v + b->n, src, n);
    b->n += n;
    b->v[b->n] = 0;
    return CRAFT_OK;
}
uint64_t craft_tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}
/* ------------------------------------------------------------------ hash maps */
int32_t craft_tok_vocab_get(const craft_tokenizer *t, const char *s, size_t n) {
    if (!t->vcap) return -1;
    size_t m = t->vcap - 1, i = (size_t)craft_tok_hash_bytes(s, n) & m;
    for (; t->vkey[i]; i = (i + 1) & m)
        if (!strncmp(t->vkey[i], s, n) && t->vkey[i][n] == 0) return t->vval[i];
    return -1;
}
size_t craft_tok_merge_slot(const craft_tokenizer *t, uint64_t key) {
    size_t m = t->mcap - 1, i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m;
    while (t->mkey[i] != UINT64_MAX && t->mkey[i] != key) i = (i + 1) & m;
    return i;
}
static int merge_get(const craft_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *nid) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = craft_tok_merge_slot(t, key);
    if (t->mkey[i] == UINT64_MAX) return 0;
    *rank = t->mrank[i];
    *nid = t->mnew[i];
    return 1;
}

static void cache_clear(craft_tokenizer *t) {
    if (!t->ncache) return;
    for (cache_ent *e = t->cache_all, *nx; e; e = nx) {
        nx = e->all;
        free(e);
    }
    memset(t->cache, 0, CACHE_MAX * sizeof *t->cache);
    t->cache_all = NULL;
    t->ncache = 0;
}
void craft_tokenizer_free(craft_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; t->tok && i < t->ntok; i++) free(t->tok[i]);
    cache_clear(t);
    free(t->cache);
    free(t->tok);
    free(t->vkey);
    free(t->vval);
    free(t->mkey);
    free(t->mrank);
    free(t->mnew);
    free(t->added);
    free(t);
}
int craft_tokenizer_set_pad(craft_tokenizer *t, int pad_id) {
    if (!t || pad_id < 0 || pad_id >= t->ntok || !t->tok[pad_id])
        return craft_fail(CRAFT_EINVAL, "tokenizer_set_pad: id %d is not a token (vocab size %d)", pad_id,
                          t ? (int)t->ntok : 0);
    t->pad = pad_id;
    return CRAFT_OK;
}
int craft_tokenizer_vocab_size(const craft_tokenizer *t) { return t ? (int)t->ntok : 0; }
int craft_tokenizer_start_id(const craft_tokenizer *t) { return t ? (int)t->bos : -1; }
int craft_tokenizer_end_id(const craft_tokenizer *t) { return t ? (int)t->eos : -1; }
int craft_tokenizer_pad_id(const craft_tokenizer *t) { return t ? (int)t->pad : -1; }
int craft_tokenizer_token_id(const craft_tokenizer *t, const char *token) {
    return t && token ? (int)craft_tok_vocab_get(t, token, strlen(token)) : -1;
}
const char *craft_tokenizer_token(const craft_tokenizer *t, int id) {
    return t && id >= 0 && id < t->ntok ? t->tok[id] : NULL;
}

/* ------------------------------------------------------------------ BPE */
typedef struct {
    int32_t rank, pos, nid;
} merge_cand;
static int cand_less(merge_cand a, merge_cand b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}
static void heap_push(merge_cand *h, size_t *n, merge_cand c) {
    size_t i = (*n)++;
    while (i && cand_less(c, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}
static merge_cand heap_pop(merge_cand *h, size_t *n) {
    merge_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}
/* Merges the byte symbols of one word, lowest rank first and leftmost among equal ranks (HF
 * tokenizers' order; the same result as the Python reference's rank loop). */
static int bpe_word(craft_tokenizer *t, const unsigned char *w, size_t n, u32v *out) {
    uint64_t h = craft_tok_hash_bytes((const char *)w, n);
    size_t bucket = (size_t)(h & (CACHE_MAX - 1));
    if (!t->cache) t->cache = calloc(CACHE_MAX, sizeof *t->cache); /* on first use; NULL: no cache */
    if (n <= CACHE_MAX_WORD && t->cache)
        for (cache_ent *e = t->cache[bucket]; e; e = e->next)
            if (e->h == h && e->len == n && !memcmp(e->key, w, n)) {
                for (uint32_t k = 0; k < e->nids; k++) CRAFT_TRY(craft_tok_u32_push(out, (uint32_t)e->ids[k]));
                return CRAFT_OK;
            }
    if (n > (size_t)INT32_MAX / 4) return craft_fail(CRAFT_EINVAL, "tokenizer_encode: word of %zu bytes", n);
    int32_t *sym = malloc(n * 3 * sizeof *sym);
    merge_cand *heap = malloc((3 * n + 1) * sizeof *heap);
    if (!sym || !heap) {
        free(sym);
        free(heap);
        return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    }
    int32_t *nx = sym + n, *pv = sym + 2 * n; /* linked list; sym[i] < 0: merged away */
    size_t hn = 0;
    int32_t rank, nid;
    for (size_t i = 0; i < n; i++) {
        sym[i] = i + 1 == n ? t->byte_eow[w[i]] : t->byte_id[w[i]];
        nx[i] = i + 1 == n ? -1 : (int32_t)(i + 1);
        pv[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        if (merge_get(t, sym[i], sym[i + 1], &rank, &nid))
            heap_push(heap, &hn, (merge_cand){rank, (int32_t)i, nid});
    while (hn) {
        merge_cand c = heap_pop(heap, &hn);
        int32_t p = c.pos, r = nx[p];
        if (sym[p] < 0 || r < 0 || !merge_get(t, sym[p], sym[r], &rank, &nid) || nid != c.nid) continue;
        sym[p] = nid;
        sym[r] = -1;
        nx[p] = nx[r];
        if (nx[r] >= 0) pv[nx[r]] = p;
        if (pv[p] >= 0 && merge_get(t, sym[pv[p]], sym[p], &rank, &nid))
            heap_push(heap, &hn, (merge_cand){rank, pv[p], nid});
        if (nx[p] >= 0 && merge_get(t, sym[p], sym[nx[p]], &rank, &nid))
            heap_push(heap, &hn, (merge_cand){rank, p, nid});
    }
    size_t start = out->n;
    int rc = CRAFT_OK;
    for (int32_t i = 0; i >= 0 && rc == CRAFT_OK; i = nx[i]) rc = craft_tok_u32_push(out, (uint32_t)sym[i]);
    free(sym);
    free(heap);
    if (rc != CRAFT_OK || n > CACHE_MAX_WORD || !t->cache) return rc;
    if (t->ncache >= CACHE_MAX) cache_clear(t);
    size_t nids = out->n - start;
    cache_ent *e = malloc(sizeof *e + n + nids * sizeof(int32_t) + sizeof(int32_t));
    if (!e) return CRAFT_OK; /* the cache is only an optimisation */
    e->h = h;
    e->len = (uint32_t)n;
    e->nids = (uint32_t)nids;
    memcpy(e->key, w, n);
    e->ids = (int32_t *)(void *)(e->key + ((n + 3) & ~(size_t)3));
    for (size_t k = 0; k < nids; k++) e->ids[k] = (int32_t)out->v[start + k];
    e->next = t->cache[bucket];
    t->cache[bucket] = e;
    e->all = t->cache_all;
    t->cache_all = e;
    t->ncache++;
    return CRAFT_OK;
}

/* ------------------------------------------------------------------ encode */
static int match_at(const uint32_t *cp, size_t n, size_t i, const char *lit) {
    for (size_t k = 0; lit[k]; k++)
        if (i + k >= n || cp[i + k] != (unsigned char)lit[k]) return 0;
    return 1;
}
/* One piece: its UTF-8 bytes are the BPE input (bytes_to_unicode is folded into byte_id). */
static int emit_piece(craft_tokenizer *t, const uint32_t *cp, size_t a, size_t b, bytev *scratch,
                      u32v *toks) {
    scratch->n = 0;
    for (size_t i = a; i < b; i++) {
        char u[4];
        CRAFT_TRY(craft_tok_bytes_put(scratch, u, craft_utf8_put(cp[i], u)));
    }
    return bpe_word(t, (const unsigned char *)scratch->v, scratch->n, toks);
}
/* CLIP's split, on normalised text: <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d |
 * letters+ | one number | run of neither letters, numbers nor whitespace. Whitespace is dropped.
 * HF's ByteLevel step then re-splits each piece with GPT-2's pattern; that only changes the
 * two special literals ("<|", "endoftext", "|>"). */
static int split_pieces(craft_tokenizer *t, const uint32_t *cp, size_t n, bytev *scratch, u32v *toks,
                        size_t limit) {
    static const char *const contr[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    static const char *const lits[] = {"<|startoftext|>", "<|endoftext|>"};
    size_t i = 0;
    while (i < n && toks->n < limit) {
        unsigned cl = craft_tok_uc_class(cp[i]);
        size_t j = i;
        if (cl & UC_WS) {
            i++;
            continue;
        }
        for (int k = 0; k < 2 && j == i; k++)
            if (match_at(cp, n, i, lits[k])) {
                size_t len = strlen(lits[k]);
                CRAFT_TRY(emit_piece(t, cp, i, i + 2, scratch, toks));
                CRAFT_TRY(emit_piece(t, cp, i + 2, i + len - 2, scratch, toks));
                CRAFT_TRY(emit_piece(t, cp, i + len - 2, i + len, scratch, toks));
                j = i + len;
            }
        if (j != i) {
            i = j;
            continue;
        }
        if (cp[i] == '\'')
            for (int k = 0; k < 7 && j == i; k++)
                if (match_at(cp, n, i, contr[k])) j = i + strlen(contr[k]);
        if (j == i && (cl & UC_L))
            while (j < n && (craft_tok_uc_class(cp[j]) & UC_L)) j++;
        if (j == i && (cl & UC_N)) j = i + 1;
        if (j == i)
            while (j < n && !(craft_tok_uc_class(cp[j]) & (UC_L | UC_N | UC_WS))) j++;
        CRAFT_TRY(emit_piece(t, cp, i, j, scratch, toks));
        i = j;
    }
    return CRAFT_OK;
}
/* Leftmost-longest added token (with the given normalized flag) starting at i; -1 if none. */
static int added_at(const craft_tokenizer *t, const uint32_t *cp, size_t n, size_t i, int normalized,
                    size_t *len) {
    int best = -1;
    size_t bl = 0;
    for (int k = 0; k < t->nadded; k++) {
        if (t->added[k].normalized != normalized) continue;
        const unsigned char *s = (const unsigned char *)t->added[k].s;
        size_t sl = strlen(t->added[k].s), si = 0, m = 0;
        uint32_t c;
        int ok = 1;
        while (ok && si < sl) {
            ok = i + m < n && craft_tok_utf8_next(s, sl, &si, &c) && c == cp[i + m];
            m++;
        }
        if (ok && m > bl) {
            best = k;
            bl = m;
        }
    }
    *len = bl;
    return best;
}
/* Cuts cp[a..b) at added tokens; the pieces between go to normalisation (stage 0) or to the
 * regex split (stage 1), as HF tokenizers extracts raw then normalised added tokens. */
static int encode_span(craft_tokenizer *t, const uint32_t *cp, size_t a, size_t b, int stage, bytev *scratch,
                       u32v *toks, size_t limit) {
    size_t start = a, i = a, len;
    while (start <= b && toks->n < limit) {
        int k = i < b ? added_at(t, cp, b, i, stage, &len) : -1;
        if (k < 0 && i < b) {
            i++;
            continue;
        }
        if (i > start) {
            if (stage == 0) {
                u32v norm = {0};
                int rc = craft_tok_normalize(cp + start, i - start, &norm);
                if (rc == CRAFT_OK) rc = encode_span(t, norm.v, 0, norm.n, 1, scratch, toks, limit);
                free(norm.v);
                CRAFT_TRY(rc);
            } else CRAFT_TRY(split_pieces(t, cp + start, i - start, scratch, toks, limit));
        }
        if (k < 0 || toks->n >= limit) break;
        CRAFT_TRY(craft_tok_u32_push(toks, (uint32_t)t->added[k].id));
        i += len;
        start = i;
    }
    return CRAFT_OK;
}

int craft_tokenizer_encode(craft_tokenizer *t, const char *text, int max_len, int pad, int32_t *ids,
                           int *n_out) {
    if (!t || !text || !ids || !n_out) return craft_fail(CRAFT_EINVAL, "tokenizer_encode: NULL argument");
    if (max_len < 2)
        return craft_fail(CRAFT_EINVAL, "tokenizer_encode: max_len %d, need at least 2 (start and end)",
                          max_len);
    size_t n = strlen(text), i = 0;
    u32v cp = {0}, toks = {0};
    bytev scratch = {0};
    int rc = CRAFT_OK;
    while (i < n && rc == CRAFT_OK) {
        uint32_t c;
        craft_tok_utf8_next((const unsigned char *)text, n, &i, &c);
        rc = craft_tok_u32_push(&cp, c);
    }
    size_t limit = (size_t)max_len - 2;
    if (rc == CRAFT_OK) rc = encode_span(t, cp.v, 0, cp.n, 0, &scratch, &toks, limit);
    if (rc == CRAFT_OK) {
        size_t m = toks.n < limit ? toks.n : limit;
        ids[0] = t->bos;
        for (size_t k = 0; k < m; k++) ids[k + 1] = (int32_t)toks.v[k];
        ids[m + 1] = t->eos;
        if (pad)
            for (size_t k = m + 2; k < (size_t)max_len; k++) ids[k] = t->pad;
        *n_out = (int)(m + 2);
    }
    free(cp.v);
    free(toks.v);
    free(scratch.v);
    return rc;
}

/* ------------------------------------------------------------------ decode */
static int is_skipped(const craft_tokenizer *t, int32_t id) {
    if (id == t->bos || id == t->eos || id == t->pad || id == t->unk) return 1;
    for (int k = 0; k < t->nadded; k++)
        if (t->added[k].special && t->added[k].id == id) return 1;
    return 0;
}
int craft_tokenizer_decode(const craft_tokenizer *t, const int32_t *ids, int n, char *buf, size_t bufsize) {
    if (!t || (!ids && n) || n < 0 || !buf || !bufsize)
        return craft_fail(CRAFT_EINVAL, "tokenizer_decode: bad argument");
    bytev raw = {0}, txt = {0};
    int rc = CRAFT_OK;
    for (int k = 0; k < n && rc == CRAFT_OK; k++) {
        if (ids[k] < 0 || ids[k] >= t->ntok || !t->tok[ids[k]]) {
            rc = craft_fail(CRAFT_EINVAL, "tokenizer_decode: ids[%d] = %d is not a token (vocab size %d)", k,
                            (int)ids[k], (int)t->ntok);
            break;
        }
        if (is_skipped(t, ids[k])) continue;
        /* a token whose every char is a byte symbol gives those bytes; any other, its own text */
        const unsigned char *s = (const unsigned char *)t->tok[ids[k]];
        size_t sl = strlen((const char *)s), si = 0, at = raw.n;
        uint32_t c;
        while (rc == CRAFT_OK && si < sl) {
            if (!craft_tok_utf8_next(s, sl, &si, &c) || c >= 512 || t->u2b[c] < 0) {
                raw.n = at;
                rc = craft_tok_bytes_put(&raw, s, sl);
                break;
            }
            unsigned char b = (unsigned char)t->u2b[c];
            rc = craft_tok_bytes_put(&raw, &b, 1);
        }
    }
    /* lossy UTF-8, then "</w>" -> " " */
    size_t i = 0;
    while (rc == CRAFT_OK && i < raw.n) {
        size_t i0 = i;
        uint32_t c;
        if (!craft_tok_utf8_next((const unsigned char *)raw.v, raw.n, &i, &c))
            rc = craft_tok_bytes_put(&txt, "\xEF\xBF\xBD", 3);
        else if (c == '<' && raw.n - i0 >= 4 && !memcmp(raw.v + i0, "</w>", 4)) {
            rc = craft_tok_bytes_put(&txt, " ", 1);
            i = i0 + 4;
        } else rc = craft_tok_bytes_put(&txt, raw.v + i0, i - i0);
    }
    /* strip as Python's str.strip(): characters with str.isspace() */
    size_t a = 0, b = txt.n;
    while (rc == CRAFT_OK && a < b) {
        size_t j = a;
        uint32_t c;
        craft_tok_utf8_next((const unsigned char *)txt.v, b, &j, &c);
        if (!(craft_tok_uc_class(c) & UC_PYSPACE)) break;
        a = j;
    }
    while (rc == CRAFT_OK && b > a) {
        size_t j = b - 1;
        uint32_t c;
        while (j > a && ((unsigned char)txt.v[j] & 0xC0) == 0x80) j--;
        size_t e = j;
        craft_tok_utf8_next((const unsigned char *)txt.v, b, &e, &c);
        if (!(craft_tok_uc_class(c) & UC_PYSPACE)) break;
        b = j;
    }
    if (rc == CRAFT_OK && b - a >= bufsize)
        rc = craft_fail(CRAFT_EINVAL, "tokenizer_decode: text needs %zu bytes, buffer has %zu", b - a + 1,
                        bufsize);
    if (rc == CRAFT_OK) {
        if (b > a) memcpy(buf, txt.v + a, b - a);
        buf[b - a] = 0;
    }
    free(raw.v);
    free(txt.v);
    return rc;
}