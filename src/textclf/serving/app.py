"""The HTTP endpoint (Starlette): SageMaker's container and runtime contracts plus a web page.

=====================================  =====================================================
GET  /ping                             200 (empty) once the model is loaded, 503 before
POST /invocations                      classify (container contract); model failure -> 500
POST /endpoints/{name}/invocations     the same on the SageMaker runtime path, so boto3's
                                       ``invoke_endpoint`` works; model failure -> 424
GET  /execution-parameters             batch transform settings
GET  /info                             the model's name, labels and task (for a multi-label model
                                       its threshold a label), and what it runs on and why
                                       (backend, precision, CPU flags), once loaded
GET  /metrics                          Prometheus text
GET  /                                 a page to paste a text and see the prediction
=====================================  =====================================================

:class:`Endpoint` holds the model and answers the routes (its methods). Errors become statuses
in one place, :meth:`Endpoint.error`: every error is JSON ``{"Message": "..."}`` with its status
(400 bad body, 406 Accept, 413 too large, 415 Content-Type, 503 loading, from the classes of
:mod:`textclf.serving.errors`); on the runtime path the ``x-amzn-ErrorType`` header names it the
way the SageMaker runtime does, so botocore raises a ``ClientError`` with that code.
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
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..backends import threads_per_worker
from ..errors import TextclfError
from ..inference import Classifier
from .config import ServeConfig
from .errors import BodyTooLarge, ModelFailure, ModelTimeout, NotReady, UnsupportedAccept, UnsupportedContentType
from .handler import Context, Handler
from .metrics import Metrics

__all__ = ["Endpoint", "app_from_env", "create_app", "make_handler"]

log = logging.getLogger("textclf.serving")
RUNTIME_ROUTE = "/endpoints/{name}/invocations"
# The one map from errors to statuses; an error answers as its nearest listed class. On the
# runtime path a ModelFailure is 424 instead, as the SageMaker runtime answers a model's error.
STATUSES: dict[type[TextclfError], int] = {
    TextclfError: 400,
    UnsupportedAccept: 406,
    BodyTooLarge: 413,
    UnsupportedContentType: 415,
    ModelFailure: 500,
    ModelTimeout: 504,
    NotReady: 503,
}
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
    too_large = BodyTooLarge(
        f"the request body is larger than the limit of {limit / 2**20:g} MB; split it into smaller requests."
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


def make_handler(config: ServeConfig, observe: Callable[[int, int], None] | None = None) -> Handler:
    """The (not yet loaded) handler for the model ``config`` names; Hub models are fetched here."""
    from ..artifact import ModelFolder
    from ..models import local_folder, resolve_model

    if config.model:
        source = resolve_model(config.model)
        folder, name = Path(local_folder(source)), source.display_name
    else:
        folder = ModelFolder.read(config.model_dir).path  # a model.tar.gz: the folder it unpacks to
        name = folder.resolve().name
    return Handler(
        folder,
        name=name,
        backend=config.backend,
        dtype=config.dtype,
        max_batch_size=config.max_batch_size,
        max_batch_delay_ms=config.max_batch_delay_ms,
        observe=observe,
        threshold=config.threshold,
        at_least_one=config.at_least_one,
    )


class Endpoint:
    """One model behind the routes of the module docstring; :attr:`app` is the Starlette application.

    By default the model loads in the background once the app starts and ``/ping`` answers 503
    meanwhile (one process, as SageMaker expects). With ``load_before_serving`` the app loads it
    during startup, so the server accepts no connection before it is ready: the ``--workers``
    case, where a worker still loading must not take requests its loaded siblings could answer.
    ``on_load_failure(message)`` is called once if the model cannot load.
    """

    def __init__(
        self,
        config: ServeConfig,
        *,
        on_load_failure: Callable[[str], None] | None = None,
        load_before_serving: bool = False,
    ):
        self.config = config
        self.on_load_failure = on_load_failure
        self.load_before_serving = load_before_serving
        self.metrics = Metrics()
        self.handler: Handler | None = None  # set once loaded and started
        self.load_error: str | None = None
        self.page_html = ""
        self.routes = [
            Route("/ping", self.ping, methods=["GET"]),
            Route("/invocations", self.invocations, methods=["POST"]),
            Route(RUNTIME_ROUTE, self.runtime_invocations, methods=["POST"]),
            Route("/execution-parameters", self.execution_parameters, methods=["GET"]),
            Route("/info", self.info, methods=["GET"]),
            Route("/metrics", self.metrics_text, methods=["GET"]),
            Route("/", self.page, methods=["GET"]),
        ]
        # Starlette gives a handler for ``Exception`` to its outermost middleware, which re-raises
        # after answering; an ExceptionMiddleware of our own answers every error and keeps it.
        self.app = Starlette(
            routes=self.routes,
            lifespan=self.lifespan,
            middleware=[
                Middleware(_Metered, endpoint=self),
                Middleware(ExceptionMiddleware, handlers={Exception: self.error}),
            ],
            exception_handlers={HTTPException: self.error},  # Starlette's own 404 and 405
        )
        self.app.state.endpoint = self

    # -- the model's lifecycle ------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Starlette):
        loading = asyncio.create_task(self.load())
        if self.load_before_serving:
            await loading
        yield
        await loading  # a SIGTERM during loading waits for it, then closes cleanly
        if self.handler is not None:
            await self.handler.close()

    async def load(self) -> None:
        """Load and start the model in threads; a failure is logged, reported and answered by /ping."""
        try:
            handler = await asyncio.to_thread(make_handler, self.config, self.metrics.observe_batch)
            await asyncio.to_thread(handler.load)
            await handler.start()
        except Exception as exc:
            self.load_error = str(exc) if isinstance(exc, TextclfError) else f"{type(exc).__name__}: {exc}"
            log.error("cannot load the model: %s", self.load_error)
            if self.on_load_failure is not None:
                self.on_load_failure(self.load_error)
            return
        self.page_html = _page_html(handler)
        self.handler = handler
        log.info(
            "model %s loaded from %s; labels %s; %s",
            handler.name,
            handler.model_dir,
            handler.labels,
            handler.model.summary() if isinstance(handler.model, Classifier) else "running custom code",
        )

    def ready(self) -> Handler:
        """The loaded handler, or :class:`NotReady` while it loads or after it failed to."""
        if self.handler is None or not self.handler.ready:
            if self.load_error:
                raise NotReady(f"the model failed to load: {self.load_error}")
            raise NotReady("the model is still loading; retry when GET /ping answers 200.")
        return self.handler

    # -- the routes -----------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        self.ready()
        return Response(status_code=200)

    async def invocations(self, request: Request) -> Response:
        content, media_type = await self.classify(request)
        return Response(content, media_type=media_type)

    async def runtime_invocations(self, request: Request) -> Response:
        content, media_type = await self.classify(request)
        return Response(content, media_type=media_type, headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    async def classify(self, request: Request) -> tuple[bytes, str]:
        """Read, parse, predict and render one request (the body of both invocations routes)."""
        handler = self.ready()
        accept = handler.response_type(request.headers.get("accept"))
        context = Context(str(handler.model_dir), dict(request.headers))
        with handler.arriving():
            body = await _read_body(request, self.config.max_payload_bytes)
            data = await handler.parse(body, request.headers.get("content-type"), context)
        prediction = await self.within_timeout(handler.predict(data, context))
        return await handler.render(prediction, accept, context)

    async def within_timeout(self, prediction: Awaitable) -> Any:
        """``prediction``'s result, or :class:`ModelTimeout` after ``request_timeout_s``. The late request is
        cancelled: its texts still queued are dropped (the batcher skips cancelled requests; other requests in
        the same batch are answered as usual); a batch already on the model finishes."""
        limit = self.config.request_timeout_s
        if limit is None:
            return await prediction
        try:
            return await asyncio.wait_for(prediction, limit)
        except asyncio.TimeoutError:
            raise ModelTimeout(
                f"the prediction took longer than the request timeout of {limit:g} s (request_timeout_s, "
                "$SAGEMAKER_MODEL_SERVER_TIMEOUT)."
            ) from None

    async def execution_parameters(self, request: Request) -> Response:
        return JSONResponse(
            {
                "MaxConcurrentTransforms": self.config.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": int(self.config.max_payload_mb),
            }
        )

    async def info(self, request: Request) -> Response:
        """The model and how it runs: backend, precision and why they were chosen, the CPU's relevant flags."""
        handler = self.ready()
        model = handler.model
        runs = model.describe() if isinstance(model, Classifier) else {"backend": "custom code"}
        return JSONResponse(
            {
                "name": handler.name,
                "labels": [str(x) for x in handler.labels],
                **handler.task(),
                **runs,
                "max_batch_size": self.config.max_batch_size,
                "max_batch_delay_ms": self.config.max_batch_delay_ms,
                "workers": self.config.workers,
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        self.metrics.queue_depth.set(self.handler.queue_depth if self.handler else 0)
        content, media_type = self.metrics.render()
        return Response(content, media_type=media_type)

    async def page(self, request: Request) -> Response:
        self.ready()
        return HTMLResponse(self.page_html)

    # -- the edge -------------------------------------------------------------------------

    async def error(self, request: Request, exc: Exception) -> Response:
        """The answer to every exception a request raised: the one place errors become statuses."""
        if isinstance(exc, ClientDisconnect):
            return Response(status_code=499)  # nobody reads it; /metrics counts it
        if isinstance(exc, HTTPException):  # no such route (404) or method (405)
            return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")
        route = self.route_of(request.scope)
        runtime = route == RUNTIME_ROUTE
        if not isinstance(exc, TextclfError):
            log.error("unexpected error on %s", route, exc_info=exc)
            return _error(500, f"internal error: {type(exc).__name__}: {exc}", runtime)
        status = next(STATUSES[cls] for cls in type(exc).__mro__ if cls in STATUSES)
        if runtime and isinstance(exc, (ModelFailure, ModelTimeout)):
            status = 424
        return _error(status, str(exc), runtime)

    def route_of(self, scope: Scope) -> str | None:
        """The path of the route that answers ``scope`` (``/endpoints/{name}/invocations``), if any."""
        return next((route.path for route in self.routes if route.matches(scope)[0] is Match.FULL), None)


class _Metered:
    """ASGI middleware: counts each answer of a route but /metrics by route and status, and times it."""

    def __init__(self, app: ASGIApp, endpoint: Endpoint):
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.endpoint.route_of(scope) if scope["type"] == "http" else None
        if route is None or route == "/metrics":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_and_note)
        self.endpoint.metrics.observe_request(route, status, time.perf_counter() - start)


def _page_html(handler: Handler) -> str:
    """The web page, with the model's name, labels and task (and thresholds) written into it."""
    info = {"name": handler.name, "labels": [str(x) for x in handler.labels], **handler.task()}
    info = json.dumps(info).replace("<", "\\u003c")
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    return page.replace("/*MODEL_INFO*/null", info)


def create_app(
    config: ServeConfig, *, on_load_failure: Callable[[str], None] | None = None, load_before_serving: bool = False
) -> Starlette:
    """The Starlette app of an :class:`Endpoint` for ``config`` (see there for the arguments)."""
    return Endpoint(config, on_load_failure=on_load_failure, load_before_serving=load_before_serving).app


def app_from_env() -> Starlette:
    """The app factory ``--workers N`` starts in each worker (settings from ``TEXTCLF_SERVE_CONFIG``)."""
    import os
    import sys

    config = ServeConfig.from_json(os.environ["TEXTCLF_SERVE_CONFIG"])
    threads = threads_per_worker(config.workers)  # workers share the cores
    # Read by PyTorch when it starts (only the torch backend imports it) and by ONNX Runtime's sessions.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return create_app(config, load_before_serving=True)
