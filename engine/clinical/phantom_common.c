/* phantom_common.c: the clinical phantom generator's public API (modality tables, batched
 * generation over OpenMP, corruption for robustness checks) and the drawing helpers the
 * per-modality renderers share (value-noise fBm, Gaussian/box blur, anti-aliased stamps). */
#include "clinical/clinical.h"
#include <omp.h>
#include <stdlib.h>

/* ------------------------------------------------------------- scratch -- */
float *ph_salloc(ph_scratch *s, size_t n) {
    n = (n + 15) & ~(size_t)15;            /* keep 64-byte alignment */
    if (s->used + n > s->cap) return NULL; /* sized up front: a bug, callers check */
    float *p = s->base + s->used;
    s->used += n;
    return p;
}

size_t ph_scratch_floats(int w) {
    size_t plane = (size_t)w * (size_t)w;
    return 40 * plane + 65536;
}

int ph_arena_open(ph_arena *a, int w, const char *op) {
    a->nthreads = omp_get_max_threads();
    if (a->nthreads < 1) a->nthreads = 1;
    a->per_thread = ph_scratch_floats(w);
    a->nbytes = (size_t)a->nthreads * a->per_thread * sizeof(float);
    a->block = craft_alloc(a->nbytes);
    if (!a->block)
        return craft_fail(CRAFT_ENOMEM, "%s: cannot allocate %zu bytes of scratch for %d threads", op,
                          a->nbytes, a->nthreads);
    return CRAFT_OK;
}
void ph_arena_thread(ph_arena *a, int t, ph_scratch *s) {
    s->base = a->block + (size_t)t * a->per_thread;
    s->cap = a->per_thread;
    s->used = 0;
}
void ph_arena_close(ph_arena *a) {
    if (a->block) craft_free(a->block, a->nbytes);
    a->block = NULL;
}

/* ------------------------------------------------------------- drawing -- */
void ph_fbm(float *dst, int w, int h, ph_rng *r, float cells, int octaves, float gain, float aniso,
            ph_scratch *s) {
    size_t mark = s->used;
    int *ix = (int *)ph_salloc(s, (size_t)w), *iy = (int *)ph_salloc(s, (size_t)h);
    float *fx = ph_salloc(s, (size_t)w), *fy = ph_salloc(s, (size_t)h);
    for (int k = 0; k < w * h; k++) dst[k] = 0.0f;
    size_t mark2 = s->used;
    float amp = 1.0f, total = 0.0f;
    for (int o = 0; o < octaves; o++) {
        float cx = cells / (aniso > 1.0f ? aniso : 1.0f), cy = cells;
        int lx = (int)ceilf(cx) + 2, ly = (int)ceilf(cy) + 2;
        float *lat = ph_salloc(s, (size_t)lx * (size_t)ly);
        if (!lat || !ix || !iy || !fx || !fy) break;
        for (int k = 0; k < lx * ly; k++) lat[k] = (float)(2.0 * ph_unif(r) - 1.0);
        float ox = (float)ph_unif(r), oy = (float)ph_unif(r);
        for (int i = 0; i < w; i++) {
            float u = ((float)i + 0.5f) / (float)w * cx + ox;
            int i0 = (int)u;
            float f = u - (float)i0;
            ix[i] = i0;
            fx[i] = f * f * (3.0f - 2.0f * f);
        }
        for (int j = 0; j < h; j++) {
            float v = ((float)j + 0.5f) / (float)h * cy + oy;
            int j0 = (int)v;
            float f = v - (float)j0;
            iy[j] = j0;
            fy[j] = f * f * (3.0f - 2.0f * f);
        }
        for (int j = 0; j < h; j++) {
            const float *r0 = lat + (size_t)iy[j] * (size_t)lx, *r1 = r0 + lx;
            float wy = fy[j];
            float *d = dst + (size_t)j * (size_t)w;
            for (int i = 0; i < w; i++) {
                int a = ix[i];
                float top = r0[a] + (r0[a + 1] - r0[a]) * fx[i];
                float bot = r1[a] + (r1[a + 1] - r1[a]) * fx[i];
                d[i] += amp * (top + (bot - top) * wy);
            }
        }
        total += amp;
        amp *= gain;
        cells *= 2.0f;
        s->used = mark2; /* drop the lattice */
    }
    /* value noise of one octave has sd ~0.35: rescale so the sum spans about [-1, 1] */
    float scale = total > 0.0f ? 1.6f / total : 0.0f;
    for (int k = 0; k < w * h; k++) dst[k] = ph_clampf(dst[k] * scale, -1.0f, 1.0f);
    s->used = mark;
}

