"""The request bodies of the REST server, generated from a bundle's feature schema.

``POST /v1/predict`` takes ``{"instances": [{feature: value, …}, …]}``; every instance needs every
feature the model was trained on (a missing key is a 422 naming it; keys that are not features are
ignored).  Values are checked by the feature's kind:

* numeric: a JSON number between -1e18 and 1e18 (``"3.5"`` as a string, ``true``, ``NaN`` and
  ``Infinity`` → 422);
* categorical: a string, number or boolean, compared with training's values in training's
  representation (``1``, ``1.0`` and ``"1"`` are the same category).  With
  ``serve.unknown_categories: reject`` a value training never saw is a 422 listing the known values —
  when the bundle knows them all (its reference profile, else its schema, lists every value);
  otherwise unknown values are accepted;
* boolean: ``true``/``false``, ``1``/``0`` or the strings yes/no, true/false, y/n, t/f, 1/0;
* text: a string;  datetime: an ISO 8601 date or date-time string;
* image: the image file's bytes (PNG, JPEG, …) as a base64 string, or a ``data:`` URL of them; the
  header must be an image Pillow can read (never a path: the server reads no file a client names);
* ``null`` is a missing value (imputed like training) under ``serve.missing: accept``, a 422 under
  ``reject``, and always for the models that impute nothing (``RAW_TASKS``: generative models, agents).

Some models need more than the kind (:func:`model_rules`): a char_lm texts of at least 2 characters,
a tabular agent the ids of its states.

Validation runs on the raw JSON bytes (pydantic's JSON mode); the values it returns are the JSON
values as sent, which the bundle's own ``prepare`` then coerces exactly as training did.

:class:`Gate`, the middleware in front of every route, admits a request before any of this: its id
(``X-Request-ID``), its API key (``serve.api_key_env``; 401) and its size (``serve.max_body_kb``; 413,
on the declared Content-Length and on the bytes actually received).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import math
import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from time import perf_counter
from typing import Annotated, Any

from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StrictStr,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from honing.bundle import Bundle
from honing.data.schema import Column, Schema
from honing.errors import ServingError
from honing.recipe import ServeConfig

#: Paths that need no API key (probes and docs).
OPEN_PATHS = frozenset({"/v1/health", "/v1/ready", "/docs", "/docs/oauth2-redirect", "/redoc",
                        "/openapi.json"})
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
#: A client's X-Request-ID is kept when it matches this; otherwise a new id is generated.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_ERRORS = 50  # validation errors listed in one 422
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_LISTED = 20  # known categories named in a message

Finite = Annotated[float, Strict(), AllowInfNan(False)]
#: The largest magnitude of a numeric feature: larger numbers overflow preprocessing and models.
MAGNITUDE = 1e18
#: Tasks whose models take the values as sent: nothing imputes a missing one.
RAW_TASKS = ("generation", "reinforcement")


class RequestError(Exception):
    """A bad request: ``status`` (413, 422) and ``detail`` (a message, or field-level errors)."""

    def __init__(self, status: int, detail: str | list[dict]):
        self.status = status
        self.detail = detail
        super().__init__(str(detail))


def canonical(value: Any) -> str:
    """A category value as training stores it (``honing.data.preprocess.coerce_features``): booleans
    as true/false, integral numbers without a decimal point, strings stripped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def known_values(column: Column, reference: dict | None) -> frozenset[str] | None:
    """Every category training saw in ``column`` (canonical strings), or None when the bundle does
    not list them all: the reference profile's values when it has no 'other' share, else the schema's
    categories when they are all of the column's distinct values."""
    profile = (reference or {}).get(column.name)
    if isinstance(profile, dict) and isinstance(profile.get("proportions"), dict):
        return None if profile.get("other") else frozenset(str(k) for k in profile["proportions"])
    categories = column.categories or []
    if categories and len(categories) >= column.unique:
        return frozenset(canonical(c) for c in categories)
    return None


