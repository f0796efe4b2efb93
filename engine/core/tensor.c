/* tensor.c: tensor and storage lifetime, creation, element access, dtype conversion and the
 * in-place copy/fill that everything else builds on. */
#include "core/backend.h"
#include <math.h>
#include <stdlib.h>

static uint64_t storage_serials;
static uint64_t next_serial(void) { return __atomic_add_fetch(&storage_serials, 1, __ATOMIC_RELAXED); }

static craft_storage *storage_new(size_t nbytes, int device) {
    const craft_backend *b = craft_backend_of(device, "tensor");
    if (!b) return NULL;
    craft_storage *s = calloc(1, sizeof *s);
    if (!s) {
        craft_fail(CRAFT_ENOMEM, "out of host memory for a storage header");
        return NULL;
    }
    if (b->storage_init(s, device, nbytes)) {
        free(s);
        return NULL;
    }
    s->nbytes = nbytes;
    s->refcount = 1;
    s->device = device;
    s->serial = next_serial();
    return s;
}

static void storage_release(craft_storage *s) {
    if (!s || --s->refcount > 0) return;
    if (s->release) s->release(s->release_ctx, s->data, s->nbytes);
    else craft_free(s->data, s->nbytes ? s->nbytes : 1);
    free(s);
}

/* The product of the sizes: 0 when one is 0 (whatever the others), else INT64_MAX when it
 * overflows (user-supplied shapes can be anything: callers compare it or check it against a
 * limit, and a saturated value fails either). */
int64_t craft_numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n = craft_mul_sat(n, shape[i]);
    return n;
}

void craft_split_at(int ndim, const int64_t *shape, int d, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1;
    *n = 1;
    *inner = 1;
    if (ndim == 0) return;
    *outer = craft_numel_of(d, shape);
    *n = shape[d];
    *inner = craft_numel_of(ndim - d - 1, shape + d + 1);
}

static int check_shape(const char *op, int ndim, const int64_t *shape, int dtype) {
    if (ndim < 0 || ndim > CRAFT_MAX_DIMS)
        return craft_fail(CRAFT_ESHAPE, "%s: %d dims (craft tensors have 0 to 8)", op, ndim);
    if (!craft_dtype_size(dtype)) return craft_fail(CRAFT_ETYPE, "%s: unknown dtype %d", op, dtype);
    /* each size, and the element count, at most 2^46; an empty tensor's other sizes may
     * multiply past that (its strides saturate), in any order */
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return craft_fail(CRAFT_ESHAPE, "%s: negative size %lld in dim %d", op, (long long)shape[i], i);
        if (shape[i] > ((int64_t)1 << 46))
            return craft_fail(CRAFT_ESHAPE, "%s: shape %s is too large", op, craft_dims_str(ndim, shape));
    }
    if (craft_numel_of(ndim, shape) > ((int64_t)1 << 46))
        return craft_fail(CRAFT_ESHAPE, "%s: shape %s is too large", op, craft_dims_str(ndim, shape));
    return CRAFT_OK;
}

static void set_contiguous_strides(craft_tensor *t) {
    int64_t s = 1;
    /* saturating: an empty tensor may have other sizes whose product overflows */
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        if (__builtin_mul_overflow(s, t->shape[i], &s)) s = INT64_MAX;
    }
}

static craft_tensor *tensor_header(int ndim, const int64_t *shape, int dtype, int device) {
    craft_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        craft_fail(CRAFT_ENOMEM, "out of host memory for a tensor header");
        return NULL;
    }
    t->refcount = 1;
    t->ndim = ndim;
    t->dtype = dtype;
    t->device = device;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = craft_numel_of(ndim, shape);
    set_contiguous_strides(t);
    return t;
}

craft_tensor *craft_new_tensor(int ndim, const int64_t *shape, int dtype, int device) {
    if (check_shape("tensor", ndim, shape, dtype)) return NULL;
    craft_tensor *t = tensor_header(ndim, shape, dtype, device);
    if (!t) return NULL;
    t->storage = storage_new((size_t)t->numel * craft_dtype_size(dtype), device);
    if (!t->storage) {
        free(t);
        return NULL;
    }
    return t;
}

craft_tensor *craft_tensor_retain(craft_tensor *t) {
    if (t) t->refcount++;
    return t;
}

