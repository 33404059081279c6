// The HDF5 C API behind h5::File. Every HDF5 identifier lives in a Handle that closes it,
// HDF5's own error printing is switched off, and every failure becomes one exception
// naming the file: UsageError for what a user can cause (a missing, foreign or damaged
// file, a missing dataset or attribute, a wrong type), std::runtime_error for write failures.
#include "h5file.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace dtb::h5 {
namespace {

namespace fs = std::filesystem;

// Owns one HDF5 identifier and closes it with the matching H5?close function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  Closer close_;
};

// HDF5 prints its whole error stack to stderr by default; here each failure becomes one
// exception with one line instead. Called before any file is touched.
void silence_hdf5_errors() {
  static const bool silenced = [] {
    H5open();
    return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0;
  }();
  (void)silenced;
}

// Strong close: H5Fclose closes whatever objects are still open, so the file is really
// closed (and complete) before commit() renames it.
Handle file_access_props() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  return fapl;
}

// Writing "a/b/c" creates the groups a and a/b when they are missing.
Handle link_create_props() {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  H5Pset_char_encoding(lcpl.get(), H5T_CSET_UTF8);
  return lcpl;
}

// Variable-length UTF-8 strings: h5py reads them as str, and they have no length limit.
Handle utf8_string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

// In-memory and on-disk (explicitly little-endian, so files are the same on every host)
// HDF5 types of each element type that write/read are instantiated for.
struct TypePair {
  hid_t memory, file;
};
template <typename T>
TypePair types_of();
template <> TypePair types_of<uint8_t>() { return {H5T_NATIVE_UINT8, H5T_STD_U8LE}; }
template <> TypePair types_of<uint16_t>() { return {H5T_NATIVE_UINT16, H5T_STD_U16LE}; }
template <> TypePair types_of<uint32_t>() { return {H5T_NATIVE_UINT32, H5T_STD_U32LE}; }
template <> TypePair types_of<int32_t>() { return {H5T_NATIVE_INT32, H5T_STD_I32LE}; }
template <> TypePair types_of<int64_t>() { return {H5T_NATIVE_INT64, H5T_STD_I64LE}; }
template <> TypePair types_of<float>() { return {H5T_NATIVE_FLOAT, H5T_IEEE_F32LE}; }
template <> TypePair types_of<double>() { return {H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE}; }

DType classify(hid_t type) {
  const size_t bytes = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_STRING:
      return DType::kString;
    case H5T_FLOAT:
      return bytes == 4 ? DType::kF32 : bytes == 8 ? DType::kF64 : DType::kOther;
    case H5T_INTEGER:
      if (H5Tget_sign(type) == H5T_SGN_NONE) {
        return bytes == 1 ? DType::kU8 : bytes == 2 ? DType::kU16 : bytes == 4 ? DType::kU32 : DType::kOther;
      }
      return bytes == 4 ? DType::kI32 : bytes == 8 ? DType::kI64 : DType::kOther;
    default:
      return DType::kOther;
  }
}

std::string quoted(const std::string& name) { return "'" + name + "'"; }

// H5Lexists fails, rather than answering false, when an intermediate group is missing, so
// the path is checked one link at a time. "/" always exists.
bool link_path_exists(hid_t file, const std::string& name) {
  if (name.empty()) return false;
  std::string prefix = name.front() == '/' ? "/" : "";
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (end > start) {
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      prefix += name.substr(start, end - start);
      if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    start = end + 1;
  }
  return true;
}

Handle open_dataset(hid_t file, const std::string& path, const std::string& name) {
  if (!link_path_exists(file, name)) throw UsageError(path + ": no dataset " + quoted(name));
  Handle dataset(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) throw UsageError(path + ": " + quoted(name) + " is not a dataset");
  return dataset;
}

