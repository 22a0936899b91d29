// torchops.cpp: kaun's CPU kernels as a torch operator with its autograd in C++.
//
// Built against the installed torch (kaun._kernels.torchops), loaded as a CPython extension
// named _kaun_torchops. A call from Python, call(x, table), goes straight to C++: the checks
// that say whether the kernel may serve (a plain dense contiguous CPU tensor of the table's
// dtype, no tracer, no torch.func transform, no forward-mode AD), then either the kernel
// (no gradient wanted) or the operator kaun::act through torch's dispatcher, whose Autograd
// kernel records a C++ node. That node's backward runs the vjp kernel; where a graph of the
// backward is being built (create_graph=True: a second derivative to come) it calls the
// operator kaun::grad instead, which kaun registers in Python (CompositeImplicitAutograd: the
// same differentiable Functions as the Python path), so the orders above the first stay the
// Python path's. call returns None where the kernel may not serve: the caller's general path.
//
// A table (registered once per entry, hyper-parameters and dtype) holds the kernels' addresses,
// which the process's kaun libraries keep loaded (ctypes never unloads them), and a copy of the
// run-time scalars. Tables are never freed: their number is bounded by kaun's own caches.
#include <Python.h>

#include <ATen/Parallel.h>
#include <ATen/PythonTorchFunctionTLS.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/forward_grad.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/library.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

extern "C" {
#include "kargs.h"
}

