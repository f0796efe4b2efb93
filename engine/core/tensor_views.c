/* tensor_views.c: reshape, permute, slice, expand and friends. They return views sharing
 * storage whenever the strides allow it, and are differentiable. */
#include "core/internal.h"

static int finish_view(const char *name, const craft_tensor *in, craft_tensor *out, craft_backward_kernel bw,
                       const int64_t *iargs, int n_iargs, craft_tensor **res) {
    int rc = craft_record(name, 1, &in, out, bw, 0, NULL, NULL, 0, iargs, n_iargs, NULL);
    if (rc) {
        craft_tensor_release(out);
        return rc;
    }
    *res = out;
    return CRAFT_OK;
}

/* backward of every view that only rearranges elements: reshape the gradient back */
static int reshape_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return craft_reshape(gout[0], n->edges[0].ndim, n->edges[0].shape, &gin[0]);
}

/* Can t be viewed as (nd, ns) without copying? If so, fills the new strides. Old dims are
 * grouped into runs that are contiguous in memory; each run must map onto whole new dims. */
static int view_strides(const craft_tensor *t, int nd, const int64_t *ns, int64_t *nst) {
    if (t->numel == 0 || t->ndim == 0) {
        int64_t s = 1;
        for (int i = nd - 1; i >= 0; i--) { /* saturating: sizes beside a 0 can be anything */
            nst[i] = s;
            if (__builtin_mul_overflow(s, ns[i], &s)) s = INT64_MAX;
        }
        return 1;
    }
    int view_d = nd - 1;
    int64_t chunk_stride = t->stride[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int td = t->ndim - 1; td >= 0; td--) {
        tensor_numel *= t->shape[td];
        if (td == 0 || (t->shape[td - 1] != 1 && t->stride[td - 1] != tensor_numel * chunk_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || ns[view_d] == 1)) {
                nst[view_d] = view_numel * chunk_stride;
                view_numel *= ns[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return 0;
            if (td > 0) {
                chunk_stride = t->stride[td - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

int craft_reshape(const craft_tensor *t, int ndim, const int64_t *shape_in, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "reshape: the input tensor is NULL");
    if (ndim < 0 || ndim > CRAFT_MAX_DIMS) return craft_fail(CRAFT_ESHAPE, "reshape: %d dims", ndim);
    int64_t shape[CRAFT_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        shape[i] = shape_in[i];
        if (shape[i] == -1) {
            if (infer >= 0)
                return craft_fail(CRAFT_ESHAPE, "reshape: more than one -1 in %s",
                                  craft_dims_str(ndim, shape_in));
            infer = i;
        } else if (shape[i] < 0) {
            return craft_fail(CRAFT_ESHAPE, "reshape: negative size in %s", craft_dims_str(ndim, shape_in));
        } else if (shape[i] > ((int64_t)1 << 46)) { /* craft_empty's limit, even beside a 0 */
            return craft_fail(CRAFT_ESHAPE, "reshape: shape %s is too large", craft_dims_str(ndim, shape_in));
        } else if (__builtin_mul_overflow(known, shape[i], &known)) {
            return craft_fail(CRAFT_ESHAPE, "reshape: shape %s is too large", craft_dims_str(ndim, shape_in));
        }
    }
    if (infer >= 0) {
        if (known == 0 || t->numel % known)
            return craft_fail(CRAFT_ESHAPE, "reshape: cannot view %s as %s", craft_shape_str(t),
                              craft_dims_str(ndim, shape_in));
        shape[infer] = t->numel / known;
    }
    if (craft_numel_of(ndim, shape) != t->numel)
        return craft_fail(CRAFT_ESHAPE, "reshape: %s has %lld elements, %s has %lld", craft_shape_str(t),
                          (long long)t->numel, craft_dims_str(ndim, shape),
                          (long long)craft_numel_of(ndim, shape));
    int64_t nst[CRAFT_MAX_DIMS];
    craft_tensor *v;
    if (view_strides(t, ndim, shape, nst)) {
        v = craft_alias(t);
        if (!v) return craft_last_status();
        v->ndim = ndim;
        for (int i = 0; i < ndim; i++) {
            v->shape[i] = shape[i];
            v->stride[i] = nst[i];
        }
    } else {
        v = craft_new_tensor(ndim, shape, t->dtype, t->device);
        if (!v) return craft_last_status();
        craft_tensor *src = craft_alias(t);
        if (!src) {
            craft_tensor_release(v);
            return craft_last_status();
        }
        /* copy through a view of v with t's shape */
        craft_tensor *vv = craft_alias(v);
        vv->ndim = t->ndim;
        int64_t s = 1;
        for (int i = t->ndim - 1; i >= 0; i--) {
            vv->shape[i] = t->shape[i];
            vv->stride[i] = s;
            s *= t->shape[i];
        }
        int rc = craft_copy_(vv, src);
        craft_tensor_release(vv);
        craft_tensor_release(src);
        if (rc) {
            craft_tensor_release(v);
            return rc;
        }
    }
    return finish_view("reshape", t, v, reshape_backward, NULL, 0, out);
}

static int permute_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    int inv[CRAFT_MAX_DIMS];
    for (int i = 0; i < n->edges[0].ndim; i++) inv[n->iarg[i]] = i;
    return craft_permute(gout[0], inv, &gin[0]);
}

int craft_permute(const craft_tensor *t, const int *perm, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "permute: the input tensor is NULL");
    int seen[CRAFT_MAX_DIMS] = {0};
    int64_t iargs[CRAFT_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int p = perm[i] < 0 ? perm[i] + t->ndim : perm[i];
        if (p < 0 || p >= t->ndim || seen[p])
            return craft_fail(CRAFT_EINVAL, "permute: order is not a permutation of the %d dims of %s",
                              t->ndim, craft_shape_str(t));
        seen[p] = 1;
        iargs[i] = p;
    }
    craft_tensor *v = craft_alias(t);
    if (!v) return craft_last_status();
    for (int i = 0; i < t->ndim; i++) {
        v->shape[i] = t->shape[iargs[i]];
        v->stride[i] = t->stride[iargs[i]];
    }
    return finish_view("permute", t, v, permute_backward, iargs, t->ndim, out);
}

int craft_transpose(const craft_tensor *t, int d0, int d1, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "transpose: the input tensor is NULL");
    int a, b, perm[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_normalize_dim("transpose", d0, t->ndim, &a));
    CRAFT_TRY(craft_normalize_dim("transpose", d1, t->ndim, &b));
    for (int i = 0; i < t->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return craft_permute(t, perm, out);
}

/* gradient of a slice: zeros with the slice filled */
static int slice_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    craft_tensor *z, *view;
    CRAFT_TRY(craft_zeros(n->edges[0].ndim, n->edges[0].shape, CRAFT_F32, gout[0]->device, &z));
    int rc = craft_slice(z, (int)n->iarg[0], n->iarg[1], n->iarg[2], n->iarg[3], &view);
    if (!rc) rc = craft_copy_(view, gout[0]);
    if (!rc) craft_tensor_release(view);
    if (rc) {
        craft_tensor_release(z);
        return rc;
    }
    gin[0] = z;
    return CRAFT_OK;
}

int craft_slice(const craft_tensor *t, int dim, int64_t start, int64_t end, int64_t step,
                craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "slice: the input tensor is NULL");
    int d;
    if (t->ndim == 0) return craft_fail(CRAFT_ESHAPE, "slice: cannot slice a 0-d tensor");
    CRAFT_TRY(craft_normalize_dim("slice", dim, t->ndim, &d));
    if (step <= 0) return craft_fail(CRAFT_EINVAL, "slice: step %lld must be positive", (long long)step);
    int64_t n = t->shape[d];
    if (start < 0) start += n;
    if (end < 0) end += n;
    if (start < 0) start = 0;
    if (end > n) end = n;
    if (start > n) start = n;
    if (end < start) end = start;
    /* a step past the dim's length takes at most its first element: clamp it so that neither
     * the length nor the new stride can overflow (a fuzzed step of 2^62 did) */
    if (step > n) step = n > 0 ? n : 1;
    craft_tensor *v = craft_alias(t);
    if (!v) return craft_last_status();
    /* an empty tensor may carry saturated strides (its other sizes multiply past int64):
     * saturate here too, no element is ever reached through them */
    int64_t moved, nst;
    if (__builtin_mul_overflow(start, t->stride[d], &moved) ||
        __builtin_add_overflow(v->offset, moved, &v->offset))
        v->offset = t->offset;
    if (__builtin_mul_overflow(t->stride[d], step, &nst)) nst = t->stride[d] < 0 ? INT64_MIN : INT64_MAX;
    v->shape[d] = (end - start + step - 1) / step;
    v->stride[d] = nst;
    v->numel = craft_numel_of(v->ndim, v->shape);
    int64_t iargs[4] = {d, start, end, step};
    return finish_view("slice", t, v, slice_backward, iargs, 4, out);
}

static int expand_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return craft_sum_to_shape(gout[0], n->edges[0].ndim, n->edges[0].shape, &gin[0]);
}