Handle open_object(hid_t file, const std::string& path, const std::string& object) {
  if (!link_path_exists(file, object)) throw UsageError(path + ": no object " + quoted(object));
  Handle handle(H5Oopen(file, object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!handle.valid()) throw UsageError(path + ": cannot open " + quoted(object));
  return handle;
}

Handle open_attribute(hid_t file, const std::string& path, const std::string& object,
                      const std::string& attr) {
  const Handle owner = open_object(file, path, object);
  if (H5Aexists(owner.get(), attr.c_str()) <= 0) {
    throw UsageError(path + ": no attribute " + quoted(attr) + " on " + quoted(object));
  }
  return Handle(H5Aopen(owner.get(), attr.c_str(), H5P_DEFAULT), H5Aclose);
}

// Replaces attribute ATTR of OBJECT with one scalar VALUE.
void write_attribute(hid_t file, const std::string& path, const std::string& object,
                     const std::string& attr, TypePair type, const void* value) {
  const Handle owner = open_object(file, path, object);
  if (H5Aexists(owner.get(), attr.c_str()) > 0) H5Adelete(owner.get(), attr.c_str());
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle handle(
      H5Acreate2(owner.get(), attr.c_str(), type.file, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  if (!handle.valid() || H5Awrite(handle.get(), type.memory, value) < 0) {
    throw std::runtime_error(path + ": cannot write attribute " + quoted(attr) + " on " +
                             quoted(object));
  }
}

// Reads one scalar string, variable- or fixed-length, through READ(memory_type, buffer)
// (H5Aread or H5Dread). WHAT names it in errors.
std::string read_scalar_string(hid_t stored_type, hid_t space, const std::string& what,
                               const std::function<herr_t(hid_t, void*)>& read) {
  if (H5Tget_class(stored_type) != H5T_STRING) throw UsageError(what + " is not a string");
  if (H5Sget_simple_extent_npoints(space) != 1) throw UsageError(what + " is not one string");
  if (H5Tis_variable_str(stored_type) > 0) {
    const Handle memory = utf8_string_type();
    char* text = nullptr;
    if (read(memory.get(), &text) < 0) throw UsageError(what + ": cannot read");
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t bytes = H5Tget_size(stored_type);
  const Handle memory(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(memory.get(), bytes);
  H5Tset_strpad(memory.get(), H5T_STR_NULLPAD);
  std::string value(bytes, '\0');
  if (read(memory.get(), value.data()) < 0) throw UsageError(what + ": cannot read");
  value.resize(std::strlen(value.c_str()));  // drop the padding
  return value;
}

// Reads one scalar number of an attribute as T; ALLOWED lists the stored classes accepted.
template <typename T>
T read_scalar_number(const Handle& attribute, const std::string& what,
                     std::initializer_list<H5T_class_t> allowed, const char* kind) {
  const Handle type(H5Aget_type(attribute.get()), H5Tclose);
  const Handle space(H5Aget_space(attribute.get()), H5Sclose);
  const H5T_class_t stored = H5Tget_class(type.get());
  if (std::find(allowed.begin(), allowed.end(), stored) == allowed.end()) {
    throw UsageError(what + " is not " + kind);
  }
  if (H5Sget_simple_extent_npoints(space.get()) != 1) throw UsageError(what + " is not one number");
  T value{};
  if (H5Aread(attribute.get(), types_of<T>().memory, &value) < 0) {
    throw UsageError(what + ": cannot read as " + kind);
  }
  return value;
}

std::string attribute_name(const std::string& path, const std::string& object,
                           const std::string& attr) {
  return path + ": attribute " + quoted(attr) + " on " + quoted(object);
}

// Closes the file; a temporary that was never committed is removed.
void close_and_discard(int64_t& id, const std::string& tmp_path, bool& uncommitted) {
  if (id >= 0) H5Fclose(std::exchange(id, -1));
  if (std::exchange(uncommitted, false)) {
    std::error_code ignored;
    fs::remove(tmp_path, ignored);
  }
}

}  // namespace

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kU8: return "uint8";
    case DType::kU16: return "uint16";
    case DType::kU32: return "uint32";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    case DType::kF32: return "float32";
    case DType::kF64: return "float64";
    case DType::kString: return "string";
    case DType::kOther: return "other";
  }
  return "other";
}

File File::create(const std::string& path) {
  silence_hdf5_errors();
  const fs::path parent = fs::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) fs::create_directories(parent, error);
  if (error) throw UsageError(path + ": cannot create folder " + parent.string() + ": " + error.message());

  File file;
  file.path_ = path;
  file.tmp_path_ = path + ".tmp-" + std::to_string(getpid());
  file.id_ = H5Fcreate(file.tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, file_access_props().get());
  if (file.id_ < 0) throw UsageError(path + ": cannot create " + file.tmp_path_ + " (is the folder writable?)");
  file.writable_ = true;
  return file;
}

File File::open_read(const std::string& path) {
  silence_hdf5_errors();
  std::error_code error;
  if (!fs::exists(path, error)) throw UsageError(path + ": no such file");
  if (fs::is_directory(path, error)) throw UsageError(path + ": is a folder, not an HDF5 file");
  if (FILE* probe = std::fopen(path.c_str(), "rb")) {
    std::fclose(probe);
  } else {
    throw UsageError(path + ": cannot read: " + std::strerror(errno));
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) throw UsageError(path + ": not an HDF5 file");

  File file;
  file.path_ = path;
  file.id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, file_access_props().get());
  if (file.id_ < 0) throw UsageError(path + ": cannot open (a damaged HDF5 file?)");
  return file;
}

