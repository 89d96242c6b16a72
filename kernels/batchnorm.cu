// batchnorm.cu: batch normalization over the last axis (channels_last), training and inference forward,
// training backward.
//
// Shapes: x, y, dy, dx (rows, width), C-contiguous, rows the product of every axis but the last (N*H*W
// for NHWC), width the channels; gamma, beta, mean, variance, inv, moving_mean, moving_variance,
// dgamma, dbeta (width,); the per-part partials (parts, width). Every array has x's dtype
// (T = float for _f32, double for _f64).
//
// Kernels (suffix _f32 / _f64):
//   bn_fwd_stats(x, part_mean, part_m2, rows, width, rows_per_part)
//       For part p (rows [p * rows_per_part, ...)) and channel c: the mean of the part's values and
//       M2, the sum of their squared deviations from that mean. Each thread folds chunks of
//       BN_CHUNK values (mean and M2 of a chunk in two passes over registers) into its running
//       (count, mean, M2) by Chan's merge; the block's 8 thread rows are merged in ascending order.
//       Never E[x^2] - m^2, which cancels for data far from zero.
//   bn_fwd_finish(part_mean, part_m2, gamma, mean, variance, inv, scale, moving_mean,
//                 moving_variance, rows, width, rows_per_part, epsilon, momentum, rest)
//       Chan's merge of the parts: mean, variance = M2 / rows (biased, as Keras's moments),
//       inv = 1 / sqrt(variance + epsilon), scale = inv * gamma (gamma null: inv). moving_* (null:
//       left alone) become moving * momentum + batch * rest (rest = 1 - momentum), Keras's update,
//       each product and the sum rounded on their own as NumPy rounds them.
//   bn_scale(variance, gamma, inv, scale, width, epsilon)
//       Inference: inv and scale from given (moving) variance, as bn_fwd_finish computes them.
//   bn_apply(x, mean, scale, beta, y, rows, width, vec)
//       y = (x - mean) * scale + beta (beta null: no add), rounded as the NumPy path rounds it (no
//       FMA contraction): inference gives the NumPy path's bits.
//   bn_bwd_params(dy, x, mean, part_dxm, part_dbeta, rows, width, rows_per_part)
//       Per part and channel: sum dy * (x - mean) and sum dy, in row order per thread, then over
//       the 8 thread rows in ascending order.
//   bn_bwd_finish(part_dxm, part_dbeta, inv, dgamma, dbeta, parts, width)
//       dgamma = inv * sum over parts of part_dxm (= sum dy * xhat), dbeta = sum of part_dbeta.
//   bn_bwd_data(dy, x, mean, inv, gamma, dgamma, dbeta, dx, rows, width, inv_rows, vec)
//       xhat = (x - mean) * inv, dx = inv * gamma * (dy - dbeta / M - xhat * dgamma / M) with M = rows
//       (inv_rows = 1 / M); gamma null: ones. The same as inv * gamma / M * (M dy - dbeta - xhat dgamma).
//   Every sum and merge runs in an order fixed by the shapes alone (no atomics): the same bits from
//   run to run, on any device.
//
// Launch geometry.
//   bn_fwd_stats, bn_bwd_params: block (32, BN_TY = 8), grid (ceil(width / 32), parts). Thread
//   (tx, ty) takes channel blockIdx.x * 32 + tx and the rows ty, ty + 8, ... of its part, BN_CHUNK
//   (8) of them loaded at once: a warp reads 32 consecutive channels of a row, each thread has 8
//   loads in flight. rows_per_part = max(64, isqrt(rows)) rounded up to a multiple of 64 (BN_TY *
//   BN_CHUNK), chosen by the launcher from the shape alone, not from the device; parts =
//   ceil(rows / rows_per_part) <= 46341 (gridDim.y <= 65535).
//   bn_fwd_finish, bn_bwd_finish: block (32, BN_FINISH_TY = 8), grid ceil(width / 8): a warp per
//   channel. Lane l merges (sums) the parts l, l + 32, ... in ascending order, then the lanes meet in
//   a tree: for offsets 16, 8, 4, 2, 1, lane l < offset takes in lane l + offset (l ^ offset), and
//   lane 0 ends with the result.
//   bn_scale: 1-D, 256 threads, a channel per thread.
//   bn_apply, bn_bwd_data: 1-D grid-stride loop over V-vectors, 256 threads, ceil(n / 256) blocks
//   capped at 524280 (launch.grid_1d). V = 4 (float) or 2 (double), 16-byte accesses, when width % V
//   == 0 and every pointer is 16-byte aligned; else 1 (the launcher decides and passes `vec`).
//
// Bytes per element, S = sizeof(T) (DRAM; per-channel arrays are L1/L2 hits):
//   bn_fwd_stats  read S, write 2 * parts * S per channel      (about 10 FLOPs per element)
//   bn_apply      read S, write S                              (3)
//   bn_bwd_params read 2S (dy, x), write 2 * parts * S per channel  (4)
//   bn_bwd_data   read 2S, write S                             (7)
// Training forward: read 2S, write S; training backward: read 4S, write S. Memory-bound throughout.
//
// Status: tested on the emulated GPU and compiled with NVRTC only; not yet run on a GPU (not timed,
// not sanitized).
//
// Limits: rows * width < 2**31 (32-bit indices; the launcher checks); rows >= 1, width >= 1.
#include "common.cuh"
#include "column_sums.cuh"

