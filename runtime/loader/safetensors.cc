#include "runtime/loader/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace weft {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and used in place");

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

// Limits that no real model reaches; a file past them is corrupt or hostile.
// The 100 MB header cap is the reference implementation's.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
constexpr size_t kMaxRank = 8;
constexpr uint64_t kMaxDimension = uint64_t{1} << 40;
constexpr uint64_t kMaxElements = uint64_t{1} << 48;

struct FileTensor {
  HostTensor tensor;
  uint64_t begin = 0;  // into the data buffer
  uint64_t end = 0;
};

// Parses `text`, rejecting a key repeated within one object (nlohmann would
// silently keep one of them). A repeated top-level key of a file header is a
// duplicate tensor and is reported as one.
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text,
                                         const std::string& path,
                                         bool top_level_keys_are_tensors) {
  std::vector<absl::flat_hash_set<std::string>> open_objects;
  std::string duplicate;
  size_t duplicate_depth = 0;
  auto on_event = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                      nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Event::key && !open_objects.empty()) {
      std::string key = parsed.get<std::string>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) {
        duplicate = std::move(key);
        duplicate_depth = open_objects.size();
      }
    }
    return true;
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.begin(), text.end(), on_event);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: bad JSON in ", path, ": ", e.what()));
  }
  if (!duplicate.empty()) {
    const bool is_tensor = top_level_keys_are_tensors && duplicate_depth == 1;
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: ", path, ": duplicate ",
                     is_tensor ? "tensor" : "key", " '", duplicate, "'"));
  }
  return json;
}

absl::Status TensorError(const std::string& path, absl::string_view tensor,
                         absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(
      "safetensors: ", path, ": tensor '", tensor, "' ", problem));
}

// The dtype names of the safetensors format that weft reads.
bool DTypeFromName(absl::string_view name, DType* dtype) {
  if (name == "F32") *dtype = DType::kF32;
  else if (name == "F16") *dtype = DType::kF16;
  else if (name == "BF16") *dtype = DType::kBF16;
  else return false;
  return true;
}

absl::StatusOr<FileTensor> ParseTensorEntry(const std::string& path,
                                            const std::string& name,
                                            const nlohmann::json& entry,
                                            uint64_t buffer_size) {
  if (!entry.is_object()) return TensorError(path, name, "is not an object");
  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return TensorError(path, name, "has no string \"dtype\"");
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return TensorError(path, name, "has no \"shape\" array");
  }
  if (shape_it->size() > kMaxRank) {
    return TensorError(path, name,
                       absl::StrCat("has ", shape_it->size(), " dimensions"));
  }
  FileTensor out;
  out.tensor.name = name;
  uint64_t num_elements = 1;
  for (const nlohmann::json& dim : *shape_it) {
    // nlohmann types a non-negative integer literal as unsigned; a negative
    // one, a fraction or anything else fails here.
    if (!dim.is_number_unsigned() ||
        dim.get<uint64_t>() > kMaxDimension) {
      return TensorError(path, name,
                         absl::StrCat("has absurd dimension ", dim.dump()));
    }
    const uint64_t extent = dim.get<uint64_t>();
    if (extent != 0 && num_elements > kMaxElements / extent) {
      return TensorError(path, name, "has too many elements");
    }
    num_elements *= extent;
    out.tensor.shape.push_back(static_cast<int64_t>(extent));
  }

  const auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() ||
      offsets_it->size() != 2 || !(*offsets_it)[0].is_number_unsigned() ||
      !(*offsets_it)[1].is_number_unsigned()) {
    return TensorError(path, name,
                       "has no \"data_offsets\" pair of unsigned integers");
  }
  out.begin = (*offsets_it)[0].get<uint64_t>();
  out.end = (*offsets_it)[1].get<uint64_t>();
  if (out.begin > out.end || out.end > buffer_size) {
    return TensorError(
        path, name,
        absl::StrCat("has data_offsets [", out.begin, ", ", out.end,
                     "] outside the data buffer of ", buffer_size, " bytes"));
  }

  if (!DTypeFromName(dtype_name, &out.tensor.dtype)) {
    return absl::UnimplementedError(absl::StrCat(
        "safetensors: ", path, ": tensor '", name, "' has dtype ", dtype_name,
        "; weft supports F32, F16 and BF16"));
  }
  const uint64_t expected_bytes =
      num_elements * static_cast<uint64_t>(DTypeBlockBytes(out.tensor.dtype));
  if (out.end - out.begin != expected_bytes) {
    return TensorError(
        path, name,
        absl::StrCat("has ", out.end - out.begin, " bytes but its shape and ",
                     dtype_name, " need ", expected_bytes));
  }
  out.tensor.num_bytes = static_cast<size_t>(expected_bytes);
  return out;
}

