"""fluoro-audit: fluoroscopy procedure log and radiation audit (the library; no UI code here)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fluoro-audit")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+checkout"
