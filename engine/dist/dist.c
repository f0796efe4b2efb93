/* dist.c: the process's place in a data-parallel run, and the collectives the Lua side needs
 * (craft.dist): sums of float buffers (gradients, logged values), broadcast, gather of byte
 * strings, barrier. On MPI when the build has it (CRAFT_MPI) and the process was started by an
 * MPI launcher; otherwise the process is the only rank and every collective is the identity.
 *
 * Every collective is a nonblocking MPI call waited on with a deadline: MPI's own blocking calls
 * would wait forever for a rank that hangs. While waiting, a rank answers the other ranks'
 * pings, so that a rank whose wait times out can tell which ranks are still alive and name the
 * ones that are not. Only the thread that called craft_dist_init calls MPI (MPI_THREAD_FUNNELED);
 * OpenMP threads never do. */
#include "core/internal.h"
#include <stdlib.h>
#include <sched.h>
#include <time.h>
#ifdef CRAFT_MPI
#include <limits.h>
#include <mpi.h>
#endif

static int g_init, g_active, g_rank, g_size = 1, g_local_rank, g_local_size = 1;
static double g_timeout = 300.0;

int craft_dist_has_mpi(void) {
#ifdef CRAFT_MPI
    return 1;
#else
    return 0;
#endif
}

int craft_dist_active(void) { return g_active; }

int craft_dist_set_timeout(double seconds) {
    if (!(seconds > 0) || seconds > 1e7) {
        return craft_fail(CRAFT_EINVAL, "dist: timeout %g s must be in (0, 1e7] seconds", seconds);
    }
    g_timeout = seconds;
    return CRAFT_OK;
}

double craft_dist_timeout(void) { return g_timeout; }

/* the environment of a process started by an MPI launcher: Open MPI's mpirun, a PMIx server
 * (srun --mpi=pmix, prterun), MPICH's Hydra or a PMI-2 srun */
static int launched(void) {
    const char *force = getenv("CRAFT_DIST");
    if (force && !strcmp(force, "0")) return 0;
    if (force && !strcmp(force, "1")) return 1;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

#ifdef CRAFT_MPI
static MPI_Comm g_ctl = MPI_COMM_NULL; /* pings and answers, apart from the collectives */
enum { TAG_PING = 7301, TAG_PONG = 7302 };

static int mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    return craft_fail(CRAFT_EDIST, "dist: %s failed on rank %d of %d: %s", what, g_rank, g_size, msg);
}

static void answer_pings(void) {
    for (;;) {
        int flag = 0, v = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, g_ctl, &flag, &st) != MPI_SUCCESS || !flag) return;
        MPI_Recv(&v, 1, MPI_INT, st.MPI_SOURCE, TAG_PING, g_ctl, MPI_STATUS_IGNORE);
        MPI_Send(&v, 1, MPI_INT, st.MPI_SOURCE, TAG_PONG, g_ctl);
    }
}

