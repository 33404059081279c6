#pragma once
// A small RAII layer over the HDF5 C API, for datasets, checkpoints and results.
// Writing is atomic: create() writes to a temporary name beside the target and commit()
// flushes, closes and renames it; a File dropped without commit() removes its temporary.
// Reading a missing, unreadable or foreign file throws dtb::UsageError naming the file.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "usage_error.hpp"

namespace dtb::h5 {

enum class DType { kU8, kU16, kU32, kI32, kI64, kF32, kF64, kString, kOther };
const char* dtype_name(DType t);

class File {
 public:
  // Opens PATH.tmp-<pid> for writing; parent folders are created.
  static File create(const std::string& path);
  static File open_read(const std::string& path);
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  // Flush, close and rename the temporary to the final path (write mode only).
  void commit();
  const std::string& path() const { return path_; }

  // Datasets. NAME is a path like "train/tokens"; missing groups are created.
  // SHAPE defaults to 1-D of data.size(); its product must equal data.size().
  template <typename T>
  void write(const std::string& name, std::span<const T> data, std::vector<uint64_t> shape = {});
  void write_string(const std::string& name, const std::string& text);  // scalar string dataset
  // Reads a whole dataset, converting to T; throws UsageError if missing or not numeric.
  template <typename T>
  std::vector<T> read(const std::string& name) const;
  std::string read_string(const std::string& name) const;
  bool exists(const std::string& name) const;  // dataset or group
  std::vector<uint64_t> shape(const std::string& name) const;
  DType dtype(const std::string& name) const;

  // Attributes on an object ("/" for the file root, or a group or dataset path).
  void set_attr(const std::string& object, const std::string& attr, const std::string& value);
  void set_attr(const std::string& object, const std::string& attr, int64_t value);
  void set_attr(const std::string& object, const std::string& attr, double value);
  bool has_attr(const std::string& object, const std::string& attr) const;
  std::string attr_string(const std::string& object, const std::string& attr) const;
  int64_t attr_int(const std::string& object, const std::string& attr) const;
  double attr_double(const std::string& object, const std::string& attr) const;

 private:
  File() = default;
  int64_t id_ = -1;  // hid_t
  std::string path_, tmp_path_;
  bool writable_ = false;
};

}  // namespace dtb::h5
