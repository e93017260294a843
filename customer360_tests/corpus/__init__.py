"""A corpus of bad (and awkward-but-valid) raw inputs, built deterministically, each with the verdict it must get.

Why generated rather than checked-in files: most cases are a valid file with one defect, and building
them from one valid line per dataset keeps each defect visible in its one-line recipe and the corpus in
step with the contracts. Every case names the raw key it lands under, its bytes, and the exact reason
codes the gate must report (empty for the cases that must be archived). Some keys cannot exist in a
local folder at all (``..`` or empty segments); those cases are S3-only, and the local backend's
refusal to create them is asserted instead.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DAY = date(2024, 1, 1)

CUSTOMERS_HEADER = (
    "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,InternetService,"
    "OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,StreamingMovies,Contract,"
    "PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn"
)
PLANS_HEADER = (
    "plan_id,plan_name,contract,monthly_fee,data_allowance_gb,voice_minutes,sms_allowance,effective_from,effective_to"
)
FORMULA = "=cmd|' /C calc'!A0"


def customer_row(i: int, *, tenure: str = "12", payment: str = "Electronic check") -> str:
    return (
        f"{i:04d}-ABCDE,Female,0,Yes,No,{tenure},No,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,Yes,"
        f"{payment},29.85,358.20,No"
    )


def customers_csv(rows: int = 5, *, header: str = CUSTOMERS_HEADER, extra: list[str] | None = None) -> str:
    return "\n".join([header, *(customer_row(i) for i in range(rows)), *(extra or [])]) + "\n"


def plan_row(i: int, *, name: str = "Basic", effective_from: str = "2024-01-01") -> str:
    return f"P-{i:03d},{name},Month-to-month,19.99,5,300,100,{effective_from},"


def plans_csv(rows: int = 5, *, extra: list[str] | None = None) -> str:
    return "\n".join([PLANS_HEADER, *(plan_row(i) for i in range(rows)), *(extra or [])]) + "\n"


def event(i: int, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "event_id": f"e-{i:05d}",
        "customer_id": "7590-VHVEG",
        "event_ts": "2024-01-01T10:00:00Z",
        "event_type": "voice",
        "direction": "out",
        "duration_sec": 60,
        "data_mb": None,
        "cell_id": "C-1",
        "roaming": False,
        "charge_amount": 0.5,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v != "<drop>"}


def events_jsonl(rows: int = 5, *, extra: list[str] | None = None) -> str:
    return "\n".join([*(json.dumps(event(i)) for i in range(rows)), *(extra or [])]) + "\n"


@dataclass(frozen=True)
class Case:
    name: str
    key: str
    data: bytes
    reasons: tuple[str, ...]  # exactly the reason codes the gate reports; () means it must be archived
    s3_only: bool = False  # the key cannot exist in a local folder (the store refuses to create it)

    @property
    def dataset(self) -> str:
        return self.key.split("/")[1]


def _raw(dataset: str, name: str) -> str:
    return f"raw/{dataset}/{DAY.isoformat()}/{name}"


def _truncated_gzip(text: str) -> bytes:
    data = gzip.compress(text.encode(), mtime=0)
    return data[: len(data) // 2]


def _corrupted_gzip(text: str) -> bytes:
    data = bytearray(gzip.compress(text.encode(), mtime=0))
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    return bytes(data)


def _garbage(size: int) -> bytes:
    # High bytes only: never a NUL, never a newline, almost never valid UTF-8.
    return bytes(b | 0x80 for b in random.Random(7).randbytes(size))


def _customers(name: str, data: bytes | str, *reasons: str) -> Case:
    return Case(name, _raw("customers", name.replace("_", "-") + ".csv"), _bytes(data), reasons)


def _bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


GOOD_CUSTOMERS = customers_csv()

CASES: tuple[Case, ...] = (
    # -- objects the gate cannot read as text of the declared encoding
    Case("empty_object", _raw("customers", "empty.csv"), b"", ("empty_object",)),
    Case("unsupported_xlsx", _raw("customers", "crm.xlsx"), b"PK\x03\x04" + _garbage(64), ("unsupported_extension",)),
    Case("unsupported_txt", _raw("customers", "crm.txt"), GOOD_CUSTOMERS.encode(), ("unsupported_extension",)),
    Case("extension_only_name", _raw("customers", ".csv"), GOOD_CUSTOMERS.encode(), ("unsupported_extension",)),
    Case("zip_not_gzip", _raw("customers", "crm.csv.zip"), b"PK\x03\x04" + _garbage(64), ("unsupported_extension",)),
    _customers(
        "latin1_value", customers_csv(extra=[customer_row(9, payment="Ch\xe8que")]).encode("latin-1"), "not_utf8"
    ),
    _customers("cp1252_header", ("customerIDé," + CUSTOMERS_HEADER[11:] + "\n").encode("cp1252"), "not_utf8"),
    _customers("utf16_file", GOOD_CUSTOMERS.encode("utf-16"), "not_utf8"),
    _customers("binary_garbage", _garbage(4096), "not_utf8"),
    _customers("nul_bytes", GOOD_CUSTOMERS.replace("Female", "Fem\x00ale", 1), "nul_bytes"),
    Case(
        "truncated_gzip",
        _raw("customers", "crm-truncated.csv.gz"),
        _truncated_gzip(customers_csv(200)),
        ("corrupt_compression",),
    ),
    Case(
        "corrupted_gzip",
        _raw("customers", "crm-corrupted.csv.gz"),
        _corrupted_gzip(customers_csv(200)),
        ("corrupt_compression",),
    ),
    Case(
        "plain_text_named_gz", _raw("customers", "crm-plain.csv.gz"), GOOD_CUSTOMERS.encode(), ("corrupt_compression",)
    ),
    Case(
        "gzip_named_csv",
        _raw("customers", "crm-packed.csv"),
        gzip.compress(GOOD_CUSTOMERS.encode(), mtime=0),
        ("undeclared_gzip",),
    ),
    Case(
        "gzip_named_jsonl",
        _raw("activity_logs", "events-packed.jsonl"),
        gzip.compress(events_jsonl().encode(), mtime=0),
        ("undeclared_gzip",),
    ),
    Case("xlsx_named_csv", _raw("customers", "crm-workbook.csv"), b"PK\x03\x04" + _garbage(64), ("binary_file",)),
    Case(
        "parquet_named_jsonl",
        _raw("activity_logs", "events-table.jsonl"),
        b"PAR1" + _garbage(64) + b"PAR1",
        ("binary_file",),
    ),
    _customers(
        "giant_single_line", customers_csv(extra=[customer_row(9, payment="x" * ((1 << 20) + 10))]), "line_too_long"
    ),
    # -- CSV structure and header against the contract
    _customers("semicolon_delimiter", GOOD_CUSTOMERS.replace(",", ";"), "missing_required_fields", "wrong_delimiter"),
    _customers("tab_delimiter", GOOD_CUSTOMERS.replace(",", "\t"), "missing_required_fields", "wrong_delimiter"),
    _customers(
        "missing_required_column",
        "\n".join(line.rsplit(",", 1)[0] for line in GOOD_CUSTOMERS.splitlines()),
        "missing_required_fields",
    ),
    _customers("renamed_column_case", GOOD_CUSTOMERS.replace("customerID", "CustomerID", 1), "missing_required_fields"),
    _customers(
        "duplicate_header",
        "\n".join(f"{line},{line.split(',')[1]}" for line in GOOD_CUSTOMERS.splitlines()),
        "duplicate_header",
    ),
    _customers("short_row", customers_csv(extra=["0009-ABCDE,Female,0"]), "wrong_field_count"),
    _customers("long_row", customers_csv(extra=[customer_row(9) + ",surplus"]), "wrong_field_count"),
    _customers(
        "unterminated_quote", customers_csv(extra=['0009-ABCDE,"Female,0']), "wrong_field_count", "unparseable_csv"
    ),
    _customers("header_only", CUSTOMERS_HEADER + "\n", "header_only"),
    _customers("header_only_no_newline", CUSTOMERS_HEADER, "header_only"),
    _customers("blank_lines_only", "\n\n\n", "no_header"),
    _customers(
        "too_many_bad_types",
        customers_csv(4, extra=[customer_row(i, tenure="twelve") for i in range(5, 9)]),
        "too_many_bad_rows",
    ),
    Case(
        "impossible_dates",
        _raw("plans", "catalog-bad-dates.csv"),
        plans_csv(2, extra=[plan_row(i, effective_from="2023-02-30") for i in range(3, 6)]).encode(),
        ("too_many_bad_rows",),
    ),
    # -- JSON Lines
    Case(
        "jsonl_array_line",
        _raw("activity_logs", "events-array.jsonl"),
        events_jsonl(extra=["[1, 2]"]).encode(),
        ("not_json_object",),
    ),
    Case(
        "jsonl_scalar_first_line",
        _raw("activity_logs", "events-scalar.jsonl"),
        ("42\n" + events_jsonl()).encode(),
        ("not_json_object",),
    ),
    Case(
        "jsonl_broken_object",
        _raw("activity_logs", "events-broken.jsonl"),
        events_jsonl(extra=['{"event_id": "e-9", "customer_id"']).encode(),
        ("invalid_json",),
    ),
    Case("jsonl_holding_csv", _raw("activity_logs", "events-csv.jsonl"), plans_csv().encode(), ("invalid_json",)),
    Case(
        "jsonl_missing_field",
        _raw("activity_logs", "events-no-customer.jsonl"),
        "\n".join(json.dumps(event(i, customer_id="<drop>")) for i in range(3)).encode(),
        ("missing_required_fields",),
    ),
    Case(
        "jsonl_truncated_gzip",
        _raw("activity_logs", "events-truncated.jsonl.gz"),
        _truncated_gzip(events_jsonl(300)),
        ("corrupt_compression",),
    ),
    Case("jsonl_blank", _raw("activity_logs", "events-blank.jsonl"), b"\n \n", ("no_header",)),
    Case(
        "jsonl_not_object_after_blank_lines",
        _raw("activity_logs", "events-scalar-later.jsonl"),
        ("\n\n" + events_jsonl(2, extra=['"a string"'])).encode(),
        ("not_json_object",),
    ),
    # -- keys that name no dataset, no day, or reach outside their folder
    Case("unknown_dataset", "raw/invoices/2024-01-01/inv.csv", GOOD_CUSTOMERS.encode(), ("unknown_dataset",)),
    Case(
        "impossible_date_in_key",
        "raw/customers/2024-02-30/crm.csv",
        GOOD_CUSTOMERS.encode(),
        ("invalid_partition_date",),
    ),
    Case("word_instead_of_date", "raw/customers/latest/crm.csv", GOOD_CUSTOMERS.encode(), ("invalid_partition_date",)),
    Case("unpadded_date", "raw/plans/2024-1-5/catalog.csv", plans_csv().encode(), ("invalid_partition_date",)),
    Case("missing_date_folder", "raw/customers/crm.csv", GOOD_CUSTOMERS.encode(), ("missing_partition_date",)),
    Case("loose_in_raw", "raw/crm.csv", GOOD_CUSTOMERS.encode(), ("unroutable_key",)),
    Case("sub_folder_of_day", _raw("customers", "extra/crm.csv"), GOOD_CUSTOMERS.encode(), ("unroutable_key",)),
    Case("control_char_in_key", _raw("customers", "crm\tcopy.csv"), GOOD_CUSTOMERS.encode(), ("unsafe_key",)),
    Case(
        "path_traversal",
        _raw("customers", "../../archive/customers/2024-01-01/crm.csv"),
        GOOD_CUSTOMERS.encode(),
        ("unsafe_key",),
        s3_only=True,
    ),
    Case("empty_segment", "raw/customers//2024-01-01/crm.csv", GOOD_CUSTOMERS.encode(), ("unsafe_key",), s3_only=True),
    Case("dot_segment", _raw("plans", "./catalog.csv"), plans_csv().encode(), ("unsafe_key",), s3_only=True),
    # -- names the lake cannot store (issue 12, items 8 and 9): rejected under a safe, bounded key
    Case("backslash_in_name", _raw("customers", "crm\\copy.csv"), GOOD_CUSTOMERS.encode(), ("unsafe_key",)),
    Case(
        "name_too_long",
        _raw("customers", "crm-" + "x" * 300 + ".csv"),
        GOOD_CUSTOMERS.encode(),
        ("name_too_long",),
        s3_only=True,
    ),
    Case(
        "folder_marker_holding_data",
        _raw("customers", "crm.csv/"),
        GOOD_CUSTOMERS.encode(),
        ("unsafe_key",),
        s3_only=True,
    ),
    Case("long_name_of_a_bad_file", _raw("customers", "r" * 246 + ".csv"), b"\n\n", ("no_header",)),
    Case("report_suffix_name", _raw("customers", "crm.csv.report.json"), b"{}", ("unsupported_extension",)),
    # -- awkward but valid: must be archived, bytes and all
    # (content of their own: the same bytes as a file already current would be a duplicate, not archived)
    Case("tmp_prefixed_name", _raw("customers", ".tmp-crm.csv"), customers_csv(6).encode(), ()),
    Case("name_of_250_characters", _raw("customers", "c" * 246 + ".csv"), customers_csv(7).encode(), ()),
    _customers("utf8_bom", "\ufeff" + GOOD_CUSTOMERS),
    _customers("crlf_line_ends", GOOD_CUSTOMERS.replace("\n", "\r\n")),
    Case(
        "quoted_newline_and_comma",
        _raw("plans", "catalog-multiline.csv"),
        plans_csv(2, extra=[plan_row(8, name='"Family,\nplus"')]).encode(),
        (),
    ),
    _customers("few_bad_rows_below_threshold", customers_csv(40, extra=[customer_row(99, tenure="-3")])),
    Case(
        "jsonl_leading_blank_lines",
        _raw("activity_logs", "events-leading-blanks.jsonl"),
        ("\n \r\n\n" + events_jsonl()).encode(),
        (),
    ),
    Case(
        "jsonl_first_object_lacks_nullable_fields",
        _raw("activity_logs", "events-sms-first.jsonl"),
        "\n".join(
            json.dumps(event(i, duration_sec="<drop>", data_mb="<drop>") if i == 0 else event(i)) for i in range(5)
        ).encode(),
        (),
    ),
    Case("spaces_and_unicode_in_name", _raw("customers", "crm export ñ 2024.csv"), GOOD_CUSTOMERS.encode(), ()),
    Case(
        "formula_injection",
        _raw("plans", "catalog-formula.csv"),
        plans_csv(2, extra=[plan_row(7, name='"' + FORMULA.replace('"', '""') + '"')]).encode(),
        (),
    ),
)


def land(store: object, key: str, data: bytes) -> None:
    """Put ``data`` under ``key`` the way an upstream system would, not through our store's key checks.

    S3: a plain PutObject (any key S3 takes). A local folder: a file written beside and renamed into place
    (what a careful upstream writer does), creating the folders on the way.
    """
    from customer360.lake.local import LocalLakeStore
    from customer360.lake.s3 import S3LakeStore

    if isinstance(store, S3LakeStore):
        store.client.put_object(Bucket=store.bucket, Key=store._base + key, Body=data)
        return
    assert isinstance(store, LocalLakeStore)
    path = Path(store.root, *key.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent.parent / f".upstream-{uuid.uuid4().hex}"
    staging.write_bytes(data)
    os.replace(staging, path)


REJECTED_CASES = tuple(c for c in CASES if c.reasons)
ACCEPTED_CASES = tuple(c for c in CASES if not c.reasons)
