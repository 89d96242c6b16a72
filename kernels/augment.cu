// augment.cu: inverse-affine resampling of NHWC image batches (the forward of RandomTranslation,
// RandomRotation and RandomZoom), bilinear or nearest, with Keras 3's fill modes.
//
// Shapes (all contiguous, C innermost): x and y (N, H, W, C); m (N, 2, 3),
// one inverse map per image, of the images' dtype.
//
// What it computes (the same arithmetic as gpu_dl.layers.preprocessing.affine_resample, the reference):
// output pixel (w = column, h = row) of image n reads the input at
//   x_in = (m[n,0,0] * w + m[n,0,1] * h) + m[n,0,2]     (a column position)
//   y_in = (m[n,1,0] * w + m[n,1,1] * h) + m[n,1,2]     (a row position)
// each product and sum rounded once in T (no fused multiply-add), as the
// array path's separate multiplications and additions round; pixel centres
// sit at integer positions.
//   bilinear: per axis, lower = floor(pos), weights (1 - t, t) with
//     t = pos - lower on the nodes lower and lower + 1; the four neighbours
//     (row node, column node) are taken in the order (y0,x0), (y0,x1),
//     (y1,x0), (y1,x1), each value times (wy * wx), summed left to right.
//   nearest: one node per axis, rint(pos) (round half to even).
// Node indices outside [0, size) along an axis follow fill_mode:
//   reflect   k = i mod 2*size, then k if k < size else 2*size - 1 - k
//             (d c b a | a b c d | d c b a);
//   wrap      i mod size (a b c d | a b c d | a b c d);
//   nearest   clamp to [0, size - 1] (a a a a | a b c d | d d d d);
//   constant  a neighbour with either index outside reads fill_value
//             instead of a pixel (k k k k | a b c d | k k k k); it is still
//             multiplied by its weight, so bilinear blends k with the image
//             near the border.
// (mod: the non-negative remainder.) Zero-weight neighbours are multiplied
// too, so a NaN or Inf pixel spreads exactly as in the array path.
//
// Kernels (T = float / double, suffix _f32 / _f64):
//   affine_resample(x, m, y, N, H, W, C, groups, fill_mode, interpolation, fill_value)
//       fill_mode: 0 reflect, 1 wrap, 2 constant, 3 nearest (AUG_FILL_*);
//       interpolation: 0 bilinear, 1 nearest (AUG_INTERP_*); fill_value: T.
// Every element of y is written exactly once (no memset, no atomics): results
// are bitwise reproducible from run to run.
//
// Launch geometry: 1-D grid-stride loop, 256 threads per block,
// ceil(items / 256) blocks capped at 524280 (launch.grid_1d). An item is one
// output pixel (n, h, w) and one channel group g in [0, groups): its thread
// computes the pixel's position, the (up to) four neighbours' fixed indices,
// validity and weights once and then handles channels c = g, g + groups,
// g + 2*groups, ... < C. Items are ordered (n, h, w, g), channel group
// innermost, so the threads of a warp touch consecutive channels of
// neighbouring pixels: each of the four neighbour reads and the write of a
// warp are contiguous runs of memory. The launcher takes
// groups = ceil(C / ceil(C / 32)): up to 32 threads per pixel, each with
// ceil(C / groups) channels.
//
// Bytes per output element, S = sizeof(T): bilinear reads 4 neighbours
// (4*S, of which about S comes from DRAM: neighbouring output pixels share
// neighbours through L1/L2), nearest reads S; constant-mode neighbours
// outside the image read nothing; writes S. Per pixel and thread: 6 reads of
// m (cached), about 20 FLOPs of position and weight arithmetic. FLOPs per
// output element: 7 (bilinear: 4 multiplies, 3 adds), 0 (nearest).
// Memory-bound.
//
// Limits: x and y have fewer than 2**31 elements (32-bit offsets; the
// launcher checks); H, W >= 1 when N*H*W*C > 0 (the launcher launches
// nothing for an empty batch). Node indices are exact 64-bit integers for
// |position| < 2**62 (the array path converts to int64); beyond that, and
// for a NaN position, the index is clamped to +-2**62 before the fill mode
// applies (a NaN position gives NaN weights under bilinear): every read
// stays inside the image.
#include "common.cuh"

#define AUG_FILL_REFLECT 0
#define AUG_FILL_WRAP 1
#define AUG_FILL_CONSTANT 2
#define AUG_FILL_NEAREST 3
#define AUG_INTERP_BILINEAR 0
#define AUG_INTERP_NEAREST 1

// Rounded-once arithmetic (mul_rn, add_rn, sub_rn from common.cuh): an FMA's single rounding of
// a*b + c would move positions and sums off the array path's values.
__device__ __forceinline__ float aug_floor(float a) { return floorf(a); }
__device__ __forceinline__ double aug_floor(double a) { return floor(a); }
__device__ __forceinline__ float aug_rint(float a) { return rintf(a); }   // round half to even
__device__ __forceinline__ double aug_rint(double a) { return rint(a); }

// An integer-valued position as a 64-bit index, clamped to +-2**62 (NaN goes to a bound) so that
// index + 1 and the mod below cannot overflow.
template <typename T>
__device__ __forceinline__ long long aug_to_index(T v) {
    const T bound = T(4611686018427387904.0);   // 2**62, exact in float and double
    v = dl_max(dl_min(v, bound), -bound);
    return (long long)v;
}

