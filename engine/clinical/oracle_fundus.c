/* oracle_fundus.c: measures a colour fundus photograph from its pixels.
 *
 *  - field: Otsu threshold of the luminance (the black surround is dark);
 *  - optic disc: the brightest disc-sized blob of green + blue, centred on its half-level area;
 *  - cup-to-disc ratio: the disc's radial profile (a 70 % upper-trimmed mean per 0.5 px ring,
 *    which ignores dark vessels) in green and blue is fitted by least squares with two blurred
 *    concentric steps, bg + b * step(R_disc, s_disc) + c * step(R_cup, s_cup), the levels solved
 *    linearly for every (R_disc, R_cup, s_disc, s_cup) of a coarse-to-fine grid. Fitting the blur
 *    makes the radii independent of how soft the image is;
 *  - lesions: the green channel over its smooth background (normalised convolution inside the
 *    field), then Hessian blob responses at two scales: dark blobs (both curvatures up; a
 *    vessel has one flat direction and is ignored) are micro-aneurysms at the small scale and
 *    haemorrhages at the large one, bright blobs off the disc are exudates. */
#include "clinical/clinical.h"
#include <stdlib.h>

enum { M_CDR, M_DISC_R, M_DISC_X, M_DISC_Y, M_N_HAEM, M_N_MA, M_N_EX, M_FIELD_R, M_COUNT };
static const char *const measure_names[M_COUNT] = {"cdr",        "disc_radius",    "disc_x",
                                                   "disc_y",     "n_haemorrhages", "n_microaneurysms",
                                                   "n_exudates", "field_radius"};
enum { I_HEALTHY_DISC, I_NO_LESIONS, I_CDR, I_HAEM, I_MA, I_EX, I_COUNT };
static const char *const item_names[I_COUNT] = {
    "healthy_disc",         "no_retinal_lesions",     "cdr_gt_0.6",
    "haemorrhages_present", "microaneurysms_present", "hard_exudates_present"};
static const int item_class[I_COUNT] = {0, 0, 1, 2, 2, 2};

#define NBIN_MAX 256
#define NSIG 12
#define RSTEP 0.05 /* radius grid, pixels */

typedef struct prof {
    int K, noff;
    double r[NBIN_MAX], w[NBIN_MAX], p[2][NBIN_MAX];
    double wp[2][NBIN_MAX], wpp[2];
    float *tab; /* tab[s * noff + o]: blurred step at offset (o - noff/2) * RSTEP, blur s */
    double sig[NSIG];
} prof;

/* step value of bin k for an edge at grid radius n (n * RSTEP) with blur index si */
static inline double stepv(const prof *P, int si, int n, int k) {
    int o = n - (int)lround(P->r[k] / RSTEP) + P->noff / 2;
    if (o < 0) return 0.0;
    if (o >= P->noff) return 1.0;
    return P->tab[(size_t)si * (size_t)P->noff + (size_t)o];
}

/* weighted least-squares residual of the two-step model bg + b*step(disc) + c*step(cup), with
 * the three levels solved per channel (green and blue) */
static double fit_sse(const prof *P, int nd, int sd, int nc, int sc_) {
    double ed[NBIN_MAX], ec[NBIN_MAX];
    double S11 = 0, S1d = 0, S1c = 0, Sdd = 0, Sdc = 0, Scc = 0;
    for (int k = 0; k < P->K; k++) {
        double w = P->w[k];
        ed[k] = stepv(P, sd, nd, k);
        ec[k] = stepv(P, sc_, nc, k);
        S11 += w;
        S1d += w * ed[k];
        S1c += w * ec[k];
        Sdd += w * ed[k] * ed[k];
        Sdc += w * ed[k] * ec[k];
        Scc += w * ec[k] * ec[k];
    }
    double a = S11, b = S1d, c = S1c, d = Sdd, e = Sdc, f = Scc;
    double A = d * f - e * e, Bc = -(b * f - c * e), C = b * e - c * d;
    double det = a * A + b * Bc + c * C;
    if (fabs(det) < 1e-9 * a * a * a) return 1e30;
    double D = a * f - c * c, E = -(a * e - b * c), F = a * d - b * b;
    double sse = 0.0;
    for (int ch = 0; ch < 2; ch++) {
        double y1 = 0, yd = 0, yc = 0;
        for (int k = 0; k < P->K; k++) {
            y1 += P->wp[ch][k];
            yd += P->wp[ch][k] * ed[k];
            yc += P->wp[ch][k] * ec[k];
        }
        double t0 = (A * y1 + Bc * yd + C * yc) / det;
        double t1 = (Bc * y1 + D * yd + E * yc) / det;
        double t2 = (C * y1 + E * yd + F * yc) / det;
        sse += P->wpp[ch] - (t0 * y1 + t1 * yd + t2 * yc);
    }
    return sse;
}

