// lstm_cell.cu: the elementwise cells of LSTM and GRU (reset_after), forward and backward, and a
// persistent LSTM forward and backward that each run a whole sequence in one launch for small hidden
// sizes.
//
// Notation: N batch, U units, S = sizeof(T), sigma the sigmoid (overflow-safe, act_sigmoid of
// activation_math.cuh), tanh as dl_tanh. Every array is contiguous, row-major. Gate blocks lie
// along the last axis, each U wide: LSTM (N, 4U) in the order i, f, g (Keras's "c"), o; GRU
// (N, 3U) in the order z, r, h. The caller computes the matrix products (cuBLAS); these kernels
// do what follows them.
//
// Kernels (T = float / double, suffix _f32 / _f64):
//   lstm_cell_fwd(xw, hr, c_prev, h, c, gates, N, U)
//       xw, hr (N, 4U): x_t @ kernel + bias and h_{t-1} @ recurrent_kernel; c_prev, h, c (N, U);
//       gates (N, 4U) receives the activated i, f, g, o.
//       z = xw + hr; i = sigma(z_i); f = sigma(z_f); g = tanh(z_g); o = sigma(z_o);
//       c = f*c_prev + i*g; h = o*tanh(c).
//       c may be c_prev itself (each thread reads its element before writing it).
//   lstm_cell_bwd(dh, dc_next or null, gates, c, c_prev, dz, dc_prev, N, U)
//       dh (N, U): the whole gradient of h_t; dc_next (N, U): that of c_t from step t+1 (null:
//       zeros); gates (N, 4U) and c = c_t, c_prev = c_{t-1} from the forward.
//       tc = tanh(c); dc = dh*o*(1 - tc^2) + dc_next; dz = [dc*g*i*(1-i), dc*c_prev*f*(1-f),
//       dc*i*(1-g^2), dh*tc*o*(1-o)] (N, 4U); dc_prev = dc*f (N, U).
//       dc_prev may be dc_next itself.
//   gru_cell_fwd(xw, hr, h_prev, h, gates, N, U)
//       xw (N, 3U) = x_t @ kernel + bias[0]; hr (N, 3U) = h_{t-1} @ recurrent_kernel + bias[1]
//       (the caller adds bias[1]; the kernel takes no bias).
//       z = sigma(xw_z + hr_z); r = sigma(xw_r + hr_r); hh = tanh(xw_h + r*hr_h);
//       h = z*h_prev + (1-z)*hh; gates (N, 4U) receives z, r, hh and hr_h (what backward needs).
//   gru_cell_bwd(dh, gates, h_prev, dxw, dhr, dh_prev, N, U)
//       da_h = dh*(1-z)*(1-hh^2); da_z = dh*(h_prev-hh)*z*(1-z); da_r = da_h*hr_h*r*(1-r);
//       dxw = [da_z, da_r, da_h] (N, 3U); dhr = [da_z, da_r, da_h*r] (N, 3U);
//       dh_prev = dh*z (N, U), the direct part: the caller adds dhr @ recurrent_kernel^T.
//       dh_prev may be dh itself.
//   lstm_persistent_fwd(xw, R, h0, c0, h_seq, c_seq, gates, steps, N, U, NB)
//       The whole forward of a sequence: xw (steps, N, 4U) precomputed input projections (bias
//       included), R (U, 4U) the recurrent kernel, h0, c0 (N, U); writes h_seq and c_seq
//       (steps + 1, N, U) with index 0 = h0, c0 (h0 and c0 may be h_seq[0] and c_seq[0]
//       themselves) and index t + 1 the state after step t, and gates (steps, N, 4U) the
//       activated i, f, g, o of every step, as lstm_cell_fwd writes them. Step t computes
//       hr = h_t @ R as a sum over k in ascending order in T (fused multiply-adds), then exactly
//       lstm_cell_fwd's arithmetic.
//   lstm_persistent_bwd(dh_seq, dh_last, dc_last, gates, c_seq, R, dz, dh0, dc0, steps, N, U, NB)
//       The whole backward of a sequence through the cells and the recurrent products: dh_seq
//       (steps, N, U) the gradient of h_1..h_T from above (null: none, only the last state is
//       used); dh_last, dc_last (N, U) extra gradients of h_T and c_T (null: zeros); gates
//       (steps, N, 4U) and c_seq (steps + 1, N, U) as the forward wrote them; R (U, 4U). Writes dz
//       (steps, N, 4U), every step's lstm_cell_bwd output, and dh0, dc0 (N, U), the gradients of the
//       initial state. Step t, from steps - 1 down to 0: dh = dh_next + dh_seq[t] (dh_next = dh_last
//       at first); lstm_cell_bwd's arithmetic; dh_next = dz_t @ R^T as a sum over j in ascending order
//       in T (fused multiply-adds), the step loop's cuBLAS product summed in another order.
//
// Numerics: the cells compute what gpu_dl/ops/rnn.py's array arithmetic computes (NumPy's order
// of operations, products that feed an add rounded on their own with mul_rn so that none is
// contracted into an FMA, products evaluated left to right as NumPy evaluates them). What is
// left is the libm difference (CUDA's expf/tanhf against NumPy's, an ulp or two per call, which
// the products carry into the outputs: a few ulps of float32, about 1e-15 relative in float64).
// The persistent kernel's recurrent product sums in another order than cuBLAS does, so its
// outputs differ from the step loop's by the rounding of a U-term dot product per step.
//
// Launch geometry.
//   Cell kernels: 1-D grid-stride loop over the N*U (n, u) pairs, 256 threads per block,
//   ceil(N*U / 256) blocks capped at 524280 (launch.grid_1d). Thread (n, u) reads its 4 (3)
//   gate values at n*4U + u + k*U; consecutive threads take consecutive u, so every warp access
//   of each gate block is one contiguous run.
//   Persistent forward: one block per tile of NB samples (the launcher picks NB), blockDim =
//   NB*U rounded up to a multiple of 32 (at most LSTM_PERSISTENT_MAX_THREADS), one thread per
//   (sample, unit); dynamic shared memory holds R (4U*U values) and two buffers of the tile's
//   h (2*NB*U values); c stays in a register of its thread. Per step: each thread starts the
//   loads of its 4 xw values of the next step, forms its 4 dot products (h broadcast from
//   shared memory, R read at k*4U + g*U + u: consecutive u, no bank conflicts), updates its
//   cell, writes h into the other h buffer, and one barrier ends the step.
//   Persistent backward: the same grid and blocks; dynamic shared memory holds R transposed (4U*U
//   values) and two buffers of the tile's dz (2*NB*4U values); dh_next and dc stay in registers.
//   Per step: each thread forms its cell's gradient (the inputs loaded during the step before),
//   writes its 4 dz values to global memory and to the shared buffer, starts the loads of the
//   previous step's inputs; one barrier; then its dot product of length 4U (dz broadcast, R^T read
//   at j*U + u: consecutive u, no bank conflicts).
//
// Bytes per (n, u) per step:
//   lstm_cell_fwd  reads 9S (xw, hr 4S each, c_prev), writes 6S (h, c, gates 4S)
//   lstm_cell_bwd  reads 8S (dh, dc_next, gates 4S, c, c_prev; 7S without dc_next), writes 5S
//   gru_cell_fwd   reads 7S (xw, hr 3S each, h_prev), writes 5S (h, gates 4S)
//   gru_cell_bwd   reads 6S (dh, gates 4S, h_prev), writes 7S (dxw, dhr 3S each, dh_prev)
//   lstm_persistent_fwd reads 4S (xw) and writes 6S (h, c, gates 4S) from and to DRAM; R is
//   read once per block (4U*U*S) into shared memory.
//   lstm_persistent_bwd reads 6S (gates 4S, c_{t-1}: c_t is kept from the step after, dh_seq) and
//   writes 4S (dz); R once per block.
// FLOPs per (n, u): 3 (LSTM) or 2 (GRU) exp/tanh forward, 1 tanh in LSTM's backward, ~10-20
// others; memory-bound. The persistent kernels add 8U flops (4 dot products of length U forward,
// one of length 4U backward).
//
// Limits: every array has fewer than 2**31 elements (32-bit indices; the launchers check);
// N, U >= 1. Persistent kernels: NB*U <= LSTM_PERSISTENT_MAX_THREADS and (4U*U + 2*NB*U)*S
// (forward) or (4U*U + 8*NB*U)*S (backward) bytes of dynamic shared memory within the device's
// opt-in maximum (the launchers check both; they are meant for U <= 64: R of 64 KiB float32,
// 128 KiB float64).
#include "common.cuh"
#include "activation_math.cuh"