// One interpolation node along one axis after fill_mode: an index in [0, size) and (constant mode)
// whether the unfixed index was inside.
struct AugNode {
    int index;
    bool valid;
};

__device__ __forceinline__ AugNode aug_fix(long long i, int size, int fill_mode) {
    if (i >= 0 && i < size) return AugNode{(int)i, true};   // the common case: no division
    switch (fill_mode) {
        case AUG_FILL_CONSTANT:
            return AugNode{i < 0 ? 0 : size - 1, false};   // index unused: the neighbour reads fill_value
        case AUG_FILL_NEAREST:
            return AugNode{i < 0 ? 0 : size - 1, true};
        case AUG_FILL_WRAP: {
            long long r = i % size;
            if (r < 0) r += size;
            return AugNode{(int)r, true};
        }
        default: {   // AUG_FILL_REFLECT: period 2*size, the second half read backwards
            const long long period = 2 * (long long)size;
            long long k = i % period;
            if (k < 0) k += period;
            return AugNode{(int)(k < size ? k : period - 1 - k), true};
        }
    }
}

template <typename T>
__device__ void affine_resample_body(const T* __restrict__ x, const T* __restrict__ m, T* __restrict__ y,
                                     int N, int H, int W, int C, int groups, int fill_mode, int interpolation,
                                     T fill_value) {
    const unsigned items = (unsigned)N * (unsigned)H * (unsigned)W * (unsigned)groups;
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < items; i += stride) {
        const int g = (int)(i % (unsigned)groups);
        const unsigned p = i / (unsigned)groups;   // output pixel, flat over (n, h, w)
        const int w = (int)(p % (unsigned)W);
        const unsigned nh = p / (unsigned)W;
        const int h = (int)(nh % (unsigned)H);
        const int n = (int)(nh / (unsigned)H);
        const T* mn = m + 6 * n;
        const T col = T(w), row = T(h);
        const T x_in = add_rn(add_rn(mul_rn(mn[0], col), mul_rn(mn[1], row)), mn[2]);
        const T y_in = add_rn(add_rn(mul_rn(mn[3], col), mul_rn(mn[4], row)), mn[5]);
        const T* image = x + (size_t)n * H * W * C;
        T* out = y + (size_t)p * C;
        if (interpolation == AUG_INTERP_NEAREST) {
            const AugNode ny = aug_fix(aug_to_index(aug_rint(y_in)), H, fill_mode);
            const AugNode nx = aug_fix(aug_to_index(aug_rint(x_in)), W, fill_mode);
            const bool valid = ny.valid && nx.valid;
            const T* src = image + (ny.index * W + nx.index) * C;
            for (int c = g; c < C; c += groups) out[c] = valid ? src[c] : fill_value;
        } else {
            const T fy = aug_floor(y_in), fx = aug_floor(x_in);
            const T wy1 = sub_rn(y_in, fy), wx1 = sub_rn(x_in, fx);
            const T wy0 = sub_rn(T(1), wy1), wx0 = sub_rn(T(1), wx1);
            const long long iy = aug_to_index(fy), ix = aug_to_index(fx);
            const AugNode y0 = aug_fix(iy, H, fill_mode), y1 = aug_fix(iy + 1, H, fill_mode);
            const AugNode x0 = aug_fix(ix, W, fill_mode), x1 = aug_fix(ix + 1, W, fill_mode);
            const T w00 = mul_rn(wy0, wx0), w01 = mul_rn(wy0, wx1);
            const T w10 = mul_rn(wy1, wx0), w11 = mul_rn(wy1, wx1);
            const bool v00 = y0.valid && x0.valid, v01 = y0.valid && x1.valid;
            const bool v10 = y1.valid && x0.valid, v11 = y1.valid && x1.valid;
            const T* s00 = image + (y0.index * W + x0.index) * C;
            const T* s01 = image + (y0.index * W + x1.index) * C;
            const T* s10 = image + (y1.index * W + x0.index) * C;
            const T* s11 = image + (y1.index * W + x1.index) * C;
            for (int c = g; c < C; c += groups) {
                const T a = v00 ? s00[c] : fill_value;
                const T b = v01 ? s01[c] : fill_value;
                const T d = v10 ? s10[c] : fill_value;
                const T e = v11 ? s11[c] : fill_value;
                T acc = mul_rn(a, w00);
                acc = add_rn(acc, mul_rn(b, w01));
                acc = add_rn(acc, mul_rn(d, w10));
                acc = add_rn(acc, mul_rn(e, w11));
                out[c] = acc;
            }
        }
    }
}

// -------------------------------------------------------------------------------- extern "C" kernels
#define AUGMENT_KERNELS(T, SUFFIX)                                                                      \
    extern "C" __global__ void affine_resample_##SUFFIX(const T* x, const T* m, T* y, int N, int H, int W, \
                                                        int C, int groups, int fill_mode,               \
                                                        int interpolation, T fill_value) {              \
        affine_resample_body<T>(x, m, y, N, H, W, C, groups, fill_mode, interpolation, fill_value);     \
    }

AUGMENT_KERNELS(float, f32)
AUGMENT_KERNELS(double, f64)
