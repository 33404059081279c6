// AQ-SGD's pieces on one rank (issue 11): the per-channel quantizer against values worked
// out by hand, its wire size, stochastic rounding's mean, the buffers converging to a
// repeated activation with sender and receiver in step, the epoch sampler's permutations,
// the config and checkpoint refusals, and the simulator charging the same wire bytes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>

#include "data/epoch_sampler.hpp"
#include "parallel/pp_compress.hpp"
#include "sim/sim_config.hpp"
#include "sim/simulator.hpp"
#include "train/train_config.hpp"
#include "usage_error.hpp"

using namespace dtb;
using namespace dtb::par;

namespace {

std::vector<float> decoded(const std::vector<std::byte>& wire, int C, int bits, size_t n) {
  std::vector<float> out(n);
  dequantize(wire, C, bits, out);
  return out;
}

std::vector<std::byte> quantized(const std::vector<float>& x, int C, int bits, bool stochastic = false,
                                 uint64_t stream = 0) {
  std::vector<std::byte> wire(quantized_bytes(x.size() / size_t(C), C, bits));
  quantize(x, C, bits, stochastic, stream, wire);
  return wire;
}

}  // namespace

TEST_CASE("quantizer: per-channel max scaling, 3 bits, by hand", "[pp_compress]") {
  // Two token rows, two channels. Scales: channel 0 max |.| = 1, channel 1 = 2. h = 2^2 = 4.
  // x / s h: (4, -1), (-1, 4); round and clip to [-4, 3]: (3, -1), (-1, 3); stored + 4:
  // 7, 3, 3, 7 -> bits LSB first: 7 | 3 << 3 | 3 << 6 | 7 << 9 = 0x0EDF.
  const std::vector<float> x = {1.0f, -0.5f, -0.25f, 2.0f};
  const std::vector<std::byte> wire = quantized(x, 2, 3);
  REQUIRE(wire.size() == 2 * 4 + 2);  // two fp32 scales, 12 bits in 2 bytes
  float scale[2];
  std::memcpy(scale, wire.data(), sizeof scale);
  CHECK(scale[0] == 1.0f);
  CHECK(scale[1] == 2.0f);
  CHECK(wire[8] == std::byte{0xDF});
  CHECK(wire[9] == std::byte{0x0E});
  // Decoded q / h s: (3/4, -1/4 * 2), (-1/4, 3/4 * 2).
  CHECK(decoded(wire, 2, 3, 4) == std::vector<float>{0.75f, -0.5f, -0.25f, 1.5f});
}

TEST_CASE("quantizer: ties round to even, zero channels stay zero, odd widths pack", "[pp_compress]") {
  // 2 bits, h = 2, one channel with max 1: 0.25 -> 0.5 -> 0 (even), 0.75 -> 1.5 -> 2 -> clipped 1.
  CHECK(decoded(quantized({1.0f, 0.25f, 0.75f, -1.0f}, 1, 2), 1, 2, 4) == std::vector<float>{0.5f, 0.0f, 0.5f, -1.0f});
  CHECK(decoded(quantized({0.0f, 0.0f}, 1, 4), 1, 4, 2) == std::vector<float>{0.0f, 0.0f});
  // 5 bits over 7 values: 35 bits in 5 bytes, each value within s / 2h of the input, the
  // channel's max (which clips to h - 1) within s / h.
  const std::vector<float> x = {0.1f, -0.7f, 0.33f, 0.9f, -0.05f, 0.5f, -0.9f};
  const std::vector<std::byte> wire = quantized(x, 1, 5);
  CHECK(wire.size() == 4 + 5);
  const std::vector<float> y = decoded(wire, 1, 5, x.size());
  for (size_t i = 0; i < x.size(); ++i) CHECK(std::abs(y[i] - x[i]) <= (std::abs(x[i]) == 0.9f ? 0.9 / 16 : 0.9 / 32) + 1e-7);
}

TEST_CASE("quantizer: 32 bits is lossless to float rounding", "[pp_compress]") {
  std::vector<float> x(64 * 8);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i) * 0.37) * (1 + i % 8));
  const std::vector<float> y = decoded(quantized(x, 8, 32), 8, 32, x.size());
  for (size_t i = 0; i < x.size(); ++i) CHECK(std::abs(y[i] - x[i]) <= 8.0f * 1e-7f);
}

