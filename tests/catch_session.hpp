// Catch2's runner, compiled once (catch_session.cpp) for every test
// executable, whose own main() picks the ISA first and then calls this.
#ifndef SOFTKIT_TESTS_CATCH_SESSION_HPP
#define SOFTKIT_TESTS_CATCH_SESSION_HPP

// Runs the test cases the command line selects; returns Catch2's count of
// failed tests (0: all passed).
int run_catch_session(int argc, char **argv);

#endif
