# The operator image: a slim Python base, the package installed into a virtualenv in a
# build stage, and only that virtualenv copied into the final stage (no pip cache, no
# build tools), run as a non-root user with a read-only root filesystem in mind.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY eevee ./eevee
COPY kubestandin ./kubestandin
COPY rules ./rules
COPY crds ./crds
COPY examples ./examples
RUN python -m venv /opt/eevee \
 && /opt/eevee/bin/pip install --no-cache-dir --no-compile . \
 && /opt/eevee/bin/pip uninstall --yes pip setuptools wheel

FROM python:3.11-slim
COPY --from=build /opt/eevee /opt/eevee
ENV PATH=/opt/eevee/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RULES_DIR=/opt/eevee/share/eevee-operator/rules
USER 65532:65532
EXPOSE 9000
ENTRYPOINT ["eevee-operator"]
CMD ["run"]
