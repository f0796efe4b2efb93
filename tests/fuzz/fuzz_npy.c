/* fuzz_npy.c: craft_npy_parse on arbitrary bytes (header parser, size checks, byte swapping,
 * widening, Fortran transpose, text elements). Build and run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine -I/usr/include/stb \
 *     tests/fuzz/fuzz_npy.c engine/npy.c engine/error.c engine/dtype.c engine/pool.c -lm -lpthread
 *   ./a.out tests/fuzz/corpus/npy -max_total_time=60 */
#include <stdint.h>
#include <stddef.h>
#include "craft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    craft_array a;
    if (craft_npy_parse(data, size, "fuzz", &a) != CRAFT_OK) return 0;
    /* touch every byte so that the sanitizers see any short buffer */
    volatile uint8_t acc = 0;
    for (size_t i = 0; i < a.nbytes; i++) acc ^= ((const uint8_t *)a.data)[i];
    if (a.dtype == CRAFT_ARRAY_UNICODE || a.dtype == CRAFT_ARRAY_BYTES) {
        char buf[64];
        for (int64_t i = 0; i < a.numel && i < 4; i++) craft_array_string(&a, i, buf, sizeof buf);
    }
    craft_array_free(&a);
    return 0;
}
