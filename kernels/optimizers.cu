// optimizers.cu: one fused, in-place update kernel per optimizer rule (Keras 3's formulas).
//
// What it computes: one optimizer step for one variable. Every array is a
// flat contiguous vector of n elements of one dtype T (float or double): the
// variable `value`, its gradient `grad` (read only) and the optimizer's slots
// for that variable (read and written in place). Each kernel evaluates the
// same expression, in the same order of operations, as the NumPy path in
// gpu_dl/ops/optimizer_update.py, so that float32 results agree with NumPy's
// to rounding:
//   - every product is a separately rounded multiply (mul_rn below): the
//     default -fmad=true would otherwise fuse `a - b * c` into one FMA, which
//     rounds once where NumPy's two ufuncs round twice;
//   - division and sqrt are IEEE round-to-nearest (NVRTC's defaults
//     -prec-div=true, -prec-sqrt=true, -ftz=false);
//   - scalars arrive already rounded to T, computed on the host in double as
//     NumPy 2 casts a Python float: `one_minus_rho` is T(1 - rho), not
//     T(1) - T(rho);
//   - max() propagates NaN as numpy.maximum does (fmax would drop it and hide
//     a diverged step).
//
// Kernels (suffix _f32 / _f64; slot order as listed; n is an int):
//   sgd_update           (value, grad, lr, n)
//       value -= grad * lr
//   sgd_momentum_update  (value, grad, m, lr, momentum, nesterov, n)
//       m = m * momentum - grad * lr
//       value += nesterov ? m * momentum - grad * lr : m
//   rmsprop_update       (value, grad, velocity, momentum_slot, average_gradient,
//                         lr, rho, one_minus_rho, momentum, epsilon, use_momentum, centered, n)
//       v = v * rho + one_minus_rho * (grad * grad)
//       centered: a = a * rho + one_minus_rho * grad; d = v - a * a + epsilon, else d = v + epsilon
//       inc = lr * grad / sqrt(d)
//       use_momentum: m = m * momentum + inc; value -= m, else value -= inc
//       momentum_slot may be null unless use_momentum, average_gradient unless centered.
//   adagrad_update       (value, grad, accumulator, lr, epsilon, n)
//       acc += grad * grad; value -= lr * grad / sqrt(acc + epsilon)
//   adadelta_update      (value, grad, accumulated_grad, accumulated_delta_var, lr, rho, one_minus_rho,
//                         epsilon, n)
//       ag = ag * rho + one_minus_rho * (grad * grad)
//       delta = -(sqrt(ad + epsilon) * grad / sqrt(ag + epsilon))
//       ad = ad * rho + one_minus_rho * (delta * delta); value += lr * delta
//   adam_update          (value, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon,
//                         amsgrad, n)
//       m += (grad - m) * one_minus_beta_1; v += (grad * grad - v) * one_minus_beta_2
//       amsgrad: v_hat = max(v_hat, v) stands for v below (v_hat may be null otherwise)
//       value -= m * alpha / (sqrt(v) + epsilon)      alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
//   adamax_update        (value, grad, m, u, lr, one_minus_beta_1, beta_2, epsilon, bias_correction, n)
//       m += (grad - m) * one_minus_beta_1; u = max(u * beta_2, |grad|)
//       value -= lr * m / (bias_correction * (u + epsilon))   bias_correction = 1 - beta_1^t
//   nadam_update         (value, grad, m, v, lr, one_minus_beta_1, one_minus_beta_2, epsilon,
//                         c_m, c_g, c_v, n)
//       m and v as in Adam; m_hat = c_m * m + c_g * grad
//       value -= m_hat * lr / (sqrt(v / c_v) + epsilon)
//   lion_update          (value, grad, m, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, n)
//       value -= lr * sign(m * beta_1 + grad * one_minus_beta_1)     (sign(NaN) = NaN, sign(0) = 0)
//       m = m * beta_2 + grad * one_minus_beta_2
//   lamb_moments         (direction, grad, m, v, one_minus_beta_1, one_minus_beta_2, bias_correction_1,
//                         bias_correction_2, epsilon, n)
//       m += (grad - m) * one_minus_beta_1; v += (grad * grad - v) * one_minus_beta_2
//       direction = (m / bias_correction_1) / (sqrt(v / bias_correction_2) + epsilon)   (1 - beta_*^t)
//   lamb_apply           (value, direction, norms, lr, n)
//       ratio = norms[0] > 0 && norms[1] > 0 ? norms[0] / norms[1] : 1;  value -= (ratio * lr) * direction
//
// Lamb takes three launches per variable because its step is scaled by a trust ratio
// ||value|| / ||direction|| over the whole variable: lamb_moments writes the direction to a scratch
// array, a CuPy reduction (gpu_dl/ops/optimizer_update.py) writes the two norms to a 2-element device
// array, and lamb_apply reads them. A single fused kernel would need a grid-wide barrier (cooperative
// launch) or a second pass over m and v; the conventions keep one job per kernel, and reading the
// norms on the device keeps the host from waiting on every variable.
//
// Launch geometry (all kernels): 1-D grid-stride loop over 16-byte vectors
// (float4 / double2: W = 4 floats or 2 doubles per access) when every pointer
// in use is 16-byte aligned, then a scalar grid-stride loop over the last
// n % W elements; when any pointer is misaligned (a view at an odd offset)
// the scalar loop covers all n. Works for any blockDim.x and grid size; the
// launcher uses 256 threads and enough blocks for one vector per thread
// (launch.grid_1d caps the count). Consecutive threads touch consecutive
// vectors, so every warp access is coalesced.
//
// Bytes per element (S = sizeof(T), 4 or 8): read 1 + slots + 1 arrays, write
// 1 + slots arrays, each once:
//   sgd 3S, sgd_momentum 5S, rmsprop 5S (+2S momentum, +2S centered),
//   adagrad 5S, adadelta 7S, adam 7S (+2S amsgrad), adamax 7S, nadam 7S, lion 5S;
//   lamb_moments 7S (the scratch direction is loaded before it is overwritten: the driver loads
//   every array it stores), lamb_apply 3S + 2S for the norms; the CuPy reduction between them reads
//   value and direction and writes their squares (about 6S more): Lamb moves about 16S in all.
// FLOPs per element (sqrt and division counted as one each):
//   sgd 2, sgd_momentum 4 (nesterov 6), rmsprop 9 (+2 momentum, +5 centered),
//   adagrad 7, adadelta 17, adam 12 (+1 amsgrad), adamax 11, nadam 16, lion 10,
//   lamb_moments 11, lamb_apply 2 (+ 4 for the norms).
// About 1 FLOP per 2 bytes: every kernel is bound by memory bandwidth.
//
// Limits: n < 2**31 (launchers refuse more; indices are 32-bit unsigned, so
// i + stride cannot wrap). value, grad and the slots must not overlap. A flag
// set with a null slot pointer is a launcher error: the slot then reads as 0
// and is not stored.
//
// Status: run on an H100 80GB HBM3 on 2026-11-23: GPU tier of tests/test_optimizer_update.py passed,
// compute-sanitizer memcheck and racecheck clean, 103-116% of the measured copy bandwidth
// (profiling/results/).
// All kernels, lion_update, lamb_moments and lamb_apply included, again on 2026-11-24: tests passed,
// compute-sanitizer clean; Lion at 104% of the copy bandwidth, Lamb at 39%.
#include "common.cuh"

