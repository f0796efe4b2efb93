/* cl_norm.c: the group_norm and layer_norm kernels on cl devices (kernels_cl/norm.cl), forward
 * and backward for the input, weight and bias, with the CPU kernels' formulas (cpu/cpu_norm.c).
 * Both normalise contiguous rows: group_norm's (n, group) blocks of C/G * spatial elements,
 * layer_norm's rows of the last dims; one kernel serves both, told the channel of each
 * element. group_norm + activation: the forward kernel applies the activation as it writes; the
 * backward makes the pre-activation gradient (gn_act_pre) and runs group_norm's backward on it. */
#include "cl/cl_internal.h"

/* mirrors norm_geo in kernels_cl/norm.cl */
typedef struct {
    cl_long rows, M, G, Cg, S;
    cl_long xoff, woff, boff, goff;
    cl_float eps;
    cl_int has_w, has_b, ln, act;
} cl_norm_geo;

/* iarg of the node: the geometry without offsets or flags */
enum { NI_LN, NI_ROWS, NI_M, NI_G, NI_CG, NI_S, NI_N, NI_C, NI_COUNT };

static cl_norm_geo geo_of(const int64_t *ia) {
    cl_norm_geo p;
    memset(&p, 0, sizeof p);
    p.rows = ia[NI_ROWS];
    p.M = ia[NI_M];
    p.G = ia[NI_G];
    p.Cg = ia[NI_CG];
    p.S = ia[NI_S];
    p.ln = (cl_int)ia[NI_LN];
    p.act = -1;
    return p;
}

static craft_tensor *new_like_1d(int64_t n, int code) { return cl_new(1, &n, CRAFT_F32, code); }

/* the geometry of both ops: group_norm's (n, group) rows of C/G * S, or layer_norm's rows of D */
static void geom_of(const craft_tensor *x, int ln, int64_t param, int64_t *ia) {
    memset(ia, 0, sizeof(int64_t) * NI_COUNT);
    if (ln) {
        int64_t D = param, R = D ? x->numel / D : 0;
        ia[NI_LN] = 1;
        ia[NI_ROWS] = R;
        ia[NI_M] = D;
        ia[NI_G] = 1;
        ia[NI_CG] = D;
        ia[NI_S] = 1;
        ia[NI_N] = R;
        ia[NI_C] = D;
        return;
    }
    int64_t N = x->shape[0], C = x->shape[1], G = param, S = craft_numel_of(x->ndim - 2, x->shape + 2);
    ia[NI_LN] = 0;
    ia[NI_ROWS] = craft_mul_sat(N, G);
    ia[NI_M] = craft_mul_sat(C / G, S);
    ia[NI_G] = G;
    ia[NI_CG] = C / G;
    ia[NI_S] = S;
    ia[NI_N] = N;
    ia[NI_C] = C;
}

/* gx (may be NULL), gw and gb (either may be NULL) of either op */
static int norm_grad(int ln, const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                     const craft_tensor *rstd, const craft_tensor *g, int64_t param, craft_tensor *gx,
                     craft_tensor *gwo, craft_tensor *gbo) {
    int code = x->device;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, ln ? "layer_norm backward" : "group_norm backward", &d));
    int64_t ia[NI_COUNT];
    geom_of(x, ln, param, ia);
    cl_norm_geo p = geo_of(ia);
    p.xoff = x->offset;
    p.goff = g->offset;
    p.has_w = w != NULL;
    p.woff = w ? w->offset : 0;
    cl_mem xm = cl_mem_of(x), gm = cl_mem_of(g), wm = w ? cl_mem_of(w) : xm, mm = cl_mem_of(mean),
           rm = cl_mem_of(rstd);
    int rc = CRAFT_OK;
    if (gx && p.M > 0) {
        cl_mem om = cl_mem_of(gx);
        cl_arg args[6] = {CLA(xm), CLA(wm), CLA(gm), CLA(mm), CLA(rm), CLA(om)};
        rc = cl_nn_lines_geo(d, K_norm_bwd_x, &p, sizeof p, 6, args, p.rows, p.M, 1);
    }
    if (rc || (!gwo && !gbo)) return rc;
    /* the kernels write both: a temporary stands in for the one not asked for */
    int64_t C = ln ? p.M : ia[NI_C];
    craft_tensor *gw = gwo ? craft_tensor_retain(gwo) : new_like_1d(C, code),
                 *gb = gbo ? craft_tensor_retain(gbo) : new_like_1d(C, code);
    craft_tensor *sums = NULL;
    if (!gw || !gb) rc = craft_last_status();
    cl_mem wgm = gw ? cl_mem_of(gw) : NULL, bgm = gb ? cl_mem_of(gb) : NULL;
    if (!rc && ln && C > 0) { /* column sums over the rows */
        cl_arg args[6] = {CLA(xm), CLA(gm), CLA(mm), CLA(rm), CLA(wgm), CLA(bgm)};
        rc = cl_nn_lines_geo(d, K_ln_wb, &p, sizeof p, 6, args, C, p.rows, C);
    } else if (!rc && C > 0) { /* per (n, c) sums over the pixels, then over n */
        cl_long N = ia[NI_N], cC = C, G = p.G, NC = N * C;
        int64_t ns = 2 * NC > 0 ? 2 * NC : 1;
        sums = cl_new(1, &ns, d->info.fp64 ? CRAFT_F64 : CRAFT_F32, code); /* acc_t in the kernels */
        if (!sums) rc = craft_last_status();
        cl_mem sm = sums ? cl_mem_of(sums) : NULL;
        cl_arg a1[4] = {CLA(xm), CLA(gm), CLA(sm), CLA(NC)};
        if (!rc) rc = cl_nn_lines_geo(d, K_gn_chan_sums, &p, sizeof p, 4, a1, NC, p.S, 1);
        cl_arg a2[8] = {CLA(sm), CLA(mm), CLA(rm), CLA(wgm), CLA(bgm), CLA(N), CLA(cC), CLA(G)};
        if (!rc) rc = cl_launch(d, K_gn_wb, 8, a2, cl_global_for(C), 0);
    }
    craft_tensor_release(sums);
    craft_tensor_release(gw);
    craft_tensor_release(gb);
    return rc;
}

