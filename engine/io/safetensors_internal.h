/* safetensors_internal.h: what the safetensors reader (safetensors.c) and writer
 * (safetensors_write.c) share: the table of file dtypes and the sanitiser for names quoted in
 * error messages. Not part of the public API. */
#ifndef CRAFT_SAFETENSORS_INTERNAL_H
#define CRAFT_SAFETENSORS_INTERNAL_H
#include "core/internal.h"

#define ST_MAX_HEADER 100000000ull /* the reference's limit on the JSON header, read and written */

/* One safetensors dtype. The table is in the reference's order, which the writer's tensor order
 * depends on (safetensors_write.c). */
typedef struct {
    const char *name;
    int size, kind; /* kind: K_* in safetensors.c */
    int direct;     /* craft dtype with the same bytes, or -1 */
    int natural;    /* what "as stored" loads as */
} craft_st_dtype_info;
extern const craft_st_dtype_info craft_st_dtypes[];
extern const int craft_st_n_dtypes;

/* Tensor names come from the file: keep messages on one line and of bounded length. */
const char *craft_st_clean(const char *s, char *buf, size_t size);

#endif
