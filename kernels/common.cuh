// common.cuh: helpers shared by gpu_dl's kernel files.
//
// Included textually by the loader (gpu_dl/backend/kernels.py), which puts
// it behind #line directives so compile errors name this file.
//
// - Math wrappers overloaded on float and double, so one template body
//   serves the _f32 and _f64 kernels with the single- or double-precision
//   library call (never a silent promotion of float work to double).
// - Warp and block reductions (sum, max) built on __shfl_xor_sync; a block
//   reduction needs blockDim.x to be a multiple of 32 and at most 1024, and
//   a __shared__ scratch of 32 values.
// - Grid-stride loop bounds in 32-bit indices: launchers refuse arrays of
//   2**31 elements or more.
// - VecN<T, V>: V values moved as one 8- or 16-byte access (vec_load, vec_store).
// - chan_merge: Chan's merge of two (count, mean, M2) summaries; chan_fold: a chunk of values merged
//   into one (batchnorm.cu, groupnorm.cu).
#pragma once

#define DL_FULL_MASK 0xffffffffu

__device__ __forceinline__ float dl_exp(float x) { return expf(x); }
__device__ __forceinline__ double dl_exp(double x) { return exp(x); }
__device__ __forceinline__ float dl_expm1(float x) { return expm1f(x); }
__device__ __forceinline__ double dl_expm1(double x) { return expm1(x); }
__device__ __forceinline__ float dl_log(float x) { return logf(x); }
__device__ __forceinline__ double dl_log(double x) { return log(x); }
__device__ __forceinline__ float dl_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double dl_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float dl_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double dl_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float dl_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double dl_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float dl_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double dl_abs(double x) { return fabs(x); }
__device__ __forceinline__ float dl_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double dl_max(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float dl_min(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ double dl_min(double a, double b) { return fmin(a, b); }

// Rounded on their own: CUDA never contracts __fmul_rn / __fadd_rn (and the double forms) into an
// FMA with a neighbouring operation, so a product feeding an add rounds as NumPy's does.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

// NumPy's maximum and minimum: a NaN in either argument gives NaN (fmax/fmin would drop it).
template <typename T>
__device__ __forceinline__ T nan_max(T a, T b) { return (a > b || a != a) ? a : b; }
template <typename T>
__device__ __forceinline__ T nan_min(T a, T b) { return (a != a || a < b) ? a : b; }

template <typename T> __device__ __forceinline__ T dl_infinity();
template <> __device__ __forceinline__ float dl_infinity<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double dl_infinity<double>() { return __longlong_as_double(0x7ff0000000000000ll); }

template <typename T> __device__ __forceinline__ T dl_nan();
template <> __device__ __forceinline__ float dl_nan<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ double dl_nan<double>() { return __longlong_as_double(0x7ff8000000000000ll); }

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(DL_FULL_MASK, v, offset);
    return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = dl_max(v, __shfl_xor_sync(DL_FULL_MASK, v, offset));
    return v;
}

// Sum over the block, returned to every thread. `scratch` holds 32 values;
// it may be reused right after the call returns (the trailing barrier
// guarantees every warp has read the total).
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T total = lane < warps ? scratch[lane] : T(0);
    total = warp_sum(total);
    __syncthreads();
    return total;
}

template <typename T>
__device__ __forceinline__ T block_max(T v, T* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T total = lane < warps ? scratch[lane] : -dl_infinity<T>();
    total = warp_max(total);
    __syncthreads();
    return total;
}

// V values of type T loaded or stored as one access: the alignment makes the compiler emit a single
// 8- or 16-byte instruction (launchers pass V > 1 only for pointers aligned to V * sizeof(T)).
template <typename T, int V>
struct alignas(sizeof(T) * V) VecN {
    T v[V];
};

template <typename T, int V>
__device__ __forceinline__ VecN<T, V> vec_load(const T* __restrict__ p) {
    return *reinterpret_cast<const VecN<T, V>*>(p);
}

template <typename T, int V>
__device__ __forceinline__ void vec_store(T* __restrict__ p, const VecN<T, V>& a) {
    *reinterpret_cast<VecN<T, V>*>(p) = a;
}

// Chan's merge of (n_b, mean_b, m2_b) into (n_a, mean_a, m2_a): the count, mean and sum of squared
// deviations of the union. An empty side leaves the other as it is.
template <typename T>
__device__ __forceinline__ void chan_merge(int& n_a, T& mean_a, T& m2_a, int n_b, T mean_b, T m2_b) {
    if (n_b == 0) return;
    if (n_a == 0) {
        n_a = n_b, mean_a = mean_b, m2_a = m2_b;
        return;
    }
    const int n = n_a + n_b;
    const T share = T(n_b) / T(n);
    const T delta = mean_b - mean_a;
    mean_a += delta * share;
    m2_a += m2_b + delta * delta * (T(n_a) * share);
    n_a = n;
}

// Folds v[0], ..., v[m - 1] (1 <= m <= K; the rest hold 0) into (n, mean, m2): the chunk's mean and squared
// deviations from it in two passes over registers, never E[x^2] - m^2, then Chan's merge.
template <typename T, int K>
__device__ __forceinline__ void chan_fold(const T (&v)[K], int m, int& n, T& mean, T& m2) {
    T sum = T(0);
#pragma unroll
    for (int k = 0; k < K; ++k) sum += v[k];
    const T chunk_mean = sum / T(m);
    T chunk_m2 = T(0);
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const T d = k < m ? v[k] - chunk_mean : T(0);
        chunk_m2 += d * d;
    }
    chan_merge(n, mean, m2, m, chunk_mean, chunk_m2);
}
