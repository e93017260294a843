"""The LakeStore contract, checked on both backends through the ``lake`` fixture.

Why one parametrized suite instead of a test file per backend: the pipeline's promise is that the
embedded folder lake and S3 are interchangeable. Any behaviour asserted here that differs between
them fails on one parametrization, so "works locally" keeps meaning "works on S3".
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from customer360.defs.resources.lake import LakeResource, lake_resource_from_env
from customer360.lake import transfer
from customer360.lake.local import LocalLakeStore
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import ImmutableZoneError, LakeStore, ObjectExistsError
from customer360.lake.transfer import FOOTER_GUESS, parquet_footer

ARCHIVED = "archive/customers/2024-01-01/crm.csv"


def _keys(lake: LakeStore, prefix: str, start_after: str | None = None) -> list[str]:
    return [info.key for info in lake.list(prefix, start_after)]


# -- reading and writing ----------------------------------------------------------------------------


def test_put_bytes_roundtrip_and_head(lake: LakeStore) -> None:
    key = "raw/customers/2024-01-01/crm.csv"
    lake.put_bytes(key, b"customer_id,name\n1,Ada\n")

    assert lake.read_bytes(key) == b"customer_id,name\n1,Ada\n"
    info = lake.head(key)
    assert info is not None
    assert (info.key, info.size) == (key, 23)
    assert info.etag
    assert info.last_modified is not None
    assert abs(info.last_modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert info.last_modified.isoformat().endswith("+00:00")  # same rendering on both backends

    # An ordinary (non-archive) overwrite replaces the content, and the etag tells a poller so even
    # though the size is unchanged.
    lake.put_bytes(key, b"customer_id,name\n2,Bob\n")
    assert lake.read_bytes(key) == b"customer_id,name\n2,Bob\n"
    replaced = lake.head(key)
    assert replaced is not None and replaced.etag != info.etag


def test_put_file_and_download_roundtrip(lake: LakeStore, tmp_path: Path) -> None:
    # Bigger than every read/copy buffer, so chunk boundaries are crossed.
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "usage.bin"
    source.write_bytes(payload)

    lake.put_file("raw/usage/2024-01-01/cdr.bin", source)

    target = tmp_path / "downloads" / "nested" / "cdr.bin"  # parent folders do not exist yet
    lake.download("raw/usage/2024-01-01/cdr.bin", target)
    assert target.read_bytes() == payload
    assert lake.read_bytes("raw/usage/2024-01-01/cdr.bin") == payload
    info = lake.head("raw/usage/2024-01-01/cdr.bin")
    assert info is not None and info.size == len(payload)


def test_read_tail_returns_the_end_of_an_object(lake: LakeStore) -> None:
    payload = os.urandom(200_000)
    lake.put_bytes("staging/plans/dt=2024-01-01/part-00000.parquet", payload)
    lake.put_bytes("staging/plans/dt=2024-01-01/empty.bin", b"")

    assert lake.read_tail("staging/plans/dt=2024-01-01/part-00000.parquet", 1000) == payload[-1000:]
    # Asking for more than the object holds returns all of it, an empty object nothing.
    assert lake.read_tail("staging/plans/dt=2024-01-01/part-00000.parquet", 300_000) == payload
    assert lake.read_tail("staging/plans/dt=2024-01-01/empty.bin", 8) == b""
    with pytest.raises(FileNotFoundError):
        lake.read_tail("staging/plans/dt=2024-01-01/nope.parquet", 8)
    with pytest.raises(FileNotFoundError):
        lake.read_tail("staging/plans", 8)  # a prefix, not an object


def test_parquet_footer_reads_schema_and_rows_from_the_end_alone(lake: LakeStore) -> None:
    small = pa.table({"plan_id": ["P-1", "P-2", "P-3"], "fee": pa.array([1, 2, 3], pa.int64())})
    # 600 columns: a footer bigger than the first read of a file's end, so it takes a second read.
    wide = pa.table({f"column_{i:04d}": pa.array(range(50), pa.int64()) for i in range(600)})
    for name, table in (("small", small), ("wide", wide)):
        sink = io.BytesIO()
        pq.write_table(table, sink)
        lake.put_bytes(f"staging/plans/dt=2024-01-01/{name}.parquet", sink.getvalue())
        footer = parquet_footer(lake, f"staging/plans/dt=2024-01-01/{name}.parquet")
        assert (footer.schema, footer.rows) == (table.schema, table.num_rows)
    assert int.from_bytes(lake.read_tail("staging/plans/dt=2024-01-01/wide.parquet", 8)[:4], "little") > FOOTER_GUESS

    lake.put_bytes("staging/plans/dt=2024-01-01/notes.txt", b"not parquet at all")
    with pytest.raises(ValueError, match="not a Parquet file"):
        parquet_footer(lake, "staging/plans/dt=2024-01-01/notes.txt")


@pytest.mark.parametrize("size", [0, 1, transfer.CHUNK - 1, 3 * transfer.CHUNK + 5])
def test_fetch_checksums_the_snapshot_it_copies(lake: LakeStore, size: int) -> None:
    """A local snapshot is hashed while it is copied (the hash follows the copy): the sums are of every byte."""
    import hashlib

    data = os.urandom(size)
    key = "raw/activity_logs/2024-01-01/usage.csv"
    lake.put_bytes(key, data)
    with lake.scratch_dir() as folder:
        copy = transfer.fetch(lake, key, folder)
        assert copy.path.read_bytes() == data
    assert (copy.size, copy.sha256) == (size, hashlib.sha256(data).hexdigest())
    if lake.local_path(key) is None:
        assert copy.md5 == hashlib.md5(data).hexdigest()  # what an S3 ETag is compared with


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "read-write"])
def test_a_raw_snapshot_lets_go_of_the_raw_cache_chunk_by_chunk_and_copies_every_byte(
    local_lake: LocalLakeStore, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    """The copy releases each copied range of the raw file from the page cache (its pages are reused by the
    snapshot's), whichever way the kernel copies, and the snapshot is still every byte of the raw file."""
    import errno
    import hashlib

    from customer360.lake import local

    monkeypatch.setattr(local, "_KERNEL_COPY_CHUNK", 4096)
    monkeypatch.setattr(local, "_COPY_CHUNK", 4096)
    if not kernel_copy:

        def unsupported(*args: object) -> int:
            raise OSError(errno.ENOSYS, "copy_file_range not supported here")

        monkeypatch.setattr(os, "copy_file_range", unsupported)
    released: list[tuple[int, int]] = []
    advise = os.posix_fadvise

    def recording(descriptor: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            released.append((offset, length))
        advise(descriptor, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    data = os.urandom(5 * 4096 + 7)
    key = "raw/activity_logs/2024-01-01/usage.jsonl"
    local_lake.put_bytes(key, data)
    released.clear()
    with local_lake.scratch_dir() as folder:
        copy = transfer.fetch(local_lake, key, folder)
        assert copy.path.read_bytes() == data
    assert copy.sha256 == hashlib.sha256(data).hexdigest()
    covered = 0
    for offset, length in released:
        assert offset == covered, f"released {released}: not one range after another"
        covered += length
    assert covered == len(data) and len(released) == 6


def test_fetch_of_what_cannot_be_copied_raises_and_leaves_no_hash_waiting(local_lake: LocalLakeStore) -> None:
    from customer360.lake.store import NotRegularObjectError

    folder = local_lake.root / "raw" / "activity_logs" / "2024-01-01"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.csv")
    with local_lake.scratch_dir() as scratch, pytest.raises(NotRegularObjectError):
        transfer.fetch(local_lake, "raw/activity_logs/2024-01-01/pipe.csv", scratch)
    with local_lake.scratch_dir() as scratch, pytest.raises(FileNotFoundError):
        transfer.fetch(local_lake, "raw/activity_logs/2024-01-01/gone.csv", scratch)


def test_missing_keys(lake: LakeStore, tmp_path: Path) -> None:
    lake.put_bytes("raw/customers/2024-01-01/crm.csv", b"x")

    assert lake.head("raw/customers/2024-01-01/nope.csv") is None
    # A "folder" is a prefix, not an object, on both backends.
    assert lake.head("raw/customers") is None
    with pytest.raises(FileNotFoundError):
        lake.read_bytes("raw/customers/2024-01-01/nope.csv")
    with pytest.raises(FileNotFoundError):
        lake.open_read("raw/customers")
    with pytest.raises(FileNotFoundError):
        lake.download("raw/customers/2024-01-01/nope.csv", tmp_path / "nope.csv")
    assert not (tmp_path / "nope.csv").exists()


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "/raw/x.csv",
        "raw//x.csv",
        "raw/../x.csv",
        "raw/x/",
        "raw/a\\b.csv",
        "raw/" + "x" * 256,
        ".customer360/tmp/x",
    ],
)
def test_keys_only_one_backend_could_store_are_rejected(lake: LakeStore, bad_key: str) -> None:
    with pytest.raises(ValueError, match="invalid lake key"):
        lake.put_bytes(bad_key, b"x")
    assert _keys(lake, "") == []


# -- listing ----------------------------------------------------------------------------------------


def test_list_is_in_key_order_and_prefix_may_end_mid_name(lake: LakeStore) -> None:
    keys = [
        "raw/a/b.csv",
        "raw/a-c.csv",  # '-' sorts before '/', so this precedes everything under raw/a/
        "raw/ab.csv",
        "raw/a/a.csv",
        "raw2/x.csv",
        "rawx.csv",
        "clean/a.csv",
    ]
    for key in keys:
        lake.put_bytes(key, key.encode())

    assert _keys(lake, "") == sorted(keys)
    assert _keys(lake, "raw/") == ["raw/a-c.csv", "raw/a/a.csv", "raw/a/b.csv", "raw/ab.csv"]
    assert _keys(lake, "raw/a") == ["raw/a-c.csv", "raw/a/a.csv", "raw/a/b.csv", "raw/ab.csv"]
    assert _keys(lake, "raw/a/") == ["raw/a/a.csv", "raw/a/b.csv"]
    assert _keys(lake, "raw") == ["raw/a-c.csv", "raw/a/a.csv", "raw/a/b.csv", "raw/ab.csv", "raw2/x.csv", "rawx.csv"]
    assert _keys(lake, "raw/a/b.csv") == ["raw/a/b.csv"]
    assert _keys(lake, "staging/") == []

    assert _keys(lake, "raw/", start_after="raw/a/a.csv") == ["raw/a/b.csv", "raw/ab.csv"]
    # start_after need not be an existing key.
    assert _keys(lake, "raw/", start_after="raw/a/") == ["raw/a/a.csv", "raw/a/b.csv", "raw/ab.csv"]
    assert _keys(lake, "raw/", start_after="raw/zzz") == []

    sizes = {info.key: info.size for info in lake.list("raw/a/")}
    assert sizes == {"raw/a/a.csv": len(b"raw/a/a.csv"), "raw/a/b.csv": len(b"raw/a/b.csv")}


def test_list_and_delete_prefix_go_past_the_1000_key_page(lake: LakeStore) -> None:
    keys = [f"raw/cdr/2024-01-01/part-{i:05d}.csv" for i in range(1050)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: lake.put_bytes(key, b"1"), keys))
    lake.put_bytes("raw/cdr/2024-01-02/part-00000.csv", b"1")

    assert _keys(lake, "raw/cdr/2024-01-01/") == keys
    # Resuming after a key on the first page must cross the page boundary too.
    assert _keys(lake, "raw/cdr/2024-01-01/", start_after=keys[99]) == keys[100:]
    assert len(_keys(lake, "raw/cdr/")) == 1051

    # Seeding 1,000+ objects is the slow part on S3, so the batched delete is checked here too.
    assert lake.delete_prefix("raw/cdr/2024-01-01/") == 1050
    assert _keys(lake, "") == ["raw/cdr/2024-01-02/part-00000.csv"]
    assert lake.list_prefixes("raw/cdr/") == ["raw/cdr/2024-01-02/"]


