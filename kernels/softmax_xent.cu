// softmax_xent.cu: fused softmax + cross-entropy, forward loss and backward gradient in one pass.
//
// For each row r of logits x (rows, C) with targets t (smoothed as Keras
// smooths them: t' = t * (1 - ls) + ls / C), with m = max_c x,
// s = sum_c exp(x_c - m), p_c = exp(x_c - m) * (1 / s), and Keras's clip of
// the probabilities to [eps, 1 - eps] (eps = 1e-7 for the loss of a softmax
// output, which Keras 3 computes from its probabilities: renormalised,
// clipped, logged; eps = 0 for a from_logits loss, which clips nothing),
// in_c = [eps <= p_c <= 1 - eps]:
//   loss[r]       = -sum_c t'_c * log clip(p_c)
//                   (log clip(p_c) = (x_c - m) - log s where in_c, else the log of the bound)
//   probs[r, c]   = p_c
//   dlogits[r, c] = (p_c * K - t'_c * in_c) * grad_scale * row_weights[r],  K = sum_c t'_c * in_c
// the chain rule through the clip (no gradient where it clips; torch's clamp
// passes it at the bounds themselves), Keras's renormalisation p / sum p
// (its backward adds one constant to d loss / d p, which the softmax's
// backward removes) and the softmax, matching gpu_dl/ops/softmax_xent.py.
// Unclipped, dlogits = p * sum t' - t' (p - t' for a smoothed one-hot row).
// The bounds are T values: 1 - 1e-7 rounds to 1 - 2**-23 in float, as in Keras.
//
// Kernels (T = float / double, suffix _f32 / _f64):
//   softmax_xent_sparse_[narrow_]{f32,f64}(x, labels int64 (rows,), loss, probs, dlogits,
//                                          row_weights, grad_scale, smoothing, epsilon, rows, C)
//   softmax_xent_dense_[narrow_]{f32,f64} (x, targets (rows, C),  loss, probs, dlogits,
//                                          row_weights, grad_scale, smoothing, epsilon, rows, C)
//   probs, dlogits and row_weights may be null (not written / all ones).
//   A sparse label outside [0, C) stands for an all-zero one-hot row, as in
//   the NumPy path; it is never used as an index.
//
// Passes over a row: 1. max, exp-sum, log s (and, with label smoothing,
// sum (x - m)); the unclipped loss follows from them as before the clip
// existed (dense targets: from sum t and sum t x, read before pass 1). An
// unsmoothed sparse row then needs only its label's p, one broadcast load:
// loss = -log clip(p_label), K = in_label. 2. Dense targets or smoothed
// labels, where eps > 0: the classes the clip stops are marked (one compare
// each against the bounds; bit masks over the register cache), and each
// stopped class with target weight reads its logit again for its exact
// log p: the loss gains sum t' (log p - log bound) over them and K loses
// their t'. A row the clip leaves alone costs the compares only. 3. probs
// and dlogits, one compare each for in_c. With eps = 0 the kernels do what
// they did before the clip (pass 2 skipped).
// Rounding: the dense and smoothed losses add the stopped classes' fix to
// the unclipped loss, so a class stopped at a logit gap G loses about
// ulp(G) against the NumPy path's per-class sum (float32: 4e-6 at G = 60).
//
// Launch geometry: one warp per row, ROWS_PER_BLOCK (4) warps per block of
// 128 threads, grid = ceil(rows / 4). Lane l holds x[l + 32 k] for
// k < CACHE in registers: the _f32/_f64 kernels cache 32 / 8 values per lane
// (rows of up to 1024 / 256 classes are read from memory once), the
// _narrow_ kernels 4 (C <= 128: a quarter of the registers, so four times the
// warps in flight for the many short rows of a small classifier). Classes
// beyond the cache are streamed twice: once for an online max and exp-sum,
// once to write the outputs (a third time in pass 2, where it runs).
// Reductions are warp shuffles only: no shared memory, no block barriers.
// Each row's label and weight are loaded first, so their latency overlaps
// the row's.
//
// Bytes per row (sparse, C <= cache): read 4C (x) + 8 (label) [+ 4 row
// weight], write 4 (loss) + 4C (dlogits) [+ 4C (probs)]: about 8C bytes for
// forward and backward together, against 16C for a separate softmax,
// loss and gradient. Dense targets add 4C read, twice (their second read
// mostly hits L2); a stopped class with target weight in pass 2 adds one
// read of its logit (and target), mostly L1/L2 hits. FLOPs per element: one
// exp, one multiply by 1 / s, one or two compares for the clip, ~6 others.
//
// Limits: rows * C < 2**31 (the launcher checks); C >= 1; 0 <= epsilon < 0.5;
// SXE_CACHE_F32 / SXE_CACHE_F64 at most 32 (pass 2's masks).
#include "common.cuh"

