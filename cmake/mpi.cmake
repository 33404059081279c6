# Which MPI dtbench is built against, and how its ranks are started (tests, `dtbench run`).
#
# DTB_MPI names the implementation: openmpi, mpich, or auto (whatever FindMPI finds first:
# the `mpicc` on PATH). Debian installs both side by side, each wrapper with its own suffix
# (mpicc.openmpi, mpiexec.mpich) behind the plain names of update-alternatives; the presets
# name one (default: openmpi, mpich: mpich), so installing the other cannot switch a build.
# Where the suffixed wrappers do not exist (a cluster's `module load openmpi`), FindMPI's
# own search runs and the library it finds must be the one named.
#
# Sets, for the rest of the build:
#   DTB_MPI_FLAVOR         openmpi, mpich or other (from mpi.h)
#   DTB_MPIEXEC_TEST_FLAGS what the MPI tests add to MPIEXEC_PREFLAGS: Open MPI refuses more
#                          ranks than cores without --oversubscribe, and its idle ranks poll
#                          the cores away from the others without mpi_yield_when_idle;
#                          MPICH's hydra starts any number of ranks and takes neither flag.
set(DTB_MPI auto CACHE STRING "MPI to build against: auto (FindMPI's first), openmpi, mpich")
set_property(CACHE DTB_MPI PROPERTY STRINGS auto openmpi mpich)
if(NOT DTB_MPI MATCHES "^(auto|openmpi|mpich)$")
  message(FATAL_ERROR "DTB_MPI=${DTB_MPI}: allowed are auto, openmpi, mpich")
endif()

if(NOT DTB_MPI STREQUAL "auto" AND NOT MPI_C_COMPILER)
  find_program(DTB_MPICC_${DTB_MPI} NAMES mpicc.${DTB_MPI})
  find_program(DTB_MPIEXEC_${DTB_MPI} NAMES mpiexec.${DTB_MPI})
  if(DTB_MPICC_${DTB_MPI} AND DTB_MPIEXEC_${DTB_MPI})
    set(MPI_C_COMPILER "${DTB_MPICC_${DTB_MPI}}" CACHE FILEPATH "MPI C compiler wrapper (DTB_MPI=${DTB_MPI})")
    set(MPIEXEC_EXECUTABLE "${DTB_MPIEXEC_${DTB_MPI}}" CACHE FILEPATH "MPI launcher (DTB_MPI=${DTB_MPI})")
  endif()
endif()
find_package(MPI REQUIRED COMPONENTS C)

# The implementation, from the mpi.h the build compiles against (each defines its own macro).
set(DTB_MPI_FLAVOR other)
foreach(dir ${MPI_C_INCLUDE_DIRS})
  if(EXISTS "${dir}/mpi.h")
    file(STRINGS "${dir}/mpi.h" dtb_mpi_h REGEX "^#define (OMPI_MAJOR_VERSION|MPICH_VERSION) ")
    if(dtb_mpi_h MATCHES "OMPI_MAJOR_VERSION")
      set(DTB_MPI_FLAVOR openmpi)
    elseif(dtb_mpi_h MATCHES "MPICH_VERSION")
      set(DTB_MPI_FLAVOR mpich)
    endif()
    break()
  endif()
endforeach()
if(NOT DTB_MPI STREQUAL "auto" AND NOT DTB_MPI STREQUAL DTB_MPI_FLAVOR)
  message(FATAL_ERROR "DTB_MPI=${DTB_MPI}, but ${MPI_C_COMPILER} compiles against ${DTB_MPI_FLAVOR} "
                      "(mpi.h in ${MPI_C_INCLUDE_DIRS}): name its wrapper with -DMPI_C_COMPILER=... "
                      "-DMPIEXEC_EXECUTABLE=..., or pass -DDTB_MPI=auto")
endif()
if(DTB_MPI_FLAVOR STREQUAL "openmpi")
  set(DTB_MPIEXEC_TEST_FLAGS --oversubscribe --mca mpi_yield_when_idle 1)
else()
  set(DTB_MPIEXEC_TEST_FLAGS "")
endif()
message(STATUS "MPI: ${DTB_MPI_FLAVOR} (${MPI_C_COMPILER}), ranks start with ${MPIEXEC_EXECUTABLE}")