#define LSTM_CELL_THREADS 256
#define LSTM_PERSISTENT_MAX_THREADS 512

// ------------------------------------------------------------------------------------ the cell math
__device__ __forceinline__ float lstm_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double lstm_fma(double a, double b, double c) { return fma(a, b, c); }

// The LSTM cell's forward from its four pre-activations: the activated gates, the new c and h.
template <typename T>
__device__ __forceinline__ void lstm_cell_math(T zi, T zf, T zg, T zo, T c_prev, T& i, T& f, T& g, T& o, T& c,
                                               T& h) {
    i = act_sigmoid(zi);
    f = act_sigmoid(zf);
    g = dl_tanh(zg);
    o = act_sigmoid(zo);
    c = mul_rn(f, c_prev) + mul_rn(i, g);
    h = o * dl_tanh(c);
}

// ------------------------------------------------------------------------------------------- LSTM
template <typename T>
__device__ void lstm_cell_fwd(const T* __restrict__ xw, const T* __restrict__ hr, const T* c_prev,
                              T* __restrict__ h, T* c, T* __restrict__ gates, int N, int U) {
    const unsigned total = (unsigned)N * (unsigned)U, stride = gridDim.x * blockDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned n = idx / (unsigned)U, u = idx - n * (unsigned)U;
        const unsigned base = n * 4u * (unsigned)U + u;
        const T zi = xw[base] + hr[base];
        const T zf = xw[base + U] + hr[base + U];
        const T zg = xw[base + 2 * U] + hr[base + 2 * U];
        const T zo = xw[base + 3 * U] + hr[base + 3 * U];
        T i, f, g, o, cn, hn;
        lstm_cell_math(zi, zf, zg, zo, c_prev[idx], i, f, g, o, cn, hn);
        gates[base] = i;
        gates[base + U] = f;
        gates[base + 2 * U] = g;
        gates[base + 3 * U] = o;
        c[idx] = cn;
        h[idx] = hn;
    }
}

