// conv2d.cu: 2-D convolution on NHWC data as implicit GEMMs (no im2col buffer):
// forward with a fused bias + activation epilogue, backward to the input, backward to the kernel.
//
// Shapes (Keras 3, channels_last), all C-contiguous:
//   x (N, H, W, Cin)   kernel (KH, KW, Cin, Cout)   bias (Cout,)   y, z, dy (N, OH, OW, Cout)
// with strides (sh, sw), dilation (dh, dw) and zero padding (pt, pb) top/bottom, (pl, pr) left/right:
//   OH = (H + pt + pb - dh*(KH-1) - 1) / sh + 1   (OW likewise; the launcher computes both)
// Output pixel (oh, ow) reads, through tap (r, q), input pixel
//   h = oh*sh - pt + r*dh,  w = ow*sw - pl + q*dw          (outside [0,H) x [0,W): zero)
//
//   forward          z[n,oh,ow,co] = sum_{r,q,c} x[n,h,w,c] * kernel[r,q,c,co]  (+ bias[co])
//                    y = f(z) (act_forward of activation_math.cuh, as in activations.cu)
//   backward data    dx[n,h,w,c]   = sum_{r,q,co} dy[n,oh,ow,co] * kernel[r,q,c,co]
//                    over the (r, q) for which oh = (h + pt - r*dh) / sh is an exact integer
//                    in [0, OH) (and ow likewise)
//   backward filter  dk[r,q,c,co]  = sum_{n,oh,ow} x[n,h,w,c] * dy[n,oh,ow,co]
// The bias gradient is the caller's (a sum of dy over n, oh, ow).
//
// As GEMMs (K is the reduction):
//   forward          M = N*OH*OW rows (n,oh,ow), Ncols = Cout, K = KH*KW*Cin (r,q,c);
//                    A = x gathered on the fly, B = kernel viewed as the (K, Cout) matrix it is.
//   backward data    M = N*H*W rows (n,h,w), Ncols = Cin, K = KH*KW*Cout (r,q,co);
//                    A = dy gathered, B = the kernel with its last two axes swapped,
//                    (KH, KW, Cout, Cin) = a (K, Cin) matrix; the launcher makes that copy
//                    (KH*KW*Cin*Cout elements) for the tensor-core kernels.
//   backward filter  M = KH*KW*Cin rows (r,q,c), Ncols = Cout, K = P = N*OH*OW (n,oh,ow);
//                    A = x gathered (A[(r,q,c), p]), B = dy viewed as (P, Cout).
//
// Kernels. Tensor-core kernels take float32 arrays; PREC is tf32 (inputs rounded with
// cvt.rna.tf32.f32, mma.sync m16n8k8) or bf16 (inputs rounded to bfloat16 with cvt.rn.bf16x2.f32,
// mma.sync m16n8k16); both accumulate in float32. NB (32 or 64) is the block's tile of Ncols.
//   conv2d_fwd_{tf32,bf16}[_m64]_n{32,64}(x, kernel, bias or null, z or null, y, DIMS, kind, p0, p1, p2,
//                                         vec_a, vec_b)
//   conv2d_bwd_data_{tf32,bf16}[_m64]_n{32,64}(dy, kernel_t, dx, DIMS, vec_a, vec_b)
//   conv2d_bwd_filter_{tf32,bf16}_n{32,64}(x, dy, partial, DIMS, tiles_per_split, vec_a, vec_b)
// Tiled float32 kernels (precision "float32" on sm_80+), the same names and arguments with PREC = f32tile:
//   conv2d_fwd_f32tile[_m64]_n{32,64}, conv2d_bwd_data_f32tile[_m64]_n{32,64}, conv2d_bwd_filter_f32tile_n{32,64}
// Exact kernels (FMA in the arrays' dtype; float64 gradient checks, and precision "float32" on GPUs older
// than sm_80):
//   conv2d_fwd_{f32,f64}(x, kernel, bias or null, z or null, y, DIMS, kind, p0, p1, p2)
//   conv2d_bwd_data_{f32,f64}(dy, kernel, dx, DIMS)
//   conv2d_bwd_filter_{f32,f64}(x, dy, partial, DIMS, p_per_split)
//   conv2d_bwd_filter_reduce_{f32,f64}(partial, dk, count, splits)
// DIMS is the 15 ints N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl.
// kind, p0..p2: the activation (codes of activation_math.cuh). z = acc + bias is written unless z
// is null (only with kind != 0: inference, and training whose activation gradient reads y alone);
// y = f(z) only when kind != 0 (the identity's launcher passes y = z and reads z as y).
// vec_a / vec_b (0 or 1): the A / B operand may be loaded in 16-byte chunks: its contiguous
// dimension (A: Cin forward and backward filter, Cout backward data; B: Ncols) is a multiple of
// 4 and its base address 16-byte aligned. 0 loads element by element (any shape).
//
// Tensor-core kernels, launch geometry. A block computes a BM x NB tile of the output matrix;
// 1-D grid, tile (m, n) = (blockIdx.x / tiles_n, blockIdx.x % tiles_n), tiles_n = ceil(Ncols/NB).
//   fwd / bwd_data: BM = 128 (no infix) or 64 (_m64), BK = 16, 3-stage cp.async pipeline; each warp
//     32x32 (2 x 4 mma tiles). BM 128: NB = 64: 256 threads, warps 4 (M) x 2 (N); NB = 32: 128
//     threads, warps 4 x 1; static shared memory 44.5 / 38.4 KB. BM 64: warps 2 x 2 (128 threads)
//     / 2 x 1 (64); 29.2 / 23.0 KB. Grid ceil(M/BM) * tiles_n blocks. The launcher takes BM = 64
//     where the busiest SM (ceil(blocks / SMs) tiles) then computes at most 0.8 of the rows it
//     computes with BM = 128: grids of a few waves with a ragged last one (M = 25088, NB 64, 132
//     SMs: 196 blocks of 128 rows, 2 on the busiest SM = 256 rows; 392 of 64, 3 = 192 rows), and
//     grids smaller than the device; elsewhere the 128-row tile's better reuse of B wins.
//   bwd_filter: BM = 64 (rows of the kernel), BK = 32 (positions p), 2 stages, 128 threads, warps
//     2 x 2 (each 32 x NB/2). Grid (ceil(KH*KW*Cin/64) * tiles_n, 1, splits): block z reduces the
//     p-tiles [z*tiles_per_split, (z+1)*tiles_per_split) and writes its whole tile of
//     partial[z] (KH*KW*Cin, Cout); conv2d_bwd_filter_reduce_f32 then sums the splits in a fixed
//     order (no atomics: the result is the same bits on every run). With one split the kernel
//     writes dk directly. 36.9 KB of static shared memory.
//   Shared-memory rows are padded (A: BK + 4 words for the (M, K) layout of fwd/bwd_data, BM + 8
//   for the (K, M) layout of bwd_filter; B: NB + 8) so the tf32 fragment loads are free of bank
//   conflicts; bf16 fragments read pairs of k and meet some 2-way conflicts.
//   The A gather: each thread owns one 4-element chunk of a tile row (4 consecutive k = channels
//   of one tap when Cin (Cout) % 4 == 0: one 16-byte cp.async; otherwise 4 single-element ones)
//   and decomposes k into (tap, channel) once per tile; rows' (n, oh, ow) are decomposed once
//   per block (fwd / bwd_data) or once per tile (bwd_filter, whose rows are positions p).
//   Out-of-range taps, rows, k beyond K and columns beyond Ncols are zero-filled (cp.async with
//   source size 0), so K needs no padding in memory (Cin = 3: K = 27 is two tiles of 16).
//   Epilogue straight from the accumulators: each thread writes 2 consecutive columns (a float2
//   when Ncols is even) of 2 x MT rows; the 4 threads of a quad cover 32 contiguous bytes.
//   Backward data with stride > 1 runs the full K loop and zero-fills the taps that do not land
//   on an output pixel (sh*sw - 1 of each sh*sw are zeros): correct, not the fastest form.
// Tiled float32 kernels: the tensor-core kernels' tiles, grids, loaders and pipeline (the same
//   launcher rules), with scalar fmaf instead of mma.sync: thread t owns TM rows x 4 consecutive
//   columns (fn0 = (t % (NB/4)) * 4; TM = BM*NB / (4*threads): 8, or 4 in bwd_filter _n32), rows
//   t / (NB/4) + i*threads/(NB/4) (fwd / bwd_data) or TM consecutive rows (bwd_filter); 32 or 16
//   accumulators, 1 fmaf per term. Per k a thread reads TM floats of A (float4s in bwd_filter)
//   and one float4 of B from shared memory. The loader writes beside each A tile a byte per element
//   (1: a real term; 0: padding, a tap on no output pixel, a row or k beyond the GEMM), and only
//   real terms are accumulated: each output's terms are the exact kernel's, in its order (k =
//   (r, q, c), (r, q, co) ascending; p ascending within a split), each one fmaf into a float32
//   accumulator starting at +0, then the same bias add, activation and split reduce: the same
//   bits as the exact kernels, -0, inf and NaN included. (FMA-ing the zero-filled terms would not
//   be: -0 + 0*w is +0, 0*inf is NaN.) A rows are unpadded in bwd_filter (LDA = BM) and B rows
//   everywhere (LDB = NB): the FMA stage's float4 reads take at most 2 rows a quarter warp. Static
//   shared memory: fwd / bwd_data BM 128: 49.2 KB (n64: the 48 KiB static limit) / 43.0 KB (n32);
//   BM 64: 30.7 / 24.6 KB; bwd_filter 36.9 / 28.7 KB. fwd / bwd_data hold 154-166 registers
//   (ptxas, sm_80 / sm_90): launch bounds of half the tensor-core kernels' blocks per SM (1 block of
//   256 threads, 2 of 128, 4 of 64); bwd_filter ~90.
//   Precision "float32" splits backward filter by the tiled rule (whole 32-position tiles) whichever
//   kernel runs, so its exact kernels sum the same splits.
// Exact kernels: one thread per output element, 256 threads, 1-D grid-stride loop
// (launch.grid_1d); bwd_filter: grid (ceil(KH*KW*Cin*Cout/256), splits), each thread summing
// p_per_split positions, then the same reduce kernel. Consecutive threads take consecutive
// output channels, so kernel / dy reads are coalesced and x / dy pixels are broadcast.
// Reduce (both dtypes): block (32, 8) = 256 threads, grid ceil(count/32), count = KH*KW*Cin*Cout.
// threadIdx.x picks one of 32 consecutive outputs, threadIdx.y one of 8 stripes of the splits
// (the splits s with s mod 8 = threadIdx.y), each summed with 4 independent accumulators (4 loads
// in flight per thread); the 8 stripe sums are added in stripe order through 1 KB (2 KB float64)
// of shared memory. Reads S*splits*count bytes (each warp 128 contiguous bytes per load), writes
// S*count.
//
// Bytes and FLOPs. Every kernel does 2 FLOPs per multiply-add: forward 2*K per output element
// (+1 bias, + the activation); backward data 2*KH*KW*Cout per dx element (tensor cores: of which
// a fraction 1/(sh*sw) are nonzero products; the tiled float32 kernels skip the zero ones but
// still load and step over them); backward filter 2*P per dk element, plus
// `splits` adds each in the reduce. Ideal traffic (inputs read once from DRAM, S = sizeof(T)):
//   forward    S*(|x| + |kernel| + Cout) read, S*|z| written (2 S*|z| with an activation and z)
//   bwd data   S*(|dy| + |kernel|) read, S*|dx| written
//   bwd filter S*(|x| + |dy|) read, S*|dk| written (+ 2*4*splits*|dk| through the partials).
// The gather re-reads each x element up to KH*KW times (ceil(KH/sh)*ceil(KW/sw) distinct
// output pixels) through L1/L2; the tensor-core and tiled float32 kernels re-read A once per column
// tile (Ncols > NB) and B once per row tile (from L2: the kernel is small), and write BM*BK bytes of
// term mask to shared memory per A tile (float32 only). The exact kernels read each term's two operands
// from global memory (L1), one thread per output: no reuse through shared memory.
//
// Limits: every tensor has fewer than 2**31 - 2**16 elements, and so do M, K, Ncols and the
// partial buffer (32-bit indices with room for a tile's overshoot; the launcher checks);
// padding >= 0, strides and dilation >= 1, OH, OW >= 1. The tensor-core kernels need sm_80
// (cp.async, mma.sync tf32/bf16), and so do the tiled float32 kernels (cp.async); compiled for an
// older GPU their bodies trap, and the launcher uses the exact kernels there.
//
// Status: run on an H100 80GB HBM3 on 2026-11-24: tests/test_conv2d_kernel.py passed on the GPU,
// compute-sanitizer memcheck and racecheck clean; against cuDNN the TF32 forward ran 0.65-1.26x on
// the seed shapes and 0.54x on ResNet's 56x56 64->64, the forward + backward far slower
// (profiling/results/README.md). Not yet run on a GPU (tested on the emulated GPU of
// tests/emulated_gpu only, neither timed nor sanitized): the striped split reduce of backward filter,
// the forward's null z (y written alone), and the 64-row tiles of forward and backward data with
// the launcher's rule choosing them; profiling/bench_conv2d.py's tile table is there to confirm the rule.
// The tiled float32 kernels have not run on a GPU either (emulated GPU only: bit for bit against the
// exact kernels there; neither timed nor sanitized). The H100 strict-float32 figures
// (profiling/results/2026-11-24-H100/conv2d.md: 0.24-0.86x cuDNN forward, 0.03-0.25x forward +
// backward) are the exact kernels'; bench_conv2d.py's float32 kernel table times the two side by side.
#include "common.cuh"
#include "activation_math.cuh"