namespace {

using at::Tensor;
using chunk_fn = void (*)(const kaun_args *, int64_t, int64_t);
using run_flat_fn = void (*)(chunk_fn, const void *, const void *, void *, int64_t, const double *,
                             int, int);
using run_rows_fn = void (*)(chunk_fn, const void *, const void *, const void *, void *, void *,
                             int64_t, int64_t, int64_t, int64_t, int64_t, const double *, int, int);

constexpr int64_t GRAIN = 16384;  // runtime.c's KAUN_GRAIN
constexpr int MAX_TABLES = 1 << 16;

struct Table {
    chunk_fn value;
    chunk_fn vjp;
    c10::ScalarType dtype;
    bool glu;  // a glu-kind entry's kernels (two halves of x along an axis), else elementwise
    int np;
    double p[KAUN_MAX_P];
};

run_flat_fn run_flat = nullptr;
run_rows_fn run_rows = nullptr;
std::atomic<int> n_tables{0};
Table *tables[MAX_TABLES];
// kaun's thread rule (kaun._kernels.threads.torch_threads): torch's count, unless fixed (a
// forked child: 1; KAUN_NUM_THREADS)
std::atomic<int> fixed_threads{0};

int threads_for(int64_t n) {
    if (n < GRAIN) return 1;
    int f = fixed_threads.load(std::memory_order_relaxed);
    return f > 0 ? f : at::get_num_threads();
}

const Table &table_of(int64_t id) {
    TORCH_CHECK(id >= 0 && id < n_tables.load(std::memory_order_acquire),
                "kaun: no kernel table ", id);
    return *tables[id];
}

void run(chunk_fn fn, const Table &t, const Tensor &x, const Tensor *g, Tensor &y) {
    int64_t n = x.numel();
    const void *gp = g ? g->const_data_ptr() : nullptr;
    int nt = threads_for(n);
    if (n >= GRAIN && PyGILState_Check()) {
        Py_BEGIN_ALLOW_THREADS
        run_flat(fn, x.const_data_ptr(), gp, y.mutable_data_ptr(), n, t.p, t.np, nt);
        Py_END_ALLOW_THREADS
    } else {
        run_flat(fn, x.const_data_ptr(), gp, y.mutable_data_ptr(), n, t.p, t.np, nt);
    }
}

// the value kernel over a contiguous x
Tensor value(const Tensor &x, const Table &t) {
    Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
    run(t.value, t, x, nullptr, y);
    return y;
}

// g f'(x) by the vjp kernel: g brought to x's dtype and layout first (a copy only where they
// differ; a lazy negation or conjugation applied)
Tensor vjp(const Tensor &x, const Tensor &g0, const Table &t) {
    Tensor g = g0.resolve_neg().resolve_conj();
    if (g.scalar_type() != x.scalar_type() || !g.is_contiguous() || g.device() != x.device())
        g = at::empty_like(x, at::MemoryFormat::Contiguous).copy_(g);
    Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
    run(t.vjp, t, x, &g, y);
    return y;
}

// glu-kind: a contiguous x seen as (rows, 2, len), its halves side by side along axis ax
// (kaun._kernels.glu_rows); the value (rows, len), or with a cotangent the gradient of x
struct Rows {
    int64_t rows = 1, len = 1, off;  // off: the second half's offset, in bytes
    Rows(const Tensor &x, int64_t ax) {
        for (int64_t i = 0; i < ax; i++) rows *= x.size(i);
        for (int64_t i = ax + 1; i < x.dim(); i++) len *= x.size(i);
        len *= x.size(ax) / 2;
        off = len * static_cast<int64_t>(x.element_size());
    }
};

void run_glu(chunk_fn fn, const Table &t, const Tensor &x, const Tensor *g, Tensor &y, int64_t ax) {
    Rows r(x, ax);
    int64_t n = r.rows * r.len;
    if (n == 0) return;
    const char *xp = static_cast<const char *>(x.const_data_ptr());
    char *yp = static_cast<char *>(y.mutable_data_ptr());
    int nt = threads_for(n);
    auto go = [&] {
        if (g)
            run_rows(fn, xp, xp + r.off, g->const_data_ptr(), yp, yp + r.off, r.rows, r.len,
                     2 * r.len, r.len, 2 * r.len, t.p, t.np, nt);
        else
            run_rows(fn, xp, xp + r.off, nullptr, yp, nullptr, r.rows, r.len, 2 * r.len, 0, r.len,
                     t.p, t.np, nt);
    };
    if (n >= GRAIN && PyGILState_Check()) {
        Py_BEGIN_ALLOW_THREADS
        go();
        Py_END_ALLOW_THREADS
    } else {
        go();
    }
}

Tensor glu_value(const Tensor &x, int64_t ax, const Table &t) {
    auto sizes = x.sizes().vec();
    sizes[ax] /= 2;
    Tensor y = at::empty(sizes, x.options());
    run_glu(t.value, t, x, nullptr, y, ax);
    return y;
}

Tensor glu_vjp(const Tensor &x, const Tensor &g0, int64_t ax, const Table &t) {
    Tensor g = g0.resolve_neg().resolve_conj();
    if (g.scalar_type() != x.scalar_type() || !g.is_contiguous() || g.device() != x.device()) {
        auto sizes = x.sizes().vec();
        sizes[ax] /= 2;
        g = at::empty(sizes, x.options()).copy_(g);
    }
    Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
    run_glu(t.vjp, t, x, &g, y, ax);
    return y;
}

Tensor act_cpu(const Tensor &x, int64_t id) {
    const Table &t = table_of(id);
    TORCH_CHECK(x.scalar_type() == t.dtype && x.is_contiguous() && x.is_cpu(),
                "kaun::act: a contiguous CPU tensor of the table's dtype is expected");
    return value(x, t);
}

Tensor glu_cpu(const Tensor &x, int64_t id, int64_t ax) {
    const Table &t = table_of(id);
    TORCH_CHECK(x.scalar_type() == t.dtype && x.is_contiguous() && x.is_cpu() && t.glu &&
                    ax >= 0 && ax < x.dim() && x.size(ax) % 2 == 0,
                "kaun::glu: a contiguous CPU tensor of the table's dtype, split along an axis of "
                "even size, is expected");
    return glu_value(x, ax, t);
}

// kaun::grad and kaun::glu_grad: registered in Python (kaun._kernels.torchops), differentiable
Tensor grad_op(const Tensor &g, const Tensor &x, int64_t id, int64_t k) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("kaun::grad", "")
                         .typed<Tensor(const Tensor &, const Tensor &, int64_t, int64_t)>();
    return op.call(g, x, id, k);
}

Tensor glu_grad_op(const Tensor &g, const Tensor &x, int64_t id, int64_t ax) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("kaun::glu_grad", "")
                         .typed<Tensor(const Tensor &, const Tensor &, int64_t, int64_t)>();
    return op.call(g, x, id, ax);
}

