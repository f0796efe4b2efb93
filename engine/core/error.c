/* error.c: per-thread status messages (the engine never prints or aborts). */
#include "core/internal.h"
#include <time.h>

static _Thread_local char err_msg[1024];
static _Thread_local int err_code;

int craft_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    err_code = code;
    return code;
}

int craft_fail_prefix(int code, const char *fmt, ...) {
    char prefix[256], old[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%.690s", err_msg);
    snprintf(err_msg, sizeof err_msg, "%s: %s", prefix, old);
    err_code = code;
    return code;
}

const char *craft_last_error(void) { return err_code ? err_msg : ""; }
int craft_last_status(void) { return err_code; }
void craft_clear_error(void) {
    err_code = 0;
    err_msg[0] = 0;
}
const char *craft_version(void) { return "0.1.0"; }

const char *craft_dims_str(int ndim, const int64_t *shape) {
    static _Thread_local char bufs[4][160];
    static _Thread_local int next;
    char *b = bufs[next++ & 3];
    size_t n = 0;
    n += (size_t)snprintf(b + n, 160 - n, "[");
    for (int i = 0; i < ndim && n < 150; i++)
        n += (size_t)snprintf(b + n, 160 - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    snprintf(b + n, 160 - n, "]");
    return b;
}

const char *craft_shape_str(const craft_tensor *t) {
    static _Thread_local char bufs[4][200];
    static _Thread_local int next;
    char *b = bufs[next++ & 3];
    if (!t) {
        snprintf(b, 200, "(null)");
        return b;
    }
    snprintf(b, 200, "%s %s", craft_dims_str(t->ndim, t->shape), craft_dtype_name(t->dtype));
    return b;
}

const char *craft_tensor_describe(const craft_tensor *t, char *buf, size_t bufsize) {
    if (!buf || !bufsize) return buf;
    snprintf(buf, bufsize, "%s", craft_shape_str(t));
    return buf;
}

double craft_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