#define CONV_FWD 0
#define CONV_BWD_DATA 1
#define CONV_BWD_FILTER 2

#define CONV_MMA_TF32 0
#define CONV_MMA_BF16 1
#define CONV_FMA_F32 2   // no tensor cores: scalar FMAs in float32, the exact kernels' order and bits

struct ConvDims {
    int N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl;
};

#define CONV_DIMS_PARAMS                                                                                        \
    int N, int H, int W, int Cin, int OH, int OW, int Cout, int KH, int KW, int sh, int sw, int dh, int dw,       \
        int pt, int pl
#define CONV_DIMS_VALUE ConvDims{N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl}

__device__ __forceinline__ float conv_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double conv_fma(double a, double b, double c) { return fma(a, b, c); }

// ------------------------------------------------------------------------------------------------
// The im2col gather, one GEMM element at a time.
//
// A row of A is a pixel: ConvPos holds what every k of that row shares. A column of A is a tap
// and a channel: ConvTap. The element's offset in the gathered tensor is -1 when it lies in the
// padding, beyond the GEMM's M or K, or (backward data) on no output pixel.

struct ConvPos {
    int img;      // first image row of the pixel's image (n*H forward, n*OH backward data); -1: no row
    int i0, j0;   // forward: oh*sh - pt, ow*sw - pl.  backward data: h + pt, w + pl
};

