/* cl_ops_norm.c: group_norm and layer_norm on cl devices (kernels_cl/norm.cl), forward and
 * backward for the input, weight and bias, with the CPU ops' checks and formulas
 * (engine/ops_norm.c). Both normalise contiguous rows: group_norm's (n, group) blocks of
 * C/G * spatial elements, layer_norm's rows of the last dims; one kernel serves both, told
 * the channel of each element. As on the CPU only the per-row mean and 1/std are saved.
 * The weight and bias must be on the input's device (they are parameters: a silent upload per
 * step would hide a model left on the CPU). */
#include "cl/cl_internal.h"

/* mirrors norm_geo in kernels_cl/norm.cl */
typedef struct {
    cl_long rows, M, G, Cg, S;
    cl_long xoff, woff, boff, goff;
    cl_float eps;
    cl_int has_w, has_b, ln;
} cl_norm_geo;

/* iarg of the node: the geometry without offsets or flags */
enum { NI_LN, NI_ROWS, NI_M, NI_G, NI_CG, NI_S, NI_N, NI_C, NI_COUNT };

static cl_norm_geo geo_of(const int64_t *ia) {
    cl_norm_geo p;
    memset(&p, 0, sizeof p);
    p.rows = ia[NI_ROWS]; p.M = ia[NI_M]; p.G = ia[NI_G]; p.Cg = ia[NI_CG]; p.S = ia[NI_S];
    p.ln = (cl_int)ia[NI_LN];
    return p;
}

static int check_affine(const char *op, const char *arg, const craft_tensor *p, int ndim, const int64_t *shape,
                        const craft_tensor *x) {
    if (!p) return CRAFT_OK;
    CRAFT_TRY(cl_nn_want(op, arg, p, x->device));
    return craft_norm_affine_check(op, arg, p, ndim, shape, x);
}

static craft_tensor *new_like_1d(int64_t n, int code) { return cl_new(1, &n, CRAFT_F32, code); }

/* saved: x (contiguous), w (contiguous or NULL), mean, rstd */
static int norm_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *x = n->saved[0], *w = n->saved[1], *mean = n->saved[2], *rstd = n->saved[3], *g = NULL;
    int code = x->device, ln = (int)n->iarg[NI_LN];
    int need_x = CRAFT_NEEDS_GRAD(n, 0), need_w = CRAFT_NEEDS_GRAD(n, 1), need_b = CRAFT_NEEDS_GRAD(n, 2);
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, ln ? "layer_norm backward" : "group_norm backward", &d));
    CRAFT_TRY(cl_nn_grad(gout[0], code, &g));
    cl_norm_geo p = geo_of(n->iarg);
    p.xoff = x->offset;
    p.goff = g->offset;
    p.has_w = w != NULL;
    p.woff = w ? w->offset : 0;
    cl_mem xm = cl_mem_of(x), gm = cl_mem_of(g), wm = w ? cl_mem_of(w) : xm, mm = cl_mem_of(mean), rm = cl_mem_of(rstd);
    int rc = CRAFT_OK;
    if (need_x) {
        craft_tensor *gx = cl_new(x->ndim, x->shape, CRAFT_F32, code);
        if (!gx) rc = craft_last_status();
        else if (p.M > 0) {
            cl_mem om = cl_mem_of(gx);
            cl_arg args[7] = {CLA(p), CLA(xm), CLA(wm), CLA(gm), CLA(mm), CLA(rm), CLA(om)};
            rc = cl_nn_lines(d, K_norm_bwd_x, 7, args, p.rows, p.M, 1);
        }
        gin[0] = gx;
    }
    craft_tensor *gw = NULL, *gb = NULL, *sums = NULL;
    if (!rc && (need_w || need_b)) {
        int64_t C = ln ? p.M : n->iarg[NI_C];
        gw = new_like_1d(C, code);
        gb = new_like_1d(C, code);
        if (!gw || !gb) rc = craft_last_status();
        cl_mem wgm = gw ? cl_mem_of(gw) : NULL, bgm = gb ? cl_mem_of(gb) : NULL;
        if (!rc && ln && C > 0) {   /* column sums over the rows */
            cl_arg args[7] = {CLA(p), CLA(xm), CLA(gm), CLA(mm), CLA(rm), CLA(wgm), CLA(bgm)};
            rc = cl_nn_lines(d, K_ln_wb, 7, args, C, p.rows, C);
        } else if (!rc && C > 0) {  /* per (n, c) sums over the pixels, then over n */
            cl_long N = n->iarg[NI_N], cC = C, G = p.G, NC = N * C;
            int64_t ns = 2 * NC > 0 ? 2 * NC : 1;
            sums = cl_new(1, &ns, d->info.fp64 ? CRAFT_F64 : CRAFT_F32, code);   /* acc_t in the kernels */
            if (!sums) rc = craft_last_status();
            cl_mem sm = sums ? cl_mem_of(sums) : NULL;
            cl_arg a1[5] = {CLA(p), CLA(xm), CLA(gm), CLA(sm), CLA(NC)};
            if (!rc) rc = cl_nn_lines(d, K_gn_chan_sums, 5, a1, NC, p.S, 1);
            cl_arg a2[8] = {CLA(sm), CLA(mm), CLA(rm), CLA(wgm), CLA(bgm), CLA(N), CLA(cC), CLA(G)};
            if (!rc) rc = cl_launch(d, K_gn_wb, 8, a2, cl_global_for(C), 0);
        }
    }
    craft_tensor_release(sums);
    craft_tensor_release(g);
    if (!rc && need_w) rc = craft_reshape(gw, n->edges[1].ndim, n->edges[1].shape, &gin[1]);
    if (!rc && need_b) rc = craft_reshape(gb, n->edges[2].ndim, n->edges[2].shape, &gin[2]);
    craft_tensor_release(gw);
    craft_tensor_release(gb);
    return rc;
}

