/* fuzz_image.c: craft_image_decode / decode16 (stb_image behind our size guard), then the
 * float conversion and both resizes on whatever came out. Build and run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine -I/usr/include/stb \
 *     tests/fuzz/fuzz_image.c engine/image.c engine/imgproc.c engine/npy.c engine/error.c \
 *     engine/dtype.c engine/pool.c -lstb -lm -lpthread
 *   ./a.out tests/fuzz/corpus/image -max_total_time=60 -rss_limit_mb=4096
 * libstb is not instrumented, so coverage guidance stops at its door; for a deeper run, compile
 * a file that defines STB_IMAGE_IMPLEMENTATION and includes <stb_image.h> into the fuzzer
 * instead of -lstb (keep that file out of the engine). */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <stb_image.h>
#include "craft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    craft_array a;
    int cw, ch, cc;
    /* Claims up to the 1 GiB cap decode legitimately but take seconds each (stb fills the
     * missing data); the cap itself is covered by test_data. */
    if (size > INT32_MAX) return 0;
    if (stbi_info_from_memory(data, (int)size, &cw, &ch, &cc) && (int64_t)cw * ch > (1 << 20)) return 0;
    if (craft_image_decode16(data, size, "fuzz", 4, &a) == CRAFT_OK) craft_array_free(&a);
    if (craft_image_decode(data, size, "fuzz", 0, &a) != CRAFT_OK) return 0;
    int h = (int)a.shape[0], w = (int)a.shape[1], c = (int)a.shape[2];
    if (a.numel <= (1 << 16)) {
        float *chw = malloc(sizeof(float) * (size_t)a.numel);
        float *out = malloc(sizeof(float) * (size_t)c * 7 * 5);
        uint8_t *back = malloc((size_t)a.numel);
        if (chw && out && back && craft_u8_hwc_to_f32_chw(a.data, h, w, c, NULL, NULL, chw) == CRAFT_OK) {
            craft_resize_area(chw, c, h, w, out, 7, 5);
            craft_resize_bilinear(chw, c, h, w, out, 5, 7);
            craft_flip_horizontal(chw, c, h, w, chw);
            craft_f32_chw_to_u8_hwc(chw, c, h, w, 0.0f, 1.0f, back);
        }
        free(chw);
        free(out);
        free(back);
    }
    craft_array_free(&a);
    return 0;
}