void craft_tensor_release(craft_tensor *t) {
    if (!t || --t->refcount > 0) return;
    storage_release(t->storage);
    craft_tensor_release(t->grad);
    if (t->node) craft_node_release(t->node);
    free(t);
}

/* A new header over t's storage (shares data; no graph). */
static craft_tensor *alias_of(const craft_tensor *t) {
    craft_tensor *a = calloc(1, sizeof *a);
    if (!a) {
        craft_fail(CRAFT_ENOMEM, "out of host memory for a tensor header");
        return NULL;
    }
    *a = *t;
    a->refcount = 1;
    a->grad = NULL;
    a->node = NULL;
    a->out_index = 0;
    a->requires_grad = 0;
    a->storage->refcount++;
    return a;
}
craft_tensor *craft_alias(const craft_tensor *t) { return alias_of(t); }

int craft_empty(int ndim, const int64_t *shape, int dtype, int device, craft_tensor **out) {
    CRAFT_TRY(check_shape("empty", ndim, shape, dtype));
    craft_tensor *t = craft_new_tensor(ndim, shape, dtype, device);
    if (!t) return craft_last_status();
    *out = t;
    return CRAFT_OK;
}

int craft_zeros(int ndim, const int64_t *shape, int dtype, int device, craft_tensor **out) {
    craft_tensor *t;
    CRAFT_TRY(craft_empty(ndim, shape, dtype, device, &t));
    const craft_backend *b = craft_backend_of(device, "zeros");
    return craft_finish(b ? b->fill(t, 0.0) : craft_last_status(), t, out);
}

int craft_full(int ndim, const int64_t *shape, int dtype, double value, craft_tensor **out) {
    craft_tensor *t;
    CRAFT_TRY(craft_empty(ndim, shape, dtype, CRAFT_DEVICE_CPU, &t));
    int rc = craft_fill_(t, value);
    if (rc) {
        craft_tensor_release(t);
        return rc;
    }
    *out = t;
    return CRAFT_OK;
}

int craft_empty_like(const craft_tensor *t, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "empty_like: the input tensor is NULL");
    return craft_empty(t->ndim, t->shape, t->dtype, t->device, out);
}
int craft_zeros_like(const craft_tensor *t, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "zeros_like: the input tensor is NULL");
    return craft_zeros(t->ndim, t->shape, t->dtype, t->device, out);
}

int craft_from_data(int ndim, const int64_t *shape, int dtype, const void *data, craft_tensor **out) {
    craft_tensor *t;
    CRAFT_TRY(craft_empty(ndim, shape, dtype, CRAFT_DEVICE_CPU, &t));
    if (t->numel && !data) {
        craft_tensor_release(t);
        return craft_fail(CRAFT_EINVAL, "from_data: NULL data");
    }
    if (t->numel) memcpy(t->storage->data, data, (size_t)t->numel * craft_dtype_size(dtype));
    *out = t;
    return CRAFT_OK;
}

static void release_nothing(void *ctx, void *data, size_t nbytes) {
    (void)ctx;
    (void)data;
    (void)nbytes;
}

int craft_from_external(int ndim, const int64_t *shape, int dtype, void *data, size_t nbytes,
                        void (*release)(void *, void *, size_t), void *release_ctx, craft_tensor **out) {
    CRAFT_TRY(check_shape("from_external", ndim, shape, dtype));
    size_t need = (size_t)craft_numel_of(ndim, shape) * craft_dtype_size(dtype);
    if (need > nbytes)
        return craft_fail(CRAFT_ESHAPE, "from_external: shape %s %s needs %zu bytes, buffer has %zu",
                          craft_dims_str(ndim, shape), craft_dtype_name(dtype), need, nbytes);
    if (need && !data) return craft_fail(CRAFT_EINVAL, "from_external: NULL data");
    craft_tensor *t = tensor_header(ndim, shape, dtype, CRAFT_DEVICE_CPU);
    if (!t) return craft_last_status();
    craft_storage *s = calloc(1, sizeof *s);
    if (!s) {
        free(t);
        return craft_fail(CRAFT_ENOMEM, "out of host memory for a storage header");
    }
    s->data = data;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->serial = next_serial();
    /* no release function: the caller keeps ownership, craft never frees the memory */
    s->release = release ? release : release_nothing;
    s->release_ctx = release_ctx;
    t->storage = s;
    *out = t;
    return CRAFT_OK;
}

