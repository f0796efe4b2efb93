/* phantom_histo.c: procedural H&E histopathology fields of breast tissue.
 *
 * Rendered in stain space: each pixel holds a haematoxylin and an eosin concentration, and the
 * colour follows Beer-Lambert, I = white * exp(-(cH * h + cE * e)) with per-image jittered stain
 * vectors h, e, so colours (pink stroma, purple nuclei, white lumens, pale blue mucin) and their
 * variation are those of real slides.
 *  - benign: round glands (white lumen, pale epithelium, regular basal nuclei evenly spaced on
 *    a ring) in fibrous pink stroma with a few spindle nuclei;
 *  - ductal carcinoma: sheets and nests of densely packed, pleomorphic (size CV >= 0.3),
 *    hyperchromatic nuclei, no lumens (lost architecture);
 *  - mucinous carcinoma: pale blue-grey mucin pools (>= 30 % of the field) with small clusters
 *    of tumour cells floating in them.
 * Ground truth: nuclear density = nuclear area fraction of the clean coverage, size CV = CV of
 * the drawn nuclei's equivalent radii, mucin fraction = share of pixels in mucin. */
#include "clinical/clinical.h"

enum {
    P_DENSITY,
    P_SIZE_CV,
    P_MUCIN,
    P_N_GLANDS,
    P_LUMEN,
    P_NUC_R,
    P_STAIN_H,
    P_STAIN_E,
    P_BLUR,
    P_NOISE,
    P_COUNT
};
static const char *const param_names[P_COUNT] = {"nuclear_density", "nuclear_size_cv", "mucin_fraction",
                                                 "n_glands",        "lumen_fraction",  "mean_nuclear_radius",
                                                 "stain_h",         "stain_e",         "blur_sigma",
                                                 "noise_sd"};
static const char *const class_names[3] = {"benign", "ductal_carcinoma", "mucinous_carcinoma"};

#define MAXNUC 400
typedef struct nucs {
    int n;
    float x[MAXNUC], y[MAXNUC], r[MAXNUC];
} nucs;

static int fits(const nucs *ns, float x, float y, float r, float overlap) {
    for (int k = 0; k < ns->n; k++) {
        float dx = x - ns->x[k], dy = y - ns->y[k], lim = overlap * (r + ns->r[k]);
        if (dx * dx + dy * dy < lim * lim) return 0;
    }
    return 1;
}
static void add(nucs *ns, float x, float y, float r) {
    if (ns->n >= MAXNUC) return;
    ns->x[ns->n] = x;
    ns->y[ns->n] = y;
    ns->r[ns->n] = r;
    ns->n++;
}
/* lognormal radius with the given mean and coefficient of variation */
static float draw_r(ph_rng *r, float mean, float cv) {
    float s2 = logf(1.0f + cv * cv);
    return mean * expf(sqrtf(s2) * (float)ph_normal(r) - 0.5f * s2);
}

/* One slide's state between the steps of generate(): haematoxylin and eosin concentration
 * planes, noise fields, nuclei, and what the parameters report. */
typedef struct slide {
    ph_rng r;
    int W;
    size_t N;
    float px;
    float *cH, *cE, *fib, *blob, *ncov, *nlvl, *region;
    nucs ns;
    int n_glands, mucin;
    double lumen_px, mucin_px;
    float mean_r;
} slide;

