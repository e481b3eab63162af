"""Groups of copies and the three checkers that judge them: `find_groups` (exact copies by pixel digest and
near copies by `pairs.near_pairs`, joined into star groups), `check_conflicts` (conflicting_labels: a
member's label differs from its group's) and `check_copies` (duplicate / near_duplicate: the copies beside
the file kept). A group's id is the index of the file it keeps.  [numpy]"""

from __future__ import annotations

import numpy as np

from .pairs import digest_groups, near_pairs
from .image_props import is_flat
from .rules import DROP

def star_groups(n: int, pairs: np.ndarray, exact: np.ndarray | None = None) -> np.ndarray:
    """(n,) group id per image, the index of the group's representative; -1 for an image in no group.

    Exact copies (`exact`: digest_groups' ids, -1 for none) always share a group. Near-duplicate `pairs`
    (P, 2) join images to a representative only directly: images are taken by their number of pairs
    (most first, then index), each untaken one becomes a representative with its untaken partners, and
    an image whose partners are all taken joins a partner that represents a group, else stays alone.
    So every member is a near duplicate (or an exact copy) of the representative, and look-alikes
    chained through neighbours of neighbours never make one group."""
    exact = np.full(n, -1, dtype=np.int64) if exact is None else np.asarray(exact, dtype=np.int64)
    node = np.where(exact >= 0, exact, np.arange(n))  # an exact copy stands for its first file
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs = np.sort(node[pairs], axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0) if len(pairs) else pairs
    partners: dict[int, list[int]] = {}
    for i, j in pairs.tolist():
        partners.setdefault(i, []).append(j)
        partners.setdefault(j, []).append(i)
    owner: dict[int, int] = {}
    for v in sorted(partners, key=lambda v: (-len(partners[v]), v)):
        if v in owner:
            continue
        free = [u for u in partners[v] if u not in owner]
        if free:
            owner[v] = v
            owner.update((u, v) for u in free)
        else:
            reps = [u for u in partners[v] if owner[u] == u]
            if reps:
                owner[v] = min(reps)
    group = np.array([owner.get(int(v), -1) for v in node], dtype=np.int64)
    return np.where((group < 0) & (exact >= 0), exact, group)


def group_label(members: np.ndarray, labels: np.ndarray, suggested: np.ndarray | None = None,
                suggested_prob: np.ndarray | None = None) -> tuple[int, str]:
    """(the label a group of copies should carry, why): the members' majority; on a tie the committee's
    label for the member it is surest of (without the committee: the first member's label)."""
    values, counts = np.unique(labels[members], return_counts=True)
    if (counts == counts.max()).sum() == 1:
        return int(values[np.argmax(counts)]), "the group's majority"
    if suggested is None or suggested_prob is None:
        return int(labels[members[0]]), "a tie: the first file's label"
    best = members[np.argmax(np.nan_to_num(np.asarray(suggested_prob)[members], nan=-1.0))]
    return int(suggested[best]), "the committee's surest label in the group"


