"""The maintainer's tools: the test command line, benchmarks, and a run against the newest stack."""
