// normalization.cu: layer normalization and RMS normalization over the trailing axes, forward and backward.
//
// Shapes: x, y, dy, dx (rows, width), C-contiguous, where rows is the product of
// the leading (not normalized) axes and width that of the normalized trailing
// axes; gamma, beta, scale, dgamma, dbeta (width,); mean, inv (rows,).
// Every array has x's dtype (T = float for _f32, double for _f64; float32
// statistics for float32 input, as the NumPy path keeps them).
//
// Kernels (suffix _f32 / _f64; `vec` is V below):
//   layernorm_fwd(x, gamma, beta, y, mean, inv, rows, width, epsilon, vec)
//       Keras's LayerNormalization: per row m = mean(x), v = mean((x - m)^2)
//       (two passes over the row, never E[x^2] - m^2, which cancels for rows
//       far from zero), inv = 1 / sqrt(v + epsilon),
//       y = (x - m) * (inv * gamma) + beta. gamma and beta may be null (ones,
//       zeros); mean and inv may be null (not written: inference).
//   rmsnorm_fwd(x, scale, y, inv, rows, width, epsilon, vec)
//       Keras's RMSNormalization: inv = 1 / sqrt(mean(x^2) + epsilon),
//       y = x * inv * scale; scale and inv may be null.
//   layernorm_bwd_data(dy, x, gamma, mean, inv, dx, rows, width, vec)
//       xhat = (x - m) * inv, g = dy * gamma:
//       dx = inv * (g - mean(g) - xhat * mean(g * xhat)). gamma may be null.
//   rmsnorm_bwd_data(dy, x, scale, inv, dx, rows, width, vec)
//       g = dy * scale: dx = inv * g - x * (inv^3 * mean(g * x)). scale may be null.
//   norm_bwd_params(dy, x, mean, inv, dgamma, dbeta, rows, width, rows_per_part)
//       Column sums over the rows of part p (rows [p * rows_per_part, ...)):
//       dgamma[p, c] = sum dy * xhat, dbeta[p, c] = sum dy, with
//       xhat = (x - mean) * inv (mean null: xhat = x * inv, RMSNormalization's
//       dscale). dgamma or dbeta null: not computed. With one part these are
//       the gradients; with more, (parts, width) partial sums for
//   norm_bwd_params_finish(partial_gamma, partial_beta, dgamma, dbeta, parts, width)
//       the sum over the parts of each column: lane l of the column's warp adds the parts l, l + 32,
//       ... in ascending order, then the 32 lane sums meet in a butterfly (offsets 16, 8, 4, 2, 1).
//   Every sum runs in an order fixed by the shapes alone (no atomics): the
//   same bits from run to run.
//
// Launch geometry.
//   Row kernels (*_fwd, *_bwd_data): block (TX, TY). TX threads share a row:
//   TX = the smallest power of two in [32, 1024] with TX * NORM_CACHE >=
//   width / V; TY = NORM_WARP_ROWS (4) rows per block when TX = 32 (a warp
//   per row, reductions by shuffles alone), else 1 (block reductions through
//   32 values of shared memory). Grid ceil(rows / TY). Thread t holds the
//   V-vectors t, t + TX, ... (NORM_CACHE of them) of its row in registers,
//   so a row of up to TX * NORM_CACHE * V values (16384 floats, 8192
//   doubles) is read from DRAM once; vectors beyond that are read again on
//   each pass (mostly L2 hits). V = 4 (float) or 2 (double), 16-byte loads
//   and stores, when width % V == 0 and every pointer is 16-byte aligned;
//   else 1 (the launcher decides and passes `vec`).
//   norm_bwd_params: block (32, NORM_PARAM_TY = 8), grid (ceil(width / 32),
//   parts). Thread (tx, ty) sums column blockIdx.x * 32 + tx over the rows
//   ty, ty + 8, ... of its part; the 8 partial sums meet in shared memory and
//   are added in ascending ty. A warp reads 32 consecutive columns of a row.
//   The launcher takes rows_per_part = max(64, isqrt(rows)) rounded up to a
//   multiple of 8: from the shapes alone, not from the device.
//   norm_bwd_params_finish: block (32, NORM_FINISH_TY = 8), grid ceil(width / 8): a warp per column,
//   so about sqrt(rows) parts take parts / 32 dependent adds per lane, not parts (one thread per
//   column left a few blocks, each a chain of ~1000 loads at a million rows, on the whole GPU).
//
// Bytes per element, S = sizeof(T) (DRAM, rows that fit the register cache):
//   layernorm_fwd, rmsnorm_fwd     read S, write S (+ 2S / S per row of statistics)
//   *_bwd_data                     read 2S (dy, x), write S
//   norm_bwd_params                read 2S (dy, x), write 2 * parts * S per column
// gamma / beta / scale are read once per row (L1/L2 hits). FLOPs per element:
// about 5 (forward), 10 (backward data), 4 (params). Memory-bound throughout.
//
// Status: tested on the emulated GPU and compiled with NVRTC only; not yet run
// on a GPU (not timed, not sanitized).
//
// Limits: rows * width < 2**31 (32-bit indices; the launcher checks);
// width >= 1; blockDim.x a power of two in [32, 1024] (NORM_MAX_THREADS);
// blockDim.y > 1 only with blockDim.x = 32.
#include "common.cuh"
#include "column_sums.cuh"

