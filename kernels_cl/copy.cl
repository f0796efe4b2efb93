/* copy.cl: strided, broadcasting copies between device tensors: same-dtype copies by element
 * size (copy_1 .. copy_8, also used for fill from a one-element source), and dtype conversion
 * (convert). Conversion follows the CPU's craft_load_double / craft_store_double
 * (engine/core/internal.h): every value goes through double when the device has fp64 (the same
 * bits as the CPU); without fp64, float values go through float and integer-to-integer
 * conversions through long, saturating like the CPU's (sat_int). */

#define COPY(bytes, T) \
__kernel void copy_##bytes(GEO_ARGS, const long n, __global T *d, __global const T *s) { \
    FOR_EACH(i, n) { long o[2]; geom_offsets(GEO(craft_geom), i, o, 2); d[o[0]] = s[o[1]]; } \
}
COPY(1, uchar) COPY(2, ushort) COPY(4, uint) COPY(8, ulong)

#ifdef CRAFT_FP64
typedef double cvt_t;
#else
typedef float cvt_t;
#endif

static inline cvt_t load_val(__global const uchar *p, long o, int dt) {
    switch (dt) {
    case DT_F32: return ((__global const float *)p)[o];
    case DT_F16: return half_bits_to_float(((__global const ushort *)p)[o]);
    case DT_BF16: return bf16_bits_to_float(((__global const ushort *)p)[o]);
    case DT_I64: return (cvt_t)((__global const long *)p)[o];
    case DT_I32: return (cvt_t)((__global const int *)p)[o];
    case DT_U8: return (cvt_t)p[o];
#ifdef CRAFT_FP64
    case DT_F64: return ((__global const double *)p)[o];
#endif
    case DT_I8: return (cvt_t)((__global const char *)p)[o];
    case DT_BOOL: return p[o] != 0 ? 1 : 0;
    }
    return 0;
}

/* Narrow integers go through int first, as x86 code for C's (uint8_t)double does. */
static inline void store_val(__global uchar *p, long o, int dt, cvt_t v) {
    switch (dt) {
    case DT_F32: ((__global float *)p)[o] = (float)v; break;
    case DT_F16: ((__global ushort *)p)[o] = float_to_half_bits((float)v); break;
    case DT_BF16: ((__global ushort *)p)[o] = float_to_bf16_bits((float)v); break;
    case DT_I64: ((__global long *)p)[o] = convert_long_sat(v); break;
    case DT_I32: ((__global int *)p)[o] = convert_int_sat(v); break;
    case DT_U8: p[o] = (uchar)convert_int_sat(v); break;
#ifdef CRAFT_FP64
    case DT_F64: ((__global double *)p)[o] = v; break;
#endif
    case DT_I8: ((__global char *)p)[o] = (char)convert_int_sat(v); break;
    case DT_BOOL: p[o] = v != 0 ? 1 : 0; break;
    }
}

#ifndef CRAFT_FP64
static inline int is_int_dt(int dt) { return dt == DT_I64 || dt == DT_I32 || dt == DT_U8 || dt == DT_I8 || dt == DT_BOOL; }

static inline long load_long(__global const uchar *p, long o, int dt) {
    switch (dt) {
    case DT_I64: return ((__global const long *)p)[o];
    case DT_I32: return ((__global const int *)p)[o];
    case DT_U8: return p[o];
    case DT_I8: return ((__global const char *)p)[o];
    case DT_BOOL: return p[o] != 0;
    }
    return 0;
}

/* as the CPU's double path: saturate to int32, then narrow u8 / i8 by wrapping */
static inline int sat_int(long v) { return v > INT_MAX ? INT_MAX : (v < INT_MIN ? INT_MIN : (int)v); }

static inline void store_long(__global uchar *p, long o, int dt, long v) {
    switch (dt) {
    case DT_I64: ((__global long *)p)[o] = v; break;
    case DT_I32: ((__global int *)p)[o] = sat_int(v); break;
    case DT_U8: p[o] = (uchar)sat_int(v); break;
    case DT_I8: ((__global char *)p)[o] = (char)sat_int(v); break;
    case DT_BOOL: p[o] = v != 0; break;
    }
}
#endif

__kernel void convert(GEO_ARGS, const long n, __global uchar *d, __global const uchar *s,
                      const int ddt, const int sdt) {
    FOR_EACH(i, n) {
        long o[2];
        geom_offsets(GEO(craft_geom), i, o, 2);
#ifndef CRAFT_FP64
        if (is_int_dt(ddt) && is_int_dt(sdt)) { store_long(d, o[0], ddt, load_long(s, o[1], sdt)); continue; }
#endif
        store_val(d, o[0], ddt, load_val(s, o[1], sdt));
    }
}
