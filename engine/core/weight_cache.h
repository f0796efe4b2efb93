/* weight_cache.h: converted copies of weights kept between calls (the CPU's bf16 forms in
 * cpu_bf16.c, the OpenCL devices' f16 forms in cl_f16.c), one mechanism for every back end.
 *
 * An entry is keyed by the weight's storage serial (never reused), its version (bumped by every
 * in-place write the engine makes), the device, the element offset and a layout key of up to
 * CRAFT_WC_KEY int64s, so a changed weight (an optimiser step, a LoRA merge) is converted again
 * and its old form dropped. The cache holds at most a cap of bytes (an environment variable in
 * MiB, or craft_wc_cap_mb), least recently used entries leaving first; an entry in use (a
 * reference not yet released) is never freed. The payload is the back end's own (pool memory,
 * a device tensor): the cache frees it with the back end's function. */
#ifndef CRAFT_WEIGHT_CACHE_H
#define CRAFT_WEIGHT_CACHE_H
#include "core/internal.h"
#include <pthread.h>

#define CRAFT_WC_KEY 24

typedef void (*craft_wc_free_fn)(void *data, size_t nbytes);
struct craft_wc_entry;

typedef struct craft_wcache {
    const char *env;         /* the cap's environment variable (MiB; negative: 0) */
    long long default_mb;    /* the cap when it is unset */
    craft_wc_free_fn free_fn; /* frees a payload */
    pthread_mutex_t mu;
    struct craft_wc_entry **tab;
    int n, cap;
    size_t bytes;
    long long cap_bytes; /* -1 until read from env or set */
    uint64_t clock;
    int64_t hits, misses;
} craft_wcache;

#define CRAFT_WCACHE_INIT(env, mb, fn) {(env), (mb), (fn), PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, -1, 0, 0, 0}

/* What a lookup hands back: data (the payload) and, while held, the entry that pins it; a
 * payload the cache did not keep belongs to the reference and is freed on release. */
typedef struct craft_wc_ref {
    void *data, *entry;
    size_t nbytes;
    craft_wcache *cache;
} craft_wc_ref;

typedef struct craft_wc_key {
    uint64_t serial;
    int32_t version;
    int device;
    int64_t offset;
    int nkey;
    const int64_t *key;
} craft_wc_key;

/* The key of storage s (with device and offset) under a layout key. */
craft_wc_key craft_wc_key_of(const craft_storage *s, int device, int64_t offset, const int64_t *key, int nkey);
/* A hit: 1, ref holds the pinned payload. A miss: 0, ref empty (an entry for an older version
 * of the weight, unused, is dropped). nbytes is the payload's size. */
int craft_wc_find(craft_wcache *c, const craft_wc_key *k, size_t nbytes, craft_wc_ref *ref);
/* After a miss: data (nbytes, made by the caller) goes into the cache when it fits under the cap
 * (older unused entries leave for it); ref then pins it, else ref owns it. */
void craft_wc_insert(craft_wcache *c, const craft_wc_key *k, void *data, size_t nbytes, craft_wc_ref *ref);
/* Unpins, or frees a payload the cache did not keep. */
void craft_wc_release(craft_wc_ref *ref);
void craft_wc_stats(craft_wcache *c, int64_t *bytes, int64_t *entries, int64_t *hits, int64_t *misses);
/* Frees every entry not in use. */
void craft_wc_clear(craft_wcache *c);
/* The cap in MiB; mb >= 0 sets it (entries not in use leave until the rest fits), mb < 0 only
 * reads it. */
int64_t craft_wc_cap_mb(craft_wcache *c, int64_t mb);

#endif
