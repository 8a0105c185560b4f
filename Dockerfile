# One image for all six services; compose picks the service with `command: python -m <package>`.

# The web UI's browser assets (htmx), from the npm registry as package-lock.json pins them: Node is
# needed to build the image only, never in it.
FROM node:20-slim AS web-assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# prescription_service's scan worker reads prescriptions with Debian's tesseract (English).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid and gid: Kubernetes checks runAsNonRoot by number (deploy/helm/pharmacy runs as 10001).
RUN groupadd --system --gid 10001 pharmacy \
    && useradd --system --uid 10001 --gid pharmacy --home-dir /app --no-create-home --shell /usr/sbin/nologin pharmacy

WORKDIR /app

# Dependency metadata first, so code edits do not invalidate the layers above.
COPY pyproject.toml constraints.txt ./
COPY contracts ./contracts
COPY service_runtime ./service_runtime
COPY user_service ./user_service
COPY prescription_service ./prescription_service
COPY order_service ./order_service
COPY payment_service ./payment_service
COPY inventory_service ./inventory_service
COPY delivery_service ./delivery_service
COPY operations ./operations
COPY --from=web-assets /assets/node_modules/htmx.org/dist/htmx.min.js ./user_service/web/static/vendor/htmx.min.js
COPY --from=web-assets /assets/node_modules/htmx-ext-sse/dist/sse.min.js ./user_service/web/static/vendor/htmx-ext-sse.min.js

# The same pinned versions as the venv and CI; build leftovers are removed so only the installed copy matters.
RUN pip install --no-cache-dir -c constraints.txt . \
    && rm -rf build ./*.egg-info

USER pharmacy

# The gateway must listen on every interface inside a container; back-end services ignore these.
ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000

CMD ["python", "-m", "user_service"]
