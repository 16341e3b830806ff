"""Reference implementations the benchmarks compare against (not used by the jobs)."""