static int cmpf(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b;
}

/* Hessian of plane p at pixel (i, j) by central differences: returns the two eigenvalues */
static inline void hess_eig(const float *p, int W, int i, int j, float *lmin, float *lmax) {
    const float *c = p + (size_t)j * W + i;
    float xx = c[-1] - 2 * c[0] + c[1], yy = c[-W] - 2 * c[0] + c[W];
    float xy = 0.25f * (c[W + 1] - c[W - 1] - c[-W + 1] + c[-W - 1]);
    float tr = 0.5f * (xx + yy), dt = sqrtf(0.25f * (xx - yy) * (xx - yy) + xy * xy);
    *lmin = tr - dt;
    *lmax = tr + dt;
}

/* darkest mean of -p along 11-sample lines (8 orientations) centred on (i, j) */
static float line_darkness(const float *p, int W, int i, int j, float s) {
    float best = -1e9f;
    for (int o = 0; o < 8; o++) {
        float ux = cosf((float)o * 0.39269908f), uy = sinf((float)o * 0.39269908f), acc = 0.0f;
        int n = 0;
        for (int t = -5; t <= 5; t++) {
            int ii = (int)lroundf((float)i + (float)t * ux * s),
                jj = (int)lroundf((float)j + (float)t * uy * s);
            if (ii < 0 || jj < 0 || ii >= W || jj >= W) continue;
            acc -= p[(size_t)jj * W + ii];
            n++;
        }
        if (n && acc / (float)n > best) best = acc / (float)n;
    }
    return best;
}

/* One image's state between the steps of audit(). */
typedef struct reading {
    int W;
    size_t N;
    float s; /* pixel scale: W / 64 */
    const float *R, *G, *B;
    float *L, *D, *vals, *tmp; /* luminance (then the smoothed disc channel), disc channel, scratch */
    uint8_t *field;            /* the camera's field of view */
    float fcx, fcy, fr;        /* its centre and radius */
    float dcx, dcy;            /* the optic disc's centre */
    prof P;                    /* the radial profile around it */
    double sig_img;            /* the image's blur */
    double bRd, cdr;           /* the disc's radius and cup-to-disc ratio */
} reading;

/* the field of view: brighter than 0.6 of Otsu's threshold on the luminance; 0 when it covers
 * under a tenth of the image */
static int find_field(reading *rd) {
    size_t N = rd->N;
    int W = rd->W;
    for (size_t k = 0; k < N; k++) rd->L[k] = (rd->R[k] + rd->G[k] + rd->B[k]) * (1.0f / 3.0f);
    float T = ph_otsu(rd->L, NULL, (int)N, 0.0f, 1.0f);
    double fa = 0, fx = 0, fy = 0;
    for (size_t k = 0; k < N; k++) {
        rd->field[k] = rd->L[k] > T * 0.6f;
        if (rd->field[k]) {
            fa += 1;
            fx += (double)(k % (size_t)W) + 0.5;
            fy += (double)(k / (size_t)W) + 0.5;
        }
    }
    if (fa < 0.1 * (double)N) return 0;
    rd->fcx = (float)(fx / fa), rd->fcy = (float)(fy / fa), rd->fr = (float)sqrt(fa / PH_PI);
    return 1;
}

