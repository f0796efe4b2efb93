/* fuzz_safetensors.c: libFuzzer target for the safetensors reader. Any input must either be
 * refused with CRAFT_EFORMAT or open into a handle whose every accessor and load stays in bounds.
 * Build (tensor core files as listed in the Makefile's engine sources):
 *   clang -g -O1 -fopenmp -fsanitize=fuzzer,address,undefined -Iengine tests/fuzz/fuzz_safetensors.c \
 *     engine/safetensors.c engine/json.c engine/error.c engine/dtype.c engine/pool.c engine/tensor.c \
 *     engine/tensor_views.c engine/iter.c engine/autograd.c engine/ops_*.c -ljansson -ldnnl -lm
 *   ./a.out tests/fuzz/corpus/safetensors */
#include "craft.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void touch(const craft_tensor *t) {
    /* read every byte so that ASan sees any out-of-bounds view */
    size_t n = (size_t)t->numel * craft_dtype_size(t->dtype);
    const volatile unsigned char *p = craft_tensor_data(t);
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) x += p[i];
    (void)x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    craft_safetensors *f = NULL;
    int rc = craft_st_open_memory(data, size, "fuzz.safetensors", &f);
    if (rc) {
        if (rc != CRAFT_EFORMAT || !strstr(craft_last_error(), "fuzz.safetensors")) abort();
        return 0;
    }
    int n = craft_st_count(f);
    for (int i = -1; i <= n; i++) {
        const char *name = craft_st_name(f, i);
        int dt, nd;
        int64_t shape[8];
        if ((i < 0 || i >= n) != (name == NULL)) abort();
        if (!name) continue;
        if (craft_st_find(f, name) != i) abort();
        if (craft_st_info(f, i, &dt, &nd, shape) || nd < 0 || nd > 8) abort();
        if (!craft_st_dtype_name(f, i) || craft_st_nbytes(f, i) < 0) abort();
        const int wants[4] = {-1, CRAFT_F32, CRAFT_F16, CRAFT_BOOL};
        for (int w = 0; w < 4; w++) {
            craft_tensor *t = NULL;
            rc = craft_st_load(f, i, wants[w], &t);
            if (rc == CRAFT_EUNSUPPORTED) continue; /* U64 beyond int64 */
            if (rc || !t || t->ndim != nd) abort();
            touch(t);
            craft_tensor_release(t);
        }
    }
    for (int i = 0; i < craft_st_metadata_count(f); i++) {
        const char *k = craft_st_metadata_key(f, i);
        if (!k || !craft_st_metadata(f, k)) abort();
    }
    craft_tensor *keep = NULL;
    if (n > 0 && craft_st_load(f, 0, -1, &keep) == CRAFT_OK) {
        craft_st_close(f); /* the tensor outlives the handle */
        touch(keep);
        craft_tensor_release(keep);
    } else {
        craft_st_close(f);
    }
    return 0;
}