// mul_rn and nan_max (NumPy's rounding of a product, numpy.maximum) come from common.cuh.

// numpy.sign: -1, 0 or 1, and NaN for NaN (copysign would turn NaN and 0 into +-1).
template <typename T>
__device__ __forceinline__ T nan_sign(T x) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x); }

// ------------------------------------------------------------------ the driver

// W elements of one 16-byte access (float4 / double2 as a plain array, so one
// template body serves both dtypes and the compiler emits ld/st.global.v4.f32
// or .v2.f64).
template <typename T>
struct alignas(16) Pack16 {
    static constexpr int width = 16 / sizeof(T);
    T e[width];
};

// The arrays of one update: value and slots are read and written, grad is read.
// A null slot pointer is an absent slot, neither read nor written. SLOTS may be
// 0 (plain SGD); the pointer array keeps one entry so it is never zero-sized.
template <typename T, int SLOTS>
struct UpdateArrays {
    static constexpr int storage = SLOTS > 0 ? SLOTS : 1;
    T* value;
    const T* grad;
    T* slot[storage];
};

template <typename T, int SLOTS>
__device__ __forceinline__ bool all_aligned16(const UpdateArrays<T, SLOTS>& a) {
    unsigned long long bits = reinterpret_cast<unsigned long long>(a.value) |
                              reinterpret_cast<unsigned long long>(a.grad);
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) bits |= reinterpret_cast<unsigned long long>(a.slot[s]);   // null is aligned
    return (bits & 15ull) == 0;
}

