"""core.device: what runs where (device, dtype, compile, loss path) and the peak FLOP/s."""

import pytest

from core import device


def test_cpu_defaults_and_their_reasons():
    choice = device.choose("cpu")
    assert (choice.device, choice.dtype, choice.compile, choice.loss) == (
        "cpu",
        "float32",
        False,
        "fused",
    )
    assert "fp32" in choice.why and "eager" in choice.why and "fused loss" in choice.why
    assert device.choose("cpu", loss="plain").loss == "plain"


def test_bad_choices_are_refused_by_name():
    with pytest.raises(ValueError, match="loss: unknown loss path"):
        device.choose("cpu", loss="magic")


def test_the_cpu_peak_keeps_the_best_measurement(monkeypatch, tmp_path):
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_matmul_flops", lambda size, repeats: 38e9)  # a busy machine
    assert device.measured_cpu_peak()[0] == 38e9
    monkeypatch.setattr(device, "_matmul_flops", lambda size, repeats: 1 / 0)  # never called:
    assert device.measured_cpu_peak(measure=False)[0] == 38e9  # pages read the cached figure
    monkeypatch.setattr(device, "_matmul_flops", lambda size, repeats: 143e9)  # idle later
    assert device.measured_cpu_peak()[0] == 143e9
    monkeypatch.setattr(device, "_matmul_flops", lambda size, repeats: 50e9)  # busy again
    assert device.measured_cpu_peak()[0] == 143e9
    peak = device.peak_flops(device.choose("cpu"))
    assert peak.value == 143e9 and peak.source.startswith("fp32 matmul measured here")
    assert device.peak_flops(device.choose("cpu"), configured=1e12).source == "peak_flops setting"
