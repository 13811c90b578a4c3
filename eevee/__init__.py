"""The eevee operator. Its one version comes from the package metadata (setup.cfg)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eevee-operator")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.0.0+unknown"
