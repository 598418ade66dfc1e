"""Champion and challenger behind one server, routed as a SageMaker endpoint routes its variants.

- No challenger: every request goes to the champion.
- ``shadow``: the champion answers every request; a copy of each request the champion answered is
  then scored by the challenger on a background thread, and its answer is captured, never returned
  (SageMaker's ``ShadowProductionVariants``). The copy waits in a bounded queue: when the
  challenger falls behind, copies are dropped and counted, so the champion never waits for it.
- ``ab``: each request goes to one variant, drawn by weight (``ProductionVariants`` with
  ``InitialVariantWeight``); the ``X-Amzn-SageMaker-Target-Variant`` header picks one instead.

Every answer names its variant in ``x-Amzn-Invoked-Production-Variant``, and each variant's
requests and responses are captured under ``<capture dir>/<variant>/yyyy/mm/dd/hh/``, the layout
of endpoint data capture. The two records of one shadowed request share their ``eventId``, which
is how ``compare`` pairs them. A challenger that cannot be loaded, or that raises, never costs the
champion an answer: it is reported on stderr and, in A/B mode, its share of the traffic is
answered by the champion (a request that names it in the target header gets a 503).
"""

from __future__ import annotations

import json
import math
import queue
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

from mlops_platform.capture import CaptureWriter
from threadpoolctl import ThreadpoolController

from .inference import Answer, Model, error_answer, model_fn, transform_fn

VARIANTS_FILE = Path(__file__).with_name("variants.json")
_NAMES: dict[str, str] = json.loads(VARIANTS_FILE.read_text())
CHAMPION = _NAMES["champion"]
CHALLENGER = _NAMES["challenger"]
MODES = ("shadow", "ab")
# botocore's sagemaker-runtime service model: InvokeEndpoint's TargetVariant request header and
# InvokedProductionVariant response header.
TARGET_VARIANT_HEADER = "X-Amzn-SageMaker-Target-Variant"
INVOKED_VARIANT_HEADER = "x-Amzn-Invoked-Production-Variant"
# Shadow copies waiting for the challenger; beyond this they are dropped (and counted).
SHADOW_QUEUE_SIZE = 1000


