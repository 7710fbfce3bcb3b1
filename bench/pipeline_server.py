"""Baseline HTTP server for bench/serve_vs_pipeline_server.py: a naive per-request server that
behaves like the Hugging Face inference toolkit.

At startup it loads ``transformers.pipeline("text-classification", model=DIR)`` once; then every
``POST /invocations`` (the body is the text, e.g. Content-Type application/x-text) calls the
pipeline once, for that request alone: no batching. The endpoint is a plain ``def``, so FastAPI
runs each call in its threadpool (up to 40 at once, each using all torch threads), as a naive
server does. The answer is the pipeline's own output with ``top_k=None``: a JSON list of
``{"label", "score"}`` for every label, highest score first. ``GET /ping`` answers 200 once the
model is loaded (the port only opens then). One uvicorn worker, access log off.

    .venv/bin/python bench/pipeline_server.py --model-dir bench/out/sst2-model --port 8081
    curl -s -H 'Content-Type: application/x-text' --data 'a gorgeous film' localhost:8081/invocations
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import codecs

from fastapi import Depends, FastAPI, Request, Response  # module level: FastAPI resolves the string annotations here
from fastapi.responses import JSONResponse


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model-dir", required=True, help="a Hugging Face model folder (config.json with id2label, tokenizer)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    return p.parse_args()


def create_app(model_dir: str):
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    classifier = pipeline("text-classification", model=model_dir, device="cpu")
    app = FastAPI()

    async def raw_body(request: Request) -> tuple[bytes, str]:
        return await request.body(), request.headers.get("content-type", "")

    @app.get("/ping")
    def ping() -> Response:
        return Response(status_code=200)

    @app.post("/invocations")
    def invocations(body: tuple[bytes, str] = Depends(raw_body)) -> Response:
        data, content_type = body
        charset = "utf-8"
        if "charset=" in content_type:
            charset = content_type.split("charset=", 1)[1].split(";")[0].strip() or "utf-8"
        try:
            codecs.lookup(charset)
            text = data.decode(charset)
        except (LookupError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"cannot decode the body: {exc}"}, status_code=400)
        if not text.strip():
            return JSONResponse({"error": "empty body"}, status_code=400)
        return JSONResponse(classifier(text, top_k=None))

    return app


def main() -> None:
    args = parse_args()
    import uvicorn

    app = create_app(args.model_dir)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