// The LSTM cell's backward for one (n, u): from dh (the whole gradient of h_t), dc_next (that of c_t
// from step t+1; has_dc_next false: none, the last step), the activated gates and c_t, c_{t-1},
// the gradients of the four pre-activations and of c_{t-1}.
template <typename T>
__device__ __forceinline__ void lstm_cell_grad(T d, bool has_dc_next, T dc_next, T i, T f, T g, T o, T c, T c_prev,
                                               T& dzi, T& dzf, T& dzg, T& dzo, T& dc_prev) {
    const T tc = dl_tanh(c);
    // tanh's gradient as NumPy's path forms it: (dh*o) * (1 - tc*tc), then + dc_next.
    T dc = mul_rn(d * o, T(1) - mul_rn(tc, tc));
    if (has_dc_next) dc = dc + dc_next;
    // sigmoid's gradient: ((dy*y) * (1-y)); tanh's: dy * (1 - y*y).
    dzi = dc * g * i * (T(1) - i);
    dzf = dc * c_prev * f * (T(1) - f);
    dzg = (dc * i) * (T(1) - mul_rn(g, g));
    dzo = d * tc * o * (T(1) - o);
    dc_prev = dc * f;
}

template <typename T>
__device__ void lstm_cell_bwd(const T* __restrict__ dh, const T* dc_next, const T* __restrict__ gates,
                              const T* __restrict__ c, const T* __restrict__ c_prev, T* __restrict__ dz,
                              T* dc_prev, int N, int U) {
    const unsigned total = (unsigned)N * (unsigned)U, stride = gridDim.x * blockDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned n = idx / (unsigned)U, u = idx - n * (unsigned)U;
        const unsigned base = n * 4u * (unsigned)U + u;
        T dzi, dzf, dzg, dzo, dcp;
        lstm_cell_grad(dh[idx], dc_next != nullptr, dc_next != nullptr ? dc_next[idx] : T(0), gates[base],
                       gates[base + U], gates[base + 2 * U], gates[base + 3 * U], c[idx], c_prev[idx], dzi, dzf,
                       dzg, dzo, dcp);
        dz[base] = dzi;
        dz[base + U] = dzf;
        dz[base + 2 * U] = dzg;
        dz[base + 3 * U] = dzo;
        dc_prev[idx] = dcp;
    }
}

