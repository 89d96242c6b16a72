// groupnorm.cu: group normalization over the last axis (channels_last), forward and backward.
//
// Shapes: x, y, dy, dx (samples, positions, width), C-contiguous: samples the batch, positions the product
// of the axes between batch and channels (H*W for NHWC, 1 for (N, C)), width the channels C, split into
// groups of group_width = C / G consecutive channels. A (sample n, group g) pair ("pair", index n * G + g)
// holds M = positions * group_width values, group_width consecutive ones at each position (strided by
// width). gamma, beta, dgamma, dbeta (width,); mean, inv, centre, spread (pairs,); the per-part partials
// (pairs, parts) or (parts, width). Every array has x's dtype (T = float for _f32, double for _f64).
//
// Kernels (suffix _f32 / _f64):
//   gn_fwd_stats(x, part_mean, part_m2, positions, width, group_width, positions_per_part)
//       For pair q and part p (positions [p * positions_per_part, ...)): the mean of the part's values and
//       M2, the sum of their squared deviations from that mean. Each thread folds chunks of GN_CHUNK values
//       (two passes over registers) into its (count, mean, M2) by Chan's merge; the block's threads meet
//       in a shared-memory tree of Chan merges. Never E[x^2] - m^2, which cancels far from zero.
//   gn_fwd_finish(part_mean, part_m2, mean, inv, pairs, parts, positions, group_width,
//                 positions_per_part, epsilon)
//       Chan's merge of a pair's parts: mean, variance = M2 / M (biased, as Keras's moments),
//       inv = 1 / sqrt(variance + epsilon).
//   gn_apply(x, mean, inv, gamma, beta, y, samples, positions, width, group_width, vec)
//       y = (x - mean) * (inv * gamma) + beta with the pair's mean and inv (gamma, beta null: ones,
//       zeros), each operation rounded on its own as the NumPy path rounds it (no FMA contraction).
//   gn_bwd_params(dy, x, mean, inv, part_dgamma, part_dbeta, rows, positions, width, group_width,
//                 rows_per_part)
//       Column sums over part p of the rows (samples * positions of them): sum dy * xhat and sum dy per
//       channel, xhat = (x - mean) * inv with the row's pair's statistics; in row order per thread,
//       then over the GN_TY thread rows in ascending order.
//   gn_bwd_params_finish(part_dgamma, part_dbeta, dgamma, dbeta, parts, width)
//       The sums over the parts (dgamma or dbeta null: not written).
//   gn_bwd_stats(dy, x, gamma, mean, inv, part_g, part_gx, positions, width, group_width,
//                positions_per_part)
//       Per pair and part: sum g and sum g * xhat with g = dy * gamma (gamma null: ones), with
//       gn_fwd_stats's partition and a shared-memory tree of sums.
//   gn_bwd_finish(part_g, part_gx, centre, spread, pairs, parts, count)
//       centre = mean(g), spread = mean(g * xhat) over a pair's M = count values.
//   gn_bwd_data(dy, x, gamma, mean, inv, centre, spread, dx, samples, positions, width, group_width, vec)
//       dx = inv * (g - centre - xhat * spread).
//   Every sum and merge runs in an order fixed by the shapes alone (no atomics): the same bits from run
//   to run, on any device.
//
// Launch geometry.
//   gn_fwd_stats, gn_bwd_stats: block GN_THREADS (256), grid (pairs, parts). Value i of a part (i =
//   position * group_width + channel in the group) goes to thread i % 256, GN_CHUNK (8) loads in flight
//   per thread: consecutive threads read consecutive channels of a group. A group narrower than a 32-byte
//   sector reads sectors its neighbouring groups' blocks (adjacent in blockIdx.x) read too: L2 hits.
//   positions_per_part = max(ceil(2048 / group_width), ceil(positions / 65535)) (2048 = 256 threads x 8
//   chunk: each thread at least one full chunk), chosen by the launcher from the shape alone; parts =
//   ceil(positions / positions_per_part) <= 65535 (gridDim.y). (32, 56, 56, 64) with 32 groups: 1024
//   positions per part, 4 parts, 4096 blocks.
//   gn_fwd_finish, gn_bwd_finish: block (32, GN_FINISH_TY = 8), grid ceil(pairs / 8): a warp per pair.
//   Lane l merges (sums) parts l, l + 32, ... in ascending order; then lanes meet in an xor tree
//   (offsets 16 .. 1) and lane 0 holds the result.
//   gn_bwd_params: block (32, GN_TY = 8), grid (ceil(width / 32), parts): batchnorm.cu's bn_bwd_params
//   geometry; rows_per_part = max(64, isqrt(rows)) rounded up to a multiple of 64.
//   gn_bwd_params_finish: block (32, GN_FINISH_TY), a warp per channel, as gn_fwd_finish.
//   gn_apply, gn_bwd_data: 1-D grid-stride loop over V-vectors, 256 threads, ceil(n / 256) blocks capped
//   at 524280 (launch.grid_1d). V = 4 (float) or 2 (double), 16-byte accesses, when width % V == 0 and
//   every pointer is 16-byte aligned; else 1 (the launcher decides and passes `vec`).
//
// Bytes per element, S = sizeof(T) (DRAM; per-pair and per-channel arrays are L1/L2 hits):
//   gn_fwd_stats   read S                      (about 10 FLOPs per element)
//   gn_apply       read S, write S             (4)
//   gn_bwd_params  read 2S                     (5)
//   gn_bwd_stats   read 2S                     (5)
//   gn_bwd_data    read 2S, write S            (7)
// Training forward: read 2S, write S; backward: read 6S, write S. Memory-bound throughout.
//
// Status: tested on the emulated GPU and compiled with NVRTC only; not yet run on a GPU (not timed,
// not sanitized).
//
// Limits: samples * positions * width < 2**31 (32-bit indices; the launcher checks); every dimension >= 1;
// width % group_width == 0.
#include "common.cuh"
#include "column_sums.cuh"