// Every tensor of one file, ordered by position in its data buffer, with data
// pointers into `file`.
absl::StatusOr<std::vector<HostTensor>> ParseFile(const MappedFile& file) {
  const std::string& path = file.path();
  if (file.size() < sizeof(uint64_t)) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: ", path, " is ", file.size(),
                     " bytes, too short for the header length"));
  }
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, file.data(), sizeof(header_bytes));
  const uint64_t after_length = file.size() - sizeof(uint64_t);
  if (header_bytes > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: ", path, ": header length ", header_bytes,
                     " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
  }
  if (header_bytes > after_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors: ", path, ": header length ", header_bytes,
        " runs past the end of the file (", file.size(), " bytes)"));
  }
  const absl::string_view header_text(
      reinterpret_cast<const char*>(file.data()) + sizeof(uint64_t),
      header_bytes);
  auto header = ParseJson(header_text, path, /*top_level_keys_are_tensors=*/true);
  if (!header.ok()) return header.status();
  if (!header->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors: ", path, ": header is not a JSON object"));
  }

  const uint8_t* buffer = file.data() + sizeof(uint64_t) + header_bytes;
  const uint64_t buffer_size = after_length - header_bytes;
  std::vector<FileTensor> entries;
  for (const auto& [name, entry] : header->items()) {
    if (name == "__metadata__") {
      bool all_strings = entry.is_object();
      for (const auto& value : entry) all_strings &= value.is_string();
      if (!all_strings) {
        return absl::InvalidArgumentError(absl::StrCat(
            "safetensors: ", path,
            ": __metadata__ is not an object of strings"));
      }
      continue;
    }
    auto parsed = ParseTensorEntry(path, name, entry, buffer_size);
    if (!parsed.ok()) return parsed.status();
    entries.push_back(*std::move(parsed));
  }

  // The tensors must tile the buffer exactly, as the reference reader
  // demands: no byte belongs to two tensors or to none.
  std::sort(entries.begin(), entries.end(),
            [](const FileTensor& a, const FileTensor& b) {
              return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
            });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].begin < covered) {
      return TensorError(path, entries[i].tensor.name,
                         absl::StrCat("overlaps tensor '",
                                      entries[i - 1].tensor.name, "'"));
    }
    if (entries[i].begin > covered) {
      return TensorError(
          path, entries[i].tensor.name,
          absl::StrCat("starts at ", entries[i].begin, " leaving a hole after ",
                       covered, " bytes of the data buffer"));
    }
    covered = entries[i].end;
  }
  if (covered != buffer_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors: ", path, ": tensors cover ", covered, " of the ",
        buffer_size, " bytes of the data buffer"));
  }

  std::vector<HostTensor> tensors;
  tensors.reserve(entries.size());
  for (FileTensor& entry : entries) {
    entry.tensor.data = buffer + entry.begin;
    tensors.push_back(std::move(entry.tensor));
  }
  return tensors;
}