/* Normalises the rows of x (p: geometry), records the node. */
static int norm_forward(const char *op, const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, double eps,
                        int64_t *ia, int nst, const int64_t *st_shape, craft_tensor **out) {
    int code = x->device;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(code, op, &d));
    craft_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL, *mean = NULL, *rstd = NULL;
    int rc = craft_contig_f32(x, &xc);
    if (!rc && w) rc = craft_contig_f32(w, &wc);
    if (!rc && b) rc = craft_contig_f32(b, &bc);
    if (!rc && (!(y = cl_new(x->ndim, x->shape, CRAFT_F32, code)) || !(mean = cl_new(nst, st_shape, CRAFT_F32, code)) ||
                !(rstd = cl_new(nst, st_shape, CRAFT_F32, code))))
        rc = craft_last_status();
    cl_norm_geo p = geo_of(ia);
    if (!rc && p.M > 0 && p.rows > 0) {
        p.xoff = xc->offset;
        p.woff = wc ? wc->offset : 0;
        p.boff = bc ? bc->offset : 0;
        p.eps = (cl_float)eps;
        p.has_w = wc != NULL;
        p.has_b = bc != NULL;
        cl_mem xm = cl_mem_of(xc), wm = wc ? cl_mem_of(wc) : xm, bm = bc ? cl_mem_of(bc) : xm, ym = cl_mem_of(y);
        cl_mem mm = cl_mem_of(mean), rm = cl_mem_of(rstd);
        cl_arg args[7] = {CLA(p), CLA(xm), CLA(wm), CLA(bm), CLA(ym), CLA(mm), CLA(rm)};
        rc = cl_nn_lines(d, K_norm_fwd, 7, args, p.rows, p.M, 1);
    } else if (!rc) {   /* empty rows: statistics 0 so that backward stays finite, as on the CPU */
        rc = craft_cl_fill_(mean, 0.0);
        if (!rc) rc = craft_cl_fill_(rstd, 0.0);
    }
    if (!rc) {
        const craft_tensor *ins[3] = {x, w, b}, *save[4] = {xc, wc, mean, rstd};
        rc = craft_record(op, 3, ins, y, norm_backward, 4, save, NULL, 0, ia, NI_COUNT, NULL);
    }
    craft_tensor_release(xc);
    craft_tensor_release(wc);
    craft_tensor_release(bc);
    craft_tensor_release(mean);
    craft_tensor_release(rstd);
    if (rc) { craft_tensor_release(y); return rc; }
    *out = y;
    return CRAFT_OK;
}

static int want_input(const char *op, const craft_tensor *x) {
    if (!x) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    if (x->device == CRAFT_DEVICE_CPU)
        return craft_fail(CRAFT_EDEVICE, "%s: input %s is on the CPU but the weight or bias is on an OpenCL device; move them "
                          "to one device with :to()", op, craft_shape_str(x));
    return cl_nn_want(op, "input", x, x->device);
}

int craft_cl_op_group_norm(const craft_tensor *x, int groups, const craft_tensor *w, const craft_tensor *b, double eps,
                           craft_tensor **out) {
    const char *op = "group_norm";
    CRAFT_TRY(want_input(op, x));
    CRAFT_TRY(craft_group_norm_check(x, groups));
    int64_t N = x->shape[0], C = x->shape[1];
    CRAFT_TRY(check_affine(op, "weight", w, 1, &C, x));
    CRAFT_TRY(check_affine(op, "bias", b, 1, &C, x));
    int64_t G = groups, S = craft_numel_of(x->ndim - 2, x->shape + 2);
    int64_t ia[NI_COUNT] = {0}, st_shape[2] = {N, G};
    ia[NI_LN] = 0; ia[NI_ROWS] = craft_mul_sat(N, G); ia[NI_M] = craft_mul_sat(C / G, S); ia[NI_G] = G; ia[NI_CG] = C / G; ia[NI_S] = S;
    ia[NI_N] = N; ia[NI_C] = C;
    return norm_forward(op, x, w, b, eps, ia, 2, st_shape, out);
}

int craft_cl_op_layer_norm(const craft_tensor *x, int nnorm, const craft_tensor *w, const craft_tensor *b, double eps,
                           craft_tensor **out) {
    const char *op = "layer_norm";
    CRAFT_TRY(want_input(op, x));
    CRAFT_TRY(craft_layer_norm_check(x, nnorm));
    const int64_t *nshape = x->shape + (x->ndim - nnorm);
    CRAFT_TRY(check_affine(op, "weight", w, nnorm, nshape, x));
    CRAFT_TRY(check_affine(op, "bias", b, nnorm, nshape, x));
    int64_t D = craft_numel_of(nnorm, nshape), R = D ? x->numel / D : 0;
    int64_t ia[NI_COUNT] = {0};
    ia[NI_LN] = 1; ia[NI_ROWS] = R; ia[NI_M] = D; ia[NI_G] = 1; ia[NI_CG] = D; ia[NI_S] = 1;
    ia[NI_N] = R; ia[NI_C] = D;
    return norm_forward(op, x, w, b, eps, ia, 1, &R, out);
}
