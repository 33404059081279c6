// collectives/ without MPI: the codecs' documented error bounds, error feedback, the block
// partition, the cost formulas; and `dtbench coll` end to end on one rank (MPI singleton):
// bad profiles and bad options answered with one line and exit code 2, results in HDF5.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "algorithms.hpp"
#include "dtbench_runner.hpp"
#include "codec.hpp"
#include "h5file.hpp"
#include "network.hpp"
#include "partition.hpp"

namespace fs = std::filesystem;
using namespace dtb::coll;
using Catch::Matchers::Contains;

namespace {

std::vector<float> random_floats(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> x(n);
  for (float& v : x) v = u(rng);
  return x;
}

std::vector<float> roundtrip(const Codec& codec, const std::vector<float>& x, uint64_t stream = 7) {
  std::vector<std::byte> bytes(codec.encoded_bytes(x.size()));
  codec.encode(x, bytes, stream);
  std::vector<float> y(x.size(), 99.0f);
  codec.decode(bytes, y, DecodeMode::kAssign);
  return y;
}

double max_abs(std::span<const float> x) {
  double m = 0;
  for (float v : x) m = std::max(m, double(std::fabs(v)));
  return m;
}

double sq_norm(std::span<const float> x) {
  double s = 0;
  for (float v : x) s += double(v) * v;
  return s;
}

std::vector<std::string> all_codec_specs() {
  return {"fp16", "bf16", "int8:64", "int8sr:64", "int4:64", "topk:0.25", "sign:64"};
}

}  // namespace

TEST_CASE("fp16: every finite half survives, the rest rounds to nearest within 2^-11", "[coll][codec]") {
  auto codec = make_codec("fp16");
  std::vector<float> halves;
  for (int e = -24; e <= 15; ++e)  // exact multiples of each binade's ulp: all halves' magnitudes
    for (int m = 0; m < 1024; ++m) {
      const float v = e == -24 ? float(m) * 0x1p-24f : std::ldexp(1.0f + float(m) / 1024, e);
      if (v <= 65504.0f && (e >= -14 || e == -24)) halves.insert(halves.end(), {v, -v});
    }
  CHECK(roundtrip(*codec, halves) == halves);

  const auto x = random_floats(10000, 60000.0f, 1);
  const auto y = roundtrip(*codec, x);
  for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(y[i] - x[i]) <= std::ldexp(std::fabs(x[i]), -11) + 0x1p-25);
  const auto tiny = random_floats(1000, 1e-5f, 2);  // the subnormal range: absolute 2^-25
  const auto ty = roundtrip(*codec, tiny);
  for (size_t i = 0; i < tiny.size(); ++i) CHECK(std::fabs(ty[i] - tiny[i]) <= 0x1p-25);
  CHECK(roundtrip(*codec, {1e6f, -1e6f, 65519.0f}) == std::vector<float>{65504.0f, -65504.0f, 65504.0f});
  CHECK(codec->error_bound(1000.0) == Approx(1000.0 / 2048 + 0x1p-25));
}

TEST_CASE("bf16: every finite bf16 survives, the rest within 2^-8 relative", "[coll][codec]") {
  auto codec = make_codec("bf16");
  std::vector<float> all;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float v = std::bit_cast<float>(h << 16);
    if (std::isfinite(v)) all.push_back(v);
  }
  CHECK(roundtrip(*codec, all) == all);
  const auto x = random_floats(10000, 1e6f, 3);
  const auto y = roundtrip(*codec, x);
  for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(y[i] - x[i]) <= std::ldexp(std::fabs(x[i]), -8));
  CHECK(roundtrip(*codec, {3.4e38f})[0] == std::bit_cast<float>(0x7f7f0000u));  // saturates, no inf
}

