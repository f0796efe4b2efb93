/* device.c: finding the back end of a device code and its kernels, device names for messages,
 * the operand helpers every op uses (which device an op runs on, bringing operands and
 * gradients there), and craft_to_device, the differentiable copy between devices. */
#include "core/backend.h"
#include <stdio.h>

const craft_backend *craft_backend_of(int device, const char *op) {
    for (int i = 0; i < craft_backend_count; i++) {
        const craft_backend *b = craft_backends[i];
        if (device >= b->code_base && device - b->code_base < b->code_count) return b;
    }
    craft_fail(CRAFT_EDEVICE, "%s: no back end serves device code %d (0 is the CPU, 1 + n OpenCL device n)",
               op ? op : "tensor", device);
    return NULL;
}

const char *craft_kernel_name(int kid) {
    static const char *names[] = {
#define CRAFT_K_NAME(name, params) #name,
        CRAFT_KERNELS(CRAFT_K_NAME)
#undef CRAFT_K_NAME
    };
    return kid >= 0 && kid < CRAFT_K_COUNT ? names[kid] : "?";
}

static int kernel_present(const craft_kernels *k, int kid) {
    switch (kid) {
#define CRAFT_K_CASE(name, params)                                                                           \
    case CRAFT_K_##name: return k->name != NULL;
        CRAFT_KERNELS(CRAFT_K_CASE)
#undef CRAFT_K_CASE
    }
    return 0;
}

/* kernels hidden by craft_backend_test_disable, per back end (index in craft_backends) */
#define MAX_BACKENDS 8
static unsigned char hidden[MAX_BACKENDS][CRAFT_K_COUNT];

static int backend_index(const craft_backend *b) {
    for (int i = 0; i < craft_backend_count && i < MAX_BACKENDS; i++)
        if (craft_backends[i] == b) return i;
    return -1;
}

void craft_backend_test_disable(int device, int kid, int off) {
    for (int i = 0; i < craft_backend_count && i < MAX_BACKENDS; i++) {
        const craft_backend *b = craft_backends[i];
        if (device >= b->code_base && device - b->code_base < b->code_count && kid >= 0 &&
            kid < CRAFT_K_COUNT)
            hidden[i][kid] = off != 0;
    }
}

static int supported(const craft_backend *b, int device, int kid, int dtype) {
    int bi = backend_index(b);
    if (!kernel_present(&b->k, kid) || (bi >= 0 && hidden[bi][kid])) return 0;
    return b->supports ? b->supports(device, kid, dtype) : dtype == CRAFT_F32;
}

int craft_device_supports(int device, int kid, int dtype) {
    for (int i = 0; i < craft_backend_count; i++) {
        const craft_backend *b = craft_backends[i];
        if (device >= b->code_base && device - b->code_base < b->code_count)
            return supported(b, device, kid, dtype);
    }
    return 0;
}

int craft_kernels_for(int device, int kid, int dtype, const char *op, const craft_kernels **out) {
    const craft_backend *b = craft_backend_of(device, op);
    if (!b) return craft_last_status();
    if (!supported(b, device, kid, dtype)) {
        int bi = backend_index(b), present = kernel_present(&b->k, kid) && !(bi >= 0 && hidden[bi][kid]);
        return craft_fail(CRAFT_EUNSUPPORTED,
                          "%s: the %s back end has no %s kernel%s%s (device %s); move the operands to a "
                          "device that has it with :to()",
                          op, b->name, craft_kernel_name(kid), present ? " for " : "",
                          present ? craft_dtype_name(dtype) : "", craft_device_str(device));
    }
    *out = &b->k;
    return CRAFT_OK;
}

int craft_kernels_all(int device, int dtype, const char *op, int n, const int *kids,
                      const craft_kernels **out) {
    for (int i = 0; i < n; i++) CRAFT_TRY(craft_kernels_for(device, kids[i], dtype, op, out));
    return CRAFT_OK;
}

