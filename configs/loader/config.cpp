#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "yaml_file.hpp"

namespace dtb {
namespace {

const char* type_name(KeyType type) {
  switch (type) {
    case KeyType::kInt: return "an integer";
    case KeyType::kFloat: return "a number";
    case KeyType::kBool: return "true or false";
    case KeyType::kString: return "a string";
    case KeyType::kChoice: return "one of";
  }
  return "?";
}

std::string number_text(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that round-trips
  return std::string(buf, res.ptr);
}

std::string range_text(const KeySpec& s) {
  const bool numeric = s.type == KeyType::kInt || s.type == KeyType::kFloat;
  if (!numeric || s.min > s.max) return "";
  return std::string(" in ") + (s.min_exclusive ? "(" : "[") + number_text(s.min) + ", " +
         number_text(s.max) + "]";
}

// What a key accepts, for error messages and help: "an integer in [1, 1024]".
std::string allowed_text(const KeySpec& s) {
  if (s.type == KeyType::kChoice) {
    std::string out = "one of";
    for (size_t i = 0; i < s.choices.size(); ++i) out += (i ? ", " : " ") + s.choices[i];
    return out;
  }
  return type_name(s.type) + range_text(s);
}

bool in_range(const KeySpec& s, double v) {
  if (s.min > s.max) return true;
  bool above_min = s.min_exclusive ? v > s.min : v >= s.min;
  return above_min && v <= s.max;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// Parses TEXT as SPEC's type and returns its canonical text, or "" with ok=false.
std::string canonical_value(const KeySpec& spec, const std::string& text, bool& ok) {
  ok = true;
  switch (spec.type) {
    case KeyType::kInt: {
      int64_t v = 0;
      auto res = std::from_chars(text.data(), text.data() + text.size(), v);
      ok = res.ec == std::errc() && res.ptr == text.data() + text.size() &&
           in_range(spec, static_cast<double>(v));
      return std::to_string(v);
    }
    case KeyType::kFloat: {
      double v = 0;
      auto res = std::from_chars(text.data(), text.data() + text.size(), v);
      ok = res.ec == std::errc() && res.ptr == text.data() + text.size() && std::isfinite(v) &&
           in_range(spec, v);
      return number_text(v);
    }
    case KeyType::kBool:
      ok = text == "true" || text == "false";
      return text;
    case KeyType::kString:
      return text;
    case KeyType::kChoice:
      ok = std::find(spec.choices.begin(), spec.choices.end(), text) != spec.choices.end();
      return text;
  }
  ok = false;
  return "";
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Flattens nested YAML maps into dotted keys; every leaf must be a scalar.
void flatten(const YAML::Node& node, const std::string& prefix, const std::string& path,
             std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& item : node) {
    std::string key = prefix.empty() ? item.first.Scalar() : prefix + "." + item.first.Scalar();
    const YAML::Node& value = item.second;
    if (value.IsMap()) {
      flatten(value, key, path, out);
    } else if (value.IsScalar()) {
      out.emplace_back(key, value.Scalar());
    } else {
      int line = value.Mark().line + 1;
      throw UsageError(path + ":" + std::to_string(line) + ": key '" + key +
                       "': expected a single value, got " +
                       (value.IsSequence() ? "a list" : "nothing"));
    }
  }
}

}  // namespace

Config::Config(std::vector<KeySpec> schema) : schema_(std::move(schema)) {
  for (const auto& s : schema_) set_value(s.key, s.default_value, "default");
}

const KeySpec& Config::spec(const std::string& key, const std::string& origin) const {
  for (const auto& s : schema_)
    if (s.key == key) return s;
  const KeySpec* nearest = nullptr;
  size_t best = 4;  // suggest only close misspellings
  for (const auto& s : schema_) {
    size_t d = edit_distance(key, s.key);
    if (d < best) best = d, nearest = &s;
  }
  std::string hint = nearest ? "; did you mean '" + nearest->key + "'?"
                             : "; run with --help to list the keys";
  throw UsageError(origin + ": unknown key '" + key + "'" + hint);
}

void Config::set_value(const std::string& key, const std::string& value,
                       const std::string& origin) {
  const KeySpec& s = spec(key, origin);
  bool ok = false;
  std::string canonical = canonical_value(s, value, ok);
  if (!ok)
    throw UsageError(origin + ": key '" + key + "': expected " + allowed_text(s) + ", got '" +
                     value + "'");
  values_[key] = canonical;
  origins_[key] = origin;
}

void Config::set(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError("--set '" + assignment + "': expected key=value, e.g. --set train.steps=300");
  set_value(assignment.substr(0, eq), assignment.substr(eq + 1), "--set");
}

void Config::merge_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw UsageError(path + ": no such config file");
  const YAML::Node root = load_yaml_file(path);
  if (root.IsNull()) return;  // an empty file changes nothing
  if (!root.IsMap())
    throw UsageError(path + ": expected a map of keys (e.g. 'model:' then '  n_layer: 2')");
  std::vector<std::pair<std::string, std::string>> entries;
  flatten(root, "", path, entries);
  for (const auto& [key, value] : entries) set_value(key, value, path);
}

int64_t Config::get_int(const std::string& key) const {
  return std::stoll(values_.at(spec(key, "internal").key));
}

double Config::get_float(const std::string& key) const {
  return std::stod(values_.at(spec(key, "internal").key));
}

bool Config::get_bool(const std::string& key) const {
  return values_.at(spec(key, "internal").key) == "true";
}

const std::string& Config::get_string(const std::string& key) const {
  return values_.at(spec(key, "internal").key);
}

const std::string& Config::origin(const std::string& key) const {
  return origins_.at(spec(key, "internal").key);
}

void Config::fail_constraint(const std::string& key, const std::string& what_is_allowed) const {
  throw UsageError(origin(key) + ": key '" + key + "' = " + get_string(key) + ": " +
                   what_is_allowed);
}

std::string Config::to_yaml() const {
  // Written by hand so that numbers keep their shortest text and strings are always quoted.
  // Keys print grouped by section, sections in the order of their first key in the table
  // (a section's keys need not be adjacent there: each prints once, a valid YAML map).
  auto split = [](const std::string& key) {
    std::vector<std::string> names;
    std::stringstream parts(key);
    for (std::string part; std::getline(parts, part, '.');) names.push_back(part);
    return names;
  };
  std::map<std::string, size_t> first_at;  // "a", "a.b", ...: the table index of its first key
  for (size_t i = 0; i < schema_.size(); ++i) {
    std::string prefix;
    for (const std::string& name : split(schema_[i].key)) first_at.emplace(prefix += (prefix.empty() ? "" : ".") + name, i);
  }
  auto rank = [&](const KeySpec& k) {
    std::vector<size_t> r;
    std::string prefix;
    for (const std::string& name : split(k.key)) r.push_back(first_at.at(prefix += (prefix.empty() ? "" : ".") + name));
    return r;
  };
  std::vector<const KeySpec*> order;
  for (const auto& s : schema_) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [&](const KeySpec* a, const KeySpec* b) { return rank(*a) < rank(*b); });
  std::ostringstream out;
  std::vector<std::string> open_sections;
  for (const KeySpec* spec : order) {
    const KeySpec& s = *spec;
    const std::vector<std::string> names = split(s.key);
    size_t common = 0;
    while (common < open_sections.size() && common + 1 < names.size() &&
           open_sections[common] == names[common])
      ++common;
    open_sections.resize(common);
    for (size_t i = common; i + 1 < names.size(); ++i) {
      out << std::string(2 * i, ' ') << names[i] << ":\n";
      open_sections.push_back(names[i]);
    }
    const std::string& v = values_.at(s.key);
    out << std::string(2 * (names.size() - 1), ' ') << names.back() << ": ";
    if (s.type == KeyType::kString || s.type == KeyType::kChoice) out << quoted(v) << "\n";
    else out << v << "\n";
  }
  return out.str();
}

std::string Config::describe_keys() const {
  size_t width = 0;
  for (const auto& s : schema_) width = std::max(width, s.key.size());
  std::ostringstream out;
  for (const auto& s : schema_) {
    out << "  " << s.key << std::string(width - s.key.size() + 2, ' ') << s.help << " ("
        << allowed_text(s) << "; default " << (s.default_value.empty() ? "''" : s.default_value)
        << ")\n";
  }
  return out.str();
}

Config load_config(std::vector<KeySpec> schema, const std::vector<std::string>& files,
                   const std::vector<std::string>& sets) {
  Config config(std::move(schema));
  for (const auto& f : files) config.merge_file(f);
  for (const auto& s : sets) config.set(s);
  return config;
}

}  // namespace dtb
