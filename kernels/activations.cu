// activations.cu: elementwise activations, forward (with a layer's bias add fused in) and backward.
//
// Shapes: z, y, dy, dz are contiguous arrays of n elements; viewed as
// (n / columns, columns) rows, bias has `columns` elements (Dense's (units,)).
//
//   bias_activation_fwd_{f32,f64}(z, bias or null, y, n, columns, write_z, kind, p0, p1, p2)
//       z[i] += bias[i % columns] (in place, when bias is given and write_z is
//       nonzero; a layer whose backward reads y alone skips that store);
//       y[i] = f(z[i]). The write_z argument has not run on a GPU yet.
//       y is a separate output for every kind except the identity, whose
//       launcher passes y = z (NumPy's linear also returns its input): each
//       thread reads its element before writing it, so that alias is safe.
//   activation_bwd_{f32,f64}(z, y, dy, dz, n, kind, p0, p1, p2)
//       dz[i] = dy[i] * f'(z[i]), from z or y, whichever the formula needs: y for
//       exponential, sigmoid and tanh, and for relu without a negative slope and
//       with a threshold >= 0 (relu6 included) and leaky_relu with a slope > 0,
//       whose masks y decides exactly as z does. That relu/leaky_relu reading of
//       y has not run on a GPU yet (emulator and NVRTC compilation only).
//
// `kind` picks the function (one uniform switch; codes in
// gpu_dl/ops/activation_kernels.py), p0..p2 its parameters:
//   0 linear; 1 relu and relu6 (p0 negative_slope, p1 max_value or NaN for
//   none, p2 threshold); 2 leaky_relu (p0 slope); 3 elu (p0 alpha); 4 selu;
//   5 exponential; 6 sigmoid; 7 softplus; 8 silu; 9 tanh; 10 softsign;
//   11 hard_sigmoid; 12 hard_silu; 13 step (gradient 0).
// relu's "no max_value" is NaN, not +inf: NumPy's relu does not clip at all
// then, and clipping to [0, +inf] would turn the outputs in (threshold, 0)
// of a negative threshold into 0 and zero their gradient.
//
// Numerics are those of gpu_dl/ops/elementwise.py: its overflow-safe forms
// (sigmoid through exp(-|x|), softplus as NumPy's logaddexp(x, 0), elu
// through expm1 of min(x, 0)), its values at the boundary points (relu's
// threshold and max_value, hard_sigmoid's +-3, 0 for leaky_relu and elu),
// NaN in -> NaN out where NumPy propagates it, and every product that feeds
// an add rounded on its own (mul_rn) as NumPy rounds it: a fused multiply-add
// in 1 - y*y would differ most where the result is smallest. What is left
// is the libm difference (CUDA's expf/tanhf/log1pf against NumPy's, an ulp
// or two).
//
// Launch geometry (both kernels): 1-D grid-stride loop, 256 threads per
// block, ceil(n / 256) blocks capped at 524280 (launch.grid_1d);
// consecutive threads take consecutive elements, so every warp access is
// coalesced.
// Per element, S = sizeof(T):
//   forward  reads S (z) [+ S bias, from L1/L2: `columns` distinct values],
//            writes S (y) [+ S z when bias is given and write_z]; the identity with a
//            bias writes z alone (y is z), without one it launches nothing.
//   backward reads 2S (dy, and z, or y for exponential/sigmoid/tanh and the
//            relu/leaky_relu cases above; step reads nothing) and writes S.
// FLOPs: 1-20 per element (an exp or log1p at most twice, silu's gradient
// the most); an integer modulo for the bias column. Memory-bound for every
// kind.
//
// Limits: n < 2**31 (the launcher checks); columns >= 1; one kind and one
// parameter set per launch.
#include "common.cuh"

// act_forward and its helpers (ACT_* codes, ...) live in activation_math.cuh, shared with
// conv2d.cu's fused epilogue; mul_rn and nan_max in common.cuh.
#include "activation_math.cuh"

template <typename T>
__device__ __forceinline__ T act_elu_grad(T x, T alpha) {
    return x >= T(0) ? T(1) : alpha * dl_exp(nan_min(x, T(0)));
}

