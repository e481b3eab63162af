"""Where a pretrained member's weights come from: a local folder first, then timm's hub.

A member with `pretrained: true` looks in the weights folder (`weights_dir` in the config,
`--weights-dir`, or $DATACLEANER_WEIGHTS_DIR) for `<arch>.safetensors` or
`<arch>.<tag>.safetensors` with timm key names; failing that, in the Hugging Face cache;
failing that, on the hub itself, which is probed once with a short timeout so that an
offline machine gets one clear message within seconds instead of minutes of retries.
A member with `pretrained_file: PATH` uses that file and nothing else.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .config import CleanConfig, MemberConfig
from .errors import DataCleanerError
from .keys import file_digest

ENV_VAR = "DATACLEANER_WEIGHTS_DIR"
HUB_TIMEOUT_S = 8.0  # the whole hub probe, name lookup included
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm fetches from a hub repository


def weights_folder(cfg: CleanConfig) -> Path | None:
    """The config's weights_dir, else $DATACLEANER_WEIGHTS_DIR, else None."""
    folder = cfg.weights_dir or os.environ.get(ENV_VAR) or None
    if folder is None:
        return None
    if not Path(folder).is_dir():
        where = "weights_dir" if cfg.weights_dir else f"${ENV_VAR}"
        raise DataCleanerError(f"{where} {folder} is not a folder; pass an existing folder of <arch>.safetensors files")
    return Path(folder)


def file_names(arch: str) -> list[str]:
    """The file names a member of `arch` ('name' or 'name.tag') is looked for under, in order."""
    name, _, tag = arch.partition(".")
    if tag:
        return [f"{name}.{tag}.safetensors"]
    names = [f"{name}.safetensors"]
    pcfg = _pretrained_cfg(arch)
    default_tag = pcfg.tag if pcfg is not None else None
    if default_tag:
        names.append(f"{name}.{default_tag}.safetensors")
    return names + [f"{name}.<tag>.safetensors"]


def local_file(arch: str, folder: Path) -> Path | None:
    """`arch`'s weights in `folder`: the first of file_names that exists; for an arch without a
    tag, else the one `<name>.<tag>.safetensors` there (several: name the tag in `arch`)."""
    for candidate in file_names(arch):
        if "<" not in candidate and (folder / candidate).is_file():
            return folder / candidate
    name, _, tag = arch.partition(".")
    tagged = [] if tag else sorted(folder.glob(f"{name}.*.safetensors"))
    if len(tagged) > 1:
        raise DataCleanerError(
            f"{folder} holds several weight files for {name} ({', '.join(p.name for p in tagged)}); "
            f"choose one with arch: {name}.<tag> in the member's config"
        )
    return tagged[0] if tagged else None


def _pretrained_cfg(arch: str):
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(arch)
    except RuntimeError:  # an unknown tag
        return None


def hub_cached_file(arch: str) -> Path | None:
    """The weights timm would fetch for `arch`, if they are already in the Hugging Face cache."""
    import huggingface_hub

    pcfg = _pretrained_cfg(arch)
    if pcfg is None or not pcfg.hf_hub_id:
        return None
    for filename in ([pcfg.hf_hub_filename] if pcfg.hf_hub_filename else HUB_FILES):
        hit = huggingface_hub.try_to_load_from_cache(pcfg.hf_hub_id, filename)
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None


_UNREACHABLE: dict[str, str] = {}  # endpoint -> why: probed once per process, not once per member


def probe_hub(arch: str) -> str | None:
    """None when the hub serves `arch`'s weights now, else why not (one short phrase). Gives up
    after HUB_TIMEOUT_S whatever the network does (a lookup or connection that hangs); an
    unreachable hub is remembered, so a committee costs one timeout, not one per member."""
    import huggingface_hub

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    pcfg = _pretrained_cfg(arch)
    if pcfg is None or not pcfg.hf_hub_id:
        return f"timm has no hub weights for {arch}"
    endpoint = huggingface_hub.constants.ENDPOINT
    if endpoint in _UNREACHABLE:
        return _UNREACHABLE[endpoint]
    urls = [f"{endpoint}/{pcfg.hf_hub_id}/resolve/main/{f}" for f in ([pcfg.hf_hub_filename] if pcfg.hf_hub_filename else HUB_FILES)]
    answer: list[str | None] = []

    def ask() -> None:
        why = "not found there"
        for url in urls:
            try:
                urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=HUB_TIMEOUT_S).close()
                answer.append(None)
                return
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    answer.append(f"{endpoint} refused access (HTTP {exc.code}); log in with `hf auth login`")
                    return
                why = f"HTTP {exc.code} from {endpoint}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                _UNREACHABLE[endpoint] = f"{endpoint} is unreachable: {getattr(exc, 'reason', exc)}"
                answer.append(_UNREACHABLE[endpoint])
                return
        answer.append(why)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(HUB_TIMEOUT_S)
    if not answer:
        _UNREACHABLE[endpoint] = f"{endpoint} did not answer within {HUB_TIMEOUT_S:.0f} s"
        return _UNREACHABLE[endpoint]
    return answer[0]


