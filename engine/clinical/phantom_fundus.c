/* phantom_fundus.c: procedural colour fundus photographs.
 *
 * A vignetted orange-red retina inside a black circular field, a darker macula, arteries and
 * veins branching out of a pale yellow optic disc (temporal arcades curving around the macula),
 * and a paler central cup. The cup and disc are ellipses of the same aspect, so the cup-to-disc
 * ratio (cdr) is the same along every axis. Diabetic retinopathy adds haemorrhages (dark red
 * blots), micro-aneurysms (tiny red dots) and hard exudates (yellow spots, clustered around the
 * macula), placed off the vessels, the disc and each other so that each one is countable. */
#include "clinical/clinical.h"

enum {
    P_CDR,
    P_DISC_R,
    P_DISC_X,
    P_DISC_Y,
    P_N_HAEM,
    P_N_MA,
    P_N_EX,
    P_FIELD_R,
    P_PIGMENT,
    P_BLUR,
    P_NOISE,
    P_COUNT
};
static const char *const param_names[P_COUNT] = {"cdr",        "disc_radius",    "disc_x",
                                                 "disc_y",     "n_haemorrhages", "n_microaneurysms",
                                                 "n_exudates", "field_radius",   "pigment",
                                                 "blur_sigma", "noise_sd"};
static const char *const class_names[3] = {"normal", "glaucoma", "diabetic_retinopathy"};

typedef struct lesion {
    float x, y, r;
} lesion;

/* One vessel: a curved, tapering path of segments stamped into `plane`, with side branches. */
static void draw_vessel(float *plane, int W, ph_rng *r, float x, float y, float ang, float curv, float hw,
                        int steps, int depth, float disc_x, float disc_y, float field_r) {
    const float step = 0.022f;
    for (int k = 0; k < steps; k++) {
        float nx = x + step * cosf(ang), ny = y + step * sinf(ang);
        float hw1 = hw * 0.96f;
        ph_stamp_segment_max(plane, W, W, x * W, y * W, nx * W, ny * W, hw * W, hw1 * W, 1.0f);
        x = nx;
        y = ny;
        hw = hw1;
        ang += curv + 0.12f * (float)(ph_unif(r) - 0.5);
        float dx = x - 0.5f, dy = y - 0.5f;
        if (dx * dx + dy * dy > field_r * field_r) break;
        if (depth < 2 && k > 2 && ph_unif(r) < 0.16) {
            float side = ph_unif(r) < 0.5 ? -1.0f : 1.0f;
            draw_vessel(plane, W, r, x, y, ang + side * (float)ph_range(r, 0.5, 0.9), curv * 0.5f, hw * 0.7f,
                        steps / 2, depth + 1, disc_x, disc_y, field_r);
        }
    }
}

static int place(ph_rng *r, lesion *all, int n, float rad, float cx, float cy, float spread, const float *ves,
                 int W, float field_r, float dx0, float dy0, float dr) {
    for (int t = 0; t < 40; t++) {
        float a = (float)(2.0 * PH_PI * ph_unif(r)), d = spread * sqrtf((float)ph_unif(r));
        float x = cx + d * cosf(a), y = cy + d * sinf(a);
        float fx = x - 0.5f, fy = y - 0.5f;
        if (sqrtf(fx * fx + fy * fy) > field_r - 0.07f) continue;
        float qx = x - dx0, qy = y - dy0;
        if (sqrtf(qx * qx + qy * qy) < dr * 1.6f + 0.05f) continue;
        int ok = 1;
        for (int k = 0; k < n && ok; k++) {
            float ex = x - all[k].x, ey = y - all[k].y;
            if (sqrtf(ex * ex + ey * ey) < rad + all[k].r + 0.035f) ok = 0;
        }
        /* keep clear of vessels: no vessel within the lesion radius plus ~2 px */
        float reach = rad + 2.2f / 64.0f;
        int i0 = (int)((x - reach) * W), i1 = (int)((x + reach) * W), j0 = (int)((y - reach) * W),
            j1 = (int)((y + reach) * W);
        for (int j = j0; j <= j1 && ok; j++)
            for (int i = i0; i <= i1 && ok; i++)
                if (i >= 0 && j >= 0 && i < W && j < W && ves[(size_t)j * W + i] > 0.05f) ok = 0;
        if (!ok) continue;
        all[n].x = x;
        all[n].y = y;
        all[n].r = rad;
        return 1;
    }
    return 0;
}