#define SXE_ROWS_PER_BLOCK 4
#define SXE_NARROW_CACHE 4
#define SXE_TAIL_CHUNK 4

// Values per lane kept in registers; -D options override them (benchmarks compare settings).
#ifndef SXE_CACHE_F32
#define SXE_CACHE_F32 32
#endif
#ifndef SXE_CACHE_F64
#define SXE_CACHE_F64 8
#endif
// Blocks per SM the register allocation of the wide float kernels must allow (__launch_bounds__'s
// second argument): 8 caps them at 64 registers without spills, and was faster at (4096, 1000) on
// an H100 (profiling/results). The double and narrow kernels keep the compiler's choice (1): capped,
// the double ones spill.
#ifndef SXE_MIN_BLOCKS_F32
#define SXE_MIN_BLOCKS_F32 8
#endif

// What pass 1 leaves per row (on every lane after the reductions).
template <typename T>
struct SxeRowStats {
    T max;           // m = max_c x_c
    T exp_sum;       // s = sum_c exp(x_c - m)
    T log_sum;       // log s: log p_c = (x_c - m) - log s
    T inv_sum;       // 1 / s: p_c = exp(x_c - m) * (1 / s), no division per class
    T shifted_sum;   // sum_c (x_c - m), needed only with label smoothing
};

// Keras's clip of the probabilities to [epsilon, 1 - epsilon], its bounds in T (1 - 1e-7 rounds to
// 1 - 2**-23 in float, as Keras's float32 bound does): which classes it passes (the bounds included,
// as torch's clamp passes the gradient there) and the log of the bound a stopped probability takes.
// epsilon = 0 clips nothing, whatever the rounding of p: the exact log-softmax of a from_logits loss.
template <typename T>
struct SxeClip {
    T low, high;
    bool on;
    __device__ __forceinline__ explicit SxeClip(T epsilon) : low(epsilon), high(T(1) - epsilon), on(epsilon > T(0)) {}
    __device__ __forceinline__ bool passes(T p) const { return !on || (p >= low && p <= high); }
    __device__ __forceinline__ T log_bound(T p) const { return dl_log(p < low ? low : high); }   // p stopped
};

// t'_c of a sparse row: the smoothed one-hot row of `label` (all `off` for a label outside [0, C)).
template <typename T>
struct SxeSparseTarget {
    long long label;
    T on, off;
    __device__ __forceinline__ T operator()(int c) const { return (c == label ? on : T(0)) + off; }
};

// t'_c of a dense row: the smoothed target row.
template <typename T>
struct SxeDenseTarget {
    const T* __restrict__ tr;
    T on, off;
    __device__ __forceinline__ T operator()(int c) const { return tr[c] * on + off; }
};

