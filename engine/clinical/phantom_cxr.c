/* phantom_cxr.c: procedural PA chest radiographs (grey, written to all three planes).
 *
 * Anatomy in normalised coordinates: the patient's right lung is on the image left. Lungs are
 * bounded by the rib cage (lateral), the apex, the diaphragm domes and the mediastinum/heart
 * (medial). The heart is two half-ellipses joined at the midline (a larger share to the image
 * right), so its widest horizontal extent is exactly ctr x the thoracic width (the distance
 * between the lungs' lateral borders at their widest row). Brightness is attenuation: air dark,
 * soft tissue mid-grey, heart and bone bright. Pneumonia adds a hazy, patchy opacity inside one
 * lung zone. */
#include "clinical/clinical.h"

enum {
    P_CTR,
    P_THORAX_W,
    P_HEART_W,
    P_CONS_AREA,
    P_CONS_ZONE,
    P_CONS_CONTRAST,
    P_EXPOSURE,
    P_BLUR,
    P_NOISE,
    P_COUNT
};
static const char *const param_names[P_COUNT] = {"ctr",
                                                 "thorax_width",
                                                 "heart_width",
                                                 "consolidation_area",
                                                 "consolidation_zone",
                                                 "consolidation_contrast",
                                                 "exposure",
                                                 "blur_sigma",
                                                 "noise_sd"};
static const char *const class_names[3] = {"normal", "cardiomegaly", "pneumonia"};

typedef struct geo {
    float cx0, tw, y_apex, dome[2], kd[2], mw, a_l, a_r, b, y_h, knob_x, knob_y, knob_r;
} geo;

/* lung outer half-width at height y for side s (0 image-left, 1 image-right) */
static inline float lung_outer(const geo *g, int s, float y) {
    float t = (y - g->y_apex) / (g->dome[s] - g->y_apex);
    return g->tw * (0.38f + 0.62f * sqrtf(ph_clampf(t / 0.8f, 0.0f, 1.0f)));
}
static inline float diaphragm(const geo *g, int s, float ax) {
    float d = ax - 0.5f * g->tw;
    return g->dome[s] + g->kd[s] * d * d;
}
/* signed distance to the heart outline, positive outside (normalised units) */
static inline float heart_dist(const geo *g, float x, float y) {
    float a = x < g->cx0 ? g->a_l : g->a_r;
    /* the image-right (left-ventricular) half sits lower and is taller: the apex points down */
    float b = x < g->cx0 ? g->b : 1.15f * g->b, yc = x < g->cx0 ? g->y_h : g->y_h + 0.15f * g->b;
    float u = (x - g->cx0) / a, v = (y - yc) / b;
    float q = sqrtf(u * u + v * v), gr = sqrtf(u * u / (a * a) + v * v / (b * b));
    return gr < 1e-6f ? -fminf(a, b) : (q - 1.0f) * q / gr;
}
/* lung coverage (0..1) of a pixel centre on side s, px = pixel size, hd = heart distance */
static inline float lung_cov(const geo *g, float x, float y, float px, int s, float ax, float hd) {
    if (y < g->y_apex - px || ax > g->tw + px) return 0.0f;
    float d = lung_outer(g, s, y) - ax;
    d = ph_minf(d, ax - g->mw);
    d = ph_minf(d, y - g->y_apex);
    d = ph_minf(d, diaphragm(g, s, ax) - y);
    d = ph_minf(d, hd);
    if (s) {
        float kx = x - g->knob_x, ky = y - g->knob_y;
        d = ph_minf(d, sqrtf(kx * kx + ky * ky) - g->knob_r);
    }
    return ph_clampf(0.5f + d / px, 0.0f, 1.0f);
}

static float seg_dist(float x, float y, float x0, float y0, float x1, float y1) {
    float dx = x1 - x0, dy = y1 - y0, t = ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy);
    t = ph_clampf(t, 0.0f, 1.0f);
    float ex = x - x0 - t * dx, ey = y - y0 - t * dy;
    return sqrtf(ex * ex + ey * ey);
}

/* The anatomy: thorax, domes, mediastinum, heart (its width set by the class's cardiothoracic
 * ratio, returned) and aortic knob. */
