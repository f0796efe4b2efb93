/* cl_loss.c: the loss kernels on cl devices (kernels_cl/loss.cl): l2_normalize,
 * cosine_similarity, cross_entropy and mse_loss, forward and backward, with the semantics of
 * core/op_loss.c. Reductions along a dim are lines of the dense [outer, n, inner] input; loss
 * reductions to a scalar go through craft_cl_reduce (double accumulation with fp64). */
#include "cl/cl_internal.h"

/* ---------------------------------------------------------------- l2_normalize */
int craft_cl_l2_normalize(const craft_tensor *xc, int64_t outer, int64_t n, int64_t inner, double eps,
                          craft_tensor *y, craft_tensor *den) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "l2_normalize", &d));
    if (xc->numel == 0) return CRAFT_OK;
    cl_mem xm = cl_mem_of(xc), ym = cl_mem_of(y), dm = cl_mem_of(den);
    cl_long xoff = xc->offset, co = outer, cn = n, ci = inner;
    cl_float e = (cl_float)eps;
    cl_arg args[8] = {CLA(xm), CLA(xoff), CLA(ym), CLA(dm), CLA(co), CLA(cn), CLA(ci), CLA(e)};
    return cl_nn_lines(d, K_l2n_fwd, 8, args, outer * inner, n, inner);
}

int craft_cl_l2_normalize_grad(const craft_tensor *y, const craft_tensor *den, const craft_tensor *g,
                               int64_t outer, int64_t n, int64_t inner, craft_tensor *gx) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "l2_normalize backward", &d));
    if (y->numel == 0) return CRAFT_OK;
    cl_mem ym = cl_mem_of(y), dm = cl_mem_of(den), gm = cl_mem_of(g), om = cl_mem_of(gx);
    cl_long goff = g->offset, co = outer, cn = n, ci = inner;
    cl_arg args[8] = {CLA(ym), CLA(dm), CLA(gm), CLA(goff), CLA(om), CLA(co), CLA(cn), CLA(ci)};
    return cl_nn_lines(d, K_l2n_bwd, 8, args, outer * inner, n, inner);
}

/* ---------------------------------------------------------------- cosine_similarity */
int craft_cl_cosine(const craft_tensor *ac, const craft_tensor *bc, int64_t outer, int64_t n, int64_t inner,
                    double eps, craft_tensor *y, craft_tensor *nr) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "cosine_similarity", &d));
    if (outer * inner == 0) return CRAFT_OK;
    cl_mem am = cl_mem_of(ac), bm = cl_mem_of(bc), ym = cl_mem_of(y), nm = cl_mem_of(nr);
    cl_long aoff = ac->offset, boff = bc->offset, co = outer, cn = n, ci = inner;
    cl_float e2 = (cl_float)(eps * eps);
    cl_arg args[10] = {CLA(am), CLA(aoff), CLA(bm), CLA(boff), CLA(ym),
                       CLA(nm), CLA(co),   CLA(cn), CLA(ci),   CLA(e2)};
    return cl_nn_lines(d, K_cos_fwd, 10, args, outer * inner, n, inner);
}

int craft_cl_cosine_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *y,
                         const craft_tensor *nr, const craft_tensor *g, int64_t outer, int64_t n,
                         int64_t inner, craft_tensor *ga, craft_tensor *gb) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(a->device, "cosine_similarity backward", &d));
    if (a->numel == 0) return CRAFT_OK;
    cl_mem am = cl_mem_of(a), bm = cl_mem_of(b), ym = cl_mem_of(y), nm = cl_mem_of(nr), gm = cl_mem_of(g);
    cl_mem gam = cl_mem_of(ga), gbm = cl_mem_of(gb);
    cl_long aoff = a->offset, boff = b->offset, goff = g->offset, co = outer, cn = n, ci = inner;
    cl_arg args[13] = {CLA(am),   CLA(aoff), CLA(bm),  CLA(boff), CLA(ym), CLA(nm), CLA(gm),
                       CLA(goff), CLA(gam),  CLA(gbm), CLA(co),   CLA(cn), CLA(ci)};
    return cl_launch(d, K_cos_bwd, 13, args, cl_global_for(a->numel), 0);
}

