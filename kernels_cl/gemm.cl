/* gemm.cl: craft's own tiled GEMM (engine/cl/cl_gemm_tiled.c): C = alpha op(A) op(B) + beta C per
 * batch matrix, C f32, every product and sum in fp32. gemm_tiled reads f32 A and B (the
 * alternative to CLBlast that the per-device tuning may pick, cl_gemm_tune.c); gemm_f16 reads
 * f16 A and B through vload_half (the fp16 compute precision, cl_f16.c: half the global traffic
 * of f32 operands). vload_half is core OpenCL, so gemm_f16 runs on devices without
 * cl_khr_fp16; half arithmetic (where the extension exists) is not used.
 *
 * Tiling as conv_igemm (conv.cl): a work-group of L x L work-items (L = 16 where the device
 * allows 256, else 8 or 4) computes a TM x TN block (TM = TN = GH_R L), each work-item a
 * GH_R x GH_R micro-tile at stride L; per step GH_TK of the inner dimension are staged as
 * floats for both operands (A with row stride TM + 1 against bank conflicts), reading global
 * memory along its rows whichever way the operand is transposed. */
#define GH_TK 16
#define GH_R 4
#define GH_LMAX 16

/* mirrors cl_gemm_geo in engine/cl/cl_gemm_tiled.c: A [M, K] (ta 0) or [K, M] (ta 1) with row stride
 * lda, B [K, N] or [N, K]; matrix i at aoff + i sa (likewise b, c) */
typedef struct {
    long M, N, K, lda, ldb, ldc;
    long aoff, boff, coff, sa, sb, sc;
    float alpha, beta;
    int ta, tb;
} gemm_h_geo;

#define GH_LD(h, p, i) ((h) ? vload_half((i), (__global const half *)(p)) : (p)[i])
/* h: A and B are f16 (the pointers are cast; offsets count their elements) */
static inline void gemm_body(const int h, __global const gemm_h_geo *g, __global const float *A,
                             __global const float *B, __global float *C, __local float *As, __local float *Bs) {
    const int ls = get_local_size(0), L = ls >= 256 ? 16 : ls >= 64 ? 8 : 4, TM = GH_R * L, TN = GH_R * L;
    const long M = g->M, N = g->N, K = g->K;
    const long ntn = (N + TN - 1) / TN, ntm = (M + TM - 1) / TM;
    const long gid = get_group_id(0), nt = gid % ntn, mt = (gid / ntn) % ntm, bi = gid / (ntn * ntm);
    const long m0 = mt * TM, n0 = nt * TN, ao = g->aoff + bi * g->sa, bo = g->boff + bi * g->sb;
    const int lid = get_local_id(0), tx = lid % L, ty = lid / L;
    float acc[GH_R][GH_R];
    for (int i = 0; i < GH_R; i++)
        for (int j = 0; j < GH_R; j++) acc[i][j] = 0.0f;
    for (long k0 = 0; k0 < K; k0 += GH_TK) {
        for (int e = lid; e < TM * GH_TK; e += ls) {
            /* neighbouring work-items read neighbouring elements of A's rows */
            int am = g->ta ? e % TM : e / GH_TK, ak = g->ta ? e / TM : e % GH_TK;
            long m = m0 + am, k = k0 + ak;
            float a = 0.0f;
            if (m < M && k < K) a = GH_LD(h, A, ao + (g->ta ? k * g->lda + m : m * g->lda + k));
            As[ak * (TM + 1) + am] = a;
        }
        for (int e = lid; e < TN * GH_TK; e += ls) {
            int bn = g->tb ? e / GH_TK : e % TN, bk = g->tb ? e % GH_TK : e / TN;
            long n = n0 + bn, k = k0 + bk;
            float b = 0.0f;
            if (n < N && k < K) b = GH_LD(h, B, bo + (g->tb ? n * g->ldb + k : k * g->ldb + n));
            Bs[bk * TN + bn] = b;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < GH_TK; k++) {
            float a[GH_R], b[GH_R];
            for (int i = 0; i < GH_R; i++) a[i] = As[k * (TM + 1) + ty + L * i];
            for (int j = 0; j < GH_R; j++) b[j] = Bs[k * TN + tx + L * j];
            for (int i = 0; i < GH_R; i++)
                for (int j = 0; j < GH_R; j++) acc[i][j] += a[i] * b[j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const long co = g->coff + bi * g->sc;
    for (int i = 0; i < GH_R; i++) {
        long m = m0 + ty + L * i;
        if (m >= M) continue;
        for (int j = 0; j < GH_R; j++) {
            long n = n0 + tx + L * j;
            if (n >= N) continue;
            __global float *c = C + co + m * g->ldc + n;
            /* beta 0: C is not read (a fresh output may hold anything, NaN included) */
            *c = g->beta != 0.0f ? g->alpha * acc[i][j] + g->beta * *c : g->alpha * acc[i][j];
        }
    }
}

__kernel void gemm_tiled(GEO_ARGS, __global const float *A, __global const float *B, __global float *C) {
    __local float As[GH_TK * (GH_R * GH_LMAX + 1)], Bs[GH_TK * GH_R * GH_LMAX];
    gemm_body(0, GEO(gemm_h_geo), A, B, C, As, Bs);
}

__kernel void gemm_f16(GEO_ARGS, __global const half *A, __global const half *B, __global float *C) {
    __local float As[GH_TK * (GH_R * GH_LMAX + 1)], Bs[GH_TK * GH_R * GH_LMAX];
    gemm_body(1, GEO(gemm_h_geo), (__global const float *)A, (__global const float *)B, C, As, Bs);
}
