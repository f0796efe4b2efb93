/* bench/mpi_nonblocking_check.c: Open MPI's blocking MPI_Allreduce against its nonblocking
 * MPI_Iallreduce waited on with MPI_Test (as engine/dist waits), on 3-51 MB float sums, best of 9.
 * Why engine/dist sums large buffers with the blocking call (docs/scaling.md). Standalone:
 *   mpicc -O2 bench/mpi_nonblocking_check.c -o /tmp/nb && mpirun --oversubscribe -np 2 /tmp/nb */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int r;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    int ns[3] = {797184, 3188736, 12754944};
    for (int k = 0; k < 3; k++) {
        int n = ns[k];
        float *b = malloc(n * 4);
        for (int i = 0; i < n; i++) b[i] = 1;
        double tb = 1e9, tn = 1e9;
        for (int it = 0; it < 9; it++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double t1 = MPI_Wtime();
            if (t1 - t0 < tb) tb = t1 - t0;
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = MPI_Wtime();
            MPI_Request rq;
            int done = 0;
            MPI_Iallreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &rq);
            while (!done) {
                MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
                if (!done) sched_yield();
            }
            t1 = MPI_Wtime();
            if (t1 - t0 < tn) tn = t1 - t0;
        }
        if (!r)
            printf("%d floats: blocking %.2f ms, nonblocking %.2f ms (best of 9)\n", n, tb * 1e3, tn * 1e3);
        free(b);
    }
    MPI_Finalize();
}
