// The CUDA C that kernels/*.cu use, defined for the host, so a kernel file builds with a C++20
// compiler into a shared library that runs its kernels on the CPU (tests/emulated_gpu/build.py).
//
// Execution model: a launch runs its blocks one after another. The threads of a block are fibers
// on one OS thread (emu::Context below): each runs until it reaches a barrier, a warp shuffle or its end,
// then the next one runs. A barrier opens when every live thread of the block (of the warp, for a
// shuffle) has reached it; threads that have returned do not count, as on the GPU. When no thread
// can run and no barrier can open (a __syncthreads in divergent code), the launch fails saying so.
// Even blocks run their threads in increasing order, odd blocks in decreasing order, so a read of
// shared memory that another thread writes without a barrier in between sees the stale value in
// one of the two orders. A block's __shared__ arrays are function-local statics (one block at a
// time uses them); the launch's dynamic shared memory starts as 0xff bytes (NaN).
//
// build.py compiles with __CUDA_ARCH__ = 800 and replaces the sm_80 paths' inline PTX (cp.async,
// cvt to tf32/bf16, mma.sync) with the emu::ptx functions below; the emulated device reports
// compute capability 8.0, so the launchers choose those paths as on an A100 or H100.
#pragma once

#include <math.h>       // expf, logf, ...: the float functions CUDA declares globally

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct float2 { float x, y; };
// CUDA's 16-byte vector type (16-byte aligned, as on the GPU: a vector load or store of one).
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }

// CUDA's overloads: exp(float) is float maths, min/max for each arithmetic type.
using std::ceil; using std::exp; using std::expm1; using std::fabs; using std::floor; using std::fma;
using std::log; using std::log1p; using std::rint; using std::sqrt; using std::tanh;
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// Products and sums rounded once, never fused (the build passes -ffp-contract=off).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, sizeof d); return d; }

namespace emu {

struct Trap : std::runtime_error { using std::runtime_error::runtime_error; };

enum class Wait { none, block, warp, done };

struct AsyncCopy {
    unsigned char* dst;
    const unsigned char* src;
    int bytes, src_bytes;
};

// A fiber's saved execution state, and the switch between two. On x86-64 the switch saves and restores
// only what the calling convention keeps across a call (rbx, rbp, r12-r15, the stack pointer, MXCSR and
// the x87 control word): ucontext's swapcontext also saves the signal mask, a system call on every
// switch, which took a third of the time of a launch whose threads meet at many barriers.
#if defined(__x86_64__)
struct Context { void* stack_pointer = nullptr; };

extern "C" __attribute__((visibility("hidden"))) void emu_switch_context(void** save_to, void* resume_from);
asm(R"(
    .text
    .globl emu_switch_context
    .hidden emu_switch_context
    .type emu_switch_context, @function
emu_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch_context, .-emu_switch_context
)");

inline void switch_context(Context& from, Context& to) { emu_switch_context(&from.stack_pointer, to.stack_pointer); }

// A context that starts `entry` on the stack [stack, stack + bytes): the frame emu_switch_context pops
// (the caller's MXCSR and x87 control word, six zero registers) under `entry` as its return address, under
// a zero return address for `entry` itself, which is entered with the stack aligned as after a call.
inline void make_context(Context& context, unsigned char* stack, std::size_t bytes, void (*entry)()) {
    auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t(15);
    auto* words = reinterpret_cast<std::uint64_t*>(top);
    words[-1] = 0;
    words[-2] = reinterpret_cast<std::uint64_t>(entry);
    for (int r = 3; r <= 8; ++r) words[-r] = 0;
    std::uint32_t controls[2] = {0, 0};
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(controls[0]), "=m"(controls[1]));
    std::memcpy(&words[-9], controls, sizeof controls);
    context.stack_pointer = &words[-9];
}
#else
}  // namespace emu
#include <ucontext.h>
namespace emu {

struct Context { ucontext_t state; };

inline void switch_context(Context& from, Context& to) { swapcontext(&from.state, &to.state); }

inline void make_context(Context& context, unsigned char* stack, std::size_t bytes, void (*entry)()) {
    getcontext(&context.state);
    context.state.uc_stack.ss_sp = stack;
    context.state.uc_stack.ss_size = bytes;
    context.state.uc_link = nullptr;   // entry never returns: it switches back to the scheduler
    makecontext(&context.state, entry, 0);
}
#endif

struct Fiber {
    Context context;
    Wait wait = Wait::none;
    std::vector<AsyncCopy> open_group;                  // cp.async issued since the last commit
    std::vector<std::vector<AsyncCopy>> groups;         // committed, oldest first, not yet landed
    unsigned exchanges = 0;                             // warp exchanges so far: which slot buffer is next
};

struct Launch {
    std::vector<unsigned char> dynamic_shared;
    std::vector<Fiber> fibers;
    std::vector<std::array<unsigned char, 8>> shuffle_slots[2];   // per thread: what its lane offers
    Context scheduler;
    unsigned running = 0;                                       // the fiber now running
    std::function<void(void**)> body;
    void** args = nullptr;
    std::string error;
};

inline Launch*& current() { static Launch* launch = nullptr; return launch; }
inline unsigned char* dynamic_shared() { return current()->dynamic_shared.data(); }

// Back to the scheduler until the barrier `wait` names opens.
inline void wait_at(Wait wait) {
    Launch& launch = *current();
    Fiber& fiber = launch.fibers[launch.running];
    fiber.wait = wait;
    switch_context(fiber.context, launch.scheduler);
}

}  // namespace emu

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

