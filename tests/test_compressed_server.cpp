// The compressed server of 1-bit Adam and QuantizedAdam (collectives/compressed_server.hpp)
// against small hand-written references: the two quantizers on hand-computed cases and on
// a few hundred seeded values, then three workers' two-sided error feedback over three
// calls, output and both error buffers exactly. fp16 in the references is the compiler's
// _Float16 (IEEE, round to nearest even), not the code's own conversion.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "compressed_server.hpp"

using namespace dtb;
using coll::Range;

namespace {

std::vector<float> roundtrip(const coll::Codec& q, const std::vector<float>& x) {
  std::vector<std::byte> wire(q.encoded_bytes(x.size()));
  q.encode(x, wire, 0);
  std::vector<float> out(x.size());
  q.decode(wire, out, coll::DecodeMode::kAssign);
  return out;
}

std::vector<float> seeded(size_t n, uint32_t seed, float sigma) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> x(n);
  for (float& v : x) v = d(gen);
  return x;
}

// 1-bit Adam's quantizer, written out: s = ||y||_2 / sqrt(n); +s where y >= 0, else -s.
std::vector<float> ref_onebit(const std::vector<float>& y) {
  double sq = 0;
  for (float v : y) sq += double(v) * double(v);
  const float s = float(std::sqrt(sq) / std::sqrt(double(y.size())));
  std::vector<float> out;
  for (float v : y) out.push_back(v >= 0 ? s : -s);
  return out;
}

