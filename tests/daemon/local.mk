# tests/daemon: suites added here
