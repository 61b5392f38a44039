"""The memorization meter: suffix-array index, copied spans, held-out spans, infini-gram
continuation, locations, cache, data X-ray and the command line."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest

from core.config import TrainConfig, preset
from core.data import corpus as memo
from core.data.corpus import MissingDataError, Span, SuffixIndex, build_suffix_array
from core.data.dataset import encode
from core.data.xray import data_xray
from core.inspect.memorization import main
from core.store.rundir import RunDir
from tests.conftest import ROOT

WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "bright",
    "silver",
    "morning",
    "garden",
    "shadow",
    "winter",
    "honey",
    "candle",
    "window",
    "forest",
    "mirror",
    "thunder",
    "meadow",
    "lantern",
    "harbor",
    "feather",
    "castle",
    "whisper",
    "copper",
    "valley",
    "ember",
    "orchard",
    "marble",
    "velvet",
    "compass",
    "island",
    "violet",
    "falcon",
    "crimson",
    "willow",
    "meadowlark",
    "basket",
    "cinder",
    "pebble",
    "harvest",
    "thistle",
    "quiver",
    "saddle",
    "tundra",
    "walnut",
]
SPEAKERS = ("ROMEO", "JULIET", "First Citizen", "NURSE")
REPEATED = "Never again shall the silver river run so bright and cold."


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Token caches and indexes go to this test's own folder."""
    path = tmp_path / "cache"
    monkeypatch.setenv("GPT_CACHE_DIR", str(path))
    return path


def play(seed: int = 0, speeches: int = 40, speakers=SPEAKERS) -> tuple[str, list]:
    """A play of random words: speaker lines (`NAME:` after a blank line), three lines a speech,
    a line said twice and a dog that barks twice and sleeps once. Returns the text and, for each
    speech line, (line number, speaker, text)."""
    rng = random.Random(seed)
    lines, said = [], []
    for k in range(speeches):
        speaker = speakers[k % len(speakers)] if speakers else None
        if lines:
            lines.append("")
        if speaker:
            lines.append(f"{speaker}:")
        for j in range(3):
            text = " ".join(rng.choice(WORDS) for _ in range(9)).capitalize() + "."
            if (k, j) in ((3, 1), (20, 1), (speeches - 1, 0)):  # the last time in the val split
                text = REPEATED
            if (k, j) in ((5, 0), (9, 0), (14, 0)):
                text = "The lazy dog " + ("sleeps" if k == 14 else "barks") + " at noon."
            lines.append(text)
            said.append((len(lines), speaker, text))
    return "\n".join(lines) + "\n", said


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "play.txt"
    text, said = play()
    path.write_text(text)
    return path, said


def find_all(haystack: np.ndarray, needle) -> list[int]:
    needle = list(needle)
    return [
        i
        for i in range(len(haystack) - len(needle) + 1)
        if haystack[i : i + len(needle)].tolist() == needle
    ]


def absent_ids(index, k: int) -> list[int]:
    """Token ids that occur nowhere in the data: filler that cannot extend a match."""
    return np.setdiff1d(np.arange(30000, 40000), index.tokens)[:k].tolist()


# --- the suffix array and its searches, against brute force ----------------------------------
def brute_matches(text, query):
    best = []
    for i in range(len(query)):
        longest = 0
        for p in range(len(text)):
            n = 0
            while i + n < len(query) and p + n < len(text) and query[i + n] == text[p + n]:
                n += 1
            longest = max(longest, n)
        best.append(longest)
    return best


def test_suffix_array_lcp_and_searches_match_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(150):
        n, vocab = int(rng.integers(0, 50)), int(rng.integers(1, 5))
        text = rng.integers(0, vocab, n).astype(np.uint16)
        if trial % 3 == 0 and n > 10:
            text[n // 2 :] = text[: n - n // 2]  # long repeats: many doubling rounds
        sa = build_suffix_array(text)
        as_lists = [text[i:].tolist() for i in range(n)]
        assert sa.tolist() == sorted(range(n), key=lambda i: as_lists[i])
        lcp = memo.lcp_array(text, sa)
        for j in range(1, n):
            a, b = as_lists[sa[j - 1]], as_lists[sa[j]]
            assert lcp[j] == next(
                (k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))
            )
        index = SuffixIndex(text, sa)
        query = rng.integers(0, vocab + 1, int(rng.integers(0, 15)))
        lengths, offsets = index.longest_matches(query)
        assert lengths.tolist() == brute_matches(text.tolist(), query.tolist())
        for i, (length, at) in enumerate(zip(lengths, offsets)):
            assert text[at : at + length].tolist() == query[i : i + length].tolist()
            assert (at == -1) == (length == 0)
        for k in range(min(4, len(query) + 1)):
            assert index.count(query[:k]) == (len(find_all(text, query[:k])) if k else n)