File::File(File&& other) noexcept
    : id_(std::exchange(other.id_, -1)),
      path_(std::move(other.path_)),
      tmp_path_(std::move(other.tmp_path_)),
      writable_(std::exchange(other.writable_, false)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close_and_discard(id_, tmp_path_, writable_);
    id_ = std::exchange(other.id_, -1);
    path_ = std::move(other.path_);
    tmp_path_ = std::move(other.tmp_path_);
    writable_ = std::exchange(other.writable_, false);
  }
  return *this;
}

// writable_ stays true until the rename succeeded, so every failure below (and a File
// dropped without commit) ends with the destructor removing the temporary.
File::~File() { close_and_discard(id_, tmp_path_, writable_); }

void File::commit() {
  if (!writable_ || id_ < 0) throw std::logic_error(path_ + ": commit() on a file not open for writing");
  const bool flushed = H5Fflush(id_, H5F_SCOPE_GLOBAL) >= 0;
  const bool closed = H5Fclose(std::exchange(id_, -1)) >= 0;
  if (!flushed || !closed) throw std::runtime_error(path_ + ": cannot finish writing " + tmp_path_ + " (disk full?)");
  std::error_code error;
  fs::rename(tmp_path_, path_, error);
  if (error) throw UsageError(path_ + ": cannot replace it with " + tmp_path_ + ": " + error.message());
  writable_ = false;
}

template <typename T>
void File::write(const std::string& name, std::span<const T> data, std::vector<uint64_t> shape) {
  if (shape.empty()) shape = {data.size()};
  const uint64_t count = std::accumulate(shape.begin(), shape.end(), uint64_t{1}, std::multiplies<>());
  if (count != data.size()) {
    throw std::invalid_argument(path_ + ": dataset " + quoted(name) + " has a shape of " +
                                std::to_string(count) + " elements but " +
                                std::to_string(data.size()) + " values");
  }
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  const Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  const TypePair type = types_of<T>();
  // Contiguous layout: datasets are written once and read whole, so chunking buys nothing.
  const Handle dataset(H5Dcreate2(id_, name.c_str(), type.file, space.get(), link_create_props().get(),
                                  H5P_DEFAULT, H5P_DEFAULT),
                       H5Dclose);
  if (!dataset.valid()) throw std::runtime_error(path_ + ": cannot create dataset " + quoted(name));
  // HDF5 refuses a null buffer even for zero elements, and there is nothing to write then.
  if (!data.empty() &&
      H5Dwrite(dataset.get(), type.memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) {
    throw std::runtime_error(path_ + ": cannot write dataset " + quoted(name) + " (disk full?)");
  }
}

void File::write_string(const std::string& name, const std::string& text) {
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle type = utf8_string_type();
  const Handle dataset(H5Dcreate2(id_, name.c_str(), type.get(), space.get(), link_create_props().get(),
                                  H5P_DEFAULT, H5P_DEFAULT),
                       H5Dclose);
  const char* chars = text.c_str();
  if (!dataset.valid() || H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &chars) < 0) {
    throw std::runtime_error(path_ + ": cannot write string dataset " + quoted(name));
  }
}

template <typename T>
std::vector<T> File::read(const std::string& name) const {
  const Handle dataset = open_dataset(id_, path_, name);
  const Handle type(H5Dget_type(dataset.get()), H5Tclose);
  const H5T_class_t stored = H5Tget_class(type.get());
  if (stored != H5T_INTEGER && stored != H5T_FLOAT) {
    throw UsageError(path_ + ": dataset " + quoted(name) + " is not numeric (it holds " +
                     dtype_name(classify(type.get())) + ")");
  }
  const Handle space(H5Dget_space(dataset.get()), H5Sclose);
  std::vector<T> values(static_cast<size_t>(H5Sget_simple_extent_npoints(space.get())));
  if (!values.empty() && H5Dread(dataset.get(), types_of<T>().memory, H5S_ALL, H5S_ALL,
                                 H5P_DEFAULT, values.data()) < 0) {
    throw UsageError(path_ + ": cannot read dataset " + quoted(name) + " (a damaged file?)");
  }
  return values;
}