TEST_CASE("quantizer: stochastic rounding is unbiased and picks a neighbour", "[pp_compress]") {
  // One channel, max 1, 3 bits (h = 4): 0.3 -> 1.2, so 0.25 or 0.5, mean 0.3.
  double sum = 0;
  const int n = 4000;
  for (int s = 0; s < n; ++s) {
    const float v = decoded(quantized({1.0f, 0.3f}, 1, 3, true, uint64_t(s)), 1, 3, 2)[1];
    CHECK((v == 0.25f || v == 0.5f));
    sum += v;
  }
  CHECK(std::abs(sum / n - 0.3) < 0.01);
}

TEST_CASE("wire bytes: the formula", "[pp_compress]") {
  // 2 sequences of 16 x 32: fp32 4096 bytes; 4 bits: 128 + 512; aqsgd with one first-time sequence.
  CHECK(pp_wire_bytes(2, 0, 16, 32, 0) == 2 * 16 * 32 * 4);
  CHECK(pp_wire_bytes(2, 0, 16, 32, 4) == 32 * 4 + 2 * 16 * 32 * 4 / 8);
  CHECK(pp_wire_bytes(2, 1, 16, 32, 3) == 16 * 32 * 4 + 32 * 4 + 16 * 32 * 3 / 8);
  CHECK(pp_wire_bytes(2, 2, 16, 32, 3) == 2 * 16 * 32 * 4);
}

TEST_CASE("aqsgd: the buffers converge to a repeated activation, both ends in step", "[pp_compress]") {
  // Stage 0 sends one micro-batch of 2 samples (ids 5, 9) to stage 1: first A0 (in fp32),
  // then, again and again, A1 = A0 + D, whose change the 4-bit deltas close step by step.
  const int T = 4, C = 8, rows = 2;
  PpCompressSettings s;
  s.mode = PpMode::kAqSgd, s.fw_bits = 4, s.bw_bits = 8, s.seed = 7;
  PpCompressor sender(s, rows, T, C, 1, 0, 2), receiver(s, rows, T, C, 1, 1, 2);
  std::vector<float> a0(size_t(rows * T * C)), a1(a0.size()), got(a0.size());
  double max_d = 0;
  for (size_t i = 0; i < a0.size(); ++i) {
    a0[i] = float(std::cos(double(i) * 1.3) * 3);
    a1[i] = a0[i] + float(std::sin(double(i) * 0.7));
    max_d = std::max(max_d, double(std::abs(a1[i] - a0[i])));
  }
  const std::vector<uint32_t> ids = {5, 9};
  double prev = 0;
  for (int step = 0; step < 12; ++step) {
    const std::vector<float>& a = step == 0 ? a0 : a1;
    sender.begin_step(step, ids);
    receiver.begin_step(step, ids);
    const std::span<const std::byte> wire = sender.encode_forward(0, 0, a.data());
    REQUIRE(wire.size() == receiver.forward_bytes(0));
    // The first pass goes in fp32, the later ones as 4-bit deltas.
    CHECK(wire.size() == pp_wire_bytes(2, step == 0 ? 2 : 0, T, C, 4));
    receiver.decode_forward(0, wire, got.data());
    double err = 0;
    for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::abs(got[i] - a[i])));
    INFO("step " << step << " max |m - a| " << err);
    CHECK(sender.sent() == receiver.received());  // m(x_i) bitwise the same at both ends
    if (step == 0) CHECK(err == 0);
    else if (step == 1) CHECK(err <= max_d / 8 + 1e-6);  // a delta's error <= its channel's max / h
    else CHECK(err <= prev / 8 + 1e-6);
    prev = err;
  }
  CHECK(prev <= 1e-6);
  CHECK(sender.buffer_bytes() == 2 * (sizeof(uint32_t) + size_t(T * C) * sizeof(float)));
}

