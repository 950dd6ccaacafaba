# Cross-build for AArch64 with Debian's g++-aarch64-linux-gnu; ctest runs the
# binaries under qemu-aarch64 (package qemu-user).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# xsimd's and Catch2's configs live in the host tree; they are header-only.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)
# The host's multiarch folder is not searched for a foreign target: point at it.
file(GLOB _softkit_xsimd_dir /usr/lib/*-linux-gnu/cmake/xsimd /usr/share/cmake/xsimd /usr/lib/cmake/xsimd)
if(_softkit_xsimd_dir)
  list(GET _softkit_xsimd_dir 0 _softkit_xsimd_dir)
  set(xsimd_DIR "${_softkit_xsimd_dir}" CACHE PATH "xsimd config (header-only, from the host)")
endif()
if(EXISTS /usr/lib/cmake/Catch2)
  set(Catch2_DIR /usr/lib/cmake/Catch2 CACHE PATH "Catch2 config (header-only, from the host)")
endif()