/* ---------------------------------------------------------------- cross_entropy */
/* the loss of each position (a line kernel), then the mean or sum over them */
int craft_cl_cross_entropy(const craft_tensor *lp, const craft_tensor *tg, int64_t N, int64_t C,
                           int64_t inner, int reduction, double label_smoothing, craft_tensor *y) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(y->device, "cross_entropy", &d));
    craft_tensor *per = reduction == 0 ? craft_tensor_retain(y)
                                       : cl_new(tg->ndim, tg->shape, CRAFT_F32, y->device),
                 *s = NULL;
    if (!per) return craft_last_status();
    int rc = CRAFT_OK;
    if (tg->numel > 0) { /* = N * inner, exact */
        cl_float on = (cl_float)(1.0 - label_smoothing), off = (cl_float)(label_smoothing / (double)C);
        cl_mem lm = cl_mem_of(lp), tm = cl_mem_of(tg), pm = cl_mem_of(per);
        cl_long cN = N, cC = C, ci = inner;
        cl_arg args[8] = {CLA(lm), CLA(tm), CLA(pm), CLA(cN), CLA(cC), CLA(ci), CLA(on), CLA(off)};
        rc = cl_nn_lines(d, K_ce_fwd, 8, args, N * inner, C, inner);
    }
    if (!rc && reduction != 0) rc = craft_cl_reduce(reduction == 1 ? 1 : 0, per, 0, NULL, 0, 0, &s);
    if (!rc && s) rc = craft_cl_copy_(y, s);
    craft_tensor_release(per);
    craft_tensor_release(s);
    return rc;
}

int craft_cl_cross_entropy_grad(const craft_tensor *lp, const craft_tensor *tg, const craft_tensor *g,
                                int64_t N, int64_t C, int64_t inner, int reduction, double smoothing,
                                double gscale, craft_tensor *gx) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(gx->device, "cross_entropy backward", &d));
    if (N * C * inner == 0) return CRAFT_OK;
    cl_float eps = (cl_float)smoothing, on = 1.0f - eps, off = eps / (float)C, gs = (cl_float)gscale;
    cl_int reduced = reduction != 0;
    cl_mem lm = cl_mem_of(lp), tm = cl_mem_of(tg), gm = cl_mem_of(g), om = cl_mem_of(gx);
    cl_long goff = g->offset, cN = N, cC = C, ci = inner;
    cl_arg args[12] = {CLA(lm), CLA(tm), CLA(gm), CLA(goff), CLA(om), CLA(cN),
                       CLA(cC), CLA(ci), CLA(on), CLA(off),  CLA(gs), CLA(reduced)};
    return cl_launch(d, K_ce_bwd, 12, args, cl_global_for(N * C * inner), 0);
}

/* ---------------------------------------------------------------- mse_loss */
int craft_cl_mse(const craft_tensor *ac, const craft_tensor *bc, int reduction, craft_tensor *y) {
    int code = y->device;
    craft_tensor *df = cl_new(ac->ndim, ac->shape, CRAFT_F32, code), *s = NULL;
    int rc = df ? craft_cl_binary(CRAFT_SUB, ac, bc, df) : craft_last_status();
    if (!rc && reduction == 0)
        rc = craft_cl_binary(CRAFT_MUL, df, df, y); /* (a - b)^2 in float, as the CPU */
    else if (!rc) {
        rc = craft_cl_reduce(3, df, 0, NULL, 0, 0, &s);
        if (!rc && reduction == 1) rc = craft_cl_scale_(s, 1.0 / (double)ac->numel);
        if (!rc) rc = craft_cl_copy_(y, s);
    }
    craft_tensor_release(df);
    craft_tensor_release(s);
    return rc;
}

int craft_cl_mse_grad(const craft_tensor *a, const craft_tensor *b, const craft_tensor *g, int reduction,
                      double scale, craft_tensor *ga, craft_tensor *gb) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(ga->device, "mse_loss backward", &d));
    if (a->numel == 0) return CRAFT_OK;
    cl_mem am = cl_mem_of(a), bm = cl_mem_of(b), gm = cl_mem_of(g), gam = cl_mem_of(ga),
           gbm = gb ? cl_mem_of(gb) : gam;
    cl_long aoff = a->offset, boff = b->offset, goff = g->offset, n = a->numel;
    cl_float sc = (cl_float)scale;
    cl_int reduced = reduction != 0, has_gb = gb != NULL;
    cl_arg args[12] = {CLA(am),  CLA(aoff), CLA(bm), CLA(boff), CLA(gm),      CLA(goff),
                       CLA(gam), CLA(gbm),  CLA(n),  CLA(sc),   CLA(reduced), CLA(has_gb)};
    return cl_launch(d, K_mse_grad, 12, args, cl_global_for(n), 0);
}
