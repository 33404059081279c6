// dtb-tc: writes the Linux tc commands that apply a network profile to one rank's device,
// for operators of real clusters (see README.md beside this file). It only prints; the
// operator reviews the script and runs it as root (apply.sh does both steps).
//
//   dtb-tc PROFILE.yaml --rank R --dev DEV --hosts FILE [--replace-root]   (FILE: one address per rank)
//   dtb-tc --remove --dev DEV [--replace-root]
//   dtb-tc PROFILE.yaml --rank R --hosts FILE --expect PEER   (what verify.sh should measure)
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "profile.hpp"
#include "tc/tc_commands.hpp"

namespace {

constexpr const char* kUsage =
    "usage: dtb-tc PROFILE.yaml --rank R --dev DEV --hosts FILE [--replace-root]\n"
    "       dtb-tc --remove --dev DEV [--replace-root]\n"
    "       dtb-tc PROFILE.yaml --rank R --hosts FILE --expect PEER\n"
    "Prints the tc commands shaping rank R's traffic leaving DEV as PROFILE says. FILE lists\n"
    "one IPv4/IPv6 address per rank, in rank order ('#' starts a comment); its length is the\n"
    "world size. The script replaces DEV's root and ingress qdiscs only when they are the\n"
    "kernel's default or dtb-tc's own (recorded in /run/dtb-tc/DEV), and --remove deletes only\n"
    "what dtb-tc recorded, unless --replace-root. --expect prints what the shaped path from R\n"
    "to PEER should measure: rtt_s, rate_bps and payload_bps (TCP payload; 0 = unlimited).\n";

struct Args {
  std::string profile, dev, hosts;
  int rank = -1, expect = -1;
  bool remove = false, replace_root = false;
};

int rank_value(const std::string& option, const std::string& v) {
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    throw dtb::UsageError("option " + option + ": expected a rank number, got '" + v + "'");
  }
}

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw dtb::UsageError("option " + arg + ": expected a value");
      return argv[++i];
    };
    if (arg == "--rank") {
      args.rank = rank_value(arg, next());
    } else if (arg == "--expect") {
      args.expect = rank_value(arg, next());
    } else if (arg == "--replace-root") {
      args.replace_root = true;
    } else if (arg == "--dev") {
      args.dev = next();
    } else if (arg == "--hosts") {
      args.hosts = next();
    } else if (arg == "--remove") {
      args.remove = true;
    } else if (!arg.empty() && arg[0] != '-' && args.profile.empty()) {
      args.profile = arg;
    } else {
      throw dtb::UsageError("unknown argument '" + arg + "'; run dtb-tc --help");
    }
  }
  if (args.dev.empty() && args.expect < 0) throw dtb::UsageError("option --dev: required (e.g. --dev eth0)");
  if (!args.remove && (args.profile.empty() || args.hosts.empty() || args.rank < 0))
    throw dtb::UsageError("expected PROFILE.yaml, --rank R and --hosts FILE; run dtb-tc --help");
  return args;
}

std::vector<std::string> read_hosts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw dtb::UsageError(path + ": no such hosts file");
  std::vector<std::string> ips;
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find('#'));
    const size_t begin = line.find_first_not_of(" \t\r"), end = line.find_last_not_of(" \t\r");
    if (begin != std::string::npos) ips.push_back(line.substr(begin, end - begin + 1));
  }
  if (ips.empty()) throw dtb::UsageError(path + ": no addresses (expected one per rank)");
  return ips;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  try {
    const Args args = parse_args(argc, argv);
    if (args.remove) {
      std::cout << dtb::netem::tc_remove_commands(args.dev, args.replace_root);
      return 0;
    }
    const std::vector<std::string> ips = read_hosts(args.hosts);
    const auto profile = dtb::netem::load_profile(args.profile, int(ips.size()));
    if (args.expect >= 0) {
      const dtb::netem::TcExpectation e = dtb::netem::tc_expectation(profile, args.rank, args.expect);
      std::printf("rtt_s=%.9g rate_bps=%.9g payload_bps=%.9g\n", e.rtt_s, e.rate_Bps * 8, e.payload_Bps * 8);
      return 0;
    }
    std::cout << dtb::netem::tc_commands(profile, args.rank, args.dev, ips, args.replace_root);
  } catch (const dtb::UsageError& e) {
    std::cerr << "dtb-tc: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
