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
// Passes over a row: 1. max, exp-sum, 1 / s and log s. Then K and the loss:
// an unsmoothed sparse row needs only its label's p, one broadcast load
// (loss = -log clip(p_label), K = in_label); dense targets and smoothed
// labels take pass 2, which marks the classes the clip stops (a compare
// each against the bounds, bit masks over the register cache), then reads
// each class's t' and logit once and sums
//   K = sum_in t',  loss = K log s - sum_in t' (x - m) - below log(eps) - above log(1 - eps)
// (below / above: the t' stopped at each bound; every term of one sign, so
// no cancellation however far apart the logits are). 3. probs and dlogits,
// one compare each for in_c. With eps = 0 nothing is stopped and the
// compares are skipped: the exact log-softmax of a from_logits loss.
//
// Launch geometry: one warp per row, ROWS_PER_BLOCK (4) warps per block of
// 128 threads, grid = ceil(rows / 4). Lane l holds x[l + 32 k] for
// k < CACHE in registers: the _f32/_f64 kernels cache 32 / 8 values per lane
// (rows of up to 1024 / 256 classes are read from memory once), the
// _narrow_ kernels 4 (C <= 128: a quarter of the registers, so four times the
// warps in flight for the many short rows of a small classifier). Classes
// beyond the cache are streamed twice: once for an online max and exp-sum,
// once to write the outputs (and once more in pass 2, where it runs).
// Reductions are warp shuffles only: no shared memory, no block barriers.
// Each row's label and weight are loaded first, so their latency overlaps
// the row's.
//
// Bytes per row (sparse, unsmoothed, C <= cache): read 4C (x) + 8 (label)
// [+ 4 row weight], write 4 (loss) + 4C (dlogits) [+ 4C (probs)]: about 8C
// bytes for forward and backward together, against 16C for a separate
// softmax, loss and gradient. Dense targets add 4C read, twice (passes 2 and
// 3; the second mostly hits L2), and pass 2's second read of x (mostly L1/L2
// hits), as does a smoothed sparse row's pass 2. FLOPs per element: one exp,
// one multiply by 1 / s, one or two compares for the clip, ~6 others.
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
    T max;       // m = max_c x_c
    T inv_sum;   // 1 / s, s = sum_c exp(x_c - m): p_c = exp(x_c - m) * (1 / s), no division per class
    T log_sum;   // log s: log p_c = (x_c - m) - log s
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
                                                        T (&vals)[CACHE]) {
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
    T tail_max = -dl_infinity<T>(), tail_sum = T(0);
    bool tail = false;
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
            if (c0 + 32 * j < C) tail_sum += dl_exp(chunk[j] - tail_max);
        }
        tail = true;
    }
    SxeRowStats<T> stats;
    stats.max = warp_max(dl_max(m, tail_max));
    T s = tail ? tail_sum * dl_exp(tail_max - stats.max) : T(0);
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            vals[k] = dl_exp(vals[k] - stats.max);
            s += vals[k];
        }
    }
    s = warp_sum(s);
    stats.inv_sum = T(1) / s;
    stats.log_sum = dl_log(s);
    return stats;
}

// Pass 2, for rows where any class may carry target weight (dense targets, smoothed labels): K and
// the loss, on every lane after the reductions. The classes the clip stops are marked first (a
// compare each against the bounds, one bit of a mask per bound over the register cache: few
// registers beside it); then one loop over the row reads t' and the logit of each class, and sums
// t' and t' (x - m) over the classes the clip passes, t' over those it stops at each bound:
//   K = sum_in t',  loss = K log s - sum_in t' (x - m) - below log(low) - above log(high),
// every term of one sign (x - m <= 0), so no cancellation whatever the logits' range.
template <typename T, int CACHE, typename Target>
__device__ __forceinline__ void sxe_target_sums(const T* __restrict__ xr, int C, int lane, const SxeRowStats<T>& st,
                                                const SxeClip<T>& clip, const Target& target,
                                                const T (&vals)[CACHE], T& kept, T& value) {
    static_assert(CACHE <= 32, "pass 2 marks the cached classes in 32-bit masks");
    unsigned low_mask = 0u, high_mask = 0u;
    if (clip.on) {
#pragma unroll
        for (int k = 0; k < CACHE; ++k) {
            const T p = vals[k] * st.inv_sum;   // as pass 3 computes it: both see the same side of the clip
            if (lane + 32 * k < C) {
                if (p < clip.low) low_mask |= 1u << k;
                if (p > clip.high) high_mask |= 1u << k;
            }
        }
    }
    T kept_part = T(0), dot_part = T(0), below = T(0), above = T(0);
#pragma unroll 1
    for (int c = lane, k = 0; c < C; c += 32, ++k) {
        const T t = target(c);
        const T d = xr[c] - st.max;
        bool is_low, is_high;
        if (k < CACHE) {
            is_low = (low_mask >> k) & 1u;
            is_high = (high_mask >> k) & 1u;
        } else {
            const T p = dl_exp(d) * st.inv_sum;
            is_low = clip.on && p < clip.low;
            is_high = clip.on && p > clip.high;
        }
        if (is_low) {
            below += t;
        } else if (is_high) {
            above += t;
        } else {
            kept_part += t;
            dot_part += t * d;
        }
    }
    kept = warp_sum(kept_part);
    below = warp_sum(below);
    above = warp_sum(above);
    value = kept * st.log_sum - warp_sum(dot_part) - (below != T(0) ? below * dl_log(clip.low) : T(0))
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
    const SxeRowStats<T> st = sxe_row_stats<T, CACHE>(xr, C, lane, vals);

    const bool valid = label >= 0 && label < C;
    const SxeSparseTarget<T> target{valid ? label : -1, T(1) - smoothing, smoothing / T(C)};
    T kept = T(0), value = T(0);
    if (smoothing != T(0)) {
        sxe_target_sums<T, CACHE>(xr, C, lane, st, clip, target, vals, kept, value);
    } else if (valid) {
        // Only the label's class carries target weight: its p on every lane from one broadcast load,
        // computed as pass 3 computes it (so both see the same side of the clip).
        const T d = xr[label] - st.max;
        const T p = dl_exp(d) * st.inv_sum;
        if (clip.passes(p)) {
            kept = T(1);
            value = st.log_sum - d;
        } else {
            value = -clip.log_bound(p);
        }
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
    const SxeClip<T> clip(epsilon);
    const SxeDenseTarget<T> target{targets + base, T(1) - smoothing, smoothing / T(C)};

    T vals[CACHE];
    const SxeRowStats<T> st = sxe_row_stats<T, CACHE>(xr, C, lane, vals);
    T kept, value;
    sxe_target_sums<T, CACHE>(xr, C, lane, st, clip, target, vals, kept, value);
    if (lane == 0) loss[row] = value;
    if (probs == nullptr && dlogits == nullptr) return;
    sxe_write<T, CACHE>(xr, C, lane, st, clip, target, vals, kept, scale,
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