// Applies `rule(value, grad, slot_values)` to every element: 16-byte vectors
// first, then the tail (or everything, when a pointer is misaligned). Each
// array element is loaded once and stored once.
template <typename T, int SLOTS, typename Rule>
__device__ __forceinline__ void update_every_element(const Rule& rule, const UpdateArrays<T, SLOTS>& a,
                                                     unsigned n) {
    using Pack = Pack16<T>;
    constexpr int W = Pack::width;
    constexpr int STORAGE = UpdateArrays<T, SLOTS>::storage;
    const unsigned stride = gridDim.x * blockDim.x;
    const unsigned first = blockIdx.x * blockDim.x + threadIdx.x;

    unsigned scalar_from = 0;
    if (all_aligned16(a)) {
        const unsigned vectors = n / W;
        for (unsigned i = first; i < vectors; i += stride) {
            Pack value = reinterpret_cast<const Pack*>(a.value)[i];
            const Pack grad = reinterpret_cast<const Pack*>(a.grad)[i];
            Pack slot[STORAGE] = {};
#pragma unroll
            for (int s = 0; s < SLOTS; ++s)
                if (a.slot[s] != nullptr) slot[s] = reinterpret_cast<const Pack*>(a.slot[s])[i];
#pragma unroll
            for (int k = 0; k < W; ++k) {
                T element_slot[STORAGE];
#pragma unroll
                for (int s = 0; s < STORAGE; ++s) element_slot[s] = slot[s].e[k];
                rule(value.e[k], grad.e[k], element_slot);
#pragma unroll
                for (int s = 0; s < STORAGE; ++s) slot[s].e[k] = element_slot[s];
            }
            reinterpret_cast<Pack*>(a.value)[i] = value;
#pragma unroll
            for (int s = 0; s < SLOTS; ++s)
                if (a.slot[s] != nullptr) reinterpret_cast<Pack*>(a.slot[s])[i] = slot[s];
        }
        scalar_from = vectors * W;
    }
    for (unsigned i = scalar_from + first; i < n; i += stride) {
        T value = a.value[i];
        const T grad = a.grad[i];
        T element_slot[STORAGE] = {};
#pragma unroll
        for (int s = 0; s < SLOTS; ++s)
            if (a.slot[s] != nullptr) element_slot[s] = a.slot[s][i];
        rule(value, grad, element_slot);
        a.value[i] = value;
#pragma unroll
        for (int s = 0; s < SLOTS; ++s)
            if (a.slot[s] != nullptr) a.slot[s][i] = element_slot[s];
    }
}

// ------------------------------------------------------------------- the rules
// Each rule updates one element: `value` and `slot[...]` in place, in the
// operation order of the NumPy path (parenthesised as NumPy evaluates it).

template <typename T>
struct SgdRule {
    T lr;
    __device__ __forceinline__ void operator()(T& value, T grad, T*) const { value = value - mul_rn(grad, lr); }
};

template <typename T>
struct SgdMomentumRule {   // slot: m
    T lr, momentum;
    int nesterov;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& m = slot[0];
        const T step = mul_rn(grad, lr);
        m = mul_rn(m, momentum) - step;
        value = nesterov ? value + (mul_rn(m, momentum) - step) : value + m;
    }
};

template <typename T>
struct RmspropRule {   // slots: velocity, momentum, average_gradient
    T lr, rho, one_minus_rho, momentum, epsilon;
    int use_momentum, centered;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& v = slot[0];
        v = mul_rn(v, rho) + mul_rn(one_minus_rho, mul_rn(grad, grad));
        T denominator;
        if (centered) {
            T& a = slot[2];
            a = mul_rn(a, rho) + mul_rn(one_minus_rho, grad);
            denominator = (v - mul_rn(a, a)) + epsilon;
        } else {
            denominator = v + epsilon;
        }
        const T increment = mul_rn(lr, grad) / dl_sqrt(denominator);
        if (use_momentum) {
            T& m = slot[1];
            m = mul_rn(m, momentum) + increment;
            value = value - m;
        } else {
            value = value - increment;
        }
    }
};