TEST_CASE("int8: per bucket, |error| <= s/2 rounding to nearest, < s and unbiased stochastically", "[coll][codec]") {
  const size_t n = 1000, bucket = 64;  // a short last bucket
  auto x = random_floats(n, 3.0f, 4);
  x[5] = 0;
  std::fill(x.begin() + 128, x.begin() + 192, 0.0f);  // an all-zero bucket decodes to zeros
  for (bool stochastic : {false, true}) {
    auto codec = make_int8_codec(bucket, stochastic);
    CHECK(codec->encoded_bytes(n) == n + 4 * 16);
    const auto y = roundtrip(*codec, x);
    for (size_t b0 = 0; b0 < n; b0 += bucket) {
      const auto xb = std::span(x).subspan(b0, std::min(bucket, n - b0));
      const double s = max_abs(xb) / 127, bound = (stochastic ? 1.0 : 0.5) * s * (1 + 1e-6);
      for (size_t i = b0; i < b0 + xb.size(); ++i) CHECK(std::fabs(y[i] - x[i]) <= bound);
      CHECK(codec->error_bound(max_abs(xb)) == Approx(stochastic ? s : s / 2));
    }
    CHECK(y[5] == 0.0f);
    CHECK(std::all_of(y.begin() + 128, y.begin() + 192, [](float v) { return v == 0.0f; }));
  }
  // Unbiased: the mean over many random streams approaches x; each stream is reproducible.
  auto sr = make_int8_codec(bucket, true);
  const std::vector<float> few(x.begin(), x.begin() + 64);
  std::vector<double> mean(few.size(), 0.0);
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    const auto y = roundtrip(*sr, few, uint64_t(t));
    for (size_t i = 0; i < few.size(); ++i) mean[i] += y[i] / trials;
  }
  const double s = max_abs(few) / 127;
  for (size_t i = 0; i < few.size(); ++i) CHECK(std::fabs(mean[i] - few[i]) <= 0.05 * s);
  CHECK(roundtrip(*sr, few, 11) == roundtrip(*sr, few, 11));
  CHECK(roundtrip(*sr, few, 11) != roundtrip(*sr, few, 12));
}

TEST_CASE("int4: the exact bytes of a hand-written case, |error| <= s/2 with s = max|x| / 7", "[coll][codec]") {
  auto codec = make_codec("int4:4");
  // Bucket 1: max 7, s = 1: q = 7, -7, 3 (3.4), -1 (-0.6); bucket 2 (short): max 1.4, s = 0.2: q = -7, 1 (0.25).
  const std::vector<float> x = {7.0f, -7.0f, 3.4f, -0.6f, -1.4f, 0.25f};
  CHECK(codec->encoded_bytes(x.size()) == 4 + 2 + 4 + 1);
  std::vector<std::byte> wire(codec->encoded_bytes(x.size()));
  codec->encode(x, wire, 0);
  float s1, s2;
  std::memcpy(&s1, wire.data(), 4);
  std::memcpy(&s2, wire.data() + 6, 4);
  CHECK(s1 == 1.0f);
  CHECK(s2 == 1.4f / 7.0f);
  CHECK(wire[4] == std::byte{0x97});  // 7 | (-7 = 0x9) << 4, low nibble first
  CHECK(wire[5] == std::byte{0xF3});  // 3 | (-1 = 0xF) << 4
  CHECK(wire[10] == std::byte{0x19});  // -7 = 0x9 | 1 << 4
  CHECK(roundtrip(*codec, x) == std::vector<float>{7.0f, -7.0f, 3.0f, -1.0f, -7 * s2, s2});
  const auto r = random_floats(1000, 2.0f, 9);
  auto c64 = make_codec("int4:64");
  const auto y = roundtrip(*c64, r);
  for (size_t b0 = 0; b0 < r.size(); b0 += 64) {
    const auto xb = std::span(r).subspan(b0, std::min<size_t>(64, r.size() - b0));
    for (size_t i = b0; i < b0 + xb.size(); ++i) CHECK(std::fabs(y[i] - r[i]) <= max_abs(xb) / 7 / 2 * (1 + 1e-6));
  }
  CHECK(c64->error_bound(7.0) == Approx(0.5));
}