def test_list_prefixes_are_immediate_subfolders(lake: LakeStore) -> None:
    for key in [
        "raw/customers/2024-01-01/crm.csv",
        "raw/customers/2024-01-02/crm.csv",
        "raw/customers/2024-01-02/late/crm.csv",
        "raw/customers/readme.txt",
        "raw/cdr/2024-01-01/x.csv",
        "raw/customers_legacy/2023-12-31/crm.csv",
        "clean/customers/2024-01-01/part.parquet",
    ]:
        lake.put_bytes(key, b"1")

    assert lake.list_prefixes("") == ["clean/", "raw/"]
    assert lake.list_prefixes("raw/") == ["raw/cdr/", "raw/customers/", "raw/customers_legacy/"]
    assert lake.list_prefixes("raw/customers/") == ["raw/customers/2024-01-01/", "raw/customers/2024-01-02/"]
    assert lake.list_prefixes("raw/cust") == ["raw/customers/", "raw/customers_legacy/"]
    assert lake.list_prefixes("raw/customers/2024-01-02/") == ["raw/customers/2024-01-02/late/"]
    assert lake.list_prefixes("raw/customers/2024-01-01/") == []
    assert lake.list_prefixes("staging/") == []


def test_interrupted_write_is_never_visible(lake: LakeStore) -> None:
    key = "raw/customers/2024-01-03/crm.csv"
    # What each backend leaves behind when a writer dies mid-upload: the local backend's temp file in its
    # private folder, or an S3 multipart upload that was never completed.
    if isinstance(lake, LocalLakeStore):
        folder = lake.root / ".customer360" / "tmp"
        folder.mkdir(parents=True)
        (folder / uuid.uuid4().hex).write_bytes(b"customer_id,na")
    else:
        assert isinstance(lake, S3LakeStore)
        upload = lake.client.create_multipart_upload(Bucket=lake.bucket, Key=key)
        lake.client.upload_part(
            Bucket=lake.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"customer_id,na"
        )

    assert _keys(lake, "") == []
    assert lake.list_prefixes("raw/customers/") == []
    assert lake.head(key) is None

    # The retry after the crash is not mistaken for a second write of the same file.
    lake.put_bytes(key, b"customer_id,name\n1,Ada\n", create_only=True)
    assert _keys(lake, "") == [key]
    assert lake.read_bytes(key) == b"customer_id,name\n1,Ada\n"


