// activation_math.cuh: the forward activation functions, shared by the kernel files that apply one.
//
// act_forward(x, kind, p0, p1, p2) is the switch over `kind` whose codes
// are listed in activations.cu (and in gpu_dl/ops/activation_kernels.py,
// KIND), with the helpers it needs (mul_rn, nan_max, nan_min, the
// sigmoid, elu and hard_sigmoid forms). activations.cu applies it in its
// bias + activation kernel; conv2d.cu in its fused epilogue, so a
// convolution's activation computes exactly what the elementwise kernel
// computes. Numerics: see activations.cu.
#pragma once
#include "common.cuh"

#define ACT_LINEAR 0
#define ACT_RELU 1
#define ACT_LEAKY_RELU 2
#define ACT_ELU 3
#define ACT_SELU 4
#define ACT_EXPONENTIAL 5
#define ACT_SIGMOID 6
#define ACT_SOFTPLUS 7
#define ACT_SILU 8
#define ACT_TANH 9
#define ACT_SOFTSIGN 10
#define ACT_HARD_SIGMOID 11
#define ACT_HARD_SILU 12
#define ACT_STEP 13

#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946

template <typename T>
__device__ __forceinline__ T act_sigmoid(T x) {
    const T e = dl_exp(-dl_abs(x));   // in (0, 1]: never overflows
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <typename T>
__device__ __forceinline__ T act_elu(T x, T alpha) {
    return x >= T(0) ? x : alpha * dl_expm1(nan_min(x, T(0)));
}

template <typename T>
__device__ __forceinline__ T act_hard_sigmoid(T x) {
    const T v = x / T(6) + T(0.5);
    return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
}

template <typename T>
__device__ __forceinline__ T act_forward(T x, int kind, T p0, T p1, T p2) {
    switch (kind) {
    case ACT_RELU: {
        T y = x > p2 ? x : T(0);
        if (p1 == p1) {   // p1 is NaN when there is no max_value
            // NumPy's clip: max with 0, then min with max_value; a NaN stays NaN.
            y = y < T(0) ? T(0) : y;
            y = y > p1 ? p1 : y;
        }
        if (p0 != T(0)) {
            y = y - mul_rn(p0, nan_max(p2 - x, T(0)));
        }
        return y;
    }
    case ACT_LEAKY_RELU: return nan_max(x, p0 * x);
    case ACT_ELU: return act_elu(x, p0);
    case ACT_SELU: return T(SELU_SCALE) * act_elu(x, T(SELU_ALPHA));
    case ACT_EXPONENTIAL: return dl_exp(x);
    case ACT_SIGMOID: return act_sigmoid(x);
    case ACT_SOFTPLUS:   // NumPy's logaddexp(x, 0)
        return x > T(0) ? x + dl_log1p(dl_exp(-x)) : dl_log1p(dl_exp(x));
    case ACT_SILU: return x * act_sigmoid(x);
    case ACT_TANH: return dl_tanh(x);
    case ACT_SOFTSIGN: return x / (T(1) + dl_abs(x));
    case ACT_HARD_SIGMOID: return act_hard_sigmoid(x);
    case ACT_HARD_SILU: return x * act_hard_sigmoid(x);
    case ACT_STEP: return x > T(0) ? T(1) : T(0);
    default: return x;   // ACT_LINEAR
    }
}