/* The eye: field of view, optic disc and cup (the cup-to-disc ratio set by the class), macula,
 * background and disc colours. */
typedef struct eye {
    float field_r, side, disc_x, disc_y, fov_x, fov_y, rd, aspect, cdr, rc, cup_x, cup_y, pig;
    float bg[3], rim[3], cupc[3];
} eye;

static void draw_eye(ph_rng *r, int cls, eye *e) {
    e->field_r = (float)ph_range(r, 0.44, 0.48);
    e->side = ph_unif(r) < 0.5 ? -1.0f : 1.0f; /* disc on the left or right */
    e->disc_x = 0.5f + e->side * (float)ph_range(r, 0.17, 0.22);
    e->disc_y = 0.5f + (float)ph_range(r, -0.04, 0.04);
    e->fov_x = 0.5f - e->side * (float)ph_range(r, 0.04, 0.08);
    e->fov_y = e->disc_y + (float)ph_range(r, 0.0, 0.04);
    e->rd = (float)ph_range(r, 0.085, 0.105);
    e->aspect = (float)ph_range(r, 1.0, 1.1);
    if (cls == 1) e->cdr = 0.68f + 0.2f * (float)(ph_unif(r) * ph_unif(r)); /* denser near 0.68 */
    else e->cdr = 0.52f - 0.3f * (float)(ph_unif(r) * ph_unif(r));          /* denser near 0.52 */
    e->rc = e->cdr * e->rd;
    e->cup_x = e->disc_x - e->side * e->rd * (float)ph_range(r, 0.0, 0.06);
    e->cup_y = e->disc_y + e->rd * (float)ph_range(r, -0.04, 0.04);
    e->pig = (float)ph_range(r, 0.0, 1.0);
    e->bg[0] = 0.88f - 0.16f * e->pig, e->bg[1] = 0.38f - 0.1f * e->pig, e->bg[2] = 0.17f - 0.06f * e->pig;
    e->bg[0] += (float)ph_range(r, -0.04, 0.04);
    e->bg[1] += (float)ph_range(r, -0.03, 0.03);
    e->bg[2] += (float)ph_range(r, -0.03, 0.03);
    e->rim[0] = (float)ph_range(r, 0.95, 1.0);
    e->rim[1] = (float)ph_range(r, 0.64, 0.74);
    e->rim[2] = (float)ph_range(r, 0.32, 0.44);
    e->cupc[0] = 1.0f;
    e->cupc[1] = (float)ph_range(r, 0.86, 0.94);
    e->cupc[2] = (float)ph_range(r, 0.68, 0.8);
}

/* temporal arcades (artery + vein, above and below the macula) and nasal branches */
static void draw_vessels(ph_rng *r, const eye *e, float *vein, float *art, int W) {
    for (int up = 0; up < 2; up++) {
        float sg = up ? -1.0f : 1.0f;
        for (int kind = 0; kind < 2; kind++) {
            float ang = (float)(e->side > 0 ? PH_PI : 0.0) +
                sg * (float)ph_range(r, 0.8, 1.15) * (e->side > 0 ? -1.0f : 1.0f);
            float curv = sg * (e->side > 0 ? 1.0f : -1.0f) * (float)ph_range(r, 0.045, 0.065);
            /* vessels enter at the disc margin: the cup stays readable */
            draw_vessel(kind ? art : vein, W, r, e->disc_x + 0.8f * e->rd * cosf(ang),
                        e->disc_y + 0.8f * e->rd * sinf(ang), ang, curv, kind ? 0.0085f : 0.0115f,
                        ph_int(r, 18, 24), 0, e->disc_x, e->disc_y, e->field_r);
        }
    }
    int nn = ph_int(r, 2, 4);
    for (int k = 0; k < nn; k++) {
        float ang = (float)(e->side > 0 ? 0.0 : PH_PI) + (float)ph_range(r, -1.2, 1.2);
        draw_vessel(k & 1 ? art : vein, W, r, e->disc_x + 0.8f * e->rd * cosf(ang),
                    e->disc_y + 0.8f * e->rd * sinf(ang), ang, (float)ph_range(r, -0.05, 0.05),
                    k & 1 ? 0.0065f : 0.0085f, ph_int(r, 7, 11), 1, e->disc_x, e->disc_y, e->field_r);
    }
}