void ph_blur(float *p, int w, int h, float sigma, ph_scratch *s) {
    if (sigma < 0.05f) return;
    int R = (int)ceilf(3.0f * sigma);
    if (R > 64) R = 64;
    size_t mark = s->used;
    float k[129];
    float sum = 0.0f;
    for (int t = -R; t <= R; t++) {
        k[t + R] = expf(-0.5f * (float)(t * t) / (sigma * sigma));
        sum += k[t + R];
    }
    for (int t = 0; t <= 2 * R; t++) k[t] /= sum;
    float *line = ph_salloc(s, (size_t)w + 2 * (size_t)R + 16);
    float *tmp = ph_salloc(s, (size_t)w * (size_t)h);
    if (!line || !tmp) {
        s->used = mark;
        return;
    }
    for (int j = 0; j < h; j++) {
        const float *row = p + (size_t)j * (size_t)w;
        for (int t = 0; t < R; t++) {
            line[t] = row[0];
            line[w + R + t] = row[w - 1];
        }
        memcpy(line + R, row, (size_t)w * sizeof(float));
        float *o = tmp + (size_t)j * (size_t)w;
        for (int i = 0; i < w; i++) {
            float a = 0.0f;
            for (int t = 0; t <= 2 * R; t++) a += k[t] * line[i + t];
            o[i] = a;
        }
    }
    for (int j = 0; j < h; j++) {
        float *o = p + (size_t)j * (size_t)w;
        for (int i = 0; i < w; i++) o[i] = 0.0f;
        for (int t = -R; t <= R; t++) {
            int jj = j + t < 0 ? 0 : (j + t >= h ? h - 1 : j + t);
            const float *src = tmp + (size_t)jj * (size_t)w;
            float kt = k[t + R];
            for (int i = 0; i < w; i++) o[i] += kt * src[i];
        }
    }
    s->used = mark;
}

void ph_box(float *p, int w, int h, int r, ph_scratch *s) {
    if (r < 1) return;
    size_t mark = s->used;
    float *tmp = ph_salloc(s, (size_t)w * (size_t)h);
    if (!tmp) return;
    for (int j = 0; j < h; j++) {
        const float *row = p + (size_t)j * (size_t)w;
        for (int i = 0; i < w; i++) {
            int a = i - r < 0 ? 0 : i - r, b = i + r >= w ? w - 1 : i + r;
            float acc = 0.0f;
            for (int t = a; t <= b; t++) acc += row[t];
            tmp[(size_t)j * (size_t)w + i] = acc / (float)(b - a + 1);
        }
    }
    for (int j = 0; j < h; j++) {
        int a = j - r < 0 ? 0 : j - r, b = j + r >= h ? h - 1 : j + r;
        float *o = p + (size_t)j * (size_t)w;
        for (int i = 0; i < w; i++) o[i] = 0.0f;
        for (int t = a; t <= b; t++) {
            const float *src = tmp + (size_t)t * (size_t)w;
            for (int i = 0; i < w; i++) o[i] += src[i];
        }
        float inv = 1.0f / (float)(b - a + 1);
        for (int i = 0; i < w; i++) o[i] *= inv;
    }
    s->used = mark;
}

void ph_add_noise(float *p, int n, float sd, uint64_t key) {
    if (sd <= 0.0f) return;
    for (int k = 0; k < n; k++) p[k] += sd * ph_hash_gauss(key, (uint64_t)k);
}

