"""Benchmarks that print the figures the issues ask for; run each from the repository root
as ``python -m benchmarks.<name>`` (``record``, ``visualizer``, ``recommend``,
``monitor_detect``, ``monitor_overhead``). Their extra dependencies: ``pip install -e ".[bench]"``."""
