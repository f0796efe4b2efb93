/* cl_runtime.c: the OpenCL back end's runtime. Finds platforms and devices once (numbered in a
 * stable order), probes what each device can do, and on a device's first use makes its
 * context, its one in-order queue and the craft kernel program, built from the sources that
 * tools/embed_cl.sh embeds (build/gen/cl_sources.inc), built and cached as a device binary on
 * disk by cl_program.c. Kernels are launched
 * through cl_launch, which holds the device's lock while it sets arguments and enqueues. */
#include "cl/cl_internal.h"
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The kernel sources; a build that did not run tools/embed_cl.sh still links, and says so
 * when a device is first used. */
static const struct {
    const char *name;
    const char *text;
} cl_sources[] = {
#if __has_include("cl_sources.inc")
#include "cl_sources.inc"
#else
    {NULL, NULL},
#endif
};
#define N_SOURCES ((int)(sizeof cl_sources / sizeof cl_sources[0]))

craft_cl_api craft_ocl;

/* ------------------------------------------------------------ libraries ---- */
static int load_opencl(char *msg, size_t n) {
    void *h = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libOpenCL.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(
            msg, n,
            "no OpenCL ICD loader: libOpenCL.so.1 could not be loaded (%s); install one with a driver's ICD "
            "(Debian: ocl-icd-libopencl1 and pocl-opencl-icd)",
            e ? e : "not found");
        return CRAFT_EDEVICE;
    }
#define CRAFT_CL_LOAD(f)                                                                                     \
    if (!(*(void **)&craft_ocl.f##_ = dlsym(h, #f))) {                                                       \
        snprintf(msg, n, "%s lacks %s (a newer version is needed)", lib, #f);                                \
        return CRAFT_EDEVICE;                                                                                \
    }
    const char *lib = "the OpenCL ICD loader libOpenCL.so.1";
    CRAFT_CL_FUNCS(CRAFT_CL_LOAD)
    return CRAFT_OK;
}

static int blast_syms(void *h, char *msg, size_t n) {
    const char *lib = "libclblast.so.1";
    CRAFT_BLAST_FUNCS(CRAFT_CL_LOAD)
    return CRAFT_OK;
}
#undef CRAFT_CL_LOAD

static pthread_once_t blast_once = PTHREAD_ONCE_INIT;
static char blast_msg[300];

static void blast_open(void) {
    void *h = dlopen("libclblast.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libclblast.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(blast_msg, sizeof blast_msg,
                 "CLBlast (libclblast.so.1), which matrix products on OpenCL devices use, "
                 "could not be loaded (%s); install it (Debian: libclblast1)",
                 e ? e : "not found");
        return;
    }
    blast_syms(h, blast_msg, sizeof blast_msg);
}

int cl_blast_load(void) {
    pthread_once(&blast_once, blast_open);
    if (blast_msg[0]) return craft_fail(CRAFT_EDEVICE, "%s", blast_msg);
    return CRAFT_OK;
}

static const char *kernel_names[K_COUNT] = {
#define CL_N_U(name) "unary_" #name,
#define CL_N_UG(name) "unary_grad_" #name,
#define CL_N_B(name) "binary_" #name,
#define CL_N_S(name) "scalar_" #name,
#define CL_N_O(name) #name,
    CL_UNARY_OPS(CL_N_U) CL_UNARY_OPS(CL_N_UG) CL_BINARY_OPS(CL_N_B) CL_BINARY_OPS(CL_N_S)
        CL_OTHER_KERNELS(CL_N_O)};
_Static_assert(K_unary_grad_neg - K_unary_neg == CRAFT_UNARY_COUNT, "kernel list and craft_unary_op differ");
_Static_assert(K_scalar_add - K_binary_add == CRAFT_BINARY_COUNT, "kernel list and craft_binary_op differ");

