/* oracle_cxr.c: measures a PA chest radiograph from its pixels.
 *
 * Lungs are the two largest dark regions (Otsu threshold on a lightly smoothed grey image) that
 * do not touch the image border; holes (opacities) are filled. Every lung border used in a
 * measurement is located to sub-pixel precision at the half level between the lung and the
 * tissue next to it, so blur does not bias widths.
 *  - thoracic width: the widest row distance between the lungs' lateral borders;
 *  - cardiac width: max right heart border minus min left heart border (the medial lung borders
 *    in the lower 60 % of the lungs; a lateral jump of the medial border means the diaphragm has
 *    taken over and ends the search), i.e. MRD + MLD of the clinical definition;
 *  - consolidation: lung pixels brighter than the lung's median by a share of the lung/tissue
 *    gap (smoothing restricted to the lungs), grown at half of their peak; its area is a
 *    fraction of the lung area and its zone the third of that lung's height holding its centroid.
 */
#include "clinical/clinical.h"

enum { M_CTR, M_CONS_AREA, M_CONS_ZONE, M_THORAX_W, M_HEART_W, M_LUNG_AREA, M_CONS_CONTRAST, M_COUNT };
static const char *const measure_names[M_COUNT] = {
    "ctr",         "consolidation_area", "consolidation_zone",    "thorax_width",
    "heart_width", "lung_area",          "consolidation_contrast"};
enum { I_NORMAL_HEART, I_CLEAR_LUNGS, I_CTR, I_CONSOLIDATION, I_UNILATERAL, I_COUNT };
static const char *const item_names[I_COUNT] = {"normal_heart_size", "clear_lung_fields", "ctr_gt_0.5",
                                                "focal_consolidation", "unilateral_opacity"};
static const int item_class[I_COUNT] = {0, 0, 1, 2, 2};

/* Sub-pixel border: x_in is the last lung pixel of a run, dir points out of the lung. */
static float refine_edge(const float *row, int w, int x_in, int dir, float s) {
    int kin = (int)ceilf(2.0f * s), kout = (int)ceilf(3.0f * s), kwalk = (int)ceilf(7.0f * s);
    float lo = 1e9f, hi = -1e9f;
    for (int k = 0; k <= kin; k++) {
        int x = x_in - dir * k;
        if (x >= 0 && x < w && row[x] < lo) lo = row[x];
    }
    for (int k = 1; k <= kout; k++) {
        int x = x_in + dir * k;
        if (x >= 0 && x < w && row[x] > hi) hi = row[x];
    }
    if (hi <= lo) return (float)x_in + 0.5f + 0.5f * (float)dir;
    float lvl = 0.5f * (lo + hi);
    int prev = x_in - kin * dir;
    if (prev < 0) prev = 0;
    if (prev > w - 1) prev = w - 1;
    for (int p = prev + dir, k = 0; k < kwalk && p >= 0 && p < w; p += dir, k++) {
        if (row[p] >= lvl && row[p - dir] < lvl) {
            float f = (lvl - row[p - dir]) / (row[p] - row[p - dir]);
            return (float)(p - dir) + 0.5f + (float)dir * f;
        }
    }
    return (float)x_in + 0.5f + 0.5f * (float)dir;
}