// -------------------------------------------------------------------------------------------- GRU
template <typename T>
__device__ void gru_cell_fwd(const T* __restrict__ xw, const T* __restrict__ hr, const T* __restrict__ h_prev,
                             T* __restrict__ h, T* __restrict__ gates, int N, int U) {
    const unsigned total = (unsigned)N * (unsigned)U, stride = gridDim.x * blockDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned n = idx / (unsigned)U, u = idx - n * (unsigned)U;
        const unsigned xb = n * 3u * (unsigned)U + u, gb = n * 4u * (unsigned)U + u;
        const T z = act_sigmoid(xw[xb] + hr[xb]);
        const T r = act_sigmoid(xw[xb + U] + hr[xb + U]);
        const T hr_h = hr[xb + 2 * U];
        const T hh = dl_tanh(xw[xb + 2 * U] + mul_rn(r, hr_h));
        const T hp = h_prev[idx];
        h[idx] = mul_rn(z, hp) + mul_rn(T(1) - z, hh);
        gates[gb] = z;
        gates[gb + U] = r;
        gates[gb + 2 * U] = hh;
        gates[gb + 3 * U] = hr_h;
    }
}

template <typename T>
__device__ void gru_cell_bwd(const T* dh, const T* __restrict__ gates, const T* __restrict__ h_prev,
                             T* __restrict__ dxw, T* __restrict__ dhr, T* dh_prev, int N, int U) {
    const unsigned total = (unsigned)N * (unsigned)U, stride = gridDim.x * blockDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned n = idx / (unsigned)U, u = idx - n * (unsigned)U;
        const unsigned xb = n * 3u * (unsigned)U + u, gb = n * 4u * (unsigned)U + u;
        const T z = gates[gb], r = gates[gb + U], hh = gates[gb + 2 * U], hr_h = gates[gb + 3 * U];
        const T d = dh[idx];
        const T da_h = (d * (T(1) - z)) * (T(1) - mul_rn(hh, hh));
        const T da_z = d * (h_prev[idx] - hh) * z * (T(1) - z);
        const T da_r = da_h * hr_h * r * (T(1) - r);
        dxw[xb] = da_z;
        dxw[xb + U] = da_r;
        dxw[xb + 2 * U] = da_h;
        dhr[xb] = da_z;
        dhr[xb + U] = da_r;
        dhr[xb + 2 * U] = da_h * r;
        dh_prev[idx] = d * z;
    }
}

