"""Looking inside neurons: what one neuron does (activations, vocabulary projection, ranks)."""