int craft_expand(const craft_tensor *t, int ndim, const int64_t *shape, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "expand: the input tensor is NULL");
    if (ndim < t->ndim || ndim > CRAFT_MAX_DIMS)
        return craft_fail(CRAFT_ESHAPE, "expand: %s to %s", craft_shape_str(t), craft_dims_str(ndim, shape));
    craft_tensor *v = craft_alias(t);
    if (!v) return craft_last_status();
    int off = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - off;
        int64_t want = shape[i] == -1 && j >= 0 ? t->shape[j] : shape[i];
        if (j >= 0 && t->shape[j] == want) {
            v->shape[i] = want;
            v->stride[i] = t->stride[j];
            continue;
        }
        if ((j < 0 || t->shape[j] == 1) && want >= 0 && want <= ((int64_t)1 << 46)) {
            v->shape[i] = want;
            v->stride[i] = 0;
            continue;
        }
        craft_tensor_release(v);
        return craft_fail(CRAFT_ESHAPE, "expand: %s cannot expand to %s (dim %d)", craft_shape_str(t),
                          craft_dims_str(ndim, shape), i);
    }
    v->ndim = ndim;
    v->numel = craft_numel_of(ndim, v->shape);
    if (v->numel > ((int64_t)1 << 46)) { /* the limit craft_empty has: no view is larger either */
        craft_tensor_release(v);
        return craft_fail(CRAFT_ESHAPE, "expand: %s to %s is too large", craft_shape_str(t),
                          craft_dims_str(ndim, shape));
    }
    return finish_view("expand", t, v, expand_backward, NULL, 0, out);
}