// ------------------------------------------------------------------------------ persistent LSTM
template <typename T>
__device__ void lstm_persistent_fwd(const T* __restrict__ xw, const T* __restrict__ R, const T* h0, const T* c0,
                                    T* h_seq, T* c_seq, T* __restrict__ gates, int steps, int N, int U, int NB) {
    extern __shared__ __align__(16) unsigned char lstm_shared[];
    const int G = 4 * U;
    T* r_s = reinterpret_cast<T*>(lstm_shared);   // (U, 4U), R as it lies in memory
    T* h_s = r_s + G * U;                         // two buffers of (NB, U)
    const int tid = threadIdx.x;
    const int s = tid / U, u = tid - s * U;
    const int n = blockIdx.x * NB + s;
    const bool active = s < NB && n < N;
    const int NU = N * U;

    for (int k = tid; k < G * U; k += blockDim.x) r_s[k] = R[k];
    T c = T(0);
    T x0 = T(0), x1 = T(0), x2 = T(0), x3 = T(0);
    if (active) {
        const int idx = n * U + u;
        const T h = h0[idx];
        c = c0[idx];
        h_s[s * U + u] = h;
        h_seq[idx] = h;
        c_seq[idx] = c;
        if (steps > 0) {
            const T* x = xw + n * G + u;
            x0 = x[0]; x1 = x[U]; x2 = x[2 * U]; x3 = x[3 * U];
        }
    }
    __syncthreads();

    for (int t = 0; t < steps; ++t) {
        if (active) {
            // The next step's inputs, loaded now so that their latency hides behind this step's work.
            T y0 = T(0), y1 = T(0), y2 = T(0), y3 = T(0);
            if (t + 1 < steps) {
                const T* x = xw + ((t + 1) * N + n) * G + u;
                y0 = x[0]; y1 = x[U]; y2 = x[2 * U]; y3 = x[3 * U];
            }
            const T* hp = h_s + (t & 1) * NB * U + s * U;
            const T* rk = r_s + u;
            T a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
#pragma unroll 4
            for (int k = 0; k < U; ++k, rk += G) {
                const T hk = hp[k];
                a0 = lstm_fma(hk, rk[0], a0);
                a1 = lstm_fma(hk, rk[U], a1);
                a2 = lstm_fma(hk, rk[2 * U], a2);
                a3 = lstm_fma(hk, rk[3 * U], a3);
            }
            T i, f, g, o, cn, hn;
            lstm_cell_math(x0 + a0, x1 + a1, x2 + a2, x3 + a3, c, i, f, g, o, cn, hn);
            c = cn;
            h_s[((t + 1) & 1) * NB * U + s * U + u] = hn;
            const int idx = (t + 1) * NU + n * U + u;
            h_seq[idx] = hn;
            c_seq[idx] = cn;
            T* gt = gates + (t * N + n) * G + u;
            gt[0] = i; gt[U] = f; gt[2 * U] = g; gt[3 * U] = o;
            x0 = y0; x1 = y1; x2 = y2; x3 = y3;
        }
        // One barrier per step: the h of step t + 1 is complete, and every read of the buffer that
        // step t + 1 overwrites is done (two buffers).
        __syncthreads();
    }
}

// The backward of a whole sequence, the mirror of lstm_persistent_fwd: one thread per (sample, unit)
// keeps dh_next and dc in registers; R lies in shared memory transposed, (4U, U), so that the threads
// of a warp (consecutive u) read consecutive words; each step's dz of the tile goes to global memory
// for the weight gradients and to one of two shared buffers, from which every thread forms its
// dh_next = dz_t . R[u, :] after the step's one barrier.
template <typename T>
__device__ void lstm_persistent_bwd(const T* __restrict__ dh_seq, const T* __restrict__ dh_last,
                                    const T* __restrict__ dc_last, const T* __restrict__ gates,
                                    const T* __restrict__ c_seq, const T* __restrict__ R, T* __restrict__ dz,
                                    T* __restrict__ dh0, T* __restrict__ dc0, int steps, int N, int U, int NB) {
    extern __shared__ __align__(16) unsigned char lstm_shared[];
    const int G = 4 * U;
    T* rt_s = reinterpret_cast<T*>(lstm_shared);  // (4U, U): rt_s[j*U + u] = R[u*4U + j]
    T* dz_s = rt_s + G * U;                       // two buffers of (NB, 4U)
    const int tid = threadIdx.x;
    const int s = tid / U, u = tid - s * U;
    const int n = blockIdx.x * NB + s;
    const bool active = s < NB && n < N;
    const int NU = N * U;
    const int idx = n * U + u;

    for (int k = tid; k < G * U; k += blockDim.x) {
        const int j = k / U, uu = k - j * U;
        rt_s[k] = R[uu * G + j];
    }
    T dh_next = T(0), dc = T(0);
    bool has_dc = dc_last != nullptr;
    // this step's loads: the gates, c_t, c_{t-1} and the gradient from above
    T gi = T(0), gf = T(0), gg = T(0), go = T(0), ct = T(0), cp = T(0), above = T(0);
    if (active) {
        if (dh_last != nullptr) dh_next = dh_last[idx];
        if (has_dc) dc = dc_last[idx];
        if (steps > 0) {
            const int t = steps - 1;
            const T* gt = gates + (t * N + n) * G + u;
            gi = gt[0]; gf = gt[U]; gg = gt[2 * U]; go = gt[3 * U];
            ct = c_seq[(t + 1) * NU + idx];
            cp = c_seq[t * NU + idx];
            if (dh_seq != nullptr) above = dh_seq[t * NU + idx];
        }
    }
    __syncthreads();

    for (int t = steps - 1; t >= 0; --t) {
        T* dzt = dz_s + (t & 1) * NB * G + s * G;
        if (active) {
            // dh = dh_next + dh_seq[t], as the step loop adds them
            const T d = dh_seq != nullptr ? dh_next + above : dh_next;
            T dzi, dzf, dzg, dzo, dcp;
            lstm_cell_grad(d, has_dc, dc, gi, gf, gg, go, ct, cp, dzi, dzf, dzg, dzo, dcp);
            dc = dcp;
            has_dc = true;
            T* out = dz + (t * N + n) * G + u;
            out[0] = dzi; out[U] = dzf; out[2 * U] = dzg; out[3 * U] = dzo;
            dzt[u] = dzi; dzt[U + u] = dzf; dzt[2 * U + u] = dzg; dzt[3 * U + u] = dzo;
            if (t > 0) {   // the previous step's loads, started now so that the dot product hides them
                const T* gt = gates + ((t - 1) * N + n) * G + u;
                gi = gt[0]; gf = gt[U]; gg = gt[2 * U]; go = gt[3 * U];
                ct = cp;
                cp = c_seq[(t - 1) * NU + idx];
                if (dh_seq != nullptr) above = dh_seq[(t - 1) * NU + idx];
            }
        }
        // One barrier per step: the tile's dz_t is complete; the buffer step t - 1 writes was last read
        // (by step t + 1's dot products) before this barrier.
        __syncthreads();
        if (active) {
            const T* rk = rt_s + u;
            T acc = T(0);
#pragma unroll 4
            for (int j = 0; j < G; ++j, rk += U) acc = lstm_fma(dzt[j], *rk, acc);
            dh_next = acc;
        }
    }
    if (active) {
        dh0[idx] = dh_next;
        dc0[idx] = dc;
    }
}

