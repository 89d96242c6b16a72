// ctc.cu: connectionist temporal classification (CTC), the forward-backward recursion in log space
// and the gradient of the loss with respect to the logits.
//
// Notation: B batch, T time steps, C classes (class 0 the blank), L the labels' row length, S = 2L + 1
// the extended sequence (blanks at the even positions, label (s - 1) / 2 at odd position s), n_b the
// number of nonzero labels of row b (its sequence is its first n_b entries: 0 pads the rows). All
// arrays are C-contiguous, row-major. The arithmetic is gpu_dl/ops/ctc.py's NumPy path, step for
// step (its docstring has the definitions); logaddexp(x, y) is NumPy's (x == y gives x + log 2, so
// two -inf give -inf).
//
// Kernels (T = float / double, suffix _f32 / _f64):
//   ctc_alpha(logp (B, T, C), labels int64 (B, L), alpha (T, B, S), log_likelihood (B,), loss (B,),
//             B, T, C, L)
//       logp = log_softmax(logits) over C. alpha[0, b, s] = logp[b, 0, sym(s)] for s < 2, -inf
//       beyond; alpha[t, b, s] = logaddexp(logaddexp(alpha[t-1, s], alpha[t-1, s-1]),
//       alpha[t-1, s-2] + skip(s)) + logp[b, t, sym(s)], out-of-range s read as -inf, skip(s) = 0
//       where s is odd, s >= 3 and label (s-1)/2 differs from label (s-3)/2, -inf elsewhere.
//       log_likelihood[b] = log of the sum of exp(alpha[T-1, b, s]) over s in {2n_b - 1, 2n_b}
//       (shifted by their maximum where it is finite; -inf when no path exists), loss = -that.
//   ctc_beta(logp, labels, beta (T, B, S), B, T, C, L)
//       beta without step t's own emission: beta[T-1, b, s] = 0 for s in {2n_b - 1, 2n_b}, -inf
//       elsewhere; with nxt(s) = beta[t+1, s] + logp[b, t+1, sym(s)] (-inf for s >= S):
//       beta[t, s] = logaddexp(logaddexp(nxt(s), nxt(s+1)), nxt(s+2) + skip(s+2)).
//   ctc_grad(logp, labels, alpha, beta, log_likelihood, dlogits (B, T, C), B, T, C, L)
//       occ(s) = exp(alpha[t, b, s] + beta[t, b, s] - ll_b), ll_b the log-likelihood where finite, 0
//       where not (every occ is then 0); total = sum_s occ; g_c = -sum of occ over the symbols of
//       class c (the blanks and any 0 label for c = 0); dlogits[b, t, c] = g_c + exp(logp) * total
//       (NumPy's g - softmax * sum(g), sum(g) = -total). Rows with no path get exactly 0.
//   A class id outside [0, C) is never used as an index: its emission reads as -inf and it adds to
//   no class's gradient (the loss checks its labels on the host; this only keeps memory safe).
//
// Launch geometry.
//   ctc_alpha, ctc_beta: one block per sample (grid B), blockDim = S rounded up to a multiple of 32,
//   at most CTC_RECURSION_THREADS (256); thread k takes the symbols s = k, k + blockDim, ... The T
//   steps loop inside the kernel, one __syncthreads per step: step t reads step t-1's (t+1's) row
//   of alpha (beta) back from global memory (the block wrote it; the barrier makes it visible, and
//   it is in L1/L2), so any S works without shared memory. The number of nonzero labels comes from
//   one block reduction before the loop.
//   ctc_grad: one block of CTC_GRAD_THREADS (128) per (b, t) row, grid B*T (row r = b*T + t). Two
//   block reductions (total and class-0 occupancy), then the threads write exp(logp) * total (class
//   0: minus the class-0 occupancy) over the C classes; after a barrier the thread of each label
//   position that is the first of its class in the row sums the occupancy of every position of
//   that class and writes its class's element: each element is written by one thread per phase,
//   no atomics, and the sums run in a fixed order (deterministic).
//
// Bytes (S_ = sizeof(T)):
//   ctc_alpha / ctc_beta per sample: write T*S*S_ (alpha or beta), read T*S gathered logp values,
//   3 reads of the previous row per symbol and step (L1/L2 hits) and L labels per step (cached).
//   Latency-bound: T dependent steps, each one barrier and one global-memory round trip.
//   ctc_grad per (b, t) row: read C*S_ (logp) + 2*S*S_ (alpha, beta) + 8L (labels), write C*S_.
//   About one exp per class and per symbol, plus an O(L) scan per label position for its class's
//   first occurrence (compares of cached labels).
// FLOPs: the recursion ~3 exp/log1p pairs per (t, s); the gradient one exp per (t, s) and per
// (t, c).
//
// Limits: every array has fewer than 2**31 elements (the launchers check); B, T, C >= 1, L >= 0.
#include "common.cuh"

