/* phantom_derm.c: procedural dermoscopy images of a pigmented lesion on skin.
 *
 * The lesion outline is a polar curve r(theta) = R (1 + low harmonics (asymmetry) + high
 * harmonics (border irregularity)). Inside, a pigment field (central darkening + blotchy noise)
 * is cut by quantiles into a ramp of browns (light brown, dark brown, black); red patches and a
 * blue-white veil (blue-grey with white streaks) may be laid over it. Melanoma follows the ABCD
 * criteria: each of asymmetry, irregular border, >= 3 colours, blue-white structures and a large
 * diameter is drawn either clearly present or clearly absent; a melanoma has at least 3 of the
 * 5, a nevus at most 1 (the label rule, >= 2 criteria, sits in between). The ground truth shape
 * values are measured on the clean coverage mask with the oracle's own descriptor code. The
 * image is 15 mm wide, so 6 mm is a diameter of 0.4 of the image. */
#include "clinical/clinical.h"

enum { P_ASYM, P_IRREG, P_NCOL, P_BW, P_BW_FRAC, P_DIAM, P_NCRIT, P_SKIN, P_HAIRS, P_BLUR, P_NOISE,
       P_COUNT };
static const char *const param_names[P_COUNT] = {
    "asymmetry", "border_irregularity", "n_colours", "blue_white", "blue_white_fraction",
    "diameter_frac", "n_criteria", "skin_tone", "n_hairs", "blur_sigma", "noise_sd"};
static const char *const class_names[2] = {"nevus", "melanoma"};

/* thresholds of the ABCD items (shared with oracle_derm.c through phantom.h would be neater,
 * but the oracle must stand on its own: keep these equal to the oracle's) */
#define ASYM_T 0.06f
#define IRREG_T 0.04f
#define DIAM_T 0.4f

enum { C_LB, C_DB, C_BK, C_RD, C_BG, C_WH, NCOL };
static const float palette[NCOL][3] = {
    {0.70f, 0.48f, 0.32f}, {0.42f, 0.25f, 0.15f}, {0.16f, 0.11f, 0.10f},
    {0.78f, 0.30f, 0.28f}, {0.40f, 0.48f, 0.62f}, {0.90f, 0.88f, 0.88f}};

#define NTH 256

/* coverage of the polar outline; `soft` (normalised units) widens the edge ramp */
static void render_mask(float *m, int W, const float *rt, float cx, float cy, float soft) {
    const float px = 1.0f / (float)W;
    soft = fmaxf(soft, px);
    float rmax = 0.0f;
    for (int k = 0; k < NTH; k++) rmax = ph_maxf(rmax, rt[k]);
    rmax += soft;
    for (size_t k = 0; k < (size_t)W * W; k++) m[k] = 0.0f;
    int j0 = (int)((cy - rmax) * W) - 1, j1 = (int)((cy + rmax) * W) + 1;
    int i0 = (int)((cx - rmax) * W) - 1, i1 = (int)((cx + rmax) * W) + 1;
    if (j0 < 0) j0 = 0;
    if (i0 < 0) i0 = 0;
    if (j1 > W - 1) j1 = W - 1;
    if (i1 > W - 1) i1 = W - 1;
    for (int j = j0; j <= j1; j++) {
        float y = ((float)j + 0.5f) * px - cy;
        for (int i = i0; i <= i1; i++) {
            float x = ((float)i + 0.5f) * px - cx;
            float d = sqrtf(x * x + y * y), t = (atan2f(y, x) + (float)PH_PI) * (float)(NTH / (2.0 * PH_PI));
            int k0 = (int)t;
            float f = t - (float)k0;
            k0 &= NTH - 1;
            float r = rt[k0] + (rt[(k0 + 1) & (NTH - 1)] - rt[k0]) * f;
            m[(size_t)j * W + i] = ph_clampf(0.5f + (r - d) / soft, 0.0f, 1.0f);
        }
    }
}

