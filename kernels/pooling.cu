// pooling.cu: 2-D max and average pooling over NHWC tensors, windowed and global, forward and backward.
//
// Shapes (all contiguous, C innermost): x and dx (N, H, W, C); y and dy
// (N, OH, OW, C) for windowed pooling, (N, C) for global pooling; argmax
// int32, shaped like y.
//
// Windowed geometry: pool (ph, pw), strides (sh, sw), padding top pt and
// left pl (the launcher computes OH = (H + pt + pb - ph) / sh + 1 and OW
// alike from the bottom/right pads, which the kernels need no further).
// Output (oh, ow) covers rows h = oh*sh - pt + r, r in [0, ph), and columns
// w = ow*sw - pl + q, q in [0, pw). Positions outside [0, H) x [0, W) are
// ignored: never a max candidate, never counted in an average (the divisor
// is the number of in-bounds positions, as TensorFlow's "same" average
// pooling divides). With pads < pool (the launcher checks) every window
// holds at least one in-bounds position.
//
// Kernels (T = float / double, suffix _f32 / _f64; `vec` is V below):
//   maxpool2d_fwd(x, y, argmax, N, H, W, C, OH, OW, ph, pw, sh, sw, pt, pl, vec)
//       y = max over the window; argmax = window-local position r*pw + q of
//       the first max in row-major (r, q) order. NaN is the largest value:
//       a window holding a NaN gives y = NaN and the first NaN's position
//       (NumPy's max/argmax).
//   maxpool2d_bwd_{rows,disjoint}(dy, argmax, dx, N, H, W, C, OH, OW, ph, pw, sh, sw, pt, pl, vec)
//       dx[n, h, w, c] = sum of dy[n, oh, ow, c] over the windows that hold
//       (h, w) and whose argmax is (h, w); 0 when there are none.
//   avgpool2d_fwd(x, y, N, H, W, C, OH, OW, ph, pw, sh, sw, pt, pl, vec)
//       y = (sum over the in-bounds window positions, row-major) / count.
//   avgpool2d_bwd_{rows,disjoint}(dy, dx, N, H, W, C, OH, OW, ph, pw, sh, sw, pt, pl, vec)
//       dx[n, h, w, c] = sum of dy[n, oh, ow, c] / count(oh, ow) over the
//       windows that hold (h, w).
//   Both backwards sum from 0 over the windows in ascending (oh, ow) order
//   (a lone term d comes out as 0 + d: +0 for d = -0). Two forms compute
//   the same bits; the launcher picks one by this rule: strides >= pool in
//   both axes (no input position in two windows, e.g. 2x2/2) runs
//   *_bwd_disjoint, every other geometry (e.g. 3x3/2) *_bwd_rows.
//   global_maxpool2d_fwd(x, y, argmax, N, HW, C)
//       y[n, c] = max over the H*W positions k = h*W + w; argmax[n, c] = k of
//       the first max (first NaN, as above).
//   global_maxpool2d_bwd(dy, argmax, dx, N, HW, C, vec)
//       dx[n, k, c] = dy[n, c] where argmax[n, c] == k, else 0.
//   global_avgpool2d_fwd(x, y, N, HW, C)
//       y[n, c] = (sum over k of x[n, k, c]) / HW, summed in T (float for _f32).
//   global_avgpool2d_bwd(dy, dx, N, HW, C, vec)
//       dx[n, k, c] = dy[n, c] / HW.
// Every output element is written exactly once (no memset, no atomics), and
// every sum is taken in an order fixed by the shapes alone: results are
// bitwise reproducible from run to run.
//
// Launch geometry.
//   Every windowed kernel moves V consecutive channels per access: V = 4
//   for float, 2 for double (16-byte loads and stores) when C % V == 0 and
//   every pointer is 16-byte aligned, else V = 1 (the launcher decides and
//   passes `vec`). Consecutive threads take consecutive channels, so each
//   warp access is one contiguous run of memory (or a few, a window apart).
//   Elementwise kernels (maxpool2d_fwd, avgpool2d_fwd, *_bwd_disjoint,
//   global_*_bwd): 1-D grid-stride loop, 256 threads per block,
//   ceil(items / 256) blocks capped at 524280 (launch.grid_1d). One item is
//   V channels of one output position (the forwards, *_bwd_disjoint) or one
//   input position (global_*_bwd).
//   *_bwd_disjoint is output-stationary: the item of dy position (oh, ow)
//   writes dx over its cell, rows [oh*sh - pt, oh*sh - pt + sh) and columns
//   alike, clipped to the input, the last row/column of cells extended to
//   H/W. The cells partition the input, and each holds its window (pool <=
//   stride, which starts it): the window's positions get their one term,
//   the rest of the cell (gaps of strides > pool, rows/columns past the last
//   window under "valid" padding) zeros, in the same launch. One index
//   decomposition and one dy (+ argmax) load per ph*pw (up to about sh*sw)
//   stores, as the forward's thread does per window read.
//   *_bwd_rows is a gather over input rows: a 2-D grid, blockIdx.x = the
//   input row n*H + h (N*H blocks), blockIdx.y = a tile of TY columns
//   (ceil(W / TY) tiles capped at 65535; the threads stride over the rest),
//   block (TX, TY) = (min(C / V, 32), 256 / TX); thread (tx, ty) does
//   channel vectors tx, tx + TX, ... of column w. The windows holding the
//   block's row, oh from ceil((h + pt - ph + 1) / sh) to min((h + pt) / sh,
//   OH - 1), are found once per block (thread 0), each column's ow range
//   (alike) once per column of the tile (TY threads), into shared memory
//   (2 * 256 + 3 ints); every thread then walks its windows in ascending
//   (oh, ow) order with 32-bit multiplies and adds only: no per-item
//   decomposition of a linear index, no division in the loops.
//   global_{max,avg}pool2d_fwd: blocks of (TX, TY) threads, TX = min(32,
//   pow2 >= C) channels by TY <= 32 slices of H*W (the launcher picks TY from
//   H*W); one block per (n, tile of TX channels), a 1-D grid of N *
//   ceil(C / TX) blocks. Thread (tx, ty) scans k = ty, ty + TY, ... for
//   channel c; the TY partial results go through shared memory and thread
//   row ty = 0 combines them in ascending ty. A warp reads 32 consecutive
//   channels of one position: coalesced.
//
// Bytes per output element, S = sizeof(T) (DRAM traffic; rereads of
// overlapping windows, of dy/argmax in the gathers and of the (N, C) arrays
// of global pooling are mostly L1/L2 hits):
//   maxpool2d_fwd  reads ph*pw*S (about sh*sw*S from DRAM), writes S + 4
//   maxpool2d_bwd  per input element writes S; per output element reads
//                  argmax (4 B) and dy (S) once from DRAM. _rows rereads up
//                  to ceil(ph/sh)*ceil(pw/sw) argmax per input element (dy
//                  only where an argmax matches; L1/L2 hits); _disjoint
//                  reads each once.
//   avgpool2d_fwd  reads ph*pw*S (about sh*sw*S from DRAM), writes S
//   avgpool2d_bwd  per input element writes S; per output element reads
//                  dy (S) once from DRAM (_rows rereads up to
//                  ceil(ph/sh)*ceil(pw/sw) per input element, L1/L2 hits)
//   global_maxpool2d_fwd reads H*W*S, writes S + 4; _bwd per input element
//                  writes S (reads 4 + S per (n, c))
//   global_avgpool2d_fwd reads H*W*S, writes S; _bwd per input element writes S
// FLOPs: one compare or add per window position, one division per average.
// Memory-bound throughout.
//
// Status: on an H100 (profiling/results/2026-11-24-H100/pooling.md) the
// windowed forwards reached 97-103% of the copy bandwidth (max 3x3/2: 71%),
// the earlier one-thread-per-input-element backward gathers about 50%. The *_bwd_rows and
// *_bwd_disjoint forms have not run on a GPU: they are tested on the
// emulated GPU only, and their speed is not measured yet
// (profiling/bench_pooling.py times the backward alone as its own pass).
//
// Limits: every array has fewer than 2**31 elements (32-bit indices; the
// launcher checks); pool, strides >= 1; 0 <= pads < pool; OH, OW >= 1;
// *_bwd_rows: blockDim.x * blockDim.y <= 256 (POOL_ROWS_THREADS); global
// pooling: blockDim.x * blockDim.y <= 1024 (POOL_GLOBAL_MAX_THREADS).
#include "common.cuh"

