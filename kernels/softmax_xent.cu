// softmax_xent.cu: fused softmax + cross-entropy, forward loss and backward gradient in one pass.
//
// For each row r of logits x (rows, C) with targets t (smoothed as Keras
// smooths them: t' = t * (1 - ls) + ls / C), with m = max_c x and
// s = sum_c exp(x_c - m):
//   loss[r]       = sum_c t'_c * log(s) - sum_c t'_c * (x_c - m)     (= -sum t' log softmax(x))
//   probs[r, c]   = exp(x_c - m) / s
//   dlogits[r, c] = (probs * T - t'_c) * grad_scale * row_weights[r]
// where T = sum_c t'_c for dense targets and T = 1 for sparse ones (a
// smoothed one-hot row sums to 1), matching gpu_dl/ops/softmax_xent.py.
//
// Kernels (T = float / double, suffix _f32 / _f64):
//   softmax_xent_sparse_{f32,f64}(x, labels int64 (rows,), loss, probs, dlogits,
//                                 row_weights, grad_scale, smoothing, rows, C)
//   softmax_xent_dense_{f32,f64} (x, targets (rows, C),  loss, probs, dlogits,
//                                 row_weights, grad_scale, smoothing, rows, C)
//   probs, dlogits and row_weights may be null (not written / all ones).
//   A sparse label outside [0, C) stands for an all-zero one-hot row, as in
//   the NumPy path; it is never used as an index.
//
// Launch geometry: one warp per row, ROWS_PER_BLOCK (4) warps per block of
// 128 threads, grid = ceil(rows / 4). Lane l holds x[l + 32 k] for
// k < CACHE (32 for float, 8 for double) in registers, so rows of up to
// 1024 (float) / 256 (double) classes are read from memory once; longer rows
// re-read the part beyond the cache in the later passes. Reductions are warp
// shuffles only: no shared memory, no block barriers.
//
// Bytes per row (sparse, C <= cache): read 4C (x) + 8 (label) [+ 4 row
// weight], write 4 (loss) + 4C (dlogits) [+ 4C (probs)]: about 8C bytes for
// forward and backward together, against 16C for a separate softmax,
// loss and gradient. Dense targets add 4C read, twice (their second read
// mostly hits L2). FLOPs per element: one exp, one division, ~6 others.
//
// Limits: rows * C < 2**31 (the launcher checks); C >= 1.
#include "common.cuh"

#define SXE_ROWS_PER_BLOCK 4

// Values per lane kept in registers; -D options override them (benchmarks compare settings).
#ifndef SXE_CACHE_F32
#define SXE_CACHE_F32 32
#endif
#ifndef SXE_CACHE_F64
#define SXE_CACHE_F64 8
#endif
template <typename T> struct SxeCache;
template <> struct SxeCache<float> { static constexpr int values = SXE_CACHE_F32; };
template <> struct SxeCache<double> { static constexpr int values = SXE_CACHE_F64; };

// Loads the row into registers (beyond the cache: nothing), returns the row maximum on every lane.
template <typename T, int CACHE>
__device__ __forceinline__ T sxe_load_and_max(const T* __restrict__ xr, int C, int lane, T (&vals)[CACHE]) {
    T m = -dl_infinity<T>();
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        vals[k] = c < C ? xr[c] : -dl_infinity<T>();
        m = dl_max(m, vals[k]);
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) m = dl_max(m, xr[c]);
    return warp_max(m);
}

// Replaces the cached values by exp(x - m); returns (on every lane) s = sum exp(x - m)
// and, through `shifted_sum`, sum (x - m), which label smoothing needs.
template <typename T, int CACHE>
__device__ __forceinline__ T sxe_exp_sum(const T* __restrict__ xr, int C, int lane, T m, T (&vals)[CACHE],
                                         T& shifted_sum) {
    T s = T(0), xs = T(0);
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T d = vals[k] - m;
            xs += d;
            vals[k] = dl_exp(d);
            s += vals[k];
        }
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T d = xr[c] - m;
        xs += d;
        s += dl_exp(d);
    }
    shifted_sum = warp_sum(xs);
    return warp_sum(s);
}

// exp(x_c - m) for class c of this lane: from the cache, or recomputed beyond it.
template <typename T, int CACHE>
__device__ __forceinline__ T sxe_exp_at(const T* __restrict__ xr, int c, int k, T m, const T (&vals)[CACHE]) {
    return k < CACHE ? vals[k] : dl_exp(xr[c] - m);
}