#define CTC_RECURSION_THREADS 256
#define CTC_GRAD_THREADS 128

// NumPy's logaddexp: equal arguments (two -inf included) give x + log 2, else max + log1p(exp(-|x - y|)).
template <typename T>
__device__ __forceinline__ T ctc_logaddexp(T x, T y) {
    if (x == y) return x + T(0.693147180559945309417232121458176568);
    const T d = x - y;
    if (d > T(0)) return x + dl_log1p(dl_exp(-d));
    if (d <= T(0)) return y + dl_log1p(dl_exp(d));
    return d;   // NaN
}

template <typename T>
__device__ __forceinline__ bool ctc_finite(T x) { return dl_abs(x) < dl_infinity<T>(); }

// Class of extended symbol s (blank 0 at even s), or -1 for an id outside [0, C).
__device__ __forceinline__ int ctc_symbol(const long long* __restrict__ labels, int s, int C) {
    if ((s & 1) == 0) return 0;
    const long long c = labels[(s - 1) >> 1];
    return (c >= 0 && c < C) ? (int)c : -1;
}

template <typename T>
__device__ __forceinline__ T ctc_emit(const T* __restrict__ logp_row, const long long* __restrict__ labels, int s,
                                      int C) {
    const int c = ctc_symbol(labels, s, C);
    return c >= 0 ? logp_row[c] : -dl_infinity<T>();
}

// Whether symbol s may be reached from s - 2 (skipping a blank): s odd, s >= 3, and not a repeat.
__device__ __forceinline__ bool ctc_can_skip(const long long* __restrict__ labels, int s) {
    return (s & 1) && s >= 3 && labels[(s - 1) >> 1] != labels[(s - 3) >> 1];
}

// Number of nonzero labels in the row, on every thread (blockDim a multiple of 32).
__device__ __forceinline__ int ctc_label_count(const long long* __restrict__ labels, int L, int* scratch) {
    int n = 0;
    for (int i = threadIdx.x; i < L; i += blockDim.x) n += labels[i] != 0;
    return block_sum(n, scratch);
}

