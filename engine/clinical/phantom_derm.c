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

enum { P_ASYM, P_IRREG, P_NCOL, P_BW, P_BW_FRAC, P_DIAM, P_NCRIT, P_SKIN, P_HAIRS, P_BLUR, P_NOISE, P_COUNT };
static const char *const param_names[P_COUNT] = {
    "asymmetry",     "border_irregularity", "n_colours", "blue_white", "blue_white_fraction",
    "diameter_frac", "n_criteria",          "skin_tone", "n_hairs",    "blur_sigma",
    "noise_sd"};
static const char *const class_names[2] = {"nevus", "melanoma"};

/* thresholds of the ABCD items (shared with oracle_derm.c through phantom.h would be neater,
 * but the oracle must stand on its own: keep these equal to the oracle's) */
#define ASYM_T 0.06f
#define IRREG_T 0.04f
#define DIAM_T 0.4f

enum { C_LB, C_DB, C_BK, C_RD, C_BG, C_WH, NCOL };
static const float palette[NCOL][3] = {{0.70f, 0.48f, 0.32f}, {0.42f, 0.25f, 0.15f}, {0.16f, 0.11f, 0.10f},
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

enum { CA, CB, CC, CD, CE }; /* ABCD criteria: asymmetry, border, colours, structure (blue-white), diameter */

/* One image's state between the steps of generate(). */
typedef struct derm {
    ph_rng r;
    int W, cls;
    size_t N;
    float px, pxs;
    int crit[5];
    float cx, cy;                         /* lesion centre */
    float *mask;                          /* coverage of the outline */
    ph_shape shp;                         /* its shape, measured as the oracle measures */
    int ramp0, ramp1, red, bw, streaks;   /* colours */
    float *pig, *blot, *tex, *fine, *net; /* pigment and noise fields */
    float R0m;
    int nl;                        /* lesion pixels */
    float cuts[4];                 /* pigment quantiles between ramp colours */
    float red_cut, veil_r, vx, vy; /* overlays */
    float tone, skin[3], vig_r;
    int vignette;
    int counts[NCOL], nbw; /* lesion pixels per colour, blue-white ones */
} derm;

/* which ABCD criteria are present: melanoma >= 3 of 5, nevus <= 1 */
static void draw_criteria(derm *d) {
    int ncrit;
    do {
        ncrit = 0;
        for (int k = 0; k < 5; k++) {
            double p = d->cls ? (k < 2 ? 0.85 : 0.6) : (k == 4 ? 0.15 : (k == 3 ? 0.02 : 0.05));
            d->crit[k] = ph_unif(&d->r) < p;
            ncrit += d->crit[k];
        }
    } while (d->cls ? ncrit < 3 : ncrit > 1);
}

/* The outline r(theta): low harmonics for asymmetry, high ones for border irregularity, drawn
 * until the three shape criteria hold with a margin (else the best of 16 tries); its mask and
 * measured shape. */
static void draw_outline(derm *d, float *rt) {
    ph_rng *r = &d->r;
    const int *crit = d->crit;
    float best_rt[NTH], best_score = -1e9f;
    for (int tries = 0; tries < 16; tries++) {
        float diam = crit[CE] ? (float)ph_range(r, 0.44, 0.58) : (float)ph_range(r, 0.2, 0.33);
        float a1 = 0, a2 = (float)ph_range(r, 0.0, 0.14), a3 = 0, p1 = (float)ph_range(r, 0, 6.3),
              p2 = (float)ph_range(r, 0, 6.3), p3 = (float)ph_range(r, 0, 6.3);
        if (crit[CA]) {
            a1 = (float)ph_range(r, 0.15, 0.28);
            a3 = (float)ph_range(r, 0.1, 0.2);
            a2 += 0.06f;
        } else {
            a1 = (float)ph_range(r, 0.0, 0.03);
            a3 = (float)ph_range(r, 0.0, 0.015);
        }
        float hb[16], hp[16],
            irr = crit[CB] ? (float)ph_range(r, 0.06, 0.11) : (float)ph_range(r, 0.0, 0.008);
        double e = 0.0;
        for (int k = 4; k < 16; k++) {
            hb[k] = (float)(ph_unif(r) + 0.2) / powf((float)k, 0.7f);
            hp[k] = (float)ph_range(r, 0, 6.3);
            e += 0.5 * hb[k] * hb[k];
        }
        float sc_h = e > 0 ? irr / (float)sqrt(e) : 0.0f;
        float R0 = 0.5f * diam;
        /* r(theta) by rotating each harmonic's phasor one step per sample (no cos per term) */
        float amp[16] = {0, a1, a2, a3}, ph0[16] = {0, p1, p2, p3};
        for (int h = 4; h < 16; h++) {
            amp[h] = sc_h * hb[h];
            ph0[h] = hp[h];
        }
        for (int k = 0; k < NTH; k++) rt[k] = 1.0f;
        for (int h = 1; h < 16; h++) {
            double a0 = -PH_PI * h + ph0[h], dd = 2.0 * PH_PI * h / NTH;
            double cr = cos(a0), ci = sin(a0), dr = cos(dd), di = sin(dd);
            for (int k = 0; k < NTH; k++) {
                rt[k] += amp[h] * (float)cr;
                double t = cr * dr - ci * di;
                ci = cr * di + ci * dr;
                cr = t;
            }
        }
        for (int k = 0; k < NTH; k++) rt[k] *= R0;
        render_mask(d->mask, d->W, rt, d->cx, d->cy, d->cls ? 0.01f : 0.02f);
        ph_shape_measure(d->mask, d->W, d->W, &d->shp);
        /* margins (in threshold units) of the three shape criteria: keep the best outline */
        float df = (float)(d->shp.diameter / d->W), av = (float)d->shp.asymmetry / ASYM_T,
              bv = (float)d->shp.irregularity / IRREG_T;
        float mA = crit[CA] ? av - 1.3f : 0.7f - av, mB = crit[CB] ? bv - 1.3f : 0.7f - bv;
        float mE = crit[CE] ? df / DIAM_T - 1.1f : 0.9f - df / DIAM_T;
        float score = fminf(mA, fminf(mB, mE));
        if (score > best_score) {
            best_score = score;
            memcpy(best_rt, rt, NTH * sizeof *rt);
        }
        if (score >= 0.0f) break;
    }
    if (memcmp(best_rt, rt, NTH * sizeof *rt) != 0) {
        memcpy(rt, best_rt, NTH * sizeof *rt);
        render_mask(d->mask, d->W, rt, d->cx, d->cy, d->cls ? 0.01f : 0.02f);
        ph_shape_measure(d->mask, d->W, d->W, &d->shp);
    }
}

/* colours: a consecutive ramp of browns, optionally red and the blue-white veil */
static void draw_colours(derm *d) {
    ph_rng *r = &d->r;
    d->red = 0;
    d->bw = d->crit[CD];
    if (d->crit[CC]) {
        int opt = ph_int(r, 0, 2);
        d->ramp0 = opt == 2 ? C_DB : C_LB;
        d->ramp1 = opt == 1 ? C_DB : C_BK;
        d->red = ph_unif(r) < 0.4;
        if (d->ramp1 - d->ramp0 + 1 + d->red + (d->bw ? 1 : 0) < 3) d->red = 1;
        if (d->ramp1 - d->ramp0 + 1 + d->red + (d->bw ? 1 : 0) < 3) d->ramp0 = C_LB, d->ramp1 = C_BK;
    } else {
        int opt = ph_int(r, 0, 2);
        d->ramp0 = opt == 1 ? C_DB : C_LB;
        d->ramp1 = opt == 0 ? C_LB : C_DB;
        if (d->bw && d->ramp1 > d->ramp0) d->ramp1 = d->ramp0; /* keep <= 2 colours with the veil */
    }
    d->streaks = d->bw && d->crit[CC]; /* white streaks count as a colour */
}

/* the noise fields and the pigment field (central darkening, off-centre when asymmetric, plus
 * blotches); counts the lesion's pixels */
static void draw_pigment(derm *d, ph_scratch *sc) {
    ph_rng *r = &d->r;
    int W = d->W;
    size_t N = d->N;
    d->pig = ph_salloc(sc, N), d->blot = ph_salloc(sc, N), d->tex = ph_salloc(sc, N),
    d->fine = ph_salloc(sc, N);
    d->net = ph_salloc(sc, N);
    ph_fbm(d->net, W, W, r, 9.0f, 2, 0.5f, 1.0f, sc);
    ph_fbm(d->blot, W, W, r, 5.0f, 3, 0.55f, 1.0f, sc);
    ph_fbm(d->tex, W, W, r, 4.0f, 3, 0.5f, 1.0f, sc);
    ph_fbm(d->fine, W, W, r, 22.0f, 2, 0.5f, 3.0f, sc);
    float offx = d->crit[CA] ? (float)ph_range(r, -0.3, 0.3) : 0.0f,
          offy = d->crit[CA] ? (float)ph_range(r, -0.3, 0.3) : 0.0f;
    d->R0m = (float)(d->shp.mean_radius / W);
    d->nl = 0;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            size_t k = (size_t)j * W + i;
            float x = ((float)i + 0.5f) * d->px - d->cx - offx * d->R0m,
                  y = ((float)j + 0.5f) * d->px - d->cy - offy * d->R0m;
            d->pig[k] = 1.0f - sqrtf(x * x + y * y) / d->R0m + 0.55f * d->blot[k];
            if (d->mask[k] > 0.5f) d->nl++;
        }
}

