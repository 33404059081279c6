#pragma once
// Numbers as the simulator's tables print them: decimal units (1 GB = 1e9 bytes, as
// network people count), three significant digits, thousands separators for large seconds.
#include <string>

namespace dtb::sim {

std::string format_seconds(double s);  // "371 ns", "12.3 us", "4.56 ms", "7.79 s", "5,600 s"; "0 s" below 1 ps
std::string format_bytes(double b);    // "0 B", "2.1 MB", "700 GB", "69.3 TB"
std::string format_count(double n);    // "124M", "1.32B", "175B"
std::string format_flops(double f);    // "773 kFLOP", "139 GFLOP", "125 TFLOP" (add "/s" for rates)
std::string format_rate(double bits_per_s);  // "25 Gbps", "342 Mbps"; "unlimited" for inf
std::string format_percent(double fraction);  // "31.2%"
// Three significant digits, however small: "41.7%", "3.21%", "0.00421%" (an MFU of a tiny
// model on an H100 model is not "0.0%"); "0%" for 0.
std::string format_percent_sig(double fraction);
std::string format_fixed(double v, int digits);  // "%.*f"

}  // namespace dtb::sim
