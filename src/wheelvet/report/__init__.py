"""Renderers: pure functions from :class:`~wheelvet.audit.WheelAudit` to text."""

from .json import audit_to_json, render_json
from .text import render_text

__all__ = ["audit_to_json", "render_json", "render_text"]