// ---- Hand-written references of the codecs DiLoCo sends pseudo-gradients with (fp16, int8,
// int4), from their definitions in codec.hpp and the files' layout comments, not from
// their code: ~300 seeded values, the decoded output (and int8 / int4's bytes) exactly, and
// error feedback's residual exactly x + e - decoded over several calls.
namespace {

// fp16 in double: the nearest multiple of the binade's quantum 2^(e - 10) (subnormals
// share 2^-14's, 2^-24), ties to even; magnitudes from 65520 (half-way past the largest
// half) saturate to 65504. Division by a power of two is exact, so only nearbyint rounds.
float reference_fp16(float x) {
  const double a = std::fabs(double(x));
  if (a >= 65520.0) return std::copysign(65504.0f, x);
  int e = 0;
  std::frexp(a, &e);  // a = f 2^e, f in [1/2, 1): the binade is 2^(e - 1)
  const double quantum = std::ldexp(1.0, std::max(e - 1, -14) - 10);
  return float(std::copysign(std::nearbyint(a / quantum) * quantum, double(x)));
}

// int8 / int4 (LEVELS = 127 / 7): per bucket s = max |x| / LEVELS (float), q = x / s to the
// nearest integer, ties to even (or floor(x / s + u) with u = uniform01(STREAM, index) when
// STOCHASTIC), clamped to +-LEVELS; decoded q s. Bytes per bucket: the float s, then one
// int8 per value, or (int4) two's-complement nibbles, low nibble first.
std::vector<float> reference_int(const std::vector<float>& x, size_t bucket, int levels, bool stochastic,
                                 uint64_t stream, std::vector<std::byte>& wire) {
  std::vector<float> out(x.size());
  wire.clear();
  for (size_t b0 = 0; b0 < x.size(); b0 += bucket) {
    const size_t len = std::min(bucket, x.size() - b0);
    float m = 0;
    for (size_t i = b0; i < b0 + len; ++i) m = std::max(m, std::fabs(x[i]));
    const float s = m / float(levels);
    const auto* sb = reinterpret_cast<const std::byte*>(&s);
    wire.insert(wire.end(), sb, sb + 4);
    std::vector<int> q(len);
    for (size_t i = 0; i < len; ++i) {
      const float v = s == 0 ? 0.0f : x[b0 + i] / s;
      const double r = stochastic ? std::floor(double(v) + double(detail::uniform01(stream, b0 + i))) : std::nearbyint(v);
      q[i] = int(std::clamp(r, -double(levels), double(levels)));
      out[b0 + i] = float(q[i]) * s;
    }
    if (levels == 127)
      for (int k : q) wire.push_back(std::byte(uint8_t(int8_t(k))));
    else
      for (size_t i = 0; i < len; i += 2)
        wire.push_back(std::byte(uint8_t((q[i] & 0xF) | (i + 1 < len ? (q[i + 1] & 0xF) << 4 : 0))));
  }
  return out;
}

// ~300 values over many binades (fp16's subnormals, rounding to zero and saturation
// included) or, for the bucket codecs, uniform with a different scale per bucket of 64
// and one bucket of zeros.
std::vector<float> reference_input(bool binades, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> e(-28, 17);
  std::vector<float> x(300);
  for (size_t i = 0; i < x.size(); ++i) x[i] = binades ? std::ldexp(u(rng), e(rng)) : u(rng) * float(1 + i / 64);
  if (!binades) std::fill(x.begin() + 128, x.begin() + 192, 0.0f);
  return x;
}

}  // namespace

