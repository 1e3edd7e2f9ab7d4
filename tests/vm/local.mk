# tests/vm: suites added here
