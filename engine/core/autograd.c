/* autograd.c: define-by-run reverse mode. Each op that needs a gradient records a node on its
 * output; a node holds edges to the nodes (or leaves) of its inputs and the few tensors its
 * backward needs. backward() counts dependencies over the reachable graph, runs nodes once all
 * their consumers have contributed, and frees each node's saved tensors right after it ran. */
#include "core/backend.h"
#include <stdlib.h>


static _Thread_local int grad_disabled; /* 0: grad mode on */
static int numeric_guard;
static uint64_t epoch_counter;

int craft_grad_enabled(void) { return !grad_disabled; }
int craft_set_grad_enabled(int flag) {
    int prev = !grad_disabled;
    grad_disabled = !flag;
    return prev;
}
void craft_set_numeric_guard(int on) { numeric_guard = on; }
int craft_numeric_guard(void) { return numeric_guard; }

int craft_set_requires_grad(craft_tensor *t, int flag) {
    if (!t) return craft_fail(CRAFT_EINVAL, "set_requires_grad: the input tensor is NULL");
    if (t->node && !flag)
        return craft_fail(CRAFT_EGRAD, "requires_grad: %s is the output of %s; detach() it instead",
                          craft_shape_str(t), t->node->name);
    if (flag && t->dtype != CRAFT_F32 && t->dtype != CRAFT_F64)
        return craft_fail(CRAFT_ETYPE, "requires_grad: only float tensors can require gradients, not %s",
                          craft_shape_str(t));
    t->requires_grad = flag ? 1 : 0;
    return CRAFT_OK;
}

const char *craft_grad_fn_name(const craft_tensor *t) { return t && t->node ? t->node->name : ""; }

int craft_zero_grad(craft_tensor *t) {
    if (!t) return craft_fail(CRAFT_EINVAL, "zero_grad: the input tensor is NULL");
    craft_tensor_release(t->grad);
    t->grad = NULL;
    return CRAFT_OK;
}

int craft_set_grad(craft_tensor *t, craft_tensor *g) {
    if (!t) return craft_fail(CRAFT_EINVAL, "set_grad: the input tensor is NULL");
    if (g && (g->ndim != t->ndim || g->numel != t->numel))
        return craft_fail(CRAFT_ESHAPE, "set_grad: gradient %s does not match tensor %s", craft_shape_str(g),
                          craft_shape_str(t));
    craft_tensor_retain(g);
    craft_tensor_release(t->grad);
    t->grad = g;
    return CRAFT_OK;
}

static void node_free_saved(craft_node *n) {
    for (int i = 0; i < n->n_saved; i++) {
        craft_tensor_release(n->saved[i]);
        n->saved[i] = NULL;
    }
    n->n_saved = 0;
    if (n->ctx_free && n->ctx) n->ctx_free(n->ctx);
    n->ctx = NULL;
}

void craft_node_release(craft_node *n) {
    if (!n || --n->refcount > 0) return;
    node_free_saved(n);
    for (int i = 0; i < n->n_in; i++) {
        if (n->edges[i].node) craft_node_release(n->edges[i].node);
        craft_tensor_release(n->edges[i].leaf);
    }
    if (n->grads) {
        for (int i = 0; i < n->n_out; i++) craft_tensor_release(n->grads[i]);
        free(n->grads);
    }
    free(n->edges);
    free(n);
}