static float med3(float a, float b, float c) {
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

/* One image's state between the steps of audit(). */
typedef struct reading {
    int W;
    size_t N;
    float s;                 /* pixel scale: W / 64 */
    float *G, *S1, *S2, *Mb; /* grey, smoothed grey, and two more planes of scratch */
    uint8_t *mask, *lung[2];
    int32_t *lab;
    ph_comp comps[256];
    float *edge; /* per row: outer left, inner left, inner right, outer right, valid */
    float T;     /* Otsu's threshold between lung and tissue */
    double lung_area;
    int jt, jb; /* the rows with both lungs */
} reading;

/* The lungs: the two largest dark regions (Otsu on the lightly smoothed grey image) that do not
 * touch the border, holes filled, image-left first; 0 when there are not two. */
static int find_lungs(reading *rd, const float *chw, ph_scratch *sc) {
    size_t N = rd->N;
    int W = rd->W;
    float *G = rd->G, *S1 = rd->S1;
    for (size_t k = 0; k < N; k++) G[k] = (chw[k] + chw[N + k] + chw[2 * N + k]) * (1.0f / 3.0f);
    memcpy(S1, G, N * sizeof(float));
    ph_blur(S1, W, W, 0.7f * rd->s, sc);
    rd->T = ph_otsu(S1, NULL, (int)N, 0.0f, 1.0f);
    for (size_t k = 0; k < N; k++) rd->mask[k] = S1[k] < rd->T;
    ph_comp *comps = rd->comps;
    int nc = ph_components(rd->mask, W, W, rd->lab, comps, 256, sc);
    int best[2] = {-1, -1};
    for (int c = 0; c < nc && c < 256; c++) {
        if (comps[c].touches_border || comps[c].area < (int)(0.01 * (double)N)) continue;
        if (best[0] < 0 || comps[c].area > comps[best[0]].area) {
            best[1] = best[0];
            best[0] = c;
        } else if (best[1] < 0 || comps[c].area > comps[best[1]].area) best[1] = c;
    }
    if (best[1] < 0) return 0;
    if (comps[best[0]].cx > comps[best[1]].cx) {
        int t = best[0];
        best[0] = best[1];
        best[1] = t;
    }
    rd->lung_area = 0.0;
    for (int side = 0; side < 2; side++) {
        for (size_t k = 0; k < N; k++) rd->lung[side][k] = rd->lab[k] == best[side] + 1;
        ph_fill_holes(rd->lung[side], W, W, sc);
        for (size_t k = 0; k < N; k++) rd->lung_area += rd->lung[side][k];
    }
    return 1;
}

/* the lungs' four borders on every row that has both, to sub-pixel precision */
static void row_borders(reading *rd) {
    int W = rd->W;
    rd->jt = W;
    rd->jb = -1;
    for (int j = 0; j < W; j++) {
        float *e = rd->edge + 6 * (size_t)j;
        e[4] = 0.0f;
        int l0 = -1, l1 = -1, r0 = -1, r1 = -1;
        const uint8_t *a = rd->lung[0] + (size_t)j * W, *b = rd->lung[1] + (size_t)j * W;
        for (int i = 0; i < W; i++) {
            if (a[i]) {
                if (l0 < 0) l0 = i;
                l1 = i;
            }
            if (b[i]) {
                if (r0 < 0) r0 = i;
                r1 = i;
            }
        }
        if (l0 < 0 || r0 < 0) continue;
        const float *row = rd->S1 + (size_t)j * W;
        e[0] = refine_edge(row, W, l0, -1, rd->s);
        e[1] = refine_edge(row, W, l1, +1, rd->s);
        e[2] = refine_edge(row, W, r0, -1, rd->s);
        e[3] = refine_edge(row, W, r1, +1, rd->s);
        e[4] = 1.0f;
        if (j < rd->jt) rd->jt = j;
        if (j > rd->jb) rd->jb = j;
    }
}

/* thoracic width: the widest row distance between the lateral borders (rows median-filtered) */
static float thorax_width(const reading *rd) {
    float thorax = 0.0f;
    for (int j = rd->jt + 1; j < rd->jb; j++) {
        const float *e0 = rd->edge + 6 * (size_t)(j - 1), *e1 = rd->edge + 6 * (size_t)j,
                    *e2 = rd->edge + 6 * (size_t)(j + 1);
        if (e0[4] == 0.0f || e1[4] == 0.0f || e2[4] == 0.0f) continue;
        float wdt = med3(e0[3], e1[3], e2[3]) - med3(e0[0], e1[0], e2[0]);
        if (wdt > thorax) thorax = wdt;
    }
    return thorax;
}

/* Heart borders: each lung's medial border from 42 % of the lung height down. Climbing from
 * the lung's lowest row, that border first runs medially along the diaphragm, fast; the
 * cardiophrenic angle is the first row where it stops doing so. The heart's extreme is the
 * most lateral border position at or above that row. Gives the cardiac width (0: no borders). */
static float heart_width(const reading *rd, ph_scratch *sc) {
    int W = rd->W, jm = rd->jt + (int)(0.42f * (float)(rd->jb - rd->jt));
    float minL = 1e9f, maxR = -1e9f;
    float *raw = ph_salloc(sc, (size_t)W), *xs = ph_salloc(sc, (size_t)W);
    for (int side = 0; side < 2; side++) {
        int n = 0;
        for (int j = jm; j <= rd->jb; j++) {
            const float *e = rd->edge + 6 * (size_t)j;
            if (e[4] == 0.0f) break;
            raw[n++] = side == 0 ? -e[1] : e[2]; /* outward is +x for both sides */
        }
        if (n < 3) continue;
        xs[0] = raw[0];
        xs[n - 1] = raw[n - 1];
        for (int t = 1; t < n - 1; t++) xs[t] = med3(raw[t - 1], raw[t], raw[t + 1]);
        /* border slopes (pixels per row) do not depend on the image size; the costophrenic
         * recess at the very bottom can be steep, so first find the fast diaphragm run */
        int corner = n - 1, lim = n - 1 - (n + 3) / 4;
        while (corner > lim && corner > 0 && xs[corner - 1] - xs[corner] > -0.6f) corner--;
        if (corner <= lim || corner == 0) corner = n - 1;
        while (corner > 0 && xs[corner - 1] - xs[corner] < -0.35f) corner--;
        float ext = -1e9f;
        for (int t = 0; t <= corner; t++)
            if (xs[t] > ext) ext = xs[t];
        if (side == 0) minL = -ext;
        else maxR = ext;
    }
    return maxR > minL ? maxR - minL : 0.0f;
}

/* what the consolidation search finds */
typedef struct opacity {
    float area, zone, contrast;
    int sides_hit;
} opacity;

/* Consolidation: smoothing restricted to the lungs less a border ring (no partial volume with
 * the bright tissue around them; normalised convolution still gives every lung pixel a value),
 * candidates brighter than the lung's median by 0.3 of the lung/tissue gap, the largest one grown
 * to half of its peak; its area (a fraction of the lungs'), zone and contrast. Reuses S1, G and
 * Mb as byte masks. */
static void find_consolidation(reading *rd, ph_scratch *sc, opacity *op) {
    int W = rd->W;
    size_t N = rd->N;
    float s = rd->s, *G = rd->G, *S2 = rd->S2, *Mb = rd->Mb;
    uint8_t *mask = rd->mask, *core = (uint8_t *)rd->S1;
    int32_t *lab = rd->lab;
    ph_comp *comps = rd->comps;
    rd->lung_area = 0.0;
    for (size_t k = 0; k < N; k++) {
        core[k] = mask[k] = rd->lung[0][k] | rd->lung[1][k];
        rd->lung_area += mask[k];
    }
    int rounds = s < 1.5f ? 1 : (int)(s + 0.5f);
    for (int t = 0; t < rounds; t++) {
        for (int j = 0; j < W; j++)
            for (int i = 0; i < W; i++) {
                size_t k = (size_t)j * W + i;
                int keep = core[k] & 1;
                if (keep && (i == 0 || j == 0 || i == W - 1 || j == W - 1)) keep = 0;
                for (int dj = -1; keep && dj <= 1; dj++)
                    for (int di = -1; keep && di <= 1; di++)
                        if (!(core[k + (size_t)((ptrdiff_t)dj * W + di)] & 1)) keep = 0;
                core[k] = (uint8_t)((core[k] & 1) | (keep << 1));
            }
        for (size_t k = 0; k < N; k++) core[k] >>= 1;
    }
    for (size_t k = 0; k < N; k++) {
        float m = (float)core[k];
        Mb[k] = m;
        S2[k] = G[k] * m;
    }
    ph_blur(S2, W, W, 1.5f * s, sc);
    ph_blur(Mb, W, W, 1.5f * s, sc);
    int nl = 0;
    float *vals = ph_salloc(sc, N);
    for (size_t k = 0; k < N; k++)
        if (mask[k]) {
            S2[k] /= fmaxf(Mb[k], 1e-3f);
            if (core[k]) vals[nl++] = S2[k];
        } else S2[k] = 0.0f;
    float Lb = ph_quantile(vals, nl, 0.5f, 0.0f, 1.0f);
    float gap = fmaxf(rd->T - Lb, 0.05f), thr = Lb + 0.3f * gap;
    uint8_t *cand = (uint8_t *)Mb, *seed = (uint8_t *)G; /* G, Mb reused as byte masks */
    for (size_t k = 0; k < N; k++) cand[k] = core[k] && S2[k] > thr;
    int nc = ph_components(cand, W, W, lab, comps, 256, sc);
    int bc = -1;
    for (int c = 0; c < nc && c < 256; c++)
        if (comps[c].area >= 0.012 * rd->lung_area && (bc < 0 || comps[c].area > comps[bc].area)) bc = c;
    op->area = 0.0f, op->zone = 0.0f, op->contrast = 0.0f;
    op->sides_hit = 0;
    if (bc < 0) return;
    int n = 0;
    for (size_t k = 0; k < N; k++) {
        seed[k] = lab[k] == bc + 1;
        if (seed[k]) vals[n++] = S2[k];
    }
    float peak = ph_quantile(vals, n, 0.9f, 0.0f, 1.0f), half = Lb + 0.5f * (peak - Lb);
    op->contrast = (peak - Lb) / gap;
    /* grow to half the peak: the half-level component that overlaps the seed most */
    for (size_t k = 0; k < N; k++) cand[k] = mask[k] && S2[k] >= half;
    int nh = ph_components(cand, W, W, lab, comps, 256, sc);
    int *overlap = (int *)ph_salloc(sc, (size_t)nh + 1);
    for (int c = 0; c <= nh; c++) overlap[c] = 0;
    for (size_t k = 0; k < N; k++)
        if (seed[k] && lab[k]) overlap[lab[k]]++;
    int seed_lab = 0;
    for (int c = 1; c <= nh; c++)
        if (overlap[c] > overlap[seed_lab]) seed_lab = c;
    double area = 0.0, sy = 0.0, per_side[2] = {0.0, 0.0};
    for (size_t k = 0; k < N; k++) {
        if (!seed_lab || lab[k] != seed_lab) continue;
        area += 1.0;
        sy += (double)(k / (size_t)W) + 0.5;
        per_side[rd->lung[1][k] ? 1 : 0] += 1.0;
    }
    if (area > 0.0) {
        op->area = (float)(area / rd->lung_area);
        int side = per_side[1] > per_side[0];
        op->sides_hit = (per_side[0] > 0.1 * area) + (per_side[1] > 0.1 * area);
        int top = W, bot = -1;
        for (int j = 0; j < W; j++)
            for (int i = 0; i < W; i++)
                if (rd->lung[side][(size_t)j * W + i]) {
                    if (j < top) top = j;
                    if (j > bot) bot = j;
                    break;
                }
        float f = ((float)(sy / area) - (float)top) / (float)(bot - top + 1);
        int z = (int)(3.0f * f);
        op->zone = (float)(1 + 3 * side + (z < 0 ? 0 : (z > 2 ? 2 : z)));
    }
}

/* One image: lungs, their borders, thoracic and cardiac widths, consolidation, then the
 * measures, checklist verdicts and label. */
static void audit(const float *chw, int W, float *ms, int32_t *label, uint8_t *items, ph_scratch *sc) {
    reading rd;
    rd.W = W;
    rd.N = (size_t)W * (size_t)W;
    rd.s = (float)W / 64.0f;
    size_t N = rd.N;
    rd.G = ph_salloc(sc, N), rd.S1 = ph_salloc(sc, N), rd.S2 = ph_salloc(sc, N), rd.Mb = ph_salloc(sc, N);
    rd.mask = (uint8_t *)ph_salloc(sc, N / 4 + 16);
    rd.lung[0] = (uint8_t *)ph_salloc(sc, N / 4 + 16);
    rd.lung[1] = (uint8_t *)ph_salloc(sc, N / 4 + 16);
    rd.lab = (int32_t *)ph_salloc(sc, N);
    rd.edge = ph_salloc(sc, 6 * (size_t)W);
    int found = find_lungs(&rd, chw, sc);
    for (int t = 0; t < M_COUNT; t++) ms[t] = 0.0f;
    *label = 0;
    /* no two lung fields: nothing can be measured, and the image is no class at all */
    if (!found) {
        *label = CRAFT_ORACLE_UNDETERMINED;
        return;
    }
    row_borders(&rd);
    float thorax = thorax_width(&rd), heart = heart_width(&rd, sc);
    float ctr = thorax > 0.0f ? heart / thorax : 0.0f;
    opacity op;
    find_consolidation(&rd, sc, &op);

    int consolidation = op.area >= 0.02f && op.contrast >= 0.4f;
    ms[M_CTR] = ctr;
    ms[M_CONS_AREA] = consolidation ? op.area : 0.0f;
    ms[M_CONS_ZONE] = consolidation ? op.zone : 0.0f;
    ms[M_THORAX_W] = thorax / (float)W;
    ms[M_HEART_W] = heart / (float)W;
    ms[M_LUNG_AREA] = (float)(rd.lung_area / (double)N);
    ms[M_CONS_CONTRAST] = op.contrast;
    /* a thorax or heart whose borders were not found is not a normal heart (ctr would read 0) */
    if (thorax <= 0.0f || heart <= 0.0f) {
        *label = CRAFT_ORACLE_UNDETERMINED;
        return;
    }
    items[I_NORMAL_HEART] = ctr <= 0.5f;
    items[I_CLEAR_LUNGS] = !consolidation;
    items[I_CTR] = ctr > 0.5f;
    items[I_CONSOLIDATION] = (uint8_t)consolidation;
    items[I_UNILATERAL] = consolidation && op.sides_hit == 1;
    if (consolidation && ctr > 0.5f) *label = ctr > 0.53f ? 1 : 2;
    else if (consolidation) *label = 2;
    else if (ctr > 0.5f) *label = 1;
    else *label = 0;
}

const ph_oracle_desc ph_oracle_cxr = {M_COUNT, measure_names, I_COUNT, item_names, item_class, audit};
