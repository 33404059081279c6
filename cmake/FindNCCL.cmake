# FindNCCL: NVIDIA's collective communication library (nccl.h, libnccl).
#
# Where it looks, in order:
#   1. NCCL_ROOT or NCCL_HOME, as a CMake variable or an environment variable. A root given
#      explicitly is a promise: when it holds no NCCL the search fails naming it, rather than
#      quietly taking another copy.
#   2. The CUDA Toolkit from find_package(CUDAToolkit) (NCCL can ship inside it, as on the
#      dtbench machines: /usr/local/cuda), then CUDA_HOME and CUDA_PATH.
#   3. /usr/local/cuda, /usr/local/nccl, /opt/nccl, then the system paths (Debian and
#      Ubuntu's libnccl-dev: /usr/include, /usr/lib/x86_64-linux-gnu).
#
# Sets NCCL_FOUND, NCCL_INCLUDE_DIR, NCCL_LIBRARY, NCCL_VERSION (from nccl.h) and the
# imported target NCCL::NCCL. tests/cuda/find_nccl_test.cmake checks this logic on fake trees.

set(_nccl_root "")
foreach(_nccl_var IN ITEMS NCCL_ROOT NCCL_HOME)
  if(NOT "${${_nccl_var}}" STREQUAL "")
    set(_nccl_root "${${_nccl_var}}")
    set(_nccl_root_from "${_nccl_var}")
    break()
  elseif(NOT "$ENV{${_nccl_var}}" STREQUAL "")
    set(_nccl_root "$ENV{${_nccl_var}}")
    set(_nccl_root_from "environment variable ${_nccl_var}")
    break()
  endif()
endforeach()

set(_nccl_lib_suffixes lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu)
# libnccl.so.2 alone (a runtime package without the development symlink) is accepted too.
set(_nccl_lib_names nccl libnccl.so.2)

if(_nccl_root)
  find_path(NCCL_INCLUDE_DIR nccl.h PATHS "${_nccl_root}" PATH_SUFFIXES include
            NO_DEFAULT_PATH NO_CACHE)
  find_library(NCCL_LIBRARY NAMES ${_nccl_lib_names} PATHS "${_nccl_root}"
               PATH_SUFFIXES ${_nccl_lib_suffixes} NO_DEFAULT_PATH NO_CACHE)
  set(_nccl_reason "${_nccl_root_from} = ${_nccl_root} holds no include/nccl.h with lib/libnccl.so")
else()
  set(_nccl_prefixes)
  if(CUDAToolkit_LIBRARY_ROOT)
    list(APPEND _nccl_prefixes "${CUDAToolkit_LIBRARY_ROOT}")
  endif()
  if(CUDAToolkit_BIN_DIR)
    get_filename_component(_nccl_tk "${CUDAToolkit_BIN_DIR}" DIRECTORY)
    list(APPEND _nccl_prefixes "${_nccl_tk}")
  endif()
  foreach(_nccl_env IN ITEMS CUDA_HOME CUDA_PATH)
    if(NOT "$ENV{${_nccl_env}}" STREQUAL "")
      list(APPEND _nccl_prefixes "$ENV{${_nccl_env}}")
    endif()
  endforeach()
  list(APPEND _nccl_prefixes /usr/local/cuda /usr/local/nccl /opt/nccl)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${_nccl_prefixes}
            PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY NAMES ${_nccl_lib_names} HINTS ${CUDAToolkit_LIBRARY_DIR} ${_nccl_prefixes}
               PATH_SUFFIXES ${_nccl_lib_suffixes})
  string(CONCAT _nccl_reason "looked in the CUDA Toolkit, CUDA_HOME, CUDA_PATH, /usr/local/cuda, "
         "/usr/local/nccl, /opt/nccl and the system paths (set NCCL_HOME to NCCL's install prefix)")
endif()

if(NCCL_INCLUDE_DIR AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h")
  file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_defines REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) +[0-9]+")
  foreach(_nccl_part IN ITEMS MAJOR MINOR PATCH)
    set(_nccl_${_nccl_part} "")
    foreach(_nccl_line IN LISTS _nccl_defines)
      if(_nccl_line MATCHES "^#define NCCL_${_nccl_part} +([0-9]+)")
        set(_nccl_${_nccl_part} "${CMAKE_MATCH_1}")
      endif()
    endforeach()
  endforeach()
  if(NOT "${_nccl_MAJOR}" STREQUAL "" AND NOT "${_nccl_MINOR}" STREQUAL "" AND NOT "${_nccl_PATCH}" STREQUAL "")
    set(NCCL_VERSION "${_nccl_MAJOR}.${_nccl_MINOR}.${_nccl_PATCH}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NCCL
  REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR
  VERSION_VAR NCCL_VERSION
  REASON_FAILURE_MESSAGE "${_nccl_reason}")

if(NCCL_FOUND AND NOT TARGET NCCL::NCCL)
  add_library(NCCL::NCCL UNKNOWN IMPORTED)
  set_target_properties(NCCL::NCCL PROPERTIES
    IMPORTED_LOCATION "${NCCL_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
  if(TARGET CUDA::cudart)
    set_property(TARGET NCCL::NCCL APPEND PROPERTY INTERFACE_LINK_LIBRARIES CUDA::cudart)
  endif()
endif()
mark_as_advanced(NCCL_INCLUDE_DIR NCCL_LIBRARY)