/* diabetic retinopathy: haemorrhages, microaneurysms and exudates (around the fovea), kept off
 * every vessel (ves); counts of each placed, les[0..n) in that order */
static int place_lesions(ph_rng *r, const eye *e, const float *ves, int W, lesion *les, int *n_h, int *n_ma,
                         int *n_ex) {
    int nl = 0, want_h, want_ma, want_ex;
    do {
        want_h = ph_unif(r) < 0.7 ? ph_int(r, 1, 6) : 0;
        want_ma = ph_unif(r) < 0.7 ? ph_int(r, 1, 8) : 0;
        want_ex = ph_unif(r) < 0.6 ? ph_int(r, 1, 8) : 0;
    } while (want_h + want_ma + want_ex < 3);
    for (int k = 0; k < want_h; k++)
        if (place(r, les, nl, (float)ph_range(r, 0.022, 0.036), 0.5f, 0.5f, e->field_r, ves, W, e->field_r,
                  e->disc_x, e->disc_y, e->rd)) {
            nl++;
            (*n_h)++;
        }
    for (int k = 0; k < want_ma; k++)
        if (place(r, les, nl, (float)ph_range(r, 0.012, 0.015), 0.5f, 0.5f, e->field_r, ves, W, e->field_r,
                  e->disc_x, e->disc_y, e->rd)) {
            nl++;
            (*n_ma)++;
        }
    float ccx = e->fov_x + (float)ph_range(r, -0.08, 0.08), ccy = e->fov_y + (float)ph_range(r, -0.1, 0.1);
    for (int k = 0; k < want_ex; k++)
        if (place(r, les, nl, (float)ph_range(r, 0.009, 0.017), ccx, ccy, 0.16f, ves, W, e->field_r,
                  e->disc_x, e->disc_y, e->rd)) {
            nl++;
            (*n_ex)++;
        }
    return nl;
}

/* every pixel: field of view with vignetting, background and macula, disc and cup, vessels */
static void render(const eye *e, const float *tex, const float *vein, const float *art, int W, float *chw) {
    const size_t N = (size_t)W * (size_t)W;
    const float px = 1.0f / (float)W;
    float *R = chw, *G = chw + N, *B = chw + 2 * N;
    for (int j = 0; j < W; j++) {
        float y = ((float)j + 0.5f) * px;
        for (int i = 0; i < W; i++) {
            float x = ((float)i + 0.5f) * px;
            size_t k = (size_t)j * W + (size_t)i;
            float fx = x - 0.5f, fy = y - 0.5f, fr = sqrtf(fx * fx + fy * fy);
            float field = ph_clampf(0.5f + (e->field_r - fr) / px, 0.0f, 1.0f);
            float fq = fr / e->field_r, vig = 1.0f - 0.38f * fq * fq * fq;
            float mx = x - e->fov_x, my = y - e->fov_y;
            float mac = 1.0f - 0.28f * expf(-(mx * mx + my * my) / (2.0f * 0.055f * 0.055f));
            float t = 1.0f + 0.07f * tex[k];
            float r_ = e->bg[0] * vig * t * (0.9f + 0.1f * mac), g_ = e->bg[1] * vig * t * mac,
                  b_ = e->bg[2] * vig * t * mac;
            /* optic disc and cup: ellipses of one aspect, anti-aliased edge; sloping cup wall */
            float dx = x - e->disc_x, dy = (y - e->disc_y) / e->aspect;
            float dd = sqrtf(dx * dx + dy * dy);
            float disc = ph_clampf(0.5f + (e->rd - dd) / px, 0.0f, 1.0f);
            float cx = x - e->cup_x, cy = (y - e->cup_y) / e->aspect;
            float cd = sqrtf(cx * cx + cy * cy);
            float cup = ph_clampf(0.5f + (e->rc - cd) / (px + 0.08f * e->rd), 0.0f, 1.0f) * disc;
            r_ = ph_lerpf(r_, ph_lerpf(e->rim[0], e->cupc[0], cup), disc);
            g_ = ph_lerpf(g_, ph_lerpf(e->rim[1], e->cupc[1], cup), disc);
            b_ = ph_lerpf(b_, ph_lerpf(e->rim[2], e->cupc[2], cup), disc);
            /* vessels, fainter on the disc */
            float on = 1.0f - 0.6f * disc;
            float v = vein[k] * on, a = art[k] * on;
            r_ *= (1.0f - 0.32f * v) * (1.0f - 0.1f * a);
            g_ *= (1.0f - 0.6f * v) * (1.0f - 0.4f * a);
            b_ *= (1.0f - 0.5f * v) * (1.0f - 0.35f * a);
            R[k] = r_ * field;
            G[k] = g_ * field;
            B[k] = b_ * field;
        }
    }
}