struct ConvTap {
    int ch;       // channel: c forward, co backward data
    int di, dj;   // r*dh, q*dw
    bool valid;   // k < K
};

// Forward (and backward filter's positions p): m = (n, oh, ow) over N*OH*OW.
__device__ __forceinline__ ConvPos fwd_pos(const ConvDims& d, int m, int M) {
    if (m >= M) return ConvPos{-1, 0, 0};
    const int ow = m % d.OW, t = m / d.OW;
    const int oh = t % d.OH, n = t / d.OH;
    return ConvPos{n * d.H, oh * d.sh - d.pt, ow * d.sw - d.pl};
}

// Forward's k (and backward filter's rows): k = (r, q, c) over KH*KW*Cin.
__device__ __forceinline__ ConvTap fwd_tap(const ConvDims& d, int k, int K) {
    if (k >= K) return ConvTap{0, 0, 0, false};
    const int c = k % d.Cin, tap = k / d.Cin;
    return ConvTap{c, (tap / d.KW) * d.dh, (tap % d.KW) * d.dw, true};
}

// Offset of x[n, h, w, c] for a forward position and tap, or -1.
__device__ __forceinline__ int fwd_offset(const ConvDims& d, const ConvPos& pos, const ConvTap& tap) {
    if (pos.img < 0 || !tap.valid) return -1;
    const int h = pos.i0 + tap.di, w = pos.j0 + tap.dj;
    if ((unsigned)h >= (unsigned)d.H || (unsigned)w >= (unsigned)d.W) return -1;
    return ((pos.img + h) * d.W + w) * d.Cin + tap.ch;
}

// Backward data: m = (n, h, w) over N*H*W.
__device__ __forceinline__ ConvPos bwd_pos(const ConvDims& d, int m, int M) {
    if (m >= M) return ConvPos{-1, 0, 0};
    const int w = m % d.W, t = m / d.W;
    const int h = t % d.H, n = t / d.H;
    return ConvPos{n * d.OH, h + d.pt, w + d.pl};
}

// Backward data's k: k = (r, q, co) over KH*KW*Cout.
__device__ __forceinline__ ConvTap bwd_tap(const ConvDims& d, int k, int K) {
    if (k >= K) return ConvTap{0, 0, 0, false};
    const int co = k % d.Cout, tap = k / d.Cout;
    return ConvTap{co, (tap / d.KW) * d.dh, (tap % d.KW) * d.dw, true};
}

// Offset of dy[n, oh, ow, co] with oh*sh = h + pt - r*dh, ow*sw = w + pl - q*dw, or -1.
__device__ __forceinline__ int bwd_offset(const ConvDims& d, const ConvPos& pos, const ConvTap& tap) {
    if (pos.img < 0 || !tap.valid) return -1;
    const int a = pos.i0 - tap.di, b = pos.j0 - tap.dj;
    if (a < 0 || b < 0 || a % d.sh != 0 || b % d.sw != 0) return -1;
    const int oh = a / d.sh, ow = b / d.sw;
    if (oh >= d.OH || ow >= d.OW) return -1;
    return ((pos.img + oh) * d.OW + ow) * d.Cout + tap.ch;
}

// ------------------------------------------------------------------------------------------------
// PTX wrappers (sm_80+).

__device__ __forceinline__ unsigned conv_smem_address(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

// Copy 4 bytes global -> shared, or write a zero when !valid (source size 0: nothing is read;
// the source operand is then any valid address, the tensor's base).
__device__ __forceinline__ void cp_async_4(float* dst, const float* src, bool valid) {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(conv_smem_address(dst)), "l"(src),
                 "r"(valid ? 4 : 0)
                 : "memory");
#endif
}

// 16 bytes (4 floats) global -> shared, zeros when !valid; both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(float* dst, const float* src, bool valid) {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(conv_smem_address(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Wait until at most PENDING of this thread's most recent groups are still in flight.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r = 0;
#if __CUDA_ARCH__ >= 800
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#endif
    return r;
}

