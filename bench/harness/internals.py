"""The datacleaner internals the benchmarks use, in one table: where a refactor moves one, fix it here.

`from harness.internals import RunDir` imports datacleaner.pipeline.rundir when asked, not before (a
benchmark that measures memory loads only what it uses); `from harness.internals import health` gives the
module itself. The public API (datacleaner.clean, rescore, select, datacleaner.config.load_config) is
imported directly.
"""

from __future__ import annotations

import importlib

USED = {  # module -> the names the benchmarks take from it
    "datacleaner.arrays": "GiB NpyFile NpyWriter rows_per_piece",
    "datacleaner.augment": "make_views to_model_input train_transform view_params",
    "datacleaner.choice": "choose_profile look_at",
    "datacleaner.committee": "Committee",
    "datacleaner.config": "AugmentConfig CleanConfig Judge MemberConfig TTAConfig deterministic_views",
    "datacleaner.dataset": "LabeledImages decode_images find_labeled_images",
    "datacleaner.demo": "review_metrics write_noisy_digits",
    "datacleaner.engines": "export onnx_backbone onnx_path",
    "datacleaner.folds": "FoldPlan make_fold_plan",
    "datacleaner.fuse": "fuse softmax",
    "datacleaner.health": "",
    "datacleaner.keys": "digest member_seed",
    "datacleaner.models": "MemberLoss create_member_model make_optimizer member_preprocess resolve_device",
    "datacleaner.predict": "predict_logits",
    "datacleaner.progress": "QUIET Stopwatch",
    "datacleaner.review.labelstudio": "choice_value",
    "datacleaner.review.report": "write_report",
    "datacleaner.review.server": "start",
    "datacleaner.pipeline.judge": "judge_outputs round_outputs",
    "datacleaner.pipeline.prepare": "Prepared",
    "datacleaner.pipeline.rundir": "RunDir",
    "datacleaner.runtime": "configure",
    "datacleaner.disagreement": "disagreement k_center_greedy skip_mask",
    "datacleaner.scoring": "NOISE_LINK SHARPEN linked_noise_rate noise_structure score seen_noise_rate tempered wrong_label_posterior",
    "datacleaner.selection": "",
    "datacleaner.tables": "LABEL_ISSUES primary_issue write_bytes_atomic",
    "datacleaner.training": "autocast compiled fit_view_head fit_view_head_chunked train_member",
    "datacleaner.weights": "resolve_weights",
}
MODULES = {module.rsplit(".", 1)[1]: module for module in USED}  # health, runs, selection, ...: the modules themselves
NAMES = {name: module for module, names in USED.items() for name in names.split()}


def __getattr__(name: str):
    if name in NAMES:
        return getattr(importlib.import_module(NAMES[name]), name)
    if name in MODULES:
        return importlib.import_module(MODULES[name])
    raise AttributeError(f"harness.internals names no {name!r}: add it to USED")
