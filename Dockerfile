# The GitHub Action's image: a manylinux or musllinux image (its old libc, and the libraries it
# has or `before-repair` installs, are what wheels are repaired against) with wheelvet in a
# virtual environment of its own.
#
# One stage per base policy and architecture, each pinned by digest (the tag names the build;
# docs/image.md says where each digest comes from and how to move them). BuildKit (the default
# builder since Docker Engine 23) sets TARGETARCH to the architecture of the build's target
# platform, amd64 or arm64, and pulls only the stage the build uses:
#   docker build .                                          # manylinux_2_28, the machine's arch
#   docker build --build-arg POLICY=manylinux2014 .
#   docker build --build-arg POLICY=musllinux_1_2 --platform linux/arm64 .
ARG POLICY=manylinux_2_28

FROM quay.io/pypa/manylinux_2_28_x86_64:2026.09.30-1@sha256:c2261579b9c2e5d45aa93312f73e2a302182e3e977b558581a1838d6fed3d8e6 AS manylinux_2_28-amd64
FROM quay.io/pypa/manylinux_2_28_aarch64:2026.09.30-1@sha256:acc4e63610fef1da3d687322793665205415c2b22c0d2e403f1a44eb834d63fc AS manylinux_2_28-arm64
FROM quay.io/pypa/manylinux2014_x86_64:2026.10.03-1@sha256:ffd6d1f11237599748657996b750db6b3a5b724fea5a81cd9ea65add4f45b6c9 AS manylinux2014-amd64
FROM quay.io/pypa/manylinux2014_aarch64:2026.10.03-1@sha256:9026a55e05e76ad74d9a4e6be814a5abda26cde08b1baa659ea4f7ee16b246e3 AS manylinux2014-arm64
FROM quay.io/pypa/musllinux_1_2_x86_64:2026.09.05-1@sha256:621f8004ed526a5a6bf6a866fb415ad8da54d59a991e50b3b69167c3a768a616 AS musllinux_1_2-amd64
FROM quay.io/pypa/musllinux_1_2_aarch64:2026.09.05-1@sha256:4dffcd49f0b6fc6928a49915f3cd939f973bbecbdfe96e1e7926b6049bc0bad5 AS musllinux_1_2-arm64

FROM ${POLICY}-${TARGETARCH}

# One of the image's own interpreters (every manylinux/musllinux image has it;
# requirements/lock.py hashes the wheels for it).
ARG PYTHON=/opt/python/cp312-cp312/bin/python3

LABEL org.opencontainers.image.source="https://github.com/wheelvet/wheelvet" \
      org.opencontainers.image.description="wheelvet: audit and repair Linux binary wheels (the GitHub Action's image)" \
      org.opencontainers.image.licenses="MIT"

COPY requirements/action.txt /opt/wheelvet/requirements.txt
COPY pyproject.toml README.md /opt/wheelvet/src/
COPY policies /opt/wheelvet/src/policies
COPY templates /opt/wheelvet/src/templates
COPY src /opt/wheelvet/src/src

# Every package, the build backend included, comes pinned with its hashes; wheelvet itself is
# built from the copy above with that backend, without fetching anything. The pins are those of
# wheelvet[action] (PyGithub and what it needs: `pip install wheelvet` alone has no PyGithub), with isal
# (ISA-L, a dependency of wheelvet on x86_64 and aarch64 Linux);
# the last command fails the build if the action's extra is not all there.
RUN "${PYTHON}" -m venv /opt/wheelvet/venv \
    && /opt/wheelvet/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes --only-binary=:all: -r /opt/wheelvet/requirements.txt \
    && /opt/wheelvet/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        --no-deps --no-build-isolation --no-index /opt/wheelvet/src \
    && /opt/wheelvet/venv/bin/wheelvet --version \
    && /opt/wheelvet/venv/bin/python -c "import wheelvet.github.comment"

ENV PATH=/opt/wheelvet/venv/bin:${PATH}

ENTRYPOINT ["wheelvet", "action"]
