/* tokenizer_load.c: builds a CLIP tokenizer's tables (id <-> token, merge ranks, byte symbols,
 * special tokens) from vocab.json + merges.txt, from OpenAI's bpe_simple_vocab_16e6.txt.gz, or
 * from a diffusers tokenizer/ folder with its tokenizer_config.json / special_tokens_map.json.
 * Every file is untrusted: sizes, ids and merge parts are checked before use. Encoding and
 * decoding live in tokenizer.c. */
#include "text/tokenizer_internal.h"
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#define MAX_VOCAB (1 << 24)
#define GZ_MERGES (49152 - 256 - 2) /* merges OpenAI CLIP reads from the gz file */

/* ------------------------------------------------------------------ tables */
/* Later entries win, as in Python's dict(zip(vocab, range(...))). key is owned by t->tok. */
static void vocab_set(craft_tokenizer *t, char *key, int32_t id) {
    size_t n = strlen(key), m = t->vcap - 1, i = (size_t)craft_tok_hash_bytes(key, n) & m;
    for (; t->vkey[i]; i = (i + 1) & m)
        if (!strcmp(t->vkey[i], key)) {
            t->vkey[i] = key;
            t->vval[i] = id;
            return;
        }
    t->vkey[i] = key;
    t->vval[i] = id;
}
static size_t pow2_above(size_t n) {
    size_t c = 16;
    while (c < n * 2) c *= 2;
    return c;
}

static int tables_alloc(craft_tokenizer *t, int32_t ntok, size_t nmerges) {
    t->ntok = ntok;
    t->tok = calloc((size_t)ntok, sizeof *t->tok);
    t->vcap = pow2_above((size_t)ntok);
    t->vkey = calloc(t->vcap, sizeof *t->vkey);
    t->vval = calloc(t->vcap, sizeof *t->vval);
    t->mcap = pow2_above(nmerges);
    t->mkey = malloc(t->mcap * sizeof *t->mkey);
    t->mrank = malloc(t->mcap * sizeof *t->mrank);
    t->mnew = malloc(t->mcap * sizeof *t->mnew);
    if (!t->tok || !t->vkey || !t->vval || !t->mkey || !t->mrank || !t->mnew)
        return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory for %d tokens", (int)ntok);
    memset(t->mkey, 0xFF, t->mcap * sizeof *t->mkey);
    return CRAFT_OK;
}