/* quantile cuts of the pigment over the lesion for the ramp colours, the red patches' cut of a
 * second noise field, the veil as an off-centre blob; vals: N floats of scratch */
static void draw_cuts_and_overlays(derm *d, float *vals) {
    ph_rng *r = &d->r;
    size_t N = d->N;
    int nramp = d->ramp1 - d->ramp0 + 1;
    int nv = 0;
    for (size_t k = 0; k < N; k++)
        if (d->mask[k] > 0.5f) vals[nv++] = d->pig[k];
    for (int t = 0; t < 4; t++) d->cuts[t] = 0;
    if (nramp > 1) {
        float acc = 0.0f, fr[3];
        for (int t = 0; t < nramp; t++) {
            fr[t] = (float)ph_range(r, 0.6, 1.0);
            acc += fr[t];
        }
        float c = 0.0f;
        for (int t = 0; t < nramp - 1; t++) {
            c += fr[t] / acc;
            d->cuts[t] = ph_quantile(vals, nv, c, -3.0f, 3.0f);
        }
    }
    d->red_cut = 2.0f, d->veil_r = 0.0f, d->vx = 0, d->vy = 0;
    if (d->red) {
        int n = 0;
        for (size_t k = 0; k < N; k++)
            if (d->mask[k] > 0.5f) vals[n++] = d->tex[k];
        d->red_cut = ph_quantile(vals, n, 1.0f - (float)ph_range(r, 0.16, 0.26), -1.0f, 1.0f);
    }
    if (d->bw) {
        float a = (float)ph_range(r, 0, 6.3);
        d->vx = d->cx + 0.35f * d->R0m * cosf(a);
        d->vy = d->cy + 0.35f * d->R0m * sinf(a);
        d->veil_r = d->R0m * (float)ph_range(r, 0.42, 0.55);
    }
}

