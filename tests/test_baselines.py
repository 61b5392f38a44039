"""core.data.baselines and dashboard.live_baselines: reference losses, bits per character, the
lines on the loss chart and the sentence under it."""

import math

import numpy as np
import pytest

from core.data import baselines as bl
from core.data.baselines import Baselines, Reference, bits_per_char, load_baselines, val_size
from dashboard import live_baselines
from dashboard.charts import Trace, line_figure
from dashboard.live_baselines import RunBaselines


def test_bits_per_char_known_answer():
    # 1 nat per token over 2 characters per token = 0.5 nats per char = 0.7213 bits per char
    assert bits_per_char(1.0, 100, 200) == pytest.approx(0.5 / math.log(2))
    assert math.isnan(bits_per_char(1.0, 10, 0))


def test_val_size_counts_the_decoded_characters(small_text):
    tokens, chars = val_size(str(small_text), 0.1)
    from core.data.dataset import get_tokenizer, load_tokens, split

    _, val = split(load_tokens(str(small_text)), 0.1)
    assert tokens == len(val)
    assert chars == len(get_tokenizer().decode(val.tolist()))  # ASCII text: one byte each


def test_published_figures_only_on_tiny_shakespeare(small_text, shakespeare_path):
    own = load_baselines(str(small_text), 0.1)
    assert [r.name for r in own.references] == ["unigram model", "bigram model", "trigram model"]
    assert not own.published and own.split_note() == ""
    shakespeare = load_baselines(str(shakespeare_path), 0.1)  # a path to the file counts too
    refs = {r.name: r.loss for r in shakespeare.references}
    assert refs["nanoGPT char-level"] == pytest.approx(1.4697 * 3.093)
    assert refs["GPT-2 124M, no fine-tuning"] == 4.03
    # the n-gram models are worse than the published transformers, as they should be
    assert refs["unigram model"] > refs["bigram model"] > refs["trigram model"] > 4.03
    note = shakespeare.split_note()
    assert "last 10% of the characters" in note and "3.093 there" in note
    assert 3.0 < shakespeare.chars_per_token < 3.2  # GPT-2 tokens of English prose


def test_split_note_states_the_shift():
    b = Baselines((), val_tokens=1000, val_chars=3000, published=True)
    shift = 1.4697 * (3.0 - 3.093)
    assert f"{shift:+.3f} from the 4.55 drawn" in b.split_note()


def _found(run_id="r", losses=(6.0, 5.0, 4.8), published=True) -> RunBaselines:
    refs = [
        Reference(f"{n} model", v, bl.NGRAM_SOURCE)
        for n, v in zip(("unigram", "bigram", "trigram"), losses)
    ]
    refs += bl.published_references() if published else []
    return RunBaselines(run_id, Baselines(tuple(refs), 1000, 3000, published))


def _loss_fig(log_y=False):
    trace = Trace(
        np.arange(5.0), np.linspace(10, 4, 5), "val", "#1f77b4", "markers", uid="r:val_loss"
    )
    return line_figure([trace], x_title="step", y_title="loss", log_y=log_y)


def test_the_lines_are_labelled_and_the_trigram_left_out():
    lines = live_baselines.reference_lines([_found()])
    labels = [h.label for h in lines]
    assert labels == [
        "unigram model 6.00",
        "bigram model 5.00",
        "nanoGPT char-level 4.55",
        "GPT-2 124M, no fine-tuning 4.03",
    ]
    fig = _loss_fig()
    live_baselines.add_reference_lines(fig, lines, log_y=False)
    texts = [a.text for a in fig.layout.annotations]
    assert texts == labels and len(fig.layout.shapes) == 4
    # close lines: the lower one's label hangs under it, so the two never overlap
    anchors = {a.text: a.yanchor for a in fig.layout.annotations}
    assert anchors["GPT-2 124M, no fine-tuning 4.03"] == anchors["nanoGPT char-level 4.55"] == "top"
    assert anchors["bigram model 5.00"] == anchors["unigram model 6.00"] == "bottom"


def test_runs_on_different_data_name_their_lines():
    lines = live_baselines.reference_lines(
        [_found("a", published=False), _found("b", (7.0, 6.5, 6.0), published=False)]
    )
    assert "unigram model 6.00 (a)" in [h.label for h in lines]
    assert "unigram model 7.00 (b)" in [h.label for h in lines]
    same = live_baselines.reference_lines([_found("a"), _found("b")])
    assert len(same) == 4  # shared, drawn once


def test_bits_per_char_on_the_val_hover():
    fig = _loss_fig()
    live_baselines.add_bits_per_char(fig, [_found()])
    trace = fig.data[0]
    assert trace.customdata[0] == pytest.approx(10 / 3 / math.log(2))
    assert "bits/char" in trace.hovertemplate


def test_the_explanation_names_its_sources():
    text = live_baselines.explanation([_found()], {"r": 4.5})
    assert "Kneser-Ney" in text and "nanoGPT issue 210" in text and "1.4697" in text
    assert "trigram model 4.80" in text
    assert f"{4.5 * 1000 / 3000 / math.log(2):.3f} bits/char" in text
    gone = live_baselines.explanation([RunBaselines("r", None, "its data cannot be read (x)")], {})
    assert gone == "No reference lines: r: its data cannot be read (x)"