#define BN_TY 8
#define BN_CHUNK 8
#define BN_FINISH_TY 8
#define BN_THREADS 256

// Rows of thread row `ty` in [first, last) taken with stride BN_TY.
__device__ __forceinline__ int bn_thread_rows(int first, int last, int ty) {
    const int span = last - first - ty;
    return span > 0 ? (span + BN_TY - 1) / BN_TY : 0;
}

// ---------------------------------------------------------------------------- forward, statistics
template <typename T>
__device__ __forceinline__ void bn_fwd_stats_body(const T* __restrict__ x, T* __restrict__ part_mean,
                                                  T* __restrict__ part_m2, int rows, int width,
                                                  int rows_per_part) {
    __shared__ T means[BN_TY][32];
    __shared__ T m2s[BN_TY][32];
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int first = blockIdx.y * rows_per_part;
    const int last = min(rows, first + rows_per_part);
    int n = 0;
    T mean = T(0), m2 = T(0);
    if (c < width) {
        for (int r0 = first + threadIdx.y; r0 < last; r0 += BN_TY * BN_CHUNK) {
            T v[BN_CHUNK];
            int m = 0;
#pragma unroll
            for (int k = 0; k < BN_CHUNK; ++k) {     // all loads first: 8 in flight
                const int r = r0 + k * BN_TY;
                v[k] = r < last ? x[(size_t)r * width + c] : T(0);
                m += r < last;
            }
            chan_fold(v, m, n, mean, m2);
        }
    }
    means[threadIdx.y][threadIdx.x] = mean;
    m2s[threadIdx.y][threadIdx.x] = m2;
    __syncthreads();
    if (threadIdx.y != 0 || c >= width) return;
    for (int t = 1; t < BN_TY; ++t)                  // ascending thread row: a fixed order
        chan_merge(n, mean, m2, bn_thread_rows(first, last, t), means[t][threadIdx.x], m2s[t][threadIdx.x]);
    const size_t o = (size_t)blockIdx.y * width + c;
    part_mean[o] = mean;
    part_m2[o] = m2;
}

template <typename T>
__device__ __forceinline__ void bn_fwd_finish_body(const T* __restrict__ part_mean, const T* __restrict__ part_m2,
                                                   const T* __restrict__ gamma, T* __restrict__ mean_out,
                                                   T* __restrict__ variance_out, T* __restrict__ inv_out,
                                                   T* __restrict__ scale_out, T* __restrict__ moving_mean,
                                                   T* __restrict__ moving_variance, int rows, int width,
                                                   int rows_per_part, T epsilon, T momentum, T rest) {
    const int c = blockIdx.x * BN_FINISH_TY + threadIdx.y;
    if (c >= width) return;                          // a whole warp
    const int lane = threadIdx.x;
    const int parts = (rows + rows_per_part - 1) / rows_per_part;
    int n = 0;
    T mean = T(0), m2 = T(0);
    for (int p = lane; p < parts; p += 32)           // ascending part: a fixed order
        chan_merge(n, mean, m2, min(rows_per_part, rows - p * rows_per_part), part_mean[(size_t)p * width + c],
                   part_m2[(size_t)p * width + c]);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const int n_b = __shfl_xor_sync(DL_FULL_MASK, n, offset);
        const T mean_b = __shfl_xor_sync(DL_FULL_MASK, mean, offset);
        const T m2_b = __shfl_xor_sync(DL_FULL_MASK, m2, offset);
        if (lane < offset) chan_merge(n, mean, m2, n_b, mean_b, m2_b);
    }
    if (lane != 0) return;
    const T variance = m2 / T(rows);
    const T inv = T(1) / dl_sqrt(variance + epsilon);
    mean_out[c] = mean;
    variance_out[c] = variance;
    inv_out[c] = inv;
    scale_out[c] = gamma ? mul_rn(inv, gamma[c]) : inv;
    if (moving_mean) moving_mean[c] = add_rn(mul_rn(moving_mean[c], momentum), mul_rn(mean, rest));
    if (moving_variance)
        moving_variance[c] = add_rn(mul_rn(moving_variance[c], momentum), mul_rn(variance, rest));
}

