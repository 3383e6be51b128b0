"""One lock for building models from configs and checkpoints in this process.

transformers and accelerate build models under process-wide switches (weight initialisation turned off,
`nn.Module` patched to put new weights on the meta device), saved and restored around each build. Two
builds in two threads overlap those save/restore pairs and can leave a switch on for good: later models
then get weights without data, or uninitialised ones. Visitors of the dashboard load models and count
their parameters (the Model tab's memory estimate) in threads, so every build holds this lock.
"""

from __future__ import annotations

import threading

BUILD_LOCK = threading.RLock()