template <typename T>
struct AdagradRule {   // slot: accumulator
    T lr, epsilon;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& accumulator = slot[0];
        accumulator = accumulator + mul_rn(grad, grad);
        value = value - mul_rn(lr, grad) / dl_sqrt(accumulator + epsilon);
    }
};

template <typename T>
struct AdadeltaRule {   // slots: accumulated_grad, accumulated_delta_var
    T lr, rho, one_minus_rho, epsilon;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& accumulated_grad = slot[0];
        T& accumulated_delta = slot[1];
        accumulated_grad = mul_rn(accumulated_grad, rho) + mul_rn(one_minus_rho, mul_rn(grad, grad));
        const T delta = -(mul_rn(dl_sqrt(accumulated_delta + epsilon), grad) / dl_sqrt(accumulated_grad + epsilon));
        accumulated_delta = mul_rn(accumulated_delta, rho) + mul_rn(one_minus_rho, mul_rn(delta, delta));
        value = value + mul_rn(lr, delta);
    }
};

template <typename T>
struct AdamRule {   // slots: m, v, v_hat
    T alpha, one_minus_beta_1, one_minus_beta_2, epsilon;
    int amsgrad;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& m = slot[0];
        T& v = slot[1];
        m = m + mul_rn(grad - m, one_minus_beta_1);
        v = v + mul_rn(mul_rn(grad, grad) - v, one_minus_beta_2);
        T second_moment = v;
        if (amsgrad) {
            T& v_hat = slot[2];
            v_hat = nan_max(v_hat, v);
            second_moment = v_hat;
        }
        value = value - mul_rn(m, alpha) / (dl_sqrt(second_moment) + epsilon);
    }
};

template <typename T>
struct AdamaxRule {   // slots: m, u
    T lr, one_minus_beta_1, beta_2, epsilon, bias_correction;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& m = slot[0];
        T& u = slot[1];
        m = m + mul_rn(grad - m, one_minus_beta_1);
        u = nan_max(mul_rn(u, beta_2), dl_abs(grad));
        value = value - mul_rn(lr, m) / mul_rn(bias_correction, u + epsilon);
    }
};

template <typename T>
struct NadamRule {   // slots: m, v
    T lr, one_minus_beta_1, one_minus_beta_2, epsilon, c_m, c_g, c_v;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& m = slot[0];
        T& v = slot[1];
        m = m + mul_rn(grad - m, one_minus_beta_1);
        v = v + mul_rn(mul_rn(grad, grad) - v, one_minus_beta_2);
        const T m_hat = mul_rn(c_m, m) + mul_rn(c_g, grad);
        value = value - mul_rn(m_hat, lr) / (dl_sqrt(v / c_v) + epsilon);
    }
};

template <typename T>
struct LionRule {   // slot: m
    T lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2;
    __device__ __forceinline__ void operator()(T& value, T grad, T* slot) const {
        T& m = slot[0];
        value = value - mul_rn(lr, nan_sign(mul_rn(m, beta_1) + mul_rn(grad, one_minus_beta_1)));
        m = mul_rn(m, beta_2) + mul_rn(grad, one_minus_beta_2);
    }
};

template <typename T>
struct LambMomentsRule {   // `value` is the direction array (overwritten); slots: m, v
    T one_minus_beta_1, one_minus_beta_2, bias_correction_1, bias_correction_2, epsilon;
    __device__ __forceinline__ void operator()(T& direction, T grad, T* slot) const {
        T& m = slot[0];
        T& v = slot[1];
        m = m + mul_rn(grad - m, one_minus_beta_1);
        v = v + mul_rn(mul_rn(grad, grad) - v, one_minus_beta_2);
        direction = (m / bias_correction_1) / (dl_sqrt(v / bias_correction_2) + epsilon);
    }
};

template <typename T>
struct LambApplyRule {   // `grad` is the direction; no slots
    T step;              // trust ratio * lr, rounded as NumPy rounds (ratio * lr)
    __device__ __forceinline__ void operator()(T& value, T direction, T*) const {
        value = value - mul_rn(step, direction);
    }
};

// ----------------------------------------------------------------- the kernels
// One template body per kernel; the extern "C" names instantiate it for float and double.

template <typename T>
__device__ __forceinline__ void sgd_update(T* value, const T* grad, T lr, int n) {
    update_every_element(SgdRule<T>{lr}, UpdateArrays<T, 0>{value, grad, {nullptr}}, n);
}

