# Sanitizer and fuzzing builds (issue 8).
#
#   -DSOFTKIT_SANITIZE=address,undefined   every target, the library objects too
#   -DSOFTKIT_SANITIZE=thread              the same with ThreadSanitizer
#   -DSOFTKIT_BUILD_FUZZERS=ON             the libFuzzer harnesses of tests/fuzz
#                                          (clang; also instruments the library
#                                          for coverage: -fsanitize=fuzzer-no-link)
#
# Use clang (CC=clang-14 CXX=clang++-14, Debian's clang-14 libclang-rt-14-dev
# libomp-14-dev: scripts/deps.sh sanitizers). Findings are fatal
# (-fno-sanitize-recover=all). With ThreadSanitizer, OpenMP must be clang's
# libomp: GCC's libgomp is not instrumented and its barriers read as races.
# libomp loads LLVM's Archer (libarcher.so, next to it) when the program is
# built with TSan, which tells TSan about OpenMP's synchronization.
set(SOFTKIT_SANITIZE "" CACHE STRING "Sanitizers for every target (-fsanitize=...): e.g. address,undefined or thread")
# UBSan checks left out, if any. (The C API's enum arguments may hold any int a
# C caller passes; src/ reads them through enum_value(), never as a C++ enum.)
set(SOFTKIT_SANITIZE_EXCLUDE "" CACHE STRING "UBSan checks not applied (-fno-sanitize=...), ';'-separated")
option(SOFTKIT_BUILD_FUZZERS "Build the libFuzzer harnesses in tests/fuzz (clang only)" OFF)

if(SOFTKIT_BUILD_FUZZERS AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "SOFTKIT_BUILD_FUZZERS needs clang (CXX=clang++-14)")
endif()

if(SOFTKIT_SANITIZE)
  if(SOFTKIT_SANITIZE MATCHES "thread" AND SOFTKIT_SANITIZE MATCHES "address")
    message(FATAL_ERROR "SOFTKIT_SANITIZE: thread and address cannot be combined")
  endif()
  # Line tables are all a report's stack needs, and compile the kernels 10-15%
  # faster than full debug information (they follow any -g of the build type).
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    set(_softkit_san_debug -gline-tables-only)
  else()
    set(_softkit_san_debug -g1)
  endif()
  set(_softkit_san -fsanitize=${SOFTKIT_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer ${_softkit_san_debug})
  if(SOFTKIT_SANITIZE MATCHES "undefined")
    foreach(_check IN LISTS SOFTKIT_SANITIZE_EXCLUDE)
      list(APPEND _softkit_san -fno-sanitize=${_check})
    endforeach()
  endif()
  add_compile_options(${_softkit_san})
  add_link_options(-fsanitize=${SOFTKIT_SANITIZE})
  if(SOFTKIT_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # Clang's OpenMP runtime, explicitly (Debian's clang-14 defaults to it, but
    # say so rather than depend on the packaging).
    set(OpenMP_CXX_FLAGS "-fopenmp=libomp" CACHE STRING "" FORCE)
    set(OpenMP_CXX_LIB_NAMES "omp" CACHE STRING "" FORCE)
    find_library(SOFTKIT_LIBOMP NAMES omp libomp.so.5 HINTS /usr/lib/llvm-14/lib)
    set(OpenMP_omp_LIBRARY "${SOFTKIT_LIBOMP}" CACHE FILEPATH "" FORCE)
  endif()
  message(STATUS "softkit: sanitizers ${SOFTKIT_SANITIZE}")
endif()

if(SOFTKIT_BUILD_FUZZERS)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
