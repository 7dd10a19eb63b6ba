"""The demo's material: a short synthetic episode (`episode.py`) made by `samples.py`, which the tests
and benchmarks use too. Only the demo command imports it at run time."""
