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
//   lstm_cell_bwd(dh, dh_output or null, dc_next or null, gates, c, c_prev, dz, dc_prev, N, U)
//       dh (N, U): the gradient of h_t (from step t+1's recurrent product); dh_output (N, U): a
//       second part of it (from the layer's output sequence) that the kernel adds, d = dh + dh_output
//       (null: d = dh), so the step loop needs no separate addition; dc_next (N, U): the gradient of
//       c_t from step t+1 (null: zeros); gates (N, 4U) and c = c_t, c_prev = c_{t-1} from the forward.
//       tc = tanh(c); dc = d*o*(1 - tc^2) + dc_next; dz = [dc*g*i*(1-i), dc*c_prev*f*(1-f),
//       dc*i*(1-g^2), d*tc*o*(1-o)] (N, 4U); dc_prev = dc*f (N, U).
//       dc_prev may be dc_next itself. Status: the dh_output input has run on the emulated GPU
//       only (tests/emulated_gpu), not yet on a GPU.
//   gru_cell_fwd(xw, hr, hr_bias or null, h_prev, h, gates, N, U)
//       xw (N, 3U) = x_t @ kernel + bias[0]; hr (N, 3U) = h_{t-1} @ recurrent_kernel; hr_bias (3U)
//       = bias[1], added to hr's rows (hr + hr_bias, rounded once; null: hr holds its bias already
//       or there is none).
//       z = sigma(xw_z + hr_z); r = sigma(xw_r + hr_r); hh = tanh(xw_h + r*hr_h);
//       h = z*h_prev + (1-z)*hh; gates (N, 4U) receives z, r, hh and hr_h (what backward needs).
//   gru_cell_bwd(dh, dh_direct or null, dh_output or null, gates, h_prev, dxw, dhr, dh_prev, N, U)
//       d = (dh_direct + dh) + dh_output (N, U), the gradient of h_t in parts, each null one left
//       out: the step loop passes dh = dhr_{t+1} @ recurrent_kernel^T, dh_direct the step before's
//       dh_prev and dh_output the output sequence's dh_seq[t], so that it adds nothing itself.
//       da_h = d*(1-z)*(1-hh^2); da_z = d*(h_prev-hh)*z*(1-z); da_r = da_h*hr_h*r*(1-r);
//       dxw = [da_z, da_r, da_h] (N, 3U); dhr = [da_z, da_r, da_h*r] (N, 3U);
//       dh_prev = d*z (N, U), the direct part: the caller adds dhr @ recurrent_kernel^T.
//       dh_prev may be dh or dh_direct itself.
//       Status: the hr_bias, dh_direct and dh_output inputs have run on the emulated GPU only
//       (tests/emulated_gpu), not yet on a GPU.
//   lstm_persistent_fwd(xw, R, h0, c0, h_seq, c_seq, gates, steps, N, U, NB)
//       The whole forward of a sequence: xw (steps, N, 4U) precomputed input projections (bias
//       included), R (U, 4U) the recurrent kernel, h0, c0 (N, U); writes h_seq and c_seq
//       (steps + 1, N, U) with index 0 = h0, c0 (h0 and c0 may be h_seq[0] and c_seq[0]
//       themselves) and index t + 1 the state after step t, and gates (steps, N, 4U) the
//       activated i, f, g, o of every step, as lstm_cell_fwd writes them. Step t computes each
//       column of hr = h_t @ R as (P0 + P2) + (P1 + P3) in T, where P_m sums the terms k = m, m + 4,
//       m + 8, ... < U in ascending order with fused multiply-adds (P_m = 0 where m >= U), then
//       exactly lstm_cell_fwd's arithmetic.
//   lstm_persistent_bwd(dh_seq, dh_last, dc_last, gates, c_seq, R, dz, dh0, dc0, steps, N, U, NB)
//       The whole backward of a sequence through the cells and the recurrent products: dh_seq
//       (steps, N, U) the gradient of h_1..h_T from above (null: none, only the last state is
//       used); dh_last, dc_last (N, U) extra gradients of h_T and c_T (null: zeros); gates
//       (steps, N, 4U) and c_seq (steps + 1, N, U) as the forward wrote them; R (U, 4U). Writes dz
//       (steps, N, 4U), every step's lstm_cell_bwd output, and dh0, dc0 (N, U), the gradients of the
//       initial state. Step t, from steps - 1 down to 0: dh = dh_next + dh_seq[t] (dh_next = dh_last
//       at first); lstm_cell_bwd's arithmetic; dh_next = dz_t @ R^T, each element as
//       (L0 + L1) + (L2 + L3) in T with L_q = (A_q0 + A_q1) + (A_q2 + A_q3), where A_qr sums the
//       terms j = q + 4m, m = r, r + 4, r + 8, ... < U (all j = q + 4r mod 16) in ascending order
//       with fused multiply-adds: the step loop's cuBLAS product summed in another order.
//
// Numerics: the cells compute what gpu_dl/ops/rnn.py's array arithmetic computes (NumPy's order
// of operations, products that feed an add rounded on their own with mul_rn so that none is
// contracted into an FMA, products evaluated left to right as NumPy evaluates them). What is
// left is the libm difference (CUDA's expf/tanhf against NumPy's, an ulp or two per call, which
// the products carry into the outputs: a few ulps of float32, about 1e-15 relative in float64).
// The persistent kernels' recurrent products sum in another order than cuBLAS does (interleaved
// partial sums, above), so their outputs differ from the step loop's by the rounding of a U-term
// (4U-term in the backward) dot product per step.
//
// Launch geometry.
//   Cell kernels: 1-D grid-stride loop over the N*U (n, u) pairs, 256 threads per block,
//   ceil(N*U / 256) blocks capped at 524280 (launch.grid_1d). Thread (n, u) reads its 4 (3)
//   gate values at n*4U + u + k*U; consecutive threads take consecutive u, so every warp access
//   of each gate block is one contiguous run.
//   Persistent forward: one block per tile of NB samples (the launcher picks NB), blockDim =
//   4*NB*U rounded up to a multiple of 32 (at most LSTM_PERSISTENT_MAX_THREADS = 256, so NB = 1
//   at U = 64), an aligned quad of lanes q = 0..3 per (sample, unit). Lane q keeps in registers
//   R[k, g*U + u] for its k = q + 4j (j < 16) and the four gates g: 64 values, loaded once (no R
//   in shared memory). Dynamic shared memory holds two buffers of the tile's h (2*NB*U values);
//   c stays in a register of lane 0. Per step: each lane starts the load of its one xw value of
//   the next step (gate q); reads its <= 16 values of h (the quad's lanes read 4 consecutive
//   words: no bank conflicts) into 4 independent FMA chains of <= 16; two shuffle rounds
//   (lanes q^2, then q^1; 3 shuffles) leave lane q with gate q's sum; lane q adds xw,
//   activates gate q (tanh for q = 2, the sigmoid otherwise) and stores it; 3 shuffles bring
//   f, g, o to lane 0, which updates c and h and writes h to the other buffer; one barrier ends
//   the step.
//   Expected critical path of a step at U = 64, float32, NB = 1 (8 warps, 2 per scheduler), in
//   cycles, by instruction counts and typical latencies (not measured: this geometry has not
//   run on a GPU): h loads ~30; FMAs 64 per lane, 2 warps per scheduler ~130 (issue-bound; each
//   chain 16 deep, ~64); reduce-scatter 2 dependent shuffle rounds ~50; one divergent sigmoid
//   and tanh ~150; gather ~25; c, tanh(c), h ~80; h store and barrier ~40: about 500. The
//   one-thread-per-unit geometry with R in shared memory (64 threads: 2 warps on 2 of the 4
//   schedulers, 4 chains of 64 FMAs and 5 shared loads per k, 640 warp-wide shared loads per
//   step, all five activations in one thread) comes to about 1000-1200 by the same count.
//   Persistent backward: the same grid and blocks, a quad per (sample, unit). Lane q keeps in
//   registers R[u, q + 4m] (m < U: 64 values), dynamic shared memory holds two buffers of the
//   tile's dz (2*NB*4U values); dh_next and dc stay in registers (the same in the quad's four
//   lanes). Per step: each lane forms the cell's gradient (the inputs loaded during the step
//   before), writes dz's gate q to global memory and to the shared buffer, starts the loads of
//   the previous step's inputs; one barrier; then its U terms of dh_next in 4 FMA chains (the
//   quad's lanes read 4 consecutive words of dz: no bank conflicts) and a butterfly over the
//   quad (2 shuffle rounds). Expected critical path at U = 64, float32, NB = 1, by the same
//   count (not measured): cell gradient ~80; dz stores and barrier ~40; 64 shared loads and 64
//   FMAs per lane, 2 warps per scheduler ~260 (issue-bound); the butterfly ~50: about 430,
//   against about 1500 for one thread per unit (a single chain of 4U = 256 FMAs, ~1000 cycles
//   of FMA latency alone, and 2 shared loads per term).
//
// Bytes per (n, u) per step:
//   lstm_cell_fwd  reads 9S (xw, hr 4S each, c_prev), writes 6S (h, c, gates 4S)
//   lstm_cell_bwd  reads 9S (dh, dh_output, dc_next, gates 4S, c, c_prev; S less for each null), writes 5S
//   gru_cell_fwd   reads 7S (xw, hr 3S each, h_prev; hr_bias from cache), writes 5S (h, gates 4S)
//   gru_cell_bwd   reads 8S (dh, dh_direct, dh_output, gates 4S, h_prev; S less for each null), writes 7S
//                  (dxw, dhr 3S each, dh_prev)
//   lstm_persistent_fwd reads 4S (xw) and writes 6S (h, c, gates 4S) from and to DRAM; R is
//   read once per block (4U*U*S) into registers.
//   lstm_persistent_bwd reads 6S (gates 4S, c_{t-1}: c_t is kept from the step after, dh_seq) and
//   writes 4S (dz); R once per block, into registers.
// FLOPs per (n, u): 3 (LSTM) or 2 (GRU) exp/tanh forward, 1 tanh in LSTM's backward, ~10-20
// others; memory-bound. The persistent kernels add 8U flops (4 dot products of length U forward,
// one of length 4U backward).
//
// Limits: every array has fewer than 2**31 elements (32-bit indices; the launchers check);
// N, U >= 1. Persistent kernels: U <= LSTM_PERSISTENT_MAX_UNITS = 64 (each lane's slice of R is
// a fixed register array) and 4*NB*U <= LSTM_PERSISTENT_MAX_THREADS; 2*NB*U*S (forward) or
// 8*NB*U*S (backward) bytes of dynamic shared memory, at most 4 KiB. The launchers check these.
#include "common.cuh"
#include "activation_math.cuh"

