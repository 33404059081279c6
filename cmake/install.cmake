# `cmake --install BUILD [--prefix DIR]`: what HPC staff put on a cluster (README.md, "Install
# on a cluster"). The layout, under the prefix:
#   bin/dtbench, bin/dtb-tc                      the binaries
#   share/dtbench/configs/                       models, network profiles, devices, sim presets, experiments
#   share/dtbench/jobs/                          the Slurm and mpirun scripts
#   share/dtbench/netem-tc/                      apply.sh and the operator's shaping scripts (netem/tc)
#   share/doc/dtbench/                           README, architecture, result schema, the other READMEs
#   share/modulefiles/dtbench/<version>{,.lua}   Tcl and Lmod modulefiles (from cmake/modulefiles/*.in)
# dtbench finds its shipped configs from bin/../share/dtbench (trainer/sim/paths.hpp), so the
# installed tree works from any folder and may be moved as a whole.
include(GNUInstallDirs)
set(DTB_INSTALL_SHAREDIR ${CMAKE_INSTALL_DATADIR}/dtbench)

install(TARGETS dtbench dtb-tc RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY configs/ DESTINATION ${DTB_INSTALL_SHAREDIR}/configs
        PATTERN loader EXCLUDE)  # configs/loader is the C++ library that reads them
install(DIRECTORY jobs/ DESTINATION ${DTB_INSTALL_SHAREDIR}/jobs USE_SOURCE_PERMISSIONS)
install(PROGRAMS netem/tc/apply.sh netem/tc/verify.sh netem/tc/slurm-prolog.sh netem/tc/slurm-epilog.sh
        DESTINATION ${DTB_INSTALL_SHAREDIR}/netem-tc)
install(FILES netem/tc/README.md DESTINATION ${DTB_INSTALL_SHAREDIR}/netem-tc)
install(FILES README.md results/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
foreach(readme collectives/README.md netem/README.md jobs/README.md)
  get_filename_component(folder ${readme} DIRECTORY)
  install(FILES ${readme} DESTINATION ${CMAKE_INSTALL_DOCDIR}/${folder})
endforeach()

# The modulefiles name the prefix they were installed under: configured at install time, so
# `cmake --install --prefix DIR` (a prefix other than CMAKE_INSTALL_PREFIX) is honoured.
set(DTB_MODULE_DIR ${CMAKE_INSTALL_DATADIR}/modulefiles/dtbench)
install(CODE "
  set(DTB_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(DTB_VERSION \"${PROJECT_VERSION}\")
  set(DTB_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(DTB_SHAREDIR \"${DTB_INSTALL_SHAREDIR}\")
  set(DTB_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
  set(DTB_MPI \"${DTB_MPI_DESCRIPTION}\")
  foreach(kind lua tcl)
    configure_file(\"${PROJECT_SOURCE_DIR}/cmake/modulefiles/dtbench.\${kind}.in\"
                   \"${PROJECT_BINARY_DIR}/modulefiles/dtbench.\${kind}\" @ONLY)
  endforeach()
")
install(FILES ${PROJECT_BINARY_DIR}/modulefiles/dtbench.lua DESTINATION ${DTB_MODULE_DIR}
        RENAME ${PROJECT_VERSION}.lua)
install(FILES ${PROJECT_BINARY_DIR}/modulefiles/dtbench.tcl DESTINATION ${DTB_MODULE_DIR}
        RENAME ${PROJECT_VERSION})