#define POOL_GLOBAL_MAX_THREADS 1024

// Whether value v at position k beats the current best (best at position arg; arg < 0: none yet).
// The order: NaN above every number, a larger number above a smaller one, and between equal values
// (or two NaNs) the smaller position. A scan in ascending k therefore keeps the first max (the first
// NaN), and partial results of interleaved scans combine to the same answer in any grouping.
template <typename T>
__device__ __forceinline__ bool pool_better(T v, int k, T best, int arg) {
    if (arg < 0) return k >= 0;
    const bool v_nan = v != v, best_nan = best != best;
    if (v_nan || best_nan) return v_nan && (!best_nan || k < arg);
    return v > best || (v == best && k < arg);
}

struct PoolGeom {
    int N, H, W, C, OH, OW, ph, pw, sh, sw, pt, pl;
};

// The in-bounds part [h0, h1) x [w0, w1) of the window of output (oh, ow), whose unclipped top-left
// corner is (hs, ws) (negative inside the top/left padding).
struct PoolWindow {
    int hs, ws, h0, h1, w0, w1;
    __device__ __forceinline__ PoolWindow(const PoolGeom& g, int oh, int ow) {
        hs = oh * g.sh - g.pt;
        ws = ow * g.sw - g.pl;
        h0 = max(hs, 0);
        h1 = min(hs + g.ph, g.H);
        w0 = max(ws, 0);
        w1 = min(ws + g.pw, g.W);
    }
    __device__ __forceinline__ int count() const { return (h1 - h0) * (w1 - w0); }
};

