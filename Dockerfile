# One image for web, result writer and GPU workers (torch from PyPI: a CUDA build on Linux).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml scripts/requirements.py ./scripts-tmp/
RUN cp scripts-tmp/pyproject.toml . && pip install -q torch==2.13.0 \
    && python scripts-tmp/requirements.py worker > /tmp/req.txt && pip install -q -r /tmp/req.txt \
    && python scripts-tmp/requirements.py models | xargs pip install -q --no-deps
COPY . .
RUN DJANGO_SECRET_KEY=build DJANGO_SETTINGS_MODULE=decodelab.config.settings.production \
    python manage.py collectstatic --noinput -v 0