/* benign glands: lumen, epithelium, a ring of regular basal nuclei, a few stromal ones */
static void draw_glands(slide *sl) {
    ph_rng *r = &sl->r;
    int W = sl->W;
    float px = sl->px, *cE = sl->cE, *cH = sl->cH;
    const float *blob = sl->blob;
    float gx[8], gy[8], gr[8], gl[8];
    int want = ph_int(r, 2, 5), n_glands = 0;
    sl->mean_r = (float)ph_range(r, 0.021, 0.026);
    float mean_r = sl->mean_r, cv = (float)ph_range(r, 0.04, 0.1);
    for (int t = 0; t < 200 && n_glands < want; t++) {
        float R = (float)ph_range(r, 0.13, 0.2), x = (float)ph_range(r, 0.08, 0.92),
              y = (float)ph_range(r, 0.08, 0.92);
        float Rl = R - (float)ph_range(r, 0.055, 0.07);
        if (x - Rl < 0.05f || y - Rl < 0.05f || x + Rl > 0.95f || y + Rl > 0.95f) continue;
        int ok = 1;
        for (int g = 0; g < n_glands && ok; g++) {
            float dx = x - gx[g], dy = y - gy[g];
            if (sqrtf(dx * dx + dy * dy) < R + gr[g] + 0.025f) ok = 0;
        }
        if (!ok) continue;
        gx[n_glands] = x;
        gy[n_glands] = y;
        gr[n_glands] = R;
        gl[n_glands] = Rl;
        n_glands++;
    }
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            size_t k = (size_t)j * W + i;
            float x = ((float)i + 0.5f) * px, y = ((float)j + 0.5f) * px;
            for (int g = 0; g < n_glands; g++) {
                float dx = x - gx[g], dy = y - gy[g], d = sqrtf(dx * dx + dy * dy) * (1.0f + 0.04f * blob[k]);
                float epi = ph_clampf(0.5f + (gr[g] - d) / px, 0.0f, 1.0f);
                float lum = ph_clampf(0.5f + (gl[g] - d) / px, 0.0f, 1.0f);
                if (epi > 0.0f) {
                    cE[k] = ph_lerpf(cE[k], 0.3f, epi);
                    cH[k] = ph_lerpf(cH[k], 0.26f, epi);
                    cE[k] = ph_lerpf(cE[k], 0.04f + 0.02f * blob[k], lum);
                    cH[k] = ph_lerpf(cH[k], 0.015f, lum);
                    if (lum > 0.5f) sl->lumen_px += 1.0;
                }
            }
        }
    for (int g = 0; g < n_glands; g++) {
        float rr = gr[g] - 0.026f, circ = 2.0f * (float)PH_PI * rr;
        int nn = (int)(circ / (2.7f * mean_r));
        float a0 = (float)ph_range(r, 0, 6.3);
        for (int t = 0; t < nn; t++) {
            float a = a0 + 2.0f * (float)PH_PI * (float)t / (float)nn + 0.05f * (float)ph_normal(r);
            add(&sl->ns, gx[g] + rr * cosf(a), gy[g] + rr * sinf(a), draw_r(r, mean_r, cv));
        }
    }
    /* a few stromal spindle nuclei well away from the glands */
    int ns0 = sl->ns.n, want_s = ph_int(r, 3, 8);
    for (int t = 0; t < 100 && sl->ns.n - ns0 < want_s; t++) {
        float x = (float)ph_range(r, 0.03, 0.97), y = (float)ph_range(r, 0.03, 0.97);
        int ok = 1;
        for (int g = 0; g < n_glands && ok; g++) {
            float dx = x - gx[g], dy = y - gy[g];
            if (sqrtf(dx * dx + dy * dy) < gr[g] + 0.04f) ok = 0;
        }
        if (ok && fits(&sl->ns, x, y, mean_r, 1.3f)) add(&sl->ns, x, y, draw_r(r, mean_r, cv));
    }
    sl->n_glands = n_glands;
}

/* ductal: nests over most of the field, packed with pleomorphic nuclei */
static void draw_ductal(slide *sl) {
    ph_rng *r = &sl->r;
    int W = sl->W;
    size_t N = sl->N;
    float *cE = sl->cE, *cH = sl->cH, *region = sl->region;
    const float *blob = sl->blob, *fib = sl->fib;
    float cover = (float)ph_range(r, 0.7, 0.9);
    float *v = region;
    for (size_t k = 0; k < N; k++) v[k] = blob[k];
    float cut = ph_quantile(v, (int)N, 1.0f - cover, -1.0f, 1.0f);
    for (size_t k = 0; k < N; k++) {
        float nest = ph_smoothstep(cut - 0.03f, cut + 0.03f, blob[k]);
        region[k] = nest;
        cE[k] = ph_lerpf(cE[k], 0.3f + 0.05f * fib[k], nest);
        cH[k] = ph_lerpf(cH[k], 0.24f, nest);
    }
    sl->mean_r = (float)ph_range(r, 0.024, 0.03);
    float mean_r = sl->mean_r, cv = (float)ph_range(r, 0.4, 0.55);
    float target = (float)ph_range(r, 0.3, 0.42);
    double area = 0.0;
    for (int t = 0; t < 4000 && area < target && sl->ns.n < MAXNUC; t++) {
        float x = (float)ph_unif(r), y = (float)ph_unif(r);
        int i = (int)(x * W), j = (int)(y * W);
        if (region[(size_t)j * W + i] < 0.5f) continue;
        float rr = ph_clampf(draw_r(r, mean_r, cv), 0.6f * mean_r, 2.4f * mean_r);
        if (!fits(&sl->ns, x, y, rr, 0.9f)) continue;
        add(&sl->ns, x, y, rr);
        area += PH_PI * rr * rr;
    }
}