craft_node *craft_node_new(const char *name, int n_in, const craft_tensor *const *inputs, int n_out,
                           craft_backward_kernel backward, int *err) {
    *err = CRAFT_OK;
    if (grad_disabled) return NULL;
    int need = 0;
    for (int i = 0; i < n_in; i++)
        if (inputs[i] && inputs[i]->requires_grad) need = 1;
    if (!need) return NULL;
    craft_node *n = calloc(1, sizeof *n);
    craft_edge *e = calloc((size_t)(n_in ? n_in : 1), sizeof *e);
    if (!n || !e) {
        free(n);
        free(e);
        *err = craft_fail(CRAFT_ENOMEM, "%s: out of host memory for the autograd graph", name);
        return NULL;
    }
    n->refcount = 1;
    n->name = name;
    n->n_in = n_in;
    n->n_out = n_out;
    n->edges = e;
    n->backward = backward;
    for (int i = 0; i < n_in; i++) {
        const craft_tensor *t = inputs[i];
        if (!t) continue;
        e[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e[i].shape[d] = t->shape[d];
        if (!t->requires_grad) continue;
        if (t->node) {
            e[i].node = t->node;
            t->node->refcount++;
            e[i].index = t->out_index;
        } else {
            e[i].leaf = craft_tensor_retain((craft_tensor *)t);
        }
    }
    return n;
}

int craft_node_save(craft_node *n, const craft_tensor *t) {
    if (n->n_saved >= CRAFT_MAX_SAVED) return -1;
    craft_tensor *a = craft_alias(t);
    if (!a) return -1;
    n->saved_version[n->n_saved] = t->storage->version;
    n->saved[n->n_saved] = a;
    return n->n_saved++;
}

void craft_node_attach(craft_node *n, craft_tensor *out, int index) {
    if (out->node) craft_node_release(out->node);
    out->node = n;
    n->refcount++;
    out->out_index = index;
    out->requires_grad = 1;
    n->device = out->device;
    if (index < 4) {
        n->out_ndim[index] = out->ndim;
        for (int d = 0; d < out->ndim; d++) n->out_shape[index][d] = out->shape[d];
    }
}

int craft_record(const char *name, int n_in, const craft_tensor *const *inputs, craft_tensor *out,
                 craft_backward_kernel backward, int n_save, const craft_tensor *const *save,
                 const double *sargs, int n_sargs, const int64_t *iargs, int n_iargs, craft_node **node_out) {
    int err;
    if (node_out) *node_out = NULL;
    CRAFT_TRY(craft_guard_check(name, "output", out));
    craft_node *n = craft_node_new(name, n_in, inputs, 1, backward, &err);
    if (!n) return err;
    for (int i = 0; i < n_save; i++) {
        if (save[i] && craft_node_save(n, save[i]) < 0) {
            craft_node_release(n);
            return craft_fail(CRAFT_ENOMEM, "%s: cannot save tensors for backward", name);
        }
        if (!save[i]) n->saved[n->n_saved++] = NULL;
    }
    for (int i = 0; i < n_sargs && i < 8; i++) n->sarg[i] = sargs[i];
    for (int i = 0; i < n_iargs && i < 24; i++) n->iarg[i] = iargs[i];
    craft_node_attach(n, out, 0);
    if (node_out) *node_out = n;
    craft_node_release(n); /* out holds it now */
    return CRAFT_OK;
}

/* ---- numeric guard ---- */
int craft_guard_check(const char *op, const char *what, const craft_tensor *t) {
    if (!numeric_guard || !t || t->dtype != CRAFT_F32) return CRAFT_OK;
    craft_tensor *c;
    if (t->device == CRAFT_DEVICE_CPU) CRAFT_TRY(craft_contig_f32(t, &c));
    else { /* read back, then scan */
        if (!(c = craft_new_tensor(t->ndim, t->shape, CRAFT_F32, CRAFT_DEVICE_CPU)))
            return craft_last_status();
        int rc = craft_copy_(c, t);
        if (rc) {
            craft_tensor_release(c);
            return rc;
        }
    }
    const float *p = craft_tensor_data(c);
    int64_t bad = -1;
    for (int64_t i = 0; i < c->numel; i++)
        if (!__builtin_isfinite(p[i])) {
            bad = i;
            break;
        }
    float v = bad >= 0 ? p[bad] : 0;
    craft_tensor_release(c);
    if (bad >= 0 && t->device != CRAFT_DEVICE_CPU)
        return craft_fail(CRAFT_ENUMERIC, "numeric guard: %s produced %s in its %s %s on %s (element %lld)",
                          op, v != v ? "NaN" : "Inf", what, craft_shape_str(t), craft_device_str(t->device),
                          (long long)bad);
    if (bad >= 0)
        return craft_fail(CRAFT_ENUMERIC, "numeric guard: %s produced %s in its %s %s (element %lld)", op,
                          v != v ? "NaN" : "Inf", what, craft_shape_str(t), (long long)bad);
    return CRAFT_OK;
}

/* ---- custom nodes ---- */
typedef struct custom_ctx {
    void *ud;
    void (*ud_free)(void *);
} custom_ctx;
static void custom_ctx_free(void *p) {
    custom_ctx *c = p;
    if (c->ud_free) c->ud_free(c->ud);
    free(c);
}

int craft_custom_attach(const char *name, int n_in, craft_tensor **inputs, int n_out, craft_tensor **outputs,
                        craft_custom_backward_fn backward, void *ud, void (*ud_free)(void *)) {
    if (!backward) return craft_fail(CRAFT_EINVAL, "custom op %s: no backward function", name ? name : "?");
    if (n_out < 1 || n_out > 4)
        return craft_fail(CRAFT_EINVAL, "custom op %s: %d outputs (1 to 4 supported)", name, n_out);
    int err;
    /* the node must exist even when grad mode is off (checkpoint runs its forward without grad) */
    int saved_mode = grad_disabled;
    grad_disabled = 0;
    craft_node *n =
        craft_node_new(name ? name : "custom", n_in, (const craft_tensor *const *)inputs, n_out, NULL, &err);
    grad_disabled = saved_mode;
    if (!n) {
        if (err) return err;
        if (ud_free) ud_free(ud);
        return CRAFT_OK; /* no input requires grad: nothing to record */
    }
    custom_ctx *c = malloc(sizeof *c);
    if (!c) {
        craft_node_release(n);
        return craft_fail(CRAFT_ENOMEM, "custom op: out of memory");
    }
    c->ud = ud;
    c->ud_free = ud_free;
    n->ctx = c;
    n->ctx_free = custom_ctx_free;
    n->custom = backward;
    for (int i = 0; i < n_out; i++) {
        if (outputs[i]->node) {
            craft_node_release(n);
            return craft_fail(CRAFT_EGRAD,
                              "custom op %s: output %d already has a graph (compute outputs with grad off)",
                              name, i);
        }
    }
    for (int i = 0; i < n_out; i++) craft_node_attach(n, outputs[i], i);
    craft_node_release(n);
    return CRAFT_OK;
}

/* ---- the backward pass ---- */
static int accumulate(craft_tensor **slot, craft_tensor *g) {
    if (!*slot) {
        *slot = craft_tensor_retain(g);
        return CRAFT_OK;
    }
    craft_tensor *sum;
    CRAFT_TRY(craft_binary(CRAFT_ADD, *slot, g, &sum));
    craft_tensor_release(*slot);
    *slot = sum;
    return CRAFT_OK;
}

static int accumulate_leaf(craft_tensor *leaf, craft_tensor *g) {
    if (g->ndim != leaf->ndim || g->numel != leaf->numel)
        return craft_fail(CRAFT_ESHAPE, "backward: gradient %s for leaf %s (internal shape error)",
                          craft_shape_str(g), craft_shape_str(leaf));
    if (!leaf->grad) {
        /* own a private contiguous copy: g may alias other buffers */
        craft_tensor *c = craft_new_tensor(leaf->ndim, leaf->shape, CRAFT_F32, leaf->device);
        if (!c) return craft_last_status();
        int rc = craft_copy_(c, g);
        if (rc) {
            craft_tensor_release(c);
            return rc;
        }
        leaf->grad = c;
        return CRAFT_OK;
    }
    return craft_axpy_(leaf->grad, 1.0, g);
}

typedef struct {
    craft_node **items;
    int n, cap;
} node_stack;
static int push(node_stack *s, craft_node *n) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        craft_node **ni = realloc(s->items, (size_t)nc * sizeof *ni);
        if (!ni) return craft_fail(CRAFT_ENOMEM, "backward: out of memory");
        s->items = ni;
        s->cap = nc;
    }
    s->items[s->n++] = n;
    return CRAFT_OK;
}