class RoutingError(ValueError):
    """A request naming a variant that cannot answer it; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_weights(text: str) -> tuple[float, float]:
    """``"90,10"`` as (champion, challenger) weights: two non-negative numbers, not both zero."""
    parts = [part.strip() for part in text.split(",")]
    try:
        weights = tuple(float(part) for part in parts)
    except ValueError:
        weights = ()
    if len(weights) != 2 or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"weights {text!r}: expected two non-negative numbers such as 90,10")
    if sum(weights) == 0:
        raise ValueError(f"weights {text!r}: at least one weight must be above zero")
    return weights[0], weights[1]


@dataclass
class Variant:
    """One model behind the server; ``model`` is None when it could not be loaded."""

    name: str
    model: Model | None
    capture: CaptureWriter | None
    problem: str | None = None
    failures: int = 0


def load_variant(name: str, model_dir: Path, capture_root: Path | None) -> Variant:
    capture = CaptureWriter(capture_root / name) if capture_root else None
    return Variant(name, model_fn(str(model_dir)), capture)


def load_challenger(model_dir: Path, capture_root: Path | None) -> Variant:
    """The challenger, or a variant that records why it could not be loaded."""
    try:
        return load_variant(CHALLENGER, model_dir, capture_root)
    # Whatever a bad model directory raises (missing file, unpickling, bad metadata), the champion
    # must still serve: the reason is reported, not raised.
    except Exception as error:
        problem = f"cannot load {model_dir}: {type(error).__name__}: {error}"
        print(f"challenger '{CHALLENGER}' disabled: {problem}", file=sys.stderr, flush=True)
        return Variant(CHALLENGER, None, None, problem)


@dataclass
class Request:
    """One request as the server received it: what a variant scores and what its capture records.

    A shadow copy is the same request, scored again by the challenger; ``event_id`` pairs the
    two records.
    """

    raw: bytes
    content: bytes | str
    content_type: str
    accept: str
    event_id: str
    inference_id: str | None


@dataclass
class Rollout:
    """The variants of one server and how requests reach them."""

    champion: Variant
    challenger: Variant | None = None
    mode: str | None = None
    weights: tuple[float, float] = (1.0, 0.0)
    seed: int | None = None
    shadow_dropped: int = 0
    _random: random.Random = field(init=False, repr=False)
    _queue: queue.Queue[Request] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.challenger is not None and self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: expected one of {', '.join(MODES)}")
        self._random = random.Random(self.seed)  # noqa: S311 - traffic split, not security
        self._queue = queue.Queue(maxsize=SHADOW_QUEUE_SIZE)
        if self.mode == "shadow":
            threading.Thread(target=self._shadow_worker, daemon=True).start()

    @property
    def variants(self) -> dict[str, Variant]:
        found = [self.champion] + ([self.challenger] if self.challenger else [])
        return {variant.name: variant for variant in found}

    def production_variants(self) -> list[str]:
        """Names a client may target: in shadow mode the challenger is not a production variant."""
        if self.mode == "ab" and self.challenger is not None:
            return [self.champion.name, self.challenger.name]
        return [self.champion.name]

    def invoke(
        self,
        raw: bytes,
        content: bytes | str,
        content_type: str,
        accept: str,
        target: str | None = None,
        inference_id: str | None = None,
    ) -> tuple[Answer, str]:
        """The answer to one request and the name of the variant that gave it."""
        variant = self._choose(target)
        request = Request(raw, content, content_type, accept, str(uuid.uuid4()), inference_id)
        if variant is not self.champion:
            answer = self._try(variant, request)
            if answer is not None:
                return answer, variant.name
            if target is not None:  # the client asked for this variant: say it cannot answer
                message = f"variant '{variant.name}' cannot answer: {variant.problem}"
                return error_answer(HTTPStatus.SERVICE_UNAVAILABLE, message), variant.name
        answer = self._run(self.champion, request)
        if self.mode == "shadow" and answer.status == HTTPStatus.OK:
            self._shadow(request)
        return answer, self.champion.name

    def drain(self) -> None:
        """Wait until every shadow copy queued so far has been scored and captured."""
        self._queue.join()

    def _choose(self, target: str | None) -> Variant:
        if target is not None:
            if target not in self.production_variants():
                names = ", ".join(self.production_variants())
                raise RoutingError(
                    f"{TARGET_VARIANT_HEADER} {target[:63]!r} is not a production variant of "
                    f"this server; use one of: {names}",
                    HTTPStatus.BAD_REQUEST,
                )
            return self.variants[target]
        if self.mode != "ab" or self.challenger is None:
            return self.champion
        champion_weight, challenger_weight = self.weights
        draw = self._random.random() * (champion_weight + challenger_weight)
        return self.challenger if draw >= champion_weight else self.champion

    def _run(self, variant: Variant, request: Request) -> Answer:
        assert variant.model is not None  # noqa: S101 - callers check
        start = time.perf_counter_ns()
        answer = transform_fn(variant.model, request.content, request.content_type, request.accept)
        latency_us = (time.perf_counter_ns() - start) // 1000
        if answer.status == HTTPStatus.OK and variant.capture is not None:
            variant.capture.write(
                request.raw,
                request.content_type,
                answer.body,
                answer.content_type,
                inference_id=request.inference_id,
                event_id=request.event_id,
                model_latency_us=latency_us,
            )
        return answer

    def _try(self, variant: Variant, request: Request) -> Answer | None:
        """The challenger's answer, or None when it is not loaded or raised (reported once)."""
        if variant.model is None:
            return None
        try:
            return self._run(variant, request)
        # A challenger's bug is its own failure, counted and reported; never the champion's.
        except Exception as error:
            self._failed(variant, error)
            return None

    def _failed(self, variant: Variant, error: Exception) -> None:
        with self._lock:
            variant.failures += 1
            first = variant.failures == 1
            variant.problem = f"it raised {type(error).__name__}: {str(error)[:200]}"
        if first:
            print(
                f"challenger '{variant.name}' failed ({variant.problem}); the champion answers "
                "(counted, reported once)",
                file=sys.stderr,
                flush=True,
            )

    def _shadow(self, request: Request) -> None:
        if self.challenger is None or self.challenger.model is None:
            return
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            with self._lock:
                self.shadow_dropped += 1

    def _shadow_worker(self) -> None:
        # One OpenMP/BLAS thread, as for request threads (serve.InferenceServer).
        with ThreadpoolController().limit(limits=1):
            while True:
                request = self._queue.get()
                try:
                    if self.challenger is not None:
                        self._try(self.challenger, request)
                finally:
                    self._queue.task_done()