int craft_arange(double start, double end, double step, int dtype, craft_tensor **out) {
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
        return craft_fail(CRAFT_EINVAL, "arange(%g, %g, %g): step must be non-zero and bounds finite", start,
                          end, step);
    double n = ceil((end - start) / step);
    if (n < 0) n = 0;
    if (n > (double)((int64_t)1 << 40)) return craft_fail(CRAFT_EINVAL, "arange: %g elements is too many", n);
    int64_t shape[1] = {(int64_t)n};
    craft_tensor *t;
    CRAFT_TRY(craft_empty(1, shape, CRAFT_F64, CRAFT_DEVICE_CPU, &t));
    double *p = t->storage->data;
    for (int64_t i = 0; i < shape[0]; i++) p[i] = start + (double)i * step;
    if (dtype == CRAFT_F64) {
        *out = t;
        return CRAFT_OK;
    }
    int rc = craft_to_dtype(t, dtype, out);
    craft_tensor_release(t);
    return rc;
}

int craft_is_contiguous(const craft_tensor *t) {
    if (!t) return 0;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s = craft_mul_sat(s, t->shape[i]);
    }
    return 1;
}

void *craft_tensor_data(const craft_tensor *t) { return t ? craft_elem_ptr(t) : NULL; }

/* Copies route by device: the back end of the non-CPU side does it (both on one device, or
 * one side on the CPU); between two devices of any kinds the data goes through the host. */
int craft_copy_(craft_tensor *dst, const craft_tensor *src) {
    if (!dst) return craft_fail(CRAFT_EINVAL, "copy_: the destination tensor is NULL");
    if (!src) return craft_fail(CRAFT_EINVAL, "copy_: the source tensor is NULL");
    int nd;
    int64_t shape[CRAFT_MAX_DIMS];
    CRAFT_TRY(craft_broadcast_shape("copy_", dst, src, &nd, shape));
    if (nd != dst->ndim || craft_numel_of(nd, shape) != dst->numel)
        return craft_fail(CRAFT_ESHAPE, "copy_: source %s does not broadcast to destination %s",
                          craft_shape_str(src), craft_shape_str(dst));
    int rc;
    if (dst->device == src->device || src->device == CRAFT_DEVICE_CPU || dst->device == CRAFT_DEVICE_CPU) {
        const craft_backend *b =
            craft_backend_of(dst->device != CRAFT_DEVICE_CPU ? dst->device : src->device, "copy_");
        if (!b) return craft_last_status();
        rc = b->copy(dst, src);
    } else {
        craft_tensor *h = craft_new_tensor(src->ndim, src->shape, src->dtype, CRAFT_DEVICE_CPU);
        if (!h) return craft_last_status();
        rc = craft_copy_(h, src);
        if (!rc) rc = craft_copy_(dst, h);
        craft_tensor_release(h);
    }
    if (!rc) dst->storage->version++;
    return rc;
}

int craft_tensor_mark_written(craft_tensor *t) {
    if (!t) return craft_fail(CRAFT_EINVAL, "mark_written: the input tensor is NULL");
    t->storage->version++;
    return CRAFT_OK;
}

int craft_fill_(craft_tensor *t, double value) {
    if (!t) return craft_fail(CRAFT_EINVAL, "fill_: the input tensor is NULL");
    const craft_backend *b = craft_backend_of(t->device, "fill_");
    if (!b) return craft_last_status();
    CRAFT_TRY(b->fill(t, value));
    t->storage->version++;
    return CRAFT_OK;
}

int craft_contig_f32(const craft_tensor *t, craft_tensor **out) {
    if (t->dtype == CRAFT_F32 && craft_is_contiguous(t)) {
        *out = craft_alias(t);
        return *out ? CRAFT_OK : CRAFT_ENOMEM;
    }
    craft_tensor *c = craft_new_tensor(t->ndim, t->shape, CRAFT_F32, t->device);
    if (!c) return craft_last_status();
    int rc = craft_copy_(c, t);
    if (rc) {
        craft_tensor_release(c);
        return rc;
    }
    *out = c;
    return CRAFT_OK;
}

