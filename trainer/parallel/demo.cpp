#include "parallel/demo.hpp"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace dtb::par {

// FFTW's r2r plans over one aligned work buffer: the full chunks as one batched plan, the
// shorter last chunk as its own. Planned once (the planner is not thread-safe), executed
// in place; FFTW_ESTIMATE picks the algorithm without timing it, so every run computes
// the same sums in the same order.
struct ChunkDct::Plans {
  float* buf = nullptr;
  fftwf_plan fwd_full = nullptr, inv_full = nullptr, fwd_tail = nullptr, inv_tail = nullptr;
  ~Plans() {
    for (fftwf_plan p : {fwd_full, inv_full, fwd_tail, inv_tail})
      if (p) fftwf_destroy_plan(p);
    if (buf) fftwf_free(buf);
  }
};

namespace {
fftwf_plan plan_chunks(float* buf, size_t chunk, size_t howmany, fftwf_r2r_kind kind) {
  const int len = int(chunk);
  return fftwf_plan_many_r2r(1, &len, int(howmany), buf, nullptr, 1, len, buf, nullptr, 1, len, &kind, FFTW_ESTIMATE);
}
}  // namespace

ChunkDct::ChunkDct(size_t n, size_t chunk) : n_(n), chunk_(chunk), plans_(std::make_unique<Plans>()) {
  if (chunk == 0) throw std::invalid_argument("ChunkDct: chunk must be positive");
  plans_->buf = static_cast<float*>(fftwf_malloc(std::max<size_t>(n, 1) * sizeof(float)));
  const size_t full = n / chunk, tail = n % chunk;
  if (full > 0) {
    plans_->fwd_full = plan_chunks(plans_->buf, chunk, full, FFTW_REDFT10);
    plans_->inv_full = plan_chunks(plans_->buf, chunk, full, FFTW_REDFT01);
  }
  if (tail > 0) {
    plans_->fwd_tail = plan_chunks(plans_->buf + full * chunk, tail, 1, FFTW_REDFT10);
    plans_->inv_tail = plan_chunks(plans_->buf + full * chunk, tail, 1, FFTW_REDFT01);
  }
}

ChunkDct::~ChunkDct() = default;

// REDFT10: Y_k = 2 sum_n x_n cos(pi k (2n + 1) / 2c); the orthonormal X_k = Y_k s_k / 2 with
// s_0 = sqrt(1 / c), s_k = sqrt(2 / c). REDFT01: x_n = Z_0 + 2 sum_{k>0} Z_k cos(...), so
// the orthonormal inverse takes Z_0 = s_0 X_0, Z_k = s_k X_k / 2.
void ChunkDct::run(bool forward, std::span<const float> in, std::span<float> out) {
  if (in.size() != n_ || out.size() != n_) throw std::logic_error("ChunkDct: buffer of the wrong size");
  float* buf = plans_->buf;
  auto scale = [&](size_t c, float* x, bool before) {
    const float s0 = float(std::sqrt(1.0 / double(c))), sk = float(std::sqrt(2.0 / double(c)));
    if (forward && !before) {
      x[0] *= s0 * 0.5f;
      for (size_t k = 1; k < c; ++k) x[k] *= sk * 0.5f;
    } else if (!forward && before) {
      x[0] *= s0;
      for (size_t k = 1; k < c; ++k) x[k] *= sk * 0.5f;
    }
  };
  std::copy(in.begin(), in.end(), buf);
  const size_t full = n_ / chunk_, tail = n_ % chunk_;
  for (size_t i = 0; i < full; ++i) scale(chunk_, buf + i * chunk_, true);
  if (tail) scale(tail, buf + full * chunk_, true);
  if (full) fftwf_execute(forward ? plans_->fwd_full : plans_->inv_full);
  if (tail) fftwf_execute(forward ? plans_->fwd_tail : plans_->inv_tail);
  for (size_t i = 0; i < full; ++i) scale(chunk_, buf + i * chunk_, false);
  if (tail) scale(tail, buf + full * chunk_, false);
  std::copy(buf, buf + n_, out.begin());
}