def conflicts(groups: np.ndarray, labels: np.ndarray, suggested: np.ndarray | None = None,
              suggested_prob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((N,) bool: the image's label differs from its group's label (group_label), (N,) the group's
    label, or -1 outside groups). Members that agree with their group are not conflicted."""
    conflicted = np.zeros(len(groups), dtype=bool)
    chosen = np.full(len(groups), -1, dtype=np.int64)
    for members in _members(groups).values():
        chosen[members] = group_label(members, labels, suggested, suggested_prob)[0]
        conflicted[members] = labels[members] != chosen[members]
    return conflicted, chosen


def _members(groups: np.ndarray) -> dict[int, np.ndarray]:
    """{group id: its images, ascending} of the images with a group (id >= 0)."""
    grouped = np.flatnonzero(groups >= 0)
    grouped = grouped[np.argsort(groups[grouped], kind="stable")]
    cuts = np.flatnonzero(np.diff(groups[grouped])) + 1
    return {int(groups[m[0]]): m for m in np.split(grouped, cuts) if len(m)}


def _names(paths, members, limit: int = 3) -> str:
    shown = ", ".join(paths[m] for m in members[:limit])
    return shown + (f" and {len(members) - limit} more" if len(members) > limit else "")



def find_groups(facts, out, checks) -> None:
    """Exact copies (pixel digests) and near copies (perceptual hashes and features, `near_pairs`) of the
    readable images that are not flat, joined into star groups; each group named by the file it keeps: a
    member carrying the group's label (`group_label`) that is an exact copy of the representative, else the
    representative. Sets out.group, out.exact and out.keep."""
    N, usable = len(facts.paths), facts.usable
    flat = is_flat(facts.props["entropy"], facts.t, usable) if facts.props is not None else np.zeros(N, dtype=bool)
    exact = digest_groups(facts.digests, usable) if facts.digests is not None else np.full(N, -1, dtype=np.int64)
    knn = facts.neighbours("features") if facts.features is not None else None
    pairs = (near_pairs(facts.hashes, facts.features, facts.t, eligible=usable & ~flat, knn=knn)
             if facts.hashes is not None or facts.features is not None else np.zeros((0, 2), dtype=np.int64))
    group = star_groups(N, pairs, exact)
    out.exact, out.keep = exact, {}
    for rep, members in _members(group).items():
        label, why = group_label(members, facts.labels, facts.suggested, facts.suggested_prob)
        twins = members[(exact[members] == exact[rep]) & (exact[rep] >= 0)]  # exact copies of the representative
        keep = next((m for m in twins if facts.labels[m] == label), rep)
        group[members] = keep
        out.keep[keep] = (members, twins, label, why)
    out.group = group


def check_conflicts(facts, out, checks) -> None:
    """conflicting_labels: the members of a group whose label differs from the group's label (`group_label`),
    each suggested that label, with the group's tally of labels in words."""
    labels, names = facts.labels, facts.classes
    flags = np.zeros(len(labels), dtype=bool)
    for members, _, label, why in out.keep.values():
        agree = members[labels[members] == label]
        values, counts = np.unique(labels[members], return_counts=True)
        tally = ", ".join(f"{names[v]} x{c}" for v, c in sorted(zip(values, counts), key=lambda vc: (-vc[1], vc[0])))
        for m in members[labels[members] != label]:
            flags[m] = True
            out.suggest[m] = label
            agreeing = agree[agree != m]
            out.detail[m].append(f"labels in its group: {tally}; suggested {names[label]}, {why}"
                                 + (f"; labelled {names[label]}: {_names(facts.paths, agreeing)}" if len(agreeing) else ""))
    out.found["conflicting_labels"] = flags


def check_copies(facts, out, checks) -> None:
    """duplicate (same pixels as the kept file or as another member) and near_duplicate (a near copy of the kept
    file) for every member of a group but the kept file, each suggested to drop unless its label conflicts; the
    kept file is told the names of its copies."""
    paths, exact = facts.paths, out.exact
    conflicted = out.found.get("conflicting_labels", np.zeros(len(paths), dtype=bool))
    dup, near = np.zeros(len(paths), dtype=bool), np.zeros(len(paths), dtype=bool)
    for keep, (members, twins, _, _) in out.keep.items():
        for m in members:
            if m == keep:
                others = members[members != m]
                if len(others):
                    out.detail[m].append(f"kept; its copies: {_names(paths, others)}")
                continue
            copy_of = keep if m in twins else exact[m] if exact[m] >= 0 and exact[m] != m else -1  # same pixels as
            if copy_of >= 0 and "duplicate" in checks:
                dup[m] = True
                out.detail[m].append(f"same pixels as {paths[copy_of]}" + ("" if copy_of == keep else f"; near duplicate of {paths[keep]}")
                                     + f"; {paths[keep]} is kept" + ("" if conflicted[m] else ", this copy can go"))
            elif copy_of < 0 and "near_duplicate" in checks:
                near[m] = True
                out.detail[m].append(f"near duplicate of {paths[keep]}; {paths[keep]} is kept" + ("" if conflicted[m] else ", this copy can go"))
            if (dup[m] or near[m]) and not conflicted[m]:
                out.suggest[m] = DROP
    out.found.update({name: flags for name, flags in (("duplicate", dup), ("near_duplicate", near)) if name in checks})