/* ------------------------------------------------------------------ loading */
static void bytes_to_unicode(craft_tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 512; i++) t->u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t->b2u[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        t->u2b[t->b2u[b]] = (int16_t)b;
    }
}
static int read_all(const char *path, size_t cap, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return craft_fail(CRAFT_EIO, "tokenizer: cannot open %s: %s", path, strerror(errno));
    bytev b = {0};
    char chunk[65536];
    size_t got;
    int rc = CRAFT_OK;
    while (rc == CRAFT_OK && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + got > cap)
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: larger than %zu bytes", path, cap);
        else rc = craft_tok_bytes_put(&b, chunk, got);
    }
    if (rc == CRAFT_OK && ferror(f)) rc = craft_fail(CRAFT_EIO, "tokenizer: cannot read %s", path);
    fclose(f);
    if (rc == CRAFT_OK && !b.v) rc = craft_tok_bytes_put(&b, "", 0);
    if (rc != CRAFT_OK) {
        free(b.v);
        return rc;
    }
    *buf = b.v;
    *len = b.n;
    return CRAFT_OK;
}
/* gunzips a whole file; a stream cut short or failing its CRC is a format error. */
static int read_gz(const char *path, char **buf, size_t *len) {
    char *raw;
    size_t rawn;
    CRAFT_TRY(read_all(path, (size_t)256 << 20, &raw, &rawn));
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        free(raw);
        return craft_fail(CRAFT_ENOMEM, "tokenizer: zlib init failed");
    }
    bytev b = {0};
    char chunk[65536];
    int zr = Z_OK, rc = CRAFT_OK;
    z.next_in = (Bytef *)raw;
    z.avail_in = (uInt)(rawn > UINT_MAX ? UINT_MAX : rawn);
    while (rc == CRAFT_OK && zr != Z_STREAM_END) {
        z.next_out = (Bytef *)chunk;
        z.avail_out = sizeof chunk;
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            rc = zr == Z_BUF_ERROR
                ? craft_fail(CRAFT_EFORMAT, "tokenizer: %s: gzip stream truncated after %zu bytes", path, b.n)
                : craft_fail(CRAFT_EFORMAT, "tokenizer: %s: bad gzip data (%s)", path,
                             z.msg ? z.msg : "zlib error");
            break;
        }
        rc = craft_tok_bytes_put(&b, chunk, sizeof chunk - z.avail_out);
        if (rc == CRAFT_OK && b.n > ((size_t)64 << 20))
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: inflates past 64 MiB", path);
    }
    inflateEnd(&z);
    free(raw);
    if (rc != CRAFT_OK) {
        free(b.v);
        return rc;
    }
    *buf = b.v;
    *len = b.n;
    return CRAFT_OK;
}
/* Next line of text[*pos..n) without its "\n" / "\r\n"; 0 at the end. */
static int next_line(char *text, size_t n, size_t *pos, char **line, size_t *len) {
    if (*pos >= n) return 0;
    char *s = text + *pos, *e = memchr(s, '\n', n - *pos);
    size_t l = e ? (size_t)(e - s) : n - *pos;
    *pos += l + (e ? 1 : 0);
    if (l && s[l - 1] == '\r') l--;
    s[l] = 0;
    *line = s;
    *len = l;
    return 1;
}
/* "a b" -> a, b (NUL-terminated in place); exactly two non-empty fields separated by one space. */
static int split_merge(char *line, size_t len, char **a, char **b) {
    char *sp = memchr(line, ' ', len);
    if (!sp || sp == line || sp == line + len - 1 || memchr(sp + 1, ' ', (size_t)(line + len - sp - 1)))
        return 0;
    *sp = 0;
    *a = line;
    *b = sp + 1;
    return 1;
}
static int add_merge(craft_tokenizer *t, const char *fname, size_t lineno, const char *a, const char *b,
                     int32_t rank) {
    char small[256], *buf = small;
    size_t la = strlen(a), lb = strlen(b);
    int32_t ia = craft_tok_vocab_get(t, a, la), ib = craft_tok_vocab_get(t, b, lb), in;
    if (la + lb >= sizeof small && !(buf = malloc(la + lb + 1)))
        return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb + 1);
    in = craft_tok_vocab_get(t, buf, la + lb);
    if (buf != small) free(buf);
    if (ia < 0 || ib < 0 || in < 0)
        return craft_fail(CRAFT_EFORMAT, "tokenizer: %s:%zu: merge \"%.40s %.40s\": %s not in the vocabulary",
                          fname, lineno, a, b,
                          ia < 0       ? "first part"
                              : ib < 0 ? "second part"
                                       : "merged token");
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    size_t i = craft_tok_merge_slot(t, key);
    t->mkey[i] = key;
    t->mrank[i] = rank;
    t->mnew[i] = in; /* a repeated pair: the later rank wins */
    return CRAFT_OK;
}

static int set_token(craft_tokenizer *t, int32_t id, const char *s, size_t n) {
    if (!(t->tok[id] = malloc(n + 1))) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    memcpy(t->tok[id], s, n);
    t->tok[id][n] = 0;
    vocab_set(t, t->tok[id], id);
    return CRAFT_OK;
}
static int add_special(craft_tokenizer *t, const char *content, int normalized, int special) {
    for (int i = 0; i < t->nadded; i++)
        if (!strcmp(t->added[i].s, content)) {
            t->added[i].normalized = normalized;
            t->added[i].special |= special;
            return CRAFT_OK;
        }
    int32_t id = craft_tok_vocab_get(t, content, strlen(content));
    if (id < 0)
        return craft_fail(CRAFT_EFORMAT, "tokenizer: special token \"%.60s\" is not in the vocabulary",
                          content);
    added_tok *p = realloc(t->added, (size_t)(t->nadded + 1) * sizeof *p);
    if (!p) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    t->added = p;
    p[t->nadded].s = t->tok[id];
    p[t->nadded].id = id;
    p[t->nadded].normalized = normalized;
    p[t->nadded].special = special;
    t->nadded++;
    return CRAFT_OK;
}
/* The initial BPE symbol of each byte, alone and word-final; a missing one is the unknown
 * token, as HF tokenizers' BPE does. */
