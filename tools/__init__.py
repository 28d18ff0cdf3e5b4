"""Developer tools run from a checkout (``python tools/NAME.py``); not part of the installed package.

- ``tools/sumo_traffic.py``: regenerates the bundled ``datasets/data/traffic_sumo.nc`` with the
  Eclipse SUMO simulator (optional extra, ``requirements-sumo.txt``).
"""
