/* oracle_common.c: the oracle auditor's public API (measure and checklist tables, batched
 * audit over OpenMP, resampling of small inputs) and the pixel-analysis helpers the
 * per-modality auditors share: connected components, hole filling, histogram quantiles,
 * Otsu thresholds and the lesion shape descriptors (also used by the derm generator for its
 * ground truth, so that truth and measurement share one definition). */
#include "clinical/clinical.h"
#include <omp.h>
#include <stdlib.h>

/* -------------------------------------------------------- pixel analysis -- */
int ph_components(const uint8_t *mask, int w, int h, int32_t *labels, ph_comp *comps, int max_comp,
                  ph_scratch *s) {
    size_t mark = s->used;
    int n = w * h;
    int32_t *stack = (int32_t *)ph_salloc(s, (size_t)n);
    if (!stack) return 0;
    for (int k = 0; k < n; k++) labels[k] = 0;
    int nc = 0;
    for (int start = 0; start < n; start++) {
        if (!mask[start] || labels[start]) continue;
        int id = ++nc, sp = 0;
        ph_comp c = {0, w, h, -1, -1, 0.0, 0.0, 0};
        labels[start] = id;
        stack[sp++] = start;
        while (sp) {
            int p = stack[--sp], x = p % w, y = p / w;
            c.area++;
            c.cx += x + 0.5;
            c.cy += y + 0.5;
            if (x < c.x0) c.x0 = x;
            if (x > c.x1) c.x1 = x;
            if (y < c.y0) c.y0 = y;
            if (y > c.y1) c.y1 = y;
            if (x == 0 || y == 0 || x == w - 1 || y == h - 1) c.touches_border = 1;
            for (int dy = -1; dy <= 1; dy++) {
                int yy = y + dy;
                if (yy < 0 || yy >= h) continue;
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx;
                    if (xx < 0 || xx >= w) continue;
                    int q = yy * w + xx;
                    if (mask[q] && !labels[q]) {
                        labels[q] = id;
                        stack[sp++] = q;
                    }
                }
            }
        }
        c.cx /= c.area;
        c.cy /= c.area;
        if (id <= max_comp) comps[id - 1] = c;
    }
    s->used = mark;
    return nc;
}

void ph_fill_holes(uint8_t *mask, int w, int h, ph_scratch *s) {
    size_t mark = s->used;
    int n = w * h;
    int32_t *stack = (int32_t *)ph_salloc(s, (size_t)n);
    uint8_t *outside = (uint8_t *)ph_salloc(s, (size_t)n / 4 + 16);
    if (!stack || !outside) {
        s->used = mark;
        return;
    }
    memset(outside, 0, (size_t)n);
    int sp = 0;
    for (int p = 0; p < n; p++) {
        int x = p % w, y = p / w;
        if ((x == 0 || y == 0 || x == w - 1 || y == h - 1) && !mask[p]) {
            outside[p] = 1;
            stack[sp++] = p;
        }
    }
    while (sp) {
        int p = stack[--sp], x = p % w, y = p / w;
        int nb[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1};
        for (int t = 0; t < 4; t++) {
            int q = nb[t];
            if (q >= 0 && !mask[q] && !outside[q]) {
                outside[q] = 1;
                stack[sp++] = q;
            }
        }
    }
    for (int p = 0; p < n; p++)
        if (!outside[p]) mask[p] = 1;
    s->used = mark;
}

float ph_quantile(const float *v, int n, float q, float lo, float hi) {
    enum { NB = 1024 };
    int hist[NB] = {0}, cnt = 0;
    float scale = (float)NB / (hi - lo);
    for (int k = 0; k < n; k++) {
        int b = (int)((v[k] - lo) * scale);
        hist[b < 0 ? 0 : (b >= NB ? NB - 1 : b)]++;
        cnt++;
    }
    if (!cnt) return lo;
    double target = q * (double)cnt, acc = 0.0;
    for (int b = 0; b < NB; b++) {
        if (acc + hist[b] >= target && hist[b] > 0)
            return lo + ((float)b + (float)((target - acc) / hist[b])) / scale;
        acc += hist[b];
    }
    return hi;
}

