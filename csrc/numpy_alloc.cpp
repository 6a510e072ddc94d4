// Numpy data-memory handlers (NEP 49) for the arrays hsicodec makes while it encodes or decodes: numpy's own
// handler, except in whether blocks of HUGE_ADVISED bytes and more get transparent huge pages.
//
//   numpy_alloc_enter(free_only=True) -> capsule   installs one in the calling thread's context (numpy keeps
//                                     the handler in a context variable); returns the previous handler:
//                                     free_only: a large block gets numpy's MADV_HUGEPAGE advice only while the
//                                     kernel's free lists hold free 2 MiB blocks for twice its size
//                                     ("hsicodec_free_huge_pages"); else never ("hsicodec_plain_pages")
//   numpy_alloc_exit(capsule)         restores that one
//   free_huge_blocks(path)            free whole 2 MiB blocks in a /proc/buddyinfo text (-1: unreadable)
//
// numpy asks for transparent huge pages for every block of 4 MiB and more. Faulted in as 2 MiB pages, a block
// costs about a quarter of the kernel time of 4 KiB pages. But with the kernel's usual defrag=madvise, a
// fault in advised memory that finds no free 2 MiB block stops to compact memory: on the virtual machines we
// measured on before, a 2048^2 x 224 decode then spent 9-20 s of system time (1.3-2.4 s without advice) and
// a 1024^2 x 189 compress 18 s instead of 11 s. Reading /proc/buddyinfo (about 4 us, once per large block)
// tells whether a fault would find free blocks. Every block is malloc'd either way, so freeing and resizing
// stay numpy's own (its small-block cache included), and an array outliving the call (a decoded cube handed
// to the caller) is freed correctly.

#include <pybind11/pybind11.h>

#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#define NPY_TARGET_VERSION NPY_1_22_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL hsicodec_numpy_alloc_ARRAY_API
#include <numpy/arrayobject.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

// Free whole 2 MiB blocks in a /proc/buddyinfo text (lines "Node 0, zone Normal n0 n1 ... n10": the free
// blocks of 2^order 4 KiB pages; one of order >= 9 holds 2^(order - 9)), -1 when the file cannot be read.
int64_t free_huge_blocks_in(const char* path) {
    std::FILE* f = std::fopen(path, "r");
    if (!f) return -1;
    char buf[8192];
    const size_t len = std::fread(buf, 1, sizeof buf - 1, f);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) return -1;
    buf[len] = '\0';
    int64_t total = 0;
    for (char* line = buf; *line;) {
        char* end = std::strchr(line, '\n');
        if (end) *end = '\0';
        int field = 0;
        for (char* tok = line; *tok;) {  // fields: "Node" "0," "zone" NAME, then the counts by order
            while (*tok == ' ' || *tok == '\t') ++tok;
            if (!*tok) break;
            char* after = tok;
            while (*after && *after != ' ' && *after != '\t') ++after;
            const int order = field++ - 4;
            if (order >= 9 && order < 40) {
                char* num_end = tok;
                const long long v = std::strtoll(tok, &num_end, 10);
                if (num_end == after && v > 0) total += static_cast<int64_t>(v) << (order - 9);
            }
            tok = after;
        }
        if (!end) break;
        line = end + 1;
    }
    return total;
}

// Whether a block of n bytes may take huge pages: the kernel's free lists hold free 2 MiB blocks for twice n.
bool huge_blocks_free_for(size_t n) {
    const int64_t blocks = free_huge_blocks_in("/proc/buddyinfo");
    return blocks > 0 && static_cast<uint64_t>(blocks) * (uint64_t(1) << 21) / 2 >= n;
}

// Whether a block of n bytes goes to numpy's own allocator (which advises huge pages from HUGE_ADVISED up).
template <bool FreeOnly>
bool numpy_allocates(size_t n) {
    return n < HUGE_ADVISED || (FreeOnly && huge_blocks_free_for(n));
}

template <bool FreeOnly>
void* block_malloc(void*, size_t n) {
    return numpy_allocates<FreeOnly>(n) ? numpy_default().malloc(numpy_default().ctx, n) : std::malloc(n);
}

template <bool FreeOnly>
void* block_calloc(void*, size_t nelem, size_t elsize) {
    size_t n = 0;
    if (__builtin_mul_overflow(nelem, elsize, &n)) return nullptr;
    return numpy_allocates<FreeOnly>(n) ? numpy_default().calloc(numpy_default().ctx, nelem, elsize)
                                        : std::calloc(nelem, elsize);
}

void* block_realloc(void*, void* b, size_t n) { return numpy_default().realloc(numpy_default().ctx, b, n); }

void block_free(void*, void* b, size_t n) { numpy_default().free(numpy_default().ctx, b, n); }

PyDataMem_Handler FREE_HUGE_HANDLER = {
    "hsicodec_free_huge_pages",
    1,
    {nullptr, block_malloc<true>, block_calloc<true>, block_realloc, block_free},
};

PyDataMem_Handler PLAIN_HANDLER = {
    "hsicodec_plain_pages",
    1,
    {nullptr, block_malloc<false>, block_calloc<false>, block_realloc, block_free},
};

py::object numpy_alloc_enter(bool free_only) {
    static PyObject* capsules[2] = {nullptr, nullptr};
    PyObject*& capsule = capsules[free_only ? 1 : 0];
    if (!capsule) {
        numpy_default();  // resolved here, with the GIL held
        capsule = PyCapsule_New(free_only ? &FREE_HUGE_HANDLER : &PLAIN_HANDLER, "mem_handler", nullptr);
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
    m.def("numpy_alloc_enter", &numpy_alloc_enter, py::arg("free_only") = true,
          "Install one of hsicodec's numpy memory handlers in this thread's context (free_only: huge pages for a "
          "large block only while free 2 MiB blocks for twice its size exist; else never); returns the previous "
          "handler.");
    m.def("numpy_alloc_exit", &numpy_alloc_exit, py::arg("previous"), "Restore `previous` (from numpy_alloc_enter).");
    m.def("free_huge_blocks", &free_huge_blocks_in, py::arg("path") = "/proc/buddyinfo",
          "Free whole 2 MiB blocks in a /proc/buddyinfo text (-1 where it cannot be read).");
}
