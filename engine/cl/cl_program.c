/* cl_program.c: building the craft kernel program for a device, with its binary cached on disk
 * ($CRAFT_CL_CACHE, else $XDG_CACHE_HOME/craft, else ~/.cache/craft) under a hash of the
 * device, the driver, the build options and the sources, so a later process loads it instead of
 * compiling again (PoCL and rusticl take seconds per build). cl_runtime.c calls it when a device
 * is first used. */
#include "cl/cl_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Folder of the binary cache, made if missing; 0 when caching is off or impossible. */
int cl_cache_dir(char *buf, size_t n) {
    const char *e = getenv("CRAFT_CL_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (e) {
        if (!*e || !strcmp(e, "off") || !strcmp(e, "0")) return 0;
        snprintf(buf, n, "%s", e);
    } else if (xdg && *xdg) snprintf(buf, n, "%s/craft", xdg);
    else if (home && *home) snprintf(buf, n, "%s/.cache/craft", home);
    else return 0;
    for (char *p = buf + 1; *p; p++) /* mkdir -p */
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return 0;
    return access(buf, W_OK) == 0;
}

static void cache_path(const craft_cl_dev *d, const char *const *src, int ns, const char *opts, char *path,
                       size_t n) {
    char dir[400];
    if (!cl_cache_dir(dir, sizeof dir)) {
        path[0] = 0;
        return;
    }
    uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x84222325cbf29ce4ull;
    const char *parts[6] = {
        opts, d->info.name, d->info.platform, d->info.driver_version, d->info.device_version, "craft-cl-1"};
    for (int i = 0; i < 6; i++) {
        h1 = fnv(h1, parts[i], strlen(parts[i]) + 1);
        h2 = fnv(h2, parts[i], strlen(parts[i]) + 1);
    }
    for (int i = 0; i < ns; i++) {
        h1 = fnv(h1, src[i], strlen(src[i]));
        h2 = fnv(h2 ^ (uint64_t)i, src[i], strlen(src[i]));
    }
    snprintf(path, n, "%s/cl-%016llx%016llx.bin", dir, (unsigned long long)h1, (unsigned long long)h2);
}

static cl_program load_cached(craft_cl_dev *d, const char *path, const char *opts) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char magic[8];
    uint64_t size = 0;
    unsigned char *bin = NULL;
    cl_program prog = NULL;
    if (fread(magic, 1, 8, f) == 8 && !memcmp(magic, "CRAFTCL1", 8) && fread(&size, 8, 1, f) == 1 &&
        size > 0 && size < ((uint64_t)1 << 30) && (bin = malloc((size_t)size)) &&
        fread(bin, 1, (size_t)size, f) == size) {
        size_t sz = (size_t)size;
        const unsigned char *bp = bin;
        cl_int st = CL_SUCCESS, err;
        prog = clCreateProgramWithBinary(d->ctx, 1, &d->id, &sz, &bp, &st, &err);
        if (err != CL_SUCCESS || st != CL_SUCCESS) prog = NULL;
        else if (clBuildProgram(prog, 1, &d->id, opts, NULL, NULL) != CL_SUCCESS) {
            clReleaseProgram(prog);
            prog = NULL;
        }
    }
    free(bin);
    fclose(f);
    if (!prog) unlink(path); /* stale or foreign: rebuilt from source below */
    return prog;
}

static void store_cached(craft_cl_dev *d, cl_program prog, const char *path) {
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0)
        return;
    unsigned char *bin = malloc(size);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
        char tmp[560];
        snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
        FILE *f = fopen(tmp, "wb");
        uint64_t s64 = size;
        int ok = f && fwrite("CRAFTCL1", 1, 8, f) == 8 && fwrite(&s64, 8, 1, f) == 1 &&
            fwrite(bin, 1, size, f) == size;
        if (f && fclose(f) != 0) ok = 0;
        if (ok) rename(tmp, path);
        else unlink(tmp);
    }
    free(bin);
    (void)d;
}

/* The build log on one line: the lines that mention an error first, then the rest. */
static void log_line(const char *log, char *out, size_t n) {
    size_t k = 0;
    out[0] = 0;
    for (int pass = 0; pass < 2 && k + 1 < n; pass++) {
        const char *p = log;
        while (*p && k + 1 < n) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            int is_err = 0;
            for (size_t i = 0; i + 5 <= len && !is_err; i++) is_err = !memcmp(p + i, "error", 5);
            if (len > 0 && is_err == (pass == 0)) {
                if (k) k += (size_t)snprintf(out + k, n - k, " | ");
                if (k + 1 < n) k += (size_t)snprintf(out + k, n - k, "%.*s", (int)len, p);
            }
            p = e ? e + 1 : p + len;
        }
    }
    if (k >= n) k = n - 1;
    for (size_t i = 0; i < k; i++)
        if (out[i] == '\t' || out[i] == '\r') out[i] = ' ';
}

int cl_build_program(craft_cl_dev *d, const char *const *src, int ns, const char *opts, cl_program *out) {
    char path[512];
    cache_path(d, src, ns, opts, path, sizeof path);
    if (path[0] && (*out = load_cached(d, path, opts))) return CRAFT_OK;
    cl_int err;
    cl_program prog = clCreateProgramWithSource(d->ctx, (cl_uint)ns, (const char **)src, NULL, &err);
    if (err != CL_SUCCESS) return cl_fail(err, d, "creating the craft kernel program");
    err = clBuildProgram(prog, 1, &d->id, opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        size_t len = 0;
        char *log = NULL, line[640] = "(no log)";
        if (clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) == CL_SUCCESS &&
            len > 0 && (log = calloc(1, len + 1)) &&
            clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, len, log, NULL) == CL_SUCCESS)
            log_line(log, line, sizeof line);
        free(log);
        clReleaseProgram(prog);
        return craft_fail(CRAFT_EDEVICE,
                          "OpenCL kernels failed to build on cl:%d (%s): %s (%d); build log: %s", d->index,
                          d->info.name, cl_err_name(err), (int)err, line);
    }
    if (path[0]) store_cached(d, prog, path);
    *out = prog;
    return CRAFT_OK;
}
