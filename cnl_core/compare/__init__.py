"""Comparing located neuron sets: overlap rate, IoU, and what chance would give."""
