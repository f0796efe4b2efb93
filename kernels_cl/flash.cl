/* flash.cl: flash attention on cl devices (engine/cl/cl_flash.c): scaled dot-product attention
 * that streams K and V through local memory in tiles with the online softmax, so the Lq x Lk
 * score matrix never exists, in global memory or anywhere else.
 *
 * A work-group owns BQ query rows of one batch matrix; FA_T adjacent work-items ("lanes") share
 * a row. Lane t of a row computes the scores of keys t, t + FA_T, ... of each key tile (so the
 * lanes of a row read neighbouring mask entries) and owns output columns t, t + FA_T, ... (so
 * their V reads are neighbouring words: no bank conflicts). Per key tile of BK keys:
 *   1. the K tile is read into local memory (coalesced: neighbouring work-items, neighbouring
 *      words of a row); the group's Q rows, pre-scaled, were read once at the start;
 *   2. each lane keeps its BK / FA_T scores in registers (one local read of q per FA_SU
 *      multiply-adds) and writes them to the row's score strip;
 *   3. every lane of a row takes the strip's max (the running max m grows to m'), rescales its
 *      accumulators by exp(m - m') and writes its probabilities exp(s - m') back; the V tile
 *      replaces the K tile;
 *   4. o += P V from the strip (broadcast reads) and the V tile; l = l exp(m - m') + sum P.
 * At the end o / l and lse = m + log(l) (the backward's input). Key tiles wholly after the
 * group's last query are skipped when causal. Rows whose every score is -inf give NaN and
 * lse -inf, no keys give zeros and lse -inf, as the CPU op. Local-memory row strides are odd
 * (sq, skv) so that lanes reading different rows at one column hit different banks.
 * flash_fwd_h is the same kernel over f16 copies of q, k and v (the fp16 compute precision:
 * half the global traffic for the K / V tiles every query block re-reads), read through
 * vload_half; everything after the load (scores, softmax, P V) is fp32 as in flash_fwd. */

#define FA_T 16        /* lanes per query row */
#define FA_SU 4        /* scores per lane and tile: BK <= FA_T * FA_SU */
#define FA_OU 16       /* output columns per lane: Dv <= FA_T * FA_OU */

/* mirrors cl_flash_geo in engine/cl/cl_flash.c */
typedef struct {
    long bshape[8];
    long bst[4][8];                 /* batch strides of q, k, v, mask (0: broadcast) */
    long off[4];                    /* element offsets of q, k, v, mask */
    long goff[4];                   /* backward: element offsets of dO, dQ, dK, dV */
    long ldq, ldk, ldv, msr, msc;   /* row strides; the mask's row and column strides */
    long Lq, Lk, D, Dv;
    long BK;                        /* tile length: keys (forward, dQ) or queries (dK / dV) */
    long sq, skv, sv;               /* local row strides (odd): q and k; forward's k / v; v and dO */
    float scale;
    int nbd, has_mask, causal;
    int want_k, want_v, pad0;       /* backward: which of dK, dV to write */
} flash_geo;

/* element offsets of batch matrix b in q, k, v and the mask */
static inline void flash_offsets(__global const flash_geo *g, long b, long *o) {
    for (int i = 0; i < 4; i++) o[i] = g->off[i];
    for (int d = g->nbd - 1; d >= 0; d--) {
        long n = g->bshape[d], c = b % n;
        b /= n;
        for (int i = 0; i < 4; i++) o[i] += c * g->bst[i][d];
    }
}

/* rows [r0, r0 + n) of a [., cols] matrix at element `base` of src (row stride ld; f16 when h)
 * into dst (row stride sd), rows past `valid` as zeros, each value times mul */
static inline void flash_stage_x(const int h, __local float *dst, long sd, __global const float *src, long base,
                                 long ld, long r0, long n, long valid, long cols, float mul) {
    int lid = get_local_id(0), ls = get_local_size(0);
    for (long e = lid; e < n * cols; e += ls) {
        long r = e / cols, c = e - r * cols, i = base + (r0 + r) * ld + c;
        float x = 0.0f;
        if (r0 + r < valid) x = h ? vload_half(i, (__global const half *)src) : src[i];
        dst[r * sd + c] = x * mul;
    }
}
static inline void flash_stage(__local float *dst, long sd, __global const float *src, long ld, long r0, long n,
                               long valid, long cols, float mul) {
    flash_stage_x(0, dst, sd, src, 0, ld, r0, n, valid, cols, mul);
}