TEST_CASE("aqsgd: a checkpoint's buffers at other cuts are refused", "[pp_compress]") {
  PpCompressSettings s;
  s.mode = PpMode::kAqSgd;
  PpCompressor c(s, 1, 2, 2, 1, 0, 2);
  CheckpointState ck;
  ck.pp_compress = "aqsgd", ck.pp_buffer_width = 4;
  ck.pp_buffers = {{3, {1}, {1, 2, 3, 4}}};
  CHECK_THROWS_AS(load_pp_buffers(ck, "ck.h5", c, {0, 2, 4}, 0), UsageError);  // this run cuts after layer 2
  load_pp_buffers(ck, "ck.h5", c, {0, 3, 4}, 0);
  CHECK(c.sent().at(1) == std::vector<float>{1, 2, 3, 4});
}

TEST_CASE("epoch sampler: each epoch visits every sequence once, in its own order", "[pp_compress][data]") {
  const std::filesystem::path data = std::filesystem::temp_directory_path() / "dtb_test_pp_compress_tokens.h5";
  const std::string cmd = std::string(DTB_BINARY) + " prepare --synthetic --vocab 256 --tokens 4000 --out " + data.string() + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const int T = 8, B = 6;
  TokenSplit split(data.string(), "train", 256, T);
  EpochSampler sampler(split, T, 9);  // 9 samples, batches of 6: epochs end mid-batch
  REQUIRE(sampler.size() == 9);
  std::vector<int32_t> in(B * T), tgt(B * T);
  std::vector<uint32_t> ids(B), all;
  for (uint64_t b = 0; b < 6; ++b) {  // 36 samples: 4 epochs
    sampler.batch(42, b, B, 0, 1, in.data(), tgt.data(), ids.data());
    for (int r = 0; r < B; ++r) {  // the row is sequence id's window
      for (int t = 0; t < T; ++t) {
        CHECK(uint32_t(in[size_t(r * T + t)]) == split.tokens()[ids[size_t(r)] * T + size_t(t)]);
        CHECK(uint32_t(tgt[size_t(r * T + t)]) == split.tokens()[ids[size_t(r)] * T + size_t(t) + 1]);
      }
    }
    all.insert(all.end(), ids.begin(), ids.end());
  }
  for (int e = 0; e < 4; ++e) {
    const std::set<uint32_t> epoch(all.begin() + e * 9, all.begin() + (e + 1) * 9);
    CHECK(epoch.size() == 9);
    CHECK(*epoch.rbegin() == 8);
  }
  CHECK(!std::equal(all.begin(), all.begin() + 9, all.begin() + 9));  // shuffled anew
  // DP ranks take their rows of the same global batch; the cursor of batch 5 is epoch 3, place 3.
  std::vector<uint32_t> half(3);
  sampler.batch(42, 2, B, 1, 2, in.data(), tgt.data(), half.data());
  CHECK(std::equal(half.begin(), half.end(), all.begin() + 2 * B + 3));
  CHECK(sampler.cursor(5, B).epoch == 3);
  CHECK(sampler.cursor(5, B).position == 3);
  CHECK_THROWS_AS(EpochSampler(split, T, int64_t(split.size())), UsageError);
  std::filesystem::remove(data);
}

TEST_CASE("config: pp_compress refuses what it cannot do, in one line", "[pp_compress][config]") {
  auto settings = [](std::vector<std::string> sets) { return train_settings(load_config(train_schema(), {}, sets)); };
  CHECK_THROWS_WITH(settings({"parallel.pp_compress=directq"}), Catch::Contains("needs parallel.pp >= 2"));
  CHECK_THROWS_WITH(settings({"parallel.pp=2", "parallel.pp_compress=aqsgd"}), Catch::Contains("data.sampler = epoch"));
  CHECK_THROWS_WITH(settings({"parallel.pp=2", "parallel.dp=2", "data.sampler=epoch", "parallel.pp_compress=aqsgd"}),
                    Catch::Contains("parallel.dp = 1"));
  CHECK_THROWS_AS(settings({"parallel.pp=2", "parallel.pp_compress=directq", "parallel.pp_fw_bits=1"}), UsageError);
  CHECK(settings({"parallel.pp=2", "data.sampler=epoch", "parallel.pp_compress=aqsgd"}).parallel.pp_fw_bits == 4);
}

