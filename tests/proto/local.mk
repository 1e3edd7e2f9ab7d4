# tests/proto: suites added here