static void draw_skin(derm *d) {
    ph_rng *r = &d->r;
    d->tone = (float)ph_range(r, 0.0, 0.6);
    d->skin[0] = 0.94f - 0.16f * d->tone;
    d->skin[1] = 0.78f - 0.18f * d->tone;
    d->skin[2] = 0.70f - 0.2f * d->tone;
    d->skin[0] += (float)ph_range(r, -0.02, 0.02);
    d->skin[1] += (float)ph_range(r, -0.02, 0.02);
    d->vignette = ph_unif(r) < 0.3;
    d->vig_r = (float)ph_range(r, 0.56, 0.68);
}

/* Every pixel: the lesion's colour (ramp, red, veil, network) over the skin; counts the lesion
 * pixels of each colour. */
static void render(derm *d, float *chw) {
    int W = d->W, nramp = d->ramp1 - d->ramp0 + 1;
    size_t N = d->N;
    float px = d->px;
    const float *pig = d->pig, *tex = d->tex, *blot = d->blot, *fine = d->fine, *net = d->net,
                *mask = d->mask;
    float *R = chw, *G = chw + N, *B = chw + 2 * N;
    for (int c = 0; c < NCOL; c++) d->counts[c] = 0;
    d->nbw = 0;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            size_t k = (size_t)j * W + i;
            float x = ((float)i + 0.5f) * px, y = ((float)j + 0.5f) * px;
            float col[3];
            /* lesion colour: the ramp by quantiles with a soft band between neighbours */
            int ci = d->ramp0;
            float w = 0.0f;
            for (int t = 0; t < nramp - 1; t++)
                if (pig[k] > d->cuts[t]) ci = d->ramp0 + t + 1;
            int cj = ci;
            if (ci > d->ramp0) {
                float dd = pig[k] - d->cuts[ci - d->ramp0 - 1];
                if (dd < 0.1f) {
                    cj = ci - 1;
                    w = 0.5f - dd * 5.0f;
                }
            }
            for (int c = 0; c < 3; c++) col[c] = palette[ci][c] * (1.0f - w) + palette[cj][c] * w;
            int cls_px = ci;
            if (d->red && tex[k] > d->red_cut) {
                float a = ph_smoothstep(d->red_cut, d->red_cut + 0.08f, tex[k]);
                for (int c = 0; c < 3; c++) col[c] = ph_lerpf(col[c], palette[C_RD][c], a);
                if (a > 0.5f) cls_px = C_RD;
            }
            if (d->bw) {
                float dx = x - d->vx, dy = y - d->vy,
                      dd = sqrtf(dx * dx + dy * dy) / d->veil_r + 0.25f * blot[k] + 0.3f * tex[k];
                float a = 1.0f - ph_smoothstep(0.85f, 1.05f, dd);
                if (a > 0.0f) {
                    int white = d->streaks && fine[k] > 0.45f;
                    const float *vc = palette[white ? C_WH : C_BG];
                    for (int c = 0; c < 3; c++) col[c] = ph_lerpf(col[c], vc[c], 0.9f * a);
                    if (a > 0.5f) cls_px = white ? C_WH : C_BG;
                }
            }
            /* pigment network: a faint darker mesh */
            float mesh = 1.0f - fabsf(net[k]);
            for (int c = 0; c < 3; c++)
                col[c] *= (1.0f + 0.06f * tex[k]) * (1.0f - 0.22f * mesh * mesh * mesh);
            float m = mask[k];
            if (m > 0.5f) {
                d->counts[cls_px]++;
                if (cls_px == C_BG || cls_px == C_WH) d->nbw++;
            }
            /* skin: tone, blotchy erythema, fine skin lines, uneven light */
            float light = 1.0f - 0.08f * ((x - 0.5f) + (y - 0.5f)) + 0.03f * tex[k];
            float s0 = d->skin[0] * light * (1.0f + 0.02f * blot[k]) + 0.015f * fine[k];
            float s1 = d->skin[1] * light * (1.0f - 0.025f * blot[k]) + 0.015f * fine[k];
            float s2 = d->skin[2] * light * (1.0f - 0.02f * blot[k]) + 0.015f * fine[k];
            float vg = 1.0f;
            if (d->vignette) {
                float dx = x - 0.5f, dy = y - 0.5f;
                vg = ph_clampf(0.5f + (d->vig_r - sqrtf(dx * dx + dy * dy)) / (2.0f * px), 0.0f, 1.0f);
            }
            R[k] = (s0 * (1 - m) + col[0] * m) * vg;
            G[k] = (s1 * (1 - m) + col[1] * m) * vg;
            B[k] = (s2 * (1 - m) + col[2] * m) * vg;
        }
}

