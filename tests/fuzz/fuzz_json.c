/* fuzz_json.c: libFuzzer target for the JSON document API: parse, then walk every node with
 * every accessor, in and out of range.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine tests/fuzz/fuzz_json.c \
 *          engine/json.c engine/error.c engine/dtype.c -ljansson -lm
 *        ./a.out tests/fuzz/corpus/json */
#include "craft.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    craft_json *d = NULL;
    int rc = craft_json_parse_string((const char *)data, size, "fuzz.json", &d);
    if (rc) {
        if (rc != CRAFT_EFORMAT || !strstr(craft_last_error(), "fuzz.json")) abort();
        return 0;
    }
    int n = craft_json_node_count(d);
    if (n < 1) abort();
    for (int i = -1; i <= n; i++) {
        int t = craft_json_type(d, i);
        int64_t len = craft_json_length(d, i);
        if ((i < 0 || i >= n) != (t < 0) || (t < 0) != (len < 0)) abort();
        double x;
        int64_t v;
        int b;
        int is_num = craft_json_number(d, i, &x) == CRAFT_OK;
        if (is_num != (t == CRAFT_JSON_INTEGER || t == CRAFT_JSON_REAL)) abort();
        (void)craft_json_integer(d, i, &v);
        if ((craft_json_bool(d, i, &b) == CRAFT_OK) != (t == CRAFT_JSON_TRUE || t == CRAFT_JSON_FALSE))
            abort();
        const char *s = craft_json_string(d, i);
        if ((s != NULL) != (t == CRAFT_JSON_STRING) || (s && (int64_t)strlen(s) > len)) abort();
        int kids = t == CRAFT_JSON_ARRAY || t == CRAFT_JSON_OBJECT ? (int)len : 0;
        for (int k = -1; k <= kids; k++) {
            int c = craft_json_child(d, i, k);
            if ((k >= 0 && k < kids) != (c > i && c < n)) abort();
            const char *key = craft_json_key(d, i, k);
            if ((key != NULL) != (t == CRAFT_JSON_OBJECT && k >= 0 && k < kids)) abort();
            if (key && craft_json_get(d, i, key) < 0) abort();
        }
    }
    craft_json_free(d);
    return 0;
}