#define GN_THREADS 256
#define GN_CHUNK 8
#define GN_TY 8
#define GN_FINISH_TY 8

// The first value of part `part` of pair `pair` and the part's count of values.
__device__ __forceinline__ size_t gn_part_base(int pair, int part, int positions, int width, int group_width,
                                               int positions_per_part, int* count) {
    const int groups = width / group_width;
    const int n = pair / groups, g = pair - n * groups;
    const int first = part * positions_per_part;
    *count = (min(positions, first + positions_per_part) - first) * group_width;
    return ((size_t)n * positions + first) * width + (size_t)g * group_width;
}

// Value i of a part: position i / group_width, channel i % group_width of the group.
__device__ __forceinline__ size_t gn_offset(int i, int width, int group_width) {
    const int p = i / group_width;
    return (size_t)p * width + (i - p * group_width);
}

// ---------------------------------------------------------------------------- forward, statistics
template <typename T>
__device__ __forceinline__ void gn_fwd_stats_body(const T* __restrict__ x, T* __restrict__ part_mean,
                                                  T* __restrict__ part_m2, int positions, int width,
                                                  int group_width, int positions_per_part) {
    __shared__ int counts[GN_THREADS];
    __shared__ T means[GN_THREADS];
    __shared__ T m2s[GN_THREADS];
    int count;
    const T* base = x + gn_part_base(blockIdx.x, blockIdx.y, positions, width, group_width, positions_per_part,
                                     &count);
    const int t = threadIdx.x;
    int n = 0;
    T mean = T(0), m2 = T(0);
    for (int i0 = t; i0 < count; i0 += GN_THREADS * GN_CHUNK) {
        T v[GN_CHUNK];
        int m = 0;
#pragma unroll
        for (int k = 0; k < GN_CHUNK; ++k) {         // all loads first: 8 in flight
            const int i = i0 + k * GN_THREADS;
            v[k] = i < count ? base[gn_offset(i, width, group_width)] : T(0);
            m += i < count;
        }
        chan_fold(v, m, n, mean, m2);
    }
    counts[t] = n, means[t] = mean, m2s[t] = m2;
    __syncthreads();
    for (int half = GN_THREADS / 2; half > 0; half >>= 1) {   // a tree fixed by the block size
        if (t < half) {
            chan_merge(n, mean, m2, counts[t + half], means[t + half], m2s[t + half]);
            counts[t] = n, means[t] = mean, m2s[t] = m2;
        }
        __syncthreads();
    }
    if (t != 0) return;
    const size_t o = (size_t)blockIdx.x * gridDim.y + blockIdx.y;
    part_mean[o] = mean;
    part_m2[o] = m2;
}