TEST_CASE("fp16, int8, int4: a hand-written reference quantizer, exactly, and error feedback's exact residual",
          "[coll][codec]") {
  struct Case {
    std::string spec;
    int levels;  // 0: fp16
    bool stochastic;
  };
  for (const Case& c : {Case{"fp16", 0, false}, Case{"int8:64", 127, false}, Case{"int8sr:64", 127, true},
                        Case{"int4:64", 7, false}}) {
    INFO(c.spec);
    const auto codec = make_codec(c.spec);
    std::vector<float> e(300, 0.0f);  // the residual, carried over the calls
    for (uint64_t call = 0; call < 3; ++call) {
      const std::vector<float> x = reference_input(c.levels == 0, uint32_t(40 + call));
      std::vector<float> y(x.size());
      for (size_t i = 0; i < x.size(); ++i) y[i] = e[i] + x[i];  // what is sent: x + e
      std::vector<std::byte> want_wire;
      std::vector<float> want(y.size());
      if (c.levels == 0) std::transform(y.begin(), y.end(), want.begin(), reference_fp16);
      else want = reference_int(y, 64, c.levels, c.stochastic, 100 + call, want_wire);
      // The codec with error feedback, as FloatWire::encode_partial runs it.
      std::vector<std::byte> wire(codec->encoded_bytes(x.size()));
      for (size_t i = 0; i < x.size(); ++i) e[i] += x[i];
      codec->encode(e, wire, 100 + call);
      std::vector<float> got(x.size());
      codec->decode(wire, got, DecodeMode::kAssign);
      codec->decode(wire, e, DecodeMode::kSubtract);
      size_t wrong = 0, wrong_residual = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        wrong += got[i] != want[i];
        wrong_residual += e[i] != y[i] - want[i];
      }
      INFO("call " << call << ": " << wrong << " values and " << wrong_residual << " residuals differ");
      CHECK(wrong == 0);
      CHECK(wrong_residual == 0);
      if (c.levels) CHECK(wire == want_wire);
      CHECK(std::any_of(e.begin(), e.end(), [](float v) { return v != 0; }));  // lossy: something to carry
    }
  }
}

TEST_CASE("topk: keeps the k largest exactly, drops at most (1 - k/n) of the energy", "[coll][codec]") {
  const auto x = random_floats(1001, 1.0f, 5);
  for (double ratio : {0.01, 0.1, 0.5, 1.0}) {
    auto codec = make_topk_codec(ratio);
    const size_t k = size_t(std::ceil(ratio * double(x.size())));
    const auto y = roundtrip(*codec, x);
    size_t kept = 0;
    float smallest_kept = INFINITY, largest_dropped = 0;
    std::vector<float> error(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      error[i] = x[i] - y[i];
      if (y[i] != 0) {
        CHECK(y[i] == x[i]);
        ++kept;
        smallest_kept = std::min(smallest_kept, std::fabs(x[i]));
      } else {
        largest_dropped = std::max(largest_dropped, std::fabs(x[i]));
      }
    }
    CHECK(kept == k);
    CHECK(largest_dropped <= smallest_kept);
    CHECK(sq_norm(error) <= (1.0 - double(k) / double(x.size())) * sq_norm(x) * (1 + 1e-9));
  }
}

TEST_CASE("sign: +-mean|x| per bucket, the error never adds energy", "[coll][codec]") {
  const size_t bucket = 64;
  auto codec = make_sign_codec(bucket);
  const auto x = random_floats(1000, 2.0f, 6);
  CHECK(codec->encoded_bytes(1000) == 15 * (4 + 8) + (4 + 5));
  const auto y = roundtrip(*codec, x);
  for (size_t b0 = 0; b0 < x.size(); b0 += bucket) {
    const size_t len = std::min(bucket, x.size() - b0);
    const auto xb = std::span(x).subspan(b0, len);
    double s = 0;
    for (float v : xb) s += std::fabs(v) / double(len);
    std::vector<float> e(len);
    for (size_t i = 0; i < len; ++i) {
      CHECK(std::fabs(y[b0 + i]) == Approx(s).epsilon(1e-6));
      CHECK((y[b0 + i] >= 0) == (x[b0 + i] >= 0));
      e[i] = x[b0 + i] - y[b0 + i];
      CHECK(std::fabs(e[i]) <= codec->error_bound(max_abs(xb)) * (1 + 1e-6));
    }
    CHECK(sq_norm(e) == Approx(sq_norm(xb) - double(len) * s * s).epsilon(1e-4));
  }
}

