/* fuzz_tokenizer.c: libFuzzer target for the CLIP tokenizer's loaders and encoder.
 * The first byte picks what the rest is:
 *   0: vocab.json \0 merges.txt \0 text        -> craft_tokenizer_load, encode, decode
 *   1: bpe merges text (gzipped here; byte 1 & 1 truncates the stream) -> load_bpe_gz, encode
 *   2: text, encoded and decoded with the real vocabulary (tests/fixtures/tokenizer/, run from
 *      the repository root; skipped when absent)
 *   3: vocab.json \0 merges.txt \0 special_tokens_map.json \0 tokenizer_config.json \0 text
 *      -> craft_tokenizer_load_dir
 * Build: `make fuzz-build` (clang, libFuzzer + ASan + UBSan, linked against build-fuzz/lib's
 * libcraft.a); run from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "craft.h"

static char dir[64];

static void put(const char *name, const uint8_t *d, size_t n) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fwrite(d, 1, n, f);
    fclose(f);
}
/* Splits data at NUL bytes into up to `max` parts (the last part takes the rest). */
static int split(const uint8_t *d, size_t n, const uint8_t **p, size_t *len, int max) {
    int k = 0;
    while (k < max - 1) {
        const uint8_t *z = memchr(d, 0, n);
        if (!z) break;
        p[k] = d;
        len[k] = (size_t)(z - d);
        k++;
        n -= len[k - 1] + 1;
        d = z + 1;
    }
    p[k] = d;
    len[k] = n;
    return k + 1;
}
static void exercise(craft_tokenizer *t, const uint8_t *text, size_t n) {
    char *s = malloc(n + 1);
    if (!s) return;
    memcpy(s, text, n);
    s[n] = 0;
    int32_t ids[77];
    int m = 0;
    if (craft_tokenizer_encode(t, s, 77, 1, ids, &m) == CRAFT_OK) {
        char buf[4096];
        if (m < 2 || m > 77 || ids[m - 1] != craft_tokenizer_end_id(t)) abort();
        for (int i = 0; i < 77; i++)
            if (!craft_tokenizer_token(t, ids[i])) abort();
        craft_tokenizer_decode(t, ids, 77, buf, sizeof buf);
        craft_tokenizer_encode(t, s, 2, 0, ids, &m);
        if (m != 2) abort();
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static craft_tokenizer *real;
    static int tried;
    craft_tokenizer *t = NULL;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_tok_%d", (int)getpid());
        mkdir(dir, 0700);
    }
    if (size < 1) return 0;
#ifdef FUZZ_TOKENIZER_MODE /* -DFUZZ_TOKENIZER_MODE=2: only the encoder on the real vocabulary */
    int mode = FUZZ_TOKENIZER_MODE;
#else
    int mode = data[0] & 3;
#endif
    data++;
    size--;
    const uint8_t *p[5];
    size_t len[5];
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/vocab.json", dir);
    snprintf(b, sizeof b, "%s/merges.txt", dir);
    if (mode == 0 || mode == 3) {
        int k = split(data, size, p, len, mode == 0 ? 3 : 5);
        put("vocab.json", p[0], len[0]);
        put("merges.txt", k > 1 ? p[1] : p[0], k > 1 ? len[1] : 0);
        if (mode == 3) {
            put("special_tokens_map.json", k > 2 ? p[2] : p[0], k > 2 ? len[2] : 0);
            put("tokenizer_config.json", k > 3 ? p[3] : p[0], k > 3 ? len[3] : 0);
        }
        int rc = mode == 0 ? craft_tokenizer_load(a, b, &t) : craft_tokenizer_load_dir(dir, &t);
        if (rc == CRAFT_OK) {
            exercise(t, p[k - 1], k > 1 ? len[k - 1] : 0);
            craft_tokenizer_free(t);
        }
        if (mode == 3) {
            char c[128];
            snprintf(c, sizeof c, "%s/special_tokens_map.json", dir);
            unlink(c);
            snprintf(c, sizeof c, "%s/tokenizer_config.json", dir);
            unlink(c);
        }
    } else if (mode == 1) {
        if (size < 1) return 0;
        int trunc = data[0] & 1;
        data++;
        size--;
        uLong cap = compressBound((uLong)size) + 64;
        uint8_t *gz = malloc(cap);
        z_stream z;
        memset(&z, 0, sizeof z);
        if (gz && deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
            z.next_in = (Bytef *)data;
            z.avail_in = (uInt)size;
            z.next_out = gz;
            z.avail_out = (uInt)cap;
            deflate(&z, Z_FINISH);
            size_t n = cap - z.avail_out;
            deflateEnd(&z);
            put("bpe.gz", gz, trunc ? n / 2 : n);
            char c[128];
            snprintf(c, sizeof c, "%s/bpe.gz", dir);
            if (craft_tokenizer_load_bpe_gz(c, &t) == CRAFT_OK) {
                exercise(t, data, size < 200 ? size : 200);
                craft_tokenizer_free(t);
            }
        }
        free(gz);
    } else {
        if (!tried) {
            tried = 1;
            craft_tokenizer_load_bpe_gz("tests/fixtures/tokenizer/bpe_simple_vocab_16e6.txt.gz", &real);
        }
        if (real) exercise(real, data, size);
    }
    return 0;
}