# -- create-only writes and the immutable archive ---------------------------------------------------


def test_create_only_refuses_an_existing_key_and_keeps_the_original(lake: LakeStore, tmp_path: Path) -> None:
    key = "raw/customers/2024-01-01/crm.csv"
    lake.put_bytes(key, b"original", create_only=True)

    with pytest.raises(ObjectExistsError) as excinfo:
        lake.put_bytes(key, b"second", create_only=True)
    assert excinfo.value.key == key
    replacement = tmp_path / "replacement.csv"
    replacement.write_bytes(b"replacement")
    with pytest.raises(ObjectExistsError):
        lake.put_file(key, replacement, create_only=True)

    assert lake.read_bytes(key) == b"original"
    assert _keys(lake, "") == [key]  # no leftovers from the refused writes


def test_archive_objects_can_be_created_but_never_changed_or_removed(lake: LakeStore, tmp_path: Path) -> None:
    lake.put_bytes(ARCHIVED, b"customer_id\n1\n", create_only=True)
    replacement = tmp_path / "crm.csv"
    replacement.write_bytes(b"customer_id\n2\n")

    with pytest.raises(ImmutableZoneError, match=ARCHIVED) as excinfo:
        lake.put_bytes(ARCHIVED, b"customer_id\n2\n")
    assert isinstance(excinfo.value, PermissionError)
    with pytest.raises(ImmutableZoneError, match=ARCHIVED):
        lake.put_file(ARCHIVED, replacement)
    with pytest.raises(ImmutableZoneError, match=ARCHIVED):
        lake.delete(ARCHIVED)
    with pytest.raises(ObjectExistsError):
        lake.put_file(ARCHIVED, replacement, create_only=True)
    # Any prefix that would reach archive keys is refused as a whole, before anything is deleted.
    lake.put_bytes("raw/customers/2024-01-01/crm.csv", b"raw")
    for prefix in ["archive/", "archive/customers/", "arch", ""]:
        with pytest.raises(ImmutableZoneError):
            lake.delete_prefix(prefix)
    # A plain write of a brand-new archive key is refused too: only create-only writes go there.
    with pytest.raises(ImmutableZoneError):
        lake.put_bytes("archive/customers/2024-01-02/crm.csv", b"x")

    assert lake.read_bytes(ARCHIVED) == b"customer_id\n1\n"
    assert _keys(lake, "") == [ARCHIVED, "raw/customers/2024-01-01/crm.csv"]


