#!/usr/bin/env bash
# Build the wheelvet example from scratch, entirely under OUTDIR:
#
#   OUTDIR/lib/libgreet.so.1      an "external" shared library (SONAME
#                                 libgreet.so.1, symbols versioned GREET_1.0)
#   OUTDIR/build/greeter*.so      a C extension module linked with -lgreet
#   OUTDIR/dist/greeter-0.1.0-cpXY-cpXY-linux_<arch>.whl
#                                 a wheel holding only the extension, so it
#                                 depends on a library that is NOT inside it
#
# That wheel is exactly what `wheelvet show` (or `auditwheel show`) is for:
# it reports libgreet.so.1 as an external library the wheel needs.
#
# Usage:   examples/build_example.sh OUTDIR
# Env:     PYTHON  interpreter to build for (default: python3); it must
#                  come with its C headers (Python.h)
#          CC      C compiler (default: gcc)
#
# The last two lines printed are machine-readable:
#   WHEEL=/abs/path/to/the.whl
#   LIBDIR=/abs/path/to/OUTDIR/lib     (put this in LD_LIBRARY_PATH)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

PYTHON=${PYTHON:-python3}
CC=${CC:-gcc}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # the examples/ dir
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)                              # absolute path
LIBDIR=$OUTDIR/lib
BUILDDIR=$OUTDIR/build
DISTDIR=$OUTDIR/dist
mkdir -p "$LIBDIR" "$BUILDDIR" "$DISTDIR"

if ! "$PYTHON" -c 'import sysconfig' 2>/dev/null; then
    echo "error: cannot run PYTHON=$PYTHON" >&2
    exit 1
fi
# Ask the target Python where its headers are and how extension files
# are named (e.g. ".cpython-311-x86_64-linux-gnu.so").
PY_INCLUDE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
EXT_SUFFIX=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
if [[ ! -f $PY_INCLUDE/Python.h ]]; then
    echo "error: $PYTHON has no C headers ($PY_INCLUDE/Python.h not found)." >&2
    echo "       Install them (e.g. apt-get install python3-dev) or set PYTHON." >&2
    exit 1
fi

# 1. libgreet.so.1 -----------------------------------------------------
# -Wl,-soname         records the name the dynamic loader looks for
#                     (DT_SONAME); anything linked against it will list
#                     "libgreet.so.1" in its DT_NEEDED.
# --version-script    tags each exported symbol with GREET_1.0.
echo "==> building $LIBDIR/libgreet.so.1"
"$CC" -O2 -fPIC -shared \
    -Wl,-soname,libgreet.so.1 \
    -Wl,--version-script="$HERE/greet/greet.map" \
    -o "$LIBDIR/libgreet.so.1" "$HERE/greet/greet.c"
# The linker resolves -lgreet through the unversioned name libgreet.so.
ln -sf libgreet.so.1 "$LIBDIR/libgreet.so"

# 2. the greeter extension module ----------------------------------------
# Linked with -L/-lgreet but deliberately WITHOUT an RPATH/RUNPATH: at run
# time libgreet.so.1 is found only through LD_LIBRARY_PATH, as would be the
# case for a library installed somewhere on the build machine.  Extension
# modules do not link libpython; the interpreter provides those symbols.
EXT=$BUILDDIR/greeter$EXT_SUFFIX
echo "==> building $EXT"
"$CC" -O2 -fPIC -shared \
    -I"$PY_INCLUDE" -I"$HERE/greet" \
    -o "$EXT" "$HERE/greeter/greetermodule.c" \
    -L"$LIBDIR" -lgreet

# Quick self-check: the module imports and really calls into libgreet.
echo "==> smoke test"
LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONPATH="$BUILDDIR" \
    "$PYTHON" -c 'import greeter; print("   ", greeter.greet("world"))'

# 3. the wheel -----------------------------------------------------------
echo "==> packing the wheel"
WHEEL=$("$PYTHON" "$HERE/make_wheel.py" \
    --name greeter --version 0.1.0 --module "$EXT" --outdir "$DISTDIR")

echo
echo "Inspect it with:  LD_LIBRARY_PATH=$LIBDIR wheelvet show $WHEEL"
echo "WHEEL=$WHEEL"
echo "LIBDIR=$LIBDIR"
