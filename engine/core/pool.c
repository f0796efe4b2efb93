/* pool.c: the caching host allocator. Freed blocks are kept in per-size free lists and handed
 * out again, because page faults are very expensive on the machines craft runs on; big blocks
 * come from mmap with MAP_POPULATE so they are touched once, up front. Sizes are rounded to
 * classes (64-byte steps below 1 KiB, then 4 steps per power of two: at most 25 % waste). */
#include "core/internal.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MMAP_MIN (256u << 10)

typedef struct cached_block {
    void *p;
    uint64_t stamp; /* when it was freed: the oldest goes first when the cache must shrink */
} cached_block;

typedef struct bucket {
    size_t size;
    cached_block *items; /* a stack: items[0] is the oldest */
    int n, cap;
} bucket;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static bucket *buckets; /* open addressing on size */
static int n_buckets;   /* power of two (or 0) */
static int used_buckets;
static int64_t st_in_use, st_cached, st_peak, st_system;
static int64_t st_hwm;      /* the most ever in use (not reset by craft_pool_reset_peak) */
static uint64_t free_clock; /* counts frees, for the cached blocks' stamps */
static int64_t slack = -1;  /* CRAFT_POOL_SLACK_MB; see footprint_cap */
static int64_t cache_limit = -1;
static int64_t use_limit; /* CRAFT_POOL_LIMIT_MB: cap on the bytes in use (0: none) */

static size_t size_class(size_t n) {
    if (n == 0) n = 1;
    if (n <= 1024) return (n + 63) & ~(size_t)63;
    int p = 63 - __builtin_clzll((unsigned long long)n);
    size_t step = (size_t)1 << (p - 2);
    return (n + step - 1) & ~(step - 1);
}

static bucket *find_bucket(size_t size, int create) {
    if (n_buckets == 0 || (create && used_buckets * 2 >= n_buckets)) {
        if (!create) return NULL;
        int nn = n_buckets ? n_buckets * 2 : 256;
        bucket *nb = calloc((size_t)nn, sizeof *nb);
        if (!nb) return NULL;
        for (int i = 0; i < n_buckets; i++) {
            if (!buckets[i].size) continue;
            size_t h = (buckets[i].size >> 6) * 0x9E3779B97F4A7C15ull;
            int j = (int)(h >> 40) & (nn - 1);
            while (nb[j].size) j = (j + 1) & (nn - 1);
            nb[j] = buckets[i];
        }
        free(buckets);
        buckets = nb;
        n_buckets = nn;
    }
    size_t h = (size >> 6) * 0x9E3779B97F4A7C15ull;
    int j = (int)(h >> 40) & (n_buckets - 1);
    while (buckets[j].size && buckets[j].size != size) j = (j + 1) & (n_buckets - 1);
    if (!buckets[j].size) {
        if (!create) return NULL;
        buckets[j].size = size;
        used_buckets++;
    }
    return &buckets[j];
}

static int64_t mem_available(void);

static void *system_alloc(size_t size) {
    /* MAP_POPULATE touches every page: a request larger than the memory the system has left
     * would drive it into swap or the OOM killer instead of failing, so refuse it up front
     * (checked only for large requests: /proc/meminfo is read once per new block of >= 256 MiB) */
    if (size >= ((size_t)256 << 20)) {
        int64_t avail = mem_available();
        if (avail >= 0 && (int64_t)size > avail) return NULL;
    }
    if (size >= MMAP_MIN) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    return aligned_alloc(64, size);
}

static void system_free(void *p, size_t size) {
    if (size >= MMAP_MIN) munmap(p, size);
    else free(p);
}

static int64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : (int64_t)kb * 1024;
}

static void trim_locked(void) {
    for (int i = 0; i < n_buckets; i++) {
        bucket *b = &buckets[i];
        for (int k = 0; k < b->n; k++) system_free(b->items[k].p, b->size);
        st_cached -= (int64_t)b->size * b->n;
        b->n = 0;
    }
}

/* The footprint (bytes in use + cached) may exceed the in-use high water mark by 1/16 and a slack
 * only: past it a cache miss first gives back the longest-unused cached blocks. Without this, work
 * whose block sizes change as it goes (a decoder's stages at growing resolutions) keeps every
 * earlier stage's blocks cached beside the live ones and doubles its resident memory; with it, a
 * repeated pattern (training steps) still finds its blocks cached when they fit in the slack. */
static int64_t footprint_cap(int64_t hwm) { return hwm + hwm / 16 + slack; }

