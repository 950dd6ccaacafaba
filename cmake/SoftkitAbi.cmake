# Debug information for the ABI check. abidw (libabigail) reads the types of the
# C API from DWARF, and a Release build has none: the files that define the C
# API (src/api*.cpp of softkit_core) are compiled with -g, with the source folder
# mapped to "." so that the ABI dump is the same in any clone. GCC and Clang
# guarantee that -g does not change the generated code; it adds ~30 KB of
# .debug_* sections to libsoftkit, which `cmake --install --strip` removes.
option(SOFTKIT_ABI_DEBUG_INFO "Compile the C API with -g so that scripts/abi-check.sh can see its types" ON)
if(SOFTKIT_ABI_DEBUG_INFO AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  get_target_property(_softkit_core_sources softkit_core SOURCES)
  list(FILTER _softkit_core_sources INCLUDE REGEX "(^|/)api[^/]*\\.cpp$")
  list(TRANSFORM _softkit_core_sources PREPEND "${PROJECT_SOURCE_DIR}/src/" REGEX "^[^/]")
  set_property(SOURCE ${_softkit_core_sources} TARGET_DIRECTORY softkit_core APPEND PROPERTY
    COMPILE_OPTIONS -g "-fdebug-prefix-map=${PROJECT_SOURCE_DIR}=.")
endif()