// Pass 1: cache the first 32*CACHE classes in registers and stream the rest
// with an online max and exp-sum (each lane rescales its partial sum when its
// maximum grows), then combine across the warp. Leaves exp(x - m) in `vals`.
template <typename T, int CACHE>
__device__ __forceinline__ SxeRowStats<T> sxe_row_stats(const T* __restrict__ xr, int C, int lane,
                                                        bool want_shifted_sum, T (&vals)[CACHE]) {
    T m = -dl_infinity<T>();
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        vals[k] = c < C ? xr[c] : -dl_infinity<T>();
        m = dl_max(m, vals[k]);
    }
    // The tail goes SXE_TAIL_CHUNK values per lane at a time: their loads are in flight together
    // and the running sum is rescaled once per chunk, not once per value (a chain of dependent
    // exps per value would bound the loop by latency, not bandwidth).
    T tail_max = -dl_infinity<T>(), tail_sum = T(0), tail_x = T(0);
    int tail_count = 0;
    for (int c0 = lane + 32 * CACHE; c0 < C; c0 += 32 * SXE_TAIL_CHUNK) {
        T chunk[SXE_TAIL_CHUNK];
        T chunk_max = -dl_infinity<T>();
#pragma unroll
        for (int j = 0; j < SXE_TAIL_CHUNK; ++j) {
            const int c = c0 + 32 * j;
            chunk[j] = c < C ? xr[c] : -dl_infinity<T>();
            chunk_max = dl_max(chunk_max, chunk[j]);
        }
        if (chunk_max > tail_max) {
            tail_sum = tail_sum * dl_exp(tail_max - chunk_max);   // exp(-inf) = 0 on the first chunk
            tail_max = chunk_max;
        }
#pragma unroll
        for (int j = 0; j < SXE_TAIL_CHUNK; ++j) {
            if (c0 + 32 * j < C) {
                tail_sum += dl_exp(chunk[j] - tail_max);
                tail_x += chunk[j];
                ++tail_count;
            }
        }
    }
    SxeRowStats<T> stats;
    stats.max = warp_max(dl_max(m, tail_max));
    T s = tail_count > 0 ? tail_sum * dl_exp(tail_max - stats.max) : T(0);
    T shifted = want_shifted_sum && tail_count > 0 ? tail_x - T(tail_count) * stats.max : T(0);
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T d = vals[k] - stats.max;
            shifted += d;
            vals[k] = dl_exp(d);
            s += vals[k];
        }
    }
    stats.exp_sum = warp_sum(s);
    stats.log_sum = dl_log(stats.exp_sum);
    stats.inv_sum = T(1) / stats.exp_sum;
    stats.shifted_sum = want_shifted_sum ? warp_sum(shifted) : T(0);
    return stats;
}

// The target weight of a class the clip stops, added to `below` or `above` (the bound it is stopped at)
// and, times the class's exact log p = (x - m) - log s, to `log_p`.
template <typename T, typename Target>
__device__ __forceinline__ void sxe_add_stopped(const T* __restrict__ xr, int c, bool is_below,
                                                const SxeRowStats<T>& st, const Target& target,
                                                T& below, T& above, T& log_p) {
    const T t = target(c);
    if (t == T(0)) return;
    if (is_below) below += t;
    else above += t;
    log_p += t * ((xr[c] - st.max) - st.log_sum);
}

// Pass 2, where the clip is on and any class may carry target weight (dense targets, smoothed labels):
// over the classes the clip stops, cut = sum_c t'_c and fix = sum_c t'_c (log p_c - log bound_c), on
// every lane after the reductions. The loss is then the unclipped loss plus fix, K = sum t' - cut.
// Over the register cache it only marks the stopped classes (a compare each, one bit of a mask per
// bound: few registers beside the cache); a stopped class's logit is then read again (an L1/L2 hit)
// for its exact log p. A row the clip leaves alone costs the compares. The bounds' logs are taken
// once per row.
template <typename T, int CACHE, typename Target>
__device__ __forceinline__ void sxe_clipped_classes(const T* __restrict__ xr, int C, int lane,
                                                    const SxeRowStats<T>& st, const SxeClip<T>& clip,
                                                    const Target& target, const T (&vals)[CACHE], T& cut, T& fix) {
    static_assert(CACHE <= 32, "pass 2 marks the cached classes in 32-bit masks");
    unsigned low_mask = 0u, high_mask = 0u;
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const T p = vals[k] * st.inv_sum;
        if (lane + 32 * k < C) {
            if (p < clip.low) low_mask |= 1u << k;
            if (p > clip.high) high_mask |= 1u << k;
        }
    }
    T below = T(0), above = T(0), log_p = T(0);