// Two floats rounded to bfloat16 and packed: `lo` (the lower k index) in bits 0-15, `hi` in 16-31.
__device__ __forceinline__ unsigned to_bf16x2(float lo, float hi) {
    unsigned r = 0;
#if __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

// c += a * b for one 16x8 tile. Fragment layouts (PTX ISA, g = lane / 4, t = lane % 4):
//   tf32 m16n8k8:  a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (k=t, n=g), b1 (k=t+4, n=g)
//   bf16 m16n8k16: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..);
//                  b0 (k=2t..2t+1, n=g), b1 (k=2t+8..2t+9, n=g)
//   c (both):      c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
__device__ __forceinline__ void mma_tf32(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// ------------------------------------------------------------------------------------------------
// One warp's MT x NT mma tiles over one BK-deep stage of shared memory.
// As holds A as [m][k] (row stride LDA) or, when A_KMAJOR, as [k][m]; Bs holds B as [k][n] (LDB).
// wm, wn: the warp's first row / column inside the block tile.
template <int MMA, bool A_KMAJOR, int BK, int LDA, int LDB, int MT, int NT>
__device__ __forceinline__ void warp_mma_stage(const float* As, const float* Bs, int wm, int wn, int lane,
                                               float (&acc)[MT][NT][4]) {
    const int g = lane >> 2, t = lane & 3;
    auto A = [&](int m, int k) -> float { return A_KMAJOR ? As[k * LDA + m] : As[m * LDA + k]; };
    auto B = [&](int k, int n) -> float { return Bs[k * LDB + n]; };
    if (MMA == CONV_MMA_TF32) {
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {
            unsigned a[MT][4], b[NT][2];
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                const int m = wm + i * 16 + g;
                a[i][0] = to_tf32(A(m, kk + t));
                a[i][1] = to_tf32(A(m + 8, kk + t));
                a[i][2] = to_tf32(A(m, kk + t + 4));
                a[i][3] = to_tf32(A(m + 8, kk + t + 4));
            }
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                const int n = wn + j * 8 + g;
                b[j][0] = to_tf32(B(kk + t, n));
                b[j][1] = to_tf32(B(kk + t + 4, n));
            }
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j) mma_tf32(acc[i][j], a[i], b[j]);
        }
    } else {
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            unsigned a[MT][4], b[NT][2];
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                const int m = wm + i * 16 + g, k = kk + 2 * t;
                a[i][0] = to_bf16x2(A(m, k), A(m, k + 1));
                a[i][1] = to_bf16x2(A(m + 8, k), A(m + 8, k + 1));
                a[i][2] = to_bf16x2(A(m, k + 8), A(m, k + 9));
                a[i][3] = to_bf16x2(A(m + 8, k + 8), A(m + 8, k + 9));
            }
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                const int n = wn + j * 8 + g, k = kk + 2 * t;
                b[j][0] = to_bf16x2(B(k, n), B(k + 1, n));
                b[j][1] = to_bf16x2(B(k + 8, n), B(k + 9, n));
            }
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j) mma_bf16(acc[i][j], a[i], b[j]);
        }
    }
}

// One thread's TM x TN outputs over one BK-deep stage of shared memory, scalar FMAs in float32.
// Vs holds one byte per A element, laid out as As (row stride LDV): 1 where the element is a real
// term of the sum, 0 where the loader zero-filled it (padding, a tap on no output pixel, rows or k
// beyond the GEMM). Only real terms are accumulated, k ascending, one fmaf each into the output's
// float32 accumulator: the exact kernels' order, so the same bits (a zero-filled term would not be
// neutral: -0 + 0*w is +0, and 0*inf is NaN).
// Rows: A_KMAJOR (As [k][m]): m0 + i, read as float4 along m; otherwise (As [m][k]) m0 + i*ROW_STEP,
// one float per row and k (float4s along k would hold 4*TM registers: spills), the mask as one word per
// row and 4 k. Columns n0 .. n0 + TN - 1, float4 along n.
template <bool A_KMAJOR, int BK, int LDA, int LDB, int LDV, int TM, int TN, int ROW_STEP>
__device__ __forceinline__ void thread_fma_stage(const float* As, const unsigned char* Vs, const float* Bs, int m0,
                                                 int n0, float (&acc)[TM][TN]) {
    static_assert(TN == 4 && TM % 4 == 0 && BK % 4 == 0, "float4 shared-memory reads");
    auto fma_row = [&](int i, float a, bool valid, const float4& b) {
        if (!valid) return;
        acc[i][0] = fmaf(a, b.x, acc[i][0]);
        acc[i][1] = fmaf(a, b.y, acc[i][1]);
        acc[i][2] = fmaf(a, b.z, acc[i][2]);
        acc[i][3] = fmaf(a, b.w, acc[i][3]);
    };
    if (A_KMAJOR) {
#pragma unroll 4
        for (int k = 0; k < BK; ++k) {
            const float4 b = *reinterpret_cast<const float4*>(Bs + k * LDB + n0);
#pragma unroll
            for (int u = 0; u < TM / 4; ++u) {
                const float4 a = *reinterpret_cast<const float4*>(As + k * LDA + m0 + 4 * u);
                const unsigned v = *reinterpret_cast<const unsigned*>(Vs + k * LDV + m0 + 4 * u);
                fma_row(4 * u, a.x, v & 0xffu, b);
                fma_row(4 * u + 1, a.y, v & 0xff00u, b);
                fma_row(4 * u + 2, a.z, v & 0xff0000u, b);
                fma_row(4 * u + 3, a.w, v & 0xff000000u, b);
            }
        }
    } else {
#pragma unroll
        for (int kk = 0; kk < BK; kk += 4) {
            unsigned v[TM];
#pragma unroll
            for (int i = 0; i < TM; ++i)
                v[i] = *reinterpret_cast<const unsigned*>(Vs + (m0 + i * ROW_STEP) * LDV + kk);
#pragma unroll
            for (int h = 0; h < 4; ++h) {
                float a[TM];
#pragma unroll
                for (int i = 0; i < TM; ++i) a[i] = As[(m0 + i * ROW_STEP) * LDA + kk + h];
                const float4 b = *reinterpret_cast<const float4*>(Bs + (kk + h) * LDB + n0);
#pragma unroll
                for (int i = 0; i < TM; ++i) fma_row(i, a[i], (v[i] >> (8 * h)) & 0xffu, b);
            }
        }
    }
}

// out[m, n] (row stride NC) for columns n and n + 1: v = acc (+ bias[col]); z = v unless z is null;
// y = f(v) when kind != 0.
__device__ __forceinline__ void conv_store_pair(float* z, float* y, const float* __restrict__ bias, int m, int n,
                                                int NC, float v0, float v1, int kind, float p0, float p1, float p2) {
    if (bias != nullptr) {
        if (n < NC) v0 += bias[n];
        if (n + 1 < NC) v1 += bias[n + 1];
    }
    const int o = m * NC + n;
    if ((NC & 1) == 0 && n < NC) {   // n is even, so n + 1 < NC too, and o is even: 8-byte aligned
        if (z != nullptr) *reinterpret_cast<float2*>(z + o) = make_float2(v0, v1);
        if (kind != ACT_LINEAR)
            *reinterpret_cast<float2*>(y + o) =
                make_float2(act_forward(v0, kind, p0, p1, p2), act_forward(v1, kind, p0, p1, p2));
        return;
    }
    if (n < NC) {
        if (z != nullptr) z[o] = v0;
        if (kind != ACT_LINEAR) y[o] = act_forward(v0, kind, p0, p1, p2);
    }
    if (n + 1 < NC) {
        if (z != nullptr) z[o + 1] = v1;
        if (kind != ACT_LINEAR) y[o + 1] = act_forward(v1, kind, p0, p1, p2);
    }
}

