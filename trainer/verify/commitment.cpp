#include "verify/commitment.hpp"

#include <cstdio>
#include <filesystem>

#include "h5file.hpp"

namespace dtb::verify {
namespace {

constexpr int64_t kVersion = 1;

std::vector<uint8_t> flatten(const std::vector<Digest>& ds) {
  std::vector<uint8_t> out;
  for (const Digest& d : ds) out.insert(out.end(), d.begin(), d.end());
  return out;
}

void write_digests(h5::File& f, const std::string& name, const std::vector<Digest>& ds) {
  f.write<uint8_t>(name, flatten(ds), {ds.size(), sizeof(Digest)});
}

std::vector<Digest> read_digests(const h5::File& f, const std::string& name) {
  const std::vector<uint8_t> flat = f.read<uint8_t>(name);
  if (flat.size() % sizeof(Digest) != 0) throw UsageError(f.path() + ": " + name + " is not a list of 32-byte digests");
  std::vector<Digest> out(flat.size() / sizeof(Digest));
  for (size_t i = 0; i < out.size(); ++i) std::copy_n(flat.begin() + ptrdiff_t(i * sizeof(Digest)), sizeof(Digest), out[i].begin());
  return out;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += n + "\n";
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) out.push_back(text.substr(start, nl - start));
  return out;
}

}  // namespace

Digest state_hash(const CheckpointState& ck, const Digest& config_digest) {
  return Hasher("dtbench-state-v1")
      .digest(config_digest)
      .u64(uint64_t(ck.step))
      .u64(ck.data_cursor)
      .u64(ck.seed)
      .u64(ck.params.size())
      .floats(ck.params)
      .floats(ck.adam_m)
      .floats(ck.adam_v)
      .finish();
}

Digest step_leaf(int64_t step, const Digest& state, const Digest& trace_root) {
  return Hasher("dtbench-step-v1").u64(uint64_t(step)).digest(state).digest(trace_root).finish();
}

Digest op_leaf(int64_t step, size_t index, const std::string& name, std::span<const std::byte> data) {
  return Hasher("dtbench-op-v1").u64(uint64_t(step)).u64(index).text(name).bytes(data).finish();
}

std::string segment_checkpoint_path(const std::string& dir, int64_t step) {
  char name[40];
  std::snprintf(name, sizeof name, "seg-step%06lld.h5", static_cast<long long>(step));
  return (std::filesystem::path(dir) / name).string();
}

size_t Commitment::bytes_per_step() const {
  return 2 * sizeof(Digest) + (trace ? sizeof(Digest) * (1 + op_names.size()) : 0);
}

void Commitment::write(h5::File& f) const {
  write_digests(f, "verify/state", state);
  write_digests(f, "verify/leaves", leaves);
  f.write<int64_t>("verify/checkpoint_steps", checkpoint_steps);
  f.write<double>("verify/hash_seconds", hash_seconds);
  // The group exists once a dataset is in it; then its attributes.
  f.set_attr("verify", "version", kVersion);
  f.set_attr("verify", "hash", std::string("blake2b-256 (libsodium crypto_generichash)"));
  f.set_attr("verify", "segment", int64_t(segment));
  f.set_attr("verify", "threads", int64_t(threads));
  f.set_attr("verify", "trace", int64_t(trace));
  f.set_attr("verify", "mode", mode);
  f.set_attr("verify", "config_digest", hex(config_digest));
  f.set_attr("verify", "first_step", first_step);
  f.set_attr("verify", "root", hex(root()));
  f.set_attr("verify", "checkpoint_dir", checkpoint_dir);
  f.set_attr("verify", "bytes_per_step", int64_t(bytes_per_step()));
  if (!trace) return;
  write_digests(f, "verify/trace_root", trace_root);
  std::vector<Digest> all;
  for (size_t i = 1; i < ops.size(); ++i) all.insert(all.end(), ops[i].begin(), ops[i].end());
  f.write<uint8_t>("verify/ops", flatten(all), {ops.size() - 1, op_names.size(), sizeof(Digest)});
  f.write_string("verify/op_names", join(op_names));
}

Commitment Commitment::read(const std::string& path) {
  const h5::File f = h5::File::open_read(path);
  if (!f.exists("verify") || !f.has_attr("verify", "version"))
    throw UsageError(path + ": no commitments (the run had verify.segment = 0)");
  if (f.attr_int("verify", "version") != kVersion)
    throw UsageError(path + ": commitment version " + std::to_string(f.attr_int("verify", "version")) +
                     " is not supported (this dtbench reads version " + std::to_string(kVersion) + ")");
  Commitment c;
  c.segment = int(f.attr_int("verify", "segment"));
  c.threads = int(f.attr_int("verify", "threads"));
  c.trace = f.attr_int("verify", "trace") != 0;
  c.mode = f.attr_string("verify", "mode");
  c.config_digest = from_hex(f.attr_string("verify", "config_digest"));
  c.first_step = f.attr_int("verify", "first_step");
  c.checkpoint_dir = f.attr_string("verify", "checkpoint_dir");
  c.state = read_digests(f, "verify/state");
  c.leaves = read_digests(f, "verify/leaves");
  c.checkpoint_steps = f.read<int64_t>("verify/checkpoint_steps");
  c.hash_seconds = f.read<double>("verify/hash_seconds");
  if (c.segment < 1 || c.state.empty() || c.leaves.size() != c.state.size())
    throw UsageError(path + ": malformed commitments (verify/state and verify/leaves must have one digest per step)");
  if (hex(c.root()) != f.attr_string("verify", "root"))
    throw UsageError(path + ": verify/leaves do not hash to the committed root");
  c.trace_root.assign(c.state.size(), Digest{});
  c.ops.assign(c.state.size(), {});
  if (c.trace) {
    c.trace_root = read_digests(f, "verify/trace_root");
    c.op_names = split_lines(f.read_string("verify/op_names"));
    const std::vector<Digest> all = read_digests(f, "verify/ops");
    if (c.trace_root.size() != c.state.size() || all.size() != (c.state.size() - 1) * c.op_names.size())
      throw UsageError(path + ": malformed verify/ops or verify/trace_root");
    for (size_t i = 1; i < c.state.size(); ++i)
      c.ops[i].assign(all.begin() + ptrdiff_t((i - 1) * c.op_names.size()), all.begin() + ptrdiff_t(i * c.op_names.size()));
  }
  return c;
}

}  // namespace dtb::verify
