"""The model layer: loading, what a neuron is per architecture, hooks, and the forward passes.

Nothing here knows about datasets, scores or results; everything above builds on it.
"""
