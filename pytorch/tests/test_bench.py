"""The reference timing command: same numbers as the golden run it is given the noise of."""

import json

import numpy as np

from pixelflow import bench


def test_bench_with_given_noise_reproduces_the_golden_run(fixtures_dir, tmp_path, capsys):
    run = fixtures_dir / "tiny" / "golden" / "runs" / "euler_cfg1_shift3"
    params = json.loads((run / "params.json").read_text())
    out = tmp_path / "final.npy"
    assert bench.main([str(fixtures_dir / "tiny-checkpoint"), "--noise", str(run), "--steps", "5", "--cfg", "1",
                       "--shift", "3", "--labels", ",".join(map(str, params["class_labels"])), "--repeats", "1",
                       "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["batch"] == 2 and report["model_calls"] == params["model_calls"]
    assert len(report["seconds"]) == 1 and report["warmup_seconds"] > 0 and report["peak_memory_bytes"] is None
    final, golden = np.load(out), np.load(run / "stage_3.npy")
    np.testing.assert_allclose(final, golden, atol=1e-5)


def test_bench_runs_the_network_under_bf16_autocast(fixtures_dir, tmp_path, capsys):
    run = fixtures_dir / "tiny" / "golden" / "runs" / "euler_cfg1_shift3"
    out = tmp_path / "bf16.npy"
    assert bench.main([str(fixtures_dir / "tiny-checkpoint"), "--noise", str(run), "--steps", "5", "--cfg", "1",
                       "--shift", "3", "--labels", "1,8", "--repeats", "1", "--autocast", "bf16",
                       "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["autocast"] == "bf16"
    difference = np.abs(np.load(out) - np.load(run / "stage_3.npy")).max()
    assert 0 < difference < 0.5  # bf16 products: close to float32, not equal