def _shown(value: Any) -> str:
    """A value as a message shows it: its repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _scalar(value: Any) -> Any:
    """A string, boolean or finite number (one error for anything else, not one per JSON type)."""
    if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise PydanticCustomError("scalar_type", "Input should be a string, a finite number or a boolean")


#: A category value: a string, number or boolean.
Scalar = Annotated[Any, PlainValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean"]})]


def _not_null(value: Any, message: str) -> Any:
    if value is None:
        raise PydanticCustomError("missing_value", message)
    return value


def _category(value: Any, known: frozenset[str] | None) -> Any:
    if known is not None and canonical(value) not in known:
        listed = sorted(known)
        more = f", … ({len(listed)} in all)" if len(listed) > _LISTED else ""
        names = ", ".join(listed[:_LISTED]) + more
        raise PydanticCustomError(
            "unknown_category", "{value} is not a category seen in training (serve.unknown_categories: "
            "reject); known: {known}", {"value": _shown(value), "known": names})
    return value


def _boolean(value: Any) -> Any:
    if isinstance(value, bool) or canonical(value).lower() in _TRUE | _FALSE:
        return value
    raise PydanticCustomError("boolean", "{value} is not a boolean: use true/false, 1/0 or yes/no",
                              {"value": _shown(value)})


def _iso_datetime(value: str) -> str:
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        raise PydanticCustomError("datetime", "{value} is not an ISO 8601 date or date-time (e.g. 2024-05-01 "
                                  "or 2024-05-01T13:45:00Z)", {"value": _shown(value)}) from None
    return value


def _scorable_text(value: str) -> str:
    if len(value) < 2:
        raise PydanticCustomError("text_too_short", "a language model scores every character after the first: send "
                                  "a text of at least 2 characters (this one has {length})", {"length": len(value)})
    return value


def _state_id(value: float, states: int) -> float:
    if not (value.is_integer() and 0 <= value < states):
        raise PydanticCustomError("state_id", "{value} is not a state id of this agent: send an integer in 0..{last}",
                                  {"value": canonical(value), "last": states - 1})
    return value


def model_rules(bundle: Bundle, column: Column) -> tuple:
    """What the bundle's model needs of ``column`` beyond its kind (annotations; empty when nothing): a
    char_lm scores texts of at least 2 characters, a tabular agent takes the ids of its states."""
    agent = bundle.manifest.get("torch") or {}
    if bundle.manifest.get("model_type") == "char_lm" and column.kind == "text":
        return (AfterValidator(_scorable_text), WithJsonSchema({"type": "string", "minLength": 2}))
    if agent.get("kind") == "tabular" and column.name in agent.get("obs_columns", ()):
        states = int(agent["n_states"])
        return (AfterValidator(partial(_state_id, states=states)),
                WithJsonSchema({"type": "integer", "minimum": 0, "maximum": states - 1}))
    return ()


def _is_boolean(column: Column, known: frozenset[str] | None) -> bool:
    """A boolean column whose values are yes/no words (a forced ``boolean`` kind may hold others)."""
    values = known if known is not None else {canonical(c) for c in column.categories or []}
    return column.kind == "boolean" and all(v.lower() in _TRUE | _FALSE for v in values)


def _image(value: str) -> bytes:
    """The bytes of a base64-encoded image file (a ``data:…;base64,`` prefix is dropped), checked to
    have an image header Pillow can read."""
    from PIL import Image

    text = value.strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("base64", "not base64: send the image file's bytes base64-encoded") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on bytes that are not an image
        raise PydanticCustomError("image", "the {size} bytes sent are not an image file Pillow can read (PNG, "
                                  "JPEG, …)", {"size": len(data)}) from None
    return data


#: An image: its file's bytes, base64-encoded.
ImageValue = Annotated[StrictStr, AfterValidator(_image),
                       WithJsonSchema({"type": "string", "contentEncoding": "base64",
                                       "contentMediaType": "image/*"})]


def _field(column: Column, known: frozenset[str] | None, serve: ServeConfig, model: tuple = (),
           imputes: bool = True) -> Any:
    """The annotated type of one feature's value; ``model``: :func:`model_rules` of the column, ``imputes``:
    whether the bundle imputes a missing value (else null is refused, whatever ``serve.missing`` says)."""
    kind, description = column.kind, column.kind
    if kind == "image":
        base: Any = ImageValue
        description = "image: the image file's bytes, base64-encoded (or a data: URL)"
    elif kind == "numeric":
        base = Annotated[Finite, Field(ge=-MAGNITUDE, le=MAGNITUDE)]
        description = "numeric: a JSON number"
    elif kind == "text":
        base = StrictStr
        description = "text: a string"
    elif kind == "datetime":
        base = Annotated[StrictStr, AfterValidator(_iso_datetime)]
        description = "datetime: an ISO 8601 date or date-time string"
    elif _is_boolean(column, known):
        base = Annotated[Scalar, AfterValidator(_boolean)]
        description = "boolean: true/false, 1/0 or yes/no"
    else:
        base = Annotated[Scalar, AfterValidator(partial(_category, known=known))]
        description = "categorical: a string, number or boolean"
        if known is not None:  # rejected unless known: the spec lists the values
            base = Annotated[base, WithJsonSchema({"enum": sorted(known)})]
            description = "categorical: one of the values seen in training"
    if model:
        base = Annotated[base, *model]
    if kind == "image":  # a missing image cannot be imputed, whatever serve.missing says
        refused: str | None = "null: every instance needs its image (one cannot be imputed)"
    elif not imputes:
        refused = f"null: this model imputes no missing value; send {description.partition(': ')[2]}"
    else:
        refused = None if serve.missing == "accept" else "null is not allowed (serve.missing: reject)"
    if refused is None:
        kind_type: Any = base | None
        description += "; null = missing (imputed like training)"
    else:
        kind_type = Annotated[base, BeforeValidator(partial(_not_null, message=refused))]
    return Annotated[kind_type, Field(title=column.name, description=description)]


class PredictRequests:
    """The ``/v1/predict`` body of one bundle: validation of raw JSON bytes into rows (dicts of the
    JSON values of every column the model needs), its JSON schema, and a typical row."""

    def __init__(self, bundle: Bundle, serve: ServeConfig):
        features = Schema.from_dict(bundle.features).features  # (images come base64-encoded)
        reference = ((bundle.manifest.get("reference") or {}).get("features")) or {}
        self.max_rows = serve.max_rows
        self.columns = [c.name for c in features]
        known = {c.name: known_values(c, reference) if serve.unknown_categories == "reject" else None
                 for c in features}
        imputes = bundle.manifest.get("task") not in RAW_TASKS
        fields = {c.name: _field(c, known[c.name], serve, model_rules(bundle, c), imputes) for c in features}
        group = (bundle.decision.get("groups") or {}).get("column")
        if group and group not in fields:  # per-group decision thresholds need the group column too
            fields[group] = Annotated[Scalar | None, Field(title=group, description="the decision's group")]
            self.columns.append(group)
        instance = TypedDict("Instance", fields)  # type: ignore[misc]  # names need not be identifiers
        instance.__pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[attr-defined]
        body = TypedDict("PredictRequest", {  # type: ignore[misc]
            "instances": Annotated[list[instance], Field(min_length=1, max_length=serve.max_rows)]})
        self.adapter = TypeAdapter(body)
        images = any(c.kind == "image" for c in features)
        self.example = typical_row(features, reference, serve, image_shape(bundle.preprocessor) if images else None)
        if group and group not in self.example:  # not a feature (audit.exclude_sensitive): one of its groups
            self.example[group] = next(iter(bundle.decision["groups"].get("thresholds") or {}), None)

    def parse(self, body: bytes) -> list[dict]:
        """The rows of a request body; RequestError 413 (too many rows) or 422 (field-level errors)."""
        try:
            return self.adapter.validate_json(body)["instances"]
        except ValidationError as exc:
            raise request_error(exc, self.max_rows) from None

    def json_schema(self) -> tuple[dict, dict]:
        """The body's JSON schema and the schemas it refers to (for ``#/components/schemas``)."""
        schema = self.adapter.json_schema(ref_template="#/components/schemas/{model}")
        return schema, schema.pop("$defs", {})