// prelu with an alpha tensor: torch's own kernels (x > 0 ? x : alpha x, broadcast; the backward
// with kaun's conventions, alpha at 0), alpha's gradient summed as kaun._backends._torch._sum_to
// does (the leading axes first, then the broadcast ones: the same bits)
Tensor sum_to_shape(Tensor g, c10::IntArrayRef shape) {
    int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
    if (lead > 0) {
        std::vector<int64_t> dims(lead);
        for (int64_t i = 0; i < lead; i++) dims[i] = i;
        g = g.sum(dims);
    }
    std::vector<int64_t> axes;
    for (size_t i = 0; i < shape.size(); i++)
        if (shape[i] == 1 && g.size(static_cast<int64_t>(i)) != 1) axes.push_back(static_cast<int64_t>(i));
    return axes.empty() ? g : g.sum(axes, /*keepdim=*/true);
}

std::tuple<Tensor, Tensor> prelu_grad_op(const Tensor &g, const Tensor &x, const Tensor &alpha) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("kaun::prelu_grad", "")
                         .typed<std::tuple<Tensor, Tensor>(const Tensor &, const Tensor &, const Tensor &)>();
    return op.call(g, x, alpha);
}

}  // namespace

namespace kaun {
// (named: torch names the node after it, torch::autograd::CppNode<kaun::Act>)
struct Act : public torch::autograd::Function<Act> {
    static Tensor forward(torch::autograd::AutogradContext *ctx, const Tensor &x, int64_t id) {
        ctx->save_for_backward({x});
        ctx->saved_data["id"] = id;
        at::AutoDispatchBelowADInplaceOrView guard;
        return value(x, table_of(id));
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list gs) {
        auto saved = ctx->get_saved_variables();
        const Tensor &x = saved[0];
        int64_t id = ctx->saved_data["id"].toInt();
        const Tensor &g = gs[0];
        if (!g.defined()) return {Tensor(), Tensor()};
        if (c10::GradMode::is_enabled())  // a graph of the backward: the differentiable path
            return {grad_op(g, x, id, 1), Tensor()};
        return {vjp(x, g, table_of(id)), Tensor()};
    }
};


// glu and the gated family, split form: saves x only; backward one pass of the vjp kernel
// writing both halves' gradients
struct Glu : public torch::autograd::Function<Glu> {
    static Tensor forward(torch::autograd::AutogradContext *ctx, const Tensor &x, int64_t id,
                          int64_t ax) {
        ctx->save_for_backward({x});
        ctx->saved_data["id"] = id;
        ctx->saved_data["ax"] = ax;
        at::AutoDispatchBelowADInplaceOrView guard;
        return glu_value(x, ax, table_of(id));
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list gs) {
        auto saved = ctx->get_saved_variables();
        const Tensor &x = saved[0];
        int64_t id = ctx->saved_data["id"].toInt(), ax = ctx->saved_data["ax"].toInt();
        const Tensor &g = gs[0];
        if (!g.defined()) return {Tensor(), Tensor(), Tensor()};
        if (c10::GradMode::is_enabled())
            return {glu_grad_op(g, x, id, ax), Tensor(), Tensor()};
        return {glu_vjp(x, g, ax, table_of(id)), Tensor(), Tensor()};
    }
};

struct Prelu : public torch::autograd::Function<Prelu> {
    static Tensor forward(torch::autograd::AutogradContext *ctx, const Tensor &x, const Tensor &alpha) {
        ctx->save_for_backward({x, alpha});
        at::AutoDispatchBelowADInplaceOrView guard;
        return at::_prelu_kernel(x, alpha);
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list gs) {
        auto saved = ctx->get_saved_variables();
        const Tensor &x = saved[0], &alpha = saved[1];
        const Tensor &g = gs[0];
        if (!g.defined()) return {Tensor(), Tensor()};
        if (c10::GradMode::is_enabled()) {  // the formula's derivatives, differentiable
            auto [gx, ga] = prelu_grad_op(g, x, alpha);
            return {gx, ga};
        }
        auto [gx, ga] = at::_prelu_kernel_backward(g, x, alpha);
        return {gx, sum_to_shape(ga, alpha.sizes())};
    }
};
}  // namespace kaun

