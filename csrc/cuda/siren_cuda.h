// Host API of the fused CUDA SIREN forward kernel (hsicodec._native_cuda).
//
// Plain C++ (no CUDA headers): cuda_module.cpp (pybind11, host compiler) calls
// into siren_cuda.cu (nvcc).  Semantics are those of hsicodec.siren.forward_numpy:
//   beta = phi W_M^T + b_M;  h_0 = x;  z_i = h_{i-1} W_i^T + b_i
//   h_i = sin(z_i + beta_i) (inside) | sin(z_i) + beta_i (outside)
//   y = h_K W_o^T + b_o (+ phi S^T)
// Errors: std::invalid_argument for a model the kernel cannot hold, std::runtime_error
// (with the CUDA error string) for every failed CUDA call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace hsi_cuda {

struct Dims {
    int K = 0, d = 0, n_in = 0, m = 0, C = 0;
    bool inside = true;
    bool skip = false;
};

// Row-major float32 arrays with the shapes of hsicodec.siren.SirenWeights.
struct ModelArrays {
    const float* const* hidden_w = nullptr;  // K arrays: (d, n_in), then (d, d)
    const float* const* hidden_b = nullptr;  // K arrays: (d,)
    const float* out_w = nullptr;            // (C, d)
    const float* out_b = nullptr;            // (C,)
    const float* meta_w = nullptr;           // (K*d, m)
    const float* meta_b = nullptr;           // (K*d,)
    const float* skip_w = nullptr;           // (C, m) or null
};

// How a model is launched on the current device (see Model::info).
struct KernelInfo {
    int device = -1;
    int hidden_block = 0;       // hidden neurons per pass when a layer is one pass (0: chunked, ping-pong buffers)
    bool staged = false;        // weights copied into shared memory group by group (else all resident)
    int warps_per_block = 0;
    int blocks = 0;             // persistent grid size
    std::size_t shared_bytes = 0;
    int registers = 0;          // per thread
    std::size_t local_bytes = 0;  // per thread (spills / stack)
    int pixels_per_warp_tile = 0;
};

class Model {
  public:
    // Copies the weights into the kernel's layout (nothing touches the GPU yet).
    Model(const Dims& dims, const ModelArrays& arrays);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // x (N, n_in), phi (N, m) -> y (N, C), all host memory; blocks until done.
    // Large N is processed in chunks through a per-process device workspace.
    void forward(const float* x, const float* phi, float* y, std::int64_t N);
    // Same on device pointers (current device), enqueued on `stream` (0: legacy default
    // stream); returns without waiting.
    void forward_device(const float* x, const float* phi, float* y, std::int64_t N, std::uintptr_t stream);
    // The kernel's tile code run on the CPU, one simulated warp at a time (test helper).
    void emulate(const float* x, const float* phi, float* y, std::int64_t N) const;
    // Launch configuration on the current device (uploads the weights if needed).
    KernelInfo info();

    const Dims& dims() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Number of CUDA devices; 0 (never an error) without a driver or a GPU.
int device_count();
// Name of device i (std::out_of_range for a bad index).
std::string device_name(int i);
// Test helper: force a kernel variant for models built from now on: "" (automatic),
// "chunked" (16-neuron passes and ping-pong hidden buffers even for d <= 64), "staged"
// (weights copied into shared memory one group of passes at a time), "chunked-staged".
void set_variant(const std::string& variant);
std::string variant();

}  // namespace hsi_cuda