#define NORM_MAX_THREADS 1024
#define NORM_CACHE 4
#define NORM_WARP_ROWS 4
#define NORM_PARAM_TY 8
#define NORM_FINISH_TY 8

// gamma / beta as a vector at element c, or the constant a null pointer stands for.
template <typename T, int V>
__device__ __forceinline__ VecN<T, V> norm_param(const T* __restrict__ p, int c, T absent) {
    if (p) return vec_load<T, V>(p + c);
    VecN<T, V> a;
#pragma unroll
    for (int v = 0; v < V; ++v) a.v[v] = absent;
    return a;
}

// Sum over the threads of one row: a warp (blockDim.x == 32) by shuffles, else the block
// (blockDim.y == 1) through `scratch` (32 values), both returned to every thread of the row.
template <typename T>
__device__ __forceinline__ T row_sum(T v, T* scratch) {
    if (blockDim.x == 32) return warp_sum(v);
    return block_sum(v, scratch);
}

// One row's V-vectors: the first NORM_CACHE * blockDim.x in registers (`cache`), the rest read
// from memory wherever a pass needs them. `j` is a vector index, `k` its slot in the cache.
#define NORM_FOR_CACHED(k, j)                                                                           \
    _Pragma("unroll") for (int k = 0, j = threadIdx.x; k < NORM_CACHE; ++k, j += blockDim.x)           \
        if (j < nv)
#define NORM_FOR_TAIL(j) for (int j = threadIdx.x + NORM_CACHE * blockDim.x; j < nv; j += blockDim.x)

// ------------------------------------------------------------------------------------ forward
// CENTER: layer normalization (statistics about the mean, beta); else RMS normalization.
template <typename T, int V, bool CENTER>
__device__ __forceinline__ void norm_fwd_body(const T* __restrict__ x, const T* __restrict__ gamma,
                                              const T* __restrict__ beta, T* __restrict__ y,
                                              T* __restrict__ mean_out, T* __restrict__ inv_out, int rows,
                                              int width, T epsilon, T* scratch) {
    const int row = blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows) return;    // a whole warp (TY > 1 only with warp rows), or the whole block
    const int nv = width / V;
    const T* xr = x + (size_t)row * width;
    T* yr = y + (size_t)row * width;
    VecN<T, V> cache[NORM_CACHE];

    T mean = T(0);
    T acc = T(0);
    NORM_FOR_CACHED(k, j) {
        cache[k] = vec_load<T, V>(xr + j * V);
#pragma unroll
        for (int v = 0; v < V; ++v) acc += CENTER ? cache[k].v[v] : cache[k].v[v] * cache[k].v[v];
    }
    NORM_FOR_TAIL(j) {
        const VecN<T, V> a = vec_load<T, V>(xr + j * V);
#pragma unroll
        for (int v = 0; v < V; ++v) acc += CENTER ? a.v[v] : a.v[v] * a.v[v];
    }
    T square_mean = row_sum(acc, scratch) / T(width);
    if (CENTER) {
        // The second pass: squared deviations from the mean, from registers.
        mean = square_mean;
        acc = T(0);
        NORM_FOR_CACHED(k, j) {
#pragma unroll
            for (int v = 0; v < V; ++v) {
                const T d = cache[k].v[v] - mean;
                acc += d * d;
            }
        }
        NORM_FOR_TAIL(j) {
            const VecN<T, V> a = vec_load<T, V>(xr + j * V);
#pragma unroll
            for (int v = 0; v < V; ++v) {
                const T d = a.v[v] - mean;
                acc += d * d;
            }
        }
        square_mean = row_sum(acc, scratch) / T(width);
    }
    const T inv = T(1) / dl_sqrt(square_mean + epsilon);
    if (threadIdx.x == 0) {
        if (CENTER && mean_out) mean_out[row] = mean;
        if (inv_out) inv_out[row] = inv;
    }

    // y = (x - mean) * (inv * gamma) + beta as the NumPy path groups it; RMS: (x * inv) * scale.
    auto write = [&](int j, const VecN<T, V>& a) {
        const VecN<T, V> g = norm_param<T, V>(gamma, j * V, T(1));
        VecN<T, V> out;
        if (CENTER) {
            const VecN<T, V> b = norm_param<T, V>(beta, j * V, T(0));
#pragma unroll
            for (int v = 0; v < V; ++v) out.v[v] = (a.v[v] - mean) * (gamma ? inv * g.v[v] : inv) + b.v[v];
        } else {
#pragma unroll
            for (int v = 0; v < V; ++v) out.v[v] = gamma ? (a.v[v] * inv) * g.v[v] : a.v[v] * inv;
        }
        vec_store<T, V>(yr + j * V, out);
    };
    NORM_FOR_CACHED(k, j) write(j, cache[k]);
    NORM_FOR_TAIL(j) write(j, vec_load<T, V>(xr + j * V));
}