static void shrink_cache_locked(int64_t need) {
    int64_t hwm = st_in_use + need > st_hwm ? st_in_use + need : st_hwm;
    while (st_cached > 0 && st_in_use + st_cached + need > footprint_cap(hwm)) {
        bucket *oldest = NULL;
        for (int i = 0; i < n_buckets; i++)
            if (buckets[i].n > 0 && (!oldest || buckets[i].items[0].stamp < oldest->items[0].stamp))
                oldest = &buckets[i];
        if (!oldest) break;
        system_free(oldest->items[0].p, oldest->size);
        st_cached -= (int64_t)oldest->size;
        memmove(oldest->items, oldest->items + 1, (size_t)(oldest->n - 1) * sizeof *oldest->items);
        oldest->n--;
    }
}

void *craft_alloc(size_t nbytes) {
    size_t size = size_class(nbytes);
    pthread_mutex_lock(&pool_mu);
    if (cache_limit < 0) {
        const char *e = getenv("CRAFT_POOL_CACHE_MB");
        cache_limit = e ? (int64_t)atoll(e) << 20 : (int64_t)8 << 30;
        e = getenv("CRAFT_POOL_LIMIT_MB");
        use_limit = e && atoll(e) > 0 ? (int64_t)atoll(e) << 20 : 0;
        e = getenv("CRAFT_POOL_SLACK_MB");
        slack = (e && atoll(e) >= 0 ? (int64_t)atoll(e) : 256) << 20;
    }
    if (use_limit && (size > (size_t)use_limit || st_in_use + (int64_t)size > use_limit)) {
        int64_t in_use = st_in_use;
        pthread_mutex_unlock(&pool_mu);
        craft_fail(
            CRAFT_ENOMEM,
            "out of host memory: asked for %.1f MiB, craft holds %.1f MiB, its limit (CRAFT_POOL_LIMIT_MB) is %.1f MiB",
            size / 1048576.0, in_use / 1048576.0, use_limit / 1048576.0);
        return NULL;
    }
    bucket *b = find_bucket(size, 0);
    void *p = NULL;
    if (b && b->n > 0) {
        p = b->items[--b->n].p;
        st_cached -= (int64_t)size;
    } else {
        shrink_cache_locked((int64_t)size);
        p = system_alloc(size);
        if (!p) { /* give the cache back and try once more */
            trim_locked();
            p = system_alloc(size);
        }
        if (!p) {
            int64_t in_use = st_in_use;
            pthread_mutex_unlock(&pool_mu);
            craft_fail(
                CRAFT_ENOMEM,
                "out of host memory: asked for %.1f MiB, craft holds %.1f MiB, the system has %.1f MiB available",
                size / 1048576.0, in_use / 1048576.0, mem_available() / 1048576.0);
            return NULL;
        }
        st_system++;
    }
    st_in_use += (int64_t)size;
    if (st_in_use > st_peak) st_peak = st_in_use;
    if (st_in_use > st_hwm) st_hwm = st_in_use;
    pthread_mutex_unlock(&pool_mu);
    return p;
}

void craft_free(void *ptr, size_t nbytes) {
    if (!ptr) return;
    size_t size = size_class(nbytes);
    pthread_mutex_lock(&pool_mu);
    st_in_use -= (int64_t)size;
    bucket *b = NULL;
    if (st_cached + (int64_t)size <= cache_limit) b = find_bucket(size, 1);
    if (b && b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 8;
        cached_block *ni = realloc(b->items, (size_t)nc * sizeof *ni);
        if (ni) {
            b->items = ni;
            b->cap = nc;
        }
    }
    if (b && b->n < b->cap) {
        b->items[b->n].p = ptr;
        b->items[b->n++].stamp = ++free_clock;
        st_cached += (int64_t)size;
    } else {
        system_free(ptr, size);
    }
    pthread_mutex_unlock(&pool_mu);
}

void craft_pool_get_stats(craft_pool_stats *out) {
    pthread_mutex_lock(&pool_mu);
    out->in_use = st_in_use;
    out->cached = st_cached;
    out->peak = st_peak;
    out->n_system = st_system;
    pthread_mutex_unlock(&pool_mu);
}

void craft_pool_reset_peak(void) {
    pthread_mutex_lock(&pool_mu);
    st_peak = st_in_use;
    pthread_mutex_unlock(&pool_mu);
}

void craft_pool_trim(void) {
    pthread_mutex_lock(&pool_mu);
    trim_locked();
    pthread_mutex_unlock(&pool_mu);
}
