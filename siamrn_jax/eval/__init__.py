"""Benchmark toolkit: readers, runners, metrics and reports (EVALUATION.md)."""