template <typename T>
__device__ __forceinline__ void sgd_momentum_update(T* value, const T* grad, T* m, T lr, T momentum, int nesterov,
                                                    int n) {
    update_every_element(SgdMomentumRule<T>{lr, momentum, nesterov}, UpdateArrays<T, 1>{value, grad, {m}}, n);
}

template <typename T>
__device__ __forceinline__ void rmsprop_update(T* value, const T* grad, T* velocity, T* momentum_slot,
                                               T* average_gradient, T lr, T rho, T one_minus_rho, T momentum,
                                               T epsilon, int use_momentum, int centered, int n) {
    update_every_element(RmspropRule<T>{lr, rho, one_minus_rho, momentum, epsilon, use_momentum, centered},
                         UpdateArrays<T, 3>{value, grad, {velocity, momentum_slot, average_gradient}}, n);
}

template <typename T>
__device__ __forceinline__ void adagrad_update(T* value, const T* grad, T* accumulator, T lr, T epsilon, int n) {
    update_every_element(AdagradRule<T>{lr, epsilon}, UpdateArrays<T, 1>{value, grad, {accumulator}}, n);
}

template <typename T>
__device__ __forceinline__ void adadelta_update(T* value, const T* grad, T* accumulated_grad,
                                                T* accumulated_delta_var, T lr, T rho, T one_minus_rho, T epsilon,
                                                int n) {
    update_every_element(AdadeltaRule<T>{lr, rho, one_minus_rho, epsilon},
                         UpdateArrays<T, 2>{value, grad, {accumulated_grad, accumulated_delta_var}}, n);
}

template <typename T>
__device__ __forceinline__ void adam_update(T* value, const T* grad, T* m, T* v, T* v_hat, T alpha,
                                            T one_minus_beta_1, T one_minus_beta_2, T epsilon, int amsgrad, int n) {
    update_every_element(AdamRule<T>{alpha, one_minus_beta_1, one_minus_beta_2, epsilon, amsgrad},
                         UpdateArrays<T, 3>{value, grad, {m, v, v_hat}}, n);
}

template <typename T>
__device__ __forceinline__ void adamax_update(T* value, const T* grad, T* m, T* u, T lr, T one_minus_beta_1,
                                              T beta_2, T epsilon, T bias_correction, int n) {
    update_every_element(AdamaxRule<T>{lr, one_minus_beta_1, beta_2, epsilon, bias_correction},
                         UpdateArrays<T, 2>{value, grad, {m, u}}, n);
}

template <typename T>
__device__ __forceinline__ void nadam_update(T* value, const T* grad, T* m, T* v, T lr, T one_minus_beta_1,
                                             T one_minus_beta_2, T epsilon, T c_m, T c_g, T c_v, int n) {
    update_every_element(NadamRule<T>{lr, one_minus_beta_1, one_minus_beta_2, epsilon, c_m, c_g, c_v},
                         UpdateArrays<T, 2>{value, grad, {m, v}}, n);
}

template <typename T>
__device__ __forceinline__ void lion_update(T* value, const T* grad, T* m, T lr, T beta_1, T one_minus_beta_1,
                                            T beta_2, T one_minus_beta_2, int n) {
    update_every_element(LionRule<T>{lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2},
                         UpdateArrays<T, 1>{value, grad, {m}}, n);
}

template <typename T>
__device__ __forceinline__ void lamb_moments(T* direction, const T* grad, T* m, T* v, T one_minus_beta_1,
                                             T one_minus_beta_2, T bias_correction_1, T bias_correction_2,
                                             T epsilon, int n) {
    update_every_element(LambMomentsRule<T>{one_minus_beta_1, one_minus_beta_2, bias_correction_1,
                                            bias_correction_2, epsilon},
                         UpdateArrays<T, 2>{direction, grad, {m, v}}, n);
}

// norms = {||value||, ||direction||}, computed on the device before this launch; read here so that the
// host never waits for them. Keras's ratio: w / g where both norms are > 0, else 1 (NaN compares false).
template <typename T>
__device__ __forceinline__ void lamb_apply(T* value, const T* direction, const T* norms, T lr, int n) {
    const T w_norm = norms[0], g_norm = norms[1];
    const T ratio = (w_norm > T(0) && g_norm > T(0)) ? w_norm / g_norm : T(1);
    update_every_element(LambApplyRule<T>{mul_rn(ratio, lr)}, UpdateArrays<T, 0>{value, direction, {nullptr}}, n);
}