def test_delete_and_delete_prefix_outside_the_archive(lake: LakeStore) -> None:
    lake.put_bytes(ARCHIVED, b"kept", create_only=True)
    rejected = [f"rejected/customers/2024-01-01/bad-{i}.csv" for i in range(3)]
    for key in [*rejected, "rejected/customers/2024-01-02/bad.csv", "raw/customers/2024-01-01/crm.csv"]:
        lake.put_bytes(key, b"x")

    lake.delete("raw/customers/2024-01-01/crm.csv")
    lake.delete("raw/customers/2024-01-01/crm.csv")  # already gone: not an error
    assert lake.head("raw/customers/2024-01-01/crm.csv") is None
    # The emptied "folders" vanish from listings, as they do on S3.
    assert lake.list_prefixes("") == ["archive/", "rejected/"]

    assert lake.delete_prefix("rejected/customers/2024-01-01/") == 3
    assert lake.delete_prefix("rejected/customers/2024-01-01/") == 0
    assert lake.list_prefixes("rejected/customers/") == ["rejected/customers/2024-01-02/"]
    assert _keys(lake, "") == [ARCHIVED, "rejected/customers/2024-01-02/bad.csv"]
    assert lake.read_bytes(ARCHIVED) == b"kept"


# -- streaming reads --------------------------------------------------------------------------------


