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
//   softmax_xent_sparse_[narrow_]{f32,f64}(x, labels int64 (rows,), loss, probs, dlogits,
//                                          row_weights, grad_scale, smoothing, rows, C)
//   softmax_xent_dense_[narrow_]{f32,f64} (x, targets (rows, C),  loss, probs, dlogits,
//                                          row_weights, grad_scale, smoothing, rows, C)
//   probs, dlogits and row_weights may be null (not written / all ones).
//   A sparse label outside [0, C) stands for an all-zero one-hot row, as in
//   the NumPy path; it is never used as an index.
//
// Launch geometry: one warp per row, ROWS_PER_BLOCK (4) warps per block of
// 128 threads, grid = ceil(rows / 4). Lane l holds x[l + 32 k] for
// k < CACHE in registers: the _f32/_f64 kernels cache 32 / 8 values per lane
// (rows of up to 1024 / 256 classes are read from memory once), the
// _narrow_ kernels 4 (C <= 128: a quarter of the registers, so four times the
// warps in flight for the many short rows of a small classifier). Classes
// beyond the cache are streamed twice: once for an online max and
// exp-sum, once to write the outputs. Reductions are warp shuffles only: no
// shared memory, no block barriers. Each row's label and weight are loaded
// first, so their latency overlaps the row's.
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
    T shifted_sum;   // sum_c (x_c - m), needed only with label smoothing
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
    stats.shifted_sum = want_shifted_sum ? warp_sum(shifted) : T(0);
    return stats;
}

template <typename T, int CACHE>
__device__ void softmax_xent_sparse(const T* __restrict__ x, const long long* __restrict__ labels,
                                    T* __restrict__ loss, T* __restrict__ probs, T* __restrict__ dlogits,
                                    const T* __restrict__ row_weights, T grad_scale, T smoothing,
                                    int rows, int C) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * SXE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= rows) return;   // whole warps leave together: the shuffles below stay full-warp
    const long long label = labels[row];
    const T scale = row_weights != nullptr ? grad_scale * row_weights[row] : grad_scale;
    const size_t base = (size_t)row * C;
    const T* xr = x + base;

    T vals[CACHE];
    const SxeRowStats<T> st = sxe_row_stats<T, CACHE>(xr, C, lane, smoothing != T(0), vals);

    const bool valid = label >= 0 && label < C;
    const T on = T(1) - smoothing, off = smoothing / T(C);
    if (lane == 0) {
        // sum t' (x - m) and sum t' for a smoothed one-hot row.
        const T label_shifted = valid ? xr[label] - st.max : T(0);
        const T target_dot = on * label_shifted + off * st.shifted_sum;
        const T target_sum = (valid ? on : T(0)) + smoothing;
        loss[row] = target_sum * dl_log(st.exp_sum) - target_dot;
    }
    if (probs == nullptr && dlogits == nullptr) return;
    T* pr = probs != nullptr ? probs + base : nullptr;
    T* dr = dlogits != nullptr ? dlogits + base : nullptr;
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T p = vals[k] / st.exp_sum;
            if (pr) pr[c] = p;
            if (dr) dr[c] = (p - ((c == label ? on : T(0)) + off)) * scale;
        }
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T p = dl_exp(xr[c] - st.max) / st.exp_sum;
        if (pr) pr[c] = p;
        if (dr) dr[c] = (p - ((c == label ? on : T(0)) + off)) * scale;
    }
}

template <typename T, int CACHE>
__device__ void softmax_xent_dense(const T* __restrict__ x, const T* __restrict__ targets,
                                   T* __restrict__ loss, T* __restrict__ probs, T* __restrict__ dlogits,
                                   const T* __restrict__ row_weights, T grad_scale, T smoothing,
                                   int rows, int C) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * SXE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= rows) return;
    const T scale = row_weights != nullptr ? grad_scale * row_weights[row] : grad_scale;
    const size_t base = (size_t)row * C;
    const T* xr = x + base;
    const T* tr = targets + base;

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

    const T on = T(1) - smoothing, off = smoothing / T(C);
    const T target_sum = on * t_sum + smoothing;
    if (lane == 0) loss[row] = target_sum * dl_log(st.exp_sum) - (on * t_dot + off * st.shifted_sum);
    if (probs == nullptr && dlogits == nullptr) return;
    T* pr = probs != nullptr ? probs + base : nullptr;
    T* dr = dlogits != nullptr ? dlogits + base : nullptr;
#pragma unroll
    for (int k = 0; k < CACHE; ++k) {
        const int c = lane + 32 * k;
        if (c < C) {
            const T p = vals[k] / st.exp_sum;
            if (pr) pr[c] = p;
            if (dr) dr[c] = (p * target_sum - (tr[c] * on + off)) * scale;
        }
    }
    for (int c = lane + 32 * CACHE; c < C; c += 32) {
        const T p = dl_exp(xr[c] - st.max) / st.exp_sum;
        if (pr) pr[c] = p;
        if (dr) dr[c] = (p * target_sum - (tr[c] * on + off)) * scale;
    }
}

#define SXE_KERNELS(T, NAME, CACHE, MIN_BLOCKS)                                                                        \
    extern "C" __global__ void __launch_bounds__(32 * SXE_ROWS_PER_BLOCK, MIN_BLOCKS)                                  \
    softmax_xent_sparse_##NAME(const T* x, const long long* labels, T* loss, T* probs, T* dlogits,        \
                               const T* row_weights, T grad_scale, T smoothing, int rows, int C) {         \
        softmax_xent_sparse<T, CACHE>(x, labels, loss, probs, dlogits, row_weights, grad_scale, smoothing,  \
                                      rows, C);                                                             \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(32 * SXE_ROWS_PER_BLOCK, MIN_BLOCKS)                                  \
    softmax_xent_dense_##NAME(const T* x, const T* targets, T* loss, T* probs, T* dlogits,                \
                              const T* row_weights, T grad_scale, T smoothing, int rows, int C) {          \
        softmax_xent_dense<T, CACHE>(x, targets, loss, probs, dlogits, row_weights, grad_scale, smoothing,  \
                                     rows, C);                                                              \
    }

SXE_KERNELS(float, f32, SXE_CACHE_F32, SXE_MIN_BLOCKS_F32)
SXE_KERNELS(double, f64, SXE_CACHE_F64, 1)
SXE_KERNELS(float, narrow_f32, SXE_NARROW_CACHE, 1)
SXE_KERNELS(double, narrow_f64, SXE_NARROW_CACHE, 1)
