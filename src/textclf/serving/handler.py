"""The inference handler: ``model_fn`` -> ``input_fn`` -> ``predict_fn`` -> ``output_fn``.

These are the SageMaker inference-toolkit steps. The defaults load a :class:`~textclf.Classifier`,
parse the content types of :mod:`textclf.serving.codecs`, batch texts across concurrent requests
(:class:`~textclf.serving.batcher.DynamicBatcher`) and answer in the negotiated Accept type.

A model folder may carry ``code/inference.py`` defining any of

    model_fn(model_dir)                 -> model            (default: Classifier.load)
    input_fn(input_data, content_type)  -> data             (default: codecs.decode)
    predict_fn(data, model)             -> prediction       (default: batched predict_proba)
    output_fn(prediction, accept)       -> body [or (body, content_type)]

each optionally taking a trailing ``context`` (a :class:`Context`). As in SageMaker, ``input_data``
is a ``str`` for text content types and ``bytes`` otherwise; ``output_fn``'s body is answered with
Content-Type ``accept``. The file is imported from the folder the operator serves and nowhere else:
serving a folder runs its code, so serve only folders you trust. The code ``textclf package
--inference-code`` writes (for SageMaker's Hugging Face container) is not run: it only does what
the defaults do.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import ModelError, TextclfError
from ..inference import Classifier
from ..packaging import is_packaged_code
from . import codecs
from .batcher import DynamicBatcher
from .errors import ModelFailure, RequestError, UnsupportedAccept

__all__ = ["Context", "Handler", "HANDLER_FUNCTIONS"]

log = logging.getLogger("textclf.serving")
HANDLER_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")


@dataclass
class Context:
    """Passed to custom handler functions that take a trailing ``context`` argument."""

    model_dir: str
    request_headers: dict[str, str] = field(default_factory=dict)


def load_user_code(model_dir: Path) -> ModuleType | None:
    """Import ``model_dir/code/inference.py`` if it exists (its folder goes on ``sys.path``)."""
    path = model_dir / "code" / "inference.py"
    if not path.is_file():
        return None
    if is_packaged_code(model_dir):  # `textclf package --inference-code`'s, for SageMaker: serve as textclf does
        log.info("%s is textclf's own code for SageMaker's Hugging Face container; serving without it", path)
        return None
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("textclf_user_inference", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelError(f"{path}: cannot import custom inference code ({type(exc).__name__}: {exc}).") from exc
    found = [name for name in HANDLER_FUNCTIONS if callable(getattr(module, name, None))]
    log.info("custom inference code %s overrides: %s", path, ", ".join(found) or "nothing")
    return module


def _call(fn: Callable, args: tuple, context: Context) -> Any:
    """Call a user function, adding ``context`` when it takes one more positional argument."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        params = []
    return fn(*args, context) if len(params) > len(args) else fn(*args)