// ------------------------------------------------------------------------------------------------
// The tiled implicit GEMM, all three directions (MODE), on tensor cores (MMA tf32 / bf16) or in scalar
// float32 FMAs (CONV_FMA_F32: each thread owns a TM x 4 tile of outputs). C[M, NC] = A[M, K] * B[K, NC]:
//   a_src: x (fwd, bwd_filter) or dy (bwd_data), gathered; b_src: the (K, NC) row-major matrix
//   (kernel, transposed kernel, dy). Output: z / y (fwd), z = dx (bwd_data), z = partial[split]
//   (bwd_filter, split = blockIdx.z over the K range).
template <int MODE, int MMA, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES>
__device__ __forceinline__ void conv_tc(const float* __restrict__ a_src, const float* __restrict__ b_src,
                                        const float* __restrict__ bias, float* z, float* y, const ConvDims d,
                                        int kind, float p0, float p1, float p2, int vec_a, int vec_b,
                                        int tiles_per_split) {
#if __CUDA_ARCH__ >= 800
    constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
    constexpr int MT = WM / 16, NT = WN / 8;
    constexpr bool A_KMAJOR = MODE == CONV_BWD_FILTER;
    constexpr bool FMA = MMA == CONV_FMA_F32;
    // Rows padded so that the mma fragment loads, and the FMA stage's reads of A (M-major: up to 4 rows
    // a warp, one float each), are free of bank conflicts; the FMA stage's float4 reads of the (K, M) layout
    // take at most 2 rows a quarter warp, conflict-free unpadded.
    constexpr int LDA = A_KMAJOR ? (FMA ? BM : BM + 8) : BK + 4;
    constexpr int A_TILE = A_KMAJOR ? BK * LDA : BM * LDA;
    constexpr int LDB = FMA ? BN : BN + 8;
    constexpr int LDV = A_KMAJOR ? BM : BK;   // the FMA stage's term mask: one byte per A element
    static_assert(FMA || (WM % 16 == 0 && WN % 8 == 0 && BK % 16 == 0), "tile shape");
    static_assert(LDA % 4 == 0 && LDB % 4 == 0, "16-byte aligned shared rows for cp.async");
    // FMA: a thread's outputs are TM rows x FTN consecutive columns; FCOLS threads span the block's columns.
    constexpr int FTN = 4, FCOLS = BN / FTN, FROWS = THREADS / FCOLS, FTM = FMA ? BM / FROWS : 1;
    static_assert(!FMA || (THREADS % FCOLS == 0 && FTM * FROWS == BM && FTM % 4 == 0), "FMA thread tile");

    __shared__ __align__(16) float As[STAGES][A_TILE];
    __shared__ __align__(16) float Bs[STAGES][BK * LDB];
    __shared__ __align__(16) unsigned char Vs[FMA ? STAGES : 1][FMA ? BM * BK : 16];

    int M, NC, K;
    if (MODE == CONV_FWD) {
        M = d.N * d.OH * d.OW; NC = d.Cout; K = d.KH * d.KW * d.Cin;
    } else if (MODE == CONV_BWD_DATA) {
        M = d.N * d.H * d.W; NC = d.Cin; K = d.KH * d.KW * d.Cout;
    } else {
        M = d.KH * d.KW * d.Cin; NC = d.Cout; K = d.N * d.OH * d.OW;
    }
    const int tiles_n = (NC + BN - 1) / BN;
    const int m0 = (blockIdx.x / tiles_n) * BM, n0 = (blockIdx.x % tiles_n) * BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;

    // This block's range of k tiles: all of them, or (bwd_filter) its split's.
    const int k_tiles = (K + BK - 1) / BK;
    int kt_begin = 0, kt_end = k_tiles;
    if (MODE == CONV_BWD_FILTER) {
        kt_begin = blockIdx.z * tiles_per_split;
        kt_end = min(k_tiles, kt_begin + tiles_per_split);
    }
    const int n_tiles = max(0, kt_end - kt_begin);

    // --- A loader. Each thread owns one 4-wide chunk column of the tile and rows row0 + i*ROWS_PER_PASS.
    // (M, K) layout: chunks run along k, rows are m.  (K, M) layout (bwd_filter): chunks along m, rows are k.
    constexpr int A_CHUNKS = (A_KMAJOR ? BM : BK) / 4;   // chunks per tile row
    constexpr int A_ROWS_PER_PASS = THREADS / A_CHUNKS;
    constexpr int A_ITERS = (A_KMAJOR ? BK : BM) / A_ROWS_PER_PASS;
    static_assert(THREADS % A_CHUNKS == 0 && A_ITERS * A_ROWS_PER_PASS == (A_KMAJOR ? BK : BM), "A loader");
    const int a_col = (tid % A_CHUNKS) * 4, a_row = tid / A_CHUNKS;

    // fwd / bwd_data: the pixel of each of this thread's rows, fixed for the whole K loop.
    // bwd_filter: the (r, q, c) of each of this thread's 4 columns, fixed likewise.
    ConvPos rows[A_KMAJOR ? 1 : A_ITERS];
    ConvTap cols[4];
    if (!A_KMAJOR) {
#pragma unroll
        for (int i = 0; i < (A_KMAJOR ? 1 : A_ITERS); ++i) {
            const int m = m0 + a_row + i * A_ROWS_PER_PASS;
            rows[i] = MODE == CONV_FWD ? fwd_pos(d, m, M) : bwd_pos(d, m, M);
        }
    } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) cols[j] = fwd_tap(d, m0 + a_col + j, M);
    }

    // FMA: the 4 bytes of the chunk's term mask (byte j: element j is a real term), one 32-bit store.
    auto mark = [&](int stage, int offset, int o0, int o1, int o2, int o3) {
        if constexpr (FMA)
            *reinterpret_cast<unsigned*>(Vs[stage] + offset) = (o0 >= 0 ? 1u : 0u) | (o1 >= 0 ? 0x100u : 0u) |
                                                               (o2 >= 0 ? 0x10000u : 0u) | (o3 >= 0 ? 0x1000000u : 0u);
    };

    auto load_a = [&](int kt, int stage) {
        float* tile = As[stage];
        if (!A_KMAJOR) {
            const int k = kt * BK + a_col;
            ConvTap taps[4];
            // With vec_a the chunk's 4 k are 4 consecutive channels of one tap (channels % 4 == 0),
            // all inside K or all beyond it: the first one's offset stands for the chunk.
#pragma unroll
            for (int j = 0; j < 4; ++j)
                if (j == 0 || !vec_a) taps[j] = MODE == CONV_FWD ? fwd_tap(d, k + j, K) : bwd_tap(d, k + j, K);
#pragma unroll
            for (int i = 0; i < A_ITERS; ++i) {
                const int row = a_row + i * A_ROWS_PER_PASS;
                float* dst = tile + row * LDA + a_col;
                if (vec_a) {
                    const int off = MODE == CONV_FWD ? fwd_offset(d, rows[i], taps[0]) : bwd_offset(d, rows[i], taps[0]);
                    cp_async_16(dst, off >= 0 ? a_src + off : a_src, off >= 0);
                    mark(stage, row * LDV + a_col, off, off, off, off);
                } else {
                    int offs[4];
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        offs[j] = MODE == CONV_FWD ? fwd_offset(d, rows[i], taps[j]) : bwd_offset(d, rows[i], taps[j]);
                        cp_async_4(dst + j, offs[j] >= 0 ? a_src + offs[j] : a_src, offs[j] >= 0);
                    }
                    mark(stage, row * LDV + a_col, offs[0], offs[1], offs[2], offs[3]);
                }
            }
        } else {
#pragma unroll
            for (int i = 0; i < A_ITERS; ++i) {
                const int kr = a_row + i * A_ROWS_PER_PASS;
                const ConvPos pos = fwd_pos(d, kt * BK + kr, K);   // k of bwd_filter = position p
                float* dst = tile + kr * LDA + a_col;
                if (vec_a) {   // 4 consecutive channels of one tap (Cin % 4 == 0): all valid or none
                    const int off = fwd_offset(d, pos, cols[0]);
                    cp_async_16(dst, off >= 0 ? a_src + off : a_src, off >= 0);
                    mark(stage, kr * LDV + a_col, off, off, off, off);
                } else {
                    int offs[4];
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        offs[j] = fwd_offset(d, pos, cols[j]);
                        cp_async_4(dst + j, offs[j] >= 0 ? a_src + offs[j] : a_src, offs[j] >= 0);
                    }
                    mark(stage, kr * LDV + a_col, offs[0], offs[1], offs[2], offs[3]);
                }
            }
        }
    };

    // --- B loader: (K, NC) row-major, chunks of 4 along n. With vec_b NC % 4 == 0: a chunk is all
    // inside NC or all beyond it.
    constexpr int B_CHUNKS = BN / 4;
    constexpr int B_ROWS_PER_PASS = THREADS / B_CHUNKS;
    constexpr int B_ITERS = BK / B_ROWS_PER_PASS;
    static_assert(THREADS % B_CHUNKS == 0 && B_ITERS * B_ROWS_PER_PASS == BK, "B loader");
    const int b_col = (tid % B_CHUNKS) * 4, b_row = tid / B_CHUNKS;

    auto load_b = [&](int kt, int stage) {
        float* tile = Bs[stage];
        const int n = n0 + b_col;
#pragma unroll
        for (int i = 0; i < B_ITERS; ++i) {
            const int kr = b_row + i * B_ROWS_PER_PASS, k = kt * BK + kr;
            float* dst = tile + kr * LDB + b_col;
            if (vec_b) {
                const bool ok = k < K && n < NC;
                cp_async_16(dst, ok ? b_src + (k * NC + n) : b_src, ok);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const bool ok = k < K && n + j < NC;
                    cp_async_4(dst + j, ok ? b_src + (k * NC + n + j) : b_src, ok);
                }
            }
        }
    };

    constexpr int AMT = FMA ? 1 : MT, ANT = FMA ? 1 : NT;   // the unused accumulators of the other mode: 1 x 1
    float acc[AMT][ANT][4];
