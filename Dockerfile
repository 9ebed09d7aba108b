# One image for the API, the workers and the one-shot migration; the command picks the role.
# CPU build of torch by default; for the gpu worker, build with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VERIFIER_DATA_DIR=/data

WORKDIR /app
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.3,<2.14"
COPY pyproject.toml README.md alembic.ini ./
COPY verifier ./verifier
COPY workers ./workers
COPY migrations ./migrations
# Editable, so that the migrations folder next to the package is found from any folder;
# with Flower, which the compose file's monitor profile runs from this image.
RUN pip install -e ".[flower]"

RUN useradd --create-home --uid 1000 derivcheck && mkdir -p /data && chown derivcheck /data
USER derivcheck
EXPOSE 8000
CMD ["derivcheck", "serve", "--host", "0.0.0.0", "--port", "8000"]