/* The optic disc's centre: the brightest spot of green + blue (box-smoothed) inside the field,
 * then the centroid of the half-level blob around it; 0 when no spot stands out of the fundus.
 * Leaves the smoothed channel in L. */
static int locate_disc(reading *rd, ph_scratch *sc) {
    size_t N = rd->N;
    int W = rd->W;
    float s = rd->s, *D = rd->D;
    for (size_t k = 0; k < N; k++) D[k] = rd->G[k] + rd->B[k];
    float *Ds = rd->L; /* luminance no longer needed */
    memcpy(Ds, D, N * sizeof(float));
    ph_box(Ds, W, W, (int)(4.0f * s + 0.5f), sc);
    int bi = W / 2, bj = W / 2;
    float bv = -1.0f;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            float dx = (float)i + 0.5f - rd->fcx, dy = (float)j + 0.5f - rd->fcy;
            if (dx * dx + dy * dy > 0.8f * 0.8f * rd->fr * rd->fr) continue;
            if (Ds[(size_t)j * W + i] > bv) {
                bv = Ds[(size_t)j * W + i];
                bi = i;
                bj = j;
            }
        }
    float win = 0.17f * (float)W;
    rd->vals = ph_salloc(sc, N);
    int nv = 0;
    for (size_t k = 0; k < N; k++)
        if (rd->field[k]) rd->vals[nv++] = D[k];
    float bg = ph_quantile(rd->vals, nv, 0.5f, 0.0f, 3.0f);
    memcpy(Ds, D, N * sizeof(float));
    ph_blur(Ds, W, W, 0.8f * s, sc);
    float peak = Ds[(size_t)bj * W + bi];
    for (int j = (int)(bj - win); j <= (int)(bj + win); j++)
        for (int i = (int)(bi - win); i <= (int)(bi + win); i++)
            if (i >= 0 && j >= 0 && i < W && j < W && Ds[(size_t)j * W + i] > peak)
                peak = Ds[(size_t)j * W + i];
    /* no disc brighter than the fundus around it: nothing to grade */
    if (peak - bg < 0.05f) return 0;
    float half = 0.5f * (bg + peak);
    double ca = 0, cx = 0, cy = 0;
    for (int j = (int)(bj - win); j <= (int)(bj + win); j++)
        for (int i = (int)(bi - win); i <= (int)(bi + win); i++) {
            if (i < 0 || j < 0 || i >= W || j >= W) continue;
            float v = Ds[(size_t)j * W + i];
            if (v <= half) continue;
            double wgt = fmin(1.0, (v - half) / (0.2 * (peak - half) + 1e-6));
            ca += wgt;
            cx += wgt * (i + 0.5);
            cy += wgt * (j + 0.5);
        }
    rd->dcx = ca > 0 ? (float)(cx / ca) : (float)bi + 0.5f,
    rd->dcy = ca > 0 ? (float)(cy / ca) : (float)bj + 0.5f;
    return 1;
}

/* radial profile of green and blue around the disc: 0.5 px rings, 70 % upper-trimmed mean
 * (vessels are dark); then the blurred-step tables on a 0.05 px grid for NSIG blurs */