/* hairs: a few thin dark curves (drawn into the pigment field's memory); returns their number */
static int draw_hairs(derm *d, float *chw) {
    ph_rng *r = &d->r;
    int W = d->W;
    size_t N = d->N;
    float *R = chw, *G = chw + N, *B = chw + 2 * N;
    int nh = ph_unif(r) < 0.15 ? ph_int(r, 1, 2) : 0;
    if (nh) {
        float *hair = d->pig;
        for (size_t k = 0; k < N; k++) hair[k] = 0.0f;
        for (int h = 0; h < nh; h++) {
            float x = (float)ph_unif(r), y = ph_unif(r) < 0.5 ? 0.0f : 1.0f,
                  ang = (float)ph_range(r, 0.3, 2.8) * (y > 0.5f ? -1.0f : 1.0f);
            for (int k = 0; k < 30; k++) {
                float nx = x + 0.04f * cosf(ang), ny = y + 0.04f * sinf(ang);
                ph_stamp_segment_max(hair, W, W, x * W, y * W, nx * W, ny * W, 0.3f * d->pxs, 0.3f * d->pxs,
                                     0.8f);
                x = nx;
                y = ny;
                ang += (float)ph_range(r, -0.1, 0.1);
            }
        }
        for (size_t k = 0; k < N; k++) {
            R[k] = ph_lerpf(R[k], 0.2f, hair[k]);
            G[k] = ph_lerpf(G[k], 0.14f, hair[k]);
            B[k] = ph_lerpf(B[k], 0.1f, hair[k]);
        }
    }
    return nh;
}

