"""Feature extraction: decode once, hash, describe colour and quality."""

from .decode import Decoded, decode
from .extract import FEATURE_VERSION, ImageFeatures, extract

__all__ = ["Decoded", "decode", "FEATURE_VERSION", "ImageFeatures", "extract"]
