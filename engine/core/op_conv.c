/* op_conv.c: conv2d and conv_transpose2d for every device: argument and shape checks
 * (conv_dims_of), output allocation, recording and the backward, on the back end's
 * conv kernel, which runs the three directions of one convolution src -> dst:
 *   forward        dst = W * src (+ bias)
 *   backward-data  src = W^T * dst (+ bias)
 *   backward-weights  gW = dst (x) src (and the bias gradient, channel sums of dst)
 * conv2d: y = fwd(x), gx = bwd_data(gy), gw = bwd_weights(x, gy); conv_transpose2d (whose
 * [in, out / groups, kh, kw] weight is that conv's weight): y = bwd_data(x) + bias,
 * gx = fwd(gy), gw = bwd_weights(gy, x), gb = channel sums of gy. */
#include "core/backend.h"

typedef struct conv_args {
    int64_t s[2], p[2], d[2], op[2];
} conv_args;

static int read_args(const char *op, const int *stride, const int *padding, const int *outpad,
                     const int *dilation, int groups, const craft_tensor *x, const craft_tensor *w,
                     conv_args *a) {
    for (int i = 0; i < 2; i++) {
        a->s[i] = stride ? stride[i] : 1;
        a->p[i] = padding ? padding[i] : 0;
        a->d[i] = dilation ? dilation[i] : 1;
        a->op[i] = outpad ? outpad[i] : 0;
        if (a->s[i] < 1 || a->p[i] < 0 || a->d[i] < 1 || a->op[i] < 0)
            return craft_fail(
                CRAFT_EINVAL,
                "%s: input %s, weight %s: stride %lld,%lld must be >= 1, padding %lld,%lld and output_padding "
                "%lld,%lld >= 0, dilation %lld,%lld >= 1",
                op, craft_shape_str(x), craft_shape_str(w), (long long)a->s[0], (long long)a->s[1],
                (long long)a->p[0], (long long)a->p[1], (long long)a->op[0], (long long)a->op[1],
                (long long)a->d[0], (long long)a->d[1]);
    }
    if (groups < 1)
        return craft_fail(CRAFT_EINVAL, "%s: input %s, weight %s: groups %d must be >= 1", op,
                          craft_shape_str(x), craft_shape_str(w), groups);
    if (x->ndim != 4 || w->ndim != 4)
        return craft_fail(CRAFT_ESHAPE, "%s: input %s and weight %s must both be 4-d (NCHW input, %s weight)",
                          op, craft_shape_str(x), craft_shape_str(w),
                          outpad ? "[in, out/groups, kh, kw]" : "[out, in/groups, kh, kw]");
    for (int i = 0; i < 4; i++)
        if (x->shape[i] == 0 && i > 0)
            return craft_fail(CRAFT_ESHAPE, "%s: input %s has an empty channel or spatial dim", op,
                              craft_shape_str(x));
    for (int i = 0; i < 4; i++)
        if (w->shape[i] == 0)
            return craft_fail(CRAFT_ESHAPE, "%s: weight %s is empty", op, craft_shape_str(w));
    return CRAFT_OK;
}

static int check_bias(const char *op, const craft_tensor *b, int64_t channels, const craft_tensor *w) {
    if (b && (b->ndim != 1 || b->shape[0] != channels))
        return craft_fail(CRAFT_ESHAPE, "%s: bias %s for weight %s (expected [%lld])", op, craft_shape_str(b),
                          craft_shape_str(w), (long long)channels);
    return CRAFT_OK;
}

