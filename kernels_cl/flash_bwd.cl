/* flash_bwd.cl: the backward of flash attention (engine/cl/cl_flash.c; the forward and the
 * geometry are in flash.cl). From q, k, v, the mask, the forward's lse and Di = rowsum(dO * O)
 * (row_dot in attention.cl), with P = exp(scale q k^T + mask - lse) recomputed tile by tile:
 *   dV = P^T dO,  dS = P (dO V^T - Di),  dK = scale dS^T Q,  dQ = scale dS K.
 * Two kernels so that every output row has one owner and nothing needs atomics (OpenCL 1.2 has
 * no float atomics): flash_bwd_kv, a work-group per block of keys streaming query tiles (dK, dV
 * in registers), and flash_bwd_q, a work-group per block of queries streaming key tiles (dQ in
 * registers). The lane layout is the forward's: FA_T lanes per row, lane t takes the tile's
 * entries t, t + FA_T, ... and owns the output columns t, t + FA_T, ... . No score matrix
 * exists beyond one BQ x BK strip per work-group in local memory. */

/* P and dS of (query qi, key j) from the score s (already scaled) and the row's lse, Di, dp:
 * hidden keys (causal, out of range) give 0, as the CPU op; a row whose lse is -inf gives NaN. */
static inline float flash_p(__global const flash_geo *g, __global const float *mask, long mo, long qi, long j,
                            float s, float lse_i) {
    if (qi >= g->Lq || j >= g->Lk || (g->causal && j > qi)) return 0.0f;
    if (g->has_mask) s += mask[mo + qi * g->msr + j * g->msc];
    return exp(s - lse_i);
}

/* dK and dV of BKR keys (the group's rows) of matrix b, over every query tile. Local: ks, vs
 * (the group's keys), qs, dos (the query tile, q pre-scaled), ps, dss (P^T and dS^T strips),
 * li (lse and Di of the tile's queries). */