// First and last (inclusive) index of the windows along one axis that hold input index i:
// o*s - pad <= i <= o*s - pad + pool - 1, and 0 <= o < outputs. Empty (first > last) when none does.
__device__ __forceinline__ int pool_first_window(int i, int pad, int pool, int stride) {
    const int a = i + pad - pool + 1;   // o*s >= a
    return a > 0 ? (a + stride - 1) / stride : 0;
}
__device__ __forceinline__ int pool_last_window(int i, int pad, int stride, int outputs) {
    return min((i + pad) / stride, outputs - 1);   // i + pad >= 0
}

// Item i of a grid-stride loop over (N, A, B, C / V): V channels from c at position (a, b) of sample n,
// its first element at flat index i * V. (A, B) is (OH, OW): the forwards and the disjoint backward.
struct PoolItem {
    int n, a, b, c;
};
template <int V>
__device__ __forceinline__ PoolItem pool_item(unsigned i, unsigned cv, int A, int B) {
    PoolItem t;
    t.c = (int)(i % cv) * V;
    unsigned p = i / cv;
    t.b = (int)(p % (unsigned)B);
    p /= (unsigned)B;
    t.a = (int)(p % (unsigned)A);
    t.n = (int)(p / (unsigned)A);
    return t;
}

// ---------------------------------------------------------------------------------- windowed pooling
template <typename T, int V>
__device__ void maxpool2d_fwd_body(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                                   const PoolGeom g) {
    const unsigned cv = (unsigned)(g.C / V);
    const unsigned items = (unsigned)g.N * (unsigned)g.OH * (unsigned)g.OW * cv;
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < items; i += stride) {
        const PoolItem it = pool_item<V>(i, cv, g.OH, g.OW);
        const int n = it.n, c = it.c;
        const PoolWindow win(g, it.a, it.b);
        T best[V];
        int arg[V];
#pragma unroll
        for (int v = 0; v < V; ++v) {
            best[v] = -dl_infinity<T>();   // kept only by an empty window, which the launcher rules out
            arg[v] = -1;
        }
        for (int h = win.h0; h < win.h1; ++h) {
            const T* row = x + ((n * g.H + h) * g.W) * g.C + c;
            const int row_pos = (h - win.hs) * g.pw - win.ws;   // + w: the window-local position r*pw + q
            for (int w = win.w0; w < win.w1; ++w) {
                const VecN<T, V> a = vec_load<T, V>(row + w * g.C);
                const int pos = row_pos + w;
#pragma unroll
                for (int v = 0; v < V; ++v) {
                    if (pool_better(a.v[v], pos, best[v], arg[v])) {
                        best[v] = a.v[v];
                        arg[v] = pos;
                    }
                }
            }
        }
        VecN<T, V> out;
        VecN<int, V> out_arg;
#pragma unroll
        for (int v = 0; v < V; ++v) {
            out.v[v] = best[v];
            out_arg.v[v] = arg[v];
        }
        vec_store<T, V>(y + i * V, out);
        vec_store<int, V>(argmax + i * V, out_arg);
    }
}

