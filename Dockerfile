# CPU image (with Ray, so the same image can run cluster nodes):
# docker build -t datacleaner .
# docker run --rm -v "$PWD/data:/data" datacleaner clean /data/images --out /data/run --weights-dir /data/weights
# docker run --rm -it -p 127.0.0.1:8765:8765 -v "$PWD/data:/data" datacleaner review /data/run --host 0.0.0.0 --no-browser
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.1" "torchvision>=0.16"
WORKDIR /opt/datacleaner
COPY pyproject.toml README.md ./
COPY datacleaner ./datacleaner
RUN pip install ".[ray]"
WORKDIR /work
ENTRYPOINT ["datacleaner"]
CMD ["--help"]
