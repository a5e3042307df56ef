"""benchmarks/seed_spread.py end to end on the tiny stack and synthetic features (seconds): one line per seed,
the summary line, a JSON record, and a rerun that reads the finished seeds back instead of training again."""

from __future__ import annotations

import json

import pytest
from fixtures.launch import TINY
from fixtures.scripts import load_script

SETTINGS = ["dataset=synthetic", "stack=tiny", 'stack_options={"encoders": false}', f"model_options={json.dumps(TINY)}",
            "lora_r=4", "batch_size=4", "max_steps=3", "align_steps=2", "instruction_types=category",
            "zero_shot=false", "real_faces=false", "check_memory=false", "progress=false", "max_new_tokens=4",
            "eval_limit=6", "device=cpu"]


@pytest.fixture(scope="module")
def seed_spread():
    return load_script("benchmarks/seed_spread.py")


def test_summary_line_has_std_and_real_face_order_statistics(seed_spread):
    rows = [{"uar": 0.5, "real": 12}, {"uar": 0.7, "real": 10}, {"uar": 0.6, "real": 13}]
    assert seed_spread.summary(rows) == "uar_std=0.100 uar_mean=0.600 real_min=10 real_median=12 real_max=13"


def test_two_seeds_print_a_line_each_and_a_rerun_trains_nothing(seed_spread, tmp_path, monkeypatch, capsys):
    out = tmp_path / "spread"
    argv = ["seed_spread.py", "--seeds", "2", "--output-dir", str(out), "--set", *SETTINGS]
    monkeypatch.setattr("sys.argv", argv)
    seed_spread.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["seed 0", "seed 1"]
    assert lines[-1].startswith("uar_std=")
    record = json.loads((out / "seed_spread.json").read_text())
    assert [r["seed"] for r in record["seeds"]] == [0, 1] and record["summary"] == lines[-1]
    first = [json.loads((out / f"seed{s}" / "metrics.json").read_text())["run"] for s in (0, 1)]
    assert first[0]["digest"] != first[1]["digest"]  # two seeds, two runs
    logs = [(out / f"seed{s}" / "train_log.jsonl").read_text() for s in (0, 1)]
    seed_spread.main()  # the same configuration again: each seed is read back from its metrics.json
    again = capsys.readouterr().out.strip().splitlines()
    assert again[-1] == lines[-1]
    assert all(log.strip() for log in logs)
    assert [(out / f"seed{s}" / "train_log.jsonl").read_text() for s in (0, 1)] == logs  # no step trained again
    (out / "seed1" / "metrics.json").unlink()  # lost: seed 1 is rebuilt from its final checkpoint, not retrained
    seed_spread.main()
    assert capsys.readouterr().out.strip().splitlines()[-1] == lines[-1]
    assert (out / "seed1" / "train_log.jsonl").read_text() == logs[1]
    monkeypatch.setattr("sys.argv", [*argv, "lr=0.002"])  # another configuration trains afresh
    seed_spread.main()
    assert (out / "seed0" / "train_log.jsonl").read_text() != logs[0]