std::string File::read_string(const std::string& name) const {
  const Handle dataset = open_dataset(id_, path_, name);
  const Handle type(H5Dget_type(dataset.get()), H5Tclose);
  const Handle space(H5Dget_space(dataset.get()), H5Sclose);
  return read_scalar_string(type.get(), space.get(), path_ + ": dataset " + quoted(name),
                            [&](hid_t memory, void* buffer) {
                              return H5Dread(dataset.get(), memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
                            });
}

bool File::exists(const std::string& name) const { return link_path_exists(id_, name); }

std::vector<uint64_t> File::shape(const std::string& name) const {
  const Handle dataset = open_dataset(id_, path_, name);
  const Handle space(H5Dget_space(dataset.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

DType File::dtype(const std::string& name) const {
  const Handle dataset = open_dataset(id_, path_, name);
  const Handle type(H5Dget_type(dataset.get()), H5Tclose);
  return classify(type.get());
}

void File::set_attr(const std::string& object, const std::string& attr, const std::string& value) {
  const Handle type = utf8_string_type();
  const char* chars = value.c_str();
  write_attribute(id_, path_, object, attr, {type.get(), type.get()}, &chars);
}

void File::set_attr(const std::string& object, const std::string& attr, int64_t value) {
  write_attribute(id_, path_, object, attr, types_of<int64_t>(), &value);
}

void File::set_attr(const std::string& object, const std::string& attr, double value) {
  write_attribute(id_, path_, object, attr, types_of<double>(), &value);
}

bool File::has_attr(const std::string& object, const std::string& attr) const {
  return link_path_exists(id_, object) &&
         H5Aexists_by_name(id_, object.c_str(), attr.c_str(), H5P_DEFAULT) > 0;
}

std::string File::attr_string(const std::string& object, const std::string& attr) const {
  const Handle attribute = open_attribute(id_, path_, object, attr);
  const Handle type(H5Aget_type(attribute.get()), H5Tclose);
  const Handle space(H5Aget_space(attribute.get()), H5Sclose);
  return read_scalar_string(type.get(), space.get(), attribute_name(path_, object, attr),
                            [&](hid_t memory, void* buffer) { return H5Aread(attribute.get(), memory, buffer); });
}

int64_t File::attr_int(const std::string& object, const std::string& attr) const {
  return read_scalar_number<int64_t>(open_attribute(id_, path_, object, attr),
                                     attribute_name(path_, object, attr), {H5T_INTEGER}, "an integer");
}

double File::attr_double(const std::string& object, const std::string& attr) const {
  return read_scalar_number<double>(open_attribute(id_, path_, object, attr),
                                    attribute_name(path_, object, attr), {H5T_INTEGER, H5T_FLOAT},
                                    "a number");
}

// The element types datasets are written and read as.
template void File::write<uint8_t>(const std::string&, std::span<const uint8_t>, std::vector<uint64_t>);
template void File::write<uint16_t>(const std::string&, std::span<const uint16_t>, std::vector<uint64_t>);
template void File::write<uint32_t>(const std::string&, std::span<const uint32_t>, std::vector<uint64_t>);
template void File::write<int32_t>(const std::string&, std::span<const int32_t>, std::vector<uint64_t>);
template void File::write<int64_t>(const std::string&, std::span<const int64_t>, std::vector<uint64_t>);
template void File::write<float>(const std::string&, std::span<const float>, std::vector<uint64_t>);
template void File::write<double>(const std::string&, std::span<const double>, std::vector<uint64_t>);
template std::vector<uint8_t> File::read<uint8_t>(const std::string&) const;
template std::vector<uint16_t> File::read<uint16_t>(const std::string&) const;
template std::vector<uint32_t> File::read<uint32_t>(const std::string&) const;
template std::vector<int32_t> File::read<int32_t>(const std::string&) const;
template std::vector<int64_t> File::read<int64_t>(const std::string&) const;
template std::vector<float> File::read<float>(const std::string&) const;
template std::vector<double> File::read<double>(const std::string&) const;

}  // namespace dtb::h5
