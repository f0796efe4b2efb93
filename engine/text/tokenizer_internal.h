/* tokenizer_internal.h: what the two halves of the CLIP tokenizer share: the tokenizer struct,
 * the byte buffer, and the few helpers both call. tokenizer_load.c builds the tables from
 * vocab.json / merges.txt, the OpenAI gz vocabulary or a tokenizer/ folder; tokenizer_unicode.c
 * holds UTF-8, the character classes and normalisation; tokenizer.c BPE, encode, decode and
 * getters. Not part of the public API. */
#ifndef CRAFT_TOKENIZER_INTERNAL_H
#define CRAFT_TOKENIZER_INTERNAL_H
#include "core/internal.h"

typedef struct {
    char *s;
    int32_t id;
    int normalized, special;
} added_tok;
typedef struct cache_ent cache_ent; /* the BPE word cache (tokenizer.c) */

struct craft_tokenizer {
    char **tok;
    int32_t ntok; /* id -> token (NULL for gaps) */
    char **vkey;
    int32_t *vval;
    size_t vcap; /* token -> id, open addressing */
    uint64_t *mkey;
    int32_t *mrank, *mnew;
    size_t mcap; /* (a,b) -> rank, merged id */
    int32_t byte_id[256], byte_eow[256];
    uint32_t b2u[256];
    int16_t u2b[512];
    int32_t bos, eos, pad, unk;
    added_tok *added;
    int nadded;
    cache_ent **cache, *cache_all;
    size_t ncache; /* CACHE_MAX buckets; every entry */
};

typedef struct {
    char *v;
    size_t n, cap;
} bytev;

/* Appends n bytes and keeps a NUL after them. */
int craft_tok_bytes_put(bytev *b, const void *src, size_t n);
/* FNV-1a, the hash of both the vocabulary map and the word cache. */
uint64_t craft_tok_hash_bytes(const char *s, size_t n);
/* 1 when s[0..n) is well-formed UTF-8. */
int craft_tok_utf8_valid(const char *s, size_t n);
/* The id of token s[0..n), or -1. */
int32_t craft_tok_vocab_get(const craft_tokenizer *t, const char *s, size_t n);
/* The merge-table slot holding key, or the empty slot where it would go. */
size_t craft_tok_merge_slot(const craft_tokenizer *t, uint64_t key);

/* ---- tokenizer_unicode.c ---- */
typedef struct {
    uint32_t *v;
    size_t n, cap;
} u32v;
/* Appends x (the error set on failure). */
int craft_tok_u32_push(u32v *a, uint32_t x);
/* Decodes s[*i..n) one scalar into *cp, advancing *i; ill-formed input gives U+FFFD per maximal
 * subpart. Returns 0 when the code point was replaced. */
int craft_tok_utf8_next(const unsigned char *s, size_t n, size_t *i, uint32_t *cp);
/* The classes of c the split regex asks about (UC_* bits). */
enum { UC_L = 1, UC_N = 2, UC_WS = 4, UC_PYSPACE = 8 };
unsigned craft_tok_uc_class(uint32_t c);
/* Appends the normalised form of in[0..n) to out: NFC, whitespace runs -> " ", lower-case. */
int craft_tok_normalize(const uint32_t *in, size_t n, u32v *out);

#endif