#pragma unroll 1
    for (int c = lane; (low_mask | high_mask) != 0u; c += 32, low_mask >>= 1, high_mask >>= 1) {
        if ((low_mask | high_mask) & 1u) sxe_add_stopped(xr, c, (low_mask & 1u) != 0u, st, target, below, above, log_p);
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T p = dl_exp(xr[c] - st.max) * st.inv_sum;
        if (!clip.passes(p)) sxe_add_stopped(xr, c, p < clip.low, st, target, below, above, log_p);
    }
    below = warp_sum(below);
    above = warp_sum(above);
    cut = below + above;
    fix = warp_sum(log_p) - (below != T(0) ? below * dl_log(clip.low) : T(0))
          - (above != T(0) ? above * dl_log(clip.high) : T(0));
}

// Pass 3: probs and dlogits = (p * K - t' [the clip passes p]) * scale.
template <typename T, int CACHE, typename Target>
__device__ __forceinline__ void sxe_write(const T* __restrict__ xr, int C, int lane, const SxeRowStats<T>& st,
                                          const SxeClip<T>& clip, const Target& target, const T (&vals)[CACHE],
                                          T kept, T scale, T* __restrict__ pr, T* __restrict__ dr) {
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T p = vals[k] * st.inv_sum;
            if (pr) pr[c] = p;
            if (dr) dr[c] = (p * kept - (clip.passes(p) ? target(c) : T(0))) * scale;
        }
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T p = dl_exp(xr[c] - st.max) * st.inv_sum;
        if (pr) pr[c] = p;
        if (dr) dr[c] = (p * kept - (clip.passes(p) ? target(c) : T(0))) * scale;
    }
}

template <typename T, int CACHE>
__device__ void softmax_xent_sparse(const T* __restrict__ x, const long long* __restrict__ labels,
                                    T* __restrict__ loss, T* __restrict__ probs, T* __restrict__ dlogits,
                                    const T* __restrict__ row_weights, T grad_scale, T smoothing, T epsilon,
                                    int rows, int C) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * SXE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= rows) return;   // whole warps leave together: the shuffles below stay full-warp
    const long long label = labels[row];
    const T scale = row_weights != nullptr ? grad_scale * row_weights[row] : grad_scale;
    const size_t base = (size_t)row * C;
    const T* xr = x + base;
    const SxeClip<T> clip(epsilon);

    T vals[CACHE];
    const SxeRowStats<T> st = sxe_row_stats<T, CACHE>(xr, C, lane, smoothing != T(0), vals);

    const bool valid = label >= 0 && label < C;
    const SxeSparseTarget<T> target{valid ? label : -1, T(1) - smoothing, smoothing / T(C)};
    // The label's class, on every lane from one broadcast load: its exact log p and whether the clip
    // passes its p (computed as pass 3 computes it, so both see the same side of the clip).
    T label_log_p = T(0), label_kept = T(0);
    if (valid) {
        const T d = xr[label] - st.max;
        const T p = dl_exp(d) * st.inv_sum;
        label_log_p = d - st.log_sum;
        if (clip.passes(p)) label_kept = target.on;
        else label_log_p = clip.log_bound(p);   // log clip(p)
    }
    T kept, value;
    if (smoothing == T(0)) {
        kept = label_kept;
        value = -label_log_p;
    } else {
        // sum t' (x - m) and sum t' of the smoothed one-hot row, the label's part set aside: the clip of
        // the other classes is pass 2's, the label's (whose log is already the clipped one) is above.
        const T others_dot = target.off * st.shifted_sum;
        const T off_sum = smoothing;
        T cut = T(0), fix = T(0);
        if (clip.on) {
            const SxeSparseTarget<T> off_target{-1, T(0), target.off};
            sxe_clipped_classes<T, CACHE>(xr, C, lane, st, clip, off_target, vals, cut, fix);
        }
        kept = label_kept + off_sum - cut;
        value = off_sum * st.log_sum - others_dot + fix - target.on * label_log_p;
    }
    if (lane == 0) loss[row] = value;
    if (probs == nullptr && dlogits == nullptr) return;
    sxe_write<T, CACHE>(xr, C, lane, st, clip, target, vals, kept, scale,
                        probs != nullptr ? probs + base : nullptr, dlogits != nullptr ? dlogits + base : nullptr);
}

