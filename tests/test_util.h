// Helpers shared by the test suites: a status matcher and scratch
// directories for files written by a test.
#ifndef WEFT_TESTS_TEST_UTIL_H_
#define WEFT_TESTS_TEST_UTIL_H_

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::test {

inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// A Status or StatusOr whose code is `code` and whose message contains
// `substring`.
MATCHER_P2(StatusIs, code, substring, "") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         absl::StrContains(status.message(), substring);
}

// A fresh directory under the system's temp directory, named `prefix` +
// a unique suffix; empty on failure (the test fails).
inline std::filesystem::path MakeScratchDir(const std::string& prefix) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << pattern;
    return {};
  }
  return pattern;
}

// The integer in environment variable `name`, or `fallback` when it is
// unset or empty (the fuzz and stress tests' WEFT_FUZZ_SEED and lengths).
inline int64_t EnvInt(const char* name, int64_t fallback) {
  const char* value = ::getenv(name);
  return value != nullptr && *value != '\0' ? ::atoll(value) : fallback;
}

// Where the default model and vocabularies are: WEFT_MODEL_DIR in the
// environment, else the compiled-in one (tools/gpu-check's runner sets it
// on a machine where the binaries were not built).
inline std::string ModelDir() {
  const char* dir = ::getenv("WEFT_MODEL_DIR");
  return dir != nullptr && *dir != '\0' ? dir : WEFT_MODEL_DIR;
}

inline void RemoveScratchDir(const std::filesystem::path& dir) {
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace weft::test

#endif  // WEFT_TESTS_TEST_UTIL_H_
