/* attention.cl: the row kernels of scaled dot-product attention on cl devices
 * (engine/cl/cl_attention.c); the products around them are CLBlast GEMMs.
 *
 * It also holds the line-reduction helpers that loss.cl, norm.cl and softmax.cl use: of those
 * files this one comes first in the program (tools/embed_cl.sh: common.cl, then sorted names).
 *
 * Lines: many kernels reduce "lines" of a dense [outer, n, inner] block, element k of line
 * (o, i) at o * n * inner + k * inner + i. A work-group of LX * LY work-items (both powers of
 * two; the host picks LX) takes LX adjacent lines, LY work-items per line: work-item lid is
 * worker ly = lid / LX of line lx = lid % LX. Rows (inner 1) get LX 1 and the whole group on
 * one line; columns (inner > 1) get adjacent lines side by side so reads coalesce. Every
 * work-item of a group runs the same number of loop turns, so barriers are always reached. */

/* max that keeps NaN, as craft_vmax and the CPU column softmax */
static inline float nn_max_nan(float a, float b) { return (a > b || a != a) ? a : b; }

/* Sum of v over the LY workers of each line; every worker of the line gets its line's total.
 * scr holds get_local_size(0) values. */
static inline acc_t nn_line_sum(__local acc_t *scr, acc_t v, int LX) {
    int lid = get_local_id(0), ls = get_local_size(0);
    scr[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = ls / 2; w >= LX; w >>= 1) {
        if (lid < w) scr[lid] += scr[lid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    acc_t t = scr[lid % LX];
    barrier(CLK_LOCAL_MEM_FENCE);
    return t;
}

static inline float nn_line_max(__local float *scr, float v, int LX) {
    int lid = get_local_id(0), ls = get_local_size(0);
    scr[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = ls / 2; w >= LX; w >>= 1) {
        if (lid < w) scr[lid] = nn_max_nan(scr[lid], scr[lid + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float t = scr[lid % LX];
    barrier(CLK_LOCAL_MEM_FENCE);
    return t;
}

/* The loop over the lines of a launch: `line` is this work-item's line, `ok` whether it exists. */
#define FOR_LINES(line, ok, nlines, LX)                                                            \
    for (long line##0 = get_group_id(0) * (long)(LX); line##0 < (nlines);                        \
         line##0 += get_num_groups(0) * (long)(LX))                                               \
        for (long line = line##0 + get_local_id(0) % (LX), ok = line < (nlines), once_ = 1; once_; once_ = 0)

#define NN_LOCAL 256   /* the largest work-group the host launches these kernels with */

/* mirrors cl_attn_geo in engine/cl/cl_attention.c: where the scores of one chunk come from */
typedef struct {
    long bshape[8];          /* batch dims of the output */
    long mst[8];             /* the mask's strides over them (0: broadcast) */
    long moff, msr, msc;     /* the mask's offset, row and column strides */
    long Lq, Lk;
    long b0, q0, bq;         /* this chunk: matrices b0.., query rows q0 .. q0 + bq of each */
    int nbd, has_mask, causal, pad0;
} attn_geo;

static inline long attn_mask_base(const attn_geo *g, long b) {
    long o = g->moff;
    for (int d = g->nbd - 1; d >= 0; d--) {
        long n = g->bshape[d];
        o += (b % n) * g->mst[d];
        b /= n;
    }
    return o;
}

/* Forward: S (the chunk's scores, [rows = nb * bq, Lk], already scaled) becomes P = softmax(S +
 * mask) in place, with keys after the query masked when causal; lse gets m + log(sum). A row
 * of -inf only gives NaN probabilities and lse -inf, as the CPU op. */
__kernel void attn_softmax(GEO_ARGS, __global float *S, const long rows, __global const float *mask,
                           __global float *lse, const int LX) {
    const attn_geo g = *GEO(attn_geo);
    __local float smax[NN_LOCAL];
    __local acc_t ssum[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(r, ok, rows, LX) {
        long b = g.b0 + (ok ? r / g.bq : 0), qi = g.q0 + (ok ? r % g.bq : 0);
        long mb = g.has_mask && ok ? attn_mask_base(&g, b) + qi * g.msr : 0;
        long nv = g.causal ? min(qi + 1, g.Lk) : g.Lk;   /* visible keys */
        __global float *s = S + r * g.Lk;
        float m = -INFINITY;
        if (ok)
            for (long j = ly; j < g.Lk; j += LY) {
                float v = j < nv ? s[j] : -INFINITY;
                if (g.has_mask && j < nv) v += mask[mb + j * g.msc];
                s[j] = v;
                m = nn_max_nan(m, v);
            }
        m = nn_line_max(smax, m, LX);
        if (m == -INFINITY) m = 0.0f;
        acc_t l = 0;
        if (ok) for (long j = ly; j < g.Lk; j += LY) l += exp(s[j] - m);
        float sum = (float)nn_line_sum(ssum, l, LX), inv = 1.0f / sum;
        if (ok) {
            for (long j = ly; j < g.Lk; j += LY) s[j] = exp(s[j] - m) * inv;
            if (ly == 0) lse[b * g.Lq + qi] = m + log(sum);
        }
    }
}

/* Backward: S (scaled scores of the chunk) becomes P = exp(S + mask - lse), 0 for hidden keys. */
__kernel void attn_prob(GEO_ARGS, __global float *S, const long rows, __global const float *mask,
                        __global const float *lse) {
    const attn_geo g = *GEO(attn_geo);
    FOR_EACH(e, rows * g.Lk) {
        long r = e / g.Lk, j = e % g.Lk, b = g.b0 + r / g.bq, qi = g.q0 + r % g.bq;
        if (g.causal && j > qi) { S[e] = 0.0f; continue; }
        float v = S[e];
        if (g.has_mask) v += mask[attn_mask_base(&g, b) + qi * g.msr + j * g.msc];
        S[e] = exp(v - lse[b * g.Lq + qi]);
    }
}

/* dS = P (dP - Di) in place of dP; Di = rowsum(dO * O) of the row's query */
__kernel void attn_dscore(GEO_ARGS, __global const float *P, __global float *dP, const long rows, __global const float *Di) {
    const attn_geo g = *GEO(attn_geo);
    FOR_EACH(e, rows * g.Lk) {
        long r = e / g.Lk, b = g.b0 + r / g.bq, qi = g.q0 + r % g.bq;
        dP[e] = P[e] * (dP[e] - Di[b * g.Lq + qi]);
    }
}

/* d[r] = sum_k a[r, k] b[r, k] for dense [rows, n] blocks (lines with inner 1) */
__kernel void row_dot(__global const float *a, const long aoff, __global const float *bm, const long boff,
                      __global float *d, const long rows, const long n, const int LX) {
    __local acc_t scr[NN_LOCAL];
    int LY = get_local_size(0) / LX, ly = get_local_id(0) / LX;
    FOR_LINES(r, ok, rows, LX) {
        acc_t s = 0;
        if (ok) for (long k = ly; k < n; k += LY) s += (acc_t)a[aoff + r * n + k] * (acc_t)bm[boff + r * n + k];
        s = nn_line_sum(scr, s, LX);
        if (ok && ly == 0) d[r] = (float)s;
    }
}