static float draw_anatomy(ph_rng *r, int cls, geo *g) {
    g->cx0 = 0.5f + 0.012f * (float)ph_normal(r);
    g->tw = (float)ph_range(r, 0.31, 0.36);
    g->y_apex = (float)ph_range(r, 0.10, 0.15);
    g->dome[0] = (float)ph_range(r, 0.66, 0.73);
    g->dome[1] = g->dome[0] + (float)ph_range(r, 0.005, 0.04);
    for (int s = 0; s < 2; s++) g->kd[s] = (float)ph_range(r, 0.05, 0.085) / (0.25f * g->tw * g->tw);
    g->mw = (float)ph_range(r, 0.05, 0.065);
    float ctr;
    if (cls == 1) ctr = 0.53f + 0.07f * (float)(ph_unif(r) * ph_unif(r)); /* denser near 0.53 */
    else ctr = 0.47f - 0.09f * (float)(ph_unif(r) * ph_unif(r));          /* denser near 0.47 */
    float Hw = ctr * 2.0f * g->tw, rho = (float)ph_range(r, 0.30, 0.38);
    g->a_l = rho * Hw;
    g->a_r = (1.0f - rho) * Hw;
    g->b = (float)ph_range(r, 0.13, 0.17);
    g->y_h = g->dome[0] - (float)ph_range(r, 0.07, 0.10);
    g->knob_r = (float)ph_range(r, 0.022, 0.032);
    g->knob_x = g->cx0 + g->mw + 0.3f * g->knob_r;
    g->knob_y = g->y_apex + (float)ph_range(r, 0.15, 0.19);
    return ctr;
}

/* pneumonia: a hazy opacity kept inside one lung zone (centre, radii, contrast; zone 1..6) */
typedef struct opacity {
    float x, y, r, ry, con;
    int zone;
} opacity;

/* Zones are thirds of the lung's height from apex to costophrenic angle; placements are drawn
 * until the opacity (extent 1.25 radii) fits clear of the lung's borders with a half-peak area
 * of at least ~0.005 of the image. */
static void place_opacity(ph_rng *r, const geo *g, opacity *o) {
    int side = ph_int(r, 0, 1);
    float ytop = g->y_apex, ycp = diaphragm(g, side, g->tw);
    float hb = side ? 1.15f * g->b : g->b, hy = side ? g->y_h + 0.15f * g->b : g->y_h;
    float yc = 0, ax = 0, best[4] = {0, 0, 0, 0};
    for (int tries = 0; tries < 24; tries++) {
        int z = ph_int(r, 0, 2);
        float frac = z < 2 ? ((float)z + (float)ph_range(r, 0.3, 0.7)) / 3.0f
                           : (2.0f + (float)ph_range(r, 0.05, 0.3)) / 3.0f;
        yc = ytop + frac * (ycp - ytop);
        float r0 = (float)ph_range(r, 0.05, 0.085), ry0 = r0 * (float)ph_range(r, 1.0, 1.5);
        float y0 = yc - 1.25f * ry0, y1 = yc + 1.25f * ry0; /* rows the opacity may reach */
        float outer = lung_outer(g, side, y0), yh = ph_clampf(hy, y0, y1);
        float hd = (side ? g->a_r : g->a_l) * sqrtf(fmaxf(0.0f, 1.0f - (yh - hy) * (yh - hy) / (hb * hb)));
        float inner = fmaxf(g->mw, hd);
        if (side && y0 < g->knob_y + g->knob_r && y1 > g->knob_y - g->knob_r)
            inner = fmaxf(inner, g->knob_x - g->cx0 + g->knob_r);
        float span = outer - inner;
        o->r = fminf(r0, 0.33f * span);
        ax = inner + span * (z == 2 ? (float)ph_range(r, 0.5, 0.62) : (float)ph_range(r, 0.42, 0.58));
        o->ry = fminf(ry0, fminf(diaphragm(g, side, ax) - 0.02f - yc, yc - ytop - 0.03f) / 1.25f);
        if (o->r * o->ry > best[2] * best[3]) {
            best[0] = yc;
            best[1] = ax;
            best[2] = o->r;
            best[3] = o->ry;
        }
        if (o->r * o->ry >= 0.003f) break;
    }
    yc = best[0];
    ax = best[1];
    o->r = best[2];
    o->ry = best[3];
    int zt = (int)(3.0f * (yc - ytop) / (ycp - ytop));
    o->zone = 1 + side * 3 + (zt < 0 ? 0 : (zt > 2 ? 2 : zt));
    o->x = side ? g->cx0 + ax : g->cx0 - ax;
    o->y = yc;
    o->con = (float)ph_range(r, 0.2, 0.3);
}

/* bronchovascular markings into ves: tapered branches fanning out of each hilum */
static void draw_markings(ph_rng *r, const geo *g, float *ves, int W, float pxs) {
    for (int s = 0; s < 2; s++) {
        float sg = s ? 1.0f : -1.0f;
        float hx = g->cx0 + sg * (g->mw + 0.03f), hy = g->y_apex + 0.45f * (g->dome[s] - g->y_apex);
        int nb = ph_int(r, 5, 7);
        for (int b = 0; b < nb; b++) {
            float ang = (float)(-1.25 + 2.5 * ((double)b + ph_unif(r)) / nb); /* from up to down */
            float len = (float)ph_range(r, 0.10, 0.18);
            float ex = hx + sg * len * cosf(ang), ey = hy + len * sinf(ang);
            ph_stamp_segment_max(ves, W, W, hx * W, hy * W, ex * W, ey * W, 0.9f * pxs, 0.35f * pxs, 1.0f);
            float ang2 = ang + (float)ph_range(r, -0.6, 0.6), l2 = 0.5f * len;
            ph_stamp_segment_max(ves, W, W, ex * W, ey * W, (ex + sg * l2 * cosf(ang2)) * W,
                                 (ey + l2 * sinf(ang2)) * W, 0.4f * pxs, 0.2f * pxs, 0.7f);
        }
    }
}

