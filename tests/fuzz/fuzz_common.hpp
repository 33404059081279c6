#pragma once
// Helpers of the libFuzzer targets (tests/fuzz/README.md): the input as a file (every reader
// under test takes a path), and a structurally valid HDF5 file whose attributes and
// datasets come from the input, for the readers of dtbench's own HDF5 files.
#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "h5file.hpp"

namespace dtb::fuzz {

// A file of this process's own in the temporary folder, rewritten for every input.
inline std::string temp_path(const std::string& name) {
  return "/tmp/dtb-fuzz-" + std::to_string(getpid()) + "-" + name;
}

inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// What a reader expects at one place of a file; the builder gives it, or something else.
struct H5Entry {
  enum Kind { kStringAttr, kIntAttr, kDoubleAttr, kDataset, kStringDataset } kind;
  std::string object;  // "/" or a dataset path, for attributes; the dataset's path otherwise
  std::string attr;    // for attributes
  std::string usual;   // a string attribute's expected value (e.g. the format name)
};

// A numeric dataset of a type and length the input picks (at most 512 elements).
inline void write_fuzzed_dataset(FuzzedDataProvider& in, h5::File& f, const std::string& name) {
  const size_t n = in.ConsumeIntegralInRange<size_t>(0, 512);
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: { std::vector<uint16_t> v(n); for (auto& x : v) x = in.ConsumeIntegral<uint16_t>(); f.write<uint16_t>(name, v); break; }
    case 1: { std::vector<uint32_t> v(n); for (auto& x : v) x = in.ConsumeIntegral<uint32_t>(); f.write<uint32_t>(name, v); break; }
    case 2: { std::vector<int64_t> v(n); for (auto& x : v) x = in.ConsumeIntegral<int64_t>(); f.write<int64_t>(name, v); break; }
    case 3: { std::vector<double> v(n); for (auto& x : v) x = in.ConsumeFloatingPoint<double>(); f.write<double>(name, v); break; }
    case 4: { std::vector<int32_t> v(n); for (auto& x : v) x = in.ConsumeIntegral<int32_t>(); f.write<int32_t>(name, v); break; }
    default: { std::vector<float> v(n); for (auto& x : v) x = in.ConsumeFloatingPoint<float>(); f.write<float>(name, v); break; }
  }
}

// Writes PATH with each entry present or not, of its usual type or another of its sort
// (attribute or dataset), with values from the input. List datasets before the attributes
// that sit on them.
inline void build_h5(FuzzedDataProvider& in, const std::string& path, const std::vector<H5Entry>& entries) {
  h5::File f = h5::File::create(path);
  for (const H5Entry& e : entries) {
    if (!in.ConsumeBool()) continue;  // absent
    const bool is_attr = e.kind <= H5Entry::kDoubleAttr;
    H5Entry::Kind kind = e.kind;
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0)  // another type of the same sort
      kind = is_attr ? H5Entry::Kind(in.ConsumeIntegralInRange<int>(0, 2))
                     : H5Entry::Kind(in.ConsumeIntegralInRange<int>(3, 4));
    if (is_attr && !f.exists(e.object) && e.object != "/") continue;  // nothing to hang it on
    if (!is_attr && f.exists(e.object)) continue;
    switch (kind) {
      case H5Entry::kStringAttr:
        f.set_attr(e.object, e.attr, in.ConsumeBool() ? e.usual : in.ConsumeRandomLengthString(64));
        break;
      case H5Entry::kIntAttr:
        f.set_attr(e.object, e.attr,
                   in.ConsumeBool() ? int64_t(in.ConsumeIntegralInRange<int>(-2, 300)) : in.ConsumeIntegral<int64_t>());
        break;
      case H5Entry::kDoubleAttr: f.set_attr(e.object, e.attr, in.ConsumeFloatingPoint<double>()); break;
      case H5Entry::kDataset: write_fuzzed_dataset(in, f, e.object); break;
      case H5Entry::kStringDataset: f.write_string(e.object, in.ConsumeRandomLengthString(256)); break;
    }
  }
  f.commit();
}

}  // namespace dtb::fuzz