template <typename T>
__device__ void softmax_xent_sparse(const T* __restrict__ x, const long long* __restrict__ labels,
                                    T* __restrict__ loss, T* __restrict__ probs, T* __restrict__ dlogits,
                                    const T* __restrict__ row_weights, T grad_scale, T smoothing,
                                    int rows, int C) {
    constexpr int CACHE = SxeCache<T>::values;
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * SXE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= rows) return;   // whole warps leave together: the shuffles below stay full-warp
    const size_t base = (size_t)row * C;
    const T* xr = x + base;

    T vals[CACHE];
    const T m = sxe_load_and_max<T, CACHE>(xr, C, lane, vals);
    T shifted_sum;
    const T s = sxe_exp_sum<T, CACHE>(xr, C, lane, m, vals, shifted_sum);

    const long long label = labels[row];
    const bool valid = label >= 0 && label < C;
    const T on = T(1) - smoothing, off = smoothing / T(C);
    if (lane == 0) {
        // sum t' (x - m) and sum t' for a smoothed one-hot row.
        const T label_shifted = valid ? xr[label] - m : T(0);
        const T target_dot = on * label_shifted + off * shifted_sum;
        const T target_sum = (valid ? on : T(0)) + smoothing;
        loss[row] = target_sum * dl_log(s) - target_dot;
    }
    if (probs == nullptr && dlogits == nullptr) return;
    const T scale = row_weights != nullptr ? grad_scale * row_weights[row] : grad_scale;
    T* pr = probs != nullptr ? probs + base : nullptr;
    T* dr = dlogits != nullptr ? dlogits + base : nullptr;
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T p = vals[k] / s;
            if (pr) pr[c] = p;
            if (dr) dr[c] = (p - ((c == label ? on : T(0)) + off)) * scale;
        }
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T p = dl_exp(xr[c] - m) / s;
        if (pr) pr[c] = p;
        if (dr) dr[c] = (p - ((c == label ? on : T(0)) + off)) * scale;
    }
}

template <typename T>
__device__ void softmax_xent_dense(const T* __restrict__ x, const T* __restrict__ targets,
                                   T* __restrict__ loss, T* __restrict__ probs, T* __restrict__ dlogits,
                                   const T* __restrict__ row_weights, T grad_scale, T smoothing,
                                   int rows, int C) {
    constexpr int CACHE = SxeCache<T>::values;
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * SXE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= rows) return;
    const size_t base = (size_t)row * C;
    const T* xr = x + base;
    const T* tr = targets + base;

    T vals[CACHE];
    const T m = sxe_load_and_max<T, CACHE>(xr, C, lane, vals);
    // sum t and sum t (x - m) of the unsmoothed targets, while the shifted values are still cached.
    T t_sum = T(0), t_dot = T(0);
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T t = tr[c];
            t_sum += t;
            t_dot += t * (vals[k] - m);
        }
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T t = tr[c];
        t_sum += t;
        t_dot += t * (xr[c] - m);
    }
    t_sum = warp_sum(t_sum);
    t_dot = warp_sum(t_dot);
    T shifted_sum;
    const T s = sxe_exp_sum<T, CACHE>(xr, C, lane, m, vals, shifted_sum);

    const T on = T(1) - smoothing, off = smoothing / T(C);
    const T target_sum = on * t_sum + smoothing;
    if (lane == 0) loss[row] = target_sum * dl_log(s) - (on * t_dot + off * shifted_sum);
    if (probs == nullptr && dlogits == nullptr) return;
    const T scale = row_weights != nullptr ? grad_scale * row_weights[row] : grad_scale;
    T* pr = probs != nullptr ? probs + base : nullptr;
    T* dr = dlogits != nullptr ? dlogits + base : nullptr;
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T p = vals[k] / s;
            if (pr) pr[c] = p;
            if (dr) dr[c] = (p * target_sum - (tr[c] * on + off)) * scale;
        }
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T p = dl_exp(xr[c] - m) / s;
        if (pr) pr[c] = p;
        if (dr) dr[c] = (p * target_sum - (tr[c] * on + off)) * scale;
    }
}

#define SXE_KERNELS(T, SUFFIX)                                                                              \
    extern "C" __global__ void __launch_bounds__(32 * SXE_ROWS_PER_BLOCK)                                  \
    softmax_xent_sparse_##SUFFIX(const T* x, const long long* labels, T* loss, T* probs, T* dlogits,       \
                                 const T* row_weights, T grad_scale, T smoothing, int rows, int C) {       \
        softmax_xent_sparse<T>(x, labels, loss, probs, dlogits, row_weights, grad_scale, smoothing, rows, C); \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(32 * SXE_ROWS_PER_BLOCK)                                  \
    softmax_xent_dense_##SUFFIX(const T* x, const T* targets, T* loss, T* probs, T* dlogits,              \
                                const T* row_weights, T grad_scale, T smoothing, int rows, int C) {        \
        softmax_xent_dense<T>(x, targets, loss, probs, dlogits, row_weights, grad_scale, smoothing, rows, C); \
    }

SXE_KERNELS(float, f32)
SXE_KERNELS(double, f64)
