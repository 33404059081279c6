#pragma once
// Units as people write them in network profiles: bit rates ("25Gbps", "100Mbps",
// "1.12Gbps"), times ("10ms", "5us", "0.5ms"), sizes ("4MiB", "64KB", "1448") and
// fractions ("0.001", "0.1%"). Decimal SI: 1 Gbps = 1e9 bit/s = 1.25e8 bytes/s, 1 MB = 1e6
// bytes, 1 MiB = 2^20 bytes. The parsers return nothing for text they do not accept
// (negative, not finite, unknown unit); the caller names the file and key in its error.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dtb::netem::units {

// Bytes per second of a positive bit rate, "unlimited" -> 0 (the profile's "no limit").
std::optional<double> parse_bandwidth(std::string_view text);
// Seconds of a duration >= 0 ("10ms", "5us", "1.5s", "250ns"; a bare "0" is allowed).
std::optional<double> parse_duration(std::string_view text);
// Bytes of a size >= 0 ("66", "1448B", "64KB", "4MiB"); the result must be a whole number.
std::optional<uint64_t> parse_bytes(std::string_view text);
// A fraction in [0, 1) ("0.001" or "0.1%").
std::optional<double> parse_fraction(std::string_view text);

// Shortest round-trip text of a bandwidth or duration, for messages and reports:
// 1.25e8 -> "1Gbps", 0 -> "unlimited"; 0.0105 -> "10.5ms".
std::string format_bandwidth(double bytes_per_s);
std::string format_duration(double seconds);
// Whole kbit/s (rounded, at least 1) of a rate, as tc(8) wants it: 1.25e8 -> 1000000.
uint64_t kbit_per_s(double bytes_per_s);

}  // namespace dtb::netem::units