[[noreturn]] inline void __trap() { throw emu::Trap("__trap() reached (a kernel path for another GPU)"); }

inline void __syncthreads() { emu::wait_at(emu::Wait::block); }

// The buffer a lane's next warp exchange (shuffle or mma) uses. Exchanges alternate between two
// buffers, so one barrier per exchange is enough: a lane writes buffer b only after the barrier of
// the exchange that used the other buffer, which every lane passes after reading b the time before.
inline unsigned next_exchange_buffer() {
    emu::Launch& launch = *emu::current();
    return launch.fibers[launch.running].exchanges++ & 1u;
}

template <typename T>
T __shfl_xor_sync(unsigned /*mask*/, T value, int lane_mask, int width = 32) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    emu::Launch& launch = *emu::current();
    const unsigned id = launch.running, lane = id & 31, source_lane = lane ^ unsigned(lane_mask);
    auto& slots = launch.shuffle_slots[next_exchange_buffer()];
    std::memcpy(slots[id].data(), &value, sizeof(T));
    emu::wait_at(emu::Wait::warp);                       // every live lane has offered its value
    const unsigned source = (source_lane / width == lane / width && id - lane + source_lane < launch.fibers.size())
                                ? id - lane + source_lane : id;
    T result;
    std::memcpy(&result, slots[source].data(), sizeof(T));
    return result;
}

// ---------------------------------------------------------------------------------------------
// The inline PTX of the sm_80 paths. build.py compiles them with __CUDA_ARCH__ = 800 and replaces
// each asm statement with the call below that does what the instruction does.

// Shared addresses are 32-bit: offsets from a point inside this library, whose static __shared__
// arrays all lie within a few MiB of it.
inline char emu_shared_window;
inline unsigned __cvta_generic_to_shared(const void* p) {
    return unsigned(static_cast<const char*>(p) - &emu_shared_window);
}
inline unsigned char* emu_shared_pointer(unsigned address) {
    return reinterpret_cast<unsigned char*>(&emu_shared_window + std::int32_t(address));
}