template <typename T, int V>
__device__ void avgpool2d_fwd_body(const T* __restrict__ x, T* __restrict__ y, const PoolGeom g) {
    const unsigned cv = (unsigned)(g.C / V);
    const unsigned items = (unsigned)g.N * (unsigned)g.OH * (unsigned)g.OW * cv;
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < items; i += stride) {
        const PoolItem it = pool_item<V>(i, cv, g.OH, g.OW);
        const int n = it.n, c = it.c;
        const PoolWindow win(g, it.a, it.b);
        T acc[V];
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = T(0);
        for (int h = win.h0; h < win.h1; ++h) {
            const T* row = x + ((n * g.H + h) * g.W) * g.C + c;
            for (int w = win.w0; w < win.w1; ++w) {
                const VecN<T, V> a = vec_load<T, V>(row + w * g.C);
#pragma unroll
                for (int v = 0; v < V; ++v) acc[v] += a.v[v];
            }
        }
        const T count = T(win.count());
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) out.v[v] = acc[v] / count;
        vec_store<T, V>(y + i * V, out);
    }
}

// ---------------------------------------------------------------------------- windowed pooling backward
#define POOL_ROWS_THREADS 256   // threads per block of the *_bwd_rows kernels (the launcher's _THREADS)

// One body per form serves both ops: MAX reads argmax and passes dy to the window position it names, the
// average passes dy / count to every in-bounds position. A dx element's value is T(0) plus its terms in
// ascending (oh, ow) order in both forms (T(0) + d, not d: a lone -0 term gives +0, as a sum does).

