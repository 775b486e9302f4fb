"""GAN Studio's web page: one file per tab over `gan_core`, which owns every rule, file and tensor."""
from .app import build_app, launch_app

__all__ = ["build_app", "launch_app"]