const char *craft_device_str(int device) {
    static _Thread_local char bufs[4][320];
    static _Thread_local int next;
    char *buf = bufs[next++ & 3];
    const craft_backend *b = NULL;
    for (int i = 0; i < craft_backend_count && !b; i++)
        if (device >= craft_backends[i]->code_base &&
            device - craft_backends[i]->code_base < craft_backends[i]->code_count)
            b = craft_backends[i];
    if (!b) snprintf(buf, sizeof bufs[0], "device %d", device);
    else if (b->device_name) b->device_name(device, buf, sizeof bufs[0]);
    else snprintf(buf, sizeof bufs[0], "%s:%d", b->name, device - b->code_base);
    return buf;
}

/* ------------------------------------------------------------- operands ---- */
int craft_op_device(const char *op, int n, const craft_tensor *const *ts, int *device) {
    int dev = CRAFT_DEVICE_CPU;
    for (int i = 0; i < n; i++) {
        if (!ts[i] || ts[i]->device == CRAFT_DEVICE_CPU) continue;
        if (dev != CRAFT_DEVICE_CPU && ts[i]->device != dev)
            return craft_fail(CRAFT_EDEVICE, "%s: operands on %s and %s; move one with :to()", op,
                              craft_device_str(dev), craft_device_str(ts[i]->device));
        dev = ts[i]->device;
    }
    *device = dev;
    return CRAFT_OK;
}

int craft_want(const char *op, const char *arg, const craft_tensor *t, int device) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->dtype != CRAFT_F32)
        return craft_fail(CRAFT_ETYPE, "%s: %s is %s, expected f32 (convert with :float())", op, arg,
                          craft_shape_str(t));
    if (t->device != device)
        return craft_fail(CRAFT_EDEVICE, "%s: %s %s is on %s but the op runs on %s; move it with :to()", op,
                          arg, craft_shape_str(t), craft_device_str(t->device), craft_device_str(device));
    return CRAFT_OK;
}

int craft_on_device(const craft_tensor *t, int device, craft_tensor **out) {
    if (t->device == device) {
        *out = craft_tensor_retain((craft_tensor *)t);
        return CRAFT_OK;
    }
    int prev = craft_set_grad_enabled(0);
    int rc = craft_to_device(t, device, out);
    craft_set_grad_enabled(prev);
    return rc;
}

int craft_bring(const char *op, const char *arg, const craft_tensor *t, int device, craft_tensor **out) {
    if (!t) return craft_fail(CRAFT_EINVAL, "%s: %s is missing", op, arg);
    if (t->device == device) {
        *out = craft_tensor_retain((craft_tensor *)t);
        return CRAFT_OK;
    }
    return craft_to_device(t, device, out);
}

int craft_grad_on(const craft_tensor *g, int device, craft_tensor **out) {
    craft_tensor *gd;
    CRAFT_TRY(craft_on_device(g, device, &gd));
    int rc = craft_contig_f32(gd, out);
    craft_tensor_release(gd);
    return rc;
}

int craft_finish(int rc, craft_tensor *y, craft_tensor **out) {
    if (rc) {
        craft_tensor_release(y);
        return rc;
    }
    *out = y;
    return CRAFT_OK;
}

/* ------------------------------------------------------------ to_device ---- */
static int to_device_backward(craft_node *n, craft_tensor **gout, craft_tensor **gin) {
    return craft_to_device(gout[0], (int)n->iarg[0], &gin[0]);
}

int craft_to_device(const craft_tensor *t, int device, craft_tensor **out) {
    if (!t || !out) return craft_fail(CRAFT_EINVAL, "to_device: NULL argument");
    const craft_backend *b = craft_backend_of(device, "to_device");
    if (!b) return craft_last_status();
    if (b->device_check) CRAFT_TRY(b->device_check(device, "to_device"));
    if (t->device == device) {
        *out = craft_tensor_retain((craft_tensor *)t);
        return CRAFT_OK;
    }
    craft_tensor *y = craft_new_tensor(t->ndim, t->shape, t->dtype, device);
    if (!y) return craft_last_status();
    int rc = craft_copy_(y, t);
    int64_t iarg = t->device;
    if (!rc) rc = craft_record("to_device", 1, &t, y, to_device_backward, 0, NULL, NULL, 0, &iarg, 1, NULL);
    return craft_finish(rc, y, out);
}