@dataclass(frozen=True)
class WeightsSource:
    """Where one member's pretrained weights come from."""

    member: str
    arch: str
    kind: str  # pretrained_file | weights_dir | hub_cache | hub
    path: str | None  # the file to load; None: timm downloads from the hub

    def describe(self) -> str:
        return {"hub": "timm hub (download)"}.get(self.kind, f"{self.kind}: {self.path}")


def locate(member: MemberConfig, folder: Path | None) -> WeightsSource:
    """Where `member`'s pretrained weights come from, or a one-line DataCleanerError naming the
    member, the files looked for and both ways to provide them. The hub is probed only when
    neither the folder nor the Hugging Face cache has them."""
    label, arch = member.label, member.arch
    if member.pretrained_file:
        if not Path(member.pretrained_file).is_file():
            raise DataCleanerError(f"member '{label}': pretrained_file {member.pretrained_file} does not exist")
        return WeightsSource(label, arch, "pretrained_file", str(member.pretrained_file))
    found = local_file(arch, folder) if folder is not None else None
    if found is not None:
        return WeightsSource(label, arch, "weights_dir", str(found))
    cached = hub_cached_file(arch)
    if cached is not None:
        return WeightsSource(label, arch, "hub_cache", str(cached))
    problem = probe_hub(arch)
    if problem is None:
        return WeightsSource(label, arch, "hub", None)
    looked = f"none of {', '.join(file_names(arch))} in {folder}" if folder else "no weights folder given"
    raise DataCleanerError(
        f"member '{label}' has no pretrained weights for {arch}: {looked}, not in the Hugging Face cache, and the "
        f"timm hub failed ({problem}). Put {file_names(arch)[0]} (timm key names) in a folder and pass "
        f"--weights-dir DIR (or set {ENV_VAR}), or let this machine reach the hub once"
    )


MISSING = "missing-weights:"  # resolve_weights' value for weights that are not here: MISSING<identity>:<why>


def resolve_weights(cfg: CleanConfig, recorded: dict[str, str] | None = None) -> dict[str, str | None]:
    """{member label: the pretrained weights file to load (None: timm's hub download)} for every
    member that loads pretrained weights; raises before any work when one has none. `recorded`
    ({member label: identity}, an earlier run's run.json) lets a member whose weights are not found
    go on with the earlier run's identity, so its cached work is found; its value then is
    MISSING<identity>:<why>, and loading it (create_member_model) stops with that reason."""
    recorded = recorded or {}
    needed = [m for m in cfg.members if m.pretrained or m.pretrained_file]
    try:
        folder = weights_folder(cfg)
    except DataCleanerError as exc:  # a folder moved away: fine for members the earlier run recorded
        if not needed or not all(recorded.get(m.label) for m in needed):
            raise
        return {m.label: f"{MISSING}{recorded[m.label]}:{exc}" for m in needed}
    found = {}
    for m in needed:
        try:
            found[m.label] = locate(m, folder).path
        except DataCleanerError as exc:
            if not recorded.get(m.label):
                raise
            found[m.label] = f"{MISSING}{recorded[m.label]}:{exc}"
    return found


def missing_weights(pretrained: dict[str, str | None]) -> dict[str, str]:
    """{member label: why its weights are not here} for the members resolve_weights could not find."""
    return {label: path.split(":", 2)[2] for label, path in pretrained.items() if path and path.startswith(MISSING)}


def weights_identity(pretrained: dict[str, str | None]) -> dict[str, str]:
    """{member label: what its pretrained weights are}: the file's sha256 prefix, or 'hub' (or, for weights
    not found, the identity an earlier run recorded). Cached work is keyed by it, so other weights
    under the same file name are never mistaken for these."""
    return {label: path.split(":", 2)[1] if path and path.startswith(MISSING) else file_digest(path) if path else "hub"
            for label, path in pretrained.items()}