static void set_byte_ids(craft_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n = craft_utf8_put(t->b2u[b], s);
        int32_t id = craft_tok_vocab_get(t, s, n);
        t->byte_id[b] = id < 0 ? t->unk : id;
        memcpy(s + n, "</w>", 4);
        id = craft_tok_vocab_get(t, s, n + 4);
        t->byte_eow[b] = id < 0 ? t->unk : id;
    }
}
/* Byte symbols, special tokens and the cache: shared tail of every loader. */
static int finish(craft_tokenizer *t, const char *what) {
    bytes_to_unicode(t);
    t->bos = craft_tok_vocab_get(t, "<|startoftext|>", 15);
    t->eos = craft_tok_vocab_get(t, "<|endoftext|>", 13);
    if (t->bos < 0 || t->eos < 0)
        return craft_fail(CRAFT_EFORMAT, "tokenizer: %s: no \"%s\" token", what,
                          t->bos < 0 ? "<|startoftext|>" : "<|endoftext|>");
    t->unk = t->pad = t->eos;
    set_byte_ids(t);
    CRAFT_TRY(add_special(t, "<|startoftext|>", 0, 1));
    CRAFT_TRY(add_special(t, "<|endoftext|>", 0, 1));
    return CRAFT_OK;
}

static int load_files(const char *vocab_json, const char *merges_txt, craft_tokenizer *t) {
    char *text = NULL;
    size_t n;
    json_error_t je;
    CRAFT_TRY(read_all(vocab_json, (size_t)256 << 20, &text, &n));
    json_t *root = json_loadb(text, n, 0, &je);
    free(text);
    if (!root)
        return craft_fail(CRAFT_EFORMAT, "tokenizer: %s:%d:%d: %s", vocab_json, je.line, je.column, je.text);
    int rc = CRAFT_OK;
    const char *key;
    json_t *val;
    int64_t maxid = -1;
    if (!json_is_object(root))
        rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: expected a JSON object {token: id}", vocab_json);
    json_object_foreach(root, key, val) {
        if (rc != CRAFT_OK) break;
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= MAX_VOCAB || !key[0])
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: token \"%.60s\": id must be an integer in [0, %d)",
                            vocab_json, key, MAX_VOCAB);
        else if (id > maxid) maxid = id;
    }
    char *mt = NULL;
    size_t mn = 0, nlines = 0;
    if (rc == CRAFT_OK) rc = read_all(merges_txt, (size_t)256 << 20, &mt, &mn);
    if (rc == CRAFT_OK)
        for (size_t i = 0; i < mn; i++) nlines += mt[i] == '\n';
    /* ids are dense in real files; a few gaps are fine, a huge id is not a vocabulary */
    size_t count = rc == CRAFT_OK ? json_object_size(root) : 0;
    if (rc == CRAFT_OK && count == 0)
        rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: empty vocabulary", vocab_json);
    if (rc == CRAFT_OK && (size_t)maxid >= count + 65536)
        rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: id %lld out of range for %zu tokens", vocab_json,
                        (long long)maxid, count);
    if (rc == CRAFT_OK) rc = tables_alloc(t, (int32_t)(maxid + 1), nlines + 1);
    json_object_foreach(root, key, val) {
        if (rc != CRAFT_OK) break;
        int32_t id = (int32_t)json_integer_value(val);
        if (t->tok[id])
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: id %d used by both \"%.40s\" and \"%.40s\"",
                            vocab_json, (int)id, t->tok[id], key);
        else rc = set_token(t, id, key, strlen(key));
    }
    json_decref(root);
    size_t pos = 0, lineno = 0, len;
    char *line, *a, *b;
    int32_t rank = 0;
    while (rc == CRAFT_OK && next_line(mt, mn, &pos, &line, &len)) {
        lineno++;
        if (!strncmp(line, "#version", 8)) continue;
        if (!len && pos >= mn) break; /* final newline */
        if (!craft_tok_utf8_valid(line, len))
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s:%zu: not valid UTF-8", merges_txt, lineno);
        else if (!split_merge(line, len, &a, &b))
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s:%zu: expected two tokens separated by one space",
                            merges_txt, lineno);
        else rc = add_merge(t, merges_txt, lineno, a, b, rank++);
    }
    free(mt);
    return rc == CRAFT_OK ? finish(t, vocab_json) : rc;
}

