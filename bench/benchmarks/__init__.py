"""One module per benchmark; each exposes BENCHMARK and is listed in bench/suite.py."""