template <typename T>
__device__ __forceinline__ void gn_fwd_finish_body(const T* __restrict__ part_mean, const T* __restrict__ part_m2,
                                                   T* __restrict__ mean_out, T* __restrict__ inv_out, int pairs,
                                                   int parts, int positions, int group_width,
                                                   int positions_per_part, T epsilon) {
    const int q = blockIdx.x * GN_FINISH_TY + threadIdx.y;
    if (q >= pairs) return;                          // a whole warp
    const int lane = threadIdx.x;
    int n = 0;
    T mean = T(0), m2 = T(0);
    for (int p = lane; p < parts; p += 32)           // ascending part: a fixed order
        chan_merge(n, mean, m2, (min(positions, (p + 1) * positions_per_part) - p * positions_per_part) * group_width,
                   part_mean[(size_t)q * parts + p], part_m2[(size_t)q * parts + p]);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const int n_b = __shfl_xor_sync(DL_FULL_MASK, n, offset);
        const T mean_b = __shfl_xor_sync(DL_FULL_MASK, mean, offset);
        const T m2_b = __shfl_xor_sync(DL_FULL_MASK, m2, offset);
        if (lane < offset) chan_merge(n, mean, m2, n_b, mean_b, m2_b);
    }
    if (lane != 0) return;
    const T variance = m2 / T(positions * group_width);
    mean_out[q] = mean;
    inv_out[q] = T(1) / dl_sqrt(add_rn(variance, epsilon));
}

// ------------------------------------------------------------------------------- element-wise passes
// The pair of channel c in the sample of vector i.
#define GN_PAIR(c) (sample * groups + (c) / group_width)

template <typename T, int V>
__device__ __forceinline__ void gn_apply_body(const T* __restrict__ x, const T* __restrict__ mean,
                                              const T* __restrict__ inv, const T* __restrict__ gamma,
                                              const T* __restrict__ beta, T* __restrict__ y, int samples,
                                              int positions, int width, int group_width) {
    // unsigned: i + stride stays below 2**32 for any n < 2**31, where an int could overflow
    const unsigned per_row = width / V, per_sample = (unsigned)positions * per_row;
    const unsigned n = (unsigned)samples * per_sample, stride = gridDim.x * blockDim.x;
    const int groups = width / group_width;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int c = (i % per_row) * V, sample = i / per_sample;
        const VecN<T, V> a = vec_load<T, V>(x + (size_t)i * V);
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) {
            const int q = GN_PAIR(c + v);
            const T scale = gamma ? mul_rn(inv[q], gamma[c + v]) : inv[q];
            out.v[v] = mul_rn(sub_rn(a.v[v], mean[q]), scale);
            if (beta) out.v[v] = add_rn(out.v[v], beta[c + v]);
        }
        vec_store<T, V>(y + (size_t)i * V, out);
    }
}

template <typename T, int V>
__device__ __forceinline__ void gn_bwd_data_body(const T* __restrict__ dy, const T* __restrict__ x,
                                                 const T* __restrict__ gamma, const T* __restrict__ mean,
                                                 const T* __restrict__ inv, const T* __restrict__ centre,
                                                 const T* __restrict__ spread, T* __restrict__ dx, int samples,
                                                 int positions, int width, int group_width) {
    const unsigned per_row = width / V, per_sample = (unsigned)positions * per_row;
    const unsigned n = (unsigned)samples * per_sample, stride = gridDim.x * blockDim.x;
    const int groups = width / group_width;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int c = (i % per_row) * V, sample = i / per_sample;
        const VecN<T, V> d = vec_load<T, V>(dy + (size_t)i * V);
        const VecN<T, V> a = vec_load<T, V>(x + (size_t)i * V);
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) {
            const int q = GN_PAIR(c + v);
            const T s = inv[q];
            const T g = gamma ? d.v[v] * gamma[c + v] : d.v[v];
            const T xhat = (a.v[v] - mean[q]) * s;
            out.v[v] = s * (g - centre[q] - xhat * spread[q]);
        }
        vec_store<T, V>(dx + (size_t)i * V, out);
    }
}

