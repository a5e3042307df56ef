"""Several processes (gloo, CPU): evaluation split over processes equals one process; DDP's find_unused_parameters
follows the arm; a killed 2-process run (in training, then in evaluation) resumes to the uninterrupted result, under
DDP and under FSDP2; the engine checks refuse what would silently run something else."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from fixtures.launch import ENV, TINY, launch
from safetensors.torch import load_file

from emo_llama.features.synthetic import synthetic_features
from emo_llama.model import EmoLlama, EmoLlamaConfig
from emo_llama.train.loop import unused_parameters

EVAL_WORKER = textwrap.dedent('''
    import json, sys
    from accelerate import Accelerator
    from emo_llama.evaluate import evaluate
    from emo_llama.model import EmoLlama, EmoLlamaConfig
    from emo_llama.features.synthetic import synthetic_features
    from emo_llama.utils import seed_everything

    acc = Accelerator(cpu=True)
    seed_everything(5)
    model = EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, lora_r=4, **json.loads(sys.argv[2])))
    classes = ("happiness", "sadness", "surprise")
    media = [synthetic_features(i % 3, 100 + i, frames=1 + i % 2) for i in range(9)]
    media[4] = None  # unreadable: scored as wrong
    labels = [classes[i % 3] for i in range(9)]
    paths = [f"m{i}" for i in range(9)]
    question = "Which emotion? happiness, sadness or surprise."
    run = lambda accelerator: evaluate(model, media, labels, classes, question, batch_size=2, max_new_tokens=5,
                                       progress=False, paths=paths, errors={"m4": "broken"}, accelerator=accelerator)
    split = run(acc)
    if acc.is_main_process:
        one = run(None)
        keys = ("answers", "predictions", "acc", "uar", "war", "unparseable", "unreadable")
        out = {"split": {k: split[k] for k in keys}, "one": {k: one[k] for k in keys}, "world": acc.num_processes}
        with open(sys.argv[1], "w") as fh:
            json.dump(out, fh, default=float)
    acc.wait_for_everyone()
''')


def test_evaluation_split_over_two_processes_equals_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(EVAL_WORKER)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path / "out.json"), json.dumps(TINY)], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["world"] == 2
    assert out["split"] == out["one"]  # answers, predictions and metrics, exactly
    assert len(out["one"]["answers"]) == 9 and out["one"]["unreadable"][0]["path"] == "m4"


def test_saved_evaluation_batches_are_read_back(tmp_path):
    from emo_llama.evaluate import evaluate
    from emo_llama.model.answers import Answer

    model = EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, lora_r=4, **TINY))
    media = [synthetic_features(i % 3, i) for i in range(3)]
    (tmp_path / "batch-000001.json").write_text(json.dumps([Answer("sadness", path="m2").as_dict()]))
    out = evaluate(model, media, ["happiness", "sadness", "sadness"], ("happiness", "sadness", "surprise"), "Q?",
                   batch_size=2, max_new_tokens=3, progress=False, paths=["m0", "m1", "m2"], progress_dir=tmp_path)
    assert out["answers"][2] == "sadness" and out["predictions"][2] == "sadness"  # read back, not generated
    assert (tmp_path / "batch-000000.json").exists()  # the generated batch was saved for a resume


@pytest.mark.parametrize(("options", "frozen", "unused"), [
    ({}, False, False),                        # everything trains: DDP without find_unused_parameters
    ({"use_landmarks": False}, False, False),  # Tab. 5 arms build only the modules they use
    ({"use_face_embedding": False}, False, False),
    ({"fim_mode": "pool_concat"}, False, False),
    ({}, True, True),                          # new modules frozen after alignment: no gradient, so DDP must know
])
def test_find_unused_parameters_only_when_parameters_get_no_gradient(options, frozen, unused):
    model = EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, lora_r=4, **TINY, **options))
    model.new_modules_frozen = frozen
    feats = [synthetic_features(i % 3, i) for i in range(2)]
    rng = torch.get_rng_state()
    names = unused_parameters(model, model.make_batch(feats, [[("Which emotion?", "happiness")]] * 2))
    assert torch.equal(rng, torch.get_rng_state())  # the probe leaves the RNG (and so training) alone
    assert all(p.grad is None for p in model.parameters())
    assert bool(names) == unused
    if unused:
        assert set(names) == {n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("llm.")}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ddp", "fsdp"])
def test_killed_two_process_run_resumes_to_the_uninterrupted_result(tmp_path, engine):
    args = ["--dataset", "synthetic", "--stack", "tiny", "--stack_options", '{"encoders": false}',
            "--model_options", json.dumps(TINY | {"lora_dropout": 0.2}), "--lora_r", "4", "--batch_size", "4",
            "--lr", "3e-3", "--max_steps", "6", "--checkpoint_every", "2", "--progress", "false", "--zero_shot",
            "true", "--max_new_tokens", "3", "--device", "cpu", "--seed", "3", "--eval_limit", "6",
            "--eval_batch_size", "2", "--align_steps", "2", "--align_batch_size", "4", "--real_faces", "false",
            "--gradient_checkpointing", str(engine == "fsdp")]
    full = launch(args, tmp_path / "full", engine)
    assert full.returncode == 0, full.stderr[-3000:]
    cut = tmp_path / "cut"
    killed = launch(args, cut, engine, kill="train:3")          # SIGKILL after step 3: the newest checkpoint is step 2
    assert killed.returncode != 0 and not (cut / "metrics.json").exists()
    assert len(list((cut / "checkpoints").glob("*/step-000002/complete"))) == 1
    killed = launch(args, cut, engine, kill="eval:trained_eval:0")  # resumed, then killed after the first evaluation batch
    assert killed.returncode != 0 and not (cut / "metrics.json").exists()
    saved = sorted(p.name for p in (cut / "eval_progress").glob("trained_eval-*/batch-*.json"))
    assert "batch-000000.json" in saved and len(saved) < 3  # the trained evaluation was cut short
    resumed = launch(args, cut, engine)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (load_file(str(d / "model" / "trainable.safetensors")) for d in (tmp_path / "full", cut))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    m_full, m_cut = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "full", cut))
    assert (m_full["processes"], m_full["engine"]) == (m_cut["processes"], m_cut["engine"]) == (2, engine)
    assert m_full["train_loss"] == m_cut["train_loss"] and len(m_cut["train_loss"]) == 6
    assert m_full["trained"] == m_cut["trained"] and m_full["zero_shot"] == m_cut["zero_shot"]
    d_full, d_cut = (json.loads((d / "eval_details.json").read_text()) for d in (tmp_path / "full", cut))
    assert d_full["trained"]["answers"] == d_cut["trained"]["answers"]


@pytest.mark.parametrize(("kind", "fsdp_asked", "error"), [
    ("NO", False, None), ("MULTI_CPU", False, None), ("FSDP", True, None),
    ("MULTI_CPU", True, RuntimeError),     # accelerate turned an FSDP job on CPU into DDP
    ("DEEPSPEED", False, NotImplementedError),
])
def test_engine_check_refuses_what_would_run_something_else(monkeypatch, kind, fsdp_asked, error):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from emo_llama.train.distributed import check_engine

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true" if fsdp_asked else "false")
    accelerator = SimpleNamespace(distributed_type=DistributedType[kind])
    if error:
        with pytest.raises(error):
            check_engine(accelerator)
    else:
        assert check_engine(accelerator) == (kind == "FSDP")
