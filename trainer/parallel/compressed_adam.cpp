#include "parallel/compressed_adam.hpp"

#include "optim/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dtb::par {
namespace {

std::unique_ptr<coll::Codec> quantizer(const StrategySettings& s) {
  if (s.name == "onebit_adam") return coll::make_onebit_codec();
  if (s.name == "quantized_adam") return coll::make_kbit_codec(s.bits, 512);
  throw std::logic_error("CompressedAdam: strategy " + s.name);
}

}  // namespace

std::vector<coll::Range> tensor_units(const std::vector<ShardRun>& runs) {
  std::vector<ShardRun> sorted = runs;
  std::sort(sorted.begin(), sorted.end(), [](const ShardRun& a, const ShardRun& b) { return a.local < b.local; });
  std::vector<coll::Range> out;
  int tensor = -1;
  for (const ShardRun& r : sorted) {
    if (!out.empty() && r.tensor == tensor && out.back().end() == r.local) out.back().count += r.len;
    else out.push_back({r.local, r.len});
    tensor = r.tensor;
  }
  return out;
}

CompressedAdam::CompressedAdam(const StrategySettings& s, coll::Communicator& dp, std::vector<coll::Range> units,
                               bool error_feedback)
    : s_(s), dp_(dp), units_(std::move(units)), q_(quantizer(s)) {
  errors_.error_feedback = error_feedback;
}

void CompressedAdam::update_momentum(float* m, const float* grads, const std::vector<UpdatePiece>& pieces,
                                     const OptimSettings& o, double grad_scale) const {
  const float b1 = float(o.beta1), scale = float(grad_scale);
  for (const UpdatePiece& p : pieces) {
    float* ms = m + p.state;
    const float* g = grads + p.offset;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < p.size; ++i) ms[i] = adam_first_moment(b1, ms[i], g[i] * scale);
  }
}

void CompressedAdam::communicate(std::span<float> m) { coll::compressed_server_allreduce(dp_, m, units_, *q_, errors_); }

// AdamW's step (optim/adamw.hpp) with the momentum given and the variance frozen.
void CompressedAdam::apply(float* params, const float* m, const float* v, const std::vector<UpdatePiece>& pieces,
                           const OptimSettings& o, double lr, int64_t t) const {
  const float m_corr = float(1.0 / (1.0 - std::pow(o.beta1, double(t))));
  const float v_corr = float(1.0 / (1.0 - std::pow(o.beta2, double(s_.freeze_step))));
  for (const UpdatePiece& p : pieces) {
    const AdamStep a{float(lr), p.decay ? float(lr * o.weight_decay) : 0.0f, m_corr, v_corr, float(o.eps)};
    float* w = params + p.offset;
    const float* ms = m + p.state;
    const float* vs = v + p.state;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < p.size; ++i) w[i] = adamw_step(w[i], ms[i], vs[i], a);
  }
}

size_t CompressedAdam::wire_bytes() const { return coll::compressed_server_wire_bytes(*q_, units_, dp_.size()); }

std::vector<float> CompressedAdam::worker_error(size_t n) const {
  return errors_.worker.empty() ? std::vector<float>(n, 0.0f) : errors_.worker;
}

std::vector<float> CompressedAdam::server_error(size_t n) const {
  return errors_.server.empty() ? std::vector<float>(n, 0.0f) : errors_.server;
}

void CompressedAdam::restore(std::vector<float> worker, std::vector<float> server) {
  if (worker.size() != server.size()) throw std::logic_error("CompressedAdam::restore: error buffers differ in size");
  // Outside the chunks this rank serves the server error is always zero in a run.
  std::vector<float> mine(server.size(), 0.0f);
  const int p = dp_.size(), r = dp_.rank();
  for (const coll::Range& u : units_) {
    const coll::Range c = coll::block_range(u.count, p, r);
    for (size_t i = u.offset + c.offset; i < u.offset + c.end(); ++i) mine[i] = server[i];
  }
  errors_.worker = std::move(worker);
  errors_.server = std::move(mine);
}

}  // namespace dtb::par