namespace emu::ptx {

// cp.async: recorded now, copied when a wait_group lets its group land (as late as the GPU may),
// so a read of the destination before the wait sees the old contents.
inline void cp_async(unsigned dst, const void* src, int bytes, int src_bytes) {
    Launch& launch = *current();
    launch.fibers[launch.running].open_group.push_back(
        {emu_shared_pointer(dst), static_cast<const unsigned char*>(src), bytes, src_bytes});
}

inline void cp_async_commit() {
    Fiber& fiber = current()->fibers[current()->running];
    fiber.groups.push_back(std::move(fiber.open_group));
    fiber.open_group.clear();
}

inline void cp_async_wait(int pending) {
    Fiber& fiber = current()->fibers[current()->running];
    while (int(fiber.groups.size()) > pending) {
        for (const AsyncCopy& copy : fiber.groups.front()) {
            std::memcpy(copy.dst, copy.src, std::size_t(copy.src_bytes));
            std::memset(copy.dst + copy.src_bytes, 0, std::size_t(copy.bytes - copy.src_bytes));
        }
        fiber.groups.erase(fiber.groups.begin());
    }
}

inline unsigned float_bits(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float bits_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }

// cvt.rna.tf32.f32: 10 mantissa bits, rounded to nearest with ties away from zero.
inline unsigned cvt_rna_tf32(float x) {
    const unsigned u = float_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;           // inf and NaN unchanged
    return (u + 0x1000u) & 0xffffe000u;
}

// cvt.rn.bf16x2.f32 d, hi, lo: both rounded to nearest even, `lo` in bits 0-15.
inline unsigned bf16_bits(float x) {
    const unsigned u = float_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;      // NaN
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
inline unsigned cvt_rn_bf16x2(float hi, float lo) { return (bf16_bits(hi) << 16) | bf16_bits(lo); }

// mma.sync m16n8k8 (tf32) and m16n8k16 (bf16), row.col, f32 accumulators. Every lane offers its
// fragments; each then computes its four outputs from all of them: exact products summed in
// double, rounded once, added to c.
struct MmaFragments { unsigned a[4], b[2]; };

inline float tf32_value(unsigned bits) { return bits_float(bits & 0xffffe000u); }
inline float bf16_value(unsigned bits16) { return bits_float(bits16 << 16); }

template <bool BF16>
void mma(float& d0, float& d1, float& d2, float& d3, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
         unsigned b0, unsigned b1) {
    static std::vector<MmaFragments> buffers[2];    // one entry per thread of the block
    Launch& launch = *current();
    const unsigned id = launch.running, lane = id & 31, first = id - lane;
    auto& offered = buffers[next_exchange_buffer()];
    if (offered.size() < launch.fibers.size()) offered.resize(launch.fibers.size());
    offered[id] = {{a0, a1, a2, a3}, {b0, b1}};
    wait_at(Wait::warp);
    const int K = BF16 ? 16 : 8;
    // A (16 x K) and B (K x 8) of the warp, from the lanes' fragments (PTX ISA fragment layouts).
    double A[16][16], B[16][8];
    for (unsigned l = 0; l < 32; ++l) {
        const MmaFragments& f = offered[first + l];
        const int g = int(l >> 2), t = int(l & 3);
        if (BF16) {
            for (int r = 0; r < 4; ++r) {
                const int row = g + (r & 1) * 8, col = 2 * t + (r >> 1) * 8;
                A[row][col] = bf16_value(f.a[r] & 0xffffu);
                A[row][col + 1] = bf16_value(f.a[r] >> 16);
            }
            for (int r = 0; r < 2; ++r) {
                B[2 * t + r * 8][g] = bf16_value(f.b[r] & 0xffffu);
                B[2 * t + r * 8 + 1][g] = bf16_value(f.b[r] >> 16);
            }
        } else {
            for (int r = 0; r < 4; ++r) A[g + (r & 1) * 8][t + (r >> 1) * 4] = tf32_value(f.a[r]);
            for (int r = 0; r < 2; ++r) B[t + r * 4][g] = tf32_value(f.b[r]);
        }
    }
    const int g = int(lane >> 2), t = int(lane & 3);
    float* d[4] = {&d0, &d1, &d2, &d3};
    for (int i = 0; i < 4; ++i) {
        const int row = g + (i >> 1) * 8, col = 2 * t + (i & 1);
        double sum = 0.0;
        for (int k = 0; k < K; ++k) sum += A[row][k] * B[k][col];
        *d[i] = float(double(*d[i]) + sum);
    }
}

}  // namespace emu::ptx

namespace emu {

template <typename T> constexpr const char* type_code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) {
        using P = std::remove_cv_t<std::remove_pointer_t<U>>;
        if constexpr (std::is_same_v<P, float>) return "float32*";
        else if constexpr (std::is_same_v<P, double>) return "float64*";
        else if constexpr (std::is_same_v<P, int>) return "int32*";
        else if constexpr (std::is_same_v<P, unsigned>) return "uint32*";
        else if constexpr (std::is_same_v<P, signed char>) return "int8*";
        else if constexpr (std::is_same_v<P, unsigned char>) return "uint8*";
        else if constexpr (std::is_same_v<P, long long> || std::is_same_v<P, long>) return "int64*";
        else return "void*";
    } else if constexpr (std::is_same_v<U, float>) return "float32";
    else if constexpr (std::is_same_v<U, double>) return "float64";
    else if constexpr (std::is_same_v<U, int>) return "int32";
    else if constexpr (std::is_same_v<U, unsigned>) return "uint32";
    else if constexpr (std::is_same_v<U, long long> || std::is_same_v<U, long>) return "int64";
    else if constexpr (std::is_same_v<U, unsigned long long> || std::is_same_v<U, unsigned long>) return "uint64";
    else if constexpr (std::is_same_v<U, bool>) return "bool";
    else return "?";
}