def _customers_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer_id", "msisdn", "plan"])
    writer.writerows([i, f"+3161{i:07d}", "prepaid" if i % 3 else "postpaid"] for i in range(rows))
    return out.getvalue().encode()


def test_open_read_streams_into_gzip_and_pyarrow(lake: LakeStore) -> None:
    content = _customers_csv(50_000)  # ~1.3 MB: more than one read buffer
    lake.put_bytes("raw/customers/2024-01-01/crm.csv.gz", gzip.compress(content))
    lake.put_bytes("raw/customers/2024-01-01/crm.csv", content)

    with (
        lake.open_read("raw/customers/2024-01-01/crm.csv.gz") as raw,
        gzip.GzipFile(fileobj=raw) as unzipped,
    ):
        assert unzipped.readline() == b"customer_id,msisdn,plan\n"
        assert unzipped.read() == content.split(b"\n", 1)[1]

    with lake.open_read("raw/customers/2024-01-01/crm.csv") as f:
        table = pa_csv.open_csv(f, read_options=pa_csv.ReadOptions(block_size=64 * 1024)).read_all()
    assert table.num_rows == 50_000
    assert table.column("customer_id").to_pylist()[-1] == 49_999
    assert table.column("plan").to_pylist()[:3] == ["postpaid", "prepaid", "prepaid"]

    # Reading only the head of a large object and closing must not require reading it all.
    with lake.open_read("raw/customers/2024-01-01/crm.csv") as f:
        assert next(iter(f)) == b"customer_id,msisdn,plan\n"
    assert f.closed


# -- the Dagster resource ---------------------------------------------------------------------------


@dg.asset
def landed_file(lake: LakeResource) -> None:
    lake.store().put_bytes("raw/customers/2024-01-01/crm.csv", b"customer_id\n1\n", create_only=True)


def test_lake_resource_from_env_drives_a_dagster_run(
    lake: LakeStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CUSTOMER360_LAKE", lake.uri)
    if isinstance(lake, S3LakeStore):
        monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", lake.client.meta.endpoint_url)
    resource = lake_resource_from_env()
    assert resource.store() is resource.store()  # one client per resource, not one per call
    assert resource.store().uri == lake.uri

    assert dg.materialize([landed_file], resources={"lake": resource}).success
    assert lake.read_bytes("raw/customers/2024-01-01/crm.csv") == b"customer_id\n1\n"

    # Unset, the lake is the embedded folder under the working directory, made absolute, once it exists.
    monkeypatch.delenv("CUSTOMER360_LAKE")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".lake" / "telco-customer360-pipeline").mkdir(parents=True)
    assert lake_resource_from_env().location == str(tmp_path / ".lake" / "telco-customer360-pipeline")