static void pause_for(long ns) {
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* After a timeout: ping every other rank and list, in buf, those that do not answer within
 * a few seconds (dead, stopped, or busy outside craft's collectives). */
static void silent_ranks(char *buf, size_t cap) {
    int n = g_size;
    MPI_Request *rq = calloc((size_t)n * 2, sizeof *rq);
    int *in = calloc((size_t)n, sizeof *in), *got = calloc((size_t)n, sizeof *got);
    buf[0] = 0;
    if (!rq || !in || !got) {
        free(rq);
        free(in);
        free(got);
        return;
    }
    int ping = g_rank;
    for (int r = 0; r < n; r++) {
        rq[2 * r] = rq[2 * r + 1] = MPI_REQUEST_NULL;
        if (r == g_rank) {
            got[r] = 1;
            continue;
        }
        MPI_Irecv(&in[r], 1, MPI_INT, r, TAG_PONG, g_ctl, &rq[2 * r]);
        MPI_Isend(&ping, 1, MPI_INT, r, TAG_PING, g_ctl, &rq[2 * r + 1]);
    }
    double t0 = craft_now();
    while (craft_now() - t0 < 3.0) {
        int all = 1;
        for (int r = 0; r < n; r++) {
            if (got[r]) continue;
            MPI_Test(&rq[2 * r], &got[r], MPI_STATUS_IGNORE);
            all &= got[r];
        }
        if (all) break;
        answer_pings();
        pause_for(1000000);
    }
    size_t len = 0;
    for (int r = 0; r < n && len + 16 < cap; r++) {
        if (!got[r]) len += (size_t)snprintf(buf + len, cap - len, "%s%d", len ? ", " : "", r);
    }
    /* the unanswered requests stay posted: the caller ends the job next */
    free(rq);
    free(in);
    free(got);
}

/* Waits for a nonblocking collective with the deadline, answering pings meanwhile. Open MPI
 * moves a nonblocking collective on only inside MPI_Test, so the loop tests without pause for
 * the first second (yielding the core between tests, for ranks that share cores with others
 * still computing: --oversubscribe), then every millisecond (a long wait: rank 0 writing files
 * while the others wait at a barrier). */
static int wait_for(MPI_Request *rq, const char *what) {
    double t0 = craft_now();
    for (int k = 0;; k++) {
        int done = 0;
        int rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
        if (done) return CRAFT_OK;
        if ((k & 63) == 0) answer_pings();
        double el = craft_now() - t0;
        if (el > g_timeout) {
            char who[256];
            silent_ranks(who, sizeof who);
            if (who[0]) {
                return craft_fail(CRAFT_EDIST,
                                  "dist: %s did not finish within %.0f s on rank %d of %d: rank(s) %s do "
                                  "not answer (dead, stopped or hung)",
                                  what, g_timeout, g_rank, g_size, who);
            }
            return craft_fail(CRAFT_EDIST,
                              "dist: %s did not finish within %.0f s on rank %d of %d, though every rank "
                              "answers: the ranks wait in different collectives, or one computes longer than "
                              "the timeout (CRAFT_DIST_TIMEOUT)",
                              what, g_timeout, g_rank, g_size);
        }
        if (el < 1.0) sched_yield();
        else pause_for(1000000);
    }
}
#endif

int craft_dist_init(int *rank, int *size, int *local_rank, int *local_size) {
    if (!g_init) {
        const char *t = getenv("CRAFT_DIST_TIMEOUT");
        if (t && *t) {
            char *end = NULL;
            double v = strtod(t, &end);
            if (end == t || *end || craft_dist_set_timeout(v) != CRAFT_OK) {
                return craft_fail(CRAFT_EINVAL,
                                  "dist: CRAFT_DIST_TIMEOUT=%s is not a number of seconds in "
                                  "(0, 1e7]",
                                  t);
            }
        }
        if (launched()) {
#ifdef CRAFT_MPI
            int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init_thread");
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
            MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
            MPI_Comm_size(MPI_COMM_WORLD, &g_size);
            MPI_Comm node;
            rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Comm_split_type");
            MPI_Comm_rank(node, &g_local_rank);
            MPI_Comm_size(node, &g_local_size);
            MPI_Comm_free(&node);
            rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_ctl);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Comm_dup");
            MPI_Comm_set_errhandler(g_ctl, MPI_ERRORS_RETURN);
            g_active = 1;
#else
            /* launched by mpirun but built without MPI: each process would run the whole job
             * alone, writing the same files as the others */
            return craft_fail(CRAFT_EDIST,
                              "dist: this craft was built without MPI (make MPI=0, or no mpicc "
                              "when it was built) but runs under an MPI launcher; rebuild with "
                              "MPI (tools/setup.sh installs Open MPI), or set CRAFT_DIST=0 to "
                              "run every process alone");
#endif
        }
        g_init = 1;
    }
    if (rank) *rank = g_rank;
    if (size) *size = g_size;
    if (local_rank) *local_rank = g_local_rank;
    if (local_size) *local_size = g_local_size;
    return CRAFT_OK;
}

static int need_init(const char *what) {
    if (!g_init) return craft_fail(CRAFT_EINVAL, "dist: %s before craft_dist_init", what);
    return CRAFT_OK;
}

#ifdef CRAFT_MPI
/* MPI counts are int: long buffers go in pieces of at most 2^28 elements */
#define PIECE ((int64_t)1 << 28)
/* Above this many bytes a collective is MPI's blocking one, after every rank has arrived
 * (a nonblocking barrier waited on with the deadline): Open MPI's nonblocking collectives move
 * large buffers 2-4 times slower than its blocking ones (measured here on 3-48 MB sums). Once
 * all ranks are in, a rank that dies mid-transfer is caught by the launcher. */
#define BIG 65536

static int arrive(const char *what) {
    MPI_Request rq;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &rq);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
    return wait_for(&rq, what);
}

