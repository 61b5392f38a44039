"""dashboard.yardstick: what a val loss looks like on tiny shakespeare, from measured runs."""

from dashboard import yardstick


def test_marks_fall_and_each_names_where_it_was_measured():
    losses = [m.val_loss for m in yardstick.MARKS]
    assert losses == sorted(losses, reverse=True)
    assert all(m.measured and m.looks_like for m in yardstick.MARKS)
    # the README's measured figures (Quality against time), not invented ones
    assert {5.30, 5.14} <= set(losses)


def test_place_says_where_a_val_loss_sits():
    assert yardstick.place(None).startswith("No val loss yet")
    assert "nearest 5.30" in yardstick.place(5.35)
    assert yardstick.place(4.0).startswith("Val loss 4.00 is below every measured mark")
    assert yardstick.place(11.5) == "Val loss 11.50: still at the start."


def test_only_tiny_shakespeare():
    assert yardstick.applies("tinyshakespeare") and not yardstick.applies("/home/me/corpus.txt")
