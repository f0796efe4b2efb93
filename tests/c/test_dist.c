/* test_dist.c: engine/dist in a process that no MPI launcher started: one rank, every
 * collective the identity (a build with MPI runs as one without it), arguments checked, the
 * timeout's bounds. tests/mpi.sh runs real ranks under mpirun. */
#include <stdlib.h>
#include <string.h>
#include "check.h"

static void test_before_init(void) {
    double x = 1;
    /* the process has not joined yet: a collective says so (this test runs first) */
    CHECK_ERR(craft_dist_allreduce_f64(&x, 1), CRAFT_EINVAL);
    CHECK(strstr(craft_last_error(), "before craft_dist_init") != NULL);
}

static void test_one_rank(void) {
    int rank = -1, size = -1, lr = -1, ls = -1;
    unsetenv("OMPI_COMM_WORLD_SIZE");
    CHECK_OK(craft_dist_init(&rank, &size, &lr, &ls));
    CHECK(rank == 0 && size == 1 && lr == 0 && ls == 1);
    CHECK_OK(craft_dist_init(NULL, NULL, NULL, NULL)); /* idempotent, NULLs skipped */
    CHECK(craft_dist_active() == 0);
    CHECK(craft_dist_has_mpi() == 0 || craft_dist_has_mpi() == 1);

    float f[3] = {1, 2, 3};
    CHECK_OK(craft_dist_allreduce_f32(f, 3));
    CHECK(f[0] == 1 && f[1] == 2 && f[2] == 3);
    double d[2] = {0.5, -4};
    CHECK_OK(craft_dist_allreduce_f64(d, 2));
    CHECK(d[0] == 0.5 && d[1] == -4);
    CHECK_OK(craft_dist_allreduce_f64(NULL, 0)); /* nothing to sum */

    char b[4] = "abc";
    CHECK_OK(craft_dist_broadcast(b, 4, 0));
    CHECK(!strcmp(b, "abc"));

    int64_t counts[1] = {-1};
    CHECK_OK(craft_dist_allgather_counts(5, counts));
    CHECK(counts[0] == 5);
    char out[5] = {0};
    CHECK_OK(craft_dist_gatherv("hello", 5, out, counts, 0));
    CHECK(!memcmp(out, "hello", 5));
    CHECK_OK(craft_dist_barrier());
    CHECK_OK(craft_dist_abort(3)); /* without MPI: nothing to end, it returns */
}

static void test_arguments(void) {
    float f = 1;
    CHECK_ERR(craft_dist_allreduce_f32(NULL, 2), CRAFT_EINVAL);
    CHECK_ERR(craft_dist_allreduce_f32(&f, -1), CRAFT_EINVAL);
    CHECK_ERR(craft_dist_broadcast(NULL, 3, 0), CRAFT_EINVAL);
    CHECK_ERR(craft_dist_broadcast(&f, 4, 1), CRAFT_EINVAL); /* root 1 of 1 rank */
    CHECK(strstr(craft_last_error(), "root 1") != NULL);
    CHECK_ERR(craft_dist_allgather_counts(1, NULL), CRAFT_EINVAL);
    int64_t counts[1] = {4};
    char out[8];
    CHECK_ERR(craft_dist_gatherv("abc", 3, out, counts, 0), CRAFT_EINVAL); /* counts says 4 */
    CHECK(strstr(craft_last_error(), "counts says 4") != NULL);
    counts[0] = 3;
    CHECK_ERR(craft_dist_gatherv("abc", 3, NULL, counts, 0), CRAFT_EINVAL); /* root without output */
    CHECK_ERR(craft_dist_gatherv("abc", 3, out, NULL, 0), CRAFT_EINVAL);
    CHECK_ERR(craft_dist_set_timeout(0), CRAFT_EINVAL);
    CHECK_ERR(craft_dist_set_timeout(-5), CRAFT_EINVAL);
    CHECK_ERR(craft_dist_set_timeout(NAN), CRAFT_EINVAL);
    CHECK_OK(craft_dist_set_timeout(42));
    CHECK_NEAR(craft_dist_timeout(), 42, 0);
    CHECK_OK(craft_dist_finalize()); /* no MPI: nothing to close */
}

int main(void) {
    RUN(test_before_init);
    RUN(test_one_rank);
    RUN(test_arguments);
    return CHECK_SUMMARY();
}
