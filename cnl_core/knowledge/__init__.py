"""The paper's first half: does individual knowledge localize? Facts with paraphrases, their neurons, causal
tracing, editing."""
