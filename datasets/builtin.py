"""Imports every module that registers a built-in dataset (each module calls ``register``)."""

import datasets.radar  # noqa: F401
import datasets.traffic  # noqa: F401
import datasets.video  # noqa: F401