// ------------------------------------------------------------------------------- backward, data
template <typename T, int V, bool CENTER>
__device__ __forceinline__ void norm_bwd_data_body(const T* __restrict__ dy, const T* __restrict__ x,
                                                   const T* __restrict__ gamma, const T* __restrict__ mean_in,
                                                   const T* __restrict__ inv_in, T* __restrict__ dx, int rows,
                                                   int width, T* scratch) {
    const int row = blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows) return;
    const int nv = width / V;
    const size_t base = (size_t)row * width;
    const T mean = CENTER ? mean_in[row] : T(0);
    const T inv = inv_in[row];
    VecN<T, V> xc[NORM_CACHE], gc[NORM_CACHE];   // x and g = dy * gamma of the cached vectors

    auto load_g = [&](int j) {
        VecN<T, V> g = vec_load<T, V>(dy + base + j * V);
        if (gamma) {
            const VecN<T, V> p = vec_load<T, V>(gamma + j * V);
#pragma unroll
            for (int v = 0; v < V; ++v) g.v[v] *= p.v[v];
        }
        return g;
    };
    // CENTER: sums of g and of g * xhat; RMS: of g * x (the first sum unused).
    T sum_g = T(0), sum_gx = T(0);
    auto accumulate = [&](const VecN<T, V>& a, const VecN<T, V>& g) {
#pragma unroll
        for (int v = 0; v < V; ++v) {
            if (CENTER) {
                sum_g += g.v[v];
                sum_gx += g.v[v] * ((a.v[v] - mean) * inv);
            } else {
                sum_gx += g.v[v] * a.v[v];
            }
        }
    };
    NORM_FOR_CACHED(k, j) {
        xc[k] = vec_load<T, V>(x + base + j * V);
        gc[k] = load_g(j);
        accumulate(xc[k], gc[k]);
    }
    NORM_FOR_TAIL(j) accumulate(vec_load<T, V>(x + base + j * V), load_g(j));
    const T n = T(width);
    const T centre = CENTER ? row_sum(sum_g, scratch) / n : T(0);
    const T spread = row_sum(sum_gx, scratch) / n;
    const T cube = inv * inv * inv;

    auto write = [&](int j, const VecN<T, V>& a, const VecN<T, V>& g) {
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) {
            if (CENTER) {
                const T xhat = (a.v[v] - mean) * inv;
                out.v[v] = inv * (g.v[v] - centre - xhat * spread);
            } else {
                out.v[v] = inv * g.v[v] - a.v[v] * (cube * spread);
            }
        }
        vec_store<T, V>(dx + base + j * V, out);
    };
    NORM_FOR_CACHED(k, j) write(j, xc[k], gc[k]);
    NORM_FOR_TAIL(j) write(j, vec_load<T, V>(x + base + j * V), load_g(j));
}

// ----------------------------------------------------------------------------- backward, params
template <typename T>
__device__ __forceinline__ void norm_bwd_params_body(const T* __restrict__ dy, const T* __restrict__ x,
                                                     const T* __restrict__ mean, const T* __restrict__ inv,
                                                     T* __restrict__ dgamma, T* __restrict__ dbeta, int rows,
                                                     int width, int rows_per_part) {
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int first = blockIdx.y * rows_per_part;
    const int last = min(rows, first + rows_per_part);
    T sum_gamma = T(0), sum_beta = T(0);
    if (c < width) {
        for (int r = first + threadIdx.y; r < last; r += NORM_PARAM_TY) {
            const size_t i = (size_t)r * width + c;
            const T d = dy[i];
            if (dgamma) sum_gamma += d * ((x[i] - (mean ? mean[r] : T(0))) * inv[r]);
            sum_beta += d;
        }
    }
    store_thread_rows_sum<T, NORM_PARAM_TY>(sum_gamma, sum_beta, c < width, dgamma, dbeta,
                                            (size_t)blockIdx.y * width + c);
}