#pragma unroll
    for (int i = 0; i < AMT; ++i)
#pragma unroll
        for (int j = 0; j < ANT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
    float facc[FTM][FTN];
#pragma unroll
    for (int i = 0; i < FTM; ++i)
#pragma unroll
        for (int j = 0; j < FTN; ++j) facc[i][j] = 0.0f;
    // FMA: this thread's first row (A_KMAJOR: rows fm0 .. fm0 + FTM - 1; else fm0 + i*FROWS) and column.
    const int fm0 = A_KMAJOR ? (tid / FCOLS) * FTM : tid / FCOLS, fn0 = (tid % FCOLS) * FTN;

    // --- Pipeline: STAGES - 1 tiles in flight ahead of the one being multiplied. One commit group
    // per slot (empty past the end), so "at most STAGES - 2 groups pending" means tile `it` has landed.
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < n_tiles) {
            load_a(kt_begin + s, s);
            load_b(kt_begin + s, s);
        }
        cp_async_commit();
    }
    for (int it = 0; it < n_tiles; ++it) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();   // tile `it` visible to all; every warp is done with the stage refilled below
        const int next = it + STAGES - 1;
        if (next < n_tiles) {
            load_a(kt_begin + next, next % STAGES);
            load_b(kt_begin + next, next % STAGES);
        }
        cp_async_commit();
        if constexpr (FMA)
            thread_fma_stage<A_KMAJOR, BK, LDA, LDB, LDV, FTM, FTN, FROWS>(As[it % STAGES], Vs[it % STAGES],
                                                                          Bs[it % STAGES], fm0, fn0, facc);
        else
            warp_mma_stage<MMA, A_KMAJOR, BK, LDA, LDB, MT, NT>(As[it % STAGES], Bs[it % STAGES], wm, wn, lane, acc);
    }
    cp_async_wait<0>();

    // --- Epilogue.
    float* out_z = z;
    if (MODE == CONV_BWD_FILTER) out_z = z + blockIdx.z * (M * NC);
    if constexpr (FMA) {
#pragma unroll
        for (int i = 0; i < FTM; ++i) {
            const int m = m0 + (A_KMAJOR ? fm0 + i : fm0 + i * FROWS);
            if (m >= M) continue;
            conv_store_pair(out_z, y, bias, m, n0 + fn0, NC, facc[i][0], facc[i][1], kind, p0, p1, p2);
            conv_store_pair(out_z, y, bias, m, n0 + fn0 + 2, NC, facc[i][2], facc[i][3], kind, p0, p1, p2);
        }
        return;
    }
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < AMT; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int m = m0 + wm + i * 16 + g + 8 * h;
            if (m >= M) continue;