/* h: q, k, v are f16 (the pointers are cast; offsets and strides count their elements) */
static inline void flash_fwd_body(const int h, __global const flash_geo *g, __global const float *q,
                                  __global const float *k, __global const float *v, __global const float *mask,
                                  __global float *y, __global float *lse, __local float *qs, __local float *kv,
                                  __local float *ps) {
    const long Lq = g->Lq, Lk = g->Lk, D = g->D, Dv = g->Dv, BK = g->BK, sq = g->sq, skv = g->skv;
    const int lid = get_local_id(0), BQ = get_local_size(0) / FA_T, t = lid % FA_T, r = lid / FA_T;
    const long nqb = (Lq + BQ - 1) / BQ, b = get_group_id(0) / nqb, q0 = (get_group_id(0) % nqb) * BQ;
    const long qi = q0 + r;
    const int row_ok = qi < Lq, nsu = (int)(BK / FA_T);
    long o[4];
    flash_offsets(g, b, o);
    flash_stage_x(h, qs, sq, q, o[0], g->ldq, q0, BQ, Lq, D, g->scale);
    /* keys this row sees, and the keys any row of the group sees */
    const long nv = g->causal ? min(qi + 1, Lk) : Lk;
    const long kend = g->causal ? min(q0 + BQ, Lk) : Lk;
    float m = -INFINITY, l = 0.0f, acc[FA_OU], sc[FA_SU];
    for (int u = 0; u < FA_OU; u++) acc[u] = 0.0f;
    __local float *prow = ps + r * BK;
    for (long k0 = 0; k0 < kend; k0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous tile's P V is done with kv and ps */
        flash_stage_x(h, kv, skv, k, o[1], g->ldk, k0, BK, Lk, D, 1.0f);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int u = 0; u < FA_SU; u++) sc[u] = 0.0f;
        for (long d = 0; d < D; d++) {
            float qd = qs[r * sq + d];
            for (int u = 0; u < FA_SU; u++)
                if (u < nsu) sc[u] += qd * kv[(t + u * FA_T) * skv + d];
        }
        /* constant trip counts with a guard, not u < nsu: sc stays in registers on GPUs (a
         * private array indexed at run time goes to scratch memory) */
        for (int u = 0; u < FA_SU; u++) {
            if (u >= nsu) continue;
            long j = k0 + t + u * FA_T;
            float s = -INFINITY;
            if (row_ok && j < nv) {
                s = sc[u];
                if (g->has_mask) s += mask[o[3] + qi * g->msr + j * g->msc];
            }
            sc[u] = s;
            prow[t + u * FA_T] = s;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float mt = -INFINITY;
        for (long j = 0; j < BK; j++) mt = nn_max_nan(mt, prow[j]);
        float mn = nn_max_nan(m, mt), corr = 1.0f;
        if (mn != -INFINITY) corr = m == -INFINITY ? 0.0f : exp(m - mn);
        barrier(CLK_LOCAL_MEM_FENCE); /* every lane has read the strip's scores */
        for (int u = 0; u < FA_SU; u++)
            if (u < nsu) prow[t + u * FA_T] = mn == -INFINITY ? 0.0f : exp(sc[u] - mn);
        flash_stage_x(h, kv, skv, v, o[2], g->ldv, k0, BK, Lk, Dv, 1.0f);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int u = 0; u < FA_OU; u++) acc[u] *= corr;
        float sum = 0.0f;
        for (long j = 0; j < BK; j++) {
            float p = prow[j];
            sum += p;
            for (int u = 0; u < FA_OU; u++)
                if (t + u * FA_T < Dv) acc[u] += p * kv[j * skv + t + u * FA_T];
        }
        l = l * corr + sum;
        m = mn;
    }
    if (!row_ok) return;
    __global float *yr = y + (b * Lq + qi) * Dv;
    if (kend == 0) { /* no keys: softmax over nothing times an empty V */
        for (int u = 0; u < FA_OU; u++)
            if (t + u * FA_T < Dv) yr[t + u * FA_T] = 0.0f;
        if (t == 0) lse[b * Lq + qi] = -INFINITY;
        return;
    }
    float inv = 1.0f / l;
    for (int u = 0; u < FA_OU; u++)
        if (t + u * FA_T < Dv) yr[t + u * FA_T] = acc[u] * inv;
    if (t == 0) lse[b * Lq + qi] = m + log(l);
}

__kernel void flash_fwd(GEO_ARGS, __global const float *q, __global const float *k, __global const float *v,
                        __global const float *mask, __global float *y, __global float *lse, __local float *qs,
                        __local float *kv, __local float *ps) {
    flash_fwd_body(0, GEO(flash_geo), q, k, v, mask, y, lse, qs, kv, ps);
}

__kernel void flash_fwd_h(GEO_ARGS, __global const half *q, __global const half *k, __global const half *v,
                          __global const float *mask, __global float *y, __global float *lse, __local float *qs,
                          __local float *kv, __local float *ps) {
    flash_fwd_body(1, GEO(flash_geo), (__global const float *)q, (__global const float *)k,
                   (__global const float *)v, mask, y, lse, qs, kv, ps);
}
