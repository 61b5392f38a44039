import numpy as np
import pytest
import torch

from core.data import dataset
from core.data.dataset import DataError
from core.data.walker import BatchWalker


def test_tinyshakespeare_has_338025_gpt2_tokens(shakespeare_path):
    tokens = dataset.load_tokens("tinyshakespeare")
    assert tokens.dtype == np.uint16 and len(tokens) == 338_025
    assert tokens[:4].tolist() == [5962, 22307, 25, 198]  # "First Citizen:\n"


def test_second_load_reads_the_token_cache(small_text, monkeypatch):
    first = dataset.load_tokens(str(small_text))

    def no_tokenizing(text):
        raise AssertionError("tokenized again despite the cache")

    monkeypatch.setattr(dataset, "encode", no_tokenizing)
    np.testing.assert_array_equal(dataset.load_tokens(str(small_text)), first)


def test_cache_is_keyed_by_content(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hello world " * 50)
    first = dataset.load_tokens(str(path))
    path.write_text("goodbye moon " * 50)
    assert dataset.load_tokens(str(path)).tolist() != first.tolist()


def test_folder_of_text_files(tmp_path):
    (tmp_path / "b.txt").write_text("second part")
    (tmp_path / "a.txt").write_text("first part")
    (tmp_path / "ignored.md").write_text("not text data")
    tokens = dataset.load_tokens(str(tmp_path))
    assert dataset.get_tokenizer().decode(tokens.tolist()) == "first part\n\nsecond part"


def test_non_utf8_text_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8.*iconv"):
        dataset.load_tokens(str(path))


def test_missing_source_is_refused(tmp_path):
    with pytest.raises(DataError, match="neither 'tinyshakespeare' nor an existing file"):
        dataset.resolve_source(str(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match="holds no .txt files"):
        dataset.resolve_source(str(tmp_path))


def test_offline_without_a_copy_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("GPT_DATA_DIR", raising=False)
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(dataset, "_SHARED_DATA", tmp_path / "absent")

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(dataset.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="download .* failed.*GPT_DATA_DIR"):
        dataset.resolve_source("tinyshakespeare")


def test_too_small_data_is_refused():
    with pytest.raises(DataError, match=r"fewer than one micro batch needs \(4 x 32 \+ 1 = 129\)"):
        dataset.check_size(np.zeros(100, dtype=np.uint16), 4, 32, "training")
    dataset.check_size(np.zeros(129, dtype=np.uint16), 4, 32, "training")


def test_split_holds_out_the_end():
    train, val = dataset.split(np.arange(100, dtype=np.uint16), 0.1)
    assert len(train) == 90 and val.tolist() == list(range(90, 100))


def test_batches_walk_in_order_and_wrap():
    walker = BatchWalker(np.arange(50, dtype=np.uint16), micro_batch=2, seq_len=4)
    assert walker.chunks == 6  # (50 - 1) // 8
    x, y = walker.batch(0)
    assert x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert torch.equal(y, x + 1)  # next-token targets
    assert walker.batch(1)[0][0, 0].item() == 8
    assert torch.equal(walker.batch(6)[0], x)  # wraps to the start


def test_text_files_are_checked_before_tokenizing(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("héllo wörld " * 10_000)  # multi-byte characters across the 64 KB sniff
    assert dataset.check_text_files([good]) == good.stat().st_size
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        dataset.check_text_files([empty])
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"abc\0def")
    with pytest.raises(DataError, match="looks binary"):
        dataset.check_text_files([good, binary])
    latin = tmp_path / "latin.txt"
    latin.write_bytes("naïve".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text.*iconv"):
        dataset.check_text_files([latin])
