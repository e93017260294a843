"""One line a person can act on, for the errors a command meets outside our own code.

Why: a missing bucket, a refused connection or absent credentials used to end ``customer360 ...`` with a
36-line botocore traceback whose last line named neither the endpoint nor what to check. ``describe``
turns such an error into what failed, where (endpoint, bucket, file) and what to check; ``customer360
--debug`` still shows the traceback. It looks through the chain of causes (``raise ... from``), so an
error wrapped by a lake store or by Dagster is described by the root cause it carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import botocore.exceptions as boto

from customer360.defs.resources.lake import LakeConfigError

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AllAccessDisabled",
    }
)
_NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
# The demo data generator: a development tool (tools/), not installed with the runtime package.
GENERATOR_MODULE = "customer360_generator"
GENERATOR_MISSING = (
    f"the demo data generator ({GENERATOR_MODULE}) is not installed: it is a development tool, not part of the "
    "runtime package; install it from a checkout with `pip install ./tools` (`python3.11 dev.py demo` sets up a "
    ".venv that has it)"
)


@dataclass(frozen=True)
class Where:
    """The configured places an error may be about, to name them in the message."""

    lake: str
    endpoint: str | None

    @property
    def endpoint_text(self) -> str:
        return self.endpoint or "AWS's default S3 endpoint"


def where_from_env() -> Where:
    """The lake and S3 endpoint the environment configures (never raises: it only labels a message)."""
    from customer360.defs.resources.lake import lake_resource_from_env

    try:
        lake = lake_resource_from_env(must_exist=False)
    except LakeConfigError:
        from customer360.settings import lake_location

        return Where(lake_location() or "?", None)
    return Where(lake.location, lake.endpoint_url)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def describe(error: BaseException, where: Where) -> str:
    """What failed, where and what to check, in one line."""
    causes = list(_chain(error))
    for describe_cause in (lambda cause: _describe_one(cause, where), _describe_other):
        for cause in causes:
            described = describe_cause(cause)
            if described:
                return described
    return f"{type(error).__name__}: {_first_line(error) or 'no message'}"


def _describe_one(error: BaseException, where: Where) -> str | None:  # noqa: PLR0911 - one branch per kind of error
    if isinstance(error, LakeConfigError):
        return str(error)
    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError):
        return (
            f"no usable AWS credentials for the lake {where.lake} ({_first_line(error)}): set AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role provides them"
        )
    if isinstance(error, boto.ConnectTimeoutError | boto.ReadTimeoutError):
        endpoint = _endpoint_of(error, where)
        return (
            f"the S3 endpoint {endpoint} did not answer in time for the lake {where.lake}: check "
            "CUSTOMER360_S3_ENDPOINT_URL (or AWS_ENDPOINT_URL) and that the service is up and reachable"
        )
    if isinstance(error, boto.EndpointConnectionError | boto.ConnectionClosedError | boto.ProxyConnectionError):
        endpoint = _endpoint_of(error, where)
        return (
            f"cannot connect to the S3 endpoint {endpoint} for the lake {where.lake}: check "
            "CUSTOMER360_S3_ENDPOINT_URL (or AWS_ENDPOINT_URL) and that the service is running"
        )
    if isinstance(error, boto.ClientError):
        return _describe_client_error(error, where)
    return None


def _endpoint_of(error: boto.BotoCoreError, where: Where) -> str:
    """The endpoint a connection error was about (botocore gives the whole request URL: keep scheme and host)."""
    url = urlsplit(str(error.kwargs.get("endpoint_url") or ""))
    return f"{url.scheme}://{url.netloc}" if url.scheme and url.netloc else where.endpoint_text


def _describe_client_error(error: boto.ClientError, where: Where) -> str:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    operation = error.operation_name
    bucket = details.get("BucketName") or where.lake
    if code in _NO_BUCKET_CODES or (code in ("404", "NotFound") and operation == "HeadBucket"):
        return (
            f"the bucket of the lake {where.lake} does not exist at {where.endpoint_text} ({operation}: {code}): "
            "check CUSTOMER360_LAKE for a typo and CUSTOMER360_S3_ENDPOINT_URL, or create the bucket"
        )
    if code in _ACCESS_CODES:
        return (
            f"S3 refused {operation} on {bucket} at {where.endpoint_text} ({code}: "
            f"{_first_line(details.get('Message', ''))}): check the AWS credentials and the bucket's policy"
        )
    return (
        f"S3 {operation} on the lake {where.lake} at {where.endpoint_text} failed: {code} "
        f"{_first_line(details.get('Message', ''))}"
    ).rstrip()


def _describe_other(error: BaseException) -> str | None:
    if isinstance(error, ModuleNotFoundError) and (error.name or "").partition(".")[0] == GENERATOR_MODULE:
        return GENERATOR_MISSING
    module = type(error).__module__
    if module.startswith(("duckdb", "_duckdb")):
        return (
            f"the DuckDB warehouse failed: {_first_line(error)} (check CUSTOMER360_DUCKDB_PATH, and that no other "
            "process holds the file)"
        )
    if module.startswith("snowflake"):
        return (
            f"Snowflake failed: {_first_line(error)} (check SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, the private key "
            "and SNOWFLAKE_ROLE / SNOWFLAKE_WAREHOUSE / SNOWFLAKE_DATABASE / SNOWFLAKE_SCHEMA)"
        )
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return None
