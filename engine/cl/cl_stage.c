/* cl_stage.c: host staging rings (cl_internal.h, cl_stage): the host copies that the back end's
 * non-blocking writes read from (kernel geometries, small uploads), so that neither the caller
 * nor the back end waits for the queue to reach a write. A ring's two halves are used in turn;
 * leaving a half enqueues a marker, and entering it again waits for that marker, which the
 * in-order queue completes once every command before it has run: by then half a ring of later
 * work has been enqueued, so the wait is normally already over and costs no round-trip. */
#include "cl/cl_internal.h"
#include <stdlib.h>

int cl_stage_init(cl_stage *st, size_t size, const char *what) {
    memset(st, 0, sizeof *st);
    if (!(st->host = malloc(size)))
        return craft_fail(CRAFT_ENOMEM, "OpenCL: out of host memory for %s", what);
    st->size = size;
    return CRAFT_OK;
}

/* Waits for the marker of half h (if any) and drops it; counts a host wait only when it was not
 * already complete. */
static int wait_half(craft_cl_dev *d, cl_stage *st, int h) {
    cl_event ev = st->mark[h];
    if (!ev) return CRAFT_OK;
    st->mark[h] = NULL;
    cl_int status = CL_QUEUED;
    cl_int err = clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
    if (err == CL_SUCCESS && status != CL_COMPLETE) {
        d->syncs++;
        err = clWaitForEvents(1, &ev);
    }
    clReleaseEvent(ev);
    return err == CL_SUCCESS ? CRAFT_OK : cl_fail(err, d, "waiting for a staging ring's marker");
}

int cl_stage_take(craft_cl_dev *d, cl_stage *st, size_t n, size_t *off) {
    size_t half = st->size / 2, slot = (n + 63) & ~(size_t)63;
    if (slot > half)
        return craft_fail(CRAFT_EINVAL, "OpenCL staging: %zu bytes exceed half the %zu-byte ring", n,
                          st->size);
    /* the half is tracked, not derived from head: a half filled to its very end must still be
     * marked when left, and the other half waited for */
    int cur = st->cur;
    size_t end = cur ? st->size : half;
    if (st->head + slot > end) { /* leave this half: mark it, and enter the other once free */
        cl_int err = clEnqueueMarkerWithWaitList(d->queue, 0, NULL, &st->mark[cur]);
        if (err != CL_SUCCESS) {
            st->mark[cur] = NULL;
            return cl_fail(err, d, "marking a staging ring");
        }
        CRAFT_TRY(wait_half(d, st, !cur));
        st->cur = !cur;
        st->head = cur ? 0 : half;
    }
    *off = st->head;
    st->head += slot;
    return CRAFT_OK;
}