int craft_tensor_read(const craft_tensor *t, int dtype, void *buf, size_t nbytes) {
    if (!t) return craft_fail(CRAFT_EINVAL, "tensor_read: the input tensor is NULL");
    size_t need = (size_t)t->numel * craft_dtype_size(dtype);
    if (!craft_dtype_size(dtype)) return craft_fail(CRAFT_ETYPE, "read: unknown dtype %d", dtype);
    if (nbytes < need)
        return craft_fail(CRAFT_EINVAL, "read: buffer of %zu bytes, %s needs %zu", nbytes, craft_shape_str(t),
                          need);
    craft_tensor *d;
    CRAFT_TRY(craft_from_external(t->ndim, t->shape, dtype, buf, nbytes, NULL, NULL, &d));
    int rc = craft_copy_(d, t);
    craft_tensor_release(d);
    return rc;
}

int craft_tensor_write(craft_tensor *t, int dtype, const void *buf, size_t nbytes) {
    if (!t) return craft_fail(CRAFT_EINVAL, "tensor_write: the input tensor is NULL");
    size_t need = (size_t)t->numel * craft_dtype_size(dtype);
    if (!craft_dtype_size(dtype)) return craft_fail(CRAFT_ETYPE, "write: unknown dtype %d", dtype);
    if (nbytes < need)
        return craft_fail(CRAFT_EINVAL, "write: buffer of %zu bytes, %s needs %zu", nbytes,
                          craft_shape_str(t), need);
    craft_tensor *s;
    CRAFT_TRY(craft_from_external(t->ndim, t->shape, dtype, (void *)buf, nbytes, NULL, NULL, &s));
    int rc = craft_copy_(t, s);
    craft_tensor_release(s);
    return rc;
}

/* the element at element offset o of t's storage, as a double */
static int read_one(const craft_tensor *t, int64_t o, double *out) {
    const craft_backend *b = craft_backend_of(t->device, "get");
    if (!b) return craft_last_status();
    _Alignas(8) char buf[8];
    CRAFT_TRY(b->read(t, o, buf, craft_dtype_size(t->dtype)));
    *out = craft_load_double(buf, t->dtype);
    return CRAFT_OK;
}

static int elem_offset(const craft_tensor *t, const int64_t *index, int64_t *off) {
    int64_t o = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        int64_t k = index[i];
        if (k < 0) k += t->shape[i];
        if (k < 0 || k >= t->shape[i])
            return craft_fail(CRAFT_EINVAL, "index %lld out of range for dim %d of %s", (long long)index[i],
                              i, craft_shape_str(t));
        o += k * t->stride[i];
    }
    *off = o;
    return CRAFT_OK;
}

int craft_get(const craft_tensor *t, const int64_t *index, double *out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "get: the input tensor is NULL");
    int64_t o;
    CRAFT_TRY(elem_offset(t, index, &o));
    return read_one(t, o, out);
}

int craft_set(craft_tensor *t, const int64_t *index, double value) {
    if (!t) return craft_fail(CRAFT_EINVAL, "set: the input tensor is NULL");
    int64_t o;
    CRAFT_TRY(elem_offset(t, index, &o));
    const craft_backend *b = craft_backend_of(t->device, "set");
    if (!b) return craft_last_status();
    _Alignas(8) char buf[8];
    craft_store_double(buf, t->dtype, value);
    CRAFT_TRY(b->write(t, o, buf, craft_dtype_size(t->dtype)));
    t->storage->version++;
    return CRAFT_OK;
}

int craft_item(const craft_tensor *t, double *out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "item: the input tensor is NULL");
    if (t->numel != 1)
        return craft_fail(CRAFT_ESHAPE, "item: tensor %s has %lld elements, not 1", craft_shape_str(t),
                          (long long)t->numel);
    return read_one(t, t->offset, out);
}

int craft_check_f32(const char *op, const char *arg, const craft_tensor *t) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s is %s, expected f32 (convert with :float())", op, arg,
                          craft_shape_str(t));
    if (t->device != CRAFT_DEVICE_CPU)
        return craft_fail(CRAFT_EDEVICE, "%s: %s is on device %d; this op runs on the CPU only", op, arg,
                          t->device);
    return CRAFT_OK;
}

int craft_normalize_dim(const char *op, int dim, int ndim, int *out) {
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= (ndim ? ndim : 1))
        return craft_fail(CRAFT_EINVAL, "%s: dim %d out of range for %d dims", op, dim, ndim);
    *out = d;
    return CRAFT_OK;
}