static int run_node(craft_node *n, int retain_graph) {
    if (n->freed)
        return craft_fail(
            CRAFT_EGRAD,
            "backward through %s a second time: its saved tensors were freed (pass retain_graph)", n->name);
    for (int i = 0; i < n->n_saved; i++)
        if (n->saved[i] && n->saved[i]->storage->version != n->saved_version[i])
            return craft_fail(
                CRAFT_EGRAD, "backward of %s: a tensor it saved (%s) was modified in place after the forward",
                n->name, craft_shape_str(n->saved[i]));
    craft_tensor *gin_stack[8];
    craft_tensor **gin = n->n_in <= 8 ? gin_stack : calloc((size_t)n->n_in, sizeof *gin);
    if (!gin) return craft_fail(CRAFT_ENOMEM, "backward: out of memory");
    for (int i = 0; i < n->n_in; i++) gin[i] = NULL;
    int rc = CRAFT_OK;
    double t0 = craft_prof_enter();
    if (n->custom) {
        custom_ctx *c = n->ctx;
        rc = n->custom(c->ud, n->n_out, n->grads, n->n_in, gin);
        if (rc) rc = craft_fail_prefix(rc, "backward of custom op %s", n->name);
    } else {
        for (int i = 0; i < n->n_out && !rc; i++)
            if (!n->grads[i])
                rc = craft_zeros(n->out_ndim[i], n->out_shape[i], CRAFT_F32, n->device, &n->grads[i]);
        if (!rc) rc = n->backward(n, n->grads, gin);
    }
    craft_prof_leave(n->name ? n->name : "?", t0);
    for (int i = 0; i < n->n_in && !rc; i++) {
        craft_tensor *g = gin[i];
        if (!g) continue;
        craft_edge *e = &n->edges[i];
        if (g->ndim != e->ndim || g->numel != craft_numel_of(e->ndim, e->shape)) {
            rc = craft_fail(CRAFT_ESHAPE, "backward of %s: gradient %s for input %d of shape %s", n->name,
                            craft_shape_str(g), i, craft_dims_str(e->ndim, e->shape));
            break;
        }
        rc = craft_guard_check(n->name, "input gradient", g);
        if (rc) {
            craft_fail_prefix(rc, "backward");
            break;
        }
        if (e->leaf) rc = accumulate_leaf(e->leaf, g);
        else if (e->node) rc = accumulate(&e->node->grads[e->index], g);
    }
    for (int i = 0; i < n->n_in; i++) craft_tensor_release(gin[i]);
    if (gin != gin_stack) free(gin);
    for (int i = 0; i < n->n_out; i++) {
        craft_tensor_release(n->grads[i]);
        n->grads[i] = NULL;
    }
    if (!retain_graph) {
        node_free_saved(n);
        n->freed = 1;
    }
    return rc;
}

