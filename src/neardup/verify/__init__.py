"""Verification of candidate pairs."""

from .rules import STAGE_NAMES, Verified, VerifyParams, crop_ncc, verify_batch

__all__ = ["STAGE_NAMES", "Verified", "VerifyParams", "crop_ncc", "verify_batch"]
