/* common.cl: definitions every craft kernel file uses. The runtime puts this file first and
 * compiles every file of kernels_cl as one program per device (OpenCL C 1.2), with
 * -DCRAFT_FP64 when the device has cl_khr_fp64.
 *
 * No contraction of a*b+c into fma: the CPU build (gcc -std=c11) never contracts either, so
 * optimiser steps and conversions give the same bits on both. */
#pragma OPENCL FP_CONTRACT OFF
#ifdef CRAFT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double acc_t;   /* accumulators of reductions; conversions go through it as on the CPU */
#else
typedef float acc_t;
#endif

/* craft_dtype codes (engine/craft.h) */
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_I64 3
#define DT_I32 4
#define DT_U8 5
#define DT_F64 6
#define DT_I8 7
#define DT_BOOL 8

/* Geometry of an elementwise launch, filled by the host (engine/cl/cl_elementwise.c, cl_geom): up to 4
 * operands of one shape; strides and offsets in elements, 0 strides broadcast. Operand 0 is
 * the output. Dims are already coalesced, so ndim is usually 1. */
typedef struct {
    long shape[8];
    long st[4][8];
    long off[4];
    int ndim;
    int pad0, pad1, pad2;
} craft_geom;

/* Kernel geometry (craft_geom and the per-op structs) is not passed by value: implementations
 * size struct arguments differently (Mesa's rusticl refuses PoCL's sizes with
 * CL_INVALID_ARG_SIZE). The host writes it into a per-device ring buffer (engine/cl/cl_runtime.c,
 * cl_launch_geo); a kernel with one takes the ring and the geometry's offset in it (in longs)
 * as its first two arguments. Structs with long, int and float fields have the same layout
 * here and in C on the host. */
#define GEO_ARGS __global const long *geo_ring_, const long geo_off_
#define GEO(T) ((__global const T *)(geo_ring_ + geo_off_))

/* Element offsets of flat index i for the first `nargs` operands. */
static inline void geom_offsets(__global const craft_geom *g, long i, long *o, int nargs) {
    for (int a = 0; a < nargs; a++) o[a] = g->off[a];
    if (g->ndim == 1) {
        for (int a = 0; a < nargs; a++) o[a] += i * g->st[a][0];
        return;
    }
    long r = i;
    for (int d = g->ndim - 1; d >= 0; d--) {
        long n = g->shape[d];
        long c = r % n;
        r /= n;
        for (int a = 0; a < nargs; a++) o[a] += c * g->st[a][d];
    }
}

/* Grid-stride loop over the n elements of a launch. */
#define FOR_EACH(i, n) for (long i = get_global_id(0); i < (n); i += get_global_size(0))

/* float16 and bfloat16 as bits, converted exactly as engine/core/dtype.c does (round to nearest
 * even, NaN kept NaN), so storage conversions match the CPU on devices without cl_khr_fp16. */
static inline float half_bits_to_float(ushort h) {
    uint sign = ((uint)h & 0x8000u) << 16, e = ((uint)h >> 10) & 0x1fu, man = (uint)h & 0x3ffu, bits;
    if (e == 0) {
        if (man == 0) bits = sign;
        else {
            int k = -1;
            do { man <<= 1; k++; } while (!(man & 0x400u));
            bits = sign | ((uint)(127 - 15 - k) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((e + 112u) << 23) | (man << 13);
    }
    return as_float(bits);
}

static inline ushort float_to_half_bits(float f) {
    uint x = as_uint(f);
    uint sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (ushort)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x477ff000u) return (ushort)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        if (ax < 0x33000000u) return (ushort)sign;
        uint e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        int s = (int)(126 - e);
        uint hm = m >> s, rem = m & ((1u << s) - 1u), halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (hm & 1u))) hm++;
        return (ushort)(sign | hm);
    }
    uint h = (ax >> 13) - (112u << 10);
    uint rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (ushort)(sign | h);
}

static inline float bf16_bits_to_float(ushort h) { return as_float((uint)h << 16); }

static inline ushort float_to_bf16_bits(float f) {
    uint x = as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (ushort)((x >> 16) | 0x40u);
    uint lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (ushort)(x >> 16);
}