/* the lesions over the rendered image: dark red haemorrhages and microaneurysms, yellow exudates */
static void stamp_lesions(ph_rng *r, const lesion *les, int nl, int n_h, int n_ma, int W, float *chw) {
    const size_t N = (size_t)W * (size_t)W;
    float *R = chw, *G = chw + N, *B = chw + 2 * N;
    for (int k = 0; k < nl; k++) {
        const lesion *l = &les[k];
        int is_h = k < n_h, is_ma = !is_h && k < n_h + n_ma;
        float cr, cg, cb, alpha;
        if (is_h) {
            cr = 0.42f;
            cg = 0.07f;
            cb = 0.05f;
            alpha = 0.85f;
        } else if (is_ma) {
            cr = 0.45f;
            cg = 0.06f;
            cb = 0.04f;
            alpha = 0.95f;
        } else {
            cr = 0.98f;
            cg = 0.9f;
            cb = 0.45f;
            alpha = 0.92f;
        }
        float rx = l->r * W, ry = rx * (is_h ? (float)ph_range(r, 0.65, 1.0) : 1.0f);
        float ang = (float)ph_range(r, 0.0, PH_PI);
        ph_stamp_ellipse_blend(R, W, W, l->x * W, l->y * W, rx, ry, ang, cr, alpha);
        ph_stamp_ellipse_blend(G, W, W, l->x * W, l->y * W, rx, ry, ang, cg, alpha);
        ph_stamp_ellipse_blend(B, W, W, l->x * W, l->y * W, rx, ry, ang, cb, alpha);
    }
}

/* One image: the eye, vessels, lesions, the pixel pass, lesion stamps, the camera. The steps
 * draw from one stream in this order (a contract: images must not change). */
static void generate(int W, uint64_t seed, uint64_t index, int cls, float *chw, float *prm, ph_scratch *sc) {
    ph_rng r;
    ph_rng_init(&r, seed, index, 0xF0002ULL + (uint64_t)cls);
    const size_t N = (size_t)W * (size_t)W;
    const float pxs = (float)W / 64.0f;
    eye e;
    draw_eye(&r, cls, &e);
    float *tex = ph_salloc(sc, N), *vein = ph_salloc(sc, N), *art = ph_salloc(sc, N);
    ph_fbm(tex, W, W, &r, 6.0f, 3, 0.55f, 1.0f, sc);
    for (size_t k = 0; k < N; k++) vein[k] = art[k] = 0.0f;
    draw_vessels(&r, &e, vein, art, W);
    float *ves = ph_salloc(sc, N);
    for (size_t k = 0; k < N; k++) ves[k] = fmaxf(vein[k], art[k]);
    lesion les[64];
    int n_h = 0, n_ma = 0, n_ex = 0, nl = 0;
    if (cls == 2) nl = place_lesions(&r, &e, ves, W, les, &n_h, &n_ma, &n_ex);
    render(&e, tex, vein, art, W, chw);
    stamp_lesions(&r, les, nl, n_h, n_ma, W, chw);
    float blur = (float)ph_range(&r, 0.4, 0.8) * pxs, noise = (float)ph_range(&r, 0.004, 0.018);
    ph_finish(chw, W, blur, noise, r.key ^ 0xf00dULL, 0, sc);

    prm[P_CDR] = e.cdr;
    prm[P_DISC_R] = e.rd;
    prm[P_DISC_X] = e.disc_x;
    prm[P_DISC_Y] = e.disc_y;
    prm[P_N_HAEM] = (float)n_h;
    prm[P_N_MA] = (float)n_ma;
    prm[P_N_EX] = (float)n_ex;
    prm[P_FIELD_R] = e.field_r;
    prm[P_PIGMENT] = e.pig;
    prm[P_BLUR] = blur / pxs;
    prm[P_NOISE] = noise;
}

const ph_gen_desc ph_gen_fundus = {"fundus", 3, class_names, P_COUNT, param_names, generate};
