// CocktailSGD's and DeMo's compressors (parallel/cocktail.hpp, demo.hpp) against small
// hand-written references of a few hundred values with fixed seeds: exact outputs, error
// feedback (the worker's params - global, the server residual, DeMo's momentum) holding
// exactly what was not sent, the DCT against the O(n^2) DCT-II formula, and the lossless
// settings. Under mpirun with 1 and 3 ranks: CocktailSGD's exchange is checked on every
// rank against the reference run of the whole protocol for all P workers.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>

#include "parallel/cocktail.hpp"
#include "parallel/demo.hpp"
#include "partition.hpp"
#include "usage_error.hpp"

using namespace dtb;
using par::CocktailCodec;

namespace {

coll::Communicator& world() {
  static coll::Communicator w(MPI_COMM_WORLD, netem::uniform_profile(coll::MpiSession::world_size(), 0, 0),
                              netem::ClockKind::kVirtual);
  return w;
}

std::vector<float> normal(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

// ---------------------------------------------------------------- CocktailSGD's reference

// The chunk's subset at sync T: the reference's mask (every s-th element) rolled T places.
std::vector<size_t> ref_subset(size_t n, size_t s, uint64_t t) {
  std::vector<size_t> out;
  for (size_t j = 0; j < n; ++j)
    if (((j + n - t % n) % n) % s == 0) out.push_back(j);
  return out;
}

// What the receiver decodes from X (the subset's values): the top-k exactly, then each
// 128-value bucket quantized against its fp16 max (GCC's _Float16: round to nearest even).
std::vector<float> ref_roundtrip(const std::vector<float>& x, double topk, int bits) {
  const size_t m = x.size(), k = std::max<size_t>(1, size_t(topk * double(m)));
  std::vector<size_t> by(m);
  std::iota(by.begin(), by.end(), 0);
  std::stable_sort(by.begin(), by.end(), [&](size_t a, size_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  std::vector<size_t> kept(by.begin(), by.begin() + ptrdiff_t(k));
  std::sort(kept.begin(), kept.end());
  std::vector<float> out(m, 0.0f);
  for (size_t b0 = 0; b0 < k; b0 += 128) {
    const size_t b1 = std::min(k, b0 + 128);
    float peak = 0;
    for (size_t i = b0; i < b1; ++i) peak = std::max(peak, std::fabs(x[kept[i]]));
    const float scale = bits == 32 ? 0 : float(_Float16(peak));
    for (size_t i = b0; i < b1; ++i) {
      const float v = x[kept[i]];
      if (bits == 32) {
        out[kept[i]] = v;
        continue;
      }
      const float half = float(1 << (bits - 1));
      const float q = std::min(std::max(std::nearbyint(v / (scale + 1e-6f) * half), -half), half - 1);
      out[kept[i]] = q / half * scale;
    }
  }
  return out;
}

size_t ref_wire(size_t m, double topk, int bits) {
  const size_t k = std::max<size_t>(1, size_t(topk * double(m)));
  return (m + 7) / 8 + (bits == 32 ? 4 * k : (k * size_t(bits) + 7) / 8 + 2 * ((k + 127) / 128));
}

TEST_CASE("CocktailSGD: the compressor equals the hand-written reference, exactly", "[cocktail]") {
  const std::vector<float> chunk = normal(700, 7);
  struct Setting {
    double random, topk;
    int bits;
  };
  for (const Setting& st : {Setting{0.1, 0.2, 4}, Setting{0.3, 0.5, 8}, Setting{0.5, 0.1, 2}, Setting{1.0, 1.0, 32},
                            Setting{0.25, 0.9, 3}}) {
    const CocktailCodec codec{st.random, st.topk, st.bits};
    for (uint64_t t : {0, 1, 5, 699, 1234}) {
      INFO("random " << st.random << " topk " << st.topk << " bits " << st.bits << " sync " << t);
      const std::vector<uint32_t> sub = codec.subset(chunk.size(), t);
      const std::vector<size_t> want = ref_subset(chunk.size(), size_t(1.0 / st.random), t);
      REQUIRE(std::vector<size_t>(sub.begin(), sub.end()) == want);
      std::vector<float> x;
      for (size_t j : want) x.push_back(chunk[j]);
      const std::vector<std::byte> msg = codec.encode(x);
      CHECK(msg.size() == ref_wire(x.size(), st.topk, st.bits));
      CHECK(msg.size() == codec.wire_bytes(chunk.size()));
      CHECK(codec.decode(msg, x.size()) == ref_roundtrip(x, st.topk, st.bits));
    }
  }
  // Lossless: every element, all kept, fp32.
  const CocktailCodec lossless{1.0, 1.0, 32};
  CHECK(lossless.decode(lossless.encode(chunk), chunk.size()) == chunk);
}

// The whole protocol for P workers whose parameters and global come from fixed seeds, on
// every rank, then each rank's own state after take, exchange and land compared with it.
TEST_CASE("CocktailSGD: take, exchange and land equal the reference; error feedback holds the residuals exactly",
          "[cocktail][mpi]") {
  const int p = world().size(), r = world().rank();
  const size_t n = 601;
  // A lossy setting, and the lossless one (every element, all kept, fp32: the exact average).
  for (const auto& [random, topk, bits] : {std::tuple{0.25, 0.3, 4}, std::tuple{1.0, 1.0, 32}}) {
  INFO("random " << random << " topk " << topk << " bits " << bits);
  StrategySettings s;
  s.random_ratio = random, s.topk_ratio = topk, s.bits = bits;
  const std::vector<float> global = normal(n, 11);
  auto start = [&](int w) {
    std::vector<float> x = global, d = normal(n, 100 + uint32_t(w), 0.1f);
    for (size_t i = 0; i < n; ++i) x[i] += d[i];
    return x;
  };
  // Two syncs: the second adds the server residual the first left and a shifted subset.
  std::vector<std::vector<float>> ref_params(static_cast<size_t>(p));
  std::vector<std::vector<float>> ref_residual(static_cast<size_t>(p), std::vector<float>(n, 0.0f));
  for (int w = 0; w < p; ++w) ref_params[size_t(w)] = start(w);
  std::vector<float> ref_global = global;
  par::CocktailSGD mine(s, world(), true, global);
  std::vector<float> params = start(r);
  for (uint64_t t = 0; t < 2; ++t) {
    std::vector<float> average(n, 0.0f);
    for (int c = 0; c < p; ++c) {
      const coll::Range range = coll::block_range(n, p, c);
      const std::vector<size_t> sub = ref_subset(range.count, size_t(1.0 / s.random_ratio), t);
      std::vector<float> avg(sub.size(), 0.0f);
      for (int w = 0; w < p; ++w) {
        std::vector<float> x;
        for (size_t j : sub) x.push_back(ref_params[size_t(w)][range.offset + j] - ref_global[range.offset + j]);
        const std::vector<float> sent = ref_roundtrip(x, s.topk_ratio, s.bits);
        for (size_t i = 0; i < sub.size(); ++i) {
          ref_params[size_t(w)][range.offset + sub[i]] -= sent[i];
          avg[i] += sent[i] / float(p);
        }
      }
      std::vector<float>& res = ref_residual[size_t(c)];
      for (size_t i = 0; i < sub.size(); ++i) avg[i] += res[range.offset + sub[i]];
      const std::vector<float> back = ref_roundtrip(avg, s.topk_ratio, s.bits);
      for (size_t i = 0; i < sub.size(); ++i) {
        res[range.offset + sub[i]] = avg[i] - back[i];
        average[range.offset + sub[i]] = back[i];
      }
    }
    const std::vector<float> before = params;
    mine.take(params);
    // Worker error feedback: on the subset params - global is x minus what was sent; elsewhere nothing moved.
    CHECK(params == ref_params[size_t(r)]);
    CHECK(mine.global() == ref_global);
    mine.exchange();
    CHECK(mine.pending() == average);
    mine.land(params);
    for (int w = 0; w < p; ++w)
      for (size_t i = 0; i < n; ++i) ref_params[size_t(w)][i] += average[i];
    for (size_t i = 0; i < n; ++i) ref_global[i] += average[i];
    CHECK(params == ref_params[size_t(r)]);
    CHECK(mine.global() == ref_global);
    // Server error feedback: its chunk's residual, zeros elsewhere.
    CHECK(mine.server_residual() == ref_residual[size_t(r)]);
    if (bits != 32 || p > 1) CHECK(params != before);  // one lossless worker gets its own delta back
  }
  }
}

// ---------------------------------------------------------------- DeMo's reference

// The orthonormal DCT-II of one chunk, straight from its definition, in double.
std::vector<double> ref_dct(const std::vector<float>& x) {
  const size_t c = x.size();
  std::vector<double> out(c);
  for (size_t k = 0; k < c; ++k) {
    double sum = 0;
    for (size_t i = 0; i < c; ++i) sum += double(x[i]) * std::cos(M_PI * double(k) * (2.0 * double(i) + 1) / (2.0 * double(c)));
    out[k] = sum * std::sqrt((k == 0 ? 1.0 : 2.0) / double(c));
  }
  return out;
}

// Its inverse (the orthonormal DCT-III).
std::vector<double> ref_idct(const std::vector<double>& X) {
  const size_t c = X.size();
  std::vector<double> out(c, 0.0);
  for (size_t i = 0; i < c; ++i)
    for (size_t k = 0; k < c; ++k)
      out[i] += X[k] * std::sqrt((k == 0 ? 1.0 : 2.0) / double(c)) *
                std::cos(M_PI * double(k) * (2.0 * double(i) + 1) / (2.0 * double(c)));
  return out;
}

// Per chunk of a buffer.
std::vector<double> chunked(const std::vector<float>& x, size_t chunk, bool inverse) {
  std::vector<double> out;
  for (size_t off = 0; off < x.size(); off += chunk) {
    const std::vector<float> part(x.begin() + ptrdiff_t(off), x.begin() + ptrdiff_t(std::min(x.size(), off + chunk)));
    const std::vector<double> y = inverse ? ref_idct(std::vector<double>(part.begin(), part.end())) : ref_dct(part);
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;
}

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::fabs(v));
  return m;
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, double rel) {
  REQUIRE(got.size() == want.size());
  const double tol = rel * std::max(1e-30, max_abs(want));
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": " << got[i] << " against " << want[i]);
    CHECK(std::fabs(double(got[i]) - want[i]) <= tol);
  }
}

TEST_CASE("DeMo: FFTW's chunked DCT-II equals the O(n^2) formula, and its inverse", "[demo]") {
  const std::vector<float> x = normal(300, 3);
  for (size_t chunk : {size_t(1), size_t(7), size_t(64), size_t(300), size_t(512)}) {
    INFO("chunk " << chunk);
    par::ChunkDct dct(x.size(), chunk);
    std::vector<float> y(x.size()), back(x.size());
    dct.forward(x, y);
    check_close(y, chunked(x, chunk, false), 2e-6);
    dct.inverse(y, back);
    check_close(back, std::vector<double>(x.begin(), x.end()), 2e-6);
    // The inverse alone against the formula too (an input that is no forward's output).
    dct.inverse(x, back);
    check_close(back, chunked(x, chunk, true), 2e-6);
  }
}

StrategySettings demo_settings(int chunk, int topk, double decay) {
  StrategySettings s;
  s.chunk = chunk, s.topk = topk, s.momentum_decay = decay;
  return s;
}

// Payload: per chunk k indices (ascending) then their values.
struct Sent {
  std::vector<size_t> index;  // into the buffer
  std::vector<float> value;
};
Sent unpack(const std::vector<float>& payload, size_t n, size_t chunk, size_t k) {
  Sent out;
  size_t at = 0;
  for (size_t off = 0; off < n; off += chunk) {
    const size_t kk = std::min(k, std::min(chunk, n - off));
    for (size_t j = 0; j < kk; ++j) out.index.push_back(off + size_t(payload[at + j])), out.value.push_back(payload[at + kk + j]);
    at += 2 * kk;
  }
  return out;
}

TEST_CASE("DeMo: top-k per chunk of the momentum's DCT is sent, and the momentum keeps exactly the rest",
          "[demo]") {
  const size_t n = 300, chunk = 64, k = 5;
  const float lr = 0.1f, clip = 0.5f, decay = 0.9f;
  par::DeMo demo(demo_settings(int(chunk), int(k), decay), world(), n, true);
  REQUIRE(demo.payload_floats() == 2 * (4 * k + std::min<size_t>(k, 300 % 64)));
  std::vector<float> delta(n, 0.0f);  // the reference momentum, in float as DeMo keeps it
  for (uint32_t step = 0; step < 3; ++step) {
    INFO("step " << step);
    const std::vector<float> g = normal(n, 20 + step);
    for (size_t i = 0; i < n; ++i) delta[i] = delta[i] * decay + lr * (g[i] * clip);
    std::vector<float> payload(demo.payload_floats());
    demo.encode(g, clip, lr, payload);
    const Sent sent = unpack(payload, n, chunk, k);
    // The reference's choice: the k largest |DCT| of each chunk (formula), and their values.
    const std::vector<double> coef = chunked(delta, chunk, false);
    std::vector<size_t> want;
    for (size_t off = 0; off < n; off += chunk) {
      const size_t len = std::min(chunk, n - off);
      std::vector<size_t> by(len);
      std::iota(by.begin(), by.end(), off);
      std::stable_sort(by.begin(), by.end(), [&](size_t a, size_t b) { return std::fabs(coef[a]) > std::fabs(coef[b]); });
      std::vector<size_t> top(by.begin(), by.begin() + ptrdiff_t(std::min(k, len)));
      std::sort(top.begin(), top.end());
      want.insert(want.end(), top.begin(), top.end());
    }
    REQUIRE(sent.index == want);
    std::vector<double> want_values;
    for (size_t i : want) want_values.push_back(coef[i]);
    check_close(sent.value, want_values, 2e-6);
    // Error feedback, exactly: momentum = delta - IDCT(the sent components), with DeMo's
    // own transform; and, against the formula, the momentum's DCT is zero where sent.
    std::vector<float> sparse(n, 0.0f), back(n);
    for (size_t j = 0; j < sent.index.size(); ++j) sparse[sent.index[j]] = sent.value[j];
    std::vector<float> own(n);
    demo.dct().forward(delta, own);  // the same float arithmetic as encode
    demo.dct().inverse(sparse, back);
    std::vector<float> expected(n);
    for (size_t i = 0; i < n; ++i) expected[i] = delta[i] - back[i];
    CHECK(demo.momentum() == expected);
    const std::vector<double> left = chunked(demo.momentum(), chunk, false);
    for (size_t i : want) CHECK(std::fabs(left[i]) <= 2e-6 * max_abs(coef));
    delta = demo.momentum();
  }
}

// The decoded update: per index, the mean of the values the workers sent there (0 where
// none), then the inverse DCT (formula).
TEST_CASE("DeMo: the gathered components are averaged where they coincide, then inverted", "[demo]") {
  const size_t n = 200, chunk = 50, k = 6;
  const int p = 3;
  std::vector<std::unique_ptr<par::DeMo>> workers;
  std::vector<float> gathered;
  for (int w = 0; w < p; ++w) {
    workers.push_back(std::make_unique<par::DeMo>(demo_settings(int(chunk), int(k), 0.5), world(), n, true));
    // Workers 0 and 1 share a gradient (the same indices, averaging equal values); 2 differs.
    const std::vector<float> g = normal(n, w == 2 ? 31u : 30u);
    std::vector<float> payload(workers.back()->payload_floats());
    workers.back()->encode(g, 1.0f, 0.01f, payload);
    gathered.insert(gathered.end(), payload.begin(), payload.end());
  }
  std::vector<double> sum(n, 0.0), count(n, 0.0);
  for (int w = 0; w < p; ++w) {
    const std::vector<float> payload(gathered.begin() + ptrdiff_t(size_t(w) * workers[0]->payload_floats()),
                                     gathered.begin() + ptrdiff_t(size_t(w + 1) * workers[0]->payload_floats()));
    const Sent s = unpack(payload, n, chunk, k);
    for (size_t j = 0; j < s.index.size(); ++j) sum[s.index[j]] += s.value[j], count[s.index[j]] += 1;
  }
  std::vector<double> mean(n, 0.0);
  for (size_t i = 0; i < n; ++i) mean[i] = count[i] > 0 ? sum[i] / count[i] : 0.0;
  CHECK(*std::max_element(count.begin(), count.end()) >= 2.0);  // workers 0 and 1 chose the same
  std::vector<double> want;
  for (size_t off = 0; off < n; off += chunk) {
    const std::vector<double> y = ref_idct(std::vector<double>(mean.begin() + ptrdiff_t(off), mean.begin() + ptrdiff_t(off + chunk)));
    want.insert(want.end(), y.begin(), y.end());
  }
  check_close(workers[0]->decode(gathered, p), want, 2e-6);
}

// k = chunk and no decay: every component is sent, so the momentum keeps only the DCT
// round trip's rounding and G is the workers' mean of lr g: DeMo is then sign-SGD on the
// DP-averaged gradient (the sign of an average, not AdamW: no lossless DeMo equals the
// AdamW baseline).
TEST_CASE("DeMo: with k = chunk it sends everything and steps on the sign of the mean gradient", "[demo]") {
  const size_t n = 256, chunk = 32;
  const int p = 4;
  const float lr = 0.05f;
  std::vector<float> gathered;
  std::vector<double> mean(n, 0.0);
  std::vector<std::unique_ptr<par::DeMo>> workers;
  for (int w = 0; w < p; ++w) {
    workers.push_back(std::make_unique<par::DeMo>(demo_settings(int(chunk), int(chunk), 0.0), world(), n, true));
    const std::vector<float> g = normal(n, 40 + uint32_t(w));
    std::vector<float> payload(workers.back()->payload_floats());
    workers.back()->encode(g, 1.0f, lr, payload);
    gathered.insert(gathered.end(), payload.begin(), payload.end());
    for (size_t i = 0; i < n; ++i) mean[i] += double(lr * g[i]) / p;
    for (float m : workers.back()->momentum()) CHECK(std::fabs(m) <= 1e-6 * lr * 5);
  }
  const std::vector<float> G = workers[0]->decode(gathered, p);
  check_close(G, mean, 2e-6);
  int signs = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::fabs(mean[i]) > 1e-4 * max_abs(mean)) signs += (G[i] > 0) == (mean[i] > 0);
    else ++signs;
  CHECK(signs == int(n));
}