static inline float ellipse_cov(float dx, float dy, float rx, float ry, float c, float sn) {
    float u = (dx * c + dy * sn) / rx, v = (-dx * sn + dy * c) / ry;
    float q = sqrtf(u * u + v * v);
    float g = sqrtf(u * u / (rx * rx) + v * v / (ry * ry));
    if (g < 1e-6f) return 1.0f;
    float d = (q - 1.0f) * q / g; /* ~ signed distance to the outline, pixels */
    return ph_clampf(0.5f - d, 0.0f, 1.0f);
}

void ph_stamp_ellipse_max(float *plane, int w, int h, float cx, float cy, float rx, float ry, float angle,
                          float value) {
    float ext = (rx > ry ? rx : ry) + 1.5f;
    int i0 = (int)floorf(cx - ext), i1 = (int)ceilf(cx + ext), j0 = (int)floorf(cy - ext),
        j1 = (int)ceilf(cy + ext);
    if (i0 < 0) i0 = 0;
    if (j0 < 0) j0 = 0;
    if (i1 > w - 1) i1 = w - 1;
    if (j1 > h - 1) j1 = h - 1;
    float c = cosf(angle), sn = sinf(angle);
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            float a = value * ellipse_cov((float)i + 0.5f - cx, (float)j + 0.5f - cy, rx, ry, c, sn);
            float *d = plane + (size_t)j * (size_t)w + i;
            if (a > *d) *d = a;
        }
}

void ph_stamp_ellipse_blend(float *plane, int w, int h, float cx, float cy, float rx, float ry, float angle,
                            float value, float alpha) {
    float ext = (rx > ry ? rx : ry) + 1.5f;
    int i0 = (int)floorf(cx - ext), i1 = (int)ceilf(cx + ext), j0 = (int)floorf(cy - ext),
        j1 = (int)ceilf(cy + ext);
    if (i0 < 0) i0 = 0;
    if (j0 < 0) j0 = 0;
    if (i1 > w - 1) i1 = w - 1;
    if (j1 > h - 1) j1 = h - 1;
    float c = cosf(angle), sn = sinf(angle);
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            float a = alpha * ellipse_cov((float)i + 0.5f - cx, (float)j + 0.5f - cy, rx, ry, c, sn);
            float *d = plane + (size_t)j * (size_t)w + i;
            *d = *d * (1.0f - a) + value * a;
        }
}

void ph_stamp_segment_max(float *plane, int w, int h, float x0, float y0, float x1, float y1, float hw0,
                          float hw1, float value) {
    float ext = (hw0 > hw1 ? hw0 : hw1) + 1.5f;
    int i0 = (int)floorf(fminf(x0, x1) - ext), i1 = (int)ceilf(fmaxf(x0, x1) + ext);
    int j0 = (int)floorf(fminf(y0, y1) - ext), j1 = (int)ceilf(fmaxf(y0, y1) + ext);
    if (i0 < 0) i0 = 0;
    if (j0 < 0) j0 = 0;
    if (i1 > w - 1) i1 = w - 1;
    if (j1 > h - 1) j1 = h - 1;
    float dx = x1 - x0, dy = y1 - y0, L2 = dx * dx + dy * dy;
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            float px = (float)i + 0.5f - x0, py = (float)j + 0.5f - y0;
            float t = L2 > 1e-9f ? ph_clampf((px * dx + py * dy) / L2, 0.0f, 1.0f) : 0.0f;
            float ex = px - t * dx, ey = py - t * dy;
            float d = sqrtf(ex * ex + ey * ey), hw = hw0 + (hw1 - hw0) * t;
            float a = value * ph_clampf(hw - d + 0.5f, 0.0f, 1.0f);
            float *o = plane + (size_t)j * (size_t)w + i;
            if (a > *o) *o = a;
        }
}

