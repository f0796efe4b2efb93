/* cl_memory.c: device memory. Each OpenCL device has a caching buffer pool with engine/pool.c's
 * size classes (64-byte steps below 1 KiB, then 4 per power of two: at most 25 % waste):
 * freed buffers wait in per-size free lists, because creating device buffers is slow on most
 * drivers. Storages of cl tensors hold one pool buffer (a cl_mem in `data`) and give it back
 * through their release callback. Since OpenCL cannot say how much memory is free, the pool
 * counts what craft holds against the device's global memory (or CRAFT_CL_MEM_LIMIT_MB, when
 * set, to share a device or to test), and refuses (CRAFT_ENOMEM, with the numbers) what would
 * not fit, after giving its cached buffers back. */
#include "cl/cl_internal.h"
#include <stdlib.h>

typedef struct {
    size_t size;
    cl_mem *items;
    int n, cap;
} cl_bucket;

struct cl_pool {
    pthread_mutex_t mu;
    cl_bucket *b;
    int nb, capb;
    int64_t in_use, cached, peak, n_system;
    int64_t limit; /* bytes craft may hold on the device */
    int limited;   /* limit comes from CRAFT_CL_MEM_LIMIT_MB */
};

static size_t size_class(size_t n) {
    if (n == 0) n = 1;
    if (n <= 1024) return (n + 63) & ~(size_t)63;
    int p = 63 - __builtin_clzll((unsigned long long)n);
    size_t step = (size_t)1 << (p - 2);
    return (n + step - 1) & ~(step - 1);
}

static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;

static cl_pool *pool_of(craft_cl_dev *d) {
    pthread_mutex_lock(&pools_mu);
    if (!d->pool) {
        cl_pool *p = calloc(1, sizeof *p);
        if (p) {
            pthread_mutex_init(&p->mu, NULL);
            p->limit = d->info.global_mem;
            const char *e = getenv("CRAFT_CL_MEM_LIMIT_MB");
            long long mb = e ? atoll(e) : 0;
            if (mb > 0 && (mb << 20) < p->limit) {
                p->limit = (int64_t)mb << 20;
                p->limited = 1;
            }
            d->pool = p;
        }
    }
    pthread_mutex_unlock(&pools_mu);
    return d->pool;
}

static cl_bucket *bucket(cl_pool *p, size_t size, int create) {
    for (int i = 0; i < p->nb; i++)
        if (p->b[i].size == size) return &p->b[i];
    if (!create) return NULL;
    if (p->nb == p->capb) {
        int nc = p->capb ? p->capb * 2 : 32;
        cl_bucket *nbk = realloc(p->b, (size_t)nc * sizeof *nbk);
        if (!nbk) return NULL;
        p->b = nbk;
        p->capb = nc;
    }
    cl_bucket *b = &p->b[p->nb++];
    memset(b, 0, sizeof *b);
    b->size = size;
    return b;
}

static void trim_locked(cl_pool *p) {
    for (int i = 0; i < p->nb; i++) {
        cl_bucket *b = &p->b[i];
        for (int k = 0; k < b->n; k++) clReleaseMemObject(b->items[k]);
        p->cached -= (int64_t)b->size * b->n;
        b->n = 0;
    }
}

static int oom(craft_cl_dev *d, cl_pool *p, size_t size, const char *why) {
    double mib = 1048576.0, global = (double)p->limit;
    double freeb = global - (double)p->in_use;
    return craft_fail(
        CRAFT_ENOMEM,
        "out of device memory on cl:%d (%s): asked for %.1f MiB, about %.1f MiB free of %.1f MiB %s "
        "(craft holds %.1f MiB; one buffer may have %.1f MiB)%s",
        d->index, d->info.name, (double)size / mib, (freeb > 0 ? freeb : 0) / mib, global / mib,
        p->limited ? "(CRAFT_CL_MEM_LIMIT_MB)" : "global memory", (double)p->in_use / mib,
        (double)d->info.max_alloc / mib, why);
}