static int allreduce(void *buf, int64_t n, MPI_Datatype type, size_t esize, const char *name) {
    char what[96];
    snprintf(what, sizeof what, "allreduce of %lld %s", (long long)n, name);
    if (n * (int64_t)esize > BIG) CRAFT_TRY(arrive(what));
    for (int64_t at = 0; at < n; at += PIECE) {
        int64_t m = n - at < PIECE ? n - at : PIECE;
        void *p = (char *)buf + at * (int64_t)esize;
        int rc;
        if (n * (int64_t)esize > BIG) {
            rc = MPI_Allreduce(MPI_IN_PLACE, p, (int)m, type, MPI_SUM, MPI_COMM_WORLD);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
            continue;
        }
        MPI_Request rq;
        rc = MPI_Iallreduce(MPI_IN_PLACE, p, (int)m, type, MPI_SUM, MPI_COMM_WORLD, &rq);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
        CRAFT_TRY(wait_for(&rq, what));
    }
    return CRAFT_OK;
}
#endif

int craft_dist_allreduce_f64(double *buf, int64_t n) {
    CRAFT_TRY(need_init("allreduce"));
    if (n < 0 || (n > 0 && !buf)) {
        return craft_fail(CRAFT_EINVAL, "dist: allreduce: %lld doubles at %p", (long long)n, (void *)buf);
    }
#ifdef CRAFT_MPI
    if (g_active && g_size > 1 && n > 0) return allreduce(buf, n, MPI_DOUBLE, sizeof(double), "doubles");
#endif
    return CRAFT_OK;
}

int craft_dist_allreduce_f32(float *buf, int64_t n) {
    CRAFT_TRY(need_init("allreduce"));
    if (n < 0 || (n > 0 && !buf)) {
        return craft_fail(CRAFT_EINVAL, "dist: allreduce: %lld floats at %p", (long long)n, (void *)buf);
    }
#ifdef CRAFT_MPI
    if (g_active && g_size > 1 && n > 0) return allreduce(buf, n, MPI_FLOAT, sizeof(float), "floats");
#endif
    return CRAFT_OK;
}

int craft_dist_broadcast(void *buf, int64_t nbytes, int root) {
    CRAFT_TRY(need_init("broadcast"));
    if (nbytes < 0 || (nbytes > 0 && !buf) || root < 0 || root >= g_size) {
        return craft_fail(CRAFT_EINVAL, "dist: broadcast: %lld bytes at %p from root %d (ranks 0..%d)",
                          (long long)nbytes, buf, root, g_size - 1);
    }
#ifdef CRAFT_MPI
    if (g_active && g_size > 1) {
        char what[96];
        snprintf(what, sizeof what, "broadcast of %lld bytes from rank %d", (long long)nbytes, root);
        if (nbytes > BIG) CRAFT_TRY(arrive(what));
        for (int64_t at = 0; at < nbytes || at == 0; at += PIECE) {
            int64_t m = nbytes - at < PIECE ? nbytes - at : PIECE;
            int rc;
            if (nbytes > BIG) {
                rc = MPI_Bcast((char *)buf + at, (int)m, MPI_BYTE, root, MPI_COMM_WORLD);
                if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
                continue;
            }
            MPI_Request rq;
            rc = MPI_Ibcast((char *)buf + at, (int)m, MPI_BYTE, root, MPI_COMM_WORLD, &rq);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
            CRAFT_TRY(wait_for(&rq, what));
            if (nbytes == 0) break;
        }
    }
#endif
    return CRAFT_OK;
}

