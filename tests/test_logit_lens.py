"""core.inspect.logit_lens: the residual stream read through ln_f and the output layer, per layer."""

import pytest
import torch

from core.config import GPT2_VOCAB
from core.generate.sampling import mask_padding
from core.inspect.logit_lens import logit_lens, logit_lens_text, read_out, residual_stream
from core.model.gpt import GPT, ModelConfig

IDS = [464, 3290, 286, 262, 995, 318, 257, 1332, 286, 262]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16)).eval()


@torch.no_grad()
def own_distribution(model, ids):
    """The model's next-token probabilities at every position, as the Playground shows them."""
    logits, _ = model(torch.tensor([ids]))
    return torch.softmax(mask_padding(logits[0].float()), dim=-1)


def test_last_row_is_the_models_own_distribution(model):
    stream = residual_stream(model, IDS)
    assert stream.shape == (model.config.n_layer + 1, len(IDS), model.config.n_embd)
    expected = own_distribution(model, IDS)
    torch.testing.assert_close(read_out(model, stream[-1]).exp(), expected, atol=1e-5, rtol=0)
    cells = logit_lens(model, IDS).cells[-1] + logit_lens(model, IDS, top_k=3).cells[-1]
    for pos, cell in enumerate(cells):
        pos %= len(IDS)
        assert cell.token_id == int(expected[pos].argmax())
        assert cell.prob == pytest.approx(float(expected[pos].max()), abs=1e-5)
        if pos + 1 < len(IDS):
            assert cell.next_prob == pytest.approx(float(expected[pos, IDS[pos + 1]]), abs=1e-5)
        else:
            assert cell.next_prob is None


def test_row_zero_is_the_embedding(model):
    stream = residual_stream(model, IDS)
    t = model.transformer
    with torch.no_grad():
        torch.testing.assert_close(
            stream[0], t.wte(torch.tensor(IDS)) + t.wpe(torch.arange(len(IDS)))
        )
    lens = logit_lens(model, IDS)
    assert lens.layers == ["embedding", "block 1", "block 2"]
    assert len(lens.cells) == 3 and all(len(row) == len(IDS) for row in lens.cells)
    assert lens.positions == list(range(len(IDS))) and lens.token_ids == IDS
    first = read_out(model, stream[0]).exp()
    assert [c.token_id for c in lens.cells[0]] == first.argmax(dim=-1).tolist()


def test_top_k_cells(model):
    lens = logit_lens(model, IDS, top_k=4)
    for row in lens.cells:
        for cell in row:
            probs = [p for _, _, p in cell.top]
            assert len(cell.top) == 4 and probs == sorted(probs, reverse=True)
            assert cell.top[0][0] == cell.token_id and cell.top[0][2] == pytest.approx(cell.prob)
    assert all(c.top == () for row in logit_lens(model, IDS).cells for c in row)


def test_positions_subset_matches_the_full_grid(model):
    full = logit_lens(model, IDS)
    part = logit_lens(model, IDS, positions=[7, 2, 2])
    assert part.positions == [2, 7]
    for row_full, row_part in zip(full.cells, part.cells):
        assert row_part[0].token_id == row_full[2].token_id
        assert row_part[1].prob == pytest.approx(row_full[7].prob, abs=1e-6)
    with pytest.raises(ValueError, match="positions"):
        logit_lens(model, IDS, positions=[len(IDS)])


def test_text_is_cropped_and_last_positions(model):
    text = "the quick brown fox jumps over the lazy dog " * 3
    lens = logit_lens_text(model, text, last=4)
    assert len(lens.token_ids) == 16 and lens.cropped > 0
    assert lens.positions == [12, 13, 14, 15]
    assert lens.grid("text")[0] == [c.text for c in lens.cells[0]]
    with pytest.raises(ValueError, match="last"):
        logit_lens_text(model, text, last=0)


def test_padding_never_shows_up():
    torch.manual_seed(1)
    m = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16)).eval()
    with torch.no_grad():
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias.fill_(1.0)  # every layer reads out as logit i = sum(wte[i])
        m.transformer.wte.weight[50300] = 1.0
        m.transformer.wte.weight[13] = 0.5
    lens = logit_lens(m, IDS, top_k=5)
    for row in lens.cells:
        for cell in row:
            assert cell.token_id == 13 and all(i < GPT2_VOCAB for i, _, _ in cell.top)
