#pragma once
// Configuration: a table of known keys (dotted paths such as "optim.lr"), YAML files merged
// in order (the later wins), then --set key=value overrides. Every value is checked when it
// enters: an unknown key, a wrong type, a value out of range or a missing file throws
// UsageError with one line naming the file (or --set), the key and what is allowed.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "usage_error.hpp"

namespace dtb {

enum class KeyType { kInt, kFloat, kBool, kString, kChoice };

struct KeySpec {
  std::string key;            // "optim.lr"
  KeyType type;
  std::string default_value;  // in YAML scalar syntax; "" for an empty string
  double min = 0, max = 0;    // range for kInt and kFloat (no range if min > max)
  std::vector<std::string> choices;  // for kChoice
  std::string help;
  bool min_exclusive = false;  // the range is (min, max] instead of [min, max]
};

class Config {
 public:
  explicit Config(std::vector<KeySpec> schema);

  void merge_file(const std::string& path);
  void set(const std::string& assignment);  // "key=value", as given to --set
  void set_value(const std::string& key, const std::string& value, const std::string& origin);

  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;  // kString and kChoice
  const std::string& origin(const std::string& key) const;      // "default", a file, "--set"

  // Throws UsageError naming both keys and where each value came from.
  void fail_constraint(const std::string& key, const std::string& what_is_allowed) const;

  std::string to_yaml() const;  // the resolved config, nested, in key-table order
  const std::vector<KeySpec>& schema() const { return schema_; }
  std::string describe_keys() const;  // one line per key: type, range, default, help

 private:
  const KeySpec& spec(const std::string& key, const std::string& origin) const;
  std::vector<KeySpec> schema_;
  std::map<std::string, std::string> values_;   // canonical text of each value
  std::map<std::string, std::string> origins_;
};

// Builds a config: defaults, then each file in order, then each --set in order.
Config load_config(std::vector<KeySpec> schema, const std::vector<std::string>& files,
                   const std::vector<std::string>& sets);

}  // namespace dtb
