/* test_tokenizer.c: the CLIP tokenizer against reference ids from transformers' CLIPTokenizer
 * (tests/fixtures/tokenizer/cases.json, made by tests/fixtures/make_tokenizer_fixtures.py),
 * for the real vocabulary (gz loader) and the tiny vocab.json/merges.txt folders, plus padding,
 * truncation, decode and malformed-file errors. Run from the repository root. */
#include <jansson.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

#define FIX "tests/fixtures/tokenizer/"
static json_t *cases_root;
static char tmpdir[64];

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
/* The case's text (hex of its UTF-8 bytes, maybe ill-formed) as a C string; caller frees. */
static char *case_text(json_t *c) {
    const char *hex = json_string_value(json_object_get(c, "hex"));
    size_t n = strlen(hex) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = (char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    s[n] = 0;
    return s;
}

/* Every case of the fixture, encoded with t, against the ids stored under `key`, padded with
 * the fixture's pad id. Returns the number of cases that match. */
static int compare_all(craft_tokenizer *t, const char *key) {
    json_t *cases = json_object_get(cases_root, "cases");
    int pad = (int)json_integer_value(json_object_get(json_object_get(cases_root, "pad_ids"), key));
    int ok = 0;
    CHECK(craft_tokenizer_pad_id(t) == pad);
    for (size_t k = 0; k < json_array_size(cases); k++) {
        json_t *c = json_array_get(cases, k), *ref = json_object_get(c, key);
        char *text = case_text(c);
        int32_t ids[77];
        int n = -1, same;
        int rc = craft_tokenizer_encode(t, text, 77, 1, ids, &n);
        same = rc == CRAFT_OK && n == (int)json_array_size(ref);
        for (int i = 0; same && i < 77; i++)
            same = ids[i] == (i < n ? (int32_t)json_integer_value(json_array_get(ref, (size_t)i)) : pad);
        CHECK_MSG(same, "%s case %zu \"%.60s\": rc %d n %d (want %zu)", key, k, text, rc, n,
                  json_array_size(ref));
        ok += same;
        free(text);
    }
    return ok;
}

static void test_real_vocab(void) {
    craft_tokenizer *t = NULL;
    CHECK_OK(craft_tokenizer_load_bpe_gz(FIX "bpe_simple_vocab_16e6.txt.gz", &t));
    if (!t) return;
    CHECK(craft_tokenizer_vocab_size(t) == 49408);
    CHECK(craft_tokenizer_token_id(t, "<|startoftext|>") == 49406);
    CHECK(craft_tokenizer_token_id(t, "<|endoftext|>") == 49407);
    CHECK(craft_tokenizer_start_id(t) == 49406 && craft_tokenizer_end_id(t) == 49407);
    CHECK(craft_tokenizer_token_id(t, "a</w>") == 320);
    CHECK(craft_tokenizer_token_id(t, "!") == 0);
    CHECK(craft_tokenizer_token_id(t, "no such token") == -1);
    CHECK(craft_tokenizer_token(t, 2368) && !strcmp(craft_tokenizer_token(t, 2368), "cat</w>"));
    CHECK(craft_tokenizer_token(t, 49408) == NULL && craft_tokenizer_token(t, -1) == NULL);
    int ok = compare_all(t, "real");
    size_t total = json_array_size(json_object_get(cases_root, "cases"));
    fprintf(stderr, "  real vocabulary: %d / %zu cases match the reference\n", ok, total);
    CHECK(total >= 300);
    /* a second pass runs from the BPE cache and must agree */
    CHECK(compare_all(t, "real") == ok);
    craft_tokenizer_free(t);
}

static void test_decode(void) {
    craft_tokenizer *t = NULL;
    CHECK_OK(craft_tokenizer_load_bpe_gz(FIX "bpe_simple_vocab_16e6.txt.gz", &t));
    if (!t) return;
    json_t *cases = json_object_get(cases_root, "cases");
    static char buf[8192];
    for (size_t k = 0; k < json_array_size(cases); k++) {
        json_t *c = json_array_get(cases, k), *ref = json_object_get(c, "real");
        int32_t ids[77];
        int n = (int)json_array_size(ref);
        for (int i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(ref, (size_t)i));
        const char *want = json_string_value(json_object_get(c, "decode"));
        int rc = craft_tokenizer_decode(t, ids, n, buf, sizeof buf);
        CHECK_MSG(rc == CRAFT_OK && !strcmp(buf, want), "decode case %zu: \"%s\" want \"%s\"", k, buf, want);
    }
    /* ASCII round trip: lower-case words and single spaces come back unchanged */
    const char *texts[] = {"a photo of a cat", "cardiomegaly with cardiothoracic ratio above",
                           "haemorrhages and microaneurysms in the retina", ""};
    for (int i = 0; i < 4; i++) {
        int32_t ids[77];
        int n;
        CHECK_OK(craft_tokenizer_encode(t, texts[i], 77, 1, ids, &n));
        CHECK_OK(craft_tokenizer_decode(t, ids, 77, buf, sizeof buf));
        CHECK_MSG(!strcmp(buf, texts[i]), "\"%s\" vs \"%s\"", buf, texts[i]);
    }
    int32_t ids[3] = {49406, 2368, 49407};
    char small[3];
    CHECK_ERR(craft_tokenizer_decode(t, ids, 3, small, sizeof small), CRAFT_EINVAL);
    CHECK_OK(craft_tokenizer_decode(t, ids, 3, buf, 4));
    CHECK(!strcmp(buf, "cat"));
    ids[1] = 49408;
    CHECK_ERR(craft_tokenizer_decode(t, ids, 3, buf, sizeof buf), CRAFT_EINVAL);
    craft_tokenizer_free(t);
}

static void test_tiny_folders(void) {
    craft_tokenizer *t = NULL;
    CHECK_OK(craft_tokenizer_load(FIX "tiny_sd15/vocab.json", FIX "tiny_sd15/merges.txt", &t));
    if (t) {
        CHECK(craft_tokenizer_vocab_size(t) == 914);
        CHECK(compare_all(t, "tiny") == (int)json_array_size(json_object_get(cases_root, "cases")));
        craft_tokenizer_free(t);
    }
    const char *dirs[2] = {FIX "tiny_sd15", FIX "tiny_sd2"}, *keys[2] = {"tiny_sd15", "tiny_sd2"};
    for (int d = 0; d < 2; d++) {
        t = NULL;
        CHECK_OK(craft_tokenizer_load_dir(dirs[d], &t));
        if (!t) continue;
        CHECK(compare_all(t, keys[d]) == (int)json_array_size(json_object_get(cases_root, "cases")));
        craft_tokenizer_free(t);
    }
}

static void test_pad_and_truncation(void) {
    craft_tokenizer *t = NULL;
    CHECK_OK(craft_tokenizer_load_bpe_gz(FIX "bpe_simple_vocab_16e6.txt.gz", &t));
    if (!t) return;
    json_t *tr = json_object_get(cases_root, "truncation");
    CHECK(json_array_size(tr) >= 8);
    for (size_t k = 0; k < json_array_size(tr); k++) {
        json_t *c = json_array_get(tr, k), *ref = json_object_get(c, "real");
        int ml = (int)json_integer_value(json_object_get(c, "max_length")), n = -1;
        char *text = case_text(c);
        int32_t ids[16];
        CHECK_OK(craft_tokenizer_encode(t, text, ml, 1, ids, &n));
        int same = n == (int)json_array_size(ref);
        for (int i = 0; same && i < n; i++)
            same = ids[i] == json_integer_value(json_array_get(ref, (size_t)i));
        CHECK_MSG(same, "truncation case %zu (max_length %d)", k, ml);
        CHECK(ids[n - 1] == 49407);
        free(text);
    }
    /* pad = 0 leaves the slots after the end token alone */
    int32_t ids[10];
    int n;
    for (int i = 0; i < 10; i++) ids[i] = -7;
    CHECK_OK(craft_tokenizer_encode(t, "a photo of a cat", 10, 0, ids, &n));
    CHECK(n == 7 && ids[0] == 49406 && ids[1] == 320 && ids[5] == 2368 && ids[6] == 49407 && ids[7] == -7 &&
          ids[9] == -7);
    /* SD 2.x pads with "!" */
    CHECK_OK(craft_tokenizer_set_pad(t, craft_tokenizer_token_id(t, "!")));
    CHECK_OK(craft_tokenizer_encode(t, "a photo of a cat", 10, 1, ids, &n));
    CHECK(n == 7 && ids[6] == 49407 && ids[7] == 0 && ids[9] == 0);
    CHECK_ERR(craft_tokenizer_set_pad(t, 49408), CRAFT_EINVAL);
    CHECK_ERR(craft_tokenizer_set_pad(t, -1), CRAFT_EINVAL);
    CHECK_ERR(craft_tokenizer_encode(t, "x", 1, 1, ids, &n), CRAFT_EINVAL);
    CHECK_ERR(craft_tokenizer_encode(t, NULL, 10, 1, ids, &n), CRAFT_EINVAL);
    /* the per-word cache is bounded: many distinct words, then an early one again */
    int32_t first[10], again[10];
    int n1, n2;
    CHECK_OK(craft_tokenizer_encode(t, "pneumothorax", 10, 1, first, &n1));
    char word[32];
    int all_ok = 1;
    for (int i = 0; i < 20000 && all_ok; i++) {
        snprintf(word, sizeof word, "w%dq%d", i, i * 7);
        all_ok = craft_tokenizer_encode(t, word, 10, 1, ids, &n) == CRAFT_OK;
    }
    CHECK(all_ok);
    CHECK_OK(craft_tokenizer_encode(t, "pneumothorax", 10, 1, again, &n2));
    CHECK(n1 == n2 && !memcmp(first, again, sizeof first));
    craft_tokenizer_free(t);
}

static void write_file(const char *name, const void *data, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}
#define WRITE(name, str) write_file(name, str, sizeof(str) - 1)
/* the call fails with `code` and its message names the file (and the line, when given) */
static void expect_fail(int rc, int code, const char *file, const char *line) {
    const char *msg = craft_last_error();
    CHECK_MSG(rc == code, "rc %d, want %d: %s", rc, code, msg);
    CHECK_MSG(strstr(msg, file) != NULL, "message \"%s\" does not name %s", msg, file);
    if (line) CHECK_MSG(strstr(msg, line) != NULL, "message \"%s\" does not give %s", msg, line);
    CHECK(strchr(msg, '\n') == NULL);
}

static void test_malformed(void) {
    char vj[256], mt[256], gz[256], dir[256];
    craft_tokenizer *t = NULL;
    snprintf(vj, sizeof vj, "%s/vocab.json", tmpdir);
    snprintf(mt, sizeof mt, "%s/merges.txt", tmpdir);
    snprintf(gz, sizeof gz, "%s/bpe.txt.gz", tmpdir);
    snprintf(dir, sizeof dir, "%s", tmpdir);
    /* a small valid pair first: "a", "b", "ab" (+ "</w>" forms) and the two special tokens */
    const char *good = "{\"a\": 0, \"b\": 1, \"a</w>\": 2, \"b</w>\": 3, \"ab</w>\": 4, \"ab\": 5,\n"
                       " \"<|startoftext|>\": 6, \"<|endoftext|>\": 7}\n";
    write_file("vocab.json", good, strlen(good));
    WRITE("merges.txt", "#version: 0.2\na b</w>\na b\n");
    CHECK_OK(craft_tokenizer_load(vj, mt, &t));
    if (t) {
        int32_t ids[8];
        int n;
        CHECK_OK(craft_tokenizer_encode(t, "ab ab", 8, 1, ids, &n));
        CHECK(n == 4 && ids[0] == 6 && ids[1] == 4 && ids[2] == 4 && ids[3] == 7 && ids[4] == 7);
        /* bytes missing from this vocabulary become the unknown token (<|endoftext|>) */
        CHECK_OK(craft_tokenizer_encode(t, "c", 8, 0, ids, &n));
        CHECK(n == 3 && ids[1] == 7);
        craft_tokenizer_free(t);
    }
    t = NULL;
    WRITE("merges.txt", "#version: 0.2\na b</w>\nab\n");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "merges.txt", ":3:");
    WRITE("merges.txt", "#version: 0.2\na  b\n");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "merges.txt", ":2:");
    WRITE("merges.txt", "a b</w>\na \xff\n");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "merges.txt", ":2:");
    WRITE("merges.txt", "a b</w>\nb a\n"); /* "ba" is not in the vocabulary */
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "merges.txt", ":2:");
    WRITE("merges.txt", "a b</w>\n");
    WRITE("vocab.json", "{\"a\": 0,\n \"b\": }\n");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", ":2:");
    WRITE("vocab.json", "{\"a\": 0, \"b\\u00ff\": \"x\"}");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", NULL);
    WRITE("vocab.json", "{\"a\": -1}");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", NULL);
    WRITE("vocab.json", "{\"a\": 99999999999}");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", NULL);
    WRITE("vocab.json", "{\"a\": 0, \"b\": 0}");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", NULL);
    WRITE("vocab.json", "{\"a\": 0, \"b\xff\": 1}");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", ":1:");
    WRITE("vocab.json", "[1, 2]");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", NULL);
    WRITE("vocab.json", "{\"a\": 0, \"b\": 1, \"a</w>\": 2, \"b</w>\": 3, \"ab</w>\": 4}");
    expect_fail(craft_tokenizer_load(vj, mt, &t), CRAFT_EFORMAT, "vocab.json", "startoftext");
    expect_fail(craft_tokenizer_load(vj, "/nonexistent/merges.txt", &t), CRAFT_EIO, "/nonexistent/merges.txt",
                NULL);
    CHECK(t == NULL);
    /* folder configs */
    write_file("vocab.json", good, strlen(good));
    WRITE("merges.txt", "a b</w>\n");
    WRITE("special_tokens_map.json", "{\"pad_token\": \"zz\"}");
    expect_fail(craft_tokenizer_load_dir(dir, &t), CRAFT_EFORMAT, "special_tokens_map.json", "\"zz\"");
    WRITE("special_tokens_map.json", "{\"pad_token\": ");
    expect_fail(craft_tokenizer_load_dir(dir, &t), CRAFT_EFORMAT, "special_tokens_map.json", ":1:");
    WRITE("special_tokens_map.json", "{\"pad_token\": {\"content\": \"a\", \"normalized\": false}}");
    CHECK_OK(craft_tokenizer_load_dir(dir, &t));
    if (t) {
        CHECK(craft_tokenizer_pad_id(t) == 0);
        craft_tokenizer_free(t);
        t = NULL;
    }
    /* gzip: truncated, not gzip, a bad merge line */
    FILE *f = fopen(FIX "bpe_simple_vocab_16e6.txt.gz", "rb");
    static unsigned char raw[200000];
    size_t got = f ? fread(raw, 1, sizeof raw, f) : 0;
    if (f) fclose(f);
    CHECK(got == sizeof raw);
    write_file("bpe.txt.gz", raw, got);
    expect_fail(craft_tokenizer_load_bpe_gz(gz, &t), CRAFT_EFORMAT, "bpe.txt.gz", "truncated");
    WRITE("bpe.txt.gz", "plain text, not gzip\n");
    expect_fail(craft_tokenizer_load_bpe_gz(gz, &t), CRAFT_EFORMAT, "bpe.txt.gz", NULL);
    /* "header\ni n\nin</w>\n" gzipped (Python gzip.compress, mtime 0) */
    static const unsigned char gz_bad[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03,
                                           0xcb, 0x48, 0x4d, 0x4c, 0x49, 0x2d, 0xe2, 0xca, 0x54, 0xc8,
                                           0xe3, 0xca, 0xcc, 0xb3, 0xd1, 0x2f, 0xb7, 0xe3, 0x02, 0x00,
                                           0x39, 0x02, 0x1b, 0x56, 0x12, 0x00, 0x00, 0x00};
    write_file("bpe.txt.gz", gz_bad, sizeof gz_bad);
    expect_fail(craft_tokenizer_load_bpe_gz(gz, &t), CRAFT_EFORMAT, "bpe.txt.gz", ":3:");
    expect_fail(craft_tokenizer_load_bpe_gz("/nonexistent.gz", &t), CRAFT_EIO, "/nonexistent.gz", NULL);
    CHECK(t == NULL);
    CHECK_ERR(craft_tokenizer_load(NULL, mt, &t), CRAFT_EINVAL);
    const char *names[] = {"vocab.json", "merges.txt", "special_tokens_map.json", "bpe.txt.gz"};
    for (int i = 0; i < 4; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
}

int main(void) {
    json_error_t je;
    cases_root = json_load_file(FIX "cases.json", 0, &je);
    if (!cases_root) {
        fprintf(stderr, "cannot read " FIX "cases.json (run from the repository root): %s\n", je.text);
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/craft_tok_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_real_vocab);
    RUN(test_decode);
    RUN(test_tiny_folders);
    RUN(test_pad_and_truncation);
    RUN(test_malformed);
    rmdir(tmpdir);
    json_decref(cases_root);
    return CHECK_SUMMARY();
}