void ChunkDct::forward(std::span<const float> in, std::span<float> out) { run(true, in, out); }
void ChunkDct::inverse(std::span<const float> in, std::span<float> out) { run(false, in, out); }

double demo_payload_bytes(double n, int chunk, int k) {
  const double full = std::floor(n / chunk), tail = n - full * chunk;
  return 8.0 * (full * k + std::min(tail, double(k)));
}

namespace {
// The chunks of a buffer of N: [offset, offset + len), and k of each.
template <typename F>
void for_chunks(size_t n, size_t chunk, size_t k, F&& f) {
  for (size_t off = 0; off < n; off += chunk) {
    const size_t len = std::min(chunk, n - off);
    f(off, len, std::min(k, len));
  }
}
}  // namespace

DeMo::DeMo(const StrategySettings& s, coll::Communicator& dp, size_t n, bool error_feedback)
    : dp_(dp),
      n_(n),
      chunk_(size_t(s.chunk)),
      k_(size_t(s.topk)),
      payload_(0),
      decay_(s.momentum_decay),
      error_feedback_(error_feedback),
      dct_(n, size_t(s.chunk)),
      delta_(n, 0.0f),
      coef_(n),
      sparse_(n),
      back_(n) {
  for_chunks(n_, chunk_, k_, [&](size_t, size_t, size_t k) { payload_ += 2 * k; });
}

void DeMo::encode(std::span<const float> grads, float clip, float lr, std::span<float> out) {
  if (grads.size() != n_ || out.size() != payload_) throw std::logic_error("DeMo::encode: buffer of the wrong size");
  const float beta = float(decay_);
  for (size_t i = 0; i < n_; ++i) delta_[i] = delta_[i] * beta + lr * (grads[i] * clip);
  dct_.forward(delta_, coef_);
  std::fill(sparse_.begin(), sparse_.end(), 0.0f);
  size_t at = 0;
  std::vector<uint32_t> order;
  for_chunks(n_, chunk_, k_, [&](size_t off, size_t len, size_t k) {
    order.resize(len);
    std::iota(order.begin(), order.end(), 0u);
    const float* c = coef_.data() + off;
    std::partial_sort(order.begin(), order.begin() + ptrdiff_t(k), order.end(), [&](uint32_t a, uint32_t b) {
      const float fa = std::fabs(c[a]), fb = std::fabs(c[b]);
      return fa != fb ? fa > fb : a < b;
    });
    std::sort(order.begin(), order.begin() + ptrdiff_t(k));
    for (size_t j = 0; j < k; ++j) {
      out[at + j] = float(order[j]);
      out[at + k + j] = c[order[j]];
      sparse_[off + order[j]] = c[order[j]];
    }
    at += 2 * k;
  });
  if (!error_feedback_) return;
  dct_.inverse(sparse_, back_);
  for (size_t i = 0; i < n_; ++i) delta_[i] -= back_[i];
}

std::vector<float> DeMo::decode(std::span<const float> gathered, int p) {
  if (gathered.size() != payload_ * size_t(p)) throw std::logic_error("DeMo::decode: buffer of the wrong size");
  std::fill(sparse_.begin(), sparse_.end(), 0.0f);
  std::vector<uint16_t> count(n_, 0);
  for (int w = 0; w < p; ++w) {
    size_t at = payload_ * size_t(w);
    for_chunks(n_, chunk_, k_, [&](size_t off, size_t, size_t k) {
      for (size_t j = 0; j < k; ++j) {
        const size_t i = off + size_t(gathered[at + j]);
        sparse_[i] += gathered[at + k + j];
        ++count[i];
      }
      at += 2 * k;
    });
  }
  for (size_t i = 0; i < n_; ++i)
    if (count[i] > 1) sparse_[i] /= float(count[i]);
  std::vector<float> g(n_);
  dct_.inverse(sparse_, g);
  return g;
}

void DeMo::restore(std::vector<float> momentum) {
  if (momentum.size() != n_) throw std::logic_error("DeMo::restore: state of the wrong size");
  delta_ = std::move(momentum);
}

}  // namespace dtb::par
