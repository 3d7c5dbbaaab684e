"""The installed distribution's version, in a module of its own.

Why not in audit/__init__.py: the export manifest records the version, and the package's
public face names the export among its entry points; were the version defined there, the
manifest would import the package that (for type checkers) imports the manifest: an import
cycle. audit.__version__ is this same value.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fluoro-audit")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+checkout"