int craft_unsqueeze(const craft_tensor *t, int dim, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "unsqueeze: the input tensor is NULL");
    int d = dim < 0 ? dim + t->ndim + 1 : dim;
    if (d < 0 || d > t->ndim || t->ndim >= CRAFT_MAX_DIMS)
        return craft_fail(CRAFT_EINVAL, "unsqueeze: dim %d for %s", dim, craft_shape_str(t));
    int64_t shape[CRAFT_MAX_DIMS];
    for (int i = 0, k = 0; i <= t->ndim; i++) shape[i] = i == d ? 1 : t->shape[k++];
    return craft_reshape(t, t->ndim + 1, shape, out);
}

int craft_squeeze(const craft_tensor *t, int dim, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "squeeze: the input tensor is NULL");
    int64_t shape[CRAFT_MAX_DIMS];
    int nd = 0;
    if (dim == -1000) {
        for (int i = 0; i < t->ndim; i++)
            if (t->shape[i] != 1) shape[nd++] = t->shape[i];
    } else {
        int d;
        CRAFT_TRY(craft_normalize_dim("squeeze", dim, t->ndim, &d));
        for (int i = 0; i < t->ndim; i++)
            if (i != d || t->shape[i] != 1) shape[nd++] = t->shape[i];
    }
    return craft_reshape(t, nd, shape, out);
}

static int identity_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    gin[0] = craft_tensor_retain(gout[0]);
    return CRAFT_OK;
}

int craft_clone(const craft_tensor *t, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "clone: the input tensor is NULL");
    craft_tensor *c = craft_new_tensor(t->ndim, t->shape, t->dtype, t->device);
    if (!c) return craft_last_status();
    int rc = craft_copy_(c, t);
    if (rc) {
        craft_tensor_release(c);
        return rc;
    }
    return finish_view("clone", t, c, identity_backward, NULL, 0, out);
}

int craft_contiguous(const craft_tensor *t, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "contiguous: the input tensor is NULL");
    if (craft_is_contiguous(t)) {
        *out = craft_tensor_retain((craft_tensor *)t);
        return CRAFT_OK;
    }
    return craft_clone(t, out);
}

int craft_detach(const craft_tensor *t, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "detach: the input tensor is NULL");
    craft_tensor *a = craft_alias(t);
    if (!a) return craft_last_status();
    *out = a;
    return CRAFT_OK;
}

static int to_dtype_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return craft_to_dtype(gout[0], CRAFT_F32, &gin[0]);
}

int craft_to_dtype(const craft_tensor *t, int dtype, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "to_dtype: the input tensor is NULL");
    if (!craft_dtype_size(dtype)) return craft_fail(CRAFT_ETYPE, "to_dtype: unknown dtype %d", dtype);
    if (dtype == t->dtype) {
        *out = craft_tensor_retain((craft_tensor *)t);
        return CRAFT_OK;
    }
    craft_tensor *c = craft_new_tensor(t->ndim, t->shape, dtype, t->device);
    if (!c) return craft_last_status();
    int rc = craft_copy_(c, t);
    if (rc) {
        craft_tensor_release(c);
        return rc;
    }
    if (dtype != CRAFT_F32) {
        *out = c;
        return CRAFT_OK;
    } /* only f32 results carry gradients */
    return finish_view("to_dtype", t, c, to_dtype_backward, NULL, 0, out);
}