static void radial_profile(reading *rd, ph_scratch *sc) {
    int W = rd->W;
    size_t N = rd->N;
    prof *P = &rd->P;
    const float bw = 0.5f;
    float rmax = 0.2f * (float)W;
    P->K = (int)(rmax / bw);
    if (P->K > NBIN_MAX) P->K = NBIN_MAX;
    int *cnt = (int *)ph_salloc(sc, NBIN_MAX + 1), *start = (int *)ph_salloc(sc, NBIN_MAX + 1);
    float *ring = ph_salloc(sc, 2 * N);
    for (int k = 0; k <= NBIN_MAX; k++) cnt[k] = 0;
    int i0 = (int)(rd->dcx - rmax - 1), i1 = (int)(rd->dcx + rmax + 1), j0 = (int)(rd->dcy - rmax - 1),
        j1 = (int)(rd->dcy + rmax + 1);
    if (i0 < 0) i0 = 0;
    if (j0 < 0) j0 = 0;
    if (i1 > W - 1) i1 = W - 1;
    if (j1 > W - 1) j1 = W - 1;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            int acc = 0;
            for (int k = 0; k < P->K; k++) {
                start[k] = acc;
                acc += cnt[k];
                cnt[k] = 0;
            }
        }
        for (int j = j0; j <= j1; j++)
            for (int i = i0; i <= i1; i++) {
                float dx = (float)i + 0.5f - rd->dcx, dy = (float)j + 0.5f - rd->dcy;
                int b = (int)(sqrtf(dx * dx + dy * dy) / bw);
                if (b >= P->K) continue;
                if (pass == 1) {
                    size_t k = (size_t)j * W + i;
                    int at = start[b] + cnt[b];
                    ring[2 * at] = rd->G[k];
                    ring[2 * at + 1] = rd->B[k];
                }
                cnt[b]++;
            }
    }
    float *tmp = rd->tmp = ph_salloc(sc, N);
    int K = 0;
    for (int b = 0; b < P->K; b++) {
        if (!cnt[b]) continue;
        for (int ch = 0; ch < 2; ch++) {
            for (int t = 0; t < cnt[b]; t++) tmp[t] = ring[2 * (start[b] + t) + ch];
            qsort(tmp, (size_t)cnt[b], sizeof(float), cmpf);
            int lo = (int)(0.3f * (float)cnt[b]);
            double acc = 0;
            for (int t = lo; t < cnt[b]; t++) acc += tmp[t];
            P->p[ch][K] = acc / (cnt[b] - lo);
        }
        P->r[K] = (b + 0.5) * bw;
        P->w[K] = cnt[b];
        K++;
    }
    P->K = K;
    P->noff = 2 * (int)(rmax / RSTEP + 8);
    P->tab = ph_salloc(sc, (size_t)NSIG * (size_t)P->noff);
    for (int si = 0; si < NSIG; si++) {
        P->sig[si] = 0.3 * pow(1.25, si) * rd->s;
        for (int o = 0; o < P->noff; o++)
            P->tab[(size_t)si * P->noff + o] =
                (float)(0.5 * erfc(-(o - P->noff / 2) * RSTEP / (1.41421356 * P->sig[si])));
    }
    for (int ch = 0; ch < 2; ch++) {
        P->wpp[ch] = 0.0;
        for (int k = 0; k < P->K; k++) {
            P->wp[ch][k] = P->w[k] * P->p[ch][k];
            P->wpp[ch] += P->wp[ch][k] * P->p[ch][k];
        }
    }
}

/* The image's blur, read off the black field's circular edge (10 px band, 0.5 px rings, 25-75 %
 * width = 1.349 sigma): it bounds the blur of the disc's edge, which without it a very soft
 * image lets the two steps trade places. */
static double image_blur(const reading *rd) {
    int W = rd->W;
    float s = rd->s;
    double eb[64] = {0}, ec[64] = {0};
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            float dx = (float)i + 0.5f - rd->fcx, dy = (float)j + 0.5f - rd->fcy;
            float d = sqrtf(dx * dx + dy * dy) - (rd->fr - 6.0f * s);
            int b = (int)(d / (0.5f * s));
            if (d < 0.0f || b >= 20) continue;
            size_t k = (size_t)j * W + i;
            eb[b] += (rd->R[k] + rd->G[k] + rd->B[k]) / 3.0f;
            ec[b] += 1.0;
        }
    double lin = 0, lout = 0;
    for (int b = 0; b < 6; b++) lin += ec[b] ? eb[b] / ec[b] / 6.0 : 0.0;
    for (int b = 17; b < 20; b++) lout += ec[b] ? eb[b] / ec[b] / 3.0 : 0.0;
    double r75 = -1, r25 = -1, prev = 1.0;
    for (int b = 0; b < 20; b++) {
        double p = ec[b] && lin > lout + 0.02 ? (eb[b] / ec[b] - lout) / (lin - lout) : 1.0;
        if (r75 < 0 && p < 0.75 && b > 0) r75 = (b - 1 + (prev - 0.75) / (prev - p) + 0.5) * 0.5;
        if (r25 < 0 && p < 0.25 && b > 0) r25 = (b - 1 + (prev - 0.25) / (prev - p) + 0.5) * 0.5;
        prev = p;
    }
    double sig_img = r75 >= 0 && r25 > r75 ? (r25 - r75) * s / 1.349 : 0.6 * s;
    return sqrt(fmax(sig_img * sig_img - 0.083 * s * s, 0.04 * s * s));
}

