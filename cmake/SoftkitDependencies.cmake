# Debian 12 packages only; scripts/deps.sh installs them.

# xsimd 8.1's exported target links a non-existent "xtl" library; we only need its
# headers, so take the include directory and keep it private to the library.
find_package(xsimd 8 REQUIRED CONFIG)
get_target_property(SOFTKIT_XSIMD_INCLUDE_DIR xsimd INTERFACE_INCLUDE_DIRECTORIES)

find_package(OpenMP REQUIRED COMPONENTS CXX)

# Which ISA folders this target can build.
set(SOFTKIT_TARGET_X86 OFF)
set(SOFTKIT_TARGET_ARM64 OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(SOFTKIT_TARGET_X86 ON)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(SOFTKIT_TARGET_ARM64 ON)
endif()