/* ------------------------------------------------------------ discovery ---- */
static pthread_once_t disc_once = PTHREAD_ONCE_INIT;
static int disc_status; /* CRAFT_OK or CRAFT_EDEVICE */
static char disc_msg[700];
static craft_cl_dev *devs;
static int n_devs, n_platforms;

const char *cl_err_name(cl_int e) {
    switch (e) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT: return "CL_INVALID_CONTEXT";
    case CL_INVALID_COMMAND_QUEUE: return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_BINARY: return "CL_INVALID_BINARY";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_PROGRAM_EXECUTABLE: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_OPERATION: return "CL_INVALID_OPERATION";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "OpenCL error";
}

int cl_fail(cl_int err, const craft_cl_dev *d, const char *what) {
    int code = (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
                err == CL_OUT_OF_HOST_MEMORY)
        ? CRAFT_ENOMEM
        : CRAFT_EDEVICE;
    if (!d) return craft_fail(code, "%s: %s (%d)", what, cl_err_name(err), (int)err);
    return craft_fail(code, "%s on cl:%d (%s): %s (%d)", what, d->index, d->info.name, cl_err_name(err),
                      (int)err);
}

static int has_token(const char *list, const char *tok) {
    size_t n = strlen(tok);
    for (const char *p = list; (p = strstr(p, tok)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
    return 0;
}

static void dev_str(cl_device_id id, cl_device_info what, char *buf, size_t n) {
    buf[0] = 0;
    if (clGetDeviceInfo(id, what, n, buf, NULL) != CL_SUCCESS) buf[0] = 0;
    buf[n - 1] = 0;
}

/* PoCL needs a writable kernel cache and reports no device at all (-1) without one, which
 * hides the cause; when POCL_CACHE_DIR is unset and the home cache is not writable, point it
 * at a folder under /tmp before the ICD loader starts PoCL. */
static void ensure_pocl_cache(void) {
    if (getenv("POCL_CACHE_DIR")) return;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[512];
    if (xdg && *xdg) snprintf(dir, sizeof dir, "%s", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache", home);
    else dir[0] = 0;
    if (dir[0]) {
        mkdir(dir, 0700);
        if (access(dir, W_OK) == 0) return;
    }
    char tmp[128];
    snprintf(tmp, sizeof tmp, "/tmp/craft-pocl-cache-%d", (int)getuid());
    mkdir(tmp, 0700);
    setenv("POCL_CACHE_DIR", tmp, 0);
}

typedef struct {
    cl_platform_id id;
    char name[256], vendor[256], version[256];
    int order;
} plat_entry;

static int plat_cmp(const void *x, const void *y) {
    const plat_entry *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    if (!c) c = strcmp(a->vendor, b->vendor);
    if (!c) c = strcmp(a->version, b->version);
    return c ? c : a->order - b->order;
}

static void probe_device(craft_cl_dev *d) {
    craft_cl_info *in = &d->info;
    dev_str(d->id, CL_DEVICE_NAME, in->name, sizeof in->name);
    dev_str(d->id, CL_DEVICE_VENDOR, in->vendor, sizeof in->vendor);
    dev_str(d->id, CL_DRIVER_VERSION, in->driver_version, sizeof in->driver_version);
    dev_str(d->id, CL_DEVICE_VERSION, in->device_version, sizeof in->device_version);
    dev_str(d->id, CL_DEVICE_OPENCL_C_VERSION, in->opencl_c_version, sizeof in->opencl_c_version);
    cl_ulong gm = 0, ma = 0, lm = 0;
    cl_uint cu = 0;
    size_t wg = 0;
    cl_device_type type = 0;
    cl_device_fp_config sp = 0, dp = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_SINGLE_FP_CONFIG, sizeof sp, &sp, NULL);
    if (clGetDeviceInfo(d->id, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof dp, &dp, NULL) != CL_SUCCESS) dp = 0;
    size_t ext_len = 0;
    char *ext = NULL;
    if (clGetDeviceInfo(d->id, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len) == CL_SUCCESS &&
        (ext = calloc(1, ext_len + 1)))
        if (clGetDeviceInfo(d->id, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL) != CL_SUCCESS) ext[0] = 0;
    in->global_mem = (int64_t)gm;
    in->max_alloc = (int64_t)ma;
    in->local_mem = (int64_t)lm;
    in->compute_units = (int32_t)cu;
    in->max_work_group = (int32_t)(wg > 0x7fffffff ? 0x7fffffff : wg);
    in->fp16 = ext && has_token(ext, "cl_khr_fp16");
    in->fp64 = (ext && has_token(ext, "cl_khr_fp64")) || dp != 0;
    in->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    d->max_wg = wg ? wg : 1;
    d->correct_div_sqrt = (sp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
    free(ext);
}

static void discover(void) {
    if ((disc_status = load_opencl(disc_msg, sizeof disc_msg))) return;
    ensure_pocl_cache();
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    if (err != CL_SUCCESS || np == 0) {
        const char *v = getenv("OCL_ICD_VENDORS");
        disc_status = CRAFT_EDEVICE;
        snprintf(
            disc_msg, sizeof disc_msg,
            "no OpenCL platform: the ICD loader (libOpenCL) found none (clGetPlatformIDs: %s (%d), %u platforms); "
            "install a driver's ICD (Debian: pocl-opencl-icd) so that /etc/OpenCL/vendors lists it, and check "
            "OCL_ICD_VENDORS (%s%s%s)",
            cl_err_name(err), (int)err, (unsigned)np, v ? "set to \"" : "unset", v ? v : "", v ? "\"" : "");
        return;
    }
    cl_platform_id *ids = calloc(np, sizeof *ids);
    plat_entry *pl = calloc(np, sizeof *pl);
    if (!ids || !pl || clGetPlatformIDs(np, ids, NULL) != CL_SUCCESS) {
        free(ids);
        free(pl);
        disc_status = CRAFT_EDEVICE;
        snprintf(disc_msg, sizeof disc_msg, "OpenCL: listing %u platforms failed", (unsigned)np);
        return;
    }
    for (cl_uint i = 0; i < np; i++) {
        pl[i].id = ids[i];
        pl[i].order = (int)i;
        clGetPlatformInfo(ids[i], CL_PLATFORM_NAME, sizeof pl[i].name - 1, pl[i].name, NULL);
        clGetPlatformInfo(ids[i], CL_PLATFORM_VENDOR, sizeof pl[i].vendor - 1, pl[i].vendor, NULL);
        clGetPlatformInfo(ids[i], CL_PLATFORM_VERSION, sizeof pl[i].version - 1, pl[i].version, NULL);
    }
    qsort(pl, np, sizeof *pl, plat_cmp);
    n_platforms = (int)np;
    int cap = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(pl[p].id, CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0) continue;
        cl_device_id *dids = calloc(nd, sizeof *dids);
        if (!dids || clGetDeviceIDs(pl[p].id, CL_DEVICE_TYPE_ALL, nd, dids, NULL) != CL_SUCCESS) {
            free(dids);
            continue;
        }
        for (cl_uint k = 0; k < nd; k++) {
            if (n_devs == cap) {
                int nc = cap ? cap * 2 : 4;
                craft_cl_dev *nv = realloc(devs, (size_t)nc * sizeof *nv);
                if (!nv) break;
                devs = nv;
                cap = nc;
            }
            craft_cl_dev *d = &devs[n_devs];
            memset(d, 0, sizeof *d);
            d->index = n_devs;
            d->platform = pl[p].id;
            d->id = dids[k];
            snprintf(d->info.platform, sizeof d->info.platform, "%s", pl[p].name);
            d->info.platform_index = (int32_t)p;
            probe_device(d);
            pthread_mutex_init(&d->lock, NULL);
            n_devs++;
        }
        free(dids);
    }
    free(ids);
    free(pl);
}

static int discovered(void) {
    pthread_once(&disc_once, discover);
    if (disc_status) return craft_fail(disc_status, "%s", disc_msg);
    return CRAFT_OK;
}

int craft_cl_device_count(int *n) {
    if (!n) return craft_fail(CRAFT_EINVAL, "cl_device_count: NULL out-pointer");
    CRAFT_TRY(discovered());
    *n = n_devs;
    return CRAFT_OK;
}

int craft_cl_device_info(int index, craft_cl_info *out) {
    if (!out) return craft_fail(CRAFT_EINVAL, "cl_device_info: NULL out-pointer");
    craft_cl_dev *d = cl_dev_entry(index);
    if (!d) return craft_last_status();
    *out = d->info;
    return CRAFT_OK;
}

craft_cl_dev *cl_dev_entry(int n) {
    if (discovered()) return NULL;
    if (n < 0 || n >= n_devs) {
        craft_fail(CRAFT_EDEVICE, "no OpenCL device cl:%d: %d device%s on %d platform%s%s", n, n_devs,
                   n_devs == 1 ? "" : "s", n_platforms, n_platforms == 1 ? "" : "s",
                   n_devs == 0 ? " (PoCL lists none when POCL_CACHE_DIR is not writable)" : "");
        return NULL;
    }
    return &devs[n];
}

static void build_options(const craft_cl_dev *d, char *buf, size_t n) {
    snprintf(buf, n, "-cl-std=CL1.2%s%s", d->info.fp64 ? " -DCRAFT_FP64" : "",
             d->correct_div_sqrt ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");
}

static int dev_setup(craft_cl_dev *d) {
    const char *cv = d->info.opencl_c_version; /* "OpenCL C 1.2 ..." */
    int maj = 0, mnr = 0;
    if (sscanf(cv, "OpenCL C %d.%d", &maj, &mnr) != 2 || maj * 10 + mnr < 12)
        return craft_fail(CRAFT_EDEVICE, "cl:%d (%s) offers \"%s\"; craft's kernels need OpenCL C 1.2",
                          d->index, d->info.name, cv);
    cl_int err;
    cl_context_properties props[3] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
    d->ctx = clCreateContext(props, 1, &d->id, NULL, NULL, &err);
    if (err != CL_SUCCESS) return cl_fail(err, d, "creating a context");
    d->queue = clCreateCommandQueue(d->ctx, d->id, 0, &err);
    if (err != CL_SUCCESS) {
        clReleaseContext(d->ctx);
        d->ctx = NULL;
        return cl_fail(err, d, "creating a command queue");
    }
    if (!cl_sources[0].text)
        return craft_fail(CRAFT_EDEVICE,
                          "cl:%d: this libcraft was built without its OpenCL kernels "
                          "(run tools/embed_cl.sh to make build/gen/cl_sources.inc, then rebuild)",
                          d->index);
    const char *texts[64];
    int ns = N_SOURCES < 64 ? N_SOURCES : 64;
    for (int i = 0; i < ns; i++) texts[i] = cl_sources[i].text;
    char opts[200];
    build_options(d, opts, sizeof opts);
    int rc = cl_build_program(d, texts, ns, opts, &d->program);
    if (!rc) { /* the geometry ring (cl_launch_geo) */
        d->geo_ring = clCreateBuffer(d->ctx, CL_MEM_READ_ONLY, CL_GEO_RING, NULL, &err);
        if (err != CL_SUCCESS) rc = cl_fail(err, d, "creating the geometry buffer");
        if (!rc) rc = cl_stage_init(&d->geo_host, CL_GEO_RING, "the geometry ring");
        if (!rc) rc = cl_stage_init(&d->upload, CL_UPLOAD_RING, "the upload ring");
        if (rc) {
            if (d->geo_ring) clReleaseMemObject(d->geo_ring);
            d->geo_ring = NULL;
            clReleaseProgram(d->program);
            d->program = NULL;
        }
    }
    if (rc) {
        clReleaseCommandQueue(d->queue);
        clReleaseContext(d->ctx);
        d->queue = NULL;
        d->ctx = NULL;
        return rc;
    }
    __atomic_store_n(&d->ready, 1, __ATOMIC_RELEASE);
    return CRAFT_OK;
}

int cl_dev_get(int code, const char *op, craft_cl_dev **out) {
    if (code < 1)
        return craft_fail(CRAFT_EDEVICE, "%s: device %d is not an OpenCL device (cl:n is 1 + n)", op, code);
    craft_cl_dev *d = cl_dev_entry(code - 1);
    if (!d) return craft_fail_prefix(craft_last_status(), "%s", op);
    if (!__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&d->lock);
        int rc = d->ready ? CRAFT_OK : dev_setup(d);
        pthread_mutex_unlock(&d->lock);
        if (rc) return craft_fail_prefix(rc, "%s", op);
    }
    *out = d;
    return CRAFT_OK;
}

int craft_cl_build_check(int device, const char *source) {
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(device, "cl build", &d));
    cl_program p;
    char opts[200];
    build_options(d, opts, sizeof opts);
    pthread_mutex_lock(&d->lock);
    int rc = cl_build_program(d, &source, 1, opts, &p);
    pthread_mutex_unlock(&d->lock);
    if (!rc) clReleaseProgram(p);
    return rc;
}

/* ------------------------------------------------------------- launching ---- */
static int kernel_of(craft_cl_dev *d, int kid, cl_kernel *out) {
    if (!d->kernels[kid]) {
        cl_int err;
        d->kernels[kid] = clCreateKernel(d->program, kernel_names[kid], &err);
        if (err != CL_SUCCESS) {
            d->kernels[kid] = NULL;
            return cl_fail(err, d, kernel_names[kid]);
        }
    }
    *out = d->kernels[kid];
    return CRAFT_OK;
}

size_t cl_global_for(int64_t n) {
    int64_t g = (n + 255) / 256 * 256;
    if (g > ((int64_t)1 << 22)) g = (int64_t)1 << 22;
    return (size_t)(g > 0 ? g : 256);
}

size_t cl_pow2_local(craft_cl_dev *d, int kid, size_t cap) {
    pthread_mutex_lock(&d->lock);
    cl_kernel k;
    size_t lim = d->max_wg;
    if (!d->kernel_wg[kid] && kernel_of(d, kid, &k) == CRAFT_OK) {
        size_t w = 0;
        if (clGetKernelWorkGroupInfo(k, d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof w, &w, NULL) == CL_SUCCESS &&
            w)
            d->kernel_wg[kid] = w;
    }
    if (d->kernel_wg[kid] && d->kernel_wg[kid] < lim) lim = d->kernel_wg[kid];
    pthread_mutex_unlock(&d->lock);
    if (cap < lim) lim = cap;
    size_t p = 1;
    while (p * 2 <= lim) p *= 2;
    return p;
}

/* sets the arguments and enqueues; d->lock held */
static int launch_locked(craft_cl_dev *d, int kid, int nargs, const cl_arg *args, size_t global,
                         size_t local) {
    cl_kernel k;
    int rc = kernel_of(d, kid, &k);
    for (int i = 0; i < nargs && !rc; i++) {
        cl_int err = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].ptr);
        if (err != CL_SUCCESS) {
            char what[96];
            snprintf(what, sizeof what, "kernel %s: argument %d", kernel_names[kid], i);
            rc = cl_fail(err, d, what);
        }
    }
    if (!rc) {
        cl_int err =
            clEnqueueNDRangeKernel(d->queue, k, 1, NULL, &global, local ? &local : NULL, 0, NULL, NULL);
        if (err != CL_SUCCESS) {
            char what[96];
            snprintf(what, sizeof what, "running kernel %s", kernel_names[kid]);
            rc = cl_fail(err, d, what);
        } else {
            d->launches++;
        }
    }
    return rc;
}