template <typename T>
__device__ __forceinline__ void norm_bwd_params_finish_body(const T* __restrict__ partial_gamma,
                                                            const T* __restrict__ partial_beta,
                                                            T* __restrict__ dgamma, T* __restrict__ dbeta,
                                                            int parts, int width) {
    const int c = blockIdx.x * NORM_FINISH_TY + threadIdx.y;
    if (c >= width) return;                       // a whole warp
    T sum_gamma, sum_beta;
    warp_pair_sum<T>(dgamma ? partial_gamma + c : nullptr, dbeta ? partial_beta + c : nullptr, parts, width,
                     sum_gamma, sum_beta);
    if (threadIdx.x != 0) return;
    if (dgamma) dgamma[c] = sum_gamma;
    if (dbeta) dbeta[c] = sum_beta;
}

// -------------------------------------------------------------------------------- extern "C" kernels
// `vec` (uniform over the grid) picks the instantiation: VW values per access (16 bytes) or 1.
#define NORMALIZATION_KERNELS(T, SUFFIX, VW)                                                            \
    extern "C" __global__ void __launch_bounds__(NORM_MAX_THREADS)                                     \
    layernorm_fwd_##SUFFIX(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* inv, int rows,  \
                           int width, T epsilon, int vec) {                                             \
        __shared__ T scratch[32];                                                                       \
        if (vec == VW) norm_fwd_body<T, VW, true>(x, gamma, beta, y, mean, inv, rows, width, epsilon, scratch); \
        else norm_fwd_body<T, 1, true>(x, gamma, beta, y, mean, inv, rows, width, epsilon, scratch);    \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(NORM_MAX_THREADS)                                     \
    rmsnorm_fwd_##SUFFIX(const T* x, const T* scale, T* y, T* inv, int rows, int width, T epsilon,      \
                         int vec) {                                                                     \
        __shared__ T scratch[32];                                                                       \
        if (vec == VW) norm_fwd_body<T, VW, false>(x, scale, nullptr, y, nullptr, inv, rows, width, epsilon, scratch); \
        else norm_fwd_body<T, 1, false>(x, scale, nullptr, y, nullptr, inv, rows, width, epsilon, scratch); \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(NORM_MAX_THREADS)                                     \
    layernorm_bwd_data_##SUFFIX(const T* dy, const T* x, const T* gamma, const T* mean, const T* inv,   \
                                T* dx, int rows, int width, int vec) {                                  \
        __shared__ T scratch[32];                                                                       \
        if (vec == VW) norm_bwd_data_body<T, VW, true>(dy, x, gamma, mean, inv, dx, rows, width, scratch); \
        else norm_bwd_data_body<T, 1, true>(dy, x, gamma, mean, inv, dx, rows, width, scratch);         \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(NORM_MAX_THREADS)                                     \
    rmsnorm_bwd_data_##SUFFIX(const T* dy, const T* x, const T* scale, const T* inv, T* dx, int rows,   \
                              int width, int vec) {                                                     \
        __shared__ T scratch[32];                                                                       \
        if (vec == VW) norm_bwd_data_body<T, VW, false>(dy, x, scale, nullptr, inv, dx, rows, width, scratch); \
        else norm_bwd_data_body<T, 1, false>(dy, x, scale, nullptr, inv, dx, rows, width, scratch);     \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * NORM_PARAM_TY)                                   \
    norm_bwd_params_##SUFFIX(const T* dy, const T* x, const T* mean, const T* inv, T* dgamma, T* dbeta, \
                             int rows, int width, int rows_per_part) {                                  \
        norm_bwd_params_body<T>(dy, x, mean, inv, dgamma, dbeta, rows, width, rows_per_part);           \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * NORM_FINISH_TY)                                  \
    norm_bwd_params_finish_##SUFFIX(const T* partial_gamma,                                             \
                                                               const T* partial_beta, T* dgamma,        \
                                                               T* dbeta, int parts, int width) {        \
        norm_bwd_params_finish_body<T>(partial_gamma, partial_beta, dgamma, dbeta, parts, width);       \
    }

NORMALIZATION_KERNELS(float, f32, 4)
NORMALIZATION_KERNELS(double, f64, 2)
