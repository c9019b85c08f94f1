"""The object store on a local directory and on SeaweedFS S3: the same behaviour on both."""

import polars as pl
import pytest

from coin_platform.storage.object_store import ObjectStore


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return ObjectStore.local(tmp_path / "store")
    s3 = request.getfixturevalue("seaweedfs")
    bucket = request.getfixturevalue("s3_bucket")
    return ObjectStore.s3(
        bucket,
        endpoint_url=s3.endpoint_url,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        region=s3.region,
        prefix="platform",
    )


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame({"i": list(range(n)), "x": [i * 0.5 for i in range(n)]})


def test_round_trip_and_identical_bytes_on_rewrite(store):
    store.write_parquet("a/b/one.parquet", _frame(10))
    first = store.read_bytes("a/b/one.parquet")
    store.write_parquet("a/b/one.parquet", _frame(10))
    assert store.read_bytes("a/b/one.parquet") == first
    assert store.read_parquet("a/b/one.parquet").equals(_frame(10))


def test_batches_keep_their_order_and_listing_finds_only_whole_objects(store):
    frames = {f"d/{n:02d}.parquet": _frame(n) for n in range(1, 12)}
    store.write_parquet_many(frames)
    keys = list(frames)
    assert [f.height for f in store.read_parquet_many(keys)] == list(range(1, 12))
    assert store.list_keys("d") == sorted(keys)
    assert store.list_keys("nothing/here") == []
    assert store.exists_many([keys[0], "d/missing.parquet"]) == [True, False]
    store.delete_many([keys[0], "d/missing.parquet"])
    assert not store.exists(keys[0])
    assert len(store.list_keys("d/")) == 10


def test_a_write_that_fails_leaves_the_previous_object_and_no_debris(store):
    store.write_parquet("k.parquet", _frame(3))
    unwritable = pl.DataFrame({"i": [object(), object()]}, schema={"i": pl.Object})
    with pytest.raises(Exception, match="(?i)object"):
        store.write_parquet("k.parquet", unwritable)
    assert store.read_parquet("k.parquet").equals(_frame(3))
    assert store.list_keys("") == ["k.parquet"]
