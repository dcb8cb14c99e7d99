"""neardup's version, in a module of its own so that any stage can name it without importing the
package's lazy front door (``neardup/__init__.py``)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