int craft_backward_multi(int nroots, craft_tensor **roots, craft_tensor **grads, int retain_graph) {
    /* a caller's gradient must be f32 with the root's shape (the kernels read it as float: a
     * fuzzed u8 view was read misaligned before this check); a CPU gradient of a device root is
     * fine, the engine moves it */
    for (int r = 0; r < nroots; r++) {
        const craft_tensor *t = roots[r], *g = grads ? grads[r] : NULL;
        if (!t) return craft_fail(CRAFT_EINVAL, "backward: root %d of %d is missing", r, nroots);
        if (!g)
            return craft_fail(CRAFT_EINVAL, "backward: no gradient for root %d %s", r, craft_shape_str(t));
        int same = g->ndim == t->ndim;
        for (int i = 0; same && i < t->ndim; i++) same = g->shape[i] == t->shape[i];
        if (!same)
            return craft_fail(CRAFT_ESHAPE, "backward: gradient %s does not match output %s",
                              craft_shape_str(g), craft_shape_str(t));
        if (g->dtype != CRAFT_F32)
            return craft_fail(CRAFT_ETYPE, "backward: the gradient must be float32, not %s",
                              craft_dtype_name(g->dtype));
    }
    uint64_t epoch = __atomic_add_fetch(&epoch_counter, 1, __ATOMIC_RELAXED);
    node_stack all = {0}, ready = {0};
    int rc = CRAFT_OK;
    /* 1. discover the graph, count consumers of each node */
    for (int r = 0; r < nroots && !rc; r++) {
        craft_tensor *t = roots[r];
        if (!t->node) {
            if (t->requires_grad) {
                rc = accumulate_leaf(t, grads[r]);
                continue;
            }
            rc = craft_fail(
                CRAFT_EGRAD,
                "backward: %s does not require grad and has no graph (did an input have requires_grad set, outside no_grad?)",
                craft_shape_str(t));
            break;
        }
        if (t->node->epoch == epoch) continue;
        t->node->epoch = epoch;
        t->node->deps = 0;
        rc = push(&all, t->node);
    }
    for (int i = 0; i < all.n && !rc; i++) {
        craft_node *n = all.items[i];
        if (!n->grads) {
            n->grads = calloc((size_t)n->n_out, sizeof *n->grads);
            if (!n->grads) {
                rc = craft_fail(CRAFT_ENOMEM, "backward: out of memory");
                break;
            }
        }
        for (int k = 0; k < n->n_in; k++) {
            craft_node *m = n->edges[k].node;
            if (!m) continue;
            if (m->epoch != epoch) {
                m->epoch = epoch;
                m->deps = 0;
                rc = push(&all, m);
                if (rc) break;
            }
            m->deps++;
        }
    }
    /* 2. seed the roots' gradients */
    for (int r = 0; r < nroots && !rc; r++) {
        craft_tensor *t = roots[r];
        if (!t->node) continue;
        rc = accumulate(&t->node->grads[t->out_index], grads[r]);
    }
    for (int i = 0; i < all.n && !rc; i++)
        if (all.items[i]->deps == 0) rc = push(&ready, all.items[i]);
    /* 3. run in dependency order */
    int saved_mode = craft_set_grad_enabled(0);
    craft_precision_suppress(1); /* gradients are computed in fp32 whatever the setting */
    while (!rc && ready.n > 0) {
        craft_node *n = ready.items[--ready.n];
        rc = run_node(n, retain_graph);
        for (int k = 0; k < n->n_in && !rc; k++) {
            craft_node *m = n->edges[k].node;
            if (m && --m->deps == 0) rc = push(&ready, m);
        }
    }
    craft_precision_suppress(0);
    craft_set_grad_enabled(saved_mode);
    /* on failure, drop partial gradients so that nothing half-accumulated is kept */
    for (int i = 0; i < all.n; i++) {
        craft_node *n = all.items[i];
        if (n->grads)
            for (int k = 0; k < n->n_out; k++) {
                craft_tensor_release(n->grads[k]);
                n->grads[k] = NULL;
            }
    }
    free(all.items);
    free(ready.items);
    return rc;
}