// dx of input position (n, h, w) (dx_w: its first channel), held by the windows [oh0, oh1] x [ow0, ow1]: the
// thread's channel vectors tx, tx + blockDim.x, ...
template <typename T, int V, bool MAX>
__device__ __forceinline__ void pool2d_bwd_gather(const T* __restrict__ dy, const int* __restrict__ argmax,
                                                  T* __restrict__ dx_w, const PoolGeom& g, int n, int h, int w,
                                                  int oh0, int oh1, int ow0, int ow1) {
    for (int c = (int)threadIdx.x * V; c < g.C; c += (int)blockDim.x * V) {
        T acc[V];
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = T(0);
        for (int oh = oh0; oh <= oh1; ++oh) {
            const int hs = oh * g.sh - g.pt;
            const int r = h - hs;   // in [0, ph)
            const int rows = min(hs + g.ph, g.H) - max(hs, 0);
            const int o_row = (n * g.OH + oh) * g.OW;
            for (int ow = ow0; ow <= ow1; ++ow) {
                const int ws = ow * g.sw - g.pl;
                const int o = (o_row + ow) * g.C + c;
                if (MAX) {
                    const int pos = r * g.pw + (w - ws);
                    const VecN<int, V> am = vec_load<int, V>(argmax + o);
                    bool any = false;
#pragma unroll
                    for (int v = 0; v < V; ++v) any = any || am.v[v] == pos;
                    if (any) {   // dy is read only where some argmax points here
                        const VecN<T, V> d = vec_load<T, V>(dy + o);
#pragma unroll
                        for (int v = 0; v < V; ++v) {
                            if (am.v[v] == pos) acc[v] += d.v[v];
                        }
                    }
                } else {
                    const T count = T(rows * (min(ws + g.pw, g.W) - max(ws, 0)));
                    const VecN<T, V> d = vec_load<T, V>(dy + o);
#pragma unroll
                    for (int v = 0; v < V; ++v) acc[v] += d.v[v] / count;
                }
            }
        }
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) out.v[v] = acc[v];
        vec_store<T, V>(dx_w + c, out);
    }
}

// Gather, any geometry: block (blockIdx.x, blockIdx.y) = input row n*H + h, a tile of blockDim.y columns; thread
// (tx, ty) = channel vectors tx, tx + blockDim.x, ... of column w. The divisions that find the windows holding
// a position run once per block for the row ([oh0, oh1], thread 0) and once per column of the tile ([ow0, ow1],
// thread ty of the first blockDim.y), into shared memory; the other threads and the inner loops only multiply
// and add.
template <typename T, int V, bool MAX>
__device__ void pool2d_bwd_rows_body(const T* __restrict__ dy, const int* __restrict__ argmax, T* __restrict__ dx,
                                     const PoolGeom g) {
    __shared__ int row_range[3];                       // n, oh0, oh1 of the block's row
    __shared__ int col_range[2 * POOL_ROWS_THREADS];   // ow0, ow1 of each column of the tile
    const int row = (int)blockIdx.x;   // gridDim.x == N * H
    const int tid = (int)(threadIdx.y * blockDim.x + threadIdx.x);
    if (tid == 0) {
        const int n = row / g.H, h = row - n * g.H;
        row_range[0] = n;
        row_range[1] = pool_first_window(h, g.pt, g.ph, g.sh);
        row_range[2] = pool_last_window(h, g.pt, g.sh, g.OH);
    }
    // The tile loop is uniform over the block (w0 does not depend on the thread): every thread reaches the
    // barriers.
    for (int w0 = (int)(blockIdx.y * blockDim.y); w0 < g.W; w0 += (int)(gridDim.y * blockDim.y)) {
        if (tid < (int)blockDim.y && w0 + tid < g.W) {
            col_range[2 * tid] = pool_first_window(w0 + tid, g.pl, g.pw, g.sw);
            col_range[2 * tid + 1] = pool_last_window(w0 + tid, g.pl, g.sw, g.OW);
        }
        __syncthreads();
        const int w = w0 + (int)threadIdx.y;
        if (w < g.W) {
            const int n = row_range[0], h = row - n * g.H, oh0 = row_range[1], oh1 = row_range[2];
            const int ow0 = col_range[2 * threadIdx.y], ow1 = col_range[2 * threadIdx.y + 1];
            pool2d_bwd_gather<T, V, MAX>(dy, argmax, dx + (row * g.W + w) * g.C, g, n, h, w, oh0, oh1, ow0, ow1);
        }
        __syncthreads();   // the next tile's ranges overwrite these
    }
}

