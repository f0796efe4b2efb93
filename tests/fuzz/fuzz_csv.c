/* fuzz_csv.c: craft_csv_parse (libcsv, line numbering, ragged-row checks) and the cell
 * accessors, with and without a header row. Build and run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine -I/usr/include/stb \
 *     tests/fuzz/fuzz_csv.c engine/csv.c engine/error.c engine/dtype.c -lcsv -lm
 *   ./a.out tests/fuzz/corpus/csv -max_total_time=60 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "craft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int has_header = 0; has_header < 2; has_header++) {
        craft_csv *c;
        if (craft_csv_parse((const char *)data, size, "fuzz.csv", has_header, &c) != CRAFT_OK) continue;
        volatile size_t acc = 0;
        int rows = craft_csv_rows(c), cols = craft_csv_cols(c);
        for (int r = -1; r <= rows; r++) {
            acc += (size_t)craft_csv_row_line(c, r);
            for (int j = -1; j <= cols; j++) {
                const char *s = craft_csv_cell(c, r, j);
                if (s) acc += strlen(s);
            }
        }
        for (int j = 0; j <= cols; j++) {
            const char *h = craft_csv_header(c, j);
            int col;
            if (h) craft_csv_column_index(c, h, &col);
            double d;
            int64_t v;
            if (rows > 0) {
                craft_csv_cell_double(c, rows - 1, j, &d);
                craft_csv_cell_int64(c, 0, j, &v);
            }
        }
        craft_csv_column_index(c, "label", &(int){0});
        craft_csv_free(c);
    }
    return 0;
}