int craft_backward(craft_tensor *t, const craft_tensor *grad, int retain_graph) {
    if (!t) return craft_fail(CRAFT_EINVAL, "backward: the input tensor is NULL");
    craft_tensor *g = (craft_tensor *)grad;
    int own = 0;
    if (!g) {
        if (t->numel != 1)
            return craft_fail(CRAFT_EGRAD,
                              "backward: output %s is not a scalar; pass a gradient of its shape",
                              craft_shape_str(t));
        CRAFT_TRY(craft_full(t->ndim, t->shape, CRAFT_F32, 1.0, &g));
        own = 1;
    } else if (g->ndim != t->ndim || g->numel != t->numel) {
        return craft_fail(CRAFT_ESHAPE, "backward: gradient %s does not match output %s", craft_shape_str(g),
                          craft_shape_str(t));
    }
    int rc = craft_backward_multi(1, &t, &g, retain_graph);
    if (own) craft_tensor_release(g);
    return rc;
}

int craft_sum_to_shape(const craft_tensor *g, int ndim, const int64_t *shape, craft_tensor **out) {
    int dims[CRAFT_MAX_DIMS], nd = 0;
    int off = g->ndim - ndim;
    if (off < 0)
        return craft_fail(CRAFT_ESHAPE, "sum_to_shape: %s to %s", craft_shape_str(g),
                          craft_dims_str(ndim, shape));
    for (int i = 0; i < g->ndim; i++) {
        int j = i - off;
        if (j < 0 || (shape[j] == 1 && g->shape[i] != 1)) dims[nd++] = i;
    }
    if (nd == 0) {
        if (g->ndim == ndim) {
            *out = craft_tensor_retain((craft_tensor *)g);
            return CRAFT_OK;
        }
        return craft_reshape(g, ndim, shape, out);
    }
    craft_tensor *s;
    CRAFT_TRY(craft_sum(g, nd, dims, 1, &s));
    int rc = craft_reshape(s, ndim, shape, out);
    craft_tensor_release(s);
    return rc;
}

/* ---- freed custom-node ids for bindings ---- */
static int64_t *freed_ids;
static int n_freed, cap_freed;

void craft_custom_note_freed(void *ud) {
    if (n_freed == cap_freed) {
        int nc = cap_freed ? cap_freed * 2 : 64;
        int64_t *ni = realloc(freed_ids, (size_t)nc * sizeof *ni);
        if (!ni) return; /* the binding keeps a little state longer; nothing breaks */
        freed_ids = ni;
        cap_freed = nc;
    }
    freed_ids[n_freed++] = (int64_t)(intptr_t)ud;
}

int craft_custom_take_freed(int64_t *ids, int max) {
    int n = n_freed < max ? n_freed : max;
    for (int i = 0; i < n; i++) ids[i] = freed_ids[n_freed - 1 - i];
    n_freed -= n;
    return n;
}

int craft_set_error(int code, const char *message) {
    return craft_fail(code ? code : CRAFT_EINVAL, "%s", message ? message : "(no message)");
}