template <typename T>
__device__ void ctc_alpha(const T* __restrict__ logp, const long long* __restrict__ labels, T* alpha,
                          T* __restrict__ log_likelihood, T* __restrict__ loss, int B, int steps, int C, int L) {
    __shared__ int scratch[32];
    const int b = blockIdx.x, S = 2 * L + 1;
    const long long* lab = labels + (size_t)b * L;
    const T* lp = logp + (size_t)b * steps * C;
    const size_t step_stride = (size_t)B * S;
    T* row = alpha + (size_t)b * S;
    const T neg_inf = -dl_infinity<T>();
    const int n = ctc_label_count(lab, L, scratch);

    for (int s = threadIdx.x; s < S; s += blockDim.x) row[s] = s < 2 ? ctc_emit(lp, lab, s, C) : neg_inf;
    for (int t = 1; t < steps; ++t) {
        __syncthreads();   // step t-1's row is written
        const T* prev = row;
        row += step_stride;
        const T* lp_t = lp + (size_t)t * C;
        for (int s = threadIdx.x; s < S; s += blockDim.x) {
            const T x = ctc_logaddexp(prev[s], s >= 1 ? prev[s - 1] : neg_inf);
            const T skipped = ctc_can_skip(lab, s) ? prev[s - 2] : neg_inf;
            row[s] = ctc_logaddexp(x, skipped) + ctc_emit(lp_t, lab, s, C);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const T* last = alpha + (size_t)(steps - 1) * step_stride + (size_t)b * S;
        const T a_blank = last[2 * n];
        const T a_label = n > 0 ? last[2 * n - 1] : neg_inf;
        const T top = nan_max(a_label, a_blank);
        const T shift = ctc_finite(top) ? top : T(0);
        const T ll = dl_log(dl_exp(a_label - shift) + dl_exp(a_blank - shift)) + shift;
        log_likelihood[b] = ll;
        loss[b] = -ll;
    }
}

template <typename T>
__device__ void ctc_beta(const T* __restrict__ logp, const long long* __restrict__ labels, T* beta, int B, int steps,
                         int C, int L) {
    __shared__ int scratch[32];
    const int b = blockIdx.x, S = 2 * L + 1;
    const long long* lab = labels + (size_t)b * L;
    const T* lp = logp + (size_t)b * steps * C;
    const size_t step_stride = (size_t)B * S;
    T* row = beta + (size_t)(steps - 1) * step_stride + (size_t)b * S;
    const T neg_inf = -dl_infinity<T>();
    const int n = ctc_label_count(lab, L, scratch);

    for (int s = threadIdx.x; s < S; s += blockDim.x) row[s] = (s == 2 * n || s == 2 * n - 1) ? T(0) : neg_inf;
    for (int t = steps - 2; t >= 0; --t) {
        __syncthreads();   // step t+1's row is written
        const T* next = row;
        row -= step_stride;
        const T* lp_next = lp + (size_t)(t + 1) * C;
        for (int s = threadIdx.x; s < S; s += blockDim.x) {
            const T n0 = next[s] + ctc_emit(lp_next, lab, s, C);
            const T n1 = s + 1 < S ? next[s + 1] + ctc_emit(lp_next, lab, s + 1, C) : neg_inf;
            const T n2 = s + 2 < S && ctc_can_skip(lab, s + 2) ? next[s + 2] + ctc_emit(lp_next, lab, s + 2, C)
                                                               : neg_inf;
            row[s] = ctc_logaddexp(ctc_logaddexp(n0, n1), n2);
        }
    }
}

template <typename T>
__device__ void ctc_grad(const T* __restrict__ logp, const long long* __restrict__ labels,
                         const T* __restrict__ alpha, const T* __restrict__ beta,
                         const T* __restrict__ log_likelihood, T* __restrict__ dlogits, int B, int steps, int C,
                         int L) {
    __shared__ T scratch[32];
    const int r = blockIdx.x, b = r / steps, t = r - b * steps, S = 2 * L + 1;
    const long long* lab = labels + (size_t)b * L;
    const T* lp = logp + (size_t)r * C;
    T* d = dlogits + (size_t)r * C;
    const size_t offset = ((size_t)t * B + b) * S;
    const T* a = alpha + offset;
    const T* be = beta + offset;
    const T ll = log_likelihood[b];
    const T scale = ctc_finite(ll) ? ll : T(0);

    T total = T(0), blank = T(0);
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        const T occ = dl_exp((a[s] + be[s]) - scale);
        total += occ;
        if ((s & 1) == 0 || lab[(s - 1) >> 1] == 0) blank += occ;
    }
    total = block_sum(total, scratch);
    blank = block_sum(blank, scratch);

    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const T spread = dl_exp(lp[c]) * total;
        d[c] = c == 0 ? spread - blank : spread;
    }
    __syncthreads();   // the label classes' elements are rewritten below, each by one thread
    for (int i = threadIdx.x; i < L; i += blockDim.x) {
        const long long c = lab[i];
        if (c <= 0 || c >= C) continue;
        bool first = true;
        for (int j = 0; j < i && first; ++j) first = lab[j] != c;
        if (!first) continue;
        T acc = T(0);
        for (int j = i; j < L; ++j) {
            if (lab[j] == c) acc += dl_exp((a[2 * j + 1] + be[2 * j + 1]) - scale);
        }
        d[c] = dl_exp(lp[c]) * total - acc;
    }
}

#define CTC_KERNELS(T, NAME)                                                                                        \
    extern "C" __global__ void __launch_bounds__(CTC_RECURSION_THREADS)                                             \
    ctc_alpha_##NAME(const T* logp, const long long* labels, T* alpha, T* log_likelihood, T* loss, int B,          \
                     int steps, int C, int L) {                                                                     \
        ctc_alpha<T>(logp, labels, alpha, log_likelihood, loss, B, steps, C, L);                                    \
    }                                                                                                               \
    extern "C" __global__ void __launch_bounds__(CTC_RECURSION_THREADS)                                             \
    ctc_beta_##NAME(const T* logp, const long long* labels, T* beta, int B, int steps, int C, int L) {             \
        ctc_beta<T>(logp, labels, beta, B, steps, C, L);                                                            \
    }                                                                                                               \
    extern "C" __global__ void __launch_bounds__(CTC_GRAD_THREADS)                                                  \
    ctc_grad_##NAME(const T* logp, const long long* labels, const T* alpha, const T* beta,                         \
                    const T* log_likelihood, T* dlogits, int B, int steps, int C, int L) {                          \
        ctc_grad<T>(logp, labels, alpha, beta, log_likelihood, dlogits, B, steps, C, L);                            \
    }

CTC_KERNELS(float, f32)
CTC_KERNELS(double, f64)
