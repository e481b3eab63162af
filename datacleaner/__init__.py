"""datacleaner: clean labeled image datasets with K-fold model committees."""

from .config import CleanConfig, MemberConfig, load_config
from .errors import DataCleanerError
from .runs import CleanResult, clean, rescore

__all__ = ["CleanConfig", "MemberConfig", "load_config", "DataCleanerError", "CleanResult", "clean", "rescore"]
__version__ = "0.1.0"