#pragma unroll
            for (int j = 0; j < ANT; ++j) {
                const int n = n0 + wn + j * 8 + 2 * t;
                conv_store_pair(out_z, y, bias, m, n, NC, acc[i][j][2 * h], acc[i][j][2 * h + 1], kind, p0, p1, p2);
            }
        }
#else
    __trap();   // the launcher never sends these kernels to a GPU older than sm_80
#endif
}

// Forward and backward data, BM rows x NB columns per block, BK 16, 3 stages; every warp 32 x 32.
// BM 128: warps 4 x WARPS_N (NB 64: 8 warps, NB 32: 4); BM 64: warps 2 x WARPS_N. NAME is the tile's suffix.
#define CONV_TC_FWD_BWD_DATA(PREC, MMA, NAME, BM, WARPS_M, NB, WARPS_N, THREADS, MIN_BLOCKS)                    \
    extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS)                                          \
        conv2d_fwd_##PREC##NAME(const float* x, const float* kernel, const float* bias, float* z, float* y,    \
                                CONV_DIMS_PARAMS, int kind, float p0, float p1, float p2, int vec_a,           \
                                int vec_b) {                                                                   \
        conv_tc<CONV_FWD, MMA, BM, NB, 16, WARPS_M, WARPS_N, 3>(x, kernel, bias, z, y, CONV_DIMS_VALUE, kind,  \
                                                                 p0, p1, p2, vec_a, vec_b, 0);                 \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS)                                          \
        conv2d_bwd_data_##PREC##NAME(const float* dy, const float* kernel_t, float* dx, CONV_DIMS_PARAMS,      \
                                     int vec_a, int vec_b) {                                                   \
        conv_tc<CONV_BWD_DATA, MMA, BM, NB, 16, WARPS_M, WARPS_N, 3>(dy, kernel_t, nullptr, dx, dx,            \
                                                                      CONV_DIMS_VALUE, ACT_LINEAR, 0.0f, 0.0f, \
                                                                      0.0f, vec_a, vec_b, 0);                  \
    }

// The 128-row tiles of forward and backward data, and backward filter: 64 x NB tiles, 4 warps (2 x 2),
// BK 32, 2 stages.
#define CONV_TC_KERNELS(PREC, MMA, NB, WARPS_N, THREADS, MIN_BLOCKS)                                           \
    CONV_TC_FWD_BWD_DATA(PREC, MMA, _n##NB, 128, 4, NB, WARPS_N, THREADS, MIN_BLOCKS)                          \
    extern "C" __global__ void __launch_bounds__(128, 4)                                                       \
        conv2d_bwd_filter_##PREC##_n##NB(const float* x, const float* dy, float* partial, CONV_DIMS_PARAMS,    \
                                          int tiles_per_split, int vec_a, int vec_b) {                         \
        conv_tc<CONV_BWD_FILTER, MMA, 64, NB, 32, 2, 2, 2>(x, dy, nullptr, partial, partial, CONV_DIMS_VALUE,  \
                                                            ACT_LINEAR, 0.0f, 0.0f, 0.0f, vec_a, vec_b,        \
                                                            tiles_per_split);                                  \
    }

CONV_TC_KERNELS(tf32, CONV_MMA_TF32, 64, 2, 256, 2)
CONV_TC_KERNELS(tf32, CONV_MMA_TF32, 32, 1, 128, 4)
CONV_TC_KERNELS(bf16, CONV_MMA_BF16, 64, 2, 256, 2)
CONV_TC_KERNELS(bf16, CONV_MMA_BF16, 32, 1, 128, 4)
// The 64-row tiles (the launcher's choice where the 128-row grid would leave SMs idle in its last wave):
// same warp tile and per-thread registers, half the threads, 29.2 / 23.0 KB of static shared memory.
CONV_TC_FWD_BWD_DATA(tf32, CONV_MMA_TF32, _m64_n64, 64, 2, 64, 2, 128, 4)
CONV_TC_FWD_BWD_DATA(tf32, CONV_MMA_TF32, _m64_n32, 64, 2, 32, 1, 64, 8)
CONV_TC_FWD_BWD_DATA(bf16, CONV_MMA_BF16, _m64_n64, 64, 2, 64, 2, 128, 4)
CONV_TC_FWD_BWD_DATA(bf16, CONV_MMA_BF16, _m64_n32, 64, 2, 32, 1, 64, 8)
// The tiled float32 kernels (precision "float32"): the same tiles, loaders and pipeline, scalar FMAs.
// Half the tensor-core kernels' blocks per SM: the FMA stage's rows and masks take ~155-165 registers.
CONV_TC_KERNELS(f32tile, CONV_FMA_F32, 64, 2, 256, 1)
CONV_TC_KERNELS(f32tile, CONV_FMA_F32, 32, 1, 128, 2)
CONV_TC_FWD_BWD_DATA(f32tile, CONV_FMA_F32, _m64_n64, 64, 2, 64, 2, 128, 2)
CONV_TC_FWD_BWD_DATA(f32tile, CONV_FMA_F32, _m64_n32, 64, 2, 32, 1, 64, 4)

// ------------------------------------------------------------------------------------------------
// Exact kernels: one thread per output element, FMA in T, taps in (r, q, channel) order.

template <typename T>
__device__ void conv_fwd_exact(const T* __restrict__ x, const T* __restrict__ kernel, const T* __restrict__ bias,
                               T* z, T* y, const ConvDims d, int kind, T p0, T p1, T p2) {
    const unsigned total = (unsigned)(d.N * d.OH * d.OW * d.Cout);
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int co = (int)(i % (unsigned)d.Cout);
        const int m = (int)(i / (unsigned)d.Cout);
        const int ow = m % d.OW, oh = (m / d.OW) % d.OH, n = m / (d.OW * d.OH);
        T acc = T(0);
        for (int r = 0; r < d.KH; ++r) {
            const int h = oh * d.sh - d.pt + r * d.dh;
            if (h < 0 || h >= d.H) continue;
            for (int q = 0; q < d.KW; ++q) {
                const int w = ow * d.sw - d.pl + q * d.dw;
                if (w < 0 || w >= d.W) continue;
                const T* xp = x + ((n * d.H + h) * d.W + w) * d.Cin;          // x[n, h, w, :]
                const T* kp = kernel + (r * d.KW + q) * d.Cin * d.Cout + co;   // kernel[r, q, :, co]
                for (int c = 0; c < d.Cin; ++c) acc = conv_fma(xp[c], kp[c * d.Cout], acc);
            }
        }
        if (bias != nullptr) acc += bias[co];
        if (z != nullptr) z[i] = acc;
        if (kind != ACT_LINEAR) y[i] = act_forward(acc, kind, p0, p1, p2);
    }
}