void ph_finish(float *chw, int w, float blur_sigma, float noise_sd, uint64_t noise_key, int grey,
               ph_scratch *s) {
    size_t plane = (size_t)w * (size_t)w;
    for (int c = 0; c < 3; c++) {
        float *p = chw + (size_t)c * plane;
        ph_blur(p, w, w, blur_sigma, s);
        ph_add_noise(p, (int)plane, noise_sd,
                     grey ? noise_key : noise_key ^ (0x51ed27ULL * (uint64_t)(c + 1)));
        for (size_t k = 0; k < plane; k++) p[k] = ph_clampf(p[k], 0.0f, 1.0f);
    }
}

/* ------------------------------------------------------------- public API -- */
static const ph_gen_desc *const gens[PH_N_MODALITIES] = {&ph_gen_cxr, &ph_gen_fundus, &ph_gen_derm,
                                                         &ph_gen_histo};
const ph_gen_desc *ph_gen_get(int m) { return m >= 0 && m < PH_N_MODALITIES ? gens[m] : NULL; }

int craft_phantom_modality_count(void) { return PH_N_MODALITIES; }

const char *craft_phantom_modality_name(int m) {
    if (!ph_gen_get(m)) {
        craft_fail(CRAFT_EINVAL, "phantom: modality %d out of range 0..%d", m, PH_N_MODALITIES - 1);
        return NULL;
    }
    return gens[m]->name;
}

int craft_phantom_modality_from_name(const char *name, int *m) {
    if (!name || !m) return craft_fail(CRAFT_EINVAL, "phantom_modality_from_name: NULL argument");
    for (int k = 0; k < PH_N_MODALITIES; k++)
        if (strcmp(gens[k]->name, name) == 0) {
            *m = k;
            return CRAFT_OK;
        }
    return craft_fail(CRAFT_EINVAL, "phantom: unknown modality '%s' (expected cxr, fundus, derm or histo)",
                      name);
}

int craft_phantom_class_count(int m) {
    if (!ph_gen_get(m))
        return craft_fail(CRAFT_EINVAL, "phantom: modality %d out of range 0..%d", m, PH_N_MODALITIES - 1),
               -1;
    return gens[m]->n_classes;
}

const char *craft_phantom_class_name(int m, int cls) {
    const ph_gen_desc *g = ph_gen_get(m);
    if (!g || cls < 0 || cls >= g->n_classes) {
        craft_fail(CRAFT_EINVAL, "phantom: no class %d in modality %d", cls, m);
        return NULL;
    }
    return g->class_names[cls];
}

int craft_phantom_param_count(int m) {
    if (!ph_gen_get(m))
        return craft_fail(CRAFT_EINVAL, "phantom: modality %d out of range 0..%d", m, PH_N_MODALITIES - 1),
               -1;
    return gens[m]->n_params;
}

const char *craft_phantom_param_name(int m, int i) {
    const ph_gen_desc *g = ph_gen_get(m);
    if (!g || i < 0 || i >= g->n_params) {
        craft_fail(CRAFT_EINVAL, "phantom: no parameter %d in modality %d", i, m);
        return NULL;
    }
    return g->param_names[i];
}

