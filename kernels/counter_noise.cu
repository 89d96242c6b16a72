// counter_noise.cu: a counter-based random stream drawn on the device, bit for bit what the NumPy
// function of gpu_dl/ops/counter_noise.py computes on the host (the reference), so one seed gives
// one result on either backend. RandomElasticTransform's displacement noise is drawn here.
//
// The stream (SplitMix64, Steele, Lea and Flood 2014, with Vigna's finalizer constants): for a
// 64-bit key, word j (j = 0, 1, 2, ...) is
//   z = key + (j + 1) * 0x9E3779B97F4A7C15                      (mod 2**64)
//   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//   z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//   word = z ^ (z >> 31)
// all in unsigned 64-bit arithmetic that wraps; each word depends on its index only, so any
// thread computes any word.
// Approximately standard normal value i (a sum of 12 uniforms, the Irwin-Hall approximation):
// words 2i and 2i+1 each give six 10-bit fields (bits 0-59; bits 60-63 unused); S is the sum of
// the 12 fields, an integer in [0, 12276], and the value is (S - 6138) / 1024: mean 0, variance
// 1 - 2**-20, bounded by 6 in magnitude, on a grid of 2**-10. Integer steps only until the one
// conversion of S - 6138 (|.| <= 6138) to T and the multiplication by 2**-10, both exact in float
// and double, so the value has no rounding at all.
//
// Kernels:
//   counter_words_u64(out, count, key): out (count,) uint64, word j of key at j.
//   counter_normal_{f32,f64}(out, count, key): out (count,) T, normal value i of key at i.
// Every element is written exactly once (no memset, no atomics): bitwise reproducible.
//
// Launch geometry: 1-D grid-stride loop, 256 threads per block, ceil(count / 256) blocks capped at
// 524280 (launch.grid_1d); one output element per thread and iteration, 64-bit indices.
//
// Bytes per output element: none read; writes 8 (words), 4 or 8 (normals). Integer operations per
// element: about 12 per word (3 multiplies of 64 bits), plus 10 for the fields of a normal value.
// Bound by the integer multiplies at small sizes, by the writes at large ones.
//
// Limits: count < 2**31 (the launcher refuses more, as every launcher does; the kernels' own
// index arithmetic is 64-bit). Streams of different keys are the same
// sequence at different offsets: two draws overlap only if their keys lie within their lengths of
// each other along it, which for keys mixed from distinct seed pairs has a chance of about
// length / 2**64.
#include "common.cuh"

#define CN_GAMMA 0x9E3779B97F4A7C15ull
#define CN_FIELDS 0x003FF003FF003FFull        // three 10-bit fields, at bits 0, 20 and 40

__device__ __forceinline__ unsigned long long counter_word(unsigned long long key, unsigned long long j) {
    unsigned long long z = key + (j + 1ull) * CN_GAMMA;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// The sum of the six 10-bit fields of w0 and of w1: pairs of fields added in place, then the three
// 20-bit lanes (each at most 4 * 1023) added.
__device__ __forceinline__ long long counter_field_sum(unsigned long long w0, unsigned long long w1) {
    const unsigned long long t = (w0 & CN_FIELDS) + ((w0 >> 10) & CN_FIELDS)
                                 + (w1 & CN_FIELDS) + ((w1 >> 10) & CN_FIELDS);
    return (long long)((t & 0xFFFFFull) + ((t >> 20) & 0xFFFFFull) + (t >> 40));
}

extern "C" __global__ void counter_words_u64(unsigned long long* __restrict__ out, long long count,
                                             unsigned long long key) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)gridDim.x * blockDim.x) {
        out[i] = counter_word(key, (unsigned long long)i);
    }
}

template <typename T>
__device__ __forceinline__ void counter_normal(T* __restrict__ out, long long count, unsigned long long key) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)gridDim.x * blockDim.x) {
        const unsigned long long j = 2ull * (unsigned long long)i;
        const long long s = counter_field_sum(counter_word(key, j), counter_word(key, j + 1ull)) - 6138;
        out[i] = mul_rn((T)s, (T)(1.0 / 1024.0));      // both exact: |s| <= 6138
    }
}

extern "C" __global__ void counter_normal_f32(float* __restrict__ out, long long count, unsigned long long key) {
    counter_normal<float>(out, count, key);
}

extern "C" __global__ void counter_normal_f64(double* __restrict__ out, long long count, unsigned long long key) {
    counter_normal<double>(out, count, key);
}