int cl_pool_alloc(craft_cl_dev *d, size_t nbytes, cl_mem *out) {
    cl_pool *p = pool_of(d);
    if (!p) return craft_fail(CRAFT_ENOMEM, "out of host memory for cl:%d's buffer pool", d->index);
    size_t size = size_class(nbytes);
    if (size > (size_t)d->info.max_alloc && nbytes <= (size_t)d->info.max_alloc)
        size = (nbytes + 63) & ~(size_t)63;
    pthread_mutex_lock(&p->mu);
    cl_bucket *b = bucket(p, size, 0);
    cl_mem m = NULL;
    if (b && b->n > 0) {
        m = b->items[--b->n];
        p->cached -= (int64_t)size;
    } else {
        if (size > (size_t)d->info.max_alloc) {
            int rc = oom(d, p, nbytes, ": larger than the device's largest buffer");
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        if (p->in_use + p->cached + (int64_t)size > p->limit) trim_locked(p);
        if (p->in_use + (int64_t)size > p->limit) {
            int rc = oom(d, p, nbytes, "");
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        cl_int err;
        m = clCreateBuffer(d->ctx, CL_MEM_READ_WRITE, size, NULL, &err);
        if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
            err == CL_OUT_OF_HOST_MEMORY) {
            trim_locked(p);
            m = clCreateBuffer(d->ctx, CL_MEM_READ_WRITE, size, NULL, &err);
        }
        if (err != CL_SUCCESS) {
            char why[96];
            snprintf(why, sizeof why, ": clCreateBuffer said %s (%d)", cl_err_name(err), (int)err);
            int rc = oom(d, p, nbytes, why);
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        p->n_system++;
    }
    p->in_use += (int64_t)size;
    if (p->in_use > p->peak) p->peak = p->in_use;
    pthread_mutex_unlock(&p->mu);
    *out = m;
    return CRAFT_OK;
}

void cl_pool_free(craft_cl_dev *d, cl_mem m, size_t nbytes) {
    cl_pool *p = d->pool;
    if (!m || !p) return;
    size_t size = size_class(nbytes);
    if (size > (size_t)d->info.max_alloc && nbytes <= (size_t)d->info.max_alloc)
        size = (nbytes + 63) & ~(size_t)63;
    pthread_mutex_lock(&p->mu);
    p->in_use -= (int64_t)size;
    cl_bucket *b = bucket(p, size, 1);
    if (b && b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 8;
        cl_mem *ni = realloc(b->items, (size_t)nc * sizeof *ni);
        if (ni) {
            b->items = ni;
            b->cap = nc;
        }
    }
    if (b && b->n < b->cap) {
        b->items[b->n++] = m;
        p->cached += (int64_t)size;
    } else {
        clReleaseMemObject(m);
    }
    pthread_mutex_unlock(&p->mu);
}

void cl_pool_destroy(craft_cl_dev *d) {
    cl_pool *p = d->pool;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    trim_locked(p);
    for (int i = 0; i < p->nb; i++) free(p->b[i].items);
    free(p->b);
    p->b = NULL;
    p->nb = p->capb = 0;
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------- storages ---- */
static void storage_release_cl(void *ctx, void *data, size_t nbytes) {
    cl_pool_free(ctx, (cl_mem)data, nbytes ? nbytes : 1);
}

int craft_cl_storage_init(craft_storage *s, int device, size_t nbytes) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(device, "tensor", &d));
    cl_mem m;
    CRAFT_TRY(cl_pool_alloc(d, nbytes ? nbytes : 1, &m));
    s->data = m;
    s->release = storage_release_cl;
    s->release_ctx = d;
    return CRAFT_OK;
}

int craft_cl_pool_stats(int device, craft_pool_stats *out) {
    if (!out) return craft_fail(CRAFT_EINVAL, "cl_pool_stats: NULL out-pointer");
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(device, "cl_pool_stats", &d));
    memset(out, 0, sizeof *out);
    cl_pool *p = pool_of(d);
    if (!p) return CRAFT_OK;
    pthread_mutex_lock(&p->mu);
    out->in_use = p->in_use;
    out->cached = p->cached;
    out->peak = p->peak;
    out->n_system = p->n_system;
    pthread_mutex_unlock(&p->mu);
    return CRAFT_OK;
}

int craft_cl_pool_trim(int device) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(device, "cl_pool_trim", &d));
    cl_pool *p = pool_of(d);
    if (!p) return CRAFT_OK;
    pthread_mutex_lock(&p->mu);
    trim_locked(p);
    pthread_mutex_unlock(&p->mu);
    return CRAFT_OK;
}

/* ------------------------------------------------------ raw byte access ---- */
static int byte_range(const char *op, const craft_tensor *t, int64_t elem_offset, size_t nbytes,
                      craft_cl_dev **d, size_t *off) {
    CRAFT_TRY(cl_dev_get(t->device, op, d));
    size_t es = craft_dtype_size(t->dtype), start;
    /* checked arithmetic: an empty view's offset may be saturated */
    if (elem_offset < 0 || __builtin_mul_overflow((size_t)elem_offset, es, &start) ||
        start > t->storage->nbytes || nbytes > t->storage->nbytes - start)
        return craft_fail(CRAFT_EINVAL, "%s: bytes [%lld elements, +%zu) outside the %zu-byte storage of %s",
                          op, (long long)elem_offset, nbytes, t->storage->nbytes, craft_shape_str(t));
    *off = (size_t)elem_offset * es;
    return CRAFT_OK;
}

int craft_cl_read_bytes(const craft_tensor *t, int64_t elem_offset, void *buf, size_t nbytes) {
    craft_cl_dev *d;
    size_t off;
    CRAFT_TRY(byte_range("read from device", t, elem_offset, nbytes, &d, &off));
    if (!nbytes) return CRAFT_OK;
    cl_count_sync(d);
    cl_int err = clEnqueueReadBuffer(d->queue, cl_mem_of(t), CL_TRUE, off, nbytes, buf, 0, NULL, NULL);
    return err == CL_SUCCESS ? CRAFT_OK : cl_fail(err, d, "reading a buffer");
}

int craft_cl_write_bytes(craft_tensor *t, int64_t elem_offset, const void *buf, size_t nbytes) {
    craft_cl_dev *d;
    size_t off;
    CRAFT_TRY(byte_range("write to device", t, elem_offset, nbytes, &d, &off));
    if (!nbytes) return CRAFT_OK;
    cl_int err;
    if (nbytes <= CL_UPLOAD_RING / 4) { /* through the upload ring: no wait for the queue */
        pthread_mutex_lock(&d->lock);
        size_t so = 0;
        int rc = cl_stage_take(d, &d->upload, nbytes, &so);
        if (!rc) {
            memcpy(d->upload.host + so, buf, nbytes);
            err = clEnqueueWriteBuffer(d->queue, cl_mem_of(t), CL_FALSE, off, nbytes, d->upload.host + so, 0,
                                       NULL, NULL);
            if (err != CL_SUCCESS) rc = cl_fail(err, d, "writing a buffer");
        }
        pthread_mutex_unlock(&d->lock);
        if (rc) return rc;
        t->storage->version++;
        return CRAFT_OK;
    }
    cl_count_sync(d);
    err = clEnqueueWriteBuffer(d->queue, cl_mem_of(t), CL_TRUE, off, nbytes, buf, 0, NULL, NULL);
    if (err != CL_SUCCESS) return cl_fail(err, d, "writing a buffer");
    t->storage->version++;
    return CRAFT_OK;
}
