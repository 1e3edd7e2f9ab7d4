# tests/kernel: suites added here
