// jaxffi.cpp: kaun's compiled kernels as an XLA FFI custom call, for jax.jit on the CPU.
//
// One handler, kaun_ffi_call: operand x (float16, bfloat16, float32 or float64: the kernel's I/O
// dtype), then the run-time scalars (0-d float32 or float64 buffers: they may be traced values,
// so they are operands, not attributes); result y, x's shape, in the kernel's output dtype.
// Attributes: `lib`, the kernel library's file name (a hash of its source, headers, flags and
// level: kaun._kernels._key), and `sym`, the kernel's symbol (k_value, k_deriv, k_deriv2, ...).
//
// No address is baked into the HLO: JAX's persistent compilation cache may run an executable in
// another process, where an address means nothing. The handler resolves (lib, sym) with dlopen
// and dlsym once per process, in the folders kaun told it (its private cache, its prebuilt
// libraries; kaun_ffi_add_dir), and keeps the pointer. kaun loads and checks (sealed, private)
// a library before it lowers a call to it, so the dlopen finds the loaded copy.
//
// The kernel runs through kaun's runtime (runtime.c's kaun_run_flat, handed over by
// kaun_ffi_init) on the calling thread, XLA's: XLA runs the program's other operations on threads
// of its own, and a second thread gained nothing measurable here (docs/jax.md). XLA's CPU threads
// flush subnormals to zero (FTZ and DAZ in MXCSR); the kernel runs in the default floating-point
// environment (IEEE's subnormals, round to nearest), restored after: NumPy's bits.
#include <dlfcn.h>
#include <fenv.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

extern "C" {
typedef void (*kaun_run_flat_fn)(void *fn, const void *x, const void *g, void *y, int64_t n,
                                 const double *p, int np, int nthreads);
}

namespace {

constexpr int kMaxP = 8;  // kargs.h's KAUN_MAX_P
std::atomic<kaun_run_flat_fn> run_flat{nullptr};
std::mutex mu;
std::vector<std::string> dirs;
std::unordered_map<std::string, void *> kernels;  // "lib\0sym" -> kaun_chunk function

// The kernel (lib, sym), or nullptr with *why set.
void *resolve(std::string_view lib, std::string_view sym, std::string *why) {
  std::string key(lib);
  key.push_back('\0');
  key.append(sym);
  std::lock_guard<std::mutex> hold(mu);
  auto it = kernels.find(key);
  if (it != kernels.end()) return it->second;
  if (lib.empty() || lib.find('/') != std::string_view::npos || lib[0] == '.') {
    *why = "kaun_ffi_call: not a kernel library's name: " + std::string(lib);
    return nullptr;
  }
  for (const std::string &d : dirs) {
    std::string path = d + "/" + std::string(lib);
    void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (h == nullptr) h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) continue;
    void *fn = dlsym(h, std::string(sym).c_str());
    if (fn == nullptr) {
      *why = "kaun_ffi_call: no kernel " + std::string(sym) + " in " + path;
      return nullptr;
    }
    kernels.emplace(key, fn);  // (the handle stays open: the pointer must stay valid)
    return fn;
  }
  *why = "kaun_ffi_call: kernel library " + std::string(lib) +
         " not found in kaun's folders (call the function once in this process, or run "
         "`kaun-activation build`)";
  return nullptr;
}

ffi::Error call(ffi::AnyBuffer x, ffi::RemainingArgs scalars, ffi::Result<ffi::AnyBuffer> y,
                std::string_view lib, std::string_view sym) {
  kaun_run_flat_fn run = run_flat.load(std::memory_order_acquire);
  if (run == nullptr) return ffi::Error::Internal("kaun_ffi_call: kaun_ffi_init was not called");
  int64_t n = static_cast<int64_t>(x.element_count());
  if (static_cast<int64_t>(y->element_count()) != n)
    return ffi::Error::InvalidArgument("kaun_ffi_call: x and y differ in size");
  size_t np = scalars.size();
  if (np > kMaxP) return ffi::Error::InvalidArgument("kaun_ffi_call: too many run-time scalars");
  double p[kMaxP] = {0};
  for (size_t i = 0; i < np; ++i) {
    auto b = scalars.get<ffi::AnyBuffer>(i);
    if (!b.has_value() || b->element_count() != 1)
      return ffi::Error::InvalidArgument("kaun_ffi_call: a run-time scalar is not a scalar buffer");
    switch (b->element_type()) {
      case ffi::DataType::F32: p[i] = *static_cast<const float *>(b->untyped_data()); break;
      case ffi::DataType::F64: p[i] = *static_cast<const double *>(b->untyped_data()); break;
      default:
        return ffi::Error::InvalidArgument("kaun_ffi_call: a run-time scalar must be float32 or float64");
    }
  }
  std::string why;
  void *fn = resolve(lib, sym, &why);
  if (fn == nullptr) return ffi::Error(ffi::ErrorCode::kNotFound, why);
  fenv_t env;
  fegetenv(&env);
  fesetenv(FE_DFL_ENV);
  run(fn, x.untyped_data(), nullptr, y->untyped_data(), n, p, static_cast<int>(np), 1);
  fesetenv(&env);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(kaun_ffi_call, call,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::string_view>("lib")
                                  .Attr<std::string_view>("sym"));

extern "C" {

// What kaun checks it loaded: bumped when the handler's operands or attributes change.
int kaun_ffi_version(void) { return 2; }

void kaun_ffi_init(void *run) {
  run_flat.store(reinterpret_cast<kaun_run_flat_fn>(run), std::memory_order_release);
}

void kaun_ffi_add_dir(const char *dir) {
  std::lock_guard<std::mutex> hold(mu);
  for (const std::string &d : dirs)
    if (d == dir) return;
  dirs.emplace_back(dir);
}
}
