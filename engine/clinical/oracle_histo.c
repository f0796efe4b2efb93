/* oracle_histo.c: measures an H&E histopathology field from its pixels.
 *
 *  - colour deconvolution: optical density against the slide's white, projected by least squares
 *    on Ruifrok's haematoxylin and eosin vectors;
 *  - nuclei: haematoxylin above the half level between the tissue's median and its 99th
 *    percentile; nuclei are split by steepest ascent to haematoxylin maxima (touching nuclei
 *    separate); each one's area is a soft area (linear unmixing between the tissue level and
 *    its own peak, which blur hardly changes); density is the summed area over the field and
 *    the size CV that of the equivalent radii of nuclei not cut by the border;
 *  - mucin: pale, haematoxylin-dominant pixels (pale blue-grey), smoothed; lumens: near-white
 *    regions away from the border; glands are lumens of a gland's size;
 *  - floating clusters: groups of nuclei whose surroundings are mostly mucin. */
#include "clinical/clinical.h"

enum { M_DENSITY, M_SIZE_CV, M_MUCIN, M_N_GLANDS, M_LUMEN, M_NUC_R, M_N_NUCLEI, M_N_CLUSTERS, M_COUNT };
static const char *const measure_names[M_COUNT] = {"nuclear_density", "nuclear_size_cv",
                                                   "mucin_fraction",  "n_glands",
                                                   "lumen_fraction",  "mean_nuclear_radius",
                                                   "n_nuclei",        "n_floating_clusters"};
enum { I_GLANDS, I_REGULAR, I_DENSE, I_PLEO, I_LOST, I_MUCIN, I_FLOAT, I_COUNT };
static const char *const item_names[I_COUNT] = {
    "round_glands",      "regular_nuclei", "high_nuclear_density",    "pleomorphic_nuclei",
    "lost_architecture", "mucin_pools",    "floating_tumour_clusters"};
static const int item_class[I_COUNT] = {0, 0, 1, 1, 1, 2, 2};

#define DENSITY_T 0.2f
#define CV_T 0.25f
#define MUCIN_T 0.15f

/* One slide's state between the steps of audit(). */
typedef struct reading {
    int W;
    size_t N;
    float s;                             /* pixel scale: W / 64 */
    float *H, *E, *OD, *tmp, *Hs, *soft; /* haematoxylin, eosin, summed optical density, ... */
    uint8_t *nuc, *muc;                  /* nuclear and mucin masks */
    int32_t *lab, *next;
    ph_comp comps[256];
} reading;

/* Colour deconvolution: the slide's white per channel (neutral; a field without glass, all
 * tissue or mucin, has no white pixel, hence the floor), optical density, and the H and E
 * concentrations of Ruifrok's vectors; Hs: H lightly smoothed. */
static void deconvolve(reading *rd, const float *chw, ph_scratch *sc) {
    size_t N = rd->N;
    float wmax = 0.0f, white[3];
    for (int c = 0; c < 3; c++)
        wmax = fmaxf(wmax, ph_quantile(chw + (size_t)c * N, (int)N, 0.995f, 0.0f, 1.0f));
    for (int c = 0; c < 3; c++) white[c] = ph_clampf(wmax, 0.95f, 1.0f);
    double h[3] = {0.65, 0.70, 0.29}, e[3] = {0.07, 0.99, 0.11}, nh = 0, ne = 0;
    for (int c = 0; c < 3; c++) {
        nh += h[c] * h[c];
        ne += e[c] * e[c];
    }
    for (int c = 0; c < 3; c++) {
        h[c] /= sqrt(nh);
        e[c] /= sqrt(ne);
    }
    double hh = 1.0, ee = 1.0, he = h[0] * e[0] + h[1] * e[1] + h[2] * e[2], det = hh * ee - he * he;
    for (size_t k = 0; k < N; k++) {
        double od[3], ph = 0, pe = 0, tot = 0;
        for (int c = 0; c < 3; c++) {
            od[c] = -log(fmax(chw[(size_t)c * N + k], 1e-3) / white[c]);
            if (od[c] < 0) od[c] = 0;
            ph += od[c] * h[c];
            pe += od[c] * e[c];
            tot += od[c];
        }
        rd->H[k] = (float)((ee * ph - he * pe) / det);
        rd->E[k] = (float)((hh * pe - he * ph) / det);
        rd->OD[k] = (float)tot;
    }
    memcpy(rd->Hs, rd->H, N * sizeof(float));
    ph_blur(rd->Hs, rd->W, rd->W, 0.6f * rd->s, sc);
}

