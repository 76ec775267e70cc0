"""Renderers: text and JSON are pure functions of :class:`~wheelvet.audit.WheelAudit`; Markdown of its view model."""

from .json import audit_to_json, render_json
from .text import render_text

__all__ = ["audit_to_json", "render_json", "render_text"]