TEST_CASE("every codec: zero and odd lengths, decode modes, lossless on its exact inputs", "[coll][codec]") {
  for (const auto& spec : all_codec_specs()) {
    INFO(spec);
    auto codec = make_codec(spec);
    CHECK(codec->name() == spec);
    CHECK(codec->encoded_bytes(0) == 0);
    CHECK(roundtrip(*codec, {}).empty());
    // Assign, add and subtract agree.
    const auto x = random_floats(77, 1.0f, 7);
    const auto y = roundtrip(*codec, x);
    std::vector<std::byte> bytes(codec->encoded_bytes(x.size()));
    codec->encode(x, bytes, 7);
    std::vector<float> acc(x.size(), 1.0f);
    codec->decode(bytes, acc, DecodeMode::kAdd);
    codec->decode(bytes, acc, DecodeMode::kAdd);
    codec->decode(bytes, acc, DecodeMode::kSubtract);
    for (size_t i = 0; i < x.size(); ++i) CHECK(acc[i] == 1.0f + y[i]);
    // Exact inputs, summed over 1..8 ranks, cut into chunks anywhere, come back exactly.
    for (int ranks = 1; ranks <= 8; ++ranks)
      for (size_t offset : {0, 3, 100})
        for (size_t len : {1, 5, 64, 333}) {
          std::vector<float> sum(len, 0.0f);
          for (int r = 0; r < ranks; ++r)
            for (size_t i = 0; i < len; ++i) sum[i] += codec->exact_input(r, offset + i);
          CHECK(roundtrip(*codec, sum) == sum);
        }
  }
}

TEST_CASE("error feedback: what is sent over T calls sums to the inputs minus the last residual", "[coll][codec]") {
  for (const auto& spec : all_codec_specs()) {
    INFO(spec);
    auto codec = make_codec(spec);
    const auto x = random_floats(300, 1.0f, 8);
    std::vector<float> e(x.size(), 0.0f), sent(x.size(), 0.0f);
    std::vector<std::byte> bytes(codec->encoded_bytes(x.size()));
    const int calls = 50;
    for (int t = 0; t < calls; ++t) {  // what FloatWire::encode_partial does
      for (size_t i = 0; i < x.size(); ++i) e[i] += x[i];
      codec->encode(e, bytes, uint64_t(t));
      codec->decode(bytes, e, DecodeMode::kSubtract);
      codec->decode(bytes, sent, DecodeMode::kAdd);
    }
    for (size_t i = 0; i < x.size(); ++i) CHECK(sent[i] + e[i] == Approx(calls * x[i]).margin(1e-3));
    // And the residual stays bounded, so the average of what was sent converges to x.
    CHECK(max_abs(e) < 0.5 * calls * max_abs(x));
  }
}

TEST_CASE("make_codec: the specs, and one clear error for anything else", "[coll][codec]") {
  CHECK(make_codec("none") == nullptr);
  CHECK(make_codec("int8")->name() == "int8:512");
  CHECK(make_codec("topk")->name() == "topk:0.01");
  for (const char* bad : {"zip", "int8:0", "int8:x", "topk:0", "topk:1.5", "fp16:2", "sign:", "none:1"}) {
    INFO(bad);
    CHECK_THROWS_AS(make_codec(bad), dtb::UsageError);
    try {
      make_codec(bad);
    } catch (const dtb::UsageError& e) {
      CHECK_THAT(e.what(), Contains("allowed"));
    }
  }
}

TEST_CASE("partition: blocks tile the buffer, differ by at most one, and invert", "[coll]") {
  for (size_t count : {0, 1, 7, 8, 9, 1031})
    for (int p = 1; p <= 8; ++p) {
      size_t next = 0;
      for (int b = 0; b < p; ++b) {
        const Range r = block_range(count, p, b);
        CHECK(r.offset == next);
        CHECK(r.count + 1 >= count / p);
        CHECK(r.count <= count / p + 1);
        for (size_t i = r.offset; i < r.end(); ++i) CHECK(block_of(count, p, i) == b);
        next = r.end();
      }
      CHECK(next == count);
      CHECK(blocks_range(count, p, 0, p).count == count);
    }
}