/* mucinous: pools of pale mucin with floating clusters of tumour cells */
static void draw_mucinous(slide *sl) {
    ph_rng *r = &sl->r;
    int W = sl->W;
    size_t N = sl->N;
    float *cE = sl->cE, *cH = sl->cH, *region = sl->region;
    const float *blob = sl->blob, *fib = sl->fib;
    float frac = (float)ph_range(r, 0.38, 0.65);
    for (size_t k = 0; k < N; k++) region[k] = blob[k];
    float cut = ph_quantile(region, (int)N, 1.0f - frac, -1.0f, 1.0f);
    for (size_t k = 0; k < N; k++) {
        float pool = ph_smoothstep(cut - 0.02f, cut + 0.02f, blob[k]);
        region[k] = pool;
        cE[k] = ph_lerpf(cE[k], 0.05f + 0.03f * fib[k], pool);
        cH[k] = ph_lerpf(cH[k], 0.16f + 0.06f * fib[k], pool);
    }
    sl->mean_r = (float)ph_range(r, 0.021, 0.027);
    float mean_r = sl->mean_r, cv = (float)ph_range(r, 0.08, 0.16);
    int nclus = ph_int(r, 3, 7);
    for (int c = 0; c < nclus; c++) {
        float x = 0, y = 0;
        int found = 0;
        for (int t = 0; t < 60 && !found; t++) {
            x = (float)ph_range(r, 0.08, 0.92);
            y = (float)ph_range(r, 0.08, 0.92);
            found = region[(size_t)(int)(y * W) * W + (size_t)(int)(x * W)] > 0.9f;
        }
        if (!found) continue;
        float cr = (float)ph_range(r, 0.05, 0.08);
        ph_stamp_ellipse_blend(cE, W, W, x * W, y * W, cr * W, cr * W * (float)ph_range(r, 0.7, 1.0),
                               (float)ph_range(r, 0, 3.1), 0.3f, 1.0f);
        ph_stamp_ellipse_blend(cH, W, W, x * W, y * W, cr * W, cr * W * 0.85f, 0.0f, 0.24f, 1.0f);
        int want = ph_int(r, 5, 12);
        for (int t = 0, got = 0; t < 80 && got < want; t++) {
            float a = (float)ph_range(r, 0, 6.3), d = cr * 0.8f * sqrtf((float)ph_unif(r));
            float nx = x + d * cosf(a), ny = y + d * sinf(a),
                  rr = ph_clampf(draw_r(r, mean_r, cv), 0.5f * mean_r, 2.0f * mean_r);
            if (fits(&sl->ns, nx, ny, rr, 1.2f)) {
                add(&sl->ns, nx, ny, rr);
                got++;
            }
        }
    }
    sl->mucin = 1;
}

/* nuclei (hyperchromatic for carcinoma, a little chromatin texture) into the haematoxylin and
 * eosin planes; their radii's sum and sum of squares, the nuclear density */
static void draw_nuclei(slide *sl, int cls, double *sr, double *sr2, double *dens) {
    ph_rng *r = &sl->r;
    int W = sl->W;
    const nucs *ns = &sl->ns;
    for (int k = 0; k < ns->n; k++) {
        float rr = ns->r[k], asp = cls == 0 ? (float)ph_range(r, 1.0, 1.25) : (float)ph_range(r, 1.0, 1.45);
        float lvl = cls == 1 ? (float)ph_range(r, 1.15, 1.5) : (float)ph_range(r, 0.95, 1.15);
        float ang = (float)ph_range(r, 0, 3.14159);
        /* equal-area ellipse: radii r*sqrt(asp), r/sqrt(asp) */
        float a = rr * sqrtf(asp) * W, b = rr / sqrtf(asp) * W;
        ph_stamp_ellipse_max(sl->ncov, W, W, ns->x[k] * W, ns->y[k] * W, a, b, ang, 1.0f);
        /* the level plane is stamped 1 px larger so the rim carries the full level */
        ph_stamp_ellipse_blend(sl->nlvl, W, W, ns->x[k] * W, ns->y[k] * W, a + 1.0f, b + 1.0f, ang, lvl,
                               1.0f);
        *sr += rr;
        *sr2 += (double)rr * rr;
    }
    double d = 0.0;
    for (size_t k = 0; k < sl->N; k++) {
        float c = sl->ncov[k];
        d += c;
        /* mucin: the pools less the floating clusters (cytoplasm raised the eosin) */
        if (sl->mucin && sl->region[k] > 0.5f && sl->cE[k] < 0.2f && c < 0.5f) sl->mucin_px += 1.0;
        sl->cH[k] = sl->cH[k] * (1.0f - c) + sl->nlvl[k] * (0.92f + 0.08f * sl->fib[k]) * c;
        sl->cE[k] *= 1.0f - 0.75f * c;
    }
    *dens = d;
}

