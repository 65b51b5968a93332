// oodscope's bridge to libtorch's AOTInductor package loader (torch::inductor::AOTIModelPackageLoader),
// which tch has no binding for. Plain C functions over opaque handles; tensors cross as `at::Tensor*`
// (torch-sys's C_tensor), which tch owns with Tensor::from_ptr. No C++ exception crosses into Rust:
// each is caught here and returned as a malloc'd message (freed with oodscope_aoti_free_string).

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, s.c_str(), s.size() + 1);
  }
  return out;
}

void set_error(char** error, const char* what) {
  if (error != nullptr) {
    *error = copy_string(what == nullptr ? "unknown C++ exception" : what);
  }
}

}  // namespace

extern "C" {

// The package's metadata value for `key` ("AOTI_DEVICE_KEY": "cpu", "cuda"), read without loading its
// code; an empty string when the key is absent. Null on failure, with *error set.
char* oodscope_aoti_metadata(const char* path, const char* key, char** error) {
  try {
    auto metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
    auto found = metadata.find(key);
    return copy_string(found == metadata.end() ? std::string() : found->second);
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, nullptr);
  }
  return nullptr;
}

// Loads the package's model "model" (device_index: the CUDA device, or -1 for the package's
// default). Null on failure, with *error set.
void* oodscope_aoti_load(const char* path, int device_index, char** error) {
  try {
    return new torch::inductor::AOTIModelPackageLoader(
        path, "model", /*run_single_threaded=*/false, /*num_runners=*/1,
        static_cast<c10::DeviceIndex>(device_index));
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, nullptr);
  }
  return nullptr;
}

// Runs the model on one input. Writes up to `capacity` new tensors into `outputs` (each to be
// freed by its owner) and returns how many the model gave; -1 on failure, with *error set. When
// the model gives more than `capacity`, none is written and the count is returned.
long long oodscope_aoti_run(void* handle, const at::Tensor* input, at::Tensor** outputs, long long capacity,
                            char** error) {
  try {
    auto* loader = static_cast<torch::inductor::AOTIModelPackageLoader*>(handle);
    std::vector<at::Tensor> result = loader->run({*input});
    auto count = static_cast<long long>(result.size());
    if (count <= capacity) {
      for (long long i = 0; i < count; ++i) {
        outputs[i] = new at::Tensor(std::move(result[i]));
      }
    }
    return count;
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, nullptr);
  }
  return -1;
}

void oodscope_aoti_free(void* handle) {
  try {
    delete static_cast<torch::inductor::AOTIModelPackageLoader*>(handle);
  } catch (...) {
  }
}

void oodscope_aoti_free_string(char* s) { std::free(s); }

}  // extern "C"