template <typename T>
__device__ __forceinline__ void bn_scale_body(const T* __restrict__ variance, const T* __restrict__ gamma,
                                              T* __restrict__ inv_out, T* __restrict__ scale_out, int width,
                                              T epsilon) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= width) return;
    const T inv = T(1) / dl_sqrt(add_rn(variance[c], epsilon));
    inv_out[c] = inv;
    scale_out[c] = gamma ? mul_rn(inv, gamma[c]) : inv;
}

// ------------------------------------------------------------------------------- element-wise passes
template <typename T, int V>
__device__ __forceinline__ void bn_apply_body(const T* __restrict__ x, const T* __restrict__ mean,
                                              const T* __restrict__ scale, const T* __restrict__ beta,
                                              T* __restrict__ y, int rows, int width) {
    // unsigned: i + stride stays below 2**32 for any n < 2**31, where an int could overflow
    const unsigned per_row = width / V, n = (unsigned)rows * per_row, stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int c = (i % per_row) * V;
        const VecN<T, V> a = vec_load<T, V>(x + (size_t)i * V);
        const VecN<T, V> m = vec_load<T, V>(mean + c);
        const VecN<T, V> s = vec_load<T, V>(scale + c);
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) out.v[v] = mul_rn(sub_rn(a.v[v], m.v[v]), s.v[v]);
        if (beta) {
            const VecN<T, V> b = vec_load<T, V>(beta + c);
#pragma unroll
            for (int v = 0; v < V; ++v) out.v[v] = add_rn(out.v[v], b.v[v]);
        }
        vec_store<T, V>(y + (size_t)i * V, out);
    }
}

template <typename T, int V>
__device__ __forceinline__ void bn_bwd_data_body(const T* __restrict__ dy, const T* __restrict__ x,
                                                 const T* __restrict__ mean, const T* __restrict__ inv,
                                                 const T* __restrict__ gamma, const T* __restrict__ dgamma,
                                                 const T* __restrict__ dbeta, T* __restrict__ dx, int rows,
                                                 int width, T inv_rows) {
    // unsigned: i + stride stays below 2**32 for any n < 2**31, where an int could overflow
    const unsigned per_row = width / V, n = (unsigned)rows * per_row, stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int c = (i % per_row) * V;
        const VecN<T, V> g = vec_load<T, V>(dy + (size_t)i * V);
        const VecN<T, V> a = vec_load<T, V>(x + (size_t)i * V);
        const VecN<T, V> m = vec_load<T, V>(mean + c);
        const VecN<T, V> s = vec_load<T, V>(inv + c);
        const VecN<T, V> dg = vec_load<T, V>(dgamma + c);
        const VecN<T, V> db = vec_load<T, V>(dbeta + c);
        VecN<T, V> k;
        if (gamma) k = vec_load<T, V>(gamma + c);
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) {
            const T xhat = (a.v[v] - m.v[v]) * s.v[v];
            const T factor = gamma ? s.v[v] * k.v[v] : s.v[v];
            out.v[v] = factor * (g.v[v] - db.v[v] * inv_rows - xhat * (dg.v[v] * inv_rows));
        }
        vec_store<T, V>(dx + (size_t)i * V, out);
    }
}

// ---------------------------------------------------------------------------- backward, parameters
template <typename T>
__device__ __forceinline__ void bn_bwd_params_body(const T* __restrict__ dy, const T* __restrict__ x,
                                                   const T* __restrict__ mean, T* __restrict__ part_dxm,
                                                   T* __restrict__ part_dbeta, int rows, int width,
                                                   int rows_per_part) {
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int first = blockIdx.y * rows_per_part;
    const int last = min(rows, first + rows_per_part);
    T sum_dxm = T(0), sum_beta = T(0);
    if (c < width) {
        const T m = mean[c];
        for (int r0 = first + threadIdx.y; r0 < last; r0 += BN_TY * BN_CHUNK) {
            T d[BN_CHUNK], a[BN_CHUNK];
#pragma unroll
            for (int k = 0; k < BN_CHUNK; ++k) {     // all loads first: 16 in flight
                const int r = r0 + k * BN_TY;
                const size_t i = (size_t)r * width + c;
                d[k] = r < last ? dy[i] : T(0);
                a[k] = r < last ? x[i] : m;          // x - mean = 0 past the part
            }
#pragma unroll
            for (int k = 0; k < BN_CHUNK; ++k) {     // row order: a fixed order
                sum_dxm += d[k] * (a[k] - m);
                sum_beta += d[k];
            }
        }
    }
    store_thread_rows_sum<T, BN_TY>(sum_dxm, sum_beta, c < width, part_dxm, part_dbeta,
                                    (size_t)blockIdx.y * width + c);
}