static void generate(int W, uint64_t seed, uint64_t index, int cls, float *chw, float *prm, ph_scratch *sc) {
    ph_rng r;
    ph_rng_init(&r, seed, index, 0xD0003ULL + (uint64_t)cls);
    const size_t N = (size_t)W * (size_t)W;
    const float px = 1.0f / (float)W, pxs = (float)W / 64.0f;
    /* which ABCD criteria are present: melanoma >= 3 of 5, nevus <= 1 */
    int crit[5], ncrit;
    do {
        ncrit = 0;
        for (int k = 0; k < 5; k++) {
            double p = cls ? (k < 2 ? 0.85 : 0.6) : (k == 4 ? 0.15 : (k == 3 ? 0.02 : 0.05));
            crit[k] = ph_unif(&r) < p;
            ncrit += crit[k];
        }
    } while (cls ? ncrit < 3 : ncrit > 1);
    enum { CA, CB, CC, CD, CE };   /* asymmetry, border, colours, structure (blue-white), diameter */

    float cx = 0.5f + (float)ph_range(&r, -0.04, 0.04), cy = 0.5f + (float)ph_range(&r, -0.04, 0.04);
    float *mask = ph_salloc(sc, N);
    float rt[NTH];
    ph_shape shp = {0};
    float best_rt[NTH], best_score = -1e9f;
    for (int tries = 0; tries < 16; tries++) {
        float diam = crit[CE] ? (float)ph_range(&r, 0.44, 0.58) : (float)ph_range(&r, 0.2, 0.33);
        float a1 = 0, a2 = (float)ph_range(&r, 0.0, 0.14), a3 = 0, p1 = (float)ph_range(&r, 0, 6.3),
              p2 = (float)ph_range(&r, 0, 6.3), p3 = (float)ph_range(&r, 0, 6.3);
        if (crit[CA]) { a1 = (float)ph_range(&r, 0.15, 0.28); a3 = (float)ph_range(&r, 0.1, 0.2); a2 += 0.06f; }
        else { a1 = (float)ph_range(&r, 0.0, 0.03); a3 = (float)ph_range(&r, 0.0, 0.015); }
        float hb[16], hp[16], irr = crit[CB] ? (float)ph_range(&r, 0.06, 0.11) : (float)ph_range(&r, 0.0, 0.008);
        double e = 0.0;
        for (int k = 4; k < 16; k++) {
            hb[k] = (float)(ph_unif(&r) + 0.2) / powf((float)k, 0.7f);
            hp[k] = (float)ph_range(&r, 0, 6.3);
            e += 0.5 * hb[k] * hb[k];
        }
        float sc_h = e > 0 ? irr / (float)sqrt(e) : 0.0f;
        float R0 = 0.5f * diam;
        /* r(theta) by rotating each harmonic's phasor one step per sample (no cos per term) */
        float amp[16] = {0, a1, a2, a3}, ph0[16] = {0, p1, p2, p3};
        for (int h = 4; h < 16; h++) { amp[h] = sc_h * hb[h]; ph0[h] = hp[h]; }
        for (int k = 0; k < NTH; k++) rt[k] = 1.0f;
        for (int h = 1; h < 16; h++) {
            double a0 = -PH_PI * h + ph0[h], d = 2.0 * PH_PI * h / NTH;
            double cr = cos(a0), ci = sin(a0), dr = cos(d), di = sin(d);
            for (int k = 0; k < NTH; k++) {
                rt[k] += amp[h] * (float)cr;
                double t = cr * dr - ci * di;
                ci = cr * di + ci * dr;
                cr = t;
            }
        }
        for (int k = 0; k < NTH; k++) rt[k] *= R0;
        render_mask(mask, W, rt, cx, cy, cls ? 0.01f : 0.02f);
        ph_shape_measure(mask, W, W, &shp);
        /* margins (in threshold units) of the three shape criteria: keep the best outline */
        float df = (float)(shp.diameter / W), av = (float)shp.asymmetry / ASYM_T, bv = (float)shp.irregularity / IRREG_T;
        float mA = crit[CA] ? av - 1.3f : 0.7f - av, mB = crit[CB] ? bv - 1.3f : 0.7f - bv;
        float mE = crit[CE] ? df / DIAM_T - 1.1f : 0.9f - df / DIAM_T;
        float score = fminf(mA, fminf(mB, mE));
        if (score > best_score) { best_score = score; memcpy(best_rt, rt, sizeof rt); }
        if (score >= 0.0f) break;
    }
    if (memcmp(best_rt, rt, sizeof rt) != 0) {
        memcpy(rt, best_rt, sizeof rt);
        render_mask(mask, W, rt, cx, cy, cls ? 0.01f : 0.02f);
        ph_shape_measure(mask, W, W, &shp);
    }

    /* colours: a consecutive ramp of browns, optionally red and the blue-white veil */
    int ramp0, ramp1, red = 0, bw = crit[CD];
    if (crit[CC]) {
        int opt = ph_int(&r, 0, 2);
        ramp0 = opt == 2 ? C_DB : C_LB;
        ramp1 = opt == 1 ? C_DB : C_BK;
        red = ph_unif(&r) < 0.4;
        if (ramp1 - ramp0 + 1 + red + (bw ? 1 : 0) < 3) red = 1;
        if (ramp1 - ramp0 + 1 + red + (bw ? 1 : 0) < 3) ramp0 = C_LB, ramp1 = C_BK;
    } else {
        int opt = ph_int(&r, 0, 2);
        ramp0 = opt == 1 ? C_DB : C_LB;
        ramp1 = opt == 0 ? C_LB : C_DB;
        if (bw && ramp1 > ramp0) ramp1 = ramp0;       /* keep <= 2 colours with the veil */
    }
    int streaks = bw && crit[CC];                    /* white streaks count as a colour */
    float *pig = ph_salloc(sc, N), *blot = ph_salloc(sc, N), *tex = ph_salloc(sc, N), *fine = ph_salloc(sc, N);
    float *net = ph_salloc(sc, N);
    ph_fbm(net, W, W, &r, 9.0f, 2, 0.5f, 1.0f, sc);
    ph_fbm(blot, W, W, &r, 5.0f, 3, 0.55f, 1.0f, sc);
    ph_fbm(tex, W, W, &r, 4.0f, 3, 0.5f, 1.0f, sc);
    ph_fbm(fine, W, W, &r, 22.0f, 2, 0.5f, 3.0f, sc);
    float offx = crit[CA] ? (float)ph_range(&r, -0.3, 0.3) : 0.0f, offy = crit[CA] ? (float)ph_range(&r, -0.3, 0.3) : 0.0f;
    float R0m = (float)(shp.mean_radius / W);
    int nl = 0;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            size_t k = (size_t)j * W + i;
            float x = ((float)i + 0.5f) * px - cx - offx * R0m, y = ((float)j + 0.5f) * px - cy - offy * R0m;
            pig[k] = 1.0f - sqrtf(x * x + y * y) / R0m + 0.55f * blot[k];
            if (mask[k] > 0.5f) nl++;
        }
    /* quantile cuts of the pigment over the lesion for the ramp colours */
    int nramp = ramp1 - ramp0 + 1;
    float *vals = ph_salloc(sc, N);
    int nv = 0;
    for (size_t k = 0; k < N; k++) if (mask[k] > 0.5f) vals[nv++] = pig[k];
    float cuts[4] = {0, 0, 0, 0}, share[NCOL] = {0};
    if (nramp > 1) {
        float acc = 0.0f, fr[3];
        for (int t = 0; t < nramp; t++) { fr[t] = (float)ph_range(&r, 0.6, 1.0); acc += fr[t]; }
        float c = 0.0f;
        for (int t = 0; t < nramp - 1; t++) { c += fr[t] / acc; cuts[t] = ph_quantile(vals, nv, c, -3.0f, 3.0f); }
    }
    /* overlays: red patches where a second noise field is high, the veil as an off-centre blob */
    float red_cut = 2.0f, veil_r = 0.0f, vx = 0, vy = 0;
    if (red) {
        int n = 0;
        for (size_t k = 0; k < N; k++) if (mask[k] > 0.5f) vals[n++] = tex[k];
        red_cut = ph_quantile(vals, n, 1.0f - (float)ph_range(&r, 0.16, 0.26), -1.0f, 1.0f);
    }
    if (bw) {
        float a = (float)ph_range(&r, 0, 6.3);
        vx = cx + 0.35f * R0m * cosf(a); vy = cy + 0.35f * R0m * sinf(a);
        veil_r = R0m * (float)ph_range(&r, 0.42, 0.55);
    }
    float tone = (float)ph_range(&r, 0.0, 0.6);
    float skin[3] = {0.94f - 0.16f * tone, 0.78f - 0.18f * tone, 0.70f - 0.2f * tone};
    skin[0] += (float)ph_range(&r, -0.02, 0.02); skin[1] += (float)ph_range(&r, -0.02, 0.02);
    int vignette = ph_unif(&r) < 0.3;
    float vig_r = (float)ph_range(&r, 0.56, 0.68);
    float *R = chw, *G = chw + N, *B = chw + 2 * N;
    int counts[NCOL] = {0}, nbw = 0;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            size_t k = (size_t)j * W + i;
            float x = ((float)i + 0.5f) * px, y = ((float)j + 0.5f) * px;
            float col[3];
            /* lesion colour: the ramp by quantiles with a soft band between neighbours */
            int ci = ramp0;
            float w = 0.0f;
            for (int t = 0; t < nramp - 1; t++)
                if (pig[k] > cuts[t]) ci = ramp0 + t + 1;
            int cj = ci;
            if (ci > ramp0) { float d = pig[k] - cuts[ci - ramp0 - 1]; if (d < 0.1f) { cj = ci - 1; w = 0.5f - d * 5.0f; } }
            for (int c = 0; c < 3; c++) col[c] = palette[ci][c] * (1.0f - w) + palette[cj][c] * w;
            int cls_px = ci;
            if (red && tex[k] > red_cut) {
                float a = ph_smoothstep(red_cut, red_cut + 0.08f, tex[k]);
                for (int c = 0; c < 3; c++) col[c] = ph_lerpf(col[c], palette[C_RD][c], a);
                if (a > 0.5f) cls_px = C_RD;
            }
            if (bw) {
                float dx = x - vx, dy = y - vy, d = sqrtf(dx * dx + dy * dy) / veil_r + 0.25f * blot[k] + 0.3f * tex[k];
                float a = 1.0f - ph_smoothstep(0.85f, 1.05f, d);
                if (a > 0.0f) {
                    int white = streaks && fine[k] > 0.45f;
                    const float *vc = palette[white ? C_WH : C_BG];
                    for (int c = 0; c < 3; c++) col[c] = ph_lerpf(col[c], vc[c], 0.9f * a);
                    if (a > 0.5f) cls_px = white ? C_WH : C_BG;
                }
            }
            /* pigment network: a faint darker mesh */
            float mesh = 1.0f - fabsf(net[k]);
            for (int c = 0; c < 3; c++) col[c] *= (1.0f + 0.06f * tex[k]) * (1.0f - 0.22f * mesh * mesh * mesh);
            float m = mask[k];
            if (m > 0.5f) {
                counts[cls_px]++;
                if (cls_px == C_BG || cls_px == C_WH) nbw++;
            }
            /* skin: tone, blotchy erythema, fine skin lines, uneven light */
            float light = 1.0f - 0.08f * ((x - 0.5f) + (y - 0.5f)) + 0.03f * tex[k];
            float s0 = skin[0] * light * (1.0f + 0.02f * blot[k]) + 0.015f * fine[k];
            float s1 = skin[1] * light * (1.0f - 0.025f * blot[k]) + 0.015f * fine[k];
            float s2 = skin[2] * light * (1.0f - 0.02f * blot[k]) + 0.015f * fine[k];
            float vg = 1.0f;
            if (vignette) {
                float dx = x - 0.5f, dy = y - 0.5f;
                vg = ph_clampf(0.5f + (vig_r - sqrtf(dx * dx + dy * dy)) / (2.0f * px), 0.0f, 1.0f);
            }
            R[k] = (s0 * (1 - m) + col[0] * m) * vg;
            G[k] = (s1 * (1 - m) + col[1] * m) * vg;
            B[k] = (s2 * (1 - m) + col[2] * m) * vg;
        }
    /* hairs: a few thin dark curves */
    int nh = ph_unif(&r) < 0.15 ? ph_int(&r, 1, 2) : 0;
    if (nh) {
        float *hair = pig;
        for (size_t k = 0; k < N; k++) hair[k] = 0.0f;
        for (int h = 0; h < nh; h++) {
            float x = (float)ph_unif(&r), y = ph_unif(&r) < 0.5 ? 0.0f : 1.0f, ang = (float)ph_range(&r, 0.3, 2.8) * (y > 0.5f ? -1.0f : 1.0f);
            for (int k = 0; k < 30; k++) {
                float nx = x + 0.04f * cosf(ang), ny = y + 0.04f * sinf(ang);
                ph_stamp_segment_max(hair, W, W, x * W, y * W, nx * W, ny * W, 0.3f * pxs, 0.3f * pxs, 0.8f);
                x = nx; y = ny; ang += (float)ph_range(&r, -0.1, 0.1);
            }
        }
        for (size_t k = 0; k < N; k++) { R[k] = ph_lerpf(R[k], 0.2f, hair[k]); G[k] = ph_lerpf(G[k], 0.14f, hair[k]); B[k] = ph_lerpf(B[k], 0.1f, hair[k]); }
    }
    float blur = (float)ph_range(&r, 0.4, 0.8) * pxs, noise = (float)ph_range(&r, 0.004, 0.018);
    ph_finish(chw, W, blur, noise, r.key ^ 0xde7aULL, 0, sc);

    int ncol = 0;
    for (int c = 0; c < NCOL; c++) {
        share[c] = nl ? (float)counts[c] / (float)nl : 0.0f;
        ncol += share[c] >= 0.08f;
    }
    float bwf = nl ? (float)nbw / (float)nl : 0.0f;
    float df = (float)(shp.diameter / W);
    int truth = (shp.asymmetry >= ASYM_T) + (shp.irregularity >= IRREG_T) + (ncol >= 3) + (bwf >= 0.06f) + (df >= DIAM_T);
    prm[P_ASYM] = (float)shp.asymmetry;
    prm[P_IRREG] = (float)shp.irregularity;
    prm[P_NCOL] = (float)ncol;
    prm[P_BW] = bwf >= 0.06f ? 1.0f : 0.0f;
    prm[P_BW_FRAC] = bwf;
    prm[P_DIAM] = df;
    prm[P_NCRIT] = (float)truth;
    prm[P_SKIN] = tone;
    prm[P_HAIRS] = (float)nh;
    prm[P_BLUR] = blur / pxs;
    prm[P_NOISE] = noise;
}

const ph_gen_desc ph_gen_derm = {"derm", 2, class_names, P_COUNT, param_names, generate};
