"""Readers of other projects' ConvLSTM weights, one module per source.

:mod:`model.import_weights` imports them and builds its table (nothing registers itself here).
"""
