/* fuzz_npz.c: craft_npz_open_buffer (libzip over memory) and reading every member, header only
 * and in full. Build and run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine -I/usr/include/stb \
 *     tests/fuzz/fuzz_npz.c engine/npz.c engine/npy.c engine/error.c engine/dtype.c engine/pool.c \
 *     -lzip -lm -lpthread
 *   ./a.out tests/fuzz/corpus/npz -max_total_time=60 */
#include <stdint.h>
#include <stddef.h>
#include "craft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    craft_npz *z;
    if (craft_npz_open_buffer(data, size, "fuzz.npz", &z) != CRAFT_OK) return 0;
    for (int i = 0; i < craft_npz_count(z) && i < 64; i++) {
        const char *name = craft_npz_name(z, i);
        craft_array a;
        if (craft_npz_info(z, name, &a) == CRAFT_OK) craft_array_free(&a);
        if (craft_npz_read(z, name, &a) == CRAFT_OK) {
            volatile uint8_t acc = 0;
            for (size_t k = 0; k < a.nbytes; k++) acc ^= ((const uint8_t *)a.data)[k];
            craft_array_free(&a);
        }
    }
    craft_npz_close(z);
    return 0;
}