float ph_otsu(const float *v, const uint8_t *mask, int n, float lo, float hi) {
    enum { NB = 256 };
    double hist[NB] = {0}, tot = 0.0, sum = 0.0;
    float scale = (float)NB / (hi - lo);
    for (int k = 0; k < n; k++) {
        if (mask && !mask[k]) continue;
        int b = (int)((v[k] - lo) * scale);
        b = b < 0 ? 0 : (b >= NB ? NB - 1 : b);
        hist[b] += 1.0;
        tot += 1.0;
        sum += b;
    }
    double wb = 0.0, sb = 0.0, best = -1.0;
    int bt = NB / 2;
    for (int b = 0; b < NB - 1; b++) {
        wb += hist[b];
        sb += b * hist[b];
        double wf = tot - wb;
        if (wb < 1.0 || wf < 1.0) continue;
        double mb = sb / wb, mf = (sum - sb) / wf;
        double between = wb * wf * (mb - mf) * (mb - mf);
        if (between > best) {
            best = between;
            bt = b;
        }
    }
    return lo + ((float)bt + 1.0f) / scale;
}

static inline float bilinear(const float *m, int w, int h, float x, float y) {
    x -= 0.5f;
    y -= 0.5f;
    if (x < 0.0f || y < 0.0f || x > (float)(w - 1) || y > (float)(h - 1)) return 0.0f;
    int i = (int)x, j = (int)y;
    if (i > w - 2) i = w - 2;
    if (j > h - 2) j = h - 2;
    float fx = x - (float)i, fy = y - (float)j;
    const float *r0 = m + (size_t)j * (size_t)w + i, *r1 = r0 + w;
    return (r0[0] * (1 - fx) + r0[1] * fx) * (1 - fy) + (r1[0] * (1 - fx) + r1[1] * fx) * fy;
}

