/* profile.c: per-op backward timing for profilers (craft_profile_backward; craft.profile in
 * Lua). Off unless asked: then the autograd engine brackets each node's backward with
 * craft_prof_enter / craft_prof_leave, and each op's row holds its self time (a custom backward,
 * as gradient checkpointing's, runs nested nodes, which are timed in their own rows). */
#include "core/internal.h"
#include <pthread.h>
#include <stdlib.h>

#define PROF_MAX 160
static struct {
    const char *name;
    int64_t calls;
    double seconds;
} prof[PROF_MAX];
static int prof_n, prof_on;
static pthread_mutex_t prof_mu = PTHREAD_MUTEX_INITIALIZER;
/* each nesting level's time spent in nested nodes, per thread */
#define PROF_DEPTH 64
static _Thread_local int prof_depth;
static _Thread_local double prof_child[PROF_DEPTH];

void craft_profile_backward(int on) {
    pthread_mutex_lock(&prof_mu);
    prof_on = on > 0;
    if (on < 0) { /* reset */
        for (int i = 0; i < prof_n; i++) free((void *)prof[i].name);
        prof_n = 0;
    }
    pthread_mutex_unlock(&prof_mu);
}

int craft_profile_backward_row(int i, const char **name, int64_t *calls, double *seconds) {
    pthread_mutex_lock(&prof_mu);
    int ok = i >= 0 && i < prof_n, n = prof_n;
    if (ok) {
        *name = prof[i].name;
        *calls = prof[i].calls;
        *seconds = prof[i].seconds;
    }
    pthread_mutex_unlock(&prof_mu);
    return ok ? CRAFT_OK : craft_fail(CRAFT_EINVAL, "profile: no backward row %d (%d rows)", i, n);
}

/* Rows are matched by the op's name (copied on first sight: custom ops' names live only as long
 * as their graph). */
static void prof_add(const char *name, double dt) {
    pthread_mutex_lock(&prof_mu);
    int i = 0;
    while (i < prof_n && strcmp(prof[i].name, name)) i++;
    if (i == prof_n && prof_n < PROF_MAX) {
        char *copy = malloc(strlen(name) + 1);
        if (copy) {
            strcpy(copy, name);
            prof[prof_n].name = copy;
            prof[prof_n].calls = 0;
            prof[prof_n].seconds = 0;
            prof_n++;
        }
    }
    if (i < prof_n) {
        prof[i].calls++;
        prof[i].seconds += dt;
    }
    pthread_mutex_unlock(&prof_mu);
}

double craft_prof_enter(void) {
    if (prof_on && prof_depth + 1 < PROF_DEPTH) prof_child[prof_depth + 1] = 0;
    prof_depth++;
    return prof_on ? craft_now() : 0;
}

void craft_prof_leave(const char *name, double t0) {
    prof_depth--;
    if (!prof_on || t0 == 0) return;
    double dt = craft_now() - t0, inner = prof_depth + 1 < PROF_DEPTH ? prof_child[prof_depth + 1] : 0;
    prof_add(name, dt - inner);
    if (prof_depth >= 0 && prof_depth < PROF_DEPTH) prof_child[prof_depth] += dt;
}