/* One image: criteria, outline, colours, pigment, cuts and overlays, skin, the pixel pass,
 * hairs, the camera (blur, noise), then the ground truth measured as the oracle would. The steps
 * draw from one stream in this order (a contract: images must not change). */
static void generate(int W, uint64_t seed, uint64_t index, int cls, float *chw, float *prm, ph_scratch *sc) {
    derm d;
    memset(&d, 0, sizeof d);
    ph_rng_init(&d.r, seed, index, 0xD0003ULL + (uint64_t)cls);
    d.W = W;
    d.cls = cls;
    d.N = (size_t)W * (size_t)W;
    d.px = 1.0f / (float)W;
    d.pxs = (float)W / 64.0f;
    draw_criteria(&d);
    d.cx = 0.5f + (float)ph_range(&d.r, -0.04, 0.04);
    d.cy = 0.5f + (float)ph_range(&d.r, -0.04, 0.04);
    d.mask = ph_salloc(sc, d.N);
    float rt[NTH];
    draw_outline(&d, rt);
    draw_colours(&d);
    draw_pigment(&d, sc);
    draw_cuts_and_overlays(&d, ph_salloc(sc, d.N));
    draw_skin(&d);
    render(&d, chw);
    int nh = draw_hairs(&d, chw);
    float blur = (float)ph_range(&d.r, 0.4, 0.8) * d.pxs, noise = (float)ph_range(&d.r, 0.004, 0.018);
    ph_finish(chw, W, blur, noise, d.r.key ^ 0xde7aULL, 0, sc);

    int ncol = 0;
    for (int c = 0; c < NCOL; c++) ncol += (d.nl ? (float)d.counts[c] / (float)d.nl : 0.0f) >= 0.08f;
    float bwf = d.nl ? (float)d.nbw / (float)d.nl : 0.0f;
    float df = (float)(d.shp.diameter / W);
    int truth = (d.shp.asymmetry >= ASYM_T) + (d.shp.irregularity >= IRREG_T) + (ncol >= 3) + (bwf >= 0.06f) +
        (df >= DIAM_T);
    prm[P_ASYM] = (float)d.shp.asymmetry;
    prm[P_IRREG] = (float)d.shp.irregularity;
    prm[P_NCOL] = (float)ncol;
    prm[P_BW] = bwf >= 0.06f ? 1.0f : 0.0f;
    prm[P_BW_FRAC] = bwf;
    prm[P_DIAM] = df;
    prm[P_NCRIT] = (float)truth;
    prm[P_SKIN] = d.tone;
    prm[P_HAIRS] = (float)nh;
    prm[P_BLUR] = blur / d.pxs;
    prm[P_NOISE] = noise;
}

const ph_gen_desc ph_gen_derm = {"derm", 2, class_names, P_COUNT, param_names, generate};
