"""The benchmarks: ``python -m benchmarks`` runs the suite (``__main__.py``); each module also runs as a script."""