// ---------------------------------------------------------------------------- backward, parameters
template <typename T>
__device__ __forceinline__ void gn_bwd_params_body(const T* __restrict__ dy, const T* __restrict__ x,
                                                   const T* __restrict__ mean, const T* __restrict__ inv,
                                                   T* __restrict__ part_dgamma, T* __restrict__ part_dbeta,
                                                   int rows, int positions, int width, int group_width,
                                                   int rows_per_part) {
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int first = blockIdx.y * rows_per_part;
    const int last = min(rows, first + rows_per_part);
    const int groups = width / group_width, g = c / group_width;
    T sum_gamma = T(0), sum_beta = T(0);
    if (c < width) {
        for (int r0 = first + threadIdx.y; r0 < last; r0 += GN_TY * GN_CHUNK) {
            T d[GN_CHUNK], a[GN_CHUNK];
            int q[GN_CHUNK];
#pragma unroll
            for (int k = 0; k < GN_CHUNK; ++k) {     // all loads first: 16 in flight
                const int r = r0 + k * GN_TY;
                const size_t i = (size_t)r * width + c;
                q[k] = (r < last ? r / positions : 0) * groups + g;
                d[k] = r < last ? dy[i] : T(0);      // dy = 0 past the part: adds nothing
                a[k] = r < last ? x[i] : T(0);
            }
#pragma unroll
            for (int k = 0; k < GN_CHUNK; ++k) {     // row order: a fixed order
                sum_gamma += d[k] * ((a[k] - mean[q[k]]) * inv[q[k]]);
                sum_beta += d[k];
            }
        }
    }
    store_thread_rows_sum<T, GN_TY>(sum_gamma, sum_beta, c < width, part_dgamma, part_dbeta,
                                    (size_t)blockIdx.y * width + c);
}

template <typename T>
__device__ __forceinline__ void gn_bwd_params_finish_body(const T* __restrict__ part_dgamma,
                                                          const T* __restrict__ part_dbeta, T* __restrict__ dgamma,
                                                          T* __restrict__ dbeta, int parts, int width) {
    const int c = blockIdx.x * GN_FINISH_TY + threadIdx.y;
    if (c >= width) return;                          // a whole warp
    T sum_gamma, sum_beta;
    warp_pair_sum<T>(part_dgamma + c, part_dbeta + c, parts, width, sum_gamma, sum_beta);
    if (threadIdx.x != 0) return;
    if (dgamma) dgamma[c] = sum_gamma;
    if (dbeta) dbeta[c] = sum_beta;
}

// ------------------------------------------------------------------------- backward, per-pair sums
template <typename T>
__device__ __forceinline__ void gn_bwd_stats_body(const T* __restrict__ dy, const T* __restrict__ x,
                                                  const T* __restrict__ gamma, const T* __restrict__ mean,
                                                  const T* __restrict__ inv, T* __restrict__ part_g,
                                                  T* __restrict__ part_gx, int positions, int width,
                                                  int group_width, int positions_per_part) {
    __shared__ T g_sums[GN_THREADS];
    __shared__ T gx_sums[GN_THREADS];
    int count;
    const size_t base = gn_part_base(blockIdx.x, blockIdx.y, positions, width, group_width, positions_per_part,
                                     &count);
    const int groups = width / group_width, first_channel = (blockIdx.x % groups) * group_width;
    const T m = mean[blockIdx.x], s = inv[blockIdx.x];
    const int t = threadIdx.x;
    T sum_g = T(0), sum_gx = T(0);
    for (int i0 = t; i0 < count; i0 += GN_THREADS * GN_CHUNK) {
        T d[GN_CHUNK], a[GN_CHUNK];
        int j[GN_CHUNK];
#pragma unroll
        for (int k = 0; k < GN_CHUNK; ++k) {         // all loads first: 16 in flight
            const int i = i0 + k * GN_THREADS;
            const size_t o = base + gn_offset(i < count ? i : 0, width, group_width);
            j[k] = i < count ? i % group_width : 0;
            d[k] = i < count ? dy[o] : T(0);         // dy = 0 past the part: adds nothing
            a[k] = i < count ? x[o] : m;
        }
#pragma unroll
        for (int k = 0; k < GN_CHUNK; ++k) {         // value order: a fixed order
            const T g = gamma ? d[k] * gamma[first_channel + j[k]] : d[k];
            sum_g += g;
            sum_gx += g * ((a[k] - m) * s);
        }
    }
    g_sums[t] = sum_g, gx_sums[t] = sum_gx;
    __syncthreads();
    for (int half = GN_THREADS / 2; half > 0; half >>= 1) {   // a tree fixed by the block size
        if (t < half) {
            sum_g += g_sums[t + half], sum_gx += gx_sums[t + half];
            g_sums[t] = sum_g, gx_sums[t] = sum_gx;
        }
        __syncthreads();
    }
    if (t != 0) return;
    const size_t o = (size_t)blockIdx.x * gridDim.y + blockIdx.y;
    part_g[o] = sum_g;
    part_gx[o] = sum_gx;
}

