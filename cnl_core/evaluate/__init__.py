"""Proving located neurons: accuracy and log-likelihood with neurons zeroed, amplified or fine-tuned."""
