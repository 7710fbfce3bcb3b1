# textclf's SageMaker image: `docker run IMAGE train` runs a training job, `docker run IMAGE serve` an endpoint
# (SageMaker's container contract; see docs/sagemaker.md). CPU by default; for NVIDIA GPUs build with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t textclf:gpu .
# (PyTorch's CUDA wheels carry the CUDA runtime; the host's driver comes through the NVIDIA container toolkit).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

LABEL org.opencontainers.image.title="textclf" \
      org.opencontainers.image.description="Fine-tune and serve transformer text classifiers under SageMaker's container contract" \
      org.opencontainers.image.licenses="Apache-2.0" \
      com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true

# offline by default (the embedded model); DL3064 reads TOKENIZERS_PARALLELISM as a secret's name
# hadolint ignore=DL3064
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# torch first and pinned, from the index the build argument names, so pip never resolves another build of it
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

WORKDIR /src/textclf
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && textclf --version

WORKDIR /
EXPOSE 8080
# exec form: SageMaker's `train` or `serve` argument replaces CMD and reaches `textclf sagemaker`
ENTRYPOINT ["textclf", "sagemaker"]
CMD ["serve"]