int craft_tokenizer_load(const char *vocab_json, const char *merges_txt, craft_tokenizer **out) {
    if (!vocab_json || !merges_txt || !out) return craft_fail(CRAFT_EINVAL, "tokenizer_load: NULL argument");
    craft_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    int rc = load_files(vocab_json, merges_txt, t);
    if (rc != CRAFT_OK) {
        craft_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return CRAFT_OK;
}

static int load_gz(const char *path, craft_tokenizer *t) {
    char *text;
    size_t n;
    CRAFT_TRY(read_gz(path, &text, &n));
    /* line 1 is a header; OpenAI CLIP reads lines 2 .. 1 + GZ_MERGES */
    size_t nl = 1;
    for (size_t i = 0; i < n && nl <= GZ_MERGES; i++) nl += text[i] == '\n';
    char **parts = malloc(2 * nl * sizeof *parts);
    size_t pos = 0, len, nm = 0, lineno = 1;
    char *line;
    int rc = parts ? CRAFT_OK : craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    if (rc == CRAFT_OK && !next_line(text, n, &pos, &line, &len))
        rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: empty file", path);
    while (rc == CRAFT_OK && nm < GZ_MERGES && next_line(text, n, &pos, &line, &len)) {
        lineno++;
        if (!len && pos >= n) break;
        if (!craft_tok_utf8_valid(line, len))
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s:%zu: not valid UTF-8", path, lineno);
        else if (!split_merge(line, len, &parts[2 * nm], &parts[2 * nm + 1]))
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s:%zu: expected two tokens separated by one space",
                            path, lineno);
        else nm++;
    }
    if (rc == CRAFT_OK) rc = tables_alloc(t, (int32_t)(512 + nm + 2), nm);
    bytes_to_unicode(t);
    int32_t id = 0;
    /* the byte symbols in OpenAI's order: printable bytes (mapped to themselves) first */
    for (int eow = 0; eow < 2 && rc == CRAFT_OK; eow++)
        for (uint32_t c = 0; c < 512 && rc == CRAFT_OK; c++) {
            if (t->u2b[c] < 0) continue;
            char s[8];
            size_t sn = craft_utf8_put(c, s);
            if (eow) {
                memcpy(s + sn, "</w>", 4);
                sn += 4;
            }
            rc = set_token(t, id++, s, sn);
        }
    bytev cat = {0};
    for (size_t k = 0; k < nm && rc == CRAFT_OK; k++) {
        cat.n = 0;
        rc = craft_tok_bytes_put(&cat, parts[2 * k], strlen(parts[2 * k]));
        if (rc == CRAFT_OK) rc = craft_tok_bytes_put(&cat, parts[2 * k + 1], strlen(parts[2 * k + 1]));
        if (rc == CRAFT_OK) rc = set_token(t, id++, cat.v, cat.n);
    }
    free(cat.v);
    if (rc == CRAFT_OK) rc = set_token(t, id++, "<|startoftext|>", 15);
    if (rc == CRAFT_OK) rc = set_token(t, id++, "<|endoftext|>", 13);
    /* ranks only once the whole vocabulary exists: a merge may name a token made later */
    for (size_t k = 0; k < nm && rc == CRAFT_OK; k++)
        rc = add_merge(t, path, k + 2, parts[2 * k], parts[2 * k + 1], (int32_t)k);
    free(parts);
    free(text);
    return rc == CRAFT_OK ? finish(t, path) : rc;
}

int craft_tokenizer_load_bpe_gz(const char *path, craft_tokenizer **out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "tokenizer_load_bpe_gz: NULL argument");
    craft_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    int rc = load_gz(path, t);
    if (rc != CRAFT_OK) {
        craft_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return CRAFT_OK;
}

/* ------------------------------------------------------------------ tokenizer/ folder configs */
enum { SP_BOS, SP_EOS, SP_UNK, SP_PAD, SP_N };
static const char *const sp_keys[SP_N] = {"bos_token", "eos_token", "unk_token", "pad_token"};
typedef struct {
    char content[256];
    int normalized;
    const char *from;
} spec_tok;

/* A token entry is a string or an AddedToken dict {"content": ..., "normalized": ...}. */
static int read_spec(json_t *v, const char *file, const char *key, spec_tok *sp) {
    json_t *c = json_is_object(v) ? json_object_get(v, "content") : v;
    if (json_is_null(v)) return CRAFT_OK;
    if (!json_is_string(c) || json_string_length(c) == 0 || json_string_length(c) >= sizeof sp->content)
        return craft_fail(CRAFT_EFORMAT,
                          "tokenizer: %s: \"%s\" must be a token string or {\"content\": string}", file, key);
    memcpy(sp->content, json_string_value(c), json_string_length(c) + 1);
    sp->normalized = json_is_object(v) && json_is_true(json_object_get(v, "normalized"));
    sp->from = file;
    return CRAFT_OK;
}
static int open_config(const char *path, json_t **root) {
    FILE *f = fopen(path, "rb");
    *root = NULL;
    if (!f) return CRAFT_OK; /* optional */
    fclose(f);
    char *text;
    size_t n;
    json_error_t je;
    CRAFT_TRY(read_all(path, (size_t)16 << 20, &text, &n));
    *root = json_loadb(text, n, 0, &je);
    free(text);
    if (!*root)
        return craft_fail(CRAFT_EFORMAT, "tokenizer: %s:%d:%d: %s", path, je.line, je.column, je.text);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return craft_fail(CRAFT_EFORMAT, "tokenizer: %s: expected a JSON object", path);
    }
    return CRAFT_OK;
}
/* transformers' precedence: tokenizer_config.json, overridden by special_tokens_map.json; the
 * special tokens register in the order bos, eos, unk, pad (a later one sets the shared flags of
 * an equal string); added_tokens_decoder entries set flags last. */
