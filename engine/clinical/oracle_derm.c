/* oracle_derm.c: measures a dermoscopy image of a pigmented lesion from its pixels (ABCD).
 *
 *  - skin colour: per-channel median of a frame 12 % wide (dark vignette corners and hairs left
 *    out); the skin's offset from the expected skin-tone line gives a white balance, so a global
 *    colour cast does not change the colour names;
 *  - lesion: relative colour distance from the skin, lightly smoothed, Otsu threshold, a 3x3
 *    opening (drops hairs), the largest central component, holes filled;
 *  - shape (A, B, D): the descriptors shared with the generator (phantom.h): mirror asymmetry
 *    about the principal axes, rms of the radial profile's harmonics >= 4 (irregular border),
 *    largest diameter (the image is 15 mm wide: 6 mm = 0.4);
 *  - colours (C) and blue-white structures: each pixel of the lesion's interior (border ring
 *    removed) is named after the nearest of the six dermoscopic colours (light brown, dark brown,
 *    black, red, blue-grey, white); a colour counts from 8 % of the interior, blue-white from 6 %.
 * Melanoma: at least two of the five criteria (the generator keeps nevi at <= 1, melanomas >= 3). */
#include "clinical/clinical.h"

enum { M_ASYM, M_IRREG, M_NCOL, M_BW, M_BW_FRAC, M_DIAM, M_NCRIT, M_AREA, M_COUNT };
static const char *const measure_names[M_COUNT] = {"asymmetry",  "border_irregularity", "n_colours",
                                                   "blue_white", "blue_white_fraction", "diameter_frac",
                                                   "n_criteria", "lesion_area"};
enum { I_SYM, I_REG, I_FEWCOL, I_ASYM, I_IRREG, I_COL3, I_BW, I_DIAM, I_COUNT };
static const char *const item_names[I_COUNT] = {"symmetric_shape",       "regular_border",
                                                "one_or_two_colours",    "asymmetry",
                                                "irregular_border",      "three_or_more_colours",
                                                "blue_white_structures", "diameter_large"};
static const int item_class[I_COUNT] = {0, 0, 0, 1, 1, 1, 1, 1};

#define ASYM_T 0.06f
#define IRREG_T 0.04f
#define DIAM_T 0.4f

enum { C_LB, C_DB, C_BK, C_RD, C_BG, C_WH, NCOL };
static const float palette[NCOL][3] = {{0.70f, 0.48f, 0.32f}, {0.42f, 0.25f, 0.15f}, {0.16f, 0.11f, 0.10f},
                                       {0.78f, 0.30f, 0.28f}, {0.40f, 0.48f, 0.62f}, {0.90f, 0.88f, 0.88f}};

static inline void tmpf_store(float *v, int *n, float x) { v[(*n)++] = x; }

static void erode3(uint8_t *m, int W, uint8_t *tmp) {
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            int keep = m[(size_t)j * W + i];
            for (int dj = -1; keep && dj <= 1; dj++)
                for (int di = -1; keep && di <= 1; di++) {
                    int ii = i + di, jj = j + dj;
                    if (ii < 0 || jj < 0 || ii >= W || jj >= W || !m[(size_t)jj * W + ii]) keep = 0;
                }
            tmp[(size_t)j * W + i] = (uint8_t)keep;
        }
    memcpy(m, tmp, (size_t)W * W);
}
static void dilate3(uint8_t *m, int W, uint8_t *tmp) {
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            int on = 0;
            for (int dj = -1; !on && dj <= 1; dj++)
                for (int di = -1; !on && di <= 1; di++) {
                    int ii = i + di, jj = j + dj;
                    if (ii >= 0 && jj >= 0 && ii < W && jj < W && m[(size_t)jj * W + ii]) on = 1;
                }
            tmp[(size_t)j * W + i] = (uint8_t)on;
        }
    memcpy(m, tmp, (size_t)W * W);
}

/* the skin: its colour (the median of the outer frame's brighter pixels) and the white-balance
 * gains against the expected skin-tone line (0.94,0.78,0.70) - t (0.16,0.18,0.20) */
