"""wheelvet: audit and repair Linux binary wheels against manylinux / musllinux.

Layers, each importing only from its own and those above it
(``tests/unit/test_layers.py`` keeps this list true):

1. ``escape``, ``errors``, ``scratch``, ``ahead``: printable text; errors and the exit-code table; temporary files marked as wheelvet's own; the next item worked on while this one is handled
2. ``elf``: ELF facts, one frozen object per file
3. ``resolve``, ``lddtree``: the dynamic loader's rules over an index of files; one file's tree as auditwheel prints it
4. ``policy``: policy data, and the one comparison of two tags
5. ``records``, ``zipin``, ``wheelfile``, ``providers``: reading and checking the archive; the wheels it depends on that ship libraries
6. ``audit``, ``shortfall``: the verdict, and what stands between a wheel and a tag
7. ``zipout``, ``reflate``, ``repair``: the plan, the patcher, writing the repaired wheel (a patched member keeps its input's unchanged deflate blocks)
8. ``report``: text, JSON and Markdown renderers
9. ``github``: the runner's files, the comment, the artifact (the only network code)
10. ``action``, ``cli``: entry points
"""

__version__ = "0.1.0"