def request_error(exc: ValidationError, max_rows: int) -> RequestError:
    """A pydantic ValidationError as the server's answer: 413 when the instances are too many, else
    422 with FastAPI's field-level shape (``loc``, ``msg``, ``type``; at most MAX_ERRORS of them)."""
    errors = exc.errors(include_url=False, include_input=False)
    for error in errors:
        if error["type"] == "too_long" and tuple(error["loc"]) == ("instances",):
            count = (error.get("ctx") or {}).get("actual_length", "more")
            return RequestError(413, f"{count} instances in one request; the most is {max_rows} "
                                     "(serve.max_rows)")
    return RequestError(422, [{"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
                              for error in errors[:MAX_ERRORS]])


def typical_row(features: list[Column], reference: dict, serve: ServeConfig,
                shape: tuple[int, int, int] | None = None) -> dict:
    """A row of typical training values (for the warm-up and the API docs' example): numbers at the
    reference median (else 0), categories at their most frequent value, images a grey PNG of the
    trained ``shape`` (C, H, W)."""
    row: dict[str, Any] = {}
    for column in features:
        profile = reference.get(column.name) or {}
        if column.kind == "image":
            row[column.name] = _grey_png(shape or (1, 8, 8))
        elif column.kind == "numeric":
            quantiles = profile.get("quantiles") or []
            row[column.name] = float(quantiles[len(quantiles) // 2]) if quantiles else 0.0
        elif column.kind == "text":
            row[column.name] = "text"
        elif column.kind == "datetime":
            row[column.name] = "2024-01-01T00:00:00"
        else:
            proportions = profile.get("proportions") if isinstance(profile.get("proportions"), dict) else None
            if proportions:
                row[column.name] = max(proportions, key=proportions.get)
            elif column.categories:
                row[column.name] = canonical(column.categories[0])
            else:
                row[column.name] = None if serve.missing == "accept" else "unknown"
    return row


def image_shape(preprocessor: Any) -> tuple[int, int, int] | None:
    """``(C, H, W)`` of the images a fitted preprocessor decodes (None without an image column)."""
    for _, step, _ in getattr(preprocessor, "transformers_", []):
        if hasattr(step, "image_shape_"):
            return step.image_shape_
    return None


def _grey_png(shape: tuple[int, int, int]) -> str:
    """A mid-grey PNG image of ``shape`` (C, H, W), base64-encoded."""
    from PIL import Image

    channels, height, width = shape
    buffer = io.BytesIO()
    Image.new("L" if channels == 1 else "RGB", (width, height), 128 if channels == 1 else (128,) * 3).save(
        buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def feedback_model(bundle: Bundle, max_rows: int) -> type[BaseModel]:
    """The ``/v1/feedback`` body: a request id, one ground-truth label per row (a known class of a
    classifier, given as the class or its string; a finite number for a regressor) and the optional
    row indices the labels belong to (default 0, 1, …; each below ``max_rows``, the most rows of a request)."""
    if bundle.is_classifier:
        classes = {canonical(c): c for c in bundle.classes or []}
        label: Any = Annotated[Scalar, AfterValidator(partial(_to_class, classes=classes)),
                               WithJsonSchema({"enum": list(bundle.classes or [])})]
    else:
        label = Finite

    def check_rows(cls: Any, rows: list[int] | None, info: Any) -> list[int] | None:
        labels = info.data.get("labels")
        if rows is not None and labels is not None and len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows for {len(labels)} labels: give one row index per label")
        if rows is not None and len(set(rows)) != len(rows):
            raise ValueError("row indices repeat")
        return rows

    return create_model(
        "Feedback", __config__=ConfigDict(extra="forbid"),
        __validators__={"check_rows": field_validator("rows")(check_rows)},
        request_id=(str, Field(pattern=REQUEST_ID.pattern,
                               description="The request id of the prediction (its X-Request-ID header).")),
        labels=(list[label], Field(min_length=1, max_length=max_rows, description="One true label per row.")),
        rows=(list[Annotated[int, AfterValidator(partial(_row_index, max_rows=max_rows)),
                             WithJsonSchema({"type": "integer", "minimum": 0, "maximum": max_rows - 1})]] | None,
              Field(None, description="The rows the labels belong to (default 0, 1, …).")),
    )


def _row_index(value: int, max_rows: int) -> int:
    if not 0 <= value < max_rows:
        raise PydanticCustomError("row_index", "{value} is not a row index of a request: send 0 to {last} (a "
                                  "request has at most serve.max_rows = {max_rows} rows)",
                                  {"value": _shown(value), "last": max_rows - 1, "max_rows": max_rows})
    return value


def _to_class(value: Any, classes: dict[str, Any]) -> Any:
    key = canonical(value)
    if key not in classes:
        raise PydanticCustomError("unknown_class", "{value} is not a class of this model; classes: {classes}",
                                  {"value": _shown(value), "classes": ", ".join(classes)})
    return classes[key]


# ---------------------------------------------------------------------------------------------- admission


def error_response(status: int, detail: Any, headers: dict | None = None) -> JSONResponse:
    """A JSON error answer ``{"detail": …}``."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class Gate:
    """Pure ASGI middleware in front of every route: the request id (a sane ``X-Request-ID`` header,
    else a new one, echoed in the response), the API key (401) and the body size limit (413, on the
    Content-Length header and on the bytes actually received)."""

    def __init__(self, app: Any, *, key: str | None, max_body: int):
        self.app = app
        self.expected = f"Bearer {key}".encode() if key else None
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = request_id if REQUEST_ID.match(request_id) else uuid.uuid4().hex
        scope["honing"] = {"request_id": request_id, "start": perf_counter(), "time": time.time()}
        echo = (b"x-request-id", request_id.encode())

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        refusal, receive = await self._admit(scope, headers, receive)
        await (refusal or self.app)(scope, receive, send_with_id)

    async def _admit(self, scope: dict, headers: dict, receive: Callable) -> tuple[Any, Callable]:
        """(a refusal response or None, the receive callable the app gets)."""
        if (self.expected and scope["path"] not in OPEN_PATHS and scope["method"] != "OPTIONS"
                and not hmac.compare_digest(headers.get(b"authorization", b""), self.expected)):
            return error_response(401, "missing or wrong API key: send the header 'Authorization: Bearer "
                                       "KEY'", {"WWW-Authenticate": "Bearer"}), receive
        if scope["method"] in _NO_BODY:
            return None, receive
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit():
            return error_response(400, "bad Content-Length header"), receive
        chunks, size = [], int(declared)
        while size <= self.max_body:
            message = await receive()
            if message["type"] != "http.request":
                return Response(status_code=400), receive  # the client went away
            chunks.append(message.get("body", b""))
            size = max(size, sum(map(len, chunks)))
            if not message.get("more_body", False):
                if size <= self.max_body:
                    return None, _replay(b"".join(chunks), receive)
                break
        return error_response(413, f"the request body is larger than {self.max_body // 1024} KiB "
                                   "(serve.max_body_kb)"), receive


def _replay(body: bytes, receive: Callable) -> Callable:
    """A receive callable that gives ``body`` once, then waits on the real one (for a disconnect)."""
    given = False

    async def replayed() -> dict:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def api_key(serve: ServeConfig) -> str | None:
    """The API key from ``serve.api_key_env``; ServingError when that variable is unset or empty."""
    name = serve.api_key_env
    if name is None:
        return None
    key = os.environ.get(name, "")
    if not key.strip():
        raise ServingError(f"serve.api_key_env: the environment variable {name} is not set (or empty)",
                           f"export {name}=YOUR_KEY before serving, or set serve.api_key_env: null")
    return key
