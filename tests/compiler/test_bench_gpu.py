"""benchmarks/bench_gpu.py runs its whole measurement path on the CPU (a smoke run), and without a GPU says so."""

from __future__ import annotations

import pytest
import torch

from benchmarks import bench_gpu


@pytest.mark.slow  # builds six 12-layer models: about 20 s on an idle 2-core machine
def test_the_smoke_run_measures_every_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gpu.main(["--device", "cpu", "--quick"]) == 0
    table = capsys.readouterr().out
    assert table.count("tiny") == 6  # 3 genotypes × fused/plain attention
    assert "bert" in table and "figure7" in table and "searched" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the benchmark would run")
def test_without_a_gpu_it_says_so_and_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gpu.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().err


def test_training_flops_count_three_forward_passes() -> None:
    text = (bench_gpu.REPO / "genotypes" / "bert.abz").read_text()
    small = bench_gpu.train_flops_per_token(text, bench_gpu.SIZES["small"])
    base = bench_gpu.train_flops_per_token(text, bench_gpu.SIZES["base"])
    # 12 layers of 4h² projections + 8h² FFN (forward: 2 FLOPs per weight) dominate: about 3 × 24 h² × 12
    assert base / small == pytest.approx((768 / 256) ** 2, rel=0.25)
    assert base >= 3 * 2 * 12 * 12 * 768**2