/* The disc's and the cup's radii: two blurred steps fitted to the profile, the disc's edge as
 * sharp as the image (give or take one blur step), on a coarse grid and then twice finer. */
static void fit_disc(reading *rd) {
    const prof *P = &rd->P;
    int W = rd->W;
    float s = rd->s;
    int a_mid = 0;
    for (int t = 1; t < NSIG; t++)
        if (fabs(log(P->sig[t] / rd->sig_img)) < fabs(log(P->sig[a_mid] / rd->sig_img))) a_mid = t;
    int a_lo = a_mid > 0 ? a_mid - 1 : 0, a_hi = a_mid < NSIG - 1 ? a_mid + 1 : NSIG - 1;
    double best = 1e30;
    int bnd = 0, bnc = 0, bsd = 0, bsc = 0;
    int nd_lo = (int)(0.045 * W / RSTEP), nd_hi = (int)(0.15 * W / RSTEP),
        nstep = (int)(0.5 * s / RSTEP + 0.5);
    if (nstep < 1) nstep = 1;
    for (int nd = nd_lo; nd <= nd_hi; nd += nstep)
        for (int nc = (int)(0.1 * nd); nc <= (int)(0.95 * nd); nc += nstep)
            for (int a = a_lo; a <= a_hi; a++)
                for (int b = a_lo; b < NSIG; b += 2) {
                    double e = fit_sse(P, nd, a, nc, b);
                    if (e < best) {
                        best = e;
                        bnd = nd;
                        bnc = nc;
                        bsd = a;
                        bsc = b;
                    }
                }
    for (int stage = 0; stage < 2; stage++) {
        int span = stage ? 2 : 6, st = stage ? 1 : 2, cd = bnd, cc = bnc, csd = bsd, csc = bsc;
        for (int nd = cd - span; nd <= cd + span; nd += st)
            for (int nc = cc - span; nc <= cc + span; nc += st)
                for (int a = csd - 1 - (1 - stage); a <= csd + 1 + (1 - stage); a++)
                    for (int b = csc - 1 - (1 - stage); b <= csc + 1 + (1 - stage); b++) {
                        if (a < a_lo || a > a_hi || b < a_lo || b >= NSIG || nc < 1 || nc >= nd) continue;
                        double e = fit_sse(P, nd, a, nc, b);
                        if (e < best) {
                            best = e;
                            bnd = nd;
                            bnc = nc;
                            bsd = a;
                            bsc = b;
                        }
                    }
    }
    rd->bRd = bnd * RSTEP;
    rd->cdr = (double)bnc / (double)bnd;
}

/* Lesions: blob responses (Hessian eigenvalues at two scales of the relative green) away from the
 * disc; dark and bright local maxima above thresholds that rise with the image's own noise and
 * fall with its blur, dark ones not part of a vessel. Counts haemorrhages (darker), microaneurysms
 * and exudates. */