// AQ-SGD's, per 512-bucket: s = fp16(max|y|), q = clip(round(y / fp16(s + 1e-6) 2^f)), q / 2^f s.
std::vector<float> ref_kbit(const std::vector<float>& y, int bits) {
  const float h = float(1 << (bits - 1));
  std::vector<float> out;
  for (size_t b0 = 0; b0 < y.size(); b0 += 512) {
    const size_t end = std::min(y.size(), b0 + 512);
    float m = 0;
    for (size_t i = b0; i < end; ++i) m = std::max(m, std::fabs(y[i]));
    const float s = float(_Float16(m)), d = float(_Float16(s + 1e-6f));
    for (size_t i = b0; i < end; ++i) {
      const float q = std::clamp(std::nearbyint(y[i] / d * h), -h, h - 1);
      out.push_back(q / h * s);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("compressed server: 1-bit quantizer, hand-computed and against the reference", "[cadam]") {
  const auto q = coll::make_onebit_codec();
  // ||(3, -4)|| / sqrt(2) = 5 / sqrt(2); zero and -0 decode to +s (DeepSpeed's sign().add_(1).bool()).
  const float s = float(5.0 / std::sqrt(2.0));
  CHECK(roundtrip(*q, {3.0f, -4.0f}) == std::vector<float>{s, -s});
  const float h = float(std::sqrt(2.0) / 2.0);  // ||(0, 0, -1, 1)|| / sqrt(4)
  CHECK(roundtrip(*q, {0.0f, -0.0f, -1.0f, 1.0f}) == std::vector<float>{h, h, -h, h});
  const std::vector<float> x = seeded(300, 7, 0.1f);
  CHECK(q->encoded_bytes(300) == 4 + 38);  // one scale, 300 bits
  CHECK(roundtrip(*q, x) == ref_onebit(x));
  CHECK(q->encoded_bytes(0) == 0);
}

TEST_CASE("compressed server: k-bit bucket quantizer, hand-computed and against the reference", "[cadam]") {
  // 2 bits: s = 1, d = fp16(1 + 1e-6) = 1, q = clip(round(2 y), -2, 1) (0.5 -> 0: half to even).
  CHECK(roundtrip(*coll::make_kbit_codec(2), {1.0f, -0.5f, 0.25f, 0.0f, -1.0f}) ==
        std::vector<float>{0.5f, -0.5f, 0.0f, 0.0f, -1.0f});
  // 8 bits: s = fp16(0.3) = 0.2999267578125, y = 0.15 -> round(0.15 / s 128) = 64 -> 0.5 s.
  const float s8 = float(_Float16(0.3f));
  CHECK(roundtrip(*coll::make_kbit_codec(8), {0.15f, 0.3f})[0] == 0.5f * s8);
  const std::vector<float> x = seeded(700, 11, 0.02f);  // a full bucket and a 188 tail
  for (int bits : {2, 4, 8}) {
    INFO("bits " << bits);
    const auto q = coll::make_kbit_codec(bits);
    CHECK(q->encoded_bytes(700) == 2 + (512 * size_t(bits) + 7) / 8 + 2 + (188 * size_t(bits) + 7) / 8);
    CHECK(roundtrip(*q, x) == ref_kbit(x, bits));
  }
}

namespace {

// The whole two-sided scheme written out for P workers: worker error per worker over the
// buffer, server error per server over its chunks.
struct RefServer {
  int p;
  std::vector<Range> units;
  std::function<std::vector<float>(const std::vector<float>&)> quantize;  // encode + decode of one chunk
  std::vector<std::vector<float>> ew, es;
  bool ef = true;

  std::vector<float> call(const std::vector<std::vector<float>>& x) {
    const size_t n = x[0].size();
    if (ew.empty()) ew.assign(size_t(p), std::vector<float>(n, 0.0f)), es = ew;
    std::vector<float> out(n);
    for (const Range& u : units)
      for (int j = 0; j < p; ++j) {
        const Range c = coll::block_range(u.count, p, j);
        const size_t o = u.offset + c.offset;
        std::vector<float> z(c.count, 0.0f);
        for (int w = 0; w < p; ++w) {  // workers, in rank order
          std::vector<float> y(c.count);
          for (size_t i = 0; i < c.count; ++i) y[i] = x[size_t(w)][o + i] + (ef ? ew[size_t(w)][o + i] : 0.0f);
          const std::vector<float> d = c.count ? quantize(y) : y;
          for (size_t i = 0; i < c.count; ++i) {
            if (ef) ew[size_t(w)][o + i] = y[i] - d[i];  // exactly the residual
            z[i] += d[i];
          }
        }
        for (size_t i = 0; i < c.count; ++i) z[i] = z[i] * float(1.0 / p) + (ef ? es[size_t(j)][o + i] : 0.0f);
        const std::vector<float> d = c.count ? quantize(z) : z;
        for (size_t i = 0; i < c.count; ++i) {
          if (ef) es[size_t(j)][o + i] = z[i] - d[i];
          out[o + i] = d[i];
        }
      }
    return out;
  }
};

// The code's steps for P workers in one process: what the collective does between its messages.
std::vector<float> run_pieces(const coll::Codec& q, const std::vector<Range>& units,
                              std::vector<std::vector<float>> x, std::vector<coll::ServerErrors>& errors) {
  const int p = int(x.size());
  const size_t n = x[0].size();
  for (coll::ServerErrors& e : errors)
    if (e.error_feedback && e.worker.empty()) e.worker.assign(n, 0.0f), e.server.assign(n, 0.0f);
  auto span_of = [](std::vector<float>& v) { return std::span<float>(v); };
  std::vector<std::vector<std::byte>> pulls(static_cast<size_t>(p));
  for (int j = 0; j < p; ++j) {
    std::vector<std::vector<std::byte>> pushes(static_cast<size_t>(p));
    std::vector<std::span<const std::byte>> views;
    for (int w = 0; w < p; ++w) {
      pushes[size_t(w)].resize(coll::chunk_message_bytes(q, units, p, j));
      coll::worker_encode(q, units, p, j, x[size_t(w)], span_of(errors[size_t(w)].worker), pushes[size_t(w)]);
      views.push_back(pushes[size_t(w)]);
    }
    pulls[size_t(j)].resize(coll::chunk_message_bytes(q, units, p, j));
    coll::server_reduce(q, units, p, j, views, span_of(errors[size_t(j)].server), pulls[size_t(j)]);
  }
  std::vector<float> out(n);
  for (int j = 0; j < p; ++j) coll::decode_chunk(q, units, p, j, pulls[size_t(j)], out);
  return out;
}

}  // namespace

TEST_CASE("compressed server: three workers, two-sided error feedback equals the reference exactly", "[cadam]") {
  const std::vector<Range> units = {{0, 100}, {100, 2}, {102, 205}};  // a unit smaller than p: empty chunks
  const int p = 3;
  for (const std::string which : {"onebit", "kbit4"}) {
    for (const bool ef : {true, false}) {
      INFO(which << (ef ? " with" : " without") << " error feedback");
      const auto q = which == "onebit" ? coll::make_onebit_codec() : coll::make_kbit_codec(4);
      RefServer ref{p, units, which == "onebit" ? std::function(ref_onebit) : [](const std::vector<float>& y) {
                      return ref_kbit(y, 4);
                    }, {}, {}};
      ref.ef = ef;
      std::vector<coll::ServerErrors> errors(static_cast<size_t>(p));
      for (coll::ServerErrors& e : errors) e.error_feedback = ef;
      for (int call = 0; call < 3; ++call) {  // the errors carry from call to call
        std::vector<std::vector<float>> x;
        for (int w = 0; w < p; ++w) x.push_back(seeded(307, uint32_t(100 * call + w), 0.05f));
        const std::vector<float> got = run_pieces(*q, units, x, errors);
        CHECK(got == ref.call(x));
        for (int w = 0; w < p && ef; ++w) {
          CHECK(errors[size_t(w)].worker == ref.ew[size_t(w)]);
          CHECK(errors[size_t(w)].server == ref.es[size_t(w)]);
        }
        for (int w = 0; w < p && !ef; ++w) CHECK((errors[size_t(w)].worker.empty() && errors[size_t(w)].server.empty()));
      }
      if (ef) {  // the errors are not trivially zero, and a server's lie only on its chunks
        CHECK(std::any_of(errors[0].worker.begin(), errors[0].worker.end(), [](float e) { return e != 0; }));
        CHECK(errors[1].server[0] == 0.0f);     // unit 0's chunk 0 is rank 0's
        CHECK(errors[1].server[40] != 0.0f);    // chunk 1 = [34, 67)
      }
    }
  }
}

// W = the quantizer's bytes over every chunk: what the cost comments and the simulator use.
TEST_CASE("compressed server: wire bytes are the sum over chunks", "[cadam]") {
  const std::vector<Range> units = {{0, 1000}, {1000, 3}};
  // 1 bit, p = 4: unit 0 in chunks of 250 (4 + 32 bytes each), unit 1 in 1,1,1,0 (4 + 1 each).
  CHECK(coll::compressed_server_wire_bytes(*coll::make_onebit_codec(), units, 4) == 4 * 36 + 3 * 5);
  // 8 bits: 250 + 2 per chunk of unit 0, 1 + 2 per element of unit 1.
  CHECK(coll::compressed_server_wire_bytes(*coll::make_kbit_codec(8), units, 4) == 4 * 252 + 3 * 3);
}