namespace {

Tensor act_autograd(const Tensor &x, int64_t id) { return kaun::Act::apply(x, id); }
Tensor glu_autograd(const Tensor &x, int64_t id, int64_t ax) { return kaun::Glu::apply(x, id, ax); }
Tensor prelu_autograd(const Tensor &x, const Tensor &alpha) { return kaun::Prelu::apply(x, alpha); }
Tensor prelu_cpu(const Tensor &x, const Tensor &alpha) { return at::_prelu_kernel(x, alpha); }

// Whether the kernel may serve x with this table now (see the file's head).
bool plain(const Tensor &x) {
    if (!x.is_cpu() || x.layout() != c10::kStrided || x.is_nested() || x.is_neg() || x.is_conj())
        return false;
    // (a tensor subclass, FakeTensor or functorch wrapper carries a key a plain one lacks)
    auto ks = x.key_set();
    return !(ks.has(c10::DispatchKey::Python) || ks.has(c10::DispatchKey::FuncTorchBatched) ||
             ks.has(c10::DispatchKey::FuncTorchGradWrapper) || ks.has(c10::DispatchKey::Functionalize));
}

// Whether this thread runs eagerly: no tracer, no torch.func transform, no forward-mode AD, no
// TorchDispatchMode (make_fx, FlopCounterMode, a user's mode must see the operations)
bool eager_now() {
    if (torch::jit::tracer::isTracing() || c10::impl::TorchDispatchModeTLS::any_modes_set()) return false;
    // (a torch.func transform active: functorch includes its front-mode key on this thread)
    if (c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::FuncTorchDynamicLayerFrontMode))
        return false;
    return !torch::autograd::ForwardADLevel::try_get_by_idx(0);
}

bool eligible(const Tensor &x, const Table &t) {
    // (plain first: is_contiguous() throws on a sparse CSR tensor)
    return x.scalar_type() == t.dtype && plain(x) && x.is_contiguous() && eager_now();
}

PyObject *py_call(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "call(x, table)");
        return nullptr;
    }
    if (!THPVariable_CheckExact(args[0])) Py_RETURN_NONE;
    long long id = PyLong_AsLongLong(args[1]);
    if (id == -1 && PyErr_Occurred()) return nullptr;
    if (id < 0 || id >= n_tables.load(std::memory_order_acquire)) {
        PyErr_SetString(PyExc_ValueError, "no such kernel table");
        return nullptr;
    }
    HANDLE_TH_ERRORS  // (torch's translation: a C++ exception becomes a Python one, and a Python
                      // exception raised inside, such as checkpoint's stop of a recomputation,
                      // reaches Python as itself; none may leave this C function as C++)
        const Tensor &x = THPVariable_Unpack(args[0]);
        const Table &t = *tables[id];
        if (t.glu || !eligible(x, t)) Py_RETURN_NONE;
        Tensor y;
        if (x.requires_grad() && c10::GradMode::is_enabled()) {
            static auto op = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("kaun::act", "")
                                 .typed<Tensor(const Tensor &, int64_t)>();
            y = op.call(x, id);
        } else {
            y = value(x, t);
        }
        return THPVariable_Wrap(std::move(y));
    END_HANDLE_TH_ERRORS
}

// call_glu(x, table, axis): as call, for a glu-kind table, x split in halves along axis (>= 0)
PyObject *py_call_glu(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "call_glu(x, table, axis)");
        return nullptr;
    }
    if (!THPVariable_CheckExact(args[0])) Py_RETURN_NONE;
    long long id = PyLong_AsLongLong(args[1]);
    long long ax = PyLong_AsLongLong(args[2]);
    if ((id == -1 || ax == -1) && PyErr_Occurred()) return nullptr;
    if (id < 0 || id >= n_tables.load(std::memory_order_acquire)) {
        PyErr_SetString(PyExc_ValueError, "no such kernel table");
        return nullptr;
    }
    HANDLE_TH_ERRORS
        const Tensor &x = THPVariable_Unpack(args[0]);
        const Table &t = *tables[id];
        if (!t.glu || !eligible(x, t) || ax < 0 || ax >= x.dim() || x.size(ax) % 2) Py_RETURN_NONE;
        Tensor y;
        if (x.requires_grad() && c10::GradMode::is_enabled()) {
            static auto op = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("kaun::glu", "")
                                 .typed<Tensor(const Tensor &, int64_t, int64_t)>();
            y = op.call(x, id, ax);
        } else {
            y = glu_value(x, ax, t);
        }
        return THPVariable_Wrap(std::move(y));
    END_HANDLE_TH_ERRORS
}