static int conv_dims_of(const char *op, int transposed, const craft_tensor *x, const craft_tensor *w,
                        const craft_tensor *b, const int *stride, const int *padding,
                        const int *output_padding, const int *dilation, int groups, craft_conv_dims *g) {
    if (!x || !w) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, x ? "weight" : "input");
    conv_args a;
    int zero_op[2] = {0, 0};
    CRAFT_TRY(read_args(op, stride, padding, transposed ? (output_padding ? output_padding : zero_op) : NULL,
                        dilation, groups, x, w, &a));
    memset(g, 0, sizeof *g);
    int64_t C = x->shape[1];
    g->n = x->shape[0];
    g->kh = w->shape[2];
    g->kw = w->shape[3];
    g->groups = groups;
    g->sh = a.s[0];
    g->sw = a.s[1];
    g->ph = a.p[0];
    g->pw = a.p[1];
    g->dh = a.d[0];
    g->dw = a.d[1];
    g->oph = a.op[0];
    g->opw = a.op[1];
    int64_t k[2] = {g->kh, g->kw}, o[2];
    if (!transposed) {
        int64_t O = w->shape[0], wc;
        if (C % groups || O % groups || __builtin_mul_overflow(w->shape[1], (int64_t)groups, &wc) || wc != C)
            return craft_fail(
                CRAFT_ESHAPE,
                "%s: input %s, weight %s, groups %d: expected weight [out, in / groups, kh, kw] with in = %lld "
                "and out divisible by groups",
                op, craft_shape_str(x), craft_shape_str(w), groups, (long long)C);
        CRAFT_TRY(check_bias(op, b, O, w));
        int64_t in[2] = {x->shape[2], x->shape[3]};
        for (int i = 0; i < 2; i++) {
            int64_t ext;
            if (__builtin_mul_overflow(a.d[i], k[i] - 1, &ext) || ext == INT64_MAX)
                return craft_fail(CRAFT_ESHAPE,
                                  "%s: weight %s with dilation %lld: the kernel's extent is too large", op,
                                  craft_shape_str(w), (long long)a.d[i]);
            ext += 1;
            if (in[i] + 2 * a.p[i] < ext)
                return craft_fail(
                    CRAFT_ESHAPE,
                    "%s: input %s with padding %lld is smaller than weight %s's kernel (extent %lld with dilation %lld)",
                    op, craft_shape_str(x), (long long)a.p[i], craft_shape_str(w), (long long)ext,
                    (long long)a.d[i]);
            o[i] = (in[i] + 2 * a.p[i] - ext) / a.s[i] + 1;
        }
        g->ic = C;
        g->ih = in[0];
        g->iw = in[1];
        g->oc = O;
        g->oh = o[0];
        g->ow = o[1];
        return CRAFT_OK;
    }
    int64_t O;
    if (__builtin_mul_overflow(w->shape[1], (int64_t)groups, &O))
        return craft_fail(CRAFT_ESHAPE, "%s: weight %s with %d groups: the output channels are too many", op,
                          craft_shape_str(w), groups);
    if (C % groups || w->shape[0] != C)
        return craft_fail(
            CRAFT_ESHAPE,
            "%s: input %s, weight %s, groups %d: expected weight [in, out / groups, kh, kw] with in = %lld "
            "divisible by groups",
            op, craft_shape_str(x), craft_shape_str(w), groups, (long long)C);
    CRAFT_TRY(check_bias(op, b, O, w));
    int64_t in[2] = {x->shape[2], x->shape[3]};
    for (int i = 0; i < 2; i++) {
        if (a.op[i] >= a.s[i] && a.op[i] >= a.d[i])
            return craft_fail(
                CRAFT_EINVAL,
                "%s: input %s, weight %s: output_padding %lld must be smaller than stride %lld or dilation %lld",
                op, craft_shape_str(x), craft_shape_str(w), (long long)a.op[i], (long long)a.s[i],
                (long long)a.d[i]);
        int64_t span, ext; /* (in - 1) s - 2 p + d (k - 1) + op + 1, each step checked */
        if (__builtin_mul_overflow(in[i] - 1, a.s[i], &span) ||
            __builtin_mul_overflow(a.d[i], k[i] - 1, &ext) || __builtin_add_overflow(span, ext, &o[i]) ||
            __builtin_add_overflow(o[i], a.op[i] + 1 - 2 * a.p[i], &o[i]))
            return craft_fail(
                CRAFT_ESHAPE,
                "%s: input %s, weight %s, stride %lld, dilation %lld: the output size is too large", op,
                craft_shape_str(x), craft_shape_str(w), (long long)a.s[i], (long long)a.d[i]);
        if (o[i] < 1)
            return craft_fail(
                CRAFT_ESHAPE,
                "%s: input %s, weight %s, stride %lld, padding %lld: output size %lld is not positive", op,
                craft_shape_str(x), craft_shape_str(w), (long long)a.s[i], (long long)a.p[i],
                (long long)o[i]);
    }
    g->oc = C;
    g->oh = in[0];
    g->ow = in[1]; /* conv terms: the conv's dst is this op's input */
    g->ic = O;
    g->ih = o[0];
    g->iw = o[1];
    return CRAFT_OK;
}