// -------------------------------------------------------------------------------- extern "C" kernels
#define LSTM_CELL_KERNELS(T, SUFFIX)                                                                       \
    extern "C" __global__ void lstm_cell_fwd_##SUFFIX(const T* xw, const T* hr, const T* c_prev, T* h, T* c,  \
                                                      T* gates, int N, int U) {                           \
        lstm_cell_fwd<T>(xw, hr, c_prev, h, c, gates, N, U);                                              \
    }                                                                                                      \
    extern "C" __global__ void lstm_cell_bwd_##SUFFIX(const T* dh, const T* dc_next, const T* gates,        \
                                                      const T* c, const T* c_prev, T* dz, T* dc_prev, int N, \
                                                      int U) {                                            \
        lstm_cell_bwd<T>(dh, dc_next, gates, c, c_prev, dz, dc_prev, N, U);                               \
    }                                                                                                      \
    extern "C" __global__ void gru_cell_fwd_##SUFFIX(const T* xw, const T* hr, const T* h_prev, T* h,        \
                                                     T* gates, int N, int U) {                            \
        gru_cell_fwd<T>(xw, hr, h_prev, h, gates, N, U);                                                  \
    }                                                                                                      \
    extern "C" __global__ void gru_cell_bwd_##SUFFIX(const T* dh, const T* gates, const T* h_prev, T* dxw,   \
                                                     T* dhr, T* dh_prev, int N, int U) {                  \
        gru_cell_bwd<T>(dh, gates, h_prev, dxw, dhr, dh_prev, N, U);                                      \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(LSTM_PERSISTENT_MAX_THREADS)                              \
        lstm_persistent_fwd_##SUFFIX(const T* xw, const T* R, const T* h0, const T* c0, T* h_seq, T* c_seq, \
                                     T* gates, int steps, int N, int U, int NB) {                         \
        lstm_persistent_fwd<T>(xw, R, h0, c0, h_seq, c_seq, gates, steps, N, U, NB);                      \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(LSTM_PERSISTENT_MAX_THREADS)                              \
        lstm_persistent_bwd_##SUFFIX(const T* dh_seq, const T* dh_last, const T* dc_last, const T* gates,     \
                                     const T* c_seq, const T* R, T* dz, T* dh0, T* dc0, int steps, int N,   \
                                     int U, int NB) {                                                     \
        lstm_persistent_bwd<T>(dh_seq, dh_last, dc_last, gates, c_seq, R, dz, dh0, dc0, steps, N, U, NB); \
    }

LSTM_CELL_KERNELS(float, f32)
LSTM_CELL_KERNELS(double, f64)