// The input indices [i0, i1) along one axis that output o owns in the disjoint form: its stride-long cell
// [o*s - pad, o*s - pad + s) clipped to [0, size), the last one extended to size. With pool <= s the window
// [o*s - pad, o*s - pad + pool) lies in its own cell and starts it, and the cells partition [0, size).
__device__ __forceinline__ void pool_cell(int o, int stride, int pad, int outputs, int size, int& i0, int& i1) {
    const int start = o * stride - pad;
    i0 = max(start, 0);
    i1 = o == outputs - 1 ? size : min(start + stride, size);
}

// Non-overlapping windows (sh >= ph, sw >= pw), output-stationary: item i = V channels of dy position (n, oh, ow)
// (the forwards' grid-stride loop) writes dx over its cell: the window's positions get their single term, the
// rest of the cell (a gap between windows, rows/columns past the last window) zeros.
template <typename T, int V, bool MAX>
__device__ void pool2d_bwd_disjoint_body(const T* __restrict__ dy, const int* __restrict__ argmax,
                                         T* __restrict__ dx, const PoolGeom g) {
    const unsigned cv = (unsigned)(g.C / V);
    const unsigned items = (unsigned)g.N * (unsigned)g.OH * (unsigned)g.OW * cv;
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < items; i += stride) {
        const PoolItem it = pool_item<V>(i, cv, g.OH, g.OW);
        const PoolWindow win(g, it.a, it.b);
        int h0, h1, w0, w1;
        pool_cell(it.a, g.sh, g.pt, g.OH, g.H, h0, h1);
        pool_cell(it.b, g.sw, g.pl, g.OW, g.W, w0, w1);
        const VecN<T, V> d = vec_load<T, V>(dy + i * V);
        VecN<int, V> am;
        T grad[V];   // what each window position receives (MAX: the one argmax names)
        if (MAX) am = vec_load<int, V>(argmax + i * V);
        const T count = T(win.count());
#pragma unroll
        for (int v = 0; v < V; ++v) grad[v] = MAX ? T(0) + d.v[v] : T(0) + d.v[v] / count;
        for (int h = h0; h < h1; ++h) {
            T* const dx_row = dx + ((it.n * g.H + h) * g.W) * g.C + it.c;
            const bool in_rows = h < win.h1;   // h >= win.h0: the cell starts where the window does
            const int row_pos = (h - win.hs) * g.pw - win.ws;
            for (int w = w0; w < w1; ++w) {
                const bool in = in_rows && w < win.w1;
                VecN<T, V> out;
#pragma unroll
                for (int v = 0; v < V; ++v) out.v[v] = in && (!MAX || am.v[v] == row_pos + w) ? grad[v] : T(0);
                vec_store<T, V>(dx_row + w * g.C, out);
            }
        }
    }
}

// ------------------------------------------------------------------------------------ global pooling
// Block (tx, ty): channel c = tile * blockDim.x + tx of sample n, positions k = ty, ty + blockDim.y, ...
// `vals` / `args` are the block's shared scratch of blockDim.x * blockDim.y entries.
template <typename T>
__device__ void global_maxpool2d_fwd_body(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                                          int N, int HW, int C, T* vals, int* args) {
    const int tiles = (C + (int)blockDim.x - 1) / (int)blockDim.x;
    const int n = (int)blockIdx.x / tiles;
    const int c = ((int)blockIdx.x % tiles) * (int)blockDim.x + (int)threadIdx.x;
    T best = -dl_infinity<T>();
    int arg = -1;
    if (n < N && c < C) {
        const T* xc = x + n * HW * C + c;
#pragma unroll 4
        for (int k = (int)threadIdx.y; k < HW; k += (int)blockDim.y) {
            const T v = xc[k * C];
            if (pool_better(v, k, best, arg)) {
                best = v;
                arg = k;
            }
        }
    }
    const int slot = (int)(threadIdx.y * blockDim.x + threadIdx.x);
    vals[slot] = best;
    args[slot] = arg;
    __syncthreads();
    if (threadIdx.y == 0 && n < N && c < C) {
        for (int j = 1; j < (int)blockDim.y; ++j) {   // fixed order; the result does not depend on it
            const T v = vals[j * blockDim.x + threadIdx.x];
            const int k = args[j * blockDim.x + threadIdx.x];
            if (k >= 0 && pool_better(v, k, best, arg)) {
                best = v;
                arg = k;
            }
        }
        y[n * C + c] = best;
        argmax[n * C + c] = arg;
    }
}

