"""wheelvet: audit and repair Linux binary wheels against manylinux / musllinux.

Layers, each importing only those before it:
``elf`` (ELF facts) -> ``resolve`` (ld.so rules) -> ``policy`` (judgement)
-> ``wheelfile`` / ``audit`` (the wheel's verdict) -> ``report`` (text, JSON)
-> ``cli``.
"""

__version__ = "0.1.0"