/* ------------------------------------------------------------ the ops ---- */
#define NDIMS ((int)(sizeof(craft_conv_dims) / sizeof(int64_t)))
_Static_assert(sizeof(craft_conv_dims) % sizeof(int64_t) == 0, "craft_conv_dims must be int64 only");
_Static_assert(sizeof(craft_conv_dims) + sizeof(int64_t) <= sizeof(((craft_node *)0)->iarg),
               "conv dims must fit a node's iarg");

/* saved: [0] the op's input (for gw), [1] the weight (for gx); iarg: the dims, then whether
 * the forward convolution had a bias */
static int conv_backward_common(craft_node *n, craft_tensor **gout, craft_tensor **gin, int transposed) {
    craft_tensor *x = n->saved[0], *w = n->saved[1], *g;
    craft_conv_dims cd;
    memcpy(&cd, n->iarg, sizeof cd);
    int fwd_bias = (int)n->iarg[NDIMS], device = n->device;
    const craft_kernels *k;
    static const int kids[2] = {CRAFT_K_conv, CRAFT_K_channel_sums};
    CRAFT_TRY(craft_kernels_all(device, CRAFT_F32, n->name, 2, kids, &k));
    CRAFT_TRY(craft_grad_on(gout[0], device, &g));
    int rc = CRAFT_OK, need_b = n->n_in > 2 && CRAFT_NEEDS_GRAD(n, 2);
    int64_t nb = transposed ? cd.ic : cd.oc;
    /* both gradients of an fp32 conv2d in one call where the back end shares work between them */
    if (!transposed && CRAFT_NEEDS_GRAD(n, 0) && CRAFT_NEEDS_GRAD(n, 1) && !craft_bf16_grad_for(n, CRAFT_K_conv_bf16) &&
        craft_device_supports(device, CRAFT_K_conv_grad, CRAFT_F32)) {
        if (!(gin[0] = craft_new_tensor(4, n->edges[0].shape, CRAFT_F32, device)) ||
            !(gin[1] = craft_new_tensor(4, n->edges[1].shape, CRAFT_F32, device)) ||
            (need_b && !(gin[2] = craft_new_tensor(1, &nb, CRAFT_F32, device))))
            rc = craft_last_status();
        else rc = k->conv_grad(&cd, fwd_bias, x, w, g, gin[0], gin[1], need_b ? gin[2] : NULL);
        craft_tensor_release(g);
        return rc;
    }
    if (CRAFT_NEEDS_GRAD(n, 0)) {
        /* a bf16 forward (mixed precision) gets a bf16 data gradient (the device has the kernel) */
        int bf16 = !transposed && craft_bf16_grad_for(n, CRAFT_K_conv_bf16);
        if (!(gin[0] = craft_new_tensor(4, n->edges[0].shape, CRAFT_F32, device))) rc = craft_last_status();
        else if (transposed) rc = k->conv(CRAFT_CONV_FWD, &cd, fwd_bias, g, w, gin[0], NULL);
        else if (bf16) rc = k->conv_bf16(CRAFT_CONV_BWD_DATA, &cd, fwd_bias, gin[0], w, g, NULL);
        else rc = k->conv(CRAFT_CONV_BWD_DATA, &cd, fwd_bias, gin[0], w, g, NULL);
    }
    if (!rc && need_b && !(gin[2] = craft_new_tensor(1, &nb, CRAFT_F32, device))) rc = craft_last_status();
    int bias_done = 0;
    if (!rc && CRAFT_NEEDS_GRAD(n, 1)) {
        if (!(gin[1] = craft_new_tensor(4, n->edges[1].shape, CRAFT_F32, device))) rc = craft_last_status();
        else if (transposed) rc = k->conv(CRAFT_CONV_BWD_WEIGHTS, &cd, fwd_bias, g, gin[1], x, NULL);
        else {
            rc = k->conv(CRAFT_CONV_BWD_WEIGHTS, &cd, fwd_bias, x, gin[1], g, need_b ? gin[2] : NULL);
            bias_done = 1;
        }
    }
    if (!rc && need_b && !bias_done)
        rc = transposed ? k->channel_sums(g, cd.n, cd.ic, cd.ih * cd.iw, gin[2])
                        : k->channel_sums(g, cd.n, cd.oc, cd.oh * cd.ow, gin[2]);
    craft_tensor_release(g);
    return rc;
}
static int conv2d_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return conv_backward_common(n, gout, gin, 0);
}
static int convt_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return conv_backward_common(n, gout, gin, 1);
}