void ph_shape_measure(const float *m, int w, int h, ph_shape *out) {
    double A = 0, sx = 0, sy = 0;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            double v = m[(size_t)j * (size_t)w + i];
            A += v;
            sx += v * (i + 0.5);
            sy += v * (j + 0.5);
        }
    memset(out, 0, sizeof *out);
    if (A < 4.0) return;
    double cx = sx / A, cy = sy / A, mxx = 0, myy = 0, mxy = 0;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            double v = m[(size_t)j * (size_t)w + i], dx = i + 0.5 - cx, dy = j + 0.5 - cy;
            mxx += v * dx * dx;
            myy += v * dy * dy;
            mxy += v * dx * dy;
        }
    double phi = 0.5 * atan2(2.0 * mxy, mxx - myy);
    enum { NA = 128 };
    double r[NA], mean = 0.0;
    float step = 0.5f, rmax = (float)(w > h ? w : h);
    for (int k = 0; k < NA; k++) {
        double th = 2.0 * PH_PI * k / NA;
        float ux = (float)cos(th), uy = (float)sin(th), acc = 0.0f;
        int zeros = 0;
        /* stop 8 px after the ray has left the shape (shapes here are star-like about their
         * centroid) */
        for (float t = 0.25f; t < rmax && zeros < 16; t += step) {
            float v = bilinear(m, w, h, (float)cx + t * ux, (float)cy + t * uy);
            acc += v * step;
            zeros = v > 0.0f ? 0 : zeros + 1;
        }
        r[k] = acc;
        mean += acc / NA;
    }
    /* the outline's overall shape is its harmonics 0..3 (size, offset, ellipse, triangle);
     * irregularity is what they leave unexplained */
    double lp[NA], ca[4] = {mean, 0, 0, 0}, sa[4] = {0, 0, 0, 0};
    for (int f = 1; f <= 3; f++) {
        for (int k = 0; k < NA; k++) {
            double th = 2.0 * PH_PI * f * k / NA;
            ca[f] += r[k] * cos(th);
            sa[f] += r[k] * sin(th);
        }
        ca[f] *= 2.0 / NA;
        sa[f] *= 2.0 / NA;
    }
    for (int k = 0; k < NA; k++) {
        double th = 2.0 * PH_PI * k / NA;
        lp[k] = mean;
        for (int f = 1; f <= 3; f++) lp[k] += ca[f] * cos(f * th) + sa[f] * sin(f * th);
    }
    /* asymmetry of that overall shape: the area between it and its mirror image about each
     * principal axis (per direction, the sector between the two radii), over twice its area */
    double asym = 0.0, a2 = 0.0;
    for (int k = 0; k < NA; k++) a2 += lp[k] * lp[k];
    for (int ax = 0; ax < 2; ax++) {
        double ang = phi + ax * PH_PI / 2, diff = 0.0;
        for (int k = 0; k < NA; k++) {
            double th = 2.0 * ang - 2.0 * PH_PI * k / NA, rm = mean;
            for (int f = 1; f <= 3; f++) rm += ca[f] * cos(f * th) + sa[f] * sin(f * th);
            diff += fabs(lp[k] * lp[k] - rm * rm);
        }
        asym += 0.5 * (a2 > 0 ? diff / (2.0 * a2) : 0.0);
    }
    double rss = 0.0, dmax = 0.0;
    for (int k = 0; k < NA; k++) {
        rss += (r[k] - lp[k]) * (r[k] - lp[k]);
        if (k < NA / 2 && r[k] + r[k + NA / 2] > dmax) dmax = r[k] + r[k + NA / 2];
    }
    out->area = A;
    out->cx = cx;
    out->cy = cy;
    out->asymmetry = asym;
    out->irregularity = mean > 0 ? sqrt(rss / NA) / mean : 0.0;
    out->diameter = dmax;
    out->mean_radius = mean;
}

/* ------------------------------------------------------------- public API -- */
static const ph_oracle_desc *const oracles[PH_N_MODALITIES] = {&ph_oracle_cxr, &ph_oracle_fundus,
                                                               &ph_oracle_derm, &ph_oracle_histo};
const ph_oracle_desc *ph_oracle_get(int m) { return m >= 0 && m < PH_N_MODALITIES ? oracles[m] : NULL; }

int craft_oracle_measure_count(int m) {
    if (!ph_oracle_get(m))
        return craft_fail(CRAFT_EINVAL, "oracle: modality %d out of range 0..%d", m, PH_N_MODALITIES - 1), -1;
    return oracles[m]->n_measures;
}
const char *craft_oracle_measure_name(int m, int i) {
    const ph_oracle_desc *o = ph_oracle_get(m);
    if (!o || i < 0 || i >= o->n_measures) {
        craft_fail(CRAFT_EINVAL, "oracle: no measure %d in modality %d", i, m);
        return NULL;
    }
    return o->measure_names[i];
}
int craft_oracle_item_count(int m) {
    if (!ph_oracle_get(m))
        return craft_fail(CRAFT_EINVAL, "oracle: modality %d out of range 0..%d", m, PH_N_MODALITIES - 1), -1;
    return oracles[m]->n_items;
}
const char *craft_oracle_item_name(int m, int i) {
    const ph_oracle_desc *o = ph_oracle_get(m);
    if (!o || i < 0 || i >= o->n_items) {
        craft_fail(CRAFT_EINVAL, "oracle: no checklist item %d in modality %d", i, m);
        return NULL;
    }
    return o->item_names[i];
}
int craft_oracle_item_class(int m, int i) {
    const ph_oracle_desc *o = ph_oracle_get(m);
    if (!o || i < 0 || i >= o->n_items)
        return craft_fail(CRAFT_EINVAL, "oracle: no checklist item %d in modality %d", i, m), -1;
    return o->item_class[i];
}

