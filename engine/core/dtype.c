/* dtype.c: element types, their names and sizes, and float16 / bfloat16 conversion
 * (round to nearest even, NaN kept NaN). */
#include "core/internal.h"
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [CRAFT_F32] = {"f32", 4}, [CRAFT_F16] = {"f16", 2}, [CRAFT_BF16] = {"bf16", 2},
    [CRAFT_I64] = {"i64", 8}, [CRAFT_I32] = {"i32", 4}, [CRAFT_U8] = {"u8", 1},
    [CRAFT_F64] = {"f64", 8}, [CRAFT_I8] = {"i8", 1},   [CRAFT_BOOL] = {"bool", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t craft_dtype_size(int dtype) { return dtype >= 0 && dtype < N_DTYPES ? dtypes[dtype].size : 0; }
const char *craft_dtype_name(int dtype) { return dtype >= 0 && dtype < N_DTYPES ? dtypes[dtype].name : "?"; }

int craft_dtype_from_name(const char *name, int *out) {
    static const struct {
        const char *alias;
        int dt;
    } aliases[] = {
        {"float32", CRAFT_F32},   {"float", CRAFT_F32}, {"float16", CRAFT_F16}, {"half", CRAFT_F16},
        {"bfloat16", CRAFT_BF16}, {"int64", CRAFT_I64}, {"long", CRAFT_I64},    {"int32", CRAFT_I32},
        {"int", CRAFT_I32},       {"uint8", CRAFT_U8},  {"float64", CRAFT_F64}, {"double", CRAFT_F64},
        {"int8", CRAFT_I8},       {"F32", CRAFT_F32},   {"F16", CRAFT_F16},     {"BF16", CRAFT_BF16},
        {"I64", CRAFT_I64},       {"I32", CRAFT_I32},   {"U8", CRAFT_U8},       {"F64", CRAFT_F64},
        {"I8", CRAFT_I8},         {"BOOL", CRAFT_BOOL},
    };
    if (!name) return craft_fail(CRAFT_EINVAL, "dtype: no name given");
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(name, dtypes[i].name)) {
            *out = i;
            return CRAFT_OK;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcmp(name, aliases[i].alias)) {
            *out = aliases[i].dt;
            return CRAFT_OK;
        }
    return craft_fail(CRAFT_ETYPE, "unknown dtype \"%s\" (known: f32 f16 bf16 f64 i64 i32 i8 u8 bool)", name);
}

float craft_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: normalise */ int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t craft_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (ax < 0x38800000u) {                                  /* subnormal half or 0 */
        if (ax < 0x33000000u) return (uint16_t)sign;
        /* value / 2^-24 = m * 2^(e - 126), rounded to nearest even */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        int s = (int)(126 - e); /* 14 .. 24 */
        uint32_t half_m = m >> s, rem = m & ((1u << s) - 1), halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (half_m & 1))) half_m++;
        return (uint16_t)(sign | half_m);
    }
    uint32_t h = ((ax >> 13) - (112u << 10));
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float craft_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t craft_float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    uint32_t lsb = (x >> 16) & 1;
    x += 0x7fff + lsb;
    return (uint16_t)(x >> 16);
}