int craft_phantom_generate(int m, int n, int size, uint64_t seed, uint64_t first_index, int cls, float *out,
                           int32_t *labels, float *params) {
    const ph_gen_desc *g = ph_gen_get(m);
    if (!g)
        return craft_fail(CRAFT_EINVAL, "phantom_generate: modality %d out of range 0..%d", m,
                          PH_N_MODALITIES - 1);
    if (n < 0) return craft_fail(CRAFT_EINVAL, "phantom_generate(%s): n = %d, expected >= 0", g->name, n);
    if (size < PH_MIN_SIZE || size > PH_MAX_SIZE)
        return craft_fail(CRAFT_EINVAL, "phantom_generate(%s): size %d out of range %d..%d", g->name, size,
                          PH_MIN_SIZE, PH_MAX_SIZE);
    if (cls >= g->n_classes)
        return craft_fail(CRAFT_EINVAL,
                          "phantom_generate(%s): class %d out of range 0..%d (or < 0 for random)", g->name,
                          cls, g->n_classes - 1);
    if (n == 0) return CRAFT_OK;
    if (!out) return craft_fail(CRAFT_EINVAL, "phantom_generate(%s): NULL output buffer", g->name);
    /* under 64 px, render at twice the size and average 2x2: fine texture (ribs, vessels,
     * nuclei) then aliases far less */
    int rw = size < 64 ? 2 * size : size;
    ph_arena a;
    CRAFT_TRY(ph_arena_open(&a, rw, "phantom_generate"));
    size_t img = 3 * (size_t)size * (size_t)size;
#pragma omp parallel num_threads(a.nthreads)
    {
        ph_scratch s;
        ph_arena_thread(&a, omp_get_thread_num(), &s);
        float pbuf[64];
#pragma omp for schedule(dynamic, 4)
        for (int k = 0; k < n; k++) {
            uint64_t index = first_index + (uint64_t)k;
            int c = cls >= 0 ? cls
                             : (int)(ph_mix64(ph_mix64(seed ^ 0xc1a55ULL) ^ index) % (uint64_t)g->n_classes);
            ph_scratch_reset(&s);
            for (int t = 0; t < g->n_params; t++) pbuf[t] = 0.0f;
            float *dst = out + (size_t)k * img;
            if (rw == size) g->generate(size, seed, index, c, dst, pbuf, &s);
            else {
                float *big = ph_salloc(&s, 3 * (size_t)rw * (size_t)rw);
                g->generate(rw, seed, index, c, big, pbuf, &s);
                for (int ch = 0; ch < 3; ch++)
                    for (int j = 0; j < size; j++)
                        for (int i = 0; i < size; i++) {
                            const float *p =
                                big + ((size_t)ch * (size_t)rw + 2 * (size_t)j) * (size_t)rw + 2 * (size_t)i;
                            dst[((size_t)ch * (size_t)size + (size_t)j) * (size_t)size + (size_t)i] =
                                0.25f * (p[0] + p[1] + p[rw] + p[rw + 1]);
                        }
            }
            if (labels) labels[k] = c;
            if (params)
                memcpy(params + (size_t)k * (size_t)g->n_params, pbuf, (size_t)g->n_params * sizeof(float));
        }
    }
    ph_arena_close(&a);
    return CRAFT_OK;
}

int craft_phantom_degrade(int n, int size, float *images, double blur_sigma, double noise_sd, uint64_t seed) {
    if (n < 0 || size < 1 || size > 4096)
        return craft_fail(CRAFT_EINVAL,
                          "phantom_degrade: n = %d, size = %d: expected n >= 0, 1 <= size <= 4096", n, size);
    if (blur_sigma < 0.0 || blur_sigma > 16.0 || noise_sd < 0.0 || noise_sd > 1.0)
        return craft_fail(CRAFT_EINVAL,
                          "phantom_degrade: blur sigma %g (0..16), noise sd %g (0..1) out of range",
                          blur_sigma, noise_sd);
    if (n == 0) return CRAFT_OK;
    if (!images) return craft_fail(CRAFT_EINVAL, "phantom_degrade: NULL images");
    ph_arena a;
    CRAFT_TRY(ph_arena_open(&a, size, "phantom_degrade"));
    size_t plane = (size_t)size * (size_t)size;
#pragma omp parallel num_threads(a.nthreads)
    {
        ph_scratch s;
        ph_arena_thread(&a, omp_get_thread_num(), &s);
#pragma omp for schedule(dynamic, 4)
        for (int k = 0; k < n; k++) {
            ph_scratch_reset(&s);
            uint64_t key = ph_mix64(ph_mix64(seed ^ 0xdeb1a5ULL) ^ (uint64_t)k);
            for (int c = 0; c < 3; c++) {
                float *p = images + ((size_t)k * 3 + (size_t)c) * plane;
                ph_blur(p, size, size, (float)blur_sigma, &s);
                ph_add_noise(p, (int)plane, (float)noise_sd, key + (uint64_t)c * 0x9e3779b97f4a7c15ULL);
                for (size_t t = 0; t < plane; t++) p[t] = ph_clampf(p[t], 0.0f, 1.0f);
            }
        }
    }
    ph_arena_close(&a);
    return CRAFT_OK;
}
