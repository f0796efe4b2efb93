/* optim.cl: optimiser steps in place on strided f32 tensors, step for step the float32
 * arithmetic of engine/cpu/cpu_optim.c (constants computed on the host the same way), so that with
 * correctly rounded division and sqrt the device gives the CPU's bits. */

/* operands: param, grad, m, v */
__kernel void adamw(GEO_ARGS, const long n, __global float *p, __global const float *gr, __global float *m,
                    __global float *v, const float decay, const float b1, const float omb1, const float b2,
                    const float omb2, const float bc2_sqrt, const float eps, const float neg_step) {
    FOR_EACH(i, n) {
        long o[4];
        geom_offsets(GEO(craft_geom), i, o, 4);
        float gv = gr[o[1]];
        float pv = p[o[0]] * decay;
        float mv = m[o[2]] * b1 + omb1 * gv;
        float vv = v[o[3]] * b2 + omb2 * gv * gv;
        float denom = sqrt(vv) / bc2_sqrt + eps;
        p[o[0]] = pv + neg_step * (mv / denom);
        m[o[2]] = mv;
        v[o[3]] = vv;
    }
}

/* operands: param, grad, momentum buffer (ignored unless has_buf) */
__kernel void sgd(GEO_ARGS, const long n, __global float *p, __global const float *gr, __global float *buf,
                  const float neg_lr, const float mom, const float wd, const int nesterov, const int has_buf) {
    FOR_EACH(i, n) {
        long o[3];
        geom_offsets(GEO(craft_geom), i, o, 3);
        float d = gr[o[1]];
        if (wd != 0) d = d + wd * p[o[0]];
        if (has_buf) {
            float bv = buf[o[2]] * mom + d;
            buf[o[2]] = bv;
            d = nesterov ? d + mom * bv : bv;
        }
        p[o[0]] = p[o[0]] + neg_lr * d;
    }
}

/* operands: ema, param */
__kernel void ema(GEO_ARGS, const long n, __global float *e, __global const float *p, const float d,
                  const float omd) {
    FOR_EACH(i, n) {
        long o[2];
        geom_offsets(GEO(craft_geom), i, o, 2);
        e[o[0]] = d * e[o[0]] + omd * p[o[1]];
    }
}

/* clip_grad_norm (engine/cl/cl_train.c): out[0] = the total norm of the per-tensor sums of
 * squares parts[0..n), added in list order; out[1] = max_norm / (total + 1e-6) when that clips
 * (< 1) and the total is finite, else 1. One work-item: n is the number of tensors. */
__kernel void clip_coef(__global const float *parts, const long poff, const long n, const float max_norm,
                        __global float *out, const long ooff) {
    if (get_global_id(0) != 0) return;
    acc_t ss = 0;
    for (long i = 0; i < n; i++) ss += (acc_t)parts[poff + i];
    acc_t total = sqrt(ss), coef = (acc_t)max_norm / (total + (acc_t)1e-6);
    out[ooff] = (float)total;
    out[ooff + 1] = isfinite(total) && coef < 1 ? (float)coef : 1.0f;
}

/* d *= coef[coff] (x 1 is exact, so tensors that need no clipping keep their bits) */
__kernel void clip_apply(GEO_ARGS, const long n, __global float *d, __global const float *coef, const long coff) {
    const float c = coef[coff];
    FOR_EACH(i, n) { long o[1]; geom_offsets(GEO(craft_geom), i, o, 1); d[o[0]] *= c; }
}