static void read_skin(const float *const *I, int W, int band, float *vals, float *skin, float *gain) {
    int n = 0;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++)
            if (i < band || j < band || i >= W - band || j >= W - band)
                vals[n++] =
                    (I[0][(size_t)j * W + i] + I[1][(size_t)j * W + i] + I[2][(size_t)j * W + i]) / 3.0f;
    float lum_med = ph_quantile(vals, n, 0.75f, 0.0f, 1.0f);
    for (int c = 0; c < 3; c++) {
        int m = 0;
        for (int j = 0; j < W; j++)
            for (int i = 0; i < W; i++) {
                if (!(i < band || j < band || i >= W - band || j >= W - band)) continue;
                size_t k = (size_t)j * W + i;
                float L = (I[0][k] + I[1][k] + I[2][k]) / 3.0f;
                if (L > 0.8f * lum_med) vals[m++] = I[c][k];
            }
        skin[c] = m ? ph_quantile(vals, m, 0.5f, 0.0f, 1.0f) : 0.8f;
    }
    const float s0[3] = {0.94f, 0.78f, 0.70f}, sd[3] = {0.16f, 0.18f, 0.20f};
    float num = 0, den = 0;
    for (int c = 0; c < 3; c++) {
        num += (s0[c] - skin[c]) * sd[c];
        den += sd[c] * sd[c];
    }
    float tone = ph_clampf(num / den, -0.3f, 1.2f);
    for (int c = 0; c < 3; c++)
        gain[c] = ph_clampf((s0[c] - tone * sd[c]) / fmaxf(skin[c], 0.05f), 0.6f, 1.6f);
}

/* The lesion: relative colour distance from the skin (smoothed into fm), thresholded above the
 * skin's own texture, cleaned, the central component with its holes filled into mask; 0 when
 * there is none. Gives the threshold T. */
static int find_lesion(const float *const *I, int W, int band, const float *skin, float *vals, float *f,
                       float *fm, uint8_t *mask, uint8_t *tmp, int32_t *lab, float *T_out, ph_scratch *sc) {
    const size_t N = (size_t)W * (size_t)W;
    for (size_t k = 0; k < N; k++) {
        float d = 0.0f;
        for (int c = 0; c < 3; c++) {
            float e = (I[c][k] - skin[c]) / fmaxf(skin[c], 0.05f);
            d += e * e;
        }
        f[k] = sqrtf(d);
    }
    memcpy(fm, f, N * sizeof(float));
    ph_blur(fm, W, W, 0.7f * ((float)W / 64.0f), sc);
    /* every lesion colour is at least ~0.3 away from skin in relative terms; the threshold sits
     * above the skin's own texture */
    int nb = 0;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++)
            if (i < band || j < band || i >= W - band || j >= W - band)
                tmpf_store(vals, &nb, fm[(size_t)j * W + i]);
    float T = 0.12f + 3.0f * ph_quantile(vals, nb, 0.5f, 0.0f, 2.0f);
    if (T > 0.3f) T = 0.3f;
    *T_out = T;
    for (size_t k = 0; k < N; k++) mask[k] = fm[k] > T;
    erode3(mask, W, tmp);
    dilate3(mask, W, tmp);
    ph_comp comps[256];
    int nc = ph_components(mask, W, W, lab, comps, 256, sc), best = -1;
    for (int c = 0; c < nc && c < 256; c++) {
        float dx = (float)comps[c].cx - 0.5f * W, dy = (float)comps[c].cy - 0.5f * W;
        if (dx * dx + dy * dy > 0.09f * W * W || comps[c].area < 4) continue;
        if (best < 0 || comps[c].area > comps[best].area) best = c;
    }
    /* no lesion near the centre, or a "lesion" that is the whole frame (no skin around it):
     * neither a nevus nor a melanoma can be read off the image */
    if (best < 0 || comps[best].area > 0.7 * (double)N) return 0;
    for (size_t k = 0; k < N; k++) mask[k] = lab[k] == best + 1;
    ph_fill_holes(mask, W, W, sc);
    return 1;
}

/* Soft mask m: a pixel's share of lesion is its colour distance over that of the lesion's rim
 * (mixing skin and lesion colour moves the distance linearly), so the outline is sub-pixel;
 * deep inside (3 px from the outline) the lesion is whole whatever its colour. Uses f and lab
 * as scratch; gives the lesion's area in pixels. */
static int soft_mask(int W, const uint8_t *mask, const float *fm, float T, float *m, uint8_t *tmp, float *f,
                     int32_t *lab) {
    const size_t N = (size_t)W * (size_t)W;
    int area = 0;
    memcpy(tmp, mask, N);
    uint8_t *rim = (uint8_t *)f; /* f no longer needed */
    memcpy(rim, mask, N);
    for (int t = 0; t < 3; t++) erode3(rim, W, tmp);
    int nr = 0;
    float *rimv = (float *)lab;
    for (size_t k = 0; k < N; k++)
        if (mask[k] && !rim[k]) rimv[nr++] = fm[k];
    float fl = nr ? ph_quantile(rimv, nr, 0.5f, 0.0f, 3.0f) : 2.0f * T;
    if (fl < 1.5f * T) fl = 1.5f * T;
    memcpy(rim, mask, N);
    dilate3(rim, W, tmp);
    for (size_t k = 0; k < N; k++) {
        m[k] = rim[k] ? ph_clampf(fm[k] / fl, 0.0f, 1.0f) : 0.0f;
        if (mask[k] && m[k] < 0.5f && fm[k] >= T) m[k] = 0.5f;
        area += mask[k];
    }
    memcpy(rim, mask, N);
    for (int t = 0; t < 3; t++) erode3(rim, W, tmp);
    for (size_t k = 0; k < N; k++)
        if (rim[k]) m[k] = 1.0f;
    return area;
}

