/* cl_transfer.c: the back end's copy and fill (its table's; core/tensor.c routes copies where
 * a cl tensor is involved here): copies on one device, host <-> device transfers, converting and
 * broadcasting. Transfers are blocking: the host memory may be reused as soon as they return. */
#include "cl/cl_internal.h"
#include "core/backend.h"

craft_tensor *cl_new(int ndim, const int64_t *shape, int dtype, int code) {
    return craft_new_tensor(ndim, shape, dtype, code);
}

static int same_shape(const craft_tensor *a, const craft_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* host <- device: the n elements of contiguous t into buf */
static int download(const craft_tensor *t, void *buf) {
    return craft_cl_read_bytes(t, t->offset, buf, (size_t)t->numel * craft_dtype_size(t->dtype));
}

static int upload(craft_tensor *t, const void *buf) {
    return craft_cl_write_bytes(t, t->offset, buf, (size_t)t->numel * craft_dtype_size(t->dtype));
}

/* A dense CPU copy of a device tensor (same shape and dtype). */
static int to_host(const craft_tensor *src, craft_tensor **out) {
    craft_tensor *c = NULL, *h = NULL;
    const craft_tensor *s = src;
    int rc = CRAFT_OK;
    if (!craft_is_contiguous(src)) {
        c = cl_new(src->ndim, src->shape, src->dtype, src->device);
        if (!c) return craft_last_status();
        rc = craft_cl_copy_(c, src);
        s = c;
    }
    if (!rc) {
        h = craft_new_tensor(src->ndim, src->shape, src->dtype, CRAFT_DEVICE_CPU);
        if (!h) rc = craft_last_status();
    }
    if (!rc) rc = download(s, craft_tensor_data(h));
    craft_tensor_release(c);
    if (rc) {
        craft_tensor_release(h);
        return rc;
    }
    *out = h;
    return CRAFT_OK;
}

static int copy_same_device(craft_tensor *dst, const craft_tensor *src);

/* dst (device) = src (CPU), broadcast and converted on the host */
static int copy_from_host(craft_tensor *dst, const craft_tensor *src) {
    if (dst->dtype == src->dtype && same_shape(dst, src) && craft_is_contiguous(src) &&
        craft_is_contiguous(dst))
        return upload(dst, craft_tensor_data(src));
    craft_tensor *h = craft_new_tensor(dst->ndim, dst->shape, dst->dtype, CRAFT_DEVICE_CPU);
    if (!h) return craft_last_status();
    int rc = craft_copy_(h, src);
    if (!rc && craft_is_contiguous(dst)) rc = upload(dst, craft_tensor_data(h));
    else if (!rc) {
        craft_tensor *t = cl_new(dst->ndim, dst->shape, dst->dtype, dst->device);
        if (!t) rc = craft_last_status();
        if (!rc) rc = upload(t, craft_tensor_data(h));
        if (!rc) rc = copy_same_device(dst, t);
        craft_tensor_release(t);
    }
    craft_tensor_release(h);
    return rc;
}

/* dst (CPU) = src (device) */
static int copy_to_host(craft_tensor *dst, const craft_tensor *src) {
    if (dst->dtype == src->dtype && same_shape(dst, src) && craft_is_contiguous(src) &&
        craft_is_contiguous(dst)) {
        CRAFT_TRY(download(src, craft_tensor_data(dst)));
        dst->storage->version++;
        return CRAFT_OK;
    }
    craft_tensor *h;
    CRAFT_TRY(to_host(src, &h));
    int rc = craft_copy_(dst, h);
    craft_tensor_release(h);
    return rc;
}

static int copy_same_device(craft_tensor *dst, const craft_tensor *src) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(dst->device, "copy_", &d));
    const craft_tensor *ts[2] = {dst, src};
    if (dst->dtype == src->dtype) {
        size_t es = craft_dtype_size(dst->dtype);
        int kid = es == 1 ? K_copy_1 : es == 2 ? K_copy_2 : es == 4 ? K_copy_4 : K_copy_8;
        return cl_elementwise(d, kid, 2, ts, dst->ndim, dst->shape, 0, NULL);
    }
    if (!d->info.fp64 && (dst->dtype == CRAFT_F64 || src->dtype == CRAFT_F64)) {
        /* no doubles in kernels here: convert on the host */
        craft_tensor *h;
        CRAFT_TRY(to_host(src, &h));
        int rc = copy_from_host(dst, h);
        craft_tensor_release(h);
        return rc;
    }
    cl_int ddt = dst->dtype, sdt = src->dtype;
    cl_arg extra[2] = {CLA(ddt), CLA(sdt)};
    return cl_elementwise(d, K_convert, 2, ts, dst->ndim, dst->shape, 2, extra);
}

int craft_cl_copy_(craft_tensor *dst, const craft_tensor *src) {
    int nd;
    int64_t shape[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_broadcast_shape("copy_", dst, src, &nd, shape));
    if (nd != dst->ndim || craft_numel_of(nd, shape) != dst->numel)
        return craft_fail(CRAFT_ESHAPE, "copy_: source %s does not broadcast to destination %s",
                          craft_shape_str(src), craft_shape_str(dst));
    int rc = CRAFT_OK;
    if (dst->numel == 0) rc = CRAFT_OK;
    else if (dst->device == src->device) rc = copy_same_device(dst, src);
    else if (src->device == CRAFT_DEVICE_CPU) rc = copy_from_host(dst, src);
    else if (dst->device == CRAFT_DEVICE_CPU) return copy_to_host(dst, src); /* bumps the version */
    else { /* between two OpenCL devices: through the host */ craft_tensor *h;
        CRAFT_TRY(to_host(src, &h));
        rc = copy_from_host(dst, h);
        craft_tensor_release(h);
    }
    if (!rc) dst->storage->version++;
    return rc;
}

int craft_cl_fill_(craft_tensor *t, double value) {
    craft_tensor *s;
    CRAFT_TRY(craft_full(0, NULL, t->dtype, value, &s)); /* the value in t's dtype, as the CPU stores it */
    craft_cl_dev *d;
    int rc = cl_dev_get(t->device, "fill_", &d);
    if (!rc && t->numel > 0 && craft_is_contiguous(t)) {
        size_t es = craft_dtype_size(t->dtype);
        cl_int err = clEnqueueFillBuffer(d->queue, cl_mem_of(t), craft_tensor_data(s), es,
                                         (size_t)t->offset * es, (size_t)t->numel * es, 0, NULL, NULL);
        if (err != CL_SUCCESS) rc = cl_fail(err, d, "fill_");
        if (!rc) t->storage->version++;
    } else if (!rc && t->numel > 0) {
        craft_tensor *ds = cl_new(0, NULL, t->dtype, t->device);
        if (!ds) rc = craft_last_status();
        if (!rc) rc = upload(ds, craft_tensor_data(s));
        if (!rc) rc = copy_same_device(t, ds);
        if (!rc) t->storage->version++;
        craft_tensor_release(ds);
    }
    craft_tensor_release(s);
    return rc;
}
