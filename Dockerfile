# The wheelvet GitHub Action: a manylinux image (its old glibc is what wheels are
# repaired against) with wheelvet in a virtual environment of its own.
# Other bases build too, e.g.:
#   docker build --build-arg BASE_IMAGE=quay.io/pypa/manylinux2014_x86_64 .
#   docker build --build-arg BASE_IMAGE=quay.io/pypa/musllinux_1_2_x86_64 .
ARG BASE_IMAGE=quay.io/pypa/manylinux_2_28_x86_64
FROM ${BASE_IMAGE}

# One of the image's own interpreters (every manylinux/musllinux image has it).
ARG PYTHON=/opt/python/cp312-cp312/bin/python3

COPY requirements/action.txt /opt/wheelvet/requirements.txt
COPY pyproject.toml README.md /opt/wheelvet/src/
COPY policies /opt/wheelvet/src/policies
COPY templates /opt/wheelvet/src/templates
COPY src /opt/wheelvet/src/src

RUN "${PYTHON}" -m venv /opt/wheelvet/venv \
    && /opt/wheelvet/venv/bin/python -m pip install --no-cache-dir -r /opt/wheelvet/requirements.txt \
    && /opt/wheelvet/venv/bin/python -m pip install --no-cache-dir --no-deps /opt/wheelvet/src \
    && /opt/wheelvet/venv/bin/wheelvet --version

ENV PATH=/opt/wheelvet/venv/bin:${PATH}

ENTRYPOINT ["wheelvet", "action"]