#define LSTM_CELL_THREADS 256
// Persistent kernels: the largest U, threads per (sample, unit), and threads per block (one 64-unit sample;
// each thread's slice of R, 64 values, takes 128 registers in float64).
#define LSTM_PERSISTENT_MAX_UNITS 64
#define LSTM_PERSISTENT_SPLIT 4
#define LSTM_PERSISTENT_MAX_THREADS 256

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
__device__ void lstm_cell_bwd(const T* __restrict__ dh, const T* __restrict__ dh_output, const T* dc_next,
                              const T* __restrict__ gates, const T* __restrict__ c, const T* __restrict__ c_prev,
                              T* __restrict__ dz, T* dc_prev, int N, int U) {
    const unsigned total = (unsigned)N * (unsigned)U, stride = gridDim.x * blockDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned n = idx / (unsigned)U, u = idx - n * (unsigned)U;
        const unsigned base = n * 4u * (unsigned)U + u;
        // dh_next + dh_seq[t] in the step loop's order (NumPy's path adds them so, rounding once)
        const T d = dh_output != nullptr ? dh[idx] + dh_output[idx] : dh[idx];
        T dzi, dzf, dzg, dzo, dcp;
        lstm_cell_grad(d, dc_next != nullptr, dc_next != nullptr ? dc_next[idx] : T(0), gates[base],
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
__device__ void gru_cell_fwd(const T* __restrict__ xw, const T* __restrict__ hr, const T* __restrict__ hr_bias,
                             const T* __restrict__ h_prev, T* __restrict__ h, T* __restrict__ gates, int N, int U) {
    const unsigned total = (unsigned)N * (unsigned)U, stride = gridDim.x * blockDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned n = idx / (unsigned)U, u = idx - n * (unsigned)U;
        const unsigned xb = n * 3u * (unsigned)U + u, gb = n * 4u * (unsigned)U + u;
        // hr + bias[1] as the array path's `hr += bias[1]` rounds it, before it meets xw
        const T hr_z = hr_bias != nullptr ? hr[xb] + hr_bias[u] : hr[xb];
        const T hr_r = hr_bias != nullptr ? hr[xb + U] + hr_bias[u + U] : hr[xb + U];
        const T z = act_sigmoid(xw[xb] + hr_z);
        const T r = act_sigmoid(xw[xb + U] + hr_r);
        const T hr_h = hr_bias != nullptr ? hr[xb + 2 * U] + hr_bias[u + 2 * U] : hr[xb + 2 * U];
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
__device__ void gru_cell_bwd(const T* dh, const T* dh_direct, const T* __restrict__ dh_output,
                             const T* __restrict__ gates, const T* __restrict__ h_prev, T* __restrict__ dxw,
                             T* __restrict__ dhr, T* dh_prev, int N, int U) {
    const unsigned total = (unsigned)N * (unsigned)U, stride = gridDim.x * blockDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned n = idx / (unsigned)U, u = idx - n * (unsigned)U;
        const unsigned xb = n * 3u * (unsigned)U + u, gb = n * 4u * (unsigned)U + u;
        const T z = gates[gb], r = gates[gb + U], hh = gates[gb + 2 * U], hr_h = gates[gb + 3 * U];
        // (direct + recurrent) + dh_seq[t], the order in which the array path adds them
        T d = dh_direct != nullptr ? dh_direct[idx] + dh[idx] : dh[idx];
        if (dh_output != nullptr) d = d + dh_output[idx];
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
// The forward of a whole sequence. Four threads (lanes q = 0..3 of an aligned quad) serve one (sample,
// unit): lane q holds in registers its slice of R's column group, w[g][j] = R[q + 4j, g*U + u], and forms
// the partial products of all four gates over k = q, q + 4, q + 8, ... (ascending); two rounds of warp
// shuffles leave lane q with gate q's whole sum; lane q activates gate q and stores it; lane 0 gathers the
// four activations and updates the cell. h lies in shared memory (two buffers, one barrier per step).
template <typename T>
__device__ void lstm_persistent_fwd(const T* __restrict__ xw, const T* __restrict__ R, const T* h0, const T* c0,
                                    T* h_seq, T* c_seq, T* __restrict__ gates, int steps, int N, int U, int NB) {
    constexpr int KPT = LSTM_PERSISTENT_MAX_UNITS / LSTM_PERSISTENT_SPLIT;
    constexpr int SPLIT = LSTM_PERSISTENT_SPLIT;
    extern __shared__ __align__(16) unsigned char lstm_shared[];
    const int G = 4 * U;
    T* h_s = reinterpret_cast<T*>(lstm_shared);   // two buffers of (NB, U)
    const int tid = threadIdx.x;
    const int q = tid & (SPLIT - 1), unit = tid / SPLIT;
    const int s = unit / U, u = unit - s * U;
    const int n = blockIdx.x * NB + s;
    const bool active = s < NB && n < N;
    const int NU = N * U;
    const int idx = n * U + u;
    const int nk = active && q < U ? (U - q + SPLIT - 1) / SPLIT : 0;   // this lane's k: q + SPLIT*j, j < nk

    T w0[KPT], w1[KPT], w2[KPT], w3[KPT];
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
        const bool in = j < nk;
        const T* r = R + (in ? (q + SPLIT * j) * G + u : 0);
        w0[j] = in ? r[0] : T(0);
        w1[j] = in ? r[U] : T(0);
        w2[j] = in ? r[2 * U] : T(0);
        w3[j] = in ? r[3 * U] : T(0);
    }
    T c = T(0), x = T(0);
    if (active) {
        if (q == 0) {
            const T h = h0[idx];
            c = c0[idx];
            h_s[s * U + u] = h;
            h_seq[idx] = h;
            c_seq[idx] = c;
        }
        if (steps > 0) x = xw[n * G + q * U + u];
    }
    __syncthreads();

    for (int t = 0; t < steps; ++t) {
        // The next step's input, loaded first so that its latency hides behind this step's work.
        T y = T(0);
        if (active && t + 1 < steps) y = xw[((t + 1) * N + n) * G + q * U + u];
        T a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
        const T* hp = h_s + (t & 1) * NB * U + s * U + q;
#pragma unroll
        for (int j = 0; j < KPT; ++j) {
            if (j < nk) {
                // The four lanes of a quad read four consecutive words: no bank conflicts.
                const T hk = hp[SPLIT * j];
                a0 = lstm_fma(hk, w0[j], a0);
                a1 = lstm_fma(hk, w1[j], a1);
                a2 = lstm_fma(hk, w2[j], a2);
                a3 = lstm_fma(hk, w3[j], a3);
            }
        }
        // Reduce-scatter over the quad, every lane taking part (inactive lanes with zeros), so that the
        // shuffles see the whole warp. Round 1 (lanes q and q^2): lanes 0, 1 keep gates i, f, lanes 2, 3
        // keep g, o, each adding its partner's partial. Round 2 (q and q^1): lane q keeps gate q. Gate g's
        // sum is (P0 + P2) + (P1 + P3) in every lane that forms it (additions commute exactly).
        const bool hi = q & 2, lo = q & 1;
        const T b0 = (hi ? a2 : a0) + __shfl_xor_sync(0xffffffffu, hi ? a0 : a2, 2);
        const T b1 = (hi ? a3 : a1) + __shfl_xor_sync(0xffffffffu, hi ? a1 : a3, 2);
        const T hr = (lo ? b1 : b0) + __shfl_xor_sync(0xffffffffu, lo ? b0 : b1, 1);
        T act = T(0);
        if (active) {
            const T z = x + hr;
            act = q == 2 ? dl_tanh(z) : act_sigmoid(z);
            gates[(t * N + n) * G + q * U + u] = act;
        }
        const T f = __shfl_xor_sync(0xffffffffu, act, 1);
        const T g = __shfl_xor_sync(0xffffffffu, act, 2);
        const T o = __shfl_xor_sync(0xffffffffu, act, 3);
        if (active && q == 0) {
            // lstm_cell_math's update of the state from i = act, f, g, o
            c = mul_rn(f, c) + mul_rn(act, g);
            const T h = o * dl_tanh(c);
            h_s[((t + 1) & 1) * NB * U + s * U + u] = h;
            h_seq[(t + 1) * NU + idx] = h;
            c_seq[(t + 1) * NU + idx] = c;
        }
        x = y;
        // One barrier per step: the h of step t + 1 is complete, and every read of the buffer that
        // step t + 1 overwrites is done (two buffers).
        __syncthreads();
    }
}

// The backward of a whole sequence, the mirror of lstm_persistent_fwd: an aligned quad of lanes q = 0..3 per
// (sample, unit). Lane q holds in registers R[u, q + 4m] (m < U), its quarter of R's row u. Every lane of the
// quad forms the cell's gradient (the same values, so dh_next and dc agree across the quad); lane q writes
// gate q's dz to global memory and to one of two shared buffers; after the step's one barrier lane q forms
// its quarter of dh_next = dz_t . R[u, :] in four FMA chains, and a butterfly over the quad gives every lane
// the whole sum.
template <typename T>
__device__ void lstm_persistent_bwd(const T* __restrict__ dh_seq, const T* __restrict__ dh_last,
                                    const T* __restrict__ dc_last, const T* __restrict__ gates,
                                    const T* __restrict__ c_seq, const T* __restrict__ R, T* __restrict__ dz,
                                    T* __restrict__ dh0, T* __restrict__ dc0, int steps, int N, int U, int NB) {
    constexpr int SPLIT = LSTM_PERSISTENT_SPLIT;
    constexpr int MAX_U = LSTM_PERSISTENT_MAX_UNITS;
    extern __shared__ __align__(16) unsigned char lstm_shared[];
    const int G = 4 * U;
    T* dz_s = reinterpret_cast<T*>(lstm_shared);  // two buffers of (NB, 4U)
    const int tid = threadIdx.x;
    const int q = tid & (SPLIT - 1), unit = tid / SPLIT;
    const int s = unit / U, u = unit - s * U;
    const int n = blockIdx.x * NB + s;
    const bool active = s < NB && n < N;
    const int NU = N * U;
    const int idx = n * U + u;
    const int nm = active ? U : 0;   // this lane's terms: j = q + SPLIT*m, m < nm

    T w[MAX_U];
#pragma unroll
    for (int m = 0; m < MAX_U; ++m) w[m] = m < nm ? R[u * G + q + SPLIT * m] : T(0);
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

    for (int t = steps - 1; t >= 0; --t) {
        T* dzt = dz_s + (t & 1) * NB * G + s * G;
        if (active) {
            // dh = dh_next + dh_seq[t], as the step loop adds them
            const T d = dh_seq != nullptr ? dh_next + above : dh_next;
            T dzi, dzf, dzg, dzo, dcp;
            lstm_cell_grad(d, has_dc, dc, gi, gf, gg, go, ct, cp, dzi, dzf, dzg, dzo, dcp);
            dc = dcp;
            has_dc = true;
            const T mine = q == 0 ? dzi : q == 1 ? dzf : q == 2 ? dzg : dzo;
            dz[(t * N + n) * G + q * U + u] = mine;
            dzt[q * U + u] = mine;
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
        // Lane q's quarter in four chains (m mod 4), read from dz_t at q + 4m: the quad's lanes read four
        // consecutive words, no bank conflicts. Every lane takes part in the shuffles (inactive ones with zeros).
        T a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
        const T* dp = dzt + q;
#pragma unroll
        for (int m = 0; m < MAX_U; m += 4) {
            if (m < nm) a0 = lstm_fma(dp[SPLIT * m], w[m], a0);
            if (m + 1 < nm) a1 = lstm_fma(dp[SPLIT * (m + 1)], w[m + 1], a1);
            if (m + 2 < nm) a2 = lstm_fma(dp[SPLIT * (m + 2)], w[m + 2], a2);
            if (m + 3 < nm) a3 = lstm_fma(dp[SPLIT * (m + 3)], w[m + 3], a3);
        }
        T sum = (a0 + a1) + (a2 + a3);
        sum = sum + __shfl_xor_sync(0xffffffffu, sum, 1);
        dh_next = sum + __shfl_xor_sync(0xffffffffu, sum, 2);
    }
    if (active && q == 0) {
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
    extern "C" __global__ void lstm_cell_bwd_##SUFFIX(const T* dh, const T* dh_output, const T* dc_next,    \
                                                      const T* gates, const T* c, const T* c_prev, T* dz,  \
                                                      T* dc_prev, int N, int U) {                         \
        lstm_cell_bwd<T>(dh, dh_output, dc_next, gates, c, c_prev, dz, dc_prev, N, U);                    \
    }                                                                                                      \
    extern "C" __global__ void gru_cell_fwd_##SUFFIX(const T* xw, const T* hr, const T* hr_bias,             \
                                                     const T* h_prev, T* h, T* gates, int N, int U) {     \
        gru_cell_fwd<T>(xw, hr, hr_bias, h_prev, h, gates, N, U);                                         \
    }                                                                                                      \
    extern "C" __global__ void gru_cell_bwd_##SUFFIX(const T* dh, const T* dh_direct, const T* dh_output,    \
                                                     const T* gates, const T* h_prev, T* dxw, T* dhr,     \
                                                     T* dh_prev, int N, int U) {                          \
        gru_cell_bwd<T>(dh, dh_direct, dh_output, gates, h_prev, dxw, dhr, dh_prev, N, U);                \
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
