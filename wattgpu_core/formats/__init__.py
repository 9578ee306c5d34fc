"""Formats written by other tools that WattGPU reads directly: benchmark results (vLLM, GuideLLM) and the GPU power
logs that go with them (nvidia-smi CSV, DCGM exporter scrapes, zeus' ZeusMonitor log).

``powerlog`` reads a power log into samples, ``vllm_bench`` and ``guidellm`` read one result file into runs with
their time windows, and ``pair`` puts the two together: the power samples inside each run's window give its mean
power per GPU, and the result becomes validated runs for the store.
"""