/* colours of the lesion less its outermost pixel ring, where it is mixed with skin: each pixel
 * (white-balanced) to the nearest palette colour within 0.2; the pixels counted */
static int count_colours(const float *const *I, int W, uint8_t *mask, uint8_t *tmp, const float *gain,
                         int *counts) {
    const size_t N = (size_t)W * (size_t)W;
    erode3(mask, W, tmp);
    int n_in = 0;
    for (size_t k = 0; k < N; k++) {
        if (!mask[k]) continue;
        float best_d = 1e9f;
        int bc = -1;
        for (int c = 0; c < NCOL; c++) {
            float d = 0.0f;
            for (int ch = 0; ch < 3; ch++) {
                float e = I[ch][k] * gain[ch] - palette[c][ch];
                d += e * e;
            }
            if (d < best_d) {
                best_d = d;
                bc = c;
            }
        }
        n_in++;
        if (best_d < 0.2f * 0.2f) counts[bc]++;
    }
    return n_in;
}

/* One image: skin and white balance, the lesion, its soft outline and shape, its colours, then
 * the ABCD measures, checklist verdicts and label. */
static void audit(const float *chw, int W, float *ms, int32_t *label, uint8_t *items, ph_scratch *sc) {
    const size_t N = (size_t)W * (size_t)W;
    const float *I[3] = {chw, chw + N, chw + 2 * N};
    float *vals = ph_salloc(sc, N), *f = ph_salloc(sc, N), *fm = ph_salloc(sc, N);
    uint8_t *mask = (uint8_t *)ph_salloc(sc, N / 4 + 16), *tmp = (uint8_t *)ph_salloc(sc, N / 4 + 16);
    int32_t *lab = (int32_t *)ph_salloc(sc, N);
    for (int t = 0; t < M_COUNT; t++) ms[t] = 0.0f;
    *label = 0;
    int band = (int)(0.12f * (float)W + 0.5f); /* skin: the outer frame */
    float skin[3], gain[3], T;
    read_skin(I, W, band, vals, skin, gain);
    if (!find_lesion(I, W, band, skin, vals, f, fm, mask, tmp, lab, &T, sc)) {
        *label = CRAFT_ORACLE_UNDETERMINED;
        return;
    }
    int area = soft_mask(W, mask, fm, T, vals, tmp, f, lab);
    ph_shape shp;
    ph_shape_measure(vals, W, W, &shp);
    int counts[NCOL] = {0}, n_in = count_colours(I, W, mask, tmp, gain, counts);

    int ncol = 0;
    for (int c = 0; c < NCOL; c++) ncol += n_in > 0 && counts[c] >= 0.08f * (float)n_in;
    float bwf = n_in ? (float)(counts[C_BG] + counts[C_WH]) / (float)n_in : 0.0f;
    float df = (float)(shp.diameter / W);
    int cA = shp.asymmetry >= ASYM_T, cB = shp.irregularity >= IRREG_T, cC = ncol >= 3, cD = bwf >= 0.06f,
        cE = df >= DIAM_T;
    int ncrit = cA + cB + cC + cD + cE;
    ms[M_ASYM] = (float)shp.asymmetry;
    ms[M_IRREG] = (float)shp.irregularity;
    ms[M_NCOL] = (float)ncol;
    ms[M_BW] = (float)cD;
    ms[M_BW_FRAC] = bwf;
    ms[M_DIAM] = df;
    ms[M_NCRIT] = (float)ncrit;
    ms[M_AREA] = (float)area / (float)N;
    items[I_SYM] = !cA;
    items[I_REG] = !cB;
    items[I_FEWCOL] = !cC;
    items[I_ASYM] = (uint8_t)cA;
    items[I_IRREG] = (uint8_t)cB;
    items[I_COL3] = (uint8_t)cC;
    items[I_BW] = (uint8_t)cD;
    items[I_DIAM] = (uint8_t)cE;
    *label = ncrit >= 2;
}

const ph_oracle_desc ph_oracle_derm = {M_COUNT, measure_names, I_COUNT, item_names, item_class, audit};
