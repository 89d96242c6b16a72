// column_sums.cuh: the fixed-order pair sums of the normalization kernels' gradients
// (normalization.cu, batchnorm.cu, groupnorm.cu).
//
// Each kernel there sums two quantities at once (dgamma's and dbeta's terms, or g's and g * xhat's)
// first per part of the rows, then over the parts. Both steps below add in an order fixed by the
// launch shape alone, so every run on every GPU gives the same bits.
#pragma once

#include "common.cuh"

// Block (32, TY): thread (x, y) holds a and b, its sums over its own rows of one column. Thread row 0
// adds the TY rows' sums in ascending y and writes them to out_a[o] and out_b[o] (a null pointer: not
// written; `valid` false: nothing written, for a column past the last). Every thread of the block must
// call it: it has a barrier.
template <typename T, int TY>
__device__ __forceinline__ void store_thread_rows_sum(T a, T b, bool valid, T* __restrict__ out_a,
                                                      T* __restrict__ out_b, size_t o) {
    __shared__ T sums_a[TY][32];
    __shared__ T sums_b[TY][32];
    sums_a[threadIdx.y][threadIdx.x] = a;
    sums_b[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y != 0 || !valid) return;
    for (int t = 1; t < TY; ++t) {                   // ascending thread row: a fixed order
        a += sums_a[t][threadIdx.x];
        b += sums_b[t][threadIdx.x];
    }
    if (out_a) out_a[o] = a;
    if (out_b) out_b[o] = b;
}

// One warp (threadIdx.x is the lane): lane l adds a[p * stride] and b[p * stride] for p = l, l + 32,
// ... < count in ascending p (a null pointer adds nothing), then the lanes' sums meet in a butterfly
// over offsets 16, 8, 4, 2, 1. Every lane ends with the totals.
template <typename T>
__device__ __forceinline__ void warp_pair_sum(const T* __restrict__ a, const T* __restrict__ b, int count,
                                              size_t stride, T& sum_a, T& sum_b) {
    sum_a = T(0), sum_b = T(0);
    for (int p = threadIdx.x; p < count; p += 32) {  // ascending part: a fixed order
        if (a) sum_a += a[p * stride];
        if (b) sum_b += b[p * stride];
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        sum_a += __shfl_xor_sync(DL_FULL_MASK, sum_a, offset);
        sum_b += __shfl_xor_sync(DL_FULL_MASK, sum_b, offset);
    }
}