TEST_CASE("cost formulas: the textbook values", "[coll][cost]") {
  const double a = 1e-3, b = 1e-9, n = 4e6;
  CHECK(ring_allreduce_cost(4, n, a, b) == Approx(6 * (a + n / 4 * b)));
  CHECK(ring_reduce_scatter_cost(4, n, a, b) == Approx(3 * (a + n / 4 * b)));
  CHECK(halving_doubling_allreduce_cost(8, n, a, b) == Approx(6 * a + 2 * 7.0 / 8 * n * b));
  CHECK(halving_doubling_allreduce_cost(5, n, a, b) == Approx(4 * a + 1.5 * n * b + 2 * (a + n * b)));
  CHECK(tree_allreduce_cost(8, n, a, b) == Approx(6 * (a + n * b)));
  CHECK(tree_allreduce_cost(7, n, a, b) == Approx(4 * (a + n * b)));  // depth floor(log2 7) = 2
  // NIC caps as fast as the links: p = 2^d keeps the closed form; p = 3 queues two children.
  CHECK(tree_allreduce_cost(8, n, a, b, b, b) == Approx(6 * (a + n * b)));
  CHECK(tree_allreduce_cost(3, n, a, b, b, b) == Approx(2 * (a + 2 * n * b)));
  CHECK(tree_broadcast_cost(3, n, a, b, b, b) == Approx(a + 2 * n * b));
  CHECK(gossip_allreduce_cost(8, 3, n, a, b, b, b) == Approx(3 * (a + 2 * n * b)));
  CHECK(hierarchical_allreduce_cost(4, 2, n, a, b, 10 * a, 10 * b) ==
        Approx(tree_allreduce_cost(4, n, a, b) + ring_allreduce_cost(2, n, 10 * a, 10 * b)));
  CHECK(param_server_allreduce_cost(5, 1, n, a, 0, 0, b) == Approx(2 * a + 4 * n * b + n * b));
  CHECK(gossip_allreduce_cost(8, 3, n, a, b) == Approx(3 * (a + n * b)));
  CHECK(barrier_cost(5, a) == Approx(3 * a));
  for (int p : {0, 1}) {
    CHECK(ring_allreduce_cost(p, n, a, b) == 0);
    CHECK(halving_doubling_allreduce_cost(p, n, a, b) == 0);
    CHECK(tree_allreduce_cost(p, n, a, b) == 0);
  }
  CHECK(gossip_contraction(3) == 0);
  CHECK(gossip_contraction(4) == Approx(1.0 / 3));
  CHECK(gossip_contraction(8) == Approx((1 + std::sqrt(2.0)) / 3));
}

// The cost models replay each algorithm's messages over the links they take
// (cost_model.hpp); on uniform links they must give the closed forms.
TEST_CASE("cost models: the closed forms on uniform links, with and without NIC caps", "[coll][cost]") {
  const double a = 1e-3, bw = 1e8, n = 1e6;
  for (bool nic : {false, true})
    for (int p = 1; p <= 9; ++p) {
      dtb::netem::Profile profile = dtb::netem::uniform_profile(p, a, bw);
      if (nic) profile.nic_egress_Bps = profile.nic_ingress_Bps = bw;
      const dtb::netem::NetworkModel net(profile, p);
      std::vector<int> ranks(static_cast<size_t>(p));
      for (int r = 0; r < p; ++r) ranks[size_t(r)] = r;
      const double b = net.beta(0, std::min(1, p - 1));
      const NicBeta caps = nic_betas(net, 0, 1, n);
      INFO("p " << p << " NIC caps " << nic);
      CHECK(ring_allreduce_model(net, ranks, n) == Approx(ring_allreduce_cost(p, n, a, b)));
      CHECK(ring_reduce_scatter_model(net, ranks, n) == Approx(ring_reduce_scatter_cost(p, n, a, b)));
      CHECK(ring_allgather_model(net, ranks, n) == Approx(ring_allgather_cost(p, n, a, b)));
      CHECK(halving_doubling_allreduce_model(net, ranks, n) == Approx(halving_doubling_allreduce_cost(p, n, a, b)));
      CHECK(tree_allreduce_model(net, ranks, n) == Approx(tree_allreduce_cost(p, n, a, b, caps.egress, caps.ingress)));
      CHECK(tree_broadcast_model(net, ranks, n, p / 2) ==
            Approx(tree_broadcast_cost(p, n, a, b, caps.egress, caps.ingress)));
      CHECK(hierarchical_allreduce_model(net, ranks, n) ==
            Approx(hierarchical_allreduce_cost(p, 1, n, a, b, a, b, caps)));
      for (int servers : {1, p})
        CHECK(param_server_allreduce_model(net, ranks, n, servers) ==
              Approx(param_server_allreduce_cost(p, servers, n, a, b, caps.egress, caps.ingress)));
      CHECK(gossip_allreduce_model(net, ranks, n, 3) ==
            Approx(gossip_allreduce_cost(p, 3, n, a, b, caps.egress, caps.ingress)));
      CHECK(barrier_model(net, ranks) == Approx(barrier_cost(p, a)));
    }
}