// Bad input: one line naming the key and what is allowed (exit code 2 from the CLI).
TEST_CASE("CocktailSGD and DeMo: bad settings are refused with one line naming the key", "[cocktail][demo]") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"strategy.name=cocktail", "parallel.tp=2"}, "parallel.tp"},
      {{"strategy.name=cocktail", "parallel.pp=2"}, "parallel.pp"},
      {{"strategy.name=demo", "net.codec=int8"}, "net.codec"},
      {{"strategy.name=cocktail", "strategy.bits=9"}, "strategy.bits"},
      {{"strategy.topk=8"}, "strategy.topk"},
      {{"strategy.name=demo", "strategy.random_ratio=0.5"}, "strategy.random_ratio"},
      {{"strategy.name=demo", "strategy.chunk=64", "strategy.topk=65"}, "strategy.topk"}};
  for (const auto& [sets, key] : cases) {
    INFO(key);
    try {
      (void)train_settings(load_config(train_schema(), {}, sets));
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK(std::string(e.what()).find(key) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
  // Accepted: the same keys with their own strategy, pp > 1 with untied embeddings.
  CHECK_NOTHROW(train_settings(load_config(train_schema(), {}, {"strategy.name=cocktail", "strategy.bits=32",
                                                                 "parallel.pp=2", "model.tie_embeddings=false"})));
}

// Settings a strategy cannot honour, where two features meet: the reproducible kernels do
// not cover a strategy's own arithmetic, the outlier skip has no AdamW update to skip under
// demo or the compressed Adams, and strategy.bits is one key with a range per strategy
// (the simulator reads it through the same strategy_bits).
TEST_CASE("strategies refuse the kernel mode, outlier skip and bit widths they cannot honour", "[cocktail][demo]") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"strategy.name=cocktail", "train.kernels=reproducible"}, "train.kernels"},
      {{"strategy.name=onebit_adam", "train.kernels=reproducible"}, "train.kernels"},
      {{"strategy.name=demo", "optim.outlier_z=6"}, "optim.outlier_z"},
      {{"strategy.name=quantized_adam", "optim.outlier_z=6"}, "optim.outlier_z"},
      {{"strategy.name=quantized_adam", "strategy.bits=16"}, "strategy.bits"},
      {{"strategy.name=cocktail", "strategy.bits=16"}, "strategy.bits"}};
  for (const auto& [sets, key] : cases) {
    INFO(sets[0] << " " << sets[1]);
    try {
      (void)train_settings(load_config(train_schema(), {}, sets));
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK(std::string(e.what()).find(key) != std::string::npos);
    }
  }
  CHECK_NOTHROW(train_settings(load_config(train_schema(), {}, {"train.kernels=reproducible"})));
  CHECK_NOTHROW(train_settings(load_config(train_schema(), {}, {"strategy.name=cocktail", "optim.outlier_z=6"})));
  CHECK(dtb::strategy_bits(load_config(train_schema(), {}, {"strategy.name=quantized_adam", "strategy.bits=4"})) == 4);
}

}  // namespace

int main(int argc, char** argv) {
  coll::MpiSession mpi(&argc, &argv);
  const int failed = Catch::Session().run(argc, argv);
  const int64_t worst = world().untimed_sum(failed);
  return worst ? 1 : 0;
}