// A shard must be a file in the model directory, never a path out of it.
bool IsPlainFileName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos &&
         name.find('\\') == absl::string_view::npos &&
         name.find('\0') == absl::string_view::npos;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsModel>> SafetensorsModel::Open(
    const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  std::error_code error;
  std::unique_ptr<SafetensorsModel> model(new SafetensorsModel());
  absl::Status status;
  if (fs::exists(dir / kSingleFile, error)) {
    status = model->OpenSingle((dir / kSingleFile).string());
  } else if (fs::exists(dir / kIndexFile, error)) {
    status = model->OpenSharded(model_dir, (dir / kIndexFile).string());
  } else if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat(
        "safetensors: model directory '", model_dir, "' does not exist"));
  } else {
    return absl::NotFoundError(absl::StrCat(
        "safetensors: '", model_dir, "' holds neither ", kSingleFile, " nor ",
        kIndexFile));
  }
  if (!status.ok()) return status;
  return model;
}

absl::Status SafetensorsModel::OpenSingle(const std::string& path) {
  auto file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  auto tensors = ParseFile(**file);
  if (!tensors.ok()) return tensors.status();
  files_.push_back(*std::move(file));
  for (HostTensor& tensor : *tensors) {
    if (auto s = AddTensor(std::move(tensor)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SafetensorsModel::OpenSharded(const std::string& model_dir,
                                           const std::string& index_path) {
  auto index_file = MappedFile::Open(index_path);
  if (!index_file.ok()) return index_file.status();
  if ((*index_file)->size() > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: ", index_path, " is larger than ",
                     kMaxHeaderBytes, " bytes"));
  }
  const absl::string_view index_text(
      reinterpret_cast<const char*>((*index_file)->data()),
      (*index_file)->size());
  auto index = ParseJson(index_text, index_path,
                         /*top_level_keys_are_tensors=*/false);
  if (!index.ok()) return index.status();
  const auto weight_map = index->is_object() ? index->find("weight_map")
                                             : index->end();
  if (weight_map == index->end() || !weight_map->is_object() ||
      weight_map->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors: ", index_path,
        " has no \"weight_map\" object naming tensors"));
  }

  // Shard file name → the tensors the index assigns to it; shards in name
  // order so that tensor order does not depend on hashing.
  std::map<std::string, absl::flat_hash_set<std::string>> shards;
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string() ||
        !IsPlainFileName(shard.get_ref<const std::string&>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors: ", index_path, ": tensor '", tensor, "' maps to ",
          shard.dump(), ", not a file name in the model directory"));
    }
    shards[shard.get<std::string>()].insert(tensor);
  }

  for (const auto& [shard, listed] : shards) {
    const std::string shard_path =
        (std::filesystem::path(model_dir) / shard).string();
    auto file = MappedFile::Open(shard_path);
    if (!file.ok()) {
      return absl::Status(
          file.status().code(),
          absl::StrCat("safetensors: shard '", shard, "' named by ",
                       index_path, ": ", file.status().message()));
    }
    auto tensors = ParseFile(**file);
    if (!tensors.ok()) return tensors.status();
    size_t found = 0;
    absl::flat_hash_set<std::string> present;
    for (HostTensor& tensor : *tensors) {
      present.insert(tensor.name);
      if (!listed.contains(tensor.name)) continue;
      ++found;
      if (auto s = AddTensor(std::move(tensor)); !s.ok()) return s;
    }
    if (found != listed.size()) {
      // Name one missing tensor (the smallest, for a stable message).
      std::string missing;
      for (const std::string& name : listed) {
        if (!present.contains(name) && (missing.empty() || name < missing)) {
          missing = name;
        }
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors: tensor '", missing, "' is listed in ", index_path,
          " for shard ", shard_path, ", which does not hold it"));
    }
    files_.push_back(*std::move(file));
  }
  return absl::OkStatus();
}

absl::Status SafetensorsModel::AddTensor(HostTensor tensor) {
  if (!tensor_index_.emplace(tensor.name, tensors_.size()).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: duplicate tensor '", tensor.name, "'"));
  }
  tensors_.push_back(std::move(tensor));
  return absl::OkStatus();
}

const HostTensor* SafetensorsModel::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace weft