/* Nuclei: haematoxylin above 0.45 of the way from its median to its 99th percentile; touching
 * ones split (every nuclear pixel climbs to its local haematoxylin maximum: one region per
 * maximum, in lab); gives the region count and the threshold, and the tissue level next to
 * nuclei (the median haematoxylin of non-nuclear tissue). */
static int find_nuclei(reading *rd, float *T_out, float *base_out) {
    int W = rd->W;
    size_t N = rd->N;
    float *H = rd->H, *Hs = rd->Hs, *tmp = rd->tmp;
    uint8_t *nuc = rd->nuc;
    int32_t *lab = rd->lab, *next = rd->next;
    float q50 = ph_quantile(Hs, (int)N, 0.5f, -0.5f, 4.0f), q99 = ph_quantile(Hs, (int)N, 0.99f, -0.5f, 4.0f);
    float T = q50 + 0.45f * (q99 - q50);
    for (size_t k = 0; k < N; k++) nuc[k] = Hs[k] > T;
    int nt = 0;
    for (size_t k = 0; k < N; k++)
        if (!nuc[k] && rd->OD[k] > 0.25f) tmp[nt++] = H[k];
    *base_out = nt ? ph_quantile(tmp, nt, 0.5f, -0.5f, 4.0f) : q50;
    *T_out = T;
    for (size_t k = 0; k < N; k++) {
        next[k] = -1;
        if (!nuc[k]) continue;
        int i = (int)(k % (size_t)W), j = (int)(k / (size_t)W);
        size_t best = k;
        for (int dj = -1; dj <= 1; dj++)
            for (int di = -1; di <= 1; di++) {
                int ii = i + di, jj = j + dj;
                if (ii < 0 || jj < 0 || ii >= W || jj >= W) continue;
                size_t q = (size_t)jj * W + ii;
                if (nuc[q] && Hs[q] > Hs[best]) best = q;
            }
        next[k] = (int32_t)best;
    }
    int nreg = 0;
    for (size_t k = 0; k < N; k++) lab[k] = 0;
    for (size_t k = 0; k < N; k++) {
        if (!nuc[k] || lab[k]) continue;
        size_t p = k;
        while (!lab[p] && (size_t)next[p] != p) p = (size_t)next[p];
        int id = lab[p] ? lab[p] : (lab[p] = ++nreg);
        for (size_t q = k; !lab[q]; q = (size_t)next[q]) lab[q] = id;
    }
    return nreg;
}

/* Every nucleus grows by 2 px (its blurred rim), then its area is a soft area: linear unmixing
 * between the tissue level and the typical nuclear level (the median of the nuclei's peaks).
 * Blur moves stain around but keeps its sum, so small blurred nuclei keep their area. Gives the
 * nuclear density and the nuclei's mean radius, its coefficient of variation and their count
 * (nuclei cut by the border, or smaller than noise, left out). */
static void measure_nuclei(reading *rd, int nreg, float T, float base, ph_scratch *sc, double *dens_out,
                           double *mr_out, double *cv_out, int *nnuc_out) {
    int W = rd->W;
    size_t N = rd->N;
    float s = rd->s, *H = rd->H, *Hs = rd->Hs;
    int32_t *lab = rd->lab, *next = rd->next;
    float *peak = rd->tmp, *area = ph_salloc(sc, (size_t)nreg + 1);
    uint8_t *edge = (uint8_t *)rd->soft;
    for (int t = 0; t <= nreg; t++) {
        peak[t] = 0.0f;
        area[t] = 0.0f;
        edge[t] = 0;
    }
    for (size_t k = 0; k < N; k++)
        if (lab[k] && Hs[k] > peak[lab[k]]) peak[lab[k]] = Hs[k];
    float *pk = ph_salloc(sc, (size_t)nreg + 1);
    for (int t = 1; t <= nreg; t++) pk[t - 1] = peak[t];
    float L = nreg ? ph_quantile(pk, nreg, 0.5f, -0.5f, 4.0f) : T;
    for (int round = 0; round < (int)(1.0f * s + 0.5f); round++) {
        for (size_t k = 0; k < N; k++) next[k] = lab[k];
        for (int j = 0; j < W; j++)
            for (int i = 0; i < W; i++) {
                size_t k = (size_t)j * W + i;
                if (lab[k]) continue;
                for (int d = 0; d < 4; d++) {
                    int ii = i + (d == 0) - (d == 1), jj = j + (d == 2) - (d == 3);
                    if (ii >= 0 && jj >= 0 && ii < W && jj < W && lab[(size_t)jj * W + ii]) {
                        next[k] = lab[(size_t)jj * W + ii];
                        break;
                    }
                }
            }
        memcpy(lab, next, N * sizeof(int32_t));
    }
    double dens = 0.0;
    for (size_t k = 0; k < N; k++) {
        int id = lab[k];
        if (!id) continue;
        float v = ph_clampf((H[k] - base) / fmaxf(L - base, 0.05f), 0.0f, 1.3f);
        area[id] += v;
        dens += v;
        int i = (int)(k % (size_t)W), j = (int)(k / (size_t)W);
        if (i == 0 || j == 0 || i == W - 1 || j == W - 1) edge[id] = 1;
    }
    double sr = 0, sr2 = 0;
    int nnuc = 0;
    for (int t = 1; t <= nreg; t++) {
        if (edge[t] || area[t] < 2.0f * s * s) continue; /* cut by the border, or noise */
        double rr = sqrt(area[t] / PH_PI) / W;
        sr += rr;
        sr2 += rr * rr;
        nnuc++;
    }
    double mr = nnuc ? sr / nnuc : 0.0, cv = nnuc > 1 ? sqrt(fmax(sr2 / nnuc - mr * mr, 0.0)) / mr : 0.0;
    *dens_out = dens;
    *mr_out = mr;
    *cv_out = cv;
    *nnuc_out = nnuc;
}