struct Kernel {
    std::string signature;                          // comma-separated type codes
    std::function<void(void**)> call;               // one thread's run of the kernel body
};

inline std::map<std::string, Kernel>& registry() { static std::map<std::string, Kernel> kernels; return kernels; }

template <typename... A, std::size_t... I>
void call_unpacked(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <typename... A>
struct Registrar {
    Registrar(const char* name, void (*kernel)(A...)) {
        std::string signature;
        ((signature += (signature.empty() ? "" : ","), signature += type_code<A>()), ...);
        registry()[name] = {signature, [kernel](void** args) {
                                call_unpacked(kernel, args, std::index_sequence_for<A...>{});
                            }};
    }
};

constexpr std::size_t kStackBytes = 64 * 1024;

inline void fiber_entry() {
    Launch& launch = *current();
    try {
        launch.body(launch.args);
    } catch (const std::exception& exc) {
        if (launch.error.empty())
            launch.error = std::string(exc.what()) + " in block (" + std::to_string(blockIdx.x) + ", " +
                           std::to_string(blockIdx.y) + ", " + std::to_string(blockIdx.z) + "), thread " +
                           std::to_string(launch.running);
    }
    Fiber& fiber = launch.fibers[launch.running];
    if ((!fiber.groups.empty() || !fiber.open_group.empty()) && launch.error.empty())
        launch.error = "a thread returned with cp.async copies it never waited for, thread " +
                       std::to_string(launch.running);
    fiber.wait = Wait::done;
    switch_context(fiber.context, launch.scheduler);   // never resumed: the fiber's stack is reused
    __builtin_unreachable();
}

inline uint3 thread_index(unsigned t, dim3 block) {
    return {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
}

// Opens every barrier that all its live threads have reached; false when none could open.
inline bool open_barriers(Launch& launch) {
    const unsigned threads = unsigned(launch.fibers.size());
    bool opened = false, live = false, all_at_block = true;
    for (auto& fiber : launch.fibers) {
        if (fiber.wait == Wait::done) continue;
        live = true;
        all_at_block = all_at_block && fiber.wait == Wait::block;
    }
    if (!live) return false;
    if (all_at_block) {
        for (auto& fiber : launch.fibers) if (fiber.wait == Wait::block) fiber.wait = Wait::none;
        return true;
    }
    for (unsigned first = 0; first < threads; first += 32) {
        const unsigned last = std::min(first + 32, threads);
        bool any = false, all = true;
        for (unsigned t = first; t < last; ++t) {
            const Wait w = launch.fibers[t].wait;
            if (w == Wait::done) continue;
            any = true;
            all = all && w == Wait::warp;
        }
        if (any && all) {
            for (unsigned t = first; t < last; ++t)
                if (launch.fibers[t].wait == Wait::warp) launch.fibers[t].wait = Wait::none;
            opened = true;
        }
    }
    return opened;
}

// Runs every block of the launch; returns "" or what went wrong.
inline std::string run(const std::function<void(void**)>& body, dim3 grid, dim3 block, std::size_t shared_bytes,
                       void** args) {
    const unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > 1024) return "block of " + std::to_string(threads) + " threads (1 to 1024 allowed)";
    Launch launch;
    launch.body = body;
    launch.args = args;
    launch.fibers.resize(threads);
    // The fibers' stacks, kept from launch to launch: zeroing them anew would cost more than most kernels.
    static std::vector<unsigned char> stacks;
    if (stacks.size() < std::size_t(threads) * kStackBytes) stacks.resize(std::size_t(threads) * kStackBytes);
    launch.shuffle_slots[0].resize(threads);
    launch.shuffle_slots[1].resize(threads);
    current() = &launch;
    gridDim = grid;
    blockDim = block;
    const unsigned long long blocks = 1ull * grid.x * grid.y * grid.z;
    for (unsigned long long b = 0; b < blocks && launch.error.empty(); ++b) {
        blockIdx = {unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / (1ull * grid.x * grid.y))};
        launch.dynamic_shared.assign(shared_bytes + 16, 0xff);
        for (unsigned t = 0; t < threads; ++t) {
            Fiber& fiber = launch.fibers[t];
            fiber.wait = Wait::none;
            fiber.open_group.clear();
            fiber.groups.clear();
            fiber.exchanges = 0;
            make_context(fiber.context, stacks.data() + std::size_t(t) * kStackBytes, kStackBytes, fiber_entry);
        }
        const bool reverse = b % 2 == 1;
        for (;;) {
            bool ran = false;
            for (unsigned i = 0; i < threads; ++i) {
                const unsigned t = reverse ? threads - 1 - i : i;
                if (launch.fibers[t].wait != Wait::none) continue;
                launch.running = t;
                threadIdx = thread_index(t, block);
                switch_context(launch.scheduler, launch.fibers[t].context);
                ran = true;
            }
            if (!launch.error.empty()) break;
            if (!ran && !open_barriers(launch)) break;
        }
        if (launch.error.empty()) {
            for (unsigned t = 0; t < threads; ++t) {
                if (launch.fibers[t].wait == Wait::done) continue;
                const char* where = launch.fibers[t].wait == Wait::block ? " waits at __syncthreads"
                                                                         : " waits at a warp shuffle";
                launch.error = std::string("deadlock in block ") + std::to_string(b) + ": thread " + std::to_string(t) +
                               where + " that not every live thread reaches";
                break;
            }
        }
    }
    current() = nullptr;
    return launch.error;
}

}  // namespace emu

#define EMU_KERNEL(name) static emu::Registrar emu_registrar_##name(#name, name);

// The library's C interface (tests/emulated_gpu/build.py); everything else stays inside the library
// (built with -fvisibility=hidden -fno-gnu-unique, so two kernel files loaded together never share
// a registry or launch state).
#define EMU_API extern "C" __attribute__((visibility("default")))
EMU_API int emu_kernel_count() { return int(emu::registry().size()); }

EMU_API const char* emu_kernel_name(int index) {
    auto it = emu::registry().begin();
    std::advance(it, index);
    return it->first.c_str();
}

EMU_API const char* emu_signature(const char* name) {
    auto found = emu::registry().find(name);
    return found == emu::registry().end() ? nullptr : found->second.signature.c_str();
}

// Runs kernel `name` over the grid; "" when it finished, else why not (valid until the next call).
EMU_API const char* emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                  unsigned bz, std::size_t shared_bytes, void** args) {
    static std::string error;
    auto found = emu::registry().find(name);
    if (found == emu::registry().end()) { error = std::string("no kernel named ") + name; return error.c_str(); }
    error = emu::run(found->second.call, dim3{gx, gy, gz}, dim3{bx, by, bz}, shared_bytes, args);
    return error.c_str();
}