class Handler:
    """One loaded model and the four steps that answer a request."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        name: str,
        backend: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 64,
        max_batch_delay_ms: float = 5.0,
        observe: Callable[[int, int], None] | None = None,
        threshold: float | None = None,
        at_least_one: bool = False,
    ):
        self.model_dir = Path(model_dir)
        self.name = name
        self.backend = backend
        self.dtype = dtype
        self.threshold = threshold
        self.at_least_one = at_least_one
        self.max_batch_size = max_batch_size
        self.max_delay = max_batch_delay_ms / 1000
        self.observe = observe
        self.model: Any = None
        self.user: ModuleType | None = None
        self.batcher: DynamicBatcher | None = None
        self.ready = False
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="textclf-model")  # custom predict_fn

    # -- lifecycle ---------------------------------------------------------------------

    def load(self) -> None:
        """Load the model (blocking; the app runs it in a thread)."""
        self.user = load_user_code(self.model_dir)
        context = Context(str(self.model_dir))
        model_fn = self._custom("model_fn")
        if model_fn is not None:
            try:
                self.model = _call(model_fn, (str(self.model_dir),), context)
            except Exception as exc:
                raise ModelError(
                    f"{self.model_dir}/code/inference.py: model_fn failed ({type(exc).__name__}: {exc})."
                ) from exc
        else:
            self.model = Classifier.load(
                self.model_dir,
                backend=self.backend,
                batch_size=self.max_batch_size,
                dtype=self.dtype,
                threshold=self.threshold,
                at_least_one=self.at_least_one,
            )
        if model_fn is not None and isinstance(self.model, Classifier):
            if self.threshold is not None or self.at_least_one:  # the operator's rule over the one model_fn set
                self.model.set_thresholds(self.model.thresholds.tolist(), self.threshold, self.at_least_one)
        elif model_fn is not None and (self.threshold is not None or self.at_least_one):
            raise ModelError(
                f"{self.model_dir}/code/inference.py: model_fn returned a {type(self.model).__name__}, not a "
                "textclf.Classifier, so --threshold and --at-least-one cannot apply; leave them out."
            )
        if self._custom("predict_fn") is None and not isinstance(self.model, Classifier):
            raise ModelError(
                f"{self.model_dir}/code/inference.py: model_fn returned a {type(self.model).__name__}, which the "
                "default predict_fn cannot run; return a textclf.Classifier or define predict_fn too."
            )

    async def start(self) -> None:
        """Start batching (on the running event loop) and report ready."""
        gc.freeze()  # the loaded model's objects never become garbage: keep them out of collections
        if self._custom("predict_fn") is None:
            self.batcher = DynamicBatcher(self.model.predict_proba, self.max_batch_size, self.max_delay, self.observe)
            self.batcher.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        if self.batcher is not None:
            await self.batcher.close()
        self._model_thread.shutdown(wait=True)

    @property
    def labels(self) -> list:
        if isinstance(self.model, Classifier):
            return [self.model.labels.value(i) for i in range(len(self.model.labels))]
        return []

    @property
    def multi_label(self) -> bool:
        return isinstance(self.model, Classifier) and self.model.labels.multi_label

    def task(self) -> dict:
        """The task and, for a multi-label model, its decision rule (``/info`` and the page show it)."""
        if not isinstance(self.model, Classifier):
            return {}
        if not self.multi_label:
            return {"task": self.model.labels.task}
        thresholds = {str(label): round(float(t), 6) for label, t in zip(self.labels, self.model.thresholds)}
        return {"task": self.model.labels.task, "thresholds": thresholds, "at_least_one": self.model.at_least_one}

    @property
    def queue_depth(self) -> int:
        return self.batcher.depth if self.batcher is not None else 0

    def _custom(self, name: str) -> Callable | None:
        fn = getattr(self.user, name, None) if self.user is not None else None
        return fn if callable(fn) else None

    # -- the four steps ----------------------------------------------------------------

    def response_type(self, accept: str | None) -> str:
        """The Accept type to answer in (:class:`UnsupportedAccept` unless output_fn is custom)."""
        if self._custom("output_fn") is not None:
            return codecs.JSON if not accept or accept.strip() in ("*/*", "") else accept
        return codecs.negotiate(accept)

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request as on its way in (read, parse), so batches wait for it."""
        if self.batcher is not None:
            self.batcher.arriving += 1
        try:
            yield
        finally:
            if self.batcher is not None:
                self.batcher.arriving -= 1

    async def parse(self, body: bytes, content_type: str | None, context: Context) -> Any:
        input_fn = self._custom("input_fn")
        if input_fn is None:
            return codecs.decode(body, content_type)
        text_type = codecs.media_type(content_type) in codecs.CONTENT_TYPES
        data = codecs.utf8_text(body) if text_type else body
        try:
            return await asyncio.to_thread(_call, input_fn, (data, content_type), context)
        except TextclfError:
            raise
        except Exception as exc:
            raise RequestError(f"input_fn: {type(exc).__name__}: {exc}") from exc

    async def predict(self, data: Any, context: Context) -> Any:
        predict_fn = self._custom("predict_fn")
        if predict_fn is None:
            request = codecs.to_request(data)
            probabilities = await self.batcher.submit(request.texts)
            predicted = self.model.decide(probabilities) if self.multi_label else None
            return codecs.Predictions(request, probabilities, self.labels, predicted)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._model_thread, _call, predict_fn, (data, self.model), context)
        except TextclfError:
            raise
        except Exception as exc:
            raise ModelFailure(f"predict_fn: {type(exc).__name__}: {exc}") from exc

    async def render(self, prediction: Any, accept: str, context: Context) -> tuple[bytes, str]:
        output_fn = self._custom("output_fn")
        if output_fn is not None:
            try:
                result = await asyncio.to_thread(_call, output_fn, (prediction, accept), context)
            except Exception as exc:
                raise ModelFailure(f"output_fn: {type(exc).__name__}: {exc}") from exc
            body, media = result if isinstance(result, tuple) else (result, accept)
            return (body.encode() if isinstance(body, str) else bytes(body)), media
        if isinstance(prediction, codecs.Predictions):
            return codecs.encode(prediction, accept), accept
        if accept not in (codecs.JSON, codecs.VERBOSE):
            raise UnsupportedAccept(
                f"predict_fn's result can only be answered as {codecs.JSON}; define output_fn for {accept}."
            )
        return json.dumps(prediction, default=_jsonable).encode(), codecs.JSON


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, codecs.Predictions):
        return value.verbose()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