int craft_dist_allgather_counts(int64_t n, int64_t *counts) {
    CRAFT_TRY(need_init("allgather_counts"));
    if (n < 0 || !counts) {
        return craft_fail(CRAFT_EINVAL, "dist: allgather_counts: count %lld, counts at %p", (long long)n,
                          (void *)counts);
    }
#ifdef CRAFT_MPI
    if (g_active && g_size > 1) {
        long long mine = n;
        MPI_Request rq;
        int rc = MPI_Iallgather(&mine, 1, MPI_LONG_LONG, counts, 1, MPI_LONG_LONG, MPI_COMM_WORLD, &rq);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "allgather of counts");
        return wait_for(&rq, "allgather of counts");
    }
#endif
    counts[0] = n;
    return CRAFT_OK;
}

int craft_dist_gatherv(const void *buf, int64_t n, void *out, const int64_t *counts, int root) {
    CRAFT_TRY(need_init("gather"));
    if (n < 0 || (n > 0 && !buf) || !counts || root < 0 || root >= g_size) {
        return craft_fail(CRAFT_EINVAL, "dist: gather: %lld bytes at %p, counts at %p, root %d (ranks 0..%d)",
                          (long long)n, buf, (const void *)counts, root, g_size - 1);
    }
    if (counts[g_rank] != n) {
        return craft_fail(CRAFT_EINVAL, "dist: gather: rank %d gives %lld bytes but counts says %lld", g_rank,
                          (long long)n, (long long)counts[g_rank]);
    }
    int64_t total = 0;
    for (int r = 0; r < g_size; r++) {
        if (counts[r] < 0) {
            return craft_fail(CRAFT_EINVAL, "dist: gather: counts[%d] is %lld", r, (long long)counts[r]);
        }
        total += counts[r];
    }
    if (g_rank == root && total > 0 && !out) {
        return craft_fail(CRAFT_EINVAL, "dist: gather: no output buffer on the root");
    }
#ifdef CRAFT_MPI
    if (g_active && g_size > 1) {
        if (total > INT_MAX) {
            return craft_fail(CRAFT_EINVAL,
                              "dist: gather of %lld bytes in all: at most %d bytes per gather "
                              "(gather in parts)",
                              (long long)total, INT_MAX);
        }
        int *cnt = malloc(sizeof(int) * (size_t)g_size * 2);
        if (!cnt) return craft_fail(CRAFT_ENOMEM, "dist: gather: no memory for %d counts", g_size);
        int *disp = cnt + g_size, at = 0;
        for (int r = 0; r < g_size; r++) {
            cnt[r] = (int)counts[r];
            disp[r] = at;
            at += cnt[r];
        }
        char what[96];
        snprintf(what, sizeof what, "gather of %lld bytes on rank %d", (long long)total, root);
        int rc;
        if (total > BIG) {
            /* every rank already arrived in craft_dist_allgather_counts, just before */
            rc = MPI_Gatherv(buf, (int)n, MPI_BYTE, out, cnt, disp, MPI_BYTE, root, MPI_COMM_WORLD);
            free(cnt);
            return rc == MPI_SUCCESS ? CRAFT_OK : mpi_fail(rc, what);
        }
        MPI_Request rq;
        rc = MPI_Igatherv(buf, (int)n, MPI_BYTE, out, cnt, disp, MPI_BYTE, root, MPI_COMM_WORLD, &rq);
        if (rc != MPI_SUCCESS) {
            free(cnt);
            return mpi_fail(rc, what);
        }
        rc = wait_for(&rq, what);
        free(cnt);
        return rc;
    }
#endif
    if (n > 0) memcpy(out, buf, (size_t)n);
    return CRAFT_OK;
}

int craft_dist_barrier(void) {
    CRAFT_TRY(need_init("barrier"));
#ifdef CRAFT_MPI
    if (g_active && g_size > 1) {
        MPI_Request rq;
        int rc = MPI_Ibarrier(MPI_COMM_WORLD, &rq);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "barrier");
        return wait_for(&rq, "barrier");
    }
#endif
    return CRAFT_OK;
}

int craft_dist_abort(int code) {
#ifdef CRAFT_MPI
    if (g_active) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
    (void)code;
    return CRAFT_OK;
}

int craft_dist_finalize(void) {
#ifdef CRAFT_MPI
    if (g_active) {
        g_active = 0;
        if (g_ctl != MPI_COMM_NULL) MPI_Comm_free(&g_ctl);
        int rc = MPI_Finalize();
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Finalize");
    }
#endif
    return CRAFT_OK;
}