/* Small inputs are measured at 64 px (bilinear, half-pixel centres) so that every pixel-scale
 * constant of the auditors stays meaningful. */
static void upsample(const float *src, int n, float *dst, int w) {
    float sc = (float)n / (float)w;
    for (int c = 0; c < 3; c++) {
        const float *p = src + (size_t)c * (size_t)n * (size_t)n;
        float *o = dst + (size_t)c * (size_t)w * (size_t)w;
        for (int j = 0; j < w; j++) {
            float y = ph_clampf(((float)j + 0.5f) * sc - 0.5f, 0.0f, (float)(n - 1));
            int j0 = (int)y, j1 = j0 + 1 < n ? j0 + 1 : j0;
            float fy = y - (float)j0;
            for (int i = 0; i < w; i++) {
                float x = ph_clampf(((float)i + 0.5f) * sc - 0.5f, 0.0f, (float)(n - 1));
                int i0 = (int)x, i1 = i0 + 1 < n ? i0 + 1 : i0;
                float fx = x - (float)i0;
                float a = p[j0 * n + i0] * (1 - fx) + p[j0 * n + i1] * fx;
                float b = p[j1 * n + i0] * (1 - fx) + p[j1 * n + i1] * fx;
                o[j * w + i] = a + (b - a) * fy;
            }
        }
    }
}

int craft_oracle_audit(int m, int n, int size, const float *images, float *measures, int32_t *labels,
                       uint8_t *items) {
    const ph_oracle_desc *o = ph_oracle_get(m);
    if (!o)
        return craft_fail(CRAFT_EINVAL, "oracle_audit: modality %d out of range 0..%d", m,
                          PH_N_MODALITIES - 1);
    if (n < 0)
        return craft_fail(CRAFT_EINVAL, "oracle_audit(%s): n = %d, expected >= 0", ph_gen_get(m)->name, n);
    if (size < PH_MIN_SIZE || size > PH_ORACLE_MAX_SIZE)
        return craft_fail(CRAFT_EINVAL, "oracle_audit(%s): size %d out of range %d..%d", ph_gen_get(m)->name,
                          size, PH_MIN_SIZE, PH_ORACLE_MAX_SIZE);
    if (n == 0) return CRAFT_OK;
    if (!images) return craft_fail(CRAFT_EINVAL, "oracle_audit(%s): NULL images", ph_gen_get(m)->name);
    int w = size < 64 ? 64 : size;
    ph_arena a;
    CRAFT_TRY(ph_arena_open(&a, w, "oracle_audit"));
    size_t img = 3 * (size_t)size * (size_t)size;
#pragma omp parallel num_threads(a.nthreads)
    {
        ph_scratch s;
        ph_arena_thread(&a, omp_get_thread_num(), &s);
        float mbuf[64];
        uint8_t ibuf[64];
#pragma omp for schedule(dynamic, 4)
        for (int k = 0; k < n; k++) {
            ph_scratch_reset(&s);
            const float *x = images + (size_t)k * img;
            if (w != size) {
                float *up = ph_salloc(&s, 3 * (size_t)w * (size_t)w);
                upsample(x, size, up, w);
                x = up;
            }
            int32_t lab = 0;
            memset(mbuf, 0, sizeof mbuf);
            memset(ibuf, 0, sizeof ibuf);
            o->audit(x, w, mbuf, &lab, ibuf, &s);
            if (measures)
                memcpy(measures + (size_t)k * (size_t)o->n_measures, mbuf,
                       (size_t)o->n_measures * sizeof(float));
            if (items) memcpy(items + (size_t)k * (size_t)o->n_items, ibuf, (size_t)o->n_items);
            if (labels) labels[k] = lab;
        }
    }
    ph_arena_close(&a);
    return CRAFT_OK;
}