template <typename T>
__device__ void global_avgpool2d_fwd_body(const T* __restrict__ x, T* __restrict__ y, int N, int HW, int C,
                                          T* vals) {
    const int tiles = (C + (int)blockDim.x - 1) / (int)blockDim.x;
    const int n = (int)blockIdx.x / tiles;
    const int c = ((int)blockIdx.x % tiles) * (int)blockDim.x + (int)threadIdx.x;
    T acc = T(0);
    if (n < N && c < C) {
        const T* xc = x + n * HW * C + c;
#pragma unroll 4
        for (int k = (int)threadIdx.y; k < HW; k += (int)blockDim.y) acc += xc[k * C];
    }
    vals[threadIdx.y * blockDim.x + threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && n < N && c < C) {
        for (int j = 1; j < (int)blockDim.y; ++j) acc += vals[j * blockDim.x + threadIdx.x];   // ascending ty
        y[n * C + c] = acc / T(HW);
    }
}

// Item i: V channels of input position (n, k); the first element at flat index i * V of dx.
template <typename T, int V>
__device__ void global_maxpool2d_bwd_body(const T* __restrict__ dy, const int* __restrict__ argmax,
                                          T* __restrict__ dx, int N, int HW, int C) {
    const unsigned cv = (unsigned)(C / V);
    const unsigned items = (unsigned)N * (unsigned)HW * cv;
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < items; i += stride) {
        const int c = (int)(i % cv) * V;
        const unsigned p = i / cv;
        const int k = (int)(p % (unsigned)HW);
        const int n = (int)(p / (unsigned)HW);
        const VecN<int, V> am = vec_load<int, V>(argmax + n * C + c);
        const VecN<T, V> d = vec_load<T, V>(dy + n * C + c);
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) out.v[v] = am.v[v] == k ? d.v[v] : T(0);
        vec_store<T, V>(dx + i * V, out);
    }
}

template <typename T, int V>
__device__ void global_avgpool2d_bwd_body(const T* __restrict__ dy, T* __restrict__ dx, int N, int HW, int C) {
    const unsigned cv = (unsigned)(C / V);
    const unsigned items = (unsigned)N * (unsigned)HW * cv;
    const unsigned stride = gridDim.x * blockDim.x;
    const T count = T(HW);
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < items; i += stride) {
        const int c = (int)(i % cv) * V;
        const int n = (int)(i / cv / (unsigned)HW);
        const VecN<T, V> d = vec_load<T, V>(dy + n * C + c);
        VecN<T, V> out;
#pragma unroll
        for (int v = 0; v < V; ++v) out.v[v] = d.v[v] / count;
        vec_store<T, V>(dx + i * V, out);
    }
}

// -------------------------------------------------------------------------------- extern "C" kernels
// `vec` (uniform over the grid) picks the instantiation: VW (16 bytes per access) or 1.
#define POOL_GEOM_PARAMS                                                                                \
    int N, int H, int W, int C, int OH, int OW, int ph, int pw, int sh, int sw, int pt, int pl, int vec
#define POOL_GEOM PoolGeom{N, H, W, C, OH, OW, ph, pw, sh, sw, pt, pl}