int cl_launch(craft_cl_dev *d, int kid, int nargs, const cl_arg *args, size_t global, size_t local) {
    pthread_mutex_lock(&d->lock);
    int rc = launch_locked(d, kid, nargs, args, global, local);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* The geometry goes into the next slot of the device's ring with a non-blocking write (the one
 * queue runs it before the kernel); the slot's host copy is a cl_stage, so reusing it waits only
 * for work long since enqueued. */
int cl_launch_geo(craft_cl_dev *d, int kid, const void *geo, size_t gsize, int nargs, const cl_arg *args,
                  size_t global, size_t local) {
    cl_arg all[24];
    if (nargs + 2 > 24 || gsize > CL_GEO_RING / 4)
        return craft_fail(CRAFT_EINVAL, "kernel %s: %d arguments, %zu bytes of geometry", kernel_names[kid],
                          nargs, gsize);
    pthread_mutex_lock(&d->lock);
    size_t off = 0;
    int rc = cl_stage_take(d, &d->geo_host, gsize, &off);
    if (!rc) {
        memcpy(d->geo_host.host + off, geo, gsize);
        cl_int err = clEnqueueWriteBuffer(d->queue, d->geo_ring, CL_FALSE, off, gsize, d->geo_host.host + off,
                                          0, NULL, NULL);
        if (err != CL_SUCCESS) rc = cl_fail(err, d, "writing a kernel's geometry");
    }
    if (!rc) {
        cl_long loff = (cl_long)(off / sizeof(cl_long));
        all[0] = CLA(d->geo_ring);
        all[1] = CLA(loff);
        memcpy(all + 2, args, (size_t)nargs * sizeof *args);
        rc = launch_locked(d, kid, nargs + 2, all, global, local);
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int craft_cl_launch_count(int device, int64_t *out) {
    if (!out) return craft_fail(CRAFT_EINVAL, "cl_launch_count: NULL argument");
    *out = 0;
    if (device == CRAFT_DEVICE_CPU) return CRAFT_OK;
    if (device < 1)
        return craft_fail(CRAFT_EDEVICE, "cl_launch_count: device %d is not an OpenCL device (cl:n is 1 + n)",
                          device);
    craft_cl_dev *d = cl_dev_entry(device - 1); /* a device never used is not set up just to say 0 */
    if (!d) return craft_fail_prefix(craft_last_status(), "cl_launch_count");
    pthread_mutex_lock(&d->lock);
    *out = d->launches;
    pthread_mutex_unlock(&d->lock);
    return CRAFT_OK;
}

void cl_count_sync(craft_cl_dev *d) {
    pthread_mutex_lock(&d->lock);
    d->syncs++;
    pthread_mutex_unlock(&d->lock);
}

int craft_cl_sync_count(int device, int64_t *out) {
    if (!out) return craft_fail(CRAFT_EINVAL, "cl_sync_count: NULL argument");
    *out = 0;
    if (device == CRAFT_DEVICE_CPU) return CRAFT_OK;
    if (device < 1)
        return craft_fail(CRAFT_EDEVICE, "cl_sync_count: device %d is not an OpenCL device (cl:n is 1 + n)", device);
    craft_cl_dev *d = cl_dev_entry(device - 1);
    if (!d) return craft_fail_prefix(craft_last_status(), "cl_sync_count");
    pthread_mutex_lock(&d->lock);
    *out = d->syncs;
    pthread_mutex_unlock(&d->lock);
    return CRAFT_OK;
}

int craft_cl_synchronize(int device) {
    if (device == CRAFT_DEVICE_CPU) return CRAFT_OK;
    craft_cl_dev *d;
    CRAFT_TRY(cl_dev_get(device, "synchronize", &d));
    cl_count_sync(d);
    cl_int err = clFinish(d->queue);
    return err == CL_SUCCESS ? CRAFT_OK : cl_fail(err, d, "synchronize");
}