/* stain vectors (Ruifrok's H and E, jittered per slide) and Beer-Lambert into chw; the stain
 * strengths */
static void stain(slide *sl, float *chw, float *kh_out, float *ke_out) {
    ph_rng *r = &sl->r;
    size_t N = sl->N;
    float h[3] = {0.65f, 0.70f, 0.29f}, e[3] = {0.07f, 0.99f, 0.11f};
    float kh = (float)ph_range(r, 0.8, 1.2), ke = (float)ph_range(r, 0.75, 1.2);
    for (int c = 0; c < 3; c++) {
        h[c] += (float)ph_range(r, -0.05, 0.05);
        e[c] += (float)ph_range(r, -0.04, 0.04);
    }
    float white = (float)ph_range(r, 0.92, 0.98);
    float *out[3] = {chw, chw + N, chw + 2 * N};
    for (size_t k = 0; k < N; k++) {
        float a = kh * sl->cH[k], b = ke * fmaxf(sl->cE[k], 0.0f);
        for (int c = 0; c < 3; c++) out[c][k] = white * expf(-(a * h[c] + b * e[c]) * 1.4f);
    }
    *kh_out = kh;
    *ke_out = ke;
}

/* One slide: stroma, the class's tissue (glands, ductal nests, mucin pools), nuclei, staining,
 * the camera. The steps draw from one stream in this order (a contract: images must not
 * change). */
static void generate(int W, uint64_t seed, uint64_t index, int cls, float *chw, float *prm, ph_scratch *sc) {
    slide sl;
    memset(&sl, 0, sizeof sl);
    ph_rng_init(&sl.r, seed, index, 0x40004ULL + (uint64_t)cls);
    const size_t N = (size_t)W * (size_t)W;
    const float pxs = (float)W / 64.0f;
    sl.W = W;
    sl.N = N;
    sl.px = 1.0f / (float)W;
    sl.cH = ph_salloc(sc, N), sl.cE = ph_salloc(sc, N), sl.fib = ph_salloc(sc, N), sl.blob = ph_salloc(sc, N);
    sl.ncov = ph_salloc(sc, N), sl.nlvl = ph_salloc(sc, N), sl.region = ph_salloc(sc, N);
    ph_fbm(sl.fib, W, W, &sl.r, 7.0f, 3, 0.55f, 3.5f, sc);
    ph_fbm(sl.blob, W, W, &sl.r, 3.0f, 3, 0.5f, 1.0f, sc);
    for (size_t k = 0; k < N; k++) {
        sl.cE[k] = 0.42f + 0.17f * sl.fib[k] + 0.05f * sl.blob[k]; /* fibrous stroma */
        sl.cH[k] = 0.07f + 0.03f * sl.blob[k];
        sl.ncov[k] = sl.nlvl[k] = sl.region[k] = 0.0f;
    }
    if (cls == 0) draw_glands(&sl);
    else if (cls == 1) draw_ductal(&sl);
    else draw_mucinous(&sl);
    double sr = 0, sr2 = 0, dens = 0.0;
    draw_nuclei(&sl, cls, &sr, &sr2, &dens);
    float kh, ke;
    stain(&sl, chw, &kh, &ke);
    float blur = (float)ph_range(&sl.r, 0.35, 0.7) * pxs, noise = (float)ph_range(&sl.r, 0.004, 0.015);
    ph_finish(chw, W, blur, noise, sl.r.key ^ 0x4e5ULL, 0, sc);

    int n = sl.ns.n;
    double mr = n ? sr / n : 0.0, var = n ? sr2 / n - mr * mr : 0.0;
    prm[P_DENSITY] = (float)(dens / (double)N);
    prm[P_SIZE_CV] = mr > 0 ? (float)(sqrt(fmax(var, 0.0)) / mr) : 0.0f;
    prm[P_MUCIN] = (float)(sl.mucin_px / (double)N);
    prm[P_N_GLANDS] = (float)sl.n_glands;
    prm[P_LUMEN] = (float)(sl.lumen_px / (double)N);
    prm[P_NUC_R] = (float)mr;
    prm[P_STAIN_H] = kh;
    prm[P_STAIN_E] = ke;
    prm[P_BLUR] = blur / pxs;
    prm[P_NOISE] = noise;
}

const ph_gen_desc ph_gen_histo = {"histo", 3, class_names, P_COUNT, param_names, generate};
