// Tests of the data path: h5::File (round trips, errors, atomic writes), the dataset makers
// (prepare.hpp), TokenSplit's checks and batches, and the `dtbench prepare` command line.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "data/prepare.hpp"
#include "data/splitmix64.hpp"
#include "h5file.hpp"
#include "usage_error.hpp"

namespace fs = std::filesystem;
using dtb::UsageError;
using dtb::h5::DType;
using dtb::h5::File;

namespace {

// A fresh folder under the system temp folder, removed with everything in it at scope end.
// ctest runs test cases as parallel processes, hence the pid in the name.
class TempDir {
 public:
  TempDir() {
    static int count = 0;
    path_ = fs::temp_directory_path() /
            ("dtb-test-data-" + std::to_string(getpid()) + "-" + std::to_string(count++));
    fs::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Runs ACTION, which must throw UsageError whose message contains each of PARTS.
template <typename Action>
void require_usage_error(Action&& action, std::initializer_list<std::string> parts) {
  try {
    action();
  } catch (const UsageError& e) {
    for (const std::string& part : parts) CHECK_THAT(e.what(), Catch::Contains(part));
    return;
  }
  FAIL("no UsageError thrown; expected one mentioning " << *parts.begin());
}

// A token file written by hand, for the defects prepare never produces.
template <typename T>
void write_token_file(const std::string& path, const std::vector<T>& train, int64_t vocab_size,
                      std::vector<uint64_t> shape = {}) {
  File file = File::create(path);
  file.write<T>("train/tokens", train, shape);
  file.set_attr("/", "format", std::string(dtb::kTokenFormat));
  file.set_attr("/", "version", dtb::kTokenFormatVersion);
  file.set_attr("/", "vocab_size", vocab_size);
  file.commit();
}

std::vector<uint32_t> as_ids(const std::string& bytes) {
  std::vector<uint32_t> ids;
  for (const unsigned char byte : bytes) ids.push_back(byte);
  return ids;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
};

Batch cut_batch(const dtb::TokenSplit& split, uint64_t seed, uint64_t index, int B, int T, int rank = 0,
                int world = 1) {
  const size_t n = static_cast<size_t>(B / world) * T;
  Batch batch{std::vector<int32_t>(n), std::vector<int32_t>(n)};
  split.batch(seed, index, B, T, rank, world, batch.inputs.data(), batch.targets.data());
  return batch;
}

// Exit status of a shell command (stdout and stderr of the command go to the files named in it).
int exit_status(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

// ---------------------------------------------------------------------------------- h5::File

TEST_CASE("h5: every element type round-trips with its shape and dtype") {
  TempDir dir;
  const std::string path = dir.file("nested/folders/all.h5");
  {
    File file = File::create(path);
    file.write<uint8_t>("u8", std::vector<uint8_t>{0, 7, 255});
    file.write<uint16_t>("g/u16", std::vector<uint16_t>{1, 65535});
    file.write<uint32_t>("g/h/u32", std::vector<uint32_t>{4000000000u});
    file.write<int32_t>("i32", std::vector<int32_t>{-5, 6, -7, 8, -9, 10}, {2, 3});
    file.write<int64_t>("i64", std::vector<int64_t>{-(int64_t{1} << 40)});
    file.write<float>("f32", std::vector<float>{1.5f, -0.25f});
    file.write<double>("f64", std::vector<double>{3.141592653589793});
    file.write<float>("empty", std::vector<float>{});
    file.commit();
  }
  const File file = File::open_read(path);
  CHECK(file.read<uint8_t>("u8") == std::vector<uint8_t>{0, 7, 255});
  CHECK(file.read<uint16_t>("g/u16") == std::vector<uint16_t>{1, 65535});
  CHECK(file.read<uint32_t>("g/h/u32") == std::vector<uint32_t>{4000000000u});
  CHECK(file.read<int32_t>("i32") == std::vector<int32_t>{-5, 6, -7, 8, -9, 10});
  CHECK(file.read<int64_t>("i64") == std::vector<int64_t>{-(int64_t{1} << 40)});
  CHECK(file.read<float>("f32") == std::vector<float>{1.5f, -0.25f});
  CHECK(file.read<double>("f64") == std::vector<double>{3.141592653589793});
  CHECK(file.read<float>("empty").empty());
  CHECK(file.shape("i32") == std::vector<uint64_t>{2, 3});
  CHECK(file.shape("g/u16") == std::vector<uint64_t>{2});
  CHECK(file.dtype("u8") == DType::kU8);
  CHECK(file.dtype("g/u16") == DType::kU16);
  CHECK(file.dtype("g/h/u32") == DType::kU32);
  CHECK(file.dtype("i32") == DType::kI32);
  CHECK(file.dtype("i64") == DType::kI64);
  CHECK(file.dtype("f32") == DType::kF32);
  CHECK(file.dtype("f64") == DType::kF64);
  CHECK(file.read<double>("g/u16") == std::vector<double>{1.0, 65535.0});  // converted on read
}

TEST_CASE("h5: strings and attributes round-trip, exists walks nested paths") {
  TempDir dir;
  const std::string path = dir.file("attrs.h5");
  const std::string text = "model:\n  name: gpt2-tiny  # UTF-8: \xc3\xa9\xe2\x82\xac\n";
  {
    File file = File::create(path);
    file.write_string("config/yaml", text);
    file.write<int32_t>("run/loss", std::vector<int32_t>{1});
    file.set_attr("/", "format", std::string("first"));
    file.set_attr("/", "format", std::string("second"));  // replaces
    file.set_attr("/", "steps", int64_t{-12345678901});
    file.set_attr("run/loss", "lr", 3e-4);
    file.set_attr("run", "empty", std::string());
    file.commit();
  }
  const File file = File::open_read(path);
  CHECK(file.read_string("config/yaml") == text);
  CHECK(file.dtype("config/yaml") == DType::kString);
  CHECK(file.attr_string("/", "format") == "second");
  CHECK(file.attr_int("/", "steps") == -12345678901);
  CHECK(file.attr_double("/", "steps") == -12345678901.0);
  CHECK(file.attr_double("run/loss", "lr") == 3e-4);
  CHECK(file.attr_string("run", "empty").empty());
  CHECK(file.has_attr("run/loss", "lr"));
  CHECK_FALSE(file.has_attr("run/loss", "momentum"));
  CHECK_FALSE(file.has_attr("no/such/object", "lr"));
  CHECK(file.exists("/"));
  CHECK(file.exists("run"));
  CHECK(file.exists("/run/loss"));
  CHECK_FALSE(file.exists("run/accuracy"));
  CHECK_FALSE(file.exists("missing/group/deep"));
  CHECK_FALSE(file.exists("run/loss/below_a_dataset"));
}

TEST_CASE("h5: reading what is not there or of another type names the file") {
  TempDir dir;
  const std::string path = dir.file("small.h5");
  {
    File file = File::create(path);
    file.write<uint16_t>("tokens", std::vector<uint16_t>{1, 2});
    file.write_string("note", "hello");
    file.set_attr("/", "name", std::string("x"));
    file.commit();
  }
  const File file = File::open_read(path);
  require_usage_error([&] { file.read<float>("weights"); }, {path, "no dataset 'weights'"});
  require_usage_error([&] { file.read<float>("a/b/c"); }, {path, "no dataset 'a/b/c'"});
  require_usage_error([&] { file.shape("weights"); }, {path, "weights"});
  require_usage_error([&] { file.read<float>("note"); }, {path, "not numeric"});
  require_usage_error([&] { file.read_string("tokens"); }, {path, "not a string"});
  require_usage_error([&] { file.attr_int("/", "name"); }, {path, "not an integer"});
  require_usage_error([&] { file.attr_string("/", "missing"); }, {path, "no attribute 'missing'"});
  require_usage_error([&] { file.attr_string("ghost", "name"); }, {path, "ghost"});
}

TEST_CASE("h5: open_read refuses missing, foreign and non-HDF5 files by name") {
  TempDir dir;
  require_usage_error([&] { File::open_read(dir.file("nope.h5")); }, {dir.file("nope.h5"), "no such file"});
  write_bytes(dir.file("text.h5"), "just some text, not HDF5\n");
  require_usage_error([&] { File::open_read(dir.file("text.h5")); }, {dir.file("text.h5"), "not an HDF5 file"});
  require_usage_error([&] { File::open_read(dir.path().string()); }, {dir.path().string()});
}

TEST_CASE("h5: a file dropped without commit leaves neither the file nor its temporary") {
  TempDir dir;
  const std::string path = dir.file("sub/partial.h5");
  const std::string tmp = path + ".tmp-" + std::to_string(getpid());
  {
    File file = File::create(path);
    file.write<float>("w", std::vector<float>(1000, 1.0f));
    CHECK(fs::exists(tmp));  // the data goes to the temporary until commit
    CHECK_FALSE(fs::exists(path));
  }
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(tmp));

  File moved = [&] {
    File file = File::create(path);
    file.write<float>("w", std::vector<float>{2.0f});
    return file;
  }();
  moved.commit();
  CHECK(fs::exists(path));
  CHECK_FALSE(fs::exists(tmp));
  CHECK(File::open_read(path).read<float>("w") == std::vector<float>{2.0f});
}

TEST_CASE("h5: commit replaces an existing file whole") {
  TempDir dir;
  const std::string path = dir.file("replace.h5");
  for (const float value : {1.0f, 2.0f}) {
    File file = File::create(path);
    file.write<float>("v", std::vector<float>{value});
    file.commit();
  }
  CHECK(File::open_read(path).read<float>("v") == std::vector<float>{2.0f});
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
}

// ---------------------------------------------------------------------------------- prepare

TEST_CASE("data: prepare_text stores the files' bytes, train then val, in the documented layout") {
  TempDir dir;
  std::string first = "Hello, fortunes!\n";
  std::string second = std::string("\x00\x01\xff\xc3\xa9 binary and UTF-8 bytes\n", 28);
  second += std::string(55, 'z');  // 17 + 83 = 100 bytes in all
  write_bytes(dir.file("a.txt"), first);
  write_bytes(dir.file("b.txt"), second);
  const std::string out = dir.file("data/text.h5");

  const dtb::PreparedDataset made = dtb::prepare_text({dir.file("a.txt"), dir.file("b.txt")}, out, 0.1);
  CHECK(made.train_tokens == 90);
  CHECK(made.val_tokens == 10);
  CHECK(made.vocab_size == 256);

  const File file = File::open_read(out);
  std::vector<uint16_t> tokens = file.read<uint16_t>("train/tokens");
  const std::vector<uint16_t> val = file.read<uint16_t>("val/tokens");
  tokens.insert(tokens.end(), val.begin(), val.end());
  const std::vector<uint32_t> all(tokens.begin(), tokens.end());
  CHECK(all == as_ids(first + second));
  CHECK(file.dtype("train/tokens") == DType::kU16);
  CHECK(file.dtype("val/tokens") == DType::kU16);
  CHECK(file.attr_string("/", "format") == "dtbench-tokens");
  CHECK(file.attr_int("/", "version") == 1);
  CHECK(file.attr_int("/", "vocab_size") == 256);
  CHECK(file.attr_string("/", "tokenizer") == "byte");
  CHECK(file.attr_string("/", "dtype") == "uint16");
  CHECK_THAT(file.attr_string("/", "source"), Catch::Contains("a.txt"));

  const dtb::TokenSplit train(out, "train", 256, 8);
  CHECK(std::vector<uint32_t>(train.tokens().begin(), train.tokens().end()) ==
        std::vector<uint32_t>(all.begin(), all.begin() + 90));
}

TEST_CASE("data: val is the last round(fraction * n) tokens") {
  TempDir dir;
  write_bytes(dir.file("t.txt"), std::string(30, 'x'));
  // 0.05 * 30 = 1.5 rounds to 2 (away from zero), leaving 28 for train.
  const dtb::PreparedDataset made = dtb::prepare_text({dir.file("t.txt")}, dir.file("t.h5"), 0.05);
  CHECK(made.val_tokens == 2);
  CHECK(made.train_tokens == 28);
}

TEST_CASE("data: prepare_text refuses bad input with the file or value named") {
  TempDir dir;
  write_bytes(dir.file("empty.txt"), "");
  write_bytes(dir.file("tiny.txt"), "abc");
  write_bytes(dir.file("ok.txt"), std::string(100, 'k'));
  const std::string out = dir.file("out.h5");
  require_usage_error([&] { dtb::prepare_text({}, out, 0.05); }, {"no text files"});
  require_usage_error([&] { dtb::prepare_text({dir.file("missing.txt")}, out, 0.05); },
                      {dir.file("missing.txt"), "no such file"});
  require_usage_error([&] { dtb::prepare_text({dir.path().string()}, out, 0.05); }, {dir.path().string()});
  require_usage_error([&] { dtb::prepare_text({dir.file("empty.txt")}, out, 0.05); }, {"empty.txt", "empty"});
  require_usage_error([&] { dtb::prepare_text({dir.file("tiny.txt")}, out, 0.05); }, {"tiny.txt", "at least 2"});
  for (const double bad : {0.0, -0.1, 0.51, 1.0, std::nan("")}) {
    require_usage_error([&] { dtb::prepare_text({dir.file("ok.txt")}, out, bad); }, {"--val-fraction", "(0, 0.5]"});
  }
  CHECK_FALSE(fs::exists(out));  // nothing half written
}

TEST_CASE("data: the default corpus lists plain text files only, sorted by name") {
  TempDir dir;
  for (const char* name : {"zen", "art", "art.dat", "misc"}) write_bytes(dir.file(name), "text\n%\n");
  fs::create_symlink(dir.file("art"), dir.file("art.u8"));
  fs::create_symlink(dir.file("zen"), dir.file("link-to-zen"));
  fs::create_directories(dir.file("off"));
  CHECK(dtb::default_corpus_files(dir.path().string()) ==
        std::vector<std::string>{dir.file("art"), dir.file("misc"), dir.file("zen")});

  require_usage_error([&] { dtb::default_corpus_files(dir.file("no-such-folder")); },
                      {"no default corpus", dir.file("no-such-folder"), "fortunes"});
  TempDir empty;
  require_usage_error([&] { dtb::default_corpus_files(empty.path().string()); }, {"no default corpus"});
}

TEST_CASE("data: prepare_synthetic stores uint16 up to vocab 65536, uint32 above, ids in range") {
  TempDir dir;
  for (const int64_t vocab : {int64_t{300}, int64_t{65536}, int64_t{70000}}) {
    const std::string out = dir.file("synth-" + std::to_string(vocab) + ".h5");
    const dtb::PreparedDataset made = dtb::prepare_synthetic(out, vocab, 20000, 7);
    CHECK(made.train_tokens + made.val_tokens == 20000);
    CHECK(made.val_tokens == 1000);

    const File file = File::open_read(out);
    const DType expected = vocab <= 65536 ? DType::kU16 : DType::kU32;
    CHECK(file.dtype("train/tokens") == expected);
    CHECK(file.attr_string("/", "dtype") == dtb::h5::dtype_name(expected));
    CHECK(file.attr_string("/", "tokenizer") == "synthetic");
    CHECK(file.attr_int("/", "vocab_size") == vocab);

    const dtb::TokenSplit train(out, "train", static_cast<int>(vocab), 16);
    uint32_t max_id = 0;
    for (const uint32_t id : train.tokens()) max_id = std::max(max_id, id);
    CHECK(max_id < vocab);
    CHECK(max_id > vocab * 9 / 10);  // uniform: 19000 draws reach the top tenth
  }
}

TEST_CASE("data: prepare_synthetic is a pure function of its seed") {
  TempDir dir;
  dtb::prepare_synthetic(dir.file("a.h5"), 1000, 5000, 42);
  dtb::prepare_synthetic(dir.file("b.h5"), 1000, 5000, 42);
  dtb::prepare_synthetic(dir.file("c.h5"), 1000, 5000, 43);
  const auto train = [&](const char* name) { return File::open_read(dir.file(name)).read<uint16_t>("train/tokens"); };
  CHECK(train("a.h5") == train("b.h5"));
  CHECK(train("a.h5") != train("c.h5"));
  // The documented generator: token i = SplitMix64(seed).next() number i, mod vocab.
  dtb::SplitMix64 random(42);
  const std::vector<uint16_t> tokens = train("a.h5");
  for (size_t i = 0; i < 10; ++i) CHECK(tokens[i] == random.next() % 1000);

  require_usage_error([&] { dtb::prepare_synthetic(dir.file("d.h5"), 1, 5000, 1); }, {"--vocab 1"});
  require_usage_error([&] { dtb::prepare_synthetic(dir.file("d.h5"), (int64_t{1} << 32) + 1, 5000, 1); },
                      {"--vocab"});
  require_usage_error([&] { dtb::prepare_synthetic(dir.file("d.h5"), 1000, 10, 1); }, {"--tokens 10"});
}

// -------------------------------------------------------------------------------- TokenSplit

TEST_CASE("data: batch windows are deterministic and follow the token stream") {
  TempDir dir;
  const std::string path = dir.file("s.h5");
  dtb::prepare_synthetic(path, 500, 4000, 3);
  const dtb::TokenSplit split(path, "train", 512, 16);
  constexpr int B = 4, T = 16;
  const uint64_t seed = 1234;

  const Batch first = cut_batch(split, seed, 5, B, T);
  CHECK(cut_batch(split, seed, 5, B, T).inputs == first.inputs);
  CHECK(cut_batch(split, seed, 6, B, T).inputs != first.inputs);
  CHECK(cut_batch(split, seed + 1, 5, B, T).inputs != first.inputs);

  const std::span<const uint32_t> tokens = split.tokens();
  for (int row = 0; row < B; ++row) {
    // The documented offset rule, in dataset.hpp.
    const uint64_t offset = dtb::splitmix64_at(seed, 5 * B + row) % (split.size() - T);
    for (int t = 0; t < T; ++t) {
      CHECK(first.inputs[row * T + t] == static_cast<int32_t>(tokens[offset + t]));
      CHECK(first.targets[row * T + t] == static_cast<int32_t>(tokens[offset + t + 1]));
    }
  }
}

TEST_CASE("data: windows can reach both ends of the split") {
  TempDir dir;
  const std::string path = dir.file("short.h5");
  write_token_file<uint16_t>(path, {0, 1, 2, 3, 4}, 5);
  const dtb::TokenSplit split(path, "train", 5, 3);  // two offsets: 0 and 1
  bool seen[2] = {false, false};
  for (uint64_t index = 0; index < 64; ++index) {
    const Batch batch = cut_batch(split, 9, index, 1, 3);
    REQUIRE((batch.inputs[0] == 0 || batch.inputs[0] == 1));
    seen[batch.inputs[0]] = true;
    CHECK(batch.targets == std::vector<int32_t>{batch.inputs[0] + 1, batch.inputs[0] + 2, batch.inputs[0] + 3});
  }
  CHECK((seen[0] && seen[1]));
}

TEST_CASE("data: the shards of world = 1..4 ranks concatenate to the whole batch") {
  TempDir dir;
  const std::string path = dir.file("s.h5");
  dtb::prepare_synthetic(path, 256, 3000, 11);
  const dtb::TokenSplit split(path, "train", 256, 8);
  constexpr int B = 12, T = 8;
  const Batch whole = cut_batch(split, 77, 3, B, T);
  for (int world = 1; world <= 4; ++world) {
    Batch joined;
    for (int rank = 0; rank < world; ++rank) {
      const Batch shard = cut_batch(split, 77, 3, B, T, rank, world);
      joined.inputs.insert(joined.inputs.end(), shard.inputs.begin(), shard.inputs.end());
      joined.targets.insert(joined.targets.end(), shard.targets.begin(), shard.targets.end());
    }
    INFO("world = " << world);
    CHECK(joined.inputs == whole.inputs);
    CHECK(joined.targets == whole.targets);
  }
}

TEST_CASE("data: batch refuses layouts that do not divide the batch") {
  TempDir dir;
  const std::string path = dir.file("s.h5");
  dtb::prepare_synthetic(path, 256, 3000, 11);
  const dtb::TokenSplit split(path, "train", 256, 8);
  std::vector<int32_t> inputs(64), targets(64);
  const auto cut = [&](int B, int T, int rank, int world) {
    return [&, B, T, rank, world] { split.batch(1, 0, B, T, rank, world, inputs.data(), targets.data()); };
  };
  require_usage_error(cut(6, 8, 0, 4), {"B = 6", "4 data-parallel ranks"});
  require_usage_error(cut(4, 8, 0, 0), {"rank 0"});
  require_usage_error(cut(4, 8, 4, 4), {"rank 4"});
  require_usage_error(cut(4, 8, -1, 4), {"rank -1"});
  require_usage_error(cut(2, 5000, 0, 1), {"T+1 = 5001"});
}

TEST_CASE("data: TokenSplit refuses unusable datasets, naming the file") {
  TempDir dir;
  const std::string synth = dir.file("synth300.h5");
  dtb::prepare_synthetic(synth, 300, 1000, 1);  // train 950, val 50
  require_usage_error([&] { dtb::TokenSplit(synth, "train", 256, 8); },
                      {synth, "vocabulary 300", "model.vocab_size = 256"});
  require_usage_error([&] { dtb::TokenSplit(synth, "val", 300, 50); }, {synth, "50 tokens", "T+1 = 51"});
  require_usage_error([&] { dtb::TokenSplit(synth, "test", 300, 8); }, {synth, "no dataset 'test/tokens'"});

  const std::string foreign = dir.file("foreign.h5");
  {
    File file = File::create(foreign);
    file.write<uint16_t>("train/tokens", std::vector<uint16_t>(100, 1));
    file.commit();
  }
  require_usage_error([&] { dtb::TokenSplit(foreign, "train", 256, 8); }, {foreign, "not a dtbench token dataset"});

  const std::string text = dir.file("text.h5");
  write_bytes(text, "plain text pretending to be HDF5");
  require_usage_error([&] { dtb::TokenSplit(text, "train", 256, 8); }, {text, "not an HDF5 file"});
  require_usage_error([&] { dtb::TokenSplit(dir.file("missing.h5"), "train", 256, 8); },
                      {dir.file("missing.h5"), "no such file"});

  const std::string big_id = dir.file("big_id.h5");
  write_token_file<uint16_t>(big_id, {1, 2, 12, 3}, 10);
  require_usage_error([&] { dtb::TokenSplit(big_id, "train", 256, 2); }, {big_id, "token id 12 at position 2"});

  const std::string negative = dir.file("negative.h5");
  write_token_file<int32_t>(negative, {1, -4, 2, 3}, 10);
  require_usage_error([&] { dtb::TokenSplit(negative, "train", 256, 2); }, {negative, "token id -4"});

  const std::string floats = dir.file("floats.h5");
  write_token_file<float>(floats, {1, 2, 3, 4}, 10);
  require_usage_error([&] { dtb::TokenSplit(floats, "train", 256, 2); }, {floats, "float32", "integers"});

  const std::string matrix = dir.file("matrix.h5");
  write_token_file<uint16_t>(matrix, {1, 2, 3, 4, 5, 6}, 10, {2, 3});
  require_usage_error([&] { dtb::TokenSplit(matrix, "train", 256, 2); }, {matrix, "2 dimensions"});
}

TEST_CASE("data: signed integer datasets in range load as token ids") {
  TempDir dir;
  const std::string path = dir.file("int64.h5");
  write_token_file<int64_t>(path, {0, 9, 4, 5}, 10);
  const dtb::TokenSplit split(path, "train", 10, 3);
  CHECK(std::vector<uint32_t>(split.tokens().begin(), split.tokens().end()) == std::vector<uint32_t>{0, 9, 4, 5});
}

TEST_CASE("data: unigram entropy is ln 2 for two equiprobable symbols, 0 for one") {
  TempDir dir;
  write_token_file<uint16_t>(dir.file("two.h5"), {0, 1, 1, 0, 0, 1, 1, 0}, 2);
  CHECK(dtb::unigram_entropy(dtb::TokenSplit(dir.file("two.h5"), "train", 2, 4)) ==
        Approx(std::log(2.0)).epsilon(1e-12));
  write_token_file<uint16_t>(dir.file("one.h5"), {3, 3, 3, 3}, 4);
  CHECK(dtb::unigram_entropy(dtb::TokenSplit(dir.file("one.h5"), "train", 4, 2)) == 0.0);

  // Through the byte tokenizer: "ab" repeated, vocab 256 with 254 ids unused.
  write_bytes(dir.file("ab.txt"), [] {
    std::string text;
    for (int i = 0; i < 50; ++i) text += "ab";
    return text;
  }());
  dtb::prepare_text({dir.file("ab.txt")}, dir.file("ab.h5"), 0.1);  // train = 90 bytes, 45 of each
  CHECK(dtb::unigram_entropy(dtb::TokenSplit(dir.file("ab.h5"), "train", 256, 4)) ==
        Approx(std::log(2.0)).epsilon(1e-12));
}

// ------------------------------------------------------------------------- dtbench prepare

TEST_CASE("data: dtbench prepare writes a dataset and refuses bad options with exit code 2") {
  TempDir dir;
  const std::string binary = DTB_BINARY;
  REQUIRE(fs::exists(binary));
  const std::string out = dir.file("cli/synth.h5"), log = dir.file("log.txt");
  const std::string redirect = " >" + log + " 2>&1";

  CHECK(exit_status(binary + " prepare --help" + redirect) == 0);
  CHECK_THAT(read_all(log), Catch::Contains("--val-fraction") && Catch::Contains("--synthetic"));

  CHECK(exit_status(binary + " prepare --synthetic --vocab 300 --tokens 2000 --seed 5 --out " + out + redirect) == 0);
  CHECK_THAT(read_all(log), Catch::Contains(out) && Catch::Contains("1900 tokens"));
  CHECK(File::open_read(out).attr_int("/", "vocab_size") == 300);

  write_bytes(dir.file("a.txt"), std::string(200, 'a'));
  CHECK(exit_status(binary + " prepare " + dir.file("a.txt") + " --val-fraction 0.1 --out " + dir.file("a.h5") +
                    redirect) == 0);
  CHECK(dtb::TokenSplit(dir.file("a.h5"), "val", 256, 8).size() == 20);

  CHECK(exit_status(binary + " prepare --no-such-option" + redirect) == 2);
  CHECK_THAT(read_all(log), Catch::Contains("dtbench prepare: ") && Catch::Contains("see dtbench prepare --help"));
  CHECK(exit_status(binary + " prepare --vocab 300" + redirect) == 2);
  CHECK(exit_status(binary + " prepare --synthetic --val-fraction 0.9 --out " + out + redirect) == 2);
  CHECK(exit_status(binary + " prepare " + dir.file("missing.txt") + redirect) == 2);
}
