"""Repair: first a plan (decisions only, printable), then apply it.

* :mod:`.plan`: :func:`plan_repair`, the policy reached, the libraries
  grafted, the patches, the new tags; refusals with their reasons;
* :mod:`.patcher`: the :class:`Edit` each ELF file needs and the
  :class:`Patcher` that makes it (patchelf and strip by default);
* :mod:`.apply`: :func:`apply_plan`, patch, verify, write the archive under
  a temporary name, audit it again, rename it into place; a
  :class:`RepairSession` shares what the repairs of one call have in common
  (patched files, compressed members) so that a wheelhouse costs about one
  wheel.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Mapping

from ..audit import Analysis, AuditOptions, analyze
from ..errors import RepairFailed, RepairRefused
from ..wheelfile import read_wheel
from .apply import RepairSession, Source, apply_plan, copy_atomically, plan_edits, read_sources, reusable_sources
from .patcher import Edit, NoPatcher, Patchelf, Patcher, find_patchelf, patcher_named
from .plan import Graft, Patch, RepairOptions, RepairPlan, grafted_name, plan_repair
from .sbom import OwnerLookup, build_sbom

log = logging.getLogger(__name__)


def read_ahead_options(audit_options: AuditOptions, count: int) -> AuditOptions:
    """The options to read one of a call's ``count`` wheels with.  With more
    than one, each is read on a thread while the wheel before it is
    repaired (:func:`wheelvet.ahead.ahead`): that overlap is the parallelism,
    so the wheel is read in this process, not by a pool of processes forked
    from a process this busy (a fork beside running threads can deadlock the
    child, and for lxml's 27 MB the pool saved nothing: 0.07 s either way)."""
    return dataclasses.replace(audit_options, jobs=1) if count > 1 else audit_options


@dataclass(frozen=True)
class Prepared:
    """What a repair reads before it writes anything: the wheel's analysis,
    its plan (None: a pure wheel, copied as it is), and the input deflate
    blocks of the members it patches (:func:`read_sources`)."""

    analysis: Analysis
    plan: RepairPlan | None
    sources: Mapping[str, Source]  # (apply_plan only reads it)

    def held_bytes(self) -> int:
        """What it holds beyond its analysis: the patched members' input, as
        compressed and inflated (the bound on reading further ahead)."""
        return sum(len(s.blocks.stream) + len(s.blocks.data) for s in self.sources.values())


def prepare_repair(path: str, options: RepairOptions, audit_options: AuditOptions, *, level: int = -1,
                   dry_run: bool = False) -> Prepared:
    """Read, audit and plan the repair of one wheel; it only reads, so the
    next wheel of a call can be prepared while this one is repaired
    (:func:`wheelvet.ahead.ahead`).  Raises RepairRefused where it cannot
    be repaired."""
    analysis = analyze(read_wheel(path, jobs=audit_options.jobs), audit_options)
    if analysis.audit.pure:
        if analysis.audit.error is None:  # --allow-pure-python-wheel: copied as it is
            return Prepared(analysis, None, {})
        raise RepairRefused(f"{analysis.audit.wheel}: {analysis.audit.error}")
    if analysis.audit.error is not None:
        raise RepairRefused(f"{analysis.audit.wheel}: {analysis.audit.error}")
    plan = plan_repair(analysis, options)
    return Prepared(analysis, plan, {} if dry_run else reusable_sources(plan, analysis, level))


def repair_wheel(path: str, out_dir: str, options: RepairOptions, audit_options: AuditOptions, *, level: int = -1,
                 dry_run: bool = False, patcher: Patcher | None = None,
                 owners: OwnerLookup | None = None,
                 session: RepairSession | None = None,
                 prepared: Prepared | None = None) -> tuple[RepairPlan | None, str | None]:
    """Plan and (unless ``dry_run``) apply the repair of one wheel
    (``prepared``: :func:`prepare_repair` of it, made ahead).

    Several wheels in a row share one ``session`` (``with RepairSession() as
    session:``): each distinct library is then patched and compressed once
    for all of them, and each output is what repairing its wheel alone
    writes."""
    if prepared is None:
        prepared = prepare_repair(path, options, audit_options, level=level, dry_run=dry_run)
    plan = prepared.plan
    if plan is None:
        return None, None if dry_run else copy_atomically(path, out_dir, session)
    for line in plan.describe().splitlines():
        log.info("%s", line)
    if dry_run:
        return plan, None
    return plan, apply_plan(plan, prepared.analysis, out_dir, level=level, environ=dict(audit_options.environ),
                            audit_options=audit_options, patcher=patcher, owners=owners, session=session,
                            sources=prepared.sources)


__all__ = ["Edit", "Graft", "NoPatcher", "OwnerLookup", "Patch", "Patchelf", "Patcher", "RepairFailed", "RepairOptions", "RepairPlan",
           "Prepared", "RepairRefused", "RepairSession", "apply_plan", "build_sbom", "find_patchelf", "grafted_name", "patcher_named", "plan_edits", "plan_repair",
           "prepare_repair", "read_ahead_options", "read_sources", "repair_wheel"]
