"""One job's segments computed elsewhere (`tasks.py`): on several devices (`devices.py`), over a Ray
cluster (`ray_cluster.py`); and many jobs overnight (`queue/`)."""
