// A numpy data-memory handler (NEP 49) for the arrays hsicodec makes while it encodes or decodes: numpy's
// own handler, except that blocks of HUGE_ADVISED bytes and more get no MADV_HUGEPAGE advice.
//
//   numpy_alloc_enter() -> capsule    installs it in the calling thread's context (numpy keeps the handler in
//                                     a context variable); returns the previous handler
//   numpy_alloc_exit(capsule)         restores that one
//
// numpy asks for transparent huge pages for every block of 4 MiB and more. On the virtual machines we
// measure on, faulting 2 MiB pages in cost far more kernel time than the codec's own work (a 2048^2 x 224
// decode: 9-20 s of system time with them, 1.3-2.4 s without; a 1024^2 x 189 compress 18 s -> 11 s), and an
// encoder or decoder streams through its arrays, which gains nothing from fewer TLB entries. Every block is
// malloc'd either way, so freeing and resizing stay numpy's own (its small-block cache included), and an
// array outliving the call (a decoded cube handed to the caller) is freed correctly.

#include <pybind11/pybind11.h>

#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#define NPY_TARGET_VERSION NPY_1_22_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL hsicodec_numpy_alloc_ARRAY_API
#include <numpy/arrayobject.h>

#include <cstdlib>

namespace py = pybind11;

namespace {

constexpr size_t HUGE_ADVISED = size_t(1) << 22;  // numpy's threshold for MADV_HUGEPAGE

PyDataMemAllocator& numpy_default() {
    static PyDataMemAllocator* a = nullptr;
    if (!a) {
        auto* h = static_cast<PyDataMem_Handler*>(PyCapsule_GetPointer(PyDataMem_DefaultHandler, "mem_handler"));
        a = &h->allocator;
    }
    return *a;
}

void* plain_malloc(void*, size_t n) {
    return n < HUGE_ADVISED ? numpy_default().malloc(numpy_default().ctx, n) : std::malloc(n);
}

void* plain_calloc(void*, size_t nelem, size_t elsize) {
    size_t n = 0;
    if (__builtin_mul_overflow(nelem, elsize, &n)) return nullptr;
    return n < HUGE_ADVISED ? numpy_default().calloc(numpy_default().ctx, nelem, elsize) : std::calloc(nelem, elsize);
}

void* plain_realloc(void*, void* b, size_t n) { return numpy_default().realloc(numpy_default().ctx, b, n); }

void plain_free(void*, void* b, size_t n) { numpy_default().free(numpy_default().ctx, b, n); }

PyDataMem_Handler PLAIN_HANDLER = {
    "hsicodec_plain_pages",
    1,
    {nullptr, plain_malloc, plain_calloc, plain_realloc, plain_free},
};

py::object numpy_alloc_enter() {
    static PyObject* capsule = nullptr;
    if (!capsule) {
        numpy_default();  // resolved here, with the GIL held
        capsule = PyCapsule_New(&PLAIN_HANDLER, "mem_handler", nullptr);
        if (!capsule) throw py::error_already_set();
    }
    PyObject* old = PyDataMem_SetHandler(capsule);
    if (!old) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(old);
}

void numpy_alloc_exit(py::object previous) {
    PyObject* was = PyDataMem_SetHandler(previous.ptr());
    if (!was) throw py::error_already_set();
    Py_DECREF(was);
}

}  // namespace

void register_numpy_alloc(py::module_& m) {
    if (_import_array() < 0) throw py::error_already_set();
    m.def("numpy_alloc_enter", &numpy_alloc_enter,
          "Install hsicodec's numpy memory handler (no huge-page advice) in this thread's context; returns the "
          "previous handler.");
    m.def("numpy_alloc_exit", &numpy_alloc_exit, py::arg("previous"), "Restore `previous` (from numpy_alloc_enter).");
}
