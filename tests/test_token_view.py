"""dashboard.token_view's pure helpers."""

from dashboard import token_view as tv


def test_log_axis_ticks_are_readable_decades():
    ticks, labels = tv.decade_ticks([0.6, 0.2, 3e-4, 0.0])
    assert ticks == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert labels == ["0.01%", "0.1%", "1%", "10%", "100%"]
    ticks, labels = tv.decade_ticks([0.5, 2e-9])
    assert len(ticks) <= 8 and ticks[-1] == 1.0 and "0%" not in labels
    assert labels[0].endswith(("e-09", "e-08", "e-07")) and len(set(labels)) == len(labels)


def test_cell_labels_shrink_with_the_number_of_cells():
    assert tv.cell_chars(8) == 10 and tv.cell_chars(32) == 2 and tv.cell_chars(0) == 80
    assert tv.clip("brother", 10) == "brother" and tv.clip("brother", 4) == "bro…"
    assert len(tv.clip("␣the", 2)) == 2
