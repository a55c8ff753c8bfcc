"""SAM segmenters: configurations, checkpoints and prompting."""

from .configs import SEGMENTER_CONFIGS
from .model import TARGET_TOKENS, PromptOutput, Segmenter

__all__ = ["SEGMENTER_CONFIGS", "TARGET_TOKENS", "PromptOutput", "Segmenter"]
