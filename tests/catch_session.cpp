// Catch2's runner: the implementation that CATCH_CONFIG_RUNNER compiles in. It
// is the tests' biggest translation unit (about 25 s with g++ -O3, 55 s under
// ASan), so it is compiled once for all the test executables, at -O1 and
// without sanitizers (see tests/CMakeLists.txt): it only runs the tests.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "catch_session.hpp"

int run_catch_session(int argc, char **argv) { return Catch::Session().run(argc, argv); }
