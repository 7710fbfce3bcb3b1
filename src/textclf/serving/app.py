"""The HTTP endpoint (Starlette): SageMaker's container and runtime contracts plus a web page.

=====================================  =====================================================
GET  /ping                             200 (empty) once the model is loaded, 503 before
POST /invocations                      classify (container contract); model failure -> 500
POST /endpoints/{name}/invocations     the same on the SageMaker runtime path, so boto3's
                                       ``invoke_endpoint`` works; model failure -> 424
GET  /execution-parameters             batch transform settings
GET  /metrics                          Prometheus text
GET  /                                 a page to paste a text and see the prediction
=====================================  =====================================================

Every error is JSON ``{"Message": "..."}`` with its status (400 bad body, 406 Accept, 413 too
large, 415 Content-Type, 503 loading); on the runtime path the ``x-amzn-ErrorType`` header names
it the way the SageMaker runtime does, so botocore raises a ``ClientError`` with that code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..backends import cores
from ..errors import RequestError, TextclfError
from .batcher import ModelFailure
from .config import ServeConfig
from .handler import Context, Handler
from .metrics import Metrics

__all__ = ["app_from_env", "create_app", "make_handler"]

log = logging.getLogger("textclf.serving")
_AMZN_ERROR_TYPES = {
    400: "ValidationError",
    406: "ValidationError",
    413: "ValidationError",
    415: "ValidationError",
    424: "ModelError",
    503: "ServiceUnavailable",
}


def _error(status: int, message: str, runtime: bool = False) -> JSONResponse:
    headers = {"x-amzn-ErrorType": _AMZN_ERROR_TYPES.get(status, "InternalFailure")} if runtime else None
    return JSONResponse({"Message": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes before or while reading it."""
    too_large = RequestError(
        413, f"the request body is larger than the limit of {limit / 2**20:g} MB; split it into smaller requests."
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _runs_on(model) -> str:
    """``torch (bfloat16)``, ``onnx-int8``, … or ``custom code`` for a model_fn's own object."""
    backend = getattr(model, "backend", None)
    if backend is None or not hasattr(backend, "name"):
        return "custom code"
    dtype = getattr(backend, "dtype", None)
    return f"{backend.name} ({str(dtype).replace('torch.', '')})" if dtype is not None else backend.name


def make_handler(config: ServeConfig, observe: Callable[[int, int], None] | None = None) -> Handler:
    """The (not yet loaded) handler for the model ``config`` names; Hub models are fetched here."""
    from ..models import local_folder, resolve_model

    if config.model:
        source = resolve_model(config.model)
        folder, name = Path(local_folder(source)), source.display_name
    else:
        folder = Path(config.model_dir)
        name = folder.resolve().name
    return Handler(
        folder,
        name=name,
        backend=config.backend,
        dtype=config.dtype,
        max_batch_size=config.max_batch_size,
        max_batch_delay_ms=config.max_batch_delay_ms,
        observe=observe,
    )


def create_app(
    config: ServeConfig, *, on_load_failure: Callable[[str], None] | None = None, load_before_serving: bool = False
) -> Starlette:
    """The endpoint for ``config``.

    By default the model loads in the background once the app starts and ``/ping`` answers 503
    meanwhile (one process, as SageMaker expects). With ``load_before_serving`` the app loads it
    during startup, so the server accepts no connection before it is ready: the ``--workers``
    case, where a worker still loading must not take requests its loaded siblings could answer.
    """
    metrics = Metrics()
    state = {"error": None, "page": None}
    handler_box: dict[str, Handler] = {}

    async def load() -> None:
        try:
            handler = await asyncio.to_thread(make_handler, config, metrics.observe_batch)
            await asyncio.to_thread(handler.load)
            await handler.start()
        except Exception as exc:
            message = str(exc) if isinstance(exc, TextclfError) else f"{type(exc).__name__}: {exc}"
            state["error"] = message
            log.error("cannot load the model: %s", message)
            if on_load_failure is not None:
                on_load_failure(message)
            return
        info = json.dumps({"name": handler.name, "labels": [str(x) for x in handler.labels]}).replace("<", "\\u003c")
        state["page"] = (
            resources.files(__package__)
            .joinpath("page.html")
            .read_text(encoding="utf-8")
            .replace("/*MODEL_INFO*/null", info)
        )
        handler_box["handler"] = handler
        log.info(
            "model %s loaded from %s; labels %s; running on %s",
            handler.name,
            handler.model_dir,
            handler.labels,
            _runs_on(handler.model),
        )

    def ready_handler() -> Handler:
        handler = handler_box.get("handler")
        if handler is None or not handler.ready:
            why = (
                f"the model failed to load: {state['error']}"
                if state["error"]
                else "the model is still loading; retry when GET /ping answers 200."
            )
            raise RequestError(503, why)
        return handler

    def endpoint(route: str, fn: Callable[[Request], Awaitable[Response]], runtime: bool = False):
        """Errors become statuses here, at one edge; every answer is counted in the metrics."""

        async def run(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response = await fn(request)
            except RequestError as exc:
                response = _error(exc.status, str(exc), runtime)
            except ModelFailure as exc:
                response = _error(424 if runtime else 500, str(exc), runtime)
            except TextclfError as exc:
                response = _error(400, str(exc), runtime)
            except ClientDisconnect:
                response = Response(status_code=499)
            except Exception as exc:
                log.exception("unexpected error on %s", route)
                response = _error(500, f"internal error: {type(exc).__name__}: {exc}", runtime)
            metrics.observe_request(route, response.status_code, time.perf_counter() - start)
            return response

        return run

    def invocations(runtime: bool):
        async def invoke(request: Request) -> Response:
            handler = ready_handler()
            accept = handler.response_type(request.headers.get("accept"))
            context = Context(str(handler.model_dir), dict(request.headers))
            with handler.arriving():
                body = await _read_body(request, config.max_payload_bytes)
                data = await handler.parse(body, request.headers.get("content-type"), context)
            prediction = await handler.predict(data, context)
            content, media_type = await handler.render(prediction, accept, context)
            headers = {"x-Amzn-Invoked-Production-Variant": "AllTraffic"} if runtime else None
            return Response(content, media_type=media_type, headers=headers)

        return invoke

    async def ping(request: Request) -> Response:
        ready_handler()
        return Response(status_code=200)

    async def execution_parameters(request: Request) -> Response:
        return JSONResponse(
            {
                "MaxConcurrentTransforms": config.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": int(config.max_payload_mb),
            }
        )

    async def metrics_route(request: Request) -> Response:
        handler = handler_box.get("handler")
        metrics.queue_depth.set(handler.queue_depth if handler else 0)
        content, media_type = metrics.render()
        return Response(content, media_type=media_type)

    async def page(request: Request) -> Response:
        ready_handler()
        return HTMLResponse(state["page"])

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    async def unexpected(request: Request, exc: Exception) -> Response:
        return _error(500, f"internal error: {type(exc).__name__}")

    @asynccontextmanager
    async def lifespan(app: Starlette):
        loading = asyncio.create_task(load())
        if load_before_serving:
            await loading
        yield
        await loading  # a SIGTERM during loading waits for it, then closes cleanly
        handler = handler_box.get("handler")
        if handler is not None:
            await handler.close()

    routes = [
        Route("/ping", endpoint("/ping", ping), methods=["GET"]),
        Route("/invocations", endpoint("/invocations", invocations(runtime=False)), methods=["POST"]),
        Route(
            "/endpoints/{name}/invocations",
            endpoint("/endpoints/{name}/invocations", invocations(runtime=True), runtime=True),
            methods=["POST"],
        ),
        Route("/execution-parameters", endpoint("/execution-parameters", execution_parameters), methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/", endpoint("/", page), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error, Exception: unexpected}
    )
    app.state.metrics = metrics
    app.state.handler = handler_box
    return app


def app_from_env() -> Starlette:
    """The app factory ``--workers N`` starts in each worker (settings from ``TEXTCLF_SERVE_CONFIG``)."""
    import os

    import torch

    config = ServeConfig.from_json(os.environ["TEXTCLF_SERVE_CONFIG"])
    threads = max(1, cores() // config.workers)  # workers share the cores
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # and ONNX Runtime's sessions take as many
    return create_app(config, load_before_serving=True)
