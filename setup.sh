#!/usr/bin/env bash
# Installs every Debian package dtbench needs to build, test and run.
# Idempotent: prints nothing when everything is already present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config            # toolchain
  libopenmpi-dev openmpi-bin                  # MPI (collectives/)
  mpich libmpich-dev                          # MPICH beside Open MPI: the mpich preset (build-mpich, .ci/run)
  libhdf5-dev                                 # datasets, checkpoints, results
  zlib1g-dev                                  # CRC-32 of checkpoint datasets
  hdf5-tools                                  # h5dump, h5ls: read result files (results/README.md)
  libcxxopts-dev libyaml-cpp-dev              # command line, configs
  libopenblas-dev                             # sgemm for the CPU kernels
  libsodium-dev                               # BLAKE2b for verify/ commitments (crypto_generichash)
  catch2                                      # unit tests (v2, header only)
  fortunes                                    # the default text corpus
  gnuplot-nox                                 # plots (dtbench sim sweeps, dtbench report)
  slurm-wlm munge                             # the Slurm test: a one-node cluster on localhost
  iproute2                                    # network namespaces for the tbf check
  clang libclang-rt-dev libomp-dev            # libFuzzer targets (tests/fuzz, the fuzz preset)
  iputils-ping iperf3                         # netem/tc/verify.sh: RTT and throughput of a shaped path
  libfftw3-dev                                # DeMo's DCT-II over chunks (trainer/parallel/demo.cpp)
  lmod                                        # install_tree loads the installed modulefiles (Lua and Tcl) with `module load`
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: missing Debian packages: ${missing[*]}" >&2
  echo "setup.sh: run this script as root, or ask an administrator to run: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: done"