// prelu(x, alpha): x and alpha plain CPU tensors of one dtype (kaun's checks passed: alpha
// broadcasts to x), or None where the Python path must serve
PyObject *py_prelu(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "prelu(x, alpha)");
        return nullptr;
    }
    if (!THPVariable_CheckExact(args[0]) || !THPVariable_CheckExact(args[1])) Py_RETURN_NONE;
    HANDLE_TH_ERRORS
        const Tensor &x = THPVariable_Unpack(args[0]);
        const Tensor &alpha = THPVariable_Unpack(args[1]);
        if (x.scalar_type() != alpha.scalar_type() || !at::isFloatingType(x.scalar_type()) ||
            !plain(x) || !plain(alpha) || !eager_now())
            Py_RETURN_NONE;
        Tensor y;
        if ((x.requires_grad() || alpha.requires_grad()) && c10::GradMode::is_enabled()) {
            static auto op = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("kaun::prelu", "")
                                 .typed<Tensor(const Tensor &, const Tensor &)>();
            y = op.call(x, alpha);
        } else {
            y = at::_prelu_kernel(x, alpha);
        }
        return THPVariable_Wrap(std::move(y));
    END_HANDLE_TH_ERRORS
}

// table(dtype, value, vjp, p[, glu]) -> id: dtype a torch.dtype, value and vjp kernel addresses, p a
// tuple of floats (the run-time scalars)
PyObject *py_table(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 4 || nargs > 5 || !THPDtype_Check(args[0]) || !PyTuple_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "table(dtype, value, vjp, p[, glu])");
        return nullptr;
    }
    Py_ssize_t np = PyTuple_GET_SIZE(args[3]);
    if (np > KAUN_MAX_P) {
        PyErr_SetString(PyExc_ValueError, "too many run-time scalars");
        return nullptr;
    }
    auto *t = new Table{};
    t->dtype = reinterpret_cast<THPDtype *>(args[0])->scalar_type;
    t->value = reinterpret_cast<chunk_fn>(PyLong_AsVoidPtr(args[1]));
    t->vjp = reinterpret_cast<chunk_fn>(PyLong_AsVoidPtr(args[2]));
    t->np = static_cast<int>(np);
    t->glu = nargs == 5 && PyObject_IsTrue(args[4]) == 1;
    for (Py_ssize_t i = 0; i < np; i++) t->p[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(args[3], i));
    if (PyErr_Occurred() || !t->value || !t->vjp) {
        delete t;
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a null kernel address");
        return nullptr;
    }
    int id = n_tables.load();
    if (id >= MAX_TABLES) {
        delete t;
        PyErr_SetString(PyExc_RuntimeError, "too many kernel tables");
        return nullptr;
    }
    tables[id] = t;  // (under the GIL: one writer at a time)
    n_tables.store(id + 1, std::memory_order_release);
    return PyLong_FromLong(id);
}

PyObject *py_init(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "init(run_flat, run_rows)");
        return nullptr;
    }
    run_flat = reinterpret_cast<run_flat_fn>(PyLong_AsVoidPtr(args[0]));
    run_rows = reinterpret_cast<run_rows_fn>(PyLong_AsVoidPtr(args[1]));
    if (PyErr_Occurred()) return nullptr;
    Py_RETURN_NONE;
}

PyObject *py_fix_threads(PyObject *, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return nullptr;
    fixed_threads.store(static_cast<int>(n));
    Py_RETURN_NONE;
}