template <typename T, int CACHE>
__device__ void softmax_xent_dense(const T* __restrict__ x, const T* __restrict__ targets,
                                   T* __restrict__ loss, T* __restrict__ probs, T* __restrict__ dlogits,
                                   const T* __restrict__ row_weights, T grad_scale, T smoothing, T epsilon,
                                   int rows, int C) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * SXE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= rows) return;
    const T scale = row_weights != nullptr ? grad_scale * row_weights[row] : grad_scale;
    const size_t base = (size_t)row * C;
    const T* xr = x + base;
    const T* tr = targets + base;
    const SxeClip<T> clip(epsilon);

    // sum t and sum t x of the unsmoothed targets; sum t (x - m) = sum t x - m sum t once m is known.
    T t_sum = T(0), t_x = T(0);
    for (int c = lane; c < C; c += 32) {
        const T t = tr[c];
        t_sum += t;
        t_x += t * xr[c];
    }
    T vals[CACHE];
    const SxeRowStats<T> st = sxe_row_stats<T, CACHE>(xr, C, lane, smoothing != T(0), vals);
    t_sum = warp_sum(t_sum);
    const T t_dot = warp_sum(t_x) - st.max * t_sum;

    const SxeDenseTarget<T> target{tr, T(1) - smoothing, smoothing / T(C)};
    const T target_sum = target.on * t_sum + smoothing;
    // The unclipped loss, then pass 2's correction for the classes the clip stops.
    T cut = T(0), fix = T(0);
    if (clip.on) sxe_clipped_classes<T, CACHE>(xr, C, lane, st, clip, target, vals, cut, fix);
    if (lane == 0) loss[row] = target_sum * st.log_sum - (target.on * t_dot + target.off * st.shifted_sum) + fix;
    if (probs == nullptr && dlogits == nullptr) return;
    sxe_write<T, CACHE>(xr, C, lane, st, clip, target, vals, target_sum - cut, scale,
                        probs != nullptr ? probs + base : nullptr, dlogits != nullptr ? dlogits + base : nullptr);
}

#define SXE_KERNELS(T, NAME, CACHE, MIN_BLOCKS)                                                                        \
    extern "C" __global__ void __launch_bounds__(32 * SXE_ROWS_PER_BLOCK, MIN_BLOCKS)                                  \
    softmax_xent_sparse_##NAME(const T* x, const long long* labels, T* loss, T* probs, T* dlogits,                     \
                               const T* row_weights, T grad_scale, T smoothing, T epsilon, int rows, int C) {          \
        softmax_xent_sparse<T, CACHE>(x, labels, loss, probs, dlogits, row_weights, grad_scale, smoothing,             \
                                      epsilon, rows, C);                                                               \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(32 * SXE_ROWS_PER_BLOCK, MIN_BLOCKS)                                  \
    softmax_xent_dense_##NAME(const T* x, const T* targets, T* loss, T* probs, T* dlogits,                             \
                              const T* row_weights, T grad_scale, T smoothing, T epsilon, int rows, int C) {           \
        softmax_xent_dense<T, CACHE>(x, targets, loss, probs, dlogits, row_weights, grad_scale, smoothing,             \
                                     epsilon, rows, C);                                                                \
    }

SXE_KERNELS(float, f32, SXE_CACHE_F32, SXE_MIN_BLOCKS_F32)
SXE_KERNELS(double, f64, SXE_CACHE_F64, 1)
SXE_KERNELS(float, narrow_f32, SXE_NARROW_CACHE, 1)
SXE_KERNELS(double, narrow_f64, SXE_NARROW_CACHE, 1)