TEST_CASE("cost models: on mixed links each step costs the links it takes", "[coll][cost]") {
  // Sites a, a, b, b: 1 ms and 1 GB/s inside a site, 10 ms and 100 MB/s between them.
  dtb::netem::Profile profile = dtb::netem::uniform_profile(4, 1e-3, 1e9);
  profile.sites.push_back({"b", profile.sites[0].intra});
  profile.inter.assign(4, {10e-3, 0, "normal", 1e8, 0});
  profile.rank_site = {0, 0, 1, 1};
  const dtb::netem::NetworkModel net(profile, 4);
  const double n = 4e6, ai = 1e-3, bi = 1e-9, ax = 10e-3, bx = 1e-8;
  const std::vector<int> ranks = {0, 1, 2, 3}, pair_first = {0, 2, 1, 3};
  // Ring 0 1 2 3: hops 1->2 and 3->0 cross sites (a block: 20 ms, of which 10 ms on the
  // wire), 0->1 and 2->3 stay inside (2 ms). Each rank waits only for its left neighbour
  // and a slow link's blocks leave back to back; by hand, ranks 0..3 end step k at
  //   k=1: 20 2 20 2   k=2: 30 22 30 22   k=3: 42 32 42 32   k=4: 52 44 52 44
  //   k=5: 64 54 64 54   k=6: 74 66 74 66 (ms)
  // where the worst link on every hop would say 6 x 20 ms.
  CHECK(ring_allreduce_model(net, ranks, n) == Approx(74e-3));
  CHECK(ring_allreduce_cost(4, n, ax, bx) == Approx(120e-3));
  // Halving-doubling over 0 1 2 3: the mask-2 steps cross sites (n/2 each), the mask-1
  // steps stay inside (n/4 each): per step its own link.
  CHECK(halving_doubling_allreduce_model(net, ranks, n) ==
        Approx(2 * (ax + n / 2 * bx) + 2 * (ai + n / 4 * bi)));
  // Order 0 2 1 3: now the mask-1 steps cross sites.
  CHECK(halving_doubling_allreduce_model(net, pair_first, n) ==
        Approx(2 * (ai + n / 2 * bi) + 2 * (ax + n / 4 * bx)));
  // Hierarchical: a pair tree in each site (2 hops inside), a ring of two leaders across.
  CHECK(hierarchical_allreduce_model(net, ranks, n) ==
        Approx(2 * (ai + n * bi) + ring_allreduce_cost(2, n, ax, bx)));
  // Tree over 0 1 2 3: depth 2, the root's child 2 across sites, 1 and 3 inside: the
  // reduce's last level and the broadcast's first cross, the rest is a fast hop each way.
  CHECK(tree_allreduce_model(net, ranks, n) == Approx(2 * (ax + n * bx) + 2 * (ai + n * bi)));
  // The traffic: the ring sends 2 (p-1)/p n per rank, half of its hops across sites.
  const Traffic t = traffic(net, ranks, [&](const RoundSink& emit) { ring_allreduce_rounds(4, n, emit); });
  CHECK(t.intra == Approx(12 * n / 4));
  CHECK(t.inter == Approx(12 * n / 4));
  CHECK(t.busiest == Approx(6 * n / 4));
  CHECK(t.worst_alpha == ax);
  CHECK(t.worst_beta == Approx(bx));
}