/* what the pixel pass needs besides the anatomy: textures, markings, bone and lung levels */
typedef struct look {
    const float *tex, *tex2, *ves;
    float cl_y, rib_dy, rib_amp, lung_lvl;
    int bubble;
} look;

/* Attenuation of every pixel into base; the lung area and the opacity's half-peak area (in
 * pixels) for the parameters. */
static void render(const geo *g, const look *lk, int cls, const opacity *op, int W, float *base,
                   double *lung_area, double *cons_area) {
    const float px = 1.0f / (float)W;
    const float *tex = lk->tex, *tex2 = lk->tex2, *ves = lk->ves;
    double la = 0.0, ca = 0.0;
    for (int j = 0; j < W; j++) {
        float y = ((float)j + 0.5f) * px;
        for (int i = 0; i < W; i++) {
            float x = ((float)i + 0.5f) * px;
            size_t k = (size_t)j * (size_t)W + (size_t)i;
            int s = x < g->cx0 ? 0 : 1;
            float ax = fabsf(x - g->cx0), hd = heart_dist(g, x, y);
            float lc = lung_cov(g, x, y, px, s, ax, hd);
            /* body outline: neck widening into shoulders; air beyond */
            float bw = 0.12f + 0.48f * ph_smoothstep(0.0f, 0.2f, y);
            float body = ph_clampf(0.5f + (bw - ax) / px * 0.5f, 0.0f, 1.0f);
            float A = 0.52f - 0.12f * ph_smoothstep(g->tw, g->tw + 0.2f, ax) + 0.025f * tex[k];
            /* heart and abdomen: one soft-tissue density, so the heart merges into the diaphragm */
            float abd = ph_clampf(0.5f + (y - diaphragm(g, s, ax)) / px, 0.0f, 1.0f) *
                (1.0f - ph_smoothstep(g->tw, g->tw + 0.06f, ax));
            float hc = ph_clampf(0.5f - hd / px, 0.0f, 1.0f);
            float med = ph_clampf(0.5f + (g->mw - ax) / px, 0.0f, 1.0f) * ph_smoothstep(0.1f, 0.2f, y);
            A += 0.1f * ph_maxf(ph_maxf(abd, hc), med);
            if (s) {
                float kx = x - g->knob_x, ky = y - g->knob_y;
                A += 0.1f * ph_clampf(0.5f - (sqrtf(kx * kx + ky * ky) - g->knob_r) / px, 0.0f, 1.0f);
            }
            A *= body;
            float ll = lk->lung_lvl + 0.025f * tex2[k];
            ll += 0.06f * ves[k];
            A = A * (1.0f - lc) + ll * lc;
            /* bones: spine, ribs, clavicles */
            if (ax < 0.03f && y > 0.12f) A += (0.03f + 0.015f * cosf(y * 6.2832f / 0.045f)) * body;
            if (ax < 0.012f && y < g->y_apex + 0.16f) A -= 0.08f; /* trachea */
            if (y < diaphragm(g, s, ax) + 0.04f && ax > 0.02f && ax < g->tw + 0.05f) {
                float an = ax / g->tw;
                float u = (y - g->y_apex + 0.03f + 0.08f * an - 0.2f * an * an) / lk->rib_dy;
                float f = u - floorf(u);
                A += lk->rib_amp * ph_smoothstep(0.0f, 0.25f, f) * (1.0f - ph_smoothstep(0.45f, 0.7f, f));
            }
            if (y < lk->cl_y + 0.06f) {
                float sgn = x < g->cx0 ? -1.0f : 1.0f;
                float dcl = seg_dist(x, y, g->cx0 + sgn * 0.04f, lk->cl_y + 0.03f, g->cx0 + sgn * 0.3f,
                                     lk->cl_y - 0.025f);
                A += 0.09f * ph_clampf(0.5f + (0.013f - dcl) / px, 0.0f, 1.0f);
            }
            if (lk->bubble) {
                float bx = (x - (g->cx0 + 0.45f * g->tw)) / 0.05f, by = (y - (g->dome[1] + 0.055f)) / 0.028f;
                if (bx * bx + by * by < 1.0f) A -= 0.18f;
            }
            float o = 0.0f;
            if (cls == 2) {
                float dx = x - op->x, dy = y - op->y;
                dy *= op->r / op->ry;
                float d = sqrtf(dx * dx + dy * dy) / op->r * (1.0f + 0.2f * tex2[k]);
                o = op->con * (1.0f - ph_smoothstep(0.45f, 1.0f, d)) * (0.8f + 0.2f * tex[k]) * lc;
                A += o;
                if (o >= 0.5f * op->con * lc && lc > 0.5f) ca += 1.0;
            }
            la += lc;
            base[k] = A;
        }
    }
    *lung_area = la;
    *cons_area = ca;
}