static void count_lesions(reading *rd, ph_scratch *sc, int *n_h, int *n_ma, int *n_ex) {
    int W = rd->W;
    size_t N = rd->N;
    float s = rd->s, fcx = rd->fcx, fcy = rd->fcy, fr = rd->fr, *vals = rd->vals;
    const float *G = rd->G;
    float *Gb = ph_salloc(sc, N), *Mb = ph_salloc(sc, N), *Gr = ph_salloc(sc, N);
    for (size_t k = 0; k < N; k++) {
        Mb[k] = rd->field[k];
        Gb[k] = G[k] * rd->field[k];
    }
    ph_blur(Gb, W, W, 4.0f * s, sc);
    ph_blur(Mb, W, W, 4.0f * s, sc);
    for (size_t k = 0; k < N; k++)
        Gr[k] = rd->field[k] ? G[k] / fmaxf(Gb[k] / fmaxf(Mb[k], 1e-3f), 0.02f) - 1.0f : 0.0f;
    float *S1 = Gb, *S2 = Mb; /* reuse */
    memcpy(S1, Gr, N * sizeof(float));
    memcpy(S2, Gr, N * sizeof(float));
    const float sg1 = 0.9f * s, sg2 = 1.7f * s;
    ph_blur(S1, W, W, sg1, sc);
    ph_blur(S2, W, W, sg2, sc);
    float *dark = rd->L, *bright = rd->tmp;
    int m = (int)(2.0f * s) + 1;
    float excl = (float)rd->bRd * 1.5f + 3.0f * s;
    for (size_t k = 0; k < N; k++) dark[k] = bright[k] = 0.0f;
    for (int j = m; j < W - m; j++)
        for (int i = m; i < W - m; i++) {
            size_t k = (size_t)j * W + i;
            float dx = (float)i + 0.5f - fcx, dy = (float)j + 0.5f - fcy;
            if (dx * dx + dy * dy > 0.86f * 0.86f * fr * fr) continue;
            float qx = (float)i + 0.5f - rd->dcx, qy = (float)j + 0.5f - rd->dcy;
            if (qx * qx + qy * qy < excl * excl) continue;
            float a0, a1, b0, b1;
            hess_eig(S1, W, i, j, &a0, &a1);
            hess_eig(S2, W, i, j, &b0, &b1);
            float d1 = sg1 * sg1 * a0, d2 = sg2 * sg2 * b0;
            float e1 = -sg1 * sg1 * a1, e2 = -sg2 * sg2 * b1;
            dark[k] = fmaxf(d1, d2);
            bright[k] = fmaxf(e1, e2);
        }
    /* thresholds rise with the image's own noise: the robust spread (MAD) of the blob responses
     * and of the fine residual (relative green minus its smoothing) over the field */
    int nv2 = 0;
    for (int j = m; j < W - m; j++)
        for (int i = m; i < W - m; i++) {
            size_t k = (size_t)j * W + i;
            float dx = (float)i + 0.5f - fcx, dy = (float)j + 0.5f - fcy;
            if (dx * dx + dy * dy < 0.8f * 0.8f * fr * fr) vals[nv2++] = fabsf(Gr[k] - S1[k]);
        }
    float nu = 1.4826f * ph_quantile(vals, nv2, 0.5f, 0.0f, 2.0f);
    nv2 = 0;
    for (size_t k = 0; k < N; k++)
        if (dark[k] != 0.0f) vals[nv2++] = dark[k];
    float med_d = ph_quantile(vals, nv2, 0.5f, -1.0f, 1.0f);
    for (int t = 0; t < nv2; t++) vals[t] = fabsf(vals[t] - med_d);
    float mad_d = 1.4826f * ph_quantile(vals, nv2, 0.5f, 0.0f, 1.0f);
    /* a blurrier image (blur read off the field edge) dims small blobs: a 0.85 px dot seen at
     * the 0.9 px scale keeps r^2 / (r^2 + 2 (sigma^2 + 0.81)) of its contrast */
    float sb = (float)(rd->sig_img / s),
          dim = 3.06f / (0.72f + 2.0f * (fmaxf(sb, 0.6f) * fmaxf(sb, 0.6f) + 0.81f));
    const float t_dark = fmaxf(0.06f * dim, med_d + 5.0f * mad_d), g_dark = fmaxf(0.08f * dim, 1.5f * nu);
    const float t_bright = fmaxf(0.12f * dim, med_d + 6.5f * mad_d), g_bright = fmaxf(0.15f * dim, 2.0f * nu);
    for (int j = m; j < W - m; j++)
        for (int i = m; i < W - m; i++) {
            size_t k = (size_t)j * W + i;
            float v = dark[k], u = bright[k];
            int is_max_d = v > t_dark && S1[k]<-g_dark, is_max_b = u> t_bright && S1[k] > g_bright;
            for (int dj = -m; dj <= m && (is_max_d || is_max_b); dj++)
                for (int di = -m; di <= m; di++) {
                    if (!di && !dj) continue;
                    size_t q = k + (size_t)((ptrdiff_t)dj * W + di);
                    if (dark[q] > v || (dark[q] == v && q < k)) is_max_d = 0;
                    if (bright[q] > u || (bright[q] == u && q < k)) is_max_b = 0;
                }
            /* a vessel (or a branching) is as dark along some line through the point as at
             * the point itself; a blob is not */
            if (is_max_d && line_darkness(S1, W, i, j, s) < 0.65f * -S1[k]) {
                if (S1[k] < -0.27f) (*n_h)++;
                else (*n_ma)++;
            }
            if (is_max_b) (*n_ex)++;
        }
}

