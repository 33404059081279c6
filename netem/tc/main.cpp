// dtb-tc: writes the Linux tc commands that apply a network profile to one rank's device,
// for operators of real clusters (see README.md beside this file). It only prints; the
// operator reviews the script and runs it as root (apply.sh does both steps).
//
//   dtb-tc PROFILE.yaml --rank R --dev DEV --hosts FILE   (FILE: one address per rank)
//   dtb-tc --remove --dev DEV
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "profile.hpp"
#include "tc/tc_commands.hpp"

namespace {

constexpr const char* kUsage =
    "usage: dtb-tc PROFILE.yaml --rank R --dev DEV --hosts FILE\n"
    "       dtb-tc --remove --dev DEV\n"
    "Prints the tc commands shaping rank R's traffic leaving DEV as PROFILE says. FILE lists\n"
    "one IPv4/IPv6 address per rank, in rank order ('#' starts a comment); its length is the\n"
    "world size.\n";

struct Args {
  std::string profile, dev, hosts;
  int rank = -1;
  bool remove = false;
};

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw dtb::UsageError("option " + arg + ": expected a value");
      return argv[++i];
    };
    if (arg == "--rank") {
      const std::string v = next();
      try {
        args.rank = std::stoi(v);
      } catch (const std::exception&) {
        throw dtb::UsageError("option --rank: expected a rank number, got '" + v + "'");
      }
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
  if (args.dev.empty()) throw dtb::UsageError("option --dev: required (e.g. --dev eth0)");
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
      std::cout << dtb::netem::tc_remove_commands(args.dev);
      return 0;
    }
    const std::vector<std::string> ips = read_hosts(args.hosts);
    const auto profile = dtb::netem::load_profile(args.profile, int(ips.size()));
    std::cout << dtb::netem::tc_commands(profile, args.rank, args.dev, ips);
  } catch (const dtb::UsageError& e) {
    std::cerr << "dtb-tc: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
