/* threads.c: the engine's thread count. craft's own loops and oneDNN (built on OpenMP) both
 * follow OpenMP's max-threads setting, so one call steers everything. The setting belongs to
 * the calling thread (OpenMP's nthreads-var), i.e. to the main thread in normal use. */
#include "core/internal.h"
#include <omp.h>

int craft_num_threads(void) { return omp_get_max_threads(); }

/* n < 1 restores one thread per available processor. */
void craft_set_num_threads(int n) {
    if (n < 1) n = omp_get_num_procs();
    omp_set_num_threads(n);
}
