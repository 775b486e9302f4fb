"""GAN Studio core: conditional and spatial GANs, training, checkpoints, sampling.

Everything that is not user interface lives here; the studio (`ui/`, started by `studio.py`)
and the CLI
(`python -m gan_core`) are thin layers over these modules.
"""

__version__ = "0.1.0"

from pathlib import Path  # noqa: E402

# The shipped demo models (README, "Demo models and data"): the one place that names their folder.
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "checkpoints"

from .errors import CheckpointError, ConfigError, DatasetError, StudioError  # noqa: E402

__all__ = ["__version__", "SHIPPED_MODELS", "StudioError", "DatasetError", "ConfigError", "CheckpointError"]