/* One image: field of view, optic disc centre, radial profile, image blur, disc and cup fit,
 * lesions, then the measures, checklist verdicts and label. */
static void audit(const float *chw, int W, float *ms, int32_t *label, uint8_t *items, ph_scratch *sc) {
    reading rd;
    memset(&rd, 0, sizeof rd);
    rd.W = W;
    rd.N = (size_t)W * (size_t)W;
    rd.s = (float)W / 64.0f;
    size_t N = rd.N;
    rd.R = chw, rd.G = chw + N, rd.B = chw + 2 * N;
    rd.L = ph_salloc(sc, N), rd.D = ph_salloc(sc, N);
    rd.field = (uint8_t *)ph_salloc(sc, N / 4 + 16);
    int found = find_field(&rd);
    for (int t = 0; t < M_COUNT; t++) ms[t] = 0.0f;
    *label = 0;
    /* no fundus disc in the image, or no optic disc brighter than the fundus: nothing to grade */
    if (!found || !locate_disc(&rd, sc)) {
        *label = CRAFT_ORACLE_UNDETERMINED;
        return;
    }
    radial_profile(&rd, sc);
    rd.sig_img = image_blur(&rd);
    fit_disc(&rd);
    float cdr = (float)rd.cdr, disc_r = (float)(rd.bRd / W);
    int n_h = 0, n_ma = 0, n_ex = 0;
    count_lesions(&rd, sc, &n_h, &n_ma, &n_ex);

    ms[M_CDR] = cdr;
    ms[M_DISC_R] = disc_r;
    ms[M_DISC_X] = rd.dcx / (float)W;
    ms[M_DISC_Y] = rd.dcy / (float)W;
    ms[M_N_HAEM] = (float)n_h;
    ms[M_N_MA] = (float)n_ma;
    ms[M_N_EX] = (float)n_ex;
    ms[M_FIELD_R] = rd.fr / (float)W;
    int lesions = n_h + n_ma + n_ex;
    items[I_HEALTHY_DISC] = cdr <= 0.6f;
    items[I_NO_LESIONS] = lesions == 0;
    items[I_CDR] = cdr > 0.6f;
    items[I_HAEM] = n_h > 0;
    items[I_MA] = n_ma > 0;
    items[I_EX] = n_ex > 0;
    if (lesions >= 2 && !(cdr > 0.6f && lesions < 4)) *label = 2;
    else if (cdr > 0.6f) *label = 1;
    else *label = 0;
}

const ph_oracle_desc ph_oracle_fundus = {M_COUNT, measure_names, I_COUNT, item_names, item_class, audit};