/* Mucin (pale and haematoxylin-dominant, in muc; its pixel count returned) and lumens (near
 * white, in E): summed optical density of glass / lumen < 0.3 and eosin-tinted; mucin 0.25..0.75
 * with at least as much haematoxylin as eosin; cytoplasm denser; stroma eosin-dominant. */
static double find_mucin(reading *rd, ph_scratch *sc) {
    size_t N = rd->N;
    float *OD = rd->OD, *E = rd->E, *H = rd->H;
    for (size_t k = 0; k < N; k++) {
        int mucus = OD[k] > 0.25f && OD[k] < 0.75f && E[k] < 1.2f * H[k] && H[k] > 0.06f && !rd->nuc[k];
        int lumen = OD[k] < 0.3f && !mucus;
        OD[k] = mucus ? 1.0f : 0.0f;
        E[k] = lumen ? 1.0f : 0.0f; /* E now: lumen */
    }
    ph_blur(OD, rd->W, rd->W, 1.0f * rd->s, sc);
    double mucin = 0.0;
    for (size_t k = 0; k < N; k++) {
        rd->muc[k] = OD[k] > 0.5f;
        mucin += rd->muc[k];
    }
    return mucin;
}

/* For each component of wm (labels in next): how many pixels ring it (ring[2 id]) and how many
 * of those are mucin (ring[2 id + 1]). */
static int *ring_counts(const reading *rd, const uint8_t *wm, int nc, ph_scratch *sc) {
    int W = rd->W;
    int *ring = (int *)ph_salloc(sc, 2 * (size_t)(nc + 1));
    for (int c = 0; c <= 2 * nc + 1; c++) ring[c] = 0;
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) {
            size_t k = (size_t)j * W + i;
            if (wm[k]) continue;
            for (int d = 0; d < 4; d++) {
                int ii = i + (d == 0) - (d == 1), jj = j + (d == 2) - (d == 3);
                if (ii < 0 || jj < 0 || ii >= W || jj >= W) continue;
                int id = rd->next[(size_t)jj * W + ii];
                if (id) {
                    ring[2 * id]++;
                    ring[2 * id + 1] += rd->muc[k];
                    break;
                }
            }
        }
    return ring;
}

/* glands: lumens of at least a small gland's size, clear of the border and lined by tissue
 * rather than mucin (a pale spot in a mucin pool is no gland); their count and lumen area */
static int count_glands(reading *rd, uint8_t *wm, ph_scratch *sc, double *lumen_out) {
    size_t N = rd->N;
    for (size_t k = 0; k < N; k++) wm[k] = rd->E[k] > 0.5f;
    int nc = ph_components(wm, rd->W, rd->W, rd->next, rd->comps, 256, sc), glands = 0;
    int *lring = ring_counts(rd, wm, nc, sc);
    double lumen = 0.0;
    for (int c = 0; c < nc && c < 256; c++)
        if (!rd->comps[c].touches_border && rd->comps[c].area >= 0.004 * (double)N &&
            lring[2 * (c + 1) + 1] < 0.3 * lring[2 * (c + 1)]) {
            glands++;
            lumen += rd->comps[c].area;
        }
    *lumen_out = lumen;
    return glands;
}