template <typename T>
__device__ __forceinline__ void gn_bwd_finish_body(const T* __restrict__ part_g, const T* __restrict__ part_gx,
                                                   T* __restrict__ centre, T* __restrict__ spread, int pairs,
                                                   int parts, int count) {
    const int q = blockIdx.x * GN_FINISH_TY + threadIdx.y;
    if (q >= pairs) return;                          // a whole warp
    T sum_g, sum_gx;
    warp_pair_sum<T>(part_g + (size_t)q * parts, part_gx + (size_t)q * parts, parts, 1, sum_g, sum_gx);
    if (threadIdx.x != 0) return;
    centre[q] = sum_g / T(count);
    spread[q] = sum_gx / T(count);
}

// -------------------------------------------------------------------------------- extern "C" kernels
// `vec` (uniform over the grid) picks the instantiation: VW values per access (16 bytes) or 1.
#define GROUPNORM_KERNELS(T, SUFFIX, VW)                                                                \
    extern "C" __global__ void __launch_bounds__(GN_THREADS)                                           \
    gn_fwd_stats_##SUFFIX(const T* x, T* part_mean, T* part_m2, int positions, int width, int group_width, \
                          int positions_per_part) {                                                     \
        gn_fwd_stats_body<T>(x, part_mean, part_m2, positions, width, group_width, positions_per_part);   \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * GN_FINISH_TY)                                    \
    gn_fwd_finish_##SUFFIX(const T* part_mean, const T* part_m2, T* mean, T* inv, int pairs, int parts,  \
                           int positions, int group_width, int positions_per_part, T epsilon) {         \
        gn_fwd_finish_body<T>(part_mean, part_m2, mean, inv, pairs, parts, positions, group_width,      \
                              positions_per_part, epsilon);                                             \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(GN_THREADS)                                           \
    gn_apply_##SUFFIX(const T* x, const T* mean, const T* inv, const T* gamma, const T* beta, T* y,     \
                      int samples, int positions, int width, int group_width, int vec) {                \
        if (vec == VW) gn_apply_body<T, VW>(x, mean, inv, gamma, beta, y, samples, positions, width, group_width); \
        else gn_apply_body<T, 1>(x, mean, inv, gamma, beta, y, samples, positions, width, group_width); \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * GN_TY)                                           \
    gn_bwd_params_##SUFFIX(const T* dy, const T* x, const T* mean, const T* inv, T* part_dgamma,        \
                           T* part_dbeta, int rows, int positions, int width, int group_width,          \
                           int rows_per_part) {                                                         \
        gn_bwd_params_body<T>(dy, x, mean, inv, part_dgamma, part_dbeta, rows, positions, width,        \
                              group_width, rows_per_part);                                              \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * GN_FINISH_TY)                                    \
    gn_bwd_params_finish_##SUFFIX(const T* part_dgamma, const T* part_dbeta, T* dgamma, T* dbeta,       \
                                  int parts, int width) {                                               \
        gn_bwd_params_finish_body<T>(part_dgamma, part_dbeta, dgamma, dbeta, parts, width);             \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(GN_THREADS)                                           \
    gn_bwd_stats_##SUFFIX(const T* dy, const T* x, const T* gamma, const T* mean, const T* inv,         \
                          T* part_g, T* part_gx, int positions, int width, int group_width,             \
                          int positions_per_part) {                                                     \
        gn_bwd_stats_body<T>(dy, x, gamma, mean, inv, part_g, part_gx, positions, width, group_width,   \
                             positions_per_part);                                                       \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * GN_FINISH_TY)                                    \
    gn_bwd_finish_##SUFFIX(const T* part_g, const T* part_gx, T* centre, T* spread, int pairs, int parts, \
                           int count) {                                                                 \
        gn_bwd_finish_body<T>(part_g, part_gx, centre, spread, pairs, parts, count);                    \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(GN_THREADS)                                           \
    gn_bwd_data_##SUFFIX(const T* dy, const T* x, const T* gamma, const T* mean, const T* inv,          \
                         const T* centre, const T* spread, T* dx, int samples, int positions, int width, \
                         int group_width, int vec) {                                                    \
        if (vec == VW) gn_bwd_data_body<T, VW>(dy, x, gamma, mean, inv, centre, spread, dx, samples,    \
                                               positions, width, group_width);                          \
        else gn_bwd_data_body<T, 1>(dy, x, gamma, mean, inv, centre, spread, dx, samples, positions,    \
                                    width, group_width);                                                \
    }

GROUPNORM_KERNELS(float, f32, 4)
GROUPNORM_KERNELS(double, f64, 2)
