"""datacleaner: clean labeled image datasets and pick unlabeled images worth labeling with
K-fold committees of timm models.

    import datacleaner
    result = datacleaner.clean("my_photos", "run")            # review list: result.review
    committee = datacleaner.train("my_photos", "committee")   # a bundle for select
    picked = datacleaner.select("new_photos", "committee", "production.csv", "selection", budget=200)

The entry points load lazily: `import datacleaner` (or datacleaner.fuse, scoring, folds,
calibrate, config) does not import torch, timm, pandas or albumentations.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute)
_API = {
    "clean": ("pipeline", "clean"),
    "rescore": ("pipeline", "rescore"),
    "CleanResult": ("pipeline", "CleanResult"),
    "train": ("pipeline", "train_committee"),
    "select": ("selection", "select"),
    "SelectOptions": ("selection", "SelectOptions"),
    "Production": ("selection", "Production"),
    "SelectResult": ("selection", "SelectResult"),
    "Committee": ("committee", "Committee"),
    "load_config": ("config", "load_config"),
    "CleanConfig": ("config", "CleanConfig"),
    "MemberConfig": ("config", "MemberConfig"),
    "profile_names": ("config", "profile_names"),
    "apply_review": ("apply", "apply_review"),
    "undo_last": ("apply", "undo_last"),
    "DataCleanerError": ("errors", "DataCleanerError"),
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'datacleaner' has no attribute '{name}'")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
