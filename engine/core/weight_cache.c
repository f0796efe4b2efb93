/* weight_cache.c: the cache of converted weights that back ends share (weight_cache.h). A
 * linear scan over the entries: a model has hundreds of weights, not millions, and a lookup
 * costs far less than the conversion it saves. */
#include "core/weight_cache.h"
#include <limits.h>
#include <stdlib.h>

typedef struct craft_wc_entry {
    uint64_t serial, stamp;
    int32_t version, refs;
    int device, nkey;
    int64_t offset, key[CRAFT_WC_KEY];
    size_t nbytes;
    void *data;
} wc_entry;

/* MiB as bytes: negative 0, beyond what 64 bits hold the largest that they do */
static long long bytes_of_mb(long long mb) {
    if (mb < 0) return 0;
    return mb > (LLONG_MAX >> 20) ? (LLONG_MAX >> 20) << 20 : mb << 20;
}

static size_t cap_of(craft_wcache *c) { /* under mu */
    if (c->cap_bytes < 0) {
        const char *e = c->env ? getenv(c->env) : NULL;
        char *end = NULL;
        long long mb = e && *e ? strtoll(e, &end, 10) : c->default_mb;
        if (e && *e && end && *end) mb = c->default_mb; /* not a number: the default */
        c->cap_bytes = bytes_of_mb(mb);
    }
    return (size_t)c->cap_bytes;
}

static void drop(craft_wcache *c, int i) { /* under mu */
    wc_entry *e = c->tab[i];
    c->bytes -= e->nbytes;
    c->free_fn(e->data, e->nbytes);
    free(e);
    c->tab[i] = c->tab[--c->n];
}

/* Frees unused least-recently-used entries until need more bytes fit the cap. */
static void evict(craft_wcache *c, size_t need) { /* under mu */
    while (c->bytes + need > cap_of(c)) {
        int v = -1;
        for (int i = 0; i < c->n; i++)
            if (!c->tab[i]->refs && (v < 0 || c->tab[i]->stamp < c->tab[v]->stamp)) v = i;
        if (v < 0) return;
        drop(c, v);
    }
}

craft_wc_key craft_wc_key_of(const craft_storage *s, int device, int64_t offset, const int64_t *key, int nkey) {
    craft_wc_key k = {s->serial, s->version, device, offset, nkey, key};
    return k;
}

static int same_weight(const wc_entry *e, const craft_wc_key *k, size_t nbytes) {
    return e->serial == k->serial && e->device == k->device && e->offset == k->offset && e->nkey == k->nkey &&
           e->nbytes == nbytes && !memcmp(e->key, k->key, (size_t)k->nkey * sizeof *k->key);
}

int craft_wc_find(craft_wcache *c, const craft_wc_key *k, size_t nbytes, craft_wc_ref *ref) {
    memset(ref, 0, sizeof *ref);
    ref->cache = c;
    ref->nbytes = nbytes;
    if (k->nkey > CRAFT_WC_KEY) return 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        wc_entry *e = c->tab[i];
        if (!same_weight(e, k, nbytes)) continue;
        if (e->version == k->version) {
            e->refs++;
            e->stamp = ++c->clock;
            c->hits++;
            ref->data = e->data;
            ref->entry = e;
            pthread_mutex_unlock(&c->mu);
            return 1;
        }
        if (!e->refs) drop(c, i); /* the weight changed: its old form can never be used again */
        break;
    }
    c->misses++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void craft_wc_insert(craft_wcache *c, const craft_wc_key *k, void *data, size_t nbytes, craft_wc_ref *ref) {
    ref->cache = c;
    ref->data = data;
    ref->entry = NULL;
    ref->nbytes = nbytes;
    if (k->nkey > CRAFT_WC_KEY) return;
    wc_entry *e = calloc(1, sizeof *e);
    if (!e) return; /* used once, freed on release */
    pthread_mutex_lock(&c->mu);
    int fits = nbytes <= cap_of(c);
    if (fits) {
        evict(c, nbytes);
        if (c->n == c->cap) {
            int nc = c->cap ? 2 * c->cap : 256;
            wc_entry **nt = realloc(c->tab, (size_t)nc * sizeof *nt);
            if (nt) {
                c->tab = nt;
                c->cap = nc;
            }
        }
    }
    if (fits && c->n < c->cap && c->bytes + nbytes <= cap_of(c)) {
        e->serial = k->serial;
        e->version = k->version;
        e->device = k->device;
        e->offset = k->offset;
        e->nkey = k->nkey;
        memcpy(e->key, k->key, (size_t)k->nkey * sizeof *k->key);
        e->nbytes = nbytes;
        e->data = data;
        e->refs = 1;
        e->stamp = ++c->clock;
        c->tab[c->n++] = e;
        c->bytes += nbytes;
        ref->entry = e;
        e = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(e);
}

void craft_wc_release(craft_wc_ref *ref) {
    if (!ref->data) return;
    craft_wcache *c = ref->cache;
    if (ref->entry) {
        pthread_mutex_lock(&c->mu);
        ((wc_entry *)ref->entry)->refs--;
        pthread_mutex_unlock(&c->mu);
    } else {
        c->free_fn(ref->data, ref->nbytes);
    }
    ref->data = ref->entry = NULL;
}

void craft_wc_stats(craft_wcache *c, int64_t *bytes, int64_t *entries, int64_t *hits, int64_t *misses) {
    pthread_mutex_lock(&c->mu);
    if (bytes) *bytes = (int64_t)c->bytes;
    if (entries) *entries = c->n;
    if (hits) *hits = c->hits;
    if (misses) *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}

void craft_wc_clear(craft_wcache *c) {
    pthread_mutex_lock(&c->mu);
    for (int i = c->n - 1; i >= 0; i--)
        if (!c->tab[i]->refs) drop(c, i);
    if (!c->n) {
        free(c->tab);
        c->tab = NULL;
        c->cap = 0;
    }
    pthread_mutex_unlock(&c->mu);
}

int64_t craft_wc_cap_mb(craft_wcache *c, int64_t mb) {
    pthread_mutex_lock(&c->mu);
    int64_t old = (int64_t)(cap_of(c) >> 20);
    if (mb >= 0) {
        c->cap_bytes = bytes_of_mb(mb);
        evict(c, 0);
    }
    pthread_mutex_unlock(&c->mu);
    return old;
}
