"""The experiments a user runs, each a pipeline over the stages below, each with a typed result.

- `locate`: splits -> cached scores -> located sets -> split-vs-split agreement (`LocateResult`).
- `evaluate`: baseline vs intervened vs random controls (`EvalResult`); the cross-dataset matrix
  (`MatrixResult`); fine-tuning only the located neurons (`FinetuneResult`).
"""