template <typename T>
__device__ __forceinline__ void bn_bwd_finish_body(const T* __restrict__ part_dxm, const T* __restrict__ part_dbeta,
                                                   const T* __restrict__ inv, T* __restrict__ dgamma,
                                                   T* __restrict__ dbeta, int parts, int width) {
    const int c = blockIdx.x * BN_FINISH_TY + threadIdx.y;
    if (c >= width) return;                          // a whole warp
    T sum_dxm, sum_beta;
    warp_pair_sum<T>(part_dxm + c, part_dbeta + c, parts, width, sum_dxm, sum_beta);
    if (threadIdx.x != 0) return;
    dgamma[c] = inv[c] * sum_dxm;
    dbeta[c] = sum_beta;
}

// -------------------------------------------------------------------------------- extern "C" kernels
// `vec` (uniform over the grid) picks the instantiation: VW values per access (16 bytes) or 1.
#define BATCHNORM_KERNELS(T, SUFFIX, VW)                                                                \
    extern "C" __global__ void __launch_bounds__(32 * BN_TY)                                           \
    bn_fwd_stats_##SUFFIX(const T* x, T* part_mean, T* part_m2, int rows, int width, int rows_per_part) { \
        bn_fwd_stats_body<T>(x, part_mean, part_m2, rows, width, rows_per_part);                        \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * BN_FINISH_TY)                                    \
    bn_fwd_finish_##SUFFIX(const T* part_mean, const T* part_m2, const T* gamma, T* mean, T* variance,  \
                           T* inv, T* scale, T* moving_mean, T* moving_variance, int rows, int width,   \
                           int rows_per_part, T epsilon, T momentum, T rest) {                          \
        bn_fwd_finish_body<T>(part_mean, part_m2, gamma, mean, variance, inv, scale, moving_mean,       \
                              moving_variance, rows, width, rows_per_part, epsilon, momentum, rest);    \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(BN_THREADS)                                           \
    bn_scale_##SUFFIX(const T* variance, const T* gamma, T* inv, T* scale, int width, T epsilon) {      \
        bn_scale_body<T>(variance, gamma, inv, scale, width, epsilon);                                  \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(BN_THREADS)                                           \
    bn_apply_##SUFFIX(const T* x, const T* mean, const T* scale, const T* beta, T* y, int rows,         \
                      int width, int vec) {                                                             \
        if (vec == VW) bn_apply_body<T, VW>(x, mean, scale, beta, y, rows, width);                      \
        else bn_apply_body<T, 1>(x, mean, scale, beta, y, rows, width);                                 \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * BN_TY)                                           \
    bn_bwd_params_##SUFFIX(const T* dy, const T* x, const T* mean, T* part_dxm, T* part_dbeta, int rows, \
                           int width, int rows_per_part) {                                              \
        bn_bwd_params_body<T>(dy, x, mean, part_dxm, part_dbeta, rows, width, rows_per_part);           \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * BN_FINISH_TY)                                    \
    bn_bwd_finish_##SUFFIX(const T* part_dxm, const T* part_dbeta, const T* inv, T* dgamma, T* dbeta,   \
                           int parts, int width) {                                                      \
        bn_bwd_finish_body<T>(part_dxm, part_dbeta, inv, dgamma, dbeta, parts, width);                  \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(BN_THREADS)                                           \
    bn_bwd_data_##SUFFIX(const T* dy, const T* x, const T* mean, const T* inv, const T* gamma,          \
                         const T* dgamma, const T* dbeta, T* dx, int rows, int width, T inv_rows,       \
                         int vec) {                                                                     \
        if (vec == VW) bn_bwd_data_body<T, VW>(dy, x, mean, inv, gamma, dgamma, dbeta, dx, rows, width, inv_rows); \
        else bn_bwd_data_body<T, 1>(dy, x, mean, inv, gamma, dgamma, dbeta, dx, rows, width, inv_rows); \
    }

BATCHNORM_KERNELS(float, f32, 4)
BATCHNORM_KERNELS(double, f64, 2)