template <typename T>
__device__ void conv_bwd_data_exact(const T* __restrict__ dy, const T* __restrict__ kernel, T* __restrict__ dx,
                                    const ConvDims d) {
    const unsigned total = (unsigned)(d.N * d.H * d.W * d.Cin);
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = (int)(i % (unsigned)d.Cin);
        const int m = (int)(i / (unsigned)d.Cin);
        const int w = m % d.W, h = (m / d.W) % d.H, n = m / (d.W * d.H);
        T acc = T(0);
        for (int r = 0; r < d.KH; ++r) {
            const int a = h + d.pt - r * d.dh;   // = oh * sh
            if (a < 0 || a % d.sh != 0 || a / d.sh >= d.OH) continue;
            const int oh = a / d.sh;
            for (int q = 0; q < d.KW; ++q) {
                const int b = w + d.pl - q * d.dw;   // = ow * sw
                if (b < 0 || b % d.sw != 0 || b / d.sw >= d.OW) continue;
                const int ow = b / d.sw;
                const T* gp = dy + ((n * d.OH + oh) * d.OW + ow) * d.Cout;          // dy[n, oh, ow, :]
                const T* kp = kernel + ((r * d.KW + q) * d.Cin + c) * d.Cout;       // kernel[r, q, c, :]
                for (int co = 0; co < d.Cout; ++co) acc = conv_fma(gp[co], kp[co], acc);
            }
        }
        dx[i] = acc;
    }
}

// partial[blockIdx.y, e] for e = (r, q, c, co): the sum over positions
// p in [blockIdx.y * p_per_split, min(P, (blockIdx.y + 1) * p_per_split)).
template <typename T>
__device__ void conv_bwd_filter_exact(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ partial,
                                      const ConvDims d, int p_per_split) {
    const int count = d.KH * d.KW * d.Cin * d.Cout;
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= count) return;
    const int co = e % d.Cout, kf = e / d.Cout;
    const int c = kf % d.Cin, tap = kf / d.Cin;
    const int r = tap / d.KW, q = tap % d.KW;
    const int P = d.N * d.OH * d.OW;
    const int p_begin = blockIdx.y * p_per_split;
    const int p_end = min(P, p_begin + p_per_split);
    T acc = T(0);
    if (p_begin < p_end) {
        int ow = p_begin % d.OW, oh = (p_begin / d.OW) % d.OH, n = p_begin / (d.OW * d.OH);
        for (int p = p_begin; p < p_end; ++p) {
            const int h = oh * d.sh - d.pt + r * d.dh, w = ow * d.sw - d.pl + q * d.dw;
            if (h >= 0 && h < d.H && w >= 0 && w < d.W)
                acc = conv_fma(x[((n * d.H + h) * d.W + w) * d.Cin + c], dy[p * d.Cout + co], acc);
            if (++ow == d.OW) {   // next position p + 1 = (n, oh, ow)
                ow = 0;
                if (++oh == d.OH) {
                    oh = 0;
                    ++n;
                }
            }
        }
    }
    partial[blockIdx.y * count + e] = acc;
}

// dk[e] = the sum over s = 0, ..., splits - 1 of partial[s, e], in an order fixed by `splits` alone.
// Block (REDUCE_COLS, REDUCE_STRIPES): 32 consecutive outputs e (one warp row: 128-byte loads) by 8
// stripes; stripe t sums the splits s = t (mod 8) with 4 independent accumulators (accumulator j
// takes s = t + 8*(4i + j), i = 0, 1, ...), so each thread keeps 4 loads in flight, adds them
// as (a0 + a1) + (a2 + a3), and the 8 stripes' sums are added in order t = 0..7 through shared
// memory. No atomics: the same partials give the same bits on every run.
#define REDUCE_COLS 32
#define REDUCE_STRIPES 8
template <typename T>
__device__ void conv_bwd_filter_reduce(const T* __restrict__ partial, T* __restrict__ dk, int count, int splits) {
    __shared__ T stripe_sum[REDUCE_STRIPES][REDUCE_COLS];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int e = blockIdx.x * REDUCE_COLS + tx;
    T acc[4] = {T(0), T(0), T(0), T(0)};
    if (e < count) {
        const T* column = partial + e;
        int s = ty;
        // 4 splits per round, one per accumulator: their loads do not wait on each other.
        for (; s + 3 * REDUCE_STRIPES < splits; s += 4 * REDUCE_STRIPES) {
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[j] += column[(s + j * REDUCE_STRIPES) * count];
        }
#pragma unroll
        for (int j = 0; j < 3; ++j)
            if (s + j * REDUCE_STRIPES < splits) acc[j] += column[(s + j * REDUCE_STRIPES) * count];
    }
    stripe_sum[ty][tx] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    __syncthreads();
    if (ty == 0 && e < count) {
        T sum = stripe_sum[0][tx];
#pragma unroll
        for (int t = 1; t < REDUCE_STRIPES; ++t) sum += stripe_sum[t][tx];
        dk[e] = sum;
    }
}

#define CONV_EXACT_KERNELS(T, SUFFIX)                                                                          \
    extern "C" __global__ void conv2d_fwd_##SUFFIX(const T* x, const T* kernel, const T* bias, T* z, T* y,    \
                                                   CONV_DIMS_PARAMS, int kind, T p0, T p1, T p2) {            \
        conv_fwd_exact<T>(x, kernel, bias, z, y, CONV_DIMS_VALUE, kind, p0, p1, p2);                          \
    }                                                                                                          \
    extern "C" __global__ void conv2d_bwd_data_##SUFFIX(const T* dy, const T* kernel, T* dx, CONV_DIMS_PARAMS) { \
        conv_bwd_data_exact<T>(dy, kernel, dx, CONV_DIMS_VALUE);                                               \
    }                                                                                                          \
    extern "C" __global__ void conv2d_bwd_filter_##SUFFIX(const T* x, const T* dy, T* partial, CONV_DIMS_PARAMS, \
                                                          int p_per_split) {                                   \
        conv_bwd_filter_exact<T>(x, dy, partial, CONV_DIMS_VALUE, p_per_split);                                \
    }                                                                                                          \
    extern "C" __global__ void conv2d_bwd_filter_reduce_##SUFFIX(const T* partial, T* dk, int count, int splits) { \
        conv_bwd_filter_reduce<T>(partial, dk, count, splits);                                                 \
    }

CONV_EXACT_KERNELS(float, f32)
CONV_EXACT_KERNELS(double, f64)