// The two ops' backward kernels of one form (FORM: rows, disjoint), e.g. maxpool2d_bwd_rows_f32.
#define POOLING_BWD_KERNELS(T, SUFFIX, VW, FORM)                                                        \
    extern "C" __global__ void maxpool2d_bwd_##FORM##_##SUFFIX(const T* dy, const int* argmax, T* dx,   \
                                                               POOL_GEOM_PARAMS) {                      \
        if (vec == VW) pool2d_bwd_##FORM##_body<T, VW, true>(dy, argmax, dx, POOL_GEOM);                \
        else pool2d_bwd_##FORM##_body<T, 1, true>(dy, argmax, dx, POOL_GEOM);                           \
    }                                                                                                   \
    extern "C" __global__ void avgpool2d_bwd_##FORM##_##SUFFIX(const T* dy, T* dx, POOL_GEOM_PARAMS) {  \
        if (vec == VW) pool2d_bwd_##FORM##_body<T, VW, false>(dy, nullptr, dx, POOL_GEOM);              \
        else pool2d_bwd_##FORM##_body<T, 1, false>(dy, nullptr, dx, POOL_GEOM);                         \
    }

#define POOLING_KERNELS(T, SUFFIX, VW)                                                                  \
    extern "C" __global__ void maxpool2d_fwd_##SUFFIX(const T* x, T* y, int* argmax, POOL_GEOM_PARAMS) { \
        if (vec == VW) maxpool2d_fwd_body<T, VW>(x, y, argmax, POOL_GEOM);                              \
        else maxpool2d_fwd_body<T, 1>(x, y, argmax, POOL_GEOM);                                         \
    }                                                                                                   \
    extern "C" __global__ void avgpool2d_fwd_##SUFFIX(const T* x, T* y, POOL_GEOM_PARAMS) {             \
        if (vec == VW) avgpool2d_fwd_body<T, VW>(x, y, POOL_GEOM);                                      \
        else avgpool2d_fwd_body<T, 1>(x, y, POOL_GEOM);                                                 \
    }                                                                                                   \
    POOLING_BWD_KERNELS(T, SUFFIX, VW, rows)                                                            \
    POOLING_BWD_KERNELS(T, SUFFIX, VW, disjoint)                                                        \
    extern "C" __global__ void __launch_bounds__(POOL_GLOBAL_MAX_THREADS)                              \
    global_maxpool2d_fwd_##SUFFIX(const T* x, T* y, int* argmax, int N, int HW, int C) {                \
        __shared__ T vals[POOL_GLOBAL_MAX_THREADS];                                                     \
        __shared__ int args[POOL_GLOBAL_MAX_THREADS];                                                   \
        global_maxpool2d_fwd_body<T>(x, y, argmax, N, HW, C, vals, args);                               \
    }                                                                                                   \
    extern "C" __global__ void global_maxpool2d_bwd_##SUFFIX(const T* dy, const int* argmax, T* dx, int N, \
                                                             int HW, int C, int vec) {                  \
        if (vec == VW) global_maxpool2d_bwd_body<T, VW>(dy, argmax, dx, N, HW, C);                      \
        else global_maxpool2d_bwd_body<T, 1>(dy, argmax, dx, N, HW, C);                                 \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(POOL_GLOBAL_MAX_THREADS)                              \
    global_avgpool2d_fwd_##SUFFIX(const T* x, T* y, int N, int HW, int C) {                             \
        __shared__ T vals[POOL_GLOBAL_MAX_THREADS];                                                     \
        global_avgpool2d_fwd_body<T>(x, y, N, HW, C, vals);                                             \
    }                                                                                                   \
    extern "C" __global__ void global_avgpool2d_bwd_##SUFFIX(const T* dy, T* dx, int N, int HW, int C,  \
                                                             int vec) {                                 \
        if (vec == VW) global_avgpool2d_bwd_body<T, VW>(dy, dx, N, HW, C);                              \
        else global_avgpool2d_bwd_body<T, 1>(dy, dx, N, HW, C);                                         \
    }

POOLING_KERNELS(float, f32, 4)
POOLING_KERNELS(double, f64, 2)