static int conv_op(int transposed, const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                   const int *stride, const int *padding, const int *output_padding, const int *dilation,
                   int groups, craft_tensor **out) {
    const char *op = transposed ? "conv_transpose2d" : "conv2d";
    if (!x) return craft_fail(CRAFT_EINVAL, "%s: input is missing", op);
    int device = x->device;
    const craft_kernels *k;
    CRAFT_TRY(craft_want(op, "input", x, device));
    CRAFT_TRY(craft_want(op, "weight", w, device));
    if (b) CRAFT_TRY(craft_want(op, "bias", b, device));
    craft_conv_dims cd;
    CRAFT_TRY(conv_dims_of(op, transposed, x, w, b, stride, padding, output_padding, dilation, groups, &cd));
    /* under the bf16 compute precision an unrecorded conv2d (under bf16-mixed any conv2d) runs the
     * back end's conv_bf16, under fp16 an unrecorded one conv_f16; the transposed op stays fp32
     * (its forward is the conv's backward-data direction) */
    const craft_tensor *ins[3] = {x, w, b};
    int bf16 = !transposed && craft_bf16_for(device, CRAFT_K_conv_bf16, 3, ins);
    int f16 = !transposed && !bf16 && craft_f16_for(device, CRAFT_K_conv_f16, 3, ins);
    CRAFT_TRY(craft_kernels_for(device,
                                bf16      ? CRAFT_K_conv_bf16
                                    : f16 ? CRAFT_K_conv_f16
                                          : CRAFT_K_conv,
                                CRAFT_F32, op, &k));
    craft_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL;
    int rc = craft_contig_f32(x, &xc);
    if (!rc) rc = craft_contig_f32(w, &wc);
    if (!rc && b) rc = craft_contig_f32(b, &bc);
    int64_t yshape[4] = {cd.n, transposed ? cd.ic : cd.oc, transposed ? cd.ih : cd.oh,
                         transposed ? cd.iw : cd.ow};
    if (!rc && !(y = craft_new_tensor(4, yshape, CRAFT_F32, device))) rc = craft_last_status();
    /* the transposed op adds its bias itself: the conv's backward-data direction has none */
    int fwd_bias = !transposed && b;
    if (!rc)
        rc = transposed ? k->conv(CRAFT_CONV_BWD_DATA, &cd, 0, y, wc, xc, bc)
            : bf16      ? k->conv_bf16(CRAFT_CONV_FWD, &cd, fwd_bias, xc, wc, y, bc)
            : f16       ? k->conv_f16(&cd, fwd_bias, xc, wc, y, bc)
                        : k->conv(CRAFT_CONV_FWD, &cd, fwd_bias, xc, wc, y, bc);
    if (!rc) {
        /* frozen weights (LoRA) need no saved input, a frozen input no saved weight */
        const craft_tensor *save[2] = {w->requires_grad ? xc : NULL, x->requires_grad ? wc : NULL};
        int64_t iargs[NDIMS + 1];
        memcpy(iargs, &cd, sizeof cd);
        iargs[NDIMS] = fwd_bias;
        craft_node *node;
        rc = craft_record(op, b ? 3 : 2, ins, y, transposed ? convt_backward : conv2d_backward, 2, save, NULL,
                          0, iargs, NDIMS + 1, &node);
        if (!rc && node) node->lowp = bf16;
    }
    craft_tensor_release(xc);
    craft_tensor_release(wc);
    craft_tensor_release(bc);
    return craft_finish(rc, y, out);
}

int craft_conv2d(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b, const int *stride,
                 const int *padding, const int *dilation, int groups, craft_tensor **out) {
    return conv_op(0, x, w, b, stride, padding, NULL, dilation, groups, out);
}

int craft_conv_transpose2d(const craft_tensor *x, const craft_tensor *w, const craft_tensor *b,
                           const int *stride, const int *padding, const int *output_padding,
                           const int *dilation, int groups, craft_tensor **out) {
    return conv_op(1, x, w, b, stride, padding, output_padding, dilation, groups, out);
}
