# The NCCL find logic (cmake/FindNCCL.cmake) on fake install trees: an explicit root wins
# and is never silently replaced, the version comes from nccl.h, a runtime-only libnccl.so.2
# is accepted, and an empty explicit root fails with a line naming it.
# Run: cmake -DDTB_SOURCE_DIR=<repo> -DWORK=<scratch dir> -P find_nccl_test.cmake
cmake_minimum_required(VERSION 3.25)
foreach(v DTB_SOURCE_DIR WORK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "find_nccl_test: pass -D${v}=...")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
set(failures 0)

function(fake_tree prefix libdir libname major minor patch)
  file(WRITE "${prefix}/include/nccl.h"
       "#pragma once\n#define NCCL_MAJOR ${major}\n#define NCCL_MINOR ${minor}\n#define NCCL_PATCH ${patch}\n")
  file(WRITE "${prefix}/${libdir}/${libname}" "")
endfunction()

# Configures the probe with ARGN as extra arguments; sets probe_rc and probe_out.
function(run_probe name)
  cmake_parse_arguments(P "" "" "ARGS;ENV" ${ARGN})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env --unset=NCCL_HOME --unset=NCCL_ROOT ${P_ENV}
            ${CMAKE_COMMAND} -S "${DTB_SOURCE_DIR}/tests/cuda/find_nccl_probe" -B "${WORK}/build-${name}"
            -DDTB_SOURCE_DIR=${DTB_SOURCE_DIR} ${P_ARGS}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(probe_rc "${rc}" PARENT_SCOPE)
  set(probe_out "${out}${err}" PARENT_SCOPE)
endfunction()

# COND is an if() condition given as a string.
function(expect name cond detail)
  cmake_language(EVAL CODE "if(${cond})\n set(ok TRUE)\nelse()\n set(ok FALSE)\nendif()")
  if(ok)
    message(STATUS "OK ${name}")
  else()
    message(STATUS "FAIL ${name}: ${detail}")
    math(EXPR f "${failures} + 1")
    set(failures ${f} PARENT_SCOPE)
  endif()
endfunction()

function(probe_field field out_var)
  if(probe_out MATCHES "probe: [^\n]*${field}=([^|]*)\\|")
    set(${out_var} "${CMAKE_MATCH_1}" PARENT_SCOPE)
  else()
    set(${out_var} "<none>" PARENT_SCOPE)
  endif()
endfunction()

# 1. NCCL_HOME as a CMake variable: that tree, its version.
fake_tree("${WORK}/a" lib libnccl.so 2 99 7)
run_probe(home_var ARGS -DNCCL_HOME=${WORK}/a)
probe_field(library lib)
probe_field(version ver)
expect("NCCL_HOME variable" "lib STREQUAL \"${WORK}/a/lib/libnccl.so\" AND ver STREQUAL \"2.99.7\""
       "library=${lib} version=${ver}")

# 2. NCCL_ROOT in the environment, lib64 and a runtime-only libnccl.so.2.
fake_tree("${WORK}/b" lib64 libnccl.so.2 2 18 3)
run_probe(root_env ENV NCCL_ROOT=${WORK}/b)
probe_field(library lib)
probe_field(version ver)
expect("NCCL_ROOT environment, libnccl.so.2" "lib STREQUAL \"${WORK}/b/lib64/libnccl.so.2\" AND ver STREQUAL \"2.18.3\""
       "library=${lib} version=${ver}")

# 3. The variable wins over the environment.
run_probe(var_over_env ARGS -DNCCL_ROOT=${WORK}/a ENV NCCL_HOME=${WORK}/b)
probe_field(library lib)
expect("variable before environment" "lib STREQUAL \"${WORK}/a/lib/libnccl.so\"" "library=${lib}")

# 4. An explicit root without NCCL: not found, even where another NCCL is installed, and a
#    REQUIRED search fails with a line that names the root.
file(MAKE_DIRECTORY "${WORK}/empty")
run_probe(empty_root ARGS -DNCCL_ROOT=${WORK}/empty)
probe_field(found found)
expect("empty explicit root is not replaced" "found STREQUAL \"FALSE\"" "found=${found}")
run_probe(empty_required ARGS -DNCCL_ROOT=${WORK}/empty -DPROBE_REQUIRED=ON)
string(FIND "${probe_out}" "NCCL_ROOT = ${WORK}/empty holds no include/nccl.h" at)
expect("REQUIRED failure names the root" "NOT probe_rc EQUAL 0 AND at GREATER -1" "rc=${probe_rc} output: ${probe_out}")

# 5. No hints: the toolkit copy where this machine has one (/usr/local/cuda here).
run_probe(default)
probe_field(found found)
probe_field(include inc)
if(EXISTS /usr/local/cuda/include/nccl.h)
  file(REAL_PATH /usr/local/cuda/include want)
  if(found)
    file(REAL_PATH "${inc}" got)
  else()
    set(got "<not found>")
  endif()
  expect("default search finds /usr/local/cuda" "got STREQUAL want" "include=${got}, expected ${want}")
else()
  message(STATUS "OK default search (no /usr/local/cuda/include/nccl.h here: found=${found} include=${inc})")
endif()

file(REMOVE_RECURSE "${WORK}")
if(failures GREATER 0)
  message(FATAL_ERROR "find_nccl_test: ${failures} check(s) failed")
endif()
