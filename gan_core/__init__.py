"""GAN Studio core: conditional and spatial GANs, training, checkpoints, sampling.

Everything that is not user interface lives here; the studio (`ui/`, started by `studio.py`)
and the CLI
(`python -m gan_core`) are thin layers over these modules.
"""

__version__ = "0.1.0"

from .errors import CheckpointError, ConfigError, DatasetError, StudioError  # noqa: E402

__all__ = ["__version__", "StudioError", "DatasetError", "ConfigError", "CheckpointError"]