#define OPTIMIZER_KERNELS(T, SUFFIX)                                                                            \
    extern "C" __global__ void sgd_update_##SUFFIX(T* value, const T* grad, T lr, int n) {                     \
        sgd_update<T>(value, grad, lr, n);                                                                      \
    }                                                                                                           \
    extern "C" __global__ void sgd_momentum_update_##SUFFIX(T* value, const T* grad, T* m, T lr, T momentum,   \
                                                            int nesterov, int n) {                              \
        sgd_momentum_update<T>(value, grad, m, lr, momentum, nesterov, n);                                      \
    }                                                                                                           \
    extern "C" __global__ void rmsprop_update_##SUFFIX(T* value, const T* grad, T* velocity, T* momentum_slot, \
                                                       T* average_gradient, T lr, T rho, T one_minus_rho,      \
                                                       T momentum, T epsilon, int use_momentum, int centered,  \
                                                       int n) {                                                 \
        rmsprop_update<T>(value, grad, velocity, momentum_slot, average_gradient, lr, rho, one_minus_rho,       \
                          momentum, epsilon, use_momentum, centered, n);                                        \
    }                                                                                                           \
    extern "C" __global__ void adagrad_update_##SUFFIX(T* value, const T* grad, T* accumulator, T lr,          \
                                                       T epsilon, int n) {                                      \
        adagrad_update<T>(value, grad, accumulator, lr, epsilon, n);                                            \
    }                                                                                                           \
    extern "C" __global__ void adadelta_update_##SUFFIX(T* value, const T* grad, T* accumulated_grad,          \
                                                        T* accumulated_delta_var, T lr, T rho,                 \
                                                        T one_minus_rho, T epsilon, int n) {                    \
        adadelta_update<T>(value, grad, accumulated_grad, accumulated_delta_var, lr, rho, one_minus_rho,        \
                           epsilon, n);                                                                         \
    }                                                                                                           \
    extern "C" __global__ void adam_update_##SUFFIX(T* value, const T* grad, T* m, T* v, T* v_hat, T alpha,    \
                                                    T one_minus_beta_1, T one_minus_beta_2, T epsilon,          \
                                                    int amsgrad, int n) {                                       \
        adam_update<T>(value, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, amsgrad,   \
                       n);                                                                                      \
    }                                                                                                           \
    extern "C" __global__ void adamax_update_##SUFFIX(T* value, const T* grad, T* m, T* u, T lr,               \
                                                      T one_minus_beta_1, T beta_2, T epsilon,                  \
                                                      T bias_correction, int n) {                               \
        adamax_update<T>(value, grad, m, u, lr, one_minus_beta_1, beta_2, epsilon, bias_correction, n);         \
    }                                                                                                           \
    extern "C" __global__ void nadam_update_##SUFFIX(T* value, const T* grad, T* m, T* v, T lr,                \
                                                     T one_minus_beta_1, T one_minus_beta_2, T epsilon, T c_m,  \
                                                     T c_g, T c_v, int n) {                                     \
        nadam_update<T>(value, grad, m, v, lr, one_minus_beta_1, one_minus_beta_2, epsilon, c_m, c_g, c_v, n);  \
    }                                                                                                           \
    extern "C" __global__ void lion_update_##SUFFIX(T* value, const T* grad, T* m, T lr, T beta_1,             \
                                                    T one_minus_beta_1, T beta_2, T one_minus_beta_2, int n) {  \
        lion_update<T>(value, grad, m, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, n);              \
    }                                                                                                           \
    extern "C" __global__ void lamb_moments_##SUFFIX(T* direction, const T* grad, T* m, T* v,                  \
                                                     T one_minus_beta_1, T one_minus_beta_2,                    \
                                                     T bias_correction_1, T bias_correction_2, T epsilon,       \
                                                     int n) {                                                   \
        lamb_moments<T>(direction, grad, m, v, one_minus_beta_1, one_minus_beta_2, bias_correction_1,           \
                        bias_correction_2, epsilon, n);                                                         \
    }                                                                                                           \
    extern "C" __global__ void lamb_apply_##SUFFIX(T* value, const T* direction, const T* norms, T lr, int n) { \
        lamb_apply<T>(value, direction, norms, lr, n);                                                          \
    }

OPTIMIZER_KERNELS(float, f32)
OPTIMIZER_KERNELS(double, f64)