TEST_CASE("sim: the pipeline bytes are the trainer's wire formula", "[pp_compress][sim]") {
  // PP 2, 2 micro-batches of 4 sequences of 64 x 64 (the trainer's default shape), 500 Mbps.
  auto run = [](const std::vector<std::string>& extra) {
    Config c(sim::sim_schema());
    const std::vector<std::string> base = {"parallel.pp=2", "parallel.microbatches=2", "train.batch_size=8", "train.seq_len=64",
                                 "model.n_embd=64", "model.tie_embeddings=false",
                                 "net.profile=" + std::string(DTB_SOURCE_DIR) + "/configs/net/aqsgd-500m.yaml"};
    for (const std::string& s : base) c.set(s);
    for (const std::string& s : extra) c.set(s);
    return sim::simulate(sim::sim_settings(c));
  };
  const sim::SimResult none = run({}), direct = run({"parallel.pp_compress=directq", "parallel.pp_fw_bits=3"});
  const sim::SimResult aqsgd = run({"parallel.pp_compress=aqsgd", "parallel.pp_bw_bits=6"});
  // Per rank (2 ranks): 2 micro-batches forward from stage 0 and backward from stage 1.
  CHECK(none.pp_bytes.intra == Approx(2.0 * 2 * 4 * 64 * 64 * 4 / 2));
  CHECK(direct.pp_bytes.intra == Approx(2.0 * double(pp_wire_bytes(4, 0, 64, 64, 3) + pp_wire_bytes(4, 0, 64, 64, 8)) / 2));
  CHECK(aqsgd.pp_bytes.intra == Approx(2.0 * double(pp_wire_bytes(4, 0, 64, 64, 4) + pp_wire_bytes(4, 0, 64, 64, 6)) / 2));
  CHECK(direct.time.step < none.time.step);
}

TEST_CASE("sim: AQ-SGD's buffers are in the memory per rank, both ends of every boundary", "[pp_compress][sim]") {
  // 3 stages of 1 layer, T 64, C 64, 4096 samples: each sample's buffer is its 4-byte id and
  // 64 x 64 fp32 values, once per boundary end. The middle stage holds two ends, 2 x 4096 x
  // (4 + 16384) = 134,250,496 bytes, far more than any stage's weights, so it is the fullest.
  auto run = [](const std::vector<std::string>& extra) {
    Config c(sim::sim_schema());
    const std::vector<std::string> base = {"parallel.pp=3", "parallel.microbatches=3", "train.batch_size=6",
                                           "train.seq_len=64", "model.n_embd=64", "model.n_layer=3",
                                           "data.epoch_samples=4096",
                                           "net.profile=" + std::string(DTB_SOURCE_DIR) + "/configs/net/aqsgd-500m.yaml"};
    for (const std::string& s : base) c.set(s);
    for (const std::string& s : extra) c.set(s);
    return sim::simulate(sim::sim_settings(c)).memory;
  };
  const sim::MemoryPerRank none = run({}), direct = run({"parallel.pp_compress=directq"});
  const sim::MemoryPerRank aqsgd = run({"parallel.pp_compress=aqsgd"});
  CHECK(none.pp_buffers == 0);
  CHECK(direct.pp_buffers == 0);  // DirectQ keeps no state
  CHECK(direct.total() == none.total());
  CHECK(aqsgd.stage == 1);
  CHECK(aqsgd.pp_buffers == 2.0 * 4096 * (4 + 64 * 64 * 4));
  CHECK(aqsgd.total() == Approx(aqsgd.params + aqsgd.grads + aqsgd.optimizer + aqsgd.activations + 134250496.0));
  // Two stages: each holds one end.
  CHECK(run({"parallel.pp=2", "parallel.microbatches=2", "model.n_layer=2", "parallel.pp_compress=aqsgd"}).pp_buffers ==
        4096.0 * (4 + 64 * 64 * 4));
  CHECK(run({"parallel.pp_compress=aqsgd", "data.epoch_samples=0"}).pp_buffers == 0);  // unknown: not counted
}
