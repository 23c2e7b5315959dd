"""The benchmark table lives in taorl.data.benchmarks (one mapping: name -> local file and hub dataset)."""

from taorl.data.benchmarks import BENCHMARKS, BenchmarkSpec, benchmark_names, load_benchmark, local_data_dir

__all__ = ["BENCHMARKS", "BenchmarkSpec", "benchmark_names", "load_benchmark", "local_data_dir"]