def test_overlapping_matches_are_cut_to_verbatim_pieces():
    text = np.array([10, 11, 12, 13, 14, 15, 99, 20, 14, 15, 16, 17, 18], np.uint16)
    index = SuffixIndex.build(text)
    # [10..15] occurs at 0 and [14..18] at 8: they overlap on 14 15
    query = [10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert index.copied_spans(query, min_len=3) == [Span(0, 6, 0, 6), Span(6, 9, 10, 3)]
    stats = index.copy_stats(query, min_len=3)
    assert stats.share == 1.0 and stats.longest == 6 and stats.tokens == 9
    assert index.copied_spans(query, min_len=6) == [Span(0, 6, 0, 6)]


def test_empty_one_token_and_overlong_queries():
    text = np.array([5, 6, 7, 8, 9, 5, 6], np.uint16)
    index = SuffixIndex.build(text)
    lengths, offsets = index.longest_matches([])
    assert lengths.size == 0 and offsets.size == 0
    empty = index.copy_stats([])
    assert (empty.tokens, empty.share, empty.longest, empty.spans) == (0, 0.0, 0, [])
    assert index.longest_matches([7])[0].tolist() == [1]
    assert index.copy_stats([7], min_len=1).share == 1.0
    assert index.copied_spans([7]) == []  # shorter than min_len
    # longer than the whole text: the text twice, then a token it never holds
    twice = index.copy_stats(text.tolist() * 2 + [42], min_len=3)
    assert twice.spans == [Span(0, 7, 0, 7), Span(7, 14, 0, 7)] and twice.longest == 7
    with pytest.raises(ValueError, match="min_len"):
        index.copied_spans([5, 6], min_len=0)
    with pytest.raises(ValueError, match="token ids"):
        index.longest_matches([70000])
    nothing = SuffixIndex.build(np.zeros(0, np.uint16))
    assert nothing.copy_stats([1, 2, 3], 1).spans == [] and nothing.count([1]) == 0


# --- a run's data ------------------------------------------------------------------------------
def test_planted_copies_found_with_exact_bounds_and_locations(corpus):
    path, said = corpus
    index = memo.load_index(str(path), 0.1)
    (line_a, speaker_a, text_a), (_, speaker_b, text_b) = said[7], said[31]
    a, b = encode(text_a).tolist(), encode(text_b).tolist()
    filler = absent_ids(index, 30)
    query = filler[:10] + a + filler[10:20] + b + filler[20:]
    spans = index.copied_spans(query, min_len=8)
    (at_a,), (at_b,) = find_all(index.train.tokens, a), find_all(index.train.tokens, b)
    assert spans == [
        Span(10, 10 + len(a), at_a, len(a)),
        Span(20 + len(a), 20 + len(a) + len(b), at_b, len(b)),
    ]
    where = index.locate(at_a, len(a), context=1)
    assert (where.file, where.line, where.end_line, where.speaker) == (
        "play.txt",
        line_a,
        line_a,
        speaker_a,
    )
    assert (line_a, text_a) in where.context and len(where.context) == 3
    assert index.locate(at_b, len(b)).speaker == speaker_b
    stats = index.copy_stats(query)
    assert stats.share == pytest.approx((len(a) + len(b)) / len(query))
    assert stats.longest == max(len(a), len(b)) and stats.held_out_share == 0


def test_random_tokens_are_not_copied(corpus):
    index = memo.load_index(str(corpus[0]), 0.1)
    rng = np.random.default_rng(1)
    stats = index.copy_stats(rng.integers(0, 50257, 500), min_len=8)
    assert stats.share == 0 and stats.spans == [] and stats.longest == 0


def test_a_val_passage_is_held_out_not_training(corpus):
    path, said = corpus
    index = memo.load_index(str(path), 0.1)
    line, speaker, text = said[-1]  # the last line is in the val split
    ids = encode(text).tolist()
    assert not find_all(index.train.tokens, ids)
    (at,) = find_all(index.val.tokens, ids)
    stats = index.copy_stats(ids, min_len=8)
    assert stats.spans == [Span(0, len(ids), at, len(ids), "val")]
    assert stats.share == 0 and stats.held_out_share == 1.0 and stats.longest == 0
    where = index.locate(at, len(ids), split="val")
    assert (where.line, where.speaker) == (line, speaker)
    # said in both: training; what follows it only in the val split: held-out
    assert said[-3][2] == REPEATED
    both = encode(REPEATED).tolist()
    (span,) = index.copied_spans(both)
    assert span[:2] == (0, len(both)) and span.split == "train"
    assert span.source_offset in find_all(index.train.tokens, both)  # said twice there
    after = encode(f"{REPEATED}\n{said[-2][2]}").tolist()
    spans = index.copied_spans(after)
    assert [s.split for s in spans] == ["train", "val"] and spans[1].end == len(after)
    assert spans[0].end == spans[1].start and spans[0].length >= len(both)
    (val_at,) = find_all(index.val.tokens, after)
    assert spans[1].source_offset == val_at + spans[1].start


def test_continuation_after_a_known_prompt(corpus):
    index = memo.load_index(str(corpus[0]), 0.1)
    dog = encode(" sleeps").tolist() + encode(" barks").tolist()
    after = index.continuation(encode("The lazy dog").tolist(), k=5)
    assert (after.suffix_len, after.count) == (3, 3)
    assert after.tokens == [dog[1], dog[0]] and after.counts == [2, 1]
    assert after.probs == pytest.approx([2 / 3, 1 / 3])
    # an unknown start backs off to the longest suffix the text holds
    backed = index.continuation(absent_ids(index, 1) + encode("The lazy dog").tolist())
    assert backed.suffix_len == 3 and backed.tokens == after.tokens
    nothing = index.continuation([], k=2)  # no context: the commonest tokens of the text
    assert nothing.suffix_len == 0 and nothing.count == len(index.train)
    assert len(nothing.tokens) == 2 and nothing.counts[0] >= nothing.counts[1]


def test_index_is_cached_and_a_changed_text_gets_a_new_key(corpus, cache, monkeypatch):
    path, _ = corpus
    first = memo.load_index(str(path), 0.1)
    files = sorted(p.name for p in (cache / "index").iterdir())
    assert len(files) == 3 and all(first.key in name for name in files)

    def no_building(tokens):
        raise AssertionError("built again despite the cache")

    with monkeypatch.context() as m:
        m.setattr(memo, "build_suffix_array", no_building)
        again = memo.load_index(str(path), 0.1)
        np.testing.assert_array_equal(again.train.sa, first.train.sa)
        with pytest.raises(AssertionError):  # another split is another index
            memo.load_index(str(path), 0.2)
    path.write_text(play(seed=1)[0])
    changed = memo.load_index(str(path), 0.1)
    assert changed.key != first.key and len(list((cache / "index").iterdir())) == 6
    with pytest.raises(memo.DataError, match="changed since"):
        first.locate(0)  # the old index no longer matches the file
    # a corrupt cache file is built again
    sa_file = next((cache / "index").glob(f"*{changed.key}*train-sa.npy"))
    sa_file.write_bytes(b"not an array")
    np.testing.assert_array_equal(memo.load_index(str(path), 0.1).train.sa, changed.train.sa)


def test_missing_data_says_to_point_data_at_it(tmp_path):
    with pytest.raises(MissingDataError, match="missing.*point --data at the text") as e:
        memo.load_index(str(tmp_path / "gone.txt"), 0.1)
    assert isinstance(e.value, ValueError)


def test_a_folder_names_the_file_and_a_text_without_speakers_has_none(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(play(seed=2, speeches=10)[0])
    plain, said = play(seed=3, speeches=30, speakers=())
    (folder / "b.txt").write_text(plain)
    index = memo.load_index(str(folder), 0.1)
    line, _, text = said[5]
    ids = encode(text).tolist()
    (at,) = find_all(index.train.tokens, ids)
    where = index.locate(at, len(ids))
    assert (where.file, where.line, where.speaker) == ("b.txt", line, None)
    assert index.locate(0, 3).file == "a.txt" and index.locate(0, 3).speaker == "ROMEO"


def test_xray_counts_epochs_repeats_and_warns(corpus):
    path, said = corpus
    index = memo.load_index(str(path), 0.1)
    cfg = TrainConfig(
        data=str(path), micro_batch_size=2, seq_len=32, grad_accum_steps=2, max_steps=500
    )
    xray = data_xray(cfg, n_params=1_000_000, index=index)
    n = len(index.tokens)
    assert (xray.tokens, xray.train_tokens + xray.val_tokens) == (n, n)
    assert xray.tokens_per_step == 128
    chunks = (xray.train_tokens - 1) // 64
    assert xray.steps_per_epoch == chunks / 2 and xray.epochs == pytest.approx(500 / (chunks / 2))
    assert xray.params_per_token == pytest.approx(1_000_000 / xray.train_tokens)
    assert (
        xray.warning == f"500 steps x 128 tokens = {xray.epochs:,.0f} epochs of this text: "
        "expect it to memorize"
    )
    dog, line = xray.repeats[0], xray.repeats[1]  # said twice each, by the same speaker or not
    assert "JULIET:\nThe lazy dog barks at noon." in dog.text and dog.count == 2
    assert REPEATED in line.text and line.count == 2
    assert line.location.line <= said[10][0] <= line.location.end_line  # its first time
    assert REPEATED in dict(line.location.context).values()
    lengths = [r.length for r in xray.repeats]
    assert lengths == sorted(lengths, reverse=True)
    assert len(xray.repeats) == 3 and len({r.offset for r in xray.repeats}) == 3
    assert data_xray(cfg.replace(max_steps=2), 1, index=index).warning is None
    too_big = data_xray(cfg.replace(micro_batch_size=64, seq_len=1024), 1, index=index)
    assert too_big.epochs == float("inf") and "fewer than one micro batch" in too_big.warning


def test_tiny_shakespeare_xray_and_a_copied_line(shakespeare_path):
    cfg = preset("gpt2-124m")
    xray = data_xray(cfg, n_params=124_000_000)
    assert (xray.tokens, xray.train_tokens, xray.val_tokens) == (338_025, 304_223, 33_802)
    assert xray.warning == (
        "2,000 steps x 32,768 tokens = 216 epochs of this text: expect it to memorize"
    )
    for r in xray.repeats:  # each from a whole line: no stray '.' of the line before
        assert not r.text.startswith((".", "\n")), r.text[:40]
        first = r.text.split("\n", 1)[0]
        if first.endswith(":") and first[:-1].isupper():  # a speaker's line opens the passage
            assert r.location.speaker == first[:-1].title() or r.location.speaker == first[:-1]
    index = memo.load_index("tinyshakespeare", 0.1)
    ids = encode("But, soft! what light through yonder window breaks?").tolist()
    (span,) = index.copied_spans(ids)
    assert (span.start, span.end) == (0, len(ids))
    where = index.locate(span.source_offset, span.length)
    assert where.speaker == "ROMEO" and where.file == "tinyshakespeare.txt"
    assert "But, soft! what light through yonder window breaks?" in dict(where.context).values()


# --- command line ------------------------------------------------------------------------------
@pytest.fixture
def run(runs_dir, corpus):
    return RunDir.create(runs_dir, "memo", TrainConfig(data=str(corpus[0])))


def test_cli_prints_spans_with_their_locations(run, corpus, capsys):
    line, speaker, text = corpus[1][4]
    assert main(["--run-dir", str(run.path), "--text", f"Zq\n{text}\nXv"]) == 0
    out = capsys.readouterr().out
    assert "copied from the training text in 1 span(s)" in out
    assert f"play.txt line {line}, {speaker}" in out and text in out


def test_cli_reads_a_file_and_an_overriding_data_path(run, corpus, tmp_path, capsys):
    moved = tmp_path / "moved.txt"
    corpus[0].rename(moved)
    sample = tmp_path / "sample.txt"
    sample.write_text(corpus[1][0][2])
    assert main(["--run-dir", str(run.path), "--file", str(sample), "--data", str(moved)]) == 0
    assert "100.0% of" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", ""], "the text is empty"),
        (["--text", "  \n"], "the text is empty"),
        (["--text", "Hello"], "one token"),
        (["--text", "hello there", "--min-len", "0"], "--min-len"),
        (["--file", "/nonexistent/sample.txt"], "cannot read --file"),
        (["--text", "hello there", "--data", "/nonexistent/data.txt"], "point --data"),
    ],
)
def test_cli_bad_input_exits_2_and_creates_nothing(run, cache, capsys, args, message):
    assert main(["--run-dir", str(run.path)] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (cache / "index").exists()


def test_cli_missing_run_dir_and_missing_data(run, corpus, tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path / "nope"), "--text", "hello there"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    corpus[0].unlink()
    assert main(["--run-dir", str(run.path), "--text", "hello there"]) == 2
    assert "missing" in capsys.readouterr().err


def test_module_runs_from_the_command_line(run, corpus):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.inspect.memorization",
            "--run-dir",
            str(run.path),
            "--text",
            corpus[1][2][2],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "100.0% of" in done.stdout


def test_bench_prints_figures(capsys, shakespeare_path):
    from bench import common
    from bench import memorization as bench

    assert bench.main(["--sizes", "0.02"]) == 0
    record = common.last_json_line(capsys.readouterr().out)
    assert record["bench"] == "memorization" and len(record["rows"]) == 2
    for row in record["rows"]:
        assert row["build_s"] > 0 and row["build_peak_mb"] > 0 and row["query_500_ms"] > 0
    assert record["machine"]["load_avg_1_5_15"] is not None