__kernel void flash_bwd_kv(GEO_ARGS, __global const float *q, __global const float *k, __global const float *v,
                           __global const float *mask, __global const float *lse, __global const float *Di,
                           __global const float *dO, __global float *dk, __global float *dv, __local float *ks, __local float *vs, __local float *qs,
                           __local float *dos, __local float *ps, __local float *dss, __local float *li) {
    __global const flash_geo *g = GEO(flash_geo);
    const long Lq = g->Lq, Lk = g->Lk, D = g->D, Dv = g->Dv, BQ = g->BK, sq = g->sq, sv = g->sv;
    const int lid = get_local_id(0), BKR = get_local_size(0) / FA_T, t = lid % FA_T, r = lid / FA_T;
    const long nkb = (Lk + BKR - 1) / BKR, b = get_group_id(0) / nkb, k0 = (get_group_id(0) % nkb) * BKR;
    const long j = k0 + r;
    const int nsu = (int)(BQ / FA_T);
    long o[4];
    flash_offsets(g, b, o);
    flash_stage(ks, sq, k + o[1], g->ldk, k0, BKR, Lk, D, 1.0f);
    flash_stage(vs, sv, v + o[2], g->ldv, k0, BKR, Lk, Dv, 1.0f);
    __global const float *dOb = dO + g->goff[0] + b * Lq * Dv;
    float ak[FA_OU], av[FA_OU];
    for (int u = 0; u < FA_OU; u++) ak[u] = av[u] = 0.0f;
    __local float *prow = ps + r * BQ, *drow = dss + r * BQ;
    /* queries before the group's first key see none of its keys when causal */
    for (long q0 = g->causal ? k0 : 0; q0 < Lq; q0 += BQ) {
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous tile's sums are done with qs, dos, strips */
        flash_stage(qs, sq, q + o[0], g->ldq, q0, BQ, Lq, D, g->scale);
        flash_stage(dos, sv, dOb, Dv, q0, BQ, Lq, Dv, 1.0f);
        for (long e = lid; e < BQ; e += get_local_size(0)) {
            li[e] = q0 + e < Lq ? lse[b * Lq + q0 + e] : 0.0f;
            li[BQ + e] = q0 + e < Lq ? Di[b * Lq + q0 + e] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int u = 0; u < nsu; u++) {
            long i = t + u * FA_T;
            float s = 0.0f, dp = 0.0f;
            for (long d = 0; d < D; d++) s += qs[i * sq + d] * ks[r * sq + d];
            for (long c = 0; c < Dv; c++) dp += dos[i * sv + c] * vs[r * sv + c];
            float p = flash_p(g, mask, o[3], q0 + i, j, s, li[i]);
            prow[i] = p;
            drow[i] = p * (dp - li[BQ + i]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (long i = 0; i < BQ; i++) {
            float p = prow[i], ds = drow[i];
            for (int u = 0; u < FA_OU; u++) {
                long c = t + u * FA_T;
                if (c < Dv) av[u] += p * dos[i * sv + c];
                if (c < D) ak[u] += ds * qs[i * sq + c];
            }
        }
    }
    if (j >= Lk) return;
    for (int u = 0; u < FA_OU; u++) {
        long c = t + u * FA_T;
        if (g->want_v && c < Dv) dv[g->goff[3] + (b * Lk + j) * Dv + c] = av[u];
        if (g->want_k && c < D) dk[g->goff[2] + (b * Lk + j) * D + c] = ak[u];
    }
}

/* dQ of BQR queries (the group's rows) of matrix b, over every key tile. Local: qs (q
 * pre-scaled), dos, ks, vs (the key tile), dss (the dS strip), li (lse and Di of the rows). */
__kernel void flash_bwd_q(GEO_ARGS, __global const float *q, __global const float *k, __global const float *v,
                          __global const float *mask, __global const float *lse, __global const float *Di,
                          __global const float *dO, __global float *dq, __local float *qs, __local float *dos,
                          __local float *ks, __local float *vs, __local float *dss, __local float *li) {
    __global const flash_geo *g = GEO(flash_geo);
    const long Lq = g->Lq, Lk = g->Lk, D = g->D, Dv = g->Dv, BK = g->BK, sq = g->sq, sv = g->sv;
    const int lid = get_local_id(0), BQR = get_local_size(0) / FA_T, t = lid % FA_T, r = lid / FA_T;
    const long nqb = (Lq + BQR - 1) / BQR, b = get_group_id(0) / nqb, q0 = (get_group_id(0) % nqb) * BQR;
    const long qi = q0 + r;
    const int nsu = (int)(BK / FA_T);
    long o[4];
    flash_offsets(g, b, o);
    flash_stage(qs, sq, q + o[0], g->ldq, q0, BQR, Lq, D, g->scale);
    flash_stage(dos, sv, dO + g->goff[0] + b * Lq * Dv, Dv, q0, BQR, Lq, Dv, 1.0f);
    for (long e = lid; e < BQR; e += get_local_size(0)) {
        li[e] = q0 + e < Lq ? lse[b * Lq + q0 + e] : 0.0f;
        li[BQR + e] = q0 + e < Lq ? Di[b * Lq + q0 + e] : 0.0f;
    }
    float aq[FA_OU];
    for (int u = 0; u < FA_OU; u++) aq[u] = 0.0f;
    __local float *drow = dss + r * BK;
    const long kend = g->causal ? min(q0 + BQR, Lk) : Lk;
    for (long k0 = 0; k0 < kend; k0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        flash_stage(ks, sq, k + o[1], g->ldk, k0, BK, Lk, D, 1.0f);
        flash_stage(vs, sv, v + o[2], g->ldv, k0, BK, Lk, Dv, 1.0f);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int u = 0; u < nsu; u++) {
            long jj = t + u * FA_T;
            float s = 0.0f, dp = 0.0f;
            for (long d = 0; d < D; d++) s += qs[r * sq + d] * ks[jj * sq + d];
            for (long c = 0; c < Dv; c++) dp += dos[r * sv + c] * vs[jj * sv + c];
            float p = flash_p(g, mask, o[3], qi, k0 + jj, s, li[r]);
            drow[jj] = p * (dp - li[BQR + r]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (long jj = 0; jj < BK; jj++) {
            float ds = drow[jj];
            for (int u = 0; u < FA_OU; u++)
                if (t + u * FA_T < D) aq[u] += ds * ks[jj * sq + t + u * FA_T];
        }
    }
    if (qi >= Lq) return;
    for (int u = 0; u < FA_OU; u++)
        if (t + u * FA_T < D) dq[g->goff[1] + (b * Lq + qi) * D + t + u * FA_T] = aq[u] * g->scale;
}
