// dtbench's HDF5 readers (checkpoint, token dataset, results) on structurally valid HDF5
// files whose attributes and datasets the input chooses: present or not, of the expected
// type or another, any values and lengths. The first byte picks the reader. HDF5's own
// parser is not fuzzed with raw bytes (see README.md in this folder).
#include "data/dataset.hpp"
#include "exp/result_file.hpp"
#include "fuzz_common.hpp"
#include "train/checkpoint.hpp"

namespace {

using dtb::fuzz::H5Entry;
using K = H5Entry::Kind;

const std::vector<H5Entry> kCheckpoint = {
    {K::kStringAttr, "/", "format", "dtbench-checkpoint"}, {K::kIntAttr, "/", "version", ""},
    {K::kIntAttr, "/", "step", ""}, {K::kIntAttr, "/", "seed", ""}, {K::kIntAttr, "/", "data_cursor", ""},
    {K::kIntAttr, "/", "model.vocab_size", ""}, {K::kIntAttr, "/", "model.n_ctx", ""},
    {K::kIntAttr, "/", "model.n_layer", ""}, {K::kIntAttr, "/", "model.n_head", ""},
    {K::kIntAttr, "/", "model.n_embd", ""}, {K::kIntAttr, "/", "model.tie_embeddings", ""},
    {K::kDataset, "params", "", ""}, {K::kDataset, "adam/m", "", ""}, {K::kDataset, "adam/v", "", ""},
    {K::kStringDataset, "config", "", ""}, {K::kIntAttr, "params", "crc32", ""},
    {K::kIntAttr, "adam/m", "crc32", ""}, {K::kIntAttr, "adam/v", "crc32", ""}, {K::kIntAttr, "config", "crc32", ""},
};

const std::vector<H5Entry> kTokens = {
    {K::kStringAttr, "/", "format", "dtbench-tokens"}, {K::kIntAttr, "/", "version", ""},
    {K::kIntAttr, "/", "vocab_size", ""}, {K::kDataset, "train/tokens", "", ""}, {K::kDataset, "val/tokens", "", ""},
};

const std::vector<H5Entry> kResult = {
    {K::kStringAttr, "/", "format", "dtbench-result"}, {K::kStringAttr, "/", "kind", "train"},
    {K::kStringDataset, "config", "", ""}, {K::kDoubleAttr, "/", "flops_per_token", ""},
    {K::kDoubleAttr, "/", "mfu_peak_gflops", ""}, {K::kDataset, "steps/step", "", ""},
    {K::kDataset, "steps/loss", "", ""}, {K::kDataset, "steps/time_ms", "", ""},
    {K::kDataset, "ranks/step_time", "", ""}, {K::kDataset, "ranks/forward", "", ""},
    {K::kDataset, "ranks/bytes_inter", "", ""}, {K::kStringAttr, "/", "op", "allreduce"},
    {K::kStringAttr, "/", "algo", "ring"}, {K::kStringAttr, "/", "codec", "none"},
    {K::kStringAttr, "/", "clock", "virtual"}, {K::kStringAttr, "/", "net_name", "x"},
    {K::kIntAttr, "/", "world_size", ""}, {K::kDataset, "rows/bytes", "", ""},
    {K::kDataset, "rows/time_us", "", ""}, {K::kDataset, "rows/busbw_GBps", "", ""},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int reader = in.ConsumeIntegralInRange<int>(0, 2);
  const std::string path = dtb::fuzz::temp_path("file.h5");
  try {
    if (reader == 0) {
      dtb::fuzz::build_h5(in, path, kCheckpoint);
      (void)dtb::load_checkpoint(path);
    } else if (reader == 1) {
      dtb::fuzz::build_h5(in, path, kTokens);
      const int T = in.ConsumeIntegralInRange<int>(1, 64);
      const dtb::TokenSplit split(path, in.ConsumeBool() ? "train" : "val", in.ConsumeIntegralInRange<int>(1, 70000), T);
      std::vector<int32_t> inputs(size_t(4) * T), targets(inputs.size());
      split.batch(in.ConsumeIntegral<uint64_t>(), in.ConsumeIntegral<uint64_t>(), 4, T, 0, 1, inputs.data(),
                  targets.data());
    } else {
      dtb::fuzz::build_h5(in, path, kResult);
      (void)dtb::exp::read_result(path);
    }
  } catch (const dtb::UsageError&) {
  }
  return 0;
}
