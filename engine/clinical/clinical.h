/* clinical.h: internals shared by the clinical phantom generator (phantom_*.c) and the oracle
 * auditor (oracle_*.c): a counter-based hashing RNG, a per-thread scratch arena, drawing
 * helpers (smooth noise, blur, anti-aliased stamps) and pixel-analysis helpers (connected
 * components, hole filling, percentiles, lesion shape descriptors).
 *
 * Coordinates: pixel (i, j) is column i, row j; its centre is at (i + 0.5, j + 0.5). Generators
 * think in normalised units (the image is [0,1]^2) and convert with the image size, so a phantom
 * looks the same at every size; pixel-scale constants are written for 64 px and scaled. */
#ifndef CRAFT_CLINICAL_H
#define CRAFT_CLINICAL_H
#include "core/internal.h"
#include <math.h>
#include <stdint.h>

#define PH_MIN_SIZE 32
#define PH_MAX_SIZE 256 /* generator */
#define PH_ORACLE_MAX_SIZE 512
#define PH_PI 3.14159265358979323846

/* ------------------------------------------------------------------ RNG -- */
/* splitmix64's finaliser keyed by (seed, index, stream): the n-th draw depends only on those
 * and n, so images are reproducible one by one and independent of threads. */
static inline uint64_t ph_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
typedef struct ph_rng {
    uint64_t key, ctr;
} ph_rng;
static inline void ph_rng_init(ph_rng *r, uint64_t seed, uint64_t index, uint64_t stream) {
    r->key = ph_mix64(ph_mix64(ph_mix64(seed) ^ index) + stream * 0xd1b54a32d192ed03ULL);
    r->ctr = 0;
}
static inline uint64_t ph_next(ph_rng *r) { return ph_mix64(r->key ^ (0x9e3779b97f4a7c15ULL * ++r->ctr)); }
static inline double ph_unif(ph_rng *r) { return (double)(ph_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static inline double ph_range(ph_rng *r, double a, double b) { return a + (b - a) * ph_unif(r); }
static inline int ph_int(ph_rng *r, int lo, int hi) { /* inclusive */
    return lo + (int)(ph_unif(r) * (double)(hi - lo + 1));
}
static inline double ph_normal(ph_rng *r) {
    double u = ph_unif(r), v = ph_unif(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * PH_PI * v);
}
/* Cheap approximately N(0,1) value for pixel i of a keyed noise field (Irwin-Hall of 4). */
static inline float ph_hash_gauss(uint64_t key, uint64_t i) {
    uint64_t h = ph_mix64(key ^ (i * 0x9e3779b97f4a7c15ULL));
    float s =
        (float)(h & 0xffff) + (float)((h >> 16) & 0xffff) + (float)((h >> 32) & 0xffff) + (float)(h >> 48);
    return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

static inline float ph_clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }
/* min/max without fminf's NaN rules, so they compile to one instruction in hot loops */
static inline float ph_minf(float a, float b) { return a < b ? a : b; }
static inline float ph_maxf(float a, float b) { return a > b ? a : b; }
static inline float ph_smoothstep(float e0, float e1, float x) {
    float t = ph_clampf((x - e0) / (e1 - e0), 0.0f, 1.0f);
    return t * t * (3.0f - 2.0f * t);
}
static inline float ph_lerpf(float a, float b, float t) { return a + (b - a) * t; }

/* ------------------------------------------------------------- scratch -- */
/* A bump arena carved from one block per thread (allocated once per API call, never per image). */
typedef struct ph_scratch {
    float *base;
    size_t cap, used;
} ph_scratch;
static inline void ph_scratch_reset(ph_scratch *s) { s->used = 0; }
float *ph_salloc(ph_scratch *s, size_t nfloats); /* zeroed is NOT guaranteed */
/* floats one thread needs for images of working size w (generator or oracle) */
size_t ph_scratch_floats(int w);

/* ------------------------------------------------------------- drawing -- */
/* Value-noise fBm in about [-1, 1] into dst (w x h): `cells` lattice cells across at the first
 * octave, each further octave doubles them and multiplies the amplitude by gain. aniso > 1
 * stretches the pattern along x (fibres). */
void ph_fbm(float *dst, int w, int h, ph_rng *r, float cells, int octaves, float gain, float aniso,
            ph_scratch *s);
/* Separable Gaussian blur in place (clamped edges). */
void ph_blur(float *p, int w, int h, float sigma, ph_scratch *s);
/* Box mean over (2r+1)^2 in place, r in pixels. */
void ph_box(float *p, int w, int h, int r, ph_scratch *s);
/* Adds N(0, sd) per pixel to plane p of n pixels from keyed noise. */
void ph_add_noise(float *p, int n, float sd, uint64_t key);
/* Anti-aliased filled ellipse coverage (pixels units; angle radians), combined into `plane`
 * as plane = max(plane, value * coverage). */
void ph_stamp_ellipse_max(float *plane, int w, int h, float cx, float cy, float rx, float ry, float angle,
                          float value);
/* Same but alpha-blends: plane = plane*(1-a) + value*a with a = alpha*coverage. */
void ph_stamp_ellipse_blend(float *plane, int w, int h, float cx, float cy, float rx, float ry, float angle,
                            float value, float alpha);
/* A soft line segment whose half-width tapers from hw0 to hw1: plane = max(plane, value*profile). */
void ph_stamp_segment_max(float *plane, int w, int h, float x0, float y0, float x1, float y1, float hw0,
                          float hw1, float value);
/* Final touches shared by all modalities: blur every plane, add noise, clamp to [0,1]. grey: one
 * noise field for the 3 planes. */
void ph_finish(float *chw, int w, float blur_sigma, float noise_sd, uint64_t noise_key, int grey,
               ph_scratch *s);

/* -------------------------------------------------------- pixel analysis -- */
typedef struct ph_comp {
    int area;
    int x0, y0, x1, y1; /* bounding box, inclusive */
    double cx, cy;      /* centroid (pixel centres) */
    int touches_border;
} ph_comp;
/* 8-connected components of mask (nonzero = foreground). labels[w*h] gets 0 for background
 * or 1 + component index. Returns the number of components (at most max_comp are described in
 * comps; further ones are labelled but not described). */
int ph_components(const uint8_t *mask, int w, int h, int32_t *labels, ph_comp *comps, int max_comp,
                  ph_scratch *s);
/* Sets holes (background not connected to the image border) of mask to 1. */
void ph_fill_holes(uint8_t *mask, int w, int h, ph_scratch *s);
/* q-quantile (0..1) of v[n] within [lo, hi] via a 1024-bin histogram. */
float ph_quantile(const float *v, int n, float q, float lo, float hi);
/* Otsu threshold of v[n] within [lo, hi]; mask (may be NULL) selects the pixels used. */
float ph_otsu(const float *v, const uint8_t *mask, int n, float lo, float hi);

/* Lesion shape descriptors on a coverage mask m (values 0..1), used both for the generator's
 * ground truth (on its clean mask) and by the oracle (on its segmentation), so the two agree by
 * definition. */
typedef struct ph_shape {
    double area;         /* pixels */
    double cx, cy;       /* centroid */
    double asymmetry;    /* of the outline's harmonics 0..3: mean over the two principal axes
                               of |shape xor mirror image| / (2 area) */
    double irregularity; /* rms of the radial profile's harmonics >= 4, over its mean radius */
    double diameter;     /* max over directions of r(theta) + r(theta + pi), pixels */
    double mean_radius;
} ph_shape;
void ph_shape_measure(const float *m, int w, int h, ph_shape *out);

/* ------------------------------------------------------------- modalities -- */
typedef struct ph_gen_desc {
    const char *name;
    int n_classes;
    const char *const *class_names;
    int n_params;
    const char *const *param_names;
    /* renders one image of class cls into chw (3*w*w floats) and its parameters */
    void (*generate)(int w, uint64_t seed, uint64_t index, int cls, float *chw, float *params, ph_scratch *s);
} ph_gen_desc;

typedef struct ph_oracle_desc {
    int n_measures;
    const char *const *measure_names;
    int n_items;
    const char *const *item_names;
    const int *item_class; /* the class whose checklist each item belongs to */
    /* measures one image (chw, w x w, w >= 64); writes measures, label, items */
    void (*audit)(const float *chw, int w, float *measures, int32_t *label, uint8_t *items, ph_scratch *s);
} ph_oracle_desc;

#define PH_N_MODALITIES 4
extern const ph_gen_desc ph_gen_cxr, ph_gen_fundus, ph_gen_derm, ph_gen_histo;
extern const ph_oracle_desc ph_oracle_cxr, ph_oracle_fundus, ph_oracle_derm, ph_oracle_histo;
const ph_gen_desc *ph_gen_get(int m);
const ph_oracle_desc *ph_oracle_get(int m);

/* Per-thread scratch blocks for a batch call: nthreads arenas of ph_scratch_floats(w) each. */
typedef struct ph_arena {
    float *block;
    size_t nbytes;
    int nthreads;
    size_t per_thread;
} ph_arena;
int ph_arena_open(ph_arena *a, int w, const char *op);
void ph_arena_thread(ph_arena *a, int t, ph_scratch *s);
void ph_arena_close(ph_arena *a);
#endif
