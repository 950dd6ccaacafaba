# cmake --install: the headers, libsoftkit, a CMake package (softkit::softkit)
# and softkit.pc, at GNUInstallDirs paths. xsimd is a private build dependency:
# nothing installed mentions it. A static libsoftkit needs OpenMP and the C++
# runtime at the consumer's link: the package finds OpenMP, the .pc lists them
# in Libs.private.
include(CMakePackageConfigHelpers)

# The header's SOFTKIT_VERSION_* are what a consumer compiles against; they must
# be the project's version (and so the SONAME's major).
file(STRINGS "${PROJECT_SOURCE_DIR}/include/softkit/softkit.h" _softkit_version_lines
  REGEX "^#define SOFTKIT_VERSION_(MAJOR|MINOR|PATCH) ")
set(_softkit_header_version "")
foreach(part MAJOR MINOR PATCH)
  string(REGEX MATCH "SOFTKIT_VERSION_${part} ([0-9]+)" _m "${_softkit_version_lines}")
  list(APPEND _softkit_header_version "${CMAKE_MATCH_1}")
endforeach()
list(JOIN _softkit_header_version "." _softkit_header_version)
if(NOT _softkit_header_version STREQUAL PROJECT_VERSION)
  message(FATAL_ERROR "softkit.h says version ${_softkit_header_version}, CMakeLists.txt says ${PROJECT_VERSION}")
endif()

set(SOFTKIT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/softkit"
  CACHE STRING "Where softkitConfig.cmake is installed, relative to the prefix")
set(SOFTKIT_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  CACHE STRING "Where softkit.pc is installed, relative to the prefix")

install(TARGETS softkit EXPORT softkitTargets
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Runtime NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/softkit"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT Development
  FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp")

# --- CMake package: find_package(softkit [1.x] CONFIG), target softkit::softkit
if(SOFTKIT_BUILD_SHARED)
  set(SOFTKIT_PACKAGE_STATIC OFF)
else()
  set(SOFTKIT_PACKAGE_STATIC ON)
endif()
install(EXPORT softkitTargets NAMESPACE softkit:: FILE softkitTargets.cmake
  DESTINATION "${SOFTKIT_INSTALL_CMAKEDIR}" COMPONENT Development)
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/softkitConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/softkitConfig.cmake"
  INSTALL_DESTINATION "${SOFTKIT_INSTALL_CMAKEDIR}")
# Same major: a consumer asking for 1.2 gets any 1.y with y >= 2, never 2.x.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/softkitConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}" COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/softkitConfig.cmake" "${PROJECT_BINARY_DIR}/softkitConfigVersion.cmake"
  DESTINATION "${SOFTKIT_INSTALL_CMAKEDIR}" COMPONENT Development)

# --- pkg-config. Relocatable: the prefix is found from the .pc's own folder.
function(_softkit_pc_dir var dir)
  if(IS_ABSOLUTE "${dir}")
    set(${var} "${dir}" PARENT_SCOPE)
  else()
    set(${var} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
if(IS_ABSOLUTE "${SOFTKIT_INSTALL_PKGCONFIGDIR}")
  set(SOFTKIT_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _softkit_up "/p/${SOFTKIT_INSTALL_PKGCONFIGDIR}" "/p")
  string(REGEX REPLACE "/$" "" _softkit_up "${_softkit_up}")
  set(SOFTKIT_PC_PREFIX "\${pcfiledir}/${_softkit_up}")
endif()
_softkit_pc_dir(SOFTKIT_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
_softkit_pc_dir(SOFTKIT_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
# What a static libsoftkit pulls in beyond what a C link has: the C++ runtime
# (C++ implicit link libraries that C lacks: -lstdc++ -lm for GCC) and OpenMP's.
set(_softkit_private_libs)
foreach(lib IN LISTS CMAKE_CXX_IMPLICIT_LINK_LIBRARIES)
  if(NOT lib IN_LIST CMAKE_C_IMPLICIT_LINK_LIBRARIES AND NOT "-l${lib}" IN_LIST _softkit_private_libs)
    list(APPEND _softkit_private_libs "-l${lib}")
  endif()
endforeach()
foreach(lib IN LISTS OpenMP_CXX_LIB_NAMES)
  if(NOT "-l${lib}" IN_LIST _softkit_private_libs)
    list(APPEND _softkit_private_libs "-l${lib}")
  endif()
endforeach()
list(JOIN _softkit_private_libs " " SOFTKIT_PC_LIBS_PRIVATE)
configure_file("${CMAKE_CURRENT_LIST_DIR}/softkit.pc.in" "${PROJECT_BINARY_DIR}/softkit.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/softkit.pc"
  DESTINATION "${SOFTKIT_INSTALL_PKGCONFIGDIR}" COMPONENT Development)