static int apply_configs(craft_tokenizer *t, const char *dir) {
    spec_tok sp[SP_N] = {{"<|startoftext|>", 0, NULL},
                         {"<|endoftext|>", 0, NULL},
                         {"<|endoftext|>", 0, NULL},
                         {"<|endoftext|>", 0, NULL}};
    const char *names[2] = {"tokenizer_config.json", "special_tokens_map.json"};
    json_t *roots[2] = {NULL, NULL};
    char paths[2][4096];
    int rc = CRAFT_OK;
    for (int f = 0; f < 2 && rc == CRAFT_OK; f++) {
        snprintf(paths[f], sizeof paths[f], "%s/%s", dir, names[f]);
        rc = open_config(paths[f], &roots[f]);
        for (int k = 0; k < SP_N && rc == CRAFT_OK && roots[f]; k++) {
            json_t *v = json_object_get(roots[f], sp_keys[k]);
            if (v) rc = read_spec(v, paths[f], sp_keys[k], &sp[k]);
        }
    }
    for (int k = 0; k < SP_N && rc == CRAFT_OK; k++) {
        if (craft_tok_vocab_get(t, sp[k].content, strlen(sp[k].content)) < 0)
            rc = craft_fail(CRAFT_EFORMAT, "tokenizer: %s: %s \"%.60s\" is not in vocab.json",
                            sp[k].from ? sp[k].from : dir, sp_keys[k], sp[k].content);
        else rc = add_special(t, sp[k].content, sp[k].normalized, 1);
    }
    json_t *dec = roots[0] ? json_object_get(roots[0], "added_tokens_decoder") : NULL;
    const char *key;
    json_t *v;
    if (dec && rc == CRAFT_OK) json_object_foreach(dec, key, v) {
            json_t *c = json_object_get(v, "content");
            char *end;
            long id = strtol(key, &end, 10);
            if (!json_is_string(c) || *end || id < 0 || id >= t->ntok || !t->tok[id] ||
                strcmp(t->tok[id], json_string_value(c))) {
                rc = craft_fail(
                    CRAFT_EFORMAT,
                    "tokenizer: %s: added_tokens_decoder \"%.20s\" does not name a vocab.json token by its id",
                    paths[0], key);
                break;
            }
            rc = add_special(t, t->tok[id], json_is_true(json_object_get(v, "normalized")),
                             json_is_true(json_object_get(v, "special")));
            if (rc != CRAFT_OK) break;
        }
    for (int f = 0; f < 2; f++) json_decref(roots[f]);
    if (rc != CRAFT_OK) return rc;
    /* all four are in the vocabulary: add_special checked */
    t->bos = craft_tok_vocab_get(t, sp[SP_BOS].content, strlen(sp[SP_BOS].content));
    t->eos = craft_tok_vocab_get(t, sp[SP_EOS].content, strlen(sp[SP_EOS].content));
    t->unk = craft_tok_vocab_get(t, sp[SP_UNK].content, strlen(sp[SP_UNK].content));
    t->pad = craft_tok_vocab_get(t, sp[SP_PAD].content, strlen(sp[SP_PAD].content));
    set_byte_ids(t);
    return CRAFT_OK;
}

int craft_tokenizer_load_dir(const char *dir, craft_tokenizer **out) {
    if (!dir || !out) return craft_fail(CRAFT_EINVAL, "tokenizer_load_dir: NULL argument");
    char vj[4096], mt[4096];
    if (snprintf(vj, sizeof vj, "%s/vocab.json", dir) >= (int)sizeof vj ||
        snprintf(mt, sizeof mt, "%s/merges.txt", dir) >= (int)sizeof mt)
        return craft_fail(CRAFT_EINVAL, "tokenizer_load_dir: path too long");
    craft_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return craft_fail(CRAFT_ENOMEM, "tokenizer: out of memory");
    int rc = load_files(vj, mt, t);
    if (rc == CRAFT_OK) rc = apply_configs(t, dir);
    if (rc != CRAFT_OK) {
        craft_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return CRAFT_OK;
}
