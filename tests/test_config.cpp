// The config loader: merge order, --set, and one clear UsageError per class of bad input.
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <fstream>

#include "config.hpp"

using dtb::Config;
using dtb::KeySpec;
using dtb::KeyType;
using dtb::UsageError;
using Catch::Matchers::Contains;

namespace {

std::vector<KeySpec> schema() {
  return {
      {"model.n_layer", KeyType::kInt, "2", 1, 64, {}, "layers"},
      {"model.name", KeyType::kString, "tiny", 1, 0, {}, "name"},
      {"optim.lr", KeyType::kFloat, "0.001", 0, 1, {}, "lr", true},
      {"train.verbose", KeyType::kBool, "false", 1, 0, {}, "verbose"},
      {"train.schedule", KeyType::kChoice, "gpipe", 1, 0, {"gpipe", "1f1b"}, "schedule"},
  };
}

std::string write_temp(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("dtb_test_config_" + name);
  std::ofstream(path) << text;
  return path.string();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("defaults, files in order, then --set", "[config]") {
  auto a = write_temp("a.yaml", "model:\n  n_layer: 4\n  name: small\noptim:\n  lr: 0.01\n");
  auto b = write_temp("b.yaml", "model:\n  n_layer: 8\n");
  Config c = dtb::load_config(schema(), {a, b}, {"optim.lr=0.5", "train.schedule=1f1b"});
  CHECK(c.get_int("model.n_layer") == 8);
  CHECK(c.origin("model.n_layer") == b);
  CHECK(c.get_string("model.name") == "small");
  CHECK(c.get_float("optim.lr") == 0.5);
  CHECK(c.origin("optim.lr") == "--set");
  CHECK(c.get_string("train.schedule") == "1f1b");
  CHECK_FALSE(c.get_bool("train.verbose"));
}

TEST_CASE("the resolved YAML loads back to the same config", "[config]") {
  Config c = dtb::load_config(schema(), {}, {"model.name=a \"quoted\" name", "optim.lr=0.1"});
  auto path = write_temp("roundtrip.yaml", c.to_yaml());
  Config back = dtb::load_config(schema(), {path}, {});
  CHECK(back.to_yaml() == c.to_yaml());
  CHECK(back.get_string("model.name") == "a \"quoted\" name");
  CHECK_THAT(c.to_yaml(), Contains("  lr: 0.1\n"));
}

TEST_CASE("each class of bad config gets one line naming file, key and what is allowed",
          "[config]") {
  auto unknown = write_temp("unknown.yaml", "model:\n  n_layers: 4\n");
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {unknown}, {}); }),
             Contains(unknown) && Contains("unknown key 'model.n_layers'") &&
                 Contains("did you mean 'model.n_layer'"));

  auto wrong_type = write_temp("type.yaml", "model:\n  n_layer: four\n");
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {wrong_type}, {}); }),
             Contains(wrong_type) && Contains("'model.n_layer'") &&
                 Contains("expected an integer in [1, 64]") && Contains("'four'"));

  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"model.n_layer=0"}); }),
             Contains("--set") && Contains("in [1, 64]"));
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"optim.lr=0"}); }),
             Contains("in (0, 1]"));
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"optim.lr=nan"}); }),
             Contains("a number"));
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"train.verbose=yes"}); }),
             Contains("true or false, got") && !Contains("["));  // no numeric range on a bool
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"train.schedule=zb"}); }),
             Contains("one of gpipe, 1f1b"));
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"optim.lr"}); }),
             Contains("expected key=value"));
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {"/nonexistent/x.yaml"}, {}); }),
             Contains("/nonexistent/x.yaml: no such config file"));

  auto list = write_temp("list.yaml", "model:\n  n_layer: [1, 2]\n");
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {list}, {}); }),
             Contains(list + ":2") && Contains("expected a single value, got a list"));
  auto syntax = write_temp("syntax.yaml", "model:\n  n_layer: 4\n   name: [\n");
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {syntax}, {}); }),
             Contains(syntax) && Contains("invalid YAML"));
  auto scalar = write_temp("scalar.yaml", "just text\n");
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {scalar}, {}); }),
             Contains("expected a map of keys"));
}

TEST_CASE("a key given twice in one map is refused, naming the key, the file and both lines", "[config]") {
  // yaml-cpp keeps the first of two equal keys without a word: a second n_layer must not be
  // dropped (nor win) silently, at the top level or nested.
  auto nested = write_temp("dup.yaml", "model:\n  n_layer: 4\n  name: a\n  n_layer: 8\n");
  CHECK(error_of([&] { dtb::load_config(schema(), {nested}, {}); }) ==
        nested + ":4: key 'model.n_layer' is given twice (first at line 2); give each key once");
  auto top = write_temp("dup-top.yaml", "model:\n  n_layer: 4\noptim: {lr: 0.1}\nmodel:\n  name: b\n");
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {top}, {}); }),
             Contains(top + ":4: key 'model' is given twice (first at line 1)"));
  // The same key in two maps, and in two files, is fine (the later file wins).
  auto apart = write_temp("apart.yaml", "model:\n  name: a\noptim:\n  lr: 0.5\n");
  auto later = write_temp("later.yaml", "model: {name: b}\n");
  CHECK(dtb::load_config(schema(), {apart, later}, {}).get_string("model.name") == "b");
}

TEST_CASE("integers reject trailing text and overflow", "[config]") {
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"model.n_layer=4x"}); }),
             Contains("expected an integer"));
  CHECK_THAT(error_of([&] { dtb::load_config(schema(), {}, {"model.n_layer=99999999999999999999"}); }),
             Contains("expected an integer"));
  CHECK(dtb::load_config(schema(), {}, {"model.n_layer=64"}).get_int("model.n_layer") == 64);
}