template <typename T>
__device__ __forceinline__ T act_backward(T x, T y, T dy, int kind, T p0, T p1, T p2) {
    switch (kind) {
    case ACT_RELU: {
        bool passes = x > p2;
        if (p1 == p1) passes = passes && x > T(0) && x < p1;
        T slope = passes ? T(1) : T(0);
        if (p0 != T(0)) slope = slope + mul_rn(p0, x < p2 ? T(1) : T(0));
        return dy * slope;
    }
    case ACT_LEAKY_RELU: {
        const bool above = p0 <= T(1) ? x > T(0) : x < T(0);
        return dy * (above ? T(1) : p0);
    }
    case ACT_ELU: return dy * act_elu_grad(x, p0);
    case ACT_SELU: return T(SELU_SCALE) * (dy * act_elu_grad(x, T(SELU_ALPHA)));
    case ACT_EXPONENTIAL: return dy * y;
    case ACT_SIGMOID: return dy * y * (T(1) - y);
    case ACT_SOFTPLUS: return dy * act_sigmoid(x);
    case ACT_SILU: {
        const T s = act_sigmoid(x);
        return dy * (s + mul_rn(mul_rn(x, s), T(1) - s));
    }
    case ACT_TANH: return dy * (T(1) - mul_rn(y, y));
    case ACT_SOFTSIGN: {
        const T d = T(1) + dl_abs(x);
        return dy / (d * d);
    }
    case ACT_HARD_SIGMOID: return dy * (x > T(-3) && x < T(3) ? T(1) : T(0)) / T(6);
    case ACT_HARD_SILU: {
        const T inside = x > T(-3) && x < T(3) ? T(1) : T(0);
        return dy * (act_hard_sigmoid(x) + x * inside / T(6));
    }
    case ACT_STEP: return T(0);
    default: return dy;   // ACT_LINEAR
    }
}

template <typename T>
__device__ void bias_activation_fwd(T* z, const T* __restrict__ bias, T* y, int n, int columns, int write_z,
                                    int kind, T p0, T p1, T p2) {
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n; i += stride) {
        T v = z[i];
        if (bias != nullptr) {
            v += bias[i % (unsigned)columns];
            if (write_z) z[i] = v;
        }
        y[i] = act_forward(v, kind, p0, p1, p2);
    }
}

template <typename T>
__device__ void activation_bwd(const T* __restrict__ z, const T* __restrict__ y, const T* __restrict__ dy,
                               T* __restrict__ dz, int n, int kind, T p0, T p1, T p2) {
    // Load only what the formula reads (uniform across the grid): one array fewer of the three inputs
    // for every kind, a quarter of the kernel's traffic; step's zero gradient reads nothing.
    // y_as_x: relu without a slope and with a threshold >= 0, and leaky_relu with a slope > 0, compare
    // y where they compare z, which gives the same mask bit for bit (why: relu_gradient_from_output and
    // leaky_relu_gradient_from_output in gpu_dl/ops/elementwise.py), so a layer need not keep z for them.
    const bool y_as_x = (kind == ACT_RELU && p0 == T(0) && p2 >= T(0)) || (kind == ACT_LEAKY_RELU && p0 > T(0));
    const bool reads_y = y_as_x || kind == ACT_EXPONENTIAL || kind == ACT_SIGMOID || kind == ACT_TANH;
    const bool reads_z = !reads_y && kind != ACT_LINEAR && kind != ACT_STEP;
    const bool reads_dy = kind != ACT_STEP;
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n; i += stride) {
        const T out = reads_y ? y[i] : T(0);
        const T x = reads_z ? z[i] : (y_as_x ? out : T(0));
        const T grad = reads_dy ? dy[i] : T(0);
        dz[i] = act_backward(x, out, grad, kind, p0, p1, p2);
    }
}

#define ACTIVATION_KERNELS(T, SUFFIX)                                                                   \
    extern "C" __global__ void bias_activation_fwd_##SUFFIX(T* z, const T* bias, T* y, int n, int columns, \
                                                            int write_z, int kind, T p0, T p1, T p2) { \
        bias_activation_fwd<T>(z, bias, y, n, columns, write_z, kind, p0, p1, p2);                      \
    }                                                                                                   \
    extern "C" __global__ void activation_bwd_##SUFFIX(const T* z, const T* y, const T* dy, T* dz, int n, \
                                                       int kind, T p0, T p1, T p2) {                   \
        activation_bwd<T>(z, y, dy, dz, n, kind, p0, p1, p2);                                           \
    }

ACTIVATION_KERNELS(float, f32)
ACTIVATION_KERNELS(double, f64)