/* The film: exposure curve, blur and noise drawn from r, clamped, copied to all three planes;
 * gives the exposure gain and blur and noise levels. */
static void expose(ph_rng *r, float *chw, int W, float pxs, ph_scratch *sc, float *gain_out, float *blur_out,
                   float *noise_out) {
    const size_t N = (size_t)W * (size_t)W;
    float *base = chw;
    float lo = (float)ph_range(r, -0.02, 0.04), gain = (float)ph_range(r, 0.9, 1.12);
    float gam = (float)ph_range(r, 0.85, 1.15);
    /* exposure curve through a table: powf per pixel is the dearest thing here */
    float lut[257];
    for (int t = 0; t <= 256; t++) lut[t] = powf((float)t / 256.0f, gam);
    for (size_t k = 0; k < N; k++) {
        float v = ph_clampf(lo + gain * base[k], 0.0f, 1.0f) * 256.0f;
        int t = (int)v;
        if (t > 255) t = 255;
        base[k] = lut[t] + (lut[t + 1] - lut[t]) * (v - (float)t);
    }
    float blur = (float)ph_range(r, 0.45, 0.85) * pxs, noise = (float)ph_range(r, 0.004, 0.02);
    ph_blur(base, W, W, blur, sc);
    ph_add_noise(base, (int)N, noise, r->key ^ 0x7e57ULL);
    for (size_t k = 0; k < N; k++) base[k] = ph_clampf(base[k], 0.0f, 1.0f);
    memcpy(chw + N, base, N * sizeof(float));
    memcpy(chw + 2 * N, base, N * sizeof(float));
    *gain_out = gain;
    *blur_out = blur;
    *noise_out = noise;
}

/* One image: anatomy, the finding, textures and markings, the pixel pass, the film. The steps
 * draw from one stream in this order (a contract: images must not change). */
static void generate(int W, uint64_t seed, uint64_t index, int cls, float *chw, float *prm, ph_scratch *sc) {
    ph_rng r;
    ph_rng_init(&r, seed, index, 0xC0001ULL + (uint64_t)cls);
    const float pxs = (float)W / 64.0f;
    const size_t N = (size_t)W * (size_t)W;
    geo g;
    float ctr = draw_anatomy(&r, cls, &g), Hw = ctr * 2.0f * g.tw;
    opacity op = {0, 0, 0, 0, 0, 0};
    if (cls == 2) place_opacity(&r, &g, &op);
    float *tex = ph_salloc(sc, N), *ves = ph_salloc(sc, N), *tex2 = ph_salloc(sc, N);
    ph_fbm(tex, W, W, &r, 4.0f, 3, 0.5f, 1.0f, sc);
    ph_fbm(tex2, W, W, &r, 5.0f, 2, 0.6f, 1.0f, sc);
    for (size_t k = 0; k < N; k++) ves[k] = 0.0f;
    draw_markings(&r, &g, ves, W, pxs);
    look lk = {tex, tex2, ves, 0, 0, 0, 0, 0};
    lk.cl_y = g.y_apex + (float)ph_range(&r, 0.03, 0.06);
    lk.rib_dy = (float)ph_range(&r, 0.058, 0.07);
    lk.rib_amp = (float)ph_range(&r, 0.035, 0.06);
    lk.bubble = ph_unif(&r) < 0.6;
    lk.lung_lvl = (float)ph_range(&r, 0.13, 0.19);
    double lung_area = 0.0, cons_area = 0.0;
    render(&g, &lk, cls, &op, W, chw, &lung_area, &cons_area);
    float gain, blur, noise;
    expose(&r, chw, W, pxs, sc, &gain, &blur, &noise);

    prm[P_CTR] = ctr;
    prm[P_THORAX_W] = 2.0f * g.tw;
    prm[P_HEART_W] = Hw;
    prm[P_CONS_AREA] = lung_area > 0 ? (float)(cons_area / lung_area) : 0.0f;
    prm[P_CONS_ZONE] = (float)op.zone;
    prm[P_CONS_CONTRAST] = op.con;
    prm[P_EXPOSURE] = gain;
    prm[P_BLUR] = blur / pxs;
    prm[P_NOISE] = noise;
}

const ph_gen_desc ph_gen_cxr = {"cxr", 3, class_names, P_COUNT, param_names, generate};