// native(x, kind, s): torch's own op where kaun's function is torch's (relu, relu6, hard_tanh,
// leaky_relu with slope s) of a plain dense floating tensor on any device, through torch's
// dispatcher (so autograd, tracers and modes see it, as they see torch.relu), or None where the
// Python path must serve: a subclass, another layout or dtype, a TorchFunctionMode (which sees
// torch.relu and must see this call as well)
PyObject *py_native(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "native(x, kind, s)");
        return nullptr;
    }
    if (!THPVariable_CheckExact(args[0]) || at::impl::torch_function_mode_enabled()) Py_RETURN_NONE;
    long kind = PyLong_AsLong(args[1]);
    double s = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred()) return nullptr;
    HANDLE_TH_ERRORS
        const Tensor &x = THPVariable_Unpack(args[0]);
        auto st = x.scalar_type();  // (kaun's four floating dtypes: not float8, which has no relu)
        if (x.layout() != c10::kStrided || x.is_nested() ||
            !(st == at::kHalf || st == at::kBFloat16 || st == at::kFloat || st == at::kDouble))
            Py_RETURN_NONE;
        Tensor y;
        {
            pybind11::gil_scoped_release no_gil;  // (as torch's own bindings do)
            switch (kind) {
                case 0: y = at::relu(x); break;
                case 1: y = at::hardtanh(x, 0.0, 6.0); break;
                case 2: y = at::hardtanh(x, -1.0, 1.0); break;
                case 3: y = at::leaky_relu(x, s); break;
                default: break;
            }
        }
        if (!y.defined()) {
            PyErr_SetString(PyExc_ValueError, "no such native operation");
            return nullptr;
        }
        return THPVariable_Wrap(std::move(y));
    END_HANDLE_TH_ERRORS
}

PyObject *py_abi(PyObject *, PyObject *) { return PyLong_FromLong(KAUN_ABI); }

PyMethodDef methods[] = {
    {"call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_call)), METH_FASTCALL,
     "call(x, table): the kernel's value of x (with a C++ autograd node where x requires grad), "
     "or None where the kernel may not serve x"},
    {"table", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_table)), METH_FASTCALL,
     "table(dtype, value, vjp, p[, glu]) -> id"},
    {"prelu", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_prelu)), METH_FASTCALL,
     "prelu(x, alpha): prelu with an alpha tensor (a C++ autograd node where a gradient is "
     "wanted), or None"},
    {"call_glu", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_call_glu)),
     METH_FASTCALL, "call_glu(x, table, axis): glu's value of x split along axis, or None"},
    {"init", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_init)), METH_FASTCALL,
     "init(run_flat, run_rows): the runtime's kaun_run_flat and kaun_run_rows"},
    {"fix_threads", py_fix_threads, METH_O, "fix_threads(n): n threads a call (0: torch's count)"},
    {"native", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_native)), METH_FASTCALL,
     "native(x, kind, s): torch's relu (0), relu6 (1), hardtanh (2) or leaky_relu(x, s) (3) of a "
     "plain dense floating tensor, or None"},
    {"abi", py_abi, METH_NOARGS, "KAUN_ABI of kargs.h, as compiled"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kaun_torchops", nullptr, -1, methods};

}  // namespace

TORCH_LIBRARY(kaun, m) {
    m.def("act(Tensor x, int table) -> Tensor");
    m.def("grad(Tensor g, Tensor x, int table, int order) -> Tensor");
    m.def("glu(Tensor x, int table, int axis) -> Tensor");
    m.def("glu_grad(Tensor g, Tensor x, int table, int axis) -> Tensor");
    m.def("prelu(Tensor x, Tensor alpha) -> Tensor");
    m.def("prelu_grad(Tensor g, Tensor x, Tensor alpha) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(kaun, CPU, m) {
    m.impl("act", act_cpu);
    m.impl("glu", glu_cpu);
    m.impl("prelu", prelu_cpu);
}

TORCH_LIBRARY_IMPL(kaun, Autograd, m) {
    m.impl("act", act_autograd);
    m.impl("glu", glu_autograd);
    m.impl("prelu", prelu_autograd);
}

PyMODINIT_FUNC PyInit__kaun_torchops(void) { return PyModule_Create(&module); }