// ---- dtbench coll on one rank (MPI singleton: no mpirun) -----------------------------

namespace {

using dtb::test::Outcome;

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_coll");
  return dir;
}

Outcome coll(const std::string& args) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);  // Open MPI refuses root otherwise
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  return dtb::test::run_dtbench("coll " + args, scratch());
}

std::string write_profile(const std::string& name, const std::string& yaml) {
  const fs::path p = scratch() / name;
  std::ofstream(p) << yaml;
  return p.string();
}

void expect_usage_error(const std::string& args, const std::vector<std::string>& pieces) {
  dtb::test::expect_usage_error(coll(args), "coll " + args, pieces);
}

}  // namespace

TEST_CASE("dtbench coll: bad profiles get one line and exit code 2", "[coll][cli]") {
  const std::string link = "intra: {latency: 1ms, bandwidth: 1Gbps}";
  const auto no_site = write_profile("no_site.yaml", "sites:\n  - {name: a, ranks: 0, " + link + "}\n");
  const auto negative = write_profile("negative.yaml", "sites:\n  - {name: a, ranks: rest, intra: {latency: 1ms, bandwidth: -1Gbps}}\n");
  const auto unknown = write_profile("unknown.yaml", "sites:\n  - {name: a, ranks: rest, " + link +
                                                         "}\nlinks:\n  - {between: [a, nowhere], latency: 1ms, bandwidth: 1Gbps}\n");
  expect_usage_error("-b 1K -e 1K --net " + no_site, {"no_site.yaml"});
  expect_usage_error("-b 1K -e 1K --net " + negative, {"negative.yaml", "bandwidth"});
  expect_usage_error("-b 1K -e 1K --net " + unknown, {"unknown.yaml", "nowhere"});
  expect_usage_error("--net /nonexistent/profile.yaml", {"/nonexistent/profile.yaml"});
}

TEST_CASE("dtbench coll: bad options get one line and exit code 2", "[coll][cli]") {
  expect_usage_error("--algo nosuch", {"--algo 'nosuch'", "ring"});
  expect_usage_error("--op broadcast --algo ring", {"broadcast has tree, mpi"});
  expect_usage_error("--codec zip", {"codec 'zip'", "allowed"});
  expect_usage_error("--algo mpi --codec fp16", {"takes no codec"});
  expect_usage_error("-b 1Q", {"-b/--minbytes '1Q'"});
  expect_usage_error("-f 1", {"stepfactor"});
  expect_usage_error("--clock sundial", {"--clock 'sundial'"});
  expect_usage_error("--op broadcast --algo tree --root 3", {"--root 3"});
}

TEST_CASE("dtbench coll: one rank runs the sweep, checks it and writes the rows", "[coll][cli]") {
  const std::string out = (scratch() / "one.h5").string();
  const Outcome o = coll("-b 1K -e 64K -f 8 -n 2 -w 1 --algo hd --codec int8 --net " + std::string(DTB_SOURCE_DIR) +
                         "/configs/net/wan-1g-50ms.yaml --out " + out);
  INFO(o.out << o.err);
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Contains("# Out of bounds values : 0 OK"));
  dtb::h5::File f = dtb::h5::File::open_read(out);
  CHECK(f.attr_string("/", "kind") == "coll");
  CHECK(f.attr_string("/", "algo") == "hd");
  CHECK(f.read<int64_t>("rows/bytes") == std::vector<int64_t>{1024, 8192, 65536});
  CHECK(f.read<int64_t>("rows/wrong") == std::vector<int64_t>{0, 0, 0});
  CHECK(f.read<double>("rows/time_us") == std::vector<double>{0, 0, 0});  // one rank sends nothing
  CHECK(f.exists("net_profile"));
}