/* normalises the rows of xc into y, with the statistics; act >= 0: then that activation */
static int norm_fwd(int ln, const craft_tensor *xc, const craft_tensor *wc, const craft_tensor *bc,
                    int64_t param, double eps, int act, craft_tensor *y, craft_tensor *mean,
                    craft_tensor *rstd) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(xc->device, ln ? "layer_norm" : "group_norm", &d));
    int64_t ia[NI_COUNT];
    geom_of(xc, ln, param, ia);
    cl_norm_geo p = geo_of(ia);
    if (!(p.M > 0 &&
          p.rows > 0)) { /* empty rows: statistics 0 so that backward stays finite, as on the CPU */
        CRAFT_TRY(craft_cl_fill_(mean, 0.0));
        return craft_cl_fill_(rstd, 0.0);
    }
    p.xoff = xc->offset;
    p.woff = wc ? wc->offset : 0;
    p.boff = bc ? bc->offset : 0;
    p.eps = (cl_float)eps;
    p.has_w = wc != NULL;
    p.has_b = bc != NULL;
    p.act = act;
    cl_mem xm = cl_mem_of(xc), wm = wc ? cl_mem_of(wc) : xm, bm = bc ? cl_mem_of(bc) : xm, ym = cl_mem_of(y);
    cl_mem mm = cl_mem_of(mean), rm = cl_mem_of(rstd);
    cl_arg args[6] = {CLA(xm), CLA(wm), CLA(bm), CLA(ym), CLA(mm), CLA(rm)};
    return cl_nn_lines_geo(d, K_norm_fwd, &p, sizeof p, 6, args, p.rows, p.M, 1);
}

int craft_cl_group_norm(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t groups,
                        double eps, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd) {
    return norm_fwd(0, x, w, b, groups, eps, -1, y, mean, rstd);
}
int craft_cl_group_norm_act(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                            int64_t groups, double eps, int act, craft_tensor *y, craft_tensor *mean,
                            craft_tensor *rstd) {
    return norm_fwd(0, x, w, b, groups, eps, act, y, mean, rstd);
}
int craft_cl_layer_norm(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, int64_t D,
                        double eps, craft_tensor *y, craft_tensor *mean, craft_tensor *rstd) {
    return norm_fwd(1, x, w, b, D, eps, -1, y, mean, rstd);
}
int craft_cl_group_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                             const craft_tensor *rstd, const craft_tensor *g, int64_t groups,
                             craft_tensor *gx, craft_tensor *gw, craft_tensor *gb) {
    return norm_grad(0, x, w, mean, rstd, g, groups, gx, gw, gb);
}
int craft_cl_layer_norm_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *mean,
                             const craft_tensor *rstd, const craft_tensor *g, int64_t D, craft_tensor *gx,
                             craft_tensor *gw, craft_tensor *gb) {
    return norm_grad(1, x, w, mean, rstd, g, D, gx, gw, gb);
}
int craft_cl_group_norm_act_grad(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                                 const craft_tensor *mean, const craft_tensor *rstd, const craft_tensor *g,
                                 int64_t groups, int act, craft_tensor *gx, craft_tensor *gw,
                                 craft_tensor *gb) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(x->device, "group_norm_act backward", &d));
    craft_tensor *gpre = cl_new(x->ndim, x->shape, CRAFT_F32, x->device);
    if (!gpre) return craft_last_status();
    int64_t ia[NI_COUNT];
    geom_of(x, 0, groups, ia);
    cl_norm_geo p = geo_of(ia);
    p.xoff = x->offset;
    p.goff = g->offset;
    p.woff = w ? w->offset : 0;
    p.boff = b ? b->offset : 0;
    p.has_w = w != NULL;
    p.has_b = b != NULL;
    p.act = act;
    int rc = CRAFT_OK;
    if (p.rows > 0 && p.M > 0) {
        cl_mem xm = cl_mem_of(x), wm = w ? cl_mem_of(w) : xm, bm = b ? cl_mem_of(b) : xm, gm = cl_mem_of(g),
               mm = cl_mem_of(mean), rm = cl_mem_of(rstd), om = cl_mem_of(gpre);
        cl_arg args[7] = {CLA(xm), CLA(wm), CLA(bm), CLA(gm), CLA(mm), CLA(rm), CLA(om)};
        rc = cl_launch_geo(d, K_gn_act_pre, &p, sizeof p, 7, args, cl_global_for(p.rows * p.M), 0);
    }
    if (!rc) rc = norm_grad(0, x, w, mean, rstd, gpre, groups, gx, gw, gb);
    craft_tensor_release(gpre);
    return rc;
}