/* floating clusters: nuclear groups whose 3-px surroundings are mostly mucin */
static int count_clusters(reading *rd, uint8_t *wm, ph_scratch *sc) {
    int W = rd->W;
    size_t N = rd->N;
    for (size_t k = 0; k < N; k++) wm[k] = rd->nuc[k];
    for (int t = 0; t < (int)(2.0f * rd->s + 0.5f); t++) {
        for (int j = 0; j < W; j++)
            for (int i = 0; i < W; i++) {
                size_t k = (size_t)j * W + i;
                if (wm[k] & 1) continue;
                for (int d = 0; d < 4; d++) {
                    int ii = i + (d == 0) - (d == 1), jj = j + (d == 2) - (d == 3);
                    if (ii >= 0 && jj >= 0 && ii < W && jj < W && (wm[(size_t)jj * W + ii] & 1)) {
                        wm[k] |= 2;
                        break;
                    }
                }
            }
        for (size_t k = 0; k < N; k++)
            if (wm[k] & 2) wm[k] = 1;
    }
    int nc = ph_components(wm, W, W, rd->next, rd->comps, 256, sc);
    int *ring = ring_counts(rd, wm, nc, sc);
    int clusters = 0;
    for (int c = 1; c <= nc; c++)
        if (ring[2 * c] >= 8 && ring[2 * c + 1] >= 0.6 * ring[2 * c]) clusters++;
    return clusters;
}

/* One slide: deconvolution, nuclei (found, split, measured), mucin, glands, floating clusters,
 * then the measures, checklist verdicts and label. */
static void audit(const float *chw, int W, float *ms, int32_t *label, uint8_t *items, ph_scratch *sc) {
    reading rd;
    rd.W = W;
    rd.N = (size_t)W * (size_t)W;
    rd.s = (float)W / 64.0f;
    size_t N = rd.N;
    rd.H = ph_salloc(sc, N), rd.E = ph_salloc(sc, N), rd.OD = ph_salloc(sc, N), rd.tmp = ph_salloc(sc, N);
    rd.Hs = ph_salloc(sc, N), rd.soft = ph_salloc(sc, N);
    rd.nuc = (uint8_t *)ph_salloc(sc, N / 4 + 16), rd.muc = (uint8_t *)ph_salloc(sc, N / 4 + 16);
    rd.lab = (int32_t *)ph_salloc(sc, N), rd.next = (int32_t *)ph_salloc(sc, N);
    for (int t = 0; t < M_COUNT; t++) ms[t] = 0.0f;
    *label = 0;
    deconvolve(&rd, chw, sc);
    float T, base;
    int nreg = find_nuclei(&rd, &T, &base), nnuc;
    double dens, mr, cv, lumen;
    measure_nuclei(&rd, nreg, T, base, sc, &dens, &mr, &cv, &nnuc);
    double mucin = find_mucin(&rd, sc);
    uint8_t *wm = (uint8_t *)rd.Hs; /* Hs no longer needed */
    int glands = count_glands(&rd, wm, sc, &lumen), clusters = count_clusters(&rd, wm, sc);

    float density = (float)(dens / (double)N), mf = (float)(mucin / (double)N);
    ms[M_DENSITY] = density;
    ms[M_SIZE_CV] = (float)cv;
    ms[M_MUCIN] = mf;
    ms[M_N_GLANDS] = (float)glands;
    ms[M_LUMEN] = (float)(lumen / (double)N);
    ms[M_NUC_R] = (float)mr;
    ms[M_N_NUCLEI] = (float)nnuc;
    ms[M_N_CLUSTERS] = (float)clusters;
    int dense = density >= DENSITY_T, pleo = cv >= CV_T, mucinous = mf >= MUCIN_T;
    items[I_GLANDS] = glands >= 2;
    items[I_REGULAR] = !pleo;
    items[I_DENSE] = (uint8_t)dense;
    items[I_PLEO] = (uint8_t)pleo;
    items[I_LOST] = glands == 0 && !mucinous;
    items[I_MUCIN] = (uint8_t)mucinous;
    items[I_FLOAT] = mucinous && clusters > 0;
    if (mucinous) *label = 2;
    else if (dense) *label = 1;
    else if (glands > 0) *label = 0;
    else *label = pleo ? 1 : 0;
}

const ph_oracle_desc ph_oracle_histo = {M_COUNT, measure_names, I_COUNT, item_names, item_class, audit};
